//! The speaker encoder's weights: conversion from Resemblyzer's checkpoint, our own file format, and install.
//!
//! File layout (all little endian): magic `VXVPRNT1`, tensor count u32, then per tensor name length u16, UTF-8
//! name, rank u8, dims u32 each, f32 data; finally the sha256 of everything before it. Self-checking, so a
//! truncated or flipped file is refused at load instead of producing plausible but wrong voiceprints.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::pickle::{parse_checkpoint, Tensor};
use super::VoiceprintError;
use crate::install::{ensure_wheel, hex, read_member, PYTHON};
use crate::model::WheelPin;
use crate::Progress;

const MAGIC: &[u8; 8] = b"VXVPRNT1";

/// Mel channels in, as in Resemblyzer's `hparams.py`.
pub const N_MELS: usize = 40;
/// LSTM hidden size and embedding size.
pub const HIDDEN: usize = 256;
pub const EMBEDDING_DIM: usize = 256;
pub const LAYERS: usize = 3;

/// The wheel carrying `resemblyzer/pretrained.pt` (GE2E encoder trained by Resemble AI, Apache-2.0).
pub(crate) const WHEEL: WheelPin<'static> = WheelPin {
    package: "Resemblyzer",
    version: "0.1.4",
    file_name: "Resemblyzer-0.1.4-py3-none-any.whl",
    sha256: "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f",
};
const MEMBER: &str = "resemblyzer/pretrained.pt";
const MEMBER_SHA256: &str = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e";

/// sha256 of the converted file: conversion only copies float bits, so any other result is a conversion bug.
const CONVERTED_SHA256: &str = "b3f599f346e320ee06796f4e610185ac6194aeda32fb1ffb82d751f261bf5249";

/// Installed file name in the models directory.
pub const FILE_NAME: &str = "voiceprint-resemblyzer-0.1.4.bin";

/// Tensors the encoder needs, with their shapes; the checkpoint's `similarity_*` (GE2E training scale) is dropped.
fn expected_tensors() -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    for l in 0..LAYERS {
        let input = if l == 0 { N_MELS } else { HIDDEN };
        v.push((format!("lstm.weight_ih_l{l}"), vec![4 * HIDDEN, input]));
        v.push((format!("lstm.weight_hh_l{l}"), vec![4 * HIDDEN, HIDDEN]));
        v.push((format!("lstm.bias_ih_l{l}"), vec![4 * HIDDEN]));
        v.push((format!("lstm.bias_hh_l{l}"), vec![4 * HIDDEN]));
    }
    v.push(("linear.weight".into(), vec![EMBEDDING_DIM, HIDDEN]));
    v.push(("linear.bias".into(), vec![EMBEDDING_DIM]));
    v
}

/// One LSTM layer in PyTorch's gate order (input, forget, cell, output); the two biases are pre-summed.
#[derive(Debug, Clone)]
pub(crate) struct LstmLayer {
    pub input: usize,
    /// `4·HIDDEN × input`, row-major.
    pub w_ih: Vec<f32>,
    /// `4·HIDDEN × HIDDEN`, row-major.
    pub w_hh: Vec<f32>,
    pub bias: Vec<f32>,
}

#[derive(Debug, Clone)]
pub(crate) struct Weights {
    pub lstm: Vec<LstmLayer>,
    /// `EMBEDDING_DIM × HIDDEN`, row-major.
    pub linear_w: Vec<f32>,
    pub linear_b: Vec<f32>,
}

impl Weights {
    /// Picks the expected tensors out of a state dict, checking every shape.
    pub(crate) fn from_tensors(tensors: Vec<Tensor>) -> Result<Self, VoiceprintError> {
        let mut tensors = tensors;
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>, VoiceprintError> {
            let i = tensors
                .iter()
                .position(|t| t.name == name)
                .ok_or_else(|| VoiceprintError::Model(format!("tensor {name} missing")))?;
            let t = tensors.swap_remove(i);
            if t.shape != shape || t.data.len() != shape.iter().product::<usize>() {
                return Err(VoiceprintError::Model(format!(
                    "tensor {name} has shape {:?}, {shape:?} expected",
                    t.shape
                )));
            }
            Ok(t.data)
        };
        let mut lstm = Vec::with_capacity(LAYERS);
        for l in 0..LAYERS {
            let input = if l == 0 { N_MELS } else { HIDDEN };
            let w_ih = take(&format!("lstm.weight_ih_l{l}"), &[4 * HIDDEN, input])?;
            let w_hh = take(&format!("lstm.weight_hh_l{l}"), &[4 * HIDDEN, HIDDEN])?;
            let b_ih = take(&format!("lstm.bias_ih_l{l}"), &[4 * HIDDEN])?;
            let b_hh = take(&format!("lstm.bias_hh_l{l}"), &[4 * HIDDEN])?;
            let bias = b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect();
            lstm.push(LstmLayer {
                input,
                w_ih,
                w_hh,
                bias,
            });
        }
        let linear_w = take("linear.weight", &[EMBEDDING_DIM, HIDDEN])?;
        let linear_b = take("linear.bias", &[EMBEDDING_DIM])?;
        Ok(Self {
            lstm,
            linear_w,
            linear_b,
        })
    }
}

