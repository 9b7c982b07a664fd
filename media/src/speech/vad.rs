//! The [`Vad`] trait and the enum the media thread holds, so a call leg can own its detector
//! by value (no `Box<dyn>`, no allocation per frame).

use crate::resample::ResampleError;
use crate::Frame;

use super::earshot_vad::EarshotVad;
use super::webrtc_vad::{WebRtcMode, WebRtcVad};

/// Why a VAD could not be built or could not score a frame.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    /// The 8 → 16 kHz converter feeding earshot failed.
    #[error("earshot input resampling failed: {0}")]
    Resample(#[from] ResampleError),
    /// earshot refused a chunk (it only takes 256 samples at 16 kHz; indicates a bug here).
    #[error("earshot rejected a chunk of {samples} samples")]
    EarshotRejected { samples: usize },
    /// libfvad refused the frame length (it only takes 10/20/30 ms; indicates a bug here).
    #[error("webrtc-vad rejected a frame of {samples} samples")]
    WebRtcRejected { samples: usize },
}

/// A voice activity detector fed with consecutive 20 ms frames of one stream.
pub trait Vad {
    /// Speech probability of this frame, `0.0..=1.0`. Frames must be consecutive: both
    /// engines keep history across calls.
    fn process(&mut self, frame: &Frame) -> Result<f32, VadError>;
    /// Short engine name for logs and metrics.
    fn name(&self) -> &'static str;
    /// Forgets all history (new call leg, or a jump in the stream).
    fn reset(&mut self);
}

/// Which engine a call leg uses; the configuration side of [`VadEngine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadKind {
    /// Neural, pure Rust, 16 kHz internally. Slightly better once its ~40 ms lag is
    /// compensated, but not in real time, and ~20× the CPU.
    Earshot,
    /// libfvad (the WebRTC GMM VAD) at the given aggressiveness.
    WebRtc(WebRtcMode),
}

/// WebRTC at [`WebRtcMode::VeryAggressive`]: the best frame F1 of all engines on the
/// phone-band corpus, clean and in noise, with the lowest latency and cost (see the
/// numbers in the `speech` module docs).
impl Default for VadKind {
    fn default() -> Self {
        Self::WebRtc(WebRtcMode::VeryAggressive)
    }
}

/// One VAD of either kind, held by value on the media thread.
///
/// `!Send` when it may hold a [`WebRtcVad`]: build it on the media thread that uses it.
#[derive(Debug)]
pub enum VadEngine {
    /// See [`EarshotVad`]. Boxed: its resampler and buffers are a few KiB, the libfvad
    /// handle a pointer.
    Earshot(Box<EarshotVad>),
    /// See [`WebRtcVad`].
    WebRtc(WebRtcVad),
}

impl VadEngine {
    /// Builds the engine `kind` names. Allocates (FFT plans, detector state); once per leg.
    pub fn new(kind: VadKind) -> Result<Self, VadError> {
        Ok(match kind {
            VadKind::Earshot => Self::Earshot(Box::new(EarshotVad::new()?)),
            VadKind::WebRtc(mode) => Self::WebRtc(WebRtcVad::new(mode)),
        })
    }

    /// The configuration this engine was built from.
    pub fn kind(&self) -> VadKind {
        match self {
            Self::Earshot(_) => VadKind::Earshot,
            Self::WebRtc(v) => VadKind::WebRtc(v.mode()),
        }
    }
}

impl Vad for VadEngine {
    fn process(&mut self, frame: &Frame) -> Result<f32, VadError> {
        match self {
            Self::Earshot(v) => v.process(frame),
            Self::WebRtc(v) => v.process(frame),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Earshot(v) => v.name(),
            Self::WebRtc(v) => v.name(),
        }
    }

