//! The load generator's view of RTP: building its own packets, reading voxgate's, and the receive-side
//! statistics the pass rule uses (loss over sequence wrap-around, packet-interval jitter).

/// RTP fixed header length (no CSRCs, no extension: what both sides send).
pub const HEADER_LEN: usize = 12;
/// Samples (and RTP timestamp units) per 20 ms G.711 frame.
pub const FRAME_SAMPLES: usize = 160;
/// The nominal packet interval.
pub const PTIME_US: u64 = 20_000;

/// Writes a 12-byte RTP header into `out[..12]`.
pub fn write_header(out: &mut [u8], pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) {
    out[0] = 0x80;
    out[1] = (pt & 0x7f) | if marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&seq.to_be_bytes());
    out[4..8].copy_from_slice(&ts.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// The fields of a received packet the statistics need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    /// Offset of the payload (after CSRCs and a header extension).
    pub payload_offset: usize,
}

/// Parses an RTP header; `None` for anything that is not RTP version 2 or is truncated.
pub fn parse_header(pkt: &[u8]) -> Option<RtpHeader> {
    if pkt.len() < HEADER_LEN || pkt[0] >> 6 != 2 {
        return None;
    }
    let cc = usize::from(pkt[0] & 0x0f);
    let mut off = HEADER_LEN + 4 * cc;
    if pkt[0] & 0x10 != 0 {
        let ext = pkt.get(off + 2..off + 4)?;
        off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    if off > pkt.len() {
        return None;
    }
    Some(RtpHeader {
        pt: pkt[1] & 0x7f,
        seq: u16::from_be_bytes([pkt[2], pkt[3]]),
        ts: u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]),
        ssrc: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
        payload_offset: off,
    })
}

/// Sequence accounting for one stream: extends the 16-bit sequence number across wrap-arounds
/// (RFC 3550 A.1 without the probation logic: the stream is ours to trust) and counts loss,
/// duplicates and reordering.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    started: bool,
    /// Extended sequence number of the first packet.
    base: u64,
    /// Highest extended sequence number seen.
    max: u64,
    received: u64,
    duplicates: u64,
    reordered: u64,
    /// Sliding bitmap of the last 64 extended numbers below and including `max`, for duplicate detection.
    window: u64,
}

impl SeqTracker {
    /// Records one packet; returns its extended sequence number.
    pub fn push(&mut self, seq: u16) -> u64 {
        if !self.started {
            self.started = true;
            // Start high enough that a reordered packet before the first one cannot go below zero.
            self.base = (1 << 16) + u64::from(seq);
            self.max = self.base;
            self.received = 1;
            self.window = 1;
            return self.max;
        }
        // Pick the extension of `seq` closest to `max`.
        let cycle = self.max & !0xffff;
        let candidates = [
            cycle.wrapping_sub(1 << 16) | u64::from(seq),
            cycle | u64::from(seq),
            (cycle + (1 << 16)) | u64::from(seq),
        ];
        let ext = candidates
            .into_iter()
            .min_by_key(|&c| c.abs_diff(self.max))
            .unwrap_or(self.max);
        if ext > self.max {
            let shift = ext - self.max;
            self.window = if shift >= 64 { 0 } else { self.window << shift };
            self.window |= 1;
            self.max = ext;
            self.received += 1;
        } else {
            let back = self.max - ext;
            if back < 64 && self.window & (1 << back) != 0 {
                self.duplicates += 1;
                return ext;
            }
            if back < 64 {
                self.window |= 1 << back;
            }
            if ext >= self.base {
                self.received += 1;
            } else {
                // Older than the first packet: the stream began earlier than we thought.
                self.base = ext;
                self.received += 1;
            }
            self.reordered += 1;
        }
        ext
    }

    /// Packets expected from the first to the highest sequence number.
    pub fn expected(&self) -> u64 {
        if self.started {
            self.max - self.base + 1
        } else {
            0
        }
    }

    /// Distinct packets received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Expected but never received (never negative).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn reordered(&self) -> u64 {
        self.reordered
    }
}

/// Packet-interval jitter: for two packets received one after the other with consecutive sequence
/// numbers, how far their arrival interval is from the 20 ms ptime. This is what a sender's timing
/// problems look like at the far end (a late tick delays its packet and shortens the next interval),
/// independent of any clock offset between the two machines.
pub fn interval_deviation_us(prev_arrival_ns: u64, arrival_ns: u64) -> u64 {
    let interval_us = arrival_ns.saturating_sub(prev_arrival_ns) / 1_000;
    interval_us.abs_diff(PTIME_US)
}

/// RFC 3550 §6.4.1 interarrival jitter estimate, in RTP timestamp units (8 kHz: 1 unit = 125 µs).
#[derive(Debug, Clone, Copy, Default)]
pub struct InterarrivalJitter {
    last: Option<(u64, u32)>,
    /// Estimate scaled by 16, as in the RFC's integer implementation.
    j16: u64,
}

