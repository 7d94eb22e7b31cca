//! The workload and its measurements. Inputs are random (timings do not depend on values); every
//! timed call reads one value back so lazy backends run the whole graph.

use crate::flops;
use crate::memory::peak_of;
use crate::reference::{backend_matmul, gemm_crate, Shape};
use crate::report::{BackendReport, Measurement};
use crate::timing::{median_seconds, Repeats};
use burn::tensor::{Device, Distribution, Tensor};
use rand::Rng;
use rcar_backbones::{Direction, Mode, ModelConfig, Rcar};
use rcar_data::batch::{derive_rng, TokenBatch};
use rcar_eval::encode::{score, Encoded};
use rcar_eval::{default_workers, Silent};
use rcar_train::{adamw, hinge, train_step, LossMode, StepOutcome, StepSettings};
use std::cell::RefCell;

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

/// Region features `[n, R, d]`.
fn images(cfg: &BenchConfig, n: usize, device: &Device) -> Tensor<3> {
    Tensor::random(
        [n, cfg.regions, cfg.model.img_dim],
        Distribution::Normal(0.0, 1.0),
        device,
    )
}

/// `n` captions of `cfg.words` random word ids.
fn captions(cfg: &BenchConfig, n: usize, stream: u64) -> TokenBatch {
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
fn touch<const D: usize>(t: Tensor<D>) {
    let _ = t.sum().into_data();
}

fn mode_name(mode: Mode, steps: usize) -> String {
    match mode {
        Mode::OnlyRcr if steps == 0 => "baseline".into(),
        Mode::OnlyRcr => format!("only_rcr {steps}"),
        Mode::OnlyRar => format!("only_rar {steps}"),
        Mode::CoopRcar => format!("coop_rcar {steps}"),
    }
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::T2i => "t2i",
        Direction::I2t => "i2t",
    }
}

/// Runs every measurement on `device`; `log` hears each row as it completes (runs take minutes on
/// a CPU).
pub fn run(
    cfg: &BenchConfig,
    backend: &str,
    device: &Device,
    cpu_backend: bool,
    device_name: String,
    log: &mut dyn FnMut(&Measurement),
) -> BackendReport {
    device.seed(cfg.seed);
    let r = cfg.repeats;
    let mut rows = Vec::new();
    let mut push = |m: Measurement, rows: &mut Vec<Measurement>| {
        log(&m);
        rows.push(m);
    };

    let (reference_gflops, reference) = reference(cfg, device, cpu_backend);

    // Encoders, inference mode.
    let model = cfg.model.init(device);
    let b = cfg.encode_batch;
    let batch_images = images(cfg, b, device);
    let t = median_seconds(device, r, || {
        touch(model.encode_images(batch_images.clone()))
    });
    push(
        row(
            format!("image encoder, batch {b}"),
            b as f64 / t,
            "images/s",
            t,
        ),
        &mut rows,
    );
    let batch_captions = captions(cfg, b, 1);
    let t = median_seconds(device, r, || {
        touch(model.encode_tokens(&batch_captions, device))
    });
    push(
        row(
            format!("text encoder, batch {b}"),
            b as f64 / t,
            "captions/s",
            t,
        ),
        &mut rows,
    );

    // Pair scoring on encoded inputs, as the evaluation does it: one block per thread.
    let (ni, nc) = cfg.grid;
    let pairs = (ni * nc) as f64;
    let workers = default_workers(device);
    for direction in [Direction::T2i, Direction::I2t] {
        for (mode, steps) in MODES {
            let mc = ModelConfig {
                direction,
                mode,
                steps,
                ..cfg.model.clone()
            };
            let model = mc.init(device);
            let caps = captions(cfg, nc, 2);
            let encoded = Encoded {
                images: model.encode_images(images(cfg, ni, device)),
                captions: model.encode_tokens(&caps, device),
                lengths: caps.lengths.clone(),
                caption_ids: (0..nc).collect(),
            };
            let chunk = (ni * nc).div_ceil(workers);
            let t = median_seconds(device, r, || {
                score(&model, &encoded, chunk, workers, &mut Silent);
            });
            let gflops = flops::per_pair(&mc, cfg.regions, cfg.words) * pairs / t / 1e9;
            let mut m = row(
                format!(
                    "similarity {} {}, {ni}×{nc}",
                    direction_name(direction),
                    mode_name(mode, steps)
                ),
                pairs / t,
                "pairs/s",
                t,
            );
            m.gflops = Some(gflops);
            m.percent_of_reference = Some(100.0 * gflops / reference_gflops);
            m.note = format!("{workers} scoring thread(s)");
            push(m, &mut rows);
        }
    }

    // Training steps: forward, loss, backward, clipping, AdamW.
    let train = device.clone().autodiff();
    for &b in &cfg.train_batches {
        for m in train_rows(cfg, b, &train) {
            push(m, &mut rows);
        }
    }

    BackendReport {
        backend: backend.to_string(),
        device: device_name,
        reference_gflops,
        reference,
        measurements: rows,
    }
}

