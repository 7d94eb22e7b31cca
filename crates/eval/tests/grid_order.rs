//! The evaluation path sorts the captions longest first, cuts the pair grid into blocks and scores
//! them on several threads. None of that may change the matrix: it must be the model's own
//! similarity of the split in file order (≤ 1e-5), for both directions.

use burn::tensor::{Device, Tensor, TensorData};
use rcar_backbones::{Direction, Mode, ModelConfig};
use rcar_data::batch::{eval_captions, eval_images};
use rcar_data::split::Split;
use rcar_eval::protocol::similarity;
use rcar_eval::{EvalOptions, Silent};
use std::path::Path;

mod common;
use common::{max_abs_diff, toy_split};

const WORDS: [&str; 6] = ["a", "dog", "runs", "on", "grass", "."];
const IMAGES: usize = 4;
const REGIONS: usize = 3;
const DIM: usize = 6;

fn open_split(dir: &Path) -> Split {
    toy_split(dir, &WORDS, IMAGES, REGIONS, DIM)
}

#[test]
fn sorted_blocked_threaded_scoring_gives_the_models_own_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let split = open_split(dir.path());
    let device = Device::flex();
    for direction in [Direction::T2i, Direction::I2t] {
        let model = ModelConfig::new(split.vocab_size, direction, Mode::CoopRcar, 2)
            .with_img_dim(DIM)
            .with_word_dim(5)
            .with_embed_size(8)
            .with_sim_dim(4)
            .init(&device);

        let tokens = eval_captions(&split, &(0..5 * IMAGES).collect::<Vec<_>>());
        let features = eval_images(&split, 0..IMAGES).unwrap();
        let images = model.encode_images(Tensor::from_data(
            TensorData::new(features, [IMAGES, REGIONS, DIM]),
            &device,
        ));
        let captions = model.encode_tokens(&tokens, &device);
        let expected = model
            .similarity(images, captions, &tokens.lengths, usize::MAX)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();

        let opts = EvalOptions {
            chunk: Some(7),
            workers: Some(3),
            batch: 6,
            ..EvalOptions::default()
        };
        let sims = similarity(&[model.into()], &split, &opts, &device, &mut Silent)
            .unwrap()
            .remove(0);
        let worst = max_abs_diff(&sims.data, &expected);
        assert!(worst <= 1e-5, "{direction:?}: max |diff| {worst}");
    }
}
