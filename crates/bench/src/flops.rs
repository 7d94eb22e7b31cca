//! Matrix-product FLOPs per scored pair, counted from the configuration (2 per multiply-add).
//! Element-wise work is not counted: the share of the reference rate this gives says how much of
//! the step is spent in products at all.

use rcar_backbones::{Mode, ModelConfig};

/// `regions` image regions, `words` tokens per caption.
pub fn per_pair(cfg: &ModelConfig, regions: usize, words: usize) -> f64 {
    let (q, c) = cfg.direction.query_and_context(regions, words);
    let (q, c, e, s) = (
        q as f64,
        c as f64,
        cfg.embed_size as f64,
        cfg.sim_dim as f64,
    );
    let (alignment_vectors, rcrs, rars) = cfg.module_counts();
    // Attention scores and the attended context: two [q, E]·[E, c]-sized products per pass.
    let attention = 4.0 * q * c * e;
    let passes = match cfg.mode {
        // Every RCR step is followed by a pass; the last one is scored by the mean cosine.
        Mode::OnlyRcr => cfg.steps + 1,
        Mode::OnlyRar => 1,
        Mode::CoopRcar => cfg.steps,
    } as f64;
    let alignment = 2.0 * q * e * s;
    // The RCR heads: S → S/2 → 1 and S → 2·S → E.
    let rcr = 2.0 * q * (s * s / 2.0 + s / 2.0) + 2.0 * q * (s * 2.0 * s + 2.0 * s * e);
    let rar = 2.0 * q * s * s + 2.0 * s * s + 2.0 * q * s;
    passes * attention
        + alignment_vectors as f64 * alignment
        + rcrs as f64 * rcr
        + rars as f64 * rar
}
