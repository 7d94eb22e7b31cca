//! Alignment vectors (official `Alignment_vector`, from SGRAF): U = l2norm(W · (Q − A)² + b), one
//! S-dimensional vector per query token describing *how* it aligns, not just how much.

use crate::attention::cross_attention;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Bool, Device, Tensor};
use rcar_regulators::init::xavier_linear;
use rcar_regulators::norm::l2norm;
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

    /// One attention pass and its alignment vectors `[n, q, S]`. Only the attention scores see the
    /// channel factors; the difference uses the unscaled query.
    pub fn forward(
        &self,
        query: Tensor<3>,
        context: Tensor<3>,
        factors: &AttentionFactors,
        context_valid: Option<&Tensor<2, Bool>>,
    ) -> Tensor<3> {
        let attended = cross_attention(query.clone(), context, factors, context_valid);
        l2norm(self.transform.forward((query - attended).powi_scalar(2)))
    }
}
