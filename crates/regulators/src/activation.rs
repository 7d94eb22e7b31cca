//! tanh, and RCR's channel update, for the regulators' per-pair tensors.
//!
//! On the CPU backend a tensor without a graph is mapped in place by a vectorised loop ([`crate::cpu`]);
//! any other tensor takes a Burn expression: tanh as 2·σ(2x) − 1, because the CPU backend's own
//! `tanh` is a scalar libm call per element while its sigmoid and its derivative 4σ(1 − σ) =
//! 1 − tanh² are what every backend has. Both are within a few 1e-8 of `tanh`.

#[cfg(feature = "flex")]
use crate::linear::linear_then;
use burn::nn::Linear;
use burn::tensor::activation::sigmoid;
use burn::tensor::Tensor;

pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    return crate::cpu::map_in_place_or(x, tanh_in_place, tanh_by_sigmoid);
    #[cfg(not(feature = "flex"))]
    tanh_by_sigmoid(x)
}

fn tanh_by_sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    sigmoid(x.mul_scalar(2.0)).mul_scalar(2.0).sub_scalar(1.0)
}

/// RCR's channel factors from a layer's output, clip(tanh(linear(h)) + m, −1, 1) with m = 1 before
/// the first update: on the CPU without a graph one pass over `[pairs, q, E]`, the layer's bias
/// included ([`crate::linear::linear_then`]), instead of four (bias, tanh, add, clip).
pub fn channel_update_of_linear<const D: usize>(
    linear: &Linear,
    h: Tensor<D>,
    m: Option<Tensor<D>>,
) -> Tensor<D> {
    #[cfg(feature = "flex")]
    return channel_update_fused(linear, h, m);
    #[cfg(not(feature = "flex"))]
    channel_update(linear.forward(h), m)
}

/// [`channel_update_of_linear`] with its CPU pass, where the tensors are the CPU backend's.
#[cfg(feature = "flex")]
fn channel_update_fused<const D: usize>(
    linear: &Linear,
    h: Tensor<D>,
    m: Option<Tensor<D>>,
) -> Tensor<D> {
    let held = match m.as_ref().map(crate::cpu::plain) {
        Some(None) => return channel_update(linear.forward(h), m),
        held => held.flatten(),
    };
    linear_then(
        linear,
        h,
        |zs, bias| {
            let ms = held.as_ref().map(crate::cpu::values);
            crate::cpu::vectorised(
                #[inline(always)]
                || channel_rows(zs, bias, ms.as_deref()),
            )
        },
        |z| channel_update(z, m),
    )
}

/// clip(tanh(z + b) + m) over rows of `bias.len()` values, m = 1 where there are no factors yet.
/// Inlined into [`crate::cpu::vectorised`]'s body, so that it is compiled for its vector unit.
#[cfg(feature = "flex")]
#[inline(always)]
fn channel_rows(zs: &mut [f32], bias: &[f32], ms: Option<&[f32]>) {
    let d = bias.len().max(1);
    match ms {
        None => {
            for row in zs.chunks_exact_mut(d) {
                for (z, b) in row.iter_mut().zip(bias) {
                    *z = clip(tanh_value(*z + b) + 1.0);
                }
            }
        }
        Some(ms) => {
            assert_eq!(
                ms.len(),
                zs.len(),
                "the factors are the layer output's size"
            );
            for (row, ms) in zs.chunks_exact_mut(d).zip(ms.chunks_exact(d)) {
                for ((z, b), m) in row.iter_mut().zip(bias).zip(ms) {
                    *z = clip(tanh_value(*z + b) + m);
                }
            }
        }
    }
}

/// RCR's channel factors m' = clip(tanh(z) + m, −1, 1), where m = 1 before the first update, as
/// Burn ops: the route of [`channel_update_of_linear`] for tensors its fused pass does not take.
fn channel_update<const D: usize>(z: Tensor<D>, m: Option<Tensor<D>>) -> Tensor<D> {
    let delta = tanh(z);
    match m {
        Some(m) => delta + m,
        None => delta.add_scalar(1.0),
    }
    .clamp(-1.0, 1.0)
}

