//! RAR, the Recurrent Aggregation Regulator (official module `Aggregation_regulator`).
//!
//! Refines the holistic alignment vector g by attention pooling over the per-token alignment
//! vectors U: keys K = tanh(W_k U), query G = tanh(W_q g) (both with dropout 0.4), weights
//! β = softmax_t(w_vᵀ(K_t ⊙ G)), g' = l2norm(Σ_t β_t U_t) — the raw U, not K, is pooled.

#[cfg(feature = "flex")]
use crate::activation::tanh_value;
use crate::init::xavier_linear;
use crate::linear::linear_tanh;
use crate::masked::masked_softmax;
#[cfg(feature = "flex")]
use crate::masked::MASKED_LOGIT;
use crate::norm::l2norm;
use crate::pair_dropout::{ModuleMasks, Stream};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
#[cfg(feature = "flex")]
use burn::tensor::TensorData;
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
        let keys = linear_tanh(&self.key, u);
        let query = linear_tanh(&self.query, g).unsqueeze_dim::<3>(1);
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
        #[cfg(feature = "flex")]
        if let Some(pooled) = self.forward_on_cpu(&u, &g, valid, masks) {
            return pooled;
        }
        let beta = self
            .weights(u.clone(), g, valid, masks)
            .unsqueeze_dim::<3>(2);
        l2norm((beta * u).sum_dim(1).squeeze_dim(1))
    }

    /// [`Rar::forward`] on the CPU without a graph (so without the backend's dropout; pair-keyed
    /// masks, a training step's scoring pass, are applied): the keys' product, then per pair one
    /// pass over its keys for the logits (bias, tanh, masks, the query and w_v folded in) and one
    /// over its vectors for the pooled g', instead of seven passes over `[n, q, S]` tensors.
    /// `None` where a tensor is not such a CPU tensor.
    #[cfg(feature = "flex")]
    fn forward_on_cpu(
        &self,
        u: &Tensor<3>,
        g: &Tensor<2>,
        valid: Option<&Tensor<2, Bool>>,
        masks: Option<ModuleMasks>,
    ) -> Option<Tensor<2>> {
        use crate::cpu::{plain, values, vectorised};
        let held = [
            plain(u)?,
            plain(g)?,
            plain(&self.key.bias.as_ref()?.val())?,
            plain(&self.value.weight.val())?,
            plain(&self.value.bias.as_ref()?.val())?,
        ];
        let [n, q, s] = u.dims();
        let query = linear_tanh(&self.query, g.clone()); // [n, S]
        let keys = u.clone().reshape([n * q, s]).matmul(self.key.weight.val());
        let (query, keys) = (plain(&query)?, plain(&keys)?);
        let [us, _, key_bias, w_v, b_v] = held.each_ref().map(values);
        let (queries, keys) = (values(&query), values(&keys));
        let valid = valid.map(|v| v.clone().into_data().iter::<bool>().collect::<Vec<_>>());
        let device = u.device();
        let mask = |stream, rows| {
            let m = masks.filter(|m| m.dropout.prob != 0.0)?;
            Some(m.dropout.mask(m.module, stream, m.pairs, rows, s))
        };
        let (key_mask, query_mask) = (mask(Stream::Keys, q), mask(Stream::Query, 1));
        let mut pooled = vec![0f32; n * s];
        let pairs = Pairs {
            items: q,
            vectors: &us,
            keys: &keys,
            queries: &queries,
            valid: valid.as_deref(),
            key_mask: key_mask.as_deref(),
            query_mask: query_mask.as_deref(),
        };
        let layers = (&*key_bias, &*w_v, b_v[0]);
        vectorised(
            #[inline(always)]
            || pool(&pairs, layers, &mut pooled),
        );
        Some(Tensor::from_data(TensorData::new(pooled, [n, s]), &device))
    }
}

/// One block's RAR inputs on the CPU, `[n, q, S]` row-major (`queries`: `[n, S]`).
#[cfg(feature = "flex")]
struct Pairs<'a> {
    items: usize,
    vectors: &'a [f32],
    /// W_k u without its bias.
    keys: &'a [f32],
    /// tanh(W_q g + b_q).
    queries: &'a [f32],
    valid: Option<&'a [bool]>,
    /// The pair-keyed dropout's scaled keep-masks of the keys `[n, q, S]` and the query `[n, S]`.
    key_mask: Option<&'a [f32]>,
    query_mask: Option<&'a [f32]>,
}

