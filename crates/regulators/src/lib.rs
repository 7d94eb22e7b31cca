//! The two regulators of RCAR (Diao et al., TIP 2023), backend-generic and backbone-agnostic.
//!
//! * [`Rcr`] — the *Recurrent Correspondence Regulator* — turns a pass's alignment vectors into
//!   per-token [`AttentionFactors`] (channel factors and a softmax temperature) for the next
//!   cross-attention pass.
//! * [`Rar`] — the *Recurrent Aggregation Regulator* — refines a holistic alignment vector by
//!   attention pooling over the per-token alignment vectors, seeded by their mean.
//!
//! A backbone hosts them through plain data: it must accept [`AttentionFactors`] in its
//! cross-attention step and produce per-token alignment vectors `[pairs, tokens, S]` (with a token
//! mask where tokens are padded). [`host`] writes that contract down ([`host::HostPass`]) with the
//! four hosts of this project as its examples, and drives the three modes over any host.

pub mod activation;
pub mod cpu;
pub mod factors;
pub mod host;
pub mod init;
pub mod linear;
pub mod masked;
pub mod norm;
pub mod pair_dropout;
pub mod rar;
pub mod rcr;

pub use factors::{AttentionFactors, Temperature};
pub use pair_dropout::PairDropout;
pub use rar::{Rar, RarConfig};
pub use rcr::{Rcr, RcrConfig};
