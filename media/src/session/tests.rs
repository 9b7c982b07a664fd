//! End-to-end tests: two `RtpSession`s talking through the emulated network.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::netem::{count_allocs, Fate, NetEm};
use super::*;
use crate::dtmf::DtmfSource;
use crate::rtp::{build_rtp, is_rtcp};
use crate::FRAME_SAMPLES;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn config(ssrc: u32, remote: &str, remote_rtcp: &str) -> SessionConfig {
    SessionConfig {
        codec: CodecKind::Pcmu,
        payload_type: 0,
        telephone_event_pt: Some(101),
        remote_rtp: Some(addr(remote)),
        remote_rtcp: Some(addr(remote_rtcp)),
        ptime_ms: 20,
        direction: Direction::SendRecv,
        ssrc,
        initial_seq: (ssrc as u16).wrapping_mul(3),
        initial_ts: ssrc.wrapping_mul(7919),
        cname: format!("{ssrc:08x}@voxgate.test"),
        symmetric_latching: true,
        jitter_min: Duration::from_millis(20),
        jitter_max: Duration::from_millis(200),
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    decoded: u64,
    concealed: u64,
    silence: u64,
    loud_decoded: u64,
}

struct Endpoint {
    sess: RtpSession,
    rtp: SocketAddr,
    rtcp: SocketAddr,
    /// Source address this endpoint's packets appear to come from (NAT).
    wire_rtp: SocketAddr,
    sending: bool,
    freq: f64,
    phase: f64,
    counts: Counts,
    dtmf: Vec<DtmfEvent>,
    sent: Vec<(u16, u32, bool, u8)>,
    /// (fraction lost, cumulative lost) from each peer report received.
    reports: Vec<(f64, i32)>,
}

impl Endpoint {
    fn new(cfg: SessionConfig, rtp: &str, rtcp: &str, freq: f64, now: Instant) -> Self {
        Self {
            sess: RtpSession::new(cfg, now).expect("session"),
            rtp: addr(rtp),
            rtcp: addr(rtcp),
            wire_rtp: addr(rtp),
            sending: true,
            freq,
            phase: 0.0,
            counts: Counts::default(),
            dtmf: Vec::new(),
            sent: Vec::new(),
            reports: Vec::new(),
        }
    }

    fn next_frame(&mut self) -> Frame {
        let mut f = [0i16; FRAME_SAMPLES];
        for s in f.iter_mut() {
            *s = (8000.0 * self.phase.sin()) as i16;
            self.phase += std::f64::consts::TAU * self.freq / 8000.0;
        }
        f
    }
}

struct Harness {
    t0: Instant,
    ms: u64,
    a: Endpoint,
    b: Endpoint,
    ab: NetEm,
    ba: NetEm,
    /// RTP packets A->B dropped by the network.
    ab_rtp_dropped: u64,
    ab_rtp_dup: u64,
    foreign: Option<(SocketAddr, u64)>,
}

impl Harness {
    fn new(ab: NetEm, ba: NetEm) -> Self {
        Self::with(ab, ba, |_| {})
    }

    /// `tweak` adjusts both endpoints' configs (codec etc.).
    fn with(ab: NetEm, ba: NetEm, tweak: impl Fn(&mut SessionConfig)) -> Self {
        let t0 = Instant::now();
        let mut ca = config(0xA11CE, "10.0.0.2:5000", "10.0.0.2:5001");
        let mut cb = config(0xB0B, "10.0.0.1:4000", "10.0.0.1:4001");
        tweak(&mut ca);
        tweak(&mut cb);
        let a = Endpoint::new(ca, "10.0.0.1:4000", "10.0.0.1:4001", 440.0, t0);
        let b = Endpoint::new(cb, "10.0.0.2:5000", "10.0.0.2:5001", 660.0, t0);
        Self {
            t0,
            ms: 0,
            a,
            b,
            ab,
            ba,
            ab_rtp_dropped: 0,
            ab_rtp_dup: 0,
            foreign: None,
        }
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms)
    }

    fn deliver(ep: &mut Endpoint, now: Instant, to: SocketAddr, from: SocketAddr, data: &[u8]) {
        let r = if to == ep.rtp || to == ep.wire_rtp {
            ep.sess.handle_rtp(now, from, data)
        } else if to == ep.rtcp {
            let before = ep.sess.stats().rtcp_received;
            let r = ep.sess.handle_rtcp(now, from, data);
            let s = ep.sess.stats();
            if s.rtcp_received > before {
                if let (Some(f), Some(c)) = (s.remote_fraction_lost, s.remote_cumulative_lost) {
                    ep.reports.push((f, c));
                }
            }
            r
        } else {
            panic!("datagram to unknown address {to}");
        };
        r.expect("valid datagram");
        while let Some(e) = ep.sess.poll_dtmf() {
            ep.dtmf.push(e);
        }
    }

    fn tick(ep: &mut Endpoint, now: Instant, net: &mut NetEm) -> Option<(Fate, bool)> {
        let mut out = [0i16; FRAME_SAMPLES];
        match ep.sess.poll_audio(now, &mut out) {
            AudioStatus::Decoded => {
                ep.counts.decoded += 1;
                let rms = (out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 160.0).sqrt();
                if rms > 3000.0 {
                    ep.counts.loud_decoded += 1;
                }
            }
            AudioStatus::Concealed => ep.counts.concealed += 1,
            AudioStatus::Silence => ep.counts.silence += 1,
        }
        let mut fate = None;
        if ep.sending {
            let pcm = ep.next_frame();
            let mut buf = [0u8; 1500];
            if let Some((dest, len)) = ep.sess.send_audio(now, &pcm, &mut buf) {
                let p = parse_rtp(&buf[..len]).expect("we send valid RTP");
                ep.sent.push((
                    p.header.sequence,
                    p.header.timestamp,
                    p.header.marker,
                    p.header.payload_type,
                ));
                let f = net.send(now, ep.wire_rtp, dest, &buf[..len]);
                fate = Some((f, true));
            }
        }
        let mut buf = [0u8; 1500];
        if let Some((dest, len)) = ep.sess.poll_rtcp(now, &mut buf) {
            assert!(is_rtcp(&buf[..len]));
            net.send(now, ep.rtcp, dest, &buf[..len]);
        }
        fate
    }

    /// Advance simulated time in 1 ms steps; media ticks every 20 ms.
    fn run(&mut self, ms: u64) {
        let end = self.ms + ms;
        while self.ms < end {
            let now = self.now();
            while let Some(d) = self.ab.poll(now) {
                Self::deliver(&mut self.b, now, d.to, d.from, &d.data);
            }
            while let Some(d) = self.ba.poll(now) {
                Self::deliver(&mut self.a, now, d.to, d.from, &d.data);
            }
            if self.ms.is_multiple_of(20) {
                if let Some((f, _)) = Self::tick(&mut self.a, now, &mut self.ab) {
                    match f {
                        Fate::Dropped => self.ab_rtp_dropped += 1,
                        Fate::Duplicated => self.ab_rtp_dup += 1,
                        Fate::Delivered => {}
                    }
                }
                Self::tick(&mut self.b, now, &mut self.ba);
                if let Some((src, ref mut n)) = self.foreign {
                    // An attacker (or stale NAT binding) also streams at A.
                    let mut buf = [0u8; 200];
                    let h = RtpHeader {
                        marker: false,
                        payload_type: 0,
                        sequence: *n as u16,
                        timestamp: (*n as u32) * 160,
                        ssrc: 0xBAD,
                    };
                    let len = build_rtp(&h, &[0x00; 160], &mut buf).expect("build");
                    *n += 1;
                    self.a
                        .sess
                        .handle_rtp(now, src, &buf[..len])
                        .expect("ignored, not an error");
                }
            }
            self.ms += 1;
        }
    }
}

