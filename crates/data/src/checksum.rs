//! Directories that verify themselves: `checksums.json` records the size and CRC-32 of every file
//! written into a checkpoint, so a copy cut short or a disk error is found when the checkpoint is
//! read, with the file and what is wrong, instead of as garbage weights or a parse error.

use crate::atomic::write_atomic;
use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const CHECKSUM_FILE: &str = "checksums.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    bytes: u64,
    crc32: u32,
}

fn entry(path: &Path) -> Result<Entry> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    Ok(Entry {
        bytes: bytes.len() as u64,
        crc32: crc32fast::hash(&bytes),
    })
}

/// Records every visible file of `dir` (not sub-directories) in its `checksums.json`.
pub fn seal(dir: &Path) -> Result<()> {
    let mut files = BTreeMap::new();
    for item in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = item.map_err(|e| DataError::io(dir, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_file() && !name.starts_with('.') && name != CHECKSUM_FILE {
            files.insert(name.to_string(), entry(&path)?);
        }
    }
    let text = serde_json::to_string_pretty(&files).expect("serialisable");
    write_atomic(&dir.join(CHECKSUM_FILE), text.as_bytes())
}

/// Checks `dir` against its `checksums.json`: every recorded file present, of its size and
/// checksum. `Ok(false)`: the directory has none (written before checksums existed).
pub fn verify(dir: &Path) -> Result<bool> {
    let record = dir.join(CHECKSUM_FILE);
    if !record.exists() {
        return Ok(false);
    }
    let text = std::fs::read_to_string(&record).map_err(|e| DataError::io(&record, e))?;
    let files: BTreeMap<String, Entry> = serde_json::from_str(&text)
        .map_err(|e| DataError::invalid(&record, format!("not a checksum record: {e}")))?;
    for (name, want) in &files {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(DataError::invalid(
                &path,
                format!("missing: {CHECKSUM_FILE} records it (an incomplete checkpoint)"),
            ));
        }
        let got = entry(&path)?;
        let problem = if got.bytes != want.bytes {
            format!(
                "{} bytes where {} were written (cut short or overwritten)",
                got.bytes, want.bytes
            )
        } else if got.crc32 != want.crc32 {
            format!(
                "damaged: CRC-32 {:08x} where {:08x} was written",
                got.crc32, want.crc32
            )
        } else {
            continue;
        };
        return Err(DataError::invalid(&path, problem));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_directory_verifies_and_names_a_cut_changed_or_missing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert!(!verify(dir).unwrap(), "unsealed");
        std::fs::write(dir.join("a.bin"), [1u8, 2, 3, 4]).unwrap();
        std::fs::write(dir.join("b.json"), "{}").unwrap();
        seal(dir).unwrap();
        assert!(verify(dir).unwrap());
        std::fs::write(dir.join("a.bin"), [1u8, 2, 3]).unwrap();
        let err = verify(dir).unwrap_err().to_string();
        assert!(
            err.contains("a.bin") && err.contains("3 bytes where 4"),
            "{err}"
        );
        std::fs::write(dir.join("a.bin"), [1u8, 2, 3, 5]).unwrap();
        let err = verify(dir).unwrap_err().to_string();
        assert!(err.contains("a.bin") && err.contains("damaged"), "{err}");
        std::fs::write(dir.join("a.bin"), [1u8, 2, 3, 4]).unwrap();
        std::fs::remove_file(dir.join("b.json")).unwrap();
        let err = verify(dir).unwrap_err().to_string();
        assert!(err.contains("b.json") && err.contains("missing"), "{err}");
        std::fs::write(dir.join(CHECKSUM_FILE), "[").unwrap();
        let err = verify(dir).unwrap_err().to_string();
        assert!(err.contains(CHECKSUM_FILE), "{err}");
    }
}
