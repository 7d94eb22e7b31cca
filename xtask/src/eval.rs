//! `cargo xtask eval`: a checkpoint (or an ensemble) under a protocol, or saved similarity matrices.

use crate::backend;
use crate::progress::Bars;
use anyhow::{bail, Context, Result};
use clap::Args;
use rcar_backbones::checkpoint::load_any;
use rcar_backbones::Matcher;
use rcar_data::split::Split;
use rcar_data::vocab::Vocab;
use rcar_eval::protocol::{check_folds, metrics_of, protocol_name};
use rcar_eval::shortlist::{compare, FirstStage, ShortlistOptions, ShortlistReport};
use rcar_eval::{evaluate, sims, EvalOptions, Metrics, Report};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct EvalArgs {
    /// A run directory (its best/), a checkpoint directory, or an official `.pth`; twice for the
    /// ensemble of two models.
    #[arg(long, num_args = 1, conflicts_with = "sims")]
    checkpoint: Vec<PathBuf>,
    /// Saved similarity matrices (`--save-sims`) to score instead; twice for their ensemble.
    #[arg(long, num_args = 1)]
    sims: Vec<PathBuf>,
    /// Dataset directory in the SCAN layout.
    #[arg(long, required_unless_present = "sims")]
    data: Option<PathBuf>,
    /// Vocabulary JSON; default `DATA/vocab.json`.
    #[arg(long)]
    vocab: Option<PathBuf>,
    /// `dev`, `test` (Flickr30K 1K) or `testall` (MSCOCO 5K; with --fold5 MSCOCO 1K).
    #[arg(long, default_value = "test")]
    split: String,
    /// Mean over five 1,000-image folds (MSCOCO 1K).
    #[arg(long)]
    fold5: bool,
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Pairs per similarity chunk (default: from --mem-budget).
    #[arg(long)]
    shard: Option<usize>,
    /// MiB the similarity pass may use for intermediates.
    #[arg(long, default_value_t = 1024)]
    mem_budget: usize,
    /// Write the similarity matrix (float32 .npy, images × captions).
    #[arg(long)]
    save_sims: Option<PathBuf>,
    /// Write the metrics as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also rank by shortlist-then-rerank: the first stage's top K of each query scored exactly by
    /// the model; several lengths comma-separated (`10,50,100`).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["sims", "fold5", "save_sims"],
          value_parser = positive())]
    shortlist: Vec<usize>,
    /// With --shortlist: how the first stage ranks, `maxsim` (late interaction over the token
    /// encodings) or `global` (one product of global vectors).
    #[arg(long, value_enum, default_value = "maxsim", requires = "shortlist")]
    first_stage: Stage,
    /// With --shortlist: also re-rank by exact + first-stage score (BLIP's fusion).
    #[arg(long, requires = "shortlist")]
    fuse: bool,
    /// With --shortlist: skip scoring every pair (a large gallery), so no exhaustive row.
    #[arg(long, requires = "shortlist")]
    no_exhaustive: bool,
}