fn clean() -> NetEm {
    NetEm::new(1, 0.0, Duration::from_millis(10), Duration::ZERO)
}

#[test]
fn end_to_end_with_loss_and_jitter_conceals_exactly_the_losses() {
    let ab = NetEm::new(
        0xAB,
        0.05,
        Duration::from_millis(20),
        Duration::from_millis(40),
    );
    let ba = NetEm::new(
        0xBA,
        0.05,
        Duration::from_millis(20),
        Duration::from_millis(40),
    );
    let mut h = Harness::new(ab, ba);
    h.run(10_000);
    // Let the last packets drain before judging.
    h.a.sending = false;
    h.b.sending = false;
    h.run(600);

    let sb = h.b.sess.stats();
    let jb = sb.jitter_buffer;
    let c = h.b.counts;
    let sent = h.a.sent.len() as u64;
    assert_eq!(sent, 500);
    let dropped = h.ab_rtp_dropped;
    assert!(
        (15..=40).contains(&dropped),
        "5 % of 500 sent, got {dropped}"
    );

    // Every RTP packet is accounted for: received + network loss.
    assert_eq!(sb.packets_received, sent - dropped);
    // RFC 3550 cumulative loss equals what the network dropped (a loss among the first
    // two probation packets would not be counted).
    assert!(
        (sb.lost - dropped as i64).abs() <= 1,
        "lost {} vs dropped {dropped}",
        sb.lost
    );

    // Concealment: one frame per packet that was missing at playout (dropped or late),
    // plus delay stretching, plus the fade-out after the stream stopped.
    assert_eq!(c.concealed, jb.concealed);
    let missing = dropped + jb.late;
    assert!(
        jb.lost.abs_diff(missing) <= 2,
        "jitter-buffer lost {} vs dropped {dropped} + late {}",
        jb.lost,
        jb.late
    );
    assert_eq!(jb.concealed, jb.lost + jb.stretched + 5, "{jb:?}");
    assert!(
        jb.stretched <= 10,
        "delay adapted with few stretches: {jb:?}"
    );
    assert!(
        jb.late <= 10,
        "adaptive buffer keeps late packets rare: {jb:?}"
    );
    // Everything else was decoded, and it is A's tone.
    assert!(
        c.decoded + jb.shrunk + dropped + jb.late + 5 >= sent,
        "{c:?} {jb:?}"
    );
    assert!(c.loud_decoded + 10 >= c.decoded, "{c:?}");
    let target = jb.target_delay_ms;
    assert!(
        (40.0..=120.0).contains(&target),
        "target for 40 ms jitter: {target}"
    );

    // RTCP: B's receiver reports tell A about the ~5 % loss.
    assert!(h.a.reports.len() >= 2, "reports {:?}", h.a.reports);
    let avg: f64 = h.a.reports.iter().map(|r| r.0).sum::<f64>() / h.a.reports.len() as f64;
    assert!(
        (0.02..=0.08).contains(&avg),
        "RR fraction lost {avg} ({:?})",
        h.a.reports
    );
    let sa = h.a.sess.stats();
    let cum = sa.remote_cumulative_lost.unwrap_or(-1);
    assert!(
        cum > 0 && cum as u64 <= dropped,
        "cumulative {cum} vs {dropped}"
    );
    // RTT: 20-60 ms each way.
    let rtt = sa.rtt_ms.expect("rtt from LSR/DLSR");
    assert!((40.0..=125.0).contains(&rtt), "rtt {rtt}");
    assert!(
        sb.jitter_ms > 5.0 && sb.jitter_ms < 30.0,
        "jitter {}",
        sb.jitter_ms
    );
    assert!(sa.remote_jitter_ms.is_some());
    assert_eq!(sa.latched_remote, Some(h.b.rtp));
}

