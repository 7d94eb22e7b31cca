//! The same training step, and the same evaluation matrix, on a GPU backend and on the CPU backend
//! (`--features wgpu`, CI runs it on Mesa's software Vulkan; `--features cuda` on a machine with an
//! NVIDIA GPU). GPU reductions sum in another order, so the tolerances are float32 ones: scores,
//! the evaluation matrix and BatchNorm running variance to 1e-4 absolute, loss and gradient norm to
//! 1e-3 relative. Each phase prints its time (seen with `--nocapture`): a GPU run cut at its time
//! limit then says where it was, and whether it was slow or stuck (`scripts/gpu-check run`).
#![cfg(any(feature = "wgpu", feature = "cuda"))]

mod common;

use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{fixture, inputs, max_abs_diff, reference_step};
use rcar_backbones::checkpoint::official::load_official;
use rcar_backbones::Matcher;
use rcar_eval::encode::{score, Encoded};
use rcar_eval::progress::Silent;
use rcar_train::LossMode;
use std::time::Instant;

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_matches_the_cpu_forward_backward_and_evaluation() {
    matches_the_cpu(rcar_train::wgpu::wgpu_device().unwrap(), "WGPU");
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_the_cpu_forward_backward_and_evaluation() {
    matches_the_cpu(Device::cuda(0), "CUDA");
}

fn matches_the_cpu(gpu: Device, label: &str) {
    let cpu = Device::flex();
    // Both directions with both regulators; lavapipe compiles every kernel, so one loss mode each.
    for (name, mode) in [
        ("t2i_rcar2", LossMode::Hardest),
        ("i2t_rcar2", LossMode::Sum),
    ] {
        let a = timed(&format!("{name}: CPU training step"), || {
            reference_step(name, &cpu.clone().autodiff(), mode)
        });
        let b = timed(&format!("{name}: {label} training step"), || {
            reference_step(name, &gpu.clone().autodiff(), mode)
        });
        let diff = max_abs_diff(&a.scores, &b.scores);
        assert!(diff <= 1e-4, "{name} {mode:?}: scores differ by {diff}");
        let rel = |x: f64, y: f64| (x - y).abs() / x.abs().max(1e-12);
        assert!(
            rel(a.loss, b.loss) <= 1e-3,
            "{name} {mode:?}: loss {} on the CPU, {} on {label}",
            a.loss,
            b.loss
        );
        assert!(
            rel(a.grad_norm, b.grad_norm) <= 1e-3,
            "{name} {mode:?}: gradient norm {} on the CPU, {} on {label}",
            a.grad_norm,
            b.grad_norm
        );
        let running_var = |step: &common::Step| {
            let bn = &step.model.img_enc.mlp_bn;
            bn.running_var
                .value_sync()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let diff = max_abs_diff(&running_var(&a), &running_var(&b));
        assert!(
            diff <= 1e-4,
            "{name}: BatchNorm running variance differs by {diff}"
        );
        let on_cpu = timed(&format!("{name}: CPU evaluation"), || {
            eval_matrix(name, &cpu)
        });
        let on_gpu = timed(&format!("{name}: {label} evaluation"), || {
            eval_matrix(name, &gpu)
        });
        let diff = max_abs_diff(&on_cpu, &on_gpu);
        assert!(diff <= 1e-4, "{name}: evaluation matrices differ by {diff}");
    }
}

/// `f()`, with its phase announced before and timed after on stderr.
fn timed<T>(phase: &str, f: impl FnOnce() -> T) -> T {
    eprintln!("{phase} ...");
    let started = Instant::now();
    let value = f();
    eprintln!("{phase}: {:.2} s", started.elapsed().as_secs_f64());
    value
}

/// The fixture's images × captions scored as `eval` does (eval mode, the pair grid in blocks).
fn eval_matrix(name: &str, device: &Device) -> Vec<f32> {
    let (model, _) = load_official(&fixture(name).join("checkpoint.pth"), device).unwrap();
    let (rows, lengths, shape, data) = inputs(name);
    let ids: Tensor<2, Int> = Tensor::from_data(
        TensorData::new(rows.concat(), [rows.len(), rows[0].len()]),
        device,
    );
    let images = model.encode_images(Tensor::from_data(TensorData::new(data, shape), device));
    let captions = model.encode_captions(ids, &lengths);
    let model = Matcher::Rcar(model);
    let encoded = Encoded::new(&model, images, captions, lengths);
    score(&model, &encoded, 4, 1, None, &mut Silent).data
}
