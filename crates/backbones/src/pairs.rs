//! A block of (query item, context item) pairs: every query item with every context item.
//!
//! Pairs are numbered group-major, `p = group · n + item`, the groups being the context items:
//! images in t2i (so the block is image-major, like the similarity matrix), captions in i2t.

use crate::config::Direction;
use crate::text_encoder::length_mask;
use burn::tensor::{Bool, Tensor};
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
    let cap_lengths = &lengths[caption_range.clone()];
    let t = cap_lengths.iter().copied().max().unwrap_or(1);
    let regions = images.clone().slice([image_range, 0..r, 0..e]);
    let words = captions.clone().slice([caption_range, 0..t, 0..e]);
    let valid = length_mask(cap_lengths, t, &images.device());
    match direction {
        Direction::T2i => PairBatch {
            query: words,
            context: regions,
            query_valid: Some(valid),
            context_valid: None,
        },
        Direction::I2t => PairBatch {
            query: regions,
            context: words,
            query_valid: None,
            context_valid: Some(valid),
        },
    }
}
