//! The same training step on WGPU and on the CPU backend (`--features wgpu`; CI runs it on Mesa's
//! software Vulkan). GPU reductions sum in another order, so the tolerances are float32 ones:
//! scores and BatchNorm running variance to 1e-4 absolute, loss and gradient norm to 1e-3 relative.
#![cfg(feature = "wgpu")]

mod common;

use burn::tensor::{Device, DeviceKind};
use common::{max_abs_diff, reference_step};
use rcar_train::LossMode;

#[test]
fn wgpu_matches_the_cpu_forward_and_backward() {
    let cpu = Device::flex().autodiff();
    let gpu = Device::wgpu(DeviceKind::DefaultDevice).autodiff();
    // Both directions with both regulators; lavapipe compiles every kernel, so one loss mode each.
    for (name, mode) in [
        ("t2i_rcar2", LossMode::Hardest),
        ("i2t_rcar2", LossMode::Sum),
    ] {
        let a = reference_step(name, &cpu, mode);
        let b = reference_step(name, &gpu, mode);
        let diff = max_abs_diff(&a.scores, &b.scores);
        assert!(diff <= 1e-4, "{name} {mode:?}: scores differ by {diff}");
        let rel = |x: f64, y: f64| (x - y).abs() / x.abs().max(1e-12);
        assert!(
            rel(a.loss, b.loss) <= 1e-3,
            "{name} {mode:?}: loss {} on the CPU, {} on WGPU",
            a.loss,
            b.loss
        );
        assert!(
            rel(a.grad_norm, b.grad_norm) <= 1e-3,
            "{name} {mode:?}: gradient norm {} on the CPU, {} on WGPU",
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
    }
}
