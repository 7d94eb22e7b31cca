//! `cargo xtask search`: a caption against a gallery index (or a gallery image, `--image`), the
//! first stage's shortlist re-ranked by the model.

use crate::backend;
use crate::eval::{positive, Stage};
use anyhow::{Context, Result};
use clap::Args;
use rcar_backbones::checkpoint::load_any;
use rcar_eval::index::Index;
use rcar_eval::search::{search, Answer, Query, SearchOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct SearchArgs {
    /// The gallery index (`cargo xtask index`).
    #[arg(long)]
    index: PathBuf,
    /// A caption: retrieve images.
    #[arg(long, conflicts_with = "image", required_unless_present = "image")]
    text: Option<String>,
    /// A gallery image id: retrieve captions.
    #[arg(long)]
    image: Option<u64>,
    /// Hits to print.
    #[arg(long, default_value_t = 10, value_parser = positive())]
    top: usize,
    /// Items the model re-ranks (default: the whole gallery, exhaustive).
    #[arg(long, value_parser = positive())]
    shortlist: Option<usize>,
    #[arg(long, value_enum, default_value = "maxsim")]
    first_stage: Stage,
    /// The checkpoint to re-rank with (default: the one the index records; it must be unchanged).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Print the answer as JSON instead of the table.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value = "flex")]
    pub backend: String,
}

pub fn run(args: SearchArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let index = Index::open(&args.index)?;
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| PathBuf::from(&index.header.checkpoint));
    let device = backend::device(&args.backend)?;
    let model = load_any(&checkpoint, &device)
        .with_context(|| format!("loading the checkpoint of {}", args.index.display()))?;
    index.check_model(&checkpoint, &model)?;
    let opened = started.elapsed().as_secs_f64();
    let query = match (&args.text, args.image) {
        (Some(text), _) => Query::Text(text),
        (None, Some(id)) => Query::Image(id),
        (None, None) => unreachable!("clap requires --text or --image"),
    };
    let options = SearchOptions {
        top: args.top,
        shortlist: args.shortlist,
        stage: args.first_stage.into(),
    };
    let answer = search(&index, &model, query, options, &device)
        .with_context(|| format!("searching {}", args.index.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_answer(&index, &args, &answer, opened);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_answer(index: &Index, args: &SearchArgs, a: &Answer, opened: f64) {
    let h = &index.header;
    if !a.unknown_words.is_empty() {
        println!(
            "not in the vocabulary, read as <unk>: {}",
            a.unknown_words.join(", ")
        );
    }
    for hit in &a.hits {
        match (hit.caption, args.image) {
            (Some(caption), Some(query)) => {
                let own = if hit.image_id == query { "✓" } else { " " };
                println!(
                    "{:>3}. {own} image {:<8} score {:.4}  {}",
                    hit.rank, hit.image_id, hit.score, h.captions[caption]
                );
            }
            _ => {
                println!(
                    "{:>3}. image {:<8} score {:.4}",
                    hit.rank, hit.image_id, hit.score
                );
                let first = hit.image * rcar_data::split::CAPTIONS_PER_IMAGE;
                for caption in &h.captions[first..first + rcar_data::split::CAPTIONS_PER_IMAGE] {
                    println!("       {caption}");
                }
            }
        }
    }
    let query = a.encode_seconds + a.first_stage_seconds + a.rerank_seconds;
    println!(
        "{} pairs re-ranked of {} items; query {:.1} ms (encode {:.1}, first stage {:.1}, re-rank {:.1}); index and model opened in {:.2}s",
        a.pairs,
        if args.image.is_some() { h.captions.len() } else { h.image_ids.len() },
        1e3 * query,
        1e3 * a.encode_seconds,
        1e3 * a.first_stage_seconds,
        1e3 * a.rerank_seconds,
        opened
    );
}
