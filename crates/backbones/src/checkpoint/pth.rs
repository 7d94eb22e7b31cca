//! Reads the official RCAR checkpoints as published: `torch.save` zip archives holding
//! `{'model': state dict with 'module.' keys, 'opt': argparse.Namespace, 'epoch', 'best_rsum', 'Eiters'}`.

use super::pickle::{unpickle, TensorRef, Value};
use rcar_data::npy::f32_le;
use rcar_data::DataError;
use std::collections::BTreeMap;
use std::io::Read;
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

/// Reads `path`; every failure names the file and what is wrong with it.
pub fn read_pth(path: &Path) -> Result<TorchCheckpoint, DataError> {
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

    let model = root.get("model").ok_or_else(|| {
        bad("the checkpoint has no 'model' entry (is it an RCAR checkpoint?)".into())
    })?;
    let Value::Dict(items) = model else {
        return Err(bad("'model' is not a state dict".into()));
    };
    let mut tensors = BTreeMap::new();
    for (key, value) in items {
        let (Value::Str(key), Value::Tensor(t)) = (key, value) else {
            return Err(bad(format!("'model' holds a non-tensor entry {key:?}")));
        };
        let key = key.strip_prefix("module.").unwrap_or(key).to_string();
        match t.storage_type.as_str() {
            "FloatStorage" => {
                let data =
                    read_storage(&mut zip, &prefix, t).map_err(|e| bad(format!("{key}: {e}")))?;
                tensors.insert(
                    key,
                    RawTensor {
                        shape: t.shape.clone(),
                        data,
                    },
                );
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

fn read_storage(
    zip: &mut zip::ZipArchive<std::fs::File>,
    prefix: &str,
    t: &TensorRef,
) -> Result<Vec<f32>, String> {
    let contiguous: Vec<usize> = (0..t.shape.len())
        .map(|i| t.shape[i + 1..].iter().product())
        .collect();
    let numel: usize = t.shape.iter().product();
    if numel > 1 && t.stride != contiguous {
        return Err(format!("non-contiguous tensor (stride {:?})", t.stride));
    }
    let name = format!("{prefix}data/{}", t.key);
    let mut bytes = Vec::new();
    zip.by_name(&name)
        .map_err(|e| format!("missing storage {name}: {e}"))?
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    let bytes = bytes
        .get(t.offset * 4..(t.offset + numel) * 4)
        .ok_or_else(|| format!("storage {name} is shorter than the tensor"))?;
    Ok(f32_le(bytes).collect())
}
