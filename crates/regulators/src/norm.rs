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

/// [`l2norm`] of each row of `bias.len()` values after adding `bias`, in place: a layer's output
/// normalised in the CPU's fused pass. Inlined (as are the two below) into the vectorised body
/// that calls it, so that it is compiled for its vector unit.
#[inline(always)]
pub fn l2norm_rows_with_bias(values: &mut [f32], bias: &[f32]) {
    for row in values.chunks_exact_mut(bias.len().max(1)) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        l2norm_in_place(row);
    }
}

/// [`l2norm`] of one vector, in place.
#[inline(always)]
pub fn l2norm_in_place(x: &mut [f32]) {
    let norm = (dot(x, x) + UNDER_ROOT as f32).sqrt() + EPS as f32;
    x.iter_mut().for_each(|v| *v /= norm);
}

/// Σ a·b in sixteen running sums, so that the loop vectorises (one running sum would chain every
/// addition on the previous one).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (xs, ys) in a_chunks.zip(b_chunks) {
        for ((s, x), y) in sums.iter_mut().zip(xs).zip(ys) {
            *s += x * y;
        }
    }
    sums.iter().sum::<f32>() + tail
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
