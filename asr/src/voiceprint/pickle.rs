//! Reader for PyTorch's legacy (pre-zip) `torch.save` format, enough for Resemblyzer's `pretrained.pt`.
//!
//! The file is a run of pickles: magic number, protocol version, system info, the checkpoint object (tensors are
//! persistent ids pointing at storages), then a pickle list of storage keys, then each storage as a u64
//! little-endian element count followed by its raw little-endian bytes. Only the opcodes protocol-2 checkpoints
//! use are implemented; anything else is an error, never a guess. No Python or torch is involved at run time.

use std::collections::HashMap;

use thiserror::Error;

/// `torch.serialization.MAGIC_NUMBER` (0x1950a86a20f9469cfc6c) as pickled by LONG1: 10 bytes, little endian.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The only legacy protocol version torch ever wrote.
const PROTOCOL_VERSION: i64 = 1001;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PickleError {
    #[error("unexpected end of data at byte {0}")]
    Eof(usize),
    #[error("unsupported pickle opcode 0x{op:02x} at byte {at}")]
    Opcode { op: u8, at: usize },
    #[error("malformed pickle at byte {at}: {what}")]
    Malformed { at: usize, what: &'static str },
    #[error("not a legacy torch file: {0}")]
    NotTorch(&'static str),
    #[error("tensor {name}: {what}")]
    Tensor { name: String, what: String },
    #[error("storage {key} has unsupported type {dtype}")]
    StorageType { key: String, dtype: String },
}

/// A pickled value; only what checkpoints contain.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// A LONG1 too wide for i64 (torch's magic number): raw little-endian two's complement.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Insertion-ordered, as `OrderedDict` state dicts are.
    Dict(Vec<(Value, Value)>),
    Global {
        module: String,
        name: String,
    },
    /// A persistent id resolved to a storage reference.
    Storage(StorageRef),
    Tensor(TensorRef),
    /// The result of a call we do not model (e.g. optimizer internals); kept so parsing can go on.
    Opaque,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    pub key: String,
    /// e.g. `FloatStorage`.
    pub dtype: String,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

/// One float tensor, materialised row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

enum Item {
    Mark,
    V(Value),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    memo: HashMap<u32, Value>,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).ok_or(PickleError::Eof(self.pos))?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or(PickleError::Eof(self.pos))?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Eof(self.pos))?;
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.pos += 1;
        Ok(s)
    }

    fn bad(&self, what: &'static str) -> PickleError {
        PickleError::Malformed { at: self.pos, what }
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        match self.stack.pop() {
            Some(Item::V(v)) => Ok(v),
            Some(Item::Mark) => Err(self.bad("mark where a value was expected")),
            None => Err(self.bad("stack underflow")),
        }
    }

    /// Values above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let at = self
            .stack
            .iter()
            .rposition(|i| matches!(i, Item::Mark))
            .ok_or_else(|| self.bad("no mark"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .filter_map(|i| match i {
                Item::V(v) => Some(v),
                Item::Mark => None,
            })
            .collect())
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Item::V(v));
    }

    fn top_mut(&mut self) -> Result<&mut Value, PickleError> {
        let at = self.pos;
        match self.stack.last_mut() {
            Some(Item::V(v)) => Ok(v),
            _ => Err(PickleError::Malformed {
                at,
                what: "no object on the stack",
            }),
        }
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| self.bad("memo key not set"))?;
        self.push(v);
        Ok(())
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let v = match self.stack.last() {
            Some(Item::V(v)) => v.clone(),
            _ => return Err(self.bad("nothing to memoize")),
        };
        self.memo.insert(key, v);
        Ok(())
    }

    /// Runs one pickle to its STOP and returns its value.
    fn run(&mut self) -> Result<Value, PickleError> {
        self.stack.clear();
        self.memo.clear();
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO n
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Item::Mark),
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push(Value::Int(i64::from(v)));
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let bytes = self.take(n)?;
                    let v = if n == 0 {
                        Value::Int(0)
                    } else if n <= 8 {
                        let mut b = [0u8; 8];
                        b[..n].copy_from_slice(bytes);
                        let shift = 64 - 8 * n as u32;
                        // Sign-extend from n bytes.
                        Value::Int(
                            i64::from_le_bytes(b)
                                .wrapping_shl(shift)
                                .wrapping_shr(shift),
                        )
                    } else {
                        Value::BigInt(bytes.to_vec())
                    };
                    self.push(v);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push(Value::Float(v));
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(Value::Str(s));
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(Value::Str(s));
                }
                b'U' => {
                    let n = usize::from(self.u8()?);
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(Value::Str(s));
                }
                b'T' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(Value::Str(s));
                }
                b')' => self.push(Value::Tuple(Vec::new())),
                b']' => self.push(Value::List(Vec::new())),
                b'}' => self.push(Value::Dict(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(self.bad("tuple underflow"));
                    }
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(items));
                }
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(u32::from(k))?;
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.le()?);
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()?;
                    self.memo_get(u32::from(k))?;
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.le()?);
                    self.memo_get(k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global { module, name });
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = storage_from_pid(pid).ok_or_else(|| self.bad("persistent id"))?;
                    self.push(Value::Storage(storage));
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = reduce(callable, args).ok_or_else(|| self.bad("tensor arguments"))?;
                    self.push(v);
                }
                b'b' => {
                    // BUILD: state for an object we keep opaque (parameters' __setstate__); dropped.
                    self.pop()?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top_mut()? {
                        Value::Dict(d) => d.push((k, v)),
                        _ => {
                            return Err(PickleError::Malformed {
                                at,
                                what: "SETITEM",
                            })
                        }
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    match self.top_mut()? {
                        Value::Dict(d) => d.extend(pairs),
                        _ => {
                            return Err(PickleError::Malformed {
                                at,
                                what: "SETITEMS",
                            })
                        }
                    }
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top_mut()? {
                        Value::List(l) => l.push(v),
                        _ => return Err(PickleError::Malformed { at, what: "APPEND" }),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top_mut()? {
                        Value::List(l) => l.extend(items),
                        _ => {
                            return Err(PickleError::Malformed {
                                at,
                                what: "APPENDS",
                            })
                        }
                    }
                }
                _ => return Err(PickleError::Opcode { op, at }),
            }
        }
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

