//! Utterance endpointing (sans-IO): turns per-frame speech probabilities into "the caller
//! started", "the caller finished" and "the caller said nothing".
//!
//! One [`Endpointer`] per call; [`Endpointer::reconfigure`] / [`Endpointer::reset`] at the
//! start of every collect step, because a digit string may pause longer than a yes/no.

use std::time::{Duration, Instant};

/// Duration of one pipeline frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// Longest unvoiced gap a speech-start candidate survives. One frame: a single VAD miss
/// inside a syllable must not restart the count, two in a row is a real pause.
pub const ONSET_MAX_GAP: Duration = FRAME_DURATION;

/// Upper bound for every duration in the config: longer is a typo, and it keeps all
/// `Instant` arithmetic far from overflow.
pub const MAX_CONFIG_MS: u32 = 10 * 60 * 1000;

/// A configuration the endpointer refuses.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum EndpointerConfigError {
    /// `threshold` must be finite and in `(0, 1]`.
    #[error("speech threshold {0} outside (0, 1]")]
    Threshold(f32),
    /// `hysteresis` must be finite, `>= 0` and below `threshold`.
    #[error("hysteresis {hysteresis} must be in [0, threshold {threshold})")]
    Hysteresis { hysteresis: f32, threshold: f32 },
    /// A duration that must be positive is zero.
    #[error("{field} must be > 0 ms")]
    Zero { field: &'static str },
    /// A duration above [`MAX_CONFIG_MS`].
    #[error("{field} = {ms} ms exceeds {MAX_CONFIG_MS} ms")]
    TooLong { field: &'static str, ms: u32 },
    /// An utterance could never last long enough to be detected.
    #[error("max_utterance_ms {max_utterance_ms} must exceed start_speech_ms {start_speech_ms}")]
    MaxBelowStart {
        max_utterance_ms: u32,
        start_speech_ms: u32,
    },
}

/// Endpointing parameters for one collect step. All durations in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointerConfig {
    /// Probability at or above which a frame counts as voiced while waiting for speech.
    pub threshold: f32,
    /// Once speaking, frames count as voiced down to `threshold - hysteresis`, so a soft
    /// syllable does not open a silence run.
    pub hysteresis: f32,
    /// Voiced audio (frames, within one run) needed to declare speech start; shorter bursts
    /// (clicks, breaths) are ignored.
    pub start_speech_ms: u32,
    /// Continuous trailing silence that ends the utterance.
    pub end_silence_ms: u32,
    /// Utterance length (from onset) at which it is cut regardless of silence.
    pub max_utterance_ms: u32,
    /// Time from [`Endpointer::reset`] to [`EndpointEvent::NoInput`]; 0 disables it.
    pub no_input_ms: u32,
    /// How far before the onset the utterance audio starts, so the first syllable (whose
    /// weak onset the VAD misses) reaches the recogniser.
    pub pre_roll_ms: u32,
}

impl Default for EndpointerConfig {
    fn default() -> Self {
        Self::free_speech()
    }
}

impl EndpointerConfig {
    /// Open questions ("how can I help?"). 700 ms of silence is longer than the pauses
    /// inside a sentence of the phone-band corpus (see the endpointing corpus test) and
    /// short enough that the caller does not feel ignored.
    pub const fn free_speech() -> Self {
        Self {
            threshold: 0.5,
            hysteresis: 0.15,
            start_speech_ms: 100,
            end_silence_ms: 700,
            max_utterance_ms: 15_000,
            no_input_ms: 5_000,
            pre_roll_ms: 300,
        }
    }

    /// Yes/no and short commands: answer quickly.
    pub const fn yes_no() -> Self {
        Self {
            end_silence_ms: 500,
            max_utterance_ms: 5_000,
            ..Self::free_speech()
        }
    }

    /// Spoken digit strings: callers read numbers in groups and pause between them.
    pub const fn digit_string() -> Self {
        Self {
            end_silence_ms: 1_500,
            max_utterance_ms: 25_000,
            no_input_ms: 7_000,
            ..Self::free_speech()
        }
    }

