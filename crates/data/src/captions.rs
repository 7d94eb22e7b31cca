//! `{split}_caps.txt` (one caption per line, five consecutive lines per image) and `{split}_ids.txt`.

use crate::error::{DataError, Result};
use std::path::Path;

/// Reads a caption file: UTF-8, one caption per line, each trimmed as the official loader does.
/// An empty line is an error: it would silently shift every later caption to the wrong image.
pub fn read_captions(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        DataError::invalid(path, format!("line {line} is not valid UTF-8"))
    })?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return Err(DataError::invalid(path, "the caption file is empty"));
    }
    text.split('\n')
        .enumerate()
        .map(|(i, line)| {
            let caption = line.trim();
            if caption.is_empty() {
                Err(DataError::invalid(
                    path,
                    format!("line {} is an empty caption", i + 1),
                ))
            } else {
                Ok(caption.to_string())
            }
        })
        .collect()
}

/// Reads an ids file: one non-negative integer per line (COCO image ids or Flickr30K `imgid`s).
pub fn read_ids(path: &Path) -> Result<Vec<u64>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            l.trim().parse().map_err(|_| {
                DataError::invalid(path, format!("line {} is not an image id: {l:?}", i + 1))
            })
        })
        .collect()
}
