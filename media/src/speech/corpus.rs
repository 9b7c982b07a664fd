//! Test-only labelled speech corpus, rendered at test time with espeak-ng and flite and
//! passed through a telephone channel (sox `sinc 300-3400`, 8 kHz, μ-law round trip).
//!
//! Labels come from the clean TTS render, where silence is (near) digital silence: a
//! 20 ms frame is speech when its power is above [`LABEL_DBFS`]; gaps of up to
//! [`LABEL_BRIDGE_FRAMES`] frames inside speech (stop closures) are labelled speech too.
//! A missing tool fails the test with a message naming the package to install.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::g711::{ulaw_decode, ulaw_encode};
use crate::{Frame, FRAME_SAMPLES};

/// Frame power (dBFS) above which the clean render counts as speech.
pub(crate) const LABEL_DBFS: f32 = -50.0;
/// Unvoiced runs this short between speech frames are labelled speech.
pub(crate) const LABEL_BRIDGE_FRAMES: usize = 2;

/// A text-to-speech voice.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Voice {
    Espeak(&'static str),
    Flite(&'static str),
}

/// Which sox noise generator.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Noise {
    White,
    Brown,
}

/// A scratch directory removed on drop.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new() -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "voxgate-speech-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(tool: &str, package: &str, args: &[&str]) {
    let out = match Command::new(tool).args(args).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{tool}` is not installed; the speech corpus tests need it \
             (Debian/Ubuntu: apt-get install {package})"
        ),
        Err(e) => panic!("cannot run {tool}: {e}"),
    };
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sox(args: &[&str]) {
    run("sox", "sox", args);
}

fn p(path: &Path) -> &str {
    path.to_str().expect("scratch paths are UTF-8")
}

fn read_wav_8k(path: &Path) -> Vec<i16> {
    let mut r = hound::WavReader::open(path).expect("open rendered wav");
    let spec = r.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16),
        "{path:?}"
    );
    r.samples::<i16>().map(|s| s.expect("wav sample")).collect()
}

/// Renders `text` and converts it to clean 8 kHz mono (no band limit, no dither).
pub(crate) fn render(voice: Voice, text: &str) -> Vec<i16> {
    let dir = Scratch::new();
    let raw = dir.path("tts.wav");
    match voice {
        Voice::Espeak(v) => run(
            "espeak-ng",
            "espeak-ng",
            &["-v", v, "-s", "150", "-w", p(&raw), text],
        ),
        Voice::Flite(v) => run("flite", "flite", &["-voice", v, "-t", text, "-o", p(&raw)]),
    }
    let clean = dir.path("clean.wav");
    sox(&[
        "-D",
        p(&raw),
        "-r",
        "8000",
        "-c",
        "1",
        "-b",
        "16",
        p(&clean),
    ]);
    read_wav_8k(&clean)
}

/// Telephone channel: 300–3400 Hz band-pass (sox), then a G.711 μ-law round trip.
pub(crate) fn phone_channel(x: &[i16]) -> Vec<i16> {
    let dir = Scratch::new();
    let input = dir.path("in.wav");
    let output = dir.path("out.wav");
    crate::wav::write_wav_8k_mono(&input, x).expect("write wav");
    sox(&["-D", p(&input), "-b", "16", p(&output), "sinc", "300-3400"]);
    let mut y = read_wav_8k(&output);
    y.resize(x.len(), 0);
    y.iter().map(|&s| ulaw_decode(ulaw_encode(s))).collect()
}

/// `samples` of repeatable sox noise at roughly -20 dBFS (exact level is set by the mixer).
pub(crate) fn noise(kind: Noise, samples: usize) -> Vec<i16> {
    let dir = Scratch::new();
    let out = dir.path("noise.wav");
    let secs = format!("{}s", samples);
    let name = match kind {
        Noise::White => "whitenoise",
        Noise::Brown => "brownnoise",
    };
    // -R: repeatable (fixed seed), so the noisy corpus is the same on every run.
    sox(&[
        "-R",
        "-D",
        "-n",
        "-r",
        "8000",
        "-c",
        "1",
        "-b",
        "16",
        p(&out),
        "synth",
        &secs,
        name,
        "vol",
        "0.3",
    ]);
    let mut y = read_wav_8k(&out);
    y.resize(samples, 0);
    y
}

/// Power of a frame in dBFS (full-scale square wave = 0 dB).
pub(crate) fn frame_dbfs(f: &[i16]) -> f32 {
    let p = f
        .iter()
        .map(|&s| {
            let v = f64::from(s) / 32768.0;
            v * v
        })
        .sum::<f64>()
        / f.len().max(1) as f64;
    if p > 1e-12 {
        (10.0 * p.log10()) as f32
    } else {
        -120.0
    }
}

/// Speech labels of a clean render, one per whole 20 ms frame.
pub(crate) fn label(clean: &[i16]) -> Vec<bool> {
    let mut l: Vec<bool> = clean
        .chunks_exact(FRAME_SAMPLES)
        .map(|f| frame_dbfs(f) > LABEL_DBFS)
        .collect();
    let mut i = 0;
    while i < l.len() {
        if l[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < l.len() && !l[i] {
            i += 1;
        }
        if start > 0 && i < l.len() && i - start <= LABEL_BRIDGE_FRAMES {
            l[start..i].fill(true);
        }
    }
    l
}

/// Splits audio into whole frames (a partial tail is dropped).
pub(crate) fn frames(x: &[i16]) -> Vec<Frame> {
    x.chunks_exact(FRAME_SAMPLES)
        .map(|c| {
            let mut f = [0i16; FRAME_SAMPLES];
            f.copy_from_slice(c);
            f
        })
        .collect()
}

/// Speech plus silence gaps, with labels, before and after the phone channel.
pub(crate) struct Corpus {
    /// Clean 8 kHz speech with digital-silence gaps.
    pub clean: Vec<i16>,
    /// One label per frame.
    pub labels: Vec<bool>,
    /// Per utterance: first and last frame labelled speech, and its text.
    pub segments: Vec<(usize, usize, &'static str)>,
}

impl Corpus {
    /// Concatenates utterances with the given gaps (ms) before each one and 1.5 s after.
    pub(crate) fn build(items: &[(Voice, &'static str, u32)]) -> Corpus {
        let mut clean = Vec::new();
        let mut spans = Vec::new();
        for (voice, text, gap_ms) in items {
            // Whole frames everywhere, so labels stay frame-aligned.
            let gap = (*gap_ms as usize * 8).div_ceil(FRAME_SAMPLES) * FRAME_SAMPLES;
            clean.resize(clean.len() + gap, 0);
            let r = render(*voice, text);
            let padded = r.len().div_ceil(FRAME_SAMPLES) * FRAME_SAMPLES;
            let first = clean.len() / FRAME_SAMPLES;
            clean.extend_from_slice(&r);
            clean.resize(clean.len() + padded - r.len(), 0);
            spans.push((first, clean.len() / FRAME_SAMPLES, *text));
        }
        clean.resize(clean.len() + 12_000, 0);
        let labels = label(&clean);
        let segments = spans
            .into_iter()
            .filter_map(|(from, to, text)| {
                let l = labels.get(from..to)?;
                let first = l.iter().position(|&v| v)?;
                let last = l.iter().rposition(|&v| v)?;
                Some((from + first, from + last, text))
            })
            .collect();
        Corpus {
            clean,
            labels,
            segments,
        }
    }

    /// The corpus through the phone channel, optionally with noise at `snr_db` relative to
    /// the mean power of the speech frames.
    pub(crate) fn render(&self, noise_kind: Option<(Noise, f32)>) -> Vec<i16> {
        let mut mixed: Vec<f64> = self.clean.iter().map(|&s| f64::from(s)).collect();
        if let Some((kind, snr_db)) = noise_kind {
            let speech_power = mean_power_where(&self.clean, &self.labels);
            let n = noise(kind, self.clean.len());
            let noise_power =
                n.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / n.len().max(1) as f64;
            let gain = (speech_power / noise_power / 10f64.powf(f64::from(snr_db) / 10.0)).sqrt();
            for (m, &v) in mixed.iter_mut().zip(n.iter()) {
                *m += gain * f64::from(v);
            }
        }
        let pcm: Vec<i16> = mixed
            .iter()
            .map(|&v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect();
        phone_channel(&pcm)
    }
}

/// Mean power of the frames labelled speech.
pub(crate) fn mean_power_where(x: &[i16], labels: &[bool]) -> f64 {
    let (sum, n) = x
        .chunks_exact(FRAME_SAMPLES)
        .zip(labels.iter())
        .filter(|(_, &l)| l)
        .fold((0.0f64, 0usize), |(s, n), (f, _)| {
            (
                s + f.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>(),
                n + f.len(),
            )
        });
    sum / n.max(1) as f64
}

/// Frame-level detection scores.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Scores {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub tn: usize,
}

impl Scores {
    pub(crate) fn of(decisions: &[bool], labels: &[bool]) -> Scores {
        let mut s = Scores::default();
        for (&d, &l) in decisions.iter().zip(labels.iter()) {
            match (d, l) {
                (true, true) => s.tp += 1,
                (true, false) => s.fp += 1,
                (false, true) => s.fn_ += 1,
                (false, false) => s.tn += 1,
            }
        }
        s
    }

    pub(crate) fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }

    pub(crate) fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }

    pub(crate) fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_bridge_short_gaps_only() {
        let loud = [8000i16; FRAME_SAMPLES];
        let quiet = [0i16; FRAME_SAMPLES];
        let seq = [
            quiet, loud, quiet, quiet, loud, quiet, quiet, quiet, loud, quiet,
        ];
        let x: Vec<i16> = seq.iter().flatten().copied().collect();
        assert_eq!(
            label(&x),
            vec![false, true, true, true, true, false, false, false, true, false]
        );
    }

    #[test]
    fn phone_channel_removes_low_frequencies_and_keeps_timing() {
        // 100 Hz hum is out of band; a 1 kHz burst at 0.5 s must stay at 0.5 s.
        let mut x = vec![0i16; 8000];
        for (i, s) in x.iter_mut().enumerate() {
            let t = i as f32 / 8000.0;
            let hum = 8000.0 * (2.0 * std::f32::consts::PI * 100.0 * t).sin();
            let tone = if (4000..6000).contains(&i) {
                8000.0 * (2.0 * std::f32::consts::PI * 1000.0 * t).sin()
            } else {
                0.0
            };
            *s = (hum + tone) as i16;
        }
        let y = phone_channel(&x);
        let db: Vec<f32> = y.chunks_exact(FRAME_SAMPLES).map(frame_dbfs).collect();
        assert!(db[10] < -30.0, "hum left at {} dBFS", db[10]);
        assert!(db[26] > -20.0 && db[36] > -20.0, "{db:?}");
        let onset = db.iter().position(|&d| d > -25.0).unwrap();
        assert_eq!(onset, 25, "{db:?}");
    }
}
