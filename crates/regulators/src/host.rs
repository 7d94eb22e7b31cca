//! The host contract: what a cross-attention matcher provides so that RCR and RAR plug into it,
//! and the three ways they do (`only_rcr`, `only_rar`, `coop_rcar`), written once for every host.
//!
//! A host, for one block of (image, caption) pairs ([`HostPass`]):
//!
//! 1. **aligns**: runs cross-attention pass `k` under [`AttentionFactors`] — per-token channel
//!    factors m, which scale the query for the attention scores only, and a softmax temperature
//!    λ — and returns one alignment vector per query token, `[pairs, q, S]`;
//! 2. **hands RAR its items**: from a pass's alignment vectors, the vectors RAR attends over
//!    `[pairs, k, S]`, which of them are real (padded words are not), and, at the first pass, the
//!    holistic vector RAR starts from (the host's own aggregation).
//!
//! RCR reads a pass's alignment vectors and sets the factors of the next pass; RAR refines the
//! holistic vector over the items; the host's head scores the result. The hosts in this project:
//!
//! | host | pass k aligns with | RAR's items | RAR's seed |
//! |---|---|---|---|
//! | SCAN t2i (words over regions) | `alv_modules.k` | the words' vectors | their mean |
//! | SCAN i2t (regions over words) | `alv_modules.k` | the regions' vectors | their mean |
//! | SAF | `sim_tranloc_w` or `alv_modules` | the global node and the words' | SAF's filtered vector |
//! | SGR | `sim_tranloc_w` or `alv_modules` | the nodes after graph reasoning | the reasoned global node |
//!
//! (`rcar_backbones`: `similarity.rs` for SCAN, `sgraf.rs` for SAF and SGR; the SAF and SGR
//! columns are `../shared/docs/plugin-backbones.md` §3's defaults, each a configuration field.)
//! With `only_rcr` the host runs its own last pass under the factors [`correspond`] returns and
//! aggregates as it would without regulators.

use crate::pair_dropout::ModuleMasks;
use crate::{AttentionFactors, Rar, Rcr};
use burn::tensor::{Bool, Tensor};

/// What RAR attends over after a pass.
pub struct RarInput {
    /// `[pairs, k, S]`
    pub items: Tensor<3>,
    /// Real items `[pairs, k]` (`None`: all).
    pub valid: Option<Tensor<2, Bool>>,
    /// The holistic vector `[pairs, S]` to start from, at the first pass.
    pub seed: Option<Tensor<2>>,
}

/// A host's side of the contract, for one block of pairs.
pub trait HostPass {
    /// Cross-attention pass `pass` under `factors`: alignment vectors `[pairs, q, S]`.
    fn align(&mut self, pass: usize, factors: &AttentionFactors) -> Tensor<3>;

    /// What RAR attends over after pass `pass` (alignment vectors `alignments`), with the seed
    /// where `first`.
    fn rar_input(&mut self, pass: usize, alignments: Tensor<3>, first: bool) -> RarInput;

    /// RAR `module`'s dropout masks where they are keyed by pair (a training step's two passes
    /// over the same pairs); `None` draws them from the backend.
    fn rar_masks(&self, _module: usize) -> Option<ModuleMasks<'_>> {
        None
    }

    /// Sees the factors after each RCR (for traces).
    fn factors_set(&mut self, _factors: &AttentionFactors) {}

    /// Sees the holistic vector after each RAR (for traces).
    fn holistic_set(&mut self, _holistic: &Tensor<2>) {}
}

/// `only_rcr`: one pass per RCR, each setting the next pass's factors; the factors of the host's
/// own last pass.
pub fn correspond(host: &mut impl HostPass, rcrs: &[Rcr], smooth: f64) -> AttentionFactors {
    let mut factors = AttentionFactors::initial(smooth);
    for (k, rcr) in rcrs.iter().enumerate() {
        let alignments = host.align(k, &factors);
        factors = rcr.forward(alignments, factors);
        host.factors_set(&factors);
    }
    factors
}

/// `only_rar`: one pass, then every RAR in turn over its items; the holistic vector.
pub fn aggregate(host: &mut impl HostPass, rars: &[Rar], smooth: f64) -> Tensor<2> {
    let alignments = host.align(0, &AttentionFactors::initial(smooth));
    let input = host.rar_input(0, alignments, true);
    let mut holistic = input.seed.expect("the host seeds RAR at its first pass");
    for (k, rar) in rars.iter().enumerate() {
        holistic = rar.forward(
            input.items.clone(),
            holistic,
            input.valid.as_ref(),
            host.rar_masks(k),
        );
        host.holistic_set(&holistic);
    }
    holistic
}

/// `coop_rcar`: one pass per RAR; after pass k, RCR k (if any) sets the next pass's factors and
/// RAR k refines the holistic vector over pass k's items; the holistic vector.
pub fn cooperate(host: &mut impl HostPass, rcrs: &[Rcr], rars: &[Rar], smooth: f64) -> Tensor<2> {
    let mut factors = AttentionFactors::initial(smooth);
    let mut holistic: Option<Tensor<2>> = None;
    for (k, rar) in rars.iter().enumerate() {
        let alignments = host.align(k, &factors);
        let input = host.rar_input(k, alignments.clone(), holistic.is_none());
        let previous = holistic
            .take()
            .or(input.seed)
            .expect("the host seeds RAR at its first pass");
        if let Some(rcr) = rcrs.get(k) {
            factors = rcr.forward(alignments, factors);
            host.factors_set(&factors);
        }
        let next = rar.forward(
            input.items,
            previous,
            input.valid.as_ref(),
            host.rar_masks(k),
        );
        host.holistic_set(&next);
        holistic = Some(next);
    }
    holistic.expect("coop_rcar has at least one step")
}
