//! Linear layers initialised as PyTorch initialises the official model (Burn's defaults differ).

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Distribution, Tensor};

/// A `d_in → d_out` linear layer (weight stored `[d_in, d_out]`) with weight and bias drawn
/// uniformly from `±weight_bound` and `±bias_bound` (0 gives a zero bias).
pub fn uniform_linear(
    d_in: usize,
    d_out: usize,
    weight_bound: f64,
    bias_bound: f64,
    device: &Device,
) -> Linear {
    let weight = Tensor::random(
        [d_in, d_out],
        Distribution::Uniform(-weight_bound, weight_bound),
        device,
    );
    let bias = if bias_bound == 0.0 {
        Tensor::zeros([d_out], device)
    } else {
        Tensor::random(
            [d_out],
            Distribution::Uniform(-bias_bound, bias_bound),
            device,
        )
    };
    Linear {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
    }
}

/// Xavier-uniform weight with bound √(6 / (fan_in + fan_out)) and zero bias: every Linear of the
/// similarity encoder (alignment vectors, RCR, RAR, scoring head).
pub fn xavier_linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    let bound = (6.0 / (d_in + d_out) as f64).sqrt();
    uniform_linear(d_in, d_out, bound, 0.0, device)
}

/// PyTorch's default Linear init: weight and bias uniform in ±1/√fan_in.
pub fn torch_default_linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    let bound = 1.0 / (d_in as f64).sqrt();
    uniform_linear(d_in, d_out, bound, bound, device)
}
