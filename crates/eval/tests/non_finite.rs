//! NaN or ±Inf never reach the ranking: in a split's features, in a saved matrix, or coming out of a
//! checkpoint's weights, they are refused with the file (or checkpoint), the rows and the counts.

use burn::module::Param;
use burn::tensor::{Device, Tensor};
use rcar_backbones::{Direction, Mode, ModelConfig, Rcar};
use rcar_data::npy::write_f32;
use rcar_data::split::Split;
use rcar_data::vocab::Vocab;
use rcar_eval::{evaluate, sims, EvalOptions, Silent};
use std::path::Path;

const IMAGES: usize = 3;
const ROW: usize = 2 * 4;

/// Three images of 2 regions × 4 dims (`nan_at`: a value index made NaN), five captions each.
fn open_split(dir: &Path, nan_at: Option<usize>) -> Split {
    let mut features: Vec<f32> = (0..IMAGES * ROW).map(|i| (i % 7) as f32 / 7.0).collect();
    if let Some(k) = nan_at {
        features[k] = f32::NAN;
    }
    write_f32(&dir.join("test_ims.npy"), &[IMAGES, 2, 4], &features).unwrap();
    let captions = ["a dog .\n", "a red dog .\n", "dog .\n"].repeat(5).concat();
    std::fs::write(dir.join("test_caps.txt"), captions).unwrap();
    Split::open(dir, "test", &Vocab::from_words(&["a", "red", "dog", "."])).unwrap()
}

fn model(split: &Split, device: &Device) -> Rcar {
    ModelConfig::new(split.vocab_size, Direction::T2i, Mode::CoopRcar, 2)
        .with_img_dim(4)
        .with_word_dim(5)
        .with_embed_size(10)
        .with_sim_dim(6)
        .init(device)
}

fn eval_error(model: Rcar, split: &Split, device: &Device) -> String {
    let names = vec!["runs/x".to_string()];
    evaluate(
        &[model.into()],
        &names,
        split,
        &EvalOptions::default(),
        device,
        &mut Silent,
    )
    .map(|_| ())
    .unwrap_err()
    .to_string()
}

#[test]
fn a_nan_region_is_refused_naming_the_features_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let clean = open_split(dir.path(), None);
    let m = model(&clean, &device);
    let names = vec!["runs/x".to_string()];
    assert!(evaluate(
        &[m.clone().into()],
        &names,
        &clean,
        &EvalOptions::default(),
        &device,
        &mut Silent
    )
    .is_ok());
    // Image 1's second region.
    let split = open_split(dir.path(), Some(ROW + 5));
    let err = eval_error(m, &split, &device);
    assert!(
        err.contains("test_ims.npy") && err.contains(&format!("row 1 (1 of {ROW})")),
        "{err}"
    );
}

#[test]
fn weights_that_give_nan_scores_are_refused_naming_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let split = open_split(dir.path(), None);
    let mut m = model(&split, &device);
    let dims = m.img_enc.fc.weight.val().dims();
    m.img_enc.fc.weight = Param::from_tensor(Tensor::full(dims, f32::NAN, &device));
    let err = eval_error(m, &split, &device);
    assert!(
        err.starts_with("runs/x: ")
            && err.contains("45 scores not finite")
            && err.contains("weights"),
        "{err}"
    );
}

#[test]
fn a_saved_matrix_with_nan_is_refused_naming_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = vec![0.5f32; 2 * 10];
    data[10 + 3] = f32::NAN;
    data[10 + 7] = f32::NEG_INFINITY;
    let path = dir.path().join("sims.npy");
    write_f32(&path, &[2, 10], &data).unwrap();
    let err = sims::load_all(&[&path]).unwrap_err().to_string();
    assert!(
        err.contains("sims.npy")
            && err.contains("2 scores not finite")
            && err.contains("image 1 (2 of 10)"),
        "{err}"
    );
}