impl InterarrivalJitter {
    /// One packet: its arrival time and RTP timestamp.
    pub fn push(&mut self, arrival_ns: u64, rtp_ts: u32) {
        if let Some((prev_ns, prev_ts)) = self.last {
            // Arrival difference in timestamp units (8 kHz) minus the timestamp difference.
            let arrival_units = (arrival_ns as i128 - prev_ns as i128) * 8_000 / 1_000_000_000;
            let ts_units = i128::from(rtp_ts.wrapping_sub(prev_ts) as i32);
            let d = (arrival_units - ts_units).unsigned_abs() as u64;
            // J += (|D| - J) / 16, in the ×16 domain: j16 += |D| - j16/16.
            self.j16 = self.j16 + d - ((self.j16 + 8) >> 4);
        }
        self.last = Some((arrival_ns, rtp_ts));
    }

    /// Current estimate in microseconds.
    pub fn us(&self) -> f64 {
        (self.j16 as f64 / 16.0) * 125.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut b = [0u8; 172];
        write_header(&mut b, 0, true, 65_535, 0xdead_beef, 42);
        let h = parse_header(&b).unwrap();
        assert_eq!((h.pt, h.seq, h.ts, h.ssrc), (0, 65_535, 0xdead_beef, 42));
        assert_eq!(h.payload_offset, 12);
        assert_eq!(b[1] & 0x80, 0x80);
        assert!(parse_header(&b[..11]).is_none());
        b[0] = 0x40;
        assert!(parse_header(&b).is_none());
    }

    #[test]
    fn header_with_csrc_and_extension() {
        let mut b = vec![0x91u8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0; 4]); // one CSRC
        b.extend_from_slice(&[0xbe, 0xde, 0, 1, 0, 0, 0, 0]); // extension of one word
        b.extend_from_slice(&[0xff; 160]);
        assert_eq!(parse_header(&b).unwrap().payload_offset, 12 + 4 + 8);
        // Extension claiming more words than there are bytes.
        b[18] = 0xff;
        assert!(parse_header(&b).is_none());
    }

    #[test]
    fn loss_across_sequence_wrap_around() {
        let mut t = SeqTracker::default();
        let mut seq: u16 = 65_530;
        for i in 0..20u32 {
            // Drop two packets, one of them right at the wrap.
            if i != 5 && i != 12 {
                t.push(seq);
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(t.expected(), 20);
        assert_eq!(t.received(), 18);
        assert_eq!(t.lost(), 2);
        assert_eq!(t.duplicates(), 0);
    }

    #[test]
    fn reordering_and_duplicates_are_not_loss() {
        let mut t = SeqTracker::default();
        for s in [65_534u16, 0, 65_535, 1, 1, 2] {
            t.push(s);
        }
        assert_eq!(t.expected(), 5);
        assert_eq!(t.received(), 5);
        assert_eq!(t.lost(), 0);
        assert_eq!(t.duplicates(), 1);
        assert_eq!(t.reordered(), 1);
        // A packet older than the first one extends the stream backwards.
        let mut t = SeqTracker::default();
        for s in [10u16, 11, 9] {
            t.push(s);
        }
        assert_eq!((t.expected(), t.lost()), (3, 0));
    }

    #[test]
    fn many_wraps_keep_counting() {
        let mut t = SeqTracker::default();
        let mut seq = 100u16;
        for _ in 0..200_000 {
            t.push(seq);
            seq = seq.wrapping_add(1);
        }
        assert_eq!(t.expected(), 200_000);
        assert_eq!(t.lost(), 0);
    }

    #[test]
    fn interval_deviation_is_distance_from_ptime() {
        assert_eq!(interval_deviation_us(0, 20_000_000), 0);
        assert_eq!(interval_deviation_us(0, 23_000_000), 3_000);
        // A late packet followed by an on-time one: the short interval counts too.
        assert_eq!(interval_deviation_us(23_000_000, 40_000_000), 3_000);
        assert_eq!(interval_deviation_us(5, 0), PTIME_US);
    }

    #[test]
    fn rfc3550_jitter_is_zero_for_perfect_pacing_and_grows_with_variation() {
        let mut j = InterarrivalJitter::default();
        for i in 0..100u64 {
            j.push(i * 20_000_000, (i * 160) as u32);
        }
        assert_eq!(j.us(), 0.0);
        // Alternate 18/22 ms intervals: |D| = 2 ms every packet, so J converges to 2 ms.
        let mut j = InterarrivalJitter::default();
        let mut t = 0u64;
        for i in 0..500u64 {
            t += if i % 2 == 0 { 18_000_000 } else { 22_000_000 };
            j.push(t, (i * 160) as u32);
        }
        assert!((j.us() - 2_000.0).abs() < 150.0, "{}", j.us());
    }
}
