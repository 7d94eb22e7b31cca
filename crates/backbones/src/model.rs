//! The whole model (official `SCANpp`): image encoder, text encoder, similarity encoder.

use crate::config::ModelConfig;
use crate::image_encoder::ImageEncoder;
use crate::matcher::token_ids;
use crate::similarity::SimilarityEncoder;
use crate::text_encoder::TextEncoder;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use rcar_data::batch::TokenBatch;

#[derive(Module, Debug)]
pub struct Rcar {
    pub img_enc: ImageEncoder,
    pub txt_enc: TextEncoder,
    pub sim_enc: SimilarityEncoder,
    #[module(skip)]
    pub config: ModelConfig,
}

impl ModelConfig {
    /// A freshly initialised model, with the official initialisation of every layer.
    pub fn init(&self, device: &Device) -> Rcar {
        Rcar {
            img_enc: ImageEncoder::new(self.img_dim, self.embed_size, device),
            txt_enc: TextEncoder::new(
                self.vocab_size,
                self.word_dim,
                self.embed_size,
                self.dropout,
                device,
            ),
            sim_enc: SimilarityEncoder::new(self, device),
            config: self.clone(),
        }
    }
}

impl Rcar {
    /// Region features `[B, R, d]` → region embeddings `[B, R, E]`.
    pub fn encode_images(&self, images: Tensor<3>) -> Tensor<3> {
        self.img_enc.forward(images)
    }

    /// Padded ids `[B, T]` → word embeddings `[B, T, E]`, zero beyond each length.
    pub fn encode_captions(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> Tensor<3> {
        self.txt_enc.forward(ids, lengths)
    }

    /// A padded batch of token ids → word embeddings `[B, T, E]` on `device`.
    pub fn encode_tokens(&self, tokens: &TokenBatch, device: &Device) -> Tensor<3> {
        self.encode_captions(token_ids(tokens, device), &tokens.lengths)
    }

    /// Similarity matrix `[n_img, n_cap]` of encoded images and captions, `chunk` pairs at a time.
    pub fn similarity(
        &self,
        images: Tensor<3>,
        captions: Tensor<3>,
        lengths: &[usize],
        chunk: usize,
    ) -> Tensor<2> {
        self.sim_enc
            .grid(&self.config, images, captions, lengths, chunk, None)
    }
}
