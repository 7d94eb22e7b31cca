//! RCR, the Recurrent Correspondence Regulator (official module `Correpondence_regulator`).
//!
//! From one pass's alignment vectors U `[n, q, S]` it predicts, per pair and query token, a channel
//! factor update and a temperature update, accumulated residually over steps:
//! m' = clip(tanh(matrix(U)) + m, −1, 1) and λ' = ReLU(smooth(U) + λ).

use crate::activation::channel_update_of_linear;
use crate::factors::{AttentionFactors, Temperature};
use crate::init::xavier_linear;
use crate::linear::linear_tanh;
use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

#[derive(Config, Debug)]
pub struct RcrConfig {
    /// Alignment-vector size S.
    pub sim_dim: usize,
    /// Joint embedding size E (the channel factors' size).
    pub embed_size: usize,
}

/// Linear → tanh → Linear (the official `nn.Sequential` with the tanh at index 1).
#[derive(Module, Debug)]
pub struct TanhMlp {
    pub first: Linear,
    pub second: Linear,
}

impl TanhMlp {
    fn new(d_in: usize, hidden: usize, d_out: usize, device: &Device) -> Self {
        Self {
            first: xavier_linear(d_in, hidden, device),
            second: xavier_linear(hidden, d_out, device),
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.second.forward(self.hidden(x))
    }

    fn hidden(&self, x: Tensor<3>) -> Tensor<3> {
        linear_tanh(&self.first, x)
    }
}

#[derive(Module, Debug)]
pub struct Rcr {
    /// `rcr_smooth_w`: S → S/2 → 1, the temperature head.
    pub smooth: TanhMlp,
    /// `rcr_matrix_w`: S → 2·S → E, the channel-factor head.
    pub matrix: TanhMlp,
}

impl RcrConfig {
    /// Hidden width of the temperature head: `sim_dim // 2` in the official code.
    pub fn smooth_hidden(&self) -> usize {
        self.sim_dim / 2
    }

    /// Hidden width of the channel-factor head: `sim_dim * 2` in the official code (not E/2; the two
    /// agree only at E = 4·S, the published 1024/256).
    pub fn matrix_hidden(&self) -> usize {
        self.sim_dim * 2
    }

    pub fn init(&self, device: &Device) -> Rcr {
        let (s, e) = (self.sim_dim, self.embed_size);
        Rcr {
            smooth: TanhMlp::new(s, self.smooth_hidden(), 1, device),
            matrix: TanhMlp::new(s, self.matrix_hidden(), e, device),
        }
    }
}

impl Rcr {
    /// The factors for the next pass from this pass's alignment vectors `u: [n, q, S]`.
    pub fn forward(&self, u: Tensor<3>, factors: AttentionFactors) -> AttentionFactors {
        let hidden = self.matrix.hidden(u.clone());
        let channel = channel_update_of_linear(&self.matrix.second, hidden, factors.channel);
        let smooth = self.smooth.forward(u);
        let temperature = match factors.temperature {
            Temperature::Scalar(l) => smooth.add_scalar(l),
            Temperature::PerToken(l) => smooth + l,
        };
        AttentionFactors {
            channel: Some(channel),
            temperature: Temperature::PerToken(relu(temperature)),
        }
    }
}