fn row(name: String, value: f64, unit: &'static str, seconds: f64) -> Measurement {
    Measurement {
        name,
        value,
        unit,
        seconds,
        gflops: None,
        percent_of_reference: None,
        memory: None,
        note: String::new(),
    }
}

/// The best rate over the dominant product shapes: the alignment-vector projection
/// `[pairs·q, E]·[E, S]` and the RCR channel head's second layer `[pairs·q, 2·S]·[2·S, E]`.
fn reference(cfg: &BenchConfig, device: &Device, cpu_backend: bool) -> (f64, String) {
    let m = cfg.grid.0 * cfg.grid.1 * cfg.words;
    let (e, s) = (cfg.model.embed_size, cfg.model.sim_dim);
    let shapes = [Shape { m, k: e, n: s }, Shape { m, k: 2 * s, n: e }];
    let mut best = (0.0, String::new());
    for shape in shapes {
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

/// One training step at batch `b`, and the shares of its encoders and of its loss.
fn train_rows(cfg: &BenchConfig, b: usize, device: &Device) -> Vec<Measurement> {
    let r = cfg.repeats;
    let batch_images = images(cfg, b, device);
    let batch_captions = captions(cfg, b, 3);
    let settings = StepSettings {
        margin: 0.2,
        mode: LossMode::Hardest,
        lr: 5e-4,
        grad_clip: 2.0,
        chunk: b * b,
    };
    let state = RefCell::new(Some((cfg.model.init(device), adamw())));
    let step = || {
        let (model, mut optim) = state.borrow_mut().take().expect("model between steps");
        let model: Rcar = match train_step(
            model,
            &mut optim,
            batch_images.clone(),
            &batch_captions,
            &settings,
        ) {
            StepOutcome::Done { model, .. } | StepOutcome::NonFinite { model, .. } => model,
        };
        *state.borrow_mut() = Some((model, optim));
    };
    let t_step = median_seconds(device, r, step);
    let memory = peak_of(device, step);

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
    let mut step_row = row(
        format!(
            "train step {} {}, batch {b}",
            direction_name(cfg.model.direction),
            mode_name(cfg.model.mode, cfg.model.steps)
        ),
        pairs / t_step,
        "pairs/s",
        t_step,
    );
    step_row.memory = memory;
    step_row.note = format!(
        "encoders {:.1}% and loss {:.2}% of the step",
        100.0 * t_enc / t_step,
        100.0 * t_loss / t_step
    );
    let mut enc_row = row(
        format!("encoders fwd+bwd, batch {b}"),
        2.0 * b as f64 / t_enc,
        "items/s",
        t_enc,
    );
    enc_row.note = "image and text encoders of one training batch".into();
    let mut loss_row = row(
        format!("hinge loss fwd+bwd, {b}×{b}"),
        pairs / t_loss,
        "pairs/s",
        t_loss,
    );
    loss_row.note = "the slower of sum and hardest".into();
    vec![step_row, enc_row, loss_row]
}
