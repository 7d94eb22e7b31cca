//! A run directory: `config.json` (resolved), `metrics.jsonl`, `curves.svg`, `best/` (the model with
//! the best dev rsum) and `checkpoints/step-NNNNNNNN/` (model, optimizer, state; the last few kept).
//!
//! A checkpoint and `best/` are assembled in a hidden directory and renamed into place, so
//! `checkpoints/` only ever holds complete ones and a failed write (a full disk, a read-only
//! directory) leaves the previous `best/` whole; every other file is replaced atomically.

use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::tensor::{Bytes, Device};
use rcar_backbones::checkpoint::native::{load_model, save_model};
use rcar_backbones::Matcher;
use rcar_data::atomic::write_atomic;
use rcar_data::checksum;
use rcar_data::DataError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where training stands; everything needed, with the checkpointed weights and optimizer, to
/// continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The epoch in progress (or about to start).
    pub epoch: usize,
    /// The next batch of that epoch.
    pub batch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    pub best_rsum: f64,
    pub best_epoch: Option<usize>,
    /// Loss sum of the epoch in progress (over its `batch` steps so far), for its mean.
    pub epoch_loss_sum: f64,
    /// (step, loss) of logged steps and (epoch, dev rsum), for the curves.
    pub loss_curve: Vec<(u64, f64)>,
    pub rsum_curve: Vec<(usize, f64)>,
}

impl TrainState {
    pub fn new() -> Self {
        Self {
            epoch: 0,
            batch: 0,
            step: 0,
            // Below any rsum (and, unlike −∞, representable in JSON).
            best_rsum: -1.0,
            best_epoch: None,
            epoch_loss_sum: 0.0,
            loss_curve: Vec::new(),
            rsum_curve: Vec::new(),
        }
    }
}

impl Default for TrainState {
    fn default() -> Self {
        Self::new()
    }
}

pub const STATE_FILE: &str = "state.json";
pub const OPTIM_FILE: &str = "optim.bpk";

pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }

    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    pub fn curves(&self) -> PathBuf {
        self.root.join("curves.svg")
    }

    pub fn best(&self) -> PathBuf {
        self.root.join("best")
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// Complete checkpoints, oldest first.
    pub fn list_checkpoints(&self) -> Result<Vec<PathBuf>, DataError> {
        let dir = self.checkpoints();
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| DataError::io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("step-"))
                    && p.join(STATE_FILE).is_file()
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// Writes the model with the best dev result so far and its `metrics` into `best/`.
    pub fn save_best(&self, model: &Matcher, metrics: &serde_json::Value) -> Result<(), DataError> {
        replace_dir(&self.best(), |staging| {
            save_model(model, staging)?;
            write_json(&staging.join("metrics.json"), metrics)
        })
    }

    /// Puts back a `best/` left aside by a crash between [`replace_dir`]'s two renames.
    pub fn recover_best(&self) -> Result<(), DataError> {
        let aside = hidden(&self.best(), "old");
        if !self.best().exists() && aside.exists() {
            std::fs::rename(&aside, self.best()).map_err(|e| DataError::io(&aside, e))?;
        }
        Ok(())
    }

    /// Writes a checkpoint of `step` and drops all but the newest `keep`.
    pub fn save_checkpoint(
        &self,
        model: &Matcher,
        optim: &ModuleOptimizer,
        state: &TrainState,
        keep: usize,
    ) -> Result<(), DataError> {
        let target = self.checkpoints().join(format!("step-{:08}", state.step));
        replace_dir(&target, |staging| {
            save_model(model, staging)?;
            let optim_path = staging.join(OPTIM_FILE);
            let bytes = optim.to_record().into_bytes().map_err(|e| {
                DataError::invalid(&optim_path, format!("cannot serialise the optimizer: {e}"))
            })?;
            write_atomic(&optim_path, &bytes)?;
            write_json(&staging.join(STATE_FILE), state)
        })?;
        let all = self.list_checkpoints()?;
        for old in &all[..all.len().saturating_sub(keep.max(1))] {
            std::fs::remove_dir_all(old).map_err(|e| DataError::io(old, e))?;
        }
        Ok(())
    }
}

/// `.NAME.what` beside `dir`: hidden, so that no listing takes it for a checkpoint.
fn hidden(dir: &Path, what: &str) -> PathBuf {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("dir");
    dir.with_file_name(format!(".{name}.{what}"))
}

/// Replaces the directory `target` by one that `write` fills and that is then sealed with its
/// checksums. It is assembled beside `target` and renamed into place; the old `target` is moved
/// aside first and removed last, so at every moment `target` is complete or, after a crash between
/// the renames, its predecessor waits aside ([`RunDir::recover_best`]). When `write` fails (a full
/// disk, a read-only directory) the error names the file and the cause, what was assembled is
/// removed and `target` is left as it was.
fn replace_dir(
    target: &Path,
    write: impl FnOnce(&Path) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let staging = hidden(target, "partial");
    let remove = |dir: &Path| match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DataError::io(dir, e)),
        _ => Ok(()),
    };
    remove(&staging)?;
    if let Err(e) = write(&staging).and_then(|()| checksum::seal(&staging)) {
        // The error to report is the write's; a staging directory that cannot go either is
        // removed by the next write.
        let _ = remove(&staging);
        return Err(e);
    }
    let aside = hidden(target, "old");
    if target.exists() {
        remove(&aside)?;
        std::fs::rename(target, &aside).map_err(|e| DataError::io(target, e))?;
    }
    std::fs::rename(&staging, target).map_err(|e| DataError::io(target, e))?;
    remove(&aside)
}

/// Reads a checkpoint: the model on `device`, the optimizer state into `optim`, the training state.
pub fn load_checkpoint(
    dir: &Path,
    device: &Device,
    optim: ModuleOptimizer,
) -> Result<(Matcher, ModuleOptimizer, TrainState), DataError> {
    let model = load_model(dir, device)?;
    let optim_path = dir.join(OPTIM_FILE);
    let bytes = std::fs::read(&optim_path).map_err(|e| DataError::io(&optim_path, e))?;
    let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| DataError::invalid(&optim_path, format!("not an optimizer state: {e}")))?;
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| DataError::io(&state_path, e))?;
    let state = serde_json::from_str(&text)
        .map_err(|e| DataError::invalid(&state_path, format!("not a training state: {e}")))?;
    Ok((model, optim.load_record(record), state))
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), DataError> {
    let text = serde_json::to_string_pretty(value).expect("serialisable");
    write_atomic(path, text.as_bytes())
}

/// The metrics log, one JSON object per line; every line carries the step it was written after.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens the log for appending, first dropping lines written after step `keep_until` (by a run
    /// that died after its last checkpoint).
    pub fn open(path: &Path, keep_until: Option<u64>) -> Result<Self, DataError> {
        if let (Some(limit), true) = (keep_until, path.exists()) {
            let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
            let kept: String = text
                .lines()
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s <= limit)
                })
                .map(|line| format!("{line}\n"))
                .collect();
            write_atomic(path, kept.as_bytes())?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| DataError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn write(&mut self, value: &serde_json::Value) -> Result<(), DataError> {
        writeln!(self.file, "{value}").map_err(|e| DataError::io(&self.path, e))
    }
}
