//! Zero-copy reader for CTranslate2 `model.bin` (binary format version 6).
//!
//! Layout (all little-endian): u32 version; string spec name; u32 spec revision; u32 variable count; per variable
//! string name, u8 rank, rank × u32 dims, u8 dtype, u32 byte count, data; u32 alias count; per alias two strings.
//! A string is a u16 length (including the terminating NUL) followed by that many bytes.

use std::collections::HashMap;
use std::fmt;

use thiserror::Error;

/// The only binary version whose layout has been checked against real files.
pub const SUPPORTED_VERSION: u32 = 6;

/// Why a `model.bin` cannot be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Ct2Error {
    #[error("model.bin truncated at byte {offset}: {what} needs {needed} more bytes")]
    Truncated {
        offset: usize,
        needed: usize,
        what: &'static str,
    },
    #[error("CTranslate2 binary version {0} is not supported (only {SUPPORTED_VERSION})")]
    UnsupportedVersion(u32),
    #[error("string at byte {offset} is not NUL-terminated UTF-8")]
    BadString { offset: usize },
    #[error("variable {name}: unknown dtype code {code}")]
    UnknownDtype { name: String, code: u8 },
    #[error("variable {name}: shape {shape:?} of {dtype} needs {expected:?} bytes but {actual} are stored")]
    SizeMismatch {
        name: String,
        shape: Vec<usize>,
        dtype: Ct2Dtype,
        expected: Option<usize>,
        actual: usize,
    },
    #[error("variable {0} appears twice")]
    DuplicateVariable(String),
    #[error("alias {alias} points to missing variable {target}")]
    DanglingAlias { alias: String, target: String },
    #[error("{0} bytes after the alias table")]
    TrailingBytes(usize),
}

/// CTranslate2's `DataType` enum, in its on-disk numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        match self {
            Self::F32 => 0,
            Self::I8 => 1,
            Self::I16 => 2,
            Self::I32 => 3,
            Self::F16 => 4,
            Self::Bf16 => 5,
        }
    }

    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

impl fmt::Display for Ct2Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "float32",
            Self::I8 => "int8",
            Self::I16 => "int16",
            Self::I32 => "int32",
            Self::F16 => "float16",
            Self::Bf16 => "bfloat16",
        })
    }
}

/// One stored variable; `data` borrows from the file bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ct2Variable<'a> {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: Ct2Dtype,
    pub data: &'a [u8],
}

impl Ct2Variable<'_> {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Value of a rank-0 integer attribute (e.g. `encoder/num_heads`), `None` for anything else.
    pub fn scalar_int(&self) -> Option<i64> {
        if !self.shape.is_empty() {
            return None;
        }
        match self.dtype {
            Ct2Dtype::I8 => self.data.first().map(|&b| i64::from(b as i8)),
            Ct2Dtype::I16 => self
                .data
                .get(..2)
                .and_then(|b| b.try_into().ok())
                .map(|b| i64::from(i16::from_le_bytes(b))),
            Ct2Dtype::I32 => self
                .data
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(|b| i64::from(i32::from_le_bytes(b))),
            _ => None,
        }
    }
}

