//! Linear layers and the element-wise step after them, with the bias folded into that step on the
//! CPU.
//!
//! Burn's `Linear` adds its bias in a pass of its own over the output. The regulators' layers are
//! each followed by one more pass (tanh, RCR's channel update, the alignment vectors' l2 norm), so
//! on the CPU backend without a graph the product runs alone and the bias joins the next pass: one
//! pass over `[pairs, q, d]` instead of two. Any other tensor (a GPU's, or one recording a graph)
//! takes `Linear::forward` and the caller's Burn expression, whose derivative Burn knows.

use crate::activation::tanh;
use burn::nn::Linear;
use burn::tensor::Tensor;

/// `step(linear(x))`, where on the CPU without a graph `fused(values, bias)` does the step with the
/// bias folded in: `values` holds x·W (one row of `bias.len()` values per row of x), in place.
/// `by_ops` gets `linear.forward(x)` (bias added) for every other tensor.
pub fn linear_then<const D: usize>(
    linear: &Linear,
    x: Tensor<D>,
    fused: impl FnOnce(&mut [f32], &[f32]),
    by_ops: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if let Some(bias) = linear.bias.as_ref().map(|b| b.val()) {
        let Some(held) = crate::cpu::plain(&bias).filter(|_| crate::cpu::plain(&x).is_some())
        else {
            return by_ops(linear.forward(x));
        };
        let [d_in, d_out] = linear.weight.dims();
        let mut dims = x.dims();
        let rows = dims[..D - 1].iter().product();
        dims[D - 1] = d_out;
        let product = x.reshape([rows, d_in]).matmul(linear.weight.val());
        let bias_values = crate::cpu::values(&held);
        return crate::cpu::map_in_place_or(
            product.reshape(dims),
            |values| fused(values, &bias_values),
            |product| by_ops(product + bias.unsqueeze()),
        );
    }
    #[cfg(not(feature = "flex"))]
    let _ = fused; // the fused step needs the CPU backend's tensors
    by_ops(linear.forward(x))
}

/// tanh(linear(x)): RCR's and RAR's hidden layers.
pub fn linear_tanh<const D: usize>(linear: &Linear, x: Tensor<D>) -> Tensor<D> {
    linear_then(
        linear,
        x,
        |values, bias| {
            crate::cpu::vectorised(
                #[inline(always)]
                || tanh_rows(values, bias),
            )
        },
        tanh,
    )
}

