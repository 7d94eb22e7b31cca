//! WGPU's default adapter, started fallibly: Burn's lazy `Device::wgpu` panics on its first tensor
//! where no adapter exists, and an OpenGL adapter can hang a run (below), so both are errors that
//! say what to install.

use burn::tensor::wgpu::wgpu::Backend;
use burn::tensor::Device;
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum WgpuError {
    #[error(
        "WGPU could not start: {0}. It needs a GPU driver with compute support: Vulkan on Linux, \
         the GPU vendor's driver or Mesa's CPU one (`apt-get install mesa-vulkan-drivers \
         libvulkan1`); Metal on macOS; DX12 or Vulkan on Windows"
    )]
    NoAdapter(String),
    /// wgpu's OpenGL backend serialises all GL work behind one context lock, which its device
    /// polling gives up on after 6 s (a panic in CubeCL's polling thread, measured on Mesa's
    /// llvmpipe with the backends test on 2 busy cores); every later wait for the GPU then blocks
    /// forever, a hang with no error.
    #[error(
        "WGPU found only OpenGL ({0}), on which a run can hang: wgpu's polling thread gives up \
         when a GL call holds the context for over 6 s, and the run then waits forever. Install \
         a Vulkan driver: the GPU vendor's, or Mesa's CPU one (`apt-get install \
         mesa-vulkan-drivers libvulkan1`)"
    )]
    OpenGl(String),
}

/// The default WGPU adapter's device, initialised once per process.
pub fn wgpu_device() -> Result<Device, WgpuError> {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    if let Some(device) = DEVICE.get() {
        return Ok(device.clone());
    }
    let (device, setup) = Device::wgpu_options()
        .init_with_setup()
        .map_err(|e| WgpuError::NoAdapter(e.to_string()))?;
    if setup.backend == Backend::Gl {
        return Err(WgpuError::OpenGl(setup.adapter.get_info().name));
    }
    Ok(DEVICE.get_or_init(|| device).clone())
}
