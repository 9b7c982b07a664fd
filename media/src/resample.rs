//! Band-limited sample-rate conversion (rubato FFT resampler).
//!
//! Prompts arrive at whatever rate the operator recorded them in and must be brought to the
//! 8 kHz pipeline rate once, at start-up ([`resample`]); the ASR tap needs 16 kHz in real
//! time, one 20 ms frame at a time ([`Upsampler8to16`]).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::{Frame, FRAME_SAMPLES};

/// Lowest input rate accepted; below this there is no speech left worth resampling.
pub const MIN_RATE_HZ: u32 = 1_000;
/// Highest input rate accepted; bounds the FFT sizes a hostile WAV header can make us allocate.
pub const MAX_RATE_HZ: u32 = 384_000;

/// Samples in one 20 ms frame at 16 kHz.
pub const FRAME_SAMPLES_16K: usize = FRAME_SAMPLES * 2;

/// Chunk size hint for one-shot conversion; a few hundred frames keeps the FFT cheap.
const ONE_SHOT_CHUNK: usize = 1024;

/// Why a conversion could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// A rate outside [`MIN_RATE_HZ`]..=[`MAX_RATE_HZ`] (typically from a corrupt WAV header).
    #[error("unsupported sample rate {rate} Hz (supported: {MIN_RATE_HZ}..={MAX_RATE_HZ})")]
    UnsupportedRate { rate: u32 },
    /// rubato refused the rate pair or chunk size.
    #[error("cannot build resampler {from_hz} Hz -> {to_hz} Hz: {source}")]
    Construction {
        from_hz: u32,
        to_hz: u32,
        #[source]
        source: rubato::ResamplerConstructionError,
    },
    /// rubato failed while processing (buffer geometry mismatch; indicates a bug here).
    #[error("resampling failed: {0}")]
    Process(#[from] rubato::ResampleError),
    /// An adapter could not wrap the buffer (length mismatch; indicates a bug here).
    #[error("buffer geometry rejected: {0}")]
    Buffer(#[from] rubato::audioadapter_buffers::SizeError),
}

fn check_rate(rate: u32) -> Result<(), ResampleError> {
    if (MIN_RATE_HZ..=MAX_RATE_HZ).contains(&rate) {
        Ok(())
    } else {
        Err(ResampleError::UnsupportedRate { rate })
    }
}

/// Converts a whole mono clip of normalised `f32` samples (±1.0) from `from_hz` to `to_hz`.
///
/// The output is time-aligned with the input (rubato's start-up delay is trimmed) and has
/// `ceil(len * to / from)` samples. Allocates; meant for start-up, not the per-frame path.
pub fn resample(input: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, ResampleError> {
    check_rate(from_hz)?;
    check_rate(to_hz)?;
    if from_hz == to_hz || input.is_empty() {
        return Ok(input.to_vec());
    }
    let mut resampler = Fft::<f32>::new(
        from_hz as usize,
        to_hz as usize,
        ONE_SHOT_CHUNK,
        1,
        FixedSync::Both,
    )
    .map_err(|source| ResampleError::Construction {
        from_hz,
        to_hz,
        source,
    })?;
    let adapter = InterleavedSlice::new(input, 1, input.len())?;
    let out = resampler.process_all(&adapter, input.len(), None)?;
    Ok(out.take_data())
}

/// [`resample`] for 16-bit PCM: converts through `f32` and saturates on the way back.
pub fn resample_i16(input: &[i16], from_hz: u32, to_hz: u32) -> Result<Vec<i16>, ResampleError> {
    let floats: Vec<f32> = input.iter().map(|&s| i16_to_f32(s)).collect();
    let out = resample(&floats, from_hz, to_hz)?;
    Ok(out.into_iter().map(f32_to_i16).collect())
}

/// Normalises a PCM sample to ±1.0.
#[inline]
pub fn i16_to_f32(s: i16) -> f32 {
    f32::from(s) / 32768.0
}

/// Rounds and saturates a normalised sample back to PCM (overshoot after filtering is normal).
#[inline]
pub fn f32_to_i16(s: f32) -> i16 {
    // `as` saturates for out-of-range floats and maps NaN to 0, which is what we want.
    (s * 32768.0).round() as i16
}

/// Streaming 8 kHz → 16 kHz converter for one 20 ms frame at a time.
///
/// All buffers are allocated in [`Upsampler8to16::new`]; [`Upsampler8to16::process`] does not
/// allocate. The output lags the input by [`Upsampler8to16::delay_samples`] samples at 16 kHz.
pub struct Upsampler8to16 {
    resampler: Fft<f32>,
    input: [f32; FRAME_SAMPLES],
    output: [f32; FRAME_SAMPLES_16K],
}

impl std::fmt::Debug for Upsampler8to16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upsampler8to16")
            .field("delay_samples", &self.delay_samples())
            .finish_non_exhaustive()
    }
}

