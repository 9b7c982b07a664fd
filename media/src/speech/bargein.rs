//! Barge-in rules (sans-IO): when caller speech over an interruptible prompt is real
//! enough to stop it.
//!
//! Input per tick is a [`NearEndFrame`] (VAD on echo-cancelled audio plus the echo floor
//! decision) and the frame's start instant. The media thread tells the detector when an
//! interruptible prompt starts and stops; DTMF is handled elsewhere and always interrupts.
//!
//! False interruptions: speech must accumulate `min_speech_ms` of voiced frames in one run
//! before anything fires, so clicks and coughs are ignored. With
//! [`ResumePolicy::PauseThenConfirm`] the detector first asks the media thread to *pause*
//! the prompt (stop pulling frames from the player, keep its queue), then either confirms
//! (flush) once the speech outlasts `confirm_ms`, or asks to resume when it stops sooner.

use std::time::{Duration, Instant};

use super::endpointer::{VoicedRun, FRAME_DURATION, MAX_CONFIG_MS};
use super::nearend::NearEndFrame;

/// What to do between "speech seen" and "prompt flushed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResumePolicy {
    /// Flush as soon as `min_speech_ms` of speech is seen. Lowest latency.
    #[default]
    Flush,
    /// Pause at `min_speech_ms`; flush if speech is still going `confirm_ms` after the
    /// pause; resume if `resume_silence_ms` of silence comes first.
    PauseThenConfirm {
        /// Time after the pause at which continuing speech confirms the barge-in.
        confirm_ms: u32,
        /// Silence that, before confirmation, makes the pause a false alarm.
        resume_silence_ms: u32,
    },
}

/// Barge-in parameters, per prompt or per call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BargeInConfig {
    /// Gated speech probability at or above which a frame is caller speech.
    pub threshold: f32,
    /// Voiced audio, in one run, that counts as an interruption.
    ///
    /// 160 ms by default: coughs, clicks and line hits give fewer voiced frames even after
    /// VAD smearing (the 50 ms burst test), a real "no" or "agent" gives more; and
    /// 160 ms plus the VAD's own lag keeps the stop within the ~250 ms after which callers
    /// start repeating themselves.
    pub min_speech_ms: u32,
    /// False-interruption handling.
    pub resume: ResumePolicy,
}

impl Default for BargeInConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_speech_ms: 160,
            resume: ResumePolicy::Flush,
        }
    }
}

/// A configuration [`BargeInDetector`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum BargeInConfigError {
    /// `threshold` must be finite and in `(0, 1]`.
    #[error("barge-in threshold {0} outside (0, 1]")]
    Threshold(f32),
    /// A duration that must be positive is zero.
    #[error("{field} must be > 0 ms")]
    Zero { field: &'static str },
    /// A duration above the endpointer's [`MAX_CONFIG_MS`].
    #[error("{field} = {ms} ms exceeds {MAX_CONFIG_MS} ms")]
    TooLong { field: &'static str, ms: u32 },
}

impl BargeInConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), BargeInConfigError> {
        let t = self.threshold;
        if !(t.is_finite() && t > 0.0 && t <= 1.0) {
            return Err(BargeInConfigError::Threshold(t));
        }
        let (confirm, resume) = match self.resume {
            ResumePolicy::Flush => (None, None),
            ResumePolicy::PauseThenConfirm {
                confirm_ms,
                resume_silence_ms,
            } => (Some(confirm_ms), Some(resume_silence_ms)),
        };
        let fields = [
            ("min_speech_ms", Some(self.min_speech_ms)),
            ("confirm_ms", confirm),
            ("resume_silence_ms", resume),
        ];
        for (field, ms) in fields {
            let Some(ms) = ms else { continue };
            if ms == 0 {
                return Err(BargeInConfigError::Zero { field });
            }
            if ms > MAX_CONFIG_MS {
                return Err(BargeInConfigError::TooLong { field, ms });
            }
        }
        Ok(())
    }
}

