//! Checkpoints: the official PyTorch `.pth` files as published.

pub mod official;
pub mod pickle;
pub mod pth;
