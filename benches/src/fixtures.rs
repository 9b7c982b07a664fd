//! Inputs shared by the criterion benchmarks (`benches/hot_paths.rs`) and the callgrind target
//! (`voxgate-bench-hot`), so wall time and instruction counts measure the same work.

use voxgate_media::{Frame, FRAME_SAMPLES};

/// A speech-like test frame: a few harmonics, not silence (silence is a codec's fast path).
pub fn voice_frame(phase: usize) -> Frame {
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

/// Frames of a line echo for the echo guard: `far` is a prompt-like signal (the voice
/// frames with a slow level contour), `near` that signal returned 60 ms later and 15 dB
/// down, the echoing line of the capacity scenario. From frame `talker_from` on, a caller
/// louder than the prompt talks over it in 1 s bursts (1 s apart, shorter than the 2 s after
/// which the guard takes double talk for a new echo path): in a burst adaptation freezes and
/// the converged canceller checks each frame for a moved echo path.
pub fn echo_frames(n: usize, talker_from: Option<usize>) -> (Vec<Frame>, Vec<Frame>) {
    const DELAY: usize = 480;
    let gain = 10f32.powf(-15.0 / 20.0);
    let far: Vec<i16> = (0..n)
        .flat_map(|k| {
            let level = 0.4 + 0.6 * ((k as f32 * 0.37).sin() * 0.5 + 0.5);
            voice_frame(k).map(|s| (f32::from(s) * level) as i16)
        })
        .collect();
    let near: Vec<i16> = (0..far.len())
        .map(|i| {
            let echo = i
                .checked_sub(DELAY)
                .map_or(0.0, |j| f32::from(far[j]) * gain);
            let burst = (i / 8000) % 2 == 0;
            let other = if burst && talker_from.is_some_and(|k| i >= k * FRAME_SAMPLES) {
                let t = i as f32 / 8000.0;
                (2.0 * std::f32::consts::PI * 230.0 * t).sin() * 12000.0
                    + (2.0 * std::f32::consts::PI * 690.0 * t).sin() * 6000.0
            } else {
                0.0
            };
            (echo + other) as i16
        })
        .collect();
    let frames = |x: &[i16]| -> Vec<Frame> {
        x.chunks_exact(FRAME_SAMPLES)
            .filter_map(|c| c.try_into().ok())
            .collect()
    };
    (frames(&far), frames(&near))
}

/// A carrier INVITE with two Via headers, P-Asserted-Identity and an SDP offer.
pub const INVITE: &[u8] = b"INVITE sip:hotline@10.0.0.1:5060 SIP/2.0\r\n\
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

/// What `voxgate-bench-hot` can run, in report order.
pub const HOT_OPS: [&str; 10] = [
    "g711_ulaw_encode_frame",
    "g711_ulaw_decode_frame",
    "jitter_push_pop",
    "goertzel_frame",
    "webrtc_vad_frame",
    "earshot_vad_frame",
    "resample_8k_16k_frame",
    "sip_parse_invite",
    "echo_guard_frame",
    "echo_guard_double_talk_frame",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_what_they_claim() {
        let f = voice_frame(0);
        assert!(f.iter().any(|&s| s.unsigned_abs() > 5000));
        assert_ne!(voice_frame(0), voice_frame(1));
        assert!(voxgate_sip::SipMessage::parse(INVITE).is_ok());
    }
}
