//! voxgate's benchmark suite (issue 6): a load generator, the scenarios that drive a real `voxgate run`
//! with it (capacity, barge-in and response latency, SIP, memory), ASR and VAD against their peers,
//! micro-benchmarks, and the report writer.
//!
//! `benches/run` is the one command; the pure parts (statistics, RTP accounting, WER, plots) are unit
//! tested here and need no network, models or tools.

pub mod corpus;
pub mod fixtures;
pub mod loadgen;
pub mod procfs;
pub mod report;
pub mod rtp;
pub mod sections;
pub mod stats;
pub mod svg;
pub mod target;
pub mod tools;
pub mod wer;

use std::path::{Path, PathBuf};

/// What can stop a benchmark section. Sections report it in the report and the suite goes on.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no free port on loopback")]
    NoFreePort,
    #[error("voxgate exited during start-up ({status}); log tail:\n{log_tail}")]
    TargetExited { status: String, log_tail: String },
    #[error("voxgate did not answer /healthz in time; log tail:\n{log_tail}")]
    TargetNotReady { log_tail: String },
    #[error("GET {path}: {source}")]
    Http {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("GET {path}: HTTP {status}")]
    HttpStatus { path: String, status: u16 },
    #[error("GET {path}: bad JSON: {detail}")]
    Json { path: String, detail: String },
    #[error("`{tool}` is missing ({hint})")]
    ToolMissing { tool: String, hint: String },
    #[error("`{command}` failed: {detail}")]
    ToolFailed { command: String, detail: String },
    #[error("{path}: {source}")]
    Wav {
        path: PathBuf,
        #[source]
        source: voxgate_media::wav::WavError,
    },
    #[error("load generator {what} socket: {source}")]
    Socket {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("load generator: a run needs calls, a positive rate and at least one script")]
    BadLoad,
    #[error("load generator {0} thread panicked")]
    ThreadPanicked(&'static str),
    #[error("built without in-process ASR timing: build with `--features asr` (benches/run does)")]
    BuiltWithoutAsr,
    #[error("scorecards:\n{0}")]
    Scorecards(#[from] voxgate_qa::scorecard::LoadError),
    #[error("QA store: {0}")]
    Store(#[from] voxgate_qa::StoreError),
    #[error("no call of the {scenario} scenario produced a measurement")]
    NoMeasurement { scenario: &'static str },
}

impl BenchError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}
