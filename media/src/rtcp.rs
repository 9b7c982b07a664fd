//! RTCP (RFC 3550 §6): compound SR/RR + SDES CNAME building, SR/RR/SDES/BYE parsing,
//! receiver statistics (appendix A.1, A.3, A.8), round-trip time from LSR/DLSR and the
//! randomised report interval (A.7).
//!
//! Parsing is zero-copy: report blocks and SSRC lists are views over the datagram,
//! so handling a peer report never allocates.

use std::time::{Duration, Instant};

/// RTCP packet types.
pub const PT_SR: u8 = 200;
/// Receiver report.
pub const PT_RR: u8 = 201;
/// Source description.
pub const PT_SDES: u8 = 202;
/// Goodbye.
pub const PT_BYE: u8 = 203;
/// SDES item type for CNAME.
pub const SDES_CNAME: u8 = 1;

const REPORT_BLOCK_LEN: usize = 24;

/// Why an RTCP datagram was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpParseError {
    /// Fewer than 4 bytes left for a packet header.
    #[error("truncated RTCP header at offset {0}")]
    TruncatedHeader(usize),
    /// Version is not 2.
    #[error("unsupported RTCP version {0}")]
    BadVersion(u8),
    /// Length field points past the end of the datagram.
    #[error("RTCP length field ({words} words) exceeds datagram at offset {offset}")]
    LengthOverflow {
        /// Offset of the packet header.
        offset: usize,
        /// Declared length in 32-bit words minus one.
        words: u16,
    },
    /// SR/RR too short for its fixed part plus the declared report blocks.
    #[error("packet type {packet_type} too short for {count} report blocks")]
    ReportBlocksOverflow {
        /// RTCP packet type.
        packet_type: u8,
        /// Declared report count.
        count: u8,
    },
    /// BYE or SDES body shorter than its source count requires.
    #[error("packet type {packet_type} body malformed")]
    MalformedBody {
        /// RTCP packet type.
        packet_type: u8,
    },
    /// Padding flag with an invalid padding count.
    #[error("invalid RTCP padding")]
    BadPadding,
}

/// Why an RTCP packet could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpBuildError {
    /// The output buffer is too small.
    #[error("RTCP output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes required so far.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// More than 31 report blocks or SSRCs in one packet.
    #[error("{0} entries exceed the 5-bit count field")]
    TooManyEntries(usize),
    /// CNAME longer than 255 bytes.
    #[error("CNAME of {0} bytes exceeds 255")]
    CnameTooLong(usize),
}

/// 64-bit NTP timestamp (32.32 fixed point seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// NTP time `d` after the NTP epoch (or after any other base the caller chose).
    pub fn from_duration(d: Duration) -> Self {
        let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        NtpTime((d.as_secs() << 32).wrapping_add(frac))
    }

    /// The middle 32 bits, as carried in LSR.
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// Convert a 16.16 fixed-point seconds value (DLSR, RTT) to a `Duration`.
pub fn duration_from_q16(v: u32) -> Duration {
    Duration::from_nanos((u64::from(v) * 1_000_000_000) >> 16)
}

