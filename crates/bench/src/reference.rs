//! The device's own rate for the model's dominant products, as the yardstick for the model's
//! figures: the `gemm` crate (the kernel library Burn's CPU backend calls, on all cores) for CPU
//! backends, and the backend's own matrix product everywhere.

use crate::timing::{median_host_seconds, median_seconds, Repeats};
use burn::tensor::{Device, Distribution, Tensor};

/// `[m, k] · [k, n]`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Shape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

impl Shape {
    pub fn flops(&self) -> f64 {
        2.0 * (self.m * self.k * self.n) as f64
    }
}

/// GFLOP/s of the `gemm` crate, f32, all cores.
pub fn gemm_crate(shape: Shape, repeats: Repeats) -> f64 {
    let Shape { m, k, n } = shape;
    let lhs = vec![0.5f32; m * k];
    let rhs = vec![0.25f32; k * n];
    let mut dst = vec![0f32; m * n];
    let seconds = median_host_seconds(repeats, || {
        // SAFETY: row-major buffers of exactly m×k, k×n and m×n elements, strides to match.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                n as isize,
                false,
                lhs.as_ptr(),
                1,
                k as isize,
                rhs.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            )
        }
    });
    shape.flops() / seconds / 1e9
}

/// GFLOP/s of the backend's own `matmul`.
pub fn backend_matmul(device: &Device, shape: Shape, repeats: Repeats) -> f64 {
    let Shape { m, k, n } = shape;
    let lhs = Tensor::<2>::random([m, k], Distribution::Default, device);
    let rhs = Tensor::<2>::random([k, n], Distribution::Default, device);
    let seconds = median_seconds(device, repeats, || {
        // Reading a value back makes lazy backends run the product.
        let _ = lhs.clone().matmul(rhs.clone()).sum().into_data();
    });
    shape.flops() / seconds / 1e9
}
