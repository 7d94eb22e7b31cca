//! `cargo xtask eval --checkpoint SAF.pth.tar --checkpoint SGR.pth.tar` scores SGRAF's ensemble: the
//! released-format checkpoints (the parity fixtures) load by themselves, against a vocabulary file
//! without `<mask>` of SGRAF's size, and the ensemble's matrix is the mean of the two models' own.
//! `index` and `search` answer from the same checkpoint what its matrix says, and `eval
//! --shortlist` as long as the gallery ranks as the exhaustive matrix does.

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
    let mut args = vec!["eval".into(), "--data".into(), dir.display().to_string()];
    for host in hosts {
        args.push("--checkpoint".into());
        args.push(checkpoint(host).display().to_string());
    }
    args.extend(["--save-sims".into(), sims.display().to_string()]);
    xtask(&args).unwrap()
}

/// Runs `xtask` with `args`: its stdout, or its stderr when it fails.
fn xtask(args: &[String]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}{stderr}"))
    }
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

#[test]
fn an_index_of_saf_answers_as_its_matrix_and_refuses_features_of_another_width() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let path = |name: &str| dir.path().join(name).display().to_string();
    let data = dir.path().display().to_string();
    let saf = checkpoint("saf").display().to_string();
    eval(dir.path(), &["saf"], Path::new(&path("saf.npy")));
    let matrix = sims::load(Path::new(&path("saf.npy"))).unwrap();
    let index = |data: &str| {
        xtask(
            &[
                "index",
                "--checkpoint",
                &saf,
                "--data",
                data,
                "--out",
                &path("g.idx"),
            ]
            .map(String::from),
        )
    };
    let printed = index(&data).unwrap();
    assert!(
        printed.contains("indexed 5 images and 25 captions"),
        "{printed}"
    );

    let caption = 7;
    let text = std::fs::read_to_string(path("test_caps.txt")).unwrap();
    let text = text.lines().nth(caption).unwrap().to_string();
    let answer = xtask(
        &[
            "search",
            "--index",
            &path("g.idx"),
            "--text",
            &text,
            "--top",
            "5",
            "--json",
        ]
        .map(String::from),
    )
    .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let hits = answer["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 5, "{answer}");
    for hit in hits {
        let image = hit["image"].as_u64().unwrap() as usize;
        let score = hit["score"].as_f64().unwrap() as f32;
        let want = matrix.row(image)[caption];
        assert!(
            (score - want).abs() <= 1e-5,
            "image {image}: {score} vs {want}"
        );
    }

    let table = xtask(
        &[
            "eval",
            "--checkpoint",
            &saf,
            "--data",
            &data,
            "--shortlist",
            "2,25",
            "--json",
            &path("short.json"),
        ]
        .map(String::from),
    )
    .unwrap();
    assert!(table.contains("| shortlist"), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path("short.json")).unwrap()).unwrap();
    let exhaustive = &report["exhaustive"];
    let all = &report["rows"][1];
    assert_eq!(all["k"], 25);
    for key in ["i2t", "t2i", "rsum"] {
        assert_eq!(all[key], exhaustive[key], "{key}: {report}");
    }

    let wide = tempfile::tempdir().unwrap();
    dataset(wide.path());
    write_f32(
        &wide.path().join("test_ims.npy"),
        &[5, 5, 27],
        &[0.5; 5 * 5 * 27],
    )
    .unwrap();
    let err = index(&wide.path().display().to_string()).unwrap_err();
    assert!(
        err.contains("test_ims.npy") && err.contains("img_dim 26"),
        "{err}"
    );
}
