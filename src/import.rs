//! `voxgate qa import`: quality checking of calls recorded elsewhere (e.g. the bank's existing call
//! recorder). Each channel of a WAV is one party; it is cut into utterances at pauses, transcribed with the
//! configured model, measured, scored with the scorecards of the language and stored like a live call.

use std::path::{Path, PathBuf};

use voxgate_asr::{Language, Recognizer, RecognizerConfig};
use voxgate_config::{AsrLanguage, Config};
use voxgate_dialog::nlu::redact_numbers;
use voxgate_qa::scorecard::{self, ScorecardSet};
use voxgate_qa::{acoustics, CallRecord, Speaker, Store, TimelineEvent, Turn, TurnSegment};

/// A pause this long ends an utterance.
const PAUSE_MS: u32 = 700;
/// Speech shorter than this is a click or a breath, not an utterance.
const MIN_SPEECH_MS: u32 = 200;
/// Audio kept before and after the voiced frames.
const PAD_MS: u32 = 150;
/// Longest utterance handed to whisper in one piece (its window is 30 s).
const MAX_UTTERANCE_MS: u32 = 25_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Wav {
        path: PathBuf,
        source: voxgate_asr::TranscribeFileError,
    },
    #[error("{path}: mono recording: say whose voice it is with --speaker caller|agent")]
    MonoNeedsSpeaker { path: PathBuf },
    #[error("{path}: {channels} channels but {speakers} speakers given with --channels")]
    ChannelCount {
        path: PathBuf,
        channels: usize,
        speakers: usize,
    },
    #[error("unknown speaker {0:?} (caller, agent or voxgate)")]
    UnknownSpeaker(String),
    #[error("cannot install the speech model: {0}")]
    Install(#[from] voxgate_asr::InstallError),
    #[error("speech model: {0}")]
    Asr(#[from] voxgate_asr::AsrError),
    #[error("{0}")]
    Store(#[from] voxgate_qa::StoreError),
    #[error("scorecards:\n{0}")]
    Scorecards(#[from] scorecard::LoadError),
}

/// Who speaks on which channel.
pub enum Parties {
    /// One speaker per channel, in channel order (default for stereo: caller, agent).
    Channels(Vec<Speaker>),
    /// A mono recording of one party.
    Mono(Speaker),
}

pub fn parse_speaker(s: &str) -> Result<Speaker, ImportError> {
    Speaker::from_name(s.trim()).ok_or_else(|| ImportError::UnknownSpeaker(s.to_string()))
}

/// Utterances in one channel: (first sample, end sample), cut at pauses of [`PAUSE_MS`].
pub fn utterances(pcm: &[i16], rate_hz: u32) -> Vec<(usize, usize)> {
    let frame = (rate_hz as usize / 50).max(1);
    let levels: Vec<f32> = pcm.chunks(frame).map(acoustics::dbfs).collect();
    if levels.is_empty() {
        return Vec::new();
    }
    let mut sorted = levels.clone();
    sorted.sort_by(f32::total_cmp);
    let floor = sorted[sorted.len() / 10];
    // Speech is well above the line's own noise, and above an absolute floor for digital silence.
    let threshold = (floor + 12.0).max(-50.0);
    let frames_of = |ms: u32| (ms / 20) as usize;
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut last_voiced = 0usize;
    for (i, &l) in levels.iter().enumerate() {
        if l >= threshold {
            if start.is_none() {
                start = Some(i);
            }
            last_voiced = i;
        }
        if let Some(s) = start {
            let gap = i - last_voiced;
            let too_long = i - s >= frames_of(MAX_UTTERANCE_MS);
            if gap >= frames_of(PAUSE_MS) || too_long || i + 1 == levels.len() {
                if last_voiced + 1 - s >= frames_of(MIN_SPEECH_MS) {
                    let pad = frames_of(PAD_MS);
                    let a = s.saturating_sub(pad) * frame;
                    let b = ((last_voiced + 1 + pad) * frame).min(pcm.len());
                    out.push((a, b));
                }
                start = None;
            }
        }
    }
    out
}

fn ms(samples: usize, rate_hz: u32) -> u64 {
    (samples as u64 * 1000) / u64::from(rate_hz.max(1))
}

/// Imports one recording: returns the stored call's id and its turns and headline score, for the summary line.
pub fn import_file(
    path: &Path,
    parties: &Parties,
    cfg: &Config,
    recognizer: &mut Recognizer,
    cards: &ScorecardSet,
    store: &mut Store,
) -> Result<String, ImportError> {
    let wav = voxgate_asr::load_wav_channels(path).map_err(|source| ImportError::Wav {
        path: path.to_path_buf(),
        source,
    })?;
    let speakers: Vec<Speaker> = match parties {
        Parties::Mono(s) if wav.channels.len() == 1 => vec![*s],
        Parties::Mono(_) => vec![Speaker::Caller, Speaker::Agent],
        Parties::Channels(v) if v.is_empty() && wav.channels.len() == 1 => {
            return Err(ImportError::MonoNeedsSpeaker {
                path: path.to_path_buf(),
            })
        }
        Parties::Channels(v) if v.is_empty() => vec![Speaker::Caller, Speaker::Agent],
        Parties::Channels(v) => v.clone(),
    };
    if speakers.len() != wav.channels.len() {
        return Err(ImportError::ChannelCount {
            path: path.to_path_buf(),
            channels: wav.channels.len(),
            speakers: speakers.len(),
        });
    }
    let rate = wav.rate_hz;
    let mut turns = Vec::new();
    for (pcm, speaker) in wav.channels.iter().zip(&speakers) {
        for (a, b) in utterances(pcm, rate) {
            let audio = &pcm[a..b];
            let t = match recognizer.transcribe_pcm(audio, rate, None) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "an utterance could not be transcribed");
                    continue;
                }
            };
            let text = t.text();
            if text.trim().is_empty() {
                continue;
            }
            let base = ms(a, rate);
            turns.push(Turn {
                speaker: *speaker,
                start_ms: base,
                end_ms: ms(b, rate),
                text: redact_numbers(text.trim()),
                confidence: Some(t.confidence),
                interrupted: false,
                segments: t
                    .segments
                    .iter()
                    .map(|s| TurnSegment {
                        start_ms: base + u64::from(s.start_ms),
                        end_ms: base + u64::from(s.end_ms),
                        text: redact_numbers(s.text.trim()),
                    })
                    .collect(),
                acoustics: Some(acoustics::measure(audio, rate, &text)),
            });
        }
    }
    turns.sort_by_key(|t| t.start_ms);
    acoustics::fill_arousal(&mut turns);
    let length_ms = ms(wav.channels.first().map_or(0, Vec::len), rate) as i64;
    // The file's modification time is when the recorder finished writing it: the call ended then.
    let ended = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(crate::calls::wall_ms, |d| d.as_millis() as i64);
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let language = match cfg.asr.language {
        AsrLanguage::En => "en",
        AsrLanguage::Zh => "zh",
    };
    let mut rec = CallRecord {
        call_id: format!("import-{ended}-{name}"),
        from_uri: format!("file:{name}"),
        to_uri: String::new(),
        remote_addr: String::new(),
        transport: "file".into(),
        codec: "wav".into(),
        started_at_ms: ended - length_ms,
        answered_at_ms: Some(ended - length_ms),
        ended_at_ms: Some(ended),
        end_reason: Some("imported".into()),
        recording_path: Some(absolute.to_string_lossy().into_owned()),
        media_stats: serde_json::json!({}),
        timeline: vec![TimelineEvent {
            at_ms: 0,
            kind: "imported".into(),
            detail: name.clone(),
        }],
        turns,
        language: language.into(),
        ..Default::default()
    };
    rec.id = store.insert_call(&rec)?;
    store.save_call(&rec)?;
    let mut results = Vec::new();
    for card in cards.for_language(language) {
        results.push((scorecard::score(&card, &rec), card.pass_mark));
    }
    store.save_scores(rec.id, &results, crate::calls::wall_ms())?;
    let headline = results.first().map_or_else(
        || "not scored (no scorecard for the language)".to_string(),
        |(r, _)| {
            format!(
                "{} {:.0} {}",
                r.scorecard,
                r.score,
                if r.passed { "passed" } else { "failed" }
            )
        },
    );
    Ok(format!(
        "{name}: call {}, {} turns, {headline}",
        rec.id,
        rec.turns.len()
    ))
}

