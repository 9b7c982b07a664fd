//! Seeded mutation fuzzing: random byte edits of valid messages must never panic
//! the parser, the SDP code, the stream framer or the endpoint, and whatever
//! parses must survive a serialize/parse round trip unchanged.

mod rfc4475;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voxgate_sip::endpoint::{Endpoint, EndpointConfig, Event, Transport};
use voxgate_sip::framing::StreamDecoder;
use voxgate_sip::sdp::{self, LocalMedia, SessionDescription};
use voxgate_sip::{Response, SipMessage};

/// splitmix64, so runs are reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that are syntactically meaningful somewhere in SIP/SDP.
const INTERESTING: &[u8] = b" \t\r\n:;,=\"<>[]@/?%\\0123456789-.zZ\x00\xff\xc3";

/// `SIP_FUZZ_SCALE` multiplies the iteration counts and `SIP_FUZZ_SEED` shifts the
/// seeds, for longer campaigns outside CI.
fn scale() -> usize {
    std::env::var("SIP_FUZZ_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn seed(base: u64) -> Rng {
    let shift = std::env::var("SIP_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0u64);
    Rng(base ^ shift.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            1 => {
                let i = rng.below(len + 1);
                out.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(8.min(len - i));
                out.drain(i..i + n);
            }
            3 => out.truncate(rng.below(len + 1)),
            4 if len > 0 => {
                // Duplicate a slice (repeated headers, doubled separators).
                let i = rng.below(len);
                let n = 1 + rng.below(32.min(len - i));
                let chunk = out[i..i + n].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, chunk);
            }
            5 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            _ => {
                // Replace a digit run with a huge number.
                if let Some(i) = out.iter().position(|b| b.is_ascii_digit()) {
                    let huge = b"99999999999999999999999";
                    out.splice(i..i + 1, huge.iter().copied());
                }
            }
        }
    }
    out
}

fn seeds() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = rfc4475::all().into_iter().map(|(_, d)| d).collect();
    v.push(
        format!(
            "INVITE sip:hotline@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5070;branch=z9hG4bK-f;rport\r\n\
From: \"A\" <sip:a@bank.example>;tag=f1\r\nTo: <sip:0800@198.51.100.1>\r\nCall-ID: fuzz\r\nCSeq: 1 INVITE\r\n\
Max-Forwards: 70\r\nContact: <sip:a@192.0.2.20:5070>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
            OFFER.len(),
            OFFER
        )
        .into_bytes(),
    );
    v
}

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 97 8 0 101\r\na=rtpmap:97 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na=sendonly\r\na=rtcp:6001 IN IP4 192.0.2.21\r\n";

fn exercise_message(data: &[u8]) {
    let Ok(msg) = SipMessage::parse(data) else {
        return;
    };
    let h = msg.headers();
    let _ = h.vias();
    let _ = h.from();
    let _ = h.to();
    let _ = h.call_id();
    let _ = h.cseq();
    let _ = h.contacts();
    let _ = h.max_forwards();
    let _ = h.content_type();
    let _ = h.routes();
    let _ = h.record_routes();
    if let SipMessage::Request(r) = &msg {
        let _ = r.validate();
        let _ = voxgate_sip::body::extract_sdp(r);
        let _ = voxgate_sip::body::parse_dtmf_info(r);
        let _ = voxgate_sip::body::sipfrag_status(r);
        let _ = voxgate_sip::transaction::TransactionKey::for_request(r);
    }
    let bytes = msg.to_bytes();
    let again = SipMessage::parse(&bytes).expect("serialized output must parse");
    assert_eq!(again, msg, "round trip changed the message");
}

#[test]
fn mutated_messages_never_panic_and_round_trip() {
    let mut rng = seed(0x5eed_0001);
    let seeds = seeds();
    let mut parsed = 0;
    for i in 0..6000 * scale() {
        let seed = &seeds[i % seeds.len()];
        let data = mutate(&mut rng, seed);
        if SipMessage::parse(&data).is_ok() {
            parsed += 1;
        }
        exercise_message(&data);
    }
    // The mutations must not be so destructive that nothing parses.
    assert!(parsed > 1000 * scale(), "only {parsed} mutants parsed");
}

