//! DTMF in all three forms a trunk may use: RFC 4733 telephone-events, in-band tones
//! (Goertzel detector and generator) and SIP INFO, merged into one event stream per call.
//!
//! Everything is allocation-free per packet/frame; small fixed rings hold history.

use std::time::{Duration, Instant};

use crate::{Frame, FRAME_SAMPLES, SAMPLE_RATE};

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event packets.
    Rfc4733,
    /// In-band tones detected in the audio.
    InBand,
    /// SIP INFO (application/dtmf-relay or application/dtmf).
    SipInfo,
}

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    /// '0'-'9', '*', '#', 'A'-'D'.
    pub digit: char,
    /// Signalling path.
    pub source: DtmfSource,
    /// When the key press started (as observed by us).
    pub at: Instant,
    /// Duration known when the event was reported (0 if not yet known).
    pub duration_ms: u32,
}

/// DTMF failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// Character is not a DTMF digit.
    #[error("{0:?} is not a DTMF digit")]
    InvalidDigit(char),
    /// Telephone-event code outside 0..=15 (flash, fax tones, ...), not handled.
    #[error("telephone-event {0} is not a DTMF digit")]
    UnsupportedEvent(u8),
    /// Telephone-event payload shorter than 4 bytes.
    #[error("telephone-event payload too short: {0} bytes")]
    PayloadTooShort(usize),
    /// Duration outside what can be sent.
    #[error("DTMF duration {0} ms out of range")]
    InvalidDuration(u32),
}

const DIGITS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// RFC 4733 event code for a digit.
pub fn digit_to_event(c: char) -> Result<u8, DtmfError> {
    let c = c.to_ascii_uppercase();
    DIGITS
        .iter()
        .position(|&d| d == c)
        .map(|p| p as u8)
        .ok_or(DtmfError::InvalidDigit(c))
}

/// Digit for an RFC 4733 event code.
pub fn event_to_digit(e: u8) -> Result<char, DtmfError> {
    DIGITS
        .get(e as usize)
        .copied()
        .ok_or(DtmfError::UnsupportedEvent(e))
}

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// (low, high) frequencies of a digit in Hz.
pub fn digit_frequencies(c: char) -> Result<(f32, f32), DtmfError> {
    let up = c.to_ascii_uppercase();
    for (r, row) in KEYPAD.iter().enumerate() {
        for (col, &d) in row.iter().enumerate() {
            if d == up {
                return Ok((ROWS[r], COLS[col]));
            }
        }
    }
    Err(DtmfError::InvalidDigit(c))
}

// ---------------------------------------------------------------------------------------
// RFC 4733 payload

/// The 4-byte telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0-15 for DTMF).
    pub event: u8,
    /// E bit: last packets of the event.
    pub end: bool,
    /// Volume in -dBm0 (0..=63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parse the first event block (RFC 4733 §2.3); extra bytes are ignored.
    pub fn parse(p: &[u8]) -> Result<Self, DtmfError> {
        match p {
            [event, flags, d0, d1, ..] => Ok(Self {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => Err(DtmfError::PayloadTooShort(p.len())),
        }
    }

    /// Wire form.
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// Edge of an RFC 4733 event as seen by [`Rfc4733Receiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc4733Update {
    /// First packet of a new event (duration is what that packet carried).
    Started(DtmfEvent),
    /// The event ended (E bit, a newer event, or timeout); final duration filled in.
    Ended(DtmfEvent),
}

#[derive(Debug, Clone, Copy)]
struct RxEvent {
    ts: u32,
    digit: char,
    started_at: Instant,
    last_at: Instant,
    duration: u16,
    ended: bool,
}

const RECENT_EVENTS: usize = 8;
const RX_QUEUE: usize = 8;

/// Turns telephone-event packets into one start and one end per key press.
///
/// Events are identified by RTP timestamp (RFC 4733 §2.5.1.3): repeats, updates and the
/// three redundant end packets share it. A lost start packet is tolerated (the first
/// packet seen starts the event); events that never see an E bit end on the next event
/// or after [`Rfc4733Receiver::EVENT_TIMEOUT`].
#[derive(Debug, Clone)]
pub struct Rfc4733Receiver {
    clock_rate: u32,
    current: Option<RxEvent>,
    recent: [Option<u32>; RECENT_EVENTS],
    recent_pos: usize,
    queue: [Option<Rfc4733Update>; RX_QUEUE],
    q_head: usize,
    q_len: usize,
    ignored: u64,
}

impl Rfc4733Receiver {
    /// Silence after which an unterminated event is considered over.
    pub const EVENT_TIMEOUT: Duration = Duration::from_millis(1000);

    /// Receiver for a telephone-event stream with the given RTP clock rate.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            current: None,
            recent: [None; RECENT_EVENTS],
            recent_pos: 0,
            queue: [None; RX_QUEUE],
            q_head: 0,
            q_len: 0,
            ignored: 0,
        }
    }

    /// Packets ignored (non-DTMF events, stale or inconsistent packets).
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    fn enqueue(&mut self, u: Rfc4733Update) {
        if self.q_len == RX_QUEUE {
            // Drop the oldest; only reachable if the caller never polls.
            self.q_head = (self.q_head + 1) % RX_QUEUE;
            self.q_len -= 1;
        }
        self.queue[(self.q_head + self.q_len) % RX_QUEUE] = Some(u);
        self.q_len += 1;
    }

    /// Next start/end edge, oldest first.
    pub fn poll(&mut self) -> Option<Rfc4733Update> {
        if self.q_len == 0 {
            return None;
        }
        let u = self.queue[self.q_head].take();
        self.q_head = (self.q_head + 1) % RX_QUEUE;
        self.q_len -= 1;
        u
    }

    fn ms(&self, units: u16) -> u32 {
        (u64::from(units) * 1000 / u64::from(self.clock_rate)) as u32
    }

    fn event(&self, e: &RxEvent) -> DtmfEvent {
        DtmfEvent {
            digit: e.digit,
            source: DtmfSource::Rfc4733,
            at: e.started_at,
            duration_ms: self.ms(e.duration),
        }
    }

    fn finish_current(&mut self) {
        if let Some(c) = self.current {
            if !c.ended {
                let ev = self.event(&c);
                self.enqueue(Rfc4733Update::Ended(ev));
            }
            self.recent[self.recent_pos] = Some(c.ts);
            self.recent_pos = (self.recent_pos + 1) % RECENT_EVENTS;
        }
        self.current = None;
    }

    /// Feed one telephone-event packet (already matched on payload type).
    pub fn handle(&mut self, now: Instant, rtp_ts: u32, payload: &[u8]) -> Result<(), DtmfError> {
        let te = TelephoneEvent::parse(payload)?;
        let digit = match event_to_digit(te.event) {
            Ok(d) => d,
            Err(e) => {
                self.ignored += 1;
                return Err(e);
            }
        };
        if let Some(mut c) = self.current {
            if c.ts == rtp_ts {
                if c.digit != digit {
                    self.ignored += 1;
                    return Ok(());
                }
                c.duration = c.duration.max(te.duration);
                c.last_at = now;
                if te.end && !c.ended {
                    c.ended = true;
                    let ev = self.event(&c);
                    self.enqueue(Rfc4733Update::Ended(ev));
                }
                self.current = Some(c);
                return Ok(());
            }
            if (rtp_ts.wrapping_sub(c.ts) as i32) < 0 {
                // Reordered/retransmitted packet of an older event.
                self.ignored += 1;
                return Ok(());
            }
        }
        if self.recent.contains(&Some(rtp_ts)) {
            self.ignored += 1;
            return Ok(());
        }
        self.finish_current();
        let e = RxEvent {
            ts: rtp_ts,
            digit,
            started_at: now,
            last_at: now,
            duration: te.duration,
            ended: te.end,
        };
        self.current = Some(e);
        let ev = self.event(&e);
        self.enqueue(Rfc4733Update::Started(ev));
        if te.end {
            // Only the end packets made it: the press is over already.
            self.enqueue(Rfc4733Update::Ended(ev));
        }
        Ok(())
    }

    /// End an event whose end packets were all lost.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(c) = self.current {
            if !c.ended && now.saturating_duration_since(c.last_at) >= Self::EVENT_TIMEOUT {
                self.finish_current();
            }
        }
    }

    /// Forget everything (new SSRC).
    pub fn reset(&mut self) {
        let clock = self.clock_rate;
        let ignored = self.ignored;
        *self = Self::new(clock);
        self.ignored = ignored;
    }
}

