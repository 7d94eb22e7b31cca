//! The similarity encoder (official `EncoderSimilarity`): the three regulator modes over a batch of
//! (image, caption) pairs, and the chunked pair grid.
//!
//! The official code loops over captions in Python; here every chunk of pairs is one batch of
//! tensor products. Nothing mixes different pairs, so the result does not depend on the chunking.

use crate::alignment::AlignmentVector;
use crate::attention::cross_attention;
use crate::config::{Direction, Mode, ModelConfig};
use crate::pairs::{grid_pairs, images_by_captions, PairBatch};
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Bool, Device, Tensor};
use rcar_regulators::host::{self, HostPass, RarInput};
use rcar_regulators::init::xavier_linear;
use rcar_regulators::masked::masked_mean;
use rcar_regulators::norm::cosine;
use rcar_regulators::pair_dropout::ModuleMasks;
use rcar_regulators::{AttentionFactors, PairDropout, Rar, RarConfig, Rcr, RcrConfig, Temperature};
use std::ops::Range;

#[derive(Module, Debug)]
pub struct SimilarityEncoder {
    /// `alv_modules`
    pub alignments: Vec<AlignmentVector>,
    /// `rcr_modules`
    pub rcrs: Vec<Rcr>,
    /// `rar_modules`
    pub rars: Vec<Rar>,
    /// `sim_eval_w`, the sigmoid head of the RAR modes (absent in `only_rcr`, where it is unused).
    pub head: Option<Linear>,
}

/// Intermediate tensors of one forward, for inspection and parity tests.
#[derive(Debug, Default)]
pub struct Trace {
    /// Alignment vectors of each pass `[pairs, q, S]`.
    pub alignments: Vec<Tensor<3>>,
    /// Channel factors `[pairs, q, E]` and temperatures `[pairs, q, 1]` after each RCR.
    pub factors: Vec<(Tensor<3>, Tensor<3>)>,
    /// Holistic vectors `[pairs, S]` after each RAR.
    pub holistic: Vec<Tensor<2>>,
}

impl Trace {
    fn record(trace: &mut Option<&mut Trace>, f: impl FnOnce(&mut Trace)) {
        if let Some(t) = trace.as_deref_mut() {
            f(t);
        }
    }

    fn push_factors(&mut self, factors: &AttentionFactors) {
        if let (Some(m), Temperature::PerToken(l)) = (&factors.channel, &factors.temperature) {
            self.factors.push((m.clone(), l.clone()));
        }
    }
}

/// A block of the similarity matrix: images × captions, rows images.
pub struct Block {
    pub images: Range<usize>,
    pub captions: Range<usize>,
    pub scores: Tensor<2>,
}

/// A similarity encoder's `alv_modules`, `rcr_modules` and `rar_modules`.
pub type RegulatorModules = (Vec<AlignmentVector>, Vec<Rcr>, Vec<Rar>);

/// The regulators' modules `cfg` builds (whatever the host), freshly initialised in that order.
pub fn regulator_modules(cfg: &ModelConfig, device: &Device) -> RegulatorModules {
    let (n_alv, n_rcr, n_rar) = cfg.module_counts();
    let (e, s) = (cfg.embed_size, cfg.sim_dim);
    (
        (0..n_alv)
            .map(|_| AlignmentVector::new(e, s, device))
            .collect(),
        (0..n_rcr)
            .map(|_| RcrConfig::new(s, e).init(device))
            .collect(),
        (0..n_rar)
            .map(|_| RarConfig::new(s).with_dropout(cfg.dropout).init(device))
            .collect(),
    )
}

impl SimilarityEncoder {
    pub fn new(cfg: &ModelConfig, device: &Device) -> Self {
        let (alignments, rcrs, rars) = regulator_modules(cfg, device);
        Self {
            alignments,
            rcrs,
            rars,
            head: cfg
                .sigmoid_head()
                .then(|| xavier_linear(cfg.sim_dim, 1, device)),
        }
    }

    /// Scores `[P]` of a block of pairs (group-major), recording intermediates into `trace`. RAR's
    /// dropout masks are keyed by pair where `dropout` is given (training), else drawn as usual.
    pub fn forward(
        &self,
        cfg: &ModelConfig,
        pairs: &PairBatch,
        dropout: Option<&PairDropout>,
        trace: Option<&mut Trace>,
    ) -> Tensor<1> {
        let qv = pairs.pair_query_valid();
        let mut host = ScanPass {
            encoder: self,
            pairs,
            valid: qv.clone(),
            dropout,
            trace,
        };
        let holistic = match cfg.mode {
            Mode::OnlyRcr => {
                let factors = host::correspond(&mut host, &self.rcrs, cfg.smooth());
                let (g, n) = pairs.shape();
                let [_, q, e] = pairs.query.dims();
                let attended = cross_attention(pairs, &factors).reshape([g, n, q, e]);
                let cos: Tensor<3> = cosine(pairs.query.clone().unsqueeze_dim::<4>(0), attended);
                return masked_mean(cos.reshape([g * n, q, 1]), qv.as_ref()).reshape([g * n]);
            }
            Mode::OnlyRar => host::aggregate(&mut host, &self.rars, cfg.smooth()),
            Mode::CoopRcar => host::cooperate(&mut host, &self.rcrs, &self.rars, cfg.smooth()),
        };
        let head = self.head.as_ref().expect("RAR modes have a scoring head");
        let [p, _] = holistic.dims();
        sigmoid(head.forward(holistic)).reshape([p])
    }

