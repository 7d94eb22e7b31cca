//! `--compare-torch`: the bench's workloads in PyTorch (`reference/torch_bench.py`, a batched
//! restatement of the official model that checks itself against the parity reference), on the same
//! machine, shapes and threads, so that every row both ran gets a ratio measured side by side.

use crate::report::BackendReport;
use crate::workload::{direction_name, mode_name, reference_shapes, BenchConfig};
use serde::Deserialize;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// The script, where the source tree has it.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/reference/torch_bench.py");

/// One row of the script's output, named as the Rust bench names it.
#[derive(Debug, Clone, Deserialize)]
pub struct TorchRow {
    pub name: String,
    pub value: Option<f64>,
    #[serde(default)]
    pub skipped: bool,
    /// Bytes, where the script skipped the row for memory.
    pub estimate: Option<f64>,
    /// The skipped row's rate as extrapolated from smaller batches (`step_estimate`).
    pub extrapolated: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TorchSummary {
    pub torch: String,
    pub threads: usize,
    pub blas: String,
    pub reference_gflops: f64,
    pub reference: String,
    /// The malloc PyTorch ran with (its LD_PRELOAD, or glibc's).
    #[serde(default)]
    pub allocator: String,
    /// The GPU's name, where its workloads ran on one (`--device cuda`).
    #[serde(default)]
    pub gpu: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct TorchRun {
    pub rows: Vec<TorchRow>,
    /// Absent when the script died before its end (its rows so far are kept).
    pub summary: Option<TorchSummary>,
    /// Why the run ended early, if it did.
    pub failure: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    Row(TorchRow),
    Summary(TorchSummary),
}

/// Checks that `python` runs and imports torch, with an error that says what to install.
pub fn check_python(python: &str) -> Result<(), String> {
    let out = Command::new(python)
        .args(["-c", "import torch, numpy"])
        .output()
        .map_err(|e| format!("--compare-torch: cannot run {python:?} ({e}); give --python PATH"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "--compare-torch: {python} cannot import torch and numpy (pip install torch numpy, or give --python PATH): {}",
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
    ))
}

/// Runs the script with the bench's shapes on `threads` threads and torch's `device` (`cpu`,
/// `cuda`), with `preload` as its malloc where given; its progress goes to stderr.
pub fn run_torch(
    python: &str,
    cfg: &BenchConfig,
    threads: usize,
    device: &str,
    preload: Option<&Path>,
) -> Result<TorchRun, String> {
    let m = &cfg.model;
    let shapes: Vec<String> = reference_shapes(cfg)
        .iter()
        .map(|s| format!("{}x{}x{}", s.m, s.k, s.n))
        .collect();
    let batches: Vec<String> = cfg.train_batches.iter().map(usize::to_string).collect();
    let mode = mode_name(m.mode, m.steps);
    let (mode, steps) = mode.split_once(' ').unwrap_or(("only_rcr", "0"));
    let args: Vec<String> = [
        ("--threads", threads.to_string()),
        ("--img-dim", m.img_dim.to_string()),
        ("--embed-size", m.embed_size.to_string()),
        ("--word-dim", m.word_dim.to_string()),
        ("--sim-dim", m.sim_dim.to_string()),
        ("--vocab-size", m.vocab_size.to_string()),
        ("--regions", cfg.regions.to_string()),
        ("--words", cfg.words.to_string()),
        ("--grid", format!("{}x{}", cfg.grid.0, cfg.grid.1)),
        ("--encode-batch", cfg.encode_batch.to_string()),
        ("--train-batches", batches.join(",")),
        ("--train-direction", direction_name(m.direction).to_string()),
        ("--train-mode", mode.to_string()),
        ("--train-steps", steps.to_string()),
        ("--warmup", cfg.repeats.warmup.to_string()),
        ("--runs", cfg.repeats.runs.to_string()),
        ("--gemm", shapes.join(",")),
        ("--device", device.to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect();
    let mut command = Command::new(python);
    if let Some(lib) = preload {
        command.env("LD_PRELOAD", lib);
        eprint!("PyTorch: LD_PRELOAD={} ", lib.display());
    } else {
        eprint!("PyTorch: ");
    }
    eprintln!("{python} {SCRIPT} {}", args.join(" "));
    let mut child = command
        .arg(SCRIPT)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut run = TorchRun::default();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading {SCRIPT}'s output: {e}"))?;
        match serde_json::from_str::<Line>(&line) {
            Ok(Line::Row(row)) => run.rows.push(row),
            Ok(Line::Summary(s)) => run.summary = Some(s),
            Err(e) => return Err(format!("{SCRIPT} printed {line:?}, not a row ({e})")),
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {python}: {e}"))?;
    if !status.success() {
        run.failure = Some(format!(
            "{SCRIPT} ended with {status} after {} rows",
            run.rows.len()
        ));
    }
    Ok(run)
}

/// Puts PyTorch's value beside each row of `report` that both ran; on a CPU backend, takes torch's
/// BLAS as the reference product rate where it is the faster one.
pub fn annotate(report: &mut BackendReport, run: &TorchRun, cpu_backend: bool) {
    for m in &mut report.measurements {
        let Some(row) = run.rows.iter().find(|r| r.name == m.name) else {
            continue;
        };
        match (row.skipped, row.estimate) {
            (true, Some(bytes)) => {
                m.note = format!(
                    "{}{}PyTorch skipped it: about {:.1} GiB{}",
                    m.note,
                    if m.note.is_empty() { "" } else { "; " },
                    bytes / (1u64 << 30) as f64,
                    if row.extrapolated.is_some() {
                        "; its rate (≈) extrapolated from batches 16 and 24"
                    } else {
                        ""
                    }
                );
                m.torch = row.extrapolated;
                m.torch_extrapolated = row.extrapolated.is_some();
            }
            _ => m.torch = row.value,
        }
    }
    if let Some(s) = &run.summary {
        let place = match &s.gpu {
            Some(gpu) => format!("on {gpu}"),
            None => format!(
                "({}), {} threads, malloc: {}",
                s.blas, s.threads, s.allocator
            ),
        };
        report.torch = Some(format!(
            "torch {} {place}; same shapes; ratio = this project's rate / PyTorch's",
            s.torch
        ));
        if cpu_backend {
            report.raise_reference(s.reference_gflops, &format!("{} ({})", s.reference, s.blas));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Measurement;

    fn measurement(name: &str, value: f64) -> Measurement {
        Measurement::new(name.to_string(), value, "pairs/s", 1.0)
    }

    fn torch_row(line: &str) -> TorchRow {
        match serde_json::from_str::<Line>(line).unwrap() {
            Line::Row(row) => row,
            Line::Summary(_) => panic!("not a row"),
        }
    }

    #[test]
    fn a_batch_torch_could_not_hold_is_compared_with_its_extrapolated_rate() {
        let mut report = BackendReport {
            backend: "flex".into(),
            device: "cpu".into(),
            reference_gflops: 100.0,
            reference: "gemm".into(),
            measurements: vec![measurement("a", 300.0), measurement("b", 900.0)],
            torch: None,
        };
        let run = TorchRun {
            rows: vec![
                torch_row(
                    r#"{"row": {"name": "a", "value": 200.0, "unit": "pairs/s", "seconds": 1}}"#,
                ),
                torch_row(
                    r#"{"row": {"name": "b", "skipped": true, "estimate": 3.4e10, "ceiling": 2.4e10,
                    "extrapolated": 300.0, "extrapolated_seconds": 54.6}}"#,
                ),
            ],
            summary: Some(TorchSummary {
                torch: "2.15.0".into(),
                threads: 2,
                blas: "MKL".into(),
                reference_gflops: 50.0,
                reference: "torch.mm".into(),
                allocator: "glibc malloc".into(),
                gpu: None,
            }),
            failure: None,
        };
        annotate(&mut report, &run, true);
        let [a, b] = &report.measurements[..] else {
            unreachable!()
        };
        assert_eq!((a.ratio(), a.torch_extrapolated), (Some(1.5), false));
        assert_eq!((b.ratio(), b.torch_extrapolated), (Some(3.0), true));
        assert!(
            b.note.contains("PyTorch skipped it: about 31.7 GiB"),
            "{}",
            b.note
        );
        let table = report.markdown();
        assert!(table.contains("| ≈300.0 | ≈3.00× |"), "{table}");
        assert!(table.contains("| 200.0 | 1.50× |"), "{table}");
    }
}
