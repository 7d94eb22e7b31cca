//! The norms of the official code, with gradients that stay finite on exactly-zero vectors.
//!
//! Padded tokens are exact zero vectors; √(Σx²) has an infinite derivative there, and 0·∞ = NaN
//! would poison every gradient in the batch. Adding 1e-30 under the root changes no f32 value that
//! matters (it is below the precision of any non-zero Σx² of float32 inputs) and keeps the
//! derivative finite.

use burn::tensor::Tensor;

const UNDER_ROOT: f64 = 1e-30;
const EPS: f64 = 1e-8;

/// ‖x‖₂ over the last axis, keeping the axis.
pub fn norm<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    norm_dim(x, D - 1)
}

fn norm_dim<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    root(x.powi_scalar(2).sum_dim(dim))
}

/// √(Σx² + 1e-30): the one place the finite-gradient term goes under the root.
fn root<const D: usize>(squares: Tensor<D>) -> Tensor<D> {
    squares.add_scalar(UNDER_ROOT).sqrt()
}

/// x / (‖x‖ + 1e-8) over the last axis (the epsilon is added to the norm, as the official code does).
pub fn l2norm<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    l2norm_dim(x, D - 1)
}

/// [`l2norm`] over axis `dim`.
pub fn l2norm_dim<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let n = norm_dim(x.clone(), dim);
    x / n.add_scalar(EPS)
}

/// Cosine over the last axis, (a·b) / max(‖a‖‖b‖, 1e-8); the axis is removed.
pub fn cosine<const D: usize, const D2: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D2> {
    let dot = (a.clone() * b.clone()).sum_dim(D - 1);
    let den = (norm(a) * norm(b)).clamp_min(EPS);
    (dot / den).squeeze_dim(D - 1)
}

/// 1 / (‖x‖ + 1e-8) from ‖x‖² computed another way (a Gram matrix, say), so that [`l2norm`] can
/// be folded into a product's weights instead of taking passes over a large x. Rounding can make
/// such a ‖x‖² slightly negative: it is clamped at 0.
pub fn inverse_norm_from_squares<const D: usize>(squares: Tensor<D>) -> Tensor<D> {
    root(squares.clamp_min(0.0)).add_scalar(EPS).recip()
}
