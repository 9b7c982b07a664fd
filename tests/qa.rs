//! Quality checking on real calls: a scripted caller tells voxgate about a scam; supervisors must hear of
//! it while the call is going (the alert stream and the webhook), and the finished call must carry a score
//! whose deductions point at the caller's words.
//!
//! The alert latency measured here (end of the caller's utterance, as sent, to the SSE event read by the
//! test) is printed; the benchmark suite reports its distribution.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::caller::Caller;
use common::{Voxgate, TEST_TOKEN};
use serde_json::Value;

/// Reads `GET /api/v1/alerts/stream` on a thread; each alert arrives with the instant it was read.
fn alert_stream(addr: SocketAddr) -> mpsc::Receiver<(Instant, Value)> {
    alert_stream_at(addr, |_| {})
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// [`alert_stream`], with `on_alert` annotating each alert as it is read.
fn alert_stream_at(
    addr: SocketAddr,
    on_alert: impl Fn(&mut Value) + Send + 'static,
) -> mpsc::Receiver<(Instant, Value)> {
    let (tx, rx) = mpsc::channel();
    let mut sock = TcpStream::connect(addr).expect("connect");
    write!(
        sock,
        "GET /api/v1/alerts/stream HTTP/1.1\r\nHost: voxgate\r\nAuthorization: Bearer {TEST_TOKEN}\r\n\
         Accept: text/event-stream\r\n\r\n"
    )
    .expect("request");
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in BufReader::new(sock).lines() {
            let Ok(line) = line else { return };
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                if event == "alert" {
                    if let Ok(mut v) = serde_json::from_str::<Value>(data.trim()) {
                        on_alert(&mut v);
                        if tx.send((Instant::now(), v)).is_err() {
                            return;
                        }
                    }
                }
            } else if line.is_empty() {
                event.clear();
            }
        }
    });
    rx
}

/// A webhook receiver: every POSTed body, answered 200.
fn webhook() -> (u16, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match conn.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            if conn.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    let _ = tx.send(v);
                }
            }
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, rx)
}

