//! Caller voiceprints: Resemblyzer's GE2E speaker encoder, run in pure Rust on 8 kHz phone audio.
//!
//! - [`install`]: fetch the pinned `Resemblyzer==0.1.4` wheel with pip and convert its `pretrained.pt` (legacy
//!   torch pickle, read by [`pickle`]) into our own checksummed file; no Python or torch at run time.
//! - [`SpeakerEncoder`]: audio → 256-d L2-normalised [`Embedding`], front end as in Resemblyzer (see
//!   [`frontend`]), the 8 kHz input resampled to 16 kHz with voxgate-media's band-limited resampler.
//! - [`Enrollment`] collects speech over several turns into a [`Template`], which serialises to a few hundred
//!   bytes for per-customer storage: raw audio is never kept beyond the short turns awaiting enough speech.
//! - [`verify`]: cosine score against a threshold.
//!
//! Voiceprints are a convenience signal, not authentication: replayed or synthesised speech passes them.

mod encoder;
pub mod frontend;
pub mod pickle;
mod weights;

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use voxgate_media::resample::{i16_to_f32, resample, ResampleError};

pub use weights::{
    convert_checkpoint, install, installed, EMBEDDING_DIM, FILE_NAME as MODEL_FILE_NAME,
};

/// Input rate voxgate's pipeline delivers.
pub const INPUT_RATE_HZ: u32 = 8_000;
/// Least speech one embedding is computed from: one full 1.6 s partial utterance. Shorter audio would be padded
/// with silence by Resemblyzer and give unreliable voiceprints, so it is refused.
pub const MIN_SPEECH: Duration = Duration::from_millis(1_600);
/// Default speech an enrolment collects before it yields a template.
pub const DEFAULT_ENROLL_SPEECH: Duration = Duration::from_secs(8);

