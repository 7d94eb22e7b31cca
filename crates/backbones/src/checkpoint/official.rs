//! Builds the model from an official RCAR checkpoint: configuration from its pickled `opt`, weights
//! from its state dict (`module.` stripped, Linear weights transposed to Burn's `[in, out]`, GRU
//! gates kept fused in PyTorch's r/z/n order, BatchNorm running statistics loaded; the unused
//! `bns.1`, `num_batches_tracked` and — in `only_rcr` — `sim_eval_w` ignored).

use super::pth::{read_pth, OptValue, RawTensor, TorchCheckpoint};
use crate::alignment::AlignmentVector;
use crate::batch_norm::BatchNorm;
use crate::config::{Direction, Mode, ModelConfig};
use crate::gru::GruDirection;
use crate::image_encoder::ImageEncoder;
use crate::model::Rcar;
use crate::similarity::{RegulatorModules, SimilarityEncoder};
use crate::text_encoder::TextEncoder;
use burn::module::Param;
use burn::nn::{DropoutConfig, Embedding, Linear};
use burn::tensor::{Device, Tensor, TensorData};
use rcar_data::DataError;
use rcar_regulators::rcr::TanhMlp;
use rcar_regulators::{Rar, Rcr, RcrConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What an official checkpoint holds besides the model.
#[derive(Debug, Clone)]
pub struct OfficialInfo {
    pub epoch: Option<i64>,
    pub best_rsum: Option<f64>,
    pub eiters: Option<i64>,
}

/// Reads an official `.pth` and builds the model it describes on `device`.
pub fn load_official(path: &Path, device: &Device) -> Result<(Rcar, OfficialInfo), DataError> {
    official_from(path, &read_pth(path)?, device)
}

/// Builds the model of an official checkpoint already read from `path`.
pub fn official_from(
    path: &Path,
    ckpt: &TorchCheckpoint,
    device: &Device,
) -> Result<(Rcar, OfficialInfo), DataError> {
    let config = config_from_opt(path, &ckpt.opt)?;
    let mut weights = Weights::new(path, &ckpt.tensors, "module.", device);
    let model = build(&config, &mut weights)?;
    let ignorable = |k: &str| {
        k.starts_with("img_enc.mlp.bns.1.")
            || (k.starts_with("sim_enc.sim_eval_w.") && !config.sigmoid_head())
    };
    let model_kind = format!("a {:?} model with {} steps", config.mode, config.steps);
    weights.check_all_used(ignorable, &model_kind)?;
    Ok((model, OfficialInfo::of(ckpt)))
}

impl OfficialInfo {
    pub(super) fn of(ckpt: &TorchCheckpoint) -> Self {
        Self {
            epoch: ckpt.epoch,
            best_rsum: ckpt.best_rsum,
            eiters: ckpt.eiters,
        }
    }
}

/// `opt.key`, a non-negative integer (a size or a count); the error names the file and the key.
pub(super) fn opt_count(
    path: &Path,
    opt: &BTreeMap<String, OptValue>,
    key: &str,
) -> Result<usize, DataError> {
    match opt.get(key) {
        Some(OptValue::Int(v)) if *v >= 0 => Ok(*v as usize),
        _ => Err(missing_opt(path, key)),
    }
}

fn missing_opt(path: &Path, key: &str) -> DataError {
    DataError::invalid(path, format!("opt.{key} is missing or has the wrong type"))
}

/// The model configuration from the `opt` namespace (the direction is not in the weights).
pub fn config_from_opt(
    path: &Path,
    opt: &BTreeMap<String, OptValue>,
) -> Result<ModelConfig, DataError> {
    let missing = |k: &str| missing_opt(path, k);
    let int = |k: &str| opt_count(path, opt, k);
    let float = |k: &str| match opt.get(k) {
        Some(OptValue::Float(v)) => Ok(*v),
        Some(OptValue::Int(v)) => Ok(*v as f64),
        _ => Err(missing(k)),
    };
    let string = |k: &str| match opt.get(k) {
        Some(OptValue::Str(s)) => Ok(s.as_str()),
        _ => Err(missing(k)),
    };
    let direction = match string("attn_type")? {
        "t2i" => Direction::T2i,
        "i2t" => Direction::I2t,
        other => {
            return Err(DataError::invalid(
                path,
                format!("opt.attn_type {other:?} is neither t2i nor i2t"),
            ))
        }
    };
    let (mode, steps) = regulator_mode(path, opt)?;
    Ok(ModelConfig::new(int("vocab_size")?, direction, mode, steps)
        .with_img_dim(int("img_dim")?)
        .with_word_dim(int("word_dim")?)
        .with_embed_size(int("embed_size")?)
        .with_sim_dim(int("sim_dim")?)
        .with_t2i_smooth(float("t2i_smooth")?)
        .with_i2t_smooth(float("i2t_smooth")?))
}

/// A checkpoint's tensors, taken one by one into layers; every key is checked for shape and, at
/// the end, that none was left unused.
pub(super) struct Weights<'a> {
    path: PathBuf,
    tensors: &'a BTreeMap<String, RawTensor>,
    /// How keys are named in messages: RCAR's state dict keys start with `module.` (stripped here).
    shown: &'static str,
    used: BTreeSet<String>,
    device: &'a Device,
}

