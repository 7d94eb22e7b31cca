//! Peak memory of one measured call. On CPU backends the process's peak resident set (Linux
//! `VmHWM`, reset through `/proc/self/clear_refs` before the call); on GPU backends what the
//! device's allocator holds after it (its pools keep the pages the call needed).

use burn::tensor::Device;

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Peak {
    pub bytes: u64,
    /// `"host peak RSS"` or `"device pool reserved"`.
    pub kind: &'static str,
}

/// Runs `f` once and reports its peak, or `None` where neither source is available.
pub fn peak_of(device: &Device, f: impl FnOnce()) -> Option<Peak> {
    let host = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    f();
    let _ = device.sync();
    if let Some(usage) = device.memory_pool_usage() {
        return Some(Peak {
            bytes: usage.bytes_reserved,
            kind: "device pool reserved",
        });
    }
    if !host {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(Peak {
        bytes: kb * 1024,
        kind: "host peak RSS",
    })
}

/// What this process could grow to on the host: its resident set plus the memory the kernel calls
/// available (`/proc/meminfo` `MemAvailable`); `None` off Linux.
pub fn host_ceiling() -> Option<u64> {
    let kb = |text: &str, key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some((kb(&meminfo, "MemAvailable:")? + kb(&status, "VmRSS:")?) * 1024)
}

/// A training step's peak at batch `b`, extrapolated from the peaks at two smaller batches: past
/// the model and its optimiser state, a step's memory grows with its pairs, b².
pub fn extrapolate(small: (usize, u64), large: (usize, u64), b: usize) -> u64 {
    let pairs = |n: usize| (n * n) as f64;
    let slope = large.1.saturating_sub(small.1) as f64 / (pairs(large.0) - pairs(small.0));
    (large.1 as f64 + slope * (pairs(b) - pairs(large.0))).max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extrapolation_is_linear_in_pairs() {
        // 100 + 2 per pair: 132 at batch 4, 228 at batch 8, 32,868 at batch 128.
        assert_eq!(extrapolate((4, 132), (8, 228), 128), 100 + 2 * 128 * 128);
        // A peak that did not grow gives a flat estimate, never a negative one.
        assert_eq!(extrapolate((4, 500), (8, 400), 64), 400);
    }
}
