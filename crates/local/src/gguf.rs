//! GGUF header validation in Rust, before a file reaches llama.cpp.
//!
//! llama.cpp aborts the whole process on some malformed files (GGML_ASSERT), so every file the
//! user picks, imports or downloads is read here first, with every count and length checked
//! against the bytes that remain before anything is allocated. The checks mirror llama.cpp's own
//! `gguf.cpp` (same version, alignment, dimension and overflow rules) and use the bundled ggml's
//! type tables, so "valid here" means "the bundled llama.cpp will parse it".
//!
//! Hand-written rather than a GGUF crate: the point is bounded, hostile-input-safe reading with
//! errors that name the problem, which general readers do not promise.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use crate::archs::KNOWN_ARCHITECTURES;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's GGML_MAX_DIMS and GGML_MAX_NAME.
const MAX_DIMS: u32 = 4;
const MAX_NAME: usize = 64;
/// Far above any real model (a few thousand tensors, ~50 keys) yet small enough to bound work.
const MAX_TENSORS: u64 = 1 << 20;
const MAX_KV: u64 = 1 << 16;
/// Longest single string value (chat templates are the longest, tens of KB).
const MAX_STRING: u64 = 16 << 20;

/// What was found wrong with a file; each names the part of the file at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("the file is empty")]
    Empty,
    #[error("not a GGUF file (starts with {0:?}, expected \"GGUF\")")]
    NotGguf(String),
    #[error("GGUF version {0} is not supported (llama.cpp reads versions 2 and 3)")]
    UnsupportedVersion(u32),
    #[error("the file is truncated: it ends inside {0}")]
    Truncated(String),
    #[error("{what} count {count} is implausible (at most {max} fit in the file)")]
    TooMany { what: &'static str, count: u64, max: u64 },
    #[error("metadata key #{index} has unknown value type {value_type}")]
    BadValueType { index: u64, value_type: u32 },
    #[error("metadata key {key:?} holds an array of arrays, which llama.cpp does not read")]
    NestedArray { key: String },
    #[error("{0} is not valid UTF-8")]
    BadUtf8(String),
    #[error("metadata key {0:?} appears twice")]
    DuplicateKey(String),
    #[error("general.alignment must be a power-of-two u32, found {0}")]
    BadAlignment(String),
    #[error("tensor {name:?}: {reason}")]
    BadTensor { name: String, reason: String },
    #[error("tensor {name:?} ends at byte {end}, past the end of the file ({file_size} bytes): the download is incomplete or the file is corrupt")]
    TensorOutOfBounds { name: String, end: u64, file_size: u64 },
    #[error("no general.architecture key: not a model file")]
    MissingArchitecture,
    #[error("architecture {0:?} is not supported by the bundled llama.cpp")]
    UnknownArchitecture(String),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is not a usable model: {problem}", path.display())]
    Invalid { path: PathBuf, problem: Problem },
}

impl GgufError {
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            GgufError::Invalid { problem, .. } => Some(problem),
            GgufError::Io { .. } => None,
        }
    }
}

/// A scalar or string metadata value; arrays are summarised by their element type and length
/// (token lists run to 250k entries and are not needed to describe a model).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array { element: &'static str, len: u64 },
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(v) => Some(*v),
            Value::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// One tensor as the header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    /// ggml type id.
    pub ggml_type: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
    pub bytes: u64,
}

/// A validated header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: u32,
    pub file_size: u64,
    pub alignment: u64,
    /// Absolute file offset where tensor data starts.
    pub data_offset: u64,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
}

impl Header {
    pub fn architecture(&self) -> &str {
        self.metadata.get("general.architecture").and_then(Value::as_str).unwrap_or_default()
    }
    /// `{arch}.{suffix}`, e.g. `context_length`.
    pub fn arch_value(&self, suffix: &str) -> Option<&Value> {
        self.metadata.get(&format!("{}.{suffix}", self.architecture()))
    }
    pub fn name(&self) -> Option<&str> {
        self.metadata.get("general.name").and_then(Value::as_str)
    }
    pub fn context_length(&self) -> Option<u64> {
        self.arch_value("context_length").and_then(Value::as_u64)
    }
    pub fn chat_template(&self) -> Option<&str> {
        self.metadata.get("tokenizer.chat_template").and_then(Value::as_str)
    }
    /// Total parameter count (elements of all tensors), saturating: a hostile header's
    /// shapes must not overflow.
    pub fn parameters(&self) -> u64 {
        self.tensors.iter().map(|t| t.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).unwrap_or(u64::MAX)).fold(0, u64::saturating_add)
    }
    /// Bytes of tensor data (saturating).
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).fold(0, u64::saturating_add)
    }
}

