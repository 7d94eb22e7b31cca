//! One optimisation step (spec §3): the B×B score grid of a batch, the hinge loss, global-norm
//! clipping and AdamW. The trainer and the benchmark share it, so the bench times what training runs.
//!
//! The loss's gradient with respect to a score is zero except on the positives and, in
//! hardest-negative mode, on each row's and column's hardest violating negative: at most 3B of the
//! B² pairs. The pair-sparse step therefore scores every pair without a graph (blocks on every core,
//! as the evaluation does), takes dL/dS from the loss on those scores, and recomputes with the graph
//! only the pairs where it is non-zero, back-propagating Σ dL/dS_p · S_p. Its gradients are the dense
//! step's (`../shared/docs/pair-sparse.md`); RAR's dropout masks are keyed by pair, so a pair scored
//! twice is dropped the same way twice.

use crate::clip::clip_global;
use crate::cut::{merge, Block, Cut};
use crate::loss::{hinge, LossMode};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Tensor, TensorData};
use rcar_backbones::matcher::Globals;
use rcar_backbones::{Direction, Host, Matcher};
use rcar_data::batch::TokenBatch;
use rcar_eval::encode::{chunk_for_budget, score, Encoded};
use rcar_eval::{default_workers, Silent};
use rcar_regulators::PairDropout;

/// Bytes the scoring pass of a sparse step may use for intermediates, shared by its threads.
const SCORING_BUDGET: usize = 1 << 30;

/// How a step computes its gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Every pair of the batch with the graph.
    Dense,
    /// Every pair without a graph, then the pairs with a non-zero loss gradient with it.
    Sparse,
}

