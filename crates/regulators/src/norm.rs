//! The norms of the official code, with gradients that stay finite on exactly-zero vectors.
//!
//! Padded tokens are exact zero vectors; √(Σx²) has an infinite derivative there, and 0·∞ = NaN
//! would poison every gradient in the batch. Adding 1e-30 under the root changes no f32 value that
//! matters (it is below the precision of any non-zero Σx² of float32 inputs) and keeps the
//! derivative finite.

use burn::tensor::Tensor;
#[cfg(feature = "flex")]
use burn::tensor::TensorData;

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
    let [ab] = sums(a, b, |x, y| [x * y]);
    ab
}

/// The `N` sums Σ f(a, b) over the pairs of `a` and `b` in one pass, each in sixteen running sums
/// (see [`dot`]), the tail past the last sixteen added after them.
#[inline(always)]
fn sums<const N: usize>(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> [f32; N]) -> [f32; N] {
    const LANES: usize = 16;
    let mut lanes = [[0f32; LANES]; N];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut tail = [0f32; N];
    for (x, y) in a_chunks.remainder().iter().zip(b_chunks.remainder()) {
        tail.iter_mut().zip(f(*x, *y)).for_each(|(t, v)| *t += v);
    }
    for (xs, ys) in a_chunks.zip(b_chunks) {
        for (l, (x, y)) in xs.iter().zip(ys).enumerate() {
            lanes.iter_mut().zip(f(*x, *y)).for_each(|(s, v)| s[l] += v);
        }
    }
    std::array::from_fn(|i| lanes[i].iter().sum::<f32>() + tail[i])
}

/// Cosine over the last axis, (a·b) / max(‖a‖‖b‖, 1e-8); the axis is removed. `a` may hold
/// fewer leading items than `b` (size-1 leading dimensions), repeated over them.
///
/// On the CPU without a graph one pass over each pair of rows sums a·b, a·a and b·b. As Burn ops
/// it is six passes over `[…, E]` tensors (a product, two squares, three sums): 0.99 against
/// 0.20 ms for an i2t block's `[16, 36, 1024]` on one core, about 3% of an `only_rcr` 2 block.
pub fn cosine<const D: usize, const D2: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D2> {
    #[cfg(feature = "flex")]
    if let Some(c) = cosine_on_cpu(&a, &b) {
        return c;
    }
    let dot = (a.clone() * b.clone()).sum_dim(D - 1);
    let den = (norm(a) * norm(b)).clamp_min(EPS);
    (dot / den).squeeze_dim(D - 1)
}

/// [`cosine`] of float32 CPU tensors without a graph, `None` for any other, or where `a` does not
/// repeat over `b`'s leading dimensions.
#[cfg(feature = "flex")]
fn cosine_on_cpu<const D: usize, const D2: usize>(
    a: &Tensor<D>,
    b: &Tensor<D>,
) -> Option<Tensor<D2>> {
    use crate::cpu::{plain, values, vectorised};
    let (da, db) = (a.dims(), b.dims());
    // a's leading size-1 dimensions (never its last) repeat it over b's.
    let lead = da[..D - 1].iter().take_while(|&&d| d == 1).count();
    let e = db[D - 1];
    if D2 + 1 != D || da[lead..] != db[lead..] || e == 0 {
        return None;
    }
    let (pa, pb) = (plain(a)?, plain(b)?);
    let (xs, ys) = (values(&pa), values(&pb));
    let mut out = vec![0f32; ys.len() / e];
    if !xs.is_empty() {
        vectorised(
            #[inline(always)]
            || {
                let rows = ys
                    .chunks_exact(xs.len())
                    .flat_map(|ys| xs.chunks_exact(e).zip(ys.chunks_exact(e)));
                for ((x, y), o) in rows.zip(out.iter_mut()) {
                    let [xy, xx, yy] = sums(x, y, |x, y| [x * y, x * x, y * y]);
                    let root = |s: f32| (s + UNDER_ROOT as f32).sqrt();
                    *o = xy / (root(xx) * root(yy)).max(EPS as f32);
                }
            },
        );
    }
    let shape: [usize; D2] = std::array::from_fn(|i| db[i]);
    Some(Tensor::from_data(TensorData::new(out, shape), &a.device()))
}

/// 1 / (‖x‖ + 1e-8) from ‖x‖² computed another way (a Gram matrix, say), so that [`l2norm`] can
/// be folded into a product's weights instead of taking passes over a large x. Rounding can make
/// such a ‖x‖² slightly negative: it is clamped at 0.
pub fn inverse_norm_from_squares<const D: usize>(squares: Tensor<D>) -> Tensor<D> {
    root(squares.clamp_min(0.0)).add_scalar(EPS).recip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// The CPU's one-pass cosine against the Burn expression it replaces, with the query repeated
    /// over two groups, a zero row (a padded token) and rows of a length that is not a multiple of
    /// the sixteen running sums.
    #[test]
    fn the_one_pass_cosine_is_the_burn_expressions() {
        let device = Device::flex();
        let a = Tensor::<4>::random([1, 3, 4, 37], Distribution::Normal(0.0, 1.0), &device);
        let b = Tensor::<4>::random([2, 3, 4, 37], Distribution::Normal(0.0, 1.0), &device)
            .slice_assign(
                [0..1, 1..2, 2..3, 0..37],
                Tensor::zeros([1, 1, 1, 37], &device),
            );
        assert!(
            cosine_on_cpu::<4, 3>(&a, &b).is_some(),
            "the CPU pass takes these"
        );
        let one = Tensor::<4>::ones([1, 1, 1, 1], &device);
        assert!(
            cosine_on_cpu::<4, 3>(&one, &b).is_none(),
            "nor one repeated along the axis"
        );
        let fused: Tensor<3> = cosine(a.clone(), b.clone());
        let dot = (a.clone() * b.clone()).sum_dim(3);
        let by_ops: Tensor<3> = (dot / (norm(a) * norm(b)).clamp_min(EPS)).squeeze_dim(3);
        let [fused, by_ops] = [fused, by_ops].map(|t| t.into_data().try_into_vec::<f32>().unwrap());
        assert_eq!(fused.len(), 2 * 3 * 4);
        assert_eq!(fused[4 + 2], 0.0, "a zero row's cosine is 0");
        for (f, o) in fused.iter().zip(&by_ops) {
            assert!((f - o).abs() < 1e-6, "{f} against {o}");
        }
    }
}
