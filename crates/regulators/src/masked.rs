//! Reductions over query tokens that ignore padding, shared by regulators and backbones.

use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Tensor};

/// Large negative logit for masked positions: −∞ would turn fully masked rows into NaN.
pub const MASKED_LOGIT: f64 = -1e9;

/// Mean over dim 1 of `x: [n, q, d]` counting only tokens where `valid: [n, q]` is true.
pub fn masked_mean(x: Tensor<3>, valid: Option<&Tensor<2, Bool>>) -> Tensor<2> {
    match valid {
        None => x.mean_dim(1).squeeze_dim(1),
        Some(valid) => {
            let w = valid.clone().float().unsqueeze_dim::<3>(2);
            let count = w.clone().sum_dim(1);
            (x * w).sum_dim(1).div(count).squeeze_dim(1)
        }
    }
}

/// Softmax over dim 1 of `logits: [n, q]`, padded tokens getting zero weight.
pub fn masked_softmax(logits: Tensor<2>, valid: Option<&Tensor<2, Bool>>) -> Tensor<2> {
    let logits = match valid {
        None => logits,
        Some(valid) => logits.mask_fill(valid.clone().bool_not(), MASKED_LOGIT),
    };
    softmax(logits, 1)
}
