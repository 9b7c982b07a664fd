//! Scenario 5, VAD: frame F1 and cost per frame of voxgate's engines (libfvad/WebRTC at each mode,
//! earshot) on the labelled phone-band corpus, clean and in noise, with Silero VAD (PyPI `silero-vad`'s
//! ONNX model on onnxruntime) as the accuracy peer on the very same audio.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Instant;

use voxgate_media::speech::{Vad, VadEngine, VadKind, WebRtcMode};

use super::Ctx;
use crate::corpus::{mix_at_snr, noise, phone_channel};
use crate::report::{table, Goal, SectionOut};
use crate::rtp::FRAME_SAMPLES;
use crate::BenchError;

const ID: &str = "vad";
const TITLE: &str = "5. VAD";

/// Frame-level detection counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scores {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl Scores {
    pub fn of(decisions: &[bool], labels: &[bool]) -> Scores {
        let mut s = Scores::default();
        for (&d, &l) in decisions.iter().zip(labels) {
            match (d, l) {
                (true, true) => s.tp += 1,
                (true, false) => s.fp += 1,
                (false, true) => s.fn_ += 1,
                (false, false) => {}
            }
        }
        s
    }

    pub fn f1(&self) -> f64 {
        let p = self.tp as f64 / (self.tp + self.fp).max(1) as f64;
        let r = self.tp as f64 / (self.tp + self.fn_).max(1) as f64;
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// Decision per 20 ms frame from per-window probabilities of another window length: each frame takes
/// the window holding its centre sample.
pub fn frames_from_windows(probs: &[f64], window: usize, frames: usize) -> Vec<bool> {
    (0..frames)
        .map(|f| {
            let centre = f * FRAME_SAMPLES + FRAME_SAMPLES / 2;
            probs.get(centre / window.max(1)).is_some_and(|&p| p > 0.5)
        })
        .collect()
}

pub fn run(ctx: &Ctx) -> SectionOut {
    match measure(ctx) {
        Ok(s) => s,
        Err(e) => super::failed(ID, TITLE, e),
    }
}

fn engines() -> Vec<(&'static str, VadKind)> {
    vec![
        ("webrtc mode 0", VadKind::WebRtc(WebRtcMode::Quality)),
        ("webrtc mode 1", VadKind::WebRtc(WebRtcMode::LowBitrate)),
        ("webrtc mode 2", VadKind::WebRtc(WebRtcMode::Aggressive)),
        (
            "webrtc mode 3 (default)",
            VadKind::WebRtc(WebRtcMode::VeryAggressive),
        ),
        ("earshot", VadKind::Earshot),
    ]
}

fn measure(ctx: &Ctx) -> Result<SectionOut, BenchError> {
    let corpus = ctx.corpus()?;
    let (clean, labels) = corpus.stream(800);
    let dir = ctx.bench_dir.join("vad");
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(&dir, e))?;
    let conditions: Vec<(&str, Option<(bool, f64)>)> = vec![
        ("clean", None),
        ("white 10 dB", Some((false, 10.0))),
        ("brown 5 dB", Some((true, 5.0))),
    ];
    let mut audio = Vec::new();
    for (i, (name, noisy)) in conditions.iter().enumerate() {
        let mixed = match noisy {
            Some((brown, snr)) => mix_at_snr(
                &clean,
                &labels,
                &noise(*brown, clean.len(), 11 + i as u64),
                *snr,
            ),
            None => clean.clone(),
        };
        let phone = phone_channel(&mixed, &dir.join(format!("cond{i}")))?;
        let wav = dir.join(format!("cond{i}.wav"));
        voxgate_media::wav::write_wav_8k_mono(&wav, &phone).map_err(|source| BenchError::Wav {
            path: wav.clone(),
            source,
        })?;
        audio.push((*name, phone, wav));
    }
    let n_frames = labels.len();
    let mut rows = Vec::new();
    let mut goals = Vec::new();
    for (name, kind) in engines() {
        let mut f1s = Vec::new();
        let mut us = Vec::new();
        for (_, phone, _) in &audio {
            let mut vad = VadEngine::new(kind).map_err(|_| BenchError::NoMeasurement {
                scenario: "VAD engine",
            })?;
            let mut decisions = Vec::with_capacity(n_frames);
            let t = Instant::now();
            for f in phone.chunks_exact(FRAME_SAMPLES).take(n_frames) {
                let mut frame = [0i16; FRAME_SAMPLES];
                frame.copy_from_slice(f);
                decisions.push(vad.process(&frame).map(|p| p > 0.5).unwrap_or(false));
            }
            us.push(t.elapsed().as_secs_f64() * 1e6 / n_frames.max(1) as f64);
            f1s.push(Scores::of(&decisions, &labels).f1());
        }
        let cost = us.iter().copied().fold(f64::MAX, f64::min);
        let mut row = vec![name.to_string()];
        row.extend(f1s.iter().map(|f| format!("{f:.3}")));
        row.push(format!("{cost:.1} µs per 20 ms"));
        if name.contains("default") || name == "earshot" {
            goals.push(Goal::new(
                &format!("VAD {name}: F1 clean / white 10 dB / brown 5 dB, cost"),
                "report",
                format!("{} at {cost:.1} µs per 20 ms", f1_list(&f1s)),
                None,
            ));
        }
        rows.push(row);
    }
    let mut notes = String::new();
    match crate::tools::venv_python(&ctx.bench_dir) {
        Some(py) => {
            let script = ctx.repo.join("benches/py/silero_vad_bench.py");
            let mut f1s = Vec::new();
            let mut us = Vec::new();
            let mut version = String::new();
            for (_, _, wav) in &audio {
                let out =
                    crate::tools::run(Command::new(&py).arg(&script).arg(wav), "python3-venv")?;
                let v: serde_json::Value =
                    serde_json::from_slice(&out.stdout).map_err(|e| BenchError::Json {
                        path: "silero_vad_bench.py".into(),
                        detail: e.to_string(),
                    })?;
                let probs: Vec<f64> = v["probs"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                    .unwrap_or_default();
                let window = v["window_samples"].as_u64().unwrap_or(256) as usize;
                let decisions = frames_from_windows(&probs, window, n_frames);
                f1s.push(Scores::of(&decisions, &labels).f1());
                us.push(v["us_per_window"].as_f64().unwrap_or(f64::NAN));
                version = v["version"].as_str().unwrap_or_default().to_string();
            }
            let cost = us.iter().copied().fold(f64::MAX, f64::min);
            let per_frame = cost * 20.0 / 32.0;
            let mut row = vec![format!("Silero VAD {version} (onnxruntime, 1 thread)")];
            row.extend(f1s.iter().map(|f| format!("{f:.3}")));
            row.push(format!("{cost:.1} µs per 32 ms ({per_frame:.1} per 20 ms)"));
            goals.push(Goal::new(
                "VAD peer: Silero F1 clean / white 10 dB / brown 5 dB, cost",
                "report",
                format!("{} at {per_frame:.1} µs per 20 ms", f1_list(&f1s)),
                None,
            ));
            rows.push(row);
            let _ = writeln!(
                notes,
                "\nSilero's time is onnxruntime's `run` call per 32 ms window measured inside Python (the \
                 interpreter's loop excluded); it decides per 32 ms window, mapped to 20 ms frames by each frame's \
                 centre sample."
            );
        }
        None => {
            let _ = writeln!(
                notes,
                "\nSilero VAD not measured: no venv at target/bench/venv (benches/run makes it)."
            );
        }
    }
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Corpus: {} phone-banking sentences from eight espeak-ng and flite voices, 0.8 s apart ({:.1} s, {} frames, \
         {:.0} % speech), labelled on the clean render (frame power > -50 dBFS, gaps ≤ 40 ms bridged), then \
         band-limited to 300–3400 Hz and μ-law coded; noise (repeatable white, or brown) is mixed before the phone \
         channel at the SNR given relative to the speech frames. F1 of the per-frame decision (probability > 0.5) \
         against the labels; cost is the lowest of the three conditions, per frame, single thread, release build.\n",
        corpus.clips.len(),
        clean.len() as f64 / 8000.0,
        n_frames,
        labels.iter().filter(|&&l| l).count() as f64 / n_frames.max(1) as f64 * 100.0,
    );
    let mut header = vec!["engine"];
    header.extend(conditions.iter().map(|c| c.0));
    header.push("cost");
    body.push_str(&table(&header, &rows));
    body.push_str(&notes);
    Ok(SectionOut {
        id: ID,
        title: TITLE,
        body,
        goals,
        ..SectionOut::default()
    })
}

/// F1 per condition as the goals table shows it: "0.969 / 0.837 / 0.834".
fn f1_list(f1s: &[f64]) -> String {
    f1s.iter()
        .map(|f| format!("{f:.3}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_from_counts() {
        let s = Scores::of(&[true, true, false, false], &[true, false, true, false]);
        assert_eq!(
            s,
            Scores {
                tp: 1,
                fp: 1,
                fn_: 1
            }
        );
        assert!((s.f1() - 0.5).abs() < 1e-12);
        assert_eq!(Scores::default().f1(), 0.0);
    }

    #[test]
    fn windows_map_to_frames_by_centre_sample() {
        // 256-sample windows: frame 0 (centre 80) → window 0, frame 1 (240) → 0, frame 2 (400) → 1.
        let d = frames_from_windows(&[0.9, 0.1, 0.8], 256, 5);
        assert_eq!(d, vec![true, true, false, true, true]);
        // Frames past the last window are silence.
        assert_eq!(frames_from_windows(&[0.9], 256, 3), vec![true, true, false]);
    }
}