/// Reads and validates the GGUF header of `path`. Reads only the header (a few MB at most for
/// large vocabularies), never the tensor data.
pub fn validate(path: &Path) -> Result<Header, GgufError> {
    let io = |source| GgufError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io)?;
    let file_size = file.metadata().map_err(io)?.len();
    let mut r = Reader { inner: BufReader::with_capacity(1 << 16, file), pos: 0, size: file_size };
    parse(&mut r).map_err(|e| match e {
        Fail::Io(source) => GgufError::Io { path: path.to_path_buf(), source },
        Fail::Bad(problem) => GgufError::Invalid { path: path.to_path_buf(), problem },
    })
}

/// Validates a GGUF header held in memory (`path` only names it in errors). For fuzzing and
/// for checking the first bytes of a download.
pub fn validate_bytes(bytes: &[u8], path: &Path) -> Result<Header, GgufError> {
    let mut r = Reader { inner: std::io::Cursor::new(bytes), pos: 0, size: bytes.len() as u64 };
    parse(&mut r).map_err(|e| match e {
        Fail::Io(source) => GgufError::Io { path: path.to_path_buf(), source },
        Fail::Bad(problem) => GgufError::Invalid { path: path.to_path_buf(), problem },
    })
}

enum Fail {
    Io(std::io::Error),
    Bad(Problem),
}

impl From<Problem> for Fail {
    fn from(p: Problem) -> Self {
        Fail::Bad(p)
    }
}

struct Reader<R> {
    inner: R,
    pos: u64,
    size: u64,
}

impl<R: Read + Seek> Reader<R> {
    fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn need(&self, n: u64, what: &dyn Fn() -> String) -> Result<(), Fail> {
        if n > self.remaining() {
            return Err(Problem::Truncated(what()).into());
        }
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], Fail> {
        self.need(N as u64, what)?;
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Fail::Bad(Problem::Truncated(what())),
            _ => Fail::Io(e),
        })?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, Fail> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, Fail> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<(), Fail> {
        self.need(n, what)?;
        let n = i64::try_from(n).map_err(|_| Fail::Bad(Problem::Truncated(what())))?;
        self.inner.seek_relative(n).map_err(Fail::Io)?;
        self.pos += n as u64;
        Ok(())
    }

    fn string(&mut self, what: &dyn Fn() -> String, max: u64) -> Result<String, Fail> {
        let len = self.u64(what)?;
        self.need(len, what)?;
        if len > max {
            return Err(Problem::TooMany { what: "string length", count: len, max }.into());
        }
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf).map_err(Fail::Io)?;
        self.pos += len;
        String::from_utf8(buf).map_err(|_| Problem::BadUtf8(what()).into())
    }

    fn skip_string(&mut self, what: &dyn Fn() -> String) -> Result<(), Fail> {
        let len = self.u64(what)?;
        self.skip(len, what)
    }
}

/// GGUF value types: (name, fixed size in bytes; 0 for string/array).
fn value_type(t: u32) -> Option<(&'static str, u64)> {
    Some(match t {
        0 => ("u8", 1),
        1 => ("i8", 1),
        2 => ("u16", 2),
        3 => ("i16", 2),
        4 => ("u32", 4),
        5 => ("i32", 4),
        6 => ("f32", 4),
        7 => ("bool", 1),
        8 => ("string", 0),
        9 => ("array", 0),
        10 => ("u64", 8),
        11 => ("i64", 8),
        12 => ("f64", 8),
        _ => return None,
    })
}

