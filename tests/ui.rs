//! The web UI in a real browser: Debian's headless Chromium driven by Playwright (`tests/ui/ui-test.mjs`,
//! protocol in `tests/ui/README.md`; `scripts/test.sh` installs its one npm package).
//!
//! One voxgate, two browser sessions:
//! - review: a stereo recording from "another recorder" is imported with `voxgate qa import`; a QA reviewer
//!   opens it, sees the transcript with the evidence marked, the waveform and the recording, jumps to
//!   evidence and overrides a rule;
//! - live: a supervisor watches the board while a scripted caller reports a scam; the alert appears on the
//!   page while the call is going, then the scored call opens and a rule is overridden.
//!
//! Screenshots are kept under `target/tmp/ui-screenshots/` as test artefacts.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::caller::Caller;
use common::{add_user, Voxgate};
use serde_json::Value;

const PASSWORD: &str = "ui-test-admin-pass";

fn ui_dir() -> PathBuf {
    common::repo().join("tests/ui")
}

fn screenshots(mode: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("ui-screenshots")
        .join(mode);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Runs the browser script; `on_event` sees each JSON line as it comes (to place the call on `ready`).
/// Returns the events; panics with the script's stderr when it fails.
fn run_browser(
    vg: &Voxgate,
    mode: &str,
    env: &[(&str, String)],
    mut on_event: impl FnMut(&Value),
) -> Vec<Value> {
    assert!(
        ui_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in tests/ui (scripts/test.sh does)"
    );
    let shots = screenshots(mode);
    let mut child = Command::new("node")
        .arg(ui_dir().join("ui-test.mjs"))
        .env("VOXGATE_URL", format!("http://{}", vg.http_addr()))
        .env("VOXGATE_USER", "ada")
        .env("VOXGATE_PASSWORD", PASSWORD)
        .env("VOXGATE_UI_MODE", mode)
        .env("VOXGATE_SCREENSHOTS", &shots)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let stdout = child.stdout.take().expect("stdout");
    let mut events = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        on_event(&v);
        events.push(v);
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("node exit");
    let log: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    assert!(
        out.status.success(),
        "ui-test.mjs ({mode}) failed: {}\n{}\nvoxgate log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        log.join("\n"),
        common::tail(&vg.log_text(), 40)
    );
    let pngs = std::fs::read_dir(&shots).map_or(0, |d| d.count());
    assert!(pngs >= 3, "only {pngs} screenshots in {}", shots.display());
    events
}

fn event<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:#?}"))
}

/// A call recorded elsewhere, one party per channel: the agent greets, the caller threatens to go to the
/// regulator.
fn stereo_recording(dir: &Path) -> PathBuf {
    let agent1 = common::tts_phone(
        dir,
        "flite:rms",
        "Hello, thank you for calling the demo bank. This call is recorded. How can I help?",
    );
    let caller = common::tts_phone(
        dir,
        "flite:slt",
        "My card payment failed three times. I will complain to the ombudsman about this.",
    );
    let agent2 = common::tts_phone(
        dir,
        "flite:rms",
        "I am sorry about that. I have fixed the card. Is there anything else? Goodbye.",
    );
    let gap = 8000; // 1 s
    let len = gap + agent1.len() + gap + caller.len() + gap + agent2.len() + gap;
    let (mut left, mut right) = (vec![0i16; len], vec![0i16; len]);
    let mut at = gap;
    right[at..at + agent1.len()].copy_from_slice(&agent1);
    at += agent1.len() + gap;
    left[at..at + caller.len()].copy_from_slice(&caller);
    at += caller.len() + gap;
    right[at..at + agent2.len()].copy_from_slice(&agent2);
    let path = dir.join("recorder-0001.wav");
    let interleaved: Vec<i16> = left
        .iter()
        .zip(&right)
        .flat_map(|(l, r)| [*l, *r])
        .collect();
    let mut w = voxgate_media::wav::StereoWavWriter::create(&path).expect("wav");
    w.write_interleaved(&interleaved).expect("samples");
    w.finalize().expect("wav");
    path
}

/// `voxgate qa import` into the running voxgate's store; returns the call's store id.
fn import(vg: &Voxgate, wav: &Path) -> i64 {
    let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .args(["qa", "import"])
        .arg(wav)
        .arg("--config")
        .arg(vg.dir.join("voxgate.toml"))
        .args(["--channels", "caller,agent"])
        .current_dir(&vg.dir)
        .output()
        .expect("voxgate qa import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "recorder-0001.wav: call 1, 3 turns, bank_en 85 passed"
    stdout
        .split("call ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no call id in {stdout:?}"))
}

