//! End to end on the parity fixtures: an official-format checkpoint (RCAR's, or SGRAF's SAF and
//! SGR), loaded as `eval` loads it, encoded and scored by the evaluation path, gives the reference
//! similarity matrix (≤ 1e-5) whatever the chunk size, and the same matrix bit for bit on several
//! threads; a model is refused against a vocabulary of another size.

use burn::tensor::{Device, Tensor, TensorData};
use rcar_backbones::checkpoint::load_any;
use rcar_backbones::checkpoint::official::load_official;
use rcar_data::batch::TokenBatch;
use rcar_data::npy::read_f32;
use rcar_eval::encode::{score, Encoded};
use rcar_eval::Silent;
use std::path::{Path, PathBuf};

mod common;
use common::max_abs_diff;

fn fixture(name: &str) -> PathBuf {
    fixtures().join("parity").join(name)
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../backbones/tests/fixtures")
}

#[test]
fn evaluation_reproduces_the_reference_matrix() {
    let device = Device::flex();
    // (model and reference directory, checkpoint file, inputs directory)
    let rcar = ["t2i_rcar2", "i2t_rcar2", "t2i_base", "i2t_rar2"].map(|name| {
        let dir = format!("parity/{name}");
        (dir.clone(), "checkpoint.pth", dir)
    });
    let sgraf = ["saf", "sgr"].map(|name| {
        let dir = format!("sgraf/{name}");
        (dir.clone(), "model_best.pth.tar", dir)
    });
    // RCR and RAR plugged into them: their scores on the host fixtures' inputs.
    let plugged = ["saf_rcar2", "sgr_rcr2", "sgr_rcar2_mean_local_raw"].map(|name| {
        let host = format!("sgraf/{}", &name[..3]);
        (format!("sgraf/plugged/{name}"), "model_best.pth.tar", host)
    });
    for (name, file, inputs_dir) in rcar.into_iter().chain(sgraf).chain(plugged) {
        let dir = fixtures().join(&name);
        let model = load_any(&dir.join(file), &device).unwrap();
        let inputs_dir = fixtures().join(inputs_dir);
        let inputs: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(inputs_dir.join("inputs.json")).unwrap())
                .unwrap();
        let rows: Vec<Vec<u32>> = serde_json::from_value(inputs["ids"].clone()).unwrap();
        let lengths: Vec<usize> = serde_json::from_value(inputs["lengths"].clone()).unwrap();
        let (shape, data) = read_f32(&inputs_dir.join("images.npy")).unwrap();
        let tokens = TokenBatch {
            max_len: rows[0].len(),
            ids: rows.concat(),
            lengths: lengths.clone(),
        };
        let images = model.encode_images(Tensor::from_data(TensorData::new(data, shape), &device));
        let captions = model.encode_tokens(&tokens, &device);
        let encoded = Encoded::new(&model, images, captions, lengths);
        let (_, reference) = read_f32(&dir.join("sims.npy")).unwrap();
        for chunk in [1, 5, 1000] {
            let sims = score(&model, &encoded, chunk, 1, None, &mut Silent);
            let worst = max_abs_diff(&sims.data, &reference);
            assert!(worst <= 1e-5, "{name} chunk {chunk}: max |diff| {worst}");
            let threaded = score(&model, &encoded, chunk, 3, None, &mut Silent);
            assert_eq!(
                threaded.data, sims.data,
                "{name} chunk {chunk} on 3 threads"
            );
        }
    }
}

#[test]
fn a_vocabulary_of_another_size_is_refused() {
    let (model, _) =
        load_official(&fixture("t2i_base").join("checkpoint.pth"), &Device::flex()).unwrap();
    let vocab = Path::new("data/f30k_vocab.json");
    let err = model
        .config
        .check_vocab(8482, vocab, "model_best.pth")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("f30k_vocab.json") && err.contains("vocab_size 30"),
        "{err}"
    );
    assert!(model.config.check_vocab(30, vocab, "x").is_ok());
}

/// SGRAF's vocabulary has no `<mask>`: its `vocab_size` is one less than the loaded vocabulary.
#[test]
fn an_sgraf_model_counts_its_vocabulary_without_mask() {
    let path = fixtures().join("sgraf/saf/model_best.pth.tar");
    let model = load_any(&path, &Device::flex()).unwrap();
    assert_eq!(model.describe(), "SGRAF SAF");
    let vocab = Path::new("data/f30k_precomp_vocab.json");
    assert!(model.check_vocab(31, vocab, "SAF").is_ok());
    let err = model
        .check_vocab(8482, vocab, "SAF")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("f30k_precomp_vocab.json")
            && err.contains("8481 words (SGRAF has no <mask>)")
            && err.contains("vocab_size 30"),
        "{err}"
    );
}
