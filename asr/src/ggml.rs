//! Writer for the legacy whisper.cpp GGML model file (what `whisper_model_load` reads).
//!
//! Layout, all little-endian i32 unless noted: magic; 11 hyper-parameters; mel filters (n_mel, n_fft, then
//! n_mel × n_fft f32); vocabulary (count, then per token a u32 length and raw bytes); then tensors until EOF, each
//! n_dims, name length, type (0 = f32, 1 = f16, 8 = q8_0), dims innermost first (reversed PyTorch shape), name, data.

use std::io::Write;

use crate::convert::ConvertError;
use crate::mel::MelFilters;

/// "ggml" read as a little-endian u32.
pub const GGML_MAGIC: u32 = 0x6767_6d6c;

/// whisper.cpp's hyper-parameters, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_mels: usize,
    /// 1 = "mostly f16" ([`FTYPE_MOSTLY_Q8_0`] for Q8_0): the type whisper.cpp allocates the big
    /// matrices with.
    pub ftype: usize,
}

impl Hparams {
    fn fields(&self) -> [(&'static str, usize); 11] {
        [
            ("n_vocab", self.n_vocab),
            ("n_audio_ctx", self.n_audio_ctx),
            ("n_audio_state", self.n_audio_state),
            ("n_audio_head", self.n_audio_head),
            ("n_audio_layer", self.n_audio_layer),
            ("n_text_ctx", self.n_text_ctx),
            ("n_text_state", self.n_text_state),
            ("n_text_head", self.n_text_head),
            ("n_text_layer", self.n_text_layer),
            ("n_mels", self.n_mels),
            ("ftype", self.ftype),
        ]
    }

    /// Tensor count whisper.cpp insists on: it fails the load unless every tensor it allocated was filled.
    pub fn expected_tensors(&self) -> usize {
        7 + 15 * self.n_audio_layer + 4 + 24 * self.n_text_layer
    }
}

/// Element types whisper.cpp's loader accepts for these models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    /// Blocks of 32 weights along a row: an f16 scale, then 32 signed bytes (`round(w / scale)`).
    Q8_0,
}

/// Weights per Q8_0 block, and the block's bytes (f16 scale + 32 × i8).
pub const Q8_0_BLOCK: usize = 32;
pub const Q8_0_BLOCK_BYTES: usize = 2 + Q8_0_BLOCK;

impl GgmlType {
    pub fn code(self) -> i32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q8_0 => 8,
        }
    }

    /// Bytes of `elements` values (a whole number of blocks for Q8_0).
    pub fn bytes(self, elements: usize) -> usize {
        match self {
            Self::F32 => elements * 4,
            Self::F16 => elements * 2,
            Self::Q8_0 => elements.div_ceil(Q8_0_BLOCK) * Q8_0_BLOCK_BYTES,
        }
    }
}

/// ggml's `GGML_FTYPE_MOSTLY_Q8_0` with its quantisation format version (2) times 1000, as
/// whisper.cpp's own quantiser writes it; the loader splits the two again.
pub const FTYPE_MOSTLY_Q8_0: usize = 7 + 2 * 1000;

fn field(what: &'static str, value: usize) -> Result<[u8; 4], ConvertError> {
    i32::try_from(value)
        .map(i32::to_le_bytes)
        .map_err(|_| ConvertError::FieldOverflow { what, value })
}

fn put(w: &mut impl Write, bytes: &[u8]) -> Result<(), ConvertError> {
    w.write_all(bytes).map_err(ConvertError::Write)
}

