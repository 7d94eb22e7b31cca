//! Builds SGRAF's model from its released checkpoints (`model_best.pth.tar`, `checkpoint_N.pth.tar`):
//! `model` is a list of three state dicts (image, text, similarity encoder), `opt` the argparse
//! namespace of SGRAF's `train.py`. Sizes come from `opt`, the number of region slots from
//! VisualSA's BatchNorm; every tensor is checked for shape and none may be left unused.

use super::official::{opt_count, regulator_mode, regulators, OfficialInfo, Weights};
use super::pth::{read_pth, OptValue, TorchCheckpoint};
use crate::alignment::AlignmentVector;
use crate::config::{Direction, Host, Mode, ModelConfig, RarInit, RarNodes, RarOn, RcrAlignment};
use crate::saf::AttentionFiltration;
use crate::sgr::GraphReasoning;
use crate::sgraf::{Sgraf, SgrafSimilarity, SMOOTH};
use crate::visual_sa::VisualSa;
use burn::nn::DropoutConfig;
use burn::tensor::Device;
use rcar_data::DataError;
use rcar_regulators::Rar;
use std::collections::BTreeMap;
use std::path::Path;

/// SGRAF's dropout (embedding, VisualSA, TextSA).
const DROPOUT: f64 = 0.4;

/// Reads an SGRAF checkpoint (either torch format) and builds its model on `device`.
pub fn load_sgraf(path: &Path, device: &Device) -> Result<(Sgraf, OfficialInfo), DataError> {
    sgraf_from(path, &read_pth(path)?, device)
}

/// Whether a checkpoint's `opt` names an SGRAF host (`module_name`), not an RCAR model.
pub fn is_sgraf(ckpt: &TorchCheckpoint) -> bool {
    ckpt.opt.contains_key("module_name")
}

