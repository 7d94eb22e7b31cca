//! One direction of PyTorch's GRU, with the fused gate layout of its weights (rows r, z, n).
//!
//! The input projection of every time step is one GEMM up front; each step then does one
//! `[B, H] × [H, 3H]` product. Keeping PyTorch's fused layout means official weights load as they
//! are (transposed), without splitting gates. On the CPU backend the steps run fused
//! ([`recurrence`], with its own backward pass under a graph); other backends run them as Burn ops.

#[cfg(feature = "flex")]
mod cpu;
#[cfg(feature = "flex")]
pub mod recurrence;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::{sigmoid, tanh};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rcar_regulators::init::uniform_linear;

#[derive(Module, Debug)]
pub struct GruDirection {
    /// `weight_ih` / `bias_ih`: input → [r | z | n], stored `[d_in, 3H]`.
    pub input: Linear,
    /// `weight_hh` / `bias_hh`: hidden → [r | z | n], stored `[H, 3H]`.
    pub hidden: Linear,
}

impl GruDirection {
    /// PyTorch's GRU init: every weight and bias uniform in ±1/√H.
    pub fn new(d_input: usize, d_hidden: usize, device: &Device) -> Self {
        let bound = 1.0 / (d_hidden as f64).sqrt();
        Self {
            input: uniform_linear(d_input, 3 * d_hidden, bound, bound, device),
            hidden: uniform_linear(d_hidden, 3 * d_hidden, bound, bound, device),
        }
    }

    /// Runs over `x: [B, T, d_in]` from t = 0 with a zero initial state; returns `[B, T, H]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.run(x, None)
    }

    /// PyTorch's backward direction on packed sequences: each row runs from its last real token
    /// (`lengths`) to its first, the padding after it; outputs at the tokens' own positions.
    pub fn forward_reversed(&self, x: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
        self.run(x, Some(lengths))
    }

    fn run(&self, x: Tensor<3>, reverse: Option<&[usize]>) -> Tensor<3> {
        let projected = self.input.forward(x); // [B, T, 3H]
        #[cfg(feature = "flex")]
        if let Some(bias) = &self.hidden.bias {
            let weight = self.hidden.weight.val();
            if let Some(out) = cpu::recurrence(&projected, &weight, &bias.val(), reverse) {
                return out;
            }
        }
        match reverse {
            None => self.by_ops(projected),
            Some(lengths) => {
                // Reversing the padded row instead would feed the pads first and change every state.
                let index = reversal_index(lengths, projected.dims()[1], &projected.device());
                reversed(self.by_ops(reversed(projected, &index)), &index)
            }
        }
    }

    /// The recurrence as Burn ops, for any backend (and the reference the fused one is tested on).
    pub fn by_ops(&self, projected: Tensor<3>) -> Tensor<3> {
        let [batch, steps, h3] = projected.dims();
        let hid = h3 / 3;
        let mut h: Tensor<2> = Tensor::zeros([batch, hid], &projected.device());
        let mut outputs = Vec::with_capacity(steps);
        for t in 0..steps {
            let xt = projected
                .clone()
                .slice([0..batch, t..t + 1, 0..h3])
                .reshape([batch, h3]);
            let ht = self.hidden.forward(h.clone());
            let x_rz = xt.clone().slice([0..batch, 0..2 * hid]);
            let h_rz = ht.clone().slice([0..batch, 0..2 * hid]);
            let rz = sigmoid(x_rz + h_rz);
            let r = rz.clone().slice([0..batch, 0..hid]);
            let z = rz.slice([0..batch, hid..2 * hid]);
            let n = tanh(xt.slice([0..batch, 2 * hid..h3]) + r * ht.slice([0..batch, 2 * hid..h3]));
            h = n.clone() + z * (h - n);
            outputs.push(h.clone().unsqueeze_dim::<3>(1));
        }
        Tensor::cat(outputs, 1)
    }
}

/// Per-row index mapping position t to L−1−t inside the caption (identity on the padding).
/// Applying it twice is the identity, so it both reverses and restores.
fn reversal_index(lengths: &[usize], t: usize, device: &Device) -> Tensor<2, Int> {
    let idx: Vec<i64> = lengths
        .iter()
        .flat_map(|&len| {
            (0..t).map(move |i| {
                if i < len {
                    (len - 1 - i) as i64
                } else {
                    i as i64
                }
            })
        })
        .collect();
    Tensor::from_data(TensorData::new(idx, [lengths.len(), t]), device)
}

/// Reverses (or restores) each row of `x: [B, T, D]` within its caption's length.
fn reversed(x: Tensor<3>, index: &Tensor<2, Int>) -> Tensor<3> {
    let dims = x.dims();
    x.gather(1, index.clone().unsqueeze_dim::<3>(2).expand(dims))
}
