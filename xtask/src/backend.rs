//! `--backend`: the compiled backends, chosen at run time. The CPU backend is picked explicitly:
//! Burn's `Device::default()` prefers a GPU backend even where no GPU driver exists.

use anyhow::{bail, Result};
use burn::tensor::Device;

/// Backends compiled into this binary.
pub const COMPILED: &[&str] = &["flex"];

pub fn device(name: &str) -> Result<Device> {
    match name {
        "flex" | "cpu" => Ok(Device::flex()),
        other => bail!(
            "backend {other:?} is not compiled into this binary (available: {})",
            COMPILED.join(", ")
        ),
    }
}