/// RAR's weights and pooled, l2-normalised g' of every pair into `pooled` (`[n, S]`, zeroed), with
/// `(b_k, w_v, b_v)`. Inlined into [`crate::cpu::vectorised`]'s body, so that it is compiled for
/// its vector unit.
#[cfg(feature = "flex")]
#[inline(always)]
fn pool(pairs: &Pairs, (key_bias, w_v, b_v): (&[f32], &[f32], f32), pooled: &mut [f32]) {
    use crate::norm::{dot, l2norm_in_place};
    let (q, s) = (pairs.items, key_bias.len());
    let (mut weights, mut row, mut beta) = (vec![0f32; s], vec![0f32; s], vec![0f32; q]);
    for (p, out) in pooled.chunks_exact_mut(s.max(1)).enumerate() {
        // logit_t = w_vᵀ(tanh(W_k u_t + b_k) ⊙ G) + b_v = tanh(W_k u_t + b_k)ᵀ(G ⊙ w_v) + b_v
        let g = &pairs.queries[p * s..][..s];
        weights
            .iter_mut()
            .zip(g)
            .zip(w_v)
            .for_each(|((w, g), v)| *w = g * v);
        if let Some(mask) = pairs.query_mask {
            weights
                .iter_mut()
                .zip(&mask[p * s..][..s])
                .for_each(|(w, m)| *w *= m);
        }
        for (t, logit) in beta.iter_mut().enumerate() {
            let at = (p * q + t) * s;
            let k = &pairs.keys[at..][..s];
            row.iter_mut()
                .zip(k)
                .zip(key_bias)
                .for_each(|((r, k), b)| *r = tanh_value(k + b));
            if let Some(mask) = pairs.key_mask {
                row.iter_mut()
                    .zip(&mask[at..][..s])
                    .for_each(|(r, m)| *r *= m);
            }
            *logit = match pairs.valid {
                Some(valid) if !valid[p * q + t] => MASKED_LOGIT as f32,
                _ => dot(&row, &weights) + b_v,
            };
        }
        let max = beta.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        beta.iter_mut().for_each(|b| *b = (*b - max).exp());
        let total: f32 = beta.iter().sum();
        for (t, b) in beta.iter().enumerate() {
            let weight = b / total;
            let u_t = &pairs.vectors[(p * q + t) * s..][..s];
            out.iter_mut().zip(u_t).for_each(|(o, u)| *o += weight * u);
        }
        l2norm_in_place(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PairDropout;
    use burn::module::{Module, Param};
    use burn::tensor::Distribution;

    /// The CPU's fused RAR without a graph against the Burn expression (a graph takes that route:
    /// the vectors require a gradient), with padded items, without dropout and with pair-keyed
    /// masks (both deterministic).
    #[test]
    fn the_fused_pooling_matches_the_burn_expression() {
        let (n, q, s) = (3, 4, 6);
        let device = Device::flex();
        let mut rar = RarConfig::new(s).with_dropout(0.0).init(&device);
        // Non-zero biases (the official init's are zero), so that each one is checked.
        for (layer, width) in [(&mut rar.query, s), (&mut rar.key, s), (&mut rar.value, 1)] {
            let bias = Tensor::random([width], Distribution::Normal(0.0, 0.5), &device);
            layer.bias = Some(Param::from_tensor(bias));
        }
        let u = Tensor::<3>::random([n, q, s], Distribution::Normal(0.0, 1.0), &device);
        let g = Tensor::<2>::random([n, s], Distribution::Normal(0.0, 1.0), &device);
        let lengths = [4, 2, 1];
        let valid = Tensor::<2, Bool>::from_data(
            TensorData::new(
                (0..n * q)
                    .map(|i| i % q < lengths[i / q])
                    .collect::<Vec<_>>(),
                [n, q],
            ),
            &device,
        );
        let values = |t: Tensor<2>| t.into_data().try_into_vec::<f32>().unwrap();
        let graph = Device::flex().autodiff();
        let on_graph = rar.clone().to_device(&graph);
        let dropout = PairDropout { prob: 0.4, seed: 5 };
        let ids = [(0, 3), (1, 3), (2, 7)];
        let masks = ModuleMasks {
            dropout: &dropout,
            pairs: &ids,
            module: 1,
        };
        for (valid, masks) in [
            (None, None),
            (Some(&valid), None),
            (Some(&valid), Some(masks)),
        ] {
            let fused = values(rar.forward(u.clone(), g.clone(), valid, masks));
            let expression = values(
                on_graph.forward(
                    Tensor::from_data(u.to_data(), &graph).require_grad(),
                    Tensor::from_data(g.to_data(), &graph),
                    valid
                        .map(|v| Tensor::from_data(v.to_data(), &graph))
                        .as_ref(),
                    masks,
                ),
            );
            for (a, b) in fused.iter().zip(&expression) {
                let what = format!("valid: {valid:?}, masks: {}", masks.is_some());
                assert!((a - b).abs() <= 1e-6, "{a} vs {b} ({what})");
            }
        }
    }
}
