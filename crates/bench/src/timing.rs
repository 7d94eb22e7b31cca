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

/// Another implementation's time for one call of the workload named (`Some(seconds)`), or `None`
/// where it has no such workload: `bench --compare-torch`'s PyTorch.
pub type Rival<'a> = dyn FnMut(&str) -> Option<f64> + 'a;

/// [`median_seconds`], with `rival`'s call of the workload `name` after each timed call of ours,
/// so that the two sides alternate call by call and a change in the machine's speed (this one's
/// moved by 2× within minutes, and by 20% between seconds) reaches both; our median, and the
/// rival's where it has the workload.
pub fn median_beside(
    device: &Device,
    repeats: Repeats,
    name: &str,
    rival: &mut Rival,
    f: impl FnMut(),
) -> (f64, Option<f64>) {
    let mut theirs = Vec::new();
    let mut offered = true;
    let ours = median_alternating(
        repeats,
        f,
        || {
            let _ = device.sync();
        },
        || {
            if offered {
                match rival(name) {
                    Some(seconds) => theirs.push(seconds),
                    None => offered = false,
                }
            }
        },
    );
    // A rival that stopped answering part-way has no median worth comparing.
    let theirs = (offered && !theirs.is_empty()).then(|| median(theirs));
    (ours, theirs)
}

fn median_settled(repeats: Repeats, f: impl FnMut(), settle: impl FnMut()) -> f64 {
    median_alternating(repeats, f, settle, || {})
}

/// The median of `f`'s timed calls (each settled), `between` running untimed after each.
fn median_alternating(
    repeats: Repeats,
    mut f: impl FnMut(),
    mut settle: impl FnMut(),
    mut between: impl FnMut(),
) -> f64 {
    for _ in 0..repeats.warmup {
        f();
        settle();
    }
    let times: Vec<f64> = (0..repeats.runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            settle();
            let seconds = start.elapsed().as_secs_f64();
            between();
            seconds
        })
        .collect();
    median(times)
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rival_runs_after_each_timed_call_and_its_median_is_kept() {
        let device = Device::flex();
        let repeats = Repeats { warmup: 2, runs: 3 };
        let (ours, mut asked) = (std::cell::Cell::new(0), Vec::new());
        let mut answers = [0.5, 0.1, 0.3].into_iter();
        let mut rival = |name: &str| {
            asked.push((name.to_string(), ours.get()));
            answers.next()
        };
        let (_, theirs) = median_beside(&device, repeats, "row", &mut rival, || {
            ours.set(ours.get() + 1)
        });
        assert_eq!(theirs, Some(0.3));
        // Ours: 2 warm-up calls, then each timed call is followed by one of the rival's.
        assert_eq!(
            asked,
            [("row".into(), 3), ("row".into(), 4), ("row".into(), 5)]
        );
    }

    #[test]
    fn a_rival_without_the_workload_is_asked_once() {
        let device = Device::flex();
        let repeats = Repeats { warmup: 0, runs: 3 };
        let mut asked = 0;
        let mut rival = |_: &str| {
            asked += 1;
            None
        };
        let (_, theirs) = median_beside(&device, repeats, "row", &mut rival, || {});
        assert_eq!((theirs, asked), (None, 1));
    }
}