#[test]
fn mutated_sdp_never_panics() {
    let mut rng = seed(0x5eed_0002);
    let local = LocalMedia {
        codecs: vec![sdp::Codec::Opus, sdp::Codec::Pcma, sdp::Codec::Pcmu],
        ..LocalMedia::new("198.51.100.1".parse().unwrap(), 40000, 1)
    };
    for _ in 0..4000 * scale() {
        let data = mutate(&mut rng, OFFER.as_bytes());
        if let Ok(sd) = SessionDescription::parse(&data) {
            // Serialization may add missing mandatory lines (s=, t=), so the
            // property is that it is a fixed point after one round.
            let text = sd.to_string();
            let again = SessionDescription::parse(text.as_bytes()).expect("own output parses");
            assert_eq!(again.to_string(), text);
            // Uninterpreted lines may be reordered into RFC 4566 order; what we
            // interpret must survive unchanged.
            let key = |m: &sdp::MediaDescription| {
                (
                    m.media.clone(),
                    m.port,
                    m.proto.clone(),
                    m.formats.clone(),
                    m.connection.clone(),
                    m.attributes.clone(),
                )
            };
            let a: Vec<_> = again.media.iter().map(key).collect();
            let b: Vec<_> = sd.media.iter().map(key).collect();
            assert_eq!(a, b);
            if let Ok(n) = sdp::negotiate(&sd, &local) {
                assert!(SessionDescription::parse(n.answer.to_string().as_bytes()).is_ok());
            }
            let _ = sdp::negotiate_answer(&local, &sd);
        }
    }
}

#[test]
fn mutated_streams_never_panic_or_stall() {
    let mut rng = seed(0x5eed_0003);
    let seeds = seeds();
    for _ in 0..1500 * scale() {
        let mut stream = Vec::new();
        for _ in 0..3 {
            let s = &seeds[rng.below(seeds.len())];
            stream.extend(mutate(&mut rng, s));
        }
        let mut dec = StreamDecoder::with_limits(8 * 1024, 64 * 1024);
        let mut pos = 0;
        while pos < stream.len() {
            let n = 1 + rng.below(700);
            let end = (pos + n).min(stream.len());
            dec.push(&stream[pos..end]);
            pos = end;
            loop {
                match dec.pop() {
                    Ok(Some(m)) => exercise_message(&m),
                    Ok(None) => break,
                    Err(_) => break,
                }
            }
        }
        assert!(dec.buffered() <= stream.len());
    }
}

#[test]
fn mutated_traffic_never_panics_the_endpoint() {
    let mut rng = seed(0x5eed_0004);
    let seeds = seeds();
    let config = EndpointConfig {
        max_calls: 5,
        seed: 9,
        ..EndpointConfig::default()
    };
    let mut ep = Endpoint::new(config);
    let t0 = Instant::now();
    let mut now = t0;
    let local: SocketAddr = "198.51.100.1:5060".parse().unwrap();
    for i in 0..4000 * scale() {
        let pick = rng.below(seeds.len());
        let data = mutate(&mut rng, &seeds[pick]);
        let remote: SocketAddr = if i % 2 == 0 {
            "192.0.2.20:5070".parse().unwrap()
        } else {
            "[2001:db8::20]:5070".parse().unwrap()
        };
        let transport = if i % 3 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        ep.handle_input(now, transport, local, remote, &data);
        while let Some(ev) = ep.poll_event() {
            // Exercise the command paths with whatever calls appear.
            if let Event::IncomingCall(c) = ev {
                match rng.below(4) {
                    0 => {
                        let _ = ep.answer(now, c.call, OFFER.to_string());
                    }
                    1 => {
                        let _ = ep.reject(now, c.call, 486);
                    }
                    2 => {
                        let _ = ep.send_provisional(now, c.call, 180, None);
                    }
                    _ => {
                        let _ = ep.hangup(now, c.call);
                    }
                }
            }
        }
        while let Some(t) = ep.poll_transmit() {
            assert!(
                SipMessage::parse(&t.payload).is_ok(),
                "we sent unparseable bytes"
            );
        }
        now += Duration::from_millis(rng.below(3000) as u64);
        ep.handle_timeout(now);
        while ep.poll_transmit().is_some() {}
    }
    // Eventually everything times out and the endpoint is idle again.
    let end = now + Duration::from_secs(120);
    while let Some(t) = ep.poll_timeout() {
        if t > end {
            break;
        }
        now = t.max(now);
        ep.handle_timeout(now);
        while ep.poll_transmit().is_some() {}
        while let Some(Event::IncomingCall(c)) = ep.poll_event() {
            let _ = ep.hangup(now, c.call);
        }
    }
    assert!(ep.stats().parse_errors > 0);
    assert!(ep.stats().requests > 0);
}

