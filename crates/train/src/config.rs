//! A training run's configuration: one JSON file per experiment in `experiments/`, overridable
//! from the command line, saved resolved into the run directory.

use crate::loss::LossMode;
use rcar_backbones::ModelConfig;
use rcar_data::DataError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Experiment name (the run directory's default name).
    pub name: String,
    /// Dataset directory in the SCAN layout (`train_*`, `dev_*`).
    pub data: PathBuf,
    /// Vocabulary JSON.
    pub vocab: PathBuf,
    /// The model; its `vocab_size` must equal the vocabulary file's (checked at start).
    pub model: ModelConfig,
    pub epochs: usize,
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    #[serde(default = "defaults::lr")]
    pub lr: f64,
    /// The epoch from which the learning rate is multiplied by 0.1 (once).
    pub lr_update: usize,
    /// Epochs with the loss summed over all negatives before switching to the hardest one.
    pub warmup_epochs: usize,
    #[serde(default = "defaults::margin")]
    pub margin: f64,
    /// Global gradient-norm clip.
    #[serde(default = "defaults::grad_clip")]
    pub grad_clip: f64,
    #[serde(default)]
    pub seed: u64,
    /// The token mask/replace/delete augmentation of the training captions.
    #[serde(default = "defaults::yes")]
    pub augment: bool,
    /// Also checkpoint every N steps inside an epoch (0: at epoch ends only).
    #[serde(default)]
    pub checkpoint_every: u64,
    /// Checkpoints kept besides `best/`.
    #[serde(default = "defaults::keep")]
    pub keep_checkpoints: usize,
    /// Steps between lines of the metrics log.
    #[serde(default = "defaults::log_every")]
    pub log_every: u64,
    /// Pairs per chunk of the training similarity grid (0: the whole batch at once).
    #[serde(default)]
    pub train_chunk: usize,
    /// Bytes the dev evaluation's similarity pass may use.
    #[serde(default = "defaults::mem_budget")]
    pub eval_mem_budget: usize,
}

mod defaults {
    pub fn batch_size() -> usize {
        128
    }
    pub fn lr() -> f64 {
        5e-4
    }
    pub fn margin() -> f64 {
        0.2
    }
    pub fn grad_clip() -> f64 {
        2.0
    }
    pub fn yes() -> bool {
        true
    }
    pub fn keep() -> usize {
        2
    }
    pub fn log_every() -> u64 {
        10
    }
    pub fn mem_budget() -> usize {
        1 << 30
    }
}

impl TrainConfig {
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let cfg: Self = serde_json::from_str(&text)
            .map_err(|e| DataError::invalid(path, format!("not a training configuration: {e}")))?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Refuses settings no run can use.
    pub fn validate(&self, path: &Path) -> Result<(), DataError> {
        let problem = if self.batch_size < 2 {
            Some("batch_size must be at least 2 (negatives come from the batch)")
        } else if self.epochs == 0 {
            Some("epochs must be at least 1")
        } else if self.lr.is_nan() || self.lr <= 0.0 {
            Some("lr must be positive")
        } else if self.model.steps == 0 && self.model.mode != rcar_backbones::Mode::OnlyRcr {
            Some("only_rar and coop_rcar need at least one step")
        } else {
            None
        };
        match problem {
            Some(msg) => Err(DataError::invalid(path, msg)),
            None => Ok(()),
        }
    }

    /// The learning rate of `epoch`: ×0.1 from `lr_update` on, once.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        if epoch >= self.lr_update {
            self.lr * 0.1
        } else {
            self.lr
        }
    }

    /// The loss of `epoch`: summed over negatives during warm-up, hardest afterwards.
    pub fn loss_at(&self, epoch: usize) -> LossMode {
        if epoch >= self.warmup_epochs {
            LossMode::Hardest
        } else {
            LossMode::Sum
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config serialises")
    }
}
