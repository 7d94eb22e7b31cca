//! End to end on the parity fixtures: an official-format checkpoint, encoded and scored by the
//! evaluation path, gives the reference similarity matrix (≤ 1e-5) whatever the chunk size, and
//! the same matrix bit for bit on several threads; a model is refused against a vocabulary of
//! another size.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rcar_backbones::checkpoint::official::load_official;
use rcar_data::npy::read_f32;
use rcar_eval::encode::{score, Encoded};
use rcar_eval::Silent;
use std::path::{Path, PathBuf};

mod common;
use common::max_abs_diff;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../backbones/tests/fixtures/parity")
        .join(name)
}

#[test]
fn evaluation_reproduces_the_reference_matrix() {
    let device = Device::flex();
    for name in ["t2i_rcar2", "i2t_rcar2", "t2i_base", "i2t_rar2"] {
        let dir = fixture(name);
        let (model, _) = load_official(&dir.join("checkpoint.pth"), &device).unwrap();
        let inputs: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("inputs.json")).unwrap())
                .unwrap();
        let rows: Vec<Vec<i64>> = serde_json::from_value(inputs["ids"].clone()).unwrap();
        let lengths: Vec<usize> = serde_json::from_value(inputs["lengths"].clone()).unwrap();
        let (shape, data) = read_f32(&dir.join("images.npy")).unwrap();
        let ids: Tensor<2, Int> = Tensor::from_data(
            TensorData::new(rows.concat(), [rows.len(), rows[0].len()]),
            &device,
        );
        let encoded = Encoded {
            images: model.encode_images(Tensor::from_data(TensorData::new(data, shape), &device)),
            captions: model.encode_captions(ids, &lengths),
            caption_ids: (0..lengths.len()).collect(),
            lengths,
        };
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