/// One telephone-event packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// RTP payload.
    pub payload: [u8; 4],
    /// RTP marker (first packet of the event).
    pub marker: bool,
    /// Carries the E bit.
    pub end: bool,
}

/// Produces the RFC 4733 packet sequence for one digit, driven by the 20 ms send tick:
/// a start packet with the marker, an update whenever ≥ 50 ms passed since the last one
/// (so every 60 ms on a 20 ms grid), then the final packet with the E bit three times.
/// All packets share the event's start timestamp, which the caller keeps.
#[derive(Debug, Clone)]
pub struct Rfc4733Sender {
    event: u8,
    volume: u8,
    total: u32,
    frame_ts: u32,
    update_ts: u32,
    elapsed: u32,
    last_sent: u32,
    ends_sent: u8,
    started: bool,
}

impl Rfc4733Sender {
    /// Default volume, -10 dBm0.
    pub const VOLUME: u8 = 10;

    /// Sender for `digit` lasting `duration_ms` (40 ms up to what fits the 16-bit duration
    /// field at `clock_rate`).
    pub fn new(digit: char, duration_ms: u32, clock_rate: u32) -> Result<Self, DtmfError> {
        let event = digit_to_event(digit)?;
        let total = u64::from(duration_ms) * u64::from(clock_rate) / 1000;
        if duration_ms < 40 || total > u64::from(u16::MAX) {
            return Err(DtmfError::InvalidDuration(duration_ms));
        }
        Ok(Self {
            event,
            volume: Self::VOLUME,
            total: total as u32,
            frame_ts: clock_rate / 50,
            update_ts: clock_rate / 20,
            elapsed: 0,
            last_sent: 0,
            ends_sent: 0,
            started: false,
        })
    }

    /// All packets sent.
    pub fn is_finished(&self) -> bool {
        self.ends_sent >= 3
    }

    fn packet(&self, duration: u32, marker: bool, end: bool) -> EventPacket {
        EventPacket {
            payload: TelephoneEvent {
                event: self.event,
                end,
                volume: self.volume,
                duration: duration.min(u32::from(u16::MAX)) as u16,
            }
            .to_bytes(),
            marker,
            end,
        }
    }

    /// Advance one 20 ms tick; the packet to send this tick, if any.
    pub fn poll_tick(&mut self) -> Option<EventPacket> {
        if self.is_finished() {
            return None;
        }
        if self.elapsed >= self.total {
            self.ends_sent += 1;
            return Some(self.packet(self.total, false, true));
        }
        self.elapsed = (self.elapsed + self.frame_ts).min(self.total);
        if !self.started {
            self.started = true;
            self.last_sent = self.elapsed;
            return Some(self.packet(self.elapsed, true, false));
        }
        if self.elapsed >= self.total {
            self.ends_sent += 1;
            return Some(self.packet(self.total, false, true));
        }
        if self.elapsed - self.last_sent >= self.update_ts {
            self.last_sent = self.elapsed;
            return Some(self.packet(self.elapsed, false, false));
        }
        None
    }
}

