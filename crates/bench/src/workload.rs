//! The workload and its measurements. Inputs are random (timings do not depend on values); every
//! timed call reads one value back so lazy backends run the whole graph.

use crate::flops;
use crate::memory::{extrapolate, host_ceiling, peak_of, Growth, Peak};
use crate::reference::{backend_matmul, gemm_crate, Shape};
use crate::report::{BackendReport, Measurement};
use crate::timing::{median_beside, median_seconds, Repeats, Rival};
use burn::tensor::{Device, Distribution, Tensor};
use rand::Rng;
use rcar_backbones::sgraf::SMOOTH;
use rcar_backbones::{Direction, Host, Matcher, Mode, ModelConfig};
use rcar_data::batch::{derive_rng, TokenBatch};
use rcar_eval::encode::{pairs_per_block, score, Encoded};
use rcar_eval::{default_workers, on_cpu, EvalOptions, Silent};
use rcar_regulators::PairDropout;
use rcar_train::config::OptimizerKind;
use rcar_train::{
    hinge, optimizer, step_gradients, train_step, LossMode, StepOutcome, StepSettings, Strategy,
};
use std::cell::Cell;
use std::rc::Rc;

/// The share of the host's free memory a training row may be estimated to take.
const HOST_SHARE: f64 = 0.8;
const GIB: f64 = (1u64 << 30) as f64;

/// The modes compared in the pair-scoring rows: the baseline and each regulator at two steps.
pub const MODES: [(Mode, usize); 4] = [
    (Mode::OnlyRcr, 0),
    (Mode::OnlyRar, 2),
    (Mode::OnlyRcr, 2),
    (Mode::CoopRcar, 2),
];

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Dimensions, and the direction and mode of the training-step rows.
    pub model: ModelConfig,
    pub regions: usize,
    /// Tokens per caption, `<start>` and `<end>` included.
    pub words: usize,
    /// Items per encoder call.
    pub encode_batch: usize,
    /// Images × captions scored per pair-scoring call.
    pub grid: (usize, usize),
    /// Batch sizes of the training-step rows.
    pub train_batches: Vec<usize>,
    pub repeats: Repeats,
    pub seed: u64,
}

/// Pairs per scoring block of `mc` at the bench's grid, sized as the evaluation sizes them on a
/// backend of this kind (`cpu`) with `workers` scoring threads, at most one block per thread. The
/// PyTorch script scores in the same blocks (`TorchPeer`).
pub fn scoring_chunk(cfg: &BenchConfig, mc: &ModelConfig, cpu: bool, workers: usize) -> usize {
    let tokens = mc.direction.query_and_context(cfg.regions, cfg.words);
    let (ni, nc) = cfg.grid;
    let budget = EvalOptions::default().mem_budget / workers.max(1);
    pairs_per_block(mc, tokens, budget, cpu).min((ni * nc).div_ceil(workers.max(1)))
}

/// Region features `[n, R, d]`.
pub(crate) fn images(cfg: &BenchConfig, n: usize, device: &Device) -> Tensor<3> {
    Tensor::random(
        [n, cfg.regions, cfg.model.img_dim],
        Distribution::Normal(0.0, 1.0),
        device,
    )
}

/// `n` captions of `cfg.words` random word ids.
pub(crate) fn captions(cfg: &BenchConfig, n: usize, stream: u64) -> TokenBatch {
    let mut rng = derive_rng(cfg.seed, &[stream]);
    let rows: Vec<Vec<u32>> = (0..n)
        .map(|_| {
            (0..cfg.words)
                .map(|_| rng.random_range(4..cfg.model.vocab_size as u32))
                .collect()
        })
        .collect();
    TokenBatch::pad(&rows)
}

/// Forces a lazy backend to compute `t`.
pub(crate) fn touch<const D: usize>(t: Tensor<D>) {
    let _ = t.sum().into_data();
}

pub fn mode_name(mode: Mode, steps: usize) -> String {
    match mode {
        Mode::OnlyRcr if steps == 0 => "baseline".into(),
        Mode::OnlyRcr => format!("only_rcr {steps}"),
        Mode::OnlyRar => format!("only_rar {steps}"),
        Mode::CoopRcar => format!("coop_rcar {steps}"),
    }
}

/// A row's model: `t2i coop_rcar 2` on the SCAN host, `SAF` or `SGR` on SGRAF's.
pub fn model_name(model: &ModelConfig) -> String {
    match model.host {
        Host::Scan => format!(
            "{} {}",
            direction_name(model.direction),
            mode_name(model.mode, model.steps)
        ),
        Host::Saf => "SAF".into(),
        Host::Sgr => "SGR".into(),
    }
}