    /// Checks every field; [`Endpointer`] only ever holds a validated config.
    pub fn validate(&self) -> Result<(), EndpointerConfigError> {
        let t = self.threshold;
        if !(t.is_finite() && t > 0.0 && t <= 1.0) {
            return Err(EndpointerConfigError::Threshold(t));
        }
        let h = self.hysteresis;
        if !(h.is_finite() && h >= 0.0 && h < t) {
            return Err(EndpointerConfigError::Hysteresis {
                hysteresis: h,
                threshold: t,
            });
        }
        for (field, ms, may_be_zero) in [
            ("start_speech_ms", self.start_speech_ms, false),
            ("end_silence_ms", self.end_silence_ms, false),
            ("max_utterance_ms", self.max_utterance_ms, false),
            ("no_input_ms", self.no_input_ms, true),
            ("pre_roll_ms", self.pre_roll_ms, true),
        ] {
            if ms == 0 && !may_be_zero {
                return Err(EndpointerConfigError::Zero { field });
            }
            if ms > MAX_CONFIG_MS {
                return Err(EndpointerConfigError::TooLong { field, ms });
            }
        }
        if self.max_utterance_ms <= self.start_speech_ms {
            return Err(EndpointerConfigError::MaxBelowStart {
                max_utterance_ms: self.max_utterance_ms,
                start_speech_ms: self.start_speech_ms,
            });
        }
        Ok(())
    }
}

/// Why an utterance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `end_silence_ms` of trailing silence.
    Silence,
    /// `max_utterance_ms` reached while the caller was still talking.
    MaxLength,
    /// A key press ended it (set by the pipeline, never by the endpointer): the words before the key are
    /// for the record; the key is the caller's answer.
    KeyPress,
}

/// What the endpointer noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointEvent {
    /// Speech confirmed; `at` is the onset (start of the first voiced frame of the run).
    SpeechStarted { at: Instant },
    /// The utterance is over. `start` is the onset minus the pre-roll (never before the
    /// reset), `end` the end of the last voiced frame (or the cut point for `MaxLength`).
    SpeechEnded {
        start: Instant,
        end: Instant,
        reason: EndReason,
    },
    /// `no_input_ms` passed without speech starting.
    NoInput,
}

/// A run of voiced frames that may become speech: where it started and how much of it was voiced.
/// Shared by the endpointer (speech start) and the barge-in detector (interruption).
#[derive(Debug, Clone, Copy)]
pub(crate) struct VoicedRun {
    pub(crate) onset: Instant,
    voiced: u32,
    pub(crate) last_voiced_end: Instant,
}

impl VoicedRun {
    /// `run` after one more frame: a voiced frame starts or extends it; an unvoiced gap longer than
    /// [`ONSET_MAX_GAP`] ends it.
    pub(crate) fn step(
        run: Option<Self>,
        voiced: bool,
        at: Instant,
        frame_end: Instant,
    ) -> Option<Self> {
        match (run, voiced) {
            (Some(mut r), true) => {
                r.voiced += 1;
                r.last_voiced_end = frame_end;
                Some(r)
            }
            (None, true) => Some(Self {
                onset: at,
                voiced: 1,
                last_voiced_end: frame_end,
            }),
            (Some(r), false) => {
                let gap = frame_end.saturating_duration_since(r.last_voiced_end);
                (gap <= ONSET_MAX_GAP).then_some(r)
            }
            (None, false) => None,
        }
    }

