//! The recipe's pieces against hand-computed values: the hinge loss in both modes, the warm-up
//! switch, the single lr step (and SGRAF's repeated one), global-norm clipping; the experiment
//! files.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rcar_backbones::Host;
use rcar_train::clip::{clip_global, global_norm};
use rcar_train::config::{LrDecay, OptimizerKind};
use rcar_train::{hinge, LossMode, TrainConfig};

fn scores(device: &Device) -> Tensor<2> {
    // Rows images, columns captions; positives on the diagonal.
    Tensor::from_data(
        TensorData::new(vec![0.9f32, 0.3, 0.8, 0.1, 0.5, 0.6, 0.7, 0.2, 0.4], [3, 3]),
        device,
    )
}

#[test]
fn hinge_loss_matches_a_hand_computation() {
    let device = Device::flex();
    // Margin 0.2. C_s[i,j] = max(0, .2 + S[i,j] − S[i,i]), C_im[i,j] = max(0, .2 + S[i,j] − S[j,j]).
    // C_s:  row 0: j1 .2+.3−.9=−.4→0, j2 .2+.8−.9=.1 | row 1: j0 .2+.1−.5=−.2→0, j2 .2+.6−.5=.3
    //       row 2: j0 .2+.7−.4=.5, j1 .2+.2−.4=0
    // C_im: col 0: i1 .2+.1−.9=−.6→0, i2 .2+.7−.9=0 | col 1: i0 .2+.3−.5=0, i2 .2+.2−.5=−.1→0
    //       col 2: i0 .2+.8−.4=.6, i1 .2+.6−.4=.4
    let sum: f32 = hinge(scores(&device), 0.2, LossMode::Sum).into_scalar();
    let hardest: f32 = hinge(scores(&device), 0.2, LossMode::Hardest).into_scalar();
    assert!(
        (sum - (0.1 + 0.3 + 0.5 + 0.6 + 0.4)).abs() < 1e-6,
        "sum {sum}"
    );
    assert!(
        (hardest - (0.1 + 0.3 + 0.5 + 0.0 + 0.0 + 0.6)).abs() < 1e-6,
        "hardest {hardest}"
    );
}

