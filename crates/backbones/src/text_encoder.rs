//! The text encoder (official `EncoderText`): word embedding with dropout 0.4, a bidirectional GRU
//! whose two directions are averaged, l2norm per token, padded positions exactly zero.
//!
//! PyTorch runs the GRU on packed sequences: the backward direction of each caption starts at that
//! caption's own last token. Here each caption is reversed within its own length, run forward, and
//! reversed back; reversing the padded row instead would feed the pads first and change every state.

use crate::gru::GruDirection;
use burn::module::Module;
use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Embedding};
use burn::tensor::{Bool, Device, Distribution, Int, Tensor, TensorData};
use rcar_regulators::norm::l2norm;

#[derive(Module, Debug)]
pub struct TextEncoder {
    /// `txt_enc.embed`
    pub embed: Embedding,
    pub dropout: Dropout,
    /// `txt_enc.rnn.*_l0`
    pub gru_forward: GruDirection,
    /// `txt_enc.rnn.*_l0_reverse`
    pub gru_backward: GruDirection,
}

impl TextEncoder {
    pub fn new(
        vocab_size: usize,
        word_dim: usize,
        embed_size: usize,
        dropout: f64,
        device: &Device,
    ) -> Self {
        let weight = Tensor::random(
            [vocab_size, word_dim],
            Distribution::Uniform(-0.1, 0.1),
            device,
        );
        Self {
            embed: Embedding {
                weight: Param::from_tensor(weight),
            },
            dropout: DropoutConfig::new(dropout).init(),
            gru_forward: GruDirection::new(word_dim, embed_size, device),
            gru_backward: GruDirection::new(word_dim, embed_size, device),
        }
    }

    /// `ids: [B, T]` (padded with 0) and the real lengths → `[B, T, E]`, zero beyond each length.
    pub fn forward(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> Tensor<3> {
        let [_, t] = ids.dims();
        let device = ids.device();
        let x = self.dropout.forward(self.embed.forward(ids));
        let reverse = reversal_index(lengths, t, &device);
        let forward = self.gru_forward.forward(x.clone());
        let backward = reversed(self.gru_backward.forward(reversed(x, &reverse)), &reverse);
        let words = l2norm((forward + backward).div_scalar(2.0));
        let valid = length_mask(lengths, t, &device)
            .float()
            .unsqueeze_dim::<3>(2);
        words * valid
    }
}

/// Per-row index mapping position t to L−1−t inside the caption (identity on the padding).
/// Applying it twice is the identity, so it both reverses and restores.
fn reversal_index(lengths: &[usize], t: usize, device: &Device) -> Tensor<2, Int> {
    let idx: Vec<i64> = lengths
        .iter()
        .flat_map(|&len| {
            (0..t).map(move |i| {
                if i < len {
                    (len - 1 - i) as i64
                } else {
                    i as i64
                }
            })
        })
        .collect();
    Tensor::from_data(TensorData::new(idx, [lengths.len(), t]), device)
}

/// Reverses (or restores) each row of `x: [B, T, D]` within its caption's length.
fn reversed(x: Tensor<3>, index: &Tensor<2, Int>) -> Tensor<3> {
    let dims = x.dims();
    x.gather(1, index.clone().unsqueeze_dim::<3>(2).expand(dims))
}

/// `[B, T]`, true at real tokens.
pub fn length_mask(lengths: &[usize], t: usize, device: &Device) -> Tensor<2, Bool> {
    let mask: Vec<bool> = lengths
        .iter()
        .flat_map(|&len| (0..t).map(move |i| i < len))
        .collect();
    Tensor::from_data(TensorData::new(mask, [lengths.len(), t]), device)
}
