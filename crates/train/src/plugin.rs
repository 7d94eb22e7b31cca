//! The plug-in table: does each regulator help each host? Every host is trained bare and with
//! `+RCR 2`, `+RAR 2` and `+RCAR 2`, under the host's own recipe, once per seed (a seed fixes the
//! data order, the same for a host's four models), then evaluated on the test split.
//!
//! Each run lives in `OUT/<host>-<variant>-s<seed>/`; its result (`plugin.json`) is written when
//! it is done, so an interrupted table continues where it stopped and a finished run is not
//! trained twice.

use crate::{TrainConfig, TrainError, Trainer};
use burn::tensor::Device;
use rcar_backbones::checkpoint::load_any;
use rcar_backbones::Mode;
use rcar_data::split::Split;
use rcar_data::vocab::Vocab;
use rcar_data::DataError;
use rcar_eval::{evaluate, EvalOptions, Progress};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The regulators plugged into every host: (label, mode, steps).
pub const VARIANTS: [(&str, Mode, usize); 4] = [
    ("base", Mode::OnlyRcr, 0),
    ("+RCR 2", Mode::OnlyRcr, 2),
    ("+RAR 2", Mode::OnlyRar, 2),
    ("+RCAR 2", Mode::CoopRcar, 2),
];

const RESULT_FILE: &str = "plugin.json";

/// One trained and evaluated model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub host: String,
    pub variant: String,
    pub seed: u64,
    /// Test R@1, image → text and text → image.
    pub i2t_r1: f64,
    pub t2i_r1: f64,
    pub rsum: f64,
    /// Training and evaluation, wall clock.
    pub seconds: f64,
}

/// The run directory name of a cell: `scan-t2i-rcar2-s0`.
fn run_name(host: &str, variant: &str, seed: u64) -> String {
    let host = host.to_lowercase().replace(' ', "-");
    let variant = match variant {
        "base" => "base".to_string(),
        v => v.trim_start_matches('+').to_lowercase().replace(' ', ""),
    };
    format!("{host}-{variant}-s{seed}")
}

