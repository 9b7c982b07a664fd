//! `RtpSession`: the per-call, sans-IO RTP/RTCP endpoint.
//!
//! The media thread owns the sockets and the clock; every 20 ms it calls
//! [`RtpSession::poll_audio`] and [`RtpSession::send_audio`] once per call, hands every
//! datagram to [`RtpSession::handle_rtp`] / [`RtpSession::handle_rtcp`], and transmits what
//! [`RtpSession::poll_rtcp`] returns. Nothing here reads a clock, touches a socket or
//! allocates on the per-frame path; buffers are allocated once in [`RtpSession::new`].
//!
//! Timing of the outgoing stream follows RFC 3550: the RTP timestamp advances by one
//! frame on every `send_audio` call whether or not a packet goes out (hold, no remote,
//! DTMF gaps), and the marker bit is set on the first packet after we were not sending.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::codec::{CodecError, CodecKind, Decoder, Encoder};
use crate::dtmf::{DtmfError, DtmfEvent, Rfc4733Receiver, Rfc4733Sender, Rfc4733Update};
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Pop};
use crate::rtcp::{
    parse_compound, rtcp_interval, IntervalParams, NtpTime, ReceptionStats, RtcpPacket,
    RtcpParseError, RtcpWriter, SenderInfo, SplitMix64,
};
use crate::rtp::{is_rtcp, parse_rtp, write_rtp_header, RtpHeader, RtpParseError, RTP_HEADER_LEN};
use crate::Frame;

mod latch;
#[cfg(test)]
mod netem;
#[cfg(test)]
mod tests;

/// What *we* may do with media (the SDP direction attribute from our side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Send and receive.
    SendRecv,
    /// Only send (we put the peer on hold and play music).
    SendOnly,
    /// Only receive (the peer put us on hold).
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// Whether we may transmit RTP.
    pub fn may_send(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether received RTP media is played out.
    pub fn may_receive(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// Negotiated parameters of one call's RTP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Audio codec.
    pub codec: CodecKind,
    /// RTP payload type of the audio codec.
    pub payload_type: u8,
    /// RTP payload type of telephone-event, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Where to send RTP (from SDP) until latching finds the real source.
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP; defaults to the RTP destination with port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// Outgoing packetisation; rounded down to a multiple of 20 ms (20..=60 for G.711,
    /// 20 for Opus). Incoming packets of any ptime are accepted.
    pub ptime_ms: u32,
    /// What we may do.
    pub direction: Direction,
    /// Our SSRC.
    pub ssrc: u32,
    /// First outgoing sequence number.
    pub initial_seq: u16,
    /// First outgoing timestamp.
    pub initial_ts: u32,
    /// RTCP CNAME (at most 255 bytes).
    pub cname: String,
    /// Symmetric RTP: send to where the peer's packets come from.
    pub symmetric_latching: bool,
    /// Bounds of the adaptive jitter buffer's target delay (site tuning: `media.jitter_*_ms`).
    pub jitter_min: Duration,
    pub jitter_max: Duration,
}

/// The jitter buffer for a session: codec defaults with the site's delay bounds, and enough slots to
/// hold the maximum delay plus reorder headroom.
fn jitter_config(cfg: &SessionConfig) -> JitterConfig {
    let mut j = JitterConfig::for_codec(cfg.codec);
    j.min_delay = cfg.jitter_min;
    j.max_delay = cfg.jitter_max.max(cfg.jitter_min);
    j.initial_delay = j.initial_delay.clamp(j.min_delay, j.max_delay);
    let frames = (j.max_delay.as_millis() / 20) as usize;
    j.capacity_frames = j.capacity_frames.max(frames + 12);
    j
}

/// What `poll_audio` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioStatus {
    /// Decoded from a received packet.
    Decoded,
    /// Synthesised for a lost/late packet.
    Concealed,
    /// Nothing received (not started, on hold, sender paused): zeros.
    Silence,
}

