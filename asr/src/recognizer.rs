//! One whisper decoder: a shared, read-only model plus this recognizer's own decoding state.
//!
//! Tuned for hotline utterances (a few seconds of one speaker), not for long-form transcription: the encoder runs
//! on an audio context sized to the utterance instead of whisper's fixed 30 s window, the temperature fallback and
//! the token count are bounded so a hard clip cannot stall a worker, and a decode deadline aborts whatever is left.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use thiserror::Error;
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperError,
    WhisperState, WhisperTokenId,
};

use voxgate_media::resample::{i16_to_f32, resample, ResampleError};

use crate::simplified::to_simplified;

/// Whisper's input rate; everything else is resampled to it.
pub const WHISPER_RATE_HZ: u32 = 16_000;
/// Encoder frames per second of audio (one frame per 20 ms after the conv stride).
const ENCODER_FRAMES_PER_SEC: usize = 50;
/// whisper's full context: 30 s.
pub const FULL_AUDIO_CTX: usize = 1500;
/// whisper refuses prompts longer than half its 448-token text context.
const MAX_PROMPT_TOKENS: usize = 224;

/// Decoding language. English uses the `.en` models; Mandarin needs the multilingual `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    English,
    /// Mandarin, forced (no language detection: a misdetected 2 s clip would come back in the wrong script).
    Mandarin,
}

impl Language {
    /// ISO 639-1 code as whisper expects it.
    pub fn code(self) -> &'static str {
        match self {
            Self::English => "en",
            Self::Mandarin => "zh",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("unsupported ASR language {0:?} (supported: en, zh)")]
pub struct UnsupportedLanguage(pub String);

impl std::str::FromStr for Language {
    type Err = UnsupportedLanguage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "en" => Ok(Self::English),
            "zh" => Ok(Self::Mandarin),
            other => Err(UnsupportedLanguage(other.to_owned())),
        }
    }
}

/// How a [`Recognizer`] decodes.
#[derive(Debug, Clone, PartialEq)]
pub struct RecognizerConfig {
    pub language: Language,
    /// whisper compute threads for one decode.
    pub threads: u16,
    /// Domain biasing: text the decoder treats as preceding context (e.g. the active dialog step's vocabulary).
    pub initial_prompt: Option<String>,
    /// Cap on text tokens per segment: an utterance is a few words, a runaway repetition loop is not.
    pub max_tokens: u16,
    /// How many times whisper may retry at a higher temperature when a decode looks degenerate. Unbounded fallback
    /// (whisper's default 0.2 step = 5 retries) can turn a 2 s clip into a 40 s decode.
    pub max_fallbacks: u8,
    /// Hard wall-clock budget for one decode; past it whisper is aborted and [`AsrError::DeadlineExceeded`] returned.
    pub max_decode: Duration,
    /// Encoder frames (20 ms each) added to the utterance length when sizing the audio context: whisper degrades
    /// when speech runs right to the end of its window.
    pub audio_ctx_margin_frames: u16,
    /// Smallest audio context used. Measured on tiny.en: a 1 s clip at 128 frames falls into repetition loops and
    /// temperature fallbacks (20–40 s decodes); from 256 frames it decodes cleanly.
    pub min_audio_ctx_frames: u16,
    /// Size the audio context to the utterance (the speed-up) instead of whisper's fixed 30 s.
    pub dynamic_audio_ctx: bool,
    /// Utterances up to this long are decoded as one segment (no mid-utterance timestamp splits).
    pub single_segment_max: Duration,
}

impl Default for RecognizerConfig {
    fn default() -> Self {
        Self {
            language: Language::English,
            threads: 2,
            initial_prompt: None,
            max_tokens: 96,
            max_fallbacks: 2,
            max_decode: Duration::from_secs(10),
            audio_ctx_margin_frames: 128,
            min_audio_ctx_frames: 256,
            dynamic_audio_ctx: true,
            single_segment_max: Duration::from_secs(10),
        }
    }
}

/// A piece of transcript with its position in the utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_ms: u32,
    pub end_ms: u32,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    pub segments: Vec<Segment>,
    /// Mean probability of the text tokens (0..=1); 0 when nothing was recognised.
    pub confidence: f32,
    /// Length of the decoded audio.
    pub audio_ms: u32,
}

