//! `xtask bench` with any experiment of `experiments/`: an SGRAF host's config gives SCAN's rows at
//! its sizes plus SAF's and SGR's own (not ten rows all named SAF), and `--profile` times the
//! baseline's pieces and refuses SGRAF's hosts with an error, never a panic.

use std::path::Path;
use std::process::{Command, Output};

/// `xtask bench --config experiments/<config>` on a tiny grid (each size unless `more` sets it),
/// from the workspace root.
fn bench(config: &str, more: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tiny = [
        ("--grid", "2x3"),
        ("--words", "5"),
        ("--encode-batch", "2"),
        ("--train-batches", ""),
        ("--runs", "1"),
        ("--warmup", "0"),
    ];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(&root)
        .args(["bench", "--config", &format!("experiments/{config}")]);
    for (flag, value) in tiny.iter().filter(|(flag, _)| !more.contains(flag)) {
        cmd.args([flag, value]);
    }
    cmd.args(more).output().expect("runs xtask")
}

#[test]
fn an_sgraf_config_gives_scans_rows_at_its_sizes_and_one_row_per_sgraf_host() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = bench("demo_saf.json", &["--json", json.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("SCAN's rows take its sizes"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let names: Vec<&str> = report["backends"][0]["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["name"].as_str().unwrap())
        .collect();
    for name in [
        "similarity t2i coop_rcar 2, 2×3",
        "similarity i2t baseline, 2×3",
        "similarity SAF, 2×3",
        "similarity SGR, 2×3",
    ] {
        assert_eq!(
            names.iter().filter(|n| **n == name).count(),
            1,
            "{name} in {names:?}"
        );
    }
}

#[test]
fn the_profile_times_the_baseline_and_refuses_an_sgraf_host() {
    let base = bench("demo_base.json", &["--profile"]);
    let stdout = String::from_utf8_lossy(&base.stdout);
    assert!(
        base.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&base.stderr)
    );
    assert!(stdout.contains("cross attention, pass 0"), "{stdout}");
    assert!(!stdout.contains("RCR"), "{stdout}");

    let saf = bench("demo_saf.json", &["--profile"]);
    let stderr = String::from_utf8_lossy(&saf.stderr);
    assert_eq!(saf.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.starts_with("error: experiments/demo_saf.json: --profile times the SCAN host"),
        "{stderr}"
    );
}

#[test]
fn empty_batches_and_captions_are_refused_before_anything_runs() {
    // An encoder batch of 0 crashed the process (SIGSEGV) and captions of 0 words panicked.
    for (flag, value) in [("--encode-batch", "0"), ("--words", "0"), ("--runs", "0")] {
        let out = bench("demo.json", &[flag, value]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains("0"), "{stderr}");
    }
}
