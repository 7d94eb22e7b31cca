//! A GPU backend that cannot start ends in an error that names what is missing and what to install,
//! never in a panic inside CubeCL. Run with `--features xtask/cuda,xtask/wgpu` (the README's full
//! test command) on a machine without an NVIDIA driver, as CI's is; where a driver is installed, the
//! CUDA cases have nothing to show and say so.

use std::path::Path;
use std::process::{Command, Output};

/// `xtask train` of the demo experiment on `backend`, from the workspace root, with `env` set.
fn train_on(backend: &str, env: &[(&str, &str)]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(&root)
        .args([
            "train",
            "--backend",
            backend,
            "--config",
            "experiments/demo.json",
        ])
        .args(["--out", "target/gpu-errors-run", "--max-steps", "0"]);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("runs xtask")
}

/// Fails unless `out` is a clean refusal (exit code 1, one `error:` line) containing every `needle`.
fn assert_refused(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "a panic: {stderr}");
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
}

#[cfg(feature = "cuda")]
/// Whether the dynamic loader finds any of `names` (as cudarc's loader would).
fn loadable(names: &[&str]) -> bool {
    // SAFETY: loading a system library runs its initialisers, as the CUDA runtime itself would.
    names
        .iter()
        .any(|name| unsafe { libloading::Library::new(name) }.is_ok())
}

#[cfg(feature = "cuda")]
/// A directory where `libcuda.so.1` loads (it is the C library): a driver library that is present.
fn fake_driver_dir() -> tempfile::TempDir {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let libc = maps
        .split_whitespace()
        .find(|field| field.contains("/libc.so"))
        .expect("the C library is mapped");
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(libc, dir.path().join("libcuda.so.1")).unwrap();
    dir
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_without_a_driver_says_to_install_it() {
    if loadable(&["libcuda.so", "libcuda.so.1"]) {
        eprintln!("an NVIDIA driver is installed here: nothing to check");
        return;
    }
    let out = train_on("cuda", &[]);
    assert_refused(
        &out,
        &["libcuda.so", "Install the NVIDIA driver", "--backend wgpu"],
    );
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_without_nvrtc_says_where_to_get_it() {
    if loadable(&[
        "libnvrtc.so",
        "libnvrtc.so.12",
        "libnvrtc.so.13",
        "libnvrtc.so.11",
    ]) {
        eprintln!("NVRTC is installed here: nothing to check");
        return;
    }
    let dir = fake_driver_dir();
    let out = train_on("cuda", &[("LD_LIBRARY_PATH", dir.path().to_str().unwrap())]);
    assert_refused(&out, &["NVRTC", "CUDA toolkit", "nvidia-cuda-nvrtc"]);
}

/// With no Vulkan driver (the loader's ICD list names none) and no OpenGL one (EGL's vendor list
/// names none), WGPU has no graphics API to run on.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_without_a_driver_says_to_install_one() {
    let out = train_on(
        "wgpu",
        &[
            ("VK_ICD_FILENAMES", "/nonexistent/icd.json"),
            ("VK_DRIVER_FILES", "/nonexistent/icd.json"),
            ("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent/egl.json"),
        ],
    );
    assert_refused(&out, &["WGPU could not start", "mesa-vulkan-drivers"]);
}
