//! Where one block of pair scoring spends its time, piece by piece (`cargo xtask bench --profile`):
//! a block as the evaluation scores it, then each attention pass, alignment pass, RCR and RAR of it
//! alone, and the two largest products with one element-wise pass for scale. The scoring rows say
//! how fast; this says where the time goes.

use crate::timing::median_seconds;
use crate::workload::{captions, images, scoring_chunk, touch};
use crate::BenchConfig;
use burn::tensor::{Device, Distribution, Tensor};
use rcar_backbones::attention::{attention_weights, cross_attention};
use rcar_backbones::pairs::{grid_pairs, PairBatch};
use rcar_backbones::similarity::block_ranges;
use rcar_backbones::{Host, Rcar};
use rcar_eval::encode::{as_one_of, CAPTIONS_PER_BLOCK};
use rcar_eval::{default_workers, on_cpu};
use rcar_regulators::AttentionFactors;

/// One timed piece: what it is, and its median seconds.
pub struct Piece {
    pub name: String,
    pub seconds: f64,
}

/// The pieces of one block of `cfg.model` (SCAN's host) on `device`, the first of the grid's
/// blocks as the evaluation scores it: sized as `eval` sizes blocks there, and with several scoring
/// threads, timed on a thread of its own as each of them runs (its products on its core).
/// SAF's and SGR's hosts have none of these pieces: for them it says so.
pub fn scoring_block(cfg: &BenchConfig, device: &Device) -> Result<Vec<Piece>, String> {
    let mc = &cfg.model;
    if mc.host != Host::Scan {
        return Err(format!(
            "--profile times the SCAN host's pieces (attention, alignment, RCR, RAR), and this \
             model's host is \"{}\": its scoring is timed by the bench's rows (no --profile)",
            format!("{:?}", mc.host).to_lowercase()
        ));
    }
    let workers = default_workers(device);
    let chunk = scoring_chunk(cfg, mc, on_cpu(device), workers);
    let (img, cap) = block_ranges(
        mc.direction,
        cfg.grid.0,
        cfg.grid.1,
        chunk,
        CAPTIONS_PER_BLOCK,
    )
    .swap_remove(0);
    as_one_of(workers, || {
        let model = mc.init(device);
        let caps = captions(cfg, cap.len(), 2);
        let pairs = grid_pairs(
            mc.direction,
            &model.encode_images(images(cfg, img.len(), device)),
            &model.encode_tokens(&caps, device),
            &caps.lengths,
            0..img.len(),
            0..cap.len(),
        );
        Ok(pieces(cfg, &model, &pairs, workers, device))
    })
}