// ---------------------------------------------------------------------------------------
// Tone generator

/// Phase-continuous dual-tone generator (8 kHz).
#[derive(Debug, Clone)]
pub struct DtmfTone {
    step_lo: f64,
    step_hi: f64,
    phase_lo: f64,
    phase_hi: f64,
    amp_lo: f64,
    amp_hi: f64,
}

impl DtmfTone {
    /// Both tones at `amplitude` (peak, linear 16-bit). 7000 ≈ -7 dBm0 per tone.
    pub fn new(digit: char, amplitude: i16) -> Result<Self, DtmfError> {
        Self::with_levels(digit, amplitude, amplitude)
    }

    /// Separate low/high group amplitudes (for twist).
    pub fn with_levels(digit: char, low: i16, high: i16) -> Result<Self, DtmfError> {
        let (fl, fh) = digit_frequencies(digit)?;
        Ok(Self::from_frequencies(fl, fh, low, high))
    }

    /// Arbitrary frequency pair (tests of off-nominal frequencies).
    pub fn from_frequencies(low_hz: f32, high_hz: f32, low: i16, high: i16) -> Self {
        let sr = f64::from(SAMPLE_RATE);
        Self {
            step_lo: std::f64::consts::TAU * f64::from(low_hz) / sr,
            step_hi: std::f64::consts::TAU * f64::from(high_hz) / sr,
            phase_lo: 0.0,
            phase_hi: 0.0,
            amp_lo: f64::from(low),
            amp_hi: f64::from(high),
        }
    }

    /// Write the next `out.len()` samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        for s in out {
            let v = self.amp_lo * self.phase_lo.sin() + self.amp_hi * self.phase_hi.sin();
            *s = v.clamp(-32768.0, 32767.0) as i16;
            self.phase_lo = (self.phase_lo + self.step_lo) % std::f64::consts::TAU;
            self.phase_hi = (self.phase_hi + self.step_hi) % std::f64::consts::TAU;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Goertzel detector

/// In-band detector thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoertzelConfig {
    /// Minimum peak amplitude per tone (16-bit linear). 400 ≈ -35 dBm0.
    pub min_amplitude: f32,
    /// Maximum dB by which the low group may exceed the high group.
    pub max_twist_db: f32,
    /// Maximum dB by which the high group may exceed the low group.
    pub max_reverse_twist_db: f32,
    /// Strongest row/column must exceed the runner-up by this many dB.
    pub min_peak_ratio_db: f32,
    /// Share of the window's energy the two tones must carry.
    pub min_tone_energy_share: f32,
    /// Second harmonic must be this many dB below its fundamental.
    pub min_harmonic_rejection_db: f32,
    /// Consecutive 10 ms hops (each a 20 ms analysis window) needed to accept a digit.
    pub min_on_hops: u32,
    /// Consecutive non-matching hops that end a digit.
    pub min_off_hops: u32,
}

impl Default for GoertzelConfig {
    fn default() -> Self {
        Self {
            min_amplitude: 400.0,
            max_twist_db: 8.0,
            max_reverse_twist_db: 8.0,
            min_peak_ratio_db: 8.0,
            min_tone_energy_share: 0.6,
            min_harmonic_rejection_db: 12.0,
            min_on_hops: 3,
            min_off_hops: 4,
        }
    }
}

/// In-band detection result; positions are sample indices since the detector started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InbandDtmf {
    /// A digit was recognised (after the minimum duration).
    Started {
        /// The digit.
        digit: char,
        /// First sample of the first window containing it.
        start_sample: u64,
    },
    /// The digit ended (after the minimum pause).
    Ended {
        /// The digit.
        digit: char,
        /// Same as in `Started`.
        start_sample: u64,
        /// One past the last sample of the last window containing it.
        end_sample: u64,
    },
}

const WIN: usize = FRAME_SAMPLES;
const HOP: usize = FRAME_SAMPLES / 2;

/// Goertzel DTMF detector on 8 kHz, 20 ms frames.
///
/// Each frame is analysed as two 20 ms windows hopping by 10 ms (the previous half frame
/// plus the first half, then the whole frame), which gives 50 Hz resolution and 10 ms
/// timing. A window is a digit when: both tones are above the level floor, twist is within
/// limits, each tone dominates its group, the two tones carry most of the window energy
/// (rejects speech and noise), second harmonics are weak (rejects voiced speech), and
/// both window halves carry similar energy (a window only partly covered by a tone does
/// not count, which is what makes the duration checks work). `min_on_hops` consecutive
/// matching windows accept a digit (≈ 40 ms with the defaults, tones ≤ 20 ms are
/// rejected), `min_off_hops` non-matching windows end it (a 40 ms pause separates digits,
/// a 10 ms drop-out does not).
#[derive(Debug, Clone)]
pub struct GoertzelDetector {
    cfg: GoertzelConfig,
    coeff: [f32; 8],
    coeff2: [f32; 8],
    prev_half: [i16; HOP],
    hops: u64,
    candidate: Option<char>,
    cand_count: u32,
    cand_start: u64,
    active: Option<(char, u64)>,
    last_on_end: u64,
    off_count: u32,
    pending: Option<InbandDtmf>,
}

