//! The image encoder (official `EncoderImage`, from GPO): FC 2048→E plus a residual 2-layer MLP whose
//! BatchNorm normalises over all B·36 region rows, then l2norm per region.

use crate::batch_norm::BatchNorm;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use rcar_regulators::init::{torch_default_linear, xavier_linear};
use rcar_regulators::norm::l2norm;

#[derive(Module, Debug)]
pub struct ImageEncoder {
    /// `img_enc.fc`
    pub fc: Linear,
    /// `img_enc.mlp.layers.0`: d → E/2
    pub mlp_hidden: Linear,
    /// `img_enc.mlp.bns.0` (the official `bns.1` is never used and not built).
    pub mlp_bn: BatchNorm,
    /// `img_enc.mlp.layers.1`: E/2 → E
    pub mlp_out: Linear,
}

impl ImageEncoder {
    pub fn new(img_dim: usize, embed_size: usize, device: &Device) -> Self {
        Self {
            fc: xavier_linear(img_dim, embed_size, device),
            mlp_hidden: torch_default_linear(img_dim, embed_size / 2, device),
            mlp_bn: BatchNorm::new(embed_size / 2, device),
            mlp_out: torch_default_linear(embed_size / 2, embed_size, device),
        }
    }

    /// `images: [B, R, d]` raw region features → `[B, R, E]`, unit norm per region.
    /// BatchNorm uses batch statistics on an autodiff (training) device, running ones otherwise.
    pub fn forward(&self, images: Tensor<3>) -> Tensor<3> {
        let [b, r, d] = images.dims();
        let rows = images.clone().reshape([b * r, d]);
        let hidden = relu(self.mlp_bn.forward(self.mlp_hidden.forward(rows)));
        let e = self.mlp_out.weight.dims()[1];
        let mlp = self.mlp_out.forward(hidden).reshape([b, r, e]);
        l2norm(self.fc.forward(images) + mlp)
    }
}
