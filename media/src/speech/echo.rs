//! Echo guard: line-echo cancellation plus an echo-scaled detection floor, so our own
//! prompt coming back from the caller's hybrid is neither heard as caller speech nor sent
//! to the recogniser.
//!
//! Per 20 ms tick the media thread passes the frame it just sent (`far`, the reference)
//! and the frame it just received (`near`). Pieces, in processing order:
//!
//! 1. **Bulk delay estimator.** Network plus hybrid delay is 20–300 ms, mostly a pure
//!    delay. 1 ms envelopes of far and near are cross-correlated over 0..`max_delay_ms`,
//!    each frame contributing a normalised correlation (so a loud caller adds noise, not
//!    a bias), averaged over ~1 s. A peak clearly above the rest, stable for 200 ms,
//!    moves the filter window, so the taps only model the residual dispersion.
//! 2. **Adaptive filter**: IPNLMS (Benesty & Gay's proportionate NLMS) of `filter_taps`
//!    taps (default 1024 = 128 ms) starting `delay_margin_ms` before the estimated delay.
//!    A hybrid's response is a few ms long, so most taps should stay near zero;
//!    proportionate step sizes keep them from collecting noise that would later come out
//!    as fake "echo" (plain NLMS with 1024 taps did exactly that in the speech tests).
//!    When the window moves, the learnt taps move with it.
//! 3. **Double-talk detector** (freezes adaptation, with a hangover): Geigel (near peak
//!    above the far peak that can echo into the frame: a VoIP loopback such as
//!    `sipp -rtp_echo` returns our samples unchanged, at 0 dB echo return loss, where
//!    G.168's 6 dB assumption would call every echo frame double talk and freeze the
//!    filter); near power above what the measured echo gain allows; and, once
//!    converged, a coherence test (near poorly explained by the echo estimate,
//!    normalised correlation < 0.8). Double talk longer than [`MAX_DOUBLE_TALK`] is taken
//!    to be an echo-path change: adaptation resumes and the floor turns cautious again.
//!    A **delay jump** (the jitter buffer growing or shrinking by a packet) also fails
//!    the coherence test; on such frames the far lag within ±40 ms that best matches the
//!    frame is tried with the learnt taps moved there, and kept when it explains the
//!    frame, so the canceller follows within a frame instead of 2 s of "double talk".
//!    A frame that is a near-exact copy of the far signal at another lag, but that the
//!    moved taps cannot explain (the filter had not converged yet), is echo too: the
//!    floor stops crediting the canceller until it has re-learnt. When the delay
//!    estimator locks while taps already explain the echo elsewhere, the taps win (its
//!    ~1 s average lags behind a jump), and a window move that cuts off learnt taps also
//!    makes the floor cautious again.
//! 4. **Safety nets.** A frame the taps would make louder is passed through unchanged
//!    (a canceller must never add energy), and taps that keep doing so are dropped.
//! 5. **Echo floor.** Residual echo in a frame is bounded by `far_ref × gain × leak`:
//!    `far_ref` is the loudest far 20 ms window that can echo into the frame, in 1 ms
//!    steps (frame-aligned blocks understate a loopback's echo by up to 3 dB); `gain` the
//!    median near/far power ratio of the last ~1.3 s of far-end speech (a median, so a
//!    caller talking over part of it does not inflate it) plus `gate_margin_db`, capped
//!    at the worst-case prior `initial_echo_loss_db` that also applies until ~1 s of
//!    prompt was measured; `leak` the residual-to-near ratio after cancellation, tracked
//!    (fast attack, slow release) on frames the echo estimate explains. Residual below
//!    the floor is treated as echo. So a fresh call starts cautious, a line without echo
//!    ends with a floor near its noise, and a converged canceller with one ERLE below the
//!    raw echo.
//!
//! The audio itself is only cancelled, not suppressed: the recogniser and the recording
//! get the caller's full signal; the floor gates decisions only.
//!
//! All buffers are allocated in [`EchoGuard::new`]; [`EchoGuard::process`] does not
//! allocate. The filter kernels run AVX2 + FMA code where the CPU has it (checked at run
//! time; the x86-64 baseline otherwise). Cost (release, AVX2, this project's 2-core Xeon):
//! ~44 µs per frame with 1024 taps while a prompt plays, ~33 µs in double talk (no
//! adaptation, but the delay-jump search), ~1 µs once nothing was sent for the history's
//! length (the `cost_per_frame` test; `echo_guard/*` in `benches/`).

use std::time::Duration;

use crate::resample::{f32_to_i16, i16_to_f32};
use crate::{Frame, FRAME_SAMPLES, SAMPLE_RATE};

/// Samples per envelope block of the delay estimator (1 ms).
const BLOCK: usize = 8;
/// Envelope blocks per frame.
const BLOCKS_PER_FRAME: usize = FRAME_SAMPLES / BLOCK;
/// Samples per ms at the pipeline rate.
const SAMPLES_PER_MS: usize = (SAMPLE_RATE / 1000) as usize;
/// Longest filter accepted (512 ms); bounds CPU per call.
pub const MAX_TAPS: usize = 4096;
/// Longest bulk delay searched for (1 s).
pub const MAX_DELAY_MS: u32 = 1000;
/// Continuous double talk after which adaptation resumes (probably an echo-path change:
/// real double talk that long has normally already stopped the prompt by barge-in).
pub const MAX_DOUBLE_TALK: Duration = Duration::from_secs(2);
/// Frames a delay candidate must stay put before the filter window moves.
const DELAY_CONFIRM_FRAMES: u32 = 10;
/// Far-active frames learnt before a first lock (1 s): a few syllables are not enough.
const DELAY_MIN_FRAMES: u32 = 50;
/// How much the correlation peak must exceed the mean |correlation| to count.
const DELAY_PEAK_RATIO: f32 = 4.0;
/// Smoothing of the envelope correlation per frame (~1 s time constant).
const DELAY_SMOOTHING: f32 = 0.02;
/// IPNLMS proportionality: -1 is plain NLMS, towards 1 ever more proportionate.
const IPNLMS_ALPHA: f32 = 0.0;
/// Leak tracker: attack and release per frame, in the dB domain.
const LEAK_ATTACK: f32 = 0.3;
const LEAK_RELEASE: f32 = 0.03;
/// Lowest leak the tracker may reach; μ-law alone leaves ~-38 dB.
const LEAK_MIN_DB: f32 = -50.0;
/// Near/far power ratios kept for the echo gain median (~1.3 s of far-end speech).
const GAIN_WINDOW: usize = 64;
/// Ratios needed before the measured echo gain replaces the prior.
const GAIN_MIN_UPDATES: usize = 25;
/// Smoothing of the powers behind the divergence check (~200 ms).
const DIVERGENCE_SMOOTHING: f32 = 0.1;
/// Near/echo-estimate correlation above which a frame is "explained by the echo model".
const RHO_ECHO: f32 = 0.9;
/// Correlation with a far lag away from the learnt path that marks a frame as our own
/// signal returning at a new delay, and by how much it must beat the learnt lag.
const RHO_MOVED: f32 = 0.97;
const MOVED_MARGIN: f32 = 0.05;
/// Correlation below which a converged canceller sees double talk.
const RHO_DOUBLE_TALK: f32 = 0.8;
/// Leak at or below which the canceller counts as converged.
const CONVERGED_LEAK_DB: f32 = -10.0;
/// Largest echo path jump followed at once (a jitter buffer adapts by a packet or two).
const PATH_SHIFT_MAX_MS: u32 = 40;
/// Smaller moves (samples) are left to the adaptation.
const PATH_SHIFT_MIN: usize = BLOCK;
/// A frame best matched this far (samples, 5 ms) from the dominant tap is echo that moved;
/// closer, it is the spread of a hybrid's response. Jitter buffers move by 10–20 ms.
const PATH_MOVED_MIN: usize = 5 * SAMPLES_PER_MS;
/// Leak below which the floor credits the canceller enough to be worth guarding.
const TRUSTED_LEAK_DB: f32 = -1.0;
/// Share of the filter's energy a window move may cut off before the floor turns cautious.
const DROPPED_TAPS_MAX: f32 = 0.1;
/// Power below which numbers are reported as this many dBFS.
const SILENT_DBFS: f32 = -120.0;

