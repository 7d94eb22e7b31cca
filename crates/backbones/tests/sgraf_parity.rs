//! SGRAF's SAF and SGR hosts against `crates/backbones/reference/make_sgraf.py` (a PyTorch
//! restatement of SGRAF's model, run by hand), in eval mode: the released-format checkpoints (torch's
//! legacy serialization, BatchNorm statistics perturbed) load, and every intermediate — image and
//! word embeddings, global vectors, global and local alignments, SAF's node weights or each SGR
//! step's nodes — and the score matrix match to 1e-5. Padded words' alignments and nodes are never
//! read, so only real ones are compared.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rcar_backbones::checkpoint::sgraf::load_sgraf;
use rcar_backbones::sgraf::SgrafTrace;
use rcar_backbones::Host;
use rcar_data::npy::read_f32;
use std::path::{Path, PathBuf};

const TOLERANCE: f32 = 1e-5;

fn dir(host: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sgraf")
        .join(host)
}

fn values<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    (
        t.dims().to_vec(),
        t.into_data().try_to_vec::<f32>().unwrap(),
    )
}

/// `got` against fixture `name`, comparing the flat positions where `keep` holds.
fn check(
    host: &str,
    name: &str,
    (shape, got): (Vec<usize>, Vec<f32>),
    keep: impl Fn(usize) -> bool,
) {
    let (want_shape, want) = read_f32(&dir(host).join(format!("{name}.npy"))).unwrap();
    assert_eq!(shape, want_shape, "{host} {name}: shape");
    let worst = (0..got.len())
        .filter(|&i| keep(i))
        .map(|i| (got[i] - want[i]).abs())
        .fold(0f32, f32::max);
    assert!(worst <= TOLERANCE, "{host} {name}: max |Δ| {worst}");
}

/// Pair-major `[images·captions, rest…]` as the fixture's caption-major `[captions, images, rest…]`.
fn caption_major<const D: usize, const D1: usize>(t: Tensor<D>, images: usize) -> Tensor<D1> {
    let dims = t.dims();
    let mut shape = [0; D1];
    shape[0] = images;
    shape[1] = dims[0] / images;
    shape[2..].copy_from_slice(&dims[1..]);
    t.reshape(shape).swap_dims(0, 1)
}

fn parity(host: &str, expected: Host) {
    let device = Device::flex();
    let (model, info) = load_sgraf(&dir(host).join("model_best.pth.tar"), &device).unwrap();
    assert_eq!(model.config.host, expected);
    assert_eq!((info.epoch, info.eiters), (Some(12), Some(27000)));
    let inputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir(host).join("inputs.json")).unwrap())
            .unwrap();
    let rows: Vec<Vec<i64>> = serde_json::from_value(inputs["ids"].clone()).unwrap();
    let lengths: Vec<usize> = serde_json::from_value(inputs["lengths"].clone()).unwrap();
    let (c, t) = (rows.len(), rows[0].len());
    let ids: Tensor<2, Int> = Tensor::from_data(TensorData::new(rows.concat(), [c, t]), &device);
    let (shape, data) = read_f32(&dir(host).join("images.npy")).unwrap();
    let n = shape[0];
    let images = model.encode_images(Tensor::from_data(TensorData::new(data, shape), &device));
    let captions = model.encode_captions(ids, &lengths);
    check(host, "img_emb", values(images.clone()), |_| true);
    check(host, "cap_emb", values(captions.clone()), |_| true);
    check(
        host,
        "img_glo",
        values(model.sim_enc.image_globals(images.clone())),
        |_| true,
    );
    let cap_glo = model.sim_enc.caption_globals(captions.clone(), &lengths);
    check(host, "cap_glo", values(cap_glo), |_| true);

    let mut trace = SgrafTrace::default();
    let sims = model.similarity(images, captions, &lengths, None, Some(&mut trace));
    check(host, "sims", values(sims), |_| true);
    let s = trace.global.as_ref().unwrap().dims()[1];
    check(
        host,
        "sim_glo",
        values(caption_major::<2, 3>(trace.global.unwrap(), n)),
        |_| true,
    );
    // [captions, images, T, S]: word w of caption k is real below its length.
    let real_word = |i: usize| (i / s) % t < lengths[i / (n * t * s)];
    let local = caption_major::<3, 4>(trace.local.unwrap(), n);
    check(host, "sim_loc", values(local), real_word);
    // [captions, images, T + 1, S]: node 0 is the global one, node w + 1 word w.
    let real_node = |i: usize| (i / s) % (t + 1) <= lengths[i / (n * (t + 1) * s)];
    match expected {
        Host::Saf => {
            let weights = caption_major::<2, 3>(trace.saf_weights.unwrap(), n);
            check(host, "saf_weights", values(weights), |_| true);
        }
        _ => {
            assert_eq!(trace.sgr_nodes.len(), 3);
            for (k, nodes) in trace.sgr_nodes.into_iter().enumerate() {
                let nodes = caption_major::<3, 4>(nodes, n);
                check(host, &format!("nodes{}", k + 1), values(nodes), real_node);
            }
        }
    }
}

#[test]
fn saf_matches_sgrafs_code() {
    parity("saf", Host::Saf);
}

#[test]
fn sgr_matches_sgrafs_code() {
    parity("sgr", Host::Sgr);
}
