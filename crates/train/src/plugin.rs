//! The plug-in table: does each regulator help each host? Every host is trained bare and with
//! `+RCR 2`, `+RAR 2` and `+RCAR 2`, under the host's own recipe, once per seed (a seed fixes the
//! data order, the same for a host's four models), then evaluated on the test split.
//!
//! Each run lives in `OUT/<host>-<variant>-s<seed>/`; its result (`plugin.json`) is written when
//! it is done, so an interrupted table continues where it stopped and a finished run is not
//! trained twice. The table's directory is locked while it runs (`lock`). Cells of an earlier
//! table's JSON can stand in for runs whose directories are gone (another machine, a fresh clone).

use crate::lock::RunLock;
use crate::loss::LossMode;
use crate::run::RunDir;
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
    /// The rsum of a random ranking of the same test split.
    #[serde(default)]
    pub chance_rsum: f64,
    /// The training loss never left the plateau of its loss mode ([`stuck`]).
    #[serde(default)]
    pub stuck: bool,
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
/// (name, the host's bare experiment); the variants change only its mode and steps. A cell found
/// in `earlier` (the same host, variant and seed, from an earlier table of the same presets) is
/// taken as it is, neither trained nor read from `out`.
pub fn run_table(
    hosts: &[(String, TrainConfig)],
    seeds: &[u64],
    earlier: &[Cell],
    out: &Path,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Vec<Cell>, TrainError> {
    // One table per directory; each run's trainer also locks its own.
    let _lock = RunLock::acquire(out)?;
    let mut cells = Vec::new();
    // Seed by seed, so an interrupted table has whole columns.
    for &seed in seeds {
        for (host, base) in hosts {
            for (variant, mode, steps) in VARIANTS {
                let known = earlier
                    .iter()
                    .find(|c| c.host == *host && c.variant == variant && c.seed == seed);
                if let Some(cell) = known {
                    progress.line(&format!(
                        "{host} {variant} seed {seed}: rsum {:.1} (an earlier table's)",
                        cell.rsum
                    ));
                    cells.push(cell.clone());
                    continue;
                }
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
                    "{host} {variant} seed {seed}: R@1 {:.1}/{:.1}, rsum {:.1}, {:.0}s{}",
                    cell.i2t_r1,
                    cell.t2i_r1,
                    cell.rsum,
                    cell.seconds,
                    if cell.stuck { ", stuck" } else { "" }
                ));
                cells.push(cell);
            }
        }
    }
    Ok(cells)
}

/// One cell: its saved result, or a run (continued where it stopped) and its test evaluation.
/// A directory holding another experiment's run is refused rather than read back.
fn run_cell(
    host: &str,
    variant: &str,
    cfg: TrainConfig,
    dir: &Path,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Cell, TrainError> {
    let result = dir.join(RESULT_FILE);
    let config = dir.join("config.json");
    if config.exists() {
        let saved = TrainConfig::load(&config)?;
        if saved.without_paths() != cfg.without_paths() {
            return Err(DataError::invalid(
                &config,
                format!(
                    "this run was trained with another configuration than the table's {} {} \
                     (a changed preset or --epochs): move it away or choose another --out",
                    host, variant
                ),
            )
            .into());
        }
    }
    if result.exists() {
        let text = std::fs::read_to_string(&result).map_err(|e| DataError::io(&result, e))?;
        let mut cell: Cell = serde_json::from_str(&text)
            .map_err(|e| DataError::invalid(&result, format!("not a plug-in result: {e}")))?;
        // Results written before the check existed are checked from their log.
        cell.stuck = stuck(dir, &cfg)?;
        return Ok(cell);
    }
    let started = Instant::now();
    let train_device = device.clone().autodiff();
    let mut trainer = if config.exists() {
        let trainer = Trainer::resume(dir, &train_device, |_| {})?;
        for problem in &trainer.passed_over {
            progress.line(&format!("passed over {problem}"));
        }
        trainer
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
        chance_rsum: chance_rsum(test.num_images(), test.im_div),
        stuck: stuck(dir, &cfg)?,
        seconds: started.elapsed().as_secs_f64(),
    };
    crate::run::write_json(&result, &cell)?;
    Ok(cell)
}

/// Whether a run's training loss never left the plateau where all scores are equal
/// ([`TrainConfig::plateau`]): in the steps of one loss mode (summed or hardest) no logged loss
/// fell below 99% of that mode's plateau. Such a model's ranking is noise.
pub fn stuck(dir: &Path, cfg: &TrainConfig) -> Result<bool, DataError> {
    let path = RunDir::new(dir).metrics();
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    // Per mode: (steps logged, whether one fell below the plateau).
    let mut seen: Vec<(LossMode, bool)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |what: &str| DataError::invalid(&path, format!("line {}: {what}", n + 1));
        let entry: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&format!("not JSON: {e}")))?;
        if entry["kind"] != "step" {
            continue;
        }
        let mode: LossMode = serde_json::from_value(entry["loss_mode"].clone())
            .map_err(|e| bad(&format!("loss_mode: {e}")))?;
        let loss = entry["loss"]
            .as_f64()
            .ok_or_else(|| bad("a step without a numeric loss"))?;
        let left = loss < 0.99 * cfg.plateau(mode);
        match seen.iter_mut().find(|(m, _)| *m == mode) {
            Some((_, any)) => *any |= left,
            None => seen.push((mode, left)),
        }
    }
    Ok(seen.iter().any(|&(_, left)| !left))
}

