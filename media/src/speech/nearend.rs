//! Near-end analysis per tick: echo guard, then VAD on the cleaned audio. Its output feeds
//! both the [`super::BargeInDetector`] and the [`super::Endpointer`].

use crate::Frame;

use super::echo::{EchoConfig, EchoConfigError, EchoGuard, EchoStats};
use super::vad::{Vad, VadEngine, VadError, VadKind};

/// Why a [`NearEndAnalyzer`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NearEndError {
    /// Bad echo guard configuration.
    #[error("echo guard: {0}")]
    Echo(#[from] EchoConfigError),
    /// The VAD could not be built.
    #[error("vad: {0}")]
    Vad(#[from] VadError),
}

/// What the caller side sounded like on one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearEndFrame {
    /// VAD probability on the echo-cancelled frame.
    pub speech_probability: f32,
    /// Echo guard measurements of this tick.
    pub echo: EchoStats,
}

impl NearEndFrame {
    /// The probability with residual echo masked: 0 when the cleaned frame is below the
    /// echo floor. Feed this to the endpointer so a prompt's echo never starts an utterance.
    pub fn gated_probability(&self) -> f32 {
        if self.echo.above_echo_floor {
            self.speech_probability
        } else {
            0.0
        }
    }

    /// Whether this frame counts as caller speech at `threshold`.
    pub fn is_speech(&self, threshold: f32) -> bool {
        self.gated_probability() >= threshold
    }
}

/// Echo guard plus VAD for one call leg.
///
/// `!Send` when its VAD is libfvad: build it on the media thread that runs the call.
#[derive(Debug)]
pub struct NearEndAnalyzer {
    echo: EchoGuard,
    vad: VadEngine,
}

impl NearEndAnalyzer {
    /// Allocates everything the per-tick path needs.
    pub fn new(echo: EchoConfig, vad: VadKind) -> Result<Self, NearEndError> {
        Ok(Self {
            echo: EchoGuard::new(echo)?,
            vad: VadEngine::new(vad)?,
        })
    }

    /// One tick: `far` is the frame we sent (silence when nothing plays), `near` the frame
    /// received; the echo-cancelled near frame (what the recogniser should hear) goes to
    /// `cleaned`. Does not allocate.
    pub fn process(
        &mut self,
        far: &Frame,
        near: &Frame,
        cleaned: &mut Frame,
    ) -> Result<NearEndFrame, VadError> {
        let echo = self.echo.process(far, near, cleaned);
        let speech_probability = self.vad.process(cleaned)?;
        Ok(NearEndFrame {
            speech_probability,
            echo,
        })
    }

    /// Forgets echo path and VAD history (new call on a pooled analyzer).
    pub fn reset(&mut self) {
        self.echo.reset();
        self.vad.reset();
    }

    /// The echo guard, e.g. for its statistics.
    pub fn echo(&self) -> &EchoGuard {
        &self.echo
    }

    /// The VAD engine.
    pub fn vad(&self) -> &VadEngine {
        &self.vad
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::alloc_probe::allocations_in;
    use crate::speech::echo::tests::{echo_path, noise, to_frames};
    use crate::FRAME_SAMPLES;

    fn frame(p: f32, above: bool) -> NearEndFrame {
        let mut echo = EchoGuard::new(EchoConfig::default()).unwrap().stats();
        echo.above_echo_floor = above;
        NearEndFrame {
            speech_probability: p,
            echo,
        }
    }

    #[test]
    fn gating_masks_frames_below_the_echo_floor() {
        assert_eq!(frame(0.9, true).gated_probability(), 0.9);
        assert_eq!(frame(0.9, false).gated_probability(), 0.0);
        assert!(frame(0.6, true).is_speech(0.5));
        assert!(!frame(0.6, false).is_speech(0.5));
        assert!(!frame(0.4, true).is_speech(0.5));
    }

    #[test]
    fn processes_without_allocating_and_cleans_the_echo() {
        for kind in [VadKind::default(), VadKind::Earshot] {
            let mut a = NearEndAnalyzer::new(EchoConfig::default(), kind).unwrap();
            let far_pcm = noise(8000 * 3, 0.1, 9);
            let near_pcm: Vec<i16> = echo_path(&far_pcm, 60, 15.0)
                .iter()
                .map(|&v| v as i16)
                .collect();
            let (far, near) = (to_frames(&far_pcm), to_frames(&near_pcm));
            let mut cleaned = [0i16; FRAME_SAMPLES];
            a.process(&far[0], &near[0], &mut cleaned).unwrap();
            let mut last = None;
            let n = allocations_in(|| {
                for (f, x) in far.iter().zip(near.iter()).skip(1) {
                    last = Some(a.process(f, x, &mut cleaned).unwrap());
                }
            });
            assert_eq!(n, 0, "{kind:?}");
            let last = last.unwrap();
            assert!(last.echo.erle_db > 20.0, "{last:?}");
            assert!(!last.echo.above_echo_floor);
            assert_eq!(last.gated_probability(), 0.0);
            assert_eq!(a.vad().kind(), kind);
            a.reset();
            assert_eq!(a.echo().stats().delay_ms, None);
        }
    }

    #[test]
    fn bad_echo_config_is_reported() {
        let err = NearEndAnalyzer::new(
            EchoConfig {
                filter_taps: 0,
                ..EchoConfig::default()
            },
            VadKind::default(),
        )
        .unwrap_err();
        assert!(matches!(err, NearEndError::Echo(_)), "{err}");
    }
}
