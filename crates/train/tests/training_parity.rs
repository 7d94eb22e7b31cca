//! One training-mode step against the PyTorch reference (`crates/backbones/reference/make_parity.py`,
//! `train_step.json`): dropout 0, BatchNorm on batch statistics, the first three captions with the
//! three images; the training-mode scores to 1e-5, the loss (both modes) and the global gradient norm must agree to 1e-4 relative, the
//! BatchNorm running statistics after the step to 1e-5 absolute.

mod common;

use burn::tensor::Device;
use common::{fixture, max_abs_diff, reference_step};
use rcar_train::LossMode;

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