fn u64s(v: &Value) -> Option<Vec<u64>> {
    match v {
        Value::Tuple(items) => items.iter().map(as_u64).collect(),
        _ => None,
    }
}

/// `('storage', torch.FloatStorage, key, location, size, view_metadata)`.
fn storage_from_pid(pid: Value) -> Option<StorageRef> {
    let Value::Tuple(items) = pid else {
        return None;
    };
    match items.as_slice() {
        [Value::Str(tag), Value::Global { name, .. }, Value::Str(key), _, size, _]
            if tag == "storage" =>
        {
            Some(StorageRef {
                key: key.clone(),
                dtype: name.clone(),
                len: as_u64(size)?,
            })
        }
        _ => None,
    }
}

/// Calls we model: `OrderedDict()` and `torch._utils._rebuild_tensor(_v2)`; anything else is opaque.
fn reduce(callable: Value, args: Value) -> Option<Value> {
    let Value::Global { module, name } = callable else {
        return Some(Value::Opaque);
    };
    match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") => Some(Value::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
            let Value::Tuple(a) = args else { return None };
            match a.as_slice() {
                [Value::Storage(s), offset, shape, stride, ..] => Some(Value::Tensor(TensorRef {
                    storage: s.clone(),
                    offset: as_u64(offset)?,
                    shape: u64s(shape)?,
                    stride: u64s(stride)?,
                })),
                _ => None,
            }
        }
        _ => Some(Value::Opaque),
    }
}

fn element_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "FloatStorage" | "IntStorage" => 4,
        "DoubleStorage" | "LongStorage" => 8,
        "HalfStorage" | "ShortStorage" | "BFloat16Storage" => 2,
        "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
        _ => return None,
    })
}

/// A parsed legacy checkpoint: the object pickle and the raw bytes of each float storage.
pub struct Checkpoint {
    pub root: Value,
    storages: HashMap<String, Vec<f32>>,
}

/// Parses a whole legacy `torch.save` file.
pub fn parse_checkpoint(data: &[u8]) -> Result<Checkpoint, PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
    };
    match m.run() {
        Ok(Value::BigInt(b)) if b == MAGIC => {}
        Ok(_) | Err(_) => return Err(PickleError::NotTorch("no magic number")),
    }
    if m.run()? != Value::Int(PROTOCOL_VERSION) {
        return Err(PickleError::NotTorch("unknown protocol version"));
    }
    let sys_info = m.run()?;
    let little = matches!(&sys_info, Value::Dict(d) if d.iter().any(|(k, v)| *k == Value::Str("little_endian".into()) && *v == Value::Bool(true)));
    if !little {
        return Err(PickleError::NotTorch("not little-endian"));
    }
    let root = m.run()?;
    let Value::List(keys) = m.run()? else {
        return Err(PickleError::NotTorch("no storage key list"));
    };
    // Storage types come from the object pickle; collect them to know element sizes.
    let mut types = HashMap::new();
    collect_storages(&root, &mut types);
    let mut storages = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err(PickleError::NotTorch("storage key is not a string"));
        };
        let dtype = types.get(&key).cloned().unwrap_or_default();
        let size = element_size(&dtype).ok_or_else(|| PickleError::StorageType {
            key: key.clone(),
            dtype: dtype.clone(),
        })?;
        let count = u64::from_le_bytes(m.le()?);
        let bytes = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(size))
            .ok_or(PickleError::Eof(m.pos))?;
        let raw = m.take(bytes)?;
        if dtype == "FloatStorage" {
            let floats = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            storages.insert(key, floats);
        }
    }
    Ok(Checkpoint { root, storages })
}

