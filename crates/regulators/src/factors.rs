//! The adaptive attention factors that RCR produces and a cross-attention step consumes.

use burn::tensor::Tensor;

/// Softmax temperature λ of a cross-attention pass. Few of these exist at a time; boxing the
/// tensor would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Temperature {
    /// λ₀ for every token (the first pass).
    Scalar(f64),
    /// λ per pair and query token, `[pairs, q, 1]`.
    PerToken(Tensor<3>),
}

/// Channel factors `m` and temperature `λ`. `channel: None` is the all-ones vector of the first pass.
#[derive(Debug, Clone)]
pub struct AttentionFactors {
    pub channel: Option<Tensor<3>>,
    pub temperature: Temperature,
}

impl AttentionFactors {
    /// The factors of a plain first pass: m = 1, λ = λ₀.
    pub fn initial(smooth: f64) -> Self {
        Self {
            channel: None,
            temperature: Temperature::Scalar(smooth),
        }
    }
}
