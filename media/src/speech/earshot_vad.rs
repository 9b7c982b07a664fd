//! earshot (pure-Rust neural VAD) on the 8 kHz pipeline.
//!
//! earshot was trained on 16 kHz audio in 16 ms chunks (256 samples), while the pipeline
//! runs 20 ms frames at 8 kHz: each frame is upsampled to 320 samples and pushed through a
//! small carry buffer, which yields one or two earshot chunks per frame.

use earshot::Detector;

use crate::resample::{Upsampler8to16, FRAME_SAMPLES_16K};
use crate::Frame;

use super::vad::{Vad, VadError};

/// earshot's fixed chunk: 16 ms at 16 kHz.
pub const EARSHOT_CHUNK: usize = 256;

/// earshot behind the [`Vad`] trait. `Send`; all state is allocated in [`EarshotVad::new`].
pub struct EarshotVad {
    // Boxed because the detector carries ~8 KiB of arrays; keeps `VadEngine` small to move.
    detector: Box<Detector>,
    upsampler: Upsampler8to16,
    up: [i16; FRAME_SAMPLES_16K],
    // 16 kHz samples not yet scored; fewer than one chunk between calls.
    carry: [i16; EARSHOT_CHUNK + FRAME_SAMPLES_16K],
    carry_len: usize,
    last: f32,
}

impl std::fmt::Debug for EarshotVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EarshotVad")
            .field("carry_len", &self.carry_len)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl EarshotVad {
    /// Builds the detector and its upsampler.
    pub fn new() -> Result<Self, VadError> {
        Ok(Self {
            detector: Detector::default_boxed(),
            upsampler: Upsampler8to16::new()?,
            up: [0; FRAME_SAMPLES_16K],
            carry: [0; EARSHOT_CHUNK + FRAME_SAMPLES_16K],
            carry_len: 0,
            last: 0.0,
        })
    }
}

impl Vad for EarshotVad {
    /// The frame's score is the maximum over the earshot chunks it completed: onsets then
    /// show up in the frame that contains them rather than being averaged away.
    fn process(&mut self, frame: &Frame) -> Result<f32, VadError> {
        self.upsampler.process(frame, &mut self.up)?;
        let end = self.carry_len + FRAME_SAMPLES_16K;
        let Some(dst) = self.carry.get_mut(self.carry_len..end) else {
            // carry_len < EARSHOT_CHUNK is an invariant; recover instead of panicking.
            let samples = self.carry_len;
            self.carry_len = 0;
            return Err(VadError::EarshotRejected { samples });
        };
        dst.copy_from_slice(&self.up);
        self.carry_len = end;

        let mut score: Option<f32> = None;
        let mut start = 0;
        while self.carry_len - start >= EARSHOT_CHUNK {
            let chunk = &self.carry[start..start + EARSHOT_CHUNK];
            let p = self.detector.predict_i16(chunk);
            if p < 0.0 {
                return Err(VadError::EarshotRejected {
                    samples: chunk.len(),
                });
            }
            score = Some(score.map_or(p, |s: f32| s.max(p)));
            start += EARSHOT_CHUNK;
        }
        self.carry.copy_within(start..self.carry_len, 0);
        self.carry_len -= start;
        // 320 new samples always complete at least one chunk; keep the previous score if not.
        let p = score.unwrap_or(self.last).clamp(0.0, 1.0);
        self.last = p;
        Ok(p)
    }

    fn name(&self) -> &'static str {
        "earshot"
    }

    fn reset(&mut self) {
        self.detector.reset();
        self.upsampler.reset();
        self.carry_len = 0;
        self.last = 0.0;
    }
}
