//! `voxgate-bench-hot OP N`: runs hot path OP N times, for instruction counts under callgrind. The suite
//! runs it with N = 0 and N = 10 000 and reports (count(N) − count(0)) / N, so set-up cost cancels out.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use voxgate_benches::fixtures::{echo_frames, voice_frame, HOT_OPS as OPS, INVITE};
use voxgate_media::codec::CodecKind;
use voxgate_media::dtmf::GoertzelDetector;
use voxgate_media::g711;
use voxgate_media::jitter::{JitterBuffer, JitterConfig};
use voxgate_media::resample::Upsampler8to16;
use voxgate_media::speech::{EchoConfig, EchoGuard, Vad, VadEngine, VadKind, WebRtcMode};
use voxgate_media::{Frame, FRAME_SAMPLES};

/// Echo-only frames the echo guard benchmarks run before counting.
const WARM_UP: usize = 250;

fn run(op: &str, n: usize) -> bool {
    let frames: Vec<Frame> = (0..50).map(voice_frame).collect();
    match op {
        "g711_ulaw_encode_frame" => {
            let mut enc = [0u8; FRAME_SAMPLES];
            for i in 0..n {
                g711::encode_ulaw(black_box(&frames[i % 50]), &mut enc);
                black_box(&enc);
            }
        }
        "g711_ulaw_decode_frame" => {
            let mut enc = [0u8; FRAME_SAMPLES];
            g711::encode_ulaw(&frames[0], &mut enc);
            let mut dec = [0i16; FRAME_SAMPLES];
            for _ in 0..n {
                g711::decode_ulaw(black_box(&enc), &mut dec);
                black_box(&dec);
            }
        }
        "jitter_push_pop" => {
            let payload = [0x55u8; FRAME_SAMPLES];
            let mut out = [0u8; 1500];
            let mut jb = JitterBuffer::new(JitterConfig::for_codec(CodecKind::Pcmu));
            let t0 = Instant::now();
            for k in 0..n as u32 {
                let now = t0 + Duration::from_millis(20 * u64::from(k));
                jb.push(now, k as u16, k.wrapping_mul(160), 7, black_box(&payload));
                black_box(jb.pop(now, &mut out));
            }
        }
        "goertzel_frame" => {
            let mut det = GoertzelDetector::default();
            for i in 0..n {
                black_box(det.process(&frames[i % 50]));
            }
        }
        "webrtc_vad_frame" | "earshot_vad_frame" => {
            let kind = if op.starts_with("webrtc") {
                VadKind::WebRtc(WebRtcMode::VeryAggressive)
            } else {
                VadKind::Earshot
            };
            let Ok(mut v) = VadEngine::new(kind) else {
                return false;
            };
            for i in 0..n {
                black_box(v.process(&frames[i % 50]).unwrap_or(0.0));
            }
        }
        "resample_8k_16k_frame" => {
            let Ok(mut up) = Upsampler8to16::new() else {
                return false;
            };
            let mut out = [0i16; 2 * FRAME_SAMPLES];
            for i in 0..n {
                let _ = black_box(up.process(black_box(&frames[i % 50]), &mut out));
            }
        }
        "sip_parse_invite" => {
            for _ in 0..n {
                black_box(voxgate_sip::SipMessage::parse(black_box(INVITE)).is_ok());
            }
        }
        "echo_guard_frame" | "echo_guard_double_talk_frame" => {
            // 5 s of echo alone so the canceller has converged; for double talk the caller
            // then talks over the prompt, and only those frames are counted.
            let talk = op.contains("double_talk").then_some(WARM_UP);
            let (far, near) = echo_frames(WARM_UP + 250, talk);
            let Ok(mut g) = EchoGuard::new(EchoConfig::default()) else {
                return false;
            };
            let mut out = [0i16; FRAME_SAMPLES];
            for (f, x) in far.iter().zip(&near).take(WARM_UP) {
                g.process(f, x, &mut out);
            }
            let span = far.len() - WARM_UP;
            for i in 0..n {
                let k = WARM_UP + i % span;
                black_box(g.process(black_box(&far[k]), black_box(&near[k]), &mut out));
            }
        }
        _ => return false,
    }
    true
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(op), Some(n)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: voxgate-bench-hot OP N\nOP: {}", OPS.join(", "));
        return ExitCode::from(2);
    };
    if run(op, n) {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "unknown or unavailable op {op:?}; known: {}",
            OPS.join(", ")
        );
        ExitCode::from(2)
    }
}
