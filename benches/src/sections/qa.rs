//! Scenario 7, QA: (a) rules evaluated per second on stored transcripts: calls written to a SQLite store,
//! read back, scored with each bundled scorecard by `voxgate-qa`'s scorer in process; (b) alert latency:
//! callers of a real `voxgate run` (bank flow, tiny.en, realtime rules on partials) report a scam; the suite
//! listens on `GET /api/v1/alerts/stream` and times the end of the caller's utterance (as sent) → the alert
//! event read from the stream.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use voxgate_qa::scorecard::{score, ScorecardSet};
use voxgate_qa::store::StoreLocation;
use voxgate_qa::{CallRecord, Speaker, Store, TimelineEvent, Turn};

use super::{ms, Ctx};
use crate::corpus::{phone_channel, render, Voice};
use crate::loadgen::{self, EndPlan, LoadConfig, Script, SpeechPlan, Trigger};
use crate::report::{table, Goal, SectionOut};
use crate::stats::Summary;
use crate::target::{ConfigText, BENCH_TOKEN};
use crate::BenchError;

const ID: &str = "qa";
const TITLE: &str = "7. QA";

/// What the synthetic calls say: a bank conversation with the usual risk and compliance material.
const LINES: &[(Speaker, &str)] = &[
    (
        Speaker::Voxgate,
        "Welcome to the demo bank. Tell me in a few words what you need.",
    ),
    (
        Speaker::Caller,
        "Hi, I think someone used my card, there is a payment I did not make.",
    ),
    (
        Speaker::Voxgate,
        "I am sorry to hear that. Please key in your eight digit account number.",
    ),
    (
        Speaker::Caller,
        "Okay, it is done. Can you tell me my balance first?",
    ),
    (
        Speaker::Voxgate,
        "Thank you, you are verified. Your available balance is 1,240 dollars.",
    ),
    (
        Speaker::Caller,
        "They told me to move my money to a safe account, is that you?",
    ),
    (
        Speaker::Voxgate,
        "No, we never ask that. I am connecting you to our fraud team now.",
    ),
    (
        Speaker::Agent,
        "Hello, this is Fiona from the fraud team, this call is recorded. How can I help?",
    ),
    (
        Speaker::Caller,
        "I am really angry, this is the third time, I will complain to the ombudsman.",
    ),
    (
        Speaker::Agent,
        "I understand. Can you confirm your date of birth before we continue?",
    ),
    (
        Speaker::Caller,
        "Yes, it is the fifth of May nineteen eighty.",
    ),
    (
        Speaker::Agent,
        "Thank you. Your last transaction was a transfer of nine hundred dollars.",
    ),
    (
        Speaker::Caller,
        "I did not make that transfer, please stop it and send me a new card.",
    ),
    (
        Speaker::Agent,
        "I have frozen the card and opened a case. Is there anything else? Goodbye.",
    ),
];

pub fn run(ctx: &Ctx) -> SectionOut {
    let mut out = SectionOut {
        id: ID,
        title: TITLE,
        ..SectionOut::default()
    };
    if let Err(e) = rules_per_second(ctx, &mut out) {
        out.error = Some(e.to_string());
        return out;
    }
    if let Err(e) = alert_latency(ctx, &mut out) {
        out.error = Some(e.to_string());
    }
    out
}

/// A stored call of `rounds` × [`LINES`] turns, 4 s apart.
fn synthetic_call(i: usize, rounds: usize) -> CallRecord {
    let mut turns = Vec::new();
    let mut at = 1_000u64;
    for r in 0..rounds {
        for (k, (speaker, text)) in LINES.iter().enumerate() {
            // Vary the words a little so no two calls are identical.
            let text = if (i + r + k).is_multiple_of(3) {
                text.replace("demo bank", "voxgate bank")
            } else {
                (*text).to_string()
            };
            let len = 400 + 60 * text.split_whitespace().count() as u64;
            turns.push(Turn {
                speaker: *speaker,
                start_ms: at,
                end_ms: at + len,
                text,
                confidence: Some(0.9),
                interrupted: false,
                segments: Vec::new(),
                acoustics: None,
            });
            at += len + 600;
        }
    }
    let started = 1_780_000_000_000 + i as i64 * 600_000;
    let mut rec = CallRecord {
        call_id: format!("bench-qa-{i}"),
        from_uri: "sip:+15550100002@bench".into(),
        to_uri: "sip:hotline@bench".into(),
        language: "en".into(),
        started_at_ms: started,
        answered_at_ms: Some(started + 200),
        ended_at_ms: Some(started + at as i64 + 500),
        end_reason: Some("remote_bye".into()),
        turns,
        ..CallRecord::default()
    };
    rec.timeline = vec![
        TimelineEvent {
            at_ms: 200,
            kind: "answered".into(),
            detail: String::new(),
        },
        TimelineEvent {
            at_ms: 20_000,
            kind: "agent_answered".into(),
            detail: "fiona".into(),
        },
    ];
    rec
}

