//! SGRAF (Diao et al., AAAI 2021), the hosts RCAR was built on: SAF and SGR, t2i only, exactly as
//! SGRAF's code computes them (`../shared/docs/plugin-backbones.md` §2).
//!
//! Per (image, caption) pair the nodes are the global alignment s^g = l2norm(W_glo (v̄ − t̄)² + b)
//! and one local alignment per word, RCAR's alignment vector with m = 1 and λ = 9; SAF filters and
//! pools them ([`AttentionFiltration`]), SGR reasons over them ([`GraphReasoning`], node 0 read out);
//! a sigmoid head scores. SGRAF's encoders: one FC layer for the regions, RCAR's BiGRU text encoder.
//!
//! RCR and RAR plug in as `../shared/docs/plugin-backbones.md` §3 infers (the released code has
//! no such model): +RCR N runs N extra attention passes whose alignment vectors set the factors of
//! the host's own pass; +RAR N refines the host's aggregation over its nodes (reasoned ones, for
//! SGR); +RCAR N alternates them, N passes. The choices the paper leaves open are fields of
//! [`ModelConfig`]: `rar_init`, `rar_nodes`, `rar_on`, `rcr_alignment`.

use crate::alignment::AlignmentVector;
use crate::config::{Direction, Host, Mode, ModelConfig, RarInit, RarNodes, RarOn};
use crate::pairs::{grid_pairs, PairBatch};
use crate::saf::AttentionFiltration;
use crate::sgr::GraphReasoning;
use crate::similarity::regulator_modules;
use crate::text_encoder::{length_mask, TextEncoder};
use crate::visual_sa::VisualSa;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Bool, Device, Int, Tensor};
use rcar_regulators::host::{self, HostPass, RarInput};
use rcar_regulators::init::xavier_linear;
use rcar_regulators::masked::masked_mean;
use rcar_regulators::norm::l2norm;
use rcar_regulators::pair_dropout::ModuleMasks;
use rcar_regulators::PairDropout;
use rcar_regulators::{AttentionFactors, Rar, RarConfig, Rcr};

/// SGRAF's attention temperature, hard-coded there.
pub const SMOOTH: f64 = 9.0;

#[derive(Module, Debug)]
pub struct SgrafSimilarity {
    /// `v_global_w`
    pub visual: VisualSa,
    /// `t_global_w` (TextSA: `embedding_local.0` is RAR's key, `embedding_global.0` its query,
    /// `embedding_common.0` its value layer)
    pub textual: Rar,
    /// `sim_tranloc_w`
    pub local: AlignmentVector,
    /// `sim_tranglo_w`
    pub global: Linear,
    /// `SAF_module` (SAF)
    pub saf: Option<AttentionFiltration>,
    /// `SGR_module.{0..sgr_step}` (SGR)
    pub sgr: Vec<GraphReasoning>,
    /// `sim_eval_w`
    pub head: Linear,
    /// `alv_modules`: the alignment layers of the regulators' extra passes
    pub alignments: Vec<AlignmentVector>,
    /// `rcr_modules`
    pub rcrs: Vec<Rcr>,
    /// `rar_modules`
    pub rars: Vec<Rar>,
}

/// What a block computes on the way to its scores, for the parity tests; pairs image-major.
#[derive(Default)]
pub struct SgrafTrace {
    /// s^g `[P, S]`
    pub global: Option<Tensor<2>>,
    /// s^l `[P, q, S]`
    pub local: Option<Tensor<3>>,
    /// SAF's node weights `[P, q + 1]`
    pub saf_weights: Option<Tensor<2>>,
    /// SGR's nodes after each step `[P, q + 1, S]`
    pub sgr_nodes: Vec<Tensor<3>>,
}