impl Strategy {
    /// Sparse in hardest-negative mode (at most 3B pairs need the graph); dense in sum mode, where
    /// early in training almost every pair violates the margin and a first pass would be wasted,
    /// and always for SAF, whose BatchNorm couples all pairs of a caption (its statistics are the
    /// caption's with every image), so that no pair's score can be recomputed alone.
    pub fn for_step(mode: LossMode, host: Host) -> Self {
        match (mode, host) {
            (LossMode::Hardest, Host::Scan | Host::Sgr) => Self::Sparse,
            _ => Self::Dense,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct StepSettings {
    pub margin: f64,
    pub mode: LossMode,
    pub lr: f64,
    pub grad_clip: f64,
    /// Pairs scored per block of the grid with the graph (dense step).
    pub chunk: usize,
    /// RAR's dropout for this step (its seed derived from the run's and the step's position).
    pub dropout: PairDropout,
    pub strategy: Strategy,
}

pub enum StepOutcome {
    Done {
        model: Matcher,
        loss: f32,
        grad_norm: f64,
        /// Pairs back-propagated (B² in a dense step).
        pairs: usize,
    },
    /// The loss was NaN or infinite; the model is returned unchanged.
    NonFinite { model: Matcher, loss: f32 },
}

/// A step's loss and, where it is finite, its gradients (before clipping).
pub struct StepGradients {
    pub loss: f32,
    pub grads: Option<GradientsParams>,
    /// Pairs back-propagated: B² for the dense step.
    pub pairs: usize,
}

/// `images`: the batch's region features `[B, R, d]` on the model's (autodiff) device.
pub fn train_step(
    model: Matcher,
    optim: &mut ModuleOptimizer,
    images: Tensor<3>,
    captions: &TokenBatch,
    s: &StepSettings,
) -> StepOutcome {
    let step = step_gradients(&model, images, captions, s);
    let Some(mut grads) = step.grads else {
        return StepOutcome::NonFinite {
            model,
            loss: step.loss,
        };
    };
    let grad_norm = clip_global(&model, &mut grads, s.grad_clip);
    StepOutcome::Done {
        model: optim.step(s.lr, model, grads),
        loss: step.loss,
        grad_norm,
        pairs: step.pairs,
    }
}

/// The loss of a batch and the gradients of every parameter, by `s.strategy` (dense for SAF
/// whatever it says: [`Strategy::for_step`]).
pub fn step_gradients(
    model: &Matcher,
    images: Tensor<3>,
    captions: &TokenBatch,
    s: &StepSettings,
) -> StepGradients {
    let device = images.device();
    // The encoders run once, with the graph (BatchNorm on this batch's statistics).
    let img = model.encode_images(images);
    let cap = model.encode_tokens(captions, &device);
    let lengths = &captions.lengths;
    let sparse = s.strategy == Strategy::Sparse && model.config().host != Host::Saf;
    if sparse {
        return sparse_gradients(model, img, cap, lengths, s);
    }
    let scores = match model {
        Matcher::Rcar(m) => m
            .sim_enc
            .grid(&m.config, img, cap, lengths, s.chunk, Some(&s.dropout)),
        Matcher::Sgraf(m) => m.similarity(img, cap, lengths, Some(&s.dropout), None),
    };
    let loss = hinge(scores, s.margin, s.mode);
    let value: f32 = loss.clone().into_scalar::<f32>();
    let grads = value
        .is_finite()
        .then(|| GradientsParams::from_grads(loss.backward(), model));
    StepGradients {
        loss: value,
        grads,
        pairs: lengths.len().pow(2),
    }
}

fn sparse_gradients(
    model: &Matcher,
    img: Tensor<3>,
    cap: Tensor<3>,
    lengths: &[usize],
    s: &StepSettings,
) -> StepGradients {
    let device = img.device();
    let b = lengths.len();
    // SGRAF's global vectors, once for the batch with the graph (VisualSA's BatchNorm on its
    // statistics); both passes read them.
    let globals = model.globals(&img, &cap, lengths);
    // Every pair, without a graph.
    let plain = model.valid();
    let encoded = Encoded {
        images: img.clone().inner(),
        captions: cap.clone().inner(),
        lengths: lengths.to_vec(),
        caption_ids: (0..b).collect(),
        globals: globals.as_ref().map(|g| Globals {
            images: g.images.clone().inner(),
            captions: g.captions.clone().inner(),
        }),
    };
    let workers = default_workers(&device.clone().without_autodiff());
    let chunk = chunk_for_budget(&plain, &encoded, SCORING_BUDGET / workers)
        .min((b * b).div_ceil(workers))
        .max(1);
    let sims = score(
        &plain,
        &encoded,
        chunk,
        workers,
        Some(&s.dropout),
        &mut Silent,
    );
    // dL/dS through the loss's own code, so the picks (hardest negatives, ties) are the dense step's.
    let leaf = Tensor::<2>::from_data(TensorData::new(sims.data, [b, b]), &device).require_grad();
    let loss = hinge(leaf.clone(), s.margin, s.mode);
    let value: f32 = loss.clone().into_scalar::<f32>();
    if !value.is_finite() {
        return StepGradients {
            loss: value,
            grads: None,
            pairs: 0,
        };
    }
    let d_scores: Vec<f32> = leaf
        .grad(&loss.backward())
        .expect("the scores are a leaf of the loss")
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float32 gradients");
    // The pairs that carry gradient, grouped by context item (images in t2i, captions in i2t) so
    // each group is one block. With none (every margin met) one pair at weight 0 still gives every
    // parameter its zero gradient, as the dense step does, for AdamW's moments and weight decay.
    let direction = model.direction();
    let at = |group: usize, item: usize| match direction {
        Direction::T2i => d_scores[group * b + item],
        Direction::I2t => d_scores[item * b + group],
    };
    let mut groups: Vec<(usize, Vec<usize>)> = (0..b)
        .map(|group| (group, (0..b).filter(|&k| at(group, k) != 0.0).collect()))
        .filter(|(_, items): &(usize, Vec<usize>)| !items.is_empty())
        .collect();
    if groups.is_empty() {
        groups.push((0, vec![0]));
    }
    let pairs: usize = groups.iter().map(|(_, items)| items.len()).sum();
    let cut = Cut::new(direction, &img, &cap, globals.as_ref());
    let blocks: Vec<Block> = groups
        .iter()
        .map(|(group, items)| cut.block(lengths, *group, items))
        .collect();
    let surrogate = blocks
        .iter()
        .map(|block| {
            let scores = model.pair_scores(&block.pairs, block.globals.clone(), Some(&s.dropout));
            let weights: Vec<f32> = block
                .pairs
                .ids
                .iter()
                .map(|&(i, j)| d_scores[i * b + j])
                .collect();
            let n = weights.len();
            (scores * Tensor::<1>::from_data(TensorData::new(weights, [n]), &device)).sum()
        })
        .reduce(|a, b| a + b)
        .expect("at least one group");
    let pair_grads = surrogate.backward();
    let encoders = cut.surrogate(&blocks, &pair_grads);
    let mut grads = GradientsParams::from_grads(pair_grads, model);
    merge(
        model,
        &mut grads,
        GradientsParams::from_grads(encoders.backward(), model),
    );
    StepGradients {
        loss: value,
        grads: Some(grads),
        pairs,
    }
}