/// The expected rsum (R@1, 5, 10 both ways, in %) of a random ranking of `images` images with
/// `per_image` captions each: a caption finds its one image in the top K with probability K/N; an
/// image has one of its captions in its top K with 1 − C(M−c, K)/C(M, K), M = N·c captions.
pub fn chance_rsum(images: usize, per_image: usize) -> f64 {
    let (n, c) = (images as f64, per_image as f64);
    let m = n * c;
    [1usize, 5, 10]
        .iter()
        .map(|&k| {
            let t2i = (k as f64 / n).min(1.0);
            let none: f64 = (0..k)
                .map(|i| ((m - c - i as f64) / (m - i as f64)).max(0.0))
                .product();
            100.0 * (t2i + 1.0 - none)
        })
        .sum()
}

/// A mean and its sample standard deviation over seeds (0 for one seed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
}

impl Stat {
    pub fn of(xs: &[f64]) -> Self {
        let n = xs.len().max(1) as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = if xs.len() < 2 {
            0.0
        } else {
            xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        };
        Self {
            mean,
            std: var.sqrt(),
        }
    }

    fn show(&self) -> String {
        format!("{:.1} ± {:.1}", self.mean, self.std)
    }
}

/// A base below this many times the chance rsum is called near chance in the table.
pub const NEAR_CHANCE: f64 = 5.0;

/// One line of the table: a host's variant over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub host: String,
    pub variant: String,
    pub seeds: Vec<u64>,
    pub i2t_r1: Stat,
    pub t2i_r1: Stat,
    pub rsum: Stat,
    /// Each seed's rsum minus the same seed's base (the seeds with both), over those seeds.
    pub gain: Option<Stat>,
    /// Of those paired gains, how many are positive.
    pub gains_positive: usize,
    pub gains_paired: usize,
    /// `gain`, `loss` (the mean paired difference beyond the seed spread of both rows, every seed
    /// the same sign), `within noise`, or for a base `above chance` / `near chance`.
    pub verdict: String,
    /// Seeds whose run never left the loss plateau.
    pub stuck: Vec<u64>,
    pub chance_rsum: f64,
    /// Mean wall clock of a run.
    pub seconds: f64,
}

