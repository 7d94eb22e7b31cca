//! Training and evaluation batches.
//!
//! Randomness is derived from `(seed, epoch, batch)` rather than carried along, so a run resumed at
//! any step sees exactly the batches an uninterrupted run would have seen.

use crate::augment::augment;
use crate::error::Result;
use crate::split::Split;
use crate::vocab::PAD;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::mpsc;
use std::sync::Arc;

/// Captions padded with `<pad>` (0) to the longest one, row-major `[batch, max_len]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    pub ids: Vec<u32>,
    /// Real lengths, `<start>` and `<end>` included.
    pub lengths: Vec<usize>,
    pub max_len: usize,
}

impl TokenBatch {
    pub fn pad(captions: &[Vec<u32>]) -> Self {
        let max_len = captions.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = vec![PAD; captions.len() * max_len];
        for (row, caption) in ids.chunks_mut(max_len.max(1)).zip(captions) {
            row[..caption.len()].copy_from_slice(caption);
        }
        Self {
            ids,
            lengths: captions.iter().map(Vec::len).collect(),
            max_len,
        }
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }
}

/// A training batch: pair `i` is (image `i`, caption `i`), the positives on the diagonal.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Region features `[batch, regions, dim]`.
    pub images: Vec<f32>,
    pub regions: usize,
    pub dim: usize,
    pub captions: TokenBatch,
    /// The split's caption index of each pair.
    pub indices: Vec<usize>,
}

/// How the training loader batches and augments.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub seed: u64,
    /// The token mask/replace/delete augmentation (on for training).
    pub augment: bool,
    /// Batches prepared ahead on the background thread.
    pub prefetch: usize,
}

/// A generator seeded from the run seed and a path of counters (purpose, epoch, batch, ...).
pub fn derive_rng(seed: u64, path: &[u64]) -> ChaCha8Rng {
    // SplitMix64 finaliser over the path: distinct paths give unrelated seeds.
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    };
    let key = path.iter().fold(mix(seed), |acc, &p| {
        mix(acc ^ p.wrapping_add(0x9e3779b97f4a7c15))
    });
    ChaCha8Rng::seed_from_u64(key)
}

const SHUFFLE: u64 = 1;
const AUGMENT: u64 = 2;

/// Full batches per epoch (`drop_last`).
pub fn batches_per_epoch(captions: usize, batch_size: usize) -> usize {
    captions / batch_size
}

/// The caption order of `epoch`.
pub fn epoch_order(captions: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..captions).collect();
    order.shuffle(&mut derive_rng(seed, &[SHUFFLE, epoch as u64]));
    order
}

/// Builds batch `batch` of `epoch`: captions (augmented if configured), sorted by length descending
/// as the official collate does, with their images.
pub fn train_batch(
    split: &Split,
    cfg: &LoaderConfig,
    order: &[usize],
    epoch: usize,
    batch: usize,
) -> Result<Batch> {
    let mut indices = order[batch * cfg.batch_size..(batch + 1) * cfg.batch_size].to_vec();
    let mut rng = derive_rng(cfg.seed, &[AUGMENT, epoch as u64, batch as u64]);
    let mut captions: Vec<(usize, Vec<u32>)> = indices
        .iter()
        .map(|&k| {
            let ids = &split.tokens[k];
            let ids = if cfg.augment {
                augment(ids, split.vocab_size, &mut rng)
            } else {
                ids.clone()
            };
            (k, ids)
        })
        .collect();
    captions.sort_by_key(|(_, ids)| std::cmp::Reverse(ids.len()));
    indices = captions.iter().map(|(k, _)| *k).collect();
    let rows: Vec<usize> = indices.iter().map(|&k| split.image_row(k)).collect();
    let mut images = Vec::new();
    split.features.gather(&rows, &mut images)?;
    let tokens: Vec<Vec<u32>> = captions.into_iter().map(|(_, ids)| ids).collect();
    Ok(Batch {
        images,
        regions: split.features.regions(),
        dim: split.features.dim(),
        captions: TokenBatch::pad(&tokens),
        indices,
    })
}

/// The batches of `epoch` from batch `start` on, prepared on a background thread so reading and
/// augmentation overlap with the model's step. Dropping the iterator stops the thread.
pub fn train_epoch(
    split: Arc<Split>,
    cfg: LoaderConfig,
    epoch: usize,
    start: usize,
) -> impl Iterator<Item = Result<Batch>> {
    let (tx, rx) = mpsc::sync_channel(cfg.prefetch.max(1));
    std::thread::spawn(move || {
        let order = epoch_order(split.len(), cfg.seed, epoch);
        for batch in start..batches_per_epoch(split.len(), cfg.batch_size) {
            let result = train_batch(&split, &cfg, &order, epoch, batch);
            let failed = result.is_err();
            if tx.send(result).is_err() || failed {
                break;
            }
        }
    });
    rx.into_iter()
}

/// Evaluation captions `rows` (any order), unaugmented.
pub fn eval_captions(split: &Split, rows: &[usize]) -> TokenBatch {
    let captions: Vec<Vec<u32>> = rows.iter().map(|&i| split.tokens[i].clone()).collect();
    TokenBatch::pad(&captions)
}

/// Region features of evaluation images `range` (one per five captions), `[n, regions, dim]`.
pub fn eval_images(split: &Split, range: std::ops::Range<usize>) -> Result<Vec<f32>> {
    let rows: Vec<usize> = range.map(|i| split.eval_image_row(i)).collect();
    let mut out = Vec::new();
    split.features.gather(&rows, &mut out)?;
    Ok(out)
}