    fn reset(&mut self) {
        match self {
            Self::Earshot(v) => v.reset(),
            Self::WebRtc(v) => v.reset(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::alloc_probe::allocations_in;
    use crate::FRAME_SAMPLES;

    /// Deterministic pseudo-speech: a 150 Hz pulse train through a crude formant ringing,
    /// amplitude-modulated at a syllable rate. Good enough to wake either engine.
    fn buzzy_frames(n: usize) -> Vec<Frame> {
        let mut out = Vec::with_capacity(n);
        let mut t = 0usize;
        let (mut y1, mut y2) = (0.0f32, 0.0f32);
        let r = 0.97f32;
        let w = 2.0 * std::f32::consts::PI * 700.0 / 8000.0;
        let (a1, a2) = (2.0 * r * w.cos(), -r * r);
        for _ in 0..n {
            let mut f = [0i16; FRAME_SAMPLES];
            for s in f.iter_mut() {
                let pulse = if t.is_multiple_of(53) { 1.0 } else { 0.0 };
                let y = pulse + a1 * y1 + a2 * y2;
                y2 = y1;
                y1 = y;
                let env = 0.6 + 0.4 * (2.0 * std::f32::consts::PI * 4.0 * t as f32 / 8000.0).sin();
                *s = (y * env * 1500.0).clamp(-32000.0, 32000.0) as i16;
                t += 1;
            }
            out.push(f);
        }
        out
    }

    #[test]
    fn engines_are_built_from_kind_and_report_it() {
        for kind in [
            VadKind::Earshot,
            VadKind::WebRtc(WebRtcMode::Quality),
            VadKind::WebRtc(WebRtcMode::VeryAggressive),
        ] {
            let v = VadEngine::new(kind).unwrap();
            assert_eq!(v.kind(), kind);
        }
        assert_eq!(VadEngine::new(VadKind::Earshot).unwrap().name(), "earshot");
        assert_eq!(
            VadEngine::new(VadKind::WebRtc(WebRtcMode::Aggressive))
                .unwrap()
                .name(),
            "webrtc"
        );
    }

    #[test]
    fn silence_scores_low_and_buzz_scores_higher_in_both_engines() {
        for kind in [VadKind::Earshot, VadKind::WebRtc(WebRtcMode::Quality)] {
            let mut v = VadEngine::new(kind).unwrap();
            let silent: f32 = (0..50)
                .map(|_| v.process(&[0; FRAME_SAMPLES]).unwrap())
                .sum::<f32>()
                / 50.0;
            let buzz = buzzy_frames(100);
            let voiced: f32 = buzz.iter().map(|f| v.process(f).unwrap()).sum::<f32>() / 100.0;
            // earshot's recurrent net idles around 0.2 on digital silence; 0.5 is "speech".
            assert!(silent < 0.3, "{kind:?}: silence scored {silent}");
            assert!(
                voiced > silent + 0.2,
                "{kind:?}: buzz {voiced} vs silence {silent}"
            );
            for p in [silent, voiced] {
                assert!((0.0..=1.0).contains(&p));
            }
        }
    }

    #[test]
    fn reset_forgets_history() {
        for kind in [VadKind::Earshot, VadKind::WebRtc(WebRtcMode::LowBitrate)] {
            let buzz = buzzy_frames(30);
            let mut a = VadEngine::new(kind).unwrap();
            let mut fresh = VadEngine::new(kind).unwrap();
            for f in &buzz {
                a.process(f).unwrap();
            }
            a.reset();
            // After reset, the engine must behave exactly like a new one.
            for f in buzz.iter().rev() {
                let pa = a.process(f).unwrap();
                let pf = fresh.process(f).unwrap();
                assert_eq!(pa.to_bits(), pf.to_bits(), "{kind:?}");
            }
        }
    }

    #[test]
    fn process_does_not_allocate() {
        for kind in [VadKind::Earshot, VadKind::WebRtc(WebRtcMode::Aggressive)] {
            let mut v = VadEngine::new(kind).unwrap();
            let buzz = buzzy_frames(20);
            v.process(&buzz[0]).unwrap();
            let n = allocations_in(|| {
                for f in &buzz {
                    v.process(f).unwrap();
                }
            });
            assert_eq!(n, 0, "{kind:?} allocated {n} times");
        }
    }
}
