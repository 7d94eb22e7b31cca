//! The hinge triplet loss (spec §3.3), summed over the batch, over all negatives (warm-up) or the
//! hardest one per query.

use burn::tensor::{Bool, Int, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossMode {
    /// Every negative contributes (the warm-up epochs).
    Sum,
    /// Only the hardest negative of each query (VSE++ "max violation").
    Hardest,
}

/// Loss `[1]` of a batch's scores `[B, B]`, rows images, columns captions, positives on the diagonal.
pub fn hinge(scores: Tensor<2>, margin: f64, mode: LossMode) -> Tensor<1> {
    let [b, _] = scores.dims();
    let device = scores.device();
    let eye: Tensor<2, Bool> = Tensor::<2, Int>::eye(b, &device).equal_elem(1);
    // The positive score of each row, [B, 1].
    let diag = scores
        .clone()
        .mask_fill(eye.clone().bool_not(), 0.0)
        .sum_dim(1);
    // Image i as query: its caption against the other captions of row i.
    let cost_s = (scores.clone() - diag.clone() + margin)
        .clamp_min(0.0)
        .mask_fill(eye.clone(), 0.0);
    // Caption j as query: its image against the other images of column j.
    let cost_im = (scores - diag.transpose() + margin)
        .clamp_min(0.0)
        .mask_fill(eye, 0.0);
    match mode {
        LossMode::Sum => cost_s.sum() + cost_im.sum(),
        LossMode::Hardest => cost_s.max_dim(1).sum() + cost_im.max_dim(0).sum(),
    }
}