/// A configuration [`EchoGuard::new`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum EchoConfigError {
    /// `filter_taps` outside `1..=MAX_TAPS`.
    #[error("filter_taps {0} outside 1..={MAX_TAPS}")]
    Taps(usize),
    /// NLMS step size outside `(0, 1]` (stability needs < 2; above 1 only adds misadjustment).
    #[error("step_size {0} outside (0, 1]")]
    StepSize(f32),
    /// `max_delay_ms` above [`MAX_DELAY_MS`].
    #[error("max_delay_ms {0} exceeds {MAX_DELAY_MS}")]
    MaxDelay(u32),
    /// `delay_margin_ms` not shorter than the filter, which would leave no taps after it.
    #[error("delay_margin_ms {margin_ms} must be shorter than the filter ({filter_ms} ms)")]
    DelayMargin { margin_ms: u32, filter_ms: u32 },
    /// Geigel threshold outside `(0, 1]`.
    #[error("geigel_threshold {0} outside (0, 1]")]
    Geigel(f32),
    /// A level, margin or duration that is not finite or out of its range.
    #[error("{field} = {value} out of range")]
    Level { field: &'static str, value: f32 },
}

/// Echo guard parameters; the defaults suit PSTN hybrids behind a SIP trunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoConfig {
    /// NLMS taps (8 per ms). 1024 covers 128 ms of dispersion after the bulk delay.
    pub filter_taps: usize,
    /// NLMS step size μ: larger converges faster, smaller leaves less misadjustment.
    pub step_size: f32,
    /// Largest echo delay searched for.
    pub max_delay_ms: u32,
    /// The filter window starts this far before the estimated delay, so estimation error
    /// and hybrid ringing stay inside it.
    pub delay_margin_ms: u32,
    /// Geigel double talk when near peak > threshold × far peak. 1.0 (ERL ≥ 0 dB): a
    /// loopback returns our own peaks; 0.5 (ERL ≥ 6 dB) would freeze its filter.
    pub geigel_threshold: f32,
    /// Adaptation stays frozen this long after double talk was last seen.
    pub double_talk_hangover_ms: u32,
    /// Headroom of the echo floor above the estimated residual echo. It absorbs the
    /// misalignment of the long-term echo-gain estimate (a few dB) and the spread of
    /// per-frame residuals.
    pub gate_margin_db: f32,
    /// Echo return loss assumed until one is measured: 0 dB, what a VoIP loopback
    /// returns (G.168's 6 dB holds for analogue hybrids only). Also caps the measured
    /// gain plus margin, so it is the floor's worst case.
    pub initial_echo_loss_db: f32,
    /// Far-end level (loudest 20 ms block that can echo) below which there is nothing to
    /// cancel or learn from.
    pub far_active_dbfs: f32,
}

impl Default for EchoConfig {
    fn default() -> Self {
        Self {
            filter_taps: 1024,
            step_size: 0.3,
            max_delay_ms: 400,
            delay_margin_ms: 16,
            geigel_threshold: 1.0,
            double_talk_hangover_ms: 100,
            gate_margin_db: 10.0,
            initial_echo_loss_db: 0.0,
            far_active_dbfs: -55.0,
        }
    }
}

impl EchoConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), EchoConfigError> {
        if !(1..=MAX_TAPS).contains(&self.filter_taps) {
            return Err(EchoConfigError::Taps(self.filter_taps));
        }
        let mu = self.step_size;
        if !(mu.is_finite() && mu > 0.0 && mu <= 1.0) {
            return Err(EchoConfigError::StepSize(mu));
        }
        if self.max_delay_ms > MAX_DELAY_MS {
            return Err(EchoConfigError::MaxDelay(self.max_delay_ms));
        }
        let filter_ms = (self.filter_taps / SAMPLES_PER_MS) as u32;
        if self.delay_margin_ms > 0 && self.delay_margin_ms >= filter_ms {
            return Err(EchoConfigError::DelayMargin {
                margin_ms: self.delay_margin_ms,
                filter_ms,
            });
        }
        let g = self.geigel_threshold;
        if !(g.is_finite() && g > 0.0 && g <= 1.0) {
            return Err(EchoConfigError::Geigel(g));
        }
        for (field, value, lo, hi) in [
            ("gate_margin_db", self.gate_margin_db, 0.0, 40.0),
            ("initial_echo_loss_db", self.initial_echo_loss_db, 0.0, 60.0),
            ("far_active_dbfs", self.far_active_dbfs, -100.0, 0.0),
            (
                "double_talk_hangover_ms",
                self.double_talk_hangover_ms as f32,
                0.0,
                10_000.0,
            ),
        ] {
            if !(value.is_finite() && (lo..=hi).contains(&value)) {
                return Err(EchoConfigError::Level { field, value });
            }
        }
        Ok(())
    }
}

/// What the echo guard measured on one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoStats {
    /// Echo return loss enhancement: near power over residual power on recent frames
    /// where the far end was active and the caller silent (limited by line noise when the
    /// echo is close to it).
    pub erle_db: f32,
    /// Echo return loss in use: measured long-term far over near power, or the prior.
    pub erl_db: f32,
    /// Estimated echo delay, once the estimator has locked on.
    pub delay_ms: Option<u32>,
    /// Adaptation was frozen on this tick because the caller seems to talk.
    pub double_talk: bool,
    /// Power of the cleaned frame, dB relative to full scale.
    pub residual_dbfs: f32,
    /// Echo floor for this frame: residual below it is treated as echo.
    pub floor_dbfs: f32,
    /// Residual above the echo floor: there may be caller speech in this frame.
    pub above_echo_floor: bool,
    /// Residual-to-near ratio the floor credits the canceller with (0 = no cancellation trusted).
    pub leak_db: f32,
}

impl EchoStats {
    fn initial(erl_db: f32) -> Self {
        Self {
            erle_db: 0.0,
            erl_db,
            delay_ms: None,
            double_talk: false,
            residual_dbfs: SILENT_DBFS,
            floor_dbfs: SILENT_DBFS,
            above_echo_floor: false,
            leak_db: 0.0,
        }
    }
}

/// Coarse echo delay from envelope cross-correlation; see the module docs.
#[derive(Debug)]
struct DelayEstimator {
    /// High-passed far envelopes, oldest first; the newest frame's blocks at the end.
    far_env: Vec<f32>,
    far_mean: f32,
    near_mean: f32,
    near_env: [f32; BLOCKS_PER_FRAME],
    /// Smoothed correlation per lag in blocks (ms).
    corr: Vec<f32>,
    candidate: Option<usize>,
    candidate_frames: u32,
    locked: Option<usize>,
    /// Frames learnt from since the reset.
    learnt_frames: u32,
}

impl DelayEstimator {
    fn new(max_lag_blocks: usize) -> Self {
        Self {
            far_env: vec![0.0; max_lag_blocks + BLOCKS_PER_FRAME],
            far_mean: 0.0,
            near_mean: 0.0,
            near_env: [0.0; BLOCKS_PER_FRAME],
            corr: vec![0.0; max_lag_blocks + 1],
            candidate: None,
            candidate_frames: 0,
            locked: None,
            learnt_frames: 0,
        }
    }

    fn reset(&mut self) {
        self.far_env.fill(0.0);
        self.far_mean = 0.0;
        self.near_mean = 0.0;
        self.corr.fill(0.0);
        self.candidate = None;
        self.candidate_frames = 0;
        self.locked = None;
        self.learnt_frames = 0;
    }

    /// Pushes one frame of both envelopes; always, so the far history stays aligned.
    fn push(&mut self, far: &[f32; FRAME_SAMPLES], near: &[f32; FRAME_SAMPLES]) {
        let n = self.far_env.len();
        self.far_env.copy_within(BLOCKS_PER_FRAME.., 0);
        let dst = self.far_env[n - BLOCKS_PER_FRAME..].iter_mut();
        for ((d, f), (ne, x)) in dst
            .zip(far.chunks_exact(BLOCK))
            .zip(self.near_env.iter_mut().zip(near.chunks_exact(BLOCK)))
        {
            let fe = f.iter().map(|v| v.abs()).sum::<f32>() / BLOCK as f32;
            let nv = x.iter().map(|v| v.abs()).sum::<f32>() / BLOCK as f32;
            // Slow mean removal: the correlation should see syllable rhythm, not level.
            self.far_mean += 0.01 * (fe - self.far_mean);
            self.near_mean += 0.01 * (nv - self.near_mean);
            *d = fe - self.far_mean;
            *ne = nv - self.near_mean;
        }
    }