/// Converts `pretrained.pt` bytes into our file format (only the tensors the encoder uses, bit-exact).
pub fn convert_checkpoint(pt: &[u8]) -> Result<Vec<u8>, VoiceprintError> {
    let ck = parse_checkpoint(pt)?;
    let state = ck.state_dict("model_state")?;
    let mut out = Vec::with_capacity(pt.len());
    out.extend_from_slice(MAGIC);
    let wanted = expected_tensors();
    out.extend_from_slice(&(wanted.len() as u32).to_le_bytes());
    for (name, shape) in &wanted {
        let t = state
            .iter()
            .find(|t| &t.name == name)
            .ok_or_else(|| VoiceprintError::Model(format!("checkpoint lacks {name}")))?;
        if &t.shape != shape {
            return Err(VoiceprintError::Model(format!(
                "checkpoint {name} has shape {:?}, {shape:?} expected",
                t.shape
            )));
        }
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(shape.len() as u8);
        for d in shape {
            out.extend_from_slice(&(*d as u32).to_le_bytes());
        }
        for v in &t.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    Ok(out)
}

/// Parses and checks a file written by [`convert_checkpoint`].
pub(crate) fn parse_file(bytes: &[u8]) -> Result<Weights, VoiceprintError> {
    let bad = |what: &str| VoiceprintError::Model(what.to_owned());
    let body_len = bytes
        .len()
        .checked_sub(32)
        .ok_or_else(|| bad("file too short"))?;
    let (body, digest) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != digest {
        return Err(bad("checksum mismatch (truncated or corrupt file)"));
    }
    let mut r = Reader { b: body, pos: 0 };
    if r.take(8)? != MAGIC {
        return Err(bad("not a voxgate voiceprint model (bad magic)"));
    }
    let count = r.u32()? as usize;
    let mut tensors = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = usize::from(u16::from_le_bytes([r.u8()?, r.u8()?]));
        let name = String::from_utf8_lossy(r.take(n)?).into_owned();
        let rank = usize::from(r.u8()?);
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(r.u32()? as usize);
        }
        let len: usize = shape.iter().product();
        let raw = r.take(len.checked_mul(4).ok_or_else(|| bad("tensor too large"))?)?;
        let data = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.push(Tensor { name, shape, data });
    }
    Weights::from_tensors(tensors)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], VoiceprintError> {
        let s = self
            .b
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or_else(|| VoiceprintError::Model("file ends inside a tensor".into()))?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, VoiceprintError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }
    fn u32(&mut self) -> Result<u32, VoiceprintError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The voiceprint model's path in `dir` if it is installed and intact.
pub fn installed(dir: &Path) -> Option<PathBuf> {
    let path = dir.join(FILE_NAME);
    let bytes = fs::read(&path).ok()?;
    parse_file(&bytes).ok().map(|_| path)
}

/// Fetches the pinned Resemblyzer wheel with pip (cached in `cache`), converts its `pretrained.pt` and writes
/// [`FILE_NAME`] into `dir` atomically; a verified existing file is reused. What `voxgate models install --model
/// voiceprint` calls.
pub fn install(
    dir: &Path,
    cache: &Path,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<PathBuf, VoiceprintError> {
    install_with(dir, cache, std::ffi::OsStr::new(PYTHON), progress)
}

pub(crate) fn install_with(
    dir: &Path,
    cache: &Path,
    python: &std::ffi::OsStr,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<PathBuf, VoiceprintError> {
    let path = dir.join(FILE_NAME);
    progress(Progress::Verifying { path: &path });
    if let Some(p) = installed(dir) {
        return Ok(p);
    }
    let io = |op: &'static str, p: &Path| {
        let p = p.to_owned();
        move |source| VoiceprintError::Io {
            op,
            path: p,
            source,
        }
    };
    fs::create_dir_all(cache).map_err(io("create", cache))?;
    fs::create_dir_all(dir).map_err(io("create", dir))?;
    let wheel = ensure_wheel(&WHEEL, cache, python, progress)?;
    let file = File::open(&wheel).map_err(io("open", &wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|source| {
        VoiceprintError::Install(crate::InstallError::Zip {
            wheel: wheel.clone(),
            source,
        })
    })?;
    let mut pt = Vec::new();
    read_member(&mut archive, &wheel, MEMBER, &mut pt, progress)?;
    let actual = hex(&Sha256::digest(&pt));
    if actual != MEMBER_SHA256 {
        return Err(VoiceprintError::Model(format!(
            "{MEMBER} has sha256 {actual}, {MEMBER_SHA256} pinned"
        )));
    }
    let converted = convert_checkpoint(&pt)?;
    let sha = hex(&Sha256::digest(&converted));
    if sha != CONVERTED_SHA256 {
        return Err(VoiceprintError::Model(format!(
            "converted model has sha256 {sha}, {CONVERTED_SHA256} expected"
        )));
    }
    parse_file(&converted)?;
    let tmp = dir.join(format!(".{FILE_NAME}.partial-{}", std::process::id()));
    let written = (|| {
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&converted).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("sync", &tmp))?;
        fs::rename(&tmp, &path).map_err(io("rename into", &path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    tracing::info!(path = %path.display(), bytes = converted.len(), "voiceprint model installed");
    Ok(path)
}
