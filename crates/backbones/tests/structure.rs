//! The model's structure against the spec: trainable parameter counts (§2.10) at the published
//! dimensions and, against the PyTorch reference, at small ones where E ≠ 4·S (so that every hidden
//! width is checked on its own); finite gradients everywhere when captions are padded (§9 7a).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rcar_backbones::{Direction, Mode, ModelConfig};

/// Flickr30K's vocabulary (`<mask>` included).
const F30K_VOCAB: usize = 8482;
/// The official encoder builds `bns.1` (512 weights, 512 biases) and never uses it; it is not built
/// here, so its parameters are the only ones the spec counts that this model does not have.
const UNUSED_BNS_1: usize = 1024;
/// `sim_eval_w` (256 → 1) is built but unused in `only_rcr`; the spec counts it, this model omits it.
const UNUSED_SIM_EVAL_W: usize = 257;

#[test]
fn parameter_counts_match_the_official_model() {
    let device = Device::flex();
    // (mode, steps, whole model, of which sim_enc) from the spec's table, f30k column.
    let table = [
        (Mode::OnlyRcr, 0, 14_367_449, 257),
        (Mode::OnlyRar, 2, 14_893_531, 526_339),
        (Mode::OnlyRar, 3, 15_025_372, 658_180),
        (Mode::OnlyRcr, 2, 16_272_091, 1_904_899),
        (Mode::OnlyRcr, 3, 17_224_412, 2_857_220),
        (Mode::CoopRcar, 2, 15_845_852, 1_478_660),
    ];
    for (mode, steps, total, sim_enc) in table {
        for direction in [Direction::T2i, Direction::I2t] {
            let model = ModelConfig::new(F30K_VOCAB, direction, mode, steps).init(&device);
            let unused_head = if mode == Mode::OnlyRcr {
                UNUSED_SIM_EVAL_W
            } else {
                0
            };
            let label = format!("{mode:?} {steps} {direction:?}");
            assert_eq!(
                model.sim_enc.num_params() + unused_head,
                sim_enc,
                "{label}: sim_enc"
            );
            assert_eq!(
                model.num_params() + unused_head + UNUSED_BNS_1,
                total,
                "{label}: whole model"
            );
        }
    }
}

/// Counts the trainable entries (BatchNorm's running statistics are parameters in Burn, not trained).
#[derive(Default)]
struct Trainable(usize);

impl ModuleVisitor for Trainable {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.val().is_require_grad() {
            self.0 += param.val().shape().num_elements();
        }
    }
}

fn trainable<M: Module>(module: &M) -> usize {
    let mut count = Trainable::default();
    module.visit(&mut count);
    count.0
}

#[test]
fn parameter_counts_match_the_reference_where_no_two_widths_coincide() {
    let device = Device::flex().autodiff();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity");
    for (name, direction, mode, steps) in [
        ("t2i_base", Direction::T2i, Mode::OnlyRcr, 0),
        ("t2i_rcr2", Direction::T2i, Mode::OnlyRcr, 2),
        ("t2i_rar2", Direction::T2i, Mode::OnlyRar, 2),
        ("t2i_rcar2", Direction::T2i, Mode::CoopRcar, 2),
        ("i2t_base", Direction::I2t, Mode::OnlyRcr, 0),
        ("i2t_rcr2", Direction::I2t, Mode::OnlyRcr, 2),
        ("i2t_rar2", Direction::I2t, Mode::OnlyRar, 2),
        ("i2t_rcar2", Direction::I2t, Mode::CoopRcar, 2),
    ] {
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures.join(name).join("train_step.json")).unwrap(),
        )
        .unwrap();
        let count = |key: &str| json[key].as_u64().unwrap() as usize;
        // The reference's sizes (make_parity.py DIMS): E 44, S 18, image 26, word 12, vocabulary 30.
        let model = ModelConfig::new(30, direction, mode, steps)
            .with_img_dim(26)
            .with_word_dim(12)
            .with_embed_size(44)
            .with_sim_dim(18)
            .init(&device);
        assert_eq!(
            trainable(&model.sim_enc),
            count("sim_enc_params") - count("unused_sim_enc_params"),
            "{name}: sim_enc"
        );
        assert_eq!(
            trainable(&model),
            count("num_params") - count("unused_params"),
            "{name}: whole model"
        );
    }
}

/// Counts gradient entries that are NaN or infinite, and the parameters that got a gradient.
struct NonFinite<'a> {
    grads: &'a GradientsParams,
    bad: usize,
    with_grad: usize,
    params: usize,
}

impl ModuleVisitor for NonFinite<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // BatchNorm's running statistics are visited too; they take no gradient.
        if !param.val().is_require_grad() {
            return;
        }
        self.params += 1;
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.with_grad += 1;
            let values = g.into_data().try_to_vec::<f32>().unwrap();
            self.bad += values.iter().filter(|v| !v.is_finite()).count();
        }
    }
}

#[test]
fn gradients_are_finite_with_padded_captions() {
    let device = Device::flex().autodiff();
    device.seed(7);
    // One-word and long captions together: most query (t2i) or context (i2t) rows are padding.
    let lengths = [9usize, 1, 4, 2];
    let t = 9;
    let ids: Vec<i64> = lengths
        .iter()
        .enumerate()
        .flat_map(|(c, &len)| (0..t).map(move |k| if k < len { (3 + c + k) as i64 } else { 0 }))
        .collect();
    for direction in [Direction::T2i, Direction::I2t] {
        for (mode, steps) in [
            (Mode::OnlyRcr, 0),
            (Mode::OnlyRcr, 2),
            (Mode::OnlyRar, 2),
            (Mode::CoopRcar, 2),
        ] {
            let model = ModelConfig::new(40, direction, mode, steps)
                .with_img_dim(24)
                .with_word_dim(12)
                .with_embed_size(16)
                .with_sim_dim(8)
                .with_dropout(0.0)
                .init(&device);
            let images = Tensor::<3>::random(
                [3, 5, 24],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let ids: Tensor<2, Int> =
                Tensor::from_data(TensorData::new(ids.clone(), [lengths.len(), t]), &device);
            let scores = model.similarity(
                model.encode_images(images),
                model.encode_captions(ids, &lengths),
                &lengths,
                5,
            );
            // Diagonal up, the rest down: every score gets a gradient of either sign.
            let sign = Tensor::<2>::from_data(
                TensorData::new(
                    (0..12)
                        .map(|k| if k / 4 == k % 4 { -1.0f32 } else { 1.0 })
                        .collect(),
                    [3, 4],
                ),
                &device,
            );
            let grads = GradientsParams::from_grads((scores * sign).sum().backward(), &model);
            let mut visitor = NonFinite {
                grads: &grads,
                bad: 0,
                with_grad: 0,
                params: 0,
            };
            model.visit(&mut visitor);
            let label = format!("{direction:?} {mode:?} {steps}");
            assert_eq!(visitor.bad, 0, "{label}: non-finite gradient entries");
            assert_eq!(
                visitor.with_grad, visitor.params,
                "{label}: parameters without a gradient"
            );
        }
    }
}
