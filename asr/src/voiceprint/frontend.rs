//! Resemblyzer's audio front end (`audio.py`, `hparams.py`, `VoiceEncoder.compute_partial_slices`), re-done in Rust.
//!
//! 16 kHz audio, volume raised (never lowered) to −30 dBFS, then a *linear* (not log) 40-channel Slaney mel power
//! spectrogram as `librosa.feature.melspectrogram` computes it: 400-point periodic Hann window (25 ms), 160-sample
//! hop (10 ms), frames centred with zero padding. The encoder is fed 160-frame (1.6 s) partial utterances, 77
//! frames apart (rate 1.3 per second); a trailing partial covering less than 75 % of real audio is dropped.
//!
//! Resemblyzer's `trim_long_silences` (webrtcvad) is deliberately not reproduced: voxgate's endpointer already
//! hands over speech-only segments, and trimming again would only shorten the audio enrolment needs.

use realfft::RealFftPlanner;

use super::weights::N_MELS;
use super::VoiceprintError;
use crate::mel::slaney_mel_filters;

pub const SAMPLE_RATE: u32 = 16_000;
const N_FFT: usize = 400;
const HOP: usize = 160;
/// Frames per partial utterance (1.6 s).
pub const PARTIAL_FRAMES: usize = 160;
/// Partial utterances per second of audio (`embed_utterance`'s default `rate`).
const RATE: f64 = 1.3;
const MIN_COVERAGE: f64 = 0.75;
/// `audio_norm_target_dBFS`.
const TARGET_DBFS: f64 = -30.0;
const INT16_MAX: f64 = 32767.0;

/// `normalize_volume(wav, -30, increase_only=True)`: the mel is linear, so level matters to the encoder.
pub fn normalize_volume(wav: &mut [f32]) {
    if wav.is_empty() {
        return;
    }
    let mean_sq = wav
        .iter()
        .map(|&s| (f64::from(s) * INT16_MAX).powi(2))
        .sum::<f64>()
        / wav.len() as f64;
    let rms = mean_sq.sqrt();
    if rms <= 0.0 {
        return;
    }
    let change = TARGET_DBFS - 20.0 * (rms / INT16_MAX).log10();
    if change < 0.0 {
        return;
    }
    let gain = 10f64.powf(change / 20.0) as f32;
    wav.iter_mut().for_each(|s| *s *= gain);
}

/// Start frame of each partial utterance for `n_samples` of 16 kHz audio (`compute_partial_slices`).
pub fn partial_starts(n_samples: usize) -> Vec<usize> {
    let n_frames = (n_samples + 1).div_ceil(HOP);
    let frame_step = ((f64::from(SAMPLE_RATE) / RATE) / HOP as f64).round() as usize;
    let steps = (n_frames + frame_step + 1)
        .saturating_sub(PARTIAL_FRAMES)
        .max(1);
    let mut starts: Vec<usize> = (0..steps).step_by(frame_step).collect();
    if let Some(&last) = starts.last() {
        let start = (last * HOP) as f64;
        let coverage = (n_samples as f64 - start) / (PARTIAL_FRAMES * HOP) as f64;
        if coverage < MIN_COVERAGE && starts.len() > 1 {
            starts.pop();
        }
    }
    starts
}

/// Linear mel power spectrogram, `frames × N_MELS` row-major, of the first `n_frames` centred frames.
pub struct MelFrontEnd {
    filters: Vec<f32>,
    window: Vec<f32>,
    fft: std::sync::Arc<dyn realfft::RealToComplex<f32>>,
}

impl std::fmt::Debug for MelFrontEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelFrontEnd").finish_non_exhaustive()
    }
}

impl MelFrontEnd {
    pub fn new() -> Self {
        let filters = slaney_mel_filters(SAMPLE_RATE, N_FFT, N_MELS).data;
        // scipy's `get_window("hann", 400, fftbins=True)`: periodic.
        let window = (0..N_FFT)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        Self {
            filters,
            window,
            fft,
        }
    }

    /// Mel frames of `wav` (already padded as the partials need); frame `t` is centred on sample `t·160`.
    pub fn mel(&self, wav: &[f32], n_frames: usize) -> Result<Vec<f32>, VoiceprintError> {
        let n_bins = N_FFT / 2 + 1;
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; n_bins];
        let mut out = Vec::with_capacity(n_frames * N_MELS);
        for t in 0..n_frames {
            let centre = (t * HOP) as isize;
            for (i, (x, w)) in input.iter_mut().zip(&self.window).enumerate() {
                let at = centre + i as isize - (N_FFT / 2) as isize;
                let s = usize::try_from(at)
                    .ok()
                    .and_then(|a| wav.get(a))
                    .copied()
                    .unwrap_or(0.0);
                *x = s * w;
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .map_err(|e| VoiceprintError::Model(format!("fft: {e}")))?;
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for row in self.filters.chunks_exact(n_bins) {
                out.push(row.iter().zip(&power).map(|(f, p)| f * p).sum());
            }
        }
        Ok(out)
    }
}

impl Default for MelFrontEnd {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_slices_match_resemblyzer() {
        // Values from VoiceEncoder.compute_partial_slices(n, 1.3, 0.75) (mel slice starts).
        assert_eq!(partial_starts(16_000), vec![0]);
        assert_eq!(partial_starts(25_600), vec![0]);
        assert_eq!(partial_starts(48_000), vec![0, 77, 154]);
        assert_eq!(partial_starts(40_000), vec![0, 77]);
        assert_eq!(
            partial_starts(160_000),
            (0..12).map(|i| i * 77).collect::<Vec<_>>()
        );
        assert_eq!(partial_starts(0), vec![0]);
    }

    #[test]
    fn loud_audio_is_left_alone_quiet_audio_is_raised() {
        let mut loud = vec![0.5f32; 100];
        normalize_volume(&mut loud);
        assert_eq!(loud[0], 0.5);
        let mut quiet = vec![0.001f32; 100];
        normalize_volume(&mut quiet);
        let db = 20.0 * (f64::from(quiet[0]) * INT16_MAX / INT16_MAX).log10();
        assert!((db + 30.0).abs() < 1e-3, "{db}");
    }

    #[test]
    fn a_tone_lands_in_the_right_mel_channel() {
        let fe = MelFrontEnd::new();
        let wav: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let mel = fe.mel(&wav, 50).unwrap();
        let frame = &mel[20 * N_MELS..21 * N_MELS];
        let peak = (0..N_MELS)
            .max_by(|&a, &b| frame[a].total_cmp(&frame[b]))
            .unwrap();
        // 1 kHz is Slaney mel 15 of 0..45.2 spread over 42 band edges: channel 12 or 13.
        assert!((12..=13).contains(&peak), "{peak}");
    }
}
