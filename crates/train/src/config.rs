//! A training run's configuration: one JSON file per experiment in `experiments/`, overridable
//! from the command line, saved resolved into the run directory.

use crate::loss::LossMode;
use rcar_backbones::{Host, ModelConfig};
use rcar_data::DataError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Experiment name (the run directory's default name).
    pub name: String,
    /// Free text for whoever reads the preset (what it reproduces, what it leaves out).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Dataset directory in the SCAN layout (`train_*`, `dev_*`).
    pub data: PathBuf,
    /// Vocabulary JSON.
    pub vocab: PathBuf,
    /// The model; its `vocab_size` must equal the vocabulary file's (checked at start).
    #[serde(deserialize_with = "rcar_backbones::config::deserialize_config")]
    pub model: ModelConfig,
    pub epochs: usize,
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    #[serde(default = "defaults::lr")]
    pub lr: f64,
    /// The epoch from which the learning rate is multiplied by 0.1 (once, or every `lr_update`
    /// epochs: `lr_decay`).
    pub lr_update: usize,
    #[serde(default)]
    pub lr_decay: LrDecay,
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Epochs with the loss summed over all negatives before switching to the hardest one.
    pub warmup_epochs: usize,
    /// Optimizer steps from the run's start with the summed loss, besides `warmup_epochs`, so that
    /// a short run can warm up for part of an epoch: hardest-negative training from the first step
    /// starts on a plateau (all scores equal, loss 2·B·margin) that SGRAF's hosts take thousands
    /// of steps to leave.
    #[serde(default)]
    pub warmup_steps: u64,
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

/// How the learning rate falls at `lr_update`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrDecay {
    /// ×0.1 once, from epoch `lr_update` on (RCAR's schedule).
    #[default]
    Once,
    /// ×0.1^⌊epoch / lr_update⌋ (SGRAF's schedule).
    Every,
}

/// The optimizer, with PyTorch's β = (0.9, 0.999) and eps 1e-8.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW with weight decay 0.01 (RCAR).
    #[default]
    Adamw,
    /// Adam without weight decay (SGRAF).
    Adam,
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
        } else if self.augment && self.model.host != Host::Scan {
            Some("SAF and SGR train without token augmentation (SGRAF's vocabulary has no <mask>): set augment false")
        } else {
            self.model.problem()
        };
        match problem {
            Some(msg) => Err(DataError::invalid(path, msg)),
            None => Ok(()),
        }
    }

    /// The learning rate of `epoch`: ×0.1 from `lr_update` on, once or every `lr_update` epochs.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let decays = match self.lr_decay {
            LrDecay::Once => usize::from(epoch >= self.lr_update),
            LrDecay::Every => epoch / self.lr_update.max(1),
        };
        self.lr * 0.1f64.powi(decays as i32)
    }

    /// The loss of the step after `step` optimizer steps, in `epoch`: summed over negatives
    /// during warm-up (`warmup_epochs` epochs or `warmup_steps` steps, whichever lasts longer),
    /// hardest afterwards.
    pub fn loss_at(&self, epoch: usize, step: u64) -> LossMode {
        if epoch < self.warmup_epochs || step < self.warmup_steps {
            LossMode::Sum
        } else {
            LossMode::Hardest
        }
    }

    /// The loss every query contributes when all scores are equal: `margin` per negative counted,
    /// from both directions (`2·B·margin` for the hardest negative, `2·B·(B−1)·margin` summed).
    /// Hardest-negative training can sit at this value for thousands of steps.
    pub fn plateau(&self, mode: LossMode) -> f64 {
        let b = self.batch_size as f64;
        let negatives = match mode {
            LossMode::Hardest => 1.0,
            LossMode::Sum => b - 1.0,
        };
        2.0 * b * negatives * self.margin
    }

    /// The configuration with its data and vocabulary paths blanked: the same experiment, run
    /// from another checkout or with its data moved.
    pub fn without_paths(&self) -> Self {
        Self {
            data: PathBuf::new(),
            vocab: PathBuf::new(),
            ..self.clone()
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config serialises")
    }
}
