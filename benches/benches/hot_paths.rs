//! Micro-benchmarks of the per-frame and per-message hot paths.
//!
//! Run: `cargo bench -p voxgate-benches`. Each benchmark is one 20 ms frame (or one SIP message), so
//! 20 ms divided by the time per iteration is how many calls one core could carry for that stage alone.
//! The same inputs (`voxgate_benches::fixtures`) feed `voxgate-bench-hot`, which counts instructions under
//! callgrind where wall time is too noisy.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use voxgate_benches::fixtures::{echo_frames, voice_frame, INVITE};
use voxgate_media::codec::CodecKind;
use voxgate_media::dtmf::GoertzelDetector;
use voxgate_media::g711;
use voxgate_media::jitter::{JitterBuffer, JitterConfig, Pop};
use voxgate_media::player::{Clip, PromptPlayer, Source};
use voxgate_media::recorder::CallRecorder;
use voxgate_media::resample::Upsampler8to16;
use voxgate_media::session::{Direction, RtpSession, SessionConfig};
use voxgate_media::speech::{EchoConfig, EchoGuard, Vad, VadEngine, VadKind, WebRtcMode};
use voxgate_media::{Frame, FRAME_SAMPLES};

fn g711(c: &mut Criterion) {
    let pcm = voice_frame(0);
    let mut enc = [0u8; FRAME_SAMPLES];
    let mut dec = [0i16; FRAME_SAMPLES];
    c.bench_function("g711/ulaw_encode_frame", |b| {
        b.iter(|| g711::encode_ulaw(black_box(&pcm), &mut enc))
    });
    g711::encode_ulaw(&pcm, &mut enc);
    c.bench_function("g711/ulaw_decode_frame", |b| {
        b.iter(|| g711::decode_ulaw(black_box(&enc), &mut dec))
    });
    c.bench_function("g711/alaw_encode_frame", |b| {
        b.iter(|| g711::encode_alaw(black_box(&pcm), &mut enc))
    });
}

fn jitter_buffer(c: &mut Criterion) {
    let payload = [0x55u8; FRAME_SAMPLES];
    let mut out = [0u8; 1500];
    c.bench_function("jitter/push_pop_per_packet", |b| {
        let mut jb = JitterBuffer::new(JitterConfig::for_codec(CodecKind::Pcmu));
        let t0 = Instant::now();
        let mut n: u32 = 0;
        b.iter(|| {
            let now = t0 + Duration::from_millis(20 * u64::from(n));
            jb.push(now, n as u16, n.wrapping_mul(160), 7, black_box(&payload));
            let p = jb.pop(now, &mut out);
            n = n.wrapping_add(1);
            black_box(matches!(p, Pop::Packet { .. }))
        })
    });
}

fn dtmf(c: &mut Criterion) {
    let frames: Vec<Frame> = (0..50).map(voice_frame).collect();
    c.bench_function("dtmf/goertzel_per_frame", |b| {
        let mut det = GoertzelDetector::default();
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % frames.len();
            black_box(det.process(&frames[i]))
        })
    });
}

fn resample(c: &mut Criterion) {
    let pcm = voice_frame(0);
    let mut out = [0i16; 2 * FRAME_SAMPLES];
    if let Ok(mut up) = Upsampler8to16::new() {
        c.bench_function("resample/8k_to_16k_per_frame", |b| {
            b.iter(|| up.process(black_box(&pcm), &mut out))
        });
    }
}

fn player_and_recorder(c: &mut Criterion) {
    let clip = Clip::new(
        "bench",
        (0..8000 * 10).map(|i| (i % 200) as i16).collect::<Vec<_>>(),
    );
    let mut frame = [0i16; FRAME_SAMPLES];
    c.bench_function("player/next_frame", |b| {
        let mut p = PromptPlayer::default();
        b.iter(|| {
            if !p.is_playing() {
                let _ = p.enqueue(Source::Clip(clip.clone()));
            }
            black_box(p.next_frame(&mut frame))
        })
    });
    let caller = voice_frame(1);
    let ours = voice_frame(2);
    let mut stereo = [0i16; 2 * FRAME_SAMPLES];
    c.bench_function("recorder/push_frame", |b| {
        let mut r = CallRecorder::new(10);
        b.iter(|| black_box(r.push(&caller, &ours, &mut stereo)))
    });
}

