//! Reads the official checkpoints as published: `torch.save` files holding `{'model': state dict
//! with 'module.' keys (RCAR) or a list of three state dicts (SGRAF), 'opt': argparse.Namespace,
//! 'epoch', 'best_rsum', 'Eiters'}`; RCAR's as zip archives, SGRAF's in torch's legacy format.

use super::pickle::{unpickle, unpickle_at, TensorRef, Value};
use rcar_data::npy::f32_le;
use rcar_data::DataError;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::ops::Range;
use std::path::Path;

/// A float32 tensor read from the archive, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A value of the pickled `opt` namespace that the model needs.
#[derive(Debug, Clone, PartialEq)]
pub enum OptValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The content of an official `.pth` checkpoint.
#[derive(Debug)]
pub struct TorchCheckpoint {
    /// State-dict tensors with `module.` stripped; integer tensors (`num_batches_tracked`) are skipped.
    pub tensors: BTreeMap<String, RawTensor>,
    pub opt: BTreeMap<String, OptValue>,
    pub epoch: Option<i64>,
    pub best_rsum: Option<f64>,
    pub eiters: Option<i64>,
}

/// The first pickle of torch's legacy (pre-1.6) format: its magic number, protocol 2.
const LEGACY_MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

/// Reads `path`, a `torch.save` file in either format: the zip archive (torch ≥ 1.6) or the legacy
/// stream (SGRAF's checkpoints, saved by torch 1.1). `model` is one state dict (RCAR) or a list of
/// them (SGRAF: image, text and similarity encoders), whose keys then get the prefixes `0.`, `1.`,
/// `2.`. Every failure names the file and what is wrong with it.
pub fn read_pth(path: &Path) -> Result<TorchCheckpoint, DataError> {
    let bad = |msg: String| DataError::invalid(path, msg);
    let mut head = [0u8; LEGACY_MAGIC.len()];
    let read = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| DataError::io(path, e))?;
    let (root, mut storages) = if head[..read].starts_with(b"PK\x03\x04") {
        zip_archive(path)?
    } else if head == LEGACY_MAGIC {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        legacy(bytes).map_err(|e| bad(format!("legacy torch.save format: {e}")))?
    } else {
        return Err(bad(
            "not a PyTorch checkpoint: neither a torch.save zip archive nor the legacy format"
                .into(),
        ));
    };

    let model = root.get("model").ok_or_else(|| {
        bad("the checkpoint has no 'model' entry (is it an RCAR or SGRAF checkpoint?)".into())
    })?;
    let parts: Vec<(String, &Value)> = match model {
        Value::List(dicts) => dicts
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("{i}."), d))
            .collect(),
        dict => vec![(String::new(), dict)],
    };
    let mut tensors = BTreeMap::new();
    for (prefix, dict) in parts {
        let Value::Dict(items) = dict else {
            return Err(bad(format!("'model' {prefix}is not a state dict")));
        };
        for (key, value) in items {
            let (Value::Str(key), Value::Tensor(t)) = (key, value) else {
                return Err(bad(format!("'model' holds a non-tensor entry {key:?}")));
            };
            let key = format!("{prefix}{}", key.strip_prefix("module.").unwrap_or(key));
            match t.storage_type.as_str() {
                "FloatStorage" => {
                    let data = storages
                        .float32(t)
                        .map_err(|e| bad(format!("{key}: {e}")))?;
                    let shape = t.shape.clone();
                    tensors.insert(key, RawTensor { shape, data });
                }
                // `num_batches_tracked` (LongStorage) is bookkeeping the model never reads.
                "LongStorage" => {}
                other => {
                    return Err(bad(format!(
                        "{key}: unsupported storage type {other} (float32 expected)"
                    )))
                }
            }
        }
    }

    let opt = match root.get("opt") {
        Some(Value::Object {
            state: Some(state), ..
        }) => namespace(state),
        Some(Value::Dict(_)) => namespace(root.get("opt").unwrap()),
        _ => {
            return Err(bad(
                "the checkpoint has no 'opt' namespace: the model configuration is unknown".into(),
            ))
        }
    };
    let int = |k: &str| match root.get(k) {
        Some(Value::Int(v)) => Some(*v),
        _ => None,
    };
    Ok(TorchCheckpoint {
        tensors,
        opt,
        epoch: int("epoch"),
        best_rsum: match root.get("best_rsum") {
            Some(Value::Float(v)) => Some(*v),
            Some(Value::Int(v)) => Some(*v as f64),
            _ => None,
        },
        eiters: int("Eiters"),
    })
}

fn namespace(state: &Value) -> BTreeMap<String, OptValue> {
    let Value::Dict(items) = state else {
        return BTreeMap::new();
    };
    items
        .iter()
        .filter_map(|(k, v)| {
            let Value::Str(k) = k else { return None };
            let v = match v {
                Value::Str(s) => OptValue::Str(s.clone()),
                Value::Int(i) => OptValue::Int(*i),
                Value::Float(f) => OptValue::Float(*f),
                Value::Bool(b) => OptValue::Bool(*b),
                _ => return None,
            };
            Some((k.clone(), v))
        })
        .collect()
}

/// Where the tensors' bytes are: archive entries `data/<key>`, or the legacy stream's storages.
enum Storages {
    Zip {
        zip: zip::ZipArchive<std::fs::File>,
        prefix: String,
    },
    /// The whole file, and each storage key's byte range in it.
    Legacy {
        bytes: Vec<u8>,
        ranges: HashMap<String, Range<usize>>,
    },
}