/// What the media thread must do with the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BargeInEvent {
    /// Tentative barge-in: stop sending prompt audio but keep the player's queue
    /// (only with [`ResumePolicy::PauseThenConfirm`]). `at` is the speech onset.
    Pause { at: Instant },
    /// Barge-in: flush the player (`PromptPlayer::stop_and_flush`) and record `at`, the
    /// onset of the caller's speech, on the call timeline.
    BargeIn { at: Instant },
    /// The paused prompt was a false alarm: continue playing. `at` is when it was decided.
    Resume { at: Instant },
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// No interruptible prompt playing.
    Disarmed,
    /// Interruptible prompt playing; maybe a speech run building up.
    Armed(Option<VoicedRun>),
    /// Tentative barge-in, prompt paused since `paused_at`.
    Paused { run: VoicedRun, paused_at: Instant },
}

/// Per-call barge-in detector; see the module docs.
#[derive(Debug, Clone)]
pub struct BargeInDetector {
    config: BargeInConfig,
    state: State,
}

impl BargeInDetector {
    /// A disarmed detector.
    pub fn new(config: BargeInConfig) -> Result<Self, BargeInConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            state: State::Disarmed,
        })
    }

    /// Active configuration.
    pub fn config(&self) -> &BargeInConfig {
        &self.config
    }

    /// Replaces the configuration (e.g. per prompt); on error nothing changes.
    pub fn set_config(&mut self, config: BargeInConfig) -> Result<(), BargeInConfigError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// A prompt started playing. Non-interruptible prompts (`barge_in = false`, e.g. legal
    /// disclosures) leave the detector disarmed.
    pub fn prompt_started(&mut self, barge_in: bool) {
        self.state = if barge_in {
            State::Armed(None)
        } else {
            State::Disarmed
        };
    }

    /// The prompt finished, was flushed (barge-in, DTMF) or the call ended.
    pub fn prompt_stopped(&mut self) {
        self.state = State::Disarmed;
    }

    /// Whether an interruptible prompt is playing (or paused).
    pub fn is_armed(&self) -> bool {
        !matches!(self.state, State::Disarmed)
    }

    /// Whether a tentative barge-in holds the prompt paused.
    pub fn is_paused(&self) -> bool {
        matches!(self.state, State::Paused { .. })
    }

    /// Feeds one tick; `at` is the start of the frame `frame` was computed from.
    pub fn handle_frame(&mut self, frame: &NearEndFrame, at: Instant) -> Option<BargeInEvent> {
        let voiced = frame.is_speech(self.config.threshold);
        let frame_end = at + FRAME_DURATION;
        match self.state {
            State::Disarmed => None,
            State::Armed(run) => {
                let run = VoicedRun::step(run, voiced, at, frame_end);
                match run {
                    Some(r) if r.voiced_ms() >= u64::from(self.config.min_speech_ms) => {
                        match self.config.resume {
                            ResumePolicy::Flush => {
                                self.state = State::Disarmed;
                                Some(BargeInEvent::BargeIn { at: r.onset })
                            }
                            ResumePolicy::PauseThenConfirm { .. } => {
                                self.state = State::Paused {
                                    run: r,
                                    paused_at: frame_end,
                                };
                                Some(BargeInEvent::Pause { at: r.onset })
                            }
                        }
                    }
                    _ => {
                        self.state = State::Armed(run);
                        None
                    }
                }
            }
            State::Paused { mut run, paused_at } => {
                let ResumePolicy::PauseThenConfirm {
                    confirm_ms,
                    resume_silence_ms,
                } = self.config.resume
                else {
                    // Policy changed while paused: a flush policy means "interrupt now".
                    self.state = State::Disarmed;
                    return Some(BargeInEvent::BargeIn { at: run.onset });
                };
                if voiced {
                    run.last_voiced_end = frame_end;
                }
                let silence = frame_end.saturating_duration_since(run.last_voiced_end);
                if silence >= ms(resume_silence_ms) {
                    self.state = State::Armed(None);
                    Some(BargeInEvent::Resume { at: frame_end })
                } else if frame_end.saturating_duration_since(paused_at) >= ms(confirm_ms) {
                    self.state = State::Disarmed;
                    Some(BargeInEvent::BargeIn { at: run.onset })
                } else {
                    self.state = State::Paused { run, paused_at };
                    None
                }
            }
        }
    }
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

