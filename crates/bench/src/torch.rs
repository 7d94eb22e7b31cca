//! `--compare-torch`: the bench's workloads in PyTorch (`reference/torch_bench.py`, a batched
//! restatement of the official model that checks itself against the parity reference), on the same
//! machine, shapes and threads, so that every row both ran gets a ratio measured side by side.

use crate::report::BackendReport;
use crate::workload::{direction_name, mode_name, reference_shapes, scoring_chunk, BenchConfig};
use rcar_backbones::{Direction, Host, ModelConfig};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Lines, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

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
    /// The batches it was extrapolated from.
    #[serde(default)]
    pub extrapolated_from: Vec<usize>,
    pub unit: Option<String>,
    pub seconds: Option<f64>,
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
    /// Absent when the script died before its end.
    pub summary: Option<TorchSummary>,
    /// Why the run ended early, if it did.
    pub failure: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    Row(TorchRow),
    /// `--serve`: the rows it can run.
    Ready(Offers),
    Summary(TorchSummary),
}

#[derive(Debug, Deserialize)]
struct Offers {
    rows: Vec<String>,
    /// Those it can time one call at a time (`once\tNAME`).
    single: Vec<String>,
    /// Those to run whole before the bench's own rows.
    #[serde(default)]
    first: Vec<String>,
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

/// The script, started with `--serve` on the bench's shapes: it times the reference products at
/// once, then what the bench asks for — a whole row, or one call of a row between two of the
/// bench's own — so that the two sides of a ratio run seconds apart rather than minutes (this
/// machine's speed drifts by up to 2× over minutes).
pub struct TorchPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    /// The rows it can run, by name, those it can time one call at a time, and those to run
    /// whole before the bench's own rows.
    offers: Vec<String>,
    single: Vec<String>,
    first: Vec<String>,
    /// Its summary once it ends.
    run: TorchRun,
}

impl TorchPeer {
    /// Starts the script on `threads` threads and torch's `device` (`cpu`, `cuda`), with `preload`
    /// as its malloc where given, and waits for its reference rows; its progress goes to stderr.
    pub fn start(
        python: &str,
        cfg: &BenchConfig,
        threads: usize,
        device: &str,
        preload: Option<&Path>,
    ) -> Result<Self, String> {
        let args = script_args(cfg, threads, device);
        let mut command = Command::new(python);
        if let Some(lib) = preload {
            command.env("LD_PRELOAD", lib);
            eprint!("PyTorch: LD_PRELOAD={} ", lib.display());
        } else {
            eprint!("PyTorch: ");
        }
        eprintln!("{python} {SCRIPT} {} --serve", args.join(" "));
        let mut child = command
            .arg(SCRIPT)
            .args(&args)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {python}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let mut peer = TorchPeer {
            child,
            stdin,
            stdout,
            offers: Vec::new(),
            single: Vec::new(),
            first: Vec::new(),
            run: TorchRun::default(),
        };
        loop {
            match peer.next_line()? {
                // The reference products', printed on stderr too; the summary keeps the best.
                Some(Line::Row(_)) => {}
                Some(Line::Ready(Offers {
                    rows,
                    single,
                    first,
                })) => {
                    (peer.offers, peer.single, peer.first) = (rows, single, first);
                    return Ok(peer);
                }
                Some(Line::Summary(_)) | None => {
                    return Err(format!("{SCRIPT} ended before its first row"))
                }
            }
        }
    }

    /// PyTorch's run of the row named `name` (its warm-up and timed runs), timed now; `None` where
    /// the script has no such row.
    pub fn measure(&mut self, name: &str) -> Result<Option<TorchRow>, String> {
        self.ask(name, name)
    }

    /// The rows to run whole before the bench's own (the training steps: the largest may fit in
    /// memory only while the bench is small).
    pub fn first_rows(&self) -> Vec<String> {
        self.first.clone()
    }

    /// PyTorch's seconds for one call of the row named `name`, timed now (the script prepares the
    /// row and runs its warm-up the first time it is asked); `None` where it has no such row, or
    /// skips it (a training step too large to run beside the bench).
    pub fn once(&mut self, name: &str) -> Result<Option<f64>, String> {
        if !self.single.iter().any(|o| o == name) {
            return Ok(None);
        }
        let row = self.ask(name, &format!("once\t{name}"))?;
        Ok(row.and_then(|r| r.seconds))
    }