#[test]
fn duplicates_and_reordering_are_absorbed() {
    let mut ab = NetEm::new(7, 0.0, Duration::from_millis(15), Duration::from_millis(10));
    ab.dup = 0.1;
    ab.reorder = 0.1;
    ab.reorder_delay = Duration::from_millis(25);
    let mut h = Harness::new(ab, clean());
    h.run(5_000);
    h.a.sending = false;
    h.run(500);
    let sb = h.b.sess.stats();
    assert!(h.ab_rtp_dup > 10);
    assert_eq!(sb.duplicate, h.ab_rtp_dup);
    assert_eq!(sb.jitter_buffer.lost, 0, "{:?}", sb.jitter_buffer);
    assert_eq!(sb.late, 0);
    assert!(
        h.b.counts.decoded + sb.jitter_buffer.shrunk >= 245,
        "{:?}",
        h.b.counts
    );
}

#[test]
fn latching_follows_nat_source_and_ignores_foreign_packets() {
    let mut h = Harness::new(clean(), clean());
    // B is behind NAT: its packets arrive from a different address than its SDP says.
    let nat = addr("192.0.2.7:61000");
    h.b.wire_rtp = nat;
    // An unexpected source is believed after a run of consistent packets; then let the buffer settle.
    h.run(600);
    assert_eq!(h.a.sess.stats().latched_remote, Some(nat));
    // A now sends to the NAT address, not to the SDP address.
    let mut buf = [0u8; 300];
    let (dest, _) =
        h.a.sess
            .send_audio(h.now(), &[0; 160], &mut buf)
            .expect("sending");
    assert_eq!(dest, nat);
    // Packets from a third party are ignored and counted, audio continues unaffected.
    h.foreign = Some((addr("203.0.113.9:7000"), 0));
    let before = h.a.counts;
    h.run(1_000);
    let s = h.a.sess.stats();
    assert!(s.foreign_source_drops >= 49, "{s:?}");
    assert_eq!(s.latched_remote, Some(nat));
    assert_eq!(
        s.jitter_buffer.ssrc_changes, 0,
        "foreign SSRC never reached the buffer"
    );
    assert_eq!(h.a.counts.decoded - before.decoded, 50);
}

