//! `cargo xtask … --backend cuda` where this binary was built without CUDA: build xtask with the
//! backends asked for and run it with the same arguments. The default build stays CPU-only (a GPU
//! backend adds minutes to the build); the cargo command is printed, so nothing happens unseen.

use crate::backend::{compiled, FEATURES};
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitCode};

/// Set for the rebuilt xtask: if it still lacks a backend, it says so instead of rebuilding again.
const REBUILT: &str = "RCAR_XTASK_REBUILT";

/// The backend features among `requested` that this binary lacks (unknown names are left to
/// `backend::device` to refuse).
pub fn missing<'a>(requested: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let have = compiled();
    let mut missing: Vec<&str> = Vec::new();
    for name in requested {
        if FEATURES.contains(&name) && !have.contains(&name) && !missing.contains(&name) {
            missing.push(name);
        }
    }
    missing
}

/// `cargo` arguments that build xtask (release, as `cargo xtask` does) with this binary's backends
/// plus `missing`, and run it with `args`.
fn cargo_args(manifest: &Path, missing: &[&str], args: &[OsString]) -> Vec<OsString> {
    let mut features: Vec<&str> = compiled().into_iter().filter(|b| *b != "flex").collect();
    features.extend(missing);
    let mut out: Vec<OsString> = ["run", "--release", "--manifest-path"]
        .map(OsString::from)
        .into();
    out.push(manifest.into());
    out.extend(["-p", "xtask", "--features"].map(OsString::from));
    out.push(features.join(",").into());
    out.push("--".into());
    out.extend(args.iter().cloned());
    out
}

/// Builds and runs xtask with `missing` compiled in; its exit code becomes this one's.
pub fn rerun(missing: &[&str]) -> Result<ExitCode> {
    if std::env::var_os(REBUILT).is_some() {
        bail!(
            "backend {} is still missing after rebuilding xtask with it",
            missing.join(", ")
        );
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(".."));
    let manifest = workspace.join("Cargo.toml");
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let cargo_args = cargo_args(&manifest, missing, &args);
    let shown: Vec<_> = cargo_args.iter().map(|a| a.to_string_lossy()).collect();
    eprintln!(
        "--backend {} is not in this build; building and running: cargo {}",
        missing.join(", "),
        shown.join(" ")
    );
    let status = Command::new(&cargo)
        .args(&cargo_args)
        .env(REBUILT, "1")
        .status()
        .with_context(|| format!("running {}", Path::new(&cargo).display()))?;
    // A signal has no code: report failure.
    Ok(ExitCode::from(status.code().map_or(1, |c| c as u8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_backends_not_compiled_in_are_missing() {
        let all = ["flex", "cuda", "wgpu", "ndarray", "cuda", "tpu"];
        let expected: Vec<&str> = ["cuda", "wgpu", "ndarray"]
            .into_iter()
            .filter(|b| !compiled().contains(b))
            .collect();
        assert_eq!(missing(all), expected);
        assert!(missing(["flex", "cpu"]).is_empty());
    }

    #[test]
    fn the_rerun_keeps_this_builds_backends_and_the_arguments() {
        let args: Vec<OsString> = ["train", "--backend", "cuda", "--config", "a b.json"]
            .map(OsString::from)
            .into();
        let got = cargo_args(Path::new("/w/Cargo.toml"), &["cuda"], &args);
        let got: Vec<&str> = got.iter().map(|a| a.to_str().unwrap()).collect();
        let mut features: Vec<&str> = compiled().into_iter().filter(|b| *b != "flex").collect();
        features.push("cuda");
        let features = features.join(",");
        let mut expected = vec!["run", "--release", "--manifest-path", "/w/Cargo.toml"];
        expected.extend(["-p", "xtask", "--features", &features, "--"]);
        expected.extend(["train", "--backend", "cuda", "--config", "a b.json"]);
        assert_eq!(got, expected);
    }
}