    /// The echo path moved by `blocks` (ms): carry the learnt correlation along, so the
    /// old peak does not pull the window back while the new one builds up.
    fn shift(&mut self, blocks: isize) {
        let n = self.corr.len();
        let d = blocks.unsigned_abs().min(n);
        if blocks > 0 {
            self.corr.copy_within(0..n - d, d);
            self.corr[..d].fill(0.0);
        } else {
            self.corr.copy_within(d.., 0);
            self.corr[n - d..].fill(0.0);
        }
        let moved = |l: usize| l.saturating_add_signed(blocks).min(n - 1);
        self.locked = self.locked.map(moved);
        self.candidate = self.candidate.map(moved);
    }

    /// The canceller found the echo at `blocks` (ms): lock there and let the correlation
    /// build up around it, as after a path shift.
    fn relock(&mut self, blocks: usize) {
        if let Some(locked) = self.locked {
            self.shift(blocks as isize - locked as isize);
        }
        self.locked = Some(blocks.min(self.corr.len() - 1));
        self.candidate = self.locked;
    }

    /// Updates the correlation with the frame just pushed and maybe moves the lock.
    /// Returns the newly locked delay in samples when it changed.
    fn learn(&mut self) -> Option<usize> {
        // Each frame contributes a normalised correlation, so a loud caller (uncorrelated
        // with the far end) adds noise of the same size as the echo's consistent peak
        // rather than swamping it.
        let near_energy: f32 = self.near_env.iter().map(|v| v * v).sum();
        let far_energy = self.far_env.iter().map(|v| v * v).sum::<f32>()
            / (self.far_env.len() / BLOCKS_PER_FRAME) as f32;
        let scale = 1.0 / ((near_energy * far_energy).sqrt() + 1e-9);
        let base = self.far_env.len() - BLOCKS_PER_FRAME;
        for (lag, c) in self.corr.iter_mut().enumerate() {
            let far = &self.far_env[base - lag..base - lag + BLOCKS_PER_FRAME];
            let x: f32 = far
                .iter()
                .zip(self.near_env.iter())
                .map(|(a, b)| a * b)
                .sum();
            *c += DELAY_SMOOTHING * (x * scale - *c);
        }
        self.learnt_frames = self.learnt_frames.saturating_add(1);
        if self.learnt_frames < DELAY_MIN_FRAMES {
            return None;
        }
        let (peak_lag, peak) =
            self.corr
                .iter()
                .copied()
                .enumerate()
                .fold(
                    (0, f32::MIN),
                    |best, (i, v)| if v > best.1 { (i, v) } else { best },
                );
        let mean_abs = self.corr.iter().map(|v| v.abs()).sum::<f32>() / self.corr.len() as f32;
        if !(peak > 0.0 && peak > DELAY_PEAK_RATIO * mean_abs) {
            self.candidate = None;
            self.candidate_frames = 0;
            return None;
        }
        match self.candidate {
            Some(c) if c.abs_diff(peak_lag) <= 2 => self.candidate_frames += 1,
            _ => {
                self.candidate = Some(peak_lag);
                self.candidate_frames = 1;
            }
        }
        if self.candidate_frames < DELAY_CONFIRM_FRAMES {
            return None;
        }
        let moved = match self.locked {
            None => true,
            Some(l) => l.abs_diff(peak_lag) > 2,
        };
        if moved {
            self.locked = Some(peak_lag);
            Some(peak_lag * BLOCK)
        } else {
            None
        }
    }
}

/// What [`EchoGuard::check_path`] made of a frame the taps do not explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathCheck {
    /// The echo path shifted and the taps moved with it.
    Followed,
    /// The frame is our signal at another lag, but the taps could not follow.
    Moved,
    /// No single far lag explains the frame: the caller, noise, or a dispersive path.
    NotEcho,
}

/// Per-call line-echo canceller and echo floor; see the module docs.
#[derive(Debug)]
pub struct EchoGuard {
    config: EchoConfig,
    /// Far-end samples (±1.0), oldest first; the newest frame occupies the last 160.
    hist: Vec<f32>,
    /// `weights[j]` multiplies `hist[start + j]`: the last tap is the shortest lag.
    weights: Vec<f32>,
    /// Per-tap IPNLMS step gains, recomputed each adapting frame.
    gains: Vec<f32>,
    /// Samples between a near sample and the shortest lag the filter covers.
    bulk: usize,
    max_bulk: usize,
    delay: DelayEstimator,
    hangover_frames: u32,
    double_talk_frames: u32,
    /// Consecutive frames with an active far reference.
    far_active_frames: u32,
    /// Consecutive all-zero far frames.
    far_silent_frames: u32,
    /// Scratch for the path search: near-frame correlation per far lag.
    lag_dots: Vec<f32>,
    /// Recent near-over-far power ratios (dB) behind the echo return loss; a ring.
    gain_log: [f32; GAIN_WINDOW],
    gain_len: usize,
    gain_pos: usize,
    /// Median of `gain_log`, dB (echo gain, i.e. minus the ERL).
    gain_db: f32,
    /// Residual over near power on echo-explained frames, dB.
    leak_db: f32,
    /// Near and residual powers behind the reported ERLE.
    erle_near: f32,
    erle_err: f32,
    /// Near and pre-adaptation residual powers behind the divergence check.
    watch_near: f32,
    watch_err: f32,
    stats: EchoStats,
}

impl EchoGuard {
    /// Allocates all buffers for the configured filter and delay range.
    pub fn new(config: EchoConfig) -> Result<Self, EchoConfigError> {
        config.validate()?;
        let max_bulk = config.max_delay_ms as usize * SAMPLES_PER_MS;
        let hist_len = max_bulk + config.filter_taps + FRAME_SAMPLES;
        Ok(Self {
            config,
            hist: vec![0.0; hist_len],
            weights: vec![0.0; config.filter_taps],
            gains: vec![0.0; config.filter_taps],
            bulk: 0,
            max_bulk,
            delay: DelayEstimator::new(config.max_delay_ms as usize),
            hangover_frames: 0,
            double_talk_frames: 0,
            far_active_frames: 0,
            far_silent_frames: 0,
            lag_dots: vec![0.0; 2 * PATH_SHIFT_MAX_MS as usize * SAMPLES_PER_MS + 1],
            gain_log: [0.0; GAIN_WINDOW],
            gain_len: 0,
            gain_pos: 0,
            gain_db: -config.initial_echo_loss_db,
            leak_db: 0.0,
            erle_near: 0.0,
            erle_err: 0.0,
            watch_near: 0.0,
            watch_err: 0.0,
            stats: EchoStats::initial(config.initial_echo_loss_db),
        })
    }

    /// Active configuration.
    pub fn config(&self) -> &EchoConfig {
        &self.config
    }

    /// Forgets the echo path (new call, or a transfer to another line).
    pub fn reset(&mut self) {
        self.hist.fill(0.0);
        self.bulk = 0;
        self.delay.reset();
        self.hangover_frames = 0;
        self.double_talk_frames = 0;
        self.far_active_frames = 0;
        self.far_silent_frames = 0;
        self.gain_len = 0;
        self.gain_pos = 0;
        self.gain_db = -self.config.initial_echo_loss_db;
        self.erle_near = 0.0;
        self.erle_err = 0.0;
        self.forget_filter();
        self.stats = EchoStats::initial(self.config.initial_echo_loss_db);
    }

    /// Statistics of the last tick.
    pub fn stats(&self) -> EchoStats {
        self.stats
    }

    /// Shortest echo lag currently covered by the filter, in samples.
    pub fn bulk_delay_samples(&self) -> usize {
        self.bulk
    }

    /// Drops the learnt taps and everything that trusted them.
    fn forget_filter(&mut self) {
        self.weights.fill(0.0);
        self.leak_db = 0.0;
        self.watch_near = 0.0;
        self.watch_err = 0.0;
    }

    fn gain_measured(&self) -> bool {
        self.gain_len >= GAIN_MIN_UPDATES
    }

    /// Echo gain (dB, ≤ 0 normally) the floor assumes before cancellation: the measured
    /// one plus the margin, but never more than the worst-case prior.
    fn echo_bound_db(&self) -> f32 {
        let prior = -self.config.initial_echo_loss_db;
        if self.gain_measured() {
            (self.gain_db + self.config.gate_margin_db).min(prior)
        } else {
            prior
        }
    }

    fn record_gain(&mut self, ratio_db: f32) {
        if let Some(slot) = self.gain_log.get_mut(self.gain_pos) {
            *slot = ratio_db;
        }
        self.gain_pos = (self.gain_pos + 1) % GAIN_WINDOW;
        self.gain_len = (self.gain_len + 1).min(GAIN_WINDOW);
        let mut scratch = [0.0f32; GAIN_WINDOW];
        let n = self.gain_len;
        scratch[..n].copy_from_slice(&self.gain_log[..n]);
        let (_, median, _) = scratch[..n].select_nth_unstable_by(n / 2, f32::total_cmp);
        self.gain_db = *median;
    }