fn session(c: &mut Criterion) {
    let a: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let b_addr: SocketAddr = "127.0.0.1:40002".parse().expect("addr");
    let cfg = |ssrc, remote: SocketAddr| SessionConfig {
        codec: CodecKind::Pcmu,
        payload_type: 0,
        telephone_event_pt: Some(101),
        remote_rtp: Some(remote),
        remote_rtcp: None,
        ptime_ms: 20,
        direction: Direction::SendRecv,
        ssrc,
        initial_seq: 1,
        initial_ts: 1,
        cname: "bench".into(),
        symmetric_latching: true,
        jitter_min: Duration::from_millis(20),
        jitter_max: Duration::from_millis(200),
    };
    let t0 = Instant::now();
    let (Ok(mut tx), Ok(mut rx)) = (
        RtpSession::new(cfg(1, b_addr), t0),
        RtpSession::new(cfg(2, a), t0),
    ) else {
        return;
    };
    let pcm = voice_frame(3);
    let mut pkt = [0u8; 1500];
    let mut decoded = [0i16; FRAME_SAMPLES];
    let mut n: u64 = 0;
    // One full media tick for one call: encode + packetise ours, receive + jitter + decode theirs.
    c.bench_function("session/full_tick", |bch| {
        bch.iter(|| {
            let now = t0 + Duration::from_millis(20 * n);
            n += 1;
            if let Some((_, len)) = tx.send_audio(now, &pcm, &mut pkt) {
                let _ = rx.handle_rtp(now, a, &pkt[..len]);
            }
            black_box(rx.poll_audio(now, &mut decoded))
        })
    });
}

fn sip_parse(c: &mut Criterion) {
    c.bench_function("sip/parse_invite", |b| {
        b.iter(|| black_box(voxgate_sip::SipMessage::parse(black_box(INVITE))))
    });
}

fn vad(c: &mut Criterion) {
    let frames: Vec<Frame> = (0..50).map(voice_frame).collect();
    for (name, kind) in [
        (
            "vad/webrtc_mode3_per_frame",
            VadKind::WebRtc(WebRtcMode::VeryAggressive),
        ),
        ("vad/earshot_per_frame", VadKind::Earshot),
    ] {
        let Ok(mut v) = VadEngine::new(kind) else {
            continue;
        };
        let mut i = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % frames.len();
                black_box(v.process(&frames[i]).unwrap_or(0.0))
            })
        });
    }
}

/// The echo guard with its default 1024 taps on an echoing line: adapting while a prompt
/// plays, and frozen in double talk (the delay-jump search runs instead).
fn echo_guard(c: &mut Criterion) {
    const WARM_UP: usize = 250;
    for (name, talker) in [
        ("echo_guard/adapting_per_frame", false),
        ("echo_guard/double_talk_per_frame", true),
    ] {
        // Converged on 5 s of echo first; then frames with the caller over the prompt (or more echo).
        let (far, near) = echo_frames(WARM_UP + 250, talker.then_some(WARM_UP));
        let Ok(mut g) = EchoGuard::new(EchoConfig::default()) else {
            continue;
        };
        let mut out = [0i16; FRAME_SAMPLES];
        for (f, x) in far.iter().zip(&near).take(WARM_UP) {
            g.process(f, x, &mut out);
        }
        let mut i = WARM_UP;
        c.bench_function(name, |b| {
            b.iter(|| {
                i = if i + 1 < far.len() { i + 1 } else { WARM_UP };
                black_box(g.process(black_box(&far[i]), black_box(&near[i]), &mut out))
            })
        });
    }
}

criterion_group!(
    benches,
    echo_guard,
    g711,
    jitter_buffer,
    dtmf,
    resample,
    player_and_recorder,
    session,
    sip_parse,
    vad
);
criterion_main!(benches);
