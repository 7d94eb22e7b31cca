//! SGR, SGRAF's similarity graph reasoning (`GraphReasoning`, applied `sgr_step` times with its own
//! weights each): edges A = softmax over the valid nodes of (W_q X)(W_k X)ᵀ — no 1/√d — then
//! X ← ReLU(W_g (A X)). No residual, no normalisation; the host reads node 0 (the global one).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Bool, Device, Tensor};
use rcar_regulators::init::xavier_linear;
use rcar_regulators::masked::MASKED_LOGIT;

#[derive(Module, Debug)]
pub struct GraphReasoning {
    /// `graph_query_w`: S → S
    pub query: Linear,
    /// `graph_key_w`: S → S
    pub key: Linear,
    /// `sim_graph_w`: S → S
    pub update: Linear,
}

impl GraphReasoning {
    pub fn new(sim_dim: usize, device: &Device) -> Self {
        Self {
            query: xavier_linear(sim_dim, sim_dim, device),
            key: xavier_linear(sim_dim, sim_dim, device),
            update: xavier_linear(sim_dim, sim_dim, device),
        }
    }

    /// Nodes `[P, K, S]` after one step. Invalid nodes are masked as keys; their own rows are
    /// computed but never read.
    pub fn forward(&self, nodes: Tensor<3>, valid: &Tensor<2, Bool>) -> Tensor<3> {
        let [p, k, _] = nodes.dims();
        let query = self.query.forward(nodes.clone());
        let key = self.key.forward(nodes.clone());
        let logits = query.matmul(key.swap_dims(1, 2));
        let padded = valid
            .clone()
            .bool_not()
            .reshape([p, 1, k])
            .expand([p, k, k]);
        let edges = softmax(logits.mask_fill(padded, MASKED_LOGIT), 2);
        relu(self.update.forward(edges.matmul(nodes)))
    }
}