/// Everything before the tensors.
pub(crate) fn write_header(
    w: &mut impl Write,
    hp: &Hparams,
    mel: &MelFilters,
    vocab: &[Vec<u8>],
) -> Result<(), ConvertError> {
    put(w, &GGML_MAGIC.to_le_bytes())?;
    for (what, value) in hp.fields() {
        put(w, &field(what, value)?)?;
    }
    put(w, &field("n_mel", mel.n_mel)?)?;
    put(w, &field("n_fft", mel.n_bins)?)?;
    let mut buf = Vec::with_capacity(mel.data.len() * 4);
    for v in &mel.data {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    put(w, &buf)?;
    put(w, &field("vocabulary size", vocab.len())?)?;
    for token in vocab {
        put(w, &field("token length", token.len())?)?;
        put(w, token)?;
    }
    Ok(())
}

/// One tensor's header; `shape` is in PyTorch order (outermost first).
pub(crate) fn write_tensor_header(
    w: &mut impl Write,
    name: &str,
    shape: &[usize],
    ty: GgmlType,
) -> Result<(), ConvertError> {
    put(w, &field("n_dims", shape.len())?)?;
    put(w, &field("name length", name.len())?)?;
    put(w, &ty.code().to_le_bytes())?;
    for &d in shape.iter().rev() {
        put(w, &field("dimension", d)?)?;
    }
    put(w, name.as_bytes())
}

#[cfg(test)]
pub(crate) mod reader {
    //! Minimal reader mirroring `whisper_model_load`, so tests check what whisper.cpp would see.
    use super::*;

    #[derive(Debug)]
    pub(crate) struct Tensor {
        pub name: String,
        /// GGML order: innermost first.
        pub ne: Vec<usize>,
        pub ty: GgmlType,
        pub data: Vec<u8>,
    }

    impl Tensor {
        pub(crate) fn f32s(&self) -> Vec<f32> {
            match self.ty {
                GgmlType::F32 => self
                    .data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                GgmlType::F16 => self
                    .data
                    .chunks_exact(2)
                    .map(|c| crate::half::f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                GgmlType::Q8_0 => self
                    .data
                    .chunks_exact(Q8_0_BLOCK_BYTES)
                    .flat_map(|b| {
                        let d = crate::half::f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                        b[2..].iter().map(move |&q| f32::from(q as i8) * d)
                    })
                    .collect(),
            }
        }
    }

    #[derive(Debug)]
    pub(crate) struct GgmlFile {
        pub hparams: [i32; 11],
        pub n_mel: usize,
        pub n_fft: usize,
        pub mel: Vec<f32>,
        pub vocab: Vec<Vec<u8>>,
        pub tensors: Vec<Tensor>,
    }

    struct Cursor<'a>(&'a [u8]);

    impl Cursor<'_> {
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            let (head, tail) = self.0.split_at(n);
            self.0 = tail;
            head.to_vec()
        }
        fn i32(&mut self) -> i32 {
            let b = self.bytes(4);
            i32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }
    }

    pub(crate) fn read(bytes: &[u8]) -> GgmlFile {
        let mut c = Cursor(bytes);
        assert_eq!(c.i32() as u32, GGML_MAGIC);
        let mut hparams = [0i32; 11];
        for h in &mut hparams {
            *h = c.i32();
        }
        let n_mel = c.i32() as usize;
        let n_fft = c.i32() as usize;
        let mel = (0..n_mel * n_fft)
            .map(|_| f32::from_bits(c.i32() as u32))
            .collect();
        let n_vocab = c.i32() as usize;
        let vocab = (0..n_vocab)
            .map(|_| {
                let n = c.i32() as usize;
                c.bytes(n)
            })
            .collect();
        let mut tensors = Vec::new();
        while !c.0.is_empty() {
            let n_dims = c.i32() as usize;
            let len = c.i32() as usize;
            let ty = match c.i32() {
                0 => GgmlType::F32,
                1 => GgmlType::F16,
                8 => GgmlType::Q8_0,
                other => panic!("tensor type {other}"),
            };
            let ne: Vec<usize> = (0..n_dims).map(|_| c.i32() as usize).collect();
            let name = String::from_utf8(c.bytes(len)).unwrap();
            let data = c.bytes(ty.bytes(ne.iter().product::<usize>()));
            tensors.push(Tensor { name, ne, ty, data });
        }
        GgmlFile {
            hparams,
            n_mel,
            n_fft,
            mel,
            vocab,
            tensors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_tensor_round_trip_through_reader() {
        let hp = Hparams {
            n_vocab: 5,
            n_audio_ctx: 6,
            n_audio_state: 8,
            n_audio_head: 2,
            n_audio_layer: 1,
            n_text_ctx: 4,
            n_text_state: 8,
            n_text_head: 2,
            n_text_layer: 1,
            n_mels: 2,
            ftype: 1,
        };
        let mel = MelFilters {
            n_mel: 2,
            n_bins: 3,
            data: vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5],
        };
        let vocab = vec![b"a".to_vec(), vec![], "场".as_bytes().to_vec()];
        let mut out = Vec::new();
        write_header(&mut out, &hp, &mel, &vocab).unwrap();
        write_tensor_header(&mut out, "encoder.conv1.weight", &[8, 2, 3], GgmlType::F16).unwrap();
        out.extend(std::iter::repeat_n(0u8, 8 * 2 * 3 * 2));
        let f = reader::read(&out);
        assert_eq!(f.hparams, [5, 6, 8, 2, 1, 4, 8, 2, 1, 2, 1]);
        assert_eq!(
            (f.n_mel, f.n_fft, f.mel.as_slice()),
            (2, 3, mel.data.as_slice())
        );
        assert_eq!(f.vocab, vocab);
        assert_eq!(f.tensors.len(), 1);
        assert_eq!(f.tensors[0].name, "encoder.conv1.weight");
        assert_eq!(f.tensors[0].ne, [3, 2, 8]);
        assert_eq!(f.tensors[0].ty, GgmlType::F16);
        assert_eq!(hp.expected_tensors(), 7 + 15 + 4 + 24);
    }

    #[test]
    fn oversized_fields_are_errors() {
        let err =
            write_tensor_header(&mut Vec::new(), "x", &[1usize << 40], GgmlType::F32).unwrap_err();
        assert!(matches!(
            err,
            ConvertError::FieldOverflow {
                what: "dimension",
                ..
            }
        ));
    }
}
