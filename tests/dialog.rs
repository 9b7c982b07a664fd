//! The bundled bank flow end to end: a scripted caller (speech from TTS through the phone band, keys as
//! RFC 4733) talks to the real binary, which runs the flow against the seeded demo bank and whisper.
//!
//! Each test asserts the call record (dialog summary, masked digits, turns), the demo bank's state after the
//! call, and what the caller actually heard (their side of the audio, transcribed).
//!
//! The tests take turns: each runs a voxgate with its own whisper worker, and two decoding at once on a
//! 2-core box would only measure contention.

mod common;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::caller::Caller;
use common::Voxgate;
use serde_json::Value;
use voxgate_backend::{CardStatus, DemoBank, DemoBankConfig};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const ALICE: &str = "+15550100001";
const BOB: &str = "+15550100002";
/// voxgate has finished its turn once it has been quiet this long.
const TURN_GAP: Duration = Duration::from_millis(1200);
const TURN_LIMIT: Duration = Duration::from_secs(40);

/// Takes this file's turn, starts a voxgate and calls it from `from`; the call is answered.
fn answered_call(name: &str, from: &str) -> (MutexGuard<'static, ()>, Voxgate, Caller) {
    let turns = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let vg = Voxgate::start(name);
    let c = Caller::dial(&vg, from, "hotline");
    assert!(c.answered, "voxgate did not answer");
    (turns, vg, c)
}

fn bank(vg: &Voxgate) -> DemoBank {
    DemoBank::open(&DemoBankConfig::new(bank_path(vg))).expect("open demo bank")
}

fn bank_path(vg: &Voxgate) -> PathBuf {
    vg.dir.join("var/demo-bank.sqlite")
}

fn turn(c: &Caller, what: &str) {
    assert!(
        c.wait_turn(TURN_GAP, TURN_LIMIT),
        "voxgate did not finish its turn ({what})"
    );
}

fn speech(vg: &Voxgate, text: &str) -> Vec<i16> {
    common::tts_phone(&vg.dir, "flite:slt", text)
}

/// The call record once the call is stored.
fn record(vg: &Voxgate) -> Value {
    vg.wait_ended_calls(1, Duration::from_secs(30)).remove(0)
}

