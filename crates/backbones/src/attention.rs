//! The cross-attention unit CA(Q, C, m, λ) (official `cross_attention`, SCAN's clipped-l2norm
//! attention) with RCR's per-token channel factors and temperature, over a block of pairs.
//!
//! A block pairs every query item with every context item (group), so the context is never copied
//! per pair: the scores of the first pass are one GEMM `[n·q, E] × [E, G·c]`, later passes (whose
//! channel-scaled queries differ per pair) and the attended vectors are G batched GEMMs.

use crate::pairs::PairBatch;
use burn::tensor::activation::{leaky_relu, softmax};
use burn::tensor::Tensor;
use rcar_regulators::masked::MASKED_LOGIT;
use rcar_regulators::norm::{inverse_norm_from_squares, l2norm_dim};
use rcar_regulators::{AttentionFactors, Temperature};

/// The attention weights α `[P, q, c]`: each query token's distribution over the context items.
///
/// Scores use the channel-scaled query Q ⊙ m, go through LeakyReLU(0.1), are l2-normalised *across
/// query tokens* for each context item, scaled by λ and soft-maxed over the (valid) context.
pub fn attention_weights(pairs: &PairBatch, factors: &AttentionFactors) -> Tensor<3> {
    let [n, q, e] = pairs.query.dims();
    let [g, c, _] = pairs.context.dims();
    let scores = match &factors.channel {
        None => pairs
            .query
            .clone()
            .reshape([n * q, e])
            .matmul(pairs.context.clone().reshape([g * c, e]).transpose())
            .reshape([n * q, g, c])
            .swap_dims(0, 1),
        Some(m) => {
            let scaled = m.clone().reshape([g, n, q, e]) * pairs.query.clone().unsqueeze_dim(0);
            scaled
                .reshape([g, n * q, e])
                .matmul(pairs.context.clone().swap_dims(1, 2))
        }
    }; // [G, n·q, c]
    let scores = leaky_relu(scores, 0.1).reshape([g * n, q, c]);
    let logits = l2norm_dim(scores, 1);
    let logits = match &factors.temperature {
        Temperature::Scalar(l) => logits.mul_scalar(*l),
        Temperature::PerToken(l) => logits * l.clone(),
    };
    let logits = match &pairs.context_valid {
        Some(valid) => {
            let padded = valid
                .clone()
                .bool_not()
                .reshape([g, 1, 1, c])
                .expand([g, n, q, c])
                .reshape([g * n, q, c]);
            logits.mask_fill(padded, MASKED_LOGIT)
        }
        None => logits,
    };
    softmax(logits, 2)
}

/// The attended context A `[P, q, E]`: l2norm(α · C).
///
/// The norm comes from the context's Gram matrix, ‖α·C‖² = α (C Cᵀ) αᵀ, and scales α before the
/// product: small `[q, c]·[c, c]` products per pair instead of three element-wise passes (square,
/// sum, divide) over the `[P, q, E]` result, which dominate on the CPU backend.
pub fn cross_attention(pairs: &PairBatch, factors: &AttentionFactors) -> Tensor<3> {
    let [n, q, e] = pairs.query.dims();
    let [g, c, _] = pairs.context.dims();
    let alpha = attention_weights(pairs, factors).reshape([g, n * q, c]);
    let context = pairs.context.clone();
    let gram = context.clone().matmul(context.clone().swap_dims(1, 2)); // [G, c, c]
    let squares = (alpha.clone().matmul(gram) * alpha.clone()).sum_dim(2); // [G, n·q, 1]
    (alpha * inverse_norm_from_squares(squares))
        .matmul(context)
        .reshape([g * n, q, e])
}
