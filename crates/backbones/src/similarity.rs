//! The similarity encoder (official `EncoderSimilarity`): the three regulator modes over a batch of
//! (image, caption) pairs, and the chunked pair grid.
//!
//! The official code loops over captions in Python; here every chunk of pairs is one batch of
//! tensor products. Nothing mixes different pairs, so the result does not depend on the chunking.

use crate::alignment::AlignmentVector;
use crate::attention::cross_attention;
use crate::config::{Direction, Mode, ModelConfig};
use crate::text_encoder::length_mask;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use rcar_regulators::init::xavier_linear;
use rcar_regulators::masked::masked_mean;
use rcar_regulators::norm::cosine;
use rcar_regulators::{AttentionFactors, Rar, RarConfig, Rcr, RcrConfig, Temperature};

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

/// A batch of pairs: query and context tokens with their validity masks.
pub struct PairBatch {
    pub query: Tensor<3>,
    pub context: Tensor<3>,
    pub query_valid: Option<Tensor<2, Bool>>,
    pub context_valid: Option<Tensor<2, Bool>>,
}

impl PairBatch {
    /// Pairs (image `i`, caption `i`): regions `[P, R, E]`, words `[P, T, E]` with their validity.
    pub fn new(
        direction: Direction,
        regions: Tensor<3>,
        words: Tensor<3>,
        word_valid: Tensor<2, Bool>,
    ) -> Self {
        match direction {
            Direction::T2i => Self {
                query: words,
                context: regions,
                query_valid: Some(word_valid),
                context_valid: None,
            },
            Direction::I2t => Self {
                query: regions,
                context: words,
                query_valid: None,
                context_valid: Some(word_valid),
            },
        }
    }
}

impl SimilarityEncoder {
    pub fn new(cfg: &ModelConfig, device: &Device) -> Self {
        let (n_alv, n_rcr, n_rar) = cfg.module_counts();
        let (e, s) = (cfg.embed_size, cfg.sim_dim);
        Self {
            alignments: (0..n_alv)
                .map(|_| AlignmentVector::new(e, s, device))
                .collect(),
            rcrs: (0..n_rcr)
                .map(|_| RcrConfig::new(s, e).init(device))
                .collect(),
            rars: (0..n_rar)
                .map(|_| RarConfig::new(s).with_dropout(cfg.dropout).init(device))
                .collect(),
            head: cfg.sigmoid_head().then(|| xavier_linear(s, 1, device)),
        }
    }

    /// Scores `[P]` of a batch of pairs, recording intermediates into `trace` if given.
    pub fn forward(
        &self,
        cfg: &ModelConfig,
        pairs: PairBatch,
        mut trace: Option<&mut Trace>,
    ) -> Tensor<1> {
        let PairBatch {
            query: q,
            context: c,
            query_valid: qv,
            context_valid: cv,
        } = pairs;
        let (qv, cv) = (qv.as_ref(), cv.as_ref());
        let mut factors = AttentionFactors::initial(cfg.smooth());
        let holistic = match cfg.mode {
            Mode::OnlyRcr => {
                for (alv, rcr) in self.alignments.iter().zip(&self.rcrs) {
                    let u = alv.forward(q.clone(), c.clone(), &factors, cv);
                    Trace::record(&mut trace, |t| t.alignments.push(u.clone()));
                    factors = rcr.forward(u, factors);
                    Trace::record(&mut trace, |t| t.push_factors(&factors));
                }
                let attended = cross_attention(q.clone(), c, &factors, cv);
                let cos: Tensor<2> = cosine(q, attended);
                let [p, _] = cos.dims();
                return masked_mean(cos.unsqueeze_dim(2), qv).reshape([p]);
            }
            Mode::OnlyRar => {
                let u = self.alignments[0].forward(q, c, &factors, cv);
                Trace::record(&mut trace, |t| t.alignments.push(u.clone()));
                let mut g = masked_mean(u.clone(), qv);
                for rar in &self.rars {
                    g = rar.forward(u.clone(), g, qv);
                    Trace::record(&mut trace, |t| t.holistic.push(g.clone()));
                }
                g
            }
            Mode::CoopRcar => {
                let mut g = None;
                for (s, (alv, rar)) in self.alignments.iter().zip(&self.rars).enumerate() {
                    let u = alv.forward(q.clone(), c.clone(), &factors, cv);
                    Trace::record(&mut trace, |t| t.alignments.push(u.clone()));
                    let prev = g.take().unwrap_or_else(|| masked_mean(u.clone(), qv));
                    if let Some(rcr) = self.rcrs.get(s) {
                        factors = rcr.forward(u.clone(), factors);
                        Trace::record(&mut trace, |t| t.push_factors(&factors));
                    }
                    let next = rar.forward(u, prev, qv);
                    Trace::record(&mut trace, |t| t.holistic.push(next.clone()));
                    g = Some(next);
                }
                g.expect("coop_rcar needs at least one step")
            }
        };
        let head = self.head.as_ref().expect("RAR modes have a scoring head");
        let [p, _] = holistic.dims();
        sigmoid(head.forward(holistic)).reshape([p])
    }

    /// The similarity matrix `[n_img, n_cap]` (rows images, columns captions) of encoded images
    /// `[n_img, R, E]` and captions `[n_cap, T, E]`, computed over chunks of at most `chunk` pairs.
    /// Each chunk is cut to the longest caption it holds.
    pub fn grid(
        &self,
        cfg: &ModelConfig,
        images: Tensor<3>,
        captions: Tensor<3>,
        lengths: &[usize],
        chunk: usize,
    ) -> Tensor<2> {
        let [n_img, _, _] = images.dims();
        let [n_cap, _, _] = captions.dims();
        let total = n_img * n_cap;
        let chunk = chunk.max(1);
        let blocks = (0..total)
            .step_by(chunk)
            .map(|start| {
                let range = start..(start + chunk).min(total);
                let pairs = grid_pairs(cfg.direction, &images, &captions, lengths, range);
                self.forward(cfg, pairs, None)
            })
            .collect();
        Tensor::cat(blocks, 0).reshape([n_img, n_cap])
    }
}

/// Pairs `range` of the image-major grid (pair p = image p / n_cap, caption p % n_cap), with the
/// words cut to the longest caption among them.
pub fn grid_pairs(
    direction: Direction,
    images: &Tensor<3>,
    captions: &Tensor<3>,
    lengths: &[usize],
    range: std::ops::Range<usize>,
) -> PairBatch {
    let [n_cap, _, e] = captions.dims();
    let device = images.device();
    let n = range.len();
    let (img_idx, cap_idx): (Vec<i64>, Vec<i64>) = range
        .map(|p| ((p / n_cap) as i64, (p % n_cap) as i64))
        .unzip();
    let pair_lengths: Vec<usize> = cap_idx.iter().map(|&j| lengths[j as usize]).collect();
    let t = pair_lengths.iter().copied().max().unwrap_or(1);
    let regions = images.clone().select(0, index(img_idx, &device));
    let words = captions
        .clone()
        .select(0, index(cap_idx, &device))
        .slice([0..n, 0..t, 0..e]);
    let valid = length_mask(&pair_lengths, t, &device);
    PairBatch::new(direction, regions, words, valid)
}

fn index(idx: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = idx.len();
    Tensor::from_data(TensorData::new(idx, [n]), device)
}