fn scalar<R: Read + Seek>(r: &mut Reader<R>, t: u32, what: &dyn Fn() -> String) -> Result<Value, Fail> {
    Ok(match t {
        0 => Value::Uint(u64::from(r.bytes::<1>(what)?[0])),
        1 => Value::Int(i64::from(r.bytes::<1>(what)?[0] as i8)),
        2 => Value::Uint(u64::from(u16::from_le_bytes(r.bytes(what)?))),
        3 => Value::Int(i64::from(i16::from_le_bytes(r.bytes(what)?))),
        4 => Value::Uint(u64::from(r.u32(what)?)),
        5 => Value::Int(i64::from(i32::from_le_bytes(r.bytes(what)?))),
        6 => Value::Float(f64::from(f32::from_le_bytes(r.bytes(what)?))),
        7 => Value::Bool(r.bytes::<1>(what)?[0] != 0),
        10 => Value::Uint(r.u64(what)?),
        11 => Value::Int(i64::from_le_bytes(r.bytes(what)?)),
        12 => Value::Float(f64::from_le_bytes(r.bytes(what)?)),
        8 => Value::Str(r.string(what, MAX_STRING)?),
        _ => unreachable!("checked by value_type"),
    })
}

/// Reads the header in file order: preamble, metadata, tensor infos; then checks that every
/// tensor's data lies inside the file and that llama.cpp knows the architecture.
fn parse<R: Read + Seek>(r: &mut Reader<R>) -> Result<Header, Fail> {
    let (version, n_tensors, n_kv) = preamble(r)?;
    let metadata = metadata(r, n_kv)?;
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::Uint(a)) if *a > 0 && a.is_power_of_two() && *a <= u64::from(u32::MAX) => *a,
        Some(other) => return Err(Problem::BadAlignment(format!("{other:?}")).into()),
    };
    let tensors = tensor_infos(r, n_tensors, alignment)?;

    let data_offset = r.pos.div_ceil(alignment) * alignment;
    for t in &tensors {
        let end = data_offset.checked_add(t.offset).and_then(|s| s.checked_add(t.bytes)).unwrap_or(u64::MAX);
        if end > r.size {
            return Err(Problem::TensorOutOfBounds { name: t.name.clone(), end, file_size: r.size }.into());
        }
    }

    let header = Header { version, file_size: r.size, alignment, data_offset, metadata, tensors };
    match header.metadata.get("general.architecture") {
        None => return Err(Problem::MissingArchitecture.into()),
        Some(Value::Str(arch)) if KNOWN_ARCHITECTURES.contains(&arch.as_str()) => {}
        Some(Value::Str(arch)) => return Err(Problem::UnknownArchitecture(arch.clone()).into()),
        Some(other) => return Err(Problem::UnknownArchitecture(format!("{other:?}")).into()),
    }
    Ok(header)
}

/// Magic, version, tensor count and metadata count, the counts bounded by what the file's
/// size can hold.
fn preamble<R: Read + Seek>(r: &mut Reader<R>) -> Result<(u32, u64, u64), Fail> {
    if r.size == 0 {
        return Err(Problem::Empty.into());
    }
    if r.size < 4 {
        let mut buf = vec![0u8; r.size as usize];
        r.inner.read_exact(&mut buf).map_err(Fail::Io)?;
        return Err(Problem::NotGguf(String::from_utf8_lossy(&buf).into_owned()).into());
    }
    let magic = r.bytes::<4>(&|| "the magic".into())?;
    if &magic != MAGIC {
        return Err(Problem::NotGguf(String::from_utf8_lossy(&magic).into_owned()).into());
    }
    let version = r.u32(&|| "the version".into())?;
    if !(2..=3).contains(&version) {
        return Err(Problem::UnsupportedVersion(version).into());
    }
    let n_tensors = r.u64(&|| "the tensor count".into())?;
    let n_kv = r.u64(&|| "the metadata count".into())?;
    // Each tensor info takes at least 8 (name length) + 4 (dims) + 4 (type) + 8 (offset) bytes;
    // each kv at least 8 (key length) + 4 (type) + 1 (value).
    for (what, count, min, cap) in [("tensor", n_tensors, 24, MAX_TENSORS), ("metadata", n_kv, 13, MAX_KV)] {
        let max = (r.remaining() / min).min(cap);
        if count > max {
            return Err(Problem::TooMany { what, count, max }.into());
        }
    }
    Ok((version, n_tensors, n_kv))
}

