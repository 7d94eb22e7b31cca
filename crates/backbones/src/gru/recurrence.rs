//! The GRU recurrence on the CPU, forward and backward, over plain `f32` slices.
//!
//! Burn runs a GRU step as a dozen tensor ops, each a fresh `[B, 3H]` or `[B, H]` tensor and, on the
//! CPU backend, scalar sigmoid and tanh calls; with a graph, a dozen nodes more per step. Here a
//! step is one product `h·W_hh` (the `gemm` crate, as Burn's CPU backend calls it) and one
//! vectorised pass over the gates; the backward pass is the same shape in reverse, with the weight
//! gradient as one product over all steps at the end.
//!
//! Layouts: inputs and outputs batch-major as Burn holds them (`x: [B, T, 3H]`, the input projection
//! with its bias; `out: [B, T, H]`), the weight `[H, 3H]` (Burn's `Linear`, rows r | z | n as in
//! PyTorch), what the backward pass keeps time-major (`[T, B, H]`), so that each step reads one block.

use rayon::prelude::*;
use rcar_regulators::activation::tanh_value;
use rcar_regulators::cpu::vectorised;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub steps: usize,
    pub hidden: usize,
}

impl Dims {
    fn check(&self, x: &[f32], weight: &[f32], bias: &[f32], reverse: Option<&[usize]>) {
        let Dims {
            batch,
            steps,
            hidden,
        } = *self;
        assert_eq!(x.len(), batch * steps * 3 * hidden, "GRU input size");
        assert_eq!(weight.len(), hidden * 3 * hidden, "GRU weight size");
        assert_eq!(bias.len(), 3 * hidden, "GRU bias size");
        if let Some(lengths) = reverse {
            assert_eq!(lengths.len(), batch, "GRU lengths: one per row");
            assert!(
                lengths.iter().all(|&n| n <= steps),
                "GRU lengths: at most T"
            );
        }
    }
}

/// The gates of every step, time-major `[T, B, H]`: what the backward pass needs besides the
/// outputs (the previous state of a step is the output of the step before).
#[derive(Debug, Clone)]
pub struct Gates {
    reset: Vec<f32>,
    update: Vec<f32>,
    candidate: Vec<f32>,
    /// The hidden projection's n part (`W_hn·h + b_hn`), which the reset gate scales.
    hidden_n: Vec<f32>,
}

/// Gradients with respect to the input projection, the hidden weight and the hidden bias.
pub struct Grads {
    pub x: Vec<f32>,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A row-major matrix view: `rows × cols` at `data[i·row_stride + j]`.
struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> View<'a> {
    fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(
            rows == 0 || cols == 0 || (rows - 1) * row_stride + cols <= data.len(),
            "matrix view outside its slice"
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
        }
    }
}

/// `dst` (row-major, `lhs.rows × rhs.cols`) = `lhs · rhs`, or `+=` with `accumulate`.
fn product(dst: &mut [f32], accumulate: bool, lhs: View, rhs: View) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "product: inner sizes differ");
    assert!(dst.len() >= m * n, "product: destination too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // Small products cost less than waking the thread pool.
    let parallelism = if m * n * k >= 1 << 21 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the views were checked to lie inside their slices, the destination holds m × n
    // values at row stride n, and it does not alias the operands (a `&mut` beside two `&`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            1,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            1,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The transpose of the row-major `rows × cols` matrix `m`, on the thread pool in blocks of 64
/// output rows; each block reads bands of 16 input rows, and each column of a band is one 64-byte
/// run of the output.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const BAND: usize = 16;
    const BLOCK: usize = 64;
    assert_eq!(m.len(), rows * cols, "transpose: size");
    let mut t = vec![0.0f32; rows * cols];
    if t.is_empty() {
        return t;
    }
    t.par_chunks_mut(BLOCK * rows)
        .enumerate()
        .for_each(|(block, out)| {
            let j0 = block * BLOCK;
            for i0 in (0..rows).step_by(BAND) {
                let band = BAND.min(rows - i0);
                for (dj, column) in out.chunks_exact_mut(rows).enumerate() {
                    let dst = &mut column[i0..i0 + band];
                    for (r, d) in dst.iter_mut().enumerate() {
                        *d = m[(i0 + r) * cols + j0 + dj];
                    }
                }
            }
        });
    t
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    0.5 * tanh_value(0.5 * x) + 0.5
}

/// One unit of one step, PyTorch's GRU: from the input's and the state's projections (r, z, n
/// parts) and the previous state, the gates r, z, n and the new state.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell(xr: f32, xz: f32, xn: f32, hr: f32, hz: f32, hn: f32, h: f32) -> (f32, f32, f32, f32) {
    let r = sigmoid(xr + hr);
    let z = sigmoid(xz + hz);
    let n = tanh_value(xn + r * hn);
    (r, z, n, n + z * (h - n))
}

/// One row's gates of one step, as the forward pass writes them: r, z, n and `W_hn·h + b_hn`.
type Kept<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32], &'a mut [f32]);