impl Upsampler8to16 {
    /// Builds the FFT plan; costly, so create one per call leg and reuse it.
    pub fn new() -> Result<Self, ResampleError> {
        let resampler = Fft::<f32>::new(8_000, 16_000, FRAME_SAMPLES, 1, FixedSync::Both).map_err(
            |source| ResampleError::Construction {
                from_hz: 8_000,
                to_hz: 16_000,
                source,
            },
        )?;
        Ok(Self {
            resampler,
            input: [0.0; FRAME_SAMPLES],
            output: [0.0; FRAME_SAMPLES_16K],
        })
    }

    /// Converts one 160-sample frame into 320 samples at 16 kHz.
    pub fn process(
        &mut self,
        frame: &Frame,
        out: &mut [i16; FRAME_SAMPLES_16K],
    ) -> Result<(), ResampleError> {
        for (dst, &src) in self.input.iter_mut().zip(frame.iter()) {
            *dst = i16_to_f32(src);
        }
        let input = InterleavedSlice::new(&self.input[..], 1, FRAME_SAMPLES)?;
        let mut output = InterleavedSlice::new_mut(&mut self.output[..], 1, FRAME_SAMPLES_16K)?;
        let (_, written) = self
            .resampler
            .process_into_buffer(&input, &mut output, None)?;
        for (i, (dst, &src)) in out.iter_mut().zip(self.output.iter()).enumerate() {
            // `written` is always 320 with FixedSync::Both; pad defensively rather than panic.
            *dst = if i < written { f32_to_i16(src) } else { 0 };
        }
        Ok(())
    }

    /// How many 16 kHz samples an input event is delayed before it appears in the output.
    pub fn delay_samples(&self) -> usize {
        self.resampler.output_delay()
    }

    /// Clears filter state, e.g. between calls when the instance is pooled.
    pub fn reset(&mut self) {
        self.resampler.reset();
    }
}