#[cfg(test)]
mod tests {
    use super::super::echo::EchoStats;
    use super::*;

    fn frame(p: f32, above_floor: bool) -> NearEndFrame {
        NearEndFrame {
            speech_probability: p,
            echo: EchoStats {
                erle_db: 20.0,
                erl_db: 15.0,
                delay_ms: Some(120),
                double_talk: false,
                residual_dbfs: -30.0,
                floor_dbfs: -40.0,
                above_echo_floor: above_floor,
                leak_db: -20.0,
            },
        }
    }

    /// (probability, above echo floor, frame count) runs → events with frame index.
    fn run(
        d: &mut BargeInDetector,
        t0: Instant,
        spec: &[(f32, bool, usize)],
    ) -> Vec<(usize, BargeInEvent)> {
        let mut out = Vec::new();
        let mut i = 0;
        for &(p, floor, n) in spec {
            for _ in 0..n {
                if let Some(e) = d.handle_frame(&frame(p, floor), at(t0, i)) {
                    out.push((i, e));
                }
                i += 1;
            }
        }
        out
    }

    fn at(t0: Instant, i: usize) -> Instant {
        t0 + FRAME_DURATION * i as u32
    }

    fn armed(cfg: BargeInConfig) -> BargeInDetector {
        let mut d = BargeInDetector::new(cfg).unwrap();
        d.prompt_started(true);
        d
    }

    #[test]
    fn speech_of_min_length_fires_with_onset() {
        let t0 = Instant::now();
        let mut d = armed(BargeInConfig::default());
        let ev = run(&mut d, t0, &[(0.0, false, 25), (0.9, true, 20)]);
        // 160 ms = 8 voiced frames: fires on the 8th, reports the 1st.
        assert_eq!(ev, vec![(32, BargeInEvent::BargeIn { at: at(t0, 25) })]);
        assert!(!d.is_armed(), "one barge-in per prompt");
    }

    #[test]
    fn short_bursts_do_not_fire() {
        let t0 = Instant::now();
        let mut d = armed(BargeInConfig::default());
        // 140 ms bursts with 60 ms gaps: never 160 ms in one run.
        let mut spec = Vec::new();
        for _ in 0..20 {
            spec.push((1.0, true, 7));
            spec.push((0.0, true, 3));
        }
        assert!(run(&mut d, t0, &spec).is_empty());
        assert!(d.is_armed());
    }

    #[test]
    fn speech_below_echo_floor_is_echo_and_does_not_fire() {
        let t0 = Instant::now();
        let mut d = armed(BargeInConfig::default());
        assert!(run(&mut d, t0, &[(1.0, false, 500)]).is_empty());
        // The same audio above the floor does.
        assert_eq!(run(&mut d, t0, &[(1.0, true, 8)]).len(), 1);
    }

    #[test]
    fn non_interruptible_and_stopped_prompts_never_fire() {
        let t0 = Instant::now();
        let mut d = BargeInDetector::new(BargeInConfig::default()).unwrap();
        assert!(run(&mut d, t0, &[(1.0, true, 50)]).is_empty(), "no prompt");
        d.prompt_started(false);
        assert!(
            run(&mut d, t0, &[(1.0, true, 50)]).is_empty(),
            "bargein=false"
        );
        d.prompt_started(true);
        run(&mut d, t0, &[(1.0, true, 5)]);
        d.prompt_stopped();
        assert!(run(&mut d, t0, &[(1.0, true, 50)]).is_empty(), "stopped");
    }

    #[test]
    fn one_frame_dip_is_bridged() {
        let t0 = Instant::now();
        let mut d = armed(BargeInConfig::default());
        let ev = run(
            &mut d,
            t0,
            &[(1.0, true, 4), (0.1, true, 1), (1.0, true, 4)],
        );
        assert_eq!(ev, vec![(8, BargeInEvent::BargeIn { at: t0 })]);
    }

