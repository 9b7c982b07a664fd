//! Micro-benchmarks of the per-frame and per-message hot paths.
//!
//! Run: `cargo bench -p voxgate-benches`. Each benchmark is one 20 ms frame (or one SIP message), so
//! 20 ms divided by the time per iteration is how many calls one core could carry for that stage alone.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use voxgate_media::codec::CodecKind;
use voxgate_media::dtmf::GoertzelDetector;
use voxgate_media::g711;
use voxgate_media::jitter::{JitterBuffer, JitterConfig, Pop};
use voxgate_media::player::{Clip, PromptPlayer, Source};
use voxgate_media::recorder::CallRecorder;
use voxgate_media::resample::Upsampler8to16;
use voxgate_media::session::{Direction, RtpSession, SessionConfig};
use voxgate_media::{Frame, FRAME_SAMPLES};

/// A speech-like test frame: a few harmonics, not silence (silence is a codec's fast path).
fn voice_frame(phase: usize) -> Frame {
    let mut f = [0i16; FRAME_SAMPLES];
    for (i, s) in f.iter_mut().enumerate() {
        let t = (phase * FRAME_SAMPLES + i) as f32 / 8000.0;
        let v = (2.0 * std::f32::consts::PI * 180.0 * t).sin() * 6000.0
            + (2.0 * std::f32::consts::PI * 540.0 * t).sin() * 3000.0
            + (2.0 * std::f32::consts::PI * 1260.0 * t).sin() * 1500.0;
        *s = v as i16;
    }
    f
}

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
    let invite = b"INVITE sip:hotline@10.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK776asdhds;rport\r\n\
Via: SIP/2.0/UDP 10.0.0.3:5060;branch=z9hG4bKnashds8;received=10.0.0.3\r\n\
Max-Forwards: 70\r\n\
To: <sip:hotline@10.0.0.1>\r\n\
From: \"Alice\" <sip:+15550100001@carrier.example>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.carrier.example\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:+15550100001@10.0.0.2:5060>\r\n\
P-Asserted-Identity: <sip:+15550100001@carrier.example>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 208\r\n\r\n\
v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";
    c.bench_function("sip/parse_invite", |b| {
        b.iter(|| black_box(voxgate_sip::SipMessage::parse(black_box(invite))))
    });
}

criterion_group!(
    benches,
    g711,
    jitter_buffer,
    dtmf,
    resample,
    player_and_recorder,
    session,
    sip_parse
);
criterion_main!(benches);