fn rules_per_second(ctx: &Ctx, out: &mut SectionOut) -> Result<(), BenchError> {
    let cards = ScorecardSet::load_dir(&ctx.repo.join("scorecards"))?;
    let n_calls = if ctx.quick { 50 } else { 300 };
    let dir = ctx.bench_dir.join("runs/qa-store");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(&dir, e))?;
    let db = dir.join("qa.db");
    let mut store = Store::open_at(&StoreLocation::Sqlite(db))?;
    let mut ids = Vec::new();
    for i in 0..n_calls {
        let rec = synthetic_call(i, 3);
        let id = store.insert_call(&rec)?;
        let mut rec = rec;
        rec.id = id;
        store.save_call(&rec)?;
        ids.push(id);
    }
    // Read back: what a re-score of stored calls starts from.
    let t = Instant::now();
    let mut calls = Vec::new();
    for id in &ids {
        if let Some(c) = store.get_call(*id)? {
            calls.push(c);
        }
    }
    let load_s = t.elapsed().as_secs_f64();
    let turns = calls.first().map_or(0, |c| c.turns.len());
    let mut rows = Vec::new();
    let mut per_card = Vec::new();
    for card in cards.all() {
        // Mandarin cards score English text too (no matches): the timing is what counts.
        let rules = card.rules().count();
        let mut passes = 0usize;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(if ctx.quick { 1 } else { 3 }) || passes == 0 {
            for c in &calls {
                std::hint::black_box(score(&card, c));
            }
            passes += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        let evals = (passes * calls.len()) as f64 / secs;
        per_card.push(format!(
            "{}: {:.0} rules/s",
            card.name,
            evals * rules as f64
        ));
        rows.push(vec![
            card.name.clone(),
            rules.to_string(),
            calls.len().to_string(),
            turns.to_string(),
            format!("{evals:.0}"),
            format!("{:.0}", evals * rules as f64),
            format!("{:.3}", 1000.0 / evals),
        ]);
    }
    let _ = writeln!(
        out.body,
        "### Rules per second on stored transcripts\n\n{} synthetic calls of {turns} turns (caller, bot and \
         agent; fraud, complaint and disclosure material) written to a SQLite store and read back ({:.0} calls/s \
         read), then scored with each bundled scorecard in one thread of this process (release build). One \
         evaluation = one call scored with every rule of the card, evidence included.\n",
        calls.len(),
        calls.len() as f64 / load_s.max(1e-9),
    );
    out.body.push_str(&table(
        &[
            "scorecard",
            "rules",
            "calls",
            "turns/call",
            "calls scored/s",
            "rules/s",
            "ms/call",
        ],
        &rows,
    ));
    out.body.push('\n');
    out.goals.push(Goal::new(
        "QA rules evaluated per second (one core)",
        "report",
        per_card.join(", "),
        None,
    ));
    Ok(())
}

/// Alerts read from the SSE stream, each with the wall-clock ns it was read at.
fn alert_stream(addr: SocketAddr) -> Result<mpsc::Receiver<(u64, serde_json::Value)>, BenchError> {
    let io = |e| BenchError::Socket {
        what: "alert stream",
        source: e,
    };
    let mut sock = TcpStream::connect(addr).map_err(io)?;
    write!(
        sock,
        "GET /api/v1/alerts/stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {BENCH_TOKEN}\r\n\
         Accept: text/event-stream\r\n\r\n"
    )
    .map_err(io)?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in BufReader::new(sock).lines() {
            let Ok(line) = line else { return };
            let now = wall_ns();
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                if event == "alert" {
                    if let Ok(v) = serde_json::from_str(data.trim()) {
                        if tx.send((now, v)).is_err() {
                            return;
                        }
                    }
                }
            } else if line.is_empty() {
                event.clear();
            }
        }
    });
    Ok(rx)
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What the scam victims say (each raises at least one realtime rule of bank_en).
const FRAUD: &[(Voice, &str)] = &[
    (
        Voice::Flite("slt"),
        "Someone called me and told me to move my money to a safe account.",
    ),
    (
        Voice::Flite("rms"),
        "A man said he was from the bank and asked me to buy gift cards.",
    ),
    (
        Voice::Espeak("en-us"),
        "They told me to transfer my savings to a secure account today.",
    ),
    (
        Voice::Flite("awb"),
        "This is a disgrace, I will complain to the ombudsman about you.",
    ),
];

