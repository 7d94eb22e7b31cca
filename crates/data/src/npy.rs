//! Region features in numpy `.npy` files, memory-mapped.
//!
//! MSCOCO's `train_ims.npy` is ≈ 33 GB, so nothing here reads a whole file: [`Features`] maps it and
//! [`Features::gather`] copies just the requested rows, then tells the kernel it may drop those pages
//! from this process, which keeps the resident memory of a training run independent of the file size.

use crate::atomic::AtomicFile;
use crate::error::{DataError, Result};
use crate::finite::{describe, non_finite_rows};
use memmap2::Mmap;
use std::fs::File;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Decodes little-endian float32 values (`.npy` `<f4` data, PyTorch storages).
pub fn f32_le(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The parsed header of a `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub shape: Vec<usize>,
    /// Byte offset of the first element.
    pub data_offset: usize,
}

/// Parses the header of a `.npy` file (format versions 1.0, 2.0 and 3.0) and checks it describes a
/// little-endian float32 array in C order.
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header> {
    let bad = |msg: String| DataError::invalid(path, msg);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy file (wrong magic bytes)".into()));
    }
    let (len_bytes, prefix) = match bytes[6] {
        1 => (2, 10),
        2 | 3 => (4, 12),
        v => {
            return Err(bad(format!(
                "unsupported .npy format version {v}.{}",
                bytes[7]
            )))
        }
    };
    if bytes.len() < prefix {
        return Err(bad("truncated .npy header".into()));
    }
    let header_len = bytes[8..8 + len_bytes]
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    let data_offset = prefix + header_len;
    let text = bytes
        .get(prefix..data_offset)
        .ok_or_else(|| bad("truncated .npy header".into()))?;
    let text = std::str::from_utf8(text).map_err(|_| bad("the .npy header is not text".into()))?;

    let descr =
        dict_value(text, "descr").ok_or_else(|| bad("the .npy header has no 'descr'".into()))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    if descr != "<f4" {
        return Err(bad(format!(
            "unsupported dtype '{descr}': region features must be little-endian float32 ('<f4')"
        )));
    }
    let fortran = dict_value(text, "fortran_order")
        .ok_or_else(|| bad("the .npy header has no 'fortran_order'".into()))?;
    if fortran != "False" {
        return Err(bad(
            "the array is in Fortran order; RCAR needs C order (np.ascontiguousarray)".into(),
        ));
    }
    let shape_text =
        dict_value(text, "shape").ok_or_else(|| bad("the .npy header has no 'shape'".into()))?;
    let shape = shape_text
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| bad(format!("cannot read the shape {shape_text}")))?;
    Ok(Header { shape, data_offset })
}

/// The raw text of `key`'s value in the header's Python dict literal.
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text
        .find(&format!("'{key}'"))
        .or_else(|| text.find(&format!("\"{key}\"")))?;
    let rest = text[start + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}'])?
    };
    Some(rest[..end].trim())
}

/// A memory-mapped `(rows, regions, dim)` float32 array of region features.
#[derive(Debug)]
pub struct Features {
    path: PathBuf,
    map: Mmap,
    rows: usize,
    regions: usize,
    dim: usize,
    data_offset: usize,
}

impl Features {
    /// Maps `path` and validates its header and length; reads no feature data.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        // SAFETY: the mapping is read-only; like every reader of a mapped file we rely on the
        // dataset not being modified while it is open.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?;
        let header = parse_header(path, &map)?;
        let [rows, regions, dim] = header.shape[..] else {
            return Err(DataError::invalid(
                path,
                format!(
                    "expected a rank-3 array (images, regions, dim), the header says shape {:?}",
                    header.shape
                ),
            ));
        };
        let need = header.data_offset as u128 + rows as u128 * regions as u128 * dim as u128 * 4;
        if (map.len() as u128) < need {
            return Err(DataError::invalid(
                path,
                format!(
                    "file is truncated: the header promises {rows}x{regions}x{dim} float32 ({need} bytes \
                     with the header) but the file has {} bytes; download it again",
                    map.len()
                ),
            ));
        }
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        Ok(Self {
            path: path.to_path_buf(),
            map,
            rows,
            regions,
            dim,
            data_offset: header.data_offset,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn regions(&self) -> usize {
        self.regions
    }
    pub fn dim(&self) -> usize {
        self.dim
    }

    fn row_bytes(&self) -> usize {
        self.regions * self.dim * 4
    }

    /// Appends the features of `rows` (in that order) to `out`, `regions * dim` floats per row, and
    /// refuses rows holding NaN or ±Inf, naming them (the model would score them silently).
    pub fn gather(&self, rows: &[usize], out: &mut Vec<f32>) -> Result<()> {
        let start = out.len();
        self.gather_raw(rows, out)?;
        let row_len = self.regions * self.dim;
        let bad = non_finite_rows(&out[start..], row_len);
        if bad.is_empty() {
            return Ok(());
        }
        out.truncate(start);
        Err(DataError::invalid(
            &self.path,
            describe(
                &bad,
                row_len,
                "values",
                &format!("{} rows read", rows.len()),
                &|k| format!("row {}", rows[k]),
            ) + "; fix or drop these images",
        ))
    }

    /// [`Features::gather`] without the finiteness check, for tools that report on the values
    /// themselves (`data check`).
    pub fn gather_raw(&self, rows: &[usize], out: &mut Vec<f32>) -> Result<()> {
        out.reserve(rows.len() * self.regions * self.dim);
        if let Some(&row) = rows.iter().find(|&&r| r >= self.rows) {
            return Err(DataError::invalid(
                &self.path,
                format!("row {row} requested but the file has {} rows", self.rows),
            ));
        }
        // The mapping is advised Random (no readahead into unrelated rows); ask for the wanted rows
        // up front instead, so the disk serves whole rows in parallel rather than page by page.
        #[cfg(unix)]
        for &row in rows {
            let start = self.data_offset + row * self.row_bytes();
            let begin = start / 4096 * 4096;
            let _ = self.map.advise_range(
                memmap2::Advice::WillNeed,
                begin,
                start + self.row_bytes() - begin,
            );
        }
        for &row in rows {
            let start = self.data_offset + row * self.row_bytes();
            let bytes = &self.map[start..start + self.row_bytes()];
            out.extend(f32_le(bytes));
            self.release(start, self.row_bytes());
        }
        Ok(())
    }

    /// Drops the pages of a copied row from this process's page tables (the page cache keeps them),
    /// so reading random batches from a 33 GB file does not grow the resident set towards 33 GB.
    fn release(&self, start: usize, len: usize) {
        #[cfg(unix)]
        {
            let page = 4096;
            let begin = start / page * page;
            // SAFETY: the mapping is read-only and file-backed, and no reference into the released
            // range outlives this call: dropping its pages only makes the next access re-read them.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    begin,
                    start + len - begin,
                )
            };
        }
        #[cfg(not(unix))]
        let _ = (start, len);
    }
}

/// Reads a whole float32 `.npy` of any rank (small arrays: similarity matrices, test fixtures).
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let header = parse_header(path, &bytes)?;
    let n: usize = header.shape.iter().product();
    let data = bytes
        .get(header.data_offset..header.data_offset + 4 * n)
        .ok_or_else(|| {
            DataError::invalid(path, format!("file is truncated: shape {:?}", header.shape))
        })?;
    let values = f32_le(data).collect();
    Ok((header.shape, values))
}

/// Writes a `(rows, regions, dim)` float32 `.npy` file (format 1.0) row by row, atomically.
pub struct NpyWriter {
    file: AtomicFile,
    path: PathBuf,
    row_len: usize,
    rows_left: usize,
}

impl NpyWriter {
    pub fn create(path: &Path, rows: usize, regions: usize, dim: usize) -> Result<Self> {
        let mut file = AtomicFile::create(path)?;
        file.write_all(&header_bytes(&[rows, regions, dim]))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            row_len: regions * dim,
            rows_left: rows,
        })
    }

    /// Appends one row of `regions * dim` values.
    pub fn write_row(&mut self, row: &[f32]) -> Result<()> {
        if row.len() != self.row_len || self.rows_left == 0 {
            return Err(DataError::invalid(
                &self.path,
                format!(
                    "row of {} values written, {} expected",
                    row.len(),
                    self.row_len
                ),
            ));
        }
        self.rows_left -= 1;
        let bytes: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.file.write_all(&bytes)
    }

    pub fn finish(self) -> Result<()> {
        if self.rows_left != 0 {
            return Err(DataError::invalid(
                &self.path,
                format!("{} rows were never written", self.rows_left),
            ));
        }
        self.file.commit()
    }
}

/// The format-1.0 header numpy itself writes: magic, version, length, dict, padded to 64 bytes.
pub fn header_bytes(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = MAGIC.len() + 4 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend([1, 0]);
    out.extend((dict.len() as u16).to_le_bytes());
    out.extend(dict.as_bytes());
    out
}

/// Writes a whole float32 array as `.npy`, atomically (used for similarity matrices and tests).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let expected: usize = shape.iter().product();
    if data.len() != expected {
        return Err(DataError::invalid(
            path,
            format!("{} values for shape {shape:?}", data.len()),
        ));
    }
    let mut file = AtomicFile::create(path)?;
    file.write_all(&header_bytes(shape))?;
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    file.write_all(&bytes)?;
    file.commit()
}