#[test]
fn hold_stops_sending_and_resume_keeps_timing() {
    let mut h = Harness::new(clean(), clean());
    h.run(1_000);
    // B is put on hold: A offered sendonly, B answers recvonly.
    let mut cb = h.b.sess.config().clone();
    cb.direction = Direction::RecvOnly;
    h.b.sess.update(cb.clone(), h.now()).expect("update");
    let mut ca = h.a.sess.config().clone();
    ca.direction = Direction::SendOnly;
    h.a.sess.update(ca.clone(), h.now()).expect("update");
    let sent_before = h.b.sent.len();
    let a_before = h.a.counts;
    h.run(2_000);
    assert_eq!(h.b.sent.len(), sent_before, "recvonly must not send");
    // A keeps sending (music on hold) and B keeps playing it.
    assert!(h.b.counts.decoded > 90);
    // A's playout runs dry and goes silent rather than concealing forever.
    assert!(
        h.a.counts.silence - a_before.silence > 80,
        "{:?}",
        h.a.counts
    );
    // Inactive: nobody sends.
    ca.direction = Direction::Inactive;
    h.a.sess.update(ca.clone(), h.now()).expect("update");
    let a_sent = h.a.sent.len();
    h.run(1_000);
    assert_eq!(h.a.sent.len(), a_sent, "inactive must not send");
    // Resume: marker on the first packet, sequence continuous, timestamp advanced by the
    // real elapsed time (150 frames of hold).
    cb.direction = Direction::SendRecv;
    h.b.sess.update(cb, h.now()).expect("update");
    ca.direction = Direction::SendRecv;
    h.a.sess.update(ca, h.now()).expect("update");
    h.run(200);
    let (s0, t0, _, _) = h.b.sent[sent_before - 1];
    let (s1, t1, m1, _) = h.b.sent[sent_before];
    assert_eq!(s1, s0.wrapping_add(1));
    assert!(m1, "marker after hold");
    assert_eq!(t1.wrapping_sub(t0), 160 * 151);
    assert!(!h.b.sent[sent_before + 1].2);
}

#[test]
fn rfc4733_digits_end_to_end_once_each_even_with_loss() {
    for loss in [0.0, 0.1] {
        let ab = NetEm::new(
            99,
            loss,
            Duration::from_millis(20),
            Duration::from_millis(30),
        );
        let mut h = Harness::new(ab, clean());
        h.run(500);
        for d in ['1', '#', '9', '9', 'A'] {
            h.a.sess.queue_dtmf(d, 100).expect("queue");
        }
        h.run(3_000);
        let got: String = h.b.dtmf.iter().map(|e| e.digit).collect();
        assert_eq!(got, "1#99A", "loss {loss}");
        assert!(h.b.dtmf.iter().all(|e| e.source == DtmfSource::Rfc4733));
        // Telephone-event packets share their event's timestamp; audio resumes after.
        let te: Vec<_> = h.a.sent.iter().filter(|p| p.3 == 101).collect();
        assert_eq!(te.iter().filter(|p| p.2).count(), 5, "one marker per digit");
        assert!(!h.a.sess.dtmf_pending());
        // Sequence numbers stay continuous across audio and events.
        assert!(h
            .a
            .sent
            .windows(2)
            .all(|w| w[1].0 == w[0].0.wrapping_add(1)));
    }
}

