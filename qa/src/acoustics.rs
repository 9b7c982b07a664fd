//! Acoustic measurements of a spoken turn: speech time, loudness, pitch, speech rate, and arousal against
//! the same speaker's earlier turns.
//!
//! * Speech: 20 ms frames more than [`SPEECH_ABOVE_FLOOR_DB`] over the turn's own noise floor (its
//!   10th-percentile frame level), within [`SPEECH_RANGE_DB`] of its loud frames and over an absolute
//!   floor, so pauses and line noise do not count.
//! * Pitch: normalised cross-correlation over 40 ms windows centred on the speech frames, 70–400 Hz, after
//!   decimating to about 8 kHz (wide-band audio holds no more pitch information and costs 4× more). A frame
//!   is voiced when its correlation peak exceeds [`VOICING`]; of the peaks within 10 % of the best one the
//!   shortest lag wins, since a period's multiples correlate almost as well (octave errors).
//! * Arousal: loudness rise (dB), pitch rise and rate rise (relative) over the speaker's earlier turns in
//!   the call, each in units of that speaker's spread with floors, averaged. Relative to the same speaker
//!   because people and phone lines differ far more than one person's calm and agitated voices.

use crate::record::{Acoustics, Speaker, Turn};

/// Level of `samples` in dB relative to full scale (-120 for silence).
pub fn dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return -120.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len() as f64).sqrt() / 32768.0;
    if rms <= 1e-6 {
        -120.0
    } else {
        (20.0 * rms.log10()) as f32
    }
}

const FRAME_MS: u32 = 20;
/// Frames this far above the turn's noise floor (its 10th-percentile frame level) are speech.
pub const SPEECH_ABOVE_FLOOR_DB: f32 = 10.0;
/// Frames this far below the turn's loud frames (95th percentile) are not speech but breath, echo or a
/// far-away voice, however quiet the line; this keeps speech time the same for a loud and a soft talker.
pub const SPEECH_RANGE_DB: f32 = 35.0;
/// Quieter frames are never speech: digital silence and the idle noise of a G.711 line sit below it.
pub const ABSOLUTE_FLOOR_DBFS: f32 = -70.0;
/// A turn without pauses has no noise frames to estimate a floor from: frames this close to its loud
/// frames always count as speech.
const NEAR_LOUD_DB: f32 = 6.0;
const PITCH_MIN_HZ: f32 = 70.0;
const PITCH_MAX_HZ: f32 = 400.0;
const PITCH_WINDOW_MS: u32 = 40;
/// Rate pitch is measured at; higher rates are decimated by an integer factor to about this.
const PITCH_RATE: u32 = 8_000;
/// Normalised correlation a frame's chosen period needs to count as voiced.
pub const VOICING: f32 = 0.5;
/// Peaks within this fraction of the best one compete; the shortest lag wins.
const OCTAVE_TOLERANCE: f32 = 0.9;
/// Fewer voiced frames than this give no pitch (a click or a cough is not a voice).
const MIN_PITCH_FRAMES: usize = 3;
/// Less speech than this gives no speech rate.
pub const MIN_RATE_SPEECH_MS: u32 = 300;

/// Measures one turn's audio (mono, `sample_rate` Hz) with its recognised `text` (for the speech rate).
/// `arousal` is left `None`; [`fill_arousal`] sets it once the call's turns are known. A rate below
/// 1 kHz is not audio: only the overall level is reported.
pub fn measure(samples: &[i16], sample_rate: u32, text: &str) -> Acoustics {
    let overall = Acoustics {
        loudness_dbfs: dbfs(samples),
        ..Default::default()
    };
    if sample_rate < 1_000 {
        return overall;
    }
    let frame = (sample_rate * FRAME_MS / 1000) as usize;
    let powers: Vec<f64> = samples.chunks_exact(frame).map(mean_square).collect();
    let speech = is_speech(&powers);
    let speech_frames: Vec<usize> = (0..powers.len()).filter(|&i| speech[i]).collect();
    if speech_frames.is_empty() {
        return overall;
    }
    let speech_ms = speech_frames.len() as u32 * FRAME_MS;
    let power = speech_frames.iter().map(|&i| powers[i]).sum::<f64>() / speech_frames.len() as f64;
    let mut pitches = pitch_track(samples, sample_rate, frame, &speech_frames);
    pitches.sort_by(f32::total_cmp);
    let pct = |p: f32| pitches[((pitches.len() - 1) as f32 * p).round() as usize];
    let has_pitch = pitches.len() >= MIN_PITCH_FRAMES;
    let words = count_words(text);
    Acoustics {
        speech_ms,
        loudness_dbfs: power_dbfs(power),
        pitch_hz: has_pitch.then(|| pct(0.5)),
        pitch_p10_hz: has_pitch.then(|| pct(0.1)),
        pitch_p90_hz: has_pitch.then(|| pct(0.9)),
        words_per_min: (words > 0 && speech_ms >= MIN_RATE_SPEECH_MS)
            .then(|| words as f32 * 60_000.0 / speech_ms as f32),
        arousal: None,
    }
}

