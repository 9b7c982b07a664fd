//! Adaptive, sans-IO jitter buffer working in 20 ms frames.
//!
//! * Storage is a ring of preallocated frame slots (payload bytes copied in, no allocation
//!   per packet). Slot `k` holds the frame `k * frame_ts` after the playout point.
//! * Sample-aligned codecs (G.711: one byte per sample) are split/joined into 20 ms frames
//!   here, at 5 ms granularity, so senders with ptime 10/20/30/40/.. ms all work. A frame
//!   that is only partly present at playout is concealed as a whole.
//! * Opaque codecs (Opus) map one packet to one frame; they must use ptime 20.
//! * Playout delay `D` is measured against the fastest packet in a sliding window: a
//!   frame is played `D` after the moment it would have arrived over the fastest path.
//!   The target is `clamp(k * p95(transit - min transit), min, max)`. Below target, one
//!   frame is stretched (concealed without advancing) per tick: growth is fast, because
//!   late packets are audible. Above target + one frame + hysteresis, one frame is dropped
//!   at most every `shrink_interval`, and the target itself decays at a bounded rate:
//!   shrinking is slow, because jitter tends to come back.
//! * After `max_underrun_frames` ticks with nothing buffered (sender paused, DTX, hold),
//!   the buffer re-buffers and treats the next packet as a new talkspurt.

use std::time::{Duration, Instant};

use crate::codec::CodecKind;

const WINDOW: usize = 128;
/// Stats needed before the adaptive target is trusted.
const MIN_SAMPLES: usize = 16;
/// Sample-aligned frames are tracked in 5 ms units.
const UNITS_PER_FRAME: u32 = 4;
/// Sequence numbers remembered for duplicate detection.
const SEQ_WINDOW: u64 = 256;
/// Sequence distance beyond which a packet belongs to a restarted sequence space.
const MAX_SEQ_DROPOUT: i64 = 3000;
/// How far behind the playout point (in frames) a packet is still considered "late"
/// rather than a timestamp jump.
const LATE_WINDOW_FRAMES: i64 = 64;

/// How payload bytes relate to media time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadLayout {
    /// One byte per timestamp unit (G.711): packets may be split and joined.
    SampleAligned,
    /// Opaque frames of at most `max_payload` bytes, one packet = one 20 ms frame.
    Opaque {
        /// Largest payload accepted.
        max_payload: usize,
    },
}

/// Jitter buffer tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream.
    pub clock_rate: u32,
    /// Timestamp units per 20 ms frame.
    pub frame_ts: u32,
    /// Payload layout.
    pub layout: PayloadLayout,
    /// Number of 20 ms slots (bounds the maximum delay plus reorder headroom).
    pub capacity_frames: usize,
    /// Lower bound of the target delay.
    pub min_delay: Duration,
    /// Upper bound of the target delay.
    pub max_delay: Duration,
    /// Delay used until enough packets were seen to measure jitter.
    pub initial_delay: Duration,
    /// Multiplier `k` on the 95th-percentile jitter.
    pub jitter_factor: f32,
    /// Minimum time between two frame drops while shrinking.
    pub shrink_interval: Duration,
    /// How fast the target may decay (milliseconds of target per second).
    pub target_decay_ms_per_s: f32,
    /// Ticks with an empty buffer before re-buffering.
    pub max_underrun_frames: u32,
}

impl JitterConfig {
    /// Defaults for a codec: 20–200 ms target, 60 ms start, k = 1.5.
    pub fn for_codec(kind: CodecKind) -> Self {
        Self {
            clock_rate: kind.rtp_clock_rate(),
            frame_ts: kind.timestamp_increment_per_frame(),
            layout: if kind.is_sample_aligned() {
                PayloadLayout::SampleAligned
            } else {
                PayloadLayout::Opaque {
                    max_payload: kind.max_frame_payload(),
                }
            },
            capacity_frames: 32,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            initial_delay: Duration::from_millis(60),
            jitter_factor: 1.5,
            shrink_interval: Duration::from_millis(500),
            target_decay_ms_per_s: 20.0,
            max_underrun_frames: 5,
        }
    }
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Stored,
    /// Stored after flushing the buffer: timestamp/sequence jump.
    Resynced,
    /// Stored after a reset because the SSRC changed.
    SsrcChanged,
    /// Already seen; dropped.
    Duplicate,
    /// Its playout time has passed; dropped.
    Late,
    /// Zero-length payload; dropped.
    EmptyPayload,
    /// Payload larger than a slot (or not a whole number of samples); dropped.
    PayloadTooLarge,
}

/// Result of one playout tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop {
    /// A complete frame was copied into the output buffer.
    Packet {
        /// Payload bytes written.
        len: usize,
        /// RTP timestamp of the frame start.
        ts: u32,
        /// Sequence number of the packet carrying (the start of) the frame.
        seq: u16,
    },
    /// The frame is missing (lost, late, or the delay is being stretched): conceal.
    Missing,
    /// Nothing to play: not started yet, or re-buffering after an underrun.
    Empty,
}