impl EvalArgs {
    /// Saved matrices are scored without a model, on no backend.
    pub fn backends(&self) -> Vec<&str> {
        if self.sims.is_empty() {
            vec![self.backend.as_str()]
        } else {
            Vec::new()
        }
    }
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    if !args.shortlist.is_empty() {
        return with_shortlist(&args);
    }
    let report = if args.sims.is_empty() {
        with_models(&args)?
    } else {
        with_sims(&args)?
    };
    print_report(&report);
    if let Some(path) = &args.json {
        rcar_data::atomic::write_atomic(path, &serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn with_sims(args: &EvalArgs) -> Result<Report> {
    let started = Instant::now();
    let paths: Vec<&Path> = args.sims.iter().map(PathBuf::as_path).collect();
    let matrix = sims::load_all(&paths)?;
    if args.fold5 {
        check_folds(matrix.images, paths[0])?;
    }
    let (metrics, folds) = metrics_of(&matrix, args.fold5);
    let seconds = started.elapsed().as_secs_f64();
    Ok(Report {
        metrics,
        protocol: protocol_name(
            &format!("{}×{} matrix", matrix.images, matrix.captions),
            matrix.images,
            args.fold5,
        ),
        images: matrix.images,
        captions: matrix.captions,
        checkpoints: args.sims.iter().map(|p| p.display().to_string()).collect(),
        backend: "none (saved matrices)".into(),
        pairs_per_second: (matrix.images * matrix.captions) as f64 / seconds.max(1e-9),
        seconds,
        folds,
    })
}

/// Loads a model for evaluation and checks it against the vocabulary.
pub fn load_model(path: &Path, vocab: &Vocab, vocab_path: &Path, backend: &str) -> Result<Matcher> {
    let device = backend::device(backend)?;
    let model = load_any(path, &device)?;
    model.check_vocab(vocab.len(), vocab_path, &path.display().to_string())?;
    Ok(model)
}

/// The models of `--checkpoint` and the split they are evaluated on.
fn models_and_split(args: &EvalArgs) -> Result<(Vec<Matcher>, Split)> {
    if args.checkpoint.is_empty() {
        bail!("give --checkpoint (a run, checkpoint or official .pth) or --sims");
    }
    let data = args.data.as_ref().expect("clap requires --data");
    let vocab_path = args
        .vocab
        .clone()
        .unwrap_or_else(|| data.join("vocab.json"));
    let vocab = Vocab::load(&vocab_path)?;
    let models = args
        .checkpoint
        .iter()
        .map(|p| load_model(p, &vocab, &vocab_path, &args.backend))
        .collect::<Result<Vec<_>>>()?;
    let split = Split::open(data, &args.split, &vocab)
        .with_context(|| format!("opening split {:?}", args.split))?;
    Ok((models, split))
}

fn options(args: &EvalArgs) -> EvalOptions {
    EvalOptions {
        fold5: args.fold5,
        chunk: args.shard,
        mem_budget: args.mem_budget << 20,
        ..EvalOptions::default()
    }
}

fn with_models(args: &EvalArgs) -> Result<Report> {
    let (models, split) = models_and_split(args)?;
    if args.save_sims.is_some() && args.fold5 {
        bail!("--save-sims saves the full matrix: run without --fold5 (the folds are sliced from it with --sims FILE --fold5)");
    }
    let opts = options(args);
    let names: Vec<String> = args
        .checkpoint
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let device = backend::device(&args.backend)?;
    let (mut report, matrices) =
        evaluate(&models, &names, &split, &opts, &device, &mut Bars::new())?;
    report.backend = args.backend.clone();
    if let Some(path) = &args.save_sims {
        sims::save(path, &matrices[0])?;
    }
    Ok(report)
}

/// The recall table of a report.
pub fn print_report(r: &Report) {
    println!(
        "{} — {} images × {} captions, {} model(s), {:.1}s, {:.0} pairs/s",
        r.protocol,
        r.images,
        r.captions,
        r.checkpoints.len(),
        r.seconds,
        r.pairs_per_second
    );
    print_table(&r.metrics);
}

pub fn print_table(m: &Metrics) {
    println!("|            |   R@1 |   R@5 |  R@10 |  medr |  meanr |");
    println!("|------------|------:|------:|------:|------:|-------:|");
    for (name, r) in [("image→text", m.i2t), ("text→image", m.t2i)] {
        println!(
            "| {name} | {:5.1} | {:5.1} | {:5.1} | {:5.1} | {:6.1} |",
            r.r1, r.r5, r.r10, r.medr, r.meanr
        );
    }
    println!("rsum {:.1}", m.rsum);
}

/// `--shortlist`: one model, exhaustive and shortlisted rankings side by side.
fn with_shortlist(args: &EvalArgs) -> Result<ExitCode> {
    let (models, split) = models_and_split(args)?;
    let [model] = &models[..] else {
        bail!("--shortlist evaluates one model: give one --checkpoint");
    };
    let name = args.checkpoint[0].display().to_string();
    let device = backend::device(&args.backend)?;
    let shortlists = ShortlistOptions {
        first_stage: args.first_stage.into(),
        ks: args.shortlist.clone(),
        fuse: args.fuse,
        exhaustive: !args.no_exhaustive,
    };
    let (report, _) = compare(
        model,
        &name,
        &split,
        &options(args),
        &shortlists,
        &device,
        &mut Bars::new(),
    )?;
    print_shortlists(&report);
    if let Some(path) = &args.json {
        rcar_data::atomic::write_atomic(path, &serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The shortlist table: each ranking's recalls, pairs scored, time and speed-up.
pub fn print_shortlists(r: &ShortlistReport) {
    println!(
        "{} — {} images × {} captions, {} ({}); encoding {:.1}s, first stage ({:?}) {:.2}s",
        r.protocol,
        r.images,
        r.captions,
        r.model,
        r.checkpoint,
        r.encode_seconds,
        r.stage,
        r.first_stage_seconds
    );
    println!("| ranking           |    K | i2t R@1 | t2i R@1 |  rsum | first stage has GT i2t/t2i | pairs scored |  seconds | speed-up |");
    println!("|-------------------|-----:|--------:|--------:|------:|---------------------------:|-------------:|---------:|---------:|");
    let base = r.exhaustive.as_ref().map(|e| e.seconds);
    let line = |name: &str, k: &str, m: &Metrics, has: &str, pairs: &str, seconds: Option<f64>| {
        let time = seconds.map_or("—".into(), |s| format!("{s:.1}"));
        let speedup = match (base, seconds) {
            (Some(b), Some(s)) => format!("{:.1}×", b / s.max(1e-9)),
            _ => "—".into(),
        };
        println!(
            "| {name:<17} | {k:>4} | {:7.1} | {:7.1} | {:5.1} | {has:>26} | {pairs:>12} | {time:>8} | {speedup:>8} |",
            m.i2t.r1, m.t2i.r1, m.rsum
        );
    };
    if let Some(e) = &r.exhaustive {
        line(
            "exhaustive",
            "all",
            &e.metrics,
            "—",
            &e.pairs.to_string(),
            Some(e.seconds),
        );
    }
    line("first stage alone", "—", &r.first_stage, "—", "0", None);
    for row in &r.rows {
        let name = if row.fused {
            "shortlist + fused"
        } else {
            "shortlist"
        };
        let has = format!(
            "{:.1}% / {:.1}%",
            row.first_stage_recall_i2t, row.first_stage_recall_t2i
        );
        line(
            name,
            &row.k.to_string(),
            &row.metrics,
            &has,
            &row.pairs.to_string(),
            Some(row.seconds),
        );
    }
}

/// `--first-stage`, as clap spells it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Stage {
    Maxsim,
    Global,
}

impl From<Stage> for FirstStage {
    fn from(stage: Stage) -> Self {
        match stage {
            Stage::Maxsim => FirstStage::MaxSim,
            Stage::Global => FirstStage::Global,
        }
    }
}

/// A count of at least one (a shortlist, a number of hits, a batch, runs).
pub fn positive() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}
