//! A small unpickler for `torch.save` files: exactly the pickle opcodes PyTorch writes for a dict of
//! tensors, numbers, strings and an `argparse.Namespace` — no code is ever executed. Classes are kept
//! as names; the only ones given meaning are the tensor rebuild function and `OrderedDict`.

use std::collections::HashMap;

/// A reference to tensor data stored beside the pickle in the zip archive.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// `FloatStorage`, `LongStorage`, ...
    pub storage_type: String,
    /// Name of the archive entry `data/<key>`.
    pub key: String,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// A class or function reference (`module.name`).
    Global(String),
    /// An instance of a class, with the arguments it was built from and the state set on it.
    Object {
        class: String,
        args: Vec<Value>,
        state: Option<Box<Value>>,
    },
    /// A persistent id: `('storage', type, key, location, numel)`.
    Storage {
        storage_type: String,
        key: String,
    },
    Tensor(TensorRef),
}

impl Value {
    /// The value under a string key of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Parses pickle bytes (protocols 2–4).
pub fn unpickle(data: &[u8]) -> Result<Value, String> {
    unpickle_at(data, 0).map(|(value, _)| value)
}

/// Parses the pickle that starts at `pos`, and gives where it ends: torch's legacy format writes
/// several pickles one after another.
pub fn unpickle_at(data: &[u8], pos: usize) -> Result<(Value, usize), String> {
    let mut machine = Machine {
        data,
        pos,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let value = machine.run()?;
    Ok((value, machine.pos))
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let bytes = self
            .data
            .get(self.pos..self.pos + n)
            .ok_or("the pickle ends early")?;
        self.pos += n;
        Ok(bytes)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn line(&mut self) -> Result<String, String> {
        let end = self.data[self.pos..]
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated line in the pickle")?;
        let text = String::from_utf8_lossy(&self.data[self.pos..self.pos + end]).into_owned();
        self.pos += end + 1;
        Ok(text)
    }

    fn string(&mut self, len_bytes: usize) -> Result<String, String> {
        let n = self.uint(len_bytes)? as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| "invalid UTF-8 string in the pickle".into())
    }

    fn pop(&mut self) -> Result<Value, String> {
        self.stack
            .pop()
            .ok_or_else(|| "pickle stack underflow".into())
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("pickle MARK missing")?;
        Ok(self.stack.split_off(mark))
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        self.stack
            .last_mut()
            .ok_or_else(|| "pickle stack underflow".into())
    }

    fn run(&mut self) -> Result<Value, String> {
        loop {
            let op = self.take(1)?[0];
            match op {
                0x80 => {
                    self.take(1)?; // PROTO
                }
                0x95 => {
                    self.take(8)?; // FRAME
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("pickle stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.uint(1)? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'M' => {
                    let v = self.uint(2)? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'J' => {
                    let v = self.uint(4)? as u32 as i32 as i64;
                    self.stack.push(Value::Int(v));
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes.
                    let n = self.uint(1)? as usize;
                    let bytes = self.take(n)?.to_vec();
                    if n > 8 {
                        return Err("integer too large in the pickle".into());
                    }
                    let mut v = bytes
                        .iter()
                        .rev()
                        .fold(0i64, |acc, &b| (acc << 8) | b as i64);
                    if n > 0 && n < 8 && bytes[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let bits = self.uint(8)?.swap_bytes();
                    self.stack.push(Value::Float(f64::from_bits(bits)));
                }
                b'X' => {
                    let s = self.string(4)?;
                    self.stack.push(Value::Str(s));
                }
                0x8c => {
                    let s = self.string(1)?;
                    self.stack.push(Value::Str(s));
                }
                0x8d => {
                    let s = self.string(8)?;
                    self.stack.push(Value::Str(s));
                }
                b'q' | b'r' | 0x94 => {
                    let key = match op {
                        b'q' => self.uint(1)? as u32,
                        b'r' => self.uint(4)? as u32,
                        _ => self.memo.len() as u32,
                    };
                    let top = self.top()?.clone();
                    self.memo.insert(key, top);
                }
                b'h' | b'j' => {
                    let key = self.uint(if op == b'h' { 1 } else { 4 })? as u32;
                    let v = self
                        .memo
                        .get(&key)
                        .cloned()
                        .ok_or("pickle memo key missing")?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(format!("{module}.{name}")));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => {
                            self.stack.push(Value::Global(format!("{m}.{n}")))
                        }
                        _ => return Err("STACK_GLOBAL without strings".into()),
                    }
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(items) => items.push(v),
                        _ => return Err("APPEND to a non-list".into()),
                    }
                }
                b'e' => {
                    let vs = self.pop_mark()?;
                    match self.top()? {
                        Value::List(items) => items.extend(vs),
                        _ => return Err("APPENDS to a non-list".into()),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        Value::Dict(items) => items.push((k, v)),
                        _ => return Err("SETITEM on a non-dict".into()),
                    }
                }
                b'u' => {
                    let vs = self.pop_mark()?;
                    let Value::Dict(items) = self.top()? else {
                        return Err("SETITEMS on a non-dict".into());
                    };
                    let mut it = vs.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        items.push((k, v));
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(persistent(pid)?);
                }
                b'R' | 0x81 => {
                    let args = match self.pop()? {
                        Value::Tuple(args) => args,
                        _ => return Err("REDUCE/NEWOBJ arguments are not a tuple".into()),
                    };
                    let Value::Global(callable) = self.pop()? else {
                        return Err("REDUCE/NEWOBJ of something that is not a class".into());
                    };
                    self.stack.push(reduce(callable, args)?);
                }
                b'b' => {
                    let state = self.pop()?;
                    match self.top()? {
                        Value::Object { state: slot, .. } => *slot = Some(Box::new(state)),
                        // OrderedDict and tensors may carry (empty) extra state; nothing to keep.
                        Value::Dict(_) | Value::Tensor(_) => {}
                        _ => return Err("BUILD on an unexpected value".into()),
                    }
                }
                other => return Err(format!("unsupported pickle opcode 0x{other:02x}")),
            }
        }
    }
}

fn persistent(pid: Value) -> Result<Value, String> {
    let Value::Tuple(items) = pid else {
        return Err("persistent id is not a tuple".into());
    };
    match items.as_slice() {
        // The legacy format adds the location, the size and a view of another storage: a state
        // dict holds no views.
        [Value::Str(kind), _, _, _, _, view] if kind == "storage" && *view != Value::None => {
            Err(format!("unsupported storage view {view:?}"))
        }
        [Value::Str(kind), Value::Global(storage_type), Value::Str(key), ..]
            if kind == "storage" =>
        {
            Ok(Value::Storage {
                storage_type: storage_type
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                key: key.clone(),
            })
        }
        _ => Err(format!("unsupported persistent id {items:?}")),
    }
}

fn ints(v: &Value) -> Result<Vec<usize>, String> {
    match v {
        Value::Tuple(items) => items
            .iter()
            .map(|i| match i {
                Value::Int(n) if *n >= 0 => Ok(*n as usize),
                _ => Err("tensor size/stride is not a tuple of integers".to_string()),
            })
            .collect(),
        _ => Err("tensor size/stride is not a tuple".into()),
    }
}

fn reduce(callable: String, args: Vec<Value>) -> Result<Value, String> {
    match callable.as_str() {
        "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
            let [Value::Storage { storage_type, key }, Value::Int(offset), size, stride, ..] =
                args.as_slice()
            else {
                return Err("unexpected arguments to _rebuild_tensor_v2".into());
            };
            Ok(Value::Tensor(TensorRef {
                storage_type: storage_type.clone(),
                key: key.clone(),
                offset: *offset as usize,
                shape: ints(size)?,
                stride: ints(stride)?,
            }))
        }
        "collections.OrderedDict" => Ok(Value::Dict(Vec::new())),
        _ => Ok(Value::Object {
            class: callable,
            args,
            state: None,
        }),
    }
}
