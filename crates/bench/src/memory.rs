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
