//! The call path end to end: the real `voxgate` binary driven by sipp (Debian `sip-tester`) on loopback.

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{rms_dbfs, timeline_lines, Voxgate};
use serde_json::Value;

fn has_event(rec: &Value, prefix: &str) -> bool {
    timeline_lines(rec).iter().any(|k| k.starts_with(prefix))
}

#[test]
fn basic_call_is_answered_played_recorded_and_stored() {
    let vg = Voxgate::start("basic");
    let rec = vg.one_call("uac_basic.xml", &[]);
    assert_eq!(rec["end_reason"], "remote_bye", "{rec:#}");
    assert_eq!(rec["codec"], "PCMU");
    assert_eq!(rec["transport"], "udp");
    assert!(rec["from_uri"]
        .as_str()
        .unwrap_or("")
        .contains("+15550100001"));
    assert!(!rec["answered_at_ms"].is_null());
    assert!(has_event(&rec, "answered"), "{:?}", timeline_lines(&rec));
    // sipp calls from Alice's number: the demo bank knows her declined payment, so that is asked first.
    assert!(
        has_event(&rec, "prompt predict_declined"),
        "{:?}",
        timeline_lines(&rec)
    );
    assert!(rec["media_stats"].is_object(), "{rec:#}");

    // The recording is served over HTTP, is 8 kHz stereo, and its right channel carries the greeting.
    let (rate, channels, left, right) = vg.recording(&rec);
    assert_eq!((rate, channels), (8000, 2));
    let secs = left.len() as f64 / 8000.0;
    assert!(
        (2.0..6.0).contains(&secs),
        "recording lasts {secs:.2} s for a 3 s call"
    );
    assert!(
        rms_dbfs(&right) > -35.0,
        "greeting missing from recording: {:.1} dBFS",
        rms_dbfs(&right)
    );
    // sipp sent no audio in this scenario: the caller channel is silent.
    assert!(
        rms_dbfs(&left) < -60.0,
        "caller channel not silent: {:.1} dBFS",
        rms_dbfs(&left)
    );
    assert_eq!(vg.stop().code(), Some(0));
}

#[test]
fn tcp_transport_call() {
    let vg = Voxgate::start("tcp");
    let rec = vg.one_call("uac_basic.xml", &["-t", "t1"]);
    assert_eq!(rec["transport"], "tcp");
    assert_eq!(rec["end_reason"], "remote_bye");
}

#[test]
fn cancel_while_ringing_gets_487() {
    let vg = Voxgate::start_with("cancel", |c| c.set("call", "answer_delay_ms", "3000"));
    let rec = vg.one_call("uac_cancel.xml", &[]);
    assert_eq!(rec["end_reason"], "cancelled", "{:#}", rec);
    assert!(rec["answered_at_ms"].is_null());
}

#[test]
fn options_keepalive_and_unsupported_methods() {
    let vg = Voxgate::start("options");
    assert!(vg.sipp("uac_options.xml", &["-m", "3"]).status.success());
    assert!(vg.sipp("uac_methods.xml", &["-m", "1"]).status.success());
    assert!(vg.calls().is_empty(), "OPTIONS must not create calls");
}

#[test]
fn reinvite_hold_and_resume() {
    let vg = Voxgate::start("hold");
    let rec = vg.one_call("uac_hold.xml", &[]);
    let kinds = timeline_lines(&rec);
    assert!(kinds.iter().any(|k| k == "reinvite PCMU hold"), "{kinds:?}");
    assert!(
        kinds.iter().any(|k| k == "reinvite PCMU active"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k.starts_with("held")), "{kinds:?}");
    assert!(kinds.iter().any(|k| k.starts_with("resumed")), "{kinds:?}");
    // The last re-INVITE offered only PCMA: the codec changes mid-call.
    assert!(
        kinds.iter().any(|k| k == "reinvite PCMA active"),
        "{kinds:?}"
    );
    assert_eq!(rec["codec"], "PCMA");
}

#[test]
fn no_common_codec_gets_488() {
    let vg = Voxgate::start("488");
    let rec = vg.one_call("uac_488.xml", &[]);
    assert_eq!(rec["end_reason"], "rejected_488", "{:#}", rec);
}

#[test]
fn ipv6_call() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        panic!("IPv6 loopback unavailable: this test needs ::1");
    }
    let vg = Voxgate::start_with("ipv6", |c| {
        c.set("sip", "udp", "[\"[::1]:{sip_port}\"]");
        c.set("sip", "tcp", "[]");
        c.set("media", "rtp_bind", "\"::1\"");
    });
    let out = vg.sipp_v6("uac_basic.xml", &["-m", "1"]);
    assert!(out.status.success(), "sipp IPv6 call failed");
    let rec = vg.wait_ended_calls(1, Duration::from_secs(10)).remove(0);
    assert_eq!(rec["end_reason"], "remote_bye");
    let remote = rec["remote_addr"].as_str().unwrap_or("");
    assert!(remote.starts_with("[::1]"), "{rec:#}");
    let (_, _, _, right) = vg.recording(&rec);
    assert!(rms_dbfs(&right) > -35.0, "no greeting over IPv6 media");
}

