//! Training RCAR with the official recipe (spec §3) — the hinge loss, AdamW, global-norm clipping,
//! the warm-up and lr schedules — or SGRAF's hosts with theirs (Adam, hardest negatives from the
//! start), in resumable, seeded runs with checkpoints and curves.

mod adam;
pub mod clip;
pub mod config;
pub mod curves;
mod cut;
pub mod error;
pub mod lock;
pub mod loss;
pub mod plugin;
pub mod run;
pub mod step;
pub mod trainer;
#[cfg(feature = "wgpu")]
pub mod wgpu;

pub use config::TrainConfig;
pub use error::TrainError;
pub use loss::{hinge, LossMode};
pub use step::{step_gradients, train_step, StepGradients, StepOutcome, StepSettings, Strategy};
pub use trainer::{initial_model, optimizer, Outcome, Trainer};