/// SGRAF's `host` at the bench's sizes (t2i, λ = 9, no regulators).
fn sgraf_config(cfg: &BenchConfig, host: Host) -> ModelConfig {
    ModelConfig {
        host,
        direction: Direction::T2i,
        mode: Mode::OnlyRcr,
        steps: 0,
        t2i_smooth: SMOOTH,
        regions: cfg.regions,
        ..cfg.model.clone()
    }
}

pub fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::T2i => "t2i",
        Direction::I2t => "i2t",
    }
}

/// Runs every measurement on `device`; `log` hears each row as it completes (runs take minutes on
/// a CPU). Every timed call alternates with `rival`'s call of the same row where it has one (the
/// encoders, pair scoring, the training steps that fit beside this process), whose median becomes
/// the row's `torch` figure.
pub fn run(
    cfg: &BenchConfig,
    backend: &str,
    device: &Device,
    cpu_backend: bool,
    device_name: String,
    log: &mut dyn FnMut(&Measurement),
    rival: &mut Rival,
) -> BackendReport {
    device.seed(cfg.seed);
    let r = cfg.repeats;
    let mut rows = Vec::new();
    let mut push = |m: Measurement, rows: &mut Vec<Measurement>| {
        log(&m);
        rows.push(m);
    };

    let (reference_gflops, reference_how) = reference(cfg, device, cpu_backend);

    // Encoders, inference mode.
    let model = cfg.model.init(device);
    let b = cfg.encode_batch;
    let batch_images = images(cfg, b, device);
    let name = format!("image encoder, batch {b}");
    let m = measured(name, b, "images/s", device, r, rival, || {
        touch(model.encode_images(batch_images.clone()))
    });
    push(m, &mut rows);
    let batch_captions = captions(cfg, b, 1);
    let name = format!("text encoder, batch {b}");
    let m = measured(name, b, "captions/s", device, r, rival, || {
        touch(model.encode_tokens(&batch_captions, device))
    });
    push(m, &mut rows);

    // Pair scoring on encoded inputs, in the evaluation's blocks (at most one per thread).
    let (ni, nc) = cfg.grid;
    let workers = default_workers(device);
    let scan = [Direction::T2i, Direction::I2t]
        .into_iter()
        .flat_map(|direction| {
            MODES.map(|(mode, steps)| ModelConfig {
                direction,
                mode,
                steps,
                ..cfg.model.clone()
            })
        });
    let sgraf = [Host::Saf, Host::Sgr].map(|host| sgraf_config(cfg, host));
    for mc in scan.chain(sgraf) {
        let model = mc.build(device);
        let caps = captions(cfg, nc, 2);
        let encoded = Encoded::new(
            &model,
            model.encode_images(images(cfg, ni, device)),
            model.encode_tokens(&caps, device),
            caps.lengths.clone(),
        );
        let chunk = scoring_chunk(cfg, &mc, on_cpu(device), workers);
        let name = format!("similarity {}, {ni}×{nc}", model_name(&mc));
        let mut m = measured(name, ni * nc, "pairs/s", device, r, rival, || {
            score(&model, &encoded, chunk, workers, None, &mut Silent);
        });
        m.note = format!("{workers} scoring thread(s), blocks of ≤ {chunk} pairs");
        if mc.host == Host::Scan {
            let gflops = flops::per_pair(&mc, cfg.regions, cfg.words) * m.value / 1e9;
            m.gflops = Some(gflops);
            m.percent_of_reference = Some(100.0 * gflops / reference_gflops);
        }
        push(m, &mut rows);
    }

    // The reference again, beside the rows it rates: the machine's speed moves between minutes,
    // and a reference timed in a slow minute put scoring rows above 100% of it.
    let again = reference(cfg, device, cpu_backend);

    // Training steps: forward, loss, backward, clipping, AdamW.
    let train = device.clone().autodiff();
    for &b in &cfg.train_batches {
        for m in train_rows(cfg, b, &train, cpu_backend, rival) {
            push(m, &mut rows);
        }
    }
    // SGRAF's hosts: SGR pair-sparse and dense, SAF dense only (its BatchNorm couples every pair
    // of a caption).
    for (host, strategies) in [
        (Host::Saf, &[Strategy::Dense][..]),
        (Host::Sgr, &[Strategy::Sparse, Strategy::Dense][..]),
    ] {
        let host_cfg = BenchConfig {
            model: sgraf_config(cfg, host),
            ..cfg.clone()
        };
        for &b in &cfg.train_batches {
            for &strategy in strategies {
                push(
                    step_row(&host_cfg, b, strategy, &train, cpu_backend, rival),
                    &mut rows,
                );
            }
        }
    }

    let mut report = BackendReport {
        backend: backend.to_string(),
        device: device_name,
        reference_gflops,
        reference: reference_how,
        measurements: rows,
        torch: None,
    };
    report.raise_reference(again.0, &format!("{}, after the scoring rows", again.1));
    report
}