/// Invalid configuration or request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Codec cannot be created.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Payload type outside 0..=127 or colliding with RTCP types (72..=95).
    #[error("invalid RTP payload type {0}")]
    InvalidPayloadType(u8),
    /// Audio and telephone-event share a payload type.
    #[error("telephone-event and audio both use payload type {0}")]
    PayloadTypeClash(u8),
    /// CNAME longer than 255 bytes.
    #[error("CNAME of {0} bytes exceeds 255")]
    CnameTooLong(usize),
    /// Digit or duration rejected.
    #[error(transparent)]
    Dtmf(#[from] DtmfError),
    /// telephone-event was not negotiated; send DTMF in-band instead.
    #[error("telephone-event not negotiated")]
    NoTelephoneEvent,
    /// Too many digits queued.
    #[error("DTMF send queue full")]
    DtmfQueueFull,
}

/// A datagram that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Malformed RTP.
    #[error(transparent)]
    Rtp(#[from] RtpParseError),
    /// Malformed RTCP.
    #[error(transparent)]
    Rtcp(#[from] RtcpParseError),
    /// RTP with a payload type that was not negotiated.
    #[error("payload type {0} not negotiated")]
    UnknownPayloadType(u8),
    /// Malformed or non-DTMF telephone-event payload.
    #[error(transparent)]
    Dtmf(#[from] DtmfError),
}

/// Counters for monitoring and call records.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SessionStats {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// RTP payload octets sent.
    pub bytes_sent: u64,
    /// RTP packets accepted (after latching).
    pub packets_received: u64,
    /// RTP payload octets accepted.
    pub bytes_received: u64,
    /// Cumulative packets lost per RFC 3550 A.3 (negative with duplicates).
    pub lost: i64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Duplicate packets dropped.
    pub duplicate: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Interarrival jitter (RFC 3550 A.8) in ms.
    pub jitter_ms: f64,
    /// Round-trip time from the peer's last report about us.
    pub rtt_ms: Option<f64>,
    /// Packets ignored because they came from somewhere other than the latched address.
    pub foreign_source_drops: u64,
    /// Address our RTP goes to after latching.
    pub latched_remote: Option<SocketAddr>,
    /// Loss the peer reports for our stream (fraction of its last interval, 0..1).
    pub remote_fraction_lost: Option<f64>,
    /// Cumulative loss the peer reports for our stream.
    pub remote_cumulative_lost: Option<i32>,
    /// Jitter the peer reports for our stream, in ms.
    pub remote_jitter_ms: Option<f64>,
    /// RTCP compound packets sent / accepted.
    pub rtcp_sent: u64,
    /// RTCP compound packets accepted.
    pub rtcp_received: u64,
    /// The peer sent BYE.
    pub remote_bye: bool,
    /// Packets with a payload type we did not negotiate.
    pub unknown_payload_type: u64,
    /// Received media discarded because our direction does not receive.
    pub dropped_by_direction: u64,
    /// Payloads the decoder rejected (concealed instead).
    pub decode_errors: u64,
    /// Frames not sent because encoding/packetising failed (e.g. `out` too small).
    pub send_errors: u64,
    /// Telephone-event digits sent / received.
    pub dtmf_sent: u64,
    /// Telephone-event digits received.
    pub dtmf_received: u64,
    /// Jitter buffer details.
    pub jitter_buffer: JitterStats,
}

const DTMF_QUEUE: usize = 16;
/// Scratch for packets spanning several 20 ms frames (G.711 ptime up to 60 ms).
const TX_ACCUM: usize = 1500;
/// Offset between the NTP era and the session-relative clock used when no wallclock is
/// set (1970-01-01, so timestamps at least look plausible in captures).
const NTP_UNIX_OFFSET: Duration = Duration::from_secs(2_208_988_800);
/// Session bandwidth used for the RTCP interval (G.711 + IP/UDP/RTP ≈ 80 kbit/s).
const SESSION_BW_BYTES: f64 = 10_000.0;

/// The per-call RTP endpoint; see the module docs.
pub struct RtpSession {
    cfg: SessionConfig,
    epoch: Instant,
    ntp_offset: Duration,
    encoder: Encoder,
    decoder: Decoder,
    jitter: JitterBuffer,
    jb_scratch: Vec<u8>,
    // Receive side.
    rx_stats: ReceptionStats,
    remote_ssrc: Option<u32>,
    dtmf_rx: Rfc4733Receiver,
    latch: latch::SourceLatch,
    rtcp_latched: Option<SocketAddr>,
    // Send side.
    seq: u16,
    ts: u32,
    need_marker: bool,
    frames_per_packet: u32,
    tx_accum: Vec<u8>,
    accum_len: usize,
    accum_frames: u32,
    accum_ts: u32,
    dtmf_queue: [(char, u32); DTMF_QUEUE],
    dtmf_q_head: usize,
    dtmf_q_len: usize,
    dtmf_active: Option<(Rfc4733Sender, u32)>,
    sent_since_report: bool,
    // RTCP.
    rng: SplitMix64,
    next_rtcp: Instant,
    avg_rtcp_size: f64,
    remote_sent_since_report: bool,
    stats: SessionStats,
}

impl std::fmt::Debug for RtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpSession")
            .field("ssrc", &self.cfg.ssrc)
            .field("codec", &self.cfg.codec)
            .field("direction", &self.cfg.direction)
            .field("remote_ssrc", &self.remote_ssrc)
            .field("latched", &self.latch.latched())
            .finish_non_exhaustive()
    }
}