#[test]
fn rfc4733_zero_reaches_for_a_human_and_voxgate_hangs_up() {
    let vg = Voxgate::start("dtmf4733");
    let rec = vg.one_call("uac_dtmf_4733.xml", &[]);
    assert_eq!(rec["digits"], "0", "{rec:#}");
    assert_eq!(rec["end_reason"], "completed", "{rec:#}");
    let kinds = timeline_lines(&rec);
    assert!(kinds.iter().any(|k| k == "dtmf 0 via rfc4733"), "{kinds:?}");
    // 0 interrupts the first prompt, asks for an agent; none is configured, so voxgate says so and ends.
    assert!(kinds.iter().any(|k| k.starts_with("barge_in")), "{kinds:?}");
    assert!(
        kinds.iter().any(|k| k.starts_with("transfer general")),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k.starts_with("prompt no_agent")),
        "{kinds:?}"
    );
    assert_eq!(rec["dialog"]["handoff"]["skill"], "general", "{rec:#}");
}

#[test]
fn sip_info_digit_is_one_event_stream_with_rtp_digits() {
    let vg = Voxgate::start("dtmfinfo");
    let rec = vg.one_call("uac_dtmf_info.xml", &[]);
    assert_eq!(rec["digits"], "0", "{rec:#}");
    assert!(timeline_lines(&rec)
        .iter()
        .any(|k| k == "dtmf 0 via sip_info"));
    assert_eq!(rec["end_reason"], "completed");
}

#[test]
fn keying_0_blind_transfers_the_caller_by_refer_when_a_transfer_target_is_set() {
    let vg = Voxgate::start_with("refer", |c| {
        c.set("handoff", "refer_target", "\"sip:desk@192.0.2.9:5060\"")
    });
    // sipp checks the REFER (Refer-To, Referred-By), accepts it, reports the target ringing then
    // answering, and expects voxgate's BYE.
    let rec = vg.one_call("uac_refer.xml", &[]);
    assert_eq!(rec["end_reason"], "transferred", "{rec:#}");
    let kinds: Vec<String> = timeline_lines(&rec)
        .into_iter()
        .filter(|l| l.starts_with("refer"))
        .collect();
    assert_eq!(
        kinds,
        [
            "refer sip:desk@192.0.2.9:5060",
            "refer_accepted 202",
            "refer_notify 180",
            "refer_notify 200 terminated"
        ],
        "{rec:#}"
    );
    assert_eq!(rec["dialog"]["handoff"]["skill"], "general", "{rec:#}");
    assert_eq!(vg.metric("voxgate_refers_total"), 1);
}

#[test]
fn fifty_concurrent_calls() {
    let vg = Voxgate::start_with("fifty", |c| c.set("sip", "max_calls", "60"));
    let out = vg.sipp(
        "uac_long.xml",
        &["-m", "50", "-l", "50", "-r", "50", "-d", "5000"],
    );
    assert!(out.status.success(), "sipp 50 concurrent calls failed");
    let calls = vg.wait_ended_calls(50, Duration::from_secs(20));
    assert_eq!(calls.len(), 50);
    for rec in &calls {
        assert_eq!(rec["end_reason"], "remote_bye", "{rec:#}");
        assert!(has_event(rec, "prompt predict_declined"), "{rec:#}");
    }
    let metrics = vg.try_get("/metrics").expect("metrics").1;
    let text = String::from_utf8_lossy(&metrics);
    assert!(text.contains("voxgate_calls_answered_total 50"), "{text}");
}

