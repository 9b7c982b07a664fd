//! The per-call speech pipeline (sans-IO): near-end analysis, barge-in, endpointing and
//! utterance capture behind one object the media thread drives once per 20 ms tick.
//!
//! Time is an input: every frame comes with `at`, the media-time instant of its first
//! sample (`call_start + frame_index × 20 ms`). The pipeline keeps an audio timeline
//! anchored at the first frame's `at` (8 kHz, one sample per 125 µs), so any instant the
//! endpointer reports maps to a sample position without reading a clock. A gap in `at`
//! is filled with silence; an `at` that overlaps the previous frame is appended right
//! after it, so a jittery caller cannot scramble the audio.
//!
//! Audio for an utterance is copied from a ring of recent cleaned audio when speech is
//! confirmed (the endpointer confirms `start_speech_ms` after the onset and wants
//! `pre_roll_ms` before it), then appended frame by frame. All buffers are allocated in
//! [`SpeechPipeline::new`] (or grown by [`SpeechPipeline::listen`] for a larger config);
//! the per-frame path only allocates the `Arc` of a finished utterance or a partial.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Frame, FRAME_SAMPLES, SAMPLE_RATE};

use super::bargein::{BargeInConfig, BargeInConfigError, BargeInDetector, BargeInEvent};
use super::echo::{EchoConfig, EchoStats};
use super::endpointer::{
    EndReason, EndpointEvent, Endpointer, EndpointerConfig, EndpointerConfigError, MAX_CONFIG_MS,
};
use super::nearend::{NearEndAnalyzer, NearEndError};
use super::vad::{VadError, VadKind};

/// Events queued before the oldest are dropped: a tick yields at most three (barge-in,
/// utterance end, partial), so eight only fill up when nobody polls.
const EVENT_QUEUE_CAP: usize = 8;
/// Shortest speech kept when a key press ends an utterance (less is a breath or the key's click).
pub const MIN_KEPT_MS: u32 = 400;

/// The ring of recent audio never holds less than this, whatever the config.
const MIN_RING_MS: u32 = 2_000;

/// Slack for rounding and the frame on which a deadline fires.
const MARGIN_SAMPLES: usize = 2 * FRAME_SAMPLES;

/// Everything one call's speech pipeline needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PipelineConfig {
    /// Echo guard parameters.
    pub echo: EchoConfig,
    /// Cancel our own prompt's echo. Off, the guard is shown silence as the reference, so the caller's
    /// audio passes through unchanged (sites with a clean digital path, or to measure what the guard does).
    pub echo_guard: bool,
    /// Which VAD engine.
    pub vad: VadKind,
    /// Barge-in rules (the detector is armed per prompt).
    pub barge_in: BargeInConfig,
    /// Endpointing until the first [`SpeechPipeline::listen`] brings a step's own; also
    /// sizes the buffers allocated up front.
    pub endpointer: EndpointerConfig,
    /// Re-decode interval for streaming partials while the caller speaks; `None` disables partials.
    pub partial_interval_ms: Option<u32>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            echo: EchoConfig::default(),
            echo_guard: true,
            vad: VadKind::default(),
            barge_in: BargeInConfig::default(),
            endpointer: EndpointerConfig::free_speech(),
            partial_interval_ms: Some(600),
        }
    }
}

/// What the pipeline tells the media thread. Utterances are numbered from 1 per call
/// (per pipeline); a discarded or dropped utterance keeps its number.
#[derive(Debug, Clone, PartialEq)]
pub enum SpeechEvent {
    /// Barge-in detector events, passed through (Pause / BargeIn{at: onset} / Resume).
    BargeIn(BargeInEvent),
    /// Endpointer confirmed speech; `at` = onset.
    SpeechStarted { utterance: u32, at: Instant },
    /// Snapshot of the still-growing utterance (pre-roll included), every partial_interval_ms of speech.
    ///
    /// Cut at the end of the last voiced frame so far, so every partial is a prefix of the
    /// final [`SpeechEvent::Utterance`] audio and carries no trailing silence.
    Partial { utterance: u32, audio: Arc<[i16]> },
    /// The utterance ended. `audio` spans `start..end` exactly (pre-roll included, trailing silence
    /// after `end` excluded), 8 kHz mono, echo-cancelled ("cleaned") samples.
    Utterance {
        utterance: u32,
        start: Instant,
        end: Instant,
        reason: EndReason,
        audio: Arc<[i16]>,
    },
    /// The endpointer's no-input timeout fired while listening.
    NoInput,
}

impl SpeechEvent {
    /// Variant name, for logs (the audio is too large to print).
    fn kind(&self) -> &'static str {
        match self {
            Self::BargeIn(_) => "BargeIn",
            Self::SpeechStarted { .. } => "SpeechStarted",
            Self::Partial { .. } => "Partial",
            Self::Utterance { .. } => "Utterance",
            Self::NoInput => "NoInput",
        }
    }
}