    /// One 20 ms tick: `far` is what we sent, `near` what we received in the same tick;
    /// the echo-cancelled near frame is written to `out`.
    pub fn process(&mut self, far: &Frame, near: &Frame, out: &mut Frame) -> EchoStats {
        let mut far_f = [0.0f32; FRAME_SAMPLES];
        let mut near_f = [0.0f32; FRAME_SAMPLES];
        for (d, &s) in far_f.iter_mut().zip(far.iter()) {
            *d = i16_to_f32(s);
        }
        for (d, &s) in near_f.iter_mut().zip(near.iter()) {
            *d = i16_to_f32(s);
        }
        let h = self.hist.len();
        self.far_silent_frames = if far.iter().all(|&s| s == 0) {
            self.far_silent_frames.saturating_add(1)
        } else {
            0
        };
        // Nothing sent for longer than the history reaches back (no prompt, or the guard
        // is off and sees silence as its reference): the history is all zeros, so shifting
        // it and scanning it for peaks would only find zeros. Most of a call is like this.
        let hist_silent = self.far_silent_frames as usize * FRAME_SAMPLES >= h;
        if !hist_silent {
            self.hist.copy_within(FRAME_SAMPLES.., 0);
            self.hist[h - FRAME_SAMPLES..].copy_from_slice(&far_f);
        }
        self.delay.push(&far_f, &near_f);

        let taps = self.weights.len();
        // Far samples that can echo into this frame: lags bulk .. bulk + taps once the delay
        // is known, anything in the search range before that.
        let span = if hist_silent {
            &[]
        } else if self.delay.locked.is_some() {
            let span_start = h - FRAME_SAMPLES - self.bulk - taps + 1;
            &self.hist[span_start..h - self.bulk]
        } else {
            &self.hist[..]
        };
        let far_peak = span.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let far_ref = loudest_frame_power(span);
        let active_power = db_to_power(self.config.far_active_dbfs);
        let far_active = far_ref > active_power;
        self.far_active_frames = if far_active {
            self.far_active_frames.saturating_add(1)
        } else {
            0
        };
        // Far power that echoes into this very frame when the delay is known; the frame
        // just sent otherwise (misaligned, but its ratio to the near power scatters
        // symmetrically around the echo gain, which the median absorbs).
        let far_pow = match self.delay.locked {
            _ if hist_silent => 0.0,
            Some(blocks) => {
                let d = (blocks * BLOCK).min(h - FRAME_SAMPLES);
                mean_power(&self.hist[h - FRAME_SAMPLES - d..h - d])
            }
            None => mean_power(&far_f),
        };
        let near_pow = mean_power(&near_f);
        let near_peak = near_f.iter().fold(0.0f32, |m, v| m.max(v.abs()));

        // Echo estimate with the current taps, before deciding whether to learn. Exactly
        // zero when nothing was sent during the filter's span (no prompt playing), which
        // makes the listening-only parts of a call nearly free.
        let mut y = [0.0f32; FRAME_SAMPLES];
        if far_peak > 0.0 {
            predict_frame(&self.weights, &self.hist, self.window_start(0), &mut y);
        }
        let (mut rho, mut prior_err_pow) = fit(&near_f, &y);

        // Only a floor that credits the canceller (leak below 0 dB) can be fooled by an echo
        // the taps no longer explain.
        let mut path_moved = false;
        if self.leak_db < TRUSTED_LEAK_DB && far_active && rho < RHO_ECHO && near_pow > active_power
        {
            match self.check_path(&near_f, rho, &mut y) {
                PathCheck::Followed => (rho, prior_err_pow) = fit(&near_f, &y),
                PathCheck::Moved => {
                    // Our own signal at a lag the taps do not model: echo, and the cancellation
                    // credited so far is void until the filter has re-learnt.
                    path_moved = true;
                    self.leak_db = 0.0;
                }
                PathCheck::NotEcho => {}
            }
        }
        let converged = self.leak_db <= CONVERGED_LEAK_DB;
        let geigel = !path_moved && near_peak > self.config.geigel_threshold * far_peak;
        // More near power than the echo could have: the caller talks.
        let loud = !path_moved
            && self.gain_measured()
            && near_pow > far_ref * db_to_power(self.gain_db + self.config.gate_margin_db);
        // A converged canceller explains echo-only frames almost fully; a poorly explained
        // frame holds something else (or nothing worth learning from).
        let incoherent = converged && rho < RHO_DOUBLE_TALK;
        let raw_dt = far_active && (geigel || loud || incoherent);
        if raw_dt {
            self.hangover_frames = frames_for_ms(self.config.double_talk_hangover_ms);
        } else {
            self.hangover_frames = self.hangover_frames.saturating_sub(1);
        }
        let double_talk = raw_dt || self.hangover_frames > 0;
        self.double_talk_frames = if double_talk {
            self.double_talk_frames.saturating_add(1)
        } else {
            0
        };
        let limit = frames_for_ms(MAX_DOUBLE_TALK.as_millis() as u32);
        let stuck = self.double_talk_frames > limit;
        if self.double_talk_frames == limit + 1 {
            // Probably a new echo path: be cautious again until it is re-learnt.
            self.leak_db = 0.0;
        }
        let adapt = far_active && (!double_talk || stuck);

        let mut err_energy = 0.0f32;
        if adapt {
            self.update_gains();
            let mu = self.config.step_size;
            // Regularisation: a window at -60 dBFS already counts as silent (scaled to the
            // uniform part of the gains, as in IPNLMS).
            let delta = (1.0 - IPNLMS_ALPHA) / 2.0 * 1e-6;
            let first = self.window_start(0);
            let a = AdaptIn {
                k: &self.gains,
                hist: &self.hist,
                first,
                mu,
                delta,
            };
            err_energy = adapt_frame(&mut self.weights, &a, &near_f, out);
            if !self.weights.iter().all(|w| w.is_finite()) {
                // Cannot happen with finite input and μ ≤ 1; recover rather than emit NaN.
                self.forget_filter();
            }
        } else {
            for ((o, &d), &v) in out.iter_mut().zip(near_f.iter()).zip(y.iter()) {
                let e = d - v;
                err_energy += e * e;
                *o = f32_to_i16(e);
            }
        }
        let mut err_pow = err_energy / FRAME_SAMPLES as f32;
        if err_pow > near_pow {
            // A canceller must never add energy: whatever the taps produced here is not
            // this frame's echo.
            out.copy_from_slice(near);
            err_pow = near_pow;
        }

        if far_active {
            // Taps that keep making the signal louder learnt the caller or noise: start over.
            self.watch_near += DIVERGENCE_SMOOTHING * (near_pow - self.watch_near);
            self.watch_err += DIVERGENCE_SMOOTHING * (prior_err_pow - self.watch_err);
            if self.watch_err > 2.0 * self.watch_near && self.watch_near > 1e-9 {
                self.forget_filter();
            }
        }
        if far_active && !geigel && !incoherent && !loud {
            if let Some(lag) = self.delay.learn() {
                // The envelope correlation averages ~1 s; taps that explain this very frame know
                // where the echo is now. A loopback whose delay moved by a packet made the
                // estimator lock 20 ms past the echo, and the window moved off it (the echo then
                // looked like double talk and barged in).
                let lag = match self.main_lag() {
                    Some(main) if rho >= RHO_ECHO && main.abs_diff(lag) > 2 * BLOCK => {
                        self.delay.relock(main / BLOCK);
                        main
                    }
                    _ => lag,
                };
                self.move_window(
                    lag.saturating_sub(self.config.delay_margin_ms as usize * SAMPLES_PER_MS),
                );
            }
        }
        // Echo gain: near over far power on frames whose far side was active long enough
        // for any echo to have arrived; loud callers are excluded by Geigel, the rest by
        // the median.
        if far_active
            && !geigel
            && far_pow > active_power
            && self.far_active_frames > frames_for_ms(self.config.max_delay_ms)
        {
            // Digital silence coming back (a softphone, an all-digital trunk) is the most echo
            // loss there is, not "unknown": without this the prior (0 dB) would stay forever
            // and gate a caller who starts talking over the prompt.
            let ratio = if near_pow <= 1e-12 {
                -80.0
            } else {
                power_ratio_db(near_pow, far_pow)
            };
            self.record_gain(ratio.clamp(-80.0, 20.0));
        }
        if far_active && !double_talk {
            self.erle_near += 0.1 * (near_pow - self.erle_near);
            self.erle_err += 0.1 * (err_pow - self.erle_err);
            if rho >= RHO_ECHO {
                let leak = power_ratio_db(err_pow, near_pow).clamp(LEAK_MIN_DB, 0.0);
                let k = if leak > self.leak_db {
                    LEAK_ATTACK
                } else {
                    LEAK_RELEASE
                };
                self.leak_db += k * (leak - self.leak_db);
            }
        }
        let floor = far_ref * db_to_power(self.echo_bound_db() + self.leak_db);
        self.stats = EchoStats {
            erle_db: power_ratio_db(self.erle_near, self.erle_err),
            erl_db: if self.gain_measured() {
                -self.gain_db
            } else {
                self.config.initial_echo_loss_db
            },
            delay_ms: self
                .delay
                .locked
                .map(|blocks| (blocks * BLOCK / SAMPLES_PER_MS) as u32),
            double_talk,
            residual_dbfs: power_db(err_pow),
            floor_dbfs: power_db(floor),
            above_echo_floor: err_pow > floor,
            leak_db: self.leak_db,
        };
        self.stats
    }

