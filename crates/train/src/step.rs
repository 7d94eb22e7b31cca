//! One optimisation step (spec §3): the B×B score grid of a batch, the hinge loss, global-norm
//! clipping and AdamW. The trainer and the benchmark share it, so the bench times what training runs.

use crate::clip::clip_global;
use crate::loss::{hinge, LossMode};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use rcar_backbones::Rcar;
use rcar_data::batch::TokenBatch;

#[derive(Debug, Clone, Copy)]
pub struct StepSettings {
    pub margin: f64,
    pub mode: LossMode,
    pub lr: f64,
    pub grad_clip: f64,
    /// Pairs scored per block of the grid.
    pub chunk: usize,
}

pub enum StepOutcome {
    Done {
        model: Rcar,
        loss: f32,
        grad_norm: f64,
    },
    /// The loss was NaN or infinite; the model is returned unchanged.
    NonFinite { model: Rcar, loss: f32 },
}

/// `images`: the batch's region features `[B, R, d]` on the model's (autodiff) device.
pub fn train_step(
    model: Rcar,
    optim: &mut ModuleOptimizer,
    images: Tensor<3>,
    captions: &TokenBatch,
    s: &StepSettings,
) -> StepOutcome {
    let device = images.device();
    let scores = model.similarity(
        model.encode_images(images),
        model.encode_tokens(captions, &device),
        &captions.lengths,
        s.chunk,
    );
    let loss = hinge(scores, s.margin, s.mode);
    let value: f32 = loss.clone().into_scalar::<f32>();
    if !value.is_finite() {
        return StepOutcome::NonFinite { model, loss: value };
    }
    let mut grads = GradientsParams::from_grads(loss.backward(), &model);
    let grad_norm = clip_global(&model, &mut grads, s.grad_clip);
    StepOutcome::Done {
        model: optim.step(s.lr, model, grads),
        loss: value,
        grad_norm,
    }
}