/// Why the pipeline could not be built, reconfigured or fed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The echo guard or the VAD could not be built.
    #[error("near-end analyzer: {0}")]
    NearEnd(#[from] NearEndError),
    /// Bad barge-in configuration.
    #[error("barge-in: {0}")]
    BargeIn(#[from] BargeInConfigError),
    /// Bad endpointing configuration.
    #[error("endpointer: {0}")]
    Endpointer(#[from] EndpointerConfigError),
    /// The VAD failed on a frame.
    #[error("vad: {0}")]
    Vad(#[from] VadError),
    /// `partial_interval_ms` is zero or above [`MAX_CONFIG_MS`].
    #[error("partial_interval_ms = {0} ms outside 1..={MAX_CONFIG_MS} ms")]
    PartialInterval(u32),
}

/// The utterance being captured, once the endpointer confirmed speech.
#[derive(Debug, Clone, Copy)]
struct Capture {
    utterance: u32,
    /// Timeline position of `audio[0]`.
    start: i64,
    /// Timeline position of the speech onset (`start` + pre-roll).
    onset: i64,
    /// Timeline position just after the last voiced frame (for partials).
    voiced_end: i64,
    /// Timeline position (head) at which the next partial is due.
    next_partial: i64,
    /// Length of the last partial sent, so a pause does not resend the same snapshot.
    partial_len: usize,
}

/// One call's speech front end; see the module docs.
///
/// `!Send` when its VAD is libfvad: build it on the media thread that runs the call.
#[derive(Debug)]
pub struct SpeechPipeline {
    analyzer: NearEndAnalyzer,
    echo_guard: bool,
    barge_in: BargeInDetector,
    endpointer: Endpointer,
    /// Partial interval in samples.
    partial_interval: Option<i64>,
    listening: bool,
    /// Number of the last utterance whose speech start was reported.
    utterance: u32,
    /// Media time of timeline position 0 (the first frame's `at`).
    origin: Option<Instant>,
    /// Timeline position just after the newest sample written.
    head: i64,
    /// Cleaned audio of timeline positions `head - ring.len() .. head` (index = position mod len).
    ring: Vec<i16>,
    /// Audio of the utterance in progress, from its start.
    audio: Vec<i16>,
    capture: Option<Capture>,
    events: VecDeque<SpeechEvent>,
}

impl SpeechPipeline {
    /// Builds every part and allocates all buffers for `config.endpointer`. Not listening
    /// until [`SpeechPipeline::listen`].
    pub fn new(config: PipelineConfig) -> Result<Self, PipelineError> {
        let partial_interval = match config.partial_interval_ms {
            None => None,
            Some(ms) if ms == 0 || ms > MAX_CONFIG_MS => {
                return Err(PipelineError::PartialInterval(ms));
            }
            Some(ms) => Some(ms_to_samples(ms)),
        };
        let barge_in = BargeInDetector::new(config.barge_in)?;
        let endpointer = Endpointer::new(config.endpointer)?;
        let analyzer = NearEndAnalyzer::new(config.echo, config.vad)?;
        Ok(Self {
            analyzer,
            echo_guard: config.echo_guard,
            barge_in,
            endpointer,
            partial_interval,
            listening: false,
            utterance: 0,
            origin: None,
            head: 0,
            ring: vec![0; ring_len(&config.endpointer)],
            audio: Vec::with_capacity(audio_capacity(&config.endpointer)),
            capture: None,
            events: VecDeque::with_capacity(EVENT_QUEUE_CAP),
        })
    }

    /// One tick. `far` = the frame we sent this tick (silence when nothing plays), `near` = the caller frame
    /// received this tick. Writes the echo-cancelled near frame to `cleaned` (the recorder may use it).
    ///
    /// `at` is the media time of the frames' first sample; ticks must come in time order.
    pub fn handle_frame(
        &mut self,
        far: &Frame,
        near: &Frame,
        at: Instant,
        cleaned: &mut Frame,
    ) -> Result<(), PipelineError> {
        const SILENCE: Frame = [0; FRAME_SAMPLES];
        let far = if self.echo_guard { far } else { &SILENCE };
        let frame = self.analyzer.process(far, near, cleaned)?;
        self.write_ring(at, cleaned);
        self.sync_capture();

        // Armed only while an interruptible prompt plays, so it runs whether or not we listen.
        if let Some(ev) = self.barge_in.handle_frame(&frame, at) {
            self.push(SpeechEvent::BargeIn(ev));
        }
        if !self.listening {
            return Ok(());
        }
        let p = frame.gated_probability();
        if let Some(ev) = self.endpointer.handle_frame(p, at) {
            self.on_endpoint(ev);
        }
        if let Some(mut c) = self.capture {
            // Same rule the endpointer uses while speaking (hysteresis below threshold), so
            // partials end where the final utterance would end if the caller stopped here.
            let cfg = self.endpointer.config();
            if p >= cfg.threshold - cfg.hysteresis {
                c.voiced_end = self.head;
            }
            self.capture = Some(c);
            self.maybe_partial();
        }
        Ok(())
    }

    /// Next queued event, oldest first.
    pub fn poll_event(&mut self) -> Option<SpeechEvent> {
        self.events.pop_front()
    }

    /// An interruptible (or not) prompt started / stopped: forwards to the barge-in detector.
    pub fn prompt_started(&mut self, barge_in: bool) {
        self.barge_in.prompt_started(barge_in);
    }

    /// See [`SpeechPipeline::prompt_started`].
    pub fn prompt_stopped(&mut self) {
        self.barge_in.prompt_stopped();
    }

    /// Start (or restart) collecting an utterance with this step's endpointing (validated; on error nothing changes).
    /// `now` starts the no-input timer. Utterance numbers increase by one per utterance across the call.
    ///
    /// Allocates only when `config` needs larger buffers than any config before it.
    pub fn listen(&mut self, config: EndpointerConfig, now: Instant) -> Result<(), PipelineError> {
        config.validate()?;
        self.grow_ring(ring_len(&config));
        self.drop_capture();
        let cap = audio_capacity(&config);
        if self.audio.capacity() < cap {
            self.audio.reserve_exact(cap);
        }
        self.endpointer.reconfigure(config, now)?;
        self.listening = true;
        Ok(())
    }

    /// Stop collecting; any utterance in progress is dropped without an event.
    pub fn stop_listening(&mut self) {
        self.listening = false;
        self.endpointer.stop();
        self.drop_capture();
    }

    /// Whether an utterance is being collected (between `listen` and `NoInput` / `stop_listening`).
    pub fn is_listening(&self) -> bool {
        self.listening
    }

    /// Drop the utterance in progress (e.g. it was a DTMF tone) and keep listening for the next one.
    ///
    /// The next utterance's pre-roll does not reach back before `now`, and its number is
    /// one higher: the dropped one keeps its number. Restarts the no-input timer.
    pub fn discard_utterance(&mut self, now: Instant) {
        if !self.listening {
            return;
        }
        self.drop_capture();
        self.endpointer.reset(now);
    }

    /// A key pressed at `key_at` ends the utterance in progress: the speech before it is kept as an
    /// utterance ending [`EndReason::KeyPress`] (so what the caller said is not lost from the transcript)
    /// and the key's tone never becomes speech. Less than [`MIN_KEPT_MS`] of speech is dropped. Keeps
    /// listening, like [`SpeechPipeline::discard_utterance`].
    pub fn end_utterance_at_key(&mut self, key_at: Instant, now: Instant) {
        if !self.listening {
            return;
        }
        if let (Some(c), Some(origin)) = (self.capture.take(), self.origin) {
            let end = c.voiced_end.min(self.pos_of(key_at));
            let len = usize::try_from(end - c.start)
                .unwrap_or(0)
                .min(self.audio.len());
            if end - c.onset >= ms_to_samples(MIN_KEPT_MS) {
                let at = |pos: i64| {
                    let d = samples_to_duration(pos.unsigned_abs());
                    if pos >= 0 {
                        origin + d
                    } else {
                        origin.checked_sub(d).unwrap_or(origin)
                    }
                };
                let audio: Arc<[i16]> = Arc::from(&self.audio[..len]);
                self.push(SpeechEvent::Utterance {
                    utterance: c.utterance,
                    start: at(c.start),
                    end: at(c.start + len as i64),
                    reason: EndReason::KeyPress,
                    audio,
                });
            }
        }
        self.drop_capture();
        self.endpointer.reset(now);
    }

    /// When [`SpeechPipeline::handle_timeout`] must run if no frame arrives first (the endpointer's deadline).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.listening {
            self.endpointer.poll_timeout()
        } else {
            None
        }
    }

    /// Fires endpointer deadlines that passed at `now` without a frame (stalled stream);
    /// may queue `NoInput` or an `Utterance` (audio not received is silence).
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.listening {
            return;
        }
        if let Some(ev) = self.endpointer.handle_timeout(now) {
            self.on_endpoint(ev);
        }
    }

    /// Echo guard statistics of the latest tick.
    pub fn echo_stats(&self) -> EchoStats {
        self.analyzer.echo().stats()
    }

    fn on_endpoint(&mut self, ev: EndpointEvent) {
        match ev {
            EndpointEvent::SpeechStarted { at } => {
                self.utterance = self.utterance.wrapping_add(1);
                let utterance = self.utterance;
                // Speaking now, so the endpointer knows where the audio starts.
                let start = self.endpointer.utterance_start().unwrap_or(at);
                let start = self.pos_of(start);
                self.audio.clear();
                let onset = self.pos_of(at);
                self.capture = Some(Capture {
                    utterance,
                    start,
                    onset,
                    voiced_end: self.head,
                    next_partial: self
                        .partial_interval
                        .map_or(i64::MAX, |i| self.head.saturating_add(i)),
                    partial_len: 0,
                });
                self.sync_capture();
                self.push(SpeechEvent::SpeechStarted { utterance, at });
            }
            EndpointEvent::SpeechEnded { start, end, reason } => {
                if let Some(c) = self.capture.take() {
                    debug_assert_eq!(c.start, self.pos_of(start));
                    let len =
                        usize::try_from(duration_to_samples(end.saturating_duration_since(start)))
                            .unwrap_or(usize::MAX)
                            .min(self.audio.capacity());
                    if self.audio.len() < len {
                        // Deadline passed without frames (stalled stream): the rest is silence.
                        let from = c.start.saturating_add(self.audio.len() as i64);
                        self.read_ring(from, c.start.saturating_add(len as i64));
                    }
                    let audio: Arc<[i16]> = Arc::from(&self.audio[..len.min(self.audio.len())]);
                    self.audio.clear();
                    self.push(SpeechEvent::Utterance {
                        utterance: c.utterance,
                        start,
                        end,
                        reason,
                        audio,
                    });
                }
                // Keep listening so a caller can say two things in a row; resetting at `end`
                // lets the next pre-roll reach into this one's trailing silence, not its speech.
                self.endpointer.reset(end);
            }
            EndpointEvent::NoInput => {
                self.listening = false;
                self.drop_capture();
                self.push(SpeechEvent::NoInput);
            }
        }
    }

    fn maybe_partial(&mut self) {
        let Some(mut c) = self.capture else { return };
        let Some(interval) = self.partial_interval else {
            return;
        };
        if self.head < c.next_partial {
            return;
        }
        c.next_partial = c.next_partial.saturating_add(interval);
        if c.next_partial <= self.head {
            // Frames skipped ahead: keep the grid from now on rather than firing in a burst.
            c.next_partial = self.head.saturating_add(interval);
        }
        let len = usize::try_from(c.voiced_end.saturating_sub(c.start))
            .unwrap_or(0)
            .min(self.audio.len());
        if len > c.partial_len {
            c.partial_len = len;
            let audio: Arc<[i16]> = Arc::from(&self.audio[..len]);
            self.push(SpeechEvent::Partial {
                utterance: c.utterance,
                audio,
            });
        }
        self.capture = Some(c);
    }

    fn drop_capture(&mut self) {
        self.capture = None;
        self.audio.clear();
    }

    /// Queues `ev`; when full, drops the oldest partial (a newer one supersedes it), else
    /// the oldest event, so an unpolled pipeline stays bounded.
    fn push(&mut self, ev: SpeechEvent) {
        if self.events.len() >= EVENT_QUEUE_CAP {
            let partial = self
                .events
                .iter()
                .position(|e| matches!(e, SpeechEvent::Partial { .. }));
            match (partial, &ev) {
                (Some(i), _) => {
                    self.events.remove(i);
                }
                (None, SpeechEvent::Partial { .. }) => {
                    tracing::warn!("speech event queue full, partial dropped");
                    return;
                }
                (None, _) => {
                    let dropped = self.events.pop_front().map(|e| e.kind());
                    tracing::warn!(?dropped, "speech event queue full, oldest event dropped");
                }
            }
        }
        self.events.push_back(ev);
    }

    /// Timeline position of `t`; instants before the first frame are negative.
    fn pos_of(&self, t: Instant) -> i64 {
        let Some(origin) = self.origin else { return 0 };
        match t.checked_duration_since(origin) {
            Some(d) => duration_to_samples(d),
            None => duration_to_samples(origin.saturating_duration_since(t)).saturating_neg(),
        }
    }

    fn ring_len_i64(&self) -> i64 {
        self.ring.len() as i64
    }

    fn ring_index(&self, pos: i64) -> usize {
        // rem_euclid of a positive modulus is in 0..len.
        pos.rem_euclid(self.ring_len_i64()) as usize
    }

    /// Writes a cleaned frame at `at`'s timeline position.
    fn write_ring(&mut self, at: Instant, frame: &Frame) {
        self.origin.get_or_insert(at);
        let pos = self.pos_of(at).max(self.head);
        // Silence for a gap in the frame times (at most one ring's worth matters).
        let gap = (pos - self.head).min(self.ring_len_i64());
        for q in pos - gap..pos {
            let i = self.ring_index(q);
            self.ring[i] = 0;
        }
        let i = self.ring_index(pos);
        let first = (self.ring.len() - i).min(FRAME_SAMPLES);
        self.ring[i..i + first].copy_from_slice(&frame[..first]);
        self.ring[..FRAME_SAMPLES - first].copy_from_slice(&frame[first..]);
        self.head = pos + FRAME_SAMPLES as i64;
    }

    /// Appends timeline positions `from..to` to the utterance buffer: ring audio where it
    /// still holds it, silence elsewhere. Never grows the buffer past its capacity.
    fn read_ring(&mut self, from: i64, to: i64) {
        let room = (self.audio.capacity() - self.audio.len()) as i64;
        let to = to.min(from.saturating_add(room));
        let lo = (self.head - self.ring_len_i64()).max(0);
        let mut q = from;
        while q < to {
            if q < lo || q >= self.head {
                let end = if q < lo { lo.min(to) } else { to };
                self.audio.resize(self.audio.len() + (end - q) as usize, 0);
                q = end;
            } else {
                let i = self.ring_index(q);
                let n = ((to.min(self.head) - q) as usize).min(self.ring.len() - i);
                self.audio.extend_from_slice(&self.ring[i..i + n]);
                q += n as i64;
            }
        }
    }

    /// Brings the utterance buffer up to the newest audio.
    fn sync_capture(&mut self) {
        if let Some(c) = self.capture {
            let from = c.start.saturating_add(self.audio.len() as i64);
            self.read_ring(from, self.head);
        }
    }

    /// Enlarges the ring to `len` samples, keeping its contents at their positions.
    fn grow_ring(&mut self, len: usize) {
        if len <= self.ring.len() {
            return;
        }
        let mut ring = vec![0; len];
        let lo = (self.head - self.ring_len_i64()).max(0);
        for q in lo..self.head {
            ring[q.rem_euclid(len as i64) as usize] = self.ring[self.ring_index(q)];
        }
        self.ring = ring;
    }
}

