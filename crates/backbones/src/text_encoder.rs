//! The text encoder (official `EncoderText`): word embedding with dropout 0.4, a bidirectional GRU
//! whose two directions are averaged, l2norm per token, padded positions exactly zero.
//!
//! PyTorch runs the GRU on packed sequences: the backward direction of each caption starts at that
//! caption's own last token ([`GruDirection::forward_reversed`]).

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
        let (forward, backward) = self.directions(x, lengths);
        let words = l2norm((forward + backward).div_scalar(2.0));
        let valid = length_mask(lengths, t, &device)
            .float()
            .unsqueeze_dim::<3>(2);
        words * valid
    }

    /// The GRU's two directions over `x`. On the CPU without a graph they run side by side: each
    /// step of one direction is a fork and join over the cores (a `[B, H]·[H, 3H]` product, then
    /// the rows' gates), and the other direction's work fills the gaps. Alternated with the two in
    /// turn in one process, batch 128 at the paper's size on 2 cores: 1.07× and 1.11× faster. Under
    /// a graph (training) they stay in turn: only the path without one was measured.
    fn directions(&self, x: Tensor<3>, lengths: &[usize]) -> (Tensor<3>, Tensor<3>) {
        #[cfg(feature = "flex")]
        if rcar_regulators::cpu::plain(&x).is_some() {
            return rayon::join(
                || self.gru_forward.forward(x.clone()),
                || self.gru_backward.forward_reversed(x.clone(), lengths),
            );
        }
        (
            self.gru_forward.forward(x.clone()),
            self.gru_backward.forward_reversed(x, lengths),
        )
    }
}

/// `[B, T]`, true at real tokens.
pub fn length_mask(lengths: &[usize], t: usize, device: &Device) -> Tensor<2, Bool> {
    let mask: Vec<bool> = lengths
        .iter()
        .flat_map(|&len| (0..t).map(move |i| i < len))
        .collect();
    Tensor::from_data(TensorData::new(mask, [lengths.len(), t]), device)
}