/// Counters, cumulative over the buffer's life.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub received: u64,
    /// Frames missing at their playout time (lost or late). Frames concealed while the
    /// buffer was empty count only once a later packet arrives (a sender pause is not loss).
    pub lost: u64,
    /// Packets dropped because they arrived after their playout time.
    pub late: u64,
    /// Duplicate packets dropped.
    pub duplicate: u64,
    /// `Pop::Missing` results (lost + stretched).
    pub concealed: u64,
    /// Frames inserted to grow the delay.
    pub stretched: u64,
    /// Frames dropped to shrink the delay.
    pub shrunk: u64,
    /// Flushes due to timestamp/sequence jumps.
    pub resyncs: u64,
    /// Resets due to SSRC changes.
    pub ssrc_changes: u64,
    /// Transitions into re-buffering after running dry.
    pub underruns: u64,
    /// Packets rejected as malformed (empty/oversized).
    pub rejected: u64,
    /// Current playout delay above the fastest path, in ms (None before playout).
    pub current_delay_ms: Option<f32>,
    /// Current target delay in ms.
    pub target_delay_ms: f32,
    /// 95th percentile of measured jitter, in ms.
    pub jitter_p95_ms: f32,
    /// Frames currently held.
    pub buffered_frames: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    mask: u8,
    len: u16,
    seq: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Buffering { until: Instant },
    Playing,
    Underrun,
}

/// Recent sequence numbers, for duplicate detection across 16-bit wrap.
#[derive(Debug, Clone)]
struct SeqWindow {
    max_ext: Option<i64>,
    bits: [u64; (SEQ_WINDOW / 64) as usize],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeqCheck {
    New,
    Duplicate,
    /// Older than the window, or implausibly far from it.
    OutOfWindow,
}

impl SeqWindow {
    fn new() -> Self {
        Self {
            max_ext: None,
            bits: [0; (SEQ_WINDOW / 64) as usize],
        }
    }

    fn ext(&self, seq: u16) -> Option<i64> {
        self.max_ext
            .map(|m| m + i64::from(seq.wrapping_sub(m as u16) as i16))
    }

    fn bit(&mut self, idx: u64) -> (&mut u64, u64) {
        let word = (idx / 64) as usize % self.bits.len();
        (&mut self.bits[word], 1u64 << (idx % 64))
    }

    fn check_and_set(&mut self, seq: u16) -> SeqCheck {
        let Some(max) = self.max_ext else {
            self.reset_to(seq);
            return SeqCheck::New;
        };
        let ext = self.ext(seq).unwrap_or(i64::from(seq));
        if ext > max {
            let shift = (ext - max) as u64;
            if shift >= SEQ_WINDOW {
                self.bits = [0; (SEQ_WINDOW / 64) as usize];
            } else {
                for i in 1..=shift {
                    let (w, m) = self.bit((max as u64).wrapping_add(i));
                    *w &= !m;
                }
            }
            self.max_ext = Some(ext);
        } else if (max - ext) as u64 >= SEQ_WINDOW {
            return SeqCheck::OutOfWindow;
        }
        let (w, m) = self.bit(ext as u64);
        if *w & m != 0 {
            return SeqCheck::Duplicate;
        }
        *w |= m;
        SeqCheck::New
    }

    fn reset_to(&mut self, seq: u16) {
        self.bits = [0; (SEQ_WINDOW / 64) as usize];
        // Offset keeps extended values positive so the bit index never wraps oddly.
        let ext = (1i64 << 32) + i64::from(seq);
        self.max_ext = Some(ext);
        let (w, m) = self.bit(ext as u64);
        *w |= m;
    }

    /// Signed distance of `seq` from the highest seen (positive = newer).
    fn distance(&self, seq: u16) -> Option<i64> {
        Some(self.ext(seq)? - self.max_ext?)
    }
}

/// The jitter buffer; see the module docs for the policy.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    slot_bytes: usize,
    unit_ts: i64,
    full_mask: u8,
    slots: Vec<Slot>,
    data: Vec<u8>,
    head: usize,
    state: State,
    ssrc: Option<u32>,
    /// Extended timestamp of the frame at `head`.
    play_ext: i64,
    /// Newest timestamp seen and its extended value.
    ts_ref: Option<(u32, i64)>,
    seq: SeqWindow,
    epoch: Option<Instant>,
    transit: [i64; WINDOW],
    transit_len: usize,
    transit_pos: usize,
    target_us: i64,
    p95_us: i64,
    last_target_update: Option<Instant>,
    last_shrink: Option<Instant>,
    empty_run: u32,
    /// Frames concealed while nothing at all was buffered: counted as lost only once a
    /// later packet proves the stream went on (otherwise the sender simply paused).
    pending_lost: u64,
    last_delay_us: Option<i64>,
    stats: JitterStats,
}

