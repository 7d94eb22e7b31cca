//! The cross-attention unit CA(Q, C, m, λ) (official `cross_attention`, SCAN's clipped-l2norm
//! attention) with RCR's per-token channel factors and temperature.

use burn::tensor::activation::{leaky_relu, softmax};
use burn::tensor::{Bool, Tensor};
use rcar_regulators::masked::MASKED_LOGIT;
use rcar_regulators::norm::l2norm;
use rcar_regulators::{AttentionFactors, Temperature};

/// The attention weights α `[n, q, c]`: each query token's distribution over the context items.
///
/// Scores use the channel-scaled query Q ⊙ m, go through LeakyReLU(0.1), are l2-normalised *across
/// query tokens* for each context item, scaled by λ and soft-maxed over the context.
/// `context_valid: [n, c]` masks padded context items (words, in i2t).
pub fn attention_weights(
    query: Tensor<3>,
    context: Tensor<3>,
    factors: &AttentionFactors,
    context_valid: Option<&Tensor<2, Bool>>,
) -> Tensor<3> {
    let scaled = match &factors.channel {
        Some(m) => query * m.clone(),
        None => query,
    };
    let scores = leaky_relu(context.matmul(scaled.swap_dims(1, 2)), 0.1); // [n, c, q]
    let logits = l2norm(scores).swap_dims(1, 2); // [n, q, c]
    let logits = match &factors.temperature {
        Temperature::Scalar(l) => logits.mul_scalar(*l),
        Temperature::PerToken(l) => logits * l.clone(),
    };
    let logits = match context_valid {
        Some(valid) => {
            let [n, q, c] = logits.dims();
            let padded = valid
                .clone()
                .bool_not()
                .unsqueeze_dim::<3>(1)
                .expand([n, q, c]);
            logits.mask_fill(padded, MASKED_LOGIT)
        }
        None => logits,
    };
    softmax(logits, 2)
}

/// The attended context A `[n, q, E]`: l2norm(α · C).
pub fn cross_attention(
    query: Tensor<3>,
    context: Tensor<3>,
    factors: &AttentionFactors,
    context_valid: Option<&Tensor<2, Bool>>,
) -> Tensor<3> {
    let alpha = attention_weights(query, context.clone(), factors, context_valid);
    l2norm(alpha.matmul(context))
}
