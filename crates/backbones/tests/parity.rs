//! Parity with the PyTorch reference (`reference/make_parity.py`): official-format checkpoints of all
//! eight configurations, loaded through the official loader, compared layer by layer.
//! Tolerance: max |Δ| ≤ 1e-5 on every tensor (float32 throughout, small dimensions).

use burn::tensor::{Device, Int, Tensor, TensorData};
use rcar_backbones::checkpoint::official::load_official;
use rcar_backbones::pairs::grid_pairs;
use rcar_backbones::similarity::Trace;
use rcar_backbones::{Direction, Rcar};
use rcar_data::npy::read_f32;
use std::path::{Path, PathBuf};

const TOL: f32 = 1e-5;
const CONFIGS: [&str; 8] = [
    "t2i_base",
    "t2i_rcr2",
    "t2i_rar2",
    "t2i_rcar2",
    "i2t_base",
    "i2t_rcr2",
    "i2t_rar2",
    "i2t_rcar2",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(name)
}

fn npy(dir: &Path, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
    let path = dir.join(format!("{name}.npy"));
    path.exists().then(|| read_f32(&path).unwrap())
}

struct Inputs {
    images: Tensor<3>,
    ids: Tensor<2, Int>,
    lengths: Vec<usize>,
}

fn inputs(dir: &Path, device: &Device) -> Inputs {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("inputs.json")).unwrap()).unwrap();
    let rows: Vec<Vec<i64>> = serde_json::from_value(json["ids"].clone()).unwrap();
    let lengths: Vec<usize> = serde_json::from_value(json["lengths"].clone()).unwrap();
    let (b, t) = (rows.len(), rows[0].len());
    let ids = Tensor::from_data(TensorData::new(rows.concat(), [b, t]), device);
    let (shape, data) = npy(dir, "images").unwrap();
    let images = Tensor::from_data(TensorData::new(data, shape), device);
    Inputs {
        images,
        ids,
        lengths,
    }
}

fn values<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    (
        t.dims().to_vec(),
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap(),
    )
}

fn assert_close(what: &str, got: &[f32], expected: &[f32]) {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    let worst = got
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= TOL, "{what}: max |diff| {worst:e} > {TOL:e}");
}

/// Compares a traced per-pair tensor `[P = n_img·n_cap, q, X]` (image-major, q padded to the longest
/// caption) with the reference `[n_cap, n_img, Q, X]`, on the positions valid for each caption.
fn assert_pairs(
    what: &str,
    got: (Vec<usize>, Vec<f32>),
    expected: (Vec<usize>, Vec<f32>),
    valid_q: &dyn Fn(usize) -> usize,
    pair: &dyn Fn(usize, usize) -> usize,
) {
    let (gs, g) = got;
    let (es, e) = expected;
    let (n_cap, n_img, eq) = (es[0], es[1], es[2]);
    let x: usize = es[3..].iter().product();
    let gq = gs[1];
    let mut got_v = Vec::new();
    let mut exp_v = Vec::new();
    for j in 0..n_cap {
        for i in 0..n_img {
            let p = pair(i, j);
            for t in 0..valid_q(j) {
                got_v.extend_from_slice(&g[(p * gq + t) * x..(p * gq + t + 1) * x]);
                exp_v.extend_from_slice(
                    &e[((j * n_img + i) * eq + t) * x..((j * n_img + i) * eq + t + 1) * x],
                );
            }
        }
    }
    assert_close(what, &got_v, &exp_v);
}

