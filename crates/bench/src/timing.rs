//! Warm-up, then the median of several runs; the device is synchronised before the clock is read,
//! since GPU backends queue work asynchronously.

use burn::tensor::Device;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Repeats {
    pub warmup: usize,
    pub runs: usize,
}

/// Median seconds of `f` over `repeats.runs` timed calls after `repeats.warmup` untimed ones, the
/// device synchronised after each call.
pub fn median_seconds(device: &Device, repeats: Repeats, f: impl FnMut()) -> f64 {
    median_settled(repeats, f, || {
        // A backend that cannot sync has failed already; the next operation reports it.
        let _ = device.sync();
    })
}

/// [`median_seconds`] of host work, which has nothing to synchronise.
pub fn median_host_seconds(repeats: Repeats, f: impl FnMut()) -> f64 {
    median_settled(repeats, f, || {})
}

fn median_settled(repeats: Repeats, mut f: impl FnMut(), mut settle: impl FnMut()) -> f64 {
    for _ in 0..repeats.warmup {
        f();
        settle();
    }
    let mut times: Vec<f64> = (0..repeats.runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            settle();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
