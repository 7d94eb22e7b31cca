//! The pair-sparse step's gradients are the dense step's: every pair scored without a graph, only the
//! pairs with a non-zero loss gradient recomputed with it, RAR's dropout keyed by pair (0.4 here, so
//! a mask that differed between the two passes would show). All eight configurations, both loss
//! modes. Tolerance: per parameter, max |Δ| ≤ 1e-6 + 1e-4 · max |dense gradient| (float32 sums
//! taken in another order: other block shapes; the absolute term covers parameters whose gradient is
//! zero up to rounding, like a bias before a BatchNorm), and the losses to 1e-5 relative.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};
use rcar_backbones::{Direction, Matcher, Mode, ModelConfig};
use rcar_data::batch::TokenBatch;
use rcar_regulators::PairDropout;
use rcar_train::{step_gradients, LossMode, StepSettings, Strategy};

const RTOL: f32 = 1e-4;
const ATOL: f32 = 1e-6;
const B: usize = 8;

/// The worst per-parameter difference over its allowance (≤ 1 passes), and the number of parameters
/// compared.
struct Compare<'a> {
    dense: &'a GradientsParams,
    sparse: &'a GradientsParams,
    worst: f32,
    params: usize,
    missing: Vec<String>,
}

impl ModuleVisitor for Compare<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.val().is_require_grad() {
            return;
        }
        let values = |g: Tensor<D>| g.into_data().try_to_vec::<f32>().unwrap();
        match (
            self.dense.get::<D>(param.id),
            self.sparse.get::<D>(param.id),
        ) {
            (Some(d), Some(s)) => {
                let (d, s) = (values(d), values(s));
                let scale = d.iter().fold(0f32, |m, v| m.max(v.abs()));
                let diff = d
                    .iter()
                    .zip(&s)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                self.worst = self.worst.max(diff / (ATOL + RTOL * scale));
                self.params += 1;
            }
            (d, s) => self.missing.push(format!(
                "{:?}: dense {}, sparse {}",
                param.id,
                d.is_some(),
                s.is_some()
            )),
        }
    }
}

/// Scales every weight: RAR at its initial scale pools almost uniformly, so its dropout would hardly
/// move a score, and a mask that differed between the passes could go unseen.
struct Scale(f32);

impl ModuleMapper for Scale {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let k = self.0;
        param.map(|t| t.mul_scalar(k).detach().require_grad())
    }
}

fn batch(device: &Device) -> (Tensor<3>, TokenBatch) {
    let images = Tensor::<3>::random([B, 5, 26], Distribution::Normal(0.0, 1.0), device);
    // Longest first, as the loader sorts them; padded to 9.
    let captions: Vec<Vec<u32>> = [9usize, 8, 7, 5, 5, 4, 3, 2]
        .iter()
        .enumerate()
        .map(|(c, &len)| {
            (0..len)
                .map(|k| (3 + (c * 7 + k * 5) % 37) as u32)
                .collect()
        })
        .collect();
    (images, TokenBatch::pad(&captions))
}

fn gradients(
    model: &Matcher,
    strategy: Strategy,
    mode: LossMode,
    device: &Device,
) -> (f32, GradientsParams, usize) {
    // Word dropout draws from the backend's generator: the same draws for both steps.
    device.seed(5);
    let (images, captions) = batch(device);
    let settings = StepSettings {
        margin: 0.2,
        mode,
        lr: 5e-4,
        grad_clip: 2.0,
        chunk: B * B,
        dropout: PairDropout {
            prob: 0.4,
            seed: 11,
        },
        strategy,
    };
    let step = step_gradients(model, images, &captions, &settings);
    (step.loss, step.grads.expect("finite loss"), step.pairs)
}

#[test]
fn sparse_gradients_equal_dense_ones_in_every_configuration_and_loss_mode() {
    let device = Device::flex().autodiff();
    for direction in [Direction::T2i, Direction::I2t] {
        for (mode, steps) in [
            (Mode::OnlyRcr, 0),
            (Mode::OnlyRcr, 2),
            (Mode::OnlyRar, 2),
            (Mode::CoopRcar, 2),
        ] {
            device.seed(1);
            let mut model = ModelConfig::new(40, direction, mode, steps)
                .with_img_dim(26)
                .with_word_dim(12)
                .with_embed_size(44)
                .with_sim_dim(18)
                .with_dropout(0.4)
                .init(&device);
            model.sim_enc.rars = std::mem::take(&mut model.sim_enc.rars)
                .into_iter()
                .map(|rar| rar.map(&mut Scale(4.0)))
                .collect();
            let model = Matcher::Rcar(model);
            for loss in [LossMode::Sum, LossMode::Hardest] {
                let label = format!("{direction:?} {mode:?} {steps} {loss:?}");
                let (dense_loss, dense, dense_pairs) =
                    gradients(&model, Strategy::Dense, loss, &device);
                let (sparse_loss, sparse, pairs) =
                    gradients(&model, Strategy::Sparse, loss, &device);
                assert_eq!(dense_pairs, B * B);
                let rel = (dense_loss - sparse_loss).abs() / dense_loss.abs().max(1e-6);
                assert!(
                    rel <= 1e-5,
                    "{label}: loss {dense_loss} dense, {sparse_loss} sparse"
                );
                if loss == LossMode::Hardest {
                    assert!(pairs <= 3 * B, "{label}: {pairs} pairs back-propagated");
                }
                let mut compare = Compare {
                    dense: &dense,
                    sparse: &sparse,
                    worst: 0.0,
                    params: 0,
                    missing: Vec::new(),
                };
                model.visit(&mut compare);
                assert!(compare.missing.is_empty(), "{label}: {:?}", compare.missing);
                assert!(compare.params > 0);
                assert!(
                    compare.worst <= 1.0,
                    "{label}: gradients differ by {:.2} times the tolerance ({pairs} pairs)",
                    compare.worst
                );
                eprintln!(
                    "{label}: {pairs} of {} pairs, worst difference {:.3} of the tolerance",
                    B * B,
                    compare.worst
                );
            }
        }
    }
}