    /// Index in `hist` of the oldest far sample the filter sees for near sample `i`.
    fn window_start(&self, i: usize) -> usize {
        let newest = self.hist.len() - FRAME_SAMPLES + i;
        newest + 1 - self.bulk - self.weights.len()
    }

    /// IPNLMS tap gains from the current taps: a uniform part keeps every tap learning,
    /// a proportional part lets the few taps that carry the (sparse) echo path learn
    /// fastest, so the long tail accumulates little noise.
    fn update_gains(&mut self) {
        let alpha = IPNLMS_ALPHA;
        let taps = self.weights.len() as f32;
        let l1: f32 = self.weights.iter().map(|w| w.abs()).sum();
        let uniform = (1.0 - alpha) / (2.0 * taps);
        let scale = (1.0 + alpha) / (2.0 * l1 + 1e-6);
        for (k, w) in self.gains.iter_mut().zip(self.weights.iter()) {
            *k = uniform + scale * w.abs();
        }
    }

    /// A filter that suddenly fails to explain the near frame sees either the caller or an
    /// echo path that moved (a jitter buffer adding or dropping a packet): a loopback's
    /// echo is then the same signal at another lag. Searches the far lags within
    /// ±[`PATH_SHIFT_MAX_MS`] of the dominant tap for the one that best matches the frame.
    /// If the learnt response moved there explains the frame (`ρ ≥ RHO_ECHO`, residual
    /// 6 dB down), the taps move there and the new echo estimate goes to `y`
    /// ([`PathCheck::Followed`]). If the frame is our own signal at some lag but the taps
    /// cannot follow, it is still echo ([`PathCheck::Moved`]). Caller speech passes
    /// neither check: it does not match one far lag. Without this, a jump looked like
    /// seconds of double talk with the floor still trusting the stale taps.
    fn check_path(
        &mut self,
        near: &[f32; FRAME_SAMPLES],
        rho: f32,
        y: &mut [f32; FRAME_SAMPLES],
    ) -> PathCheck {
        let taps = self.weights.len();
        let h = self.hist.len();
        let Some(main_lag) = self.main_lag() else {
            return PathCheck::NotEcho;
        };
        let reach = PATH_SHIFT_MAX_MS as usize * SAMPLES_PER_MS;
        let near_energy: f32 = near.iter().map(|v| v * v).sum();
        // Far segment at lag `l`: hist[h - FRAME_SAMPLES - l .. h - l].
        let (lo, hi) = (
            main_lag.saturating_sub(reach),
            (main_lag + reach).min(h - FRAME_SAMPLES),
        );
        // Best lag away from the current one (a candidate shift); best correlation within and
        // beyond PATH_MOVED_MIN of it.
        let mut best = (0usize, 0.0f32);
        let (mut best_here, mut best_away) = (0.0f32, 0.0f32);
        // Segment energy slides with the lag (f64: no drift over the range).
        let first_seg = &self.hist[h - FRAME_SAMPLES - lo..h - lo];
        let mut energy: f64 = first_seg.iter().map(|&v| f64::from(v * v)).sum();
        // Correlation with every lag at once (the bulk of the search, in the fast kernels).
        let dots = &mut self.lag_dots[..=hi - lo];
        lag_dots(&self.hist[..h - lo], near, dots);
        for (lag, &d) in (lo..=hi).zip(dots.iter()) {
            if lag > lo {
                let (older, newer) = (self.hist[h - FRAME_SAMPLES - lag], self.hist[h - lag]);
                energy += f64::from(older * older) - f64::from(newer * newer);
            }
            if energy <= 1e-9 {
                continue;
            }
            let c = d.abs() / (energy as f32 * near_energy).sqrt();
            let off = lag.abs_diff(main_lag);
            if off < PATH_MOVED_MIN {
                best_here = best_here.max(c);
            } else {
                best_away = best_away.max(c);
            }
            if off >= PATH_SHIFT_MIN && c > best.1 {
                best = (lag, c);
            }
        }
        // Matching best around where the taps point is a filter still converging (or a
        // dispersive hybrid), not a move. Voiced speech is periodic: one 20 ms frame matches
        // itself a pitch period away at ρ ≈ 0.9–0.97, so only a near-exact copy counts.
        let not_followed = if best_away >= RHO_MOVED && best_away > best_here + MOVED_MARGIN {
            PathCheck::Moved
        } else {
            PathCheck::NotEcho
        };
        if best.1 <= 0.0 {
            return not_followed;
        }
        let shift = best.0 as isize - main_lag as isize;
        // Taps moved by `shift` read hist[start(i) - shift ..][..taps]; stay inside hist.
        let first = self.window_start(0) as isize - shift;
        let last = self.window_start(FRAME_SAMPLES - 1) as isize - shift + taps as isize;
        if first < 0 || last > h as isize {
            return not_followed;
        }
        let mut moved = [0.0f32; FRAME_SAMPLES];
        predict_frame(&self.weights, &self.hist, first as usize, &mut moved);
        let (moved_rho, moved_err) = fit(near, &moved);
        let near_pow = near_energy / FRAME_SAMPLES as f32;
        if moved_rho < RHO_ECHO || moved_rho < rho + 0.1 || moved_err > 0.25 * near_pow {
            return not_followed;
        }
        self.shift_path(shift);
        *y = moved;
        PathCheck::Followed
    }

    /// Every tap's lag grows by `shift` samples: the window moves when it can, the taps
    /// inside it otherwise. The delay estimator follows.
    fn shift_path(&mut self, shift: isize) {
        let want = self.bulk as isize + shift;
        let bulk = want.clamp(0, self.max_bulk as isize);
        // What the window could not absorb moves the taps: tap j goes to j - rest.
        let rest = want - bulk;
        let taps = self.weights.len();
        let d = rest.unsigned_abs().min(taps);
        if rest > 0 {
            self.weights.copy_within(d.., 0);
            self.weights[taps - d..].fill(0.0);
        } else if rest < 0 {
            self.weights.copy_within(0..taps - d, d);
            self.weights[..d].fill(0.0);
        }
        self.bulk = bulk as usize;
        self.delay
            .shift((shift as f32 / BLOCK as f32).round() as isize);
    }

    /// Lag (samples) of the dominant tap, if the filter learnt anything.
    fn main_lag(&self) -> Option<usize> {
        let (peak_tap, peak) = self
            .weights
            .iter()
            .map(|w| w.abs())
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        (peak > 0.0).then(|| self.bulk + self.weights.len() - 1 - peak_tap)
    }

    /// Moves the filter window to a new bulk delay, carrying the learnt taps along. Taps
    /// that fall out of the window take part of the learnt echo with them: if that part is
    /// noticeable, the floor stops crediting the canceller until it has re-learnt.
    fn move_window(&mut self, bulk: usize) {
        let bulk = bulk.min(self.max_bulk);
        let taps = self.weights.len();
        let later = bulk > self.bulk;
        let d = bulk.abs_diff(self.bulk).min(taps);
        // A later window drops the shortest lags (the last taps), an earlier one the longest.
        let dropped_range = if later { taps - d..taps } else { 0..d };
        let total: f32 = self.weights.iter().map(|w| w * w).sum();
        let dropped: f32 = self.weights[dropped_range].iter().map(|w| w * w).sum();
        if later {
            self.weights.copy_within(0..taps - d, d);
            self.weights[..d].fill(0.0);
        } else {
            self.weights.copy_within(d.., 0);
            self.weights[taps - d..].fill(0.0);
        }
        self.bulk = bulk;
        if dropped > DROPPED_TAPS_MAX * total {
            self.leak_db = 0.0;
        }
    }
}

