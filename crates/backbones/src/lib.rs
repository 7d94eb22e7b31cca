//! The RCAR model: the SCAN-style backbone (image and text encoders, cross attention in both
//! directions, alignment vectors, scoring heads) hosting the RCR and RAR regulators, SGRAF's SAF and
//! SGR hosts, one [`Matcher`] type over them, and readers for the official PyTorch checkpoints.

pub mod alignment;
pub mod attention;
pub mod batch_norm;
pub mod checkpoint;
pub mod config;
pub mod gru;
pub mod image_encoder;
pub mod matcher;
pub mod model;
pub mod pairs;
pub mod saf;
pub mod sgr;
pub mod sgraf;
pub mod similarity;
pub mod text_encoder;
pub mod visual_sa;

pub use config::{Direction, Host, Mode, ModelConfig, RarInit, RarNodes, RarOn, RcrAlignment};
pub use matcher::Matcher;
pub use model::Rcar;
