//! `cargo xtask bench`: one workload at the paper's dimensions, timed on each backend — encoder
//! throughput, pair-scoring throughput per direction and mode, training steps (time and memory) —
//! beside the device's own matrix-product rate, so every figure can be read as a share of what the
//! hardware reaches.

pub mod flops;
pub mod memory;
pub mod profile;
pub mod reference;
pub mod report;
pub mod timing;
pub mod torch;
pub mod workload;

pub use report::{BackendReport, Measurement};
pub use workload::{run, BenchConfig};