/// Echo estimate for each near sample of a frame: `y[i] = Σ w·hist[first + i..][..taps]`.
fn predict_frame(w: &[f32], hist: &[f32], first: usize, y: &mut [f32; FRAME_SAMPLES]) {
    #[cfg(target_arch = "x86_64")]
    if fast_kernels() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { predict_frame_avx2(w, hist, first, y) };
    }
    predict_frame_impl::<false>(w, hist, first, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn predict_frame_avx2(w: &[f32], hist: &[f32], first: usize, y: &mut [f32; FRAME_SAMPLES]) {
    predict_frame_impl::<true>(w, hist, first, y)
}

#[inline(always)]
fn predict_frame_impl<const F: bool>(
    w: &[f32],
    hist: &[f32],
    first: usize,
    y: &mut [f32; FRAME_SAMPLES],
) {
    let taps = w.len();
    for (i, v) in y.iter_mut().enumerate() {
        if let Some(x) = hist.get(first + i..first + i + taps) {
            *v = dot::<F>(x, w);
        }
    }
}

/// `out[k] = Σ near · far[end - 160 - k ..][..160]`: the near frame's correlation with the far
/// history ending `k` samples before `far`'s end, for every `k` in `out`.
fn lag_dots(far: &[f32], near: &[f32; FRAME_SAMPLES], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if fast_kernels() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { lag_dots_avx2(far, near, out) };
    }
    lag_dots_impl::<false>(far, near, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn lag_dots_avx2(far: &[f32], near: &[f32; FRAME_SAMPLES], out: &mut [f32]) {
    lag_dots_impl::<true>(far, near, out)
}

#[inline(always)]
fn lag_dots_impl<const F: bool>(far: &[f32], near: &[f32; FRAME_SAMPLES], out: &mut [f32]) {
    let n = far.len();
    for (k, o) in out.iter_mut().enumerate() {
        *o = match n.checked_sub(FRAME_SAMPLES + k) {
            Some(start) => dot::<F>(&far[start..start + FRAME_SAMPLES], near),
            None => 0.0,
        };
    }
}

/// What one frame of adaptation reads besides the taps: per-tap gains, the far history, the
/// index in it of the first near sample's window, step size and regularisation.
struct AdaptIn<'a> {
    k: &'a [f32],
    hist: &'a [f32],
    first: usize,
    mu: f32,
    delta: f32,
}

/// Whether the AVX2 + FMA builds of the kernels can run (release builds on CPUs that have them).
#[cfg(target_arch = "x86_64")]
fn fast_kernels() -> bool {
    !cfg!(debug_assertions)
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
}

/// One frame of IPNLMS, sample by sample: a-priori error, tap update, then the next
/// sample's output and normaliser with the updated taps. Writes the error (the cancelled
/// near frame) to `out` and returns its energy.
fn adapt_frame(
    w: &mut [f32],
    a: &AdaptIn<'_>,
    near: &[f32; FRAME_SAMPLES],
    out: &mut Frame,
) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if fast_kernels() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { adapt_frame_avx2(w, a, near, out) };
    }
    adapt_frame_impl::<false>(w, a, near, out)
}

/// [`adapt_frame`] compiled for AVX2 + FMA: 8-wide lanes (the x86-64 baseline has 4) and
/// fused multiply-adds, ~1.6x faster per frame here. Sums differ from the baseline's in the
/// last bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn adapt_frame_avx2(
    w: &mut [f32],
    a: &AdaptIn<'_>,
    near: &[f32; FRAME_SAMPLES],
    out: &mut Frame,
) -> f32 {
    adapt_frame_impl::<true>(w, a, near, out)
}

#[inline(always)]
fn adapt_frame_impl<const F: bool>(
    w: &mut [f32],
    a: &AdaptIn<'_>,
    near: &[f32; FRAME_SAMPLES],
    out: &mut Frame,
) -> f32 {
    let AdaptIn {
        k,
        hist,
        first,
        mu,
        delta,
    } = *a;
    let taps = w.len();
    let window = |i: usize| hist.get(first + i..first + i + taps).unwrap_or(&[]);
    let mut err_energy = 0.0f32;
    let (mut y, mut xkx) = output_and_norm::<F>(w, k, window(0));
    for (i, (o, &d)) in out.iter_mut().zip(near.iter()).enumerate() {
        let e = d - y;
        err_energy += e * e;
        *o = f32_to_i16(e);
        let g = mu * e / (xkx + delta);
        let x = window(i);
        if i + 1 < FRAME_SAMPLES {
            (y, xkx) = update_and_next::<F>(w, k, x, window(i + 1), g);
        } else {
            update::<F>(w, k, x, g);
        }
    }
    err_energy
}

// Filter kernels. A plain `f32` sum is one sequential dependency chain that the compiler
// may not reorder, so the optimised reductions keep `LANES` independent accumulators it
// can vectorise (~4x faster in release). Unoptimised builds run the plain loops instead,
// which are several times faster there; `kernels_agree` checks both against each other.

const LANES: usize = 32;

/// `a·b + c`: one fused instruction in the FMA build (`F`), two roundings otherwise.
#[inline(always)]
fn madd<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `Σ a·b`, lane-split.
#[inline(always)]
fn dot_lanes<const F: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let ((a, a_rest), (b, b_rest)) = (a[..n].as_chunks::<LANES>(), b[..n].as_chunks::<LANES>());
    let mut acc = [0.0f32; LANES];
    for (x, y) in a.iter().zip(b) {
        for l in 0..LANES {
            acc[l] = madd::<F>(x[l], y[l], acc[l]);
        }
    }
    let rest: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + rest
}

/// `Σ k·x²`, lane-split.
#[inline(always)]
fn weighted_energy_lanes<const F: bool>(k: &[f32], x: &[f32]) -> f32 {
    let n = k.len().min(x.len());
    let ((k, k_rest), (x, x_rest)) = (k[..n].as_chunks::<LANES>(), x[..n].as_chunks::<LANES>());
    let mut acc = [0.0f32; LANES];
    for (k, x) in k.iter().zip(x) {
        for l in 0..LANES {
            acc[l] = madd::<F>(k[l], x[l] * x[l], acc[l]);
        }
    }
    let rest: f32 = k_rest.iter().zip(x_rest).map(|(k, x)| k * x * x).sum();
    acc.iter().sum::<f32>() + rest
}