impl Storages {
    /// Tensor `t`'s values, which must be float32 and contiguous.
    fn float32(&mut self, t: &TensorRef) -> Result<Vec<f32>, String> {
        // Shapes and offsets come from the file: a damaged one must not overflow.
        let product = |dims: &[usize]| dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let too_large = || format!("shape {:?} at offset {} is too large", t.shape, t.offset);
        let contiguous: Vec<usize> = (0..t.shape.len())
            .map(|i| product(&t.shape[i + 1..]).ok_or_else(too_large))
            .collect::<Result<_, _>>()?;
        let numel = product(&t.shape).ok_or_else(too_large)?;
        if numel > 1 && t.stride != contiguous {
            return Err(format!("non-contiguous tensor (stride {:?})", t.stride));
        }
        let wanted = t
            .offset
            .checked_add(numel)
            .and_then(|end| Some(t.offset.checked_mul(4)?..end.checked_mul(4)?))
            .ok_or_else(too_large)?;
        let short = |name: &str| format!("storage {name} is shorter than the tensor");
        match self {
            Storages::Zip { zip, prefix } => {
                let name = format!("{prefix}data/{}", t.key);
                let mut bytes = Vec::new();
                zip.by_name(&name)
                    .map_err(|e| format!("missing storage {name}: {e}"))?
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("cannot read {name}: {e}"))?;
                let bytes = bytes.get(wanted).ok_or_else(|| short(&name))?;
                Ok(f32_le(bytes).collect())
            }
            Storages::Legacy { bytes, ranges } => {
                let range = ranges
                    .get(&t.key)
                    .ok_or_else(|| format!("missing storage {}", t.key))?;
                let storage = &bytes[range.clone()];
                let bytes = storage.get(wanted).ok_or_else(|| short(&t.key))?;
                Ok(f32_le(bytes).collect())
            }
        }
    }
}

/// The zip archive's `data.pkl`, parsed, and its storages.
fn zip_archive(path: &Path) -> Result<(Value, Storages), DataError> {
    let bad = |msg: String| DataError::invalid(path, msg);
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        bad(format!(
            "not a PyTorch checkpoint (torch.save zip archive): {e}"
        ))
    })?;
    let pkl_name = zip
        .file_names()
        .find(|n| n.ends_with("/data.pkl") || *n == "data.pkl")
        .map(str::to_string)
        .ok_or_else(|| bad("not a PyTorch checkpoint: the archive has no data.pkl".into()))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let mut pickle = Vec::new();
    zip.by_name(&pkl_name)
        .and_then(|mut f| f.read_to_end(&mut pickle).map_err(Into::into))
        .map_err(|e| bad(format!("cannot read {pkl_name}: {e}")))?;
    let root = unpickle(&pickle).map_err(|e| bad(format!("cannot parse {pkl_name}: {e}")))?;
    Ok((root, Storages::Zip { zip, prefix }))
}

/// The legacy stream: pickles of the magic number, the protocol version (1001) and the system
/// (byte order, type sizes); the object's pickle, whose tensors name storages by key; the pickled
/// list of keys; then, in that order, each storage as its element count (int64) and raw bytes.
fn legacy(bytes: Vec<u8>) -> Result<(Value, Storages), String> {
    // The magic number (80 bits, wider than a pickled integer here) was matched byte for byte.
    let (version, pos) = unpickle_at(&bytes, LEGACY_MAGIC.len())?;
    if version != Value::Int(1001) {
        return Err(format!("protocol version {version:?}, 1001 expected"));
    }
    let (system, pos) = unpickle_at(&bytes, pos)?;
    if system.get("little_endian") != Some(&Value::Bool(true)) {
        return Err("saved on a big-endian machine".into());
    }
    let (root, pos) = unpickle_at(&bytes, pos)?;
    let (keys, mut pos) = unpickle_at(&bytes, pos)?;
    let Value::List(keys) = keys else {
        return Err("the storage keys are not a list".into());
    };
    let mut types = HashMap::new();
    storage_types(&root, &mut types);
    let mut ranges = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err(format!("storage key {key:?} is not a string"));
        };
        let kind = types
            .get(key.as_str())
            .ok_or_else(|| format!("storage {key} is listed but no tensor uses it"))?;
        let size =
            element_size(kind).ok_or_else(|| format!("storage {key}: unknown type {kind}"))?;
        let count = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| format!("the file ends before storage {key}"))?;
        let count = u64::from_le_bytes(count.try_into().unwrap());
        let range = usize::try_from(count)
            .ok()
            .and_then(|count| count.checked_mul(size)?.checked_add(pos + 8))
            .filter(|&end| end <= bytes.len())
            .map(|end| pos + 8..end)
            .ok_or_else(|| format!("the file ends inside storage {key}"))?;
        pos = range.end;
        ranges.insert(key, range);
    }
    Ok((root, Storages::Legacy { bytes, ranges }))
}

/// Each storage key's type (`FloatStorage`, …), from the tensors that use it.
fn storage_types<'a>(value: &'a Value, out: &mut HashMap<&'a str, &'a str>) {
    match value {
        Value::Tensor(t) => {
            out.insert(&t.key, &t.storage_type);
        }
        Value::Tuple(items) | Value::List(items) => {
            items.iter().for_each(|v| storage_types(v, out));
        }
        Value::Dict(items) => items.iter().for_each(|(k, v)| {
            storage_types(k, out);
            storage_types(v, out);
        }),
        Value::Object { args, state, .. } => {
            args.iter().for_each(|v| storage_types(v, out));
            if let Some(state) = state {
                storage_types(state, out);
            }
        }
        _ => {}
    }
}

/// Bytes per element of a torch storage type.
fn element_size(storage_type: &str) -> Option<usize> {
    Some(match storage_type {
        "DoubleStorage" | "LongStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
        _ => return None,
    })
}
