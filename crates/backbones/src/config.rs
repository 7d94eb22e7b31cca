//! The model configuration: dimensions, attention direction, regulator mode and step count.

use burn::config::Config;
use serde::{Deserialize, Serialize};

/// Which modality queries the other in the cross attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Words attend over regions (`--attn_type t2i`).
    T2i,
    /// Regions attend over words (`--attn_type i2t`).
    I2t,
}

/// How the regulators are combined (`--self_regulator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `only_rcr`: N RCR steps, mean-cosine head. N = 0 is the baseline.
    OnlyRcr,
    /// `only_rar`: one alignment pass, N RAR steps, sigmoid head.
    OnlyRar,
    /// `coop_rcar`: N passes, N−1 RCRs between them, N RARs, sigmoid head.
    CoopRcar,
}

#[derive(Config, Debug, PartialEq)]
pub struct ModelConfig {
    /// Vocabulary size, `<mask>` included.
    pub vocab_size: usize,
    pub direction: Direction,
    pub mode: Mode,
    /// `rcr_step`, `rar_step` or `rcar_step`, by mode.
    pub steps: usize,
    #[config(default = 2048)]
    pub img_dim: usize,
    #[config(default = 300)]
    pub word_dim: usize,
    #[config(default = 1024)]
    pub embed_size: usize,
    #[config(default = 256)]
    pub sim_dim: usize,
    /// Initial softmax temperature λ₀ for t2i.
    #[config(default = 10.0)]
    pub t2i_smooth: f64,
    /// Initial softmax temperature λ₀ for i2t.
    #[config(default = 3.0)]
    pub i2t_smooth: f64,
    /// Dropout on word embeddings and inside RAR.
    #[config(default = 0.4)]
    pub dropout: f64,
}

impl ModelConfig {
    /// λ₀ of the configured direction.
    pub fn smooth(&self) -> f64 {
        match self.direction {
            Direction::T2i => self.t2i_smooth,
            Direction::I2t => self.i2t_smooth,
        }
    }

    /// Numbers of (alignment-vector, RCR, RAR) modules the mode builds.
    pub fn module_counts(&self) -> (usize, usize, usize) {
        let n = self.steps;
        match self.mode {
            Mode::OnlyRcr => (n, n, 0),
            Mode::OnlyRar => (1, 0, n),
            Mode::CoopRcar => (n, n.saturating_sub(1), n),
        }
    }

    /// Refuses a vocabulary file of another size than the model's: its word ids would mean other
    /// words. `source` names where the configuration came from (a checkpoint, an experiment).
    pub fn check_vocab(
        &self,
        vocab_len: usize,
        vocab_path: &std::path::Path,
        source: &str,
    ) -> Result<(), rcar_data::DataError> {
        if self.vocab_size == vocab_len {
            return Ok(());
        }
        Err(rcar_data::DataError::invalid(
            vocab_path,
            format!(
                "{vocab_len} words (<mask> included), but {source} has vocab_size {}",
                self.vocab_size
            ),
        ))
    }

    /// Whether scores come from the sigmoid head (RAR modes) rather than the mean cosine.
    pub fn sigmoid_head(&self) -> bool {
        self.mode != Mode::OnlyRcr
    }
}