/// Convert a `Duration` to 16.16 fixed-point seconds, saturating.
pub fn q16_from_duration(d: Duration) -> u32 {
    let v = (d.as_nanos() << 16) / 1_000_000_000;
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// Source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from `ssrc` (0 if none).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8]) -> Option<Self> {
        let lost = u32::from_be_bytes([0, *b.get(5)?, *b.get(6)?, *b.get(7)?]);
        // Sign-extend the 24-bit cumulative loss.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        Some(Self {
            ssrc: be32(b, 0)?,
            fraction_lost: *b.get(4)?,
            cumulative_lost,
            extended_highest_seq: be32(b, 8)?,
            jitter: be32(b, 12)?,
            last_sr: be32(b, 16)?,
            delay_since_last_sr: be32(b, 20)?,
        })
    }

    fn write(&self, out: &mut [u8; REPORT_BLOCK_LEN]) {
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0xFF_FFFF;
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        out[4..8].copy_from_slice(&(u32::from(self.fraction_lost) << 24 | lost).to_be_bytes());
        out[8..12].copy_from_slice(&self.extended_highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        out[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }

    /// Round-trip time implied by this block (RFC 3550 §6.4.1), given our NTP clock now.
    /// `None` when the peer has not seen an SR from us yet or the result is negative.
    pub fn round_trip_time(&self, ntp_now: NtpTime) -> Option<Duration> {
        if self.last_sr == 0 {
            return None;
        }
        let rtt = ntp_now
            .middle32()
            .wrapping_sub(self.last_sr)
            .wrapping_sub(self.delay_since_last_sr);
        if (rtt as i32) < 0 {
            return None;
        }
        Some(duration_from_q16(rtt))
    }
}

/// Zero-copy view over consecutive report blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a>(&'a [u8]);

impl<'a> ReportBlocks<'a> {
    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.0.len() / REPORT_BLOCK_LEN
    }

    /// True when there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Iterate the blocks.
    pub fn iter(&self) -> impl Iterator<Item = ReportBlock> + 'a {
        self.0
            .chunks_exact(REPORT_BLOCK_LEN)
            .filter_map(ReportBlock::parse)
    }
}

/// Sender information of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// Wallclock (or session-relative) NTP time of the report.
    pub ntp: NtpTime,
    /// RTP timestamp corresponding to `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent so far.
    pub packet_count: u32,
    /// Payload octets sent so far.
    pub octet_count: u32,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// Sender report.
    SenderReport {
        /// Sender SSRC.
        ssrc: u32,
        /// Sender info block.
        info: SenderInfo,
        /// Reception report blocks.
        reports: ReportBlocks<'a>,
    },
    /// Receiver report.
    ReceiverReport {
        /// Reporter SSRC.
        ssrc: u32,
        /// Reception report blocks.
        reports: ReportBlocks<'a>,
    },
    /// Source description; see [`sdes_cnames`].
    SourceDescription {
        /// Number of chunks.
        count: u8,
        /// Raw chunk data.
        body: &'a [u8],
    },
    /// Goodbye.
    Bye {
        /// Sources leaving (4 bytes each; see [`RtcpPacket::bye_ssrcs`]).
        ssrcs: &'a [u8],
        /// Optional reason text.
        reason: Option<&'a [u8]>,
    },
    /// Any other packet type (APP, feedback, XR, ...), passed through unparsed.
    Other {
        /// Packet type.
        packet_type: u8,
        /// Count/format field.
        count: u8,
        /// Body after the 4-byte header.
        body: &'a [u8],
    },
}

impl<'a> RtcpPacket<'a> {
    /// SSRCs of a BYE (empty for other packets).
    pub fn bye_ssrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let s: &'a [u8] = match self {
            RtcpPacket::Bye { ssrcs, .. } => ssrcs,
            _ => &[],
        };
        s.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// CNAMEs in an SDES body: `(ssrc, cname)` per chunk that has one.
pub fn sdes_cnames(body: &[u8], count: u8) -> impl Iterator<Item = (u32, &[u8])> + '_ {
    let mut pos = 0usize;
    let mut left = count;
    std::iter::from_fn(move || {
        while left > 0 {
            left -= 1;
            let ssrc = be32(body, pos)?;
            pos += 4;
            let mut cname = None;
            loop {
                let ty = *body.get(pos)?;
                if ty == 0 {
                    // End of items: skip to the next 32-bit boundary.
                    pos = (pos + 4) & !3;
                    break;
                }
                let len = *body.get(pos + 1)? as usize;
                let text = body.get(pos + 2..pos + 2 + len)?;
                if ty == SDES_CNAME {
                    cname = Some(text);
                }
                pos += 2 + len;
            }
            if let Some(c) = cname {
                return Some((ssrc, c));
            }
        }
        None
    })
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *d.get(at)?,
        *d.get(at + 1)?,
        *d.get(at + 2)?,
        *d.get(at + 3)?,
    ]))
}

