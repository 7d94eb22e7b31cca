//! The parity fixtures' training step (`crates/backbones/reference/make_parity.py`), run on any
//! device: dropout 0, BatchNorm on batch statistics, the first three captions with the three images.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rcar_backbones::checkpoint::official::load_official;
use rcar_backbones::Rcar;
use rcar_data::npy::read_f32;
use rcar_train::clip::global_norm;
use rcar_train::{hinge, LossMode};
use std::path::PathBuf;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../backbones/tests/fixtures/parity")
        .join(name)
}

pub struct Step {
    /// The model after the forward pass (its BatchNorm statistics updated).
    pub model: Rcar,
    /// Scores `[3, 3]`, rows images.
    pub scores: Vec<f32>,
    pub loss: f64,
    pub grad_norm: f64,
}

/// Fixture `name`'s inputs: padded word ids (one row per caption), their lengths, and the images'
/// shape and values.
pub fn inputs(name: &str) -> (Vec<Vec<i64>>, Vec<usize>, Vec<usize>, Vec<f32>) {
    let dir = fixture(name);
    let inputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("inputs.json")).unwrap()).unwrap();
    let rows = serde_json::from_value(inputs["ids"].clone()).unwrap();
    let lengths = serde_json::from_value(inputs["lengths"].clone()).unwrap();
    let (shape, data) = read_f32(&dir.join("images.npy")).unwrap();
    (rows, lengths, shape, data)
}

/// One forward and backward pass of fixture `name` on the autodiff `device`.
pub fn reference_step(name: &str, device: &Device, mode: LossMode) -> Step {
    let dir = fixture(name);
    let (rows, lengths, shape, data) = inputs(name);
    let n = shape[0];
    let (rows, lengths) = (&rows[..n], &lengths[..n]);
    let t = rows[0].len();
    let (mut model, _) = load_official(&dir.join("checkpoint.pth"), device).unwrap();
    model.txt_enc.dropout.prob = 0.0;
    for rar in &mut model.sim_enc.rars {
        rar.dropout.prob = 0.0;
    }
    let images = Tensor::from_data(TensorData::new(data, shape), device);
    let ids: Tensor<2, Int> = Tensor::from_data(TensorData::new(rows.concat(), [n, t]), device);
    let scores = model.similarity(
        model.encode_images(images),
        model.encode_captions(ids, lengths),
        lengths,
        n * n,
    );
    let loss = hinge(scores.clone(), 0.2, mode);
    let value = loss.clone().into_scalar::<f32>() as f64;
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let grad_norm = global_norm(&model, &grads);
    Step {
        scores: scores.into_data().try_to_vec::<f32>().unwrap(),
        model,
        loss: value,
        grad_norm,
    }
}

/// The largest |got − want| over two slices of the same length.
pub fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "compared slices differ in length");
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}
