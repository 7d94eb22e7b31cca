//! `cargo xtask data check`: verifies a dataset directory before hours of training find the problem.

use crate::captions::read_ids;
use crate::split::{split_files, Split, CAPTIONS_PER_IMAGE};
use crate::vocab::{Vocab, UNK};
use serde::Serialize;
use std::path::Path;

/// Splits every dataset has; MSCOCO adds `testall`.
pub const REQUIRED_SPLITS: [&str; 3] = ["train", "dev", "test"];
pub const OPTIONAL_SPLITS: [&str; 1] = ["testall"];
/// Feature rows scanned for NaN/Inf per split: enough to catch a corrupt file, cheap on 33 GB.
const SAMPLE_ROWS: usize = 256;
/// Below this share of known word tokens the vocabulary is almost surely the wrong one
/// (the official ones cover ~99% of their own captions).
const MIN_COVERAGE: f64 = 0.8;

/// What `check` found in one split.
#[derive(Debug, Serialize)]
pub struct SplitReport {
    pub split: String,
    pub rows: usize,
    pub regions: usize,
    pub dim: usize,
    pub captions: usize,
    /// Feature rows per caption group: 1 = one row per caption, 5 = one row per image.
    pub im_div: usize,
    pub images: usize,
    pub ids: Option<usize>,
    /// Fraction of word tokens found in the vocabulary.
    pub vocab_coverage: f64,
    pub mean_tokens: f64,
    pub sampled_rows: usize,
    pub non_finite: usize,
    pub min: f32,
    pub max: f32,
    pub problems: Vec<String>,
}

/// The whole directory's report; `problems` is empty when the dataset is usable.
#[derive(Debug, Serialize)]
pub struct DatasetReport {
    pub vocab_size: Option<usize>,
    pub splits: Vec<SplitReport>,
    pub problems: Vec<String>,
}

impl DatasetReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.splits.iter().all(|s| s.problems.is_empty())
    }
}

/// Checks `dir` with the vocabulary at `vocab`.
pub fn check(dir: &Path, vocab: &Path) -> DatasetReport {
    let mut report = DatasetReport {
        vocab_size: None,
        splits: Vec::new(),
        problems: Vec::new(),
    };
    let vocab = match Vocab::load(vocab) {
        Ok(v) => v,
        Err(e) => {
            report.problems.push(e.to_string());
            return report;
        }
    };
    report.vocab_size = Some(vocab.len());
    for name in REQUIRED_SPLITS.iter().chain(&OPTIONAL_SPLITS) {
        let required = REQUIRED_SPLITS.contains(name);
        if !required && !split_files(dir, name)[0].exists() {
            continue;
        }
        match Split::open(dir, name, &vocab) {
            Ok(split) => report.splits.push(check_split(dir, &split)),
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    report
}

fn check_split(dir: &Path, split: &Split) -> SplitReport {
    let mut problems = Vec::new();
    let features = &split.features;
    let ids_path = &split_files(dir, &split.name)[2];
    let ids = match ids_path.exists().then(|| read_ids(ids_path)) {
        Some(Ok(ids)) => Some(ids.len()),
        Some(Err(e)) => {
            problems.push(e.to_string());
            None
        }
        None => None,
    };
    if let Some(n) = ids {
        let images = split.len().div_ceil(CAPTIONS_PER_IMAGE);
        // SCAN ships one id per image (COCO) or per caption row (Flickr30K dev/test); both are fine.
        if n != features.rows() && n != images && n != split.len() {
            problems.push(format!(
                "{}: {n} ids for {} rows / {} captions",
                ids_path.display(),
                features.rows(),
                split.len()
            ));
        }
    }
    if let Err(e) = split.check_eval() {
        problems.push(e.to_string());
    }
    let (mut known, mut words) = (0usize, 0usize);
    for tokens in &split.tokens {
        let inner = &tokens[1..tokens.len() - 1];
        words += inner.len();
        known += inner.iter().filter(|&&t| t != UNK).count();
    }
    let vocab_coverage = known as f64 / words.max(1) as f64;
    if vocab_coverage < MIN_COVERAGE {
        problems.push(format!(
            "{}: the vocabulary knows only {:.1}% of the word tokens; is --vocab the right file?",
            split.caps_path.display(),
            100.0 * vocab_coverage
        ));
    }
    let (sampled_rows, non_finite, min, max) = scan_sample(split, &mut problems);
    SplitReport {
        split: split.name.clone(),
        rows: features.rows(),
        regions: features.regions(),
        dim: features.dim(),
        captions: split.len(),
        im_div: split.im_div,
        images: split.num_images(),
        ids,
        vocab_coverage,
        mean_tokens: split.tokens.iter().map(Vec::len).sum::<usize>() as f64
            / split.len().max(1) as f64,
        sampled_rows,
        non_finite,
        min,
        max,
        problems,
    }
}

/// Reads evenly spaced rows (always the first and last) looking for NaN/Inf.
fn scan_sample(split: &Split, problems: &mut Vec<String>) -> (usize, usize, f32, f32) {
    let rows = split.features.rows();
    let n = rows.min(SAMPLE_ROWS);
    let picks: Vec<usize> = (0..n)
        .map(|i| if n == 1 { 0 } else { i * (rows - 1) / (n - 1) })
        .collect();
    let (mut non_finite, mut min, mut max) = (0, f32::INFINITY, f32::NEG_INFINITY);
    let mut values = Vec::new();
    for chunk in picks.chunks(16) {
        values.clear();
        if let Err(e) = split.features.gather_raw(chunk, &mut values) {
            problems.push(e.to_string());
            break;
        }
        for &v in &values {
            if v.is_finite() {
                min = min.min(v);
                max = max.max(v);
            } else {
                non_finite += 1;
            }
        }
    }
    if non_finite > 0 {
        problems.push(format!(
            "{}: {non_finite} NaN/Inf values in {n} sampled rows",
            split.features.path().display()
        ));
    }
    (n, non_finite, min, max)
}
