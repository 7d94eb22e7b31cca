//! The project's own checkpoint: a directory holding `model.bpk` (the weights, burnpack, with Burn's
//! parameter ids so an optimizer state can be matched to them on resume) and `model.json` (the model
//! configuration, which the weights alone cannot tell: host, direction, mode, smoothing). The
//! weights are the host model's own (`img_enc.…`, `sim_enc.…`), whichever host it is.
//!
//! Both files are written atomically, the weights first: a crash leaves the previous pair intact or
//! the new weights beside the old configuration of the same model.

use crate::config::ModelConfig;
use crate::Matcher;
use burn::module::Module;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Bytes, Device};
use rcar_data::atomic::write_atomic;
use rcar_data::checksum;
use rcar_data::DataError;
use std::path::Path;

pub const WEIGHTS_FILE: &str = "model.bpk";
pub const CONFIG_FILE: &str = "model.json";

/// Whether `dir` holds a checkpoint of this project.
pub fn is_native(dir: &Path) -> bool {
    dir.join(WEIGHTS_FILE).is_file() && dir.join(CONFIG_FILE).is_file()
}

/// Writes `model` into `dir` (created if needed). The caller seals the directory
/// ([`checksum::seal`]) once it has written its own files beside the model, so each is read back once.
pub fn save_model(model: &Matcher, dir: &Path) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let weights = dir.join(WEIGHTS_FILE);
    // Burn's RunningState keeps the newest BatchNorm statistics aside until the next update or a sync;
    // `valid` syncs them, so the file holds the statistics of the last step, not the one before.
    let model = model.valid();
    let mut store = BurnpackStore::from_bytes(None);
    match &model {
        Matcher::Rcar(m) => m.save_into(&mut store),
        Matcher::Sgraf(m) => m.save_into(&mut store),
    }
    .map_err(|e| DataError::invalid(&weights, format!("cannot serialise the weights: {e}")))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| DataError::invalid(&weights, format!("cannot serialise the weights: {e}")))?;
    write_atomic(&weights, &bytes)?;
    let config = dir.join(CONFIG_FILE);
    write_atomic(&config, model.config().to_string().as_bytes())
}

/// Reads the model configuration of a checkpoint directory.
pub fn load_config(dir: &Path) -> Result<ModelConfig, DataError> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    let mut json = serde_json::Deserializer::from_str(&text);
    crate::config::deserialize_config(&mut json)
        .map_err(|e| DataError::invalid(&path, format!("not a model configuration: {e}")))
}

/// Builds the model of a checkpoint directory on `device`. Every tensor must be present with its
/// configured shape; anything else is refused with the tensor's name.
pub fn load_model(dir: &Path, device: &Device) -> Result<Matcher, DataError> {
    checksum::verify(dir)?;
    let config = load_config(dir)?;
    let path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
    if let Some(problem) = config.problem() {
        return Err(DataError::invalid(&dir.join(CONFIG_FILE), problem));
    }
    let mut model = config.build(device);
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes)));
    let result = match &mut model {
        Matcher::Rcar(m) => m.load_from(&mut store),
        Matcher::Sgraf(m) => m.load_from(&mut store),
    }
    .map_err(|e| DataError::invalid(&path, format!("not a burnpack model file: {e}")))?;
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        let mut problems: Vec<String> = result.errors.iter().map(|e| format!("{e:?}")).collect();
        problems.extend(
            result
                .missing
                .iter()
                .map(|(k, _)| format!("missing tensor {k}")),
        );
        problems.extend(
            result
                .unused
                .iter()
                .map(|k| format!("unexpected tensor {k}")),
        );
        return Err(DataError::invalid(
            &path,
            format!(
                "does not match {}: {}",
                dir.join(CONFIG_FILE).display(),
                problems.join("; ")
            ),
        ));
    }
    Ok(model)
}