/// The `n_kv` metadata pairs; arrays are skipped, keeping their element type and length.
fn metadata<R: Read + Seek>(r: &mut Reader<R>, n_kv: u64) -> Result<BTreeMap<String, Value>, Fail> {
    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key = r.string(&|| format!("metadata key #{i}"), MAX_STRING)?;
        let what = || format!("metadata value {key:?}");
        let t = r.u32(&what)?;
        let Some((_, _)) = value_type(t) else {
            return Err(Problem::BadValueType { index: i, value_type: t }.into());
        };
        let value = if t == 9 { skip_array(r, i, &key)? } else { scalar(r, t, &what)? };
        if metadata.insert(key.clone(), value).is_some() {
            return Err(Problem::DuplicateKey(key).into());
        }
    }
    Ok(metadata)
}

/// An array value (metadata pair `index`, `key`) after its type: read its element type and
/// length, skip its elements.
fn skip_array<R: Read + Seek>(r: &mut Reader<R>, index: u64, key: &str) -> Result<Value, Fail> {
    let what = || format!("metadata value {key:?}");
    let et = r.u32(&what)?;
    let Some((element, size)) = value_type(et) else {
        return Err(Problem::BadValueType { index, value_type: et }.into());
    };
    if et == 9 {
        return Err(Problem::NestedArray { key: key.to_owned() }.into());
    }
    let len = r.u64(&what)?;
    // Strings take at least their 8-byte length each.
    let min = if et == 8 { 8 } else { size };
    if len > r.remaining() / min {
        return Err(Problem::Truncated(what()).into());
    }
    if et == 8 {
        for _ in 0..len {
            r.skip_string(&what)?;
        }
    } else {
        r.skip(len * size, &what)?;
    }
    Ok(Value::Array { element, len })
}

/// The `n_tensors` tensor infos, each checked as llama.cpp checks it (name length, dimensions,
/// type and size, aligned offset, unique name).
fn tensor_infos<R: Read + Seek>(r: &mut Reader<R>, n_tensors: u64, alignment: u64) -> Result<Vec<TensorInfo>, Fail> {
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors.min(4096) as usize);
    let mut names = std::collections::HashSet::new();
    for i in 0..n_tensors {
        let name = r.string(&|| format!("tensor info #{i}"), MAX_NAME as u64 * 4)?;
        let what = || format!("tensor info {name:?}");
        let bad = |reason: String| Fail::Bad(Problem::BadTensor { name: name.clone(), reason });
        if name.len() >= MAX_NAME {
            return Err(bad(format!("name is {} bytes, llama.cpp allows {}", name.len(), MAX_NAME - 1)));
        }
        let n_dims = r.u32(&what)?;
        if n_dims > MAX_DIMS {
            return Err(bad(format!("{n_dims} dimensions (at most {MAX_DIMS} allowed)")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64(&what)?);
        }
        let ggml_type = r.u32(&what)?;
        let offset = r.u64(&what)?;
        let bytes = tensor_bytes(&dims, ggml_type).map_err(bad)?;
        if offset % alignment != 0 {
            return Err(bad(format!("data offset {offset} is not a multiple of the alignment {alignment}")));
        }
        if !names.insert(name.clone()) {
            return Err(bad("appears twice".into()));
        }
        tensors.push(TensorInfo { name, dims, ggml_type, offset, bytes });
    }
    Ok(tensors)
}

/// Bytes of a tensor's data by the bundled ggml's type table, with llama.cpp's overflow rules.
fn tensor_bytes(dims: &[u64], ggml_type: u32) -> Result<u64, String> {
    let (block, type_size) = crate::ggml::type_sizes(ggml_type).ok_or_else(|| format!("unknown ggml type {ggml_type}"))?;
    let mut elements: u64 = 1;
    for &d in dims {
        if d > i64::MAX as u64 {
            return Err(format!("dimension {d} is out of range"));
        }
        elements = elements.checked_mul(d).filter(|&e| e <= i64::MAX as u64).ok_or_else(|| format!("shape {dims:?} overflows"))?;
    }
    // A 0-dimensional tensor is a scalar, as in ggml.
    let ne0 = dims.first().copied().unwrap_or(1);
    if ne0 % block != 0 {
        return Err(format!("first dimension {ne0} is not a multiple of the type's block size {block}"));
    }
    (elements / block).checked_mul(type_size).ok_or_else(|| format!("shape {dims:?} overflows"))
}
