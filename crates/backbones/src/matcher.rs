//! One model type for whatever host scores the pairs: the loader returns it, the evaluator and the
//! bench score with it. A host is an RCAR model over the SCAN-style backbone ([`Rcar`]) or one of
//! SGRAF's hosts ([`Sgraf`], SAF or SGR).

use crate::config::{Direction, Host, Mode, ModelConfig};
use crate::pairs::{grid_pairs, images_by_captions, row_index, select_pairs, PairBatch};
use crate::sgraf::Sgraf;
use crate::similarity::Block;
use crate::Rcar;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rcar_data::batch::TokenBatch;
use rcar_data::DataError;
use rcar_regulators::PairDropout;
use std::ops::Range;
use std::path::Path;

// A process holds one model per checkpoint: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Matcher {
    Rcar(Rcar),
    Sgraf(Sgraf),
}

/// Per-item global vectors that an SGRAF host needs beside the encodings (`[images, E]`,
/// `[captions, E]`, rows as the encodings'): computed once per encoding, not once per block.
#[derive(Debug, Clone)]
pub struct Globals {
    pub images: Tensor<2>,
    pub captions: Tensor<2>,
}

impl From<Rcar> for Matcher {
    fn from(model: Rcar) -> Self {
        Self::Rcar(model)
    }
}

impl From<Sgraf> for Matcher {
    fn from(model: Sgraf) -> Self {
        Self::Sgraf(model)
    }
}

/// Padded token ids `[B, T]` of a batch of captions, as the text encoders take them.
pub fn token_ids(tokens: &TokenBatch, device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = tokens.ids.iter().map(|&id| i64::from(id)).collect();
    Tensor::from_data(TensorData::new(ids, [tokens.len(), tokens.max_len]), device)
}

impl ModelConfig {
    /// A freshly initialised model of the configured host.
    pub fn build(&self, device: &Device) -> Matcher {
        match self.host {
            Host::Scan => Matcher::Rcar(self.init(device)),
            Host::Saf | Host::Sgr => Matcher::Sgraf(Sgraf::new(self, device)),
        }
    }
}

impl Matcher {
    /// What the model is, for reports: `SCAN t2i coop_rcar 2`, `SGRAF SAF`, `SGRAF SGR +RCAR 2`.
    pub fn describe(&self) -> String {
        match self {
            Self::Rcar(Rcar { config: c, .. }) => {
                let direction = match c.direction {
                    Direction::T2i => "t2i",
                    Direction::I2t => "i2t",
                };
                let mode = match c.mode {
                    Mode::OnlyRcr => "only_rcr",
                    Mode::OnlyRar => "only_rar",
                    Mode::CoopRcar => "coop_rcar",
                };
                format!("SCAN {direction} {mode} {}", c.steps)
            }
            Self::Sgraf(Sgraf { config: c, .. }) => {
                let host = match c.host {
                    Host::Saf => "SGRAF SAF",
                    _ => "SGRAF SGR",
                };
                let plug = match c.mode {
                    Mode::OnlyRcr => "RCR",
                    Mode::OnlyRar => "RAR",
                    Mode::CoopRcar => "RCAR",
                };
                match c.steps {
                    0 => host.into(),
                    n => format!("{host} +{plug} {n}"),
                }
            }
        }
    }

    /// The configuration the model was built from (its host among it).
    pub fn config(&self) -> &ModelConfig {
        match self {
            Self::Rcar(m) => &m.config,
            Self::Sgraf(m) => &m.config,
        }
    }

    /// Which modality queries the other (SGRAF's hosts are t2i).
    pub fn direction(&self) -> Direction {
        self.config().direction
    }

    pub fn embed_size(&self) -> usize {
        self.config().embed_size
    }

    /// Refuses a vocabulary file whose size is not the model's ([`ModelConfig::check_vocab`]).
    pub fn check_vocab(
        &self,
        vocab_len: usize,
        vocab_path: &Path,
        source: &str,
    ) -> Result<(), DataError> {
        self.config().check_vocab(vocab_len, vocab_path, source)
    }