/// The table's rows, hosts in their order of appearance, variants in [`VARIANTS`]' order.
pub fn rows(cells: &[Cell]) -> Vec<Row> {
    let mut hosts: Vec<&str> = Vec::new();
    for c in cells {
        if !hosts.contains(&c.host.as_str()) {
            hosts.push(&c.host);
        }
    }
    let mut out = Vec::new();
    for host in hosts {
        let of = |variant: &str| -> Vec<&Cell> {
            cells
                .iter()
                .filter(|c| c.host == host && c.variant == variant)
                .collect()
        };
        let base = of("base");
        let base_rsum = Stat::of(&base.iter().map(|c| c.rsum).collect::<Vec<_>>());
        for (variant, _, _) in VARIANTS {
            let runs = of(variant);
            if runs.is_empty() {
                continue;
            }
            let stat =
                |f: fn(&Cell) -> f64| Stat::of(&runs.iter().map(|c| f(c)).collect::<Vec<_>>());
            let rsum = stat(|c| c.rsum);
            let chance = runs[0].chance_rsum;
            let gains: Vec<f64> = runs
                .iter()
                .filter_map(|c| {
                    base.iter()
                        .find(|b| b.seed == c.seed)
                        .map(|b| c.rsum - b.rsum)
                })
                .collect();
            let positive = gains.iter().filter(|&&g| g > 0.0).count();
            let (gain, verdict) = if variant == "base" {
                let near = rsum.mean < NEAR_CHANCE * chance;
                (
                    None,
                    if near { "near chance" } else { "above chance" }.to_string(),
                )
            } else if gains.is_empty() {
                (None, "no base".to_string())
            } else {
                let gain = Stat::of(&gains);
                let spread = rsum.std.max(base_rsum.std);
                let verdict = if gains.len() < 2 {
                    "one seed"
                } else if gain.mean > spread && positive == gains.len() {
                    "gain"
                } else if -gain.mean > spread && positive == 0 {
                    "loss"
                } else {
                    "within noise"
                };
                (Some(gain), verdict.to_string())
            };
            out.push(Row {
                host: host.to_string(),
                variant: variant.to_string(),
                seeds: runs.iter().map(|c| c.seed).collect(),
                i2t_r1: stat(|c| c.i2t_r1),
                t2i_r1: stat(|c| c.t2i_r1),
                rsum,
                gain,
                gains_positive: positive,
                gains_paired: gains.len(),
                verdict,
                stuck: runs.iter().filter(|c| c.stuck).map(|c| c.seed).collect(),
                chance_rsum: chance,
                seconds: stat(|c| c.seconds).mean,
            });
        }
    }
    out
}

