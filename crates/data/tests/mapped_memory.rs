//! Reading random batches from a multi-GB mapped file keeps the resident set far below the file size.
//! Alone in its own test binary so no other test's allocations disturb the measurement.

use rand::Rng;
use rcar_data::batch::derive_rng;
use rcar_data::npy::{header_bytes, Features};
use std::io::Write;

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
#[cfg(target_os = "linux")]
fn random_batches_from_a_sparse_3gb_file() {
    let (rows, regions, dim) = (10_000usize, 36, 2048);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train_ims.npy");
    let header = header_bytes(&[rows, regions, dim]);
    let size = header.len() as u64 + (rows * regions * dim * 4) as u64;
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&header).unwrap();
    file.set_len(size).unwrap(); // sparse: no disk space used
    drop(file);

    let features = Features::open(&path).unwrap();
    let before = resident_bytes();
    let mut rng = derive_rng(0, &[]);
    let mut batch = Vec::new();
    let mut read = 0u64;
    for _ in 0..32 {
        batch.clear();
        let picks: Vec<usize> = (0..128).map(|_| rng.random_range(0..rows)).collect();
        features.gather(&picks, &mut batch).unwrap();
        read += (batch.len() * 4) as u64;
    }
    let grown = resident_bytes().saturating_sub(before);
    let batch_bytes = (128 * regions * dim * 4) as u64;
    eprintln!("file {size} B, read {read} B, resident grew {grown} B");
    assert!(read > size / 3);
    // One batch buffer (38 MB) plus slack; without releasing pages this grows by ~`read` (1.2 GB).
    assert!(
        grown < batch_bytes + 64 * 1024 * 1024,
        "resident grew by {grown} bytes"
    );
}