    /// Region features `[B, R, d]` → region embeddings `[B, R, E]`.
    pub fn encode_images(&self, images: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Rcar(m) => m.encode_images(images),
            Self::Sgraf(m) => m.encode_images(images),
        }
    }

    /// A padded batch of captions → word embeddings `[B, T, E]`, zero beyond each length.
    pub fn encode_tokens(&self, tokens: &TokenBatch, device: &Device) -> Tensor<3> {
        let ids = token_ids(tokens, device);
        match self {
            Self::Rcar(m) => m.encode_captions(ids, &tokens.lengths),
            Self::Sgraf(m) => m.encode_captions(ids, &tokens.lengths),
        }
    }

    /// Global vectors of encoded images `[B, R, E]` → `[B, E]`, for hosts that use them.
    pub fn image_globals(&self, images: Tensor<3>) -> Option<Tensor<2>> {
        match self {
            Self::Rcar(_) => None,
            Self::Sgraf(m) => Some(m.sim_enc.image_globals(images)),
        }
    }

    /// Global vectors of encoded captions `[B, T, E]` → `[B, E]`, for hosts that use them.
    pub fn caption_globals(&self, captions: Tensor<3>, lengths: &[usize]) -> Option<Tensor<2>> {
        match self {
            Self::Rcar(_) => None,
            Self::Sgraf(m) => Some(m.sim_enc.caption_globals(captions, lengths)),
        }
    }

    /// Both global vectors of whole encodings (`None` for hosts without them).
    pub fn globals(
        &self,
        images: &Tensor<3>,
        captions: &Tensor<3>,
        lengths: &[usize],
    ) -> Option<Globals> {
        Some(Globals {
            images: self.image_globals(images.clone())?,
            captions: self.caption_globals(captions.clone(), lengths)?,
        })
    }

    /// Scores of images `img` × captions `cap` of the encodings, rows images. `globals`: the
    /// encodings' global vectors, for SGRAF. `dropout`: RAR's pair-keyed dropout of a training
    /// step's scoring pass (`None` to evaluate).
    pub fn block(
        &self,
        images: &Tensor<3>,
        captions: &Tensor<3>,
        lengths: &[usize],
        globals: Option<&Globals>,
        (img, cap): (Range<usize>, Range<usize>),
        dropout: Option<&PairDropout>,
    ) -> Block {
        match self {
            Self::Rcar(m) => {
                m.sim_enc
                    .block(&m.config, images, captions, lengths, (img, cap), dropout)
            }
            Self::Sgraf(_) => {
                let pairs = grid_pairs(
                    Direction::T2i,
                    images,
                    captions,
                    lengths,
                    img.clone(),
                    cap.clone(),
                );
                let globals = globals.map(|g| {
                    let e = self.embed_size();
                    Globals {
                        images: g.images.clone().slice([img.clone(), 0..e]),
                        captions: g.captions.clone().slice([cap.clone(), 0..e]),
                    }
                });
                let scores = self
                    .pair_scores(&pairs, globals, dropout)
                    .reshape([img.len(), cap.len()]);
                Block {
                    images: img,
                    captions: cap,
                    scores,
                }
            }
        }
    }

    /// Scores `[images, captions]` of encoded images `image_ids` × captions `caption_ids` (rows of
    /// the encodings and of `globals`, any order), in eval mode: what a shortlist re-ranks.
    pub fn selection(
        &self,
        images: &Tensor<3>,
        captions: &Tensor<3>,
        lengths: &[usize],
        globals: Option<&Globals>,
        (image_ids, caption_ids): (&[usize], &[usize]),
    ) -> Tensor<2> {
        let direction = self.direction();
        let pairs = select_pairs(direction, images, captions, lengths, image_ids, caption_ids);
        let device = images.device();
        let globals = globals.map(|g| Globals {
            images: g.images.clone().select(0, row_index(image_ids, &device)),
            captions: g
                .captions
                .clone()
                .select(0, row_index(caption_ids, &device)),
        });
        let (g, n) = pairs.shape();
        images_by_captions(
            direction,
            self.pair_scores(&pairs, globals, None).reshape([g, n]),
        )
    }

    /// Scores `[P]` of a block of pairs (group-major); `globals`: the global vectors of the block's
    /// images and captions (SGRAF), rows in the block's order. `dropout` as for [`Matcher::block`].
    pub fn pair_scores(
        &self,
        pairs: &PairBatch,
        globals: Option<Globals>,
        dropout: Option<&PairDropout>,
    ) -> Tensor<1> {
        match self {
            Self::Rcar(m) => m.sim_enc.forward(&m.config, pairs, dropout, None),
            Self::Sgraf(m) => {
                let g = globals.expect("SGRAF scores with the pairs' global vectors");
                m.sim_enc
                    .forward(&m.config, pairs, (g.images, g.captions), dropout, None)
            }
        }
    }
}
