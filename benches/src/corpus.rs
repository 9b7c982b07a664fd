//! The suite's speech corpus: phone-banking sentences spoken by espeak-ng and flite voices, rendered on
//! first use into `target/bench/corpus/` (never committed), band-limited to 300–3400 Hz and passed through
//! G.711 μ-law like a phone line. Frame labels (speech or not) come from the clean render, where the
//! pauses are digital silence.

use std::path::{Path, PathBuf};
use std::process::Command;

use voxgate_media::g711::{ulaw_decode, ulaw_encode};

use crate::rtp::FRAME_SAMPLES;
use crate::tools::run;
use crate::BenchError;

/// A text-to-speech voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    Espeak(&'static str),
    Flite(&'static str),
}

impl Voice {
    pub fn name(self) -> String {
        match self {
            Voice::Espeak(v) => format!("espeak-ng {v}"),
            Voice::Flite(v) => format!("flite {v}"),
        }
    }
}

/// What callers say: requests, answers, digits, over eight voices of two engines.
pub const UTTERANCES: &[(Voice, &str)] = &[
    (
        Voice::Espeak("en-us"),
        "I would like to check my account balance, please.",
    ),
    (Voice::Flite("slt"), "Yes, that is correct."),
    (
        Voice::Espeak("en-gb"),
        "My card number is four five two seven, three one eight nine.",
    ),
    (Voice::Flite("kal"), "I want to speak to an agent."),
    (
        Voice::Espeak("en-us+f3"),
        "No. Please transfer me to customer service.",
    ),
    (
        Voice::Flite("awb"),
        "Block my card, it was stolen yesterday evening.",
    ),
    (
        Voice::Espeak("en-gb-scotland"),
        "What time does the branch open on Saturday?",
    ),
    (Voice::Flite("rms"), "I lost my credit card this morning."),
    (
        Voice::Espeak("en-us"),
        "Someone called me and told me to move my money to a safe account.",
    ),
    (Voice::Flite("slt"), "What was my last transaction?"),
    (
        Voice::Espeak("en-gb"),
        "I think there is a payment on my statement that I did not make.",
    ),
    (Voice::Flite("kal"), "Can you tell me my balance?"),
    (
        Voice::Espeak("en-us+f3"),
        "My account number is eight seven six five four three two one.",
    ),
    (Voice::Flite("awb"), "Please freeze my card right away."),
    (
        Voice::Espeak("en-gb-scotland"),
        "I need to report fraud on my account.",
    ),
    (Voice::Flite("rms"), "Repeat the last transaction, please."),
    (Voice::Espeak("en-us"), "Zero nine eight seven six."),
    (Voice::Flite("slt"), "I was scammed and I need help."),
    (
        Voice::Espeak("en-gb"),
        "How much money do I have in my savings account?",
    ),
    (Voice::Flite("kal"), "No, that is not what I said."),
];

/// Frame power (dBFS) above which the clean render counts as speech.
pub const LABEL_DBFS: f64 = -50.0;
/// Unvoiced runs this short (frames) between speech frames are labelled speech (stop closures).
pub const LABEL_BRIDGE_FRAMES: usize = 2;

/// One utterance, clean and through the phone channel, same length, whole frames.
#[derive(Debug, Clone)]
pub struct Clip {
    pub voice: Voice,
    pub text: &'static str,
    pub clean: Vec<i16>,
    pub phone: Vec<i16>,
    /// One label per 20 ms frame.
    pub labels: Vec<bool>,
}

impl Clip {
    /// First and last frame labelled speech.
    pub fn speech_span(&self) -> Option<(usize, usize)> {
        Some((
            self.labels.iter().position(|&l| l)?,
            self.labels.iter().rposition(|&l| l)?,
        ))
    }

    pub fn duration_ms(&self) -> u64 {
        self.phone.len() as u64 / 8
    }
}

