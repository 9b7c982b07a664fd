//! libfvad (the WebRTC GMM voice activity detector) behind the [`Vad`] trait.

use std::marker::PhantomData;

use crate::Frame;

use super::vad::{Vad, VadError};

/// libfvad aggressiveness: higher modes report speech less often (fewer false alarms in
/// noise, more clipped word edges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WebRtcMode {
    /// Mode 0: most speech kept.
    Quality,
    /// Mode 1.
    LowBitrate,
    /// Mode 2.
    Aggressive,
    /// Mode 3: fewest false alarms, and the best F1 on the phone-band corpus.
    #[default]
    VeryAggressive,
}

impl WebRtcMode {
    /// libfvad's numeric mode, 0..=3.
    pub fn level(self) -> u8 {
        match self {
            Self::Quality => 0,
            Self::LowBitrate => 1,
            Self::Aggressive => 2,
            Self::VeryAggressive => 3,
        }
    }

    fn to_ffi(self) -> webrtc_vad::VadMode {
        match self {
            Self::Quality => webrtc_vad::VadMode::Quality,
            Self::LowBitrate => webrtc_vad::VadMode::LowBitrate,
            Self::Aggressive => webrtc_vad::VadMode::Aggressive,
            Self::VeryAggressive => webrtc_vad::VadMode::VeryAggressive,
        }
    }
}

/// libfvad on 8 kHz, 20 ms frames; a yes/no decision mapped to 0.0 / 1.0.
///
/// Holds a raw C handle and is therefore `!Send` and `!Sync`: it lives on the media thread
/// that created it and is dropped there. Frames are always the fixed 160 samples, so the
/// wrapped crate never sees the empty slice it would index out of bounds on.
pub struct WebRtcVad {
    vad: webrtc_vad::Vad,
    mode: WebRtcMode,
    // The handle is already `!Send`; this keeps it so should the wrapper ever change.
    _media_thread_only: PhantomData<*const ()>,
}

impl std::fmt::Debug for WebRtcVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcVad")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl WebRtcVad {
    /// A detector at 8 kHz with the given aggressiveness.
    pub fn new(mode: WebRtcMode) -> Self {
        Self {
            vad: webrtc_vad::Vad::new_with_rate_and_mode(
                webrtc_vad::SampleRate::Rate8kHz,
                mode.to_ffi(),
            ),
            mode,
            _media_thread_only: PhantomData,
        }
    }

    /// Current aggressiveness.
    pub fn mode(&self) -> WebRtcMode {
        self.mode
    }

    /// Changes aggressiveness without losing the noise model (e.g. per dialog step).
    pub fn set_mode(&mut self, mode: WebRtcMode) {
        self.vad.set_mode(mode.to_ffi());
        self.mode = mode;
    }
}

impl Vad for WebRtcVad {
    fn process(&mut self, frame: &Frame) -> Result<f32, VadError> {
        match self.vad.is_voice_segment(&frame[..]) {
            Ok(true) => Ok(1.0),
            Ok(false) => Ok(0.0),
            Err(()) => Err(VadError::WebRtcRejected {
                samples: frame.len(),
            }),
        }
    }

    fn name(&self) -> &'static str {
        "webrtc"
    }

    /// `fvad_reset` also reverts rate and mode to libfvad's defaults, so both are set again.
    fn reset(&mut self) {
        self.vad.reset();
        self.vad.set_sample_rate(webrtc_vad::SampleRate::Rate8kHz);
        self.vad.set_mode(self.mode.to_ffi());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_to_libfvad_levels_and_survive_reset() {
        let mut v = WebRtcVad::new(WebRtcMode::Quality);
        assert_eq!(v.mode().level(), 0);
        v.set_mode(WebRtcMode::VeryAggressive);
        v.reset();
        assert_eq!(v.mode(), WebRtcMode::VeryAggressive);
        assert_eq!(WebRtcMode::default().level(), 3);
        assert_eq!(WebRtcMode::LowBitrate.level(), 1);
    }

    #[test]
    fn silence_is_not_speech() {
        let mut v = WebRtcVad::new(WebRtcMode::Quality);
        for _ in 0..10 {
            assert_eq!(v.process(&[0; 160]).unwrap(), 0.0);
        }
    }
}