fn collect_storages(v: &Value, out: &mut HashMap<String, String>) {
    match v {
        Value::Tensor(t) => {
            out.insert(t.storage.key.clone(), t.storage.dtype.clone());
        }
        Value::Storage(s) => {
            out.insert(s.key.clone(), s.dtype.clone());
        }
        Value::Tuple(items) | Value::List(items) => {
            items.iter().for_each(|i| collect_storages(i, out));
        }
        Value::Dict(pairs) => pairs.iter().for_each(|(k, v)| {
            collect_storages(k, out);
            collect_storages(v, out);
        }),
        _ => {}
    }
}

impl Checkpoint {
    /// Looks up `key` in the root dict (e.g. `model_state`).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.root {
            Value::Dict(d) => d
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Every float tensor of a state dict, in file order, materialised row-major (views and strides resolved).
    pub fn state_dict(&self, key: &str) -> Result<Vec<Tensor>, PickleError> {
        let Some(Value::Dict(entries)) = self.get(key) else {
            return Err(PickleError::NotTorch("no state dict"));
        };
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let (Value::Str(name), Value::Tensor(t)) = (k, v) else {
                continue;
            };
            out.push(self.materialise(name, t)?);
        }
        Ok(out)
    }

    fn materialise(&self, name: &str, t: &TensorRef) -> Result<Tensor, PickleError> {
        let err = |what: String| PickleError::Tensor {
            name: name.to_owned(),
            what,
        };
        let storage = self
            .storages
            .get(&t.storage.key)
            .ok_or_else(|| err(format!("storage {} missing or not float", t.storage.key)))?;
        if t.shape.len() != t.stride.len() {
            return Err(err("shape and stride differ in rank".into()));
        }
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        let count: usize = shape.iter().product();
        let mut data = Vec::with_capacity(count);
        let mut index = vec![0usize; shape.len()];
        for _ in 0..count {
            let mut at = t.offset as usize;
            for (i, s) in index.iter().zip(&t.stride) {
                at += i * (*s as usize);
            }
            let v = storage
                .get(at)
                .ok_or_else(|| err(format!("element {at} outside its storage")))?;
            data.push(*v);
            // Odometer increment, last axis fastest (row-major).
            for (i, d) in index.iter_mut().zip(&shape).rev() {
                *i += 1;
                if *i < *d {
                    break;
                }
                *i = 0;
            }
        }
        Ok(Tensor {
            name: name.to_owned(),
            shape,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-assembled legacy file: one 2×2 tensor that is a transposed view at offset 1 of a 5-float storage.
    pub(crate) fn tiny_checkpoint() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x80, 2, 0x8a, 10]);
        f.extend_from_slice(&MAGIC);
        f.push(b'.');
        f.extend_from_slice(&[0x80, 2, b'M', 0xe9, 0x03, b'.']);
        f.extend_from_slice(&[0x80, 2, b'}', b'(']);
        f.extend_from_slice(b"X\x0d\x00\x00\x00little_endian\x88u.");
        // {'model_state': OrderedDict([('w', tensor)])}
        f.extend_from_slice(&[0x80, 2, b'}', b'q', 0]);
        f.extend_from_slice(b"X\x0b\x00\x00\x00model_state");
        f.extend_from_slice(b"ccollections\nOrderedDict\nq\x01)R");
        f.extend_from_slice(b"X\x01\x00\x00\x00w");
        f.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        f.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00kX\x03\x00\x00\x00cpuK\x05NtQ");
        f.extend_from_slice(b"K\x01K\x02K\x02\x86K\x01K\x02\x86\x89h\x01)Rtq\x02R");
        f.extend_from_slice(b"sh\x02bs."); // SETITEM into OrderedDict, BUILD (dropped), SETITEM into root
        f.extend_from_slice(&[0x80, 2, b']', b'(']);
        f.extend_from_slice(b"X\x01\x00\x00\x00ke.");
        f.extend_from_slice(&5u64.to_le_bytes());
        for v in [0.0f32, 1.0, 2.0, 3.0, 4.0] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f
    }

    #[test]
    fn parses_a_strided_view() {
        let ck = parse_checkpoint(&tiny_checkpoint()).unwrap();
        let sd = ck.state_dict("model_state").unwrap();
        assert_eq!(sd.len(), 1);
        assert_eq!(sd[0].name, "w");
        assert_eq!(sd[0].shape, vec![2, 2]);
        // offset 1, stride (1, 2): [[s1, s3], [s2, s4]]
        assert_eq!(sd[0].data, vec![1.0, 3.0, 2.0, 4.0]);
    }

    #[test]
    fn truncated_and_foreign_files_are_errors() {
        let f = tiny_checkpoint();
        assert!(matches!(
            parse_checkpoint(&f[..f.len() - 3]),
            Err(PickleError::Eof(_))
        ));
        assert!(matches!(
            parse_checkpoint(b"PK\x03\x04 zip torch file"),
            Err(PickleError::NotTorch(_))
        ));
        assert!(parse_checkpoint(&[]).is_err());
    }
}