impl SgrafSimilarity {
    /// A freshly initialised similarity encoder of `cfg`'s host (SAF or SGR), as SGRAF
    /// initialises it: every Linear Xavier-uniform with zero bias, BatchNorms γ = 1, β = 0.
    pub fn new(cfg: &ModelConfig, device: &Device) -> Self {
        let (e, s) = (cfg.embed_size, cfg.sim_dim);
        let (saf, sgr) = match cfg.host {
            Host::Saf => (Some(AttentionFiltration::new(s, device)), Vec::new()),
            _ => (
                None,
                (0..cfg.sgr_step)
                    .map(|_| GraphReasoning::new(s, device))
                    .collect(),
            ),
        };
        // Initialised in field order (the run's seed fixes every draw).
        let visual = VisualSa::new(e, cfg.regions, cfg.dropout, device);
        let textual = RarConfig::new(e).with_dropout(cfg.dropout).init(device);
        let local = AlignmentVector::new(e, s, device);
        let global = xavier_linear(e, s, device);
        let head = xavier_linear(s, 1, device);
        let (alignments, rcrs, rars) = regulator_modules(cfg, device);
        Self {
            visual,
            textual,
            local,
            global,
            saf,
            sgr,
            head,
            alignments,
            rcrs,
            rars,
        }
    }

    /// Global vectors of the images `[N, R, E]` → `[N, E]` (once per image batch: VisualSA's
    /// BatchNorms see the whole batch in training).
    pub fn image_globals(&self, images: Tensor<3>) -> Tensor<2> {
        self.visual.forward(images)
    }

    /// Global vectors of the captions `[M, T, E]` → `[M, E]`, TextSA over each caption's own words.
    pub fn caption_globals(&self, captions: Tensor<3>, lengths: &[usize]) -> Tensor<2> {
        let valid = length_mask(lengths, captions.dims()[1], &captions.device());
        let mean = masked_mean(captions.clone(), Some(&valid));
        self.textual.forward(captions, mean, Some(&valid), None)
    }

    /// Scores `[P]` of a t2i block of pairs, given the global vectors of its images `[G, E]` and
    /// captions `[n, E]`. RAR's dropout masks are keyed by pair where `dropout` is given (a
    /// training step), else drawn as usual. The trace holds the host's own pass and first
    /// aggregation.
    pub fn forward(
        &self,
        cfg: &ModelConfig,
        pairs: &PairBatch,
        (image_globals, caption_globals): (Tensor<2>, Tensor<2>),
        dropout: Option<&PairDropout>,
        mut trace: Option<&mut SgrafTrace>,
    ) -> Tensor<1> {
        let (g, n) = pairs.shape();
        let e = image_globals.dims()[1];
        let diff = image_globals.reshape([g, 1, e]) - caption_globals.reshape([1, n, e]);
        let global = l2norm(self.global.forward(diff.powi_scalar(2).reshape([g * n, e])));
        let words = pairs
            .pair_query_valid()
            .expect("t2i pairs carry their words' mask");
        let valid = Tensor::<2, Bool>::cat(
            vec![Tensor::ones([g * n, 1], &words.device()), words.clone()],
            1,
        );
        let nodes = Nodes {
            global,
            valid,
            words,
            captions: n,
        };
        if let Some(t) = trace.as_deref_mut() {
            t.global = Some(nodes.global.clone());
        }
        let mut pass = SgrafPass {
            similarity: self,
            cfg,
            pairs,
            nodes: &nodes,
            dropout,
            trace: trace.as_deref_mut(),
        };
        let holistic = match cfg.mode {
            // N = 0 in any mode is the host itself.
            _ if self.rars.is_empty() => {
                let factors = host::correspond(&mut pass, &self.rcrs, SMOOTH);
                let local = self.local.forward(pairs, &factors);
                if let Some(t) = trace.as_deref_mut() {
                    t.local = Some(local.clone());
                }
                self.aggregate(nodes.with(local), &nodes, &mut trace).1
            }
            Mode::CoopRcar => host::cooperate(&mut pass, &self.rcrs, &self.rars, SMOOTH),
            _ => host::aggregate(&mut pass, &self.rars, SMOOTH),
        };
        sigmoid(self.head.forward(holistic)).reshape([g * n])
    }

