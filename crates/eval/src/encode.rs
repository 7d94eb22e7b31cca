//! The encoding pass (spec §4.1): every image and caption of a range of a split encoded once, in
//! eval mode, ready for the pair grid.

use crate::metrics::SimMatrix;
use crate::progress::Progress;
use burn::tensor::{Device, Tensor, TensorData};
use rcar_backbones::{ModelConfig, Rcar};
use rcar_data::batch::{eval_captions, eval_images};
use rcar_data::split::{Split, CAPTIONS_PER_IMAGE};
use rcar_data::DataError;
use std::ops::Range;

/// Encoded images `[n, R, E]` and captions `[5n, T, E]` (zero beyond each length).
pub struct Encoded {
    pub images: Tensor<3>,
    pub captions: Tensor<3>,
    pub lengths: Vec<usize>,
}

/// Encodes images `images` of `split` and their captions, `batch` at a time. The model must be in
/// eval mode (`Module::valid`, or on a device without autodiff).
pub fn encode(
    model: &Rcar,
    split: &Split,
    images: Range<usize>,
    batch: usize,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Encoded, DataError> {
    let (regions, dim) = (split.features.regions(), split.features.dim());
    progress.start("encode images", images.len() as u64);
    let mut image_blocks = Vec::new();
    for start in images.clone().step_by(batch) {
        let range = start..(start + batch).min(images.end);
        let n = range.len();
        let features = eval_images(split, range)?;
        let x = Tensor::from_data(TensorData::new(features, [n, regions, dim]), device);
        image_blocks.push(model.encode_images(x));
        progress.advance(n as u64);
    }
    progress.finish();

    let captions = images.start * CAPTIONS_PER_IMAGE..images.end * CAPTIONS_PER_IMAGE;
    progress.start("encode captions", captions.len() as u64);
    let max_len = split.tokens[captions.clone()]
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(1);
    let mut caption_blocks = Vec::new();
    for start in captions.clone().step_by(batch) {
        let range = start..(start + batch).min(captions.end);
        let tokens = eval_captions(split, range);
        let (b, t) = (tokens.len(), tokens.max_len);
        let words = model.encode_tokens(&tokens, device);
        let e = model.config.embed_size;
        caption_blocks.push(if t < max_len {
            Tensor::cat(vec![words, Tensor::zeros([b, max_len - t, e], device)], 1)
        } else {
            words
        });
        progress.advance(b as u64);
    }
    progress.finish();
    Ok(Encoded {
        images: Tensor::cat(image_blocks, 0),
        captions: Tensor::cat(caption_blocks, 0),
        lengths: split.tokens[captions].iter().map(Vec::len).collect(),
    })
}

/// Pairs per chunk that keep the similarity pass within `budget` bytes: a generous count of the
/// float32 intermediates one pair holds at a time (attention maps, attended and factor tensors,
/// alignment vectors), for the query and context lengths of `encoded`.
pub fn chunk_for_budget(cfg: &ModelConfig, encoded: &Encoded, budget: usize) -> usize {
    let [_, regions, _] = encoded.images.dims();
    let [_, words, _] = encoded.captions.dims();
    let (q, c) = match cfg.direction {
        rcar_backbones::Direction::T2i => (words, regions),
        rcar_backbones::Direction::I2t => (regions, words),
    };
    let floats = 4 * q * c + 8 * q * cfg.embed_size + 6 * q * cfg.sim_dim + c * cfg.embed_size;
    (budget / (4 * floats)).max(1)
}

/// The similarity matrix of encoded images and captions, `chunk` pairs at a time, each block moved
/// to the host as soon as it is computed.
pub fn score(
    model: &Rcar,
    encoded: &Encoded,
    chunk: usize,
    progress: &mut dyn Progress,
) -> SimMatrix {
    let [n_img, _, _] = encoded.images.dims();
    let [n_cap, _, _] = encoded.captions.dims();
    progress.start("score pairs", (n_img * n_cap) as u64);
    let mut data = vec![0f32; n_img * n_cap];
    for block in model.sim_enc.blocks(
        &model.config,
        &encoded.images,
        &encoded.captions,
        &encoded.lengths,
        chunk,
    ) {
        let values = block
            .scores
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("scores are float32");
        let width = block.captions.len();
        for (row, image) in values.chunks(width).zip(block.images) {
            data[image * n_cap + block.captions.start..][..width].copy_from_slice(row);
        }
        progress.advance(values.len() as u64);
    }
    progress.finish();
    SimMatrix::new(n_img, n_cap, data)
}
