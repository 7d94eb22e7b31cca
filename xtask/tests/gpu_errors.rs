//! A GPU backend that cannot start ends in an error that names what is missing and what to install,
//! never in a panic inside CubeCL. The WGPU case runs in the README's full test command
//! (`xtask/wgpu`); the CUDA cases with `cargo test -p xtask --features xtask/cuda --test gpu_errors`,
//! on a machine without an NVIDIA driver; where a driver is installed, they have nothing to show
//! and say so.
#![cfg(any(feature = "cuda", feature = "wgpu"))]

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

/// With no Vulkan driver but Mesa's OpenGL one (EGL), WGPU would run on OpenGL, where a run can
/// hang for good (`rcar_train::wgpu`): refused, saying what to install.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_on_opengl_only_says_to_install_vulkan() {
    let out = train_on(
        "wgpu",
        &[
            ("VK_ICD_FILENAMES", "/nonexistent/icd.json"),
            ("VK_DRIVER_FILES", "/nonexistent/icd.json"),
        ],
    );
    assert_refused(&out, &["WGPU found only OpenGL", "mesa-vulkan-drivers"]);
}

/// A CUDA build without a driver resumes a run on the CPU: Burn loads the optimizer state on its
/// default device, which would be CUDA here had xtask not named the CPU.
#[cfg(feature = "cuda")]
#[test]
fn a_cuda_build_resumes_a_cpu_run_without_a_driver() {
    if loadable(&["libcuda.so", "libcuda.so.1"]) {
        eprintln!("an NVIDIA driver is installed here: nothing to check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let synth = rcar_data::synth::SynthConfig {
        seed: 3,
        train_images: 8,
        dev_images: 4,
        test_images: 4,
        regions: 6,
        dim: 32,
    };
    rcar_data::synth::generate(&data, &synth, &mut |_, _, _| {}).unwrap();
    let vocab = data.join("vocab.json");
    let vocab_size = rcar_data::vocab::Vocab::load(&vocab).unwrap().len();
    let config = serde_json::json!({
        "name": "resume", "data": data, "vocab": vocab,
        "model": {
            "vocab_size": vocab_size, "direction": "t2i", "mode": "coop_rcar", "steps": 2,
            "img_dim": 32, "word_dim": 8, "embed_size": 16, "sim_dim": 8,
            "t2i_smooth": 10.0, "i2t_smooth": 3.0, "dropout": 0.4
        },
        "epochs": 1, "batch_size": 8, "lr": 0.002, "lr_update": 10, "warmup_epochs": 1,
        "seed": 0, "log_every": 1, "checkpoint_every": 2
    });
    let config_path = dir.path().join("resume.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let run = dir.path().join("run");
    let xtask = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .env_remove("BURN_DEVICE")
            .output()
            .expect("runs xtask");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (config_path, run) = (config_path.to_str().unwrap(), run.to_str().unwrap());
    xtask(&[
        "train",
        "--config",
        config_path,
        "--out",
        run,
        "--max-steps",
        "3",
    ]);
    let resumed = xtask(&["train", "--resume", run, "--max-steps", "4"]);
    assert!(resumed.contains("stopped at step 4"), "{resumed}");
}
