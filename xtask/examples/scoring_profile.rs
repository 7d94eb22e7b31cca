//! Where one block of pair scoring spends its time, piece by piece, on the CPU backend: the block
//! `cargo xtask bench` scores per thread (8 images × 64 captions at the paper's sizes), then each
//! attention pass, alignment pass, RCR and RAR of it alone, and the two largest products.
//!
//!     cargo run --release -p xtask --example scoring_profile [-- experiments/f30k_i2t_rcar.json]
//!
//! Allocates as `xtask` does (mimalloc, freed memory kept): with glibc's malloc every large
//! temporary faults its pages in afresh and the element-wise rows come out several times slower.

use burn::tensor::{Device, Distribution, Tensor};
use rcar_backbones::attention::{attention_weights, cross_attention};
use rcar_backbones::pairs::grid_pairs;
use rcar_regulators::AttentionFactors;
use rcar_train::TrainConfig;
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The median of 7 timed calls after one warm-up, in milliseconds.
fn time(label: &str, mut f: impl FnMut()) {
    f();
    let mut ms: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!("{label:<44} {:>7.1} ms", ms[3]);
}

/// Reads a value back, so that the whole computation has run.
fn touch<const D: usize>(t: Tensor<D>) {
    let _ = t.sum().into_data();
}

fn main() {
    // SAFETY: sets mimalloc's purge delay (option 15) to "never", as `xtask` does at start-up.
    unsafe { libmimalloc_sys::mi_option_set(15, -1) };
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "experiments/f30k_t2i_rcar.json".into());
    let cfg = TrainConfig::load(std::path::Path::new(&path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .model;
    let device = Device::flex();
    let model = cfg.init(&device);
    let (n_img, n_cap, e) = (8, 64, cfg.embed_size);
    let random =
        |dims: [usize; 3]| Tensor::<3>::random(dims, Distribution::Normal(0.0, 1.0), &device);
    let (images, captions) = (random([n_img, 36, e]), random([n_cap, 12, e]));
    let lengths = vec![12; n_cap];
    let pairs = grid_pairs(
        cfg.direction,
        &images,
        &captions,
        &lengths,
        0..n_img,
        0..n_cap,
    );
    let sim = &model.sim_enc;
    let plain = || AttentionFactors::initial(cfg.smooth());
    println!("{path}: one block of {} pairs", n_img * n_cap);
    time("whole block", || {
        touch(sim.forward(&cfg, &pairs, None, None))
    });
    time("attention weights, pass 0", || {
        touch(attention_weights(&pairs, &plain()))
    });
    time("cross attention, pass 0", || {
        touch(cross_attention(&pairs, &plain()))
    });
    time("alignment vectors, pass 0 (with the above)", || {
        touch(sim.alignments[0].forward(&pairs, &plain()))
    });
    let u = sim.alignments[0].forward(&pairs, &plain());
    if let Some(rcr) = sim.rcrs.first() {
        time("RCR", || {
            touch(rcr.forward(u.clone(), plain()).channel.unwrap())
        });
        time("  its channel head's first layer and tanh", || {
            touch(rcr.matrix.first.forward(u.clone()))
        });
        let factors = rcr.forward(u.clone(), plain());
        if let Some(second) = sim.alignments.get(1) {
            time("attention weights, pass 1 (RCR's factors)", || {
                touch(attention_weights(&pairs, &factors))
            });
            time("cross attention, pass 1", || {
                touch(cross_attention(&pairs, &factors))
            });
            time("alignment vectors, pass 1 (with the above)", || {
                touch(second.forward(&pairs, &factors))
            });
        }
    }
    if let Some(rar) = sim.rars.first() {
        let [p, _, s] = u.dims();
        let seed = u.clone().mean_dim(1).reshape([p, s]);
        time("RAR", || {
            touch(rar.forward(u.clone(), seed.clone(), None, None))
        });
    }
    let [p, q, s] = u.dims();
    let rows = Tensor::<2>::random([p * q, e], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<2>::random([e, s], Distribution::Normal(0.0, 1.0), &device);
    time(&format!("product [{}, {e}]·[{e}, {s}]", p * q), || {
        touch(rows.clone().matmul(w.clone()))
    });
    let hidden = Tensor::<2>::random([p * q, 2 * s], Distribution::Normal(0.0, 1.0), &device);
    let w2 = Tensor::<2>::random([2 * s, e], Distribution::Normal(0.0, 1.0), &device);
    time(
        &format!("product [{}, {}]·[{}, {e}]", p * q, 2 * s, 2 * s),
        || touch(hidden.clone().matmul(w2.clone())),
    );
    time(
        &format!("one element-wise pass over [{}, {e}]", p * q),
        || touch(rows.clone() * 1.0),
    );
}