    /// Voiced audio in the run, in milliseconds.
    pub(crate) fn voiced_ms(&self) -> u64 {
        u64::from(self.voiced) * FRAME_DURATION.as_millis() as u64
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Not collecting (before the first reset, or after an end event).
    Idle,
    Waiting {
        since: Instant,
        candidate: Option<VoicedRun>,
    },
    Speaking {
        since: Instant,
        onset: Instant,
        last_voiced_end: Instant,
    },
}

/// Per-call endpointer; see the module docs. Feed it every frame with
/// [`Endpointer::handle_frame`] and call [`Endpointer::handle_timeout`] at
/// [`Endpointer::poll_timeout`] so the no-input timeout fires even if frames stall.
#[derive(Debug, Clone)]
pub struct Endpointer {
    config: EndpointerConfig,
    state: State,
}

impl Endpointer {
    /// An idle endpointer; nothing is reported until [`Endpointer::reset`].
    pub fn new(config: EndpointerConfig) -> Result<Self, EndpointerConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            state: State::Idle,
        })
    }

    /// Active configuration.
    pub fn config(&self) -> &EndpointerConfig {
        &self.config
    }

    /// Starts a collect step at `now` with the current config, forgetting any utterance.
    pub fn reset(&mut self, now: Instant) {
        self.state = State::Waiting {
            since: now,
            candidate: None,
        };
    }

    /// Starts a collect step with a new config (e.g. the dialog step's own timings).
    /// On error the endpointer is left unchanged.
    pub fn reconfigure(
        &mut self,
        config: EndpointerConfig,
        now: Instant,
    ) -> Result<(), EndpointerConfigError> {
        config.validate()?;
        self.config = config;
        self.reset(now);
        Ok(())
    }

    /// Stops collecting; frames are ignored until the next reset.
    pub fn stop(&mut self) {
        self.state = State::Idle;
    }

    /// Whether a collect step is running (no end event yet).
    pub fn is_active(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Whether speech has started and not yet ended.
    pub fn is_speaking(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
    }

    /// While speaking: where the utterance audio starts (onset minus pre-roll, not before
    /// the reset), so the ASR tap can take its buffered audio from there.
    pub fn utterance_start(&self) -> Option<Instant> {
        match self.state {
            State::Speaking { since, onset, .. } => Some(self.pre_rolled(onset, since)),
            _ => None,
        }
    }

    /// Feeds one frame: its speech probability and the instant its first sample was
    /// captured. Frames must come in time order.
    pub fn handle_frame(&mut self, probability: f32, at: Instant) -> Option<EndpointEvent> {
        let frame_end = at + FRAME_DURATION;
        // NaN counts as unvoiced: a broken VAD must not hold a call in "speaking" forever.
        let p = if probability.is_nan() {
            0.0
        } else {
            probability
        };
        match self.state {
            State::Idle => None,
            State::Waiting { since, candidate } => {
                let voiced = p >= self.config.threshold;
                let candidate = VoicedRun::step(candidate, voiced, at, frame_end);
                match candidate {
                    Some(c) if c.voiced_ms() >= u64::from(self.config.start_speech_ms) => {
                        self.state = State::Speaking {
                            since,
                            onset: c.onset,
                            last_voiced_end: c.last_voiced_end,
                        };
                        Some(EndpointEvent::SpeechStarted { at: c.onset })
                    }
                    Some(_) => {
                        self.state = State::Waiting { since, candidate };
                        None
                    }
                    None => {
                        self.state = State::Waiting { since, candidate };
                        self.check_no_input(at)
                    }
                }
            }
            State::Speaking {
                since,
                onset,
                last_voiced_end,
            } => {
                let voiced = p >= self.config.threshold - self.config.hysteresis;
                let last_voiced_end = if voiced { frame_end } else { last_voiced_end };
                self.state = State::Speaking {
                    since,
                    onset,
                    last_voiced_end,
                };
                self.check_end(frame_end)
            }
        }
    }

    /// When [`Endpointer::handle_timeout`] must be called if no frame arrives before then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Idle => None,
            State::Waiting {
                candidate: Some(_), ..
            } => None,
            State::Waiting {
                since,
                candidate: None,
            } => self.no_input_deadline(since),
            State::Speaking {
                onset,
                last_voiced_end,
                ..
            } => Some(
                (last_voiced_end + ms(self.config.end_silence_ms))
                    .min(onset + ms(self.config.max_utterance_ms)),
            ),
        }
    }

    /// Fires deadlines that passed at `now` without a frame (stalled stream).
    pub fn handle_timeout(&mut self, now: Instant) -> Option<EndpointEvent> {
        match self.state {
            State::Waiting {
                candidate: None, ..
            } => self.check_no_input(now),
            State::Speaking { .. } => self.check_end(now),
            _ => None,
        }
    }

    fn no_input_deadline(&self, since: Instant) -> Option<Instant> {
        (self.config.no_input_ms > 0).then(|| since + ms(self.config.no_input_ms))
    }

    fn check_no_input(&mut self, now: Instant) -> Option<EndpointEvent> {
        let State::Waiting {
            since,
            candidate: None,
        } = self.state
        else {
            return None;
        };
        let deadline = self.no_input_deadline(since)?;
        if now >= deadline {
            self.state = State::Idle;
            Some(EndpointEvent::NoInput)
        } else {
            None
        }
    }

    /// Ends the utterance if `now` (end of the newest audio) passed a deadline.
    fn check_end(&mut self, now: Instant) -> Option<EndpointEvent> {
        let State::Speaking {
            since,
            onset,
            last_voiced_end,
        } = self.state
        else {
            return None;
        };
        let start = self.pre_rolled(onset, since);
        let max_end = onset + ms(self.config.max_utterance_ms);
        let silence = now.saturating_duration_since(last_voiced_end);
        let (end, reason) = if silence >= ms(self.config.end_silence_ms) {
            (last_voiced_end, EndReason::Silence)
        } else if now >= max_end {
            (max_end, EndReason::MaxLength)
        } else {
            return None;
        };
        self.state = State::Idle;
        Some(EndpointEvent::SpeechEnded { start, end, reason })
    }

    fn pre_rolled(&self, onset: Instant, since: Instant) -> Instant {
        onset
            .checked_sub(ms(self.config.pre_roll_ms))
            .unwrap_or(since)
            .max(since)
    }
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives an endpointer with one probability per 20 ms frame from `t0`; returns each
    /// event with the index of the frame that produced it.
    fn run(ep: &mut Endpointer, t0: Instant, probs: &[f32]) -> Vec<(usize, EndpointEvent)> {
        probs
            .iter()
            .enumerate()
            .filter_map(|(i, &p)| {
                ep.handle_frame(p, t0 + FRAME_DURATION * i as u32)
                    .map(|e| (i, e))
            })
            .collect()
    }

    fn frames(spec: &[(f32, usize)]) -> Vec<f32> {
        spec.iter()
            .flat_map(|&(p, n)| std::iter::repeat_n(p, n))
            .collect()
    }

    fn at(t0: Instant, frame: usize) -> Instant {
        t0 + FRAME_DURATION * frame as u32
    }

    fn started(t0: Instant, cfg: EndpointerConfig) -> Endpointer {
        let mut ep = Endpointer::new(cfg).unwrap();
        ep.reset(t0);
        ep
    }

    #[test]
    fn speech_starts_after_start_speech_ms_with_onset_and_pre_roll() {
        let t0 = Instant::now();
        let mut ep = started(t0, EndpointerConfig::free_speech());
        // 1 s silence, then speech: 100 ms = 5 voiced frames are needed.
        let probs = frames(&[(0.1, 50), (0.9, 30), (0.0, 40)]);
        let ev = run(&mut ep, t0, &probs);
        assert_eq!(
            ev[0],
            (54, EndpointEvent::SpeechStarted { at: at(t0, 50) }),
            "start is declared on the 5th voiced frame, onset is the 1st"
        );
        // Utterance audio starts 300 ms (15 frames) before the onset.
        let (i, end) = ev[1];
        assert_eq!(
            end,
            EndpointEvent::SpeechEnded {
                start: at(t0, 35),
                end: at(t0, 80),
                reason: EndReason::Silence
            }
        );
        // 700 ms of silence after the last voiced frame (which ended at frame 80).
        assert_eq!(i, 80 + 35 - 1);
        assert_eq!(ev.len(), 2);
        assert!(!ep.is_active());
    }

    #[test]
    fn utterance_start_is_available_while_speaking_and_clamped_to_reset() {
        let t0 = Instant::now();
        let mut ep = started(t0, EndpointerConfig::free_speech());
        assert_eq!(ep.utterance_start(), None);
        // Speech right after the reset: pre-roll cannot reach before the collect step.
        run(&mut ep, t0, &frames(&[(0.0, 5), (1.0, 6)]));
        assert!(ep.is_speaking());
        assert_eq!(ep.utterance_start(), Some(t0));
    }

    #[test]
    fn short_bursts_and_isolated_frames_do_not_start_speech() {
        let t0 = Instant::now();
        let mut ep = started(t0, EndpointerConfig::free_speech());
        // 80 ms clicks separated by 40 ms of silence never reach 100 ms in one run.
        let mut probs = Vec::new();
        for _ in 0..20 {
            probs.extend(frames(&[(1.0, 4), (0.0, 2)]));
        }
        assert!(run(&mut ep, t0, &probs).is_empty());
        assert!(!ep.is_speaking());
    }

    #[test]
    fn single_frame_dip_does_not_restart_the_onset_count() {
        let t0 = Instant::now();
        let mut ep = started(t0, EndpointerConfig::free_speech());
        let probs = frames(&[(0.0, 10), (0.9, 3), (0.2, 1), (0.9, 2)]);
        let ev = run(&mut ep, t0, &probs);
        assert_eq!(
            ev,
            vec![(15, EndpointEvent::SpeechStarted { at: at(t0, 10) })]
        );
    }

    #[test]
    fn hysteresis_keeps_soft_frames_voiced_and_short_pauses_do_not_end() {
        let t0 = Instant::now();
        let mut ep = started(t0, EndpointerConfig::free_speech());
        // Soft frames at 0.4 (< threshold 0.5, >= 0.35) keep the utterance alive, and a
        // 600 ms pause (< 700 ms) is bridged.
        let probs = frames(&[(0.9, 10), (0.4, 60), (0.0, 30), (0.9, 10), (0.0, 40)]);
        let ev = run(&mut ep, t0, &probs);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(
            ev[1].1,
            EndpointEvent::SpeechEnded {
                start: t0,
                end: at(t0, 110),
                reason: EndReason::Silence
            }
        );
        // Without hysteresis the soft frames are silence and the utterance ends early.
        let mut strict = started(
            t0,
            EndpointerConfig {
                hysteresis: 0.0,
                ..EndpointerConfig::free_speech()
            },
        );
        let ev = run(&mut strict, t0, &probs);
        assert!(matches!(
            ev[1].1,
            EndpointEvent::SpeechEnded { end, .. } if end == at(t0, 10)
        ));
    }

    #[test]
    fn digit_strings_survive_pauses_that_end_free_speech() {
        let t0 = Instant::now();
        let probs = frames(&[(0.9, 40), (0.0, 50), (0.9, 40), (0.0, 100)]);
        let mut free = started(t0, EndpointerConfig::free_speech());
        let mut digits = started(t0, EndpointerConfig::digit_string());
        let end_of = |ev: Vec<(usize, EndpointEvent)>| match ev.last() {
            Some((_, EndpointEvent::SpeechEnded { end, .. })) => *end,
            other => panic!("no end: {other:?}"),
        };
        assert_eq!(end_of(run(&mut free, t0, &probs)), at(t0, 40));
        assert_eq!(end_of(run(&mut digits, t0, &probs)), at(t0, 130));
    }

    #[test]
    fn max_length_cuts_a_never_ending_utterance() {
        let t0 = Instant::now();
        let cfg = EndpointerConfig {
            max_utterance_ms: 2_000,
            ..EndpointerConfig::free_speech()
        };
        let mut ep = started(t0, cfg);
        let ev = run(&mut ep, t0, &frames(&[(0.0, 20), (1.0, 500)]));
        assert_eq!(
            ev[1],
            (
                20 + 99,
                EndpointEvent::SpeechEnded {
                    start: at(t0, 5),
                    end: at(t0, 120),
                    reason: EndReason::MaxLength
                }
            )
        );
        assert_eq!(ev.len(), 2, "nothing after the end event");
    }

    #[test]
    fn no_input_fires_on_frames_and_on_timeout() {
        let t0 = Instant::now();
        let cfg = EndpointerConfig::free_speech();
        let mut ep = started(t0, cfg);
        let ev = run(&mut ep, t0, &frames(&[(0.1, 300)]));
        assert_eq!(ev, vec![(250, EndpointEvent::NoInput)]);

        // Stalled stream: only timeouts.
        let mut ep = started(t0, cfg);
        let deadline = ep.poll_timeout().unwrap();
        assert_eq!(deadline, t0 + Duration::from_secs(5));
        assert_eq!(ep.handle_timeout(deadline - Duration::from_millis(1)), None);
        assert_eq!(ep.handle_timeout(deadline), Some(EndpointEvent::NoInput));
        assert_eq!(ep.poll_timeout(), None);
        assert_eq!(ep.handle_timeout(deadline + Duration::from_secs(1)), None);
    }

    #[test]
    fn no_input_waits_for_a_pending_onset_and_can_be_disabled() {
        let t0 = Instant::now();
        let cfg = EndpointerConfig {
            no_input_ms: 1_000,
            ..EndpointerConfig::free_speech()
        };
        // A candidate starting 40 ms before the deadline is allowed to become speech.
        let mut ep = started(t0, cfg);
        let ev = run(&mut ep, t0, &frames(&[(0.0, 48), (1.0, 10)]));
        assert_eq!(
            ev,
            vec![(52, EndpointEvent::SpeechStarted { at: at(t0, 48) })]
        );
        assert_eq!(
            ep.poll_timeout(),
            Some(at(t0, 58) + Duration::from_millis(700))
        );

        let mut never = started(
            t0,
            EndpointerConfig {
                no_input_ms: 0,
                ..cfg
            },
        );
        assert!(run(&mut never, t0, &frames(&[(0.0, 2_000)])).is_empty());
        assert_eq!(never.poll_timeout(), None);
    }

    #[test]
    fn stalled_stream_ends_utterance_by_timeout() {
        let t0 = Instant::now();
        let mut ep = started(t0, EndpointerConfig::yes_no());
        run(&mut ep, t0, &frames(&[(1.0, 10)]));
        let deadline = ep.poll_timeout().unwrap();
        assert_eq!(deadline, at(t0, 10) + Duration::from_millis(500));
        assert_eq!(
            ep.handle_timeout(deadline),
            Some(EndpointEvent::SpeechEnded {
                start: t0,
                end: at(t0, 10),
                reason: EndReason::Silence
            })
        );
    }

    #[test]
    fn idle_until_reset_and_reset_restarts() {
        let t0 = Instant::now();
        let mut ep = Endpointer::new(EndpointerConfig::free_speech()).unwrap();
        assert!(run(&mut ep, t0, &frames(&[(1.0, 20)])).is_empty());
        assert_eq!(ep.poll_timeout(), None);
        ep.reset(at(t0, 20));
        run(&mut ep, t0 + FRAME_DURATION * 20, &frames(&[(1.0, 10)]));
        assert!(ep.is_speaking());
        ep.reset(at(t0, 30));
        assert!(!ep.is_speaking() && ep.is_active());
        ep.stop();
        assert!(!ep.is_active());
    }

    #[test]
    fn per_frame_calls_do_not_allocate() {
        let t0 = Instant::now();
        let mut ep = started(t0, EndpointerConfig::free_speech());
        let probs = frames(&[(0.0, 10), (1.0, 50), (0.0, 60)]);
        let mut events = 0;
        let n = crate::resample::alloc_probe::allocations_in(|| {
            for (i, &p) in probs.iter().enumerate() {
                events += usize::from(ep.handle_frame(p, at(t0, i)).is_some());
                let _ = ep.poll_timeout();
            }
        });
        assert_eq!(n, 0);
        assert_eq!(events, 2);
    }

    #[test]
    fn nan_probability_is_silence() {
        let t0 = Instant::now();
        let mut ep = started(t0, EndpointerConfig::yes_no());
        let ev = run(&mut ep, t0, &frames(&[(1.0, 10), (f32::NAN, 30)]));
        assert!(matches!(
            ev.last(),
            Some((
                _,
                EndpointEvent::SpeechEnded {
                    reason: EndReason::Silence,
                    ..
                }
            ))
        ));
    }

    #[test]
    fn invalid_configs_are_rejected_precisely() {
        let ok = EndpointerConfig::free_speech();
        let cases = [
            (
                EndpointerConfig {
                    threshold: 0.0,
                    ..ok
                },
                EndpointerConfigError::Threshold(0.0),
            ),
            (
                EndpointerConfig {
                    threshold: 1.5,
                    ..ok
                },
                EndpointerConfigError::Threshold(1.5),
            ),
            (
                EndpointerConfig {
                    hysteresis: 0.5,
                    ..ok
                },
                EndpointerConfigError::Hysteresis {
                    hysteresis: 0.5,
                    threshold: 0.5,
                },
            ),
            (
                EndpointerConfig {
                    start_speech_ms: 0,
                    ..ok
                },
                EndpointerConfigError::Zero {
                    field: "start_speech_ms",
                },
            ),
            (
                EndpointerConfig {
                    end_silence_ms: u32::MAX,
                    ..ok
                },
                EndpointerConfigError::TooLong {
                    field: "end_silence_ms",
                    ms: u32::MAX,
                },
            ),
            (
                EndpointerConfig {
                    max_utterance_ms: 100,
                    ..ok
                },
                EndpointerConfigError::MaxBelowStart {
                    max_utterance_ms: 100,
                    start_speech_ms: 100,
                },
            ),
        ];
        for (cfg, err) in cases {
            assert_eq!(Endpointer::new(cfg).unwrap_err(), err);
        }
        assert!(matches!(
            Endpointer::new(EndpointerConfig { threshold: f32::NAN, ..ok }),
            Err(EndpointerConfigError::Threshold(t)) if t.is_nan()
        ));
        // A failed reconfigure leaves the running config in place.
        let t0 = Instant::now();
        let mut ep = started(t0, ok);
        assert!(ep
            .reconfigure(
                EndpointerConfig {
                    threshold: -1.0,
                    ..ok
                },
                t0
            )
            .is_err());
        assert_eq!(*ep.config(), ok);
        ep.reconfigure(EndpointerConfig::digit_string(), t0)
            .unwrap();
        assert_eq!(ep.config().end_silence_ms, 1_500);
    }
}