impl Default for GoertzelDetector {
    fn default() -> Self {
        Self::new(GoertzelConfig::default())
    }
}

impl GoertzelDetector {
    /// Detector with the given thresholds.
    pub fn new(cfg: GoertzelConfig) -> Self {
        let c = |f: f32| 2.0 * (std::f32::consts::TAU * f / SAMPLE_RATE as f32).cos();
        let mut coeff = [0.0; 8];
        let mut coeff2 = [0.0; 8];
        for (i, &f) in ROWS.iter().chain(COLS.iter()).enumerate() {
            coeff[i] = c(f);
            coeff2[i] = c(2.0 * f);
        }
        Self {
            cfg,
            coeff,
            coeff2,
            prev_half: [0; HOP],
            hops: 0,
            candidate: None,
            cand_count: 0,
            cand_start: 0,
            active: None,
            last_on_end: 0,
            off_count: 0,
            pending: None,
        }
    }

    /// Forget all state (new call).
    pub fn reset(&mut self) {
        *self = Self::new(self.cfg);
    }

    /// Analyse the next frame. At most one result per call; should two ever coincide,
    /// the second is returned on the next call.
    pub fn process(&mut self, frame: &Frame) -> Option<InbandDtmf> {
        let mut win = [0i16; WIN];
        win[..HOP].copy_from_slice(&self.prev_half);
        win[HOP..].copy_from_slice(&frame[..HOP]);
        let d1 = self.classify(&win);
        let r1 = self.step(d1);
        let d2 = self.classify(frame);
        let r2 = self.step(d2);
        self.prev_half.copy_from_slice(&frame[HOP..]);
        let mut out = self.pending.take();
        for r in [r1, r2].into_iter().flatten() {
            if out.is_none() {
                out = Some(r);
            } else {
                self.pending = Some(r);
            }
        }
        out
    }

    fn step(&mut self, d: Option<char>) -> Option<InbandDtmf> {
        // The window that just ended covers samples [hop*HOP - HOP, hop*HOP + HOP) of the
        // stream, where the first window of the stream starts with HOP zero samples.
        self.hops += 1;
        let win_end = self.hops * HOP as u64;
        let win_start = win_end.saturating_sub(WIN as u64);
        match self.active {
            None => {
                match d {
                    Some(c) if self.candidate == Some(c) => self.cand_count += 1,
                    Some(c) => {
                        self.candidate = Some(c);
                        self.cand_count = 1;
                        self.cand_start = win_start;
                    }
                    None => {
                        self.candidate = None;
                        self.cand_count = 0;
                    }
                }
                if let Some(c) = self.candidate {
                    if self.cand_count >= self.cfg.min_on_hops {
                        self.active = Some((c, self.cand_start));
                        self.last_on_end = win_end;
                        self.off_count = 0;
                        self.candidate = None;
                        self.cand_count = 0;
                        return Some(InbandDtmf::Started {
                            digit: c,
                            start_sample: self.cand_start,
                        });
                    }
                }
                None
            }
            Some((c, start)) => {
                if d == Some(c) {
                    self.off_count = 0;
                    self.last_on_end = win_end;
                    return None;
                }
                self.off_count += 1;
                if self.off_count >= self.cfg.min_off_hops {
                    self.active = None;
                    self.candidate = None;
                    self.cand_count = 0;
                    return Some(InbandDtmf::Ended {
                        digit: c,
                        start_sample: start,
                        end_sample: self.last_on_end,
                    });
                }
                None
            }
        }
    }

    fn goertzel(coeff: f32, x: &[i16]) -> f32 {
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &v in x {
            let s = f32::from(v) + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0)
    }

    fn classify(&self, x: &[i16]) -> Option<char> {
        let n = x.len() as f32;
        let (h1, h2) = x.split_at(x.len() / 2);
        let e1: f32 = h1.iter().map(|&v| f32::from(v) * f32::from(v)).sum();
        let e2: f32 = h2.iter().map(|&v| f32::from(v) * f32::from(v)).sum();
        let total = e1 + e2;
        // Power of a sine of amplitude A over N samples is (A*N/2)^2.
        let min_power = (self.cfg.min_amplitude * n / 2.0).powi(2);
        // Each tone's energy is A^2*N/2; both at the minimum means total >= A^2*N.
        if total < self.cfg.min_amplitude.powi(2) * n {
            return None;
        }
        let mut p = [0.0f32; 8];
        for (pi, &c) in p.iter_mut().zip(&self.coeff) {
            *pi = Self::goertzel(c, x);
        }
        let best = |g: &[f32]| -> (usize, f32, f32) {
            let mut bi = 0;
            for i in 1..g.len() {
                if g[i] > g[bi] {
                    bi = i;
                }
            }
            let second = g
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != bi)
                .map(|(_, &v)| v)
                .fold(0.0f32, f32::max);
            (bi, g[bi], second)
        };
        let (r, pr, pr2) = best(&p[..4]);
        let (c, pc, pc2) = best(&p[4..]);
        if pr < min_power || pc < min_power {
            return None;
        }
        let db = |ratio: f32| 10.0 * ratio.max(1e-12).log10();
        let twist = db(pr / pc); // > 0: low group stronger
        if twist > self.cfg.max_twist_db || -twist > self.cfg.max_reverse_twist_db {
            return None;
        }
        if db(pr / pr2.max(1e-6)) < self.cfg.min_peak_ratio_db
            || db(pc / pc2.max(1e-6)) < self.cfg.min_peak_ratio_db
        {
            return None;
        }
        // Tone energy = power * 2 / N (Parseval for a bin-centred sinusoid).
        let tone_energy = (pr + pc) * 2.0 / n;
        if tone_energy < self.cfg.min_tone_energy_share * total {
            return None;
        }
        let hr = Self::goertzel(self.coeff2[r], x);
        let hc = Self::goertzel(self.coeff2[4 + c], x);
        if db(pr / hr.max(1e-6)) < self.cfg.min_harmonic_rejection_db
            || db(pc / hc.max(1e-6)) < self.cfg.min_harmonic_rejection_db
        {
            return None;
        }
        // Both halves must carry the tone: rejects windows a tone only partly covers.
        if e1.min(e2) < 0.5 * e1.max(e2) {
            return None;
        }
        Some(KEYPAD[r][c])
    }
}