fn events(rec: &Value, kind: &str) -> Vec<String> {
    rec["dialog"]["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["kind"] == kind)
                .map(|e| e["detail"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the caller's transcript (whisper tiny.en on what they heard) holds some of the prompts' longer
/// words: at least half of the prompts must show one. tiny.en mishears espeak through the phone band a lot
/// ("balance" → "man", "Is there anything else I can help you with?" → "i'm a miss and as a daughter"), so this
/// is a sanity check that the caller heard speech; [`assert_prompts_reached_caller`] checks each prompt's exact
/// audio.
fn assert_heard(heard: &str, keys: &[&str]) {
    let texts =
        std::fs::read_to_string(common::repo().join("prompts/en/texts.tsv")).expect("texts");
    let words_heard: Vec<String> = words(heard);
    let mut missed = Vec::new();
    for key in keys {
        let text = texts
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}\t")))
            .unwrap_or_else(|| panic!("no prompt {key}"));
        let want: Vec<String> = words(text).into_iter().filter(|w| w.len() >= 4).collect();
        if !want.iter().any(|w| words_heard.contains(w)) {
            missed.push(format!("{key} ({text})"));
        }
    }
    assert!(
        missed.len() * 2 <= keys.len(),
        "prompts not heard: {missed:?} in\n{heard}"
    );
}

/// Each prompt's own audio reached the caller: its first 0.25 s is found (normalised correlation over 0.9
/// after the G.711 round trip) in what the caller received, within 20 s after the dialog queued it.
fn assert_prompts_reached_caller(heard: &[i16], rec: &Value, keys: &[&str]) {
    assert_prompts_reached_caller_in("en", heard, rec, keys)
}

fn assert_prompts_reached_caller_in(lang: &str, heard: &[i16], rec: &Value, keys: &[&str]) {
    let timeline = rec["timeline"].as_array().cloned().unwrap_or_default();
    let at = |pred: &dyn Fn(&Value) -> bool| {
        timeline
            .iter()
            .find(|e| pred(e))
            .and_then(|e| e["at_ms"].as_u64())
    };
    let confirmed = at(&|e| e["kind"] == "confirmed").unwrap_or(0);
    let f32s = |x: &[i16]| {
        x.iter()
            .map(|&v| f32::from(v) / 32768.0)
            .collect::<Vec<f32>>()
    };
    for key in keys {
        let queued = at(&|e| {
            e["kind"] == "prompt"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.split_whitespace().any(|w| w == *key))
        })
        .unwrap_or_else(|| panic!("prompt {key} never played"));
        let start = (queued.saturating_sub(confirmed) as usize * 8).saturating_sub(8000);
        let end = (start + 8000 * 20).min(heard.len());
        let clip = voxgate_media::wav::load_wav_8k_mono(
            &common::repo().join(format!("prompts/{lang}/{key}.wav")),
        )
        .expect("prompt audio");
        let needle = &clip[..clip.len().min(2000)];
        let (corr, _) =
            common::best_correlation(&f32s(heard.get(start..end).unwrap_or(&[])), &f32s(needle));
        assert!(
            corr > 0.9,
            "prompt {key} not in what the caller received (best correlation {corr:.2})"
        );
    }
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn prompts(rec: &Value) -> Vec<String> {
    rec["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|e| e["kind"] == "prompt")
                .map(|e| e["detail"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn lost_card_by_keypad_freezes_the_card_and_keeps_the_pin_out_of_the_record() {
    let (_turns, vg, c) = answered_call("lostcard", BOB);
    turn(&c, "greeting");
    c.keys("2");
    turn(&c, "account question");
    c.keys("87654321");
    turn(&c, "PIN question");
    c.keys("1357#");
    turn(&c, "freeze confirmation");
    c.keys("1");
    turn(&c, "card frozen, anything else");
    c.keys("9");
    assert!(
        c.wait_ended(Duration::from_secs(20)),
        "voxgate never hung up"
    );
    let heard = c.transcript(&vg.dir.join("heard.wav"));

    let rec = record(&vg);
    let d = &rec["dialog"];
    assert_eq!(rec["end_reason"], "completed", "{rec:#}");
    assert_eq!(d["intent"]["name"], "lost_card", "{d:#}");
    assert_eq!(d["verification"], "ok", "{d:#}");
    assert_eq!(d["contained"], true, "{d:#}");
    assert_eq!(d["slots"]["card_last4"]["display"], "9911", "{d:#}");
    assert_eq!(
        bank(&vg).card_status("C1002", "9911").expect("bank"),
        Some(CardStatus::Frozen)
    );
    // Neither the PIN nor the account number is anywhere in what people see.
    let text = rec.to_string();
    assert!(!text.contains("1357"), "PIN leaked: {rec:#}");
    assert!(!text.contains("87654321"), "account leaked: {rec:#}");
    // The menu key, 8 account and 4 PIN keys masked, the PIN's #, yes, and "nothing else".
    assert_eq!(rec["digits"], "2************#19", "{rec:#}");
    assert_eq!(d["slots"]["account"]["display"], "****4321", "{d:#}");
    assert!(
        !vg.log_text().contains("1357"),
        "PIN in the log:\n{}",
        vg.log_text()
    );
    // The caller heard the freeze confirmed with the card's last digits (read out: see the timeline).
    assert_heard(&heard, &["card_frozen", "card_frozen_2", "goodbye"]);
    assert_prompts_reached_caller(
        &c.heard(),
        &rec,
        &[
            "ask_account",
            "ask_pin",
            "card_frozen",
            "card_frozen_2",
            "goodbye",
        ],
    );
    assert!(
        prompts(&rec)
            .iter()
            .any(|p| p == "card_frozen num/9 num/9 num/1 num/1 card_frozen_2"),
        "{:?}",
        prompts(&rec)
    );
}

#[test]
fn balance_by_speech_reads_the_balance_after_verification() {
    let (_turns, vg, c) = answered_call("balance", BOB);
    let request = speech(&vg, "I would like to check my account balance please.");
    turn(&c, "greeting");
    c.say(&request);
    turn(&c, "account question (or confirmation)");
    confirm_if_asked(&vg, &c, "account question");
    // Keys, not speech: a spoken account number is covered by the engine tests, and on a loaded CI box a
    // slow recognition of the request can leave the account utterance unheard (see the issue note).

    c.keys("87654321");
    turn(&c, "PIN question");
    c.keys("1357#");
    turn(&c, "balance");
    c.say(&speech(&vg, "No, thank you."));
    assert!(
        c.wait_ended(Duration::from_secs(30)),
        "voxgate never hung up"
    );
    let heard = c.transcript(&vg.dir.join("heard.wav"));

    let rec = record(&vg);
    let d = &rec["dialog"];
    assert_eq!(d["intent"]["name"], "balance", "{d:#}");
    assert_eq!(d["verification"], "ok", "{d:#}");
    assert_eq!(d["slots"]["balance"]["display"], "88.10 USD", "{d:#}");
    assert_eq!(d["contained"], true);
    assert!(
        prompts(&rec)
            .iter()
            .any(|p| p.starts_with("balance_is num/80 num/8 currency/dollars")),
        "{:?}",
        prompts(&rec)
    );
    assert_heard(
        &heard,
        &["ask_account", "balance_is", "anything_else", "goodbye"],
    );
    assert_prompts_reached_caller(
        &c.heard(),
        &rec,
        &["ask_account", "balance_is", "anything_else", "goodbye"],
    );
    let turns = rec["turns"].to_string();
    assert!(!turns.contains("8765"), "{turns}");
}

#[test]
fn fraud_emergency_freezes_flags_and_asks_for_the_fraud_team() {
    let (_turns, vg, c) = answered_call("fraud", BOB);
    turn(&c, "greeting");
    c.say(&speech(
        &vg,
        "Someone called me and told me to move my money to a safe account.",
    ));
    turn(&c, "account question");
    c.keys("87654321");
    // No agent is configured: the fraud line is unavailable and voxgate says so before hanging up.
    assert!(
        c.wait_ended(Duration::from_secs(40)),
        "voxgate never hung up"
    );

    let rec = record(&vg);
    let d = &rec["dialog"];
    assert_eq!(d["intent"]["name"], "fraud", "{d:#}");
    assert_eq!(d["handoff"]["skill"], "fraud", "{d:#}");
    assert_eq!(d["handoff"]["priority"], true, "{d:#}");
    assert!(d["slots"]["case_id"]["display"].is_string(), "{d:#}");
    let b = bank(&vg);
    assert_eq!(b.account_flagged("87654321").expect("bank"), Some(true));
    assert_eq!(
        b.card_status("C1002", "9911").expect("bank"),
        Some(CardStatus::Frozen)
    );
    assert_eq!(b.fraud_cases("C1002").expect("bank").len(), 1);
    let p = prompts(&rec);
    assert!(p.iter().any(|x| x.starts_with("fraud_transfer")), "{p:?}");
    assert!(p.iter().any(|x| x.starts_with("no_agent")), "{p:?}");
}

#[test]
fn agent_request_by_speech_goes_to_a_human() {
    let (_turns, vg, c) = answered_call("agent", BOB);
    turn(&c, "greeting");
    c.say(&speech(&vg, "Transfer me to an agent."));
    assert!(
        c.wait_ended(Duration::from_secs(30)),
        "voxgate never hung up"
    );
    let heard = c.transcript(&vg.dir.join("heard.wav"));
    let rec = record(&vg);
    let d = &rec["dialog"];
    assert_eq!(d["handoff"]["skill"], "general", "{d:#}");
    assert_eq!(d["contained"], false, "{d:#}");
    assert!(
        events(&rec, "command").iter().any(|c| c == "agent"),
        "{d:#}"
    );
    assert_heard(&heard, &["transfer_agent", "no_agent"]);
    assert_prompts_reached_caller(&c.heard(), &rec, &["transfer_agent", "no_agent"]);
}

#[test]
fn known_caller_with_a_declined_payment_is_asked_about_it_first() {
    let (_turns, vg, c) = answered_call("predict", ALICE);
    turn(&c, "prediction");
    let first = c.last_turn_text(&vg.dir.join("first.wav"));
    c.keys("1");
    turn(&c, "account question");
    c.keys("12345678");
    turn(&c, "PIN question");
    c.keys("2580#");
    turn(&c, "declined payment explanation, anything else");
    c.keys("9");
    assert!(
        c.wait_ended(Duration::from_secs(30)),
        "voxgate never hung up"
    );
    let rec = record(&vg);
    let p = prompts(&rec);
    assert_eq!(
        p.first().map(String::as_str),
        Some("predict_declined"),
        "{p:?}"
    );
    assert!(p.iter().any(|x| x.starts_with("declined_info")), "{p:?}");
    assert_heard(&first, &["predict_declined"]);
    assert_eq!(rec["dialog"]["verification"], "ok");
}

#[test]
fn silence_and_nonsense_escalate_to_a_human() {
    let (_turns, vg, c) = answered_call("escalate", BOB);
    turn(&c, "greeting");
    c.say(&speech(
        &vg,
        "Purple elephants are dancing on the moon tonight.",
    ));
    turn(&c, "not understood");
    c.say(&speech(&vg, "Bananas and umbrellas in the garden."));
    turn(&c, "keypad menu");
    // Then nothing at all: the no-input counter tips the call over to a human.
    assert!(
        c.wait_ended(Duration::from_secs(60)),
        "voxgate never hung up"
    );
    let rec = record(&vg);
    let d = &rec["dialog"];
    assert!(d["no_match"].as_u64().unwrap_or(0) >= 2, "{d:#}");
    assert!(d["no_input"].as_u64().unwrap_or(0) >= 1, "{d:#}");
    assert!(!events(&rec, "escalated").is_empty(), "{d:#}");
    assert_eq!(d["handoff"]["skill"], "general", "{d:#}");
    let p = prompts(&rec);
    assert!(p.iter().any(|x| x.contains("keypad_menu")), "{p:?}");
}

#[test]
fn flows_reload_on_sighup_and_calls_in_progress_keep_theirs() {
    let _turns = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let flow = std::env::temp_dir().join(format!("voxgate-reload-{}.toml", std::process::id()));
    let original =
        std::fs::read_to_string(common::repo().join("flows/bank.en.toml")).expect("bundled flow");
    std::fs::write(&flow, &original).expect("write flow");
    let vg = Voxgate::start_with("reload", |c| {
        c.set("dialog", "flow", &format!("{:?}", flow.to_string_lossy()));
    });
    let first = Caller::dial(&vg, BOB, "hotline");
    assert!(first.answered);
    turn(&first, "greeting");

    // A broken flow is refused and the running one stays.
    std::fs::write(
        &flow,
        original.replace("goto = \"more\"", "goto = \"nowhere\""),
    )
    .expect("write");
    vg.hup();
    wait_for(
        || vg.metric("voxgate_flow_reload_errors_total") == 1,
        "refused reload",
    );
    assert!(
        vg.log_text().contains("nowhere"),
        "the refusal names the problem"
    );
    // A good one is taken for new calls.
    std::fs::write(
        &flow,
        original.replace("name = \"demo-bank\"", "name = \"demo-bank-v2\""),
    )
    .expect("write");
    vg.hup();
    wait_for(|| vg.metric("voxgate_flow_reloads_total") == 1, "reload");

    // The call in progress carries on, on the flow it started with.
    first.keys("0");
    assert!(
        first.wait_ended(Duration::from_secs(30)),
        "first call stuck"
    );
    let second = Caller::dial(&vg, BOB, "hotline");
    assert!(second.answered);
    turn(&second, "greeting on the new flow");
    second.hang_up();
    let calls = vg.wait_ended_calls(2, Duration::from_secs(30));
    let flows: Vec<&str> = calls
        .iter()
        .map(|c| c["dialog"]["flow"].as_str().unwrap_or(""))
        .collect();
    assert!(flows.contains(&"demo-bank"), "{flows:?}");
    assert!(flows.contains(&"demo-bank-v2"), "{flows:?}");
    let first_rec = calls
        .iter()
        .find(|c| c["dialog"]["flow"] == "demo-bank")
        .expect("first call");
    assert_eq!(first_rec["end_reason"], "completed", "{first_rec:#}");
    let _ = std::fs::remove_file(&flow);
}

fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn fraud_emergency_is_bridged_to_a_fraud_agent_who_hears_the_caller() {
    let _turns = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // The fraud agent: baresip answering automatically, saying a line 14 s after it picks up (voxgate's case
    // number and "connecting you" play for the first 9 s).
    let adir = std::env::temp_dir().join(format!("voxgate-agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&adir);
    std::fs::create_dir_all(&adir).expect("agent dir");
    let mut agent_pcm = vec![0i16; 8000 * 14];
    agent_pcm.extend(common::tts_phone(
        &adir,
        "flite:rms",
        "Hello, this is Fiona from the fraud team. This call is recorded for quality. \
         Can you confirm your date of birth? Thank you. I can see your case and your frozen card. \
         Your last transaction was a transfer of nine hundred dollars. Is there anything else? Goodbye.",
    ));
    agent_pcm.extend(vec![0i16; 8000 * 60]);
    common::baresip::caller_wav(&adir.join("agent.wav"), &agent_pcm);
    let agent = common::baresip::Baresip::start(
        &adir.join("baresip"),
        &adir.join("agent.wav"),
        ";answermode=auto;audio_codecs=PCMU/8000/1",
    );
    let vg = Voxgate::start_with("fraud-agent", |c| {
        c.set(
            "handoff",
            "agent",
            &format!(
                "[{{ name = \"fiona\", uri = \"sip:caller@127.0.0.1:{}\", skills = [\"fraud\", \"general\"] }}]",
                agent.sip_port
            ),
        );
    });
    let c = Caller::dial(&vg, BOB, "hotline");
    assert!(c.answered);
    turn(&c, "greeting");
    c.say(&speech(
        &vg,
        "I was scammed. Someone told me to move my money to a safe account.",
    ));
    turn(&c, "account question");
    c.keys("87654321");
    // Case number, "connecting you to our fraud team", then the agent picks up.
    turn(&c, "fraud case and transfer");
    c.say(&speech(
        &vg,
        "Hello, is this the fraud team? Someone stole my money.",
    ));
    // The agent's line comes 14 s after they answered, while or after the caller speaks (full duplex).
    assert!(
        c.wait_turn(TURN_GAP, Duration::from_secs(45)),
        "the agent never spoke"
    );
    let heard_by_caller = c.last_turn_text(&vg.dir.join("agent-line.wav"));
    c.hang_up();
    let rec = record(&vg);
    std::thread::sleep(Duration::from_millis(500));
    let agent_log = agent.log();
    drop(agent);

    let d = &rec["dialog"];
    assert_eq!(d["handoff"]["skill"], "fraud", "{d:#}");
    assert_eq!(d["handoff"]["priority"], true, "{d:#}");
    assert_eq!(d["handoff"]["agent"], "fiona", "{d:#}\n{agent_log}");
    assert_eq!(d["contained"], false, "{d:#}");
    let kinds: Vec<String> = rec["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|e| e["kind"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    for k in ["agent_ringing", "agent_answered", "bridged"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing: {kinds:?}");
    }
    // Both sides are on the record, speaker-labelled: the agent's words were transcribed.
    let turns = rec["turns"].as_array().cloned().unwrap_or_default();
    let agent_turn = turns
        .iter()
        .find(|t| t["speaker"] == "agent")
        .unwrap_or_else(|| panic!("no agent turn: {:#}", rec["turns"]));
    let said = agent_turn["text"].as_str().unwrap_or("").to_lowercase();
    assert!(
        said.contains("fraud") || said.contains("case") || said.contains("card"),
        "{said}"
    );
    // The caller heard the agent, and the agent heard the caller.
    assert!(
        heard_by_caller.contains("case") || heard_by_caller.contains("team"),
        "{heard_by_caller}"
    );
    let heard_by_agent = common::baresip::dump(&adir.join("baresip"), "-dec.wav");
    let path = adir.join("agent-heard.wav");
    common::baresip::caller_wav(&path, &heard_by_agent);
    let text = common::caller::transcribe(&heard_by_agent, &path);
    assert!(
        text.contains("fraud") || text.contains("money") || text.contains("stole"),
        "the agent did not hear the caller: {text}"
    );
    // The agent leg is scored on the agent's own behaviour.
    let scores = scores_of(&vg, &rec);
    let en = scores
        .iter()
        .find(|s| s["result"]["scorecard"] == "bank_en")
        .unwrap_or_else(|| panic!("no bank_en score: {scores:#?}"));
    for rule in [
        "agent_greeting",
        "agent_recording_notice",
        "agent_verified_before_account_data",
        "agent_closing",
    ] {
        let r = en["result"]["rules"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["rule"] == rule))
            .unwrap_or_else(|| panic!("{rule} missing: {en:#}"));
        assert_eq!(r["outcome"], "pass", "{rule}: {r:#}\n{:#}", rec["turns"]);
        assert!(
            r["evidence"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["speaker"] == "agent")),
            "{rule}: {r:#}"
        );
    }
    let _ = std::fs::remove_dir_all(&adir);
}

#[test]
fn an_agent_who_does_not_answer_is_cancelled_and_the_next_one_takes_the_call() {
    let _turns = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = std::env::temp_dir().join(format!("voxgate-agents-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("agents dir");
    let wav = root.join("agent.wav");
    common::write_wav(&wav, &vec![0i16; 8000 * 60]);
    // Both have been idle equally long, so the first listed rings first; it never picks up.
    let slow = common::baresip::Baresip::start(&root.join("slow"), &wav, "");
    let quick = common::baresip::Baresip::start(&root.join("quick"), &wav, ";answermode=auto");
    let vg = Voxgate::start_with("ring-next", |c| {
        c.set("handoff", "ring_timeout_secs", "3");
        c.set(
            "handoff",
            "agent",
            &format!(
                "[{{ name = \"slow\", uri = \"sip:caller@127.0.0.1:{}\", skills = [\"general\"] }}, \
                 {{ name = \"quick\", uri = \"sip:caller@127.0.0.1:{}\", skills = [\"general\"] }}]",
                slow.sip_port, quick.sip_port
            ),
        );
    });
    let c = Caller::dial(&vg, BOB, "hotline");
    assert!(c.answered);
    c.keys("0");
    // "Please hold…", 3 s of ringing at the first agent, then the second answers.
    wait_for_event(&vg, &c, Duration::from_secs(20));
    c.hang_up();
    let rec = record(&vg);
    drop((slow, quick));
    // `kind detail` lines of the agent-leg events (their kinds start with "agent").
    let tl: Vec<String> = common::timeline_lines(&rec)
        .into_iter()
        .filter(|l| l.starts_with("agent"))
        .collect();
    let pos = |want: &str| {
        tl.iter()
            .position(|x| x.starts_with(want))
            .unwrap_or_else(|| panic!("{want} missing: {tl:?}"))
    };
    assert!(pos("agent_ringing slow") < pos("agent_left"), "{tl:?}");
    assert!(pos("agent_left") < pos("agent_ringing quick"), "{tl:?}");
    assert!(
        pos("agent_ringing quick") < pos("agent_answered quick"),
        "{tl:?}"
    );
    assert_eq!(rec["dialog"]["handoff"]["agent"], "quick", "{rec:#}");
    let _ = std::fs::remove_dir_all(&root);
}

/// Waits until the call's record, as the API shows it during the call, says an agent answered.
/// The live board's state of each active call, by caller number.
fn board_states(vg: &Voxgate) -> Vec<(String, String)> {
    vg.get_json("/api/v1/live")["calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| {
                    (
                        c["from_uri"].as_str().unwrap_or_default().to_string(),
                        c["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn board_state_of(vg: &Voxgate, number: &str) -> Option<String> {
    board_states(vg)
        .into_iter()
        .find(|(from, _)| from.contains(number))
        .map(|(_, state)| state)
}

#[test]
fn a_caller_queues_while_the_only_agent_is_busy_and_gets_them_once_free() {
    let _turns = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // One agent: baresip answering automatically and saying nothing.
    let adir = std::env::temp_dir().join(format!("voxgate-queue-agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&adir);
    std::fs::create_dir_all(&adir).expect("agent dir");
    common::baresip::caller_wav(&adir.join("agent.wav"), &vec![0i16; 8000 * 120]);
    let agent = common::baresip::Baresip::start(
        &adir.join("baresip"),
        &adir.join("agent.wav"),
        ";answermode=auto;audio_codecs=PCMU/8000/1",
    );
    let vg = Voxgate::start_with("queue", |c| {
        c.set(
            "handoff",
            "agent",
            &format!(
                "[{{ name = \"gina\", uri = \"sip:caller@127.0.0.1:{}\", skills = [\"general\"] }}]",
                agent.sip_port
            ),
        );
        c.set("handoff", "announce_every_secs", "10");
        c.set("handoff", "queue_timeout_secs", "120");
    });
    let (first_no, second_no) = ("+15550100201", "+15550100202");
    let first = Caller::dial(&vg, first_no, "hotline");
    assert!(first.answered);
    turn(&first, "greeting (first caller)");
    first.say(&speech(&vg, "Transfer me to an agent."));
    let mut waited = 0;
    while board_state_of(&vg, first_no).as_deref() != Some("with_agent") {
        waited += 1;
        assert!(
            waited < 300,
            "the first caller never reached the agent: {:?}",
            board_states(&vg)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The second caller asks for a human while the only agent is busy: queued, told where they stand.
    let second = Caller::dial(&vg, second_no, "hotline");
    assert!(second.answered);
    turn(&second, "greeting (second caller)");
    second.say(&speech(&vg, "Transfer me to an agent."));
    wait_for_state(&vg, second_no, "queued", Duration::from_secs(40));
    // The position announcement plays over hold music (never quiet): give it time, then listen.
    std::thread::sleep(Duration::from_secs(10));
    let told = second.transcript(&vg.dir.join("queue-announcement.wav"));
    assert!(
        told.contains("busy") || told.contains("queue") || told.contains("number"),
        "{told}"
    );
    assert_eq!(vg.metric("voxgate_queued_total"), 1);

    // The first caller hangs up: the agent is free and takes the waiting caller.
    first.hang_up();
    wait_for_state(&vg, second_no, "with_agent", Duration::from_secs(30));
    second.hang_up();
    let recs = vg.wait_ended_calls(2, Duration::from_secs(30));
    let rec = recs
        .iter()
        .find(|r| {
            r["from_uri"]
                .as_str()
                .is_some_and(|f| f.contains(second_no))
        })
        .unwrap_or_else(|| panic!("no record of the second caller: {recs:#?}"));
    let kinds: Vec<&str> = rec["timeline"]
        .as_array()
        .map(|t| t.iter().filter_map(|e| e["kind"].as_str()).collect())
        .unwrap_or_default();
    let at = |k: &str| kinds.iter().position(|x| *x == k);
    assert!(at("queued").is_some(), "{kinds:?}");
    assert!(at("queued") < at("agent_answered"), "{kinds:?}");
    assert_eq!(
        rec["dialog"]["handoff"]["agent"], "gina",
        "{:#}",
        rec["dialog"]
    );
    drop(agent);
    let _ = std::fs::remove_dir_all(&adir);
}

fn wait_for_state(vg: &Voxgate, number: &str, state: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if board_state_of(vg, number).as_deref() == Some(state) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{number} never reached {state}: {:?}\n{}",
        board_states(vg),
        common::tail(&vg.log_text(), 30)
    );
}

/// The call's scores, once the store has scored it.
fn scores_of(vg: &Voxgate, rec: &Value) -> Vec<Value> {
    let id = rec["id"].as_i64().expect("store id");
    let mut scores = Vec::new();
    wait_for(
        || {
            let call = vg.get_json(&format!("/api/v1/calls/{id}"));
            scores = call["scores"].as_array().cloned().unwrap_or_default();
            !scores.is_empty()
        },
        "the call's score",
    );
    scores
}

fn wait_for_event(vg: &Voxgate, c: &Caller, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline && !c.ended() {
        let answered = vg.calls().iter().any(|s| {
            let rec = vg.get_json(&format!("/api/v1/calls/{}", s["id"]));
            rec["dialog"]["handoff"]["agent"].is_string()
        });
        if answered {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no agent answered within {within:?}");
}

/// A low-confidence intent is confirmed ("…, right?"): say yes.
fn confirm_if_asked(vg: &Voxgate, c: &Caller, next: &str) {
    if c.last_turn_text(&vg.dir.join("last-turn.wav"))
        .contains("right")
    {
        c.say(&speech(vg, "Yes."));
        turn(c, next);
    }
}

/// The ended call that started last (several calls on one voxgate).
fn latest_record(vg: &Voxgate, n: usize) -> Value {
    vg.wait_ended_calls(n, Duration::from_secs(30))
        .into_iter()
        .max_by_key(|r| r["started_at_ms"].as_i64())
        .expect("a record")
}

/// Calls from Bob's number to one voxgate with voiceprints on: the first enrols after the PIN (with consent),
/// the second is recognised by voice and hears the balance without a PIN, the third — another voice on Bob's
/// number — is not recognised and is asked for account and PIN.
#[test]
fn a_consented_voiceprint_lets_bob_skip_the_pin_and_an_impostor_does_not() {
    let turns = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::install_model("voiceprint");
    let vg = Voxgate::start_with("voiceprint", |cfg| {
        cfg.set("dialog", "voiceprint", "true");
        cfg.set("dialog", "voiceprint_enroll_secs", "5");
        cfg.set("dialog", "voiceprint_min_secs", "2");
    });
    let request = speech(
        &vg,
        "Hello there, I would like to check my account balance please, thank you.",
    );
    let impostor = common::tts_phone(
        &vg.dir,
        "flite:rms",
        "Hello there, I would like to check my account balance please, thank you.",
    );

    // 1. Enrolment: not enrolled yet, so account and PIN; then the offer.
    let c = Caller::dial(&vg, BOB, "hotline");
    assert!(c.answered);
    turn(&c, "greeting");
    c.say(&request);
    turn(&c, "account question");
    confirm_if_asked(&vg, &c, "account question");
    c.keys("87654321");
    turn(&c, "PIN question");
    c.keys("1357#");
    turn(&c, "voiceprint offer");
    c.say(&speech(
        &vg,
        "Yes please, that sounds useful. I call about my account quite often, so it would save me time.",
    ));
    turn(&c, "balance");
    c.say(&speech(&vg, "No, thank you."));
    assert!(c.wait_ended(Duration::from_secs(30)), "call 1 never ended");
    let rec = latest_record(&vg, 1);
    let d = &rec["dialog"];
    assert_eq!(d["verification"], "ok", "{d:#}");
    assert_eq!(d["voiceprint"], "enrolled", "{d:#}");
    assert!(
        prompts(&rec).iter().any(|p| p == "voice_offer"),
        "{:?}",
        prompts(&rec)
    );
    assert_eq!(d["slots"]["balance"]["display"], "88.10 USD", "{d:#}");
    assert_eq!(vg.metric("voxgate_voiceprint_enrolments_total"), 1);

    // 2. Bob again: recognised by voice, balance without account or PIN.
    let c = Caller::dial(&vg, BOB, "hotline");
    assert!(c.answered);
    turn(&c, "greeting");
    c.say(&request);
    turn(&c, "balance by voice");
    confirm_if_asked(&vg, &c, "balance by voice");
    c.say(&speech(&vg, "No, thank you."));
    assert!(c.wait_ended(Duration::from_secs(30)), "call 2 never ended");
    let heard = c.transcript(&vg.dir.join("heard-2.wav"));
    let rec = latest_record(&vg, 2);
    let d = &rec["dialog"];
    assert_eq!(d["voiceprint"], "accept", "{d:#}");
    let score: f32 = d["slots"]["voiceprint_score"]["display"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("score");
    eprintln!("same voice: score {score:.3}");
    assert!(d["verification"].is_null(), "no PIN asked: {d:#}");
    assert_eq!(d["slots"]["balance"]["display"], "88.10 USD", "{d:#}");
    assert_eq!(d["slots"]["account"]["display"], "****4321", "{d:#}");
    assert_eq!(rec["digits"], "", "no keys pressed: {rec:#}");
    let played = prompts(&rec);
    assert!(played.iter().any(|p| p == "voice_recognised"), "{played:?}");
    assert!(!played.iter().any(|p| p.starts_with("ask_")), "{played:?}");
    assert_heard(&heard, &["voice_recognised", "balance_is"]);
    assert_prompts_reached_caller(&c.heard(), &rec, &["voice_recognised", "balance_is"]);

    // 3. Another voice on Bob's number: not recognised; the usual account and PIN questions.
    let c = Caller::dial(&vg, BOB, "hotline");
    assert!(c.answered);
    turn(&c, "greeting");
    c.say(&impostor);
    turn(&c, "account question");
    c.hang_up();
    let rec = latest_record(&vg, 3);
    let d = &rec["dialog"];
    assert_eq!(d["voiceprint"], "reject", "{d:#}");
    let score: f32 = d["slots"]["voiceprint_score"]["display"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("score");
    eprintln!("other voice: score {score:.3}");
    assert!(
        prompts(&rec).iter().any(|p| p == "ask_account"),
        "{:?}",
        prompts(&rec)
    );
    // Call 1 had no template to compare with.
    assert_eq!(vg.metric("voxgate_voiceprint_verifications_total"), 2);
    drop(turns);
}

/// Wang Fang calls the Mandarin line (a dialled number mapped to flows/bank.zh.toml on a box running the
/// multilingual model): she says her card is lost in Mandarin, keys account and PIN, confirms, and her card is
/// frozen; the prompts and the digits she hears are Mandarin. The confirmation and the goodbye are keyed: `base`
/// mishears espeak-ng's Mandarin too often for short answers (是的 came back as 去得天当间; see docs/dialog.md).
#[test]
fn a_mandarin_caller_reports_a_lost_card_on_the_mandarin_line() {
    let turns = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::install_model("base");
    let zh_flow = common::repo().join("flows/bank.zh.toml");
    let vg = Voxgate::start_with("mandarin", |cfg| {
        cfg.set("asr", "model", "\"base\"");
        cfg.set(
            "dialog",
            "numbers",
            &format!("{{ \"+8610100\" = {:?} }}", zh_flow.to_string_lossy()),
        );
    });
    let say = |pinyin: &str| common::tts_phone(&vg.dir, "espeak:cmn-latn-pinyin", pinyin);
    let c = Caller::dial(&vg, "+8613800000001", "+8610100");
    assert!(c.answered);
    turn(&c, "greeting");
    // 我的银行卡丢了。
    c.say(&say("wo3 de5 yin2 hang2 ka3 diu1 le5."));
    turn(&c, "account question");
    c.keys("11112222");
    turn(&c, "PIN question");
    c.keys("4321#");
    turn(&c, "freeze confirmation");
    c.keys("1");
    turn(&c, "card frozen, anything else");
    c.keys("9");
    assert!(
        c.wait_ended(Duration::from_secs(30)),
        "voxgate never hung up"
    );

    let rec = record(&vg);
    let d = &rec["dialog"];
    assert_eq!(d["flow"], "demo-bank-zh", "{d:#}");
    assert_eq!(d["intent"]["name"], "lost_card", "{d:#}");
    assert_eq!(d["verification"], "ok", "{d:#}");
    assert_eq!(d["slots"]["card_last4"]["display"], "6666", "{d:#}");
    assert_eq!(
        bank(&vg).card_status("C1003", "6666").expect("bank"),
        Some(CardStatus::Frozen)
    );
    // Mandarin recognition: the caller's first turn is in Chinese characters.
    let first = rec["turns"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["speaker"] == "caller"))
        .and_then(|t| t["text"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(first.contains('卡') || first.contains('丢'), "{first}");
    // voxgate's turns in the transcript are the Mandarin prompt texts.
    let said = rec["turns"].to_string();
    assert!(said.contains("请说出或者输入您的八位账号"), "{said}");
    // The card's last digits read out with the Mandarin fragments.
    assert!(
        prompts(&rec)
            .iter()
            .any(|p| p == "card_frozen num/6 num/6 num/6 num/6 card_frozen_2"),
        "{:?}",
        prompts(&rec)
    );
    assert_prompts_reached_caller_in(
        "zh",
        &c.heard(),
        &rec,
        &[
            "greeting",
            "ask_account",
            "ask_pin",
            "confirm_freeze",
            "card_frozen_2",
        ],
    );
    drop(turns);
}