    /// The host's aggregation of nodes `x`: the nodes RAR would see after it (SGR's reasoned ones,
    /// SAF's unchanged) and the aggregated vector `[P, S]` (SAF's filtered one, SGR's node 0).
    fn aggregate(
        &self,
        x: Tensor<3>,
        nodes: &Nodes,
        trace: &mut Option<&mut SgrafTrace>,
    ) -> (Tensor<3>, Tensor<2>) {
        let record = trace
            .as_ref()
            .is_some_and(|t| t.saf_weights.is_none() && t.sgr_nodes.is_empty());
        match &self.saf {
            Some(saf) => {
                if let (Some(t), true) = (trace.as_deref_mut(), record) {
                    t.saf_weights = Some(saf.weights(x.clone(), &nodes.valid, nodes.captions));
                }
                let v = saf.forward(x.clone(), &nodes.valid, nodes.captions);
                (x, v)
            }
            None => {
                let mut x = x;
                for step in &self.sgr {
                    x = step.forward(x, &nodes.valid);
                    if let (Some(t), true) = (trace.as_deref_mut(), record) {
                        t.sgr_nodes.push(x.clone());
                    }
                }
                let [p, _, s] = x.dims();
                let v = x.clone().slice([0..p, 0..1, 0..s]).reshape([p, s]);
                (x, v)
            }
        }
    }

    /// What RAR attends over given a pass's nodes `x` (`rar_on`, `rar_nodes`), their mask, and,
    /// where `seed`, its first holistic vector (`rar_init`).
    fn rar_input(
        &self,
        cfg: &ModelConfig,
        x: Tensor<3>,
        nodes: &Nodes,
        seed: bool,
        trace: &mut Option<&mut SgrafTrace>,
    ) -> (Tensor<3>, Tensor<2, Bool>, Option<Tensor<2>>) {
        let raw = self.saf.is_some() || cfg.rar_on == RarOn::Raw;
        let host_seed = seed && cfg.rar_init == RarInit::Host;
        let (items, host) = if raw && !host_seed {
            (x, None)
        } else {
            let (reasoned, aggregated) = self.aggregate(x.clone(), nodes, trace);
            (if raw { x } else { reasoned }, Some(aggregated))
        };
        let (items, valid) = match cfg.rar_nodes {
            RarNodes::All => (items, nodes.valid.clone()),
            RarNodes::LocalOnly => {
                let [p, k, s] = items.dims();
                (items.slice([0..p, 1..k, 0..s]), nodes.words.clone())
            }
        };
        let seed = match (seed, cfg.rar_init) {
            (false, _) => None,
            (true, RarInit::Host) => host,
            (true, RarInit::Mean) => Some(masked_mean(items.clone(), Some(&valid))),
        };
        (items, valid, seed)
    }
}

/// SAF's and SGR's side of the regulators' contract for one block: the host's `sim_tranloc_w`
/// aligns its own pass (the first of +RAR and +RCAR, the last of +RCR, which the host runs
/// itself), `alv_modules` the others (or `sim_tranloc_w` with `rcr_alignment` shared); RAR's items
/// and seed as `rar_input` gives them.
struct SgrafPass<'a, 't> {
    similarity: &'a SgrafSimilarity,
    cfg: &'a ModelConfig,
    pairs: &'a PairBatch,
    nodes: &'a Nodes,
    dropout: Option<&'a PairDropout>,
    trace: Option<&'t mut SgrafTrace>,
}

impl HostPass for SgrafPass<'_, '_> {
    fn align(&mut self, pass: usize, factors: &AttentionFactors) -> Tensor<3> {
        let sim = self.similarity;
        let own = |k: usize| sim.alignments.get(k).unwrap_or(&sim.local);
        let layer = match (self.cfg.mode, pass) {
            (Mode::OnlyRcr, k) => own(k),
            (Mode::CoopRcar, 1..) => own(pass - 1),
            _ => &sim.local,
        };
        let local = layer.forward(self.pairs, factors);
        if let (Some(t), Mode::OnlyRar | Mode::CoopRcar, 0) =
            (self.trace.as_deref_mut(), self.cfg.mode, pass)
        {
            t.local = Some(local.clone());
        }
        local
    }

