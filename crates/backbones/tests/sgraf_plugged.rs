//! RCR and RAR plugged into SAF and SGR (`../shared/docs/plugin-backbones.md` §3) against
//! `reference/make_sgraf.py`'s restatement: +RCR, +RAR and +RCAR at N = 1 and 2, and two variants
//! of the open choices, load from their checkpoints (RCAR's module names and mode keys) and score
//! the host fixtures' inputs to 1e-5. N = 0 in any mode is exactly the host, and an RCR whose last
//! layers are zero leaves every host's scores unchanged (its factors stay m = 1, λ = λ₀).

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rcar_backbones::checkpoint::official::load_official;
use rcar_backbones::checkpoint::sgraf::load_sgraf;
use rcar_backbones::sgraf::Sgraf;
use rcar_backbones::{Mode, ModelConfig, RarInit, RarNodes, RarOn, RcrAlignment};
use rcar_data::npy::read_f32;
use rcar_regulators::{Rcr, RcrConfig};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Encoded images and captions, and the lengths, of the host fixture `host` (`saf`, `sgr`).
fn inputs(model: &Sgraf, host: &str, device: &Device) -> (Tensor<3>, Tensor<3>, Vec<usize>) {
    let dir = fixtures().join("sgraf").join(host);
    let inputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("inputs.json")).unwrap()).unwrap();
    let rows: Vec<Vec<i64>> = serde_json::from_value(inputs["ids"].clone()).unwrap();
    let lengths: Vec<usize> = serde_json::from_value(inputs["lengths"].clone()).unwrap();
    let ids: Tensor<2, Int> = Tensor::from_data(
        TensorData::new(rows.concat(), [rows.len(), rows[0].len()]),
        device,
    );
    let (shape, data) = read_f32(&dir.join("images.npy")).unwrap();
    let images = model.encode_images(Tensor::from_data(TensorData::new(data, shape), device));
    let captions = model.encode_captions(ids, &lengths);
    (images, captions, lengths)
}