    fn ask(&mut self, name: &str, request: &str) -> Result<Option<TorchRow>, String> {
        if !self.offers.iter().any(|o| o == name) {
            return Ok(None);
        }
        let stdin = self.stdin.as_mut().ok_or("PyTorch's input is closed")?;
        writeln!(stdin, "{request}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{SCRIPT} stopped reading ({e})"))?;
        match self.next_line()? {
            Some(Line::Row(row)) if row.name == name => Ok(Some(row)),
            Some(other) => Err(format!("{SCRIPT} answered {name:?} with {other:?}")),
            None => Err(format!("{SCRIPT} ended while timing {name:?}")),
        }
    }

    /// Ends the script: its summary, and why it failed if it did.
    pub fn finish(mut self) -> TorchRun {
        drop(self.stdin.take());
        while let Ok(Some(line)) = self.next_line() {
            if let Line::Summary(s) = line {
                self.run.summary = Some(s);
            }
        }
        match self.child.wait() {
            Ok(status) if status.success() => {}
            Ok(status) => self.run.failure = Some(format!("{SCRIPT} ended with {status}")),
            Err(e) => self.run.failure = Some(format!("waiting for {SCRIPT}: {e}")),
        }
        self.run
    }

    fn next_line(&mut self) -> Result<Option<Line>, String> {
        let Some(line) = self.stdout.next() else {
            return Ok(None);
        };
        let line = line.map_err(|e| format!("reading {SCRIPT}'s output: {e}"))?;
        serde_json::from_str::<Line>(&line)
            .map(Some)
            .map_err(|e| format!("{SCRIPT} printed {line:?}, not a row ({e})"))
    }
}