/// Power of a frame in dBFS (full-scale square wave = 0 dB).
pub fn frame_dbfs(f: &[i16]) -> f64 {
    let p = f
        .iter()
        .map(|&s| {
            let v = f64::from(s) / 32768.0;
            v * v
        })
        .sum::<f64>()
        / f.len().max(1) as f64;
    if p > 1e-12 {
        10.0 * p.log10()
    } else {
        -120.0
    }
}

/// Peak level of a frame in dBFS, cheap enough for every received packet.
pub fn peak_dbfs(f: &[i16]) -> f64 {
    let peak = f.iter().map(|&s| i32::from(s).abs()).max().unwrap_or(0);
    if peak == 0 {
        -120.0
    } else {
        20.0 * (f64::from(peak) / 32768.0).log10()
    }
}

/// Speech labels of a clean render, one per whole 20 ms frame; short gaps inside speech are bridged.
pub fn label(clean: &[i16]) -> Vec<bool> {
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

/// Deterministic noise (xorshift), so every run scores the same noisy audio. Brown noise is integrated
/// white noise with a leak, which keeps it bounded.
pub fn noise(brown: bool, samples: usize, seed: u64) -> Vec<f64> {
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut acc = 0.0;
    (0..samples)
        .map(|_| {
            let w = next();
            if brown {
                acc = 0.98 * acc + w;
                acc
            } else {
                w
            }
        })
        .collect()
}

/// `clean` plus `noise` scaled to `snr_db` below the mean power of the frames labelled speech.
pub fn mix_at_snr(clean: &[i16], labels: &[bool], noise: &[f64], snr_db: f64) -> Vec<i16> {
    let (sum, n) = clean
        .chunks_exact(FRAME_SAMPLES)
        .zip(labels)
        .filter(|(_, &l)| l)
        .fold((0.0, 0usize), |(s, n), (f, _)| {
            (
                s + f.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>(),
                n + f.len(),
            )
        });
    let speech_power = sum / n.max(1) as f64;
    let noise_power = noise.iter().map(|v| v * v).sum::<f64>() / noise.len().max(1) as f64;
    let gain = if noise_power > 0.0 {
        (speech_power / noise_power / 10f64.powf(snr_db / 10.0)).sqrt()
    } else {
        0.0
    };
    clean
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let v = f64::from(s) + gain * noise.get(i).copied().unwrap_or(0.0);
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// A G.711 μ-law round trip of every sample.
pub fn ulaw_round_trip(x: &[i16]) -> Vec<i16> {
    x.iter().map(|&s| ulaw_decode(ulaw_encode(s))).collect()
}

fn read_wav(path: &Path) -> Result<Vec<i16>, BenchError> {
    voxgate_media::wav::load_wav_8k_mono(path).map_err(|source| BenchError::Wav {
        path: path.to_owned(),
        source,
    })
}

fn write_wav(path: &Path, pcm: &[i16]) -> Result<(), BenchError> {
    voxgate_media::wav::write_wav_8k_mono(path, pcm).map_err(|source| BenchError::Wav {
        path: path.to_owned(),
        source,
    })
}

/// Band-limits through sox (300–3400 Hz) then μ-laws; keeps the length.
pub fn phone_channel(x: &[i16], scratch: &Path) -> Result<Vec<i16>, BenchError> {
    let input = scratch.with_extension("in.wav");
    let output = scratch.with_extension("out.wav");
    write_wav(&input, x)?;
    run(
        Command::new("sox")
            .arg("-D")
            .arg(&input)
            .args(["-b", "16"])
            .arg(&output)
            .args(["sinc", "300-3400"]),
        "sox",
    )?;
    let mut y = read_wav(&output)?;
    y.resize(x.len(), 0);
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    Ok(ulaw_round_trip(&y))
}

/// Renders `text` to clean 8 kHz mono, peak -6 dBFS, padded to whole frames.
pub fn render(voice: Voice, text: &str, scratch: &Path) -> Result<Vec<i16>, BenchError> {
    let raw = scratch.with_extension("tts.wav");
    match voice {
        Voice::Espeak(v) => run(
            Command::new("espeak-ng")
                .args(["-v", v, "-s", "150", "-w"])
                .arg(&raw)
                .arg(text),
            "espeak-ng",
        )?,
        Voice::Flite(v) => run(
            Command::new("flite")
                .args(["-voice", v, "-t", text, "-o"])
                .arg(&raw),
            "flite",
        )?,
    };
    let clean = scratch.with_extension("clean.wav");
    run(
        Command::new("sox")
            .arg("-D")
            .arg(&raw)
            .args(["-r", "8000", "-c", "1", "-b", "16"])
            .arg(&clean)
            .args(["norm", "-6"]),
        "sox",
    )?;
    let mut pcm = read_wav(&clean)?;
    pcm.resize(pcm.len().div_ceil(FRAME_SAMPLES) * FRAME_SAMPLES, 0);
    let _ = std::fs::remove_file(&raw);
    let _ = std::fs::remove_file(&clean);
    Ok(pcm)
}

/// The rendered corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub clips: Vec<Clip>,
    pub dir: PathBuf,
}

impl Corpus {
    /// Loads the renders from `dir`, rendering what is missing.
    pub fn load_or_render(dir: &Path) -> Result<Corpus, BenchError> {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
        let mut clips = Vec::with_capacity(UTTERANCES.len());
        for (i, &(voice, text)) in UTTERANCES.iter().enumerate() {
            let clean_path = dir.join(format!("{i:02}.clean.wav"));
            let phone_path = dir.join(format!("{i:02}.phone.wav"));
            let (clean, phone) = if clean_path.exists() && phone_path.exists() {
                (read_wav(&clean_path)?, read_wav(&phone_path)?)
            } else {
                let scratch = dir.join(format!("{i:02}"));
                let clean = render(voice, text, &scratch)?;
                let phone = phone_channel(&clean, &scratch)?;
                write_wav(&clean_path, &clean)?;
                write_wav(&phone_path, &phone)?;
                (clean, phone)
            };
            let labels = label(&clean);
            clips.push(Clip {
                voice,
                text,
                clean,
                phone,
                labels,
            });
        }
        Ok(Corpus {
            clips,
            dir: dir.to_owned(),
        })
    }

    /// All clips back to back with `gap_ms` of silence before each and after the last: the VAD stream,
    /// clean, with its labels.
    pub fn stream(&self, gap_ms: usize) -> (Vec<i16>, Vec<bool>) {
        let gap = gap_ms * 8 / FRAME_SAMPLES * FRAME_SAMPLES;
        let mut clean = Vec::new();
        for c in &self.clips {
            clean.resize(clean.len() + gap, 0);
            clean.extend_from_slice(&c.clean);
        }
        clean.resize(clean.len() + gap, 0);
        let labels = label(&clean);
        (clean, labels)
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
    fn noise_is_repeatable_and_mixed_at_the_asked_snr() {
        assert_eq!(noise(false, 100, 7), noise(false, 100, 7));
        assert_ne!(noise(false, 100, 7), noise(false, 100, 8));
        let tone: Vec<i16> = (0..8000)
            .map(|i| (8000.0 * (i as f64 * 0.3).sin()) as i16)
            .collect();
        let labels = vec![true; 50];
        let n = noise(true, 8000, 3);
        let mixed = mix_at_snr(&tone, &labels, &n, 10.0);
        let p = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let signal: Vec<f64> = tone.iter().map(|&s| f64::from(s)).collect();
        let added: Vec<f64> = mixed
            .iter()
            .zip(&tone)
            .map(|(&m, &t)| f64::from(m) - f64::from(t))
            .collect();
        let snr = 10.0 * (p(&signal) / p(&added)).log10();
        assert!((snr - 10.0).abs() < 0.1, "{snr}");
    }

    #[test]
    fn levels() {
        assert_eq!(frame_dbfs(&[0; 160]), -120.0);
        assert!((frame_dbfs(&[32767; 160]) - 0.0).abs() < 0.01);
        assert!((peak_dbfs(&[0, -16384, 100]) - (-6.02)).abs() < 0.01);
        assert_eq!(peak_dbfs(&[]), -120.0);
    }
}