#[test]
fn dtmf_errors() {
    let t = Instant::now();
    let mut cfg = config(1, "10.0.0.2:5000", "10.0.0.2:5001");
    let mut s = RtpSession::new(cfg.clone(), t).expect("session");
    assert_eq!(
        s.queue_dtmf('x', 100),
        Err(SessionError::Dtmf(DtmfError::InvalidDigit('X')))
    );
    assert_eq!(
        s.queue_dtmf('1', 5),
        Err(SessionError::Dtmf(DtmfError::InvalidDuration(5)))
    );
    for _ in 0..16 {
        s.queue_dtmf('1', 100).expect("queue");
    }
    assert_eq!(s.queue_dtmf('1', 100), Err(SessionError::DtmfQueueFull));
    cfg.telephone_event_pt = None;
    let mut s = RtpSession::new(cfg, t).expect("session");
    assert_eq!(s.queue_dtmf('1', 100), Err(SessionError::NoTelephoneEvent));
}

#[test]
fn config_validation() {
    let t = Instant::now();
    let base = config(1, "10.0.0.2:5000", "10.0.0.2:5001");
    let mut c = base.clone();
    c.payload_type = 200;
    assert_eq!(
        RtpSession::new(c, t).unwrap_err(),
        SessionError::InvalidPayloadType(200)
    );
    let mut c = base.clone();
    c.payload_type = 72;
    assert!(RtpSession::new(c, t).is_err());
    let mut c = base.clone();
    c.telephone_event_pt = Some(0);
    assert_eq!(
        RtpSession::new(c, t).unwrap_err(),
        SessionError::PayloadTypeClash(0)
    );
    let mut c = base.clone();
    c.cname = "x".repeat(300);
    assert_eq!(
        RtpSession::new(c, t).unwrap_err(),
        SessionError::CnameTooLong(300)
    );
    #[cfg(not(feature = "opus"))]
    {
        let mut c = base;
        c.codec = CodecKind::Opus;
        c.payload_type = 111;
        assert!(matches!(RtpSession::new(c, t), Err(SessionError::Codec(_))));
    }
}

#[test]
fn hostile_datagrams_yield_errors_not_panics() {
    let t = Instant::now();
    let mut s = RtpSession::new(config(1, "10.0.0.2:5000", "10.0.0.2:5001"), t).expect("session");
    let src = addr("10.0.0.2:5000");
    assert!(matches!(
        s.handle_rtp(t, src, &[1, 2, 3]),
        Err(RtpError::Rtp(_))
    ));
    let mut buf = [0u8; 64];
    let h = RtpHeader {
        marker: false,
        payload_type: 33,
        sequence: 1,
        timestamp: 1,
        ssrc: 5,
    };
    let n = build_rtp(&h, &[1, 2], &mut buf).expect("build");
    assert_eq!(
        s.handle_rtp(t, src, &buf[..n]),
        Err(RtpError::UnknownPayloadType(33))
    );
    // Truncated telephone-event.
    let h = RtpHeader {
        payload_type: 101,
        ..h
    };
    let n = build_rtp(&h, &[1, 2], &mut buf).expect("build");
    assert!(matches!(
        s.handle_rtp(t, src, &buf[..n]),
        Err(RtpError::Dtmf(_))
    ));
    assert!(matches!(
        s.handle_rtcp(t, src, &[0x80, 200, 0, 40]),
        Err(RtpError::Rtcp(_))
    ));
    // Random junk of every size on both sockets.
    let mut rng = crate::rtcp::SplitMix64::new(77);
    for len in 0..300 {
        let mut d: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if let Some(b) = d.first_mut() {
            *b = 0x80 | (*b & 0x3F);
        }
        let _ = s.handle_rtp(t, src, &d);
        let _ = s.handle_rtcp(t, src, &d);
        let mut f = [0i16; 160];
        s.poll_audio(t, &mut f);
    }
}

