//! Peak memory of one measured call. On CPU backends the peak of live heap bytes where the binary
//! installs [`CountingAlloc`] (the `cargo xtask` runner does), else the process's peak resident set
//! (Linux `VmHWM`, reset through `/proc/self/clear_refs` before the call); on GPU backends what the
//! device's allocator holds after it (its pools keep the pages the call needed).
//!
//! The resident set alone misleads: memory freed by an earlier, larger call stays resident, so a
//! small call after it seems to need nothing. Live heap bytes do not have that memory.

use burn::tensor::Device;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Peak {
    pub bytes: u64,
    /// `"peak heap"`, `"host peak RSS"`, `"device pool reserved"` or `"estimate"`.
    pub kind: &'static str,
}

static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

/// An allocator (`A`: the system's, or another such as mimalloc) counting live bytes and their
/// peak. Install it in a binary with
/// `#[global_allocator] static A: CountingAlloc<System> = CountingAlloc(System);`.
pub struct CountingAlloc<A>(pub A);

impl<A> CountingAlloc<A> {
    fn grew(size: usize) {
        let live = LIVE.fetch_add(size as u64, Ordering::Relaxed) + size as u64;
        PEAK.fetch_max(live, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the inner allocator; only counters are updated
// beside it.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        let ptr = unsafe { self.0.alloc(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { self.0.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by the inner allocator with `layout` (every allocation goes
        // through it).
        unsafe { self.0.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc` and `alloc`.
        let new = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
            Self::grew(new_size);
        }
        new
    }
}

/// Runs `f` once and reports its peak, or `None` where no source is available.
pub fn peak_of(device: &Device, f: impl FnOnce()) -> Option<Peak> {
    let host = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    f();
    let _ = device.sync();
    if let Some(usage) = device.memory_pool_usage() {
        return Some(Peak {
            bytes: usage.bytes_reserved,
            kind: "device pool reserved",
        });
    }
    if COUNTING.load(Ordering::Relaxed) {
        return Some(Peak {
            bytes: PEAK.load(Ordering::Relaxed),
            kind: "peak heap",
        });
    }
    if !host {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(Peak {
        bytes: proc_bytes(&status, "VmHWM:")?,
        kind: "host peak RSS",
    })
}

/// The bytes of a `key:   N kB` line of a `/proc` file's `text`.
fn proc_bytes(text: &str, key: &str) -> Option<u64> {
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// What this process could grow to on the host: its resident set plus the memory the kernel calls
/// available (`/proc/meminfo` `MemAvailable`); `None` off Linux.
pub fn host_ceiling() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(proc_bytes(&meminfo, "MemAvailable:")? + proc_bytes(&status, "VmRSS:")?)
}

/// How a step's memory grows with its batch `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// With the pairs, b² (a dense step).
    Pairs,
    /// With the items, b (a pair-sparse step: encoders, at most 3b pairs with a graph, and a
    /// scoring pass in blocks of bounded size).
    Items,
}

/// A training step's peak at batch `b`, extrapolated from the peaks at two smaller batches.
pub fn extrapolate(small: (usize, u64), large: (usize, u64), b: usize, growth: Growth) -> u64 {
    let size = |n: usize| match growth {
        Growth::Pairs => (n * n) as f64,
        Growth::Items => n as f64,
    };
    let slope = large.1.saturating_sub(small.1) as f64 / (size(large.0) - size(small.0));
    (large.1 as f64 + slope * (size(b) - size(large.0))).max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_lines_are_read_in_bytes() {
        let status = "Name:\txtask\nVmHWM:\t  2048 kB\nVmRSS:\t   512 kB\n";
        assert_eq!(proc_bytes(status, "VmRSS:"), Some(512 * 1024));
        assert_eq!(proc_bytes(status, "VmHWM:"), Some(2048 * 1024));
        assert_eq!(proc_bytes(status, "MemAvailable:"), None);
    }

    #[test]
    fn extrapolation_follows_the_growth() {
        // 100 + 2 per pair: 132 at batch 4, 228 at batch 8, 32,868 at batch 128.
        let (small, large) = ((4, 132), (8, 228));
        assert_eq!(
            extrapolate(small, large, 128, Growth::Pairs),
            100 + 2 * 128 * 128
        );
        // 100 + 8 per item: 132 at batch 4, 164 at batch 8, 1,124 at batch 128.
        let (small, large) = ((4, 132), (8, 164));
        assert_eq!(extrapolate(small, large, 128, Growth::Items), 100 + 8 * 128);
        // A peak that did not grow gives a flat estimate, never a negative one.
        assert_eq!(extrapolate((4, 500), (8, 400), 64, Growth::Pairs), 400);
    }
}