#[test]
fn calls_beyond_max_get_503_with_retry_after() {
    let vg = Voxgate::start_with("cap", |c| c.set("sip", "max_calls", "2"));
    let sipp_port = common::free_port().to_string();
    let media_port = common::free_port().to_string();
    let mut long = Command::new("sipp")
        .arg("-sf")
        .arg(common::repo().join("tests/sipp/uac_long.xml"))
        .args([
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &sipp_port,
            "-mp",
            &media_port,
        ])
        .args([
            "-nostdin", "-m", "2", "-l", "2", "-r", "10", "-d", "6000", "-timeout", "60s",
        ])
        .arg(vg.sip_addr())
        .current_dir(&vg.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("sipp");
    let deadline = Instant::now() + Duration::from_secs(10);
    while vg.get_json("/healthz")["active_calls"].as_u64() != Some(2) {
        assert!(Instant::now() < deadline, "two calls never became active");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = vg.sipp("uac_503.xml", &["-m", "1"]);
    assert!(
        out.status.success(),
        "third call did not get 503 + Retry-After"
    );
    assert!(
        long.wait().expect("sipp").success(),
        "the two admitted calls must complete"
    );
}

#[test]
fn hostile_input_does_not_crash_or_stall() {
    let vg = Voxgate::start("hostile");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let junk: [&[u8]; 6] = [
        b"",
        b"\x00\x01\x02garbage",
        b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nContent-Length: 99999\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"INVITE  SIP/2.0\r\n\r\n",
        b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKy\r\nCSeq: x\r\n\r\n",
    ];
    for j in junk {
        sock.send_to(j, vg.sip_addr()).expect("send");
    }
    let mut seed = 0x1234_5678_u64;
    for _ in 0..500 {
        let mut msg = b"OPTIONS sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKf\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: f\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".to_vec();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % msg.len();
            msg[i] = (seed >> 32) as u8;
        }
        sock.send_to(&msg, vg.sip_addr()).expect("send");
    }
    // A TCP stream of garbage gets closed, not stuck.
    let mut tcp = TcpStream::connect(vg.sip_addr()).expect("tcp");
    let _ = tcp.write_all(b"HELLO\r\nContent-Length: abc\r\n\r\n\x00\xff");
    // The server still serves a real call.
    let out = vg.sipp("uac_options.xml", &["-m", "1"]);
    assert!(out.status.success(), "OPTIONS after hostile input failed");
    let metrics = String::from_utf8_lossy(&vg.try_get("/metrics").expect("metrics").1).into_owned();
    let parse_errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("voxgate_sip_parse_errors_total "))
        .and_then(|v| v.parse().ok())
        .expect("parse error counter");
    assert!(parse_errors >= 3, "garbage was not counted: {parse_errors}");
    let metrics = String::from_utf8_lossy(&vg.try_get("/metrics").expect("metrics").1).into_owned();
    let parse_errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("voxgate_sip_parse_errors_total "))
        .and_then(|v| v.parse().ok())
        .expect("parse error counter");
    assert!(parse_errors >= 3, "garbage was not counted: {parse_errors}");
    let out = vg.sipp("uac_basic.xml", &["-m", "1"]);
    assert!(out.status.success(), "call after hostile input failed");
    assert_eq!(vg.stop().code(), Some(0), "voxgate must exit cleanly");
}

#[test]
fn config_check_reports_file_line_column() {
    let dir = std::env::temp_dir().join(format!("voxgate-cfgcheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[sip]\nmax_calls = 10\n\n[media]\nrtp_port_min = 30000\nrtp_port_max = 20000\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:5:") || err.contains("bad.toml:6:"),
        "{err}"
    );
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "[sip]\nmax_cals = 10\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .args(["config", "check"])
        .arg(&unknown)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown.toml:2:1"), "{err}");
    let good = dir.join("good.toml");
    let default = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .args(["config", "default"])
        .output()
        .expect("run");
    std::fs::write(&good, &default.stdout).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .args(["config", "check"])
        .arg(&good)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn inband_digit_is_detected_and_masked_in_the_recording() {
    let vg = Voxgate::start("inband");
    // 1 s silence, a 250 ms '0' (agent) at about -9 dBFS per tone, then silence until voxgate hangs up.
    let mut pcm = vec![0i16; 8000];
    pcm.extend(common::dtmf_tone('0', 250, 10_000.0));
    pcm.extend(vec![0i16; 8000 * 12]);
    let pcap = vg.dir.join("inband.pcap");
    common::write_pcmu_pcap(&pcap, &pcm);
    let scenario = common::inband_scenario(&vg.dir, &pcap);
    let out = vg.sipp_file(&scenario, &["-m", "1"]);
    assert!(out.status.success(), "sipp in-band scenario failed");
    let rec = vg.wait_ended_calls(1, Duration::from_secs(10)).remove(0);
    assert_eq!(rec["digits"], "0", "{rec:#}");
    let kinds = timeline_lines(&rec);
    assert!(kinds.iter().any(|k| k == "dtmf 0 via inband"), "{kinds:?}");
    assert_eq!(rec["end_reason"], "completed");

    // The caller channel carried nothing but the key press; masking must leave no trace of it.
    let (_, channels, left, right) = vg.recording(&rec);
    assert_eq!(channels, 2);
    let peak = left.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!(peak < 200, "DTMF audible in recording: caller peak {peak}");
    assert!(
        rms_dbfs(&right) > -35.0,
        "our prompts missing from the recording"
    );
}

#[test]
fn offerless_reinvite_session_refresh_keeps_the_call() {
    let vg = Voxgate::start("refresh");
    let rec = vg.one_call("uac_refresh.xml", &[]);
    assert_eq!(rec["end_reason"], "remote_bye", "{:#}", rec);
}

#[test]
fn silent_call_ends_on_rtp_timeout_but_held_call_does_not() {
    let vg = Voxgate::start_with("rtptimeout", |c| {
        c.set("media", "no_packet_timeout_secs", "2")
    });
    // sipp sends no RTP at all: voxgate hangs up after 2 s.
    let rec = vg.one_call("uac_wait_bye.xml", &[]);
    assert_eq!(rec["end_reason"], "rtp_timeout", "{rec:#}");
    // Put on hold (inactive) and silent for 5 s: no timeout; the caller hangs up.
    let out = vg.sipp("uac_hold_silent.xml", &["-m", "1"]);
    assert!(out.status.success(), "a held call was hung up");
    let calls = vg.wait_ended_calls(2, Duration::from_secs(10));
    let held = calls
        .iter()
        .find(|c| c["end_reason"] != "rtp_timeout")
        .expect("held call");
    assert_eq!(held["end_reason"], "remote_bye", "{held:#}");
}