#[test]
fn rtcp_mux_on_the_rtp_port_is_accepted() {
    let mut h = Harness::new(clean(), clean());
    h.run(7_000);
    // Replay one of B's reports onto A's RTP port (RFC 5761).
    let mut buf = [0u8; 300];
    let now = h.now() + Duration::from_secs(10);
    let (_, len) = h.b.sess.poll_rtcp(now, &mut buf).expect("report due");
    let before = h.a.sess.stats().rtcp_received;
    h.a.sess
        .handle_rtp(now, addr("10.0.0.2:5000"), &buf[..len])
        .expect("rtcp via rtp port");
    assert_eq!(h.a.sess.stats().rtcp_received, before + 1);
}

#[test]
fn reinvite_codec_change_keeps_ssrc_seq_and_timestamp_continuity() {
    let mut h = Harness::new(clean(), clean());
    h.run(1_000);
    let mut cfg = h.a.sess.config().clone();
    cfg.codec = CodecKind::Pcma;
    cfg.payload_type = 8;
    cfg.ssrc = 42; // ignored: our stream continues
    h.a.sess.update(cfg, h.now()).expect("update");
    let mut cb = h.b.sess.config().clone();
    cb.codec = CodecKind::Pcma;
    cb.payload_type = 8;
    h.b.sess.update(cb, h.now()).expect("update");
    let n = h.a.sent.len();
    h.run(1_000);
    let (s0, t0, _, pt0) = h.a.sent[n - 1];
    let (s1, t1, _, pt1) = h.a.sent[n];
    assert_eq!((pt0, pt1), (0, 8));
    assert_eq!(s1, s0.wrapping_add(1));
    assert_eq!(t1, t0.wrapping_add(160));
    assert_eq!(h.a.sess.config().ssrc, 0xA11CE);
    assert!(h.b.counts.loud_decoded > 80, "{:?}", h.b.counts);
}

#[test]
fn ptime_40_sends_two_frames_per_packet() {
    let t = Instant::now();
    let mut cfg = config(9, "10.0.0.2:5000", "10.0.0.2:5001");
    cfg.ptime_ms = 40;
    let mut s = RtpSession::new(cfg, t).expect("session");
    let mut buf = [0u8; 600];
    assert!(s.send_audio(t, &[100; 160], &mut buf).is_none());
    let (_, len) = s.send_audio(t, &[100; 160], &mut buf).expect("packet");
    assert_eq!(len, 12 + 320);
    let p = parse_rtp(&buf[..len]).expect("rtp");
    assert_eq!(p.header.timestamp, 9u32.wrapping_mul(7919));
    assert!(p.header.marker);
    assert!(s.send_audio(t, &[100; 160], &mut buf).is_none());
    let (_, len) = s.send_audio(t, &[100; 160], &mut buf).expect("packet");
    let p = parse_rtp(&buf[..len]).expect("rtp");
    assert_eq!(
        p.header.timestamp,
        9u32.wrapping_mul(7919).wrapping_add(320)
    );
    assert!(!p.header.marker);
    // Too small an output buffer is counted, not a panic.
    let mut tiny = [0u8; 20];
    let mut cfg = config(10, "10.0.0.2:5000", "10.0.0.2:5001");
    cfg.ptime_ms = 20;
    let mut s = RtpSession::new(cfg, t).expect("session");
    assert!(s.send_audio(t, &[0; 160], &mut tiny).is_none());
    assert_eq!(s.stats().send_errors, 1);
}