#[test]
fn supervisors_and_reviewers_use_the_web_ui_in_a_real_browser() {
    common::install_model("tiny.en");
    let users = std::env::temp_dir().join(format!("voxgate-ui-users-{}.toml", std::process::id()));
    let _ = std::fs::remove_file(&users);
    add_user(&users, "ada", "admin", PASSWORD);
    let vg = Voxgate::start_with("ui", |c| {
        c.set(
            "auth",
            "users_file",
            &format!("{:?}", users.to_string_lossy()),
        );
        c.set("auth", "max_failures", "5");
    });

    // Review: an imported stereo recording, scored on the agent and the caller.
    let wav = stereo_recording(&vg.dir);
    let id = import(&vg, &wav);
    let call = vg.get_json(&format!("/api/v1/calls/{id}"));
    let speakers: Vec<&str> = call["turns"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["speaker"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        speakers.contains(&"agent") && speakers.contains(&"caller"),
        "{call:#}"
    );
    let rules = call["scores"][0]["result"]["rules"].clone();
    let outcome = |id: &str| {
        rules
            .as_array()
            .and_then(|r| r.iter().find(|r| r["rule"] == id))
            .map(|r| r["outcome"].clone())
            .unwrap_or_default()
    };
    assert_eq!(outcome("agent_greeting"), "pass", "{rules:#}");
    assert_eq!(outcome("caller_no_legal_threat"), "fail", "{rules:#}");
    let review = run_browser(
        &vg,
        "review",
        &[
            ("VOXGATE_CALL_ID", id.to_string()),
            ("VOXGATE_EVIDENCE_RULE", "caller_no_legal_threat".into()),
            ("VOXGATE_OVERRIDE_RULE", "caller_no_legal_threat".into()),
        ],
        |_| {},
    );
    let page = event(&review, "call_page");
    assert_eq!(page["id"], id);
    assert!(page["marks_in_transcript"].as_u64() > Some(0), "{page:#}");
    assert_eq!(page["waveform"]["drawn"], "wave", "{page:#}");
    assert!(page["waveform"]["ink"].as_u64() > Some(0), "{page:#}");
    let r = event(&review, "review");
    assert_eq!(r["rule"], "caller_no_legal_threat");
    assert_eq!(
        (r["from"].as_str(), r["to"].as_str()),
        (Some("fail"), Some("pass")),
        "{r:#}"
    );
    // The override is on the record, with the original kept.
    let call = vg.get_json(&format!("/api/v1/calls/{id}"));
    let s = &call["scores"][0];
    assert_eq!(s["reviews"][0]["reviewer"], "ada", "{s:#}");
    let original = s["original"]["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["rule"] == "caller_no_legal_threat"))
        .map(|r| r["outcome"].clone());
    assert_eq!(original, Some(Value::from("fail")));

    // Live: the alert appears while the scam victim is still on the line.
    let mut caller: Option<Caller> = None;
    let live = run_browser(
        &vg,
        "live",
        &[("VOXGATE_ALERT_RULE", "caller_no_fraud_indicator".into())],
        |e| {
            if e["event"] == "ready" && caller.is_none() {
                let c = Caller::dial(&vg, "+15550100002", "hotline");
                assert!(c.answered, "voxgate did not answer");
                assert!(
                    c.wait_turn(Duration::from_millis(1200), Duration::from_secs(40)),
                    "no greeting"
                );
                c.say(&common::tts_phone(
                    &vg.dir,
                    "flite:slt",
                    "Someone called me and told me to move my money to a safe account.",
                ));
                assert!(
                    c.wait_turn(Duration::from_millis(1200), Duration::from_secs(40)),
                    "no account question"
                );
                c.keys("87654321");
                caller = Some(c);
            }
            if e["event"] == "alert" {
                if let Some(c) = &caller {
                    assert!(!c.ended(), "the alert only showed after the call: {e:#}");
                }
            }
        },
    );
    let alert = event(&live, "alert");
    assert_eq!(alert["rule"], "caller_no_fraud_indicator");
    assert_eq!(alert["severity"], "critical");
    println!(
        "alert shown in the browser {} ms after the server raised it",
        alert["seen_at_ms"].as_i64().unwrap_or(0) - alert["raised_at_ms"].as_i64().unwrap_or(0)
    );
    assert!(event(&live, "board_call")["call_id"].is_string());
    let scored = event(&live, "call_scored");
    assert!(scored["score"].as_f64().is_some(), "{scored:#}");
    assert!(event(&live, "review")["reviewer"].is_string());
    let dash = event(&live, "dashboard");
    assert!(
        dash["charts"].as_object().is_some_and(|c| !c.is_empty()),
        "{dash:#}"
    );
    if let Some(c) = caller {
        c.hang_up();
    }
    let _ = std::fs::remove_file(&users);
    let _ = std::io::stdout().flush();
}