fn scores(model: &Sgraf, host: &str) -> Vec<f32> {
    let device = Device::flex();
    let (images, captions, lengths) = inputs(model, host, &device);
    model
        .similarity(images, captions, &lengths, None, None)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn plugged_hosts_match_the_reference_in_every_mode() {
    let device = Device::flex();
    let mut seen = 0;
    for host in ["saf", "sgr"] {
        for (tag, mode) in [
            ("rcr", Mode::OnlyRcr),
            ("rar", Mode::OnlyRar),
            ("rcar", Mode::CoopRcar),
        ] {
            let variants = [(1, ""), (2, ""), (2, "_shared"), (2, "_mean_local_raw")];
            for (steps, variant) in variants {
                let name = format!("{host}_{tag}{steps}{variant}");
                let dir = fixtures().join("sgraf/plugged").join(&name);
                if !dir.exists() {
                    continue;
                }
                seen += 1;
                let (model, _) = load_sgraf(&dir.join("model_best.pth.tar"), &device).unwrap();
                let c = &model.config;
                assert_eq!((c.mode, c.steps), (mode, steps), "{name}");
                let options = (c.rar_init, c.rar_nodes, c.rar_on, c.rcr_alignment);
                let want = match variant {
                    "_shared" => (
                        RarInit::Host,
                        RarNodes::All,
                        RarOn::Reasoned,
                        RcrAlignment::Shared,
                    ),
                    "_mean_local_raw" => (
                        RarInit::Mean,
                        RarNodes::LocalOnly,
                        RarOn::Raw,
                        RcrAlignment::Own,
                    ),
                    _ => (
                        RarInit::Host,
                        RarNodes::All,
                        RarOn::Reasoned,
                        RcrAlignment::Own,
                    ),
                };
                assert_eq!(options, want, "{name}");
                let (_, reference) = read_f32(&dir.join("sims.npy")).unwrap();
                let worst = max_abs_diff(&scores(&model, host), &reference);
                assert!(worst <= 1e-5, "{name}: max |Δ| {worst}");
            }
        }
    }
    assert_eq!(seen, 16, "plugged fixtures found");
}

#[test]
fn zero_steps_in_any_mode_is_the_host() {
    let device = Device::flex();
    for host in ["saf", "sgr"] {
        let path = fixtures()
            .join("sgraf")
            .join(host)
            .join("model_best.pth.tar");
        let (model, _) = load_sgraf(&path, &device).unwrap();
        let base = scores(&model, host);
        for mode in [Mode::OnlyRcr, Mode::OnlyRar, Mode::CoopRcar] {
            let config = ModelConfig {
                mode,
                steps: 0,
                ..model.config.clone()
            };
            assert!(config.problem().is_none(), "{host} {mode:?} 0 refused");
            let plugged = Sgraf {
                config,
                ..model.clone()
            };
            assert_eq!(scores(&plugged, host), base, "{host} {mode:?} 0");
        }
    }
}

/// `rcr` with its output layers zeroed: Δm = tanh(0) = 0 and Δλ = 0.
fn silenced(rcr: Rcr) -> Rcr {
    let zero = |l: Linear| Linear {
        weight: Param::from_tensor(l.weight.val().zeros_like()),
        bias: l.bias.map(|b| Param::from_tensor(b.val().zeros_like())),
    };
    let mut rcr = rcr;
    rcr.smooth.second = zero(rcr.smooth.second);
    rcr.matrix.second = zero(rcr.matrix.second);
    rcr
}

#[test]
fn a_silenced_rcr_leaves_every_host_unchanged() {
    let device = Device::flex();
    // SAF and SGR: +RCR 2 (own alignment layers, random) whose RCRs are silenced.
    for host in ["saf", "sgr"] {
        let path = fixtures()
            .join("sgraf")
            .join(host)
            .join("model_best.pth.tar");
        let (model, _) = load_sgraf(&path, &device).unwrap();
        let base = scores(&model, host);
        let config = ModelConfig {
            mode: Mode::OnlyRcr,
            steps: 2,
            ..model.config.clone()
        };
        let fresh = Sgraf::new(&config, &device);
        let mut plugged = Sgraf {
            config,
            ..model.clone()
        };
        plugged.sim_enc.alignments = fresh.sim_enc.alignments;
        plugged.sim_enc.rcrs = fresh.sim_enc.rcrs.into_iter().map(silenced).collect();
        let worst = max_abs_diff(&scores(&plugged, host), &base);
        assert!(
            worst <= 1e-6,
            "{host}: silenced RCR moved the scores by {worst}"
        );
        // Not silenced, the same RCRs move them: the test can fail.
        let mut live = plugged.clone();
        let widths = RcrConfig::new(live.config.sim_dim, live.config.embed_size);
        live.sim_enc.rcrs = (0..2).map(|_| widths.init(&device)).collect();
        assert!(max_abs_diff(&scores(&live, host), &base) > 1e-4, "{host}");
    }
    // The SCAN host (t2i and i2t): only_rcr 2 with silenced RCRs is the baseline.
    for name in ["t2i_base", "i2t_base"] {
        let dir = fixtures().join("parity").join(name);
        let (base, _) = load_official(&dir.join("checkpoint.pth"), &device).unwrap();
        let config = ModelConfig {
            mode: Mode::OnlyRcr,
            steps: 2,
            ..base.config.clone()
        };
        let mut plugged = config.init(&device);
        plugged.img_enc = base.img_enc.clone();
        plugged.txt_enc = base.txt_enc.clone();
        plugged.sim_enc.rcrs = std::mem::take(&mut plugged.sim_enc.rcrs)
            .into_iter()
            .map(silenced)
            .collect();
        let inputs: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("inputs.json")).unwrap())
                .unwrap();
        let rows: Vec<Vec<i64>> = serde_json::from_value(inputs["ids"].clone()).unwrap();
        let lengths: Vec<usize> = serde_json::from_value(inputs["lengths"].clone()).unwrap();
        let (shape, data) = read_f32(&dir.join("images.npy")).unwrap();
        let score = |m: &rcar_backbones::Rcar| {
            let ids: Tensor<2, Int> = Tensor::from_data(
                TensorData::new(rows.concat(), [rows.len(), rows[0].len()]),
                &device,
            );
            let images = Tensor::from_data(TensorData::new(data.clone(), shape.clone()), &device);
            m.similarity(
                m.encode_images(images),
                m.encode_captions(ids, &lengths),
                &lengths,
                usize::MAX,
            )
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
        };
        let worst = max_abs_diff(&score(&plugged), &score(&base));
        assert!(
            worst <= 1e-6,
            "{name}: silenced RCR moved the scores by {worst}"
        );
    }
}
