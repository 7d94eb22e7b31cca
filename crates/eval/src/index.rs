//! A gallery index: a split encoded once by a checkpoint, for queries that should not re-encode
//! thousands of images. One file, memory-mapped by each query, which reads the first stage's
//! vectors and only the shortlisted items' encodings.
//!
//! Layout: `RCARIDX1`, the header's length (u64 LE), the header (JSON: where it came from, the
//! vocabulary, ids, captions, and each section's shape, offset and CRC-32), zero padding to 64
//! bytes, then the sections as float32 LE. Every section is checked against its CRC-32 on open,
//! so a damaged or cut file is refused naming the section, never ranked.

use crate::encode::{floats, Encoded};
use crate::shortlist::vectors;
use burn::tensor::{Device, Tensor, TensorData};
use memmap2::Mmap;
use rcar_backbones::Matcher;
use rcar_data::atomic::AtomicFile;
use rcar_data::npy::f32_le;
use rcar_data::vocab::Vocab;
use rcar_data::DataError;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"RCARIDX1";
const ALIGN: usize = 64;

/// Where an index came from and what it holds, beside the sections.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The checkpoint as given to `index`, and the CRC-32 of its files when the index was built.
    pub checkpoint: String,
    pub fingerprint: u32,
    /// The model's configuration (`model.json`), which the checkpoint must still have.
    pub model: serde_json::Value,
    pub data: String,
    pub split: String,
    /// The vocabulary's words in id order, specials first, `<mask>` last: queries are tokenised
    /// with the ids the gallery's captions were.
    pub vocab: Vec<String>,
    /// Each image's id (`{split}_ids.txt`), in protocol order.
    pub image_ids: Vec<u64>,
    /// Each caption, in protocol order (caption `k` belongs to image `k / 5`).
    pub captions: Vec<String>,
    /// Caption of each encoded caption row (rows are longest first) and its length in tokens.
    pub caption_rows: Vec<usize>,
    pub lengths: Vec<usize>,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub name: String,
    pub shape: Vec<usize>,
    /// Bytes from the start of the data (the first 64-byte boundary after the header).
    pub offset: u64,
    pub crc32: u32,
}

/// The sections an index holds; the globals only for hosts that have them.
pub const IMAGES: &str = "images";
pub const CAPTIONS: &str = "captions";
pub const IMAGE_VECTORS: &str = "image_vectors";
pub const CAPTION_VECTORS: &str = "caption_vectors";
pub const IMAGE_GLOBALS: &str = "image_globals";
pub const CAPTION_GLOBALS: &str = "caption_globals";

/// The CRC-32 of a checkpoint's files (a directory's model and configuration, or a `.pth`): what
/// tells a query that the model re-ranking the gallery is the one that encoded it.
pub fn fingerprint(checkpoint: &Path) -> Result<u32, DataError> {
    let mut hasher = crc32fast::Hasher::new();
    for file in rcar_backbones::checkpoint::model_files(checkpoint)? {
        hasher.update(&std::fs::read(&file).map_err(|e| DataError::io(&file, e))?);
    }
    Ok(hasher.finalize())
}

/// What `index` records beside the encodings.
pub struct Source<'a> {
    pub checkpoint: &'a Path,
    pub data: &'a Path,
    pub split: &'a str,
    pub vocab: &'a Vocab,
    pub image_ids: Vec<u64>,
    pub captions: Vec<String>,
}