impl<'a> Weights<'a> {
    pub(super) fn new(
        path: &Path,
        tensors: &'a BTreeMap<String, RawTensor>,
        shown: &'static str,
        device: &'a Device,
    ) -> Self {
        Self {
            path: path.to_path_buf(),
            tensors,
            shown,
            used: BTreeSet::new(),
            device,
        }
    }

    /// The raw tensor under `key`, if the checkpoint has one (to read a size from).
    pub(super) fn shape_of(&self, key: &str) -> Option<&[usize]> {
        self.tensors.get(key).map(|t| t.shape.as_slice())
    }

    fn raw(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>, DataError> {
        let shown = self.shown;
        let t = self.tensors.get(key).ok_or_else(|| {
            DataError::invalid(
                &self.path,
                format!("missing key {shown}{key}, expected by its opt"),
            )
        })?;
        if t.shape != shape {
            return Err(DataError::invalid(
                &self.path,
                format!(
                    "{shown}{key} has shape {:?}, its opt implies {shape:?}",
                    t.shape
                ),
            ));
        }
        self.used.insert(key.to_string());
        Ok(t.data.clone())
    }

    pub(super) fn tensor1(&mut self, key: &str, n: usize) -> Result<Tensor<1>, DataError> {
        let data = self.raw(key, &[n])?;
        Ok(Tensor::from_data(TensorData::new(data, [n]), self.device))
    }

    pub(super) fn tensor2(&mut self, key: &str, shape: [usize; 2]) -> Result<Tensor<2>, DataError> {
        let data = self.raw(key, &shape)?;
        Ok(Tensor::from_data(TensorData::new(data, shape), self.device))
    }

    /// A PyTorch Linear `[out, in]` as Burn's `[in, out]`.
    pub(super) fn linear(
        &mut self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
    ) -> Result<Linear, DataError> {
        let weight = self
            .tensor2(&format!("{prefix}.weight"), [d_out, d_in])?
            .transpose();
        let bias = self.tensor1(&format!("{prefix}.bias"), d_out)?;
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
        })
    }

    /// One direction (`suffix` "" or "_reverse") of PyTorch GRU `p`, gates fused in r/z/n order.
    fn gru(
        &mut self,
        p: &str,
        suffix: &str,
        d_in: usize,
        hidden: usize,
    ) -> Result<GruDirection, DataError> {
        let mut part = |kind: &str, d: usize| -> Result<Linear, DataError> {
            let weight = self
                .tensor2(&format!("{p}.weight_{kind}_l0{suffix}"), [3 * hidden, d])?
                .transpose();
            let bias = self.tensor1(&format!("{p}.bias_{kind}_l0{suffix}"), 3 * hidden)?;
            Ok(Linear {
                weight: Param::from_tensor(weight),
                bias: Some(Param::from_tensor(bias)),
            })
        };
        Ok(GruDirection {
            input: part("ih", d_in)?,
            hidden: part("hh", hidden)?,
        })
    }

    fn tanh_mlp(
        &mut self,
        prefix: &str,
        d_in: usize,
        hidden: usize,
        d_out: usize,
    ) -> Result<TanhMlp, DataError> {
        Ok(TanhMlp {
            first: self.linear(&format!("{prefix}.0"), d_in, hidden)?,
            second: self.linear(&format!("{prefix}.2"), hidden, d_out)?,
        })
    }

    /// Embedding `embed` `[vocab, word_dim]` and the bidirectional GRU `rnn` into E, averaged.
    pub(super) fn text_encoder(
        &mut self,
        embed: &str,
        rnn: &str,
        [vocab, word_dim]: [usize; 2],
        embed_size: usize,
        dropout: f64,
    ) -> Result<TextEncoder, DataError> {
        let weight = self.tensor2(&format!("{embed}.weight"), [vocab, word_dim])?;
        Ok(TextEncoder {
            embed: Embedding {
                weight: Param::from_tensor(weight),
            },
            dropout: DropoutConfig::new(dropout).init(),
            gru_forward: self.gru(rnn, "", word_dim, embed_size)?,
            gru_backward: self.gru(rnn, "_reverse", word_dim, embed_size)?,
        })
    }

    /// A PyTorch `BatchNorm1d` of `n` channels, running statistics included.
    pub(super) fn batch_norm(&mut self, prefix: &str, n: usize) -> Result<BatchNorm, DataError> {
        Ok(BatchNorm::from_tensors(
            self.tensor1(&format!("{prefix}.weight"), n)?,
            self.tensor1(&format!("{prefix}.bias"), n)?,
            self.tensor1(&format!("{prefix}.running_mean"), n)?,
            self.tensor1(&format!("{prefix}.running_var"), n)?,
        ))
    }

    /// Every tensor of the checkpoint must have been used, except the `ignorable` ones, which the
    /// model never reads; `model` says what the checkpoint was read as.
    pub(super) fn check_all_used(
        &self,
        ignorable: impl Fn(&str) -> bool,
        model: &str,
    ) -> Result<(), DataError> {
        match self
            .tensors
            .keys()
            .find(|k| !self.used.contains(*k) && !ignorable(k))
        {
            Some(k) => Err(DataError::invalid(
                &self.path,
                format!("unexpected key {}{k} for {model}", self.shown),
            )),
            None => Ok(()),
        }
    }
}

