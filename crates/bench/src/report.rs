//! What a bench run found, as a markdown table and as JSON.

use crate::memory::Peak;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// What was run, e.g. `"similarity t2i coop_rcar 2"`.
    pub name: String,
    pub value: f64,
    /// Unit of `value`, e.g. `"pairs/s"`.
    pub unit: &'static str,
    /// Median seconds of one timed call.
    pub seconds: f64,
    /// Achieved matrix-product GFLOP/s, where the FLOPs are counted.
    pub gflops: Option<f64>,
    /// `gflops` as a percentage of the device's reference rate.
    pub percent_of_reference: Option<f64>,
    pub memory: Option<Peak>,
    /// Anything a reader needs to interpret the row (e.g. the share of a training step).
    pub note: String,
    /// Not run: the machine could not hold it (`memory` is then the estimate, `note` says why).
    pub skipped: bool,
    /// The same workload in PyTorch on the same machine and threads (`--compare-torch`).
    pub torch: Option<f64>,
    /// `torch` is PyTorch's rate extrapolated from smaller batches: it could not run this one.
    pub torch_extrapolated: bool,
}

impl Measurement {
    /// A row that ran, with nothing beside its rate and time yet.
    pub fn new(name: String, value: f64, unit: &'static str, seconds: f64) -> Self {
        Self {
            name,
            value,
            unit,
            seconds,
            gflops: None,
            percent_of_reference: None,
            memory: None,
            note: String::new(),
            skipped: false,
            torch: None,
            torch_extrapolated: false,
        }
    }

    /// This row's value over PyTorch's, where both ran (both are rates: above 1 is faster).
    pub fn ratio(&self) -> Option<f64> {
        self.torch.filter(|_| !self.skipped).map(|t| self.value / t)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendReport {
    pub backend: String,
    /// The device as the backend or the OS names it.
    pub device: String,
    /// The best matrix-product rate reached on the device for the model's dominant shapes.
    pub reference_gflops: f64,
    /// How the reference was obtained.
    pub reference: String,
    pub measurements: Vec<Measurement>,
    /// The PyTorch run compared against, e.g. `torch 2.15.0, MKL, 2 threads`.
    pub torch: Option<String>,
}

impl BackendReport {
    /// Takes `gflops` (measured elsewhere on the same machine, e.g. PyTorch's BLAS) as the reference
    /// where it is the higher rate, and recomputes every row's share of it.
    pub fn raise_reference(&mut self, gflops: f64, how: &str) {
        if gflops <= self.reference_gflops {
            self.reference = format!("{}; {how}: {gflops:.1} GFLOP/s", self.reference);
            return;
        }
        // `reference` names the best first, then the others with their rates: the best moves
        // down with its rate beside it.
        let (best, others) = match self.reference.split_once("; ") {
            Some((best, others)) => (best, format!("; {others}")),
            None => (self.reference.as_str(), String::new()),
        };
        self.reference = format!(
            "{how}; {best}: {:.1} GFLOP/s{others}",
            self.reference_gflops
        );
        self.reference_gflops = gflops;
        for m in &mut self.measurements {
            m.percent_of_reference = m.gflops.map(|g| 100.0 * g / gflops);
        }
    }

    pub fn markdown(&self) -> String {
        let torch = self.torch.is_some();
        let mut out = format!(
            "### {} — {}\n\nReference: {:.1} GFLOP/s ({})\n\n",
            self.backend, self.device, self.reference_gflops, self.reference
        );
        if let Some(t) = &self.torch {
            out.push_str(&format!("PyTorch: {t}\n\n"));
        }
        let (extra_head, extra_rule) = if torch {
            (" PyTorch | ratio |", "---:|---:|")
        } else {
            ("", "")
        };
        out.push_str(&format!(
            "| workload | value |{extra_head} median time | GFLOP/s | % of ref. | peak memory | note |\n|---|---:|{extra_rule}---:|---:|---:|---:|---|\n"
        ));
        for m in &self.measurements {
            let opt = |v: Option<f64>, digits: usize| {
                v.map_or("–".to_string(), |v| format!("{v:.digits$}"))
            };
            let memory = m.memory.map_or("–".to_string(), |p| {
                format!("{:.0} MiB ({})", p.bytes as f64 / 1048576.0, p.kind)
            });
            let (value, time) = if m.skipped {
                ("skipped".to_string(), "–".to_string())
            } else {
                (format!("{:.1} {}", m.value, m.unit), seconds(m.seconds))
            };
            let extra = if torch {
                let approx = if m.torch_extrapolated { "≈" } else { "" };
                let ratio = m
                    .ratio()
                    .map_or("–".to_string(), |r| format!("{approx}{r:.2}×"));
                format!(" {approx}{} | {ratio} |", opt(m.torch, 1))
            } else {
                String::new()
            };
            out.push_str(&format!(
                "| {} | {value} |{extra} {time} | {} | {} | {memory} | {} |\n",
                m.name,
                opt(m.gflops, 1),
                opt(m.percent_of_reference, 0),
                m.note
            ));
        }
        out
    }
}

fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reference_keeps_its_own_rate_as_faster_ones_arrive() {
        let mut report = BackendReport {
            backend: "flex".into(),
            device: "cpu".into(),
            reference_gflops: 200.0,
            reference: "gemm".into(),
            measurements: Vec::new(),
            torch: None,
        };
        report.raise_reference(150.0, "gemm again");
        report.raise_reference(230.0, "torch.mm");
        report.raise_reference(240.0, "gemm, after");
        assert_eq!(report.reference_gflops, 240.0);
        assert_eq!(
            report.reference,
            "gemm, after; torch.mm: 230.0 GFLOP/s; gemm: 200.0 GFLOP/s; gemm again: 150.0 GFLOP/s"
        );
    }
}