fn validate(cfg: &SessionConfig) -> Result<(), SessionError> {
    let bad_pt = |pt: u8| pt > 127 || (72..=95).contains(&pt);
    if bad_pt(cfg.payload_type) {
        return Err(SessionError::InvalidPayloadType(cfg.payload_type));
    }
    if let Some(te) = cfg.telephone_event_pt {
        if bad_pt(te) {
            return Err(SessionError::InvalidPayloadType(te));
        }
        if te == cfg.payload_type {
            return Err(SessionError::PayloadTypeClash(te));
        }
    }
    if cfg.cname.len() > 255 {
        return Err(SessionError::CnameTooLong(cfg.cname.len()));
    }
    Ok(())
}

fn frames_per_packet(cfg: &SessionConfig) -> u32 {
    if cfg.codec.is_sample_aligned() {
        (cfg.ptime_ms / 20).clamp(1, 3)
    } else {
        1
    }
}

impl RtpSession {
    /// Create the session; `now` anchors its RTCP clock and schedule.
    pub fn new(cfg: SessionConfig, now: Instant) -> Result<Self, SessionError> {
        validate(&cfg)?;
        let encoder = Encoder::new(cfg.codec)?;
        let decoder = Decoder::new(cfg.codec)?;
        let jitter = JitterBuffer::new(jitter_config(&cfg));
        let clock = cfg.codec.rtp_clock_rate();
        let mut rng = SplitMix64::new(u64::from(cfg.ssrc) ^ 0x5EED_C0FF_EE00);
        let first = rtcp_interval(
            &IntervalParams {
                members: 2,
                senders: 1,
                rtcp_bw: SESSION_BW_BYTES * 0.05,
                we_sent: false,
                avg_rtcp_size: 100.0,
                initial: true,
            },
            rng.next_f64(),
        );
        Ok(Self {
            epoch: now,
            ntp_offset: NTP_UNIX_OFFSET,
            encoder,
            decoder,
            jb_scratch: vec![0; jitter.max_frame_payload()],
            jitter,
            rx_stats: ReceptionStats::new(),
            remote_ssrc: None,
            dtmf_rx: Rfc4733Receiver::new(clock),
            latch: latch::SourceLatch::new(cfg.remote_rtp),
            rtcp_latched: None,
            seq: cfg.initial_seq,
            ts: cfg.initial_ts,
            need_marker: true,
            frames_per_packet: frames_per_packet(&cfg),
            tx_accum: vec![0; TX_ACCUM],
            accum_len: 0,
            accum_frames: 0,
            accum_ts: 0,
            dtmf_queue: [('0', 0); DTMF_QUEUE],
            dtmf_q_head: 0,
            dtmf_q_len: 0,
            dtmf_active: None,
            sent_since_report: false,
            rng,
            next_rtcp: now + first,
            avg_rtcp_size: 100.0,
            remote_sent_since_report: false,
            stats: SessionStats::default(),
            cfg,
        })
    }