    fn rar_input(&mut self, _pass: usize, alignments: Tensor<3>, first: bool) -> RarInput {
        let nodes = self.nodes.with(alignments);
        let (items, valid, seed) =
            self.similarity
                .rar_input(self.cfg, nodes, self.nodes, first, &mut self.trace);
        RarInput {
            items,
            valid: Some(valid),
            seed,
        }
    }

    fn rar_masks(&self, module: usize) -> Option<ModuleMasks<'_>> {
        self.dropout.map(|dropout| ModuleMasks {
            dropout,
            pairs: &self.pairs.ids,
            module,
        })
    }
}

/// A block's global alignments `[P, S]` and node masks: what every pass's nodes share.
struct Nodes {
    global: Tensor<2>,
    /// `[P, q + 1]`: node 0 (global) and the real words
    valid: Tensor<2, Bool>,
    /// `[P, q]`: the real words
    words: Tensor<2, Bool>,
    captions: usize,
}

impl Nodes {
    /// The nodes `[P, q + 1, S]` of a pass's local alignments `[P, q, S]`: the global one first.
    fn with(&self, local: Tensor<3>) -> Tensor<3> {
        Tensor::cat(vec![self.global.clone().unsqueeze_dim(1), local], 1)
    }
}

/// SGRAF's whole model (`SGRAF` in its `model.py`): `img_enc`, `txt_enc`, `sim_enc`.
#[derive(Module, Debug)]
pub struct Sgraf {
    /// `img_enc.fc`
    pub img_fc: Linear,
    /// `txt_enc` (`embed`, `cap_rnn`)
    pub txt_enc: TextEncoder,
    pub sim_enc: SgrafSimilarity,
    /// Host SAF or SGR; `vocab_size` without `<mask>`.
    #[module(skip)]
    pub config: ModelConfig,
}

impl Sgraf {
    /// A freshly initialised model of `cfg` (host SAF or SGR), as SGRAF initialises it; the BiGRU
    /// and the word embedding as RCAR's text encoder (PyTorch's defaults, U(−0.1, 0.1)).
    pub fn new(cfg: &ModelConfig, device: &Device) -> Self {
        Self {
            img_fc: xavier_linear(cfg.img_dim, cfg.embed_size, device),
            txt_enc: TextEncoder::new(
                cfg.vocab_size,
                cfg.word_dim,
                cfg.embed_size,
                cfg.dropout,
                device,
            ),
            sim_enc: SgrafSimilarity::new(cfg, device),
            config: cfg.clone(),
        }
    }

    /// Region features `[B, R, d]` → `[B, R, E]`, unit norm per region.
    pub fn encode_images(&self, images: Tensor<3>) -> Tensor<3> {
        l2norm(self.img_fc.forward(images))
    }

    /// Padded ids `[B, T]` → word embeddings `[B, T, E]`, zero beyond each length.
    pub fn encode_captions(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> Tensor<3> {
        self.txt_enc.forward(ids, lengths)
    }

    /// The similarity matrix `[images, captions]` of encoded images and captions, in one block
    /// (`dropout`: RAR's pair-keyed masks, in a training step).
    pub fn similarity(
        &self,
        images: Tensor<3>,
        captions: Tensor<3>,
        lengths: &[usize],
        dropout: Option<&PairDropout>,
        trace: Option<&mut SgrafTrace>,
    ) -> Tensor<2> {
        let (n_img, n_cap) = (images.dims()[0], captions.dims()[0]);
        let image_globals = self.sim_enc.image_globals(images.clone());
        let caption_globals = self.sim_enc.caption_globals(captions.clone(), lengths);
        let pairs = grid_pairs(
            Direction::T2i,
            &images,
            &captions,
            lengths,
            0..n_img,
            0..n_cap,
        );
        self.sim_enc
            .forward(
                &self.config,
                &pairs,
                (image_globals, caption_globals),
                dropout,
                trace,
            )
            .reshape([n_img, n_cap])
    }
}