/// Builds SGRAF's model from a checkpoint already read from `path`.
pub fn sgraf_from(
    path: &Path,
    ckpt: &TorchCheckpoint,
    device: &Device,
) -> Result<(Sgraf, OfficialInfo), DataError> {
    let bad = |msg: String| DataError::invalid(path, msg);
    let int = |k: &str| opt_count(path, &ckpt.opt, k);
    let flag = |k: &str| matches!(ckpt.opt.get(k), Some(OptValue::Bool(true)));
    let host = match ckpt.opt.get("module_name") {
        Some(OptValue::Str(name)) if name == "SAF" => Host::Saf,
        Some(OptValue::Str(name)) if name == "SGR" => Host::Sgr,
        other => {
            return Err(bad(format!(
                "opt.module_name is {other:?}, not SAF or SGR (is it an SGRAF checkpoint?)"
            )))
        }
    };
    if flag("no_imgnorm") || flag("no_txtnorm") {
        return Err(bad(
            "opt.no_imgnorm / no_txtnorm: only SGRAF's default (both normalised) is built".into(),
        ));
    }
    if !flag("bi_gru") || int("num_layers")? != 1 {
        return Err(bad(
            "opt.bi_gru / num_layers: only SGRAF's default (one bidirectional layer) is built"
                .into(),
        ));
    }
    let (e, s) = (int("embed_size")?, int("sim_dim")?);
    let mut w = Weights::new(path, &ckpt.tensors, "", device);
    let regions = match w.shape_of("2.v_global_w.embedding_local.1.weight") {
        Some(&[r]) => r,
        _ => {
            return Err(bad(
                "2.v_global_w.embedding_local.1.weight is missing or not 1-D".into(),
            ))
        }
    };
    // RCR and RAR plugged in (this project's extension): RCAR's mode keys and module names.
    let (mode, steps) = if ckpt.opt.contains_key("self_regulator") {
        regulator_mode(path, &ckpt.opt)?
    } else {
        (Mode::OnlyRcr, 0)
    };
    let config = ModelConfig::new(int("vocab_size")?, Direction::T2i, mode, steps)
        .with_img_dim(int("img_dim")?)
        .with_word_dim(int("word_dim")?)
        .with_embed_size(e)
        .with_sim_dim(s)
        .with_t2i_smooth(SMOOTH)
        .with_dropout(DROPOUT)
        .with_host(host)
        .with_regions(regions);
    let config = match host {
        Host::Sgr => config.with_sgr_step(int("sgr_step")?),
        _ => config,
    };
    let config = plugin_options(path, &ckpt.opt, config)?;
    let img_fc = w.linear("0.fc", config.img_dim, e)?;
    let txt_enc = w.text_encoder(
        "1.embed",
        "1.cap_rnn",
        [config.vocab_size, config.word_dim],
        e,
        DROPOUT,
    )?;
    let visual = VisualSa {
        local: w.linear("2.v_global_w.embedding_local.0", e, e)?,
        local_bn: w.batch_norm("2.v_global_w.embedding_local.1", regions)?,
        global: w.linear("2.v_global_w.embedding_global.0", e, e)?,
        global_bn: w.batch_norm("2.v_global_w.embedding_global.1", e)?,
        common: w.linear("2.v_global_w.embedding_common.0", e, 1)?,
        dropout: DropoutConfig::new(DROPOUT).init(),
    };
    let textual = Rar {
        key: w.linear("2.t_global_w.embedding_local.0", e, e)?,
        query: w.linear("2.t_global_w.embedding_global.0", e, e)?,
        value: w.linear("2.t_global_w.embedding_common.0", e, 1)?,
        dropout: DropoutConfig::new(DROPOUT).init(),
    };
    let (saf, sgr) = match host {
        Host::Saf => (
            Some(AttentionFiltration {
                score: w.linear("2.SAF_module.attn_sim_w", s, 1)?,
                bn: w.batch_norm("2.SAF_module.bn", 1)?,
            }),
            Vec::new(),
        ),
        _ => {
            let steps = (0..config.sgr_step)
                .map(|k| {
                    let p = format!("2.SGR_module.{k}");
                    Ok(GraphReasoning {
                        query: w.linear(&format!("{p}.graph_query_w"), s, s)?,
                        key: w.linear(&format!("{p}.graph_key_w"), s, s)?,
                        update: w.linear(&format!("{p}.sim_graph_w"), s, s)?,
                    })
                })
                .collect::<Result<_, DataError>>()?;
            (None, steps)
        }
    };
    let (alignments, rcrs, rars) = regulators(&config, &mut w, "2")?;
    let sim_enc = SgrafSimilarity {
        visual,
        textual,
        local: AlignmentVector {
            transform: w.linear("2.sim_tranloc_w", e, s)?,
        },
        global: w.linear("2.sim_tranglo_w", e, s)?,
        saf,
        sgr,
        head: w.linear("2.sim_eval_w", s, 1)?,
        alignments,
        rcrs,
        rars,
    };
    w.check_all_used(|_| false, &format!("an SGRAF {host:?} model"))?;
    let model = Sgraf {
        img_fc,
        txt_enc,
        sim_enc,
        config,
    };
    Ok((model, OfficialInfo::of(ckpt)))
}

/// The plug-in choices (`rar_init`, `rar_nodes`, `rar_on`, `rcr_alignment`) where `opt` names
/// them; absent ones keep their defaults.
fn plugin_options(
    path: &Path,
    opt: &BTreeMap<String, OptValue>,
    config: ModelConfig,
) -> Result<ModelConfig, DataError> {
    let choice = |key: &str, values: &[&str]| -> Result<Option<usize>, DataError> {
        match opt.get(key) {
            None => Ok(None),
            Some(OptValue::Str(v)) if values.contains(&v.as_str()) => {
                Ok(values.iter().position(|x| x == v))
            }
            Some(other) => Err(DataError::invalid(
                path,
                format!("opt.{key} is {other:?}, not one of {values:?}"),
            )),
        }
    };
    let mut config = config;
    if let Some(k) = choice("rar_init", &["host", "mean"])? {
        config.rar_init = [RarInit::Host, RarInit::Mean][k];
    }
    if let Some(k) = choice("rar_nodes", &["all", "local_only"])? {
        config.rar_nodes = [RarNodes::All, RarNodes::LocalOnly][k];
    }
    if let Some(k) = choice("rar_on", &["reasoned", "raw"])? {
        config.rar_on = [RarOn::Reasoned, RarOn::Raw][k];
    }
    if let Some(k) = choice("rcr_alignment", &["own", "shared"])? {
        config.rcr_alignment = [RcrAlignment::Own, RcrAlignment::Shared][k];
    }
    Ok(config)
}
