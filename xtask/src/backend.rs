//! `--backend`: the compiled backends (cargo features of `xtask`), chosen at run time. The CPU
//! backend is picked explicitly: Burn's `Device::default()` prefers a GPU backend even where no GPU
//! driver exists. A GPU backend is checked before use, so a missing driver or library is an error
//! that says what to install, not a panic inside CubeCL on the first tensor.

use anyhow::{bail, Result};
use burn::tensor::Device;

/// Backends that are cargo features of `xtask` (the default, `flex`, is always in).
pub const FEATURES: [&str; 3] = ["ndarray", "wgpu", "cuda"];

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
        "wgpu" => rcar_train::wgpu::wgpu_device()?,
        #[cfg(feature = "cuda")]
        "cuda" => cuda(0)?,
        other => bail!(
            "unknown backend {other:?} (this binary has: {}; `--backend {}` builds the others)",
            compiled().join(", "),
            FEATURES.join("|")
        ),
    })
}

/// CUDA device `index`, after checking what CubeCL's CUDA runtime loads at run time: the driver
/// library, NVRTC (it compiles the kernels), and a device at that index.
#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device> {
    use cudarc::{driver, nvrtc};
    // SAFETY: each only tries to `dlopen` the library's candidate names, as cudarc does later.
    if !unsafe { driver::sys::is_culib_present() } {
        bail!(
            "CUDA: the NVIDIA driver's library (libcuda.so) was not found. Install the NVIDIA \
             driver (`nvidia-smi` then lists the GPU); without an NVIDIA GPU, use --backend wgpu \
             or --backend flex"
        );
    }
    if !unsafe { nvrtc::sys::is_culib_present() } {
        bail!(
            "CUDA: NVRTC (libnvrtc.so), which compiles the kernels at run time, was not found. \
             Install the CUDA toolkit, or `pip install nvidia-cuda-nvrtc-cu12` and add its \
             `nvidia/cuda_nvrtc/lib` directory to LD_LIBRARY_PATH"
        );
    }
    driver::result::init().map_err(|e| {
        anyhow::anyhow!("CUDA: the driver did not start ({e}); `nvidia-smi` shows why")
    })?;
    let count = driver::result::device::get_count()
        .map_err(|e| anyhow::anyhow!("CUDA: cannot count the devices ({e})"))?;
    if index >= count as usize {
        bail!("CUDA: device {index} asked for, the driver sees {count}");
    }
    Ok(Device::cuda(index))
}