/// Loads the model and scorecards once, then imports every file; returns how many failed.
pub fn run(cfg: &Config, files: &[PathBuf], parties: &Parties) -> Result<usize, ImportError> {
    let model = crate::speech::model_name(cfg.asr.model);
    let path = match voxgate_asr::installed(model, &cfg.asr.models_dir) {
        Some(p) => p,
        None => crate::install_model(model, cfg.asr.models_dir.clone(), false)?.path,
    };
    let language = match cfg.asr.language {
        AsrLanguage::En => Language::English,
        AsrLanguage::Zh => Language::Mandarin,
    };
    let mut recognizer = Recognizer::load(
        &path,
        RecognizerConfig {
            language,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(8) as u16),
            initial_prompt: (!cfg.asr.initial_prompt.is_empty())
                .then(|| cfg.asr.initial_prompt.clone()),
            ..RecognizerConfig::default()
        },
    )?;
    let cards = ScorecardSet::load_dir(&cfg.qa.scorecards)?;
    let mut store = Store::open_at(&crate::store_location(cfg))?;
    let mut failed = 0;
    for f in files {
        match import_file(f, parties, cfg, &mut recognizer, &cards, &mut store) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                failed += 1;
                eprintln!("voxgate: {e}");
            }
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: usize, rate: usize, amp: f64) -> Vec<i16> {
        (0..ms * rate / 1000)
            .map(|i| {
                (amp * (i as f64 * 2.0 * std::f64::consts::PI * 180.0 / rate as f64).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn utterances_are_cut_at_long_pauses_only() {
        let rate = 8000;
        let mut pcm = tone(300, rate, 0.0);
        pcm.extend(tone(1000, rate, 8000.0));
        pcm.extend(tone(300, rate, 0.0)); // a short pause stays inside the utterance
        pcm.extend(tone(800, rate, 8000.0));
        pcm.extend(tone(1500, rate, 0.0)); // a long one ends it
        pcm.extend(tone(600, rate, 8000.0));
        pcm.extend(tone(1000, rate, 0.0));
        pcm.extend(tone(60, rate, 8000.0)); // a click is not an utterance
        pcm.extend(tone(1000, rate, 0.0));
        let u = utterances(&pcm, rate as u32);
        assert_eq!(u.len(), 2, "{u:?}");
        let ms_of = |s: usize| s * 1000 / rate;
        // 140 ms of padding on both sides (whole 20 ms frames).
        assert_eq!((ms_of(u[0].0), ms_of(u[0].1)), (160, 2540));
        assert_eq!((ms_of(u[1].0), ms_of(u[1].1)), (3760, 4640));
        assert!(utterances(&[], 8000).is_empty());
        assert!(utterances(&tone(2000, rate, 0.0), 8000).is_empty());
    }
}