/// The row of a call that handles `items`: its median time and peak memory, each timed call
/// alternating with `rival`'s (see [`median_beside`]), whose median rate becomes the row's `torch`.
#[allow(clippy::too_many_arguments)]
fn measured(
    name: String,
    items: usize,
    unit: &'static str,
    device: &Device,
    repeats: Repeats,
    rival: &mut Rival,
    f: impl FnMut(),
) -> Measurement {
    let (mut seconds, mut theirs) = (0.0, None);
    let peak = peak_of(device, || {
        (seconds, theirs) = median_beside(device, repeats, &name, rival, f)
    });
    let mut m = Measurement::new(name, items as f64 / seconds, unit, seconds);
    m.memory = peak;
    m.torch = theirs.map(|t| items as f64 / t);
    m
}

/// The model's two dominant product shapes at the bench's grid (see [`reference`]).
pub fn reference_shapes(cfg: &BenchConfig) -> [Shape; 2] {
    let m = cfg.grid.0 * cfg.grid.1 * cfg.words;
    let (e, s) = (cfg.model.embed_size, cfg.model.sim_dim);
    [Shape { m, k: e, n: s }, Shape { m, k: 2 * s, n: e }]
}

/// The best rate over the dominant product shapes: the alignment-vector projection
/// `[pairs·q, E]·[E, S]` and the RCR channel head's second layer `[pairs·q, 2·S]·[2·S, E]`.
fn reference(cfg: &BenchConfig, device: &Device, cpu_backend: bool) -> (f64, String) {
    let mut best = (0.0, String::new());
    for shape in reference_shapes(cfg) {
        let dims = format!("{}×{}·{}×{}", shape.m, shape.k, shape.k, shape.n);
        let own = backend_matmul(device, shape, cfg.repeats);
        if own > best.0 {
            best = (own, format!("the backend's matmul, {dims}"));
        }
        if cpu_backend {
            let crate_rate = gemm_crate(shape, cfg.repeats);
            if crate_rate > best.0 {
                best = (crate_rate, format!("`gemm` crate, all cores, {dims}"));
            }
        }
    }
    best
}

/// The bench's step settings at batch `b`: hardest negatives, the recipe's margin, lr and clip.
fn settings(cfg: &BenchConfig, b: usize, strategy: Strategy) -> StepSettings {
    StepSettings {
        margin: 0.2,
        mode: LossMode::Hardest,
        lr: 5e-4,
        grad_clip: 2.0,
        chunk: b * b,
        dropout: PairDropout {
            prob: cfg.model.dropout,
            seed: cfg.seed,
        },
        strategy,
    }
}

/// A training step at batch `b` (model, optimiser and batch prepared), run once per call; it
/// records how many pairs each call back-propagated into `pairs`.
fn step_at(
    cfg: &BenchConfig,
    b: usize,
    strategy: Strategy,
    device: &Device,
    pairs: Rc<Cell<usize>>,
) -> impl FnMut() {
    let batch_images = images(cfg, b, device);
    let batch_captions = captions(cfg, b, 3);
    let settings = settings(cfg, b, strategy);
    let mut state = Some((cfg.model.build(device), optimizer(OptimizerKind::Adamw)));
    move || {
        let (model, mut optim) = state.take().expect("model between steps");
        let model: Matcher = match train_step(
            model,
            &mut optim,
            batch_images.clone(),
            &batch_captions,
            &settings,
        ) {
            StepOutcome::Done {
                model, pairs: p, ..
            } => {
                pairs.set(p);
                model
            }
            StepOutcome::NonFinite { model, .. } => model,
        };
        state = Some((model, optim));
    }
}

/// The host peak of a step at batch `b`, or `None` where `b` is small enough to just run (or no
/// peak can be read). The forward and backward passes are measured at two smaller batches large
/// enough for their growing part to dominate (at batch 8 a fixed transient of the backward pass
/// hides it) and extrapolated; a whole step at the larger one, optimiser included, bounds the
/// estimate from below.
fn estimated_host_peak(
    cfg: &BenchConfig,
    b: usize,
    strategy: Strategy,
    device: &Device,
) -> Option<u64> {
    let (growth, small, large) = match strategy {
        Strategy::Dense => (Growth::Pairs, 16, 24),
        Strategy::Sparse => (Growth::Items, 16, 32),
    };
    if b <= large {
        return None;
    }
    let passes = |n: usize| {
        let model = cfg.model.build(device);
        let (batch_images, batch_captions) = (images(cfg, n, device), captions(cfg, n, 3));
        let settings = settings(cfg, n, strategy);
        let run = || {
            let _ = step_gradients(&model, batch_images.clone(), &batch_captions, &settings);
        };
        run();
        peak_of(device, run).map(|p| (n, p.bytes))
    };
    let grown = extrapolate(passes(small)?, passes(large)?, b, growth);
    let mut step = step_at(cfg, large, strategy, device, Rc::default());
    step();
    Some(grown.max(peak_of(device, step)?.bytes))
}