/// A tensor's shape and its values as float32 LE: one section's contents.
fn section_data<const D: usize>(t: &Tensor<D>) -> (Vec<usize>, Vec<u8>) {
    let values = floats(t.clone());
    (
        t.dims().to_vec(),
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// Writes the index of `encoded` (the gallery encoded by `model`) to `path`, atomically; its size.
pub fn write(
    path: &Path,
    model: &Matcher,
    encoded: &Encoded,
    source: Source,
) -> Result<u64, DataError> {
    let (image_vectors, caption_vectors) = vectors(encoded);
    let mut tensors = vec![
        (IMAGES, section_data(&encoded.images)),
        (CAPTIONS, section_data(&encoded.captions)),
        (IMAGE_VECTORS, section_data(&image_vectors)),
        (CAPTION_VECTORS, section_data(&caption_vectors)),
    ];
    if let Some(g) = &encoded.globals {
        tensors.push((IMAGE_GLOBALS, section_data(&g.images)));
        tensors.push((CAPTION_GLOBALS, section_data(&g.captions)));
    }
    let mut sections = Vec::new();
    let mut offset = 0u64;
    for (name, (shape, bytes)) in &tensors {
        sections.push(Section {
            name: name.to_string(),
            shape: shape.clone(),
            offset,
            crc32: crc32fast::hash(bytes),
        });
        offset += padded(bytes.len()) as u64;
    }
    let header = Header {
        checkpoint: source.checkpoint.display().to_string(),
        fingerprint: fingerprint(source.checkpoint)?,
        model: serde_json::to_value(model.config()).expect("configurations serialise"),
        data: source.data.display().to_string(),
        split: source.split.to_string(),
        vocab: (0..source.vocab.len() as u32)
            .map(|id| source.vocab.word(id).unwrap_or_default().to_string())
            .collect(),
        image_ids: source.image_ids,
        captions: source.captions,
        caption_rows: encoded.caption_ids.clone(),
        lengths: encoded.lengths.clone(),
        sections,
    };
    let json = serde_json::to_vec(&header).expect("headers serialise");
    let mut file = AtomicFile::create(path)?;
    file.write_all(MAGIC)?;
    file.write_all(&(json.len() as u64).to_le_bytes())?;
    file.write_all(&json)?;
    let start = MAGIC.len() + 8 + json.len();
    file.write_all(&vec![0; padded(start) - start])?;
    for (_, (_, bytes)) in &tensors {
        file.write_all(bytes)?;
        file.write_all(&vec![0; padded(bytes.len()) - bytes.len()])?;
    }
    file.commit()?;
    // `offset` ends past the last section.
    Ok(padded(start) as u64 + offset)
}

fn padded(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// An open, verified index.
pub struct Index {
    pub path: PathBuf,
    pub header: Header,
    map: Mmap,
    data_start: usize,
}

impl Index {
    /// Maps `path` and checks everything a query will read: the magic, the header, each
    /// section's place, shape and CRC-32, and the agreement of ids, captions and rows.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let bad = |msg: String| DataError::invalid(path, msg);
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        // SAFETY: read-only mapping; like every reader of a mapped file we rely on the index not
        // being modified while it is open (it is replaced by rename, never rewritten in place).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?;
        if map.len() < 16 || &map[..8] != MAGIC {
            return Err(bad(
                "not an RCAR gallery index (no RCARIDX1 magic): build one with `cargo xtask index`"
                    .into(),
            ));
        }
        let len = u64::from_le_bytes(map[8..16].try_into().expect("8 bytes"));
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(16))
            .filter(|&e| e <= map.len())
            .ok_or_else(|| {
                bad(format!(
                    "the header claims {len} bytes; the file has {}: cut short?",
                    map.len()
                ))
            })?;
        let header: Header = serde_json::from_slice(&map[16..end])
            .map_err(|e| bad(format!("damaged header: {e}")))?;
        let index = Self {
            path: path.to_path_buf(),
            header,
            data_start: padded(end),
            map,
        };
        index.check()?;
        Ok(index)
    }

    fn check(&self) -> Result<(), DataError> {
        let bad = |msg: String| DataError::invalid(&self.path, msg);
        let h = &self.header;
        let (n, m) = (h.image_ids.len(), h.captions.len());
        if n == 0 || m != 5 * n {
            return Err(bad(format!(
                "{n} image ids and {m} captions: an index holds 5 captions per image"
            )));
        }
        let mut rows = h.caption_rows.clone();
        rows.sort_unstable();
        if h.lengths.len() != m || rows.iter().enumerate().any(|(k, &r)| k != r) {
            return Err(bad(
                "caption rows and lengths do not cover the captions once each".into(),
            ));
        }
        for s in &h.sections {
            let bytes = self.bytes(s)?;
            if crc32fast::hash(bytes) != s.crc32 {
                return Err(bad(format!(
                    "section {:?} fails its CRC-32: the file is damaged; rebuild it",
                    s.name
                )));
            }
        }
        let e = self
            .section(IMAGE_VECTORS)?
            .shape
            .get(1)
            .copied()
            .unwrap_or(0);
        let regions = self.section(IMAGES)?.shape.get(1).copied().unwrap_or(0);
        let longest = h.lengths.iter().copied().max().unwrap_or(0);
        let expect = [
            (IMAGES, vec![n, regions, e]),
            (CAPTIONS, vec![m, longest, e]),
            (IMAGE_VECTORS, vec![n, e]),
            (CAPTION_VECTORS, vec![m, e]),
        ];
        for (name, shape) in expect {
            let s = self.section(name)?;
            if s.shape != shape || e == 0 || regions == 0 || h.lengths.contains(&0) {
                return Err(bad(format!(
                    "section {name:?} has shape {:?}, expected {shape:?}",
                    s.shape
                )));
            }
        }
        match (self.find(IMAGE_GLOBALS), self.find(CAPTION_GLOBALS)) {
            (None, None) => {}
            (Some(i), Some(c)) if i.shape == [n, e] && c.shape == [m, e] => {}
            _ => {
                return Err(bad(
                    "the global-vector sections are not both [items, E]".into()
                ))
            }
        }
        if h.vocab.len() < 5 {
            return Err(bad(format!(
                "a vocabulary of {} words is too short",
                h.vocab.len()
            )));
        }
        Ok(())
    }

    fn find(&self, name: &str) -> Option<&Section> {
        self.header.sections.iter().find(|s| s.name == name)
    }

    fn section(&self, name: &str) -> Result<&Section, DataError> {
        self.find(name)
            .ok_or_else(|| DataError::invalid(&self.path, format!("no section {name:?}")))
    }

    fn bytes(&self, s: &Section) -> Result<&[u8], DataError> {
        let len = s.shape.iter().try_fold(4usize, |a, &d| a.checked_mul(d));
        let start = usize::try_from(s.offset)
            .ok()
            .and_then(|o| o.checked_add(self.data_start));
        match (start, len) {
            (Some(start), Some(len))
                if start.checked_add(len).is_some_and(|e| e <= self.map.len()) =>
            {
                Ok(&self.map[start..start + len])
            }
            _ => Err(DataError::invalid(
                &self.path,
                format!(
                    "section {:?} ({:?} at {}) lies beyond the file's {} bytes: cut short?",
                    s.name,
                    s.shape,
                    s.offset,
                    self.map.len()
                ),
            )),
        }
    }

    /// Rows `rows` (all when `None`) of a section as a tensor on `device`.
    pub fn rows<const D: usize>(
        &self,
        name: &str,
        rows: Option<&[usize]>,
        device: &Device,
    ) -> Tensor<D> {
        let s = self.section(name).expect("checked on open");
        let bytes = self.bytes(s).expect("checked on open");
        let row = s.shape[1..].iter().product::<usize>() * 4;
        let mut shape = s.shape.clone();
        let values: Vec<f32> = match rows {
            None => f32_le(bytes).collect(),
            Some(rows) => {
                shape[0] = rows.len();
                rows.iter()
                    .flat_map(|&r| f32_le(&bytes[r * row..(r + 1) * row]))
                    .collect()
            }
        };
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// Rows of a section that only some hosts' indexes have (the global vectors).
    pub fn optional_rows(
        &self,
        name: &str,
        rows: Option<&[usize]>,
        device: &Device,
    ) -> Option<Tensor<2>> {
        self.find(name)?;
        Some(self.rows(name, rows, device))
    }

    /// Refuses a model other than the one that encoded the gallery: its configuration, or the
    /// checkpoint's files, changed since.
    pub fn check_model(&self, checkpoint: &Path, model: &Matcher) -> Result<(), DataError> {
        let config = serde_json::to_value(model.config()).expect("configurations serialise");
        if config != self.header.model {
            return Err(DataError::invalid(
                checkpoint,
                format!(
                    "this model ({}) is not the one that built {}: rebuild the index with `cargo xtask index`",
                    model.describe(),
                    self.path.display()
                ),
            ));
        }
        let now = fingerprint(checkpoint)?;
        if now != self.header.fingerprint {
            return Err(DataError::invalid(
                checkpoint,
                format!(
                    "the checkpoint changed since {} was built (CRC-32 {now:08x}, the index recorded {:08x}): rebuild the index",
                    self.path.display(),
                    self.header.fingerprint
                ),
            ));
        }
        Ok(())
    }

    /// The vocabulary the gallery's captions were tokenised with.
    pub fn vocab(&self) -> Vocab {
        let words = &self.header.vocab;
        // Specials first and `<mask>` last, which `from_words` adds back.
        let inner: Vec<&str> = words[4..words.len() - 1]
            .iter()
            .map(String::as_str)
            .collect();
        Vocab::from_words(&inner)
    }
}