fn alert_latency(ctx: &Ctx, out: &mut SectionOut) -> Result<(), BenchError> {
    ctx.install_model("tiny.en")?;
    let scratch = ctx.bench_dir.join("runs/qa-clips");
    std::fs::create_dir_all(&scratch).map_err(|e| BenchError::io(&scratch, e))?;
    let mut scripts = Vec::new();
    for (i, (voice, text)) in FRAUD.iter().enumerate() {
        let pcm = render(*voice, text, &scratch.join(format!("fraud-{i}")))?;
        let phone = phone_channel(&pcm, &scratch.join(format!("fraud-{i}-phone")))?;
        scripts.push(Script {
            background: None,
            speech: Some(SpeechPlan {
                clip: Arc::from(phone.as_slice()),
                // Talking over the greeting, as a distressed caller does.
                trigger: Trigger::IntoVoice(Duration::from_millis(1500)),
            }),
            end: EndPlan::AfterSpeech(Duration::from_secs(4)),
            echo: None,
        });
    }
    let mut cfg = ConfigText::default();
    cfg.set("asr", "enabled", "true")
        .set_str("asr", "model", "tiny.en")
        .set("qa", "enabled", "true")
        .set("qa", "live_partials", "true")
        .set_str("log", "level", "info");
    let vg = ctx.start_voxgate("qa-alerts", &cfg)?;
    let alerts = alert_stream(vg.http)?;
    let n = if ctx.quick { 4 } else { 20 };
    // One call at a time: this is the latency of one alert, not of a loaded box (see scenario 4 for
    // concurrent talkers).
    let res = loadgen::start(LoadConfig {
        target: vg.sip,
        to_user: "hotline".into(),
        calls: n,
        rate: 1.0 / 12.0,
        scripts,
        keep_packets: false,
        max_duration: Duration::from_secs(n as u64 * 12 + 40),
    })?
    .join()?;
    std::thread::sleep(Duration::from_secs(2));
    let got: Vec<(u64, serde_json::Value)> = alerts.try_iter().collect();
    vg.stop();

    // Calls do not overlap: an alert belongs to the call whose speech it follows.
    let mut first = Vec::new();
    let mut any = Vec::new();
    let mut partial = 0usize;
    let mut missed = 0usize;
    for c in &res.calls {
        let (Some(onset), Some(end)) = (c.speech_onset_ns, c.speech_end_ns) else {
            missed += 1;
            continue;
        };
        let until = c.ended_ns.unwrap_or(end) + 2_000_000_000;
        let mine: Vec<&(u64, serde_json::Value)> = got
            .iter()
            .filter(|(at, _)| *at >= onset && *at <= until)
            .collect();
        let Some((at, a)) = mine.first() else {
            missed += 1;
            continue;
        };
        if a["from_partial"] == true {
            partial += 1;
        }
        first.push((*at as f64 - end as f64) / 1e6);
        any.extend(mine.iter().map(|(at, _)| (*at as f64 - end as f64) / 1e6));
    }
    let _ = writeln!(
        out.body,
        "### Alert latency\n\n{n} calls, one at a time, to `voxgate run` with the bundled bank flow, tiny.en and \
         the bundled scorecards (realtime rules on partials and finals). Each caller talks over the greeting \
         1.5 s in with one of {} scam/complaint sentences (flite and espeak-ng through the phone channel). \
         Latency = end of the caller's last audible sample (as sent by the load generator) → the alert event \
         read from `GET /api/v1/alerts/stream`. Negative: the alert came from a partial transcript before the \
         caller finished.\n",
        FRAUD.len()
    );
    let row = |name: &str, v: &[f64]| match Summary::of(v) {
        Some(s) => vec![
            name.to_string(),
            s.n.to_string(),
            ms(s.min),
            ms(s.p50),
            ms(s.p95),
            ms(s.p99),
            ms(s.max),
        ],
        None => vec![
            name.to_string(),
            "0".into(),
            "–".into(),
            "–".into(),
            "–".into(),
            "–".into(),
            "–".into(),
        ],
    };
    out.body.push_str(&table(
        &[
            "alerts", "n", "min ms", "p50 ms", "p95 ms", "p99 ms", "max ms",
        ],
        &[
            row("first alert of each call", &first),
            row("every alert", &any),
        ],
    ));
    let _ = writeln!(
        out.body,
        "\n{} of {} calls raised an alert ({partial} of the first alerts from a partial); {missed} without.\n",
        first.len(),
        res.calls.len()
    );
    let p95 = Summary::of(&first).map(|s| s.p95);
    out.goals.push(Goal::new(
        "alert latency, end of utterance → SSE event, p95",
        "≤ 1000 ms",
        p95.map_or_else(|| "no alerts".into(), |v| format!("{} ms", ms(v))),
        p95.map(|v| v <= 1000.0 && missed == 0),
    ));
    Ok(())
}
