//! Helpers shared by the data crate's integration tests.
#![allow(dead_code)]

use rcar_data::npy::write_f32;
use std::path::{Path, PathBuf};

/// The project's shared folder (official vocabularies): `$RCAR_SHARED`, else `../shared` beside the
/// repository.
pub fn shared_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RCAR_SHARED") {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = repo.join("../shared");
    assert!(
        dir.join("data/vocab").is_dir(),
        "official vocabularies not found at {}; set RCAR_SHARED",
        dir.display()
    );
    dir
}

/// Writes a tiny split: `rows` feature rows whose every value encodes the row index, and captions.
pub fn write_split(dir: &Path, name: &str, rows: usize, captions: &[&str]) {
    let (regions, dim) = (3, 4);
    let data: Vec<f32> = (0..rows * regions * dim)
        .map(|i| (i / (regions * dim)) as f32)
        .collect();
    write_f32(
        &dir.join(format!("{name}_ims.npy")),
        &[rows, regions, dim],
        &data,
    )
    .unwrap();
    let mut text = captions.join("\n");
    text.push('\n');
    std::fs::write(dir.join(format!("{name}_caps.txt")), text).unwrap();
}

pub const WORDS: [&str; 8] = ["a", "dog", "cat", "runs", "sits", "red", "blue", "."];