// ---------------------------------------------------------------------------------------
// Unifier

#[derive(Debug, Clone, Copy)]
struct Emitted {
    digit: char,
    source: DtmfSource,
    start: Instant,
    end: Instant,
    /// Sources whose duplicate of this press was already swallowed (bit per source).
    matched: u8,
}

fn source_bit(s: DtmfSource) -> u8 {
    match s {
        DtmfSource::Rfc4733 => 1,
        DtmfSource::InBand => 2,
        DtmfSource::SipInfo => 4,
    }
}

const UNIFIER_HISTORY: usize = 16;

/// Merges RFC 4733, in-band and SIP INFO digits of one call so each press is reported once.
///
/// Trunks often send the same press twice (telephone-event *and* tones in the audio, or
/// SIP INFO as well). An event is swallowed when an already-emitted event of the same
/// digit from a *different* source overlaps it in time (intervals widened by
/// `tolerance`, which must cover the jitter-buffer delay between the RTP arrival and the
/// in-band detection); each emitted press swallows at most one duplicate per source.
/// Events from the same source are never merged: each source already deduplicates itself.
#[derive(Debug, Clone)]
pub struct DtmfUnifier {
    tolerance: Duration,
    min_span: Duration,
    history: [Option<Emitted>; UNIFIER_HISTORY],
    pos: usize,
    rfc4733_active: bool,
    suppressed: u64,
}

impl Default for DtmfUnifier {
    fn default() -> Self {
        Self::new(Duration::from_millis(300))
    }
}

impl DtmfUnifier {
    /// Unifier with the given overlap tolerance.
    pub fn new(tolerance: Duration) -> Self {
        Self {
            tolerance,
            min_span: Duration::from_millis(40),
            history: [None; UNIFIER_HISTORY],
            pos: 0,
            rfc4733_active: false,
            suppressed: 0,
        }
    }

    /// Whether RFC 4733 events have been seen on this call.
    pub fn rfc4733_active(&self) -> bool {
        self.rfc4733_active
    }

    /// Duplicates swallowed so far.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Offer an event; returns it if it is a new key press.
    pub fn push(&mut self, ev: DtmfEvent) -> Option<DtmfEvent> {
        if ev.source == DtmfSource::Rfc4733 {
            self.rfc4733_active = true;
        }
        let span = Duration::from_millis(u64::from(ev.duration_ms)).max(self.min_span);
        let start = ev.at;
        let end = ev.at + span;
        let tol = self.tolerance;
        let bit = source_bit(ev.source);
        let hit = self.history.iter_mut().flatten().find(|h| {
            h.digit == ev.digit
                && h.source != ev.source
                && h.matched & bit == 0
                && start <= h.end + tol
                && h.start <= end + tol
        });
        if let Some(h) = hit {
            h.matched |= bit;
            if end > h.end {
                h.end = end;
            }
            self.suppressed += 1;
            return None;
        }
        self.history[self.pos] = Some(Emitted {
            digit: ev.digit,
            source: ev.source,
            start,
            end,
            matched: 0,
        });
        self.pos = (self.pos + 1) % UNIFIER_HISTORY;
        Some(ev)
    }