#[test]
fn no_remote_means_no_send_but_time_advances() {
    let t = Instant::now();
    let mut cfg = config(3, "10.0.0.2:5000", "10.0.0.2:5001");
    cfg.remote_rtp = None;
    cfg.remote_rtcp = None;
    let mut s = RtpSession::new(cfg, t).expect("session");
    let mut buf = [0u8; 300];
    for _ in 0..10 {
        assert!(s.send_audio(t, &[0; 160], &mut buf).is_none());
    }
    assert!(s.poll_rtcp(t + Duration::from_secs(30), &mut buf).is_none());
    // With no address in the SDP, a source is believed after a run of consistent packets;
    // timestamps kept running meanwhile.
    let peer = addr("198.51.100.1:30000");
    for i in 0..super::latch::CONFIRM_PACKETS {
        let h = RtpHeader {
            marker: i == 0,
            payload_type: 0,
            sequence: 1 + i as u16,
            timestamp: 1 + 160 * i,
            ssrc: 5,
        };
        let n = build_rtp(&h, &[0xFF; 160], &mut buf).expect("build");
        s.handle_rtp(t, peer, &buf[..n]).expect("rtp");
    }
    let (dest, len) = s.send_audio(t, &[0; 160], &mut buf).expect("now sending");
    assert_eq!(dest, peer);
    let p = parse_rtp(&buf[..len]).expect("rtp");
    assert_eq!(
        p.header.timestamp,
        3u32.wrapping_mul(7919).wrapping_add(160 * 10)
    );
    assert_eq!(p.header.sequence, 9);
    assert!(p.header.marker);
}

#[test]
fn per_frame_paths_do_not_allocate() {
    let mut h = Harness::new(clean(), clean());
    // Warm up: latching, first reports, jitter estimates.
    h.run(7_000);
    let a_rtp = h.a.rtp;
    let a_rtcp = h.a.rtcp;
    let a = &mut h.a.sess;
    let b = &mut h.b.sess;
    a.queue_dtmf('5', 100).expect("queue");
    let start = h.t0 + Duration::from_millis(7_000);
    let mut pcm = [0i16; FRAME_SAMPLES];
    let mut out = [0u8; 1500];
    let mut rtcp = [0u8; 1500];
    let mut delivered = 0;
    let ((), allocs) = count_allocs(|| {
        for k in 0..200u64 {
            let t = start + Duration::from_millis(k * 20);
            if let Some((_, len)) = a.send_audio(t, &pcm, &mut out) {
                if k % 17 != 3 {
                    let _ = b.handle_rtp(t, a_rtp, &out[..len]);
                    delivered += 1;
                }
            }
            if let Some((_, len)) = a.poll_rtcp(t, &mut rtcp) {
                let _ = b.handle_rtcp(t, a_rtcp, &rtcp[..len]);
            }
            b.poll_audio(t, &mut pcm);
            let _ = b.poll_dtmf();
            let _ = b.send_audio(t, &pcm, &mut out);
            let _ = b.poll_rtcp(t, &mut rtcp);
            let _ = b.stats();
        }
    });
    assert!(delivered > 150);
    assert!(
        b.stats().dtmf_received >= 1,
        "telephone-event path exercised"
    );
    assert!(b.stats().rtcp_received >= 3, "RTCP path exercised");
    assert_eq!(allocs, 0, "heap allocations on the per-frame path");
}

#[test]
fn session_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<RtpSession>();
}

#[cfg(feature = "opus")]
#[test]
fn opus_end_to_end_with_loss() {
    let ab = NetEm::new(
        0xAB,
        0.05,
        Duration::from_millis(20),
        Duration::from_millis(40),
    );
    let mut h = Harness::with(ab, clean(), |c| {
        c.codec = CodecKind::Opus;
        c.payload_type = 111;
    });
    h.run(10_000);
    h.a.sending = false;
    h.run(600);
    let sb = h.b.sess.stats();
    let jb = sb.jitter_buffer;
    let dropped = h.ab_rtp_dropped;
    assert!(dropped > 5);
    assert_eq!(sb.decode_errors, 0);
    assert!(
        jb.lost.abs_diff(dropped + jb.late) <= 2,
        "{jb:?} dropped {dropped}"
    );
    // Opus timestamps run at 48 kHz.
    let (_, t0, _, pt) = h.a.sent[0];
    let (_, t1, _, _) = h.a.sent[1];
    assert_eq!((pt, t1.wrapping_sub(t0)), (111, 960));
    // Decoded audio is A's tone at a sensible level.
    assert!(
        h.b.counts.decoded > 400 && h.b.counts.loud_decoded > 350,
        "{:?}",
        h.b.counts
    );
}
