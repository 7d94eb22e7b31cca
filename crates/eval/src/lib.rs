//! Evaluation of RCAR models under the published image-text retrieval protocols: the encoding pass,
//! the similarity matrix in memory-bounded chunks, R@K/medr/meanr/rsum in both directions, the
//! 5-fold MSCOCO 1K protocol, and ensembles.

pub mod encode;
pub mod index;
pub mod metrics;
pub mod progress;
pub mod protocol;
pub mod search;
pub mod shortlist;
pub mod sims;

pub use metrics::{Metrics, Recall, SimMatrix};
pub use progress::{Progress, Silent};
pub use protocol::{default_workers, evaluate, metrics_of, on_cpu, EvalOptions, Report};
