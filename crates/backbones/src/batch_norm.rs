//! BatchNorm with PyTorch's running-statistics rule. Both normalise a training batch with its
//! biased variance, but PyTorch moves `running_var` towards the *unbiased* one (× n/(n−1)) while
//! Burn's `BatchNorm` uses the biased one; statistics trained here must be the ones the official
//! code would have stored, so evaluation after training matches too.

use burn::module::{Module, Param, RunningState};
use burn::tensor::module::{batch_norm, batch_norm_train};
use burn::tensor::{Device, Tensor};

/// Over `[rows, channels]`; batch statistics on an autodiff (training) device, running ones otherwise.
#[derive(Module, Debug)]
pub struct BatchNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    pub running_mean: RunningState<Tensor<1>>,
    pub running_var: RunningState<Tensor<1>>,
}

/// PyTorch's defaults, which the official `nn.BatchNorm1d` uses.
const MOMENTUM: f64 = 0.1;
const EPSILON: f64 = 1e-5;

impl BatchNorm {
    /// γ = 1, β = 0, running mean 0 and variance 1, as PyTorch initialises them.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self::from_tensors(
            Tensor::ones([channels], device),
            Tensor::zeros([channels], device),
            Tensor::zeros([channels], device),
            Tensor::ones([channels], device),
        )
    }

    pub fn from_tensors(
        gamma: Tensor<1>,
        beta: Tensor<1>,
        running_mean: Tensor<1>,
        running_var: Tensor<1>,
    ) -> Self {
        Self {
            gamma: Param::from_tensor(gamma),
            beta: Param::from_tensor(beta),
            running_mean: RunningState::new(running_mean),
            running_var: RunningState::new(running_var),
        }
    }

    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let device = input.device();
        if !device.is_autodiff() {
            return batch_norm(
                input,
                self.gamma.val(),
                self.beta.val(),
                self.running_mean.value().to_device(&device),
                self.running_var.value().to_device(&device),
                EPSILON,
            );
        }
        let rows = input.dims()[0];
        let batch = batch_norm_train(input, self.gamma.val(), self.beta.val(), EPSILON);
        let unbiased = rows as f64 / (rows.max(2) - 1) as f64;
        let update = |running: &RunningState<Tensor<1>>, batch: Tensor<1>| {
            let old = running.value_sync().to_device(&device);
            running.update(
                (old.mul_scalar(1.0 - MOMENTUM) + batch.detach().mul_scalar(MOMENTUM)).detach(),
            );
        };
        update(&self.running_mean, batch.mean);
        update(&self.running_var, batch.variance.mul_scalar(unbiased));
        batch.output
    }

    /// One channel over `[A, n, K]` whose n groups (axis 1) PyTorch would have normalised in n
    /// separate calls, as SGRAF calls SAF's BatchNorm once per caption. On a training device each
    /// group is normalised with the statistics of its own valid values (`valid`: 1 or 0), and the
    /// running statistics move once per group, in group order; otherwise the running statistics
    /// normalise every value.
    pub fn forward_groups(&self, input: Tensor<3>, valid: Tensor<3>) -> Tensor<3> {
        let device = input.device();
        let [a, n, k] = input.dims();
        debug_assert_eq!(valid.dims(), [a, n, k]);
        if !device.is_autodiff() {
            return self
                .forward(input.reshape([a * n * k, 1]))
                .reshape([a, n, k]);
        }
        let per_group = |t: Tensor<3>| t.sum_dim(2).sum_dim(0);
        let count = per_group(valid.clone());
        let mean = per_group(input.clone() * valid.clone()) / count.clone();
        let centred = input - mean.clone();
        let variance = per_group(centred.clone().powi_scalar(2) * valid) / count.clone();
        let scale =
            self.gamma.val().reshape([1, 1, 1]) / variance.clone().add_scalar(EPSILON).sqrt();
        let output = centred * scale + self.beta.val().reshape([1, 1, 1]);
        let (count, mean, variance) = (floats(count), floats(mean), floats(variance));
        let mut running_mean = floats(self.running_mean.value_sync())[0];
        let mut running_var = floats(self.running_var.value_sync())[0];
        let m = MOMENTUM as f32;
        for ((count, mean), variance) in count.iter().zip(&mean).zip(&variance) {
            let unbiased = count / (count - 1.0).max(1.0);
            running_mean = (1.0 - m) * running_mean + m * mean;
            running_var = (1.0 - m) * running_var + m * variance * unbiased;
        }
        self.running_mean
            .update(Tensor::from_floats([running_mean], &device));
        self.running_var
            .update(Tensor::from_floats([running_var], &device));
        output
    }

    /// Over `[B, C, L]` with the channels on axis 1, as PyTorch's `BatchNorm1d` reads a 3-D input:
    /// each channel's statistics over all B·L values (SGRAF's BatchNorm over region slots).
    pub fn forward_channels_first(&self, input: Tensor<3>) -> Tensor<3> {
        let [b, c, l] = input.dims();
        let rows = input.swap_dims(1, 2).reshape([b * l, c]);
        self.forward(rows).reshape([b, l, c]).swap_dims(1, 2)
    }
}

/// A tensor's values, detached, on the host.
fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.detach()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float statistics")
}