    fn pause_cfg() -> BargeInConfig {
        BargeInConfig {
            resume: ResumePolicy::PauseThenConfirm {
                confirm_ms: 400,
                resume_silence_ms: 200,
            },
            ..BargeInConfig::default()
        }
    }

    #[test]
    fn pause_then_confirm_flushes_continuing_speech() {
        let t0 = Instant::now();
        let mut d = armed(pause_cfg());
        let ev = run(&mut d, t0, &[(0.0, false, 10), (1.0, true, 40)]);
        assert_eq!(
            ev,
            vec![
                (17, BargeInEvent::Pause { at: at(t0, 10) }),
                // Paused at the end of frame 17 (= start of 18); 400 ms later.
                (37, BargeInEvent::BargeIn { at: at(t0, 10) }),
            ]
        );
    }

    #[test]
    fn pause_then_resume_on_short_speech_and_rearm() {
        let t0 = Instant::now();
        let mut d = armed(pause_cfg());
        // 200 ms of speech, then silence: pause, then resume after 200 ms of silence.
        let ev = run(
            &mut d,
            t0,
            &[(1.0, true, 10), (0.0, true, 20), (1.0, true, 8)],
        );
        assert_eq!(
            ev,
            vec![
                (7, BargeInEvent::Pause { at: t0 }),
                (19, BargeInEvent::Resume { at: at(t0, 20) }),
                (37, BargeInEvent::Pause { at: at(t0, 30) }),
            ]
        );
        assert!(d.is_paused());
    }

    #[test]
    fn pause_survives_short_dips_until_confirmation() {
        let t0 = Instant::now();
        let mut d = armed(pause_cfg());
        // Speech with 100 ms pauses between words (< 200 ms resume silence).
        let mut spec = vec![(1.0, true, 8)];
        for _ in 0..5 {
            spec.push((0.0, true, 5));
            spec.push((1.0, true, 5));
        }
        let ev = run(&mut d, t0, &spec);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[1].1, BargeInEvent::BargeIn { at: t0 });
    }

    #[test]
    fn switching_to_flush_while_paused_interrupts() {
        let t0 = Instant::now();
        let mut d = armed(pause_cfg());
        run(&mut d, t0, &[(1.0, true, 8)]);
        assert!(d.is_paused());
        d.set_config(BargeInConfig::default()).unwrap();
        let ev = run(&mut d, t0, &[(0.0, true, 1)]);
        assert_eq!(ev, vec![(0, BargeInEvent::BargeIn { at: t0 })]);
    }

    #[test]
    fn per_frame_calls_do_not_allocate() {
        let t0 = Instant::now();
        let mut d = armed(pause_cfg());
        let (speech, silence) = (frame(1.0, true), frame(0.0, true));
        let mut events = 0;
        let n = crate::resample::alloc_probe::allocations_in(|| {
            for i in 0..100 {
                let f = if i % 40 < 12 { &speech } else { &silence };
                events += usize::from(d.handle_frame(f, at(t0, i)).is_some());
            }
        });
        assert_eq!(n, 0);
        assert!(events >= 2, "pause and resume happened");
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let ok = BargeInConfig::default();
        assert_eq!(
            BargeInDetector::new(BargeInConfig {
                threshold: 0.0,
                ..ok
            })
            .unwrap_err(),
            BargeInConfigError::Threshold(0.0)
        );
        assert_eq!(
            BargeInDetector::new(BargeInConfig {
                min_speech_ms: 0,
                ..ok
            })
            .unwrap_err(),
            BargeInConfigError::Zero {
                field: "min_speech_ms"
            }
        );
        assert_eq!(
            BargeInDetector::new(BargeInConfig {
                resume: ResumePolicy::PauseThenConfirm {
                    confirm_ms: u32::MAX,
                    resume_silence_ms: 100
                },
                ..ok
            })
            .unwrap_err(),
            BargeInConfigError::TooLong {
                field: "confirm_ms",
                ms: u32::MAX
            }
        );
        let mut d = BargeInDetector::new(ok).unwrap();
        assert!(d
            .set_config(BargeInConfig {
                threshold: f32::NAN,
                ..ok
            })
            .is_err());
        assert_eq!(*d.config(), ok);
    }
}
