//! One training-mode step against the PyTorch references (`train_step.json` of
//! `crates/backbones/reference/make_parity.py` for RCAR, of `make_sgraf.py` for SGRAF's SAF and
//! SGR): dropout 0, BatchNorm on batch statistics (SAF's per caption), the first three captions
//! with the three images; the training-mode scores to 1e-5, the loss (both modes) and the global
//! gradient norm must agree to 1e-4 relative (one fixture's norm to 2e-4: [`norm_tolerance`]), the
//! BatchNorm running statistics after the step to 1e-5 absolute.

mod common;

use burn::module::RunningState;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{fixture, max_abs_diff, reference_step};
use rcar_backbones::checkpoint::sgraf::load_sgraf;
use rcar_backbones::sgraf::Sgraf;
use rcar_data::npy::read_f32;
use rcar_train::clip::global_norm;
use rcar_train::{hinge, LossMode};
use std::path::PathBuf;

const REL: f64 = 1e-4;

fn check(name: &str) {
    let device = Device::flex().autodiff();
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(name).join("train_step.json")).unwrap(),
    )
    .unwrap();
    for (mode, key) in [(LossMode::Sum, "sum"), (LossMode::Hardest, "max")] {
        let step = reference_step(name, &device, mode);
        let want_loss = reference[format!("loss_{key}")].as_f64().unwrap();
        let want_norm = reference[format!("grad_norm_{key}")].as_f64().unwrap();
        let want_scores: Vec<Vec<f32>> =
            serde_json::from_value(reference[format!("scores_{key}")].clone()).unwrap();
        let diff = max_abs_diff(&step.scores, &want_scores.concat());
        assert!(
            diff <= 1e-5,
            "{name} {key}: training-mode scores off by {diff}"
        );
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
        assert!(
            rel(step.loss, want_loss) <= REL,
            "{name} {key}: loss {} vs {want_loss}",
            step.loss
        );
        assert!(
            rel(step.grad_norm, want_norm) <= REL,
            "{name} {key}: grad norm {} vs {want_norm}",
            step.grad_norm
        );
        if mode == LossMode::Sum {
            // PyTorch's running-variance rule (unbiased batch variance), after one update.
            let bn = &step.model.img_enc.mlp_bn;
            for (stat, tensor) in [
                ("bn_running_mean", bn.running_mean.value_sync()),
                ("bn_running_var", bn.running_var.value_sync()),
            ] {
                let want: Vec<f32> = serde_json::from_value(reference[stat].clone()).unwrap();
                let got = tensor.into_data().try_to_vec::<f32>().unwrap();
                let diff = max_abs_diff(&got, &want);
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

// SGRAF's SAF and SGR hosts (`crates/backbones/reference/make_sgraf.py`): the three images with
// the first three captions; every BatchNorm's running statistics after the step (SAF's moved once
// per caption).

/// The gradient norm's relative tolerance. `plugged/saf_rcr2`'s loss has a kink within float32
/// rounding of its word embeddings (caption 0, word 3): embeddings that differ by at most 6e-8 (the
/// fused CPU recurrence's and the Burn-op one's, which agree that closely) move the gradient norm
/// by 1.2e-4 relative, so this fixture alone is held to 2e-4.
fn norm_tolerance(name: &str) -> f64 {
    if name == "plugged/saf_rcr2" {
        2e-4
    } else {
        REL
    }
}

fn sgraf_dir(host: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../backbones/tests/fixtures/sgraf")
        .join(host)
}

fn floats(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// The model of fixture directory `name` on `device`, without dropout.
fn sgraf_model(name: &str, device: &Device) -> Sgraf {
    let (mut model, _) = load_sgraf(&sgraf_dir(name).join("model_best.pth.tar"), device).unwrap();
    model.txt_enc.dropout.prob = 0.0;
    model.sim_enc.visual.dropout.prob = 0.0;
    model.sim_enc.textual.dropout.prob = 0.0;
    for rar in &mut model.sim_enc.rars {
        rar.dropout.prob = 0.0;
    }
    model
}

/// The training step of fixture directory `name` (a host, or `plugged/…`) on the inputs of the
/// host fixture `host`.
fn check_sgraf(host: &str) {
    check_sgraf_model(host, host);
}

fn check_sgraf_model(name: &str, host: &str) {
    let device = Device::flex().autodiff();
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sgraf_dir(name).join("train_step.json")).unwrap(),
    )
    .unwrap();
    let inputs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sgraf_dir(host).join("inputs.json")).unwrap(),
    )
    .unwrap();
    let rows: Vec<Vec<i64>> = serde_json::from_value(inputs["ids"].clone()).unwrap();
    let lengths: Vec<usize> = serde_json::from_value(inputs["lengths"].clone()).unwrap();
    let (shape, data) = read_f32(&sgraf_dir(host).join("images.npy")).unwrap();
    let n = shape[0];
    let (rows, lengths) = (&rows[..n], &lengths[..n]);
    let model = sgraf_model(name, &device);
    let host = name;
    for (mode, key) in [(LossMode::Sum, "sum"), (LossMode::Hardest, "max")] {
        let images = Tensor::from_data(TensorData::new(data.clone(), shape.clone()), &device);
        let ids: Tensor<2, Int> =
            Tensor::from_data(TensorData::new(rows.concat(), [n, rows[0].len()]), &device);
        let scores = model.similarity(
            model.encode_images(images),
            model.encode_captions(ids, lengths),
            lengths,
            None,
            None,
        );
        let loss = hinge(scores.clone(), 0.2, mode);
        let value = f64::from(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let norm = global_norm(&model, &grads);

        let want: Vec<Vec<f32>> =
            serde_json::from_value(reference[format!("scores_{key}")].clone()).unwrap();
        let got = scores.into_data().try_to_vec::<f32>().unwrap();
        let diff = max_abs_diff(&got, &want.concat());
        assert!(diff <= 1e-5, "{host} {key}: scores off by {diff}");
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
        let want_loss = reference[format!("loss_{key}")].as_f64().unwrap();
        assert!(
            rel(value, want_loss) <= REL,
            "{host} {key}: loss {value} vs {want_loss}"
        );
        let want_norm = reference[format!("grad_norm_{key}")].as_f64().unwrap();
        assert!(
            rel(norm, want_norm) <= norm_tolerance(host),
            "{host} {key}: gradient norm {norm} vs {want_norm}"
        );
        if mode == LossMode::Sum {
            let visual = &model.sim_enc.visual;
            let mut bns = vec![
                ("v_global_w.embedding_local.1", &visual.local_bn),
                ("v_global_w.embedding_global.1", &visual.global_bn),
            ];
            if let Some(saf) = &model.sim_enc.saf {
                bns.push(("SAF_module.bn", &saf.bn));
            }
            for (name, bn) in bns {
                let stats: [(&str, &RunningState<Tensor<1>>); 2] = [
                    ("running_mean", &bn.running_mean),
                    ("running_var", &bn.running_var),
                ];
                for (stat, state) in stats {
                    let want: Vec<f32> =
                        serde_json::from_value(reference[format!("{name}.{stat}")].clone())
                            .unwrap();
                    let diff = max_abs_diff(&floats(state.value_sync()), &want);
                    assert!(diff <= 1e-5, "{host}: {name}.{stat} off by {diff}");
                }
            }
        }
    }
}

#[test]
fn a_saf_training_step_matches_the_reference() {
    check_sgraf("saf");
}

#[test]
fn an_sgr_training_step_matches_the_reference() {
    check_sgraf("sgr");
}

/// RCR and RAR plugged into SAF and SGR (`plugged/`, every mode at N = 1 and 2, and the variants).
#[test]
fn plugged_sgraf_training_steps_match_the_reference() {
    let dir = sgraf_dir("plugged");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 16);
    for name in names {
        let host = &name[..3];
        check_sgraf_model(&format!("plugged/{name}"), host);
    }
}
