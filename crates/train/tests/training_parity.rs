//! One training-mode step against the PyTorch reference (`crates/backbones/reference/make_parity.py`,
//! `train_step.json`): dropout 0, BatchNorm on batch statistics, the first three captions with the
//! three images; the loss (both modes) and the global gradient norm must agree to 1e-4 relative, the
//! BatchNorm running statistics after the step to 1e-5 absolute.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rcar_backbones::checkpoint::official::load_official;
use rcar_data::npy::read_f32;
use rcar_train::clip::global_norm;
use rcar_train::{hinge, LossMode};
use std::path::PathBuf;

const REL: f64 = 1e-4;

fn check(name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../backbones/tests/fixtures/parity")
        .join(name);
    let device = Device::flex().autodiff();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("train_step.json")).unwrap())
            .unwrap();
    let inputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("inputs.json")).unwrap()).unwrap();
    let rows: Vec<Vec<i64>> = serde_json::from_value(inputs["ids"].clone()).unwrap();
    let lengths: Vec<usize> = serde_json::from_value(inputs["lengths"].clone()).unwrap();
    let (shape, data) = read_f32(&dir.join("images.npy")).unwrap();
    let n = shape[0];
    let (rows, lengths) = (&rows[..n], &lengths[..n]);
    let t = rows[0].len();

    for (mode, key) in [(LossMode::Sum, "sum"), (LossMode::Hardest, "max")] {
        let (mut model, _) = load_official(&dir.join("checkpoint.pth"), &device).unwrap();
        model.txt_enc.dropout.prob = 0.0;
        for rar in &mut model.sim_enc.rars {
            rar.dropout.prob = 0.0;
        }
        let images = Tensor::from_data(TensorData::new(data.clone(), shape.clone()), &device);
        let ids: Tensor<2, Int> =
            Tensor::from_data(TensorData::new(rows.concat(), [n, t]), &device);
        let scores = model.similarity(
            model.encode_images(images),
            model.encode_captions(ids, lengths),
            lengths,
            n * n,
        );
        let loss = hinge(scores, 0.2, mode);
        let value = loss.clone().into_scalar::<f32>() as f64;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let norm = global_norm(&model, &grads);
        let want_loss = reference[format!("loss_{key}")].as_f64().unwrap();
        let want_norm = reference[format!("grad_norm_{key}")].as_f64().unwrap();
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
        assert!(
            rel(value, want_loss) <= REL,
            "{name} {key}: loss {value} vs {want_loss}"
        );
        assert!(
            rel(norm, want_norm) <= REL,
            "{name} {key}: grad norm {norm} vs {want_norm}"
        );
        if mode == LossMode::Sum {
            // PyTorch's running-variance rule (unbiased batch variance), after one update.
            let bn = &model.img_enc.mlp_bn;
            for (stat, tensor) in [
                ("bn_running_mean", bn.running_mean.value_sync()),
                ("bn_running_var", bn.running_var.value_sync()),
            ] {
                let want: Vec<f32> = serde_json::from_value(reference[stat].clone()).unwrap();
                let got = tensor.into_data().try_to_vec::<f32>().unwrap();
                let diff = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(diff <= 1e-5, "{name}: {stat} off by {diff}");
            }
        }
    }
}

#[test]
fn training_step_matches_the_reference_t2i() {
    for name in ["t2i_base", "t2i_rcr2", "t2i_rar2", "t2i_rcar2"] {
        check(name);
    }
}

#[test]
fn training_step_matches_the_reference_i2t() {
    for name in ["i2t_base", "i2t_rcr2", "i2t_rar2", "i2t_rcar2"] {
        check(name);
    }
}