/// The table in markdown: per host and variant, the mean ± standard deviation over seeds of test
/// R@1 both ways and rsum, the paired rsum gain over the host's base with how many seeds agree in
/// sign, the verdict, stuck runs and the mean time of a run.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| host | model | seeds | R@1 i2t | R@1 t2i | rsum | gain over base | seeds > base | verdict | stuck | time per run |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---|---|---:|\n",
    );
    for r in rows {
        let (gain, agree) = match &r.gain {
            Some(g) => (
                format!("{:+.1} ± {:.1}", g.mean, g.std),
                format!("{}/{}", r.gains_positive, r.gains_paired),
            ),
            None => ("–".to_string(), "–".to_string()),
        };
        let verdict = if r.variant == "base" {
            format!(
                "{} ({:.1}× chance)",
                r.verdict,
                r.rsum.mean / r.chance_rsum.max(1e-9)
            )
        } else {
            r.verdict.clone()
        };
        let stuck = if r.stuck.is_empty() {
            "–".to_string()
        } else {
            let seeds: Vec<String> = r.stuck.iter().map(|s| format!("s{s}")).collect();
            seeds.join(", ")
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {gain} | {agree} | {verdict} | {stuck} | {:.0} s |\n",
            r.host,
            r.variant,
            r.seeds.len(),
            r.i2t_r1.show(),
            r.t2i_r1.show(),
            r.rsum.show(),
            r.seconds,
        ));
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
            chance_rsum: 10.0,
            stuck: false,
            seconds: 60.0,
        }
    }

    fn row<'a>(rows: &'a [Row], variant: &str) -> &'a Row {
        rows.iter().find(|r| r.variant == variant).unwrap()
    }

    /// A host's cells: per variant, the rsum of seeds 0, 1, ...
    fn host(host: &str, variants: &[(&str, &[f64])]) -> Vec<Cell> {
        variants
            .iter()
            .flat_map(|(variant, rsums)| {
                rsums
                    .iter()
                    .enumerate()
                    .map(|(seed, &r)| cell(host, variant, seed as u64, r))
            })
            .collect()
    }

    #[test]
    fn gains_are_paired_by_seed_and_judged_against_the_seed_spread() {
        let cells = host(
            "SAF",
            &[
                ("base", &[100.0, 110.0, 105.0]),
                // +4, +6, +5: every seed above its base, but by less than the seed spread.
                ("+RCR 2", &[104.0, 116.0, 110.0]),
                // +4, −2, +1: mixed signs.
                ("+RAR 2", &[104.0, 108.0, 106.0]),
                // −20 each: a loss.
                ("+RCAR 2", &[80.0, 90.0, 85.0]),
            ],
        );
        let rows = rows(&cells);
        assert_eq!(rows.len(), 4);
        let base = row(&rows, "base");
        assert_eq!(
            base.rsum,
            Stat {
                mean: 105.0,
                std: 5.0
            }
        );
        assert_eq!((base.gain, base.verdict.as_str()), (None, "above chance"));
        let rcr = row(&rows, "+RCR 2");
        assert_eq!(
            rcr.gain,
            Some(Stat {
                mean: 5.0,
                std: 1.0
            })
        );
        // Mean gain 5.0 is not beyond the seed spread (std 6.0 here, 5.0 in the base).
        assert_eq!((rcr.gains_positive, rcr.gains_paired), (3, 3));
        assert_eq!(rcr.verdict, "within noise");
        let rar = row(&rows, "+RAR 2");
        assert_eq!(
            (rar.gains_positive, rar.verdict.as_str()),
            (2, "within noise")
        );
        let rcar = row(&rows, "+RCAR 2");
        assert_eq!((rcar.gains_positive, rcar.verdict.as_str()), (0, "loss"));
        let table = markdown(&rows);
        let line = table.lines().find(|l| l.contains("+RCAR 2")).unwrap();
        assert!(
            line.contains("| 85.0 ± 5.0 | -20.0 ± 0.0 | 0/3 | loss |"),
            "{line}"
        );
    }

    #[test]
    fn a_gain_beyond_the_spread_on_every_seed_is_a_gain() {
        let cells = host(
            "SGR",
            &[
                ("base", &[100.0, 102.0]),
                ("+RCAR 2", &[110.0, 111.0]),
                ("+RAR 2", &[101.0]),
            ],
        );
        let rows = rows(&cells);
        assert_eq!(row(&rows, "+RCAR 2").verdict, "gain");
        assert_eq!(row(&rows, "+RAR 2").verdict, "one seed");
        assert!(rows.iter().all(|r| r.variant != "+RCR 2"));
    }

    #[test]
    fn a_base_near_chance_and_stuck_seeds_are_named() {
        let mut cells = host("SGR", &[("base", &[30.0, 40.0])]);
        cells[1].stuck = true;
        let rows = rows(&cells);
        assert_eq!(rows[0].verdict, "near chance");
        assert_eq!(rows[0].stuck, vec![1]);
        let table = markdown(&rows);
        assert!(
            table.contains("| near chance (3.5× chance) | s1 |"),
            "{table}"
        );
    }

    #[test]
    fn chance_rsum_is_the_expected_recall_of_a_random_ranking() {
        // One image: every caption and image is found at once.
        assert!((chance_rsum(1, 5) - 600.0).abs() < 1e-9);
        // 100 images, one caption each: K/N both ways, 2·(1+5+10)%.
        assert!((chance_rsum(100, 1) - 32.0).abs() < 1e-9);
        // Two images of two captions: an image's top 1 is its own with 1/2, its top 5 always.
        assert!((chance_rsum(2, 2) - (50.0 + 50.0 + 4.0 * 100.0)).abs() < 1e-9);
    }

    #[test]
    fn a_run_is_stuck_when_no_step_of_a_loss_mode_left_its_plateau() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg: TrainConfig =
            serde_json::from_str(include_str!("../../../experiments/demo_sgr.json")).unwrap();
        cfg.batch_size = 4;
        cfg.margin = 0.5;
        // Plateaus: summed 2·4·3·0.5 = 12, hardest 2·4·0.5 = 4.
        let write = |lines: &[(&str, f64)]| {
            let log: String = lines
                .iter()
                .map(|(mode, loss)| {
                    format!("{{\"kind\":\"step\",\"loss_mode\":\"{mode}\",\"loss\":{loss}}}\n")
                })
                .collect();
            std::fs::write(RunDir::new(tmp.path()).metrics(), log).unwrap();
            stuck(tmp.path(), &cfg).unwrap()
        };
        assert!(!write(&[
            ("sum", 12.0),
            ("sum", 9.0),
            ("hardest", 4.0),
            ("hardest", 3.0)
        ]));
        assert!(write(&[
            ("sum", 12.0),
            ("sum", 9.0),
            ("hardest", 4.0),
            ("hardest", 3.99)
        ]));
        assert!(write(&[("hardest", 4.0)]));
        assert!(!write(&[("sum", 11.0)]));
        std::fs::write(RunDir::new(tmp.path()).metrics(), "{\"kind\":\"step\"}\n").unwrap();
        let err = stuck(tmp.path(), &cfg).unwrap_err().to_string();
        assert!(err.contains("metrics") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn run_names_are_paths() {
        assert_eq!(run_name("SCAN t2i", "+RCAR 2", 1), "scan-t2i-rcar2-s1");
        assert_eq!(run_name("SGR", "base", 0), "sgr-base-s0");
    }
}