impl JitterBuffer {
    /// Allocate all slots up front.
    pub fn new(cfg: JitterConfig) -> Self {
        let mut cfg = cfg;
        cfg.capacity_frames = cfg.capacity_frames.max(4);
        cfg.frame_ts = cfg.frame_ts.max(UNITS_PER_FRAME);
        cfg.clock_rate = cfg.clock_rate.max(1);
        let (slot_bytes, full_mask) = match cfg.layout {
            PayloadLayout::SampleAligned => (cfg.frame_ts as usize, (1u8 << UNITS_PER_FRAME) - 1),
            PayloadLayout::Opaque { max_payload } => (max_payload.max(1), 1),
        };
        let target_us = cfg.initial_delay.as_micros() as i64;
        Self {
            slot_bytes,
            unit_ts: i64::from(cfg.frame_ts / UNITS_PER_FRAME),
            full_mask,
            slots: vec![Slot::default(); cfg.capacity_frames],
            data: vec![0; cfg.capacity_frames * slot_bytes],
            head: 0,
            state: State::Idle,
            ssrc: None,
            play_ext: 0,
            ts_ref: None,
            seq: SeqWindow::new(),
            epoch: None,
            transit: [0; WINDOW],
            transit_len: 0,
            transit_pos: 0,
            target_us,
            p95_us: 0,
            last_target_update: None,
            last_shrink: None,
            empty_run: 0,
            pending_lost: 0,
            last_delay_us: None,
            stats: JitterStats {
                target_delay_ms: target_us as f32 / 1000.0,
                ..Default::default()
            },
            cfg,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// Largest payload `pop` writes: size `out_payload` at least this large.
    pub fn max_frame_payload(&self) -> usize {
        self.slot_bytes
    }

    /// Counters and delay figures.
    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.buffered_frames = self.slots.iter().filter(|s| s.mask != 0).count();
        s
    }

    /// Current target delay.
    pub fn target_delay(&self) -> Duration {
        Duration::from_micros(self.target_us.max(0) as u64)
    }

    /// Drop all state except counters and the learned target delay.
    pub fn reset(&mut self) {
        self.flush();
        self.state = State::Idle;
        self.ssrc = None;
        self.ts_ref = None;
        self.seq = SeqWindow::new();
        self.clear_transit();
    }

    fn flush(&mut self) {
        for s in &mut self.slots {
            *s = Slot::default();
        }
        self.head = 0;
        self.empty_run = 0;
        self.pending_lost = 0;
    }

    fn clear_transit(&mut self) {
        self.transit_len = 0;
        self.transit_pos = 0;
        self.last_delay_us = None;
    }

    fn us_since_epoch(&self, now: Instant) -> i64 {
        self.epoch
            .map(|e| now.saturating_duration_since(e).as_micros() as i64)
            .unwrap_or(0)
    }

    fn ts_to_us(&self, ts: i64) -> i64 {
        (i128::from(ts) * 1_000_000 / i128::from(self.cfg.clock_rate)) as i64
    }

    fn frame_ts(&self) -> i64 {
        i64::from(self.cfg.frame_ts)
    }

    /// Offer one received packet. Never allocates.
    pub fn push(
        &mut self,
        now: Instant,
        seq: u16,
        ts: u32,
        ssrc: u32,
        payload: &[u8],
    ) -> PushOutcome {
        if payload.is_empty() {
            self.stats.rejected += 1;
            return PushOutcome::EmptyPayload;
        }
        let too_large = match self.cfg.layout {
            PayloadLayout::SampleAligned => payload.len() > self.slot_bytes * self.slots.len() / 2,
            PayloadLayout::Opaque { max_payload } => payload.len() > max_payload,
        };
        if too_large {
            self.stats.rejected += 1;
            return PushOutcome::PayloadTooLarge;
        }
        if self.epoch.is_none() {
            self.epoch = Some(now);
        }
        let mut outcome = PushOutcome::Stored;
        if self.ssrc.is_some_and(|s| s != ssrc) {
            self.reset();
            self.stats.ssrc_changes += 1;
            outcome = PushOutcome::SsrcChanged;
        }
        if self.state == State::Idle {
            self.start(now, seq, ts, ssrc);
            return self.store(now, seq, ts, payload, outcome);
        }

        let ext = self.extend_ts(ts);
        let offset = ext - self.play_ext;
        let end = offset + self.payload_ts(payload.len());
        let seq_dist = self.seq.distance(seq).unwrap_or(0);
        let frame = self.frame_ts();
        let far_behind = offset < -LATE_WINDOW_FRAMES * frame;
        let far_ahead = offset >= self.slots.len() as i64 * frame;
        if far_behind || (far_ahead && self.state != State::Underrun) {
            // A timestamp jump. Believe it if the sequence number moves forward (or is in a
            // different sequence space altogether); otherwise it is a stray old packet.
            if seq_dist > 0 || seq_dist.abs() >= MAX_SEQ_DROPOUT {
                self.stats.resyncs += 1;
                self.flush();
                self.clear_transit();
                self.start(now, seq, ts, ssrc);
                let o = if outcome == PushOutcome::SsrcChanged {
                    outcome
                } else {
                    PushOutcome::Resynced
                };
                return self.store(now, seq, ts, payload, o);
            }
            self.stats.late += 1;
            return PushOutcome::Late;
        }

        match self.seq.check_and_set(seq) {
            SeqCheck::Duplicate => {
                self.stats.duplicate += 1;
                return PushOutcome::Duplicate;
            }
            SeqCheck::OutOfWindow => {
                self.stats.late += 1;
                return PushOutcome::Late;
            }
            SeqCheck::New => {}
        }
        self.record_transit(now, ext);
        self.update_target(now);

        match self.state {
            State::Underrun => {
                if offset < 0 {
                    self.stats.late += 1;
                    return PushOutcome::Late;
                }
                // New talkspurt: realign playout to it.
                self.flush();
                self.play_ext = ext;
                self.state = State::Buffering {
                    until: now + self.target_delay(),
                };
            }
            State::Buffering { .. } if offset < 0 => {
                // Not playing yet: move the playout point back to include this packet,
                // if the furthest buffered frame still fits.
                let back = (-offset + frame - 1) / frame;
                let furthest = self.furthest_filled().map_or(0, |f| f as i64);
                if furthest + back < self.slots.len() as i64 {
                    let n = self.slots.len();
                    self.head = (self.head + n - back as usize % n) % n;
                    self.play_ext -= back * frame;
                } else {
                    self.stats.late += 1;
                    return PushOutcome::Late;
                }
            }
            _ => {
                if end <= 0 {
                    self.stats.late += 1;
                    return PushOutcome::Late;
                }
            }
        }
        if self.state == State::Playing && offset >= 0 {
            self.stats.lost += self.pending_lost;
        }
        self.pending_lost = 0;
        self.place(ext - self.play_ext, seq, payload);
        self.stats.received += 1;
        outcome
    }

    fn start(&mut self, now: Instant, seq: u16, ts: u32, ssrc: u32) {
        self.ssrc = Some(ssrc);
        self.ts_ref = Some((ts, i64::from(ts)));
        self.play_ext = i64::from(ts);
        self.seq.reset_to(seq);
        self.head = 0;
        self.state = State::Buffering {
            until: now + self.target_delay(),
        };
    }

    /// Store the packet that (re)started the stream.
    fn store(
        &mut self,
        now: Instant,
        seq: u16,
        ts: u32,
        payload: &[u8],
        outcome: PushOutcome,
    ) -> PushOutcome {
        let ext = i64::from(ts);
        self.record_transit(now, ext);
        self.place(ext - self.play_ext, seq, payload);
        self.stats.received += 1;
        outcome
    }

    fn extend_ts(&mut self, ts: u32) -> i64 {
        match self.ts_ref {
            Some((rts, rext)) => {
                let ext = rext + i64::from(ts.wrapping_sub(rts) as i32);
                if ext > rext {
                    self.ts_ref = Some((ts, ext));
                }
                ext
            }
            None => {
                self.ts_ref = Some((ts, i64::from(ts)));
                i64::from(ts)
            }
        }
    }

    fn payload_ts(&self, len: usize) -> i64 {
        match self.cfg.layout {
            PayloadLayout::SampleAligned => len as i64,
            PayloadLayout::Opaque { .. } => self.frame_ts(),
        }
    }

    fn furthest_filled(&self) -> Option<usize> {
        let n = self.slots.len();
        (0..n)
            .rev()
            .find(|&k| self.slots[(self.head + k) % n].mask != 0)
    }

    /// Copy a packet whose start is `offset` ts units after the playout point into the
    /// slots it covers (parts before the playout point or beyond capacity are dropped).
    fn place(&mut self, offset: i64, seq: u16, payload: &[u8]) {
        let n = self.slots.len();
        let frame = self.frame_ts();
        match self.cfg.layout {
            PayloadLayout::Opaque { .. } => {
                let k = offset.div_euclid(frame);
                if !(0..n as i64).contains(&k) {
                    return;
                }
                let idx = (self.head + k as usize) % n;
                let base = idx * self.slot_bytes;
                if let Some(dst) = self.data.get_mut(base..base + payload.len()) {
                    dst.copy_from_slice(payload);
                    self.slots[idx] = Slot {
                        mask: 1,
                        len: payload.len() as u16,
                        seq,
                    };
                }
            }
            PayloadLayout::SampleAligned => {
                let start = offset;
                let end = offset + payload.len() as i64;
                let first = start.max(0).div_euclid(frame);
                let last = (end - 1).div_euclid(frame).min(n as i64 - 1);
                for k in first..=last {
                    let f0 = k * frame;
                    let lo = start.max(f0);
                    let hi = end.min(f0 + frame);
                    if lo >= hi {
                        continue;
                    }
                    let idx = (self.head + k as usize) % n;
                    let base = idx * self.slot_bytes;
                    let src = &payload[(lo - start) as usize..(hi - start) as usize];
                    let d0 = base + (lo - f0) as usize;
                    if let Some(dst) = self.data.get_mut(d0..d0 + src.len()) {
                        dst.copy_from_slice(src);
                    }
                    let slot = &mut self.slots[idx];
                    if slot.mask == 0 || lo == f0 {
                        slot.seq = seq;
                    }
                    for u in 0..UNITS_PER_FRAME as i64 {
                        let u0 = f0 + u * self.unit_ts;
                        if lo <= u0 && u0 + self.unit_ts <= hi {
                            slot.mask |= 1 << u;
                        }
                    }
                    slot.len = self.slot_bytes as u16;
                }
            }
        }
    }

    fn record_transit(&mut self, now: Instant, ext: i64) {
        let transit = self.us_since_epoch(now) - self.ts_to_us(ext);
        self.transit[self.transit_pos] = transit;
        self.transit_pos = (self.transit_pos + 1) % WINDOW;
        self.transit_len = (self.transit_len + 1).min(WINDOW);
    }

    fn min_transit(&self) -> Option<i64> {
        self.transit[..self.transit_len].iter().copied().min()
    }

    fn update_target(&mut self, now: Instant) {
        if self.transit_len < MIN_SAMPLES {
            return;
        }
        let Some(min) = self.min_transit() else {
            return;
        };
        let mut scratch = [0i64; WINDOW];
        let n = self.transit_len;
        for (d, &t) in scratch.iter_mut().zip(&self.transit[..n]) {
            *d = t - min;
        }
        let idx = ((n * 95).div_ceil(100)).saturating_sub(1).min(n - 1);
        let (_, p95, _) = scratch[..n].select_nth_unstable(idx);
        self.p95_us = *p95;
        let want = (self.p95_us as f64 * f64::from(self.cfg.jitter_factor)) as i64;
        let want = want.clamp(
            self.cfg.min_delay.as_micros() as i64,
            self.cfg.max_delay.as_micros() as i64,
        );
        let elapsed = self
            .last_target_update
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.last_target_update = Some(now);
        if want >= self.target_us {
            self.target_us = want;
        } else {
            let decay =
                (elapsed.as_secs_f64() * f64::from(self.cfg.target_decay_ms_per_s) * 1000.0) as i64;
            self.target_us = want.max(self.target_us - decay);
        }
        self.stats.target_delay_ms = self.target_us as f32 / 1000.0;
        self.stats.jitter_p95_ms = self.p95_us as f32 / 1000.0;
    }

    /// Playout delay of the head frame above the fastest observed path.
    fn current_delay_us(&self, now: Instant) -> Option<i64> {
        if self.transit_len < MIN_SAMPLES {
            return None;
        }
        let min = self.min_transit()?;
        Some(self.us_since_epoch(now) - self.ts_to_us(self.play_ext) - min)
    }

    /// Payload of the frame at the playout point, if complete (for Opus FEC after a loss).
    pub fn peek_head_payload(&self) -> Option<&[u8]> {
        let slot = self.slots.get(self.head)?;
        if slot.mask != self.full_mask {
            return None;
        }
        let base = self.head * self.slot_bytes;
        self.data.get(base..base + slot.len as usize)
    }

    fn advance(&mut self) {
        self.slots[self.head] = Slot::default();
        self.head = (self.head + 1) % self.slots.len();
        self.play_ext += self.frame_ts();
    }

    /// One 20 ms playout tick.
    pub fn pop(&mut self, now: Instant, out_payload: &mut [u8]) -> Pop {
        match self.state {
            State::Idle | State::Underrun => return Pop::Empty,
            State::Buffering { until } => {
                if now < until {
                    return Pop::Empty;
                }
                self.state = State::Playing;
            }
            State::Playing => {}
        }
        let delay = self.current_delay_us(now);
        self.last_delay_us = delay;
        self.stats.current_delay_ms = delay.map(|d| d as f32 / 1000.0);
        let n = self.slots.len();
        let head_full = self.slots[self.head].mask == self.full_mask;
        if let Some(d) = delay {
            if d < self.target_us {
                self.stats.stretched += 1;
                self.stats.concealed += 1;
                return Pop::Missing;
            }
            let next_full = self.slots[(self.head + 1) % n].mask == self.full_mask;
            let cooled = self
                .last_shrink
                .is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.shrink_interval);
            let hysteresis = self.frame_us() / 2;
            if head_full
                && next_full
                && cooled
                && d >= self.target_us + self.frame_us() + hysteresis
            {
                self.advance();
                self.stats.shrunk += 1;
                self.last_shrink = Some(now);
            }
        }
        let slot = self.slots[self.head];
        if slot.mask == self.full_mask {
            let len = slot.len as usize;
            let base = self.head * self.slot_bytes;
            let copied = match (out_payload.get_mut(..len), self.data.get(base..base + len)) {
                (Some(dst), Some(src)) => {
                    dst.copy_from_slice(src);
                    true
                }
                _ => false,
            };
            let ts = self.play_ext as u32;
            self.advance();
            self.empty_run = 0;
            if copied {
                return Pop::Packet {
                    len,
                    ts,
                    seq: slot.seq,
                };
            }
            self.stats.lost += 1;
            self.stats.concealed += 1;
            return Pop::Missing;
        }
        let anything_later = (1..n).any(|k| self.slots[(self.head + k) % n].mask != 0);
        if !anything_later {
            self.empty_run += 1;
            if self.empty_run > self.cfg.max_underrun_frames {
                self.state = State::Underrun;
                self.stats.underruns += 1;
                self.flush();
                return Pop::Empty;
            }
            self.pending_lost += 1;
        } else {
            self.empty_run = 0;
            self.stats.lost += 1;
        }
        self.advance();
        self.stats.concealed += 1;
        Pop::Missing
    }