impl Transcript {
    /// All segment texts joined by single spaces.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for seg in &self.segments {
            let t = seg.text.trim();
            if t.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(t);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.text.trim().is_empty())
    }
}

#[derive(Debug, Error)]
pub enum AsrError {
    #[error("cannot load whisper model {path}: {source}")]
    ModelLoad {
        path: PathBuf,
        #[source]
        source: WhisperError,
    },
    #[error("cannot create whisper decoding state: {0}")]
    State(#[source] WhisperError),
    #[error("initial prompt cannot be tokenized: {0}")]
    Prompt(#[source] WhisperError),
    #[error("no audio to transcribe")]
    EmptyAudio,
    #[error("cannot resample audio: {0}")]
    Resample(#[from] ResampleError),
    #[error("whisper decode failed: {0}")]
    Decode(#[source] WhisperError),
    #[error("decode exceeded its {budget:?} budget")]
    DeadlineExceeded { budget: Duration },
    #[error("whisper returned an unreadable segment {index}: {source}")]
    Segment {
        index: i32,
        #[source]
        source: WhisperError,
    },
    #[error("whisper returned no segment {0}")]
    MissingSegment(i32),
    /// The job was accepted but lost its queue slot to a concurrent submitter while the queue was being compacted.
    #[error("ASR job dropped under load")]
    DroppedUnderLoad,
}

/// Audio context (encoder frames) for `samples` of 16 kHz audio: length plus margin, at least `min_frames`,
/// rounded up to a multiple of 64 (keeps the encoder's matrix shapes friendly), capped at the full 30 s window.
pub fn audio_ctx_for(samples: usize, margin_frames: u16, min_frames: u16) -> usize {
    let frames = samples
        .div_ceil(WHISPER_RATE_HZ as usize / ENCODER_FRAMES_PER_SEC)
        .saturating_add(usize::from(margin_frames))
        .max(usize::from(min_frames));
    frames.div_ceil(64).saturating_mul(64).min(FULL_AUDIO_CTX)
}

/// Speech carries at most ~4 tokens/s; allowing 6/s plus a few catches every real utterance while cutting a
/// repetition loop short.
fn token_cap(audio_ms: u32, max_tokens: u16) -> u16 {
    let by_length = u16::try_from(audio_ms.div_ceil(1000).saturating_mul(6).saturating_add(8))
        .unwrap_or(u16::MAX);
    by_length.min(max_tokens).max(1)
}

/// Temperature step that allows exactly `fallbacks` retries: whisper tries `t = 0, inc, 2·inc, …` while `t ≤ 1`.
fn temperature_inc(fallbacks: u8) -> f32 {
    if fallbacks == 0 {
        0.0
    } else {
        1.0 / (f32::from(fallbacks) + 0.5)
    }
}

static LOGGING: Once = Once::new();

/// Loads a model once; each [`Recognizer`] made from it has its own decoding state, so workers can share it.
pub fn load_model(path: &Path) -> Result<Arc<WhisperContext>, AsrError> {
    // whisper.cpp prints model details to stderr by default; route them to `tracing` instead.
    LOGGING.call_once(whisper_rs::install_logging_hooks);
    WhisperContext::new_with_params(path, WhisperContextParameters::default())
        .map(Arc::new)
        .map_err(|source| AsrError::ModelLoad {
            path: path.to_owned(),
            source,
        })
}

pub struct Recognizer {
    ctx: Arc<WhisperContext>,
    state: WhisperState,
    config: RecognizerConfig,
    prompt_tokens: Vec<WhisperTokenId>,
    eot: WhisperTokenId,
    scratch_16k: Vec<f32>,
}

impl std::fmt::Debug for Recognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recognizer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Recognizer {
    /// Loads the model at `path` for this recognizer alone.
    pub fn load(path: &Path, config: RecognizerConfig) -> Result<Self, AsrError> {
        Self::with_model(load_model(path)?, config)
    }

    /// A recognizer over an already loaded (shared) model.
    pub fn with_model(
        ctx: Arc<WhisperContext>,
        config: RecognizerConfig,
    ) -> Result<Self, AsrError> {
        let state = ctx.create_state().map_err(AsrError::State)?;
        let prompt_tokens = match config.initial_prompt.as_deref() {
            Some(p) => tokenize_prompt(&ctx, p)?,
            None => Vec::new(),
        };
        let eot = ctx.token_eot();
        Ok(Self {
            ctx,
            state,
            config,
            prompt_tokens,
            eot,
            scratch_16k: Vec::new(),
        })
    }

    pub fn config(&self) -> &RecognizerConfig {
        &self.config
    }

    /// Transcribes 16 kHz mono samples in `-1.0..=1.0` with the configured prompt.
    pub fn transcribe(&mut self, pcm_16k: &[f32]) -> Result<Transcript, AsrError> {
        let prompt = std::mem::take(&mut self.prompt_tokens);
        let result = self.decode(pcm_16k, &prompt, self.config.language);
        self.prompt_tokens = prompt;
        result
    }

    /// Transcribes 16 kHz audio biased by `prompt` instead of the configured one (per dialog step).
    pub fn transcribe_with_prompt(
        &mut self,
        pcm_16k: &[f32],
        prompt: &str,
    ) -> Result<Transcript, AsrError> {
        let tokens = tokenize_prompt(&self.ctx, prompt)?;
        self.decode(pcm_16k, &tokens, self.config.language)
    }

    /// Transcribes audio at any rate (the pipeline's 8 kHz in practice), resampling band-limited to 16 kHz.
    pub fn transcribe_pcm(
        &mut self,
        pcm: &[i16],
        rate_hz: u32,
        prompt: Option<&str>,
    ) -> Result<Transcript, AsrError> {
        self.transcribe_pcm_in(pcm, rate_hz, prompt, None)
    }

    /// [`Self::transcribe_pcm`] in `language` instead of the configured one (`None`: the configured one).
    /// Mandarin output is converted to Simplified characters either way.
    pub fn transcribe_pcm_in(
        &mut self,
        pcm: &[i16],
        rate_hz: u32,
        prompt: Option<&str>,
        language: Option<Language>,
    ) -> Result<Transcript, AsrError> {
        let language = language.unwrap_or(self.config.language);
        if pcm.is_empty() {
            return Err(AsrError::EmptyAudio);
        }
        let mut buf = std::mem::take(&mut self.scratch_16k);
        buf.clear();
        buf.extend(pcm.iter().map(|&s| i16_to_f32(s)));
        if rate_hz != WHISPER_RATE_HZ {
            buf = resample(&buf, rate_hz, WHISPER_RATE_HZ)?;
        }
        let result = match prompt {
            Some(p) => tokenize_prompt(&self.ctx, p).and_then(|t| self.decode(&buf, &t, language)),
            None => {
                let tokens = std::mem::take(&mut self.prompt_tokens);
                let r = self.decode(&buf, &tokens, language);
                self.prompt_tokens = tokens;
                r
            }
        };
        self.scratch_16k = buf;
        let prompt = prompt.or(self.config.initial_prompt.as_deref());
        result.map(|mut t| {
            if let Some(p) = prompt {
                t.segments.retain(|s| !echoes_prompt(p, &s.text));
            }
            t
        })
    }

    fn decode(
        &mut self,
        pcm_16k: &[f32],
        prompt: &[WhisperTokenId],
        language: Language,
    ) -> Result<Transcript, AsrError> {
        if pcm_16k.is_empty() {
            return Err(AsrError::EmptyAudio);
        }
        let cfg = &self.config;
        let audio_ms = u32::try_from(pcm_16k.len() as u64 * 1000 / u64::from(WHISPER_RATE_HZ))
            .unwrap_or(u32::MAX);
        let full_window_ms = (FULL_AUDIO_CTX / ENCODER_FRAMES_PER_SEC * 1000) as u32;

        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_language(Some(language.code()));
        params.set_n_threads(i32::from(cfg.threads.max(1)));
        params.set_translate(false);
        // Every utterance stands alone: text from another caller must not leak in as context.
        params.set_no_context(true);
        let single = u128::from(audio_ms) <= cfg.single_segment_max.as_millis();
        params.set_single_segment(single);
        // A single segment spans the utterance anyway; decoding without timestamp tokens avoids the repetition
        // loops tiny.en falls into on short clips after the last word.
        params.set_no_timestamps(single);
        params.set_token_timestamps(false);
        params.set_max_tokens(i32::from(token_cap(audio_ms, cfg.max_tokens)));
        params.set_temperature(0.0);
        params.set_temperature_inc(temperature_inc(cfg.max_fallbacks));
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        // Beyond one window whisper slides over the audio itself and needs the full context.
        if cfg.dynamic_audio_ctx && audio_ms < full_window_ms {
            let ctx = audio_ctx_for(
                pcm_16k.len(),
                cfg.audio_ctx_margin_frames,
                cfg.min_audio_ctx_frames,
            );
            params.set_audio_ctx(i32::try_from(ctx).unwrap_or(0));
        }
        if !prompt.is_empty() {
            params.set_tokens(prompt);
        }

        let budget = cfg.max_decode;
        let mut deadline = Instant::now() + budget;
        // SAFETY: `deadline` lives on this stack frame until `full` returns, and whisper calls the callback only
        // during `full`; the callback just reads it.
        unsafe {
            params.set_abort_callback(Some(past_deadline));
            params.set_abort_callback_user_data(std::ptr::from_mut(&mut deadline).cast::<c_void>());
        }
        let outcome = self.state.full(params, pcm_16k);
        if Instant::now() >= deadline {
            return Err(AsrError::DeadlineExceeded { budget });
        }
        outcome.map_err(AsrError::Decode)?;
        self.collect(audio_ms, language)
    }

    fn collect(&self, audio_ms: u32, language: Language) -> Result<Transcript, AsrError> {
        let n = self.state.full_n_segments();
        let mut segments = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        let mut p_sum = 0.0f64;
        let mut p_count = 0u32;
        for index in 0..n {
            let seg = self
                .state
                .get_segment(index)
                .ok_or(AsrError::MissingSegment(index))?;
            let text = seg
                .to_str_lossy()
                .map_err(|source| AsrError::Segment { index, source })?;
            // whisper timestamps are in 10 ms units; without timestamp tokens the segment is the whole utterance.
            let to_ms = |cs: i64| u32::try_from(cs.saturating_mul(10).max(0)).unwrap_or(u32::MAX);
            // Dialog steps match Simplified keywords, and the prompt alone does not keep `base` from writing
            // Traditional forms; converting first also lets a loop mixing 丟/丢 collapse.
            let text = match language {
                Language::Mandarin => collapse_repetitions(&to_simplified(&text)),
                Language::English => collapse_repetitions(&text),
            };
            // "♪♪", "..." and the like: whisper's rendering of hiss and hold music, not words.
            if !text.chars().any(char::is_alphanumeric) {
                continue;
            }
            for t in 0..seg.n_tokens() {
                if let Some(tok) = seg.get_token(t) {
                    // Special tokens (timestamps, end-of-text, …) say nothing about how sure the words are.
                    if tok.token_id() < self.eot {
                        p_sum += f64::from(tok.token_probability());
                        p_count += 1;
                    }
                }
            }
            segments.push(Segment {
                start_ms: to_ms(seg.start_timestamp()),
                end_ms: to_ms(seg.end_timestamp()).min(audio_ms.max(1)),
                text,
            });
        }
        let confidence = if p_count == 0 {
            0.0
        } else {
            (p_sum / f64::from(p_count)) as f32
        };
        Ok(Transcript {
            segments,
            confidence,
            audio_ms,
        })
    }
}

/// Whether a decoded segment is whisper reciting its prompt (it does so on noise, clicks and speech it cannot
/// make out: "普通话的句子，使用简体中文。"), not the caller's words: at least 6 Han characters or 4 words of it
/// appear, in order and back to back, in the prompt. Punctuation and case are ignored.
pub fn echoes_prompt(prompt: &str, text: &str) -> bool {
    fn units(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut word = String::new();
        for c in s.chars() {
            if is_han(c) {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                out.push(c.to_string());
            } else if c.is_alphanumeric() {
                word.extend(c.to_lowercase());
            } else if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
        }
        if !word.is_empty() {
            out.push(word);
        }
        out
    }
    let t = units(text);
    let han = t.iter().filter(|u| u.chars().all(is_han)).count();
    if t.is_empty() || (han < 6 && t.len() - han < 4) {
        return false;
    }
    units(prompt).windows(t.len()).any(|w| w == t.as_slice())
}

/// Removes whisper's repetition loops ("… payment. I want to speak … payment. I want to"): a run of three or more
/// words repeated back to back is kept once, and a cut-off copy at the very end (the token cap struck mid-loop)
/// is dropped. Tiny models loop most with a prompt and a short audio context; real speech rarely repeats a
/// 3-word phrase verbatim twice in a row, and if it does, nothing is lost for intent.
///
/// Chinese has no spaces, so there every Han character counts as a word: otherwise a loop like "轻轻轻轻轻轻…" or
/// "下的日子，下的日子，下的日子" (both seen from `base` on noise and robotic speech) would pass through whole.
pub fn collapse_repetitions(text: &str) -> String {
    let mut units = loop_units(text);
    let key = |w: &str| -> String {
        w.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let mut keys: Vec<String> = units.iter().map(|u| key(u.text)).collect();
    'scan: loop {
        let len = keys.len();
        for n in 3..=len / 2 {
            for i in 0..=len - 2 * n {
                if keys[i..i + n] != keys[i + n..i + 2 * n] {
                    continue;
                }
                let mut end = i + 2 * n;
                while end + n <= len && keys[end..end + n] == keys[i..i + n] {
                    end += n;
                }
                let tail = len - end;
                let drop_to = if tail < n && keys[end..] == keys[i..i + tail] {
                    len
                } else {
                    end
                };
                units.drain(i + n..drop_to);
                keys.drain(i + n..drop_to);
                continue 'scan;
            }
        }
        break;
    }
    let mut out = String::with_capacity(text.len());
    for unit in &units {
        if unit.spaced && !out.is_empty() {
            out.push(' ');
        }
        out.push_str(unit.text);
    }
    out
}

/// What [`collapse_repetitions`] compares: a whitespace-separated word, or inside unspaced Han text one character
/// together with the punctuation around it.
struct LoopUnit<'a> {
    text: &'a str,
    /// Begins a whitespace-separated word, so a space goes before it when the text is put back together.
    spaced: bool,
}

fn loop_units(text: &str) -> Vec<LoopUnit<'_>> {
    let mut units = Vec::new();
    for word in text.split_whitespace() {
        let mut start = 0;
        let mut seen_han = false;
        for (i, c) in word.char_indices() {
            if !is_han(c) {
                continue;
            }
            // A new unit at every Han character but the word's first, so leading punctuation stays attached.
            if seen_han {
                units.push(LoopUnit {
                    text: &word[start..i],
                    spaced: start == 0,
                });
                start = i;
            }
            seen_han = true;
        }
        units.push(LoopUnit {
            text: &word[start..],
            spaced: start == 0,
        });
    }
    units
}

/// CJK ideographs (unified, extension A, compatibility, supplementary-plane extensions).
fn is_han(c: char) -> bool {
    matches!(c,
        '\u{4E00}'..='\u{9FFF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FA1F}')
}

fn tokenize_prompt(ctx: &WhisperContext, prompt: &str) -> Result<Vec<WhisperTokenId>, AsrError> {
    // NUL cannot cross into C; it carries no meaning in a prompt anyway.
    let clean: String = prompt.chars().filter(|&c| c != '\0').collect();
    if clean.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut tokens = ctx
        .tokenize(&clean, 4 * MAX_PROMPT_TOKENS)
        .map_err(AsrError::Prompt)?;
    // Keep the end of an over-long prompt: the words nearest the utterance bias it most.
    if tokens.len() > MAX_PROMPT_TOKENS {
        tokens.drain(..tokens.len() - MAX_PROMPT_TOKENS);
    }
    Ok(tokens)
}

unsafe extern "C" fn past_deadline(user_data: *mut c_void) -> bool {
    // SAFETY: set in `Recognizer::decode` to a live `Instant` for the duration of the call.
    let deadline = unsafe { &*user_data.cast::<Instant>() };
    Instant::now() >= *deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_ctx_grows_with_utterance_and_caps_at_full_window() {
        // 2 s = 100 frames + 64 margin = 164 → 192.
        assert_eq!(audio_ctx_for(32_000, 64, 0), 192);
        // One sample still needs a frame.
        assert_eq!(audio_ctx_for(1, 0, 0), 64);
        // Short clips get the floor.
        assert_eq!(audio_ctx_for(16_000, 128, 256), 256);
        assert!(audio_ctx_for(8 * 16_000, 128, 256) > audio_ctx_for(4 * 16_000, 128, 256));
        assert_eq!(audio_ctx_for(60 * 16_000, 64, 0), FULL_AUDIO_CTX);
        assert_eq!(
            audio_ctx_for(usize::MAX, u16::MAX, u16::MAX),
            FULL_AUDIO_CTX
        );
    }

    #[test]
    fn temperature_step_allows_exactly_the_configured_fallbacks() {
        for n in 0u8..6 {
            let inc = temperature_inc(n);
            let mut tries = 1;
            if inc > 0.0 {
                let mut t = inc;
                while t < 1.0 + 1e-6 {
                    tries += 1;
                    t += inc;
                }
            }
            assert_eq!(tries, usize::from(n) + 1, "fallbacks {n}");
        }
    }

    #[test]
    fn token_cap_scales_with_audio_and_respects_the_configured_cap() {
        assert_eq!(token_cap(1_000, 96), 14);
        assert_eq!(token_cap(3_500, 96), 32);
        assert_eq!(token_cap(60_000, 96), 96);
        assert_eq!(token_cap(0, 96), 8);
        assert_eq!(token_cap(u32::MAX, 0), 1);
    }

    #[test]
    fn repetition_loops_collapse_to_one_copy() {
        let looped = "I want to speak to an agent. I want to speak to an agent. I want to speak to an agent. I want";
        assert_eq!(collapse_repetitions(looped), "I want to speak to an agent.");
        assert_eq!(
            collapse_repetitions("pay the bill pay the bill, please"),
            "pay the bill please"
        );
        // Short repeats are speech, not loops.
        assert_eq!(collapse_repetitions("no no no"), "no no no");
        assert_eq!(collapse_repetitions("  block   my card "), "block my card");
        assert_eq!(collapse_repetitions(""), "");
    }

    #[test]
    fn repetition_loops_in_unspaced_chinese_collapse_per_character() {
        // Loops `base` produced on hiss and on robotic espeak-ng speech.
        assert_eq!(collapse_repetitions("轻轻轻轻轻轻轻轻轻轻"), "轻轻轻");
        assert_eq!(
            collapse_repetitions("我都要下的日子, 下的日子, 下的日子, 下的日子。"),
            "我都要下的日子,"
        );
        // A copy cut off by the token cap (here mid-character: whisper's lossy U+FFFD) goes too.
        assert_eq!(
            collapse_repetitions("请帮我冻结，请帮我冻结，请帮我冻结，请帮�"),
            "请帮我冻结，"
        );
        // Ordinary sentences, short repeats and mixed scripts are left as they are.
        for same in [
            "我的信用卡丢了，请帮我冻结。",
            "对对对",
            "谢谢谢谢",
            "我的VISA卡 丢了",
            "《天文》《非天》",
            // Two characters three times is under the three-unit minimum, as "no no no" is in English.
            "好的好的好的",
        ] {
            assert_eq!(collapse_repetitions(same), same);
        }
        assert_eq!(
            collapse_repetitions("OK 我要转人工我要转人工 bye"),
            "OK 我要转人工 bye"
        );
    }

    #[test]
    fn language_parses_only_supported_codes() {
        assert_eq!("en".parse::<Language>(), Ok(Language::English));
        assert_eq!("zh".parse::<Language>(), Ok(Language::Mandarin));
        assert!("fr".parse::<Language>().is_err());
    }

    #[test]
    fn transcript_text_skips_blank_segments() {
        let seg = |t: &str| Segment {
            start_ms: 0,
            end_ms: 10,
            text: t.to_owned(),
        };
        let tr = Transcript {
            segments: vec![seg(" hello"), seg("  "), seg("world ")],
            confidence: 0.9,
            audio_ms: 10,
        };
        assert_eq!(tr.text(), "hello world");
        assert!(!tr.is_empty());
    }
}

#[cfg(test)]
mod echo_tests {
    use super::echoes_prompt;

    #[test]
    fn a_recited_prompt_is_an_echo_and_real_answers_are_not() {
        let zh = "以下是普通话的句子，使用简体中文。账号：一二三四五六七八。";
        assert!(echoes_prompt(zh, "普通话的句子，使用简体中文。"));
        assert!(echoes_prompt(zh, "以下是普通话的句子"));
        assert!(!echoes_prompt(zh, "是的"));
        assert!(!echoes_prompt(zh, "一二三四"));
        assert!(!echoes_prompt(zh, "我的银行卡丢了"));
        let en = "Demo bank hotline: balance, transactions, lost card, stolen card, freeze.";
        assert!(echoes_prompt(en, "Demo bank hotline, balance."));
        assert!(!echoes_prompt(en, "lost card"));
        assert!(!echoes_prompt(en, "I lost my card, please freeze it."));
    }
}