/// Where step `step` of a row reads its input and writes its state: `step` itself, or with
/// `length` (the backward direction of a packed sequence) the row reversed within its length, the
/// padding after it left in place.
#[inline]
fn position(step: usize, length: Option<usize>) -> usize {
    match length {
        Some(n) if step < n => n - 1 - step,
        _ => step,
    }
}

/// Runs the recurrence from a zero state; returns `out: [B, T, H]` and, with `keep`, the gates.
/// With `reverse` (each row's length), every row runs from its last token to its first.
pub fn forward(
    dims: Dims,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    reverse: Option<&[usize]>,
    keep: bool,
) -> (Vec<f32>, Option<Gates>) {
    dims.check(x, weight, bias, reverse);
    let Dims {
        batch,
        steps,
        hidden,
    } = dims;
    let h3 = 3 * hidden;
    let length = |b: usize| reverse.map(|l| l[b]);
    let mut out = vec![0.0f32; batch * steps * hidden];
    // The running state `[B, H]`, contiguous for the product.
    let mut state = vec![0.0f32; batch * hidden];
    let mut projected = vec![0.0f32; batch * h3];
    let kept = || vec![0.0f32; steps * batch * hidden];
    let mut gates = keep.then(|| Gates {
        reset: kept(),
        update: kept(),
        candidate: kept(),
        hidden_n: kept(),
    });
    for step in 0..steps {
        for row in projected.chunks_exact_mut(h3) {
            row.copy_from_slice(bias);
        }
        if step > 0 {
            product(
                &mut projected,
                true,
                View::rows(&state, batch, hidden, hidden),
                View::rows(weight, hidden, h3, h3),
            );
        }
        // The rows' gate passes, on the thread pool: each row owns its state, its output row, its
        // projection and its gates of this step.
        let row = |b: usize, h: &mut [f32], hs: &[f32], o: &mut [f32], kept: Option<Kept>| {
            let at = position(step, length(b));
            let xs = &x[(b * steps + at) * h3..][..h3];
            // Every slice cut to the loop's length, so that the loop needs no bounds checks.
            let h = &mut h[..hidden];
            let (xr, xz, xn) = (
                &xs[..hidden],
                &xs[hidden..][..hidden],
                &xs[2 * hidden..][..hidden],
            );
            let (hr, hz, hn) = (
                &hs[..hidden],
                &hs[hidden..][..hidden],
                &hs[2 * hidden..][..hidden],
            );
            vectorised(
                #[inline(always)]
                || match kept {
                    None => {
                        for j in 0..hidden {
                            let (_, _, _, next) =
                                cell(xr[j], xz[j], xn[j], hr[j], hz[j], hn[j], h[j]);
                            h[j] = next;
                        }
                    }
                    Some((rs, zs, ns, hns)) => {
                        let (rs, zs, ns, hns) = (
                            &mut rs[..hidden],
                            &mut zs[..hidden],
                            &mut ns[..hidden],
                            &mut hns[..hidden],
                        );
                        for j in 0..hidden {
                            let (r, z, n, next) =
                                cell(xr[j], xz[j], xn[j], hr[j], hz[j], hn[j], h[j]);
                            h[j] = next;
                            rs[j] = r;
                            zs[j] = z;
                            ns[j] = n;
                            hns[j] = hn[j];
                        }
                    }
                },
            );
            o[at * hidden..][..hidden].copy_from_slice(h);
        };
        let rows = state
            .par_chunks_mut(hidden)
            .zip(projected.par_chunks(h3))
            .zip(out.par_chunks_mut(steps * hidden));
        match gates.as_mut() {
            None => rows
                .enumerate()
                .for_each(|(b, ((h, hs), o))| row(b, h, hs, o, None)),
            Some(g) => {
                let block = step * batch * hidden..(step + 1) * batch * hidden;
                let kept = (
                    g.reset[block.clone()].par_chunks_mut(hidden),
                    g.update[block.clone()].par_chunks_mut(hidden),
                    g.candidate[block.clone()].par_chunks_mut(hidden),
                    g.hidden_n[block].par_chunks_mut(hidden),
                )
                    .into_par_iter();
                rows.zip(kept)
                    .enumerate()
                    .for_each(|(b, (((h, hs), o), k))| row(b, h, hs, o, Some(k)));
            }
        }
    }
    (out, gates)
}