/// The regulators' mode and step count from `opt.self_regulator` and its step key.
pub(super) fn regulator_mode(
    path: &Path,
    opt: &BTreeMap<String, OptValue>,
) -> Result<(Mode, usize), DataError> {
    let int = |k: &str| opt_count(path, opt, k);
    let (mode, steps) = match opt.get("self_regulator") {
        Some(OptValue::Str(s)) if s == "only_rcr" => (Mode::OnlyRcr, int("rcr_step")?),
        Some(OptValue::Str(s)) if s == "only_rar" => (Mode::OnlyRar, int("rar_step")?),
        Some(OptValue::Str(s)) if s == "coop_rcar" => (Mode::CoopRcar, int("rcar_step")?),
        Some(OptValue::Str(other)) => {
            return Err(DataError::invalid(
                path,
                format!("opt.self_regulator {other:?} is not a known mode"),
            ))
        }
        _ => return Err(missing_opt(path, "self_regulator")),
    };
    if mode != Mode::OnlyRcr && steps == 0 {
        return Err(DataError::invalid(
            path,
            "a RAR mode with 0 steps has no aggregation",
        ));
    }
    Ok((mode, steps))
}

/// The regulators' modules under `sim`, as many as `cfg` builds.
pub(super) fn regulators(
    cfg: &ModelConfig,
    w: &mut Weights,
    sim: &str,
) -> Result<RegulatorModules, DataError> {
    let (e, s) = (cfg.embed_size, cfg.sim_dim);
    let (n_alv, n_rcr, n_rar) = cfg.module_counts();
    let alignments = (0..n_alv)
        .map(|i| {
            Ok(AlignmentVector {
                transform: w.linear(&format!("{sim}.alv_modules.{i}.sim_transform_w"), e, s)?,
            })
        })
        .collect::<Result<_, DataError>>()?;
    let widths = RcrConfig::new(s, e);
    let rcrs = (0..n_rcr)
        .map(|i| {
            let p = format!("{sim}.rcr_modules.{i}");
            Ok(Rcr {
                smooth: w.tanh_mlp(&format!("{p}.rcr_smooth_w"), s, widths.smooth_hidden(), 1)?,
                matrix: w.tanh_mlp(&format!("{p}.rcr_matrix_w"), s, widths.matrix_hidden(), e)?,
            })
        })
        .collect::<Result<_, DataError>>()?;
    let rars = (0..n_rar)
        .map(|i| {
            let p = format!("{sim}.rar_modules.{i}");
            Ok(Rar {
                query: w.linear(&format!("{p}.rar_q_w.0"), s, s)?,
                key: w.linear(&format!("{p}.rar_k_w.0"), s, s)?,
                value: w.linear(&format!("{p}.rar_v_w.0"), s, 1)?,
                dropout: DropoutConfig::new(cfg.dropout).init(),
            })
        })
        .collect::<Result<_, DataError>>()?;
    Ok((alignments, rcrs, rars))
}

fn build(cfg: &ModelConfig, w: &mut Weights) -> Result<Rcar, DataError> {
    let (e, s, wd) = (cfg.embed_size, cfg.sim_dim, cfg.word_dim);
    let bn = w.batch_norm("img_enc.mlp.bns.0", e / 2)?;
    let img_enc = ImageEncoder {
        fc: w.linear("img_enc.fc", cfg.img_dim, e)?,
        mlp_hidden: w.linear("img_enc.mlp.layers.0", cfg.img_dim, e / 2)?,
        mlp_bn: bn,
        mlp_out: w.linear("img_enc.mlp.layers.1", e / 2, e)?,
    };
    let txt_enc = w.text_encoder(
        "txt_enc.embed",
        "txt_enc.rnn",
        [cfg.vocab_size, wd],
        e,
        cfg.dropout,
    )?;
    let sim = "sim_enc";
    let (alignments, rcrs, rars) = regulators(cfg, w, sim)?;
    let head = if cfg.sigmoid_head() {
        Some(w.linear(&format!("{sim}.sim_eval_w"), s, 1)?)
    } else {
        None
    };
    Ok(Rcar {
        img_enc,
        txt_enc,
        sim_enc: SimilarityEncoder {
            alignments,
            rcrs,
            rars,
            head,
        },
        config: cfg.clone(),
    })
}