    fn frame_us(&self) -> i64 {
        self.ts_to_us(self.frame_ts())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::SplitMix64;

    const F: u32 = 160;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Start at the minimum delay so that the fixed-delay tests see no shrink events.
    fn cfg() -> JitterConfig {
        JitterConfig {
            initial_delay: ms(20),
            ..JitterConfig::for_codec(CodecKind::Pcmu)
        }
    }

    fn payload(seq: u16) -> [u8; 160] {
        [seq as u8; 160]
    }

    /// Drive a buffer with 20 ms ticks; packets given as (arrival ms, seq, ts, payload len).
    struct Sim {
        jb: JitterBuffer,
        t0: Instant,
        out: Vec<Pop>,
        bytes: Vec<u8>,
    }

    impl Sim {
        fn new(c: JitterConfig) -> Self {
            Self {
                jb: JitterBuffer::new(c),
                t0: Instant::now(),
                out: Vec::new(),
                bytes: Vec::new(),
            }
        }
        fn at(&self, ms_: u64) -> Instant {
            self.t0 + ms(ms_)
        }
        fn push(&mut self, at_ms: u64, seq: u16, ts: u32, data: &[u8]) -> PushOutcome {
            let t = self.at(at_ms);
            self.jb.push(t, seq, ts, 1, data)
        }
        fn pop(&mut self, at_ms: u64) -> Pop {
            let mut buf = [0u8; 2048];
            let p = self.jb.pop(self.at(at_ms), &mut buf);
            if let Pop::Packet { len, .. } = p {
                self.bytes.push(buf[0]);
                assert_eq!(len, 160);
            }
            self.out.push(p);
            p
        }
        /// Events: packets sorted by arrival interleaved with pops at multiples of 20 ms
        /// (offset 1 ms after the send grid).
        fn run(&mut self, mut pkts: Vec<(u64, u16, u32)>, until_ms: u64) {
            pkts.sort_by_key(|p| p.0);
            let mut i = 0;
            let mut tick = 1;
            while tick <= until_ms {
                while i < pkts.len() && pkts[i].0 <= tick {
                    let (a, s, t) = pkts[i];
                    self.push(a, s, t, &payload(s));
                    i += 1;
                }
                self.pop(tick);
                tick += 20;
            }
        }
        fn count(&self, f: impl Fn(&Pop) -> bool) -> usize {
            self.out.iter().filter(|p| f(p)).count()
        }
    }

    fn stream(n: u16, seq0: u16, ts0: u32, delay: impl Fn(u16) -> u64) -> Vec<(u64, u16, u32)> {
        (0..n)
            .map(|i| {
                (
                    u64::from(i) * 20 + delay(i),
                    seq0.wrapping_add(i),
                    ts0.wrapping_add(u32::from(i) * F),
                )
            })
            .collect()
    }

    #[test]
    fn in_order_stream_plays_every_frame_once_in_order() {
        let mut s = Sim::new(cfg());
        s.run(stream(200, 100, 5000, |_| 5), 200 * 20 + 100);
        let played: Vec<u16> = s
            .out
            .iter()
            .filter_map(|p| match p {
                Pop::Packet { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(s.jb.stats().shrunk, 0);
        assert!(played.len() >= 195, "played {}", played.len());
        assert!(
            played.windows(2).all(|w| w[1] == w[0] + 1),
            "in order, no gaps"
        );
        let st = s.jb.stats();
        assert_eq!(st.received, 200);
        assert_eq!((st.lost, st.late, st.duplicate), (0, 0, 0));
        // Starts with Empty (buffering), never conceals after that.
        assert!(matches!(s.out[0], Pop::Empty));
        let first_packet = s
            .out
            .iter()
            .position(|p| matches!(p, Pop::Packet { .. }))
            .unwrap();
        assert!(s.out[first_packet..]
            .iter()
            .take(190)
            .all(|p| matches!(p, Pop::Packet { .. })));
    }

    #[test]
    fn reordered_packets_within_delay_are_played_in_order() {
        let mut s = Sim::new(cfg());
        // Swap every pair of packets (the even one arrives 25 ms late).
        let pk = stream(100, 0, 0, |i| if i % 2 == 0 { 25 } else { 0 });
        s.run(pk, 100 * 20 + 200);
        let played: Vec<u16> = s
            .out
            .iter()
            .filter_map(|p| match p {
                Pop::Packet { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert!(played.windows(2).all(|w| w[1] > w[0]));
        assert!(played.len() >= 98, "{}", played.len());
        assert_eq!(s.jb.stats().late, 0);
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let mut s = Sim::new(cfg());
        let mut pk = stream(50, 65500, 0, |_| 0);
        let dups: Vec<_> = pk
            .iter()
            .step_by(5)
            .map(|&(a, q, t)| (a + 7, q, t))
            .collect();
        pk.extend(dups);
        s.run(pk, 50 * 20 + 200);
        let st = s.jb.stats();
        assert_eq!(st.duplicate, 10);
        assert_eq!(st.received, 50);
        assert_eq!(s.count(|p| matches!(p, Pop::Packet { .. })), 50);
    }

    #[test]
    fn burst_loss_is_concealed_frame_for_frame() {
        let mut s = Sim::new(cfg());
        let pk: Vec<_> = stream(100, 10, 0, |_| 2)
            .into_iter()
            .filter(|p| !(40..45).contains(&(p.1 - 10)))
            .collect();
        s.run(pk, 100 * 20 + 200);
        let st = s.jb.stats();
        assert_eq!(st.lost, 5);
        // Plus the fade-out after the stream ends, which is not counted as loss.
        assert_eq!(st.concealed, 5 + u64::from(cfg().max_underrun_frames));
        assert_eq!(st.underruns, 1);
        let at49 = s
            .out
            .iter()
            .position(|p| matches!(p, Pop::Packet { seq: 49, .. }))
            .unwrap();
        // Exactly a 5-frame hole at the right place.
        assert!(s.out[at49 + 1..at49 + 6].iter().all(|p| *p == Pop::Missing));
        assert!(matches!(s.out[at49 + 6], Pop::Packet { seq: 55, .. }));
    }

    #[test]
    fn late_packets_are_dropped_and_counted_once() {
        let mut s = Sim::new(cfg());
        // Packet 30 arrives 400 ms late; the buffer target is ~60 ms.
        let pk = stream(60, 0, 0, |i| if i == 30 { 400 } else { 0 });
        s.run(pk, 60 * 20 + 100);
        let st = s.jb.stats();
        assert_eq!(st.late, 1);
        assert!(st.lost >= 1);
        assert_eq!(s.count(|p| matches!(p, Pop::Packet { seq: 30, .. })), 0);
    }

    #[test]
    fn sequence_and_timestamp_wrap_are_seamless() {
        let mut s = Sim::new(cfg());
        let pk = stream(100, 65500, u32::MAX - 50 * F + 1, |_| 3);
        s.run(pk, 100 * 20 + 200);
        let st = s.jb.stats();
        assert_eq!((st.lost, st.late, st.resyncs), (0, 0, 0));
        assert_eq!(s.count(|p| matches!(p, Pop::Packet { .. })), 100);
        let ts: Vec<u32> = s
            .out
            .iter()
            .filter_map(|p| match p {
                Pop::Packet { ts, .. } => Some(*ts),
                _ => None,
            })
            .collect();
        assert!(ts.windows(2).all(|w| w[1] == w[0].wrapping_add(F)));
    }

    #[test]
    fn timestamp_jump_resyncs_instead_of_stalling() {
        let mut s = Sim::new(cfg());
        let mut pk = stream(50, 0, 0, |_| 0);
        // Sender jumps its timestamp by ~1 hour, sequence continues.
        pk.extend(
            stream(50, 50, 28_800_000, |_| 0)
                .into_iter()
                .map(|(a, q, t)| (a + 1000, q, t)),
        );
        s.run(pk, 100 * 20 + 300);
        let st = s.jb.stats();
        assert_eq!(st.resyncs, 1);
        assert_eq!(st.late, 0);
        let played = s.count(|p| matches!(p, Pop::Packet { .. }));
        assert!(played >= 95, "played {played}");
        assert!(st.concealed <= 5, "{st:?}");
    }

    #[test]
    fn stray_ancient_packet_does_not_resync() {
        let mut s = Sim::new(cfg());
        let mut pk = stream(100, 1000, 1_000_000, |_| 0);
        // A copy of an old packet (seq/ts from 2 s earlier) shows up.
        pk.push((1500, 1000 - 5, 1_000_000 - 100 * F));
        s.run(pk, 100 * 20 + 200);
        let st = s.jb.stats();
        assert_eq!(st.resyncs, 0);
        assert_eq!(st.late, 1);
    }

    #[test]
    fn ssrc_change_resets_the_stream() {
        let mut s = Sim::new(cfg());
        let t = s.at(0);
        assert_eq!(s.jb.push(t, 1, 100, 7, &payload(1)), PushOutcome::Stored);
        assert_eq!(s.jb.push(t, 2, 260, 7, &payload(2)), PushOutcome::Stored);
        let t = s.at(30);
        assert_eq!(
            s.jb.push(t, 9000, 77, 8, &payload(3)),
            PushOutcome::SsrcChanged
        );
        // Old packets from the first SSRC are gone; playout starts at the new stream.
        let mut buf = [0u8; 200];
        let mut first = None;
        for k in 0..20 {
            if let Pop::Packet { seq, ts, .. } = s.jb.pop(s.at(40 + k * 20), &mut buf) {
                first = Some((seq, ts));
                break;
            }
        }
        assert_eq!(first, Some((9000, 77)));
        assert_eq!(s.jb.stats().ssrc_changes, 1);
    }

    #[test]
    fn ptime_10_30_40_are_rejoined_into_20ms_frames() {
        for ptime in [10u32, 30, 40] {
            let mut s = Sim::new(cfg());
            let samples = ptime * 8;
            let n = (2000 / ptime) as u16;
            let mut src = Vec::new(); // continuous ramp so byte order can be checked
            for i in 0..(u32::from(n) * samples) {
                src.push((i / 160) as u8);
            }
            let mut pk = Vec::new();
            for i in 0..n {
                let a = u64::from(i) * u64::from(ptime) + u64::from(ptime);
                let ts = 40_000 + u32::from(i) * samples;
                let off = (u32::from(i) * samples) as usize;
                pk.push((a, i, ts, src[off..off + samples as usize].to_vec()));
            }
            let mut i = 0;
            let mut frames = Vec::new();
            let mut tick = 1;
            while tick < 2400 {
                while i < pk.len() && pk[i].0 <= tick {
                    let (a, q, t, ref d) = pk[i];
                    let at = s.at(a);
                    assert_eq!(s.jb.push(at, q, t, 1, d), PushOutcome::Stored);
                    i += 1;
                }
                let mut buf = [0u8; 160];
                if let Pop::Packet { len, ts, .. } = s.jb.pop(s.at(tick), &mut buf) {
                    assert_eq!(len, 160);
                    assert!(
                        buf.iter().all(|&b| b == buf[0]),
                        "ptime {ptime}: frame mixes sources"
                    );
                    assert_eq!(u32::from(buf[0]), (ts - 40_000) / 160);
                    frames.push(buf[0]);
                }
                tick += 20;
            }
            assert!(frames.len() >= 95, "ptime {ptime}: {} frames", frames.len());
            assert!(frames.windows(2).all(|w| w[1] == w[0] + 1), "ptime {ptime}");
            assert_eq!(s.jb.stats().lost, 0, "ptime {ptime}");
        }
    }

    #[test]
    fn hostile_inputs_are_rejected() {
        let mut jb = JitterBuffer::new(cfg());
        let t = Instant::now();
        assert_eq!(jb.push(t, 1, 1, 1, &[]), PushOutcome::EmptyPayload);
        assert_eq!(
            jb.push(t, 1, 1, 1, &[0u8; 5000]),
            PushOutcome::PayloadTooLarge
        );
        let mut ob = JitterBuffer::new(JitterConfig::for_codec(CodecKind::Opus));
        assert_eq!(
            ob.push(t, 1, 1, 1, &[0u8; 2000]),
            PushOutcome::PayloadTooLarge
        );
        // Random garbage seq/ts never panics.
        let mut r = SplitMix64::new(3);
        let mut buf = [0u8; 160];
        for i in 0..5000u64 {
            let x = r.next_u64();
            let len = (x % 400) as usize;
            let data = vec![0u8; len];
            jb.push(
                t + ms(i),
                x as u16,
                (x >> 16) as u32,
                (x >> 60) as u32,
                &data,
            );
            jb.pop(t + ms(i), &mut buf);
        }
    }

    /// Delay adapts: grows when jitter appears, shrinks (slowly) after it goes away.
    #[test]
    fn adaptive_delay_grows_under_jitter_and_shrinks_after() {
        let mut s = Sim::new(JitterConfig::for_codec(CodecKind::Pcmu));
        let mut rng = SplitMix64::new(42);
        let mut pk = Vec::new();
        let mut seq = 0u16;
        // 0-10 s calm (0-2 ms jitter), 10-20 s heavy (0-120 ms), 20-60 s calm again.
        for i in 0..3000u32 {
            let t = u64::from(i) * 20;
            let j = if (500..1000).contains(&i) { 120.0 } else { 2.0 };
            let d = (rng.next_f64() * j) as u64;
            pk.push((t + 10 + d, seq, i * F));
            seq = seq.wrapping_add(1);
        }
        pk.sort_by_key(|p| p.0);
        let mut i = 0;
        let mut tick = 1;
        let mut delays = Vec::new();
        let mut late_at = Vec::new();
        while tick < 60_200 {
            while i < pk.len() && pk[i].0 <= tick {
                let (a, q, t) = pk[i];
                if s.push(a, q, t, &payload(q)) == PushOutcome::Late {
                    late_at.push(a);
                }
                i += 1;
            }
            s.pop(tick);
            delays.push((
                tick,
                s.jb.stats().target_delay_ms,
                s.jb.stats().current_delay_ms,
            ));
            tick += 20;
        }
        let at = |t: u64| delays.iter().find(|d| d.0 >= t).copied().unwrap();
        let calm = at(9_900);
        let jittery = at(19_900);
        let after = at(59_900);
        assert!(calm.1 <= 30.0, "calm target {calm:?}");
        assert!(jittery.1 >= 120.0, "target under jitter {jittery:?}");
        assert!(
            jittery.2.unwrap() >= 120.0,
            "delay under jitter {jittery:?}"
        );
        assert!(after.1 <= 30.0, "target after {after:?}");
        assert!(after.2.unwrap() <= 60.0, "delay after {after:?}");
        // Shrinking was gradual: no drop of more than one frame per shrink interval.
        let st = s.jb.stats();
        assert!(st.shrunk >= 4, "{st:?}");
        // Once adapted (after the first second of jitter) hardly anything is late.
        let late_adapted = late_at.iter().filter(|&&a| a > 11_000).count();
        assert!(
            late_adapted <= 10,
            "late after adaptation: {late_adapted} ({st:?})"
        );
        assert!(
            st.late >= 1,
            "the jitter onset must have caused some late packets"
        );
    }
}
