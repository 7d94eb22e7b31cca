//! torch's legacy (pre-1.6) serialization, the format of SGRAF's released checkpoints. Fixtures
//! from `crates/backbones/reference/make_legacy.py` (torch's own legacy writer): a parity checkpoint
//! re-saved, and SGRAF's layout at toy sizes with every value written out beside it. Values are
//! compared exactly: they are bytes copied, not computed.

use burn::tensor::Device;
use rcar_backbones::checkpoint::official::load_official;
use rcar_backbones::checkpoint::pth::{read_pth, OptValue};
use std::path::{Path, PathBuf};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

#[test]
fn a_legacy_checkpoint_reads_as_its_zip_twin() {
    let zip = read_pth(&fixture("parity/t2i_rcar2/checkpoint.pth")).unwrap();
    let legacy_path = fixture("parity/t2i_rcar2/checkpoint_legacy.pth");
    let legacy = read_pth(&legacy_path).unwrap();
    assert!(!zip.tensors.is_empty());
    assert_eq!(legacy.tensors, zip.tensors);
    assert_eq!(legacy.opt, zip.opt);
    assert_eq!(
        (legacy.epoch, legacy.best_rsum, legacy.eiters),
        (zip.epoch, zip.best_rsum, zip.eiters)
    );
    load_official(&legacy_path, &Device::flex()).expect("builds the model");
}

#[test]
fn sgrafs_layout_reads_every_part_and_the_namespace() {
    let ckpt = read_pth(&fixture("legacy/sgraf_layout.pth")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("legacy/sgraf_layout.json")).unwrap(),
    )
    .unwrap();
    let tensors = expected["tensors"].as_object().unwrap();
    // Keys carry the list index of their state dict; the int64 counter is skipped.
    let keys: Vec<&String> = ckpt.tensors.keys().collect();
    let mut want: Vec<&String> = tensors.keys().collect();
    want.sort();
    assert_eq!(keys, want);
    assert!(ckpt.tensors.contains_key("2.sim_eval_w.weight"));
    for (key, t) in tensors {
        let got = &ckpt.tensors[key];
        let shape: Vec<usize> = serde_json::from_value(t["shape"].clone()).unwrap();
        let values: Vec<f32> = serde_json::from_value(t["values"].clone()).unwrap();
        assert_eq!(got.shape, shape, "{key}");
        assert_eq!(got.data, values, "{key}");
    }
    let opt = &ckpt.opt;
    assert_eq!(opt["module_name"], OptValue::Str("SAF".into()));
    assert_eq!(opt["sgr_step"], OptValue::Int(3));
    assert_eq!(opt["vocab_size"], OptValue::Int(9));
    assert_eq!(opt["margin"], OptValue::Float(0.2));
    assert_eq!(opt["max_violation"], OptValue::Bool(true));
    assert_eq!(
        (ckpt.epoch, ckpt.best_rsum, ckpt.eiters),
        (Some(3), Some(512.5), Some(4530))
    );
}

#[test]
fn a_truncated_legacy_file_is_refused_by_name() {
    let bytes = std::fs::read(fixture("legacy/sgraf_layout.pth")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model_best.pth.tar");
    // Three bytes short: inside the last storage, a one-element bias.
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let err = read_pth(&path).expect_err("must be refused").to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("legacy torch.save format"), "{err}");
    assert!(err.contains("ends inside storage"), "{err}");
}