/// tanh(v + b) over rows of `bias.len()` values; inlined into [`crate::cpu::vectorised`]'s body,
/// so that it is compiled for its vector unit.
#[inline(always)]
fn tanh_rows(values: &mut [f32], bias: &[f32]) {
    for row in values.chunks_exact_mut(bias.len().max(1)) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = crate::activation::tanh_value(*v + b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::channel_update_of_linear;
    use crate::norm::{l2norm, l2norm_rows_with_bias};
    use burn::module::Param;
    use burn::tensor::{Device, TensorData};

    const D_IN: usize = 5;
    const D_OUT: usize = 7;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    fn tensor<const D: usize>(v: &[f32], shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
    }

    /// Each fused layer against float64 on the CPU without a graph (the fused route: fresh and
    /// strided input) and with one (`Linear::forward` and the Burn expression).
    #[test]
    fn fused_layers_match_the_layer_then_its_step() {
        let xs: Vec<f32> = (0..2 * 3 * D_IN).map(|i| (i as f32 * 0.37).sin()).collect();
        let ws: Vec<f32> = (0..D_IN * D_OUT).map(|i| (i as f32 * 0.71).cos()).collect();
        let bs: Vec<f32> = (0..D_OUT).map(|i| i as f32 * 0.1 - 0.3).collect();
        let ms: Vec<f32> = (0..2 * 3 * D_OUT)
            .map(|i| 1.0 - (i % 5) as f32 * 0.4)
            .collect();
        let y: Vec<f64> = (0..6 * D_OUT)
            .map(|i| {
                let (r, o) = (i / D_OUT, i % D_OUT);
                bs[o] as f64
                    + (0..D_IN)
                        .map(|k| xs[r * D_IN + k] as f64 * ws[k * D_OUT + o] as f64)
                        .sum::<f64>()
            })
            .collect();
        let want_tanh: Vec<f64> = y.iter().map(|v| v.tanh()).collect();
        let want_first: Vec<f64> = want_tanh
            .iter()
            .map(|t| (t + 1.0).clamp(-1.0, 1.0))
            .collect();
        let want_next: Vec<f64> = want_tanh
            .iter()
            .zip(&ms)
            .map(|(t, &m)| (t + m as f64).clamp(-1.0, 1.0))
            .collect();
        let want_norm: Vec<f64> = y
            .chunks(D_OUT)
            .flat_map(|row| {
                let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt() + 1e-8;
                row.iter().map(move |v| v / norm).collect::<Vec<_>>()
            })
            .collect();
        let close = |got: Vec<f32>, want: &[f64], what: &str| {
            assert_eq!(got.len(), want.len(), "{what}");
            for (g, w) in got.iter().zip(want) {
                assert!((*g as f64 - w).abs() <= 2e-6, "{what}: {g} vs {w}");
            }
        };
        for device in [Device::flex(), Device::flex().autodiff()] {
            let layer = Linear {
                weight: Param::from_tensor(tensor(&ws, [D_IN, D_OUT], &device)),
                bias: Some(Param::from_tensor(tensor(&bs, [D_OUT], &device))),
            };
            let x = tensor(&xs, [2, 3, D_IN], &device);
            // With a graph, the input requires a gradient (the layer's parameters do anyway).
            let x = if device.is_autodiff() {
                x.require_grad()
            } else {
                x
            };
            // x's values laid out [3, 2, D_IN], viewed back as [2, 3, D_IN]: strided.
            let swapped: Vec<f32> = (0..6 * D_IN)
                .map(|i| {
                    let (j, r, k) = (i / (2 * D_IN), i / D_IN % 2, i % D_IN);
                    xs[(r * 3 + j) * D_IN + k]
                })
                .collect();
            let strided = tensor(&swapped, [3, 2, D_IN], &device).swap_dims(0, 1);
            let m = tensor(&ms, [2, 3, D_OUT], &device);
            close(values(linear_tanh(&layer, x.clone())), &want_tanh, "tanh");
            let first = channel_update_of_linear(&layer, x.clone(), None);
            close(values(first), &want_first, "first channel update");
            let next = channel_update_of_linear(&layer, x.clone(), Some(m.clone()));
            close(values(next), &want_next, "channel update");
            let normed = linear_then(
                &layer,
                x.clone(),
                |v, b| crate::cpu::vectorised(|| l2norm_rows_with_bias(v, b)),
                l2norm,
            );
            close(values(normed), &want_norm, "l2 norm");
            close(
                values(linear_tanh(&layer, strided)),
                &want_tanh,
                "strided tanh",
            );
            assert_eq!(values(x), xs, "the input is left alone");
            assert_eq!(values(m), ms, "the factors are left alone");
        }
    }

    /// The fused route is a product with nothing to sum when the layer has no inputs: zeros, then
    /// the step (the product's output is written, never read uninitialised).
    #[test]
    fn a_layer_with_no_inputs_gives_its_step_of_the_bias() {
        let device = Device::flex();
        let layer = Linear {
            weight: Param::from_tensor(Tensor::<2>::zeros([0, 3], &device)),
            bias: Some(Param::from_tensor(tensor(&[0.5, -1.0, 2.0], [3], &device))),
        };
        let got = values(linear_tanh(&layer, Tensor::<2>::zeros([2, 0], &device)));
        let want: Vec<f32> = [0.5f64, -1.0, 2.0, 0.5, -1.0, 2.0]
            .iter()
            .map(|b| b.tanh() as f32)
            .collect();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6, "{g} vs {w}");
        }
    }
}
