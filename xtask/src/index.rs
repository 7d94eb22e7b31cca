//! `cargo xtask index`: a split encoded once by a checkpoint, into a file `search` memory-maps.

use crate::backend;
use crate::eval::load_model;
use crate::progress::Bars;
use anyhow::{Context, Result};
use clap::Args;
use rcar_data::captions::read_ids;
use rcar_data::split::{split_files, Split};
use rcar_data::vocab::Vocab;
use rcar_eval::encode::encode;
use rcar_eval::index::{write, Source};
use rcar_eval::protocol::check_split;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct IndexArgs {
    /// A run directory (its best/), a checkpoint directory, or an official `.pth`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset directory in the SCAN layout.
    #[arg(long)]
    data: PathBuf,
    /// Vocabulary JSON; default `DATA/vocab.json`.
    #[arg(long)]
    vocab: Option<PathBuf>,
    #[arg(long, default_value = "test")]
    split: String,
    /// The index file to write.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "flex")]
    pub backend: String,
}

pub fn run(args: IndexArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let vocab_path = args
        .vocab
        .clone()
        .unwrap_or_else(|| args.data.join("vocab.json"));
    let vocab = Vocab::load(&vocab_path)?;
    let model = load_model(&args.checkpoint, &vocab, &vocab_path, &args.backend)?;
    let split = Split::open(&args.data, &args.split, &vocab)
        .with_context(|| format!("opening split {:?}", args.split))?;
    check_split(&split, false)?;
    let features = &split.features;
    model
        .config()
        .check_features(features.regions(), features.dim(), features.path())?;
    let [_, _, ids_path] = split_files(&args.data, &args.split);
    let n = split.num_images();
    let image_ids = if ids_path.exists() {
        let ids = read_ids(&ids_path)?;
        (0..n)
            .map(|i| ids.get(split.eval_image_row(i)).copied())
            .collect::<Option<Vec<u64>>>()
            .with_context(|| {
                format!(
                    "{}: {} ids for {} feature rows",
                    ids_path.display(),
                    ids.len(),
                    features.rows()
                )
            })?
    } else {
        println!(
            "no {}: images are numbered by their place in the split",
            ids_path.display()
        );
        (0..n as u64).collect()
    };
    let device = backend::device(&args.backend)?;
    let encoded = encode(&model, &split, 0..n, 128, &device, &mut Bars::new())?;
    let source = Source {
        checkpoint: &args.checkpoint,
        data: &args.data,
        split: &args.split,
        vocab: &vocab,
        image_ids,
        captions: split.captions.clone(),
    };
    let bytes = write(&args.out, &model, &encoded, source)?;
    println!(
        "indexed {n} images and {} captions of {} {} with {} ({}): {}, {:.1} MiB, {:.1}s",
        split.len(),
        args.data.display(),
        args.split,
        model.describe(),
        args.checkpoint.display(),
        args.out.display(),
        bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