#[inline(always)]
fn dot_plain(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[inline(always)]
fn weighted_energy_plain(k: &[f32], x: &[f32]) -> f32 {
    k.iter().zip(x).map(|(k, x)| k * x * x).sum()
}

/// `Σ a·b`.
#[inline(always)]
fn dot<const F: bool>(a: &[f32], b: &[f32]) -> f32 {
    if cfg!(debug_assertions) {
        dot_plain(a, b)
    } else {
        dot_lanes::<F>(a, b)
    }
}

/// `Σ k·x²`.
#[inline(always)]
fn weighted_energy<const F: bool>(k: &[f32], x: &[f32]) -> f32 {
    if cfg!(debug_assertions) {
        weighted_energy_plain(k, x)
    } else {
        weighted_energy_lanes::<F>(k, x)
    }
}

/// `(Σ w·x, Σ k·x²)`: filter output and IPNLMS normaliser.
#[inline(always)]
fn output_and_norm<const F: bool>(w: &[f32], k: &[f32], x: &[f32]) -> (f32, f32) {
    (dot::<F>(w, x), weighted_energy::<F>(k, x))
}

/// `w += g·k·x`.
#[inline(always)]
fn update<const F: bool>(w: &mut [f32], k: &[f32], x: &[f32], g: f32) {
    for ((w, &k), &x) in w.iter_mut().zip(k).zip(x) {
        *w = madd::<F>(g * k, x, *w);
    }
}

/// `w += g·k·x`, then [`output_and_norm`] of the updated taps on `next`. Two passes
/// over data that sits in L1 vectorise far better than one fused loop.
#[inline(always)]
fn update_and_next<const F: bool>(
    w: &mut [f32],
    k: &[f32],
    x: &[f32],
    next: &[f32],
    g: f32,
) -> (f32, f32) {
    update::<F>(w, k, x, g);
    output_and_norm::<F>(w, k, next)
}

/// How well `y` explains `near`: normalised correlation and residual power `near - y`.
fn fit(near: &[f32; FRAME_SAMPLES], y: &[f32; FRAME_SAMPLES]) -> (f32, f32) {
    let (mut sdd, mut syy, mut sdy, mut see) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
    for (&d, &v) in near.iter().zip(y.iter()) {
        sdd += d * d;
        syy += v * v;
        sdy += d * v;
        see += (d - v) * (d - v);
    }
    let rho = if sdd > 1e-12 && syy > 1e-12 {
        sdy / (sdd * syy).sqrt()
    } else {
        0.0
    };
    (rho, see / FRAME_SAMPLES as f32)
}

/// Mean power of the loudest 20 ms window of `x`, windows 1 ms apart. Frame-aligned
/// blocks split the echoed frame and under-state it by up to 3 dB, which matters when
/// the echo is as loud as what we sent (a loopback).
fn loudest_frame_power(x: &[f32]) -> f32 {
    let mut ring = [0.0f32; BLOCKS_PER_FRAME];
    let (mut sum, mut best) = (0.0f32, 0.0f32);
    for (i, b) in x.chunks(BLOCK).enumerate() {
        let e: f32 = b.iter().map(|v| v * v).sum();
        let slot = &mut ring[i % BLOCKS_PER_FRAME];
        sum += e - *slot;
        *slot = e;
        best = best.max(sum);
    }
    best / FRAME_SAMPLES as f32
}

fn mean_power(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32
}

fn frames_for_ms(ms: u32) -> u32 {
    ms.div_ceil(20)
}

fn db_to_power(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

fn power_db(p: f32) -> f32 {
    if p > 1e-12 {
        10.0 * p.log10()
    } else {
        SILENT_DBFS
    }
}

/// `10·log10(a / b)`, 0 dB when either side is silent.
fn power_ratio_db(a: f32, b: f32) -> f32 {
    if a > 1e-12 && b > 1e-12 {
        10.0 * (a / b).log10()
    } else {
        0.0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::resample::alloc_probe::allocations_in;

    /// Deterministic white-ish noise (xorshift), amplitude `amp` of full scale.
    pub(crate) fn noise(n: usize, amp: f32, seed: u64) -> Vec<i16> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                (u * amp * 32767.0) as i16
            })
            .collect()
    }

    /// A hybrid echo: pure delay plus a short dispersive response, scaled to `loss_db`
    /// below the far signal (for white input).
    pub(crate) fn echo_path(far: &[i16], delay_ms: usize, loss_db: f32) -> Vec<f32> {
        let h = [0.8f32, 0.45, -0.3, 0.2, -0.1, 0.05];
        let norm = h.iter().map(|v| v * v).sum::<f32>().sqrt();
        let g = 10f32.powf(-loss_db / 20.0) / norm;
        let d = delay_ms * SAMPLES_PER_MS;
        (0..far.len())
            .map(|n| {
                h.iter()
                    .enumerate()
                    .filter_map(|(k, &c)| n.checked_sub(d + k).map(|i| c * f32::from(far[i])))
                    .sum::<f32>()
                    * g
            })
            .collect()
    }

    pub(crate) fn to_frames(x: &[i16]) -> Vec<Frame> {
        x.chunks_exact(FRAME_SAMPLES)
            .map(|c| {
                let mut f = [0i16; FRAME_SAMPLES];
                f.copy_from_slice(c);
                f
            })
            .collect()
    }

    fn pcm(x: &[f32]) -> Vec<i16> {
        x.iter()
            .map(|&v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    /// Runs the guard; returns the stats of every tick.
    fn drive(g: &mut EchoGuard, far: &[i16], near: &[i16]) -> Vec<EchoStats> {
        let mut out = [0i16; FRAME_SAMPLES];
        to_frames(far)
            .iter()
            .zip(to_frames(near).iter())
            .map(|(f, n)| g.process(f, n, &mut out))
            .collect()
    }

    #[test]
    fn converges_and_locks_delay_across_the_delay_range() {
        for delay in [20usize, 120, 300] {
            let far = noise(8000 * 4, 0.1, 7);
            let near = pcm(&echo_path(&far, delay, 15.0));
            let mut g = EchoGuard::new(EchoConfig::default()).unwrap();
            let stats = drive(&mut g, &far, &near);
            let last = stats.last().unwrap();
            assert!(last.erle_db > 25.0, "{delay} ms: ERLE {}", last.erle_db);
            let est = last.delay_ms.expect("delay locked");
            assert!(
                est.abs_diff(delay as u32) <= 2,
                "{delay} ms: estimated {est}"
            );
            assert!((last.erl_db - 15.0).abs() < 2.0, "ERL {}", last.erl_db);
            assert!(!last.double_talk);
            // The filter window starts the margin before the echo.
            assert_eq!(
                g.bulk_delay_samples(),
                (est as usize).saturating_sub(16) * SAMPLES_PER_MS
            );
        }
    }

    #[test]
    fn double_talk_freezes_adaptation_and_keeps_the_filter() {
        let far = noise(8000 * 6, 0.1, 11);
        let mut near = echo_path(&far, 120, 15.0);
        // Seconds 3..4: the caller talks loudly (independent signal).
        let talk = noise(8000, 0.15, 99);
        for (n, t) in near[8000 * 3..8000 * 4].iter_mut().zip(talk.iter()) {
            *n += f32::from(*t);
        }
        let near = pcm(&near);
        let mut g = EchoGuard::new(EchoConfig::default()).unwrap();
        let stats = drive(&mut g, &far, &near);
        let talk_frames = &stats[150..200];
        let flagged = talk_frames.iter().filter(|s| s.double_talk).count();
        assert!(flagged >= 48, "double talk on {flagged}/50 frames");
        assert!(talk_frames.iter().all(|s| s.above_echo_floor));
        // Right after the talk (plus hangover) the echo is still cancelled: no divergence.
        let after = &stats[206..220];
        assert!(after.iter().all(|s| !s.above_echo_floor), "{after:?}");
        let before_db = stats[149].residual_dbfs;
        let after_db = stats[210].residual_dbfs;
        assert!(
            after_db < before_db + 6.0,
            "residual {before_db} -> {after_db}"
        );
    }

    #[test]
    fn a_line_returning_digital_silence_has_no_echo_and_hears_a_quiet_caller() {
        // A softphone sends exact zeros while our prompt plays; the caller starts at 3 s.
        let far = noise(8000 * 4, 0.3, 7);
        let mut near = vec![0i16; 8000 * 3];
        near.extend(noise(8000, 0.02, 9));
        let mut g = EchoGuard::new(EchoConfig::default()).unwrap();
        let stats = drive(&mut g, &far, &near);
        let at_3s = &stats[149];
        assert!(at_3s.erl_db >= 60.0, "ERL {} dB", at_3s.erl_db);
        // 23 dB below the prompt, still clearly the caller, for the half second a barge-in
        // decision needs (a caller talking over a prompt for longer moves the median gain).
        assert!(stats[151..176].iter().all(|s| s.above_echo_floor));
    }

    #[test]
    fn echo_stays_below_floor_and_caller_rises_above_it() {
        let far = noise(8000 * 4, 0.1, 3);
        let mut near = echo_path(&far, 80, 20.0);
        // A quiet caller, 10 dB under the far level, in the last second.
        let talk = noise(8000, 0.03, 5);
        for (n, t) in near[8000 * 3..].iter_mut().zip(talk.iter()) {
            *n += f32::from(*t);
        }
        let near = pcm(&near);
        let mut g = EchoGuard::new(EchoConfig::default()).unwrap();
        let stats = drive(&mut g, &far, &near);
        let echo_only_above = stats[..150].iter().filter(|s| s.above_echo_floor).count();
        assert!(
            echo_only_above <= 3,
            "echo above floor on {echo_only_above} frames (convergence)"
        );
        assert!(stats[20..150].iter().all(|s| !s.above_echo_floor));
        assert!(stats[151..].iter().all(|s| s.above_echo_floor));
    }

    #[test]
    fn loopback_is_echo_from_the_first_frame_and_a_delay_jump_is_followed_at_once() {
        // `sipp -rtp_echo`: our exact samples back at 0 dB, 40 ms late, 60 ms from 3 s on
        // (the jitter buffer grew by a packet).
        let far = noise(8000 * 5, 0.1, 21);
        let jump = 8000 * 3;
        let near: Vec<i16> = (0..far.len())
            .map(|n| {
                let d = if n < jump { 40 } else { 60 } * SAMPLES_PER_MS;
                n.checked_sub(d).map_or(0, |i| far[i])
            })
            .collect();
        let mut g = EchoGuard::new(EchoConfig::default()).unwrap();
        let stats = drive(&mut g, &far, &near);
        let above: Vec<usize> = (0..stats.len())
            .filter(|&i| stats[i].above_echo_floor)
            .collect();
        assert!(above.is_empty(), "echo above the floor on frames {above:?}");
        assert!(stats.iter().all(|s| !s.double_talk));
        let at = jump / FRAME_SAMPLES;
        assert_eq!(stats[at - 1].delay_ms, Some(40));
        assert!(stats[at..].iter().all(|s| s.delay_ms == Some(60)));
        assert!(stats[at - 1].erle_db > 40.0, "{:?}", stats[at - 1]);
        assert!(stats[at + 5].residual_dbfs < stats[at - 1].residual_dbfs + 6.0);
    }

    #[test]
    fn without_far_signal_near_passes_through_unchanged() {
        let near = noise(8000, 0.2, 1);
        let far = vec![0i16; near.len()];
        let mut g = EchoGuard::new(EchoConfig::default()).unwrap();
        let mut out = [0i16; FRAME_SAMPLES];
        for (f, n) in to_frames(&far).iter().zip(to_frames(&near).iter()) {
            let s = g.process(f, n, &mut out);
            assert_eq!(&out, n);
            assert!(s.above_echo_floor);
            assert!(!s.double_talk);
        }
    }

    #[test]
    fn reset_forgets_the_echo_path() {
        let far = noise(8000 * 3, 0.1, 2);
        let near = pcm(&echo_path(&far, 120, 15.0));
        let mut g = EchoGuard::new(EchoConfig::default()).unwrap();
        drive(&mut g, &far, &near);
        g.reset();
        assert_eq!(g.stats().delay_ms, None);
        assert_eq!(g.bulk_delay_samples(), 0);
        let mut fresh = EchoGuard::new(EchoConfig::default()).unwrap();
        let a = drive(&mut g, &far[..8000], &near[..8000]);
        let b = drive(&mut fresh, &far[..8000], &near[..8000]);
        assert_eq!(a, b);
    }

    #[test]
    fn full_scale_hostile_input_stays_finite() {
        let far: Vec<i16> = (0..16000)
            .map(|i| if i % 3 == 0 { i16::MIN } else { i16::MAX })
            .collect();
        let near: Vec<i16> = (0..16000)
            .map(|i| if i % 7 < 3 { i16::MAX } else { 0 })
            .collect();
        let mut g = EchoGuard::new(EchoConfig::default()).unwrap();
        for s in drive(&mut g, &far, &near) {
            assert!(s.erle_db.is_finite() && s.residual_dbfs.is_finite());
            assert!(s.floor_dbfs.is_finite() && s.erl_db.is_finite());
        }
    }

    #[test]
    fn process_does_not_allocate() {
        let far = to_frames(&noise(8000, 0.1, 4));
        let near = to_frames(&pcm(&echo_path(&noise(8000, 0.1, 4), 60, 15.0)));
        let mut g = EchoGuard::new(EchoConfig::default()).unwrap();
        let mut out = [0i16; FRAME_SAMPLES];
        g.process(&far[0], &near[0], &mut out);
        let n = allocations_in(|| {
            for (f, x) in far.iter().zip(near.iter()) {
                g.process(f, x, &mut out);
            }
        });
        assert_eq!(n, 0);
    }

    #[test]
    fn cost_per_frame() {
        // Printed, not asserted: debug builds are ~20x slower than release.
        let far = to_frames(&noise(8000 * 2, 0.1, 4));
        let near = to_frames(&pcm(&echo_path(&noise(8000 * 2, 0.1, 4), 60, 15.0)));
        let talk: Vec<Frame> = near
            .iter()
            .zip(to_frames(&noise(8000 * 2, 0.1, 77)))
            .map(|(e, c)| std::array::from_fn(|i| e[i].saturating_add(c[i])))
            .collect();
        let silent = [0i16; FRAME_SAMPLES];
        for taps in [256usize, 1024] {
            let mut g = EchoGuard::new(EchoConfig {
                filter_taps: taps,
                ..EchoConfig::default()
            })
            .unwrap();
            let mut out = [0i16; FRAME_SAMPLES];
            let t = std::time::Instant::now();
            for (f, x) in far.iter().zip(near.iter()) {
                g.process(f, x, &mut out);
            }
            let talking = t.elapsed().as_secs_f64() * 1e6 / far.len() as f64;
            // A loud caller over the converged echo: frames fail the coherence test, so
            // the path-shift search runs on each (adaptation is frozen).
            let t = std::time::Instant::now();
            for (f, x) in far.iter().zip(talk.iter()) {
                g.process(f, x, &mut out);
            }
            let double_talk = t.elapsed().as_secs_f64() * 1e6 / far.len() as f64;
            // Prompt over: once the history holds only silence, the filter is skipped.
            for x in &near {
                g.process(&silent, x, &mut out);
            }
            let t = std::time::Instant::now();
            for x in &near {
                g.process(&silent, x, &mut out);
            }
            let listening = t.elapsed().as_secs_f64() * 1e6 / near.len() as f64;
            println!(
                "echo guard {taps} taps: {talking:.1} us/frame while a prompt plays, \
                 {double_talk:.1} us/frame in double talk, {listening:.1} us/frame while \
                 only listening ({} build)",
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                }
            );
        }
    }

    #[test]
    fn kernels_agree() {
        let x: Vec<f32> = noise(1027, 0.5, 8).iter().map(|&v| i16_to_f32(v)).collect();
        let w: Vec<f32> = noise(1027, 0.1, 9).iter().map(|&v| i16_to_f32(v)).collect();
        let k: Vec<f32> = w.iter().map(|v| v.abs() + 1e-3).collect();
        for n in [0usize, 5, 8, 33, 1024, 1027] {
            let b = dot_plain(&x[..n], &w[..n]);
            for a in [
                dot_lanes::<false>(&x[..n], &w[..n]),
                dot_lanes::<true>(&x[..n], &w[..n]),
            ] {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{n}: {a} vs {b}");
            }
            let b = weighted_energy_plain(&k[..n], &x[..n]);
            for a in [
                weighted_energy_lanes::<false>(&k[..n], &x[..n]),
                weighted_energy_lanes::<true>(&k[..n], &x[..n]),
            ] {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{n}: {a} vs {b}");
            }
        }
        assert!(
            dot_plain(&x, &w).abs() > 1e-3,
            "test data must not be trivial"
        );
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let ok = EchoConfig::default();
        let cases = [
            (
                EchoConfig {
                    filter_taps: 0,
                    ..ok
                },
                EchoConfigError::Taps(0),
            ),
            (
                EchoConfig {
                    filter_taps: MAX_TAPS + 1,
                    ..ok
                },
                EchoConfigError::Taps(MAX_TAPS + 1),
            ),
            (
                EchoConfig {
                    step_size: 0.0,
                    ..ok
                },
                EchoConfigError::StepSize(0.0),
            ),
            (
                EchoConfig {
                    step_size: 1.5,
                    ..ok
                },
                EchoConfigError::StepSize(1.5),
            ),
            (
                EchoConfig {
                    max_delay_ms: 5000,
                    ..ok
                },
                EchoConfigError::MaxDelay(5000),
            ),
            (
                EchoConfig {
                    filter_taps: 64,
                    delay_margin_ms: 16,
                    ..ok
                },
                EchoConfigError::DelayMargin {
                    margin_ms: 16,
                    filter_ms: 8,
                },
            ),
            (
                EchoConfig {
                    geigel_threshold: 0.0,
                    ..ok
                },
                EchoConfigError::Geigel(0.0),
            ),
            (
                EchoConfig {
                    gate_margin_db: -1.0,
                    ..ok
                },
                EchoConfigError::Level {
                    field: "gate_margin_db",
                    value: -1.0,
                },
            ),
        ];
        for (cfg, err) in cases {
            assert_eq!(EchoGuard::new(cfg).unwrap_err(), err);
        }
        assert!(matches!(
            EchoGuard::new(EchoConfig {
                far_active_dbfs: f32::NAN,
                ..ok
            }),
            Err(EchoConfigError::Level {
                field: "far_active_dbfs",
                ..
            })
        ));
    }
}
