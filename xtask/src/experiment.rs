//! `cargo xtask experiment plugin`: the plug-in table — every host bare and with `+RCR 2`,
//! `+RAR 2`, `+RCAR 2`, trained on the synthetic dataset at the demo presets' size and each host's
//! own recipe, one column of runs per seed, evaluated on the test split (`rcar_train::plugin`).

use crate::backend;
use crate::demo::ensure_synthetic;
use crate::progress::Bars;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use rcar_backbones::Direction;
use rcar_data::atomic::write_atomic;
use rcar_train::plugin::{markdown, rows, run_table, Cell};
use rcar_train::TrainConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ExperimentCommand {
    /// Each regulator in each host: test R@1, rsum and the gain over the host's base.
    Plugin(PluginArgs),
}

impl ExperimentCommand {
    pub fn backend(&self) -> &str {
        match self {
            ExperimentCommand::Plugin(args) => &args.backend,
        }
    }
}

#[derive(Args)]
pub struct PluginArgs {
    /// Seeds, comma-separated: one run of every model per seed (their spread is the noise).
    #[arg(long, default_value = "0,1,2")]
    seeds: String,
    /// Hosts, comma-separated, of `scan-t2i`, `scan-i2t`, `saf`, `sgr`.
    #[arg(long, default_value = "scan-t2i,scan-i2t,saf,sgr")]
    hosts: String,
    /// The synthetic dataset (generated there if absent).
    #[arg(long, default_value = "data/synth")]
    data: PathBuf,
    /// Where the runs go; finished ones are reused, an unfinished one continued.
    #[arg(long, default_value = "runs/plugin")]
    out: PathBuf,
    /// An earlier table's JSON (`--json`): its cells stand in for the same host, variant and seed,
    /// neither trained nor read from --out (for runs whose directories are gone). Only for a table
    /// made with the same presets and epochs.
    #[arg(long)]
    earlier: Option<PathBuf>,
    /// Epochs per run (default: the demo presets').
    #[arg(long)]
    epochs: Option<usize>,
    /// Also write the table (markdown).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Also write every run's result and the table's rows (JSON: `{"cells": [..], "rows": [..]}`).
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value = "flex")]
    pub backend: String,
}

/// A host's bare experiment: the demo presets (RCAR's recipe for the SCAN host, SGRAF's for SAF
/// and SGR).
fn host_experiment(host: &str) -> Result<(String, TrainConfig)> {
    let (name, file, direction) = match host {
        "scan-t2i" => ("SCAN t2i", "experiments/demo_base.json", Direction::T2i),
        "scan-i2t" => ("SCAN i2t", "experiments/demo_base.json", Direction::I2t),
        "saf" => ("SAF", "experiments/demo_saf.json", Direction::T2i),
        "sgr" => ("SGR", "experiments/demo_sgr.json", Direction::T2i),
        other => bail!("--hosts: unknown host {other:?} (scan-t2i, scan-i2t, saf, sgr)"),
    };
    let mut cfg = TrainConfig::load(std::path::Path::new(file))?;
    cfg.model.direction = direction;
    Ok((name.to_string(), cfg))
}

/// The cells of a table's JSON (`{"cells": [..], "rows": [..]}`).
fn earlier_cells(path: &Path) -> Result<Vec<Cell>> {
    let bad = |e: &dyn std::fmt::Display| anyhow::anyhow!("--earlier {}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
    let mut table: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e))?;
    serde_json::from_value(table["cells"].take())
        .map_err(|e| bad(&format!("not a plug-in table's cells: {e}")))
}

pub fn run(cmd: ExperimentCommand) -> Result<ExitCode> {
    let ExperimentCommand::Plugin(args) = cmd;
    let seeds = args
        .seeds
        .split(',')
        .map(|s| s.trim().parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--seeds {:?}: {e}", args.seeds))?;
    let vocab = ensure_synthetic(&args.data)?;
    let hosts = args
        .hosts
        .split(',')
        .map(|h| {
            let (name, mut cfg) = host_experiment(h.trim())?;
            cfg.data = args.data.clone();
            cfg.vocab = vocab.clone();
            cfg.epochs = args.epochs.unwrap_or(cfg.epochs);
            Ok((name, cfg))
        })
        .collect::<Result<Vec<_>>>()?;
    let earlier = match &args.earlier {
        Some(path) => earlier_cells(path)?,
        None => Vec::new(),
    };
    let device = backend::device(&args.backend)?;
    let started = std::time::Instant::now();
    let cells = run_table(
        &hosts,
        &seeds,
        &earlier,
        &args.out,
        &device,
        &mut Bars::new(),
    )?;
    let rows = rows(&cells);
    let table = markdown(&rows);
    println!();
    print!("{table}");
    println!(
        "{} runs in {:.0}s (runs in {})",
        cells.len(),
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    let stuck: Vec<String> = cells
        .iter()
        .filter(|c| c.stuck)
        .map(|c| format!("{} {} s{}", c.host, c.variant, c.seed))
        .collect();
    if !stuck.is_empty() {
        println!(
            "warning: {} run(s) never left the loss plateau (their ranking is noise): {}",
            stuck.len(),
            stuck.join(", ")
        );
    }
    if let Some(path) = &args.markdown {
        write_atomic(path, table.as_bytes())?;
    }
    if let Some(path) = &args.json {
        let both = serde_json::json!({ "cells": cells, "rows": rows });
        write_atomic(path, &serde_json::to_vec_pretty(&both)?)?;
    }
    Ok(ExitCode::SUCCESS)
}