/// Iterate the packets of a compound RTCP datagram; stops after the first error.
pub fn parse_compound(data: &[u8]) -> impl Iterator<Item = Result<RtcpPacket<'_>, RtcpParseError>> {
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= data.len() {
            return None;
        }
        let r = parse_one(data, pos);
        match r {
            Ok((p, next)) => {
                pos = next;
                Some(Ok(p))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

fn parse_one(data: &[u8], pos: usize) -> Result<(RtcpPacket<'_>, usize), RtcpParseError> {
    let hdr = data
        .get(pos..pos + 4)
        .ok_or(RtcpParseError::TruncatedHeader(pos))?;
    let version = hdr[0] >> 6;
    if version != 2 {
        return Err(RtcpParseError::BadVersion(version));
    }
    let padding = hdr[0] & 0x20 != 0;
    let count = hdr[0] & 0x1F;
    let pt = hdr[1];
    let words = u16::from_be_bytes([hdr[2], hdr[3]]);
    let end = pos + 4 + 4 * words as usize;
    let mut body = data
        .get(pos + 4..end)
        .ok_or(RtcpParseError::LengthOverflow { offset: pos, words })?;
    if padding {
        let pad = *body.last().ok_or(RtcpParseError::BadPadding)? as usize;
        if pad == 0 || pad > body.len() {
            return Err(RtcpParseError::BadPadding);
        }
        body = &body[..body.len() - pad];
    }
    let blocks = |fixed: usize| -> Result<ReportBlocks<'_>, RtcpParseError> {
        body.get(fixed..fixed + REPORT_BLOCK_LEN * count as usize)
            .map(ReportBlocks)
            .ok_or(RtcpParseError::ReportBlocksOverflow {
                packet_type: pt,
                count,
            })
    };
    let malformed = RtcpParseError::MalformedBody { packet_type: pt };
    let packet = match pt {
        PT_SR => {
            let reports = blocks(24)?;
            let ntp_hi = be32(body, 4).ok_or(malformed)?;
            let ntp_lo = be32(body, 8).ok_or(malformed)?;
            RtcpPacket::SenderReport {
                ssrc: be32(body, 0).ok_or(malformed)?,
                info: SenderInfo {
                    ntp: NtpTime(u64::from(ntp_hi) << 32 | u64::from(ntp_lo)),
                    rtp_timestamp: be32(body, 12).ok_or(malformed)?,
                    packet_count: be32(body, 16).ok_or(malformed)?,
                    octet_count: be32(body, 20).ok_or(malformed)?,
                },
                reports,
            }
        }
        PT_RR => RtcpPacket::ReceiverReport {
            ssrc: be32(body, 0).ok_or(malformed)?,
            reports: blocks(4)?,
        },
        PT_SDES => RtcpPacket::SourceDescription { count, body },
        PT_BYE => {
            let n = 4 * count as usize;
            let ssrcs = body.get(..n).ok_or(malformed)?;
            let reason = match body.get(n) {
                Some(&len) => Some(body.get(n + 1..n + 1 + len as usize).ok_or(malformed)?),
                None => None,
            };
            RtcpPacket::Bye { ssrcs, reason }
        }
        _ => RtcpPacket::Other {
            packet_type: pt,
            count,
            body,
        },
    };
    Ok((packet, end))
}

/// Writes a compound RTCP datagram into a caller-provided buffer.
#[derive(Debug)]
pub struct RtcpWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> RtcpWriter<'a> {
    /// Start writing at the beginning of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    fn reserve(&mut self, n: usize) -> Result<&mut [u8], RtcpBuildError> {
        let available = self.buf.len();
        let start = self.pos;
        let dst = self
            .buf
            .get_mut(start..start + n)
            .ok_or(RtcpBuildError::BufferTooSmall {
                needed: start + n,
                available,
            })?;
        self.pos += n;
        Ok(dst)
    }

    fn header(dst: &mut [u8], count: usize, pt: u8, len_bytes: usize) {
        dst[0] = 0x80 | count as u8;
        dst[1] = pt;
        let words = (len_bytes / 4 - 1) as u16;
        dst[2..4].copy_from_slice(&words.to_be_bytes());
    }

    /// Append a sender report.
    pub fn sender_report(
        &mut self,
        ssrc: u32,
        info: &SenderInfo,
        reports: &[ReportBlock],
    ) -> Result<(), RtcpBuildError> {
        if reports.len() > 31 {
            return Err(RtcpBuildError::TooManyEntries(reports.len()));
        }
        let len = 28 + REPORT_BLOCK_LEN * reports.len();
        let dst = self.reserve(len)?;
        Self::header(dst, reports.len(), PT_SR, len);
        dst[4..8].copy_from_slice(&ssrc.to_be_bytes());
        dst[8..16].copy_from_slice(&info.ntp.0.to_be_bytes());
        dst[16..20].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
        dst[20..24].copy_from_slice(&info.packet_count.to_be_bytes());
        dst[24..28].copy_from_slice(&info.octet_count.to_be_bytes());
        write_blocks(&mut dst[28..], reports);
        Ok(())
    }

    /// Append a receiver report.
    pub fn receiver_report(
        &mut self,
        ssrc: u32,
        reports: &[ReportBlock],
    ) -> Result<(), RtcpBuildError> {
        if reports.len() > 31 {
            return Err(RtcpBuildError::TooManyEntries(reports.len()));
        }
        let len = 8 + REPORT_BLOCK_LEN * reports.len();
        let dst = self.reserve(len)?;
        Self::header(dst, reports.len(), PT_RR, len);
        dst[4..8].copy_from_slice(&ssrc.to_be_bytes());
        write_blocks(&mut dst[8..], reports);
        Ok(())
    }

    /// Append an SDES packet with a single CNAME chunk.
    pub fn sdes_cname(&mut self, ssrc: u32, cname: &str) -> Result<(), RtcpBuildError> {
        let c = cname.as_bytes();
        if c.len() > 255 {
            return Err(RtcpBuildError::CnameTooLong(c.len()));
        }
        // ssrc + type + len + text + at least one null, padded to 4.
        let chunk = (4 + 2 + c.len() + 1).div_ceil(4) * 4;
        let len = 4 + chunk;
        let dst = self.reserve(len)?;
        Self::header(dst, 1, PT_SDES, len);
        dst[4..8].copy_from_slice(&ssrc.to_be_bytes());
        dst[8] = SDES_CNAME;
        dst[9] = c.len() as u8;
        dst[10..10 + c.len()].copy_from_slice(c);
        dst[10 + c.len()..].fill(0);
        Ok(())
    }

    /// Append a BYE for `ssrcs`.
    pub fn bye(&mut self, ssrcs: &[u32]) -> Result<(), RtcpBuildError> {
        if ssrcs.len() > 31 {
            return Err(RtcpBuildError::TooManyEntries(ssrcs.len()));
        }
        let len = 4 + 4 * ssrcs.len();
        let dst = self.reserve(len)?;
        Self::header(dst, ssrcs.len(), PT_BYE, len);
        for (chunk, s) in dst[4..].chunks_exact_mut(4).zip(ssrcs) {
            chunk.copy_from_slice(&s.to_be_bytes());
        }
        Ok(())
    }
}