/// Trains and evaluates every host × variant × seed into `out`, reusing finished runs. `hosts`:
/// (name, the host's bare experiment); the variants change only its mode and steps.
pub fn run_table(
    hosts: &[(String, TrainConfig)],
    seeds: &[u64],
    out: &Path,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Vec<Cell>, TrainError> {
    let mut cells = Vec::new();
    // Seed by seed, so an interrupted table has whole columns.
    for &seed in seeds {
        for (host, base) in hosts {
            for (variant, mode, steps) in VARIANTS {
                let mut cfg = base.clone();
                cfg.model.mode = mode;
                cfg.model.steps = steps;
                cfg.seed = seed;
                cfg.name = run_name(host, variant, seed);
                let cell = run_cell(
                    host,
                    variant,
                    cfg,
                    &out.join(run_name(host, variant, seed)),
                    device,
                    progress,
                )?;
                progress.line(&format!(
                    "{host} {variant} seed {seed}: R@1 {:.1}/{:.1}, rsum {:.1}, {:.0}s",
                    cell.i2t_r1, cell.t2i_r1, cell.rsum, cell.seconds
                ));
                cells.push(cell);
            }
        }
    }
    Ok(cells)
}

/// One cell: its saved result, or a run (continued where it stopped) and its test evaluation.
fn run_cell(
    host: &str,
    variant: &str,
    cfg: TrainConfig,
    dir: &Path,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Cell, TrainError> {
    let result = dir.join(RESULT_FILE);
    if result.exists() {
        let text = std::fs::read_to_string(&result).map_err(|e| DataError::io(&result, e))?;
        return serde_json::from_str(&text)
            .map_err(|e| DataError::invalid(&result, format!("not a plug-in result: {e}")).into());
    }
    let started = Instant::now();
    let train_device = device.clone().autodiff();
    let mut trainer = if dir.join("config.json").exists() {
        Trainer::resume(dir, &train_device, |_| {})?
    } else {
        Trainer::new(cfg.clone(), dir, &train_device)?
    };
    trainer.run(progress, None)?;
    let vocab = Vocab::load(&cfg.vocab)?;
    let test = Split::open(&cfg.data, "test", &vocab)?;
    let model = load_any(dir, device)?;
    let (report, _) = evaluate(
        &[model],
        &[],
        &test,
        &EvalOptions::default(),
        device,
        progress,
    )?;
    let cell = Cell {
        host: host.to_string(),
        variant: variant.to_string(),
        seed: cfg.seed,
        i2t_r1: report.metrics.i2t.r1,
        t2i_r1: report.metrics.t2i.r1,
        rsum: report.metrics.rsum,
        seconds: started.elapsed().as_secs_f64(),
    };
    crate::run::write_json(&result, &cell)?;
    Ok(cell)
}

/// The table in markdown: per host and variant, test R@1 both ways and rsum (mean over seeds),
/// the rsum gain over the host's base (mean of each seed's own difference), each seed's rsum (the
/// noise) and the mean time of a run.
pub fn markdown(cells: &[Cell]) -> String {
    let mut out = String::from(
        "| host | model | R@1 i2t | R@1 t2i | rsum | gain over base | rsum per seed | time per run |\n\
         |---|---|---:|---:|---:|---:|---|---:|\n",
    );
    let mut hosts: Vec<&str> = Vec::new();
    for c in cells {
        if !hosts.contains(&c.host.as_str()) {
            hosts.push(&c.host);
        }
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    for host in hosts {
        let of = |variant: &str| -> Vec<&Cell> {
            cells
                .iter()
                .filter(|c| c.host == host && c.variant == variant)
                .collect()
        };
        let base = of("base");
        for (variant, _, _) in VARIANTS {
            let rows = of(variant);
            if rows.is_empty() {
                continue;
            }
            let field = |f: fn(&Cell) -> f64| mean(&rows.iter().map(|c| f(c)).collect::<Vec<_>>());
            let gains: Vec<f64> = rows
                .iter()
                .filter_map(|c| {
                    base.iter()
                        .find(|b| b.seed == c.seed)
                        .map(|b| c.rsum - b.rsum)
                })
                .collect();
            let gain = match (variant, gains.is_empty()) {
                ("base", _) | (_, true) => "–".to_string(),
                _ => format!("{:+.1}", mean(&gains)),
            };
            let per_seed: Vec<String> = rows
                .iter()
                .map(|c| format!("{:.1} (s{})", c.rsum, c.seed))
                .collect();
            out.push_str(&format!(
                "| {host} | {variant} | {:.1} | {:.1} | {:.1} | {gain} | {} | {:.0} s |\n",
                field(|c| c.i2t_r1),
                field(|c| c.t2i_r1),
                field(|c| c.rsum),
                per_seed.join(", "),
                field(|c| c.seconds),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(host: &str, variant: &str, seed: u64, rsum: f64) -> Cell {
        Cell {
            host: host.into(),
            variant: variant.into(),
            seed,
            i2t_r1: rsum / 10.0,
            t2i_r1: rsum / 20.0,
            rsum,
            seconds: 60.0,
        }
    }

    #[test]
    fn gains_are_per_seed_differences_from_the_hosts_base() {
        let cells = [
            cell("SAF", "base", 0, 100.0),
            cell("SAF", "base", 1, 110.0),
            cell("SAF", "+RAR 2", 0, 104.0),
            cell("SAF", "+RAR 2", 1, 108.0),
        ];
        let table = markdown(&cells);
        let rar = table.lines().find(|l| l.contains("+RAR 2")).unwrap();
        // Gains +4 and −2: mean +1.0; rsum mean 106.0.
        assert!(
            rar.contains("| 106.0 | +1.0 | 104.0 (s0), 108.0 (s1) |"),
            "{rar}"
        );
        let base = table.lines().find(|l| l.contains("| base |")).unwrap();
        assert!(base.contains("| 105.0 | – |"), "{base}");
    }

    #[test]
    fn run_names_are_paths() {
        assert_eq!(run_name("SCAN t2i", "+RCAR 2", 1), "scan-t2i-rcar2-s1");
        assert_eq!(run_name("SGR", "base", 0), "sgr-base-s0");
    }
}
