//! `cargo xtask eval --checkpoint SAF.pth.tar --checkpoint SGR.pth.tar` scores SGRAF's ensemble: the
//! released-format checkpoints (the parity fixtures) load by themselves, against a vocabulary file
//! without `<mask>` of SGRAF's size, and the ensemble's matrix is the mean of the two models' own.

use rcar_data::npy::write_f32;
use rcar_data::vocab::Vocab;
use rcar_eval::sims;
use std::path::{Path, PathBuf};
use std::process::Command;

fn checkpoint(host: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/backbones/tests/fixtures/sgraf")
        .join(host)
        .join("model_best.pth.tar")
}

/// A test split at the fixtures' sizes (5 regions of 26 features; 30 words, specials included).
fn dataset(dir: &Path) {
    let words: Vec<String> = (0..26).map(|k| format!("w{k}")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    Vocab::from_words(&refs)
        .save(&dir.join("vocab.json"))
        .unwrap();
    let images = 5;
    let features: Vec<f32> = (0..images * 5 * 26)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    write_f32(&dir.join("test_ims.npy"), &[images, 5, 26], &features).unwrap();
    let captions: String = (0..5 * images)
        .map(|k| {
            let caption: Vec<&str> = (0..2 + k % 6).map(|j| refs[(3 * k + j) % 26]).collect();
            caption.join(" ") + "\n"
        })
        .collect();
    std::fs::write(dir.join("test_caps.txt"), captions).unwrap();
}

/// `xtask eval` of `hosts` on the split in `dir`, its matrix saved to `sims`.
fn eval(dir: &Path, hosts: &[&str], sims: &Path) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["eval", "--data"]).arg(dir);
    for host in hosts {
        cmd.arg("--checkpoint").arg(checkpoint(host));
    }
    let out = cmd.arg("--save-sims").arg(sims).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_ensemble_of_saf_and_sgr_is_the_mean_of_their_matrices() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let path = |name: &str| dir.path().join(name);
    let printed = eval(dir.path(), &["saf", "sgr"], &path("both.npy"));
    assert!(
        printed.contains("2 model(s)") && printed.contains("rsum"),
        "{printed}"
    );
    eval(dir.path(), &["saf"], &path("saf.npy"));
    eval(dir.path(), &["sgr"], &path("sgr.npy"));
    let [both, saf, sgr] =
        ["both", "saf", "sgr"].map(|m| sims::load(&path(&format!("{m}.npy"))).unwrap());
    assert_eq!((both.images, both.captions), (5, 25));
    assert_ne!(saf.data, sgr.data);
    for ((b, s), g) in both.data.iter().zip(&saf.data).zip(&sgr.data) {
        assert!((b - (s + g) / 2.0).abs() <= 1e-6, "{b} vs ({s} + {g}) / 2");
    }
}