/// The script's arguments for the bench's shapes.
fn script_args(cfg: &BenchConfig, threads: usize, device: &str) -> Vec<String> {
    let m = &cfg.model;
    let shapes: Vec<String> = reference_shapes(cfg)
        .iter()
        .map(|s| format!("{}x{}x{}", s.m, s.k, s.n))
        .collect();
    let batches: Vec<String> = cfg.train_batches.iter().map(usize::to_string).collect();
    let mode = mode_name(m.mode, m.steps);
    let (mode, steps) = mode.split_once(' ').unwrap_or(("only_rcr", "0"));
    // The blocks this project scores in on a device of PyTorch's kind: one thread per core on the
    // CPU, one on a GPU.
    let cpu = device == "cpu";
    let blocks: Vec<String> = [Direction::T2i, Direction::I2t]
        .into_iter()
        .map(|direction| {
            let mc = ModelConfig {
                direction,
                host: Host::Scan,
                ..m.clone()
            };
            let chunk = scoring_chunk(cfg, &mc, cpu, if cpu { threads } else { 1 });
            format!("{}={chunk}", direction_name(direction))
        })
        .collect();
    [
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
        ("--block-pairs", blocks.join(",")),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect()
}

/// Puts PyTorch's value beside each row of `report` that both ran (`rows`: PyTorch's, timed beside
/// this report's); on a CPU backend, takes torch's BLAS as the reference product rate where it is
/// the faster one.
pub fn annotate(report: &mut BackendReport, run: &TorchRun, rows: &[TorchRow], cpu_backend: bool) {
    for m in report.measurements.iter_mut().filter(|m| m.torch.is_none()) {
        let Some(row) = rows.iter().find(|r| r.name == m.name) else {
            continue;
        };
        match (row.skipped, row.estimate) {
            (true, Some(bytes)) => {
                let from: Vec<String> =
                    row.extrapolated_from.iter().map(usize::to_string).collect();
                m.note = format!(
                    "{}{}PyTorch skipped it: about {:.1} GiB{}",
                    m.note,
                    if m.note.is_empty() { "" } else { "; " },
                    bytes / (1u64 << 30) as f64,
                    if row.extrapolated.is_some() {
                        format!(
                            "; its rate (≈) extrapolated from batches {}",
                            from.join(" and ")
                        )
                    } else {
                        String::new()
                    }
                );
                m.torch = row.extrapolated;
                m.torch_extrapolated = row.extrapolated.is_some();
            }
            _ => m.torch = row.value,
        }
    }
    if let (None, Some(why)) = (&run.summary, &run.failure) {
        report.torch = Some(format!(
            "PyTorch's run ended early ({why}); ratio = this project's rate / PyTorch's"
        ));
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
            "torch {} {place}; same shapes and scoring blocks; timed call by call alternately \
             with this project's (a training step too large to run beside it: whole, before this \
             project's rows); ratio = this project's rate / PyTorch's",
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
    use crate::timing::Repeats;
    use rcar_train::TrainConfig;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for `python` that ignores the script and speaks `--serve`'s protocol: one
    /// reference row, the offer of rows `a` and `b`, then `answer` for each name read.
    fn stand_in(dir: &Path, answer: &str) -> String {
        let path = dir.join("python");
        let script = format!(
            r#"#!/bin/sh
echo '{{"row": {{"name": "torch.mm 1x1", "value": 1.0, "unit": "GFLOP/s", "seconds": 1}}}}'
echo '{{"ready": {{"rows": ["a", "b", "c"], "single": ["b", "c"], "first": ["a"]}}}}'
while read name; do {answer}; done
echo '{{"summary": {{"torch": "0", "threads": 2, "blas": "MKL", "reference_gflops": 9.5, "reference": "torch.mm"}}}}'
"#
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn bench_config() -> BenchConfig {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/demo.json");
        BenchConfig {
            model: TrainConfig::load(&demo).unwrap().model,
            regions: 36,
            words: 5,
            encode_batch: 2,
            grid: (2, 3),
            train_batches: vec![4],
            repeats: Repeats { warmup: 0, runs: 1 },
            seed: 0,
        }
    }

    #[test]
    fn pytorch_scores_in_the_blocks_this_project_uses_on_a_device_of_its_kind() {
        let paper =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/f30k_t2i_rcar.json");
        let cfg = BenchConfig {
            model: TrainConfig::load(&paper).unwrap().model,
            words: 12,
            grid: (16, 64),
            ..bench_config()
        };
        let blocks = |device| {
            let args = script_args(&cfg, 2, device);
            let at = args.iter().position(|a| a == "--block-pairs").unwrap();
            args[at + 1].clone()
        };
        // The CPU: 4 MiB per `[rows, E]` tensor, 1,024 query rows at E = 1024 (12 words a pair
        // in t2i, 36 regions in i2t).
        assert_eq!(blocks("cpu"), "t2i=85,i2t=28");
        // A GPU: one thread, the evaluation's 1 GiB over each pair's intermediates, at most the grid.
        assert_eq!(blocks("cuda"), "t2i=1024,i2t=737");
    }

    #[test]
    fn the_peer_times_each_offered_row_or_call_when_asked_and_ends_with_its_summary() {
        let dir = tempfile::tempdir().unwrap();
        let python = stand_in(
            dir.path(),
            // A request `once<TAB>NAME` times one call: 0.25 s, against 0.5 s for a whole row.
            // `c` is a step too large to run beside the bench: skipped call by call.
            r#"case "$name" in once*c) echo '{"row": {"name": "c", "skipped": true}}'; continue;;
once*) name="${name#once?}"; s=0.25;; *) s=0.5;; esac
echo "{\"row\": {\"name\": \"$name\", \"value\": 2.0, \"seconds\": $s}}""#,
        );
        let mut peer = TorchPeer::start(&python, &bench_config(), 2, "cpu", None).unwrap();
        let row = peer.measure("b").unwrap().expect("b is offered");
        assert_eq!((row.name.as_str(), row.seconds), ("b", Some(0.5)));
        assert!(peer.measure("similarity SAF").unwrap().is_none());
        assert_eq!(peer.once("b").unwrap(), Some(0.25));
        // `a` is timed only as a whole row.
        assert_eq!(peer.once("a").unwrap(), None);
        assert_eq!(peer.once("c").unwrap(), None);
        assert_eq!(peer.first_rows(), ["a"]);
        let run = peer.finish();
        assert_eq!(run.failure, None);
        assert_eq!(run.summary.map(|s| s.reference_gflops), Some(9.5));
    }

    #[test]
    fn a_peer_that_dies_mid_row_keeps_the_rows_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let python = stand_in(
            dir.path(),
            r#"[ "$name" = a ] || exit 3; echo '{"row": {"name": "a", "value": 2.0}}'"#,
        );
        let mut peer = TorchPeer::start(&python, &bench_config(), 2, "cpu", None).unwrap();
        let a = peer.measure("a").unwrap().expect("a is offered");
        let err = peer.measure("b").unwrap_err();
        assert!(err.contains("ended while timing \"b\""), "{err}");
        let run = peer.finish();
        assert!(run.summary.is_none());
        let why = run.failure.clone().unwrap_or_default();
        assert!(why.contains("exit status: 3"), "{why}");
        let mut report = report_of(vec![measurement("a", 3.0), measurement("b", 1.0)]);
        annotate(&mut report, &run, &[a], true);
        assert_eq!(report.measurements[0].ratio(), Some(1.5));
        assert_eq!(report.measurements[1].ratio(), None);
        let table = report.markdown();
        assert!(table.contains("PyTorch's run ended early"), "{table}");
        assert!(table.contains("| 2.0 | 1.50× |"), "{table}");
    }

    /// A report of `measurements` on the CPU, its reference 100 GFLOP/s.
    fn report_of(measurements: Vec<Measurement>) -> BackendReport {
        BackendReport {
            backend: "flex".into(),
            device: "cpu".into(),
            reference_gflops: 100.0,
            reference: "gemm".into(),
            measurements,
            torch: None,
        }
    }

    fn measurement(name: &str, value: f64) -> Measurement {
        Measurement::new(name.to_string(), value, "pairs/s", 1.0)
    }

    fn torch_row(line: &str) -> TorchRow {
        match serde_json::from_str::<Line>(line).unwrap() {
            Line::Row(row) => row,
            other => panic!("not a row: {other:?}"),
        }
    }

    #[test]
    fn a_batch_torch_could_not_hold_is_compared_with_its_extrapolated_rate() {
        let mut report = report_of(vec![measurement("a", 300.0), measurement("b", 900.0)]);
        let rows = vec![
            torch_row(r#"{"row": {"name": "a", "value": 200.0, "unit": "pairs/s", "seconds": 1}}"#),
            torch_row(
                r#"{"row": {"name": "b", "skipped": true, "estimate": 3.4e10, "ceiling": 2.4e10,
                    "extrapolated": 300.0, "extrapolated_seconds": 54.6,
                    "extrapolated_from": [32, 48]}}"#,
            ),
        ];
        let run = TorchRun {
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
        annotate(&mut report, &run, &rows, true);
        let [a, b] = &report.measurements[..] else {
            unreachable!()
        };
        assert_eq!((a.ratio(), a.torch_extrapolated), (Some(1.5), false));
        assert_eq!((b.ratio(), b.torch_extrapolated), (Some(3.0), true));
        assert!(
            b.note.contains(
                "PyTorch skipped it: about 31.7 GiB; its rate (≈) extrapolated from batches 32 and 48"
            ),
            "{}",
            b.note
        );
        let table = report.markdown();
        assert!(table.contains("| ≈300.0 | ≈3.00× |"), "{table}");
        assert!(table.contains("| 200.0 | 1.50× |"), "{table}");
    }

    /// `torch_bench.py` scores in blocks of its own (`reference/blocks.py`, which needs no torch);
    /// they must be this project's, or the two sides would time different work.
    #[test]
    fn the_scripts_blocks_are_this_projects_blocks() {
        use rcar_backbones::similarity::block_ranges;
        use rcar_eval::encode::CAPTIONS_PER_BLOCK;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/blocks.py");
        let grids = [
            (16, 64),
            (64, 16),
            (1, 1),
            (7, 300),
            (300, 7),
            (5, 1000),
            (128, 640),
        ];
        let chunks = [1, 3, 28, 85, 256, 737, 1024, 100_000];
        let cases: Vec<(Direction, usize, usize, usize)> = [Direction::T2i, Direction::I2t]
            .into_iter()
            .flat_map(|d| grids.map(|(ni, nc)| chunks.map(|chunk| (d, ni, nc, chunk))))
            .flatten()
            .collect();
        let out = Command::new("python3")
            .arg(&script)
            .args(
                cases
                    .iter()
                    .map(|(d, ni, nc, chunk)| format!("{},{ni},{nc},{chunk}", direction_name(*d))),
            )
            .output()
            .expect("python3 runs (this test needs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = String::from_utf8(out.stdout).unwrap();
        let python: Vec<&str> = out.lines().collect();
        assert_eq!(python.len(), cases.len());
        for (&(direction, ni, nc, chunk), python) in cases.iter().zip(python) {
            let rust: Vec<String> = block_ranges(direction, ni, nc, chunk, CAPTIONS_PER_BLOCK)
                .into_iter()
                .map(|(i, c)| format!("{} {} {} {}", i.start, i.end, c.start, c.end))
                .collect();
            assert_eq!(
                python,
                rust.join(";"),
                "blocks of {direction:?} {ni}x{nc} in {chunk} pairs"
            );
        }
    }
}