    /// Extend an emitted event once its final duration is known (RFC 4733 end, in-band
    /// end), so later duplicates are matched against the full press.
    pub fn extend(&mut self, source: DtmfSource, digit: char, at: Instant, duration_ms: u32) {
        let end = at + Duration::from_millis(u64::from(duration_ms)).max(self.min_span);
        if let Some(h) = self
            .history
            .iter_mut()
            .flatten()
            .find(|h| h.source == source && h.digit == digit && h.start == at)
        {
            if end > h.end {
                h.end = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711;
    use crate::rtcp::SplitMix64;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn te(event: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    fn drain(rx: &mut Rfc4733Receiver) -> Vec<Rfc4733Update> {
        std::iter::from_fn(|| rx.poll()).collect()
    }

    #[test]
    fn digit_codes() {
        assert_eq!(digit_to_event('0'), Ok(0));
        assert_eq!(digit_to_event('#'), Ok(11));
        assert_eq!(digit_to_event('d'), Ok(15));
        assert_eq!(digit_to_event('x'), Err(DtmfError::InvalidDigit('X')));
        assert_eq!(event_to_digit(10), Ok('*'));
        assert_eq!(event_to_digit(16), Err(DtmfError::UnsupportedEvent(16)));
        assert_eq!(digit_frequencies('5'), Ok((770.0, 1336.0)));
        assert_eq!(
            TelephoneEvent::parse(&[1, 2]),
            Err(DtmfError::PayloadTooShort(2))
        );
    }

    #[test]
    fn rfc4733_one_event_per_press_despite_repeats_and_three_ends() {
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::new(8000);
        let ts = 12345;
        rx.handle(t0, ts, &te(5, false, 160)).unwrap();
        rx.handle(t0 + ms(1), ts, &te(5, false, 160)).unwrap(); // retransmitted start
        rx.handle(t0 + ms(50), ts, &te(5, false, 560)).unwrap();
        rx.handle(t0 + ms(100), ts, &te(5, false, 960)).unwrap();
        for k in 0..3 {
            rx.handle(t0 + ms(120 + k), ts, &te(5, true, 1040)).unwrap();
        }
        let u = drain(&mut rx);
        assert_eq!(u.len(), 2, "{u:?}");
        assert!(
            matches!(u[0], Rfc4733Update::Started(e) if e.digit == '5' && e.at == t0 && e.duration_ms == 20)
        );
        assert!(
            matches!(u[1], Rfc4733Update::Ended(e) if e.digit == '5' && e.at == t0 && e.duration_ms == 130)
        );
        // A late retransmitted start of the same event after the end: still nothing.
        rx.handle(t0 + ms(300), ts, &te(5, false, 160)).unwrap();
        // Next press of the same digit (new timestamp) is a new event.
        rx.handle(t0 + ms(400), ts + 3200, &te(5, false, 160))
            .unwrap();
        let u = drain(&mut rx);
        assert_eq!(u.len(), 1);
        assert!(matches!(u[0], Rfc4733Update::Started(e) if e.at == t0 + ms(400)));
        // The old event's end packets arriving late do not re-trigger anything.
        rx.handle(t0 + ms(410), ts, &te(5, true, 1040)).unwrap();
        assert!(drain(&mut rx).is_empty());
    }

    #[test]
    fn rfc4733_lost_start_and_lost_end() {
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::new(8000);
        // Start lost: first packet seen is an update.
        rx.handle(t0, 1000, &te(1, false, 800)).unwrap();
        // All end packets lost; the next event ends it implicitly.
        rx.handle(t0 + ms(500), 5000, &te(11, false, 160)).unwrap();
        // Only end packets of the next-next event arrive.
        rx.handle(t0 + ms(900), 9000, &te(0, true, 800)).unwrap();
        rx.handle(t0 + ms(901), 9000, &te(0, true, 800)).unwrap();
        let u = drain(&mut rx);
        let digits: Vec<(char, bool)> = u
            .iter()
            .map(|x| match x {
                Rfc4733Update::Started(e) => (e.digit, true),
                Rfc4733Update::Ended(e) => (e.digit, false),
            })
            .collect();
        assert_eq!(
            digits,
            vec![
                ('1', true),
                ('1', false),
                ('#', true),
                ('#', false),
                ('0', true),
                ('0', false)
            ]
        );
        // Timeout ends an event with no end packets and no successor.
        rx.handle(t0 + ms(1000), 20000, &te(7, false, 160)).unwrap();
        rx.handle_timeout(t0 + ms(1500));
        assert_eq!(drain(&mut rx).len(), 1);
        rx.handle_timeout(t0 + ms(2100));
        assert!(matches!(drain(&mut rx)[..], [Rfc4733Update::Ended(e)] if e.digit == '7'));
        assert!(rx.handle(t0, 1, &te(16, false, 1)).is_err());
    }

    #[test]
    fn rfc4733_sender_sequence_and_round_trip() {
        let mut tx = Rfc4733Sender::new('9', 200, 8000).unwrap();
        let mut pkts = Vec::new();
        let mut tick = 0;
        while !tx.is_finished() {
            if let Some(p) = tx.poll_tick() {
                pkts.push((tick, p));
            }
            tick += 1;
            assert!(tick < 100);
        }
        assert!(pkts[0].1.marker && pkts[0].0 == 0);
        assert!(pkts[1..].iter().all(|p| !p.1.marker));
        let ends: Vec<_> = pkts.iter().filter(|p| p.1.end).collect();
        assert_eq!(ends.len(), 3);
        assert!(ends
            .iter()
            .all(|p| TelephoneEvent::parse(&p.1.payload).unwrap().duration == 1600));
        // Updates at most every 50 ms (2.5 ticks) before the end.
        let non_end: Vec<_> = pkts.iter().filter(|p| !p.1.end).map(|p| p.0).collect();
        assert!(non_end.windows(2).all(|w| w[1] - w[0] >= 3), "{non_end:?}");
        let durs: Vec<u16> = pkts
            .iter()
            .map(|p| TelephoneEvent::parse(&p.1.payload).unwrap().duration)
            .collect();
        assert!(durs.windows(2).all(|w| w[1] >= w[0]));
        // Round trip: one start, one end with the full duration.
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::new(8000);
        for (tick, p) in &pkts {
            rx.handle(t0 + ms(*tick as u64 * 20), 777, &p.payload)
                .unwrap();
        }
        let u = drain(&mut rx);
        assert_eq!(u.len(), 2);
        assert!(matches!(u[1], Rfc4733Update::Ended(e) if e.digit == '9' && e.duration_ms == 200));
        assert!(Rfc4733Sender::new('1', 10, 8000).is_err());
        assert!(Rfc4733Sender::new('1', 2000, 48000).is_err());
        assert!(Rfc4733Sender::new('x', 100, 8000).is_err());
    }

    // ---- Goertzel ----

    /// Build a signal of [(digit or None, duration ms, low amp, high amp)] segments.
    fn signal(parts: &[(Option<char>, usize, i16, i16)], lead_samples: usize) -> Vec<i16> {
        let mut v = vec![0i16; lead_samples];
        for &(d, dur, lo, hi) in parts {
            let n = dur * 8;
            let mut buf = vec![0i16; n];
            if let Some(d) = d {
                DtmfTone::with_levels(d, lo, hi).unwrap().fill(&mut buf);
            }
            v.extend_from_slice(&buf);
        }
        // Trailing silence so the last digit ends.
        v.extend_from_slice(&[0; 1600]);
        v
    }

    fn detect(samples: &[i16]) -> Vec<InbandDtmf> {
        let mut det = GoertzelDetector::default();
        let mut out = Vec::new();
        for chunk in samples.chunks(FRAME_SAMPLES) {
            let mut f = [0i16; FRAME_SAMPLES];
            f[..chunk.len()].copy_from_slice(chunk);
            if let Some(r) = det.process(&f) {
                out.push(r);
            }
        }
        out
    }

    fn digits_of(ev: &[InbandDtmf]) -> String {
        ev.iter()
            .filter_map(|e| match e {
                InbandDtmf::Started { digit, .. } => Some(*digit),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn goertzel_detects_all_sixteen_digits_with_timing() {
        let keys = "123A456B789C*0#D";
        let parts: Vec<_> = keys
            .chars()
            .flat_map(|c| [(Some(c), 80, 6000, 6000), (None, 60, 0, 0)])
            .collect();
        let ev = detect(&signal(&parts, 333));
        assert_eq!(digits_of(&ev), keys);
        // Start/end positions match the generated tone bursts to within a hop.
        let mut expect_start = 333u64;
        for e in ev.iter().filter(|e| matches!(e, InbandDtmf::Ended { .. })) {
            if let InbandDtmf::Ended {
                start_sample,
                end_sample,
                ..
            } = *e
            {
                assert!(
                    start_sample.abs_diff(expect_start) <= 80,
                    "{start_sample} vs {expect_start}"
                );
                assert!(
                    end_sample.abs_diff(expect_start + 640) <= 80,
                    "{end_sample}"
                );
            }
            expect_start += 140 * 8;
        }
    }

    #[test]
    fn goertzel_duration_limits_at_every_phase() {
        for phase in (0..160).step_by(10) {
            // 40 ms is accepted, 20 ms rejected, regardless of frame alignment.
            let ok = detect(&signal(&[(Some('8'), 40, 6000, 6000)], phase));
            assert_eq!(digits_of(&ok), "8", "40 ms at phase {phase}");
            let short = detect(&signal(&[(Some('8'), 20, 6000, 6000)], phase));
            assert_eq!(digits_of(&short), "", "20 ms at phase {phase}");
            // Two digits separated by a 40 ms pause are two digits; a 10 ms drop-out is not.
            let two = detect(&signal(
                &[
                    (Some('3'), 60, 6000, 6000),
                    (None, 40, 0, 0),
                    (Some('3'), 60, 6000, 6000),
                ],
                phase,
            ));
            assert_eq!(digits_of(&two), "33", "pause at phase {phase}");
            let bridged = detect(&signal(
                &[
                    (Some('3'), 60, 6000, 6000),
                    (None, 10, 0, 0),
                    (Some('3'), 60, 6000, 6000),
                ],
                phase,
            ));
            assert_eq!(digits_of(&bridged), "3", "drop-out at phase {phase}");
        }
    }

    #[test]
    fn goertzel_twist_level_and_noise() {
        // ±6 dB twist accepted, 12 dB rejected either way.
        assert_eq!(
            digits_of(&detect(&signal(&[(Some('1'), 80, 8000, 4000)], 0))),
            "1"
        );
        assert_eq!(
            digits_of(&detect(&signal(&[(Some('1'), 80, 4000, 8000)], 0))),
            "1"
        );
        assert_eq!(
            digits_of(&detect(&signal(&[(Some('1'), 80, 8000, 2000)], 0))),
            ""
        );
        assert_eq!(
            digits_of(&detect(&signal(&[(Some('1'), 80, 2000, 8000)], 0))),
            ""
        );
        // -25 dBm0 per tone (≈1270 peak) detected; far below the floor not.
        assert_eq!(
            digits_of(&detect(&signal(&[(Some('#'), 80, 1270, 1270)], 0))),
            "#"
        );
        assert_eq!(
            digits_of(&detect(&signal(&[(Some('#'), 80, 150, 150)], 0))),
            ""
        );
        // A single frequency is not a digit.
        let mut one = vec![0i16; 800];
        DtmfTone::from_frequencies(770.0, 1336.0, 6000, 0).fill(&mut one);
        assert_eq!(digits_of(&detect(&one)), "");
        // 20 dB SNR white noise.
        let mut rng = SplitMix64::new(11);
        let keys = "0123456789*#ABCD";
        let parts: Vec<_> = keys
            .chars()
            .flat_map(|c| [(Some(c), 60, 4000, 4000), (None, 50, 0, 0)])
            .collect();
        let mut s = signal(&parts, 100);
        let noise_amp = 4000.0 * 2f64.sqrt() / 10.0 * 3f64.sqrt(); // uniform noise rms = tone rms/10
        for v in &mut s {
            let n = (rng.next_f64() * 2.0 - 1.0) * noise_amp;
            *v = (f64::from(*v) + n).clamp(-32768.0, 32767.0) as i16;
        }
        assert_eq!(digits_of(&detect(&s)), keys);
    }

    #[test]
    fn goertzel_survives_g711_and_off_nominal_frequencies() {
        let keys = "159D*";
        let parts: Vec<_> = keys
            .chars()
            .flat_map(|c| [(Some(c), 60, 3000, 3000), (None, 60, 0, 0)])
            .collect();
        let s = signal(&parts, 0);
        let ul: Vec<i16> = s
            .iter()
            .map(|&v| g711::ulaw_decode(g711::ulaw_encode(v)))
            .collect();
        let al: Vec<i16> = s
            .iter()
            .map(|&v| g711::alaw_decode(g711::alaw_encode(v)))
            .collect();
        assert_eq!(digits_of(&detect(&ul)), keys);
        assert_eq!(digits_of(&detect(&al)), keys);
        // +1.5 % frequency error accepted.
        let mut off = vec![0i16; 800];
        DtmfTone::from_frequencies(697.0 * 1.015, 1209.0 * 1.015, 5000, 5000).fill(&mut off);
        off.extend_from_slice(&[0; 800]);
        assert_eq!(digits_of(&detect(&off)), "1");
    }

    /// Talk-off: voiced-speech-like signals (harmonic series with vibrato and moving
    /// formant weights) must not produce digits.
    #[test]
    fn goertzel_rejects_speech_like_signals() {
        let mut rng = SplitMix64::new(5);
        let mut total_false = 0;
        for f0_base in [90.0f64, 120.0, 150.0, 200.0, 240.0] {
            let mut s = vec![0i16; 8000 * 4];
            let mut phase = [0.0f64; 40];
            for (i, v) in s.iter_mut().enumerate() {
                let t = i as f64 / 8000.0;
                let f0 = f0_base * (1.0 + 0.06 * (std::f64::consts::TAU * 5.5 * t).sin());
                // Two slowly moving formants.
                let fa = 700.0 + 300.0 * (std::f64::consts::TAU * 0.7 * t).sin();
                let fb = 1300.0 + 500.0 * (std::f64::consts::TAU * 0.43 * t).cos();
                let mut acc = 0.0;
                for (h, ph) in phase.iter_mut().enumerate() {
                    let f = f0 * (h + 1) as f64;
                    if f > 3800.0 {
                        break;
                    }
                    *ph += std::f64::consts::TAU * f / 8000.0;
                    let w = (-((f - fa) / 150.0).powi(2)).exp()
                        + 0.7 * (-((f - fb) / 200.0).powi(2)).exp()
                        + 0.05;
                    acc += w * ph.sin();
                }
                *v = (acc * 5000.0 + (rng.next_f64() - 0.5) * 200.0) as i16;
            }
            total_false += digits_of(&detect(&s)).len();
            // Margin: even single 20 ms windows rarely look like a digit.
            let det = GoertzelDetector::default();
            let windows = s.chunks_exact(WIN).count();
            let hits = s
                .chunks_exact(WIN)
                .filter(|w| det.classify(w).is_some())
                .count();
            assert!(
                hits * 20 <= windows,
                "f0 {f0_base}: {hits}/{windows} windows matched"
            );
        }
        assert_eq!(total_false, 0);
    }

    // ---- Unifier ----

    fn ev(digit: char, source: DtmfSource, at: Instant, duration_ms: u32) -> DtmfEvent {
        DtmfEvent {
            digit,
            source,
            at,
            duration_ms,
        }
    }

    #[test]
    fn unifier_emits_each_press_once() {
        let t0 = Instant::now();
        let mut u = DtmfUnifier::default();
        // 4733 first, in-band copy 120 ms later (jitter buffer + detection).
        assert!(u.push(ev('5', DtmfSource::Rfc4733, t0, 0)).is_some());
        assert!(u.rfc4733_active());
        assert!(u
            .push(ev('5', DtmfSource::InBand, t0 + ms(120), 100))
            .is_none());
        // Second press of the same digit: again exactly once.
        assert!(u
            .push(ev('5', DtmfSource::Rfc4733, t0 + ms(600), 0))
            .is_some());
        assert!(u
            .push(ev('5', DtmfSource::InBand, t0 + ms(700), 100))
            .is_none());
        // In-band first, 4733 start lost and arriving later.
        assert!(u
            .push(ev('7', DtmfSource::InBand, t0 + ms(2000), 80))
            .is_some());
        assert!(u
            .push(ev('7', DtmfSource::Rfc4733, t0 + ms(2050), 0))
            .is_none());
        // A different digit overlapping is not a duplicate.
        assert!(u
            .push(ev('8', DtmfSource::InBand, t0 + ms(2060), 80))
            .is_some());
        // In-band only digit far from any 4733 event passes.
        assert!(u
            .push(ev('9', DtmfSource::InBand, t0 + ms(5000), 80))
            .is_some());
        // Same source twice is two presses (the source already deduplicated itself).
        assert!(u
            .push(ev('1', DtmfSource::SipInfo, t0 + ms(6000), 100))
            .is_some());
        assert!(u
            .push(ev('1', DtmfSource::SipInfo, t0 + ms(6150), 100))
            .is_some());
        // One SIP INFO press only swallows one in-band copy.
        assert!(u
            .push(ev('1', DtmfSource::InBand, t0 + ms(6010), 100))
            .is_none());
        assert!(u
            .push(ev('1', DtmfSource::InBand, t0 + ms(6160), 100))
            .is_none());
        assert!(u
            .push(ev('1', DtmfSource::InBand, t0 + ms(6200), 100))
            .is_some());
        assert_eq!(u.suppressed(), 5);
    }

    #[test]
    fn unifier_extend_covers_long_presses() {
        let t0 = Instant::now();
        let mut u = DtmfUnifier::default();
        assert!(u.push(ev('2', DtmfSource::Rfc4733, t0, 0)).is_some());
        // Without the extension an in-band start 1.5 s later would not overlap.
        u.extend(DtmfSource::Rfc4733, '2', t0, 2000);
        assert!(u
            .push(ev('2', DtmfSource::InBand, t0 + ms(1500), 500))
            .is_none());
    }
}
