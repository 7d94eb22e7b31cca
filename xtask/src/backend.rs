//! `--backend`: the compiled backends (cargo features of `xtask`), chosen at run time. The CPU
//! backend is picked explicitly: Burn's `Device::default()` prefers a GPU backend even where no GPU
//! driver exists.

use anyhow::{bail, Result};
use burn::tensor::Device;

/// Backends compiled into this binary, the default first.
pub fn compiled() -> Vec<&'static str> {
    let mut names = vec!["flex"];
    if cfg!(feature = "ndarray") {
        names.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

pub fn device(name: &str) -> Result<Device> {
    Ok(match name {
        "flex" | "cpu" => Device::flex(),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)] // kept to compare CPU backends; flex is the default
        "ndarray" => Device::ndarray(),
        #[cfg(feature = "wgpu")]
        "wgpu" => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        #[cfg(feature = "cuda")]
        "cuda" => Device::cuda(0),
        other => {
            let feature = match other {
                "ndarray" | "wgpu" | "cuda" => {
                    format!("; build with `cargo run --release -p xtask --features {other} -- …`")
                }
                _ => String::new(),
            };
            bail!(
                "backend {other:?} is not compiled into this binary (available: {}){feature}",
                compiled().join(", ")
            )
        }
    })
}