/// In-dialog NOTIFYs and REFERs need the dialog's tags, which random mutation never
/// guesses: this sets up a confirmed call with a pending REFER subscription and mutates
/// requests inside that dialog.
#[test]
fn mutated_in_dialog_notifies_never_panic_the_endpoint() {
    let mut rng = seed(0x5eed_0005);
    let mut ep = Endpoint::new(EndpointConfig {
        seed: 11,
        ..EndpointConfig::default()
    });
    let now = Instant::now();
    let local: SocketAddr = "198.51.100.1:5060".parse().unwrap();
    let remote: SocketAddr = "192.0.2.20:5070".parse().unwrap();
    let invite = seeds().pop().expect("the INVITE seed");
    ep.handle_input(now, Transport::Udp, local, remote, &invite);
    let call = match ep.poll_event() {
        Some(Event::IncomingCall(c)) => c.call,
        other => panic!("expected IncomingCall, got {other:?}"),
    };
    let local_media = LocalMedia::new("198.51.100.1".parse().unwrap(), 40000, 3);
    let offer = SessionDescription::parse(OFFER.as_bytes()).unwrap();
    let answer = sdp::negotiate(&offer, &local_media).unwrap().answer;
    ep.answer(now, call, answer.to_string()).unwrap();
    let tag = std::iter::from_fn(|| ep.poll_transmit())
        .filter_map(|t| match SipMessage::parse(&t.payload) {
            Ok(SipMessage::Response(r)) if r.status == 200 => {
                r.headers.to().ok()?.tag().map(str::to_string)
            }
            _ => None,
        })
        .next()
        .expect("200 with our tag");
    // Every request carries the highest CSeq there is (equal numbers are in order), so no
    // mutation can raise the dialog's remote CSeq and get all later requests refused.
    let in_dialog = |method: &str, n: usize, extra: &str, body: &str| {
        format!(
            "{method} sip:hotline@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5070;branch=z9hG4bK-m{n}\r\n\
From: \"A\" <sip:a@bank.example>;tag=f1\r\nTo: <sip:0800@198.51.100.1>;tag={tag}\r\nCall-ID: fuzz\r\n\
CSeq: 2147483647 {method}\r\nMax-Forwards: 70\r\nContact: <sip:a@192.0.2.20:5070>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    ep.handle_input(
        now,
        Transport::Udp,
        local,
        remote,
        in_dialog("ACK", 1, "", "")
            .replace("2147483647 ACK", "1 ACK")
            .as_bytes(),
    );
    assert_eq!(ep.poll_event(), Some(Event::CallConfirmed { call }));

    let mut notifies = 0;
    let mut refer_seq = 0;
    for i in 0..1500 * scale() {
        // Keep subscriptions open: a new REFER whenever the previous one has its answer.
        if ep
            .refer(
                now,
                call,
                "sip:desk@pbx.example",
                Some("sip:0800@198.51.100.1"),
            )
            .is_ok()
        {
            let sent: Vec<_> = std::iter::from_fn(|| ep.poll_transmit()).collect();
            for t in sent {
                if let Ok(SipMessage::Request(r)) = SipMessage::parse(&t.payload) {
                    refer_seq = r.headers.cseq().map_or(0, |c| c.seq);
                    let ok = Response::from_request(&r, 202, None).to_bytes();
                    ep.handle_input(now, Transport::Udp, local, remote, &ok);
                }
            }
        }
        let seed = match rng.below(3) {
            0 => in_dialog(
                "NOTIFY",
                i + 2,
                &format!("Event: refer;id={refer_seq}\r\nSubscription-State: active;expires=60\r\n\
Content-Type: message/sipfrag;version=2.0\r\n"),
                "SIP/2.0 180 Ringing\r\n",
            ),
            1 => in_dialog(
                "NOTIFY",
                i + 2,
                "o: refer\r\nSubscription-State: terminated;reason=noresource\r\nc: message/sipfrag\r\n",
                "SIP/2.0 200 OK\r\n",
            ),
            _ => in_dialog("REFER", i + 2, "Refer-To: <sip:x@y>\r\nReferred-By: <sip:z@w>\r\n", ""),
        };
        let data = mutate(&mut rng, seed.as_bytes());
        ep.handle_input(now, Transport::Udp, local, remote, &data);
        while let Some(ev) = ep.poll_event() {
            match ev {
                Event::ReferNotify { call: c, .. } => {
                    assert_eq!(c, call);
                    notifies += 1;
                }
                Event::ReferResponse { call: c, status } => {
                    assert_eq!((c, status), (call, 202));
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
        while let Some(t) = ep.poll_transmit() {
            assert!(
                SipMessage::parse(&t.payload).is_ok(),
                "we sent unparseable bytes"
            );
        }
    }
    assert!(
        notifies > 100,
        "mutations left the NOTIFY path unexercised ({notifies})"
    );
    assert_eq!(
        ep.active_calls(),
        1,
        "no mutated NOTIFY or REFER ends the call"
    );
}