/// Back-propagates `grad: [B, T, H]` (the loss's gradient with respect to `out`) through the
/// recurrence whose forward pass (with the same `reverse`) gave `out` and `gates`.
pub fn backward(
    dims: Dims,
    out: &[f32],
    gates: &Gates,
    weight: &[f32],
    reverse: Option<&[usize]>,
    grad: &[f32],
) -> Grads {
    let Dims {
        batch,
        steps,
        hidden,
    } = dims;
    let h3 = 3 * hidden;
    assert_eq!(out.len(), batch * steps * hidden, "GRU output size");
    assert_eq!(grad.len(), out.len(), "GRU output gradient size");
    assert_eq!(weight.len(), hidden * h3, "GRU weight size");
    let mut dx = vec![0.0f32; batch * steps * h3];
    // The hidden projection's gradient per step, time-major [T, B, 3H].
    let mut dh3 = vec![0.0f32; steps * batch * h3];
    // The gradient reaching each row's state from the steps after it.
    let mut carried = vec![0.0f32; batch * hidden];
    let length = |b: usize| reverse.map(|l| l[b]);
    let zeros = vec![0.0f32; hidden];
    // W_hhᵀ `[3H, H]` laid out once: read in place through a stride of 3H, it made every step's
    // product about 2.5 times slower here.
    let transposed = transpose(weight, hidden, h3);
    for step in (0..steps).rev() {
        // The rows' passes, on the thread pool: each row owns its carried gradient, its input
        // gradient row and its hidden-projection gradient of this step.
        let block = step * batch..(step + 1) * batch;
        let kept = block.start * hidden..block.end * hidden;
        (
            carried.par_chunks_mut(hidden),
            dx.par_chunks_mut(steps * h3),
            dh3[block.start * h3..block.end * h3].par_chunks_mut(h3),
            gates.reset[kept.clone()].par_chunks(hidden),
            gates.update[kept.clone()].par_chunks(hidden),
            gates.candidate[kept.clone()].par_chunks(hidden),
            gates.hidden_n[kept.clone()].par_chunks(hidden),
        )
            .into_par_iter()
            .enumerate()
            .for_each(|(b, (dh, dxs, dhs, rs, zs, ns, hns))| {
                let at = position(step, length(b));
                let previous = if step > 0 {
                    let before = position(step - 1, length(b));
                    &out[(b * steps + before) * hidden..][..hidden]
                } else {
                    &zeros[..]
                };
                let g_out = &grad[(b * steps + at) * hidden..][..hidden];
                let dxs = &mut dxs[at * h3..][..h3];
                let (dxr, rest) = dxs.split_at_mut(hidden);
                let (dxz, dxn) = rest.split_at_mut(hidden);
                let (dhr, rest) = dhs.split_at_mut(hidden);
                let (dhz, dhn) = rest.split_at_mut(hidden);
                vectorised(
                    #[inline(always)]
                    || {
                        // Every slice cut to the loop's length, so that the loop needs no bounds checks.
                        let (dxz, dxn, dhz, dhn) = (
                            &mut dxz[..hidden],
                            &mut dxn[..hidden],
                            &mut dhz[..hidden],
                            &mut dhn[..hidden],
                        );
                        let (dh, previous) = (&mut dh[..hidden], &previous[..hidden]);
                        let (rs, zs, ns, hns) =
                            (&rs[..hidden], &zs[..hidden], &ns[..hidden], &hns[..hidden]);
                        for j in 0..hidden {
                            let d = dh[j] + g_out[j];
                            let (r, z, n) = (rs[j], zs[j], ns[j]);
                            // h = n + z·(h' − n): ∂h/∂n = 1 − z, ∂h/∂z = h' − n, ∂h/∂h' = z.
                            let dn = d * (1.0 - z) * (1.0 - n * n);
                            let dz = d * (previous[j] - n) * z * (1.0 - z);
                            let dr = dn * hns[j] * r * (1.0 - r);
                            dxr[j] = dr;
                            dxz[j] = dz;
                            dxn[j] = dn;
                            dhr[j] = dr;
                            dhz[j] = dz;
                            dhn[j] = dn * r;
                            dh[j] = d * z;
                        }
                    },
                );
            });
        if step > 0 {
            let block = View::rows(&dh3[step * batch * h3..], batch, h3, h3);
            product(
                &mut carried,
                true,
                block,
                View::rows(&transposed, h3, hidden, hidden),
            );
        }
    }
    // dW = Σ_{t ≥ 1} h_{t−1}ᵀ · dh3_t: the previous states gathered time-major, one product.
    let mut weight_grad = vec![0.0f32; hidden * h3];
    if steps > 1 {
        let rows = (steps - 1) * batch;
        let mut previous = vec![0.0f32; rows * hidden];
        for step in 1..steps {
            for b in 0..batch {
                let from = (b * steps + position(step - 1, length(b))) * hidden;
                previous[((step - 1) * batch + b) * hidden..][..hidden]
                    .copy_from_slice(&out[from..from + hidden]);
            }
        }
        product(
            &mut weight_grad,
            false,
            View::rows(&transpose(&previous, rows, hidden), hidden, rows, rows),
            View::rows(&dh3[batch * h3..], rows, h3, h3),
        );
    }
    let mut bias_grad = vec![0.0f32; h3];
    for row in dh3.chunks_exact(h3) {
        bias_grad.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    Grads {
        x: dx,
        weight: weight_grad,
        bias: bias_grad,
    }
}
