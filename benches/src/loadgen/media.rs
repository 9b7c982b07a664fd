//! The media thread: every 20 ms (absolute clock, no drift) it drains each call's socket and sends each
//! call's next frame. Per-packet work allocates nothing; received packets are kept only when asked.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use voxgate_media::g711::{encode_ulaw, ulaw_decode};

use super::net::{enable_timestamps, realtime_ns, recv_stamped};
use super::signalling::ToMedia;
use super::{CallResult, EndPlan, LoadConfig, Progress, RxPacket, Script, Trigger};
use crate::rtp::{
    interval_deviation_us, parse_header, write_header, InterarrivalJitter, SeqTracker,
    FRAME_SAMPLES, HEADER_LEN,
};
use crate::stats::UsHistogram;
use crate::BenchError;

const TICK: Duration = Duration::from_millis(20);
/// A tick this late counts against the generator itself.
const LATE: Duration = Duration::from_millis(5);
/// Behind by more than this many ticks, the clock is re-based instead of bursting to catch up.
const MAX_CATCH_UP: u32 = 10;
/// A sample above this magnitude (-40 dBFS) is audible: where speech starts and ends in a clip.
const AUDIBLE: i16 = 328;
const NS_PER_SAMPLE: u64 = 125_000;
const ECHO_RING: usize = 16;

#[derive(Debug, Default)]
pub(super) struct MediaOutcome {
    pub calls: Vec<CallResult>,
    pub intervals: UsHistogram,
    pub late_ticks: u64,
    pub ticks: u64,
}

/// First and last audible sample of a clip.
pub fn audible_span(clip: &[i16]) -> Option<(usize, usize)> {
    Some((
        clip.iter()
            .position(|s| s.unsigned_abs() > AUDIBLE as u16)?,
        clip.iter()
            .rposition(|s| s.unsigned_abs() > AUDIBLE as u16)?,
    ))
}

