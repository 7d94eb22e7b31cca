//! A block of (query item, context item) pairs: every query item with every context item.
//!
//! Pairs are numbered group-major, `p = group · n + item`, the groups being the context items:
//! images in t2i (so the block is image-major, like the similarity matrix), captions in i2t.

use crate::config::Direction;
use crate::text_encoder::length_mask;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use std::ops::Range;

pub struct PairBatch {
    /// Query items `[n, q, E]` (captions in t2i, images in i2t).
    pub query: Tensor<3>,
    /// Context items `[G, c, E]`.
    pub context: Tensor<3>,
    /// Valid query tokens `[n, q]` (t2i: words).
    pub query_valid: Option<Tensor<2, Bool>>,
    /// Valid context tokens `[G, c]` (i2t: words).
    pub context_valid: Option<Tensor<2, Bool>>,
    /// (image, caption) of each pair, in pair order: what keys its dropout masks.
    pub ids: Vec<(usize, usize)>,
}

impl PairBatch {
    /// (groups G, query items n).
    pub fn shape(&self) -> (usize, usize) {
        (self.context.dims()[0], self.query.dims()[0])
    }

    /// The valid query tokens of every pair `[P, q]`.
    pub fn pair_query_valid(&self) -> Option<Tensor<2, Bool>> {
        let (g, n) = self.shape();
        self.query_valid.as_ref().map(|v| {
            let [_, q] = v.dims();
            v.clone()
                .unsqueeze_dim::<3>(0)
                .expand([g, n, q])
                .reshape([g * n, q])
        })
    }
}

/// The pairs of image range `images` × caption range `captions` of encoded images `[N, R, E]` and
/// captions `[M, T, E]`, with the words cut to the longest caption among them.
pub fn grid_pairs(
    direction: Direction,
    images: &Tensor<3>,
    captions: &Tensor<3>,
    lengths: &[usize],
    image_range: Range<usize>,
    caption_range: Range<usize>,
) -> PairBatch {
    let [_, r, e] = images.dims();
    let t = lengths[caption_range.clone()]
        .iter()
        .copied()
        .max()
        .unwrap_or(1);
    let regions = images.clone().slice([image_range.clone(), 0..r, 0..e]);
    let words = captions.clone().slice([caption_range.clone(), 0..t, 0..e]);
    assemble(
        direction,
        regions,
        words,
        lengths,
        &image_range.collect::<Vec<_>>(),
        &caption_range.collect::<Vec<_>>(),
    )
}

/// The pairs of encoded images `image_ids` × captions `caption_ids` (rows of the encodings, any
/// order), with the words cut to the longest caption among them: a shortlist's re-ranked pairs, a
/// sparse step's recomputed ones.
pub fn select_pairs(
    direction: Direction,
    images: &Tensor<3>,
    captions: &Tensor<3>,
    lengths: &[usize],
    image_ids: &[usize],
    caption_ids: &[usize],
) -> PairBatch {
    let [_, _, e] = captions.dims();
    let t = caption_ids.iter().map(|&k| lengths[k]).max().unwrap_or(1);
    let device = images.device();
    let regions = images.clone().select(0, row_index(image_ids, &device));
    let words = captions
        .clone()
        .select(0, row_index(caption_ids, &device))
        .slice([0..caption_ids.len(), 0..t, 0..e]);
    assemble(direction, regions, words, lengths, image_ids, caption_ids)
}

/// A block's scores `[groups, items]` (group-major, as [`PairBatch`] numbers its pairs) → images ×
/// captions: the groups are images in t2i, captions in i2t.
pub fn images_by_captions(direction: Direction, scores: Tensor<2>) -> Tensor<2> {
    match direction {
        Direction::T2i => scores,
        Direction::I2t => scores.transpose(),
    }
}

/// Row numbers as the index tensor that `select` takes.
pub fn row_index(ids: &[usize], device: &Device) -> Tensor<1, Int> {
    let ids: Vec<i64> = ids.iter().map(|&k| k as i64).collect();
    let n = ids.len();
    Tensor::from_data(TensorData::new(ids, [n]), device)
}

/// The block of `regions` `[images, R, E]` (those of `image_ids`) × `words` `[captions, t, E]`.
fn assemble(
    direction: Direction,
    regions: Tensor<3>,
    words: Tensor<3>,
    lengths: &[usize],
    image_ids: &[usize],
    caption_ids: &[usize],
) -> PairBatch {
    let [_, t, _] = words.dims();
    let cap_lengths: Vec<usize> = caption_ids.iter().map(|&k| lengths[k]).collect();
    let valid = length_mask(&cap_lengths, t, &regions.device());
    // Group-major: the context items are the groups.
    let ids = match direction {
        Direction::T2i => image_ids
            .iter()
            .flat_map(|&i| caption_ids.iter().map(move |&j| (i, j)))
            .collect(),
        Direction::I2t => caption_ids
            .iter()
            .flat_map(|&j| image_ids.iter().map(move |&i| (i, j)))
            .collect(),
    };
    match direction {
        Direction::T2i => PairBatch {
            query: words,
            context: regions,
            query_valid: Some(valid),
            context_valid: None,
            ids,
        },
        Direction::I2t => PairBatch {
            query: regions,
            context: words,
            query_valid: None,
            context_valid: Some(valid),
            ids,
        },
    }
}