fn mean_square(s: &[i16]) -> f64 {
    s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / s.len().max(1) as f64
}

fn power_dbfs(mean_square: f64) -> f32 {
    let ms = mean_square / (32768.0 * 32768.0);
    if ms <= 1e-12 {
        -120.0
    } else {
        (10.0 * ms.log10()) as f32
    }
}

/// Which frames (by mean-square power) are speech.
fn is_speech(powers: &[f64]) -> Vec<bool> {
    let levels: Vec<f32> = powers.iter().map(|&p| power_dbfs(p)).collect();
    let mut sorted = levels.clone();
    sorted.sort_by(f32::total_cmp);
    let at = |p: f32| {
        sorted
            .get(((sorted.len().saturating_sub(1)) as f32 * p) as usize)
            .copied()
    };
    let (Some(floor), Some(loud)) = (at(0.10), at(0.95)) else {
        return Vec::new();
    };
    let threshold = (floor + SPEECH_ABOVE_FLOOR_DB)
        .max(loud - SPEECH_RANGE_DB)
        .min(loud - NEAR_LOUD_DB)
        .max(ABSOLUTE_FLOOR_DBFS);
    levels.iter().map(|&l| l >= threshold).collect()
}

/// Pitch in Hz of each voiced frame among the speech frames (indices of `frame`-sample frames).
fn pitch_track(samples: &[i16], sample_rate: u32, frame: usize, speech: &[usize]) -> Vec<f32> {
    let factor = (sample_rate / PITCH_RATE).max(1) as usize;
    let rate = sample_rate as f32 / factor as f32;
    let x = decimate(samples, factor);
    let window = (rate * PITCH_WINDOW_MS as f32 / 1000.0).round() as usize;
    let min_lag = ((rate / PITCH_MAX_HZ).floor() as usize).max(2);
    let max_lag = (rate / PITCH_MIN_HZ).ceil() as usize;
    // The window plus the longest lag, and one more lag on each side to find peaks at the range's ends.
    let span = window + max_lag + 1;
    if x.len() < span {
        return Vec::new();
    }
    let mut seg = vec![0f32; span];
    let mut nccf = vec![0f32; max_lag + 2];
    let mut out = Vec::with_capacity(speech.len());
    for &i in speech {
        let centre = (i * frame + frame / 2) / factor;
        let start = centre.saturating_sub(window / 2).min(x.len() - span);
        if let Some(f0) = frame_pitch(
            &x[start..start + span],
            window,
            min_lag,
            max_lag,
            &mut seg,
            &mut nccf,
        ) {
            out.push(rate / f0);
        }
    }
    out
}