fn check_config(name: &str) {
    let dir = fixture(name);
    let device = Device::flex();
    let (model, info): (Rcar, _) = load_official(&dir.join("checkpoint.pth"), &device).unwrap();
    assert_eq!((info.epoch, info.eiters), (Some(7), Some(4567)), "{name}");
    let cfg = model.config.clone();
    let inp = inputs(&dir, &device);

    let img = model.encode_images(inp.images.clone());
    assert_close(
        &format!("{name} img_emb"),
        &values(img.clone()).1,
        &npy(&dir, "img_emb").unwrap().1,
    );
    let cap = model.encode_captions(inp.ids.clone(), &inp.lengths);
    assert_close(
        &format!("{name} cap_emb"),
        &values(cap.clone()).1,
        &npy(&dir, "cap_emb").unwrap().1,
    );

    let [n_img, regions, _] = img.dims();
    let n_cap = inp.lengths.len();
    let mut trace = Trace::default();
    let pairs = grid_pairs(cfg.direction, &img, &cap, &inp.lengths, 0..n_img, 0..n_cap);
    let scores = model.sim_enc.forward(&cfg, &pairs, None, Some(&mut trace));
    // Blocks are group-major: image-major in t2i, caption-major in i2t.
    let pair = move |i: usize, j: usize| match cfg.direction {
        Direction::T2i => i * n_cap + j,
        Direction::I2t => j * n_img + i,
    };
    let scores = match cfg.direction {
        Direction::T2i => scores,
        Direction::I2t => scores
            .reshape([n_cap, n_img])
            .transpose()
            .reshape([n_img * n_cap]),
    };
    let lengths = inp.lengths.clone();
    let valid_q = move |j: usize| match cfg.direction {
        Direction::T2i => lengths[j],
        Direction::I2t => regions,
    };
    for (k, u) in trace.alignments.iter().enumerate() {
        let reference = npy(&dir, &format!("U{k}"))
            .unwrap_or_else(|| panic!("{name}: U{k} not in the reference"));
        assert_pairs(
            &format!("{name} U{k}"),
            values(u.clone()),
            reference,
            &valid_q,
            &pair,
        );
    }
    assert_eq!(
        trace.alignments.len() > 1,
        npy(&dir, "U1").is_some(),
        "{name}: number of passes"
    );
    for (k, (m, lam)) in trace.factors.iter().enumerate().take(1) {
        assert_pairs(
            &format!("{name} m{}", k + 1),
            values(m.clone()),
            npy(&dir, "m1").unwrap(),
            &valid_q,
            &pair,
        );
        let (mut shape, data) = npy(&dir, "lam1").unwrap();
        shape.push(1);
        assert_pairs(
            &format!("{name} lam{}", k + 1),
            values(lam.clone()),
            (shape, data),
            &valid_q,
            &pair,
        );
    }
    assert_eq!(
        trace.factors.is_empty(),
        npy(&dir, "m1").is_none(),
        "{name}: RCR steps"
    );
    for (k, g) in trace.holistic.iter().enumerate() {
        let (es, e) = npy(&dir, &format!("g{}", k + 1)).unwrap();
        let (n, s) = (es[0], es[2]);
        let got = values(g.clone()).1;
        // Reference [n_cap, n_img, S] vs traced pairs.
        let reordered: Vec<f32> = (0..n)
            .flat_map(|j| (0..n_img).flat_map(move |i| (0..s).map(move |c| (j, i, c))))
            .map(|(j, i, c)| got[pair(i, j) * s + c])
            .collect();
        assert_close(&format!("{name} g{}", k + 1), &reordered, &e);
    }
    let sims = npy(&dir, "sims").unwrap().1;
    assert_close(&format!("{name} scores"), &values(scores).1, &sims);
    for chunk in [1, 2, 7, n_img * n_cap] {
        let grid = model.similarity(img.clone(), cap.clone(), &inp.lengths, chunk);
        assert_eq!(grid.dims(), [n_img, n_cap]);
        assert_close(
            &format!("{name} similarity, chunks of {chunk}"),
            &values(grid).1,
            &sims,
        );
    }
}

#[test]
fn t2i_configurations_match_the_reference() {
    for name in &CONFIGS[..4] {
        check_config(name);
    }
}

#[test]
fn i2t_configurations_match_the_reference() {
    for name in &CONFIGS[4..] {
        check_config(name);
    }
}