/// `x.clamp(-1.0, 1.0)`, NaN kept, written as two selects so that it vectorises.
#[cfg(feature = "flex")]
#[inline(always)]
fn clip(x: f32) -> f32 {
    let x = if x < -1.0 { -1.0 } else { x };
    if x > 1.0 {
        1.0
    } else {
        x
    }
}

/// tanh of every value, in place: tanh|x| = −m / (2 + m) with m = e^(−2|x|) − 1 from a Cephes-style
/// polynomial (no cancellation near 0), the sign copied back; NaN stays NaN. Only adds, multiplies,
/// one division and bit operations, so the compiler vectorises the loop, and the values are the same
/// whatever the vector width.
pub fn tanh_in_place(values: &mut [f32]) {
    crate::cpu::vectorised(
        #[inline(always)]
        || values.iter_mut().for_each(|x| *x = tanh_value(*x)),
    )
}

/// tanh of one value, branch-free so that loops over it vectorise (see [`tanh_in_place`]).
#[inline(always)]
pub fn tanh_value(x: f32) -> f32 {
    // Beyond 9, tanh rounds to ±1 in float32; the clamp also keeps 2^n a normal number.
    let y = -2.0 * x.abs().min(9.0);
    // y = n·ln 2 + r with |r| ≤ ln 2 / 2; n rounded by the float32 magic constant 1.5·2^23.
    // Its bits hold n in the low mantissa bits, read with integer operations (a float-to-int cast
    // would not vectorise: Rust's saturates).
    const MAGIC: f32 = 12_582_912.0;
    let shifted = y * std::f32::consts::LOG2_E + MAGIC;
    let n = shifted - MAGIC;
    let r = (y - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes' 5.0000001201e-1, which is 0.5 in float32
                     // e^r − 1 = p·r² + r; e^y − 1 = 2^n·(e^r − 1) + (2^n − 1), exact for n = 0.
    let two_n = f32::from_bits(
        shifted
            .to_bits()
            .wrapping_sub(MAGIC.to_bits())
            .wrapping_add(127)
            << 23,
    );
    let m = two_n * (p * r * r + r) + (two_n - 1.0);
    let t = (-m / (2.0 + m)).copysign(x);
    if x.is_nan() {
        x
    } else {
        t
    }
}

/// (q − a)² for every `a: [G, …]` against the same `q` (a's trailing dimensions): one pass over a
/// on the CPU without a graph, in place of a broadcast subtraction and a square, each a fresh
/// tensor of a's size.
pub fn squared_difference<const D: usize, const D2: usize>(
    q: Tensor<D2>,
    a: Tensor<D>,
) -> Tensor<D> {
    let by_ops = |a: Tensor<D>, q: Tensor<D2>| {
        let q: Tensor<D> = q.unsqueeze();
        (q - a).powi_scalar(2)
    };
    #[cfg(feature = "flex")]
    return crate::cpu::zip_trailing_in_place_or(
        a,
        q,
        |values, qs| {
            if qs.is_empty() {
                return; // then so are the values
            }
            crate::cpu::vectorised(
                #[inline(always)]
                || {
                    for block in values.chunks_exact_mut(qs.len()) {
                        for (v, q) in block.iter_mut().zip(qs) {
                            let d = q - *v;
                            *v = d * d;
                        }
                    }
                },
            )
        },
        by_ops,
    );
    #[cfg(not(feature = "flex"))]
    by_ops(a, q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn the_vectorised_tanh_is_within_float32_rounding_of_tanh() {
        let mut worst = (0.0f64, 0.0f32);
        let mut x = -12.0f32;
        while x < 12.0 {
            let mut v = [x];
            tanh_in_place(&mut v);
            let exact = (x as f64).tanh();
            let err = (v[0] as f64 - exact).abs() / exact.abs().max(1e-30);
            if err > worst.0 {
                worst = (err, x);
            }
            x += 1.3e-4;
        }
        // A few float32 ulps, relative, also near 0 (where 1 − e^(−2x) would cancel).
        assert!(
            worst.0 < 4e-7,
            "relative error {:e} at {}",
            worst.0,
            worst.1
        );
        let mut special = [
            0.0f32,
            -0.0,
            1e-30,
            -1e-30,
            100.0,
            -100.0,
            f32::INFINITY,
            f32::NAN,
        ];
        tanh_in_place(&mut special);
        assert_eq!(&special[..6], &[0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0]);
        assert!(special[5].is_sign_negative() && special[1].is_sign_negative());
        assert_eq!(special[6], 1.0);
        assert!(special[7].is_nan());
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    /// tanh agrees with float64 on the CPU without a graph (in place), with a graph (Burn's sigmoid
    /// expression) and on strided input (a copy); so does the channel update's Burn-op route (its
    /// fused route is `linear`'s test).
    #[test]
    fn every_route_gives_tanh_and_the_clipped_channel_update() {
        let zs: Vec<f32> = (0..24).map(|i| (i as f32 - 12.0) * 0.37).collect();
        let ms: Vec<f32> = (0..24).map(|i| 1.0 - (i % 7) as f32 * 0.3).collect();
        let clip = |v: f64| v.clamp(-1.0, 1.0);
        let want_tanh: Vec<f64> = zs.iter().map(|&z| (z as f64).tanh()).collect();
        let want_first: Vec<f64> = want_tanh.iter().map(|t| clip(t + 1.0)).collect();
        let want_next: Vec<f64> = want_tanh
            .iter()
            .zip(&ms)
            .map(|(t, &m)| clip(t + m as f64))
            .collect();
        let close = |got: Vec<f32>, want: &[f64], what: &str| {
            for (g, w) in got.iter().zip(want) {
                assert!((*g as f64 - w).abs() <= 3e-7, "{what}: {g} vs {w}");
            }
        };
        for device in [Device::flex(), Device::flex().autodiff()] {
            let tensor =
                |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [4, 6]), &device);
            let (z, m) = (tensor(&zs), tensor(&ms));
            close(values(tanh(z.clone())), &want_tanh, "tanh");
            close(
                values(tanh(z.clone().transpose()).transpose()),
                &want_tanh,
                "strided tanh",
            );
            close(
                values(channel_update(z.clone(), None)),
                &want_first,
                "first update",
            );
            close(
                values(channel_update(z.clone(), Some(m.clone()))),
                &want_next,
                "update",
            );
            let strided = channel_update(z.clone().transpose(), Some(m.transpose())).transpose();
            close(values(strided), &want_next, "strided update");
            assert_eq!(values(z), zs, "the input is left alone");
        }
    }

    #[test]
    fn the_squared_difference_repeats_the_query_over_every_group() {
        let device = Device::flex();
        let qs = vec![1.0f32, -2.0, 0.5, 3.0, 0.0, -1.5];
        let q = Tensor::<2>::from_data(TensorData::new(qs.clone(), [2, 3]), &device);
        let values: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 2.0).collect();
        let a = Tensor::<4>::from_data(TensorData::new(values.clone(), [2, 2, 2, 3]), &device);
        let want: Vec<f32> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (qs[i % 6] - v) * (qs[i % 6] - v))
            .collect();
        let floats = |t: Tensor<4>| t.into_data().try_into_vec::<f32>().unwrap();
        // A fresh tensor (in place), one held elsewhere (a copy), a strided query (Burn ops).
        let columns = vec![1.0f32, 3.0, -2.0, 0.0, 0.5, -1.5];
        let strided = Tensor::<2>::from_data(TensorData::new(columns, [3, 2]), &device).transpose();
        let fresh = squared_difference(q.clone(), a.clone() * 1.0);
        let shared = squared_difference(q.clone(), a.clone());
        let by_ops = squared_difference(strided, a.clone());
        for got in [fresh, shared, by_ops] {
            assert_eq!(floats(got), want);
        }
        assert_eq!(floats(a), values, "the input is left alone");
        let graph = Device::flex().autodiff();
        let q = Tensor::<2>::from_data(TensorData::new(qs, [2, 3]), &graph).require_grad();
        let a = Tensor::<4>::from_data(TensorData::new(values, [2, 2, 2, 3]), &graph);
        assert_eq!(floats(squared_difference(q.clone(), a.clone())), want);
        let grad = q.grad(&squared_difference(q.clone(), a).sum().backward());
        assert!(
            grad.is_some(),
            "with a graph the difference is differentiable"
        );
    }
}
