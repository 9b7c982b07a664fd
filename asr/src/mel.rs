//! Slaney-style mel filterbank, the one whisper.cpp reads from the GGML header.
//!
//! OpenAI generated `mel_filters.npz` with `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)`; computing it
//! here (same arithmetic and rounding order as librosa) spares shipping that file and reproduces it bit for bit.

/// Mel filter weights, `n_mel` rows of `n_bins` FFT bins (row-major), as whisper.cpp stores them.
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilters {
    pub n_mel: usize,
    pub n_bins: usize,
    pub data: Vec<f32>,
}

/// Whisper's front end: 16 kHz audio, 25 ms window.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;
pub const WHISPER_N_FFT: usize = 400;

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn min_log_mel() -> f64 {
    // Written like librosa (not as the literal 15) so the boundary rounds the same way.
    (MIN_LOG_HZ - 0.0) / F_SP
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        min_log_mel() + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= min_log_mel() {
        MIN_LOG_HZ * (log_step() * (mel - min_log_mel())).exp()
    } else {
        F_SP * mel
    }
}

/// numpy's `linspace(start, stop, n)` including its exact endpoint.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n < 2 {
        return vec![start; n];
    }
    let step = (stop - start) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// `librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False, norm="slaney", dtype=float32)`.
pub fn slaney_mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> MelFilters {
    let n_bins = 1 + n_fft / 2;
    let nyquist = f64::from(sample_rate) / 2.0;
    let fft_freqs = linspace(0.0, nyquist, n_bins);
    let mel_f: Vec<f64> = linspace(hz_to_mel(0.0), hz_to_mel(nyquist), n_mels + 2)
        .into_iter()
        .map(mel_to_hz)
        .collect();
    let mut data = Vec::with_capacity(n_mels * n_bins);
    for edges in mel_f.windows(3) {
        let &[lo, center, hi] = edges else { continue };
        let enorm = 2.0 / (hi - lo);
        for &f in &fft_freqs {
            let lower = -(lo - f) / (center - lo);
            let upper = (hi - f) / (hi - center);
            // numpy's minimum/maximum return the second operand on ties, which keeps the -0.0 at [0][0] of
            // OpenAI's file; f64::max would not.
            let tri = if lower < upper { lower } else { upper };
            // librosa stores the triangle in float32 first, then scales in float64: two roundings, kept on purpose.
            let w = (if 0.0 > tri { 0.0 } else { tri }) as f32;
            data.push((f64::from(w) * enorm) as f32);
        }
    }
    MelFilters {
        n_mel: n_mels,
        n_bins,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn whisper80() -> MelFilters {
        slaney_mel_filters(WHISPER_SAMPLE_RATE, WHISPER_N_FFT, 80)
    }

    #[test]
    fn matches_openai_mel_filters_npz_bit_for_bit() {
        let m = whisper80();
        assert_eq!((m.n_mel, m.n_bins, m.data.len()), (80, 201, 80 * 201));
        let mut h = Sha256::new();
        for v in &m.data {
            h.update(v.to_le_bytes());
        }
        // sha256 of whisper/assets/mel_filters.npz["mel_80"] as little-endian f32, computed with numpy.
        let expected = "4f2701b1d287d74a0dc9871026e9519d98cb76426615f2539b0d151a0ae4ec2e";
        let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn matches_reference_entries_and_row_sums() {
        let m = whisper80();
        let at = |r: usize, c: usize| m.data[r * m.n_bins + c];
        // Values read from mel_filters.npz with numpy.
        for (r, c, v) in [
            (0, 1, 0.024_862_594_902_515_41),
            (0, 2, 0.0),
            (1, 2, 0.022_871_771_827_340_126),
            (10, 13, 0.0),
            (79, 190, 0.002_232_054_946_944_117_5),
            (79, 199, 0.000_448_759_004_939_347_5),
            (79, 200, 0.0),
        ] {
            assert!(
                (f64::from(at(r, c)) - v).abs() < 1e-12,
                "[{r},{c}] = {}",
                at(r, c)
            );
        }
        let row_sum = |r: usize| -> f64 { (0..m.n_bins).map(|c| f64::from(at(r, c))).sum() };
        assert!((row_sum(40) - 0.026_664_860_546_588_898).abs() < 1e-7);
        let total: f64 = m.data.iter().map(|&v| f64::from(v)).sum();
        assert!((total - 1.999_024_092_387_117).abs() < 1e-6, "{total}");
        // Low filters are a single bin wide, high ones spread over many bins, peaks move up monotonically.
        let width = |r: usize| (0..m.n_bins).filter(|&c| at(r, c) > 0.0).count();
        assert_eq!((width(0), width(10), width(40), width(79)), (1, 2, 3, 14));
        let peak = |r: usize| {
            (0..m.n_bins).fold(0, |best, c| if at(r, c) > at(r, best) { c } else { best })
        };
        assert_eq!((peak(0), peak(10), peak(40), peak(79)), (1, 10, 43, 192));
    }
}
