//! tanh for the regulators' per-pair tensors, without the CPU backend's scalar loops.
//!
//! The CPU default backend (`flex`) computes `tanh` and `sigmoid` with one scalar libm call per
//! element, in a loop the compiler cannot vectorise; RCR's matrix head applies tanh to
//! `[pairs, q, 2·S]` and `[pairs, q, E]`, so those calls were a fifth of a regulated evaluation.
//! So: a tensor on the CPU backend with no graph (evaluation, the no-graph scoring of the
//! pair-sparse step) is mapped in place by [`tanh_in_place`], a branch-free loop the compiler
//! vectorises; any other tensor (a GPU's, or one recording a graph) takes 2·σ(2x) − 1, whose
//! derivative 4σ(1 − σ) = 1 − tanh² the backends know. Both are within a few 1e-8 of `tanh`.

use burn::tensor::activation::sigmoid;
use burn::tensor::Tensor;

pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    return cpu::map_in_place_or(x, tanh_in_place, tanh_by_sigmoid);
    #[cfg(not(feature = "flex"))]
    tanh_by_sigmoid(x)
}

fn tanh_by_sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    sigmoid(x.mul_scalar(2.0)).mul_scalar(2.0).sub_scalar(1.0)
}

#[cfg(feature = "flex")]
mod cpu {
    use burn::backend::Flex;
    use burn::tensor::{DType, Tensor, TensorData};

    /// `f` applied to a CPU tensor's values, in place where the tensor owns them (a fresh output,
    /// the usual case), on a copy where they are shared or strided; `otherwise` for a tensor that is
    /// not a float32 tensor of the CPU backend without a graph.
    pub fn map_in_place_or<const D: usize>(
        x: Tensor<D>,
        f: fn(&mut [f32]),
        otherwise: fn(Tensor<D>) -> Tensor<D>,
    ) -> Tensor<D> {
        if x.dtype() != DType::F32 {
            return otherwise(x);
        }
        // The conversion consumes its tensor even when it fails: probe with a (shallow) clone.
        let Ok(mut t) = x.clone().try_into_primitive::<Flex>() else {
            return otherwise(x);
        };
        let device = x.device();
        drop(x);
        let n = t.layout().num_elements();
        let whole = t.layout().is_contiguous() && t.layout().start_offset() == 0;
        if whole {
            if let Some(values) = t.try_storage_mut::<f32>() {
                f(&mut values[..n]);
                return Tensor::from_primitive::<Flex>(t);
            }
        }
        let shape = t.layout().shape().clone();
        let mut values = Tensor::<D>::from_primitive::<Flex>(t)
            .into_data()
            .try_into_vec::<f32>()
            .expect("a float32 tensor's data is float32");
        f(&mut values);
        Tensor::from_data(TensorData::new(values, shape), &device)
    }
}

/// tanh of every value, in place: tanh|x| = −m / (2 + m) with m = e^(−2|x|) − 1 from a Cephes-style
/// polynomial (no cancellation near 0), the sign copied back; NaN stays NaN. Only adds, multiplies,
/// one division and bit operations, so the compiler vectorises the loop, and the values are the same
/// whatever the vector width.
pub fn tanh_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { tanh_avx512(values) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { tanh_avx2(values) };
        }
    }
    tanh_loop(values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tanh_avx512(values: &mut [f32]) {
    tanh_loop(values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tanh_avx2(values: &mut [f32]) {
    tanh_loop(values)
}

#[inline(always)]
fn tanh_loop(values: &mut [f32]) {
    for x in values {
        *x = tanh_value(*x);
    }
}

#[inline(always)]
fn tanh_value(x: f32) -> f32 {
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

    #[test]
    fn tanh_of_a_cpu_tensor_leaves_other_holders_of_its_values_alone() {
        let device = Device::flex();
        let values: Vec<f32> = (0..24).map(|i| (i as f32 - 12.0) * 0.37).collect();
        let x = Tensor::<2>::from_data(TensorData::new(values.clone(), [4, 6]), &device);
        let shared = tanh(x.clone());
        let strided = tanh(x.clone().transpose());
        let owned = tanh(x.clone() * 1.0);
        assert_eq!(x.into_data().try_into_vec::<f32>().unwrap(), values);
        let expected: Vec<f32> = values.iter().map(|v| v.tanh()).collect();
        for (y, transposed) in [(shared, false), (strided, true), (owned, false)] {
            let y = if transposed { y.transpose() } else { y };
            let got = y.into_data().try_into_vec::<f32>().unwrap();
            for (g, e) in got.iter().zip(&expected) {
                assert!((g - e).abs() <= 3e-7, "{g} vs {e}");
            }
        }
    }
}
