//! The published protocols (spec §4.4): the full matrix of a split (Flickr30K 1K on `test`, MSCOCO
//! 5K on `testall`, dev for model selection) or, with `fold5`, the mean over five 1,000-image folds
//! (MSCOCO 1K on `testall`). Several models are scored as an ensemble: the average of their matrices.

use crate::encode::{chunk_for_budget, encode, score};
use crate::metrics::{Metrics, SimMatrix};
use crate::progress::Progress;
use burn::tensor::Device;
use rcar_backbones::Matcher;
use rcar_data::split::Split;
use rcar_data::DataError;
use serde::Serialize;
use std::time::Instant;

/// Images per fold of the MSCOCO 1K protocol.
pub const FOLD_IMAGES: usize = 1000;

/// How to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Average over five 1,000-image folds instead of scoring the full matrix.
    pub fold5: bool,
    /// Pairs per chunk; derived from `mem_budget` when absent.
    pub chunk: Option<usize>,
    /// Bytes the similarity pass may use for intermediates.
    pub mem_budget: usize,
    /// Images or captions per encoding batch.
    pub batch: usize,
    /// Threads scoring blocks side by side; absent: [`default_workers`] of the device.
    pub workers: Option<usize>,
}

/// Whether `device` (with or without autodiff) is the CPU backend, whose scoring runs a block per
/// core ([`default_workers`]) in blocks sized to the cores' caches ([`crate::encode::pairs_per_block`]).
pub fn on_cpu(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}

/// One thread per core on the CPU backend, whose element-wise operations run on one core each;
/// one elsewhere (a GPU runs a block on all its cores already).
pub fn default_workers(device: &Device) -> usize {
    if on_cpu(device) {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    }
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            fold5: false,
            chunk: None,
            mem_budget: 1 << 30,
            batch: 128,
            workers: None,
        }
    }
}

/// What an evaluation found, in the layout `--json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub metrics: Metrics,
    pub protocol: String,
    pub images: usize,
    pub captions: usize,
    pub checkpoints: Vec<String>,
    pub backend: String,
    pub pairs_per_second: f64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folds: Option<Vec<Metrics>>,
}

/// Metrics of a whole matrix, or of its five diagonal folds when `fold5`.
pub fn metrics_of(sims: &SimMatrix, fold5: bool) -> (Metrics, Option<Vec<Metrics>>) {
    if !fold5 {
        return (Metrics::of(sims), None);
    }
    let blocks: Vec<SimMatrix> = fold_ranges(sims.images).map(|r| sims.block(r)).collect();
    summarise(&blocks, true)
}

/// Metrics of one full matrix, or the mean over fold matrices with each fold's own.
fn summarise(matrices: &[SimMatrix], fold5: bool) -> (Metrics, Option<Vec<Metrics>>) {
    let all: Vec<Metrics> = matrices.iter().map(Metrics::of).collect();
    if fold5 {
        (Metrics::mean(&all), Some(all))
    } else {
        (all[0], None)
    }
}

fn fold_ranges(images: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let size = (images / 5).clamp(1, FOLD_IMAGES);
    (0..5).map(move |f| f * size..(f + 1) * size)
}

/// Checks that a split can be evaluated (and folded) under the protocol.
pub fn check_split(split: &Split, fold5: bool) -> Result<(), DataError> {
    split.check_eval()?;
    if fold5 {
        check_folds(split.num_images(), &split.caps_path)?;
    }
    Ok(())
}

/// Five equal folds need a (non-zero) multiple of five images; `path` is where they come from.
pub fn check_folds(images: usize, path: &std::path::Path) -> Result<(), DataError> {
    if images >= 5 && images.is_multiple_of(5) {
        return Ok(());
    }
    Err(DataError::invalid(
        path,
        format!(
            "--fold5 needs a multiple of 5 images ({FOLD_IMAGES} per fold for MSCOCO 1K); there are {images}"
        ),
    ))
}

/// Checks that `models` can evaluate `split` under the protocol (and read its features); the
/// scoring threads to use.
pub fn checked_workers(
    models: &[Matcher],
    split: &Split,
    opts: &EvalOptions,
    device: &Device,
) -> Result<usize, DataError> {
    check_split(split, opts.fold5)?;
    let features = &split.features;
    for model in models {
        model
            .config()
            .check_features(features.regions(), features.dim(), features.path())?;
    }
    Ok(opts
        .workers
        .unwrap_or_else(|| default_workers(device))
        .max(1))
}

/// The similarity matrices of `models` (averaged) on `split`: the full matrix, or, with `fold5`,
/// one per fold (the off-diagonal blocks are never computed).
pub fn similarity(
    models: &[Matcher],
    split: &Split,
    opts: &EvalOptions,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Vec<SimMatrix>, DataError> {
    let workers = checked_workers(models, split, opts, device)?;
    let n = split.num_images();
    let ranges: Vec<_> = if opts.fold5 {
        fold_ranges(n).collect()
    } else {
        std::iter::once(0..n).collect()
    };
    ranges
        .into_iter()
        .map(|range| {
            let per_model = models
                .iter()
                .map(|model| {
                    let encoded =
                        encode(model, split, range.clone(), opts.batch, device, progress)?;
                    let chunk = opts.chunk.unwrap_or_else(|| {
                        chunk_for_budget(model, &encoded, opts.mem_budget / workers)
                    });
                    Ok(score(model, &encoded, chunk, workers, None, progress))
                })
                .collect::<Result<Vec<_>, DataError>>()?;
            Ok(SimMatrix::average(&per_model))
        })
        .collect()
}

/// Evaluates `models` (eval mode) on `split` under the protocol and reports.
pub fn evaluate(
    models: &[Matcher],
    names: &[String],
    split: &Split,
    opts: &EvalOptions,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<(Report, Vec<SimMatrix>), DataError> {
    let started = Instant::now();
    let matrices = similarity(models, split, opts, device, progress)?;
    // The features were read finite (`Features::gather` refuses NaN/Inf), so non-finite scores come
    // from the weights.
    let source = match names {
        [] => "the model".to_string(),
        [one] => one.clone(),
        many => format!("the ensemble of {}", many.join(" and ")),
    };
    for (k, m) in matrices.iter().enumerate() {
        let fold = if opts.fold5 {
            format!(" (fold {k})")
        } else {
            String::new()
        };
        m.check_finite(
            std::path::Path::new(&source),
            &format!("scored on finite features{fold}: the checkpoint's weights hold NaN or ±Inf"),
        )?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (metrics, folds) = summarise(&matrices, opts.fold5);
    let pairs: usize = matrices.iter().map(|m| m.images * m.captions).sum();
    let report = Report {
        metrics,
        protocol: protocol_name(&split.name, split.num_images(), opts.fold5),
        images: split.num_images(),
        captions: split.len(),
        checkpoints: names.to_vec(),
        backend: format!("{device:?}"),
        pairs_per_second: (pairs * models.len()) as f64 / seconds.max(1e-9),
        seconds,
        folds,
    };
    Ok((report, matrices))
}

/// A protocol's name as papers print it, where the split has the published size.
pub fn protocol_name(split: &str, images: usize, fold5: bool) -> String {
    match (split, images, fold5) {
        ("testall", 5000, true) => "MSCOCO 1K (5-fold testall)".into(),
        ("testall", 5000, false) => "MSCOCO 5K (testall)".into(),
        ("test", 1000, false) => "Flickr30K 1K (test)".into(),
        (name, _, true) => format!("{name}, 5 folds"),
        (name, _, false) => name.into(),
    }
}
