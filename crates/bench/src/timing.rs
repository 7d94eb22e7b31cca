//! Warm-up, then the median of several runs; the device is synchronised before the clock is read,
//! since GPU backends queue work asynchronously.

use burn::tensor::Device;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Repeats {
    pub warmup: usize,
    pub runs: usize,
}

/// Median seconds of `f` over `repeats.runs` timed calls after `repeats.warmup` untimed ones.
pub fn median_seconds(device: &Device, repeats: Repeats, mut f: impl FnMut()) -> f64 {
    for _ in 0..repeats.warmup {
        f();
        sync(device);
    }
    let mut times: Vec<f64> = (0..repeats.runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            sync(device);
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn sync(device: &Device) {
    // A backend that cannot sync has failed already; the next operation reports it.
    let _ = device.sync();
}
