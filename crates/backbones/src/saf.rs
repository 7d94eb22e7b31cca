//! SAF, SGRAF's similarity attention filtration (`AttentionFiltration`): a gate per alignment node,
//! σ(BN₁(w_aᵀ X_p + b_a)), l1-normalised over the valid nodes, pools the nodes; v = l2norm(Σ β_p X_p).
//!
//! BN₁ is one BatchNorm channel over all node scores of a call. SGRAF calls the module once per
//! caption, so its training statistics are per caption, over the caption's real nodes with every
//! image, and its running statistics move once per caption; in eval mode (running statistics)
//! blocks of many captions give the same numbers.

use crate::batch_norm::BatchNorm;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Bool, Device, Tensor};
use rcar_regulators::init::xavier_linear;
use rcar_regulators::norm::l2norm;

#[derive(Module, Debug)]
pub struct AttentionFiltration {
    /// `attn_sim_w`: S → 1
    pub score: Linear,
    /// `bn`: BatchNorm1d(1)
    pub bn: BatchNorm,
}

/// SGRAF's l1norm epsilon, added to the sum of the gates.
const L1_EPS: f64 = 1e-8;

impl AttentionFiltration {
    pub fn new(sim_dim: usize, device: &Device) -> Self {
        Self {
            score: xavier_linear(sim_dim, 1, device),
            bn: BatchNorm::new(1, device),
        }
    }

    /// The node weights β `[P, K]` of nodes `[P, K, S]`, zero at invalid nodes; the pairs are
    /// image-major over `captions` captions.
    pub fn weights(&self, nodes: Tensor<3>, valid: &Tensor<2, Bool>, captions: usize) -> Tensor<2> {
        let [p, k, _] = nodes.dims();
        let shape = [p / captions, captions, k];
        let valid = valid.clone().float();
        let scores = self.score.forward(nodes).reshape(shape);
        let scores = self.bn.forward_groups(scores, valid.clone().reshape(shape));
        let gates = sigmoid(scores).reshape([p, k]) * valid;
        let total = gates.clone().sum_dim(1).add_scalar(L1_EPS);
        gates / total
    }

    /// The filtered alignment `[P, S]` (pairs image-major over `captions` captions).
    pub fn forward(&self, nodes: Tensor<3>, valid: &Tensor<2, Bool>, captions: usize) -> Tensor<2> {
        let beta = self
            .weights(nodes.clone(), valid, captions)
            .unsqueeze_dim::<3>(2);
        l2norm((beta * nodes).sum_dim(1).squeeze_dim(1))
    }
}
