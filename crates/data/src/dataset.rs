//! A split as Burn's [`Dataset`], and a [`Batcher`] for Burn's `DataLoader`, so code written for
//! Burn can read RCAR's data: an item is one caption with its image's region features.
//!
//! The trainer keeps its own batching ([`crate::batch`]): its caption order and its augmentation
//! are derived from `(seed, epoch, batch)`, so a run resumed at any step sees the batches an
//! uninterrupted one would have, whatever the prefetching. Burn's loader shuffles with a generator
//! that advances from one iteration to the next (resuming mid-run means replaying every earlier
//! epoch's shuffle) and, with several workers, hands batches over in the order they finish.

use crate::batch::TokenBatch;
use crate::error::{DataError, Result};
use crate::split::Split;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Tensor, TensorData};
use std::sync::Arc;

/// One caption of a split with its image's region features.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionItem {
    /// The caption's index in the split.
    pub caption: usize,
    /// `<start>` + token ids + `<end>`.
    pub tokens: Vec<u32>,
    /// The image's region features, `regions * dim` values.
    pub features: Vec<f32>,
}

/// A [`Split`] behind Burn's [`Dataset`] trait; items in caption order.
#[derive(Debug, Clone)]
pub struct SplitDataset {
    split: Arc<Split>,
}

impl SplitDataset {
    pub fn new(split: Arc<Split>) -> Self {
        Self { split }
    }

    /// A batcher for this split's feature shape.
    pub fn batcher(&self) -> CaptionBatcher {
        CaptionBatcher {
            regions: self.split.features.regions(),
            dim: self.split.features.dim(),
        }
    }

    fn item(&self, index: usize) -> Result<CaptionItem> {
        let tokens = self.split.tokens.get(index).cloned().ok_or_else(|| {
            DataError::invalid(
                &self.split.caps_path,
                format!(
                    "caption {index} requested, the split has {}",
                    self.split.len()
                ),
            )
        })?;
        let mut features = Vec::new();
        // Refuses NaN/±Inf, naming the file and the row.
        self.split
            .features
            .gather(&[self.split.image_row(index)], &mut features)?;
        Ok(CaptionItem {
            caption: index,
            tokens,
            features,
        })
    }
}

impl Dataset<CaptionItem> for SplitDataset {
    fn get(&self, index: usize) -> std::result::Result<CaptionItem, DatasetError> {
        self.item(index).map_err(DatasetError::new)
    }

    fn len(&self) -> usize {
        self.split.len()
    }
}

/// A batch as the model takes it: pair `i` is (image `i`, caption `i`).
#[derive(Debug, Clone)]
pub struct CaptionBatch {
    /// Region features `[batch, regions, dim]`.
    pub images: Tensor<3>,
    /// Padded token ids (`Rcar::encode_tokens`).
    pub captions: TokenBatch,
    /// The split's caption index of each pair.
    pub indices: Vec<usize>,
}

/// Orders a batch longest caption first, as the official collate does, and builds its tensors.
#[derive(Debug, Clone, Copy)]
pub struct CaptionBatcher {
    regions: usize,
    dim: usize,
}

impl Batcher<CaptionItem, CaptionBatch> for CaptionBatcher {
    fn batch(&self, mut items: Vec<CaptionItem>, device: &Device) -> CaptionBatch {
        items.sort_by_key(|item| std::cmp::Reverse(item.tokens.len()));
        let shape = [items.len(), self.regions, self.dim];
        let features: Vec<f32> = items
            .iter()
            .flat_map(|i| i.features.iter().copied())
            .collect();
        let tokens: Vec<Vec<u32>> = items.iter().map(|i| i.tokens.clone()).collect();
        CaptionBatch {
            images: Tensor::from_data(TensorData::new(features, shape), device),
            captions: TokenBatch::pad(&tokens),
            indices: items.iter().map(|i| i.caption).collect(),
        }
    }
}