fn write_blocks(dst: &mut [u8], reports: &[ReportBlock]) {
    for (chunk, r) in dst.chunks_exact_mut(REPORT_BLOCK_LEN).zip(reports) {
        if let Ok(arr) = <&mut [u8; REPORT_BLOCK_LEN]>::try_from(chunk) {
            r.write(arr);
        }
    }
}

const RTP_SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const MIN_SEQUENTIAL: u32 = 2;

/// Per-source receiver statistics, RFC 3550 appendix A.1 (sequence validation with
/// probation), A.3 (loss) and A.8 (interarrival jitter).
#[derive(Debug, Clone, Default)]
pub struct ReceptionStats {
    started: bool,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    transit: Option<i32>,
    jitter: f64,
    last_sr: Option<(u32, Instant)>,
}

impl ReceptionStats {
    /// Fresh statistics (first packet starts probation).
    pub fn new() -> Self {
        Self::default()
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Account one packet's sequence number; returns false while the source is still on
    /// probation or after an implausible jump (A.1 `update_seq`).
    pub fn update_seq(&mut self, seq: u16) -> bool {
        if !self.started {
            self.started = true;
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets after a big jump: the source restarted.
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        }
        // else: duplicate or reordered, still counted as received.
        self.received += 1;
        true
    }

    /// Update interarrival jitter (A.8). `arrival` is the arrival time in RTP timestamp
    /// units on any fixed base; only feed packets whose timestamp tracks sampling time
    /// (not RFC 4733 event packets, which repeat the event-start timestamp).
    pub fn update_jitter(&mut self, rtp_ts: u32, arrival: u32) {
        let transit = arrival.wrapping_sub(rtp_ts) as i32;
        if let Some(prev) = self.transit {
            let d = f64::from(transit.wrapping_sub(prev)).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    /// Forget the transit reference (after a timestamp discontinuity).
    pub fn reset_transit(&mut self) {
        self.transit = None;
    }

    /// Record an SR from this source (for LSR/DLSR in our next report).
    pub fn on_sender_report(&mut self, ntp: NtpTime, now: Instant) {
        self.last_sr = Some((ntp.middle32(), now));
    }

    /// Extended highest sequence number received.
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets received (A.1 count, includes duplicates).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Packets expected from the sequence-number range.
    pub fn expected(&self) -> u32 {
        if !self.started || self.probation > 0 {
            return 0;
        }
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Cumulative packets lost (may be negative with duplicates), clamped to 24 bits.
    pub fn cumulative_lost(&self) -> i32 {
        let lost = i64::from(self.expected()) - i64::from(self.received);
        lost.clamp(-0x80_0000, 0x7F_FFFF) as i32
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Build the report block for this source and start a new reporting interval (A.3).
    pub fn report_block(&mut self, ssrc: u32, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => (lsr, q16_from_duration(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost(),
            extended_highest_seq: self.extended_max(),
            jitter: self.jitter as u32,
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// Deterministic SplitMix64 generator: the crate's injected randomness (seeded from
/// config), so RTCP timing and tests are reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Inputs of the RFC 3550 A.7 interval computation.
#[derive(Debug, Clone, Copy)]
pub struct IntervalParams {
    /// Session members (2 for a point-to-point call).
    pub members: u32,
    /// Members that sent RTP recently.
    pub senders: u32,
    /// RTCP bandwidth in octets per second (5 % of the session bandwidth).
    pub rtcp_bw: f64,
    /// Whether we sent RTP in the current interval.
    pub we_sent: bool,
    /// Average compound RTCP packet size in octets (including UDP/IP).
    pub avg_rtcp_size: f64,
    /// First report of the session (halves the minimum).
    pub initial: bool,
}

/// RFC 3550 A.7 `rtcp_interval`; `rand01` is a uniform sample in [0, 1).
pub fn rtcp_interval(p: &IntervalParams, rand01: f64) -> Duration {
    const RTCP_MIN_TIME: f64 = 5.0;
    const SENDER_FRACTION: f64 = 0.25;
    const COMPENSATION: f64 = std::f64::consts::E - 1.5;
    let min_time = if p.initial {
        RTCP_MIN_TIME / 2.0
    } else {
        RTCP_MIN_TIME
    };
    let mut n = f64::from(p.members.max(1));
    let mut bw = p.rtcp_bw.max(1.0);
    if f64::from(p.senders) <= f64::from(p.members) * SENDER_FRACTION {
        if p.we_sent {
            bw *= SENDER_FRACTION;
            n = f64::from(p.senders.max(1));
        } else {
            bw *= 1.0 - SENDER_FRACTION;
            n -= f64::from(p.senders);
        }
    }
    let t = (p.avg_rtcp_size * n / bw).max(min_time);
    Duration::from_secs_f64(t * (rand01.clamp(0.0, 1.0) + 0.5) / COMPENSATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_sr_sdes_round_trip() {
        let mut buf = [0u8; 200];
        let block = ReportBlock {
            ssrc: 0xAABB_CCDD,
            fraction_lost: 13,
            cumulative_lost: -3,
            extended_highest_seq: 0x0001_0005,
            jitter: 77,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 0x0001_8000,
        };
        let info = SenderInfo {
            ntp: NtpTime(0x0102_0304_0506_0708),
            rtp_timestamp: 9,
            packet_count: 10,
            octet_count: 1600,
        };
        let mut w = RtcpWriter::new(&mut buf);
        w.sender_report(0x1111, &info, &[block]).unwrap();
        w.sdes_cname(0x1111, "voxgate@host").unwrap();
        let n = w.len();
        assert_eq!(n % 4, 0);
        let pkts: Vec<_> = parse_compound(&buf[..n]).collect::<Result<_, _>>().unwrap();
        assert_eq!(pkts.len(), 2);
        match pkts[0] {
            RtcpPacket::SenderReport {
                ssrc,
                info: i,
                reports,
            } => {
                assert_eq!(ssrc, 0x1111);
                assert_eq!(i, info);
                assert_eq!(reports.iter().collect::<Vec<_>>(), vec![block]);
            }
            ref p => panic!("unexpected {p:?}"),
        }
        match pkts[1] {
            RtcpPacket::SourceDescription { count, body } => {
                let c: Vec<_> = sdes_cnames(body, count).collect();
                assert_eq!(c, vec![(0x1111, &b"voxgate@host"[..])]);
            }
            ref p => panic!("unexpected {p:?}"),
        }
    }

    #[test]
    fn rr_and_bye_round_trip() {
        let mut buf = [0u8; 100];
        let mut w = RtcpWriter::new(&mut buf);
        w.receiver_report(5, &[]).unwrap();
        w.bye(&[5, 6]).unwrap();
        let n = w.len();
        let pkts: Vec<_> = parse_compound(&buf[..n]).collect::<Result<_, _>>().unwrap();
        assert!(
            matches!(pkts[0], RtcpPacket::ReceiverReport { ssrc: 5, reports } if reports.is_empty())
        );
        assert_eq!(pkts[1].bye_ssrcs().collect::<Vec<_>>(), vec![5, 6]);
    }

    #[test]
    fn malformed_rtcp_is_rejected() {
        assert_eq!(
            parse_compound(&[0x80, 200]).next(),
            Some(Err(RtcpParseError::TruncatedHeader(0)))
        );
        assert_eq!(
            parse_compound(&[0x40, 200, 0, 0]).next(),
            Some(Err(RtcpParseError::BadVersion(1)))
        );
        assert_eq!(
            parse_compound(&[0x80, 201, 0, 9, 0, 0, 0, 1]).next(),
            Some(Err(RtcpParseError::LengthOverflow {
                offset: 0,
                words: 9
            }))
        );
        // RR claiming 2 report blocks with none present.
        assert_eq!(
            parse_compound(&[0x82, 201, 0, 1, 0, 0, 0, 1]).next(),
            Some(Err(RtcpParseError::ReportBlocksOverflow {
                packet_type: 201,
                count: 2
            }))
        );
        // BYE claiming 3 sources with one.
        assert_eq!(
            parse_compound(&[0x83, 203, 0, 1, 0, 0, 0, 1]).next(),
            Some(Err(RtcpParseError::MalformedBody { packet_type: 203 }))
        );
        let mut x = 0x1234_5678u32;
        for len in 0..64 {
            for _ in 0..100 {
                let d: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                for p in parse_compound(&d) {
                    if let Ok(RtcpPacket::SourceDescription { count, body }) = p {
                        let _ = sdes_cnames(body, count).count();
                    }
                }
            }
        }
    }

    #[test]
    fn reception_stats_loss_and_fraction() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new();
        // 65530.. wraps past 65535; drop every 10th packet.
        let mut seq: u16 = 65530;
        let mut sent = 0u32;
        let mut dropped = 0u32;
        for i in 0..200u32 {
            if i % 10 == 5 {
                dropped += 1;
            } else {
                s.update_seq(seq);
            }
            sent += 1;
            seq = seq.wrapping_add(1);
        }
        // Probation swallowed the first packet.
        assert_eq!(s.expected(), sent - 1);
        assert_eq!(s.cumulative_lost(), dropped as i32);
        assert_eq!(s.extended_max(), 65536 + u32::from(seq.wrapping_sub(1)));
        let rb = s.report_block(1, t0);
        assert_eq!(rb.fraction_lost, ((dropped << 8) / (sent - 1)) as u8);
        // Next interval without loss.
        for _ in 0..50 {
            s.update_seq(seq);
            seq = seq.wrapping_add(1);
        }
        let rb2 = s.report_block(1, t0);
        assert_eq!(rb2.fraction_lost, 0);
        assert_eq!(rb2.cumulative_lost, dropped as i32);
    }

    #[test]
    fn reception_stats_handles_restart_after_big_jump() {
        let mut s = ReceptionStats::new();
        for q in 100..110u16 {
            s.update_seq(q);
        }
        assert!(!s.update_seq(40000));
        assert!(s.update_seq(40001)); // second sequential packet: re-sync
        assert_eq!(s.expected(), 1);
        assert_eq!(s.cumulative_lost(), 0);
    }

    #[test]
    fn jitter_matches_a8_for_constant_offsets() {
        let mut s = ReceptionStats::new();
        // Perfectly periodic arrivals: jitter stays 0.
        for i in 0..50u32 {
            s.update_jitter(i * 160, 1000 + i * 160);
        }
        assert_eq!(s.jitter(), 0.0);
        // Transit alternating between two values 40 units apart: |D| = 40 every packet,
        // so J converges to 40.
        for i in 50..500u32 {
            let wobble = if i % 2 == 0 { 40 } else { 0 };
            s.update_jitter(i * 160, 1000 + i * 160 + wobble);
        }
        assert!((s.jitter() - 40.0).abs() < 0.5, "{}", s.jitter());
    }

    #[test]
    fn rtt_from_lsr_dlsr() {
        let sent_sr = NtpTime::from_duration(Duration::from_millis(10_000));
        let now = NtpTime::from_duration(Duration::from_millis(10_350));
        let block = ReportBlock {
            last_sr: sent_sr.middle32(),
            delay_since_last_sr: q16_from_duration(Duration::from_millis(250)),
            ..Default::default()
        };
        let rtt = block.round_trip_time(now).unwrap();
        assert!((rtt.as_secs_f64() - 0.100).abs() < 0.001, "{rtt:?}");
        assert_eq!(ReportBlock::default().round_trip_time(now), None);
    }

    #[test]
    fn interval_is_randomised_around_five_seconds() {
        let p = IntervalParams {
            members: 2,
            senders: 2,
            rtcp_bw: 400.0,
            we_sent: true,
            avg_rtcp_size: 100.0,
            initial: false,
        };
        let lo = rtcp_interval(&p, 0.0).as_secs_f64();
        let hi = rtcp_interval(&p, 0.999).as_secs_f64();
        assert!((lo - 2.5 / 1.218_28).abs() < 0.01, "{lo}");
        assert!((hi - 7.495 / 1.218_28).abs() < 0.01, "{hi}");
        let mut rng = SplitMix64::new(7);
        let mean: f64 = (0..1000)
            .map(|_| rtcp_interval(&p, rng.next_f64()).as_secs_f64())
            .sum::<f64>()
            / 1000.0;
        assert!((mean - 5.0 / 1.218_28).abs() < 0.15, "{mean}");
    }
}
