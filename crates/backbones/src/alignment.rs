//! Alignment vectors (official `Alignment_vector`, from SGRAF): U = l2norm(W · (Q − A)² + b), one
//! S-dimensional vector per query token describing *how* it aligns, not just how much.

use crate::attention::cross_attention;
use crate::pairs::PairBatch;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use rcar_regulators::activation::squared_difference;
use rcar_regulators::cpu::vectorised;
use rcar_regulators::init::xavier_linear;
use rcar_regulators::linear::linear_then;
use rcar_regulators::norm::{l2norm, l2norm_rows_with_bias};
use rcar_regulators::AttentionFactors;

#[derive(Module, Debug)]
pub struct AlignmentVector {
    /// `sim_transform_w`: E → S
    pub transform: Linear,
}

impl AlignmentVector {
    pub fn new(embed_size: usize, sim_dim: usize, device: &Device) -> Self {
        Self {
            transform: xavier_linear(embed_size, sim_dim, device),
        }
    }

    /// One attention pass and its alignment vectors `[P, q, S]`. Only the attention scores see the
    /// channel factors; the difference uses the unscaled query.
    pub fn forward(&self, pairs: &PairBatch, factors: &AttentionFactors) -> Tensor<3> {
        let (g, n) = pairs.shape();
        let [_, q, e] = pairs.query.dims();
        let attended = cross_attention(pairs, factors).reshape([g, n, q, e]);
        let diff = squared_difference(pairs.query.clone(), attended);
        linear_then(
            &self.transform,
            diff.reshape([g * n, q, e]),
            |values, bias| {
                vectorised(
                    #[inline(always)]
                    || l2norm_rows_with_bias(values, bias),
                )
            },
            l2norm,
        )
    }
}