    /// Current configuration (SSRC/seq/ts fields reflect the original values).
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Peer's SSRC once it sent RTP.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.remote_ssrc
    }

    /// Anchor the RTCP NTP timestamps to real wallclock time (optional: without it they
    /// count from session creation, which is enough for RTT).
    pub fn set_wallclock(&mut self, now: Instant, since_unix_epoch: Duration) {
        let elapsed = now.saturating_duration_since(self.epoch);
        self.ntp_offset = (since_unix_epoch + NTP_UNIX_OFFSET).saturating_sub(elapsed);
    }

    fn ntp_now(&self, now: Instant) -> NtpTime {
        NtpTime::from_duration(now.saturating_duration_since(self.epoch) + self.ntp_offset)
    }

    fn clock_rate(&self) -> u32 {
        self.cfg.codec.rtp_clock_rate()
    }

    fn arrival_rtp_units(&self, now: Instant) -> u32 {
        let n = now.saturating_duration_since(self.epoch).as_nanos();
        (n * u128::from(self.clock_rate()) / 1_000_000_000) as u32
    }

    fn rtp_destination(&self) -> Option<SocketAddr> {
        self.latch.latched().or(self.cfg.remote_rtp)
    }

    fn rtcp_destination(&self) -> Option<SocketAddr> {
        self.rtcp_latched.or(self.cfg.remote_rtcp).or_else(|| {
            self.rtp_destination().map(|mut a| {
                a.set_port(a.port().wrapping_add(1));
                a
            })
        })
    }

    /// A datagram arrived on the RTP socket. Latching (symmetric RTP, NAT-friendly): the
    /// SDP's IP is believed at once, any other source only after a run of consistent packets
    /// while the current one is quiet (see [`latch`]); rejected packets are counted. RTCP
    /// multiplexed on the RTP port (RFC 5761) is recognised and handled as RTCP.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        src: SocketAddr,
        data: &[u8],
    ) -> Result<(), RtpError> {
        if is_rtcp(data) {
            return self.handle_rtcp_from(now, src, data, true);
        }
        let pkt = parse_rtp(data)?;
        let h = pkt.header;
        let pt = h.payload_type;
        let is_audio = pt == self.cfg.payload_type;
        let is_te = self.cfg.telephone_event_pt == Some(pt);
        let is_cn = pt == 13;
        if !(is_audio || is_te || is_cn) {
            self.stats.unknown_payload_type += 1;
            return Err(RtpError::UnknownPayloadType(pt));
        }
        if self.cfg.symmetric_latching && !self.latch.accept(now, src, h.ssrc) {
            self.stats.foreign_source_drops += 1;
            return Ok(());
        }
        self.stats.packets_received += 1;
        self.stats.bytes_received += pkt.payload.len() as u64;
        if self.remote_ssrc != Some(h.ssrc) {
            if self.remote_ssrc.is_some() {
                self.rx_stats = ReceptionStats::new();
                self.dtmf_rx.reset();
            }
            self.remote_ssrc = Some(h.ssrc);
        }
        self.rx_stats.update_seq(h.sequence);
        self.remote_sent_since_report = true;
        if !self.cfg.direction.may_receive() {
            self.stats.dropped_by_direction += 1;
            return Ok(());
        }
        if is_audio {
            let arrival = self.arrival_rtp_units(now);
            self.rx_stats.update_jitter(h.timestamp, arrival);
            self.jitter
                .push(now, h.sequence, h.timestamp, h.ssrc, pkt.payload);
        } else if is_te {
            self.dtmf_rx.handle(now, h.timestamp, pkt.payload)?;
        }
        // Comfort noise (PT 13) is accepted and ignored: the buffer underruns to silence.
        Ok(())
    }

    /// A datagram arrived on the RTCP socket.
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        src: SocketAddr,
        data: &[u8],
    ) -> Result<(), RtpError> {
        self.handle_rtcp_from(now, src, data, false)
    }

    /// `muxed`: arrived on the RTP socket, so the RTP latch applies.
    fn handle_rtcp_from(
        &mut self,
        now: Instant,
        src: SocketAddr,
        data: &[u8],
        muxed: bool,
    ) -> Result<(), RtpError> {
        if self.cfg.symmetric_latching {
            let accepted = match (muxed, self.rtcp_latched) {
                (true, _) => self.latch.latched() == Some(src),
                (false, Some(a)) => a == src,
                (false, None) => self.latch.accepts_rtcp_from(src),
            };
            if !accepted {
                self.stats.foreign_source_drops += 1;
                return Ok(());
            }
        }
        let ntp_now = self.ntp_now(now);
        let mut any = false;
        for p in parse_compound(data) {
            let p = p?;
            any = true;
            let reports = match p {
                RtcpPacket::SenderReport {
                    ssrc,
                    info,
                    reports,
                } => {
                    if self.remote_ssrc.is_none_or(|r| r == ssrc) {
                        self.rx_stats.on_sender_report(info.ntp, now);
                    }
                    Some(reports)
                }
                RtcpPacket::ReceiverReport { reports, .. } => Some(reports),
                RtcpPacket::Bye { .. } => {
                    if let Some(r) = self.remote_ssrc {
                        if p.bye_ssrcs().any(|s| s == r) {
                            self.stats.remote_bye = true;
                        }
                    }
                    None
                }
                _ => None,
            };
            if let Some(reports) = reports {
                for b in reports.iter().filter(|b| b.ssrc == self.cfg.ssrc) {
                    if let Some(rtt) = b.round_trip_time(ntp_now) {
                        self.stats.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
                    }
                    self.stats.remote_fraction_lost = Some(f64::from(b.fraction_lost) / 256.0);
                    self.stats.remote_cumulative_lost = Some(b.cumulative_lost);
                    self.stats.remote_jitter_ms =
                        Some(f64::from(b.jitter) * 1000.0 / f64::from(self.clock_rate()));
                }
            }
        }
        if any {
            self.stats.rtcp_received += 1;
            if self.cfg.symmetric_latching && !muxed && self.rtcp_latched.is_none() {
                self.rtcp_latched = Some(src);
            }
            self.avg_rtcp_size =
                (data.len() as f64 + 28.0) / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
        }
        Ok(())
    }

    /// One 20 ms tick of received audio into `out` (decoded, concealed or silence).
    pub fn poll_audio(&mut self, now: Instant, out: &mut Frame) -> AudioStatus {
        self.dtmf_rx.handle_timeout(now);
        match self.jitter.pop(now, &mut self.jb_scratch) {
            Pop::Packet { len, .. } => {
                let payload = self.jb_scratch.get(..len).unwrap_or_default();
                match self.decoder.decode(payload, out) {
                    Ok(()) => AudioStatus::Decoded,
                    Err(_) => {
                        self.stats.decode_errors += 1;
                        self.decoder.conceal(out);
                        AudioStatus::Concealed
                    }
                }
            }
            Pop::Missing => {
                match self.jitter.peek_head_payload() {
                    Some(next) => self.decoder.conceal_with_next(next, out),
                    None => self.decoder.conceal(out),
                }
                AudioStatus::Concealed
            }
            Pop::Empty => {
                out.fill(0);
                AudioStatus::Silence
            }
        }
    }

    /// Next RFC 4733 key press (reported at its first packet). In-band detection is the
    /// caller's job (`GoertzelDetector` on the decoded audio, merged via `DtmfUnifier`).
    /// Use either this or [`RtpSession::poll_dtmf_update`], not both.
    pub fn poll_dtmf(&mut self) -> Option<DtmfEvent> {
        loop {
            match self.dtmf_rx.poll()? {
                Rfc4733Update::Started(e) => {
                    self.stats.dtmf_received += 1;
                    return Some(e);
                }
                Rfc4733Update::Ended(_) => continue,
            }
        }
    }

    /// Like [`RtpSession::poll_dtmf`] but also reports the end of each press with its
    /// final duration.
    pub fn poll_dtmf_update(&mut self) -> Option<Rfc4733Update> {
        let u = self.dtmf_rx.poll()?;
        if matches!(u, Rfc4733Update::Started(_)) {
            self.stats.dtmf_received += 1;
        }
        Some(u)
    }

    fn next_seq(&mut self) -> u16 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }

    fn pop_dtmf(&mut self) -> Option<(char, u32)> {
        if self.dtmf_q_len == 0 {
            return None;
        }
        let d = self.dtmf_queue[self.dtmf_q_head];
        self.dtmf_q_head = (self.dtmf_q_head + 1) % DTMF_QUEUE;
        self.dtmf_q_len -= 1;
        Some(d)
    }

    /// Encode and packetise one 20 ms frame of our audio into `out` (1500 bytes covers
    /// every configuration; too small a buffer is counted in `send_errors`). Returns the destination and length, or `None` when
    /// nothing is sent this tick: no remote yet, direction recvonly/inactive, a
    /// multi-frame packet still filling, or a DTMF tick without a packet. While a queued
    /// digit is being sent, telephone-event packets replace the audio.
    pub fn send_audio(
        &mut self,
        _now: Instant,
        pcm: &Frame,
        out: &mut [u8],
    ) -> Option<(SocketAddr, usize)> {
        let frame_ts = self.ts;
        self.ts = self
            .ts
            .wrapping_add(self.cfg.codec.timestamp_increment_per_frame());
        let dest = match self.rtp_destination() {
            Some(d) if self.cfg.direction.may_send() => d,
            _ => {
                self.stop_sending();
                return None;
            }
        };
        if self.dtmf_active.is_none() {
            if let Some((digit, dur)) = self.pop_dtmf() {
                if let Ok(s) = Rfc4733Sender::new(digit, dur, self.clock_rate()) {
                    self.dtmf_active = Some((s, frame_ts));
                    self.accum_len = 0;
                    self.accum_frames = 0;
                    self.stats.dtmf_sent += 1;
                }
            }
        }
        if let Some((sender, start_ts)) = &mut self.dtmf_active {
            let start_ts = *start_ts;
            let pkt = sender.poll_tick();
            if sender.is_finished() {
                self.dtmf_active = None;
            }
            let p = pkt?;
            let te_pt = self.cfg.telephone_event_pt?;
            let header = RtpHeader {
                marker: p.marker,
                payload_type: te_pt,
                sequence: self.seq,
                timestamp: start_ts,
                ssrc: self.cfg.ssrc,
            };
            return self.emit(header, &p.payload, out, dest);
        }
        self.send_frame(frame_ts, pcm, out, dest)
    }

    fn stop_sending(&mut self) {
        self.need_marker = true;
        self.accum_len = 0;
        self.accum_frames = 0;
        self.dtmf_active = None;
    }

    /// Write header + copy payload, count, advance seq.
    fn emit(
        &mut self,
        header: RtpHeader,
        payload: &[u8],
        out: &mut [u8],
        dest: SocketAddr,
    ) -> Option<(SocketAddr, usize)> {
        let len = RTP_HEADER_LEN + payload.len();
        let Some(dst) = out.get_mut(..len) else {
            self.stats.send_errors += 1;
            return None;
        };
        if write_rtp_header(&header, dst).is_err() {
            self.stats.send_errors += 1;
            return None;
        }
        dst[RTP_HEADER_LEN..].copy_from_slice(payload);
        self.next_seq();
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += payload.len() as u64;
        self.sent_since_report = true;
        Some((dest, len))
    }

    fn send_frame(
        &mut self,
        frame_ts: u32,
        pcm: &Frame,
        out: &mut [u8],
        dest: SocketAddr,
    ) -> Option<(SocketAddr, usize)> {
        let header = |s: &Self, ts: u32| RtpHeader {
            marker: s.need_marker,
            payload_type: s.cfg.payload_type,
            sequence: s.seq,
            timestamp: ts,
            ssrc: s.cfg.ssrc,
        };
        if self.frames_per_packet <= 1 {
            // Encode straight into the datagram: no copy.
            let Some(body) = out.get_mut(RTP_HEADER_LEN..) else {
                self.stats.send_errors += 1;
                return None;
            };
            let n = match self.encoder.encode(pcm, body) {
                Ok(n) => n,
                Err(_) => {
                    self.stats.send_errors += 1;
                    return None;
                }
            };
            if write_rtp_header(&header(self, frame_ts), out).is_err() {
                self.stats.send_errors += 1;
                return None;
            }
            self.finish_packet(n);
            return Some((dest, RTP_HEADER_LEN + n));
        }
        if self.accum_frames == 0 {
            self.accum_ts = frame_ts;
            self.accum_len = 0;
        }
        let Some(body) = self.tx_accum.get_mut(self.accum_len..) else {
            self.stats.send_errors += 1;
            return None;
        };
        match self.encoder.encode(pcm, body) {
            Ok(n) => self.accum_len += n,
            Err(_) => {
                self.stats.send_errors += 1;
                return None;
            }
        }
        self.accum_frames += 1;
        if self.accum_frames < self.frames_per_packet {
            return None;
        }
        self.accum_frames = 0;
        let n = self.accum_len;
        let len = RTP_HEADER_LEN + n;
        let (Some(dst), Some(src)) = (out.get_mut(..len), self.tx_accum.get(..n)) else {
            self.stats.send_errors += 1;
            return None;
        };
        if write_rtp_header(&header(self, self.accum_ts), dst).is_err() {
            self.stats.send_errors += 1;
            return None;
        }
        dst[RTP_HEADER_LEN..].copy_from_slice(src);
        self.finish_packet(n);
        Some((dest, len))
    }

    fn finish_packet(&mut self, payload_len: usize) {
        self.need_marker = false;
        self.next_seq();
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += payload_len as u64;
        self.sent_since_report = true;
    }

    /// Account ticks the media thread skipped (see `MediaClock`): our timestamps jump
    /// ahead so they keep tracking real time (marker set on the next packet), and the
    /// same number of received frames is discarded so playout does not fall behind.
    pub fn skip_frames(&mut self, now: Instant, n: u32) {
        let inc = self.cfg.codec.timestamp_increment_per_frame();
        self.ts = self.ts.wrapping_add(inc.wrapping_mul(n));
        self.need_marker = true;
        self.accum_frames = 0;
        self.accum_len = 0;
        if let Some((s, _)) = &mut self.dtmf_active {
            for _ in 0..n {
                s.poll_tick();
            }
            if s.is_finished() {
                self.dtmf_active = None;
            }
        }
        for _ in 0..n {
            if self.jitter.pop(now, &mut self.jb_scratch) == Pop::Empty {
                break;
            }
        }
    }

    /// Queue a digit for RFC 4733 transmission (sent back to back, in order).
    pub fn queue_dtmf(&mut self, digit: char, duration_ms: u32) -> Result<(), SessionError> {
        if self.cfg.telephone_event_pt.is_none() {
            return Err(SessionError::NoTelephoneEvent);
        }
        // Validates digit and duration for this clock rate.
        Rfc4733Sender::new(digit, duration_ms, self.clock_rate())?;
        if self.dtmf_q_len == DTMF_QUEUE {
            return Err(SessionError::DtmfQueueFull);
        }
        self.dtmf_queue[(self.dtmf_q_head + self.dtmf_q_len) % DTMF_QUEUE] = (digit, duration_ms);
        self.dtmf_q_len += 1;
        Ok(())
    }

    /// Whether digits are queued or being sent.
    pub fn dtmf_pending(&self) -> bool {
        self.dtmf_q_len > 0 || self.dtmf_active.is_some()
    }

    fn write_report(&mut self, now: Instant, out: &mut [u8], bye: bool) -> Option<usize> {
        let block = self
            .remote_ssrc
            .filter(|_| self.rx_stats.expected() > 0 || self.rx_stats.received() > 0)
            .map(|r| self.rx_stats.report_block(r, now));
        let blocks = block.as_slice();
        let mut w = RtcpWriter::new(out);
        let r = if self.sent_since_report {
            let info = SenderInfo {
                ntp: self.ntp_now(now),
                rtp_timestamp: self.ts,
                packet_count: self.stats.packets_sent as u32,
                octet_count: self.stats.bytes_sent as u32,
            };
            w.sender_report(self.cfg.ssrc, &info, blocks)
        } else {
            w.receiver_report(self.cfg.ssrc, blocks)
        };
        let r = r
            .and_then(|_| w.sdes_cname(self.cfg.ssrc, &self.cfg.cname))
            .and_then(|_| if bye { w.bye(&[self.cfg.ssrc]) } else { Ok(()) });
        match r {
            Ok(()) => Some(w.len()),
            Err(_) => {
                self.stats.send_errors += 1;
                None
            }
        }
    }

    /// Compound SR/RR + SDES when the RFC 3550 interval (≈5 s, randomised
    /// deterministically from our SSRC) has elapsed.
    pub fn poll_rtcp(&mut self, now: Instant, out: &mut [u8]) -> Option<(SocketAddr, usize)> {
        if now < self.next_rtcp {
            return None;
        }
        let we_sent = self.sent_since_report;
        let senders = u32::from(we_sent) + u32::from(self.remote_sent_since_report);
        let interval = rtcp_interval(
            &IntervalParams {
                members: 2,
                senders,
                rtcp_bw: SESSION_BW_BYTES * 0.05,
                we_sent,
                avg_rtcp_size: self.avg_rtcp_size,
                initial: false,
            },
            self.rng.next_f64(),
        );
        self.next_rtcp = now + interval;
        let dest = self.rtcp_destination()?;
        let len = self.write_report(now, out, false)?;
        self.sent_since_report = false;
        self.remote_sent_since_report = false;
        self.stats.rtcp_sent += 1;
        self.avg_rtcp_size = (len as f64 + 28.0) / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
        Some((dest, len))
    }

    /// Final report + BYE for call teardown.
    pub fn build_bye(&mut self, now: Instant, out: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let dest = self.rtcp_destination()?;
        let len = self.write_report(now, out, true)?;
        self.stats.rtcp_sent += 1;
        Some((dest, len))
    }

    /// Apply a re-INVITE: new remote, codec, payload types or direction. Our SSRC,
    /// sequence numbers and timestamps continue (the `ssrc`/`initial_*` fields of `cfg`
    /// are ignored); a changed remote address drops the latch; a changed codec resets the
    /// jitter buffer and decoder.
    pub fn update(&mut self, cfg: SessionConfig, now: Instant) -> Result<(), SessionError> {
        let _ = now;
        validate(&cfg)?;
        let mut cfg = cfg;
        cfg.ssrc = self.cfg.ssrc;
        cfg.initial_seq = self.cfg.initial_seq;
        cfg.initial_ts = self.cfg.initial_ts;
        if cfg.codec != self.cfg.codec {
            let encoder = Encoder::new(cfg.codec)?;
            let decoder = Decoder::new(cfg.codec)?;
            self.encoder = encoder;
            self.decoder = decoder;
            self.jitter = JitterBuffer::new(jitter_config(&cfg));
            self.jb_scratch = vec![0; self.jitter.max_frame_payload()];
            self.rx_stats.reset_transit();
            self.need_marker = true;
        }
        if cfg.codec.rtp_clock_rate() != self.cfg.codec.rtp_clock_rate()
            || cfg.telephone_event_pt != self.cfg.telephone_event_pt
        {
            self.dtmf_rx = Rfc4733Receiver::new(cfg.codec.rtp_clock_rate());
            self.dtmf_active = None;
            if cfg.telephone_event_pt.is_none() {
                self.dtmf_q_len = 0;
            }
        }
        if cfg.remote_rtp != self.cfg.remote_rtp {
            self.latch = latch::SourceLatch::new(cfg.remote_rtp);
            self.rtcp_latched = None;
        }
        if cfg.remote_rtcp != self.cfg.remote_rtcp {
            self.rtcp_latched = None;
        }
        if !cfg.direction.may_send() {
            self.stop_sending();
        }
        self.frames_per_packet = frames_per_packet(&cfg);
        self.accum_frames = 0;
        self.accum_len = 0;
        self.cfg = cfg;
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        let mut s = self.stats;
        let jb = self.jitter.stats();
        s.lost = i64::from(self.rx_stats.cumulative_lost());
        s.late = jb.late;
        s.duplicate = jb.duplicate;
        s.concealed = jb.concealed + self.stats.decode_errors;
        s.jitter_ms = self.rx_stats.jitter() * 1000.0 / f64::from(self.clock_rate());
        s.latched_remote = self.latch.latched();
        s.jitter_buffer = jb;
        s
    }
}
