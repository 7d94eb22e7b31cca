//! Checkpoints: the project's own format, and the official PyTorch `.pth` files as published.

pub mod native;
pub mod official;
pub mod pickle;
pub mod pth;
pub mod sgraf;

use crate::Matcher;
use burn::tensor::Device;
use rcar_data::DataError;
use std::path::{Path, PathBuf};

/// Loads a model from any checkpoint a user may hold: a directory of this project (a checkpoint or
/// a run, whose best checkpoint is taken) or an official `.pth` file of RCAR or SGRAF.
pub fn load_any(path: &Path, device: &Device) -> Result<Matcher, DataError> {
    if path.is_dir() {
        return native::load_model(&native_dir(path)?, device);
    }
    let ckpt = pth::read_pth(path)?;
    Ok(if sgraf::is_sgraf(&ckpt) {
        sgraf::sgraf_from(path, &ckpt, device)?.0.into()
    } else {
        official::official_from(path, &ckpt, device)?.0.into()
    })
}

/// The checkpoint directory a directory names: itself, or a run's `best/`.
fn native_dir(path: &Path) -> Result<PathBuf, DataError> {
    let best = path.join("best");
    let dir = if native::is_native(path) { path } else { &best };
    if !native::is_native(dir) {
        return Err(DataError::invalid(
            path,
            format!(
                "neither a checkpoint ({} + {}) nor a run directory with best/",
                native::WEIGHTS_FILE,
                native::CONFIG_FILE
            ),
        ));
    }
    Ok(dir.to_path_buf())
}

/// The files [`load_any`] reads the model from: a checkpoint's weights and configuration, or the
/// `.pth` itself.
pub fn model_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    if path.is_dir() {
        let dir = native_dir(path)?;
        return Ok(vec![
            dir.join(native::WEIGHTS_FILE),
            dir.join(native::CONFIG_FILE),
        ]);
    }
    Ok(vec![path.to_path_buf()])
}
