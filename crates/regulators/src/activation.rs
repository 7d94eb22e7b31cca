//! tanh as 2·σ(2x) − 1, for the regulators' per-pair tensors.
//!
//! The CPU default backend (`flex`) computes `tanh` with one scalar libm call per element, which
//! took over a third of a regulated evaluation (RCR's matrix head applies it to `[pairs, q, 2·S]`
//! and `[pairs, q, E]`); its sigmoid costs one `exp` per element. The identity is exact in real
//! arithmetic, including the derivative 4σ(1 − σ) = 1 − tanh²; in float32 it differs from `tanh`
//! by at most a few 1e-8 absolute (the subtraction near 0).

use burn::tensor::activation::sigmoid;
use burn::tensor::Tensor;

pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    sigmoid(x.mul_scalar(2.0)).mul_scalar(2.0).sub_scalar(1.0)
}