/// Ring length for `cfg`: the endpointer confirms speech at most `2 × start_speech_ms`
/// after the onset (a one-frame gap may follow every voiced frame) and the audio starts
/// `pre_roll_ms` before the onset.
fn ring_len(cfg: &EndpointerConfig) -> usize {
    let ms = cfg
        .pre_roll_ms
        .saturating_add(cfg.start_speech_ms.saturating_mul(2))
        .max(MIN_RING_MS);
    ms_to_samples(ms) as usize + MARGIN_SAMPLES
}

/// Longest utterance audio for `cfg`: onset − pre-roll to onset + max length.
fn audio_capacity(cfg: &EndpointerConfig) -> usize {
    ms_to_samples(cfg.max_utterance_ms.saturating_add(cfg.pre_roll_ms)) as usize + MARGIN_SAMPLES
}

fn ms_to_samples(ms: u32) -> i64 {
    i64::from(ms) * i64::from(SAMPLE_RATE / 1000)
}

fn samples_to_duration(n: u64) -> Duration {
    Duration::from_nanos(n.saturating_mul(1_000_000_000) / u64::from(SAMPLE_RATE))
}

/// Samples in `d` at 8 kHz, rounded to the nearest.
fn duration_to_samples(d: Duration) -> i64 {
    let n = (d.as_nanos() * u128::from(SAMPLE_RATE) + 500_000_000) / 1_000_000_000;
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::corpus::{frames, label, phone_channel, render, Voice};
    use super::super::endpointer::FRAME_DURATION;
    use super::*;
    use crate::resample::alloc_probe::allocations_in;

    const SILENT: Frame = [0; FRAME_SAMPLES];

    /// Samples in `ms` milliseconds.
    fn n(ms: usize) -> usize {
        ms * 8
    }

    fn samples(d: Duration) -> usize {
        duration_to_samples(d) as usize
    }

    fn at(t0: Instant, frame: usize) -> Instant {
        t0 + FRAME_DURATION * frame as u32
    }

    /// Silence and voiced bursts (`(voiced, ms)` runs); the phase follows the absolute
    /// sample index. "Voiced" is eight harmonics of a pitch gliding 120–180 Hz at 2 Hz,
    /// about -25 dBFS: libfvad takes it for speech on every frame from the first one. A
    /// steady 300 Hz sine does not work: the VAD calls it speech for 80 ms, then adapts
    /// its noise model to it.
    fn signal(spec: &[(bool, usize)]) -> Vec<i16> {
        use std::f64::consts::PI;
        let amp = 32768.0 * 0.02f64.sqrt() / 2.0;
        let mut x = Vec::new();
        for &(voiced, ms) in spec {
            for _ in 0..n(ms) {
                let t = x.len() as f64 / 8000.0;
                // Phase of f0(t) = 150 + 30 sin(2π·2t).
                let phase = 2.0 * PI * (150.0 * t - 30.0 / (4.0 * PI) * (4.0 * PI * t).cos());
                let v = if voiced {
                    amp * (1..=8)
                        .map(|k| (f64::from(k) * phase).sin() / f64::from(k))
                        .sum::<f64>()
                } else {
                    0.0
                };
                x.push(v.round() as i16);
            }
        }
        x
    }

    fn pipeline(partial_interval_ms: Option<u32>) -> SpeechPipeline {
        SpeechPipeline::new(PipelineConfig {
            partial_interval_ms,
            ..PipelineConfig::default()
        })
        .unwrap()
    }

    /// Feeds `near` (far silent) as ticks `from..`, polling after each; events with their tick.
    fn feed(
        p: &mut SpeechPipeline,
        t0: Instant,
        from: usize,
        near: &[i16],
    ) -> Vec<(usize, SpeechEvent)> {
        let mut out = Vec::new();
        let mut cleaned = SILENT;
        for (i, f) in frames(near).iter().enumerate() {
            p.handle_frame(&SILENT, f, at(t0, from + i), &mut cleaned)
                .unwrap();
            while let Some(e) = p.poll_event() {
                out.push((from + i, e));
            }
        }
        out
    }

    /// Events without their audio, for failure messages.
    fn brief(ev: &[(usize, SpeechEvent)]) -> String {
        let line = |(i, e): &(usize, SpeechEvent)| match e {
            SpeechEvent::Partial { utterance, audio } => {
                format!("{i}: Partial {utterance}, {} samples", audio.len())
            }
            SpeechEvent::Utterance {
                utterance,
                reason,
                audio,
                ..
            } => format!(
                "{i}: Utterance {utterance} {reason:?}, {} samples",
                audio.len()
            ),
            e => format!("{i}: {e:?}"),
        };
        ev.iter().map(line).collect::<Vec<_>>().join("\n")
    }

    fn utterances(ev: &[(usize, SpeechEvent)]) -> Vec<&SpeechEvent> {
        ev.iter()
            .map(|(_, e)| e)
            .filter(|e| matches!(e, SpeechEvent::Utterance { .. }))
            .collect()
    }

    #[test]
    fn voiced_burst_gives_speech_started_then_utterance_spanning_start_to_end() {
        let t0 = Instant::now();
        let mut p = pipeline(None);
        p.listen(EndpointerConfig::free_speech(), t0).unwrap();
        let near = signal(&[(false, 1000), (true, 1000), (false, 2000)]);
        let ev = feed(&mut p, t0, 0, &near);
        let [(
            _,
            SpeechEvent::SpeechStarted {
                utterance: 1,
                at: onset,
            },
        ), (
            _,
            SpeechEvent::Utterance {
                utterance: 1,
                start,
                end,
                reason: EndReason::Silence,
                audio,
            },
        )] = ev.as_slice()
        else {
            panic!("{}", brief(&ev))
        };
        assert!(*onset >= at(t0, 50) && *onset <= at(t0, 53), "{onset:?}");
        assert_eq!(*start, *onset - Duration::from_millis(300));
        assert!(*end >= at(t0, 100) && *end <= at(t0, 110), "{end:?}");
        assert_eq!(audio.len(), samples(*end - *start));
        // With nothing played, the cleaned audio is the caller's: the span start..end of
        // the input, so the burst's first samples are inside, after pre-roll silence.
        let from = samples(*start - t0);
        assert!(from < n(1000));
        assert_eq!(audio[..], near[from..from + audio.len()]);
        assert!(audio[n(1000) - from + 1] != 0);
        assert!(p.is_listening(), "keeps listening after an utterance");
    }

    #[test]
    fn partials_follow_the_interval_and_prefix_the_final_audio() {
        let t0 = Instant::now();
        let mut p = pipeline(Some(200));
        p.listen(EndpointerConfig::free_speech(), t0).unwrap();
        let near = signal(&[(false, 500), (true, 1500), (false, 1500)]);
        let ev = feed(&mut p, t0, 0, &near);
        let started = ev
            .iter()
            .find(|(_, e)| matches!(e, SpeechEvent::SpeechStarted { .. }))
            .map(|(i, _)| *i)
            .unwrap();
        let [SpeechEvent::Utterance {
            audio: last,
            utterance: 1,
            ..
        }] = utterances(&ev)[..]
        else {
            panic!("{}", brief(&ev))
        };
        let partials: Vec<(usize, &Arc<[i16]>)> = ev
            .iter()
            .filter_map(|(i, e)| match e {
                SpeechEvent::Partial {
                    utterance: 1,
                    audio,
                } => Some((*i, audio)),
                _ => None,
            })
            .collect();
        assert!(partials.len() >= 6, "{}", partials.len());
        let mut prev = (started, 0);
        for (i, audio) in partials {
            assert_eq!(i - prev.0, 10, "one partial per 200 ms of speech");
            assert!(audio.len() > prev.1 && audio.len() <= last.len());
            assert_eq!(audio[..], last[..audio.len()]);
            prev = (i, audio.len());
        }
    }

    #[test]
    fn interruptible_prompt_reports_barge_in_at_the_onset_even_when_not_listening() {
        let t0 = Instant::now();
        let mut p = pipeline(None);
        p.prompt_started(true);
        let near = signal(&[(false, 1000), (true, 1000), (false, 500)]);
        let ev = feed(&mut p, t0, 0, &near);
        let [(i, SpeechEvent::BargeIn(BargeInEvent::BargeIn { at: onset }))] = ev.as_slice() else {
            panic!("{}", brief(&ev))
        };
        assert!(*onset >= at(t0, 50) && *onset <= at(t0, 53), "{onset:?}");
        // 160 ms of speech: fires on the 8th voiced frame.
        assert_eq!(at(t0, *i), *onset + FRAME_DURATION * 7);
    }

    #[test]
    fn non_interruptible_prompt_never_reports_barge_in() {
        let t0 = Instant::now();
        let mut p = pipeline(None);
        p.prompt_started(false);
        p.listen(EndpointerConfig::free_speech(), t0).unwrap();
        let near = signal(&[(false, 1000), (true, 1000), (false, 1000)]);
        let ev = feed(&mut p, t0, 0, &near);
        assert!(
            !ev.iter().any(|(_, e)| matches!(e, SpeechEvent::BargeIn(_))),
            "{}",
            brief(&ev)
        );
        assert_eq!(utterances(&ev).len(), 1, "speech is still collected");
    }

    #[test]
    fn discarded_utterance_is_dropped_and_the_next_is_numbered_one_higher() {
        let t0 = Instant::now();
        let mut p = pipeline(None);
        p.listen(EndpointerConfig::free_speech(), t0).unwrap();
        let first = signal(&[(false, 500), (true, 500), (false, 300)]);
        let ev = feed(&mut p, t0, 0, &first);
        assert!(
            matches!(
                ev.as_slice(),
                [(_, SpeechEvent::SpeechStarted { utterance: 1, .. })]
            ),
            "{}",
            brief(&ev)
        );
        let k = first.len() / FRAME_SAMPLES;
        p.discard_utterance(at(t0, k));
        assert!(p.is_listening());
        let second = signal(&[(false, 1000), (true, 500), (false, 1500)]);
        let ev = feed(&mut p, t0, k, &second);
        let [(_, SpeechEvent::SpeechStarted { utterance: 2, .. }), (
            _,
            SpeechEvent::Utterance {
                utterance: 2,
                start,
                ..
            },
        )] = ev.as_slice()
        else {
            panic!("{}", brief(&ev))
        };
        assert!(*start >= at(t0, k));
    }

    #[test]
    fn a_key_press_keeps_the_words_before_it_and_drops_the_tone() {
        let t0 = Instant::now();
        let mut p = pipeline(None);
        p.listen(EndpointerConfig::free_speech(), t0).unwrap();
        // 1 s of speech, 100 ms of pause, then the key (the endpointer has not ended the utterance yet).
        let first = signal(&[(false, 500), (true, 1000), (false, 100)]);
        let ev = feed(&mut p, t0, 0, &first);
        assert_eq!(ev.len(), 1, "{}", brief(&ev));
        let k = first.len() / FRAME_SAMPLES;
        // The key's tone started 20 ms before it was reported.
        p.end_utterance_at_key(at(t0, k - 1), at(t0, k));
        let events: Vec<SpeechEvent> = std::iter::from_fn(|| p.poll_event()).collect();
        let [SpeechEvent::Utterance {
            utterance: 1,
            start,
            end,
            reason: EndReason::KeyPress,
            audio,
        }] = events.as_slice()
        else {
            panic!("no key-press utterance")
        };
        // The speech is all there, the pause after it is not.
        let (s, e) = (*start - t0, *end - t0);
        assert!(
            s <= Duration::from_millis(500) && e >= Duration::from_millis(1480),
            "{s:?}..{e:?}"
        );
        assert!(e <= Duration::from_millis(1540), "{e:?}");
        assert_eq!(audio.len(), samples(e - s));
        assert!(p.is_listening());

        // A key right after a breath keeps nothing.
        let breath = signal(&[(false, 800), (true, 200), (false, 40)]);
        let ev = feed(&mut p, t0, k, &breath);
        let k2 = k + breath.len() / FRAME_SAMPLES;
        let started = ev
            .iter()
            .any(|(_, e)| matches!(e, SpeechEvent::SpeechStarted { .. }));
        p.end_utterance_at_key(at(t0, k2), at(t0, k2));
        assert!(p.poll_event().is_none(), "started: {started}");
    }

    #[test]
    fn no_input_fires_at_poll_timeout_and_stops_listening() {
        let t0 = Instant::now();
        let mut p = pipeline(None);
        assert_eq!(p.poll_timeout(), None, "not listening yet");
        p.listen(
            EndpointerConfig {
                no_input_ms: 1_000,
                ..EndpointerConfig::free_speech()
            },
            t0,
        )
        .unwrap();
        let deadline = p.poll_timeout().unwrap();
        assert_eq!(deadline, t0 + Duration::from_secs(1));
        p.handle_timeout(deadline - Duration::from_millis(1));
        assert_eq!(p.poll_event(), None);
        p.handle_timeout(deadline);
        assert_eq!(p.poll_event(), Some(SpeechEvent::NoInput));
        assert_eq!(p.poll_event(), None);
        assert!(!p.is_listening());
        assert_eq!(p.poll_timeout(), None);
        let near = signal(&[(true, 1000), (false, 1000)]);
        assert!(feed(&mut p, t0, 50, &near).is_empty());
    }

    #[test]
    fn stop_listening_drops_the_utterance_and_ignores_speech() {
        let t0 = Instant::now();
        let mut p = pipeline(Some(100));
        p.listen(EndpointerConfig::free_speech(), t0).unwrap();
        let near = signal(&[(false, 500), (true, 300)]);
        let ev = feed(&mut p, t0, 0, &near);
        assert!(matches!(ev[0].1, SpeechEvent::SpeechStarted { .. }));
        p.stop_listening();
        assert!(!p.is_listening());
        let k = near.len() / FRAME_SAMPLES;
        let rest = signal(&[(true, 1000), (false, 1000), (true, 1000), (false, 1000)]);
        let ev = feed(&mut p, t0, k, &rest);
        assert!(ev.is_empty(), "{}", brief(&ev));
    }

    #[test]
    fn max_length_cut_continues_seamlessly_in_the_next_utterance() {
        let t0 = Instant::now();
        let mut p = pipeline(None);
        p.listen(
            EndpointerConfig {
                max_utterance_ms: 1_000,
                ..EndpointerConfig::free_speech()
            },
            t0,
        )
        .unwrap();
        // 1.3 s of speech: cut after 1 s, the last 300 ms are the next utterance.
        let near = signal(&[(false, 500), (true, 1300), (false, 1500)]);
        let ev = feed(&mut p, t0, 0, &near);
        let [SpeechEvent::Utterance {
            utterance: 1,
            start: s1,
            end: e1,
            reason: EndReason::MaxLength,
            audio: a1,
        }, SpeechEvent::Utterance {
            utterance: 2,
            start: s2,
            end: e2,
            reason: EndReason::Silence,
            audio: a2,
        }] = utterances(&ev)[..]
        else {
            panic!("{}", brief(&ev))
        };
        assert_eq!(s2, e1, "the cut utterance continues where the first ended");
        let from = samples(*s1 - t0);
        let whole: Vec<i16> = a1.iter().chain(a2.iter()).copied().collect();
        assert_eq!(whole.len(), samples(*e2 - *s1));
        assert_eq!(whole[..], near[from..from + whole.len()]);
    }

    #[test]
    fn listen_with_a_larger_config_grows_the_buffers() {
        let t0 = Instant::now();
        let mut p = SpeechPipeline::new(PipelineConfig {
            endpointer: EndpointerConfig::yes_no(),
            partial_interval_ms: None,
            ..PipelineConfig::default()
        })
        .unwrap();
        // 3 s pre-roll exceeds the 2 s ring, 6 s of speech the 5 s yes/no maximum.
        let big = EndpointerConfig {
            pre_roll_ms: 3_000,
            max_utterance_ms: 20_000,
            no_input_ms: 0,
            ..EndpointerConfig::free_speech()
        };
        let near = signal(&[(false, 4000), (true, 6000), (false, 1000)]);
        // Some audio before listening, so the ring has content to carry over.
        let ev = feed(&mut p, t0, 0, &near[..n(2000)]);
        assert!(ev.is_empty());
        // `now` before the audio already received: the pre-roll reaches into it, so the
        // grown ring must have kept it.
        p.listen(big, t0).unwrap();
        let ev = feed(&mut p, t0, 100, &near[n(2000)..]);
        let [SpeechEvent::Utterance {
            start, end, audio, ..
        }] = utterances(&ev)[..]
        else {
            panic!("{}", brief(&ev))
        };
        assert!(*start < at(t0, 200) - Duration::from_millis(2_900));
        let from = samples(*start - t0);
        assert_eq!(audio.len(), samples(*end - *start));
        assert_eq!(audio.len(), n(9_000), "3 s pre-roll and 6 s of speech");
        assert_eq!(audio[..], near[from..from + audio.len()]);
    }

    #[test]
    fn unpolled_events_are_capped_dropping_partials_first() {
        let t0 = Instant::now();
        let mut p = pipeline(Some(20));
        p.listen(EndpointerConfig::free_speech(), t0).unwrap();
        let near = signal(&[(false, 500), (true, 3000), (false, 1500)]);
        let mut cleaned = SILENT;
        for (i, f) in frames(&near).iter().enumerate() {
            p.handle_frame(&SILENT, f, at(t0, i), &mut cleaned).unwrap();
            assert!(p.events.len() <= EVENT_QUEUE_CAP);
        }
        let ev: Vec<SpeechEvent> = std::iter::from_fn(|| p.poll_event()).collect();
        assert_eq!(ev.len(), EVENT_QUEUE_CAP);
        assert!(matches!(ev[0], SpeechEvent::SpeechStarted { .. }));
        assert!(ev[1..7]
            .iter()
            .all(|e| matches!(e, SpeechEvent::Partial { .. })));
        assert!(matches!(ev[7], SpeechEvent::Utterance { .. }));
    }

    #[test]
    fn frames_do_not_allocate_until_an_utterance_ends() {
        let t0 = Instant::now();
        let mut p = pipeline(None);
        p.prompt_started(true);
        p.listen(EndpointerConfig::free_speech(), t0).unwrap();
        let near = frames(&signal(&[(false, 1000), (true, 2000)]));
        let mut cleaned = SILENT;
        p.handle_frame(&SILENT, &near[0], t0, &mut cleaned).unwrap();
        let allocs = allocations_in(|| {
            for (i, f) in near.iter().enumerate().skip(1) {
                p.handle_frame(&SILENT, f, at(t0, i), &mut cleaned).unwrap();
                let _ = p.poll_timeout();
                let _ = p.echo_stats();
            }
        });
        assert_eq!(allocs, 0);
        assert!(matches!(
            p.poll_event(),
            Some(SpeechEvent::SpeechStarted { .. })
        ));
        assert!(matches!(p.poll_event(), Some(SpeechEvent::BargeIn(_))));
    }

    #[test]
    fn invalid_configs_are_rejected_and_a_failed_listen_changes_nothing() {
        let bad_barge_in = SpeechPipeline::new(PipelineConfig {
            barge_in: BargeInConfig {
                min_speech_ms: 0,
                ..BargeInConfig::default()
            },
            ..PipelineConfig::default()
        });
        assert!(matches!(bad_barge_in, Err(PipelineError::BargeIn(_))));
        let bad_partial = SpeechPipeline::new(PipelineConfig {
            partial_interval_ms: Some(0),
            ..PipelineConfig::default()
        });
        assert!(matches!(
            bad_partial,
            Err(PipelineError::PartialInterval(0))
        ));
        let bad_echo = SpeechPipeline::new(PipelineConfig {
            echo: EchoConfig {
                filter_taps: 0,
                ..EchoConfig::default()
            },
            ..PipelineConfig::default()
        });
        assert!(matches!(bad_echo, Err(PipelineError::NearEnd(_))));

        let t0 = Instant::now();
        let mut p = pipeline(None);
        let bad = EndpointerConfig {
            threshold: 2.0,
            ..EndpointerConfig::free_speech()
        };
        assert!(matches!(
            p.listen(bad, t0),
            Err(PipelineError::Endpointer(_))
        ));
        assert!(!p.is_listening());
        p.listen(EndpointerConfig::yes_no(), t0).unwrap();
        assert!(p.listen(bad, t0).is_err());
        assert!(p.is_listening());
        assert_eq!(p.endpointer.config(), &EndpointerConfig::yes_no());
    }

    #[test]
    fn two_spoken_sentences_give_two_utterances_covering_each() {
        let voice = Voice::Flite("slt");
        let a = render(voice, "I would like to check my balance.");
        let b = render(voice, "And then transfer fifty dollars.");
        let mut clean = vec![0i16; n(500)];
        let a_at = clean.len();
        clean.extend_from_slice(&a);
        clean.resize(clean.len() + n(1500), 0);
        let b_at = clean.len();
        clean.extend_from_slice(&b);
        clean.resize(clean.len() + n(1500), 0);
        // Sample spans of each sentence's speech, from the energy labels of the clean render.
        let labels = label(&clean);
        let span = |from: usize, len: usize| {
            let l = &labels[from / FRAME_SAMPLES..(from + len) / FRAME_SAMPLES];
            let first = l.iter().position(|&v| v).unwrap();
            let last = l.iter().rposition(|&v| v).unwrap();
            (
                from / FRAME_SAMPLES * FRAME_SAMPLES + first * FRAME_SAMPLES,
                from / FRAME_SAMPLES * FRAME_SAMPLES + (last + 1) * FRAME_SAMPLES,
            )
        };
        let spans = [span(a_at, a.len()), span(b_at, b.len())];
        let near = phone_channel(&clean);

        let t0 = Instant::now();
        let mut p = pipeline(Some(600));
        p.listen(EndpointerConfig::free_speech(), t0).unwrap();
        let ev = feed(&mut p, t0, 0, &near);
        let utts = utterances(&ev);
        assert_eq!(utts.len(), 2, "{}", brief(&ev));
        for (k, (u, &(first, last))) in utts.iter().zip(spans.iter()).enumerate() {
            let SpeechEvent::Utterance {
                utterance,
                start,
                end,
                audio,
                ..
            } = u
            else {
                unreachable!()
            };
            let (s, e) = (samples(*start - t0), samples(*end - t0));
            println!(
                "utterance {utterance}: {s}..{e} samples, speech {first}..{last}, len {}",
                audio.len()
            );
            assert_eq!(*utterance, k as u32 + 1);
            assert_eq!(audio.len(), e - s);
            assert!(s <= first, "sentence {k} clipped at the start");
            assert!(s + n(400) >= first, "no more than the pre-roll before it");
            // The end is the last voiced frame: VAD hangover, not the 700 ms end silence.
            assert!(e >= last && e <= last + n(200), "sentence {k} end");
        }
        assert!(spans[0].1 < spans[1].0);
    }
}