/// Period in samples (fractional) of one window, or `None` when it is not clearly periodic. `x` holds the
/// window and `max_lag + 1` samples after it; `seg` and `nccf` are scratch buffers.
fn frame_pitch(
    x: &[f32],
    window: usize,
    min_lag: usize,
    max_lag: usize,
    seg: &mut [f32],
    nccf: &mut [f32],
) -> Option<f32> {
    let mean = x.iter().sum::<f32>() / x.len() as f32;
    for (s, &v) in seg.iter_mut().zip(x) {
        *s = v - mean;
    }
    let energy = |from: usize| seg[from..from + window].iter().map(|v| v * v).sum::<f32>();
    let e0 = energy(0);
    if e0 <= f32::EPSILON {
        return None;
    }
    let first = min_lag - 1;
    let mut e_lag = energy(first);
    for lag in first..=max_lag + 1 {
        if lag > first {
            // Slide the lagged window's energy by one sample.
            e_lag += seg[lag + window - 1] * seg[lag + window - 1] - seg[lag - 1] * seg[lag - 1];
        }
        let cross = dot(&seg[..window], &seg[lag..lag + window]);
        nccf[lag] = cross / (e0 * e_lag.max(0.0)).sqrt().max(f32::EPSILON);
    }
    let is_peak = |lag: usize| nccf[lag] >= nccf[lag - 1] && nccf[lag] > nccf[lag + 1];
    let best = (min_lag..=max_lag)
        .filter(|&l| is_peak(l))
        .map(|l| nccf[l])
        .fold(f32::MIN, f32::max);
    if best < VOICING {
        return None;
    }
    let lag = (min_lag..=max_lag).find(|&l| is_peak(l) && nccf[l] >= OCTAVE_TOLERANCE * best)?;
    // Parabolic interpolation between the neighbouring lags.
    let (a, b, c) = (nccf[lag - 1], nccf[lag], nccf[lag + 1]);
    let denom = a - 2.0 * b + c;
    let shift = if denom.abs() > f32::EPSILON {
        (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    Some(lag as f32 + shift)
}

/// Dot product in eight independent sums, which the compiler can keep in one vector register (a single
/// running float sum must be added in order and cannot be vectorised).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `samples` as floats, low-passed and decimated by `factor` (1 = unchanged).
fn decimate(samples: &[i16], factor: usize) -> Vec<f32> {
    let x: Vec<f32> = samples.iter().map(|&s| f32::from(s)).collect();
    if factor <= 1 {
        return x;
    }
    // Windowed-sinc low-pass at 90 % of the new Nyquist frequency.
    let half = 8 * factor;
    let cutoff = 0.45 / factor as f32;
    let pi = std::f32::consts::PI;
    let mut taps: Vec<f32> = (0..=2 * half)
        .map(|n| {
            let t = n as f32 - half as f32;
            let sinc = if t == 0.0 {
                2.0 * cutoff
            } else {
                (2.0 * pi * cutoff * t).sin() / (pi * t)
            };
            sinc * (0.54 - 0.46 * (2.0 * pi * n as f32 / (2 * half) as f32).cos())
        })
        .collect();
    let gain: f32 = taps.iter().sum();
    taps.iter_mut().for_each(|t| *t /= gain);
    (0..x.len() / factor)
        .map(|m| {
            let centre = m * factor;
            match (centre.checked_sub(half), x.get(centre + half)) {
                (Some(from), Some(_)) => dot(&taps, &x[from..=centre + half]),
                // At the edges, samples outside the turn count as silence.
                _ => taps
                    .iter()
                    .enumerate()
                    .filter_map(|(k, h)| Some(h * x.get((centre + k).checked_sub(half)?)?))
                    .sum(),
            }
        })
        .collect()
}

/// Words in a transcript, as speech rate counts them: Latin words (a contraction is one word) and Han
/// characters; recogniser annotations in brackets ("[BLANK_AUDIO]", "(laughs)") are not speech.
pub fn count_words(text: &str) -> usize {
    let mut words = 0;
    let mut in_word = false;
    let mut depth = 0u32;
    let mut prev_digit = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next_digit = chars.peek().is_some_and(char::is_ascii_digit);
        match c {
            '[' | '(' | '（' | '【' => depth += 1,
            ']' | ')' | '）' | '】' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            _ if voxgate_dialog::nlu::is_han(c) => {
                words += 1;
                in_word = false;
            }
            _ if c.is_alphanumeric() => {
                words += usize::from(!in_word);
                in_word = true;
            }
            // Inside a word: "don't", "1,200", "2.5".
            '\'' | '’' if in_word => {}
            ',' | '.' if in_word && prev_digit && next_digit => {}
            _ => in_word = false,
        }
        if depth > 0 {
            in_word = false;
        }
        prev_digit = c.is_ascii_digit();
    }
    words
}

/// Loudness rise below this many dB is within a speaker's normal spread, however steady their baseline.
pub const LOUDNESS_SPREAD_FLOOR_DB: f32 = 3.0;
/// Same for pitch, as a fraction of the baseline pitch.
pub const PITCH_SPREAD_FLOOR: f32 = 0.10;
/// Same for speech rate, as a fraction of the baseline rate.
pub const RATE_SPREAD_FLOOR: f32 = 0.15;
/// One measure cannot move arousal further than this many spreads.
const MAX_RISE: f32 = 5.0;

/// Arousal of `current` against `baseline` (the same speaker's earlier turns); `None` without a baseline.
pub fn arousal(baseline: &[&Acoustics], current: &Acoustics) -> Option<f32> {
    let mut b = Baseline::default();
    for a in baseline {
        b.add(a);
    }
    b.arousal(current)
}

/// Sets `acoustics.arousal` on every measured turn from the same speaker's earlier turns.
pub fn fill_arousal(turns: &mut [Turn]) {
    let mut baselines: [(Speaker, Baseline); 3] = [
        (Speaker::Caller, Baseline::default()),
        (Speaker::Voxgate, Baseline::default()),
        (Speaker::Agent, Baseline::default()),
    ];
    for turn in turns {
        let Some(a) = turn.acoustics.as_mut() else {
            continue;
        };
        if let Some((_, b)) = baselines.iter_mut().find(|(s, _)| *s == turn.speaker) {
            a.arousal = b.arousal(a);
            b.add(a);
        }
    }
}

/// Running mean and spread of one measure.
#[derive(Clone, Copy, Debug, Default)]
struct Stat {
    n: u32,
    sum: f64,
    sum_sq: f64,
}

impl Stat {
    fn add(&mut self, v: f32) {
        if v.is_finite() {
            let v = f64::from(v);
            self.n += 1;
            self.sum += v;
            self.sum_sq += v * v;
        }
    }

    /// (mean, standard deviation), or `None` without values.
    fn mean_sd(&self) -> Option<(f32, f32)> {
        (self.n > 0).then(|| {
            let n = f64::from(self.n);
            let mean = self.sum / n;
            (
                (mean) as f32,
                (self.sum_sq / n - mean * mean).max(0.0).sqrt() as f32,
            )
        })
    }
}

/// One speaker's earlier turns, summarised.
#[derive(Clone, Copy, Debug, Default)]
struct Baseline {
    loudness: Stat,
    pitch: Stat,
    rate: Stat,
}

impl Baseline {
    fn add(&mut self, a: &Acoustics) {
        // A turn without speech frames measured only its line noise.
        if a.speech_ms > 0 {
            self.loudness.add(a.loudness_dbfs);
        }
        if let Some(p) = a.pitch_hz {
            self.pitch.add(p);
        }
        if let Some(r) = a.words_per_min {
            self.rate.add(r);
        }
    }

    fn arousal(&self, a: &Acoustics) -> Option<f32> {
        let mut rises = [None; 3];
        if a.speech_ms > 0 && a.loudness_dbfs.is_finite() {
            rises[0] = self
                .loudness
                .mean_sd()
                .map(|(mean, sd)| (a.loudness_dbfs - mean) / sd.max(LOUDNESS_SPREAD_FLOOR_DB));
        }
        let relative = |stat: &Stat, v: Option<f32>, floor: f32| {
            let v = v.filter(|v| v.is_finite())?;
            let (mean, sd) = stat.mean_sd().filter(|(m, _)| *m > 0.0)?;
            Some((v / mean - 1.0) / (sd / mean).max(floor))
        };
        rises[1] = relative(&self.pitch, a.pitch_hz, PITCH_SPREAD_FLOOR);
        rises[2] = relative(&self.rate, a.words_per_min, RATE_SPREAD_FLOOR);
        let (sum, n) = rises.iter().flatten().fold((0.0, 0), |(s, n), r| {
            (s + r.clamp(-MAX_RISE, MAX_RISE), n + 1)
        });
        (n > 0).then(|| sum / n as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A harmonic tone of `secs` at fundamental `f0`, harmonics `first..=last` with falling amplitude,
    /// peaking near `peak` (full scale 32767), and a slow level wobble like syllables.
    fn tone(rate: u32, f0: f32, secs: f32, peak: f32, first: u32, last: u32) -> Vec<i16> {
        let n = (rate as f32 * secs) as usize;
        let norm: f32 = (first..=last).map(|k| 1.0 / k as f32).sum();
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                let v: f32 = (first..=last)
                    .filter(|&k| (k as f32 * f0) < rate as f32 / 2.0)
                    .map(|k| {
                        (2.0 * std::f32::consts::PI * k as f32 * f0 * t + k as f32).sin() / k as f32
                    })
                    .sum();
                let wobble = 0.8 + 0.2 * (2.0 * std::f32::consts::PI * 4.0 * t).sin();
                (peak * wobble * v / norm) as i16
            })
            .collect()
    }

    /// Deterministic white noise at about `rms`.
    fn noise(n: usize, rms: f32, seed: u64) -> Vec<i16> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 33) as f32 / (1u64 << 31) as f32; // 0..1
                ((u - 0.5) * rms * 12f32.sqrt()) as i16
            })
            .collect()
    }

    fn with_padding(rate: u32, body: &[i16], pad_secs: f32) -> Vec<i16> {
        let pad = noise((rate as f32 * pad_secs) as usize, 10.0, 7);
        pad.iter().chain(body).chain(&pad).copied().collect()
    }

    #[test]
    fn pitch_of_harmonic_tones_at_8_and_16_khz() {
        for rate in [8_000, 16_000] {
            for f0 in [90.0, 110.0, 140.0, 180.0, 220.0, 260.0, 320.0] {
                let a = measure(&tone(rate, f0, 1.0, 8_000.0, 1, 12), rate, "");
                let p = a.pitch_hz.expect("voiced");
                assert!(
                    (p - f0).abs() / f0 < 0.03,
                    "{rate} Hz, f0 {f0}: measured {p}"
                );
                let (lo, hi) = (a.pitch_p10_hz.expect("p10"), a.pitch_p90_hz.expect("p90"));
                assert!(lo <= p && p <= hi && (hi - lo) / f0 < 0.05, "{lo} {p} {hi}");
            }
        }
    }

    #[test]
    fn pitch_of_telephone_band_voice_without_its_fundamental() {
        // The telephone band starts at 300 Hz: low voices lose their fundamental and second harmonic.
        for f0 in [95.0, 120.0, 150.0] {
            let first = (300.0 / f0) as u32 + 1;
            let a = measure(&tone(8_000, f0, 1.0, 8_000.0, first, 30), 8_000, "");
            let p = a.pitch_hz.expect("voiced");
            assert!((p - f0).abs() / f0 < 0.03, "f0 {f0}: measured {p}");
        }
    }

    #[test]
    fn loudness_follows_level_and_pitch_does_not() {
        let loud = tone(8_000, 150.0, 1.0, 16_000.0, 1, 10);
        let soft: Vec<i16> = loud.iter().map(|&s| s / 10).collect();
        let (l, s) = (measure(&loud, 8_000, ""), measure(&soft, 8_000, ""));
        let diff = l.loudness_dbfs - s.loudness_dbfs;
        assert!(
            (diff - 20.0).abs() < 0.5,
            "{} vs {}",
            l.loudness_dbfs,
            s.loudness_dbfs
        );
        assert!(
            l.loudness_dbfs > -20.0 && l.loudness_dbfs < -5.0,
            "{}",
            l.loudness_dbfs
        );
        let (pl, ps) = (l.pitch_hz.expect("loud"), s.pitch_hz.expect("soft"));
        assert!((pl - ps).abs() < 1.0, "{pl} {ps}");
    }

    #[test]
    fn no_pitch_in_noise_or_silence() {
        for rate in [8_000, 16_000] {
            let n = measure(&noise(rate as usize * 2, 3_000.0, 42), rate, "hello");
            assert!(n.pitch_hz.is_none() && n.pitch_p10_hz.is_none(), "{n:?}");
            let s = measure(&vec![0; rate as usize], rate, "");
            assert_eq!(s.speech_ms, 0);
            assert_eq!(s.pitch_hz, None);
            assert_eq!(s.words_per_min, None);
            assert_eq!(s.loudness_dbfs, -120.0);
        }
        let empty = measure(&[], 8_000, "hello");
        assert_eq!((empty.speech_ms, empty.pitch_hz), (0, None));
        let bad_rate = measure(&tone(8_000, 150.0, 0.5, 8_000.0, 1, 5), 0, "hello");
        assert_eq!((bad_rate.speech_ms, bad_rate.pitch_hz), (0, None));
    }

    #[test]
    fn speech_time_excludes_silence_and_quiet_line_noise() {
        for rate in [8_000, 16_000] {
            let body = tone(rate, 130.0, 1.2, 6_000.0, 1, 8);
            let padded = with_padding(rate, &body, 0.8);
            let a = measure(&padded, rate, "");
            assert!(
                a.speech_ms.abs_diff(1_200) <= 40,
                "{rate}: {} ms",
                a.speech_ms
            );
            // Loudness is of the speech, not diluted by the padding.
            let b = measure(&body, rate, "");
            assert!((a.loudness_dbfs - b.loudness_dbfs).abs() < 0.5);
            assert!(b.speech_ms.abs_diff(1_200) <= 20, "{}", b.speech_ms);
        }
    }

    #[test]
    fn words_per_minute_over_speech_time() {
        let body = tone(8_000, 130.0, 1.0, 6_000.0, 1, 8);
        let audio = with_padding(8_000, &body, 1.0);
        let wpm = |text: &str| measure(&audio, 8_000, text).words_per_min;
        let three = wpm("I can't pay.").expect("rate");
        assert!((three - 180.0).abs() < 10.0, "{three}");
        let han = wpm("我要查余额").expect("rate");
        assert!((han - 300.0).abs() < 15.0, "{han}");
        assert!((wpm("[BLANK_AUDIO] check (coughs) balance").expect("rate") - 120.0).abs() < 10.0);
        assert_eq!(wpm(""), None);
        assert_eq!(wpm("[BLANK_AUDIO]"), None);
        let short = with_padding(8_000, &tone(8_000, 130.0, 0.2, 6_000.0, 1, 8), 1.0);
        assert_eq!(measure(&short, 8_000, "yes").words_per_min, None);
    }

    #[test]
    fn counts_words() {
        assert_eq!(count_words("I don't know, it's 1,200 pounds."), 6);
        assert_eq!(count_words("我的visa卡丢了"), 6);
        assert_eq!(count_words("  "), 0);
    }

    fn acoustics(loudness: f32, pitch: f32, rate: f32) -> Acoustics {
        Acoustics {
            speech_ms: 2_000,
            loudness_dbfs: loudness,
            pitch_hz: Some(pitch),
            pitch_p10_hz: Some(pitch * 0.8),
            pitch_p90_hz: Some(pitch * 1.2),
            words_per_min: Some(rate),
            arousal: None,
        }
    }

    #[test]
    fn arousal_against_the_speakers_baseline() {
        let calm = acoustics(-26.0, 140.0, 160.0);
        let base = [&calm, &calm, &calm];
        let same = arousal(&base, &calm).expect("baseline");
        assert!(same.abs() < 0.05, "{same}");
        let agitated = acoustics(-14.0, 196.0, 256.0);
        assert!(arousal(&base, &agitated).expect("baseline") > 1.5);
        let calmer = acoustics(-32.0, 120.0, 120.0);
        assert!(arousal(&base, &calmer).expect("baseline") < -1.0);
        // A naturally loud, high, fast speaker at their own level is not aroused.
        let loud = acoustics(-8.0, 260.0, 240.0);
        let loud_again = acoustics(-8.5, 255.0, 245.0);
        let a = arousal(&[&loud, &loud_again], &acoustics(-8.2, 258.0, 243.0)).expect("baseline");
        assert!(a.abs() < 0.3, "{a}");
        // A variable baseline needs a bigger change than a flat one.
        let varied = [
            &acoustics(-20.0, 120.0, 130.0),
            &acoustics(-32.0, 170.0, 200.0),
        ];
        let flat = [&acoustics(-26.0, 145.0, 165.0)];
        let rise = acoustics(-20.0, 170.0, 200.0);
        assert!(arousal(&varied, &rise) < arousal(&flat, &rise));
    }

    #[test]
    fn arousal_needs_a_measured_baseline() {
        let cur = acoustics(-20.0, 150.0, 180.0);
        assert_eq!(arousal(&[], &cur), None);
        let nothing = Acoustics::default();
        assert_eq!(arousal(&[&nothing], &cur), None);
        // Pitch alone is enough.
        let pitch_only = Acoustics {
            pitch_hz: Some(100.0),
            ..Default::default()
        };
        let a = arousal(&[&pitch_only], &cur).expect("pitch baseline");
        assert!(a > 1.5, "{a}");
    }

    fn turn(speaker: Speaker, at: u64, a: Option<Acoustics>) -> Turn {
        Turn {
            speaker,
            start_ms: at,
            end_ms: at + 2_000,
            text: String::new(),
            confidence: None,
            interrupted: false,
            segments: Vec::new(),
            acoustics: a,
        }
    }

    #[test]
    fn fill_arousal_keeps_speakers_apart() {
        let caller = acoustics(-30.0, 120.0, 150.0);
        let agent = acoustics(-10.0, 230.0, 220.0);
        let mut turns = vec![
            turn(Speaker::Caller, 0, Some(caller.clone())),
            turn(Speaker::Voxgate, 2_000, None),
            turn(Speaker::Agent, 4_000, Some(agent.clone())),
            turn(Speaker::Caller, 6_000, Some(caller.clone())),
            turn(Speaker::Agent, 8_000, Some(agent.clone())),
            turn(
                Speaker::Caller,
                10_000,
                Some(acoustics(-18.0, 170.0, 240.0)),
            ),
        ];
        fill_arousal(&mut turns);
        let ar: Vec<Option<f32>> = turns
            .iter()
            .map(|t| t.acoustics.as_ref().and_then(|a| a.arousal))
            .collect();
        assert_eq!((ar[0], ar[1], ar[2]), (None, None, None));
        assert!(ar[3].is_some_and(|a| a.abs() < 0.05), "{ar:?}");
        assert!(ar[4].is_some_and(|a| a.abs() < 0.05), "{ar:?}");
        assert!(ar[5].is_some_and(|a| a > 1.5), "{ar:?}");
        assert_eq!(turns[1].acoustics, None);
    }

    #[test]
    fn measured_turns_give_arousal_end_to_end() {
        let rate = 8_000;
        let calm = with_padding(rate, &tone(rate, 130.0, 1.5, 3_000.0, 1, 10), 0.5);
        let loud = with_padding(rate, &tone(rate, 185.0, 1.0, 12_000.0, 1, 10), 0.5);
        let text = "I would like to check my balance";
        let a0 = measure(&calm, rate, text);
        let a1 = measure(&calm, rate, text);
        let a2 = measure(&loud, rate, text);
        assert!(arousal(&[&a0], &a1).is_some_and(|a| a.abs() < 0.1));
        assert!(arousal(&[&a0, &a1], &a2).is_some_and(|a| a > 1.5));
    }

    /// Real speech from espeak-ng, band-limited to 8 kHz by sox. Needs both tools, so not run by default:
    /// `cargo test -p voxgate-qa acoustics::tests::espeak -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn espeak_voice() {
        let render = |args: &str, vol: f32| -> Vec<i16> {
            let cmd = format!(
                "espeak-ng --stdout {args} 'Hello, I would like to check the balance of my current account please' \
                 | sox -t wav - -t raw -r 8000 -c 1 -b 16 -e signed-integer - vol {vol}"
            );
            let out = std::process::Command::new("sh")
                .args(["-c", &cmd])
                .output()
                .expect("espeak-ng and sox");
            assert!(out.status.success() && !out.stdout.is_empty(), "{cmd}");
            out.stdout
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect()
        };
        let text = "Hello, I would like to check the balance of my current account please";
        let base = measure(&render("-p 40", 0.5), 8_000, text);
        let again = measure(&render("-p 40", 0.5), 8_000, text);
        let soft = measure(&render("-p 40", 0.05), 8_000, text);
        let high = measure(&render("-p 80 -s 230", 1.0), 8_000, text);
        for (name, a) in [("base", &base), ("soft", &soft), ("high", &high)] {
            println!("{name}: {a:?}");
        }
        assert!((base.loudness_dbfs - soft.loudness_dbfs - 20.0).abs() < 1.0);
        let (p, ps) = (base.pitch_hz.expect("pitch"), soft.pitch_hz.expect("pitch"));
        assert!((p - ps).abs() / p < 0.05, "{p} {ps}");
        assert!(high.pitch_hz.expect("pitch") > p * 1.2);
        let calm = arousal(&[&base], &again).expect("baseline");
        let aroused = arousal(&[&base, &again], &high).expect("baseline");
        println!("arousal same voice {calm:.2}, higher/faster/louder {aroused:.2}");
        assert!(calm.abs() < 0.3 && aroused > 1.5);
    }
}
