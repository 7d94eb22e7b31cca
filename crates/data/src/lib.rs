//! Everything RCAR reads: region features, captions, the vocabulary, the tokeniser, training and
//! evaluation batches, and the synthetic dataset that stands in for Flickr30K/MSCOCO on a laptop.

pub mod atomic;
pub mod augment;
pub mod batch;
pub mod captions;
pub mod check;
pub mod checksum;
pub mod dataset;
pub mod error;
pub mod finite;
pub mod npy;
pub mod split;
pub mod tokenizer;
pub mod vocab;

pub use error::{DataError, Result};
pub use split::Split;
pub use vocab::Vocab;
pub mod synth;
