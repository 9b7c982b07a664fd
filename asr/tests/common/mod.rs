//! Helpers the ASR integration tests share: running the TTS/sox tools, the model directory, and the telephone
//! channel every corpus goes through.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use voxgate_asr::{InstallOptions, ModelName};
use voxgate_media::g711::{ulaw_decode, ulaw_encode};

/// Runs a tool and requires success.
pub fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where every test (this crate's and the root's) keeps installed models, so each is fetched once.
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("asr-models")
}

/// Installs (or reuses) a whisper model; returns its GGML path.
pub fn install(model: ModelName) -> PathBuf {
    let dir = models_dir();
    let opts = InstallOptions {
        cache: dir.join("cache"),
        dir,
        force: false,
    };
    voxgate_asr::install(model, &opts, &mut |_| {})
        .unwrap_or_else(|e| panic!("install {model} (needs python3 -m pip and PyPI): {e}"))
        .path
}

/// The telephone channel: `raw` (any TTS output) to 8 kHz mono, 300–3400 Hz, then `effects` (more sox
/// effects), written to `phone`, then a G.711 μ-law round trip. `-R`: sox dithers with a random seed
/// otherwise, and ±1 LSB is enough to make a clip decode differently from run to run.
pub fn phone_channel(raw: &Path, phone: &Path, effects: &[&str]) -> Vec<i16> {
    run(Command::new("sox")
        .arg("-R")
        .arg(raw)
        .args(["-r", "8000", "-c", "1", "-b", "16"])
        .arg(phone)
        .args(["sinc", "300-3400"])
        .args(effects));
    let pcm = voxgate_media::wav::load_wav_8k_mono(phone).expect("8 kHz clip");
    pcm.iter().map(|&s| ulaw_decode(ulaw_encode(s))).collect()
}