    /// The similarity matrix `[n_img, n_cap]` (rows images, columns captions) of encoded images
    /// `[n_img, R, E]` and captions `[n_cap, T, E]`, computed in blocks of at most `chunk` pairs.
    pub fn grid(
        &self,
        cfg: &ModelConfig,
        images: Tensor<3>,
        captions: Tensor<3>,
        lengths: &[usize],
        chunk: usize,
        dropout: Option<&PairDropout>,
    ) -> Tensor<2> {
        let mut rows: Vec<(Range<usize>, Vec<Tensor<2>>)> = Vec::new();
        for block in self.blocks(cfg, &images, &captions, lengths, chunk, dropout) {
            match rows.iter_mut().find(|(r, _)| *r == block.images) {
                Some((_, row)) => row.push(block.scores),
                None => rows.push((block.images, vec![block.scores])),
            }
        }
        rows.sort_by_key(|(r, _)| r.start);
        let rows = rows
            .into_iter()
            .map(|(_, row)| Tensor::cat(row, 1))
            .collect();
        Tensor::cat(rows, 0)
    }

    /// The similarity matrix in blocks of at most `chunk` pairs — all query items with as many
    /// context items as fit — each cut to the longest caption it holds; lazily, so a caller can
    /// move each block off the device and report progress before the next is computed.
    pub fn blocks<'a>(
        &'a self,
        cfg: &'a ModelConfig,
        images: &'a Tensor<3>,
        captions: &'a Tensor<3>,
        lengths: &'a [usize],
        chunk: usize,
        dropout: Option<&'a PairDropout>,
    ) -> impl Iterator<Item = Block> + 'a {
        block_ranges(
            cfg.direction,
            images.dims()[0],
            captions.dims()[0],
            chunk,
            usize::MAX,
        )
        .into_iter()
        .map(move |ranges| self.block(cfg, images, captions, lengths, ranges, dropout))
    }

    /// The block of image range `img` × caption range `cap` (as [`block_ranges`] gives them).
    /// Blocks are independent, so they can be computed in any order or on several threads.
    pub fn block(
        &self,
        cfg: &ModelConfig,
        images: &Tensor<3>,
        captions: &Tensor<3>,
        lengths: &[usize],
        (img, cap): (Range<usize>, Range<usize>),
        dropout: Option<&PairDropout>,
    ) -> Block {
        let pairs = grid_pairs(
            cfg.direction,
            images,
            captions,
            lengths,
            img.clone(),
            cap.clone(),
        );
        let (g, n) = pairs.shape();
        let scores = self.forward(cfg, &pairs, dropout, None).reshape([g, n]);
        let scores = images_by_captions(cfg.direction, scores);
        Block {
            images: img,
            captions: cap,
            scores,
        }
    }
}

/// The (image range, caption range) of each block of at most `chunk` pairs and `max_captions`
/// captions tiling the `n_img` × `n_cap` grid: all query items with as many context items as fit.
pub fn block_ranges(
    direction: Direction,
    n_img: usize,
    n_cap: usize,
    chunk: usize,
    max_captions: usize,
) -> Vec<(Range<usize>, Range<usize>)> {
    let (n_groups, n_items, max_groups, max_items) = match direction {
        Direction::T2i => (n_img, n_cap, usize::MAX, max_captions),
        Direction::I2t => (n_cap, n_img, max_captions, usize::MAX),
    };
    let items_per = chunk.min(n_items).min(max_items).max(1);
    let groups_per = (chunk / items_per).clamp(1, max_groups.max(1));
    let ranges = |n: usize, step: usize| (0..n).step_by(step).map(move |s| s..(s + step).min(n));
    ranges(n_groups, groups_per)
        .flat_map(|groups| ranges(n_items, items_per).map(move |items| (groups.clone(), items)))
        .map(|(groups, items)| match direction {
            Direction::T2i => (groups, items),
            Direction::I2t => (items, groups),
        })
        .collect()
}

/// The SCAN host's side of the regulators' contract for one block: pass k aligns with
/// `alv_modules.k`; RAR attends over the query tokens' alignment vectors, seeded by their mean.
struct ScanPass<'a, 't> {
    encoder: &'a SimilarityEncoder,
    pairs: &'a PairBatch,
    valid: Option<Tensor<2, Bool>>,
    dropout: Option<&'a PairDropout>,
    trace: Option<&'t mut Trace>,
}

impl HostPass for ScanPass<'_, '_> {
    fn align(&mut self, pass: usize, factors: &AttentionFactors) -> Tensor<3> {
        let u = self.encoder.alignments[pass].forward(self.pairs, factors);
        Trace::record(&mut self.trace, |t| t.alignments.push(u.clone()));
        u
    }

    fn rar_input(&mut self, _pass: usize, alignments: Tensor<3>, first: bool) -> RarInput {
        RarInput {
            seed: first.then(|| masked_mean(alignments.clone(), self.valid.as_ref())),
            items: alignments,
            valid: self.valid.clone(),
        }
    }

    fn rar_masks(&self, module: usize) -> Option<ModuleMasks<'_>> {
        self.dropout.map(|dropout| ModuleMasks {
            dropout,
            pairs: &self.pairs.ids,
            module,
        })
    }

    fn factors_set(&mut self, factors: &AttentionFactors) {
        Trace::record(&mut self.trace, |t| t.push_factors(factors));
    }

    fn holistic_set(&mut self, holistic: &Tensor<2>) {
        Trace::record(&mut self.trace, |t| t.holistic.push(holistic.clone()));
    }
}