pub(super) fn bind_sockets(n: usize) -> Result<Vec<UdpSocket>, BenchError> {
    let err = |e| BenchError::Socket {
        what: "RTP",
        source: e,
    };
    (0..n)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").map_err(err)?;
            s.set_nonblocking(true).map_err(err)?;
            enable_timestamps(&s).map_err(err)?;
            Ok(s)
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Speech {
    Waiting,
    Playing { pos: usize },
    Done { at_ns: u64 },
}

struct Call {
    sock: UdpSocket,
    script: Script,
    span: Option<(usize, usize)>,
    remote: Option<SocketAddr>,
    gone: bool,
    answered_ns: Option<u64>,
    hangup_sent: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    bg_pos: usize,
    speech: Speech,
    last_voice_ns: Option<u64>,
    all: SeqTracker,
    window: SeqTracker,
    prev: Option<(u64, u64)>,
    jitter: InterarrivalJitter,
    echo: Option<Box<[[i16; FRAME_SAMPLES]; ECHO_RING]>>,
    echo_w: usize,
    result: CallResult,
}

pub(super) fn run(
    cfg: &LoadConfig,
    sockets: Vec<UdpSocket>,
    progress: &Progress,
    from_sig: &Receiver<ToMedia>,
    hangups: &Sender<usize>,
) -> Result<MediaOutcome, BenchError> {
    let mut calls: Vec<Call> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, sock)| {
            let script = cfg.scripts[i % cfg.scripts.len()].clone();
            let span = script.speech.as_ref().and_then(|s| audible_span(&s.clip));
            let echo = script
                .echo
                .map(|_| Box::new([[0i16; FRAME_SAMPLES]; ECHO_RING]));
            Call {
                sock,
                span,
                echo,
                script,
                remote: None,
                gone: false,
                answered_ns: None,
                hangup_sent: false,
                seq: (i as u16).wrapping_mul(7919),
                ts: (i as u32).wrapping_mul(104_729),
                ssrc: 0x5eed_0000 ^ i as u32,
                bg_pos: 0,
                speech: Speech::Waiting,
                last_voice_ns: None,
                all: SeqTracker::default(),
                window: SeqTracker::default(),
                prev: None,
                jitter: InterarrivalJitter::default(),
                echo_w: 0,
                result: CallResult {
                    index: i,
                    rx: if cfg.keep_packets {
                        Vec::with_capacity((cfg.max_duration.as_millis() / 20) as usize + 64)
                    } else {
                        Vec::new()
                    },
                    ..CallResult::default()
                },
            }
        })
        .collect();
    let mut out = MediaOutcome::default();
    let mut pkt = [0u8; HEADER_LEN + FRAME_SAMPLES];
    let mut rx_buf = [0u8; 2048];
    let mut frame = [0i16; FRAME_SAMPLES];
    let mut decoded = [0i16; FRAME_SAMPLES];
    let mut base = Instant::now();
    let mut tick: u32 = 0;
    let mut seen_from = 0u64;
    loop {
        tick += 1;
        let due = base + TICK * tick;
        let now = Instant::now();
        if let Some(d) = due.checked_duration_since(now) {
            std::thread::sleep(d);
        } else {
            let behind = now.duration_since(due);
            if behind > LATE {
                out.late_ticks += 1;
            }
            if behind > TICK * MAX_CATCH_UP {
                base = now;
                tick = 0;
            }
        }
        out.ticks += 1;
        while let Ok(msg) = from_sig.try_recv() {
            match msg {
                ToMedia::Answered { index, remote } => {
                    if let Some(c) = calls.get_mut(index) {
                        c.remote = Some(remote);
                        c.answered_ns = Some(realtime_ns());
                    }
                }
                ToMedia::Gone { index } => {
                    if let Some(c) = calls.get_mut(index) {
                        c.gone = true;
                    }
                }
            }
        }
        let w_from = progress.window_from.load(Ordering::Relaxed);
        let w_until = progress.window_until.load(Ordering::Relaxed);
        if w_from != seen_from {
            // A window was set: what was counted before it does not belong to it.
            seen_from = w_from;
            out.intervals = UsHistogram::default();
            for c in calls.iter_mut() {
                c.window = SeqTracker::default();
                c.result.rfc3550_jitter_max_us = 0.0;
            }
        }
        let in_window = |at: u64| w_from == 0 || (at >= w_from && at < w_until);
        let mut active = 0usize;
        for c in calls.iter_mut() {
            if c.gone {
                continue;
            }
            active += 1;
            // Receive everything queued.
            while let Ok(Some((n, at))) = recv_stamped(&c.sock, &mut rx_buf) {
                let Some(h) = parse_header(&rx_buf[..n]) else {
                    continue;
                };
                if h.pt != 0 {
                    continue;
                }
                let payload = &rx_buf[h.payload_offset..n];
                let len = payload.len().min(FRAME_SAMPLES);
                let mut peak: u16 = 0;
                for (d, &b) in decoded.iter_mut().zip(&payload[..len]) {
                    *d = ulaw_decode(b);
                    peak = peak.max(d.unsigned_abs());
                }
                let peak_db = if peak == 0 {
                    -120
                } else {
                    (20.0 * (f64::from(peak) / 32768.0).log10()).round() as i8
                };
                if let Some(ring) = c.echo.as_mut() {
                    ring[c.echo_w % ECHO_RING] = decoded;
                    c.echo_w += 1;
                }
                c.result.packets_received += 1;
                let ext = c.all.push(h.seq);
                c.jitter.push(at, h.ts);
                if in_window(at) {
                    c.window.push(h.seq);
                    if let Some((p_at, p_ext)) = c.prev {
                        if ext == p_ext + 1 && in_window(p_at) {
                            out.intervals.add(interval_deviation_us(p_at, at));
                        }
                    }
                    c.result.rfc3550_jitter_max_us =
                        c.result.rfc3550_jitter_max_us.max(c.jitter.us());
                }
                c.prev = Some((at, ext));
                let rx = RxPacket {
                    at_ns: at,
                    seq: h.seq,
                    peak_db,
                };
                if rx.voiced() {
                    c.result.voice_heard_ns.get_or_insert(at);
                    c.last_voice_ns = Some(at);
                }
                if c.result.rx.capacity() > c.result.rx.len() {
                    c.result.rx.push(rx);
                }
            }
            let Some(remote) = c.remote else {
                continue;
            };
            let now_ns = realtime_ns();
            // Speech trigger.
            if let (Speech::Waiting, Some(plan)) = (c.speech, c.script.speech.as_ref()) {
                let go = match plan.trigger {
                    Trigger::AfterAnswer(d) => c
                        .answered_ns
                        .is_some_and(|a| now_ns >= a + d.as_nanos() as u64),
                    Trigger::IntoVoice(d) => c
                        .result
                        .voice_heard_ns
                        .is_some_and(|v| now_ns >= v + d.as_nanos() as u64),
                    Trigger::AfterTurn { quiet } => c
                        .last_voice_ns
                        .is_some_and(|v| now_ns >= v + quiet.as_nanos() as u64),
                };
                if go {
                    c.speech = Speech::Playing { pos: 0 };
                }
            }
            // This tick's frame: the speech clip, else the background loop, else silence.
            frame.fill(0);
            let mut from_clip = false;
            if let (Speech::Playing { pos }, Some(plan)) = (c.speech, c.script.speech.as_ref()) {
                let clip = &plan.clip;
                let end = (pos + FRAME_SAMPLES).min(clip.len());
                frame[..end - pos].copy_from_slice(&clip[pos..end]);
                from_clip = true;
                if let Some((on, off)) = c.span {
                    if (pos..end).contains(&on) {
                        c.result.speech_onset_ns = Some(now_ns + (on - pos) as u64 * NS_PER_SAMPLE);
                    }
                    if (pos..end).contains(&off) {
                        c.result.speech_end_ns =
                            Some(now_ns + (off + 1 - pos) as u64 * NS_PER_SAMPLE);
                    }
                }
                c.speech = if end >= clip.len() {
                    Speech::Done { at_ns: now_ns }
                } else {
                    Speech::Playing { pos: end }
                };
            }
            if !from_clip {
                if let Some(bg) = c.script.background.as_ref().filter(|b| !b.is_empty()) {
                    for s in frame.iter_mut() {
                        *s = bg[c.bg_pos];
                        c.bg_pos = (c.bg_pos + 1) % bg.len();
                    }
                }
            }
            if let (Some(line), Some(ring)) = (c.script.echo, c.echo.as_ref()) {
                if c.echo_w > line.delay_frames {
                    let back = &ring[(c.echo_w - 1 - line.delay_frames) % ECHO_RING];
                    let g = 10f32.powf(line.gain_db / 20.0);
                    for (s, &e) in frame.iter_mut().zip(back.iter()) {
                        *s = (f32::from(*s) + g * f32::from(e)).clamp(-32768.0, 32767.0) as i16;
                    }
                }
            }
            write_header(&mut pkt, 0, c.result.packets_sent == 0, c.seq, c.ts, c.ssrc);
            encode_ulaw(&frame, &mut pkt[HEADER_LEN..]);
            if c.sock.send_to(&pkt, remote).is_ok() {
                c.result.packets_sent += 1;
            }
            c.seq = c.seq.wrapping_add(1);
            c.ts = c.ts.wrapping_add(FRAME_SAMPLES as u32);
            // Hang up when the script is over.
            if !c.hangup_sent {
                let over = match c.script.end {
                    EndPlan::Hold(d) => c
                        .answered_ns
                        .is_some_and(|a| now_ns >= a + d.as_nanos() as u64),
                    EndPlan::AfterSpeech(d) => match c.speech {
                        Speech::Done { at_ns } => now_ns >= at_ns + d.as_nanos() as u64,
                        _ => false,
                    },
                    EndPlan::External => false,
                };
                if over {
                    c.hangup_sent = true;
                    let _ = hangups.send(c.result.index);
                }
            }
        }
        if active == 0 && progress.signalling_done.load(Ordering::Relaxed) {
            break;
        }
    }
    out.calls = calls
        .into_iter()
        .map(|mut c| {
            let t = if w_from_set(progress) {
                &c.window
            } else {
                &c.all
            };
            c.result.expected = t.expected();
            c.result.lost = t.lost();
            c.result.duplicates = t.duplicates();
            c.result.reordered = t.reordered();
            c.result
        })
        .collect();
    Ok(out)
}

fn w_from_set(progress: &Progress) -> bool {
    progress.window_from.load(Ordering::Relaxed) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audible_span_finds_first_and_last_loud_sample() {
        let mut clip = vec![0i16; 1000];
        clip[100] = 50; // below -40 dBFS: not audible
        clip[200] = -2000;
        clip[700] = 400;
        assert_eq!(audible_span(&clip), Some((200, 700)));
        assert_eq!(audible_span(&[0; 10]), None);
    }
}
