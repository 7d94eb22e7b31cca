//! SGRAF's global image vector (`VisualSA`): attention pooling of the regions, guided by their mean.
//!
//! ℓ = Dropout(tanh(BN_R(W_l V))), g = Dropout(tanh(BN_E(W_g mean(V)))), weights = softmax over the
//! regions of w_cᵀ(ℓ ⊙ g), v̄ = l2norm(Σ weights · V): the raw regions are pooled. BN_R is a
//! BatchNorm over the R region *slots* (each slot's statistics over the batch and the channels).
//! Its text twin, `TextSA`, is the same pooling without BatchNorm: RAR's, so the host uses [`Rar`].
//!
//! [`Rar`]: rcar_regulators::Rar

use crate::batch_norm::BatchNorm;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use rcar_regulators::activation::tanh;
use rcar_regulators::init::xavier_linear;
use rcar_regulators::norm::l2norm;

#[derive(Module, Debug)]
pub struct VisualSa {
    /// `embedding_local.0`: E → E
    pub local: Linear,
    /// `embedding_local.1`: over the R region slots
    pub local_bn: BatchNorm,
    /// `embedding_global.0`: E → E
    pub global: Linear,
    /// `embedding_global.1`: over the E channels
    pub global_bn: BatchNorm,
    /// `embedding_common.0`: E → 1
    pub common: Linear,
    pub dropout: Dropout,
}

impl VisualSa {
    pub fn new(embed_size: usize, regions: usize, dropout: f64, device: &Device) -> Self {
        Self {
            local: xavier_linear(embed_size, embed_size, device),
            local_bn: BatchNorm::new(regions, device),
            global: xavier_linear(embed_size, embed_size, device),
            global_bn: BatchNorm::new(embed_size, device),
            common: xavier_linear(embed_size, 1, device),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// Regions `[n, R, E]` → global vectors `[n, E]`. On a training device the BatchNorms take the
    /// statistics of this image batch, so it runs once per batch, not per block of pairs.
    pub fn forward(&self, regions: Tensor<3>) -> Tensor<2> {
        let mean = regions.clone().mean_dim(1).squeeze_dim::<2>(1);
        let local = tanh(
            self.local_bn
                .forward_channels_first(self.local.forward(regions.clone())),
        );
        let global = tanh(self.global_bn.forward(self.global.forward(mean)));
        let local = self.dropout.forward(local);
        let global = self.dropout.forward(global).unsqueeze_dim::<3>(1);
        let logits = self.common.forward(local * global).squeeze_dim::<2>(2);
        let weights = softmax(logits, 1).unsqueeze_dim::<3>(2);
        l2norm((weights * regions).sum_dim(1).squeeze_dim(1))
    }
}
