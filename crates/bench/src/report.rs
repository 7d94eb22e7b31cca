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
}

impl BackendReport {
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### {} — {}\n\nReference: {:.1} GFLOP/s ({})\n\n| workload | value | median time | GFLOP/s | % of ref. | memory | note |\n|---|---:|---:|---:|---:|---:|---|\n",
            self.backend, self.device, self.reference_gflops, self.reference
        );
        for m in &self.measurements {
            let opt = |v: Option<f64>, digits: usize| {
                v.map_or("–".to_string(), |v| format!("{v:.digits$}"))
            };
            let memory = m.memory.map_or("–".to_string(), |p| {
                format!("{:.0} MiB ({})", p.bytes as f64 / 1048576.0, p.kind)
            });
            out.push_str(&format!(
                "| {} | {:.1} {} | {} | {} | {} | {} | {} |\n",
                m.name,
                m.value,
                m.unit,
                seconds(m.seconds),
                opt(m.gflops, 1),
                opt(m.percent_of_reference, 0),
                memory,
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
