//! RAR, the Recurrent Aggregation Regulator (official module `Aggregation_regulator`).
//!
//! Refines the holistic alignment vector g by attention pooling over the per-token alignment
//! vectors U: keys K = tanh(W_k U), query G = tanh(W_q g) (both with dropout 0.4), weights
//! β = softmax_t(w_vᵀ(K_t ⊙ G)), g' = l2norm(Σ_t β_t U_t) — the raw U, not K, is pooled.

use crate::activation::tanh;
use crate::init::xavier_linear;
use crate::masked::masked_softmax;
use crate::norm::l2norm;
use crate::pair_dropout::{ModuleMasks, Stream};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::{Bool, Device, Tensor};

#[derive(Config, Debug)]
pub struct RarConfig {
    pub sim_dim: usize,
    #[config(default = 0.4)]
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct Rar {
    /// `rar_q_w`
    pub query: Linear,
    /// `rar_k_w`
    pub key: Linear,
    /// `rar_v_w`
    pub value: Linear,
    pub dropout: Dropout,
}

impl RarConfig {
    pub fn init(&self, device: &Device) -> Rar {
        let s = self.sim_dim;
        Rar {
            query: xavier_linear(s, s, device),
            key: xavier_linear(s, s, device),
            value: xavier_linear(s, 1, device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl Rar {
    /// The aggregation weights β `[n, q]` over the tokens of `u: [n, q, S]` given `g: [n, S]`.
    /// Dropout draws from the backend's generator, or from `masks` where given (pair-keyed, so
    /// that a pair scored twice in a step is dropped the same way both times).
    pub fn weights(
        &self,
        u: Tensor<3>,
        g: Tensor<2>,
        valid: Option<&Tensor<2, Bool>>,
        masks: Option<ModuleMasks>,
    ) -> Tensor<2> {
        let keys = tanh(self.key.forward(u));
        let query = tanh(self.query.forward(g)).unsqueeze_dim::<3>(1);
        let (keys, query) = match masks {
            Some(m) => (m.apply(Stream::Keys, keys), m.apply(Stream::Query, query)),
            None => (self.dropout.forward(keys), self.dropout.forward(query)),
        };
        let logits = self.value.forward(keys * query).squeeze_dim::<2>(2);
        masked_softmax(logits, valid)
    }

    /// g' from this step's alignment vectors and the previous holistic vector.
    pub fn forward(
        &self,
        u: Tensor<3>,
        g: Tensor<2>,
        valid: Option<&Tensor<2, Bool>>,
        masks: Option<ModuleMasks>,
    ) -> Tensor<2> {
        let beta = self
            .weights(u.clone(), g, valid, masks)
            .unsqueeze_dim::<3>(2);
        l2norm((beta * u).sum_dim(1).squeeze_dim(1))
    }
}