#[derive(Debug, Error)]
pub enum VoiceprintError {
    #[error("not enough speech: {got:?} of at least {need:?}")]
    NotEnoughSpeech { got: Duration, need: Duration },
    #[error("voiceprint model: {0}")]
    Model(String),
    #[error("voiceprint model checkpoint")]
    Pickle(#[from] pickle::PickleError),
    #[error(transparent)]
    Install(#[from] crate::InstallError),
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resample audio for the speaker encoder")]
    Resample(#[from] ResampleError),
    #[error("bad voiceprint template: {0}")]
    Template(&'static str),
}

/// How long `samples` of [`INPUT_RATE_HZ`] audio last.
pub fn duration_of(samples: usize) -> Duration {
    Duration::from_micros(samples as u64 * 1_000_000 / u64::from(INPUT_RATE_HZ))
}

/// A speaker embedding: `EMBEDDING_DIM` non-negative floats of unit length.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(Vec<f32>);

impl Embedding {
    /// Normalises `v` to unit length; `None` for a zero or non-finite vector.
    pub fn from_vec(mut v: Vec<f32>) -> Option<Self> {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if v.len() != EMBEDDING_DIM || !norm.is_finite() || norm == 0.0 {
            return None;
        }
        v.iter_mut().for_each(|x| *x /= norm);
        Some(Self(v))
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// Cosine similarity (both are unit length, so the dot product); GE2E embeddings are non-negative, so it lies
    /// in 0..=1.
    pub fn similarity(&self, other: &Embedding) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }

    /// Unit-length mean of several embeddings (Resemblyzer's `embed_speaker`).
    pub fn mean<'a>(items: impl IntoIterator<Item = &'a Embedding>) -> Option<Embedding> {
        let mut sum = vec![0f32; EMBEDDING_DIM];
        for e in items {
            sum.iter_mut().zip(&e.0).for_each(|(s, v)| *s += v);
        }
        Self::from_vec(sum)
    }
}

/// Loaded encoder; immutable, so one instance can serve several worker threads.
#[derive(Debug)]
pub struct SpeakerEncoder {
    weights: weights::Weights,
    mel: frontend::MelFrontEnd,
}

impl SpeakerEncoder {
    /// Loads a file written by [`install`]; its checksum and every tensor shape are checked.
    pub fn load(path: &Path) -> Result<Self, VoiceprintError> {
        let bytes = std::fs::read(path).map_err(|source| VoiceprintError::Io {
            op: "read",
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VoiceprintError> {
        Ok(Self {
            weights: weights::parse_file(bytes)?,
            mel: frontend::MelFrontEnd::new(),
        })
    }

    /// Embeds speech-only 8 kHz audio (at least [`MIN_SPEECH`]).
    pub fn embed(&self, pcm_8k: &[i16]) -> Result<Embedding, VoiceprintError> {
        let got = duration_of(pcm_8k.len());
        if got < MIN_SPEECH {
            return Err(VoiceprintError::NotEnoughSpeech {
                got,
                need: MIN_SPEECH,
            });
        }
        let floats: Vec<f32> = pcm_8k.iter().map(|&s| i16_to_f32(s)).collect();
        let wav = resample(&floats, INPUT_RATE_HZ, frontend::SAMPLE_RATE)?;
        self.embed_16k(wav)
    }

    /// Embeds 16 kHz float audio (±1.0) exactly as Resemblyzer's `preprocess_wav` (minus VAD trimming) followed
    /// by `embed_utterance` would.
    pub fn embed_16k(&self, mut wav: Vec<f32>) -> Result<Embedding, VoiceprintError> {
        frontend::normalize_volume(&mut wav);
        let starts = frontend::partial_starts(wav.len());
        let last = starts.last().copied().unwrap_or(0);
        let frames = last + frontend::PARTIAL_FRAMES;
        // Resemblyzer zero-pads the wave to the last partial's end; the centred STFT then sees those zeros.
        if wav.len() < frames * 160 {
            wav.resize(frames * 160, 0.0);
        }
        let mel = self.mel.mel(&wav, frames)?;
        let n = weights::N_MELS;
        let mut batch = Vec::with_capacity(starts.len() * frontend::PARTIAL_FRAMES * n);
        for &s in &starts {
            batch.extend_from_slice(&mel[s * n..(s + frontend::PARTIAL_FRAMES) * n]);
        }
        let partials = encoder::forward(
            &self.weights,
            &batch,
            starts.len(),
            frontend::PARTIAL_FRAMES,
        );
        let partials: Vec<Embedding> = partials.into_iter().map(Embedding).collect();
        Embedding::mean(&partials).ok_or(VoiceprintError::Model(
            "encoder produced a zero embedding".into(),
        ))
    }
}

/// Keeps the 20 ms frames that carry speech: endpointed turns include pre-roll and most of a second of trailing
/// silence, which Resemblyzer trims with its own VAD before embedding. A frame is kept when it is within 40 dB
/// of the turn's loudest frame and above -55 dBFS.
pub fn speech_only(pcm_8k: &[i16]) -> Vec<i16> {
    const FRAME: usize = INPUT_RATE_HZ as usize / 50;
    let energy = |f: &[i16]| f.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / f.len() as f64;
    let loudest = pcm_8k.chunks(FRAME).map(energy).fold(0.0, f64::max);
    // -55 dBFS and 40 dB as power ratios.
    let floor = (f64::from(i16::MAX).powi(2) * 10f64.powf(-5.5)).max(loudest * 1e-4);
    pcm_8k
        .chunks(FRAME)
        .filter(|f| energy(f) >= floor)
        .flatten()
        .copied()
        .collect()
}

/// A customer's enrolled voiceprint: the mean embedding and how much speech it was built from.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub embedding: Embedding,
    pub speech: Duration,
    pub segments: u32,
}

const TEMPLATE_MAGIC: &[u8; 4] = b"VXVT";
const TEMPLATE_VERSION: u8 = 1;
/// Identifies the encoder; a template from another model is meaningless and refused.
const MODEL_ID: u8 = 1;
const TEMPLATE_BYTES: usize = 4 + 1 + 1 + 4 + 4 + EMBEDDING_DIM * 4;

impl Template {
    /// Fixed-size little-endian encoding (1 034 bytes) for storage with the customer record.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TEMPLATE_BYTES);
        out.extend_from_slice(TEMPLATE_MAGIC);
        out.push(TEMPLATE_VERSION);
        out.push(MODEL_ID);
        let ms = u32::try_from(self.speech.as_millis()).unwrap_or(u32::MAX);
        out.extend_from_slice(&ms.to_le_bytes());
        out.extend_from_slice(&self.segments.to_le_bytes());
        for v in self.embedding.as_slice() {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, VoiceprintError> {
        if b.len() != TEMPLATE_BYTES {
            return Err(VoiceprintError::Template("wrong length"));
        }
        if &b[..4] != TEMPLATE_MAGIC || b[4] != TEMPLATE_VERSION {
            return Err(VoiceprintError::Template("not a voiceprint template"));
        }
        if b[5] != MODEL_ID {
            return Err(VoiceprintError::Template("made with another speaker model"));
        }
        let ms = u32::from_le_bytes([b[6], b[7], b[8], b[9]]);
        let segments = u32::from_le_bytes([b[10], b[11], b[12], b[13]]);
        let v = b[14..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let v: Vec<f32> = v;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        // Stored unit-length: keep the exact bits rather than renormalising (round trips are lossless).
        if !(norm - 1.0).abs().lt(&1e-3) {
            return Err(VoiceprintError::Template("embedding is not unit length"));
        }
        let embedding = Embedding(v);
        Ok(Self {
            embedding,
            speech: Duration::from_millis(u64::from(ms)),
            segments,
        })
    }
}

/// Collects a caller's speech across turns. Turns of at least [`MIN_SPEECH`] are embedded at once; shorter
/// ones wait (in memory only) and are embedded joined with the next ones.
#[derive(Debug)]
pub struct Enrollment {
    need: Duration,
    embeddings: Vec<Embedding>,
    speech: Duration,
    pending: Vec<i16>,
}

impl Enrollment {
    /// An enrolment that completes after `need` of embedded speech (e.g. [`DEFAULT_ENROLL_SPEECH`]).
    pub fn new(need: Duration) -> Self {
        Self {
            need: need.max(MIN_SPEECH),
            embeddings: Vec::new(),
            speech: Duration::ZERO,
            pending: Vec::new(),
        }
    }

    /// Adds one speech-only turn (8 kHz). Returns whether enough speech has now been collected.
    pub fn add(
        &mut self,
        encoder: &SpeakerEncoder,
        pcm_8k: &[i16],
    ) -> Result<bool, VoiceprintError> {
        self.pending.extend_from_slice(pcm_8k);
        if duration_of(self.pending.len()) >= MIN_SPEECH {
            let e = encoder.embed(&self.pending)?;
            self.speech += duration_of(self.pending.len());
            self.embeddings.push(e);
            self.pending.clear();
        }
        Ok(self.is_complete())
    }

    pub fn is_complete(&self) -> bool {
        self.speech >= self.need
    }

    /// Speech embedded so far (short turns still waiting are not counted).
    pub fn speech(&self) -> Duration {
        self.speech
    }

    /// The template, once [`Self::is_complete`].
    pub fn template(&self) -> Result<Template, VoiceprintError> {
        if !self.is_complete() {
            return Err(VoiceprintError::NotEnoughSpeech {
                got: self.speech,
                need: self.need,
            });
        }
        let embedding =
            Embedding::mean(&self.embeddings).ok_or(VoiceprintError::Template("zero vector"))?;
        Ok(Template {
            embedding,
            speech: self.speech,
            segments: u32::try_from(self.embeddings.len()).unwrap_or(u32::MAX),
        })
    }
}

/// Outcome of checking a caller against a template; `score` is the cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Accept {
        score: f32,
    },
    Reject {
        score: f32,
    },
    /// Too little speech to decide; ask the caller to keep talking.
    NotEnoughSpeech {
        got: Duration,
        need: Duration,
    },
}

/// Accepts when the cosine similarity reaches `threshold`.
pub fn verify(template: &Template, embedding: &Embedding, threshold: f32) -> Verdict {
    let score = template.embedding.similarity(embedding);
    if score >= threshold {
        Verdict::Accept { score }
    } else {
        Verdict::Reject { score }
    }
}

impl SpeakerEncoder {
    /// Embeds `pcm_8k` and [`verify`]s it; too short audio is a verdict, not an error.
    pub fn verify_pcm(
        &self,
        template: &Template,
        pcm_8k: &[i16],
        threshold: f32,
    ) -> Result<Verdict, VoiceprintError> {
        match self.embed(pcm_8k) {
            Ok(e) => Ok(verify(template, &e, threshold)),
            Err(VoiceprintError::NotEnoughSpeech { got, need }) => {
                Ok(Verdict::NotEnoughSpeech { got, need })
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
