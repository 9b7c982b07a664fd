//! The signalling thread: places the calls on schedule through one sans-IO `Endpoint`, tells the media
//! thread where to send each answered call's audio, and hangs calls up when asked.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use voxgate_sip::endpoint::{CallHandle, Endpoint, EndpointConfig, Event, OutgoingCall, Transport};
use voxgate_sip::sdp::{self, LocalMedia};
use voxgate_sip::transaction::TimerConfig;
use voxgate_sip::uri::Uri;

use super::net::realtime_ns;
use super::{LoadConfig, Progress};

/// Signalling side of one call's record.
#[derive(Debug, Clone, Default)]
pub(super) struct SigRecord {
    pub invite_ns: Option<u64>,
    pub answered_ns: Option<u64>,
    pub ended_ns: Option<u64>,
    pub failed: Option<Option<u16>>,
}

/// What the media thread learns from signalling.
pub(super) enum ToMedia {
    /// Send this call's audio to `remote` from now on.
    Answered { index: usize, remote: SocketAddr },
    /// The call is over (either side, or it never got up).
    Gone { index: usize },
}

/// How long to linger after the last call so final BYE/200 exchanges complete.
const LINGER: Duration = Duration::from_millis(500);

pub(super) fn run(
    cfg: &LoadConfig,
    rtp_ports: &[u16],
    progress: &Progress,
    to_media: &Sender<ToMedia>,
    hangups: &Receiver<usize>,
) -> Vec<SigRecord> {
    let mut records = vec![SigRecord::default(); cfg.calls];
    let finish = |records: &mut Vec<SigRecord>| {
        progress.signalling_done.store(true, Ordering::Relaxed);
        std::mem::take(records)
    };
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
        for (i, r) in records.iter_mut().enumerate() {
            r.failed = Some(None);
            let _ = to_media.send(ToMedia::Gone { index: i });
        }
        progress.finished.store(cfg.calls, Ordering::Relaxed);
        return finish(&mut records);
    };
    let Ok(local) = sock.local_addr() else {
        return finish(&mut records);
    };
    let mut ep = Endpoint::new(EndpointConfig {
        max_calls: cfg.calls + 16,
        retry_after_secs: 5,
        user_agent: "voxgate-loadgen".into(),
        contact_host: "127.0.0.1".into(),
        udp_port: local.port(),
        tcp_port: local.port(),
        timers: TimerConfig::default(),
        seed: realtime_ns(),
    });
    let start = Instant::now();
    let deadline = start + cfg.max_duration;
    let mut handles: HashMap<CallHandle, usize> = HashMap::with_capacity(cfg.calls);
    let mut handle_of: Vec<Option<CallHandle>> = vec![None; cfg.calls];
    let mut media_of: Vec<Option<LocalMedia>> = vec![None; cfg.calls];
    let mut next = 0usize;
    let mut finished = 0usize;
    let mut done_at: Option<Instant> = None;
    let mut buf = vec![0u8; 65_536];
    let interval = Duration::from_secs_f64(1.0 / cfg.rate);
    let mut hung_up_all = false;

    let mark_finished = |records: &mut [SigRecord], i: usize, finished: &mut usize| {
        if records[i].ended_ns.is_none() {
            records[i].ended_ns = Some(realtime_ns());
            *finished += 1;
            progress.finished.store(*finished, Ordering::Relaxed);
            let _ = to_media.send(ToMedia::Gone { index: i });
        }
    };

    loop {
        let now = Instant::now();
        // New calls on schedule.
        while next < cfg.calls && !hung_up_all && start + interval * next as u32 <= now {
            let i = next;
            next += 1;
            progress.placed.store(next, Ordering::Relaxed);
            let mut media =
                LocalMedia::new(IpAddr::V4(Ipv4Addr::LOCALHOST), rtp_ports[i], i as u64 + 1);
            media.codecs = vec![sdp::Codec::Pcmu];
            let offer = sdp::build_offer(&media);
            let target = Uri::parse(&format!(
                "sip:{}@{}:{}",
                cfg.to_user,
                cfg.target.ip(),
                cfg.target.port()
            ));
            let call = target.ok().and_then(|target| {
                ep.invite(
                    now,
                    OutgoingCall {
                        target,
                        to: None,
                        from_user: format!("+1555{:07}", 3_000_000 + i),
                        from_display: None,
                        remote: cfg.target,
                        transport: Transport::Udp,
                        local,
                        sdp_offer: String::from_utf8_lossy(&offer.to_bytes()).into_owned(),
                        extra_headers: vec![],
                    },
                )
                .ok()
            });
            records[i].invite_ns = Some(realtime_ns());
            match call {
                Some(h) => {
                    handles.insert(h, i);
                    handle_of[i] = Some(h);
                    media_of[i] = Some(media);
                }
                None => {
                    records[i].failed = Some(None);
                    mark_finished(&mut records, i, &mut finished);
                }
            }
        }
        if !hung_up_all && (progress.hangup_all.load(Ordering::Relaxed) || now >= deadline) {
            hung_up_all = true;
            for h in handle_of.iter().flatten() {
                let _ = ep.hangup(now, *h);
            }
            // Calls not placed yet never will be.
            for i in next..cfg.calls {
                records[i].failed = Some(None);
                mark_finished(&mut records, i, &mut finished);
            }
            next = cfg.calls;
        }
        while let Ok(i) = hangups.try_recv() {
            if let Some(h) = handle_of.get(i).copied().flatten() {
                let _ = ep.hangup(now, h);
            }
        }
        ep.handle_timeout(now);
        loop {
            while let Some(t) = ep.poll_transmit() {
                let _ = sock.send_to(&t.payload, t.remote);
            }
            let Some(ev) = ep.poll_event() else { break };
            match ev {
                Event::OutgoingAnswered { call, answer } => {
                    let Some(&i) = handles.get(&call) else {
                        continue;
                    };
                    records[i].answered_ns = Some(realtime_ns());
                    progress.answered.fetch_add(1, Ordering::Relaxed);
                    let remote = media_of[i]
                        .as_ref()
                        .and_then(|m| sdp::negotiate_answer(m, &answer).ok())
                        .and_then(|n| n.remote_rtp);
                    match remote {
                        Some(remote) => {
                            let _ = to_media.send(ToMedia::Answered { index: i, remote });
                        }
                        None => {
                            let _ = ep.hangup(now, call);
                        }
                    }
                }
                Event::OutgoingFailed { call, status, .. } => {
                    if let Some(&i) = handles.get(&call) {
                        records[i].failed = Some(status);
                        mark_finished(&mut records, i, &mut finished);
                    }
                }
                Event::CallEnded { call, .. } => {
                    if let Some(&i) = handles.get(&call) {
                        mark_finished(&mut records, i, &mut finished);
                    }
                }
                _ => {}
            }
        }
        if finished >= cfg.calls {
            let at = *done_at.get_or_insert(now);
            if now.duration_since(at) >= LINGER {
                return finish(&mut records);
            }
        }
        if now >= deadline + Duration::from_secs(10) {
            // BYEs that got no answer: give up on them.
            for i in 0..cfg.calls {
                mark_finished(&mut records, i, &mut finished);
            }
            return finish(&mut records);
        }
        // Sleep until the next call, timer or datagram, at most 5 ms (hang-up requests are polled).
        let mut wait = Duration::from_millis(5);
        if next < cfg.calls && !hung_up_all {
            wait = wait.min((start + interval * next as u32).saturating_duration_since(now));
        }
        if let Some(t) = ep.poll_timeout() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        let _ = sock.set_read_timeout(Some(wait.max(Duration::from_micros(200))));
        // Drain everything queued; the first read waits.
        let mut first = true;
        loop {
            if !first {
                let _ = sock.set_nonblocking(true);
            }
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    ep.handle_input(Instant::now(), Transport::Udp, local, from, &buf[..n]);
                }
                Err(_) => break,
            }
            first = false;
        }
        let _ = sock.set_nonblocking(false);
    }
}