fn config() -> TrainConfig {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../experiments/f30k_t2i_rcar.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn warm_up_switches_to_hardest_negatives_at_its_epoch() {
    let cfg = config();
    assert_eq!(cfg.warmup_epochs, 3);
    let modes: Vec<LossMode> = (0..6).map(|e| cfg.loss_at(e, 1 << 40)).collect();
    use LossMode::*;
    assert_eq!(modes, [Sum, Sum, Sum, Hardest, Hardest, Hardest]);
}

#[test]
fn warm_up_in_steps_ends_inside_an_epoch_and_outlasts_a_shorter_epoch_warm_up() {
    let mut cfg = config();
    cfg.warmup_epochs = 0;
    cfg.warmup_steps = 150;
    use LossMode::*;
    assert_eq!(cfg.loss_at(0, 0), Sum);
    assert_eq!(cfg.loss_at(0, 149), Sum);
    assert_eq!(cfg.loss_at(0, 150), Hardest);
    // The longer of the two warm-ups wins.
    cfg.warmup_epochs = 1;
    assert_eq!((cfg.loss_at(0, 200), cfg.loss_at(1, 200)), (Sum, Hardest));
    assert_eq!(cfg.loss_at(3, 100), Sum);
}

#[test]
fn the_plateau_is_margin_per_counted_negative_from_both_directions() {
    let mut cfg = config();
    cfg.batch_size = 32;
    cfg.margin = 0.2;
    assert!((cfg.plateau(LossMode::Hardest) - 12.8).abs() < 1e-12);
    assert!((cfg.plateau(LossMode::Sum) - 2.0 * 32.0 * 31.0 * 0.2).abs() < 1e-9);
}

#[test]
fn learning_rate_drops_once() {
    let cfg = config();
    assert_eq!((cfg.epochs, cfg.lr_update, cfg.lr), (40, 30, 5e-4));
    let lrs: Vec<f64> = (0..cfg.epochs).map(|e| cfg.lr_at(e)).collect();
    assert!(lrs[..30].iter().all(|&l| l == 5e-4));
    assert!(lrs[30..].iter().all(|&l| (l - 5e-5).abs() < 1e-15));
}

#[derive(Module, Debug)]
struct Two {
    a: Linear,
    b: Linear,
}

#[test]
fn global_clipping_scales_every_gradient_by_one_factor() {
    let device = Device::flex().autodiff();
    let model = Two {
        a: LinearConfig::new(3, 2).init(&device),
        b: LinearConfig::new(2, 1).init(&device),
    };
    let x: Tensor<2> = Tensor::from_data(TensorData::new(vec![1f32, -2.0, 3.0], [1, 3]), &device);
    let loss = model.b.forward(model.a.forward(x)).sum() * 50.0;
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let norm = global_norm(&model, &grads);
    assert!(
        norm > 2.0,
        "the test needs a norm above the clip, got {norm}"
    );

    let before: Vec<Vec<f32>> = params(&model)
        .iter()
        .map(|p| grads.get::<2>(p.id).map(values).unwrap_or_default())
        .collect();
    let mut clipped = grads;
    let reported = clip_global(&model, &mut clipped, 2.0);
    assert_eq!(reported, norm);
    let factor = 2.0 / (norm + 1e-6);
    for (p, old) in params(&model).iter().zip(&before) {
        let new = clipped.get::<2>(p.id).map(values).unwrap_or_default();
        for (n, o) in new.iter().zip(old) {
            assert!((*n as f64 - *o as f64 * factor).abs() < 1e-5);
        }
    }
    let after = global_norm(&model, &clipped);
    assert!((after - 2.0).abs() < 1e-4, "norm after clipping {after}");
    // Under the threshold nothing changes.
    let untouched = clip_global(&model, &mut clipped, 10.0);
    assert!((global_norm(&model, &clipped) - untouched).abs() < 1e-9);
}

fn params(model: &Two) -> Vec<Param<Tensor<2>>> {
    vec![model.a.weight.clone(), model.b.weight.clone()]
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Every experiment file loads and validates; SGRAF's presets carry its recipe and the epochs of
/// its README (Flickr30K SAF 30/20, SGR 40/30; MSCOCO both 20/10).
#[test]
fn every_experiment_loads_and_sgraf_presets_follow_sgraf() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../experiments"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            TrainConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 24, "{seen} experiment files");
    for (name, host, epochs, lr_update, words) in [
        ("f30k_saf", Host::Saf, 30, 20, 8481),
        ("f30k_sgr", Host::Sgr, 40, 30, 8481),
        ("coco_saf", Host::Saf, 20, 10, 11353),
        ("coco_sgr", Host::Sgr, 20, 10, 11353),
        ("demo_saf", Host::Saf, 2, 10, 90),
        ("demo_sgr", Host::Sgr, 2, 10, 90),
    ] {
        let cfg = TrainConfig::load(&dir.join(format!("{name}.json"))).unwrap();
        let m = &cfg.model;
        assert_eq!(
            (m.host, m.vocab_size, m.t2i_smooth),
            (host, words, 9.0),
            "{name}"
        );
        assert_eq!((cfg.epochs, cfg.lr_update), (epochs, lr_update), "{name}");
        assert_eq!(
            (cfg.lr, cfg.grad_clip, cfg.margin),
            (2e-4, 2.0, 0.2),
            "{name}"
        );
        assert_eq!(cfg.optimizer, OptimizerKind::Adam, "{name}");
        assert_eq!(cfg.lr_decay, LrDecay::Every, "{name}");
        if m.embed_size == 1024 {
            // The paper-size presets keep SGRAF's released recipe: hardest negatives at once.
            assert_eq!((cfg.warmup_epochs, cfg.warmup_steps), (0, 0), "{name}");
            // ... and say how to add the warm-up.
            assert!(cfg.note.contains("warmup_steps"), "{name}: {}", cfg.note);
        } else {
            // The demo presets warm up for their first epoch (the plateau, README).
            assert!(cfg.warmup_steps > 0, "{name}");
            assert_eq!(cfg.loss_at(0, 0), LossMode::Sum, "{name}");
            assert_eq!(
                cfg.loss_at(0, cfg.warmup_steps),
                LossMode::Hardest,
                "{name}"
            );
        }
        assert!(!cfg.augment, "{name}");
        if m.embed_size == 1024 {
            assert_eq!(
                (m.sim_dim, m.sgr_step, m.regions, cfg.batch_size),
                (256, 3, 36, 128)
            );
        }
    }
}

#[test]
fn sgraf_learning_rate_falls_every_lr_update_epochs() {
    let mut cfg = config();
    cfg.lr_decay = LrDecay::Every;
    cfg.lr_update = 2;
    let lrs: Vec<f64> = (0..5).map(|e| cfg.lr_at(e) / cfg.lr).collect();
    let want = [1.0, 1.0, 0.1, 0.1, 0.01];
    assert!(
        lrs.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
        "{lrs:?}"
    );
}