#[test]
fn a_scam_victim_raises_live_alerts_once_each_and_the_call_is_scored() {
    let (hook_port, hooks) = webhook();
    let vg = Voxgate::start_with("qa-fraud", |c| {
        c.set(
            "qa",
            "alert_webhook",
            &format!("\"http://127.0.0.1:{hook_port}/alerts\""),
        );
    });
    let alerts = alert_stream(vg.http_addr());
    let c = Caller::dial(&vg, "+15550100002", "hotline");
    assert!(c.answered, "voxgate did not answer");
    assert!(
        c.wait_turn(Duration::from_millis(1200), Duration::from_secs(40)),
        "no greeting"
    );
    let sentence = "Someone called me and told me to move my money to a safe account.";
    c.say(&common::tts_phone(&vg.dir, "flite:slt", sentence));
    let said = c
        .wait_said(Duration::from_secs(30))
        .expect("the caller's words were sent");

    // Both risk rules fire while the caller is still on the line.
    let mut got: Vec<(Instant, Value)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 2 && Instant::now() < deadline {
        if let Ok(a) = alerts.recv_timeout(Duration::from_millis(200)) {
            got.push(a);
        }
    }
    let rules: Vec<&str> = got.iter().filter_map(|(_, a)| a["rule"].as_str()).collect();
    assert!(
        rules.contains(&"caller_no_fraud_indicator") && rules.contains(&"caller_coached_transfer"),
        "{got:#?}\n{}",
        common::tail(&vg.log_text(), 40)
    );
    assert!(!c.ended(), "the alerts came only after the call");
    for (at, a) in &got {
        let ms = at.duration_since(said).as_millis() as i64
            - said.duration_since(*at).as_millis() as i64;
        println!(
            "alert {} ({}, from {}): {ms} ms after the end of the utterance",
            a["rule"],
            a["severity"],
            if a["from_partial"] == true {
                "a partial"
            } else {
                "the final"
            }
        );
        assert!(
            ms < 3000,
            "alert {} only {ms} ms after the caller stopped",
            a["rule"]
        );
        assert_eq!(a["speaker"], "caller");
        let quote = a["quote"].as_str().unwrap_or_default().to_lowercase();
        assert!(
            quote.contains("account") || quote.contains("told me") || quote.contains("money"),
            "{a:#}"
        );
        assert!(a["end_ms"].as_u64() > a["start_ms"].as_u64(), "{a:#}");
    }
    let fraud = got
        .iter()
        .find(|(_, a)| a["rule"] == "caller_no_fraud_indicator")
        .map(|(_, a)| a.clone())
        .unwrap_or_default();
    assert_eq!(fraud["severity"], "critical");

    // The caller says it again and keys the account number straight after: no second alert for the same
    // rule in this call, and the words cut short by the key stay on the record.
    c.say(&common::tts_phone(
        &vg.dir,
        "flite:slt",
        "They want my money in a safe account.",
    ));
    c.keys("87654321");
    assert!(
        c.wait_ended(Duration::from_secs(60)),
        "voxgate never hung up"
    );
    while let Ok(a) = alerts.recv_timeout(Duration::from_secs(2)) {
        got.push(a);
    }
    let mut rules: Vec<String> = got
        .iter()
        .filter_map(|(_, a)| a["rule"].as_str().map(String::from))
        .collect();
    rules.sort();
    let before = rules.len();
    rules.dedup();
    assert_eq!(before, rules.len(), "an alert was repeated: {got:#?}");

    // The webhook got each alert once, the same ones.
    let mut posted: Vec<String> = Vec::new();
    while let Ok(v) = hooks.recv_timeout(Duration::from_secs(2)) {
        posted.push(v["rule"].as_str().unwrap_or_default().to_string());
    }
    posted.sort();
    assert_eq!(posted, rules);

    // The finished call is scored; the fraud rule's evidence is the caller's words, with their time.
    let rec = vg.wait_ended_calls(1, Duration::from_secs(30)).remove(0);
    let id = rec["id"].as_i64().expect("store id");
    let deadline = Instant::now() + Duration::from_secs(10);
    let call = loop {
        let call = vg.get_json(&format!("/api/v1/calls/{id}"));
        if call["scores"].as_array().is_some_and(|s| !s.is_empty()) || Instant::now() > deadline {
            break call;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let score = &call["scores"][0]["result"];
    assert_eq!(score["scorecard"], "bank_en", "{call:#}");
    assert!(score["score"]
        .as_f64()
        .is_some_and(|s| (0.0..=100.0).contains(&s)));
    let rule = score["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["rule"] == "caller_no_fraud_indicator"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(rule["outcome"], "fail", "{rule:#}");
    let ev = &rule["evidence"][0];
    assert_eq!(ev["speaker"], "caller");
    assert!(
        ev["quote"].as_str().is_some_and(|q| q.contains("account")),
        "{ev:#}"
    );
    let turn = &call["turns"][ev["turn"].as_u64().unwrap_or(0) as usize];
    assert!(
        turn["start_ms"].as_u64() <= ev["start_ms"].as_u64()
            && ev["end_ms"].as_u64() <= turn["end_ms"].as_u64(),
        "{ev:#} not inside {turn:#}"
    );
    let caller_turns: Vec<&str> = call["turns"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|t| t["speaker"] == "caller")
                .filter_map(|t| t["text"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        caller_turns
            .iter()
            .filter(|t| t.to_lowercase().contains("account"))
            .count()
            >= 2,
        "{caller_turns:?}"
    );
    assert_eq!(
        call["dialog"]["handoff"]["skill"], "fraud",
        "{:#}",
        call["dialog"]
    );
    // The alerts are on the call, too.
    assert_eq!(call["alerts"].as_array().map(Vec::len), Some(rules.len()));
}

/// A third-party SIP client (sipp) as the caller: its audio, from a pcap, talks over the greeting with a scam
/// story; the alert reaches the stream while sipp is still on the line, and the call is scored.
#[test]
fn a_sipp_caller_with_a_scam_story_raises_an_alert_during_the_call() {
    let vg = Voxgate::start("qa-sipp");
    let alerts = alert_stream_at(vg.http_addr(), |a| {
        a["received_at_ms"] = wall_ms().into();
    });
    let story = common::tts_phone(
        &vg.dir,
        "flite:rms",
        "Hello, a man told me to move my savings to a safe account today.",
    );
    let voice_end = story
        .chunks(160)
        .rposition(|f| common::rms_dbfs(f) > -40.0)
        .map_or(0, |i| (i + 1) * 160);
    let mut pcm = vec![0i16; 8000 * 3 / 2];
    let speech_end_ms = (pcm.len() + voice_end) as i64 / 8;
    pcm.extend(&story);
    pcm.extend(vec![0i16; 8000 * 8]);
    let pcap = vg.dir.join("scam.pcap");
    common::write_pcmu_pcap(&pcap, &pcm);
    let template = std::fs::read_to_string(common::repo().join("tests/sipp/uac_speak_hangup.xml"))
        .expect("scenario");
    let scenario = vg.dir.join("scam.xml");
    std::fs::write(
        &scenario,
        template.replace("@PCAP@", &pcap.to_string_lossy()),
    )
    .expect("write scenario");
    let hang_up_ms = pcm.len() / 8;
    let out = vg.sipp_file(&scenario, &["-m", "1", "-d", &hang_up_ms.to_string()]);
    assert!(
        out.status.success(),
        "sipp failed:\n{}",
        common::tail(&vg.log_text(), 40)
    );
    let rec = vg.wait_ended_calls(1, Duration::from_secs(30)).remove(0);
    let got: Vec<Value> = alerts.try_iter().map(|(_, a)| a).collect();
    let alert = got
        .iter()
        .find(|a| a["rule"] == "caller_no_fraud_indicator")
        .unwrap_or_else(|| panic!("no fraud alert: {got:#?}\n{:#}", rec["turns"]));
    let answered = rec["answered_at_ms"].as_i64().expect("answered");
    let ended = rec["ended_at_ms"].as_i64().expect("ended");
    let received = alert["received_at_ms"].as_i64().unwrap_or(i64::MAX);
    assert!(
        received < ended,
        "alert at {received}, call ended at {ended}"
    );
    println!(
        "sipp caller: alert {} ms after the end of the utterance (pcap playback from the answer)",
        received - (answered + speech_end_ms)
    );
    let id = rec["id"].as_i64().expect("id");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let call = vg.get_json(&format!("/api/v1/calls/{id}"));
        if let Some(score) = call["scores"][0]["result"]["score"].as_f64() {
            assert!((0.0..=100.0).contains(&score));
            break;
        }
        assert!(Instant::now() < deadline, "never scored: {call:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