/// [`scoring_block`]'s pieces of the block `pairs`.
fn pieces(
    cfg: &BenchConfig,
    model: &Rcar,
    pairs: &PairBatch,
    workers: usize,
    device: &Device,
) -> Vec<Piece> {
    let mc = &cfg.model;
    let sim = &model.sim_enc;
    let plain = || AttentionFactors::initial(mc.smooth());
    let mut pieces = Vec::new();
    let mut time = |name: String, f: &mut dyn FnMut()| {
        let seconds = median_seconds(device, cfg.repeats, f);
        pieces.push(Piece { name, seconds });
    };
    let (g, n) = pairs.shape();
    time(
        format!("whole block, {} pairs, one of {workers} thread(s)", g * n),
        &mut || touch(sim.forward(mc, pairs, None, None)),
    );
    time("attention weights, pass 0".into(), &mut || {
        touch(attention_weights(pairs, &plain()))
    });
    time(
        "cross attention, pass 0 (weights included)".into(),
        &mut || touch(cross_attention(pairs, &plain())),
    );
    // The baseline (`only_rcr` 0) has no alignment module: its block is attention and cosines.
    if let Some(first) = sim.alignments.first() {
        time(
            "alignment vectors, pass 0 (cross attention included)".into(),
            &mut || touch(first.forward(pairs, &plain())),
        );
        let u = first.forward(pairs, &plain());
        if let Some(rcr) = sim.rcrs.first() {
            time("RCR".into(), &mut || {
                touch(rcr.forward(u.clone(), plain()).channel.expect("RCR sets m"))
            });
            time(
                "RCR's channel head, first layer and tanh".into(),
                &mut || touch(rcr.matrix.first.forward(u.clone())),
            );
            let factors = rcr.forward(u.clone(), plain());
            if let Some(second) = sim.alignments.get(1) {
                time(
                    "attention weights, pass 1 (RCR's factors)".into(),
                    &mut || touch(attention_weights(pairs, &factors)),
                );
                time("cross attention, pass 1".into(), &mut || {
                    touch(cross_attention(pairs, &factors))
                });
                time("alignment vectors, pass 1".into(), &mut || {
                    touch(second.forward(pairs, &factors))
                });
            }
        }
        if let Some(rar) = sim.rars.first() {
            let [p, _, s] = u.dims();
            let seed = u.clone().mean_dim(1).reshape([p, s]);
            time("RAR (one)".into(), &mut || {
                touch(rar.forward(u.clone(), seed.clone(), None, None))
            });
        }
    }
    // The products every pass of the regulated modes holds, at this block's query rows.
    let (p, q, s) = (g * n, pairs.query.dims()[1], mc.sim_dim);
    let e = mc.embed_size;
    let random =
        |dims: [usize; 2]| Tensor::<2>::random(dims, Distribution::Normal(0.0, 1.0), device);
    let (rows, projection) = (random([p * q, e]), random([e, s]));
    time(format!("product [{}, {e}]·[{e}, {s}]", p * q), &mut || {
        touch(rows.clone().matmul(projection.clone()))
    });
    let (hidden, head) = (random([p * q, 2 * s]), random([2 * s, e]));
    time(
        format!("product [{}, {}]·[{}, {e}]", p * q, 2 * s, 2 * s),
        &mut || touch(hidden.clone().matmul(head.clone())),
    );
    time(
        format!("one element-wise pass over [{}, {e}]", p * q),
        &mut || touch(rows.clone() * 1.0),
    );
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::Repeats;
    use rcar_train::TrainConfig;
    use std::path::Path;

    fn demo_bench(name: &str) -> BenchConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../experiments")
            .join(name);
        BenchConfig {
            model: TrainConfig::load(&path).unwrap().model,
            regions: 36,
            words: 5,
            encode_batch: 2,
            grid: (2, 3),
            train_batches: vec![],
            repeats: Repeats { warmup: 0, runs: 1 },
            seed: 0,
        }
    }

    #[test]
    fn a_coop_rcar_block_is_timed_piece_by_piece() {
        let cfg = demo_bench("demo.json");
        let device = Device::flex();
        let pieces = scoring_block(&cfg, &device).unwrap();
        let names: Vec<&str> = pieces.iter().map(|p| p.name.as_str()).collect();
        // The evaluation's first block of the 2 × 3 grid: 1 image × 3 captions with two scoring
        // threads (each at most half the grid), the whole grid with one.
        let workers = default_workers(&device);
        let block = 6usize.div_ceil(workers);
        assert_eq!(
            names[0],
            format!("whole block, {block} pairs, one of {workers} thread(s)")
        );
        for piece in ["RCR", "alignment vectors, pass 1", "RAR (one)"] {
            assert!(names.contains(&piece), "{piece} missing from {names:?}");
        }
        // q = 5 words per pair, E = 128, S = 32 (the demo's sizes).
        let rows = block * 5;
        assert!(names.contains(&format!("product [{rows}, 64]·[64, 128]").as_str()));
        assert!(pieces
            .iter()
            .all(|p| p.seconds.is_finite() && p.seconds > 0.0));
    }

    #[test]
    fn the_baseline_has_its_attention_timed_and_sgraf_hosts_are_refused() {
        let device = Device::flex();
        let pieces = scoring_block(&demo_bench("demo_base.json"), &device).unwrap();
        let names: Vec<&str> = pieces.iter().map(|p| p.name.as_str()).collect();
        assert!(names.contains(&"cross attention, pass 0 (weights included)"));
        for absent in [
            "alignment vectors, pass 0 (cross attention included)",
            "RCR",
        ] {
            assert!(!names.contains(&absent), "{absent} in {names:?}");
        }
        let refused = scoring_block(&demo_bench("demo_saf.json"), &device)
            .err()
            .expect("SAF's host has no SCAN pieces");
        assert!(refused.contains(r#"host is "saf""#), "{refused}");
    }
}