/// A parsed `model.bin`.
#[derive(Debug, Clone)]
pub struct Ct2Model<'a> {
    pub version: u32,
    pub spec: String,
    pub revision: u32,
    pub variables: Vec<Ct2Variable<'a>>,
    /// `(alias, target)` pairs, e.g. the output projection tied to the token embedding.
    pub aliases: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl<'a> Ct2Model<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Ct2Error> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u32("binary version")?;
        if version != SUPPORTED_VERSION {
            return Err(Ct2Error::UnsupportedVersion(version));
        }
        let spec = r.string()?;
        let revision = r.u32("spec revision")?;
        let count = r.u32("variable count")? as usize;
        // Every variable takes at least 12 bytes, so a hostile count cannot make us over-allocate.
        let mut variables = Vec::with_capacity(count.min(r.remaining() / 12));
        let mut index = HashMap::new();
        for _ in 0..count {
            let name = r.string()?;
            let rank = usize::from(r.u8("rank")?);
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(r.u32("dimension")? as usize);
            }
            let code = r.u8("dtype")?;
            let dtype = Ct2Dtype::from_code(code).ok_or_else(|| Ct2Error::UnknownDtype {
                name: name.clone(),
                code,
            })?;
            let actual = r.u32("byte count")? as usize;
            let expected = shape
                .iter()
                .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
            if expected != Some(actual) {
                return Err(Ct2Error::SizeMismatch {
                    name,
                    shape,
                    dtype,
                    expected,
                    actual,
                });
            }
            let data = r.take(actual, "variable data")?;
            if index.insert(name.clone(), variables.len()).is_some() {
                return Err(Ct2Error::DuplicateVariable(name));
            }
            variables.push(Ct2Variable {
                name,
                shape,
                dtype,
                data,
            });
        }
        let n_aliases = r.u32("alias count")? as usize;
        let mut aliases = Vec::with_capacity(n_aliases.min(r.remaining() / 4));
        for _ in 0..n_aliases {
            let alias = r.string()?;
            let target = r.string()?;
            if !index.contains_key(&target) {
                return Err(Ct2Error::DanglingAlias { alias, target });
            }
            aliases.push((alias, target));
        }
        if r.remaining() != 0 {
            return Err(Ct2Error::TrailingBytes(r.remaining()));
        }
        Ok(Self {
            version,
            spec,
            revision,
            variables,
            aliases,
            index,
        })
    }

    /// Looks a variable up by name, following aliases.
    pub fn get(&self, name: &str) -> Option<&Ct2Variable<'a>> {
        let name = self
            .aliases
            .iter()
            .find(|(alias, _)| alias == name)
            .map_or(name, |(_, target)| target.as_str());
        self.index.get(name).and_then(|&i| self.variables.get(i))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Ct2Error> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or(Ct2Error::Truncated {
                offset: self.pos,
                needed: n,
                what,
            })?;
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Ct2Error> {
        let s = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Ct2Error> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Ct2Error> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self) -> Result<String, Ct2Error> {
        let offset = self.pos;
        let len = usize::from(u16::from_le_bytes(self.array("string length")?));
        let raw = self.take(len, "string")?;
        let body = raw
            .strip_suffix(&[0])
            .ok_or(Ct2Error::BadString { offset })?;
        std::str::from_utf8(body)
            .map(str::to_owned)
            .map_err(|_| Ct2Error::BadString { offset })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a CTranslate2 `model.bin`; `dtype_code` is raw so tests can write invalid codes.
    #[derive(Default)]
    pub(crate) struct Ct2Builder {
        pub version: Option<u32>,
        pub spec: Option<String>,
        pub vars: Vec<(String, Vec<usize>, u8, Vec<u8>)>,
        pub aliases: Vec<(String, String)>,
    }

    fn put_string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    impl Ct2Builder {
        pub(crate) fn var(&mut self, name: &str, shape: &[usize], dtype: Ct2Dtype, data: Vec<u8>) {
            self.vars
                .push((name.into(), shape.to_vec(), dtype.code(), data));
        }

        pub(crate) fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&self.version.unwrap_or(SUPPORTED_VERSION).to_le_bytes());
            put_string(&mut out, self.spec.as_deref().unwrap_or("WhisperSpec"));
            out.extend_from_slice(&3u32.to_le_bytes());
            out.extend_from_slice(&(self.vars.len() as u32).to_le_bytes());
            for (name, shape, code, data) in &self.vars {
                put_string(&mut out, name);
                out.push(shape.len() as u8);
                for d in shape {
                    out.extend_from_slice(&(*d as u32).to_le_bytes());
                }
                out.push(*code);
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
            out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
            for (a, t) in &self.aliases {
                put_string(&mut out, a);
                put_string(&mut out, t);
            }
            out
        }
    }

    fn sample() -> Ct2Builder {
        let mut b = Ct2Builder::default();
        let w: Vec<u8> = (0..6u16).flat_map(|i| (i * 3).to_le_bytes()).collect();
        b.var("decoder/embeddings/weight", &[3, 2], Ct2Dtype::F16, w);
        b.var(
            "encoder/num_heads",
            &[],
            Ct2Dtype::I16,
            6i16.to_le_bytes().to_vec(),
        );
        b.var("decoder/activation", &[], Ct2Dtype::I8, vec![3]);
        b.var(
            "x/bias",
            &[2],
            Ct2Dtype::F32,
            [1.5f32, -2.0]
                .iter()
                .flat_map(|f| f.to_le_bytes())
                .collect(),
        );
        b.aliases.push((
            "decoder/projection/weight".into(),
            "decoder/embeddings/weight".into(),
        ));
        b
    }

    #[test]
    fn round_trips_names_shapes_dtypes_and_aliases() {
        let bytes = sample().build();
        let m = Ct2Model::parse(&bytes).unwrap();
        assert_eq!(
            (m.version, m.spec.as_str(), m.revision),
            (6, "WhisperSpec", 3)
        );
        let names: Vec<&str> = m.variables.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "decoder/embeddings/weight",
                "encoder/num_heads",
                "decoder/activation",
                "x/bias"
            ]
        );
        let emb = m.get("decoder/embeddings/weight").unwrap();
        assert_eq!(
            (emb.shape.as_slice(), emb.dtype, emb.elements()),
            (&[3usize, 2][..], Ct2Dtype::F16, 6)
        );
        assert_eq!(&emb.data[..4], &[0, 0, 3, 0]);
        assert_eq!(m.get("decoder/projection/weight"), Some(emb));
        assert_eq!(
            m.get("encoder/num_heads").and_then(Ct2Variable::scalar_int),
            Some(6)
        );
        assert_eq!(
            m.get("decoder/activation")
                .and_then(Ct2Variable::scalar_int),
            Some(3)
        );
        assert_eq!(m.get("x/bias").map(|v| v.dtype), Some(Ct2Dtype::F32));
        assert_eq!(emb.scalar_int(), None);
        assert!(m.get("nope").is_none());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample().build();
        for cut in 0..bytes.len() {
            let err = Ct2Model::parse(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, Ct2Error::Truncated { .. } | Ct2Error::BadString { .. }),
                "cut at {cut}: {err:?}"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(
            Ct2Model::parse(&extra).unwrap_err(),
            Ct2Error::TrailingBytes(1)
        );
    }

    #[test]
    fn rejects_bad_version_dtype_size_and_aliases() {
        let mut b = sample();
        b.version = Some(5);
        assert_eq!(
            Ct2Model::parse(&b.build()).unwrap_err(),
            Ct2Error::UnsupportedVersion(5)
        );

        let mut b = sample();
        b.vars[0].2 = 9;
        assert!(matches!(
            Ct2Model::parse(&b.build()).unwrap_err(),
            Ct2Error::UnknownDtype { code: 9, .. }
        ));

        let mut b = sample();
        b.vars[0].3.pop();
        assert!(matches!(
            Ct2Model::parse(&b.build()).unwrap_err(),
            Ct2Error::SizeMismatch {
                expected: Some(12),
                actual: 11,
                ..
            }
        ));

        let mut b = sample();
        b.vars[0].1 = vec![u32::MAX as usize, u32::MAX as usize, u32::MAX as usize];
        assert!(matches!(
            Ct2Model::parse(&b.build()).unwrap_err(),
            Ct2Error::SizeMismatch { expected: None, .. }
        ));

        let mut b = sample();
        b.vars.push(b.vars[1].clone());
        assert_eq!(
            Ct2Model::parse(&b.build()).unwrap_err(),
            Ct2Error::DuplicateVariable("encoder/num_heads".into())
        );

        let mut b = sample();
        b.aliases.push(("a".into(), "missing".into()));
        assert!(matches!(
            Ct2Model::parse(&b.build()).unwrap_err(),
            Ct2Error::DanglingAlias { .. }
        ));

        let mut bytes = sample().build();
        bytes[4 + 2 + 11] = b'!'; // overwrite the NUL that ends "WhisperSpec"
        assert_eq!(
            Ct2Model::parse(&bytes).unwrap_err(),
            Ct2Error::BadString { offset: 4 }
        );
    }

    #[test]
    fn hostile_counts_do_not_allocate_or_panic() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&6u32.to_le_bytes());
        put_string(&mut bytes, "WhisperSpec");
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Ct2Model::parse(&bytes),
            Err(Ct2Error::Truncated { .. })
        ));
    }
}