/// Counts heap allocations per thread so tests can prove the per-frame paths allocate nothing.
#[cfg(test)]
pub(crate) mod alloc_probe {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }

    fn bump() {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }

    struct Counting;

    // SAFETY: forwards every call unchanged to the system allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            bump();
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            bump();
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            bump();
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Heap allocations made by `f` on this thread.
    pub(crate) fn allocations_in(f: impl FnOnce()) -> u64 {
        let before = COUNT.with(Cell::get);
        f();
        COUNT.with(Cell::get) - before
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sine(freq: f32, rate: u32, secs: f32, amp: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Power of `freq` in `x` relative to a full-scale-amplitude sine's (Goertzel).
    pub(crate) fn goertzel_amplitude(x: &[f32], freq: f32, rate: u32) -> f32 {
        let w = 2.0 * std::f32::consts::PI * freq / rate as f32;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &v in x {
            let s0 = v + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        2.0 * power.max(0.0).sqrt() / x.len() as f32
    }

    pub(crate) fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    /// Frequency estimate from rising zero crossings over the steady middle part.
    pub(crate) fn zero_crossing_freq(x: &[f32], rate: u32) -> f32 {
        let crossings: Vec<usize> = x
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
            .map(|(i, _)| i)
            .collect();
        let first = crossings[0];
        let last = crossings[crossings.len() - 1];
        (crossings.len() - 1) as f32 * rate as f32 / (last - first) as f32
    }

    #[test]
    fn one_khz_keeps_frequency_and_level_from_common_rates() {
        for rate in [44_100, 48_000, 16_000, 22_050, 11_025, 8_000] {
            let input = sine(1000.0, rate, 1.0, 0.5);
            let out = resample(&input, rate, 8_000).unwrap();
            let expected_len = (input.len() as u64 * 8_000).div_ceil(rate as u64) as usize;
            assert_eq!(out.len(), expected_len, "length at {rate}");
            // Skip edges where the filter rings against the clip boundaries.
            let mid = &out[800..7200];
            let f = zero_crossing_freq(mid, 8_000);
            assert!((f - 1000.0).abs() < 2.0, "{rate} Hz: got {f} Hz");
            let level = rms(mid) * std::f32::consts::SQRT_2;
            assert!((level - 0.5).abs() < 0.01, "{rate} Hz: level {level}");
            let a = goertzel_amplitude(mid, 1000.0, 8_000);
            assert!((a - 0.5).abs() < 0.02, "{rate} Hz: goertzel {a}");
        }
    }

    #[test]
    fn output_is_time_aligned_with_input() {
        // A tone burst starting at 0.5 s must start at 0.5 s after conversion too.
        let rate = 48_000;
        let mut input = vec![0.0f32; rate as usize];
        for (i, v) in input.iter_mut().enumerate().skip(24_000) {
            *v = 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / rate as f32).sin();
        }
        let out = resample(&input, rate, 8_000).unwrap();
        let onset = out.iter().position(|v| v.abs() > 0.25).unwrap();
        assert!((3_995..=4_010).contains(&onset), "onset at {onset}");
    }

    #[test]
    fn five_khz_is_removed_when_downsampling_16k_to_8k() {
        let input = sine(5000.0, 16_000, 1.0, 0.5);
        let out = resample(&input, 16_000, 8_000).unwrap();
        let mid = &out[800..7200];
        // 5 kHz would alias to 3 kHz at 8 kHz; it must be at least 50 dB down.
        let alias = goertzel_amplitude(mid, 3000.0, 8_000);
        assert!(alias < 0.5 * 0.003, "alias amplitude {alias}");
        assert!(rms(mid) < 0.5 * 0.003, "residual rms {}", rms(mid));
    }

    #[test]
    fn i16_variant_saturates_and_round_trips_level() {
        let input: Vec<i16> = sine(440.0, 22_050, 0.5, 0.9)
            .into_iter()
            .map(f32_to_i16)
            .collect();
        let out = resample_i16(&input, 22_050, 8_000).unwrap();
        assert_eq!(out.len(), 4_000);
        let peak = out[400..3600]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap();
        let expected = (0.9 * 32768.0) as u16;
        assert!(peak.abs_diff(expected) < 400, "peak {peak}");
        assert_eq!(f32_to_i16(2.0), i16::MAX);
        assert_eq!(f32_to_i16(-2.0), i16::MIN);
        assert_eq!(f32_to_i16(f32::NAN), 0);
    }

    #[test]
    fn rejects_hostile_rates_and_passes_through_empty() {
        assert!(matches!(
            resample(&[0.0; 10], 0, 8_000),
            Err(ResampleError::UnsupportedRate { rate: 0 })
        ));
        assert!(matches!(
            resample(&[0.0; 10], 8_000, u32::MAX),
            Err(ResampleError::UnsupportedRate { rate: u32::MAX })
        ));
        assert!(resample(&[], 44_100, 8_000).unwrap().is_empty());
    }

    #[test]
    fn odd_rate_pair_works() {
        // Coprime-ish rates give a large FFT but must still convert correctly.
        let input = sine(1000.0, 12_345, 0.5, 0.5);
        let out = resample(&input, 12_345, 8_000).unwrap();
        let f = zero_crossing_freq(&out[400..3600], 8_000);
        assert!((f - 1000.0).abs() < 3.0, "got {f}");
    }

    #[test]
    fn upsampler_streams_frames_and_keeps_tone() {
        let mut up = Upsampler8to16::new().unwrap();
        let input: Vec<i16> = sine(1000.0, 8_000, 1.0, 0.5)
            .into_iter()
            .map(f32_to_i16)
            .collect();
        let mut output = Vec::new();
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut out = [0i16; FRAME_SAMPLES_16K];
        for chunk in input.chunks_exact(FRAME_SAMPLES) {
            frame.copy_from_slice(chunk);
            up.process(&frame, &mut out).unwrap();
            output.extend(out.iter().map(|&s| i16_to_f32(s)));
        }
        assert_eq!(output.len(), 16_000);
        let delay = up.delay_samples();
        assert!(delay <= FRAME_SAMPLES_16K, "delay {delay}");
        let mid = &output[2_000..14_000];
        let f = zero_crossing_freq(mid, 16_000);
        assert!((f - 1000.0).abs() < 2.0, "got {f}");
        let level = rms(mid) * std::f32::consts::SQRT_2;
        assert!((level - 0.5).abs() < 0.02, "level {level}");
        // Nothing was invented above the original 4 kHz band.
        assert!(goertzel_amplitude(mid, 7000.0, 16_000) < 0.005);
    }

    #[test]
    fn upsampler_does_not_allocate_per_frame() {
        let mut up = Upsampler8to16::new().unwrap();
        let frame = [1000i16; FRAME_SAMPLES];
        let mut out = [0i16; FRAME_SAMPLES_16K];
        up.process(&frame, &mut out).unwrap();
        let n = super::alloc_probe::allocations_in(|| {
            for _ in 0..100 {
                up.process(&frame, &mut out).unwrap();
            }
        });
        assert_eq!(n, 0);
        // The probe itself works: a Vec allocates.
        assert!(super::alloc_probe::allocations_in(|| drop(vec![0u8; 10])) > 0);
    }

    #[test]
    fn upsampler_reset_clears_history() {
        let mut up = Upsampler8to16::new().unwrap();
        let loud = [20_000i16; FRAME_SAMPLES];
        let mut out = [0i16; FRAME_SAMPLES_16K];
        up.process(&loud, &mut out).unwrap();
        up.reset();
        up.process(&[0; FRAME_SAMPLES], &mut out).unwrap();
        assert!(out.iter().all(|&s| s == 0), "history leaked after reset");
    }
}