/// A training step at batch `b` by `strategy`, or, on the CPU, the row saying it was skipped
/// because the host cannot hold its estimated peak (rather than meet the out-of-memory killer).
fn step_row(
    cfg: &BenchConfig,
    b: usize,
    strategy: Strategy,
    device: &Device,
    cpu_backend: bool,
    rival: &mut Rival,
) -> Measurement {
    let name = format!(
        "train step {}, batch {b}{}",
        model_name(&cfg.model),
        match strategy {
            Strategy::Sparse => "",
            Strategy::Dense => ", dense",
        }
    );
    if cpu_backend {
        let ceiling = host_ceiling();
        let estimate = estimated_host_peak(cfg, b, strategy, device);
        if let (Some(ceiling), Some(estimate)) = (ceiling, estimate) {
            if estimate as f64 > HOST_SHARE * ceiling as f64 {
                let mut m = Measurement::new(name, 0.0, "pairs/s", 0.0);
                m.skipped = true;
                m.memory = Some(Peak {
                    bytes: estimate,
                    kind: "estimate",
                });
                m.note = format!(
                    "skipped: about {:.1} GiB (extrapolated from two smaller batches), {:.1} GiB free here",
                    estimate as f64 / GIB,
                    ceiling as f64 / GIB
                );
                return m;
            }
        }
    }
    let pairs = Rc::new(Cell::new(0));
    let step = step_at(cfg, b, strategy, device, pairs.clone());
    let mut m = measured(name, b * b, "pairs/s", device, cfg.repeats, rival, step);
    m.note = match strategy {
        Strategy::Sparse => format!(
            "hardest negatives, pair-sparse: {} of {} pairs back-propagated",
            pairs.get(),
            b * b
        ),
        Strategy::Dense => "hardest negatives, every pair back-propagated".into(),
    };
    m
}

/// The training step at batch `b`, pair-sparse (as training runs it in hardest-negative mode) and
/// dense, and the times of its encoders and of its loss.
fn train_rows(
    cfg: &BenchConfig,
    b: usize,
    device: &Device,
    cpu_backend: bool,
    rival: &mut Rival,
) -> Vec<Measurement> {
    let r = cfg.repeats;
    let sparse = step_row(cfg, b, Strategy::Sparse, device, cpu_backend, rival);
    let dense = step_row(cfg, b, Strategy::Dense, device, cpu_backend, rival);
    let batch_images = images(cfg, b, device);
    let batch_captions = captions(cfg, b, 3);

    // The encoders alone, forward and backward.
    let model = cfg.model.init(device);
    let t_enc = median_seconds(device, r, || {
        let out = model.encode_images(batch_images.clone()).sum()
            + model.encode_tokens(&batch_captions, device).sum();
        let _ = out.backward();
    });
    // The loss alone on a B×B score matrix, forward and backward, in its slower mode.
    let scores = Tensor::<2>::random([b, b], Distribution::Default, device).require_grad();
    let t_loss = [LossMode::Sum, LossMode::Hardest]
        .into_iter()
        .map(|mode| {
            median_seconds(device, r, || {
                let _ = hinge(scores.clone(), 0.2, mode).backward();
            })
        })
        .fold(0.0, f64::max);

    let pairs = (b * b) as f64;
    let steps: Vec<Measurement> = [sparse, dense]
        .into_iter()
        .map(|mut m| {
            if !m.skipped {
                m.note = format!(
                    "{}; encoders {:.1}% and loss {:.2}% of the step",
                    m.note,
                    100.0 * t_enc / m.seconds,
                    100.0 * t_loss / m.seconds
                );
            }
            m
        })
        .collect();
    let mut enc_row = Measurement::new(
        format!("encoders fwd+bwd, batch {b}"),
        2.0 * b as f64 / t_enc,
        "items/s",
        t_enc,
    );
    enc_row.note = "image and text encoders of one training batch".into();
    let mut loss_row = Measurement::new(
        format!("hinge loss fwd+bwd, {b}×{b}"),
        pairs / t_loss,
        "pairs/s",
        t_loss,
    );
    loss_row.note = "the slower of sum and hardest".into();
    steps.into_iter().chain([enc_row, loss_row]).collect()
}
