//! Full duplex on real calls (sipp as the caller): the far end echoing our prompt must not interrupt it,
//! caller speech over that echo must, and what the caller said ends up on the call record as a turn.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{rms_dbfs, Voxgate};
use serde_json::Value;

const RATE: usize = 8000;

/// One call at a time: these tests measure timing (barge-in onset against the caller's audio), which two
/// cores shared by five voxgates, their whisper decodes and sipp would distort.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn timeline(rec: &Value) -> Vec<(u64, String, String)> {
    rec["timeline"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["at_ms"].as_u64().unwrap_or(0),
                        e["kind"].as_str().unwrap_or("").to_string(),
                        e["detail"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn at_of(rec: &Value, kind: &str) -> Option<u64> {
    timeline(rec)
        .into_iter()
        .find(|(_, k, _)| k == kind)
        .map(|(at, _, _)| at)
}

fn turns(rec: &Value, speaker: &str) -> Vec<Value> {
    rec["turns"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|t| t["speaker"] == speaker)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn greeting() -> Vec<i16> {
    voxgate_media::wav::load_wav_8k_mono(&common::repo().join("prompts/en/greeting.wav"))
        .expect("greeting prompt")
}

/// Our greeting as a hybrid would return it: `delay_ms` late, `gain_db` quieter.
fn echo_of_greeting(total: usize, delay_ms: usize, gain_db: f64) -> Vec<i16> {
    let g = 10f64.powf(gain_db / 20.0);
    let mut out = vec![0i16; total];
    for (i, &s) in greeting().iter().enumerate() {
        if let Some(o) = out.get_mut(i + delay_ms * RATE / 1000) {
            *o = (f64::from(s) * g).round() as i16;
        }
    }
    out
}

/// First sample of the first 20 ms frame louder than -40 dBFS.
fn onset(x: &[i16]) -> usize {
    x.chunks(160)
        .position(|f| rms_dbfs(f) > -40.0)
        .map_or(0, |i| i * 160)
}

/// Samples from the first to the end of the last 20 ms frame louder than -40 dBFS.
fn onset_to_end(x: &[i16]) -> usize {
    let last = x
        .chunks(160)
        .rposition(|f| rms_dbfs(f) > -40.0)
        .map_or(0, |i| (i + 1) * 160);
    last.saturating_sub(onset(x))
}

fn mix_into(dst: &mut [i16], src: &[i16], at: usize) {
    for (d, &s) in dst.iter_mut().skip(at).zip(src) {
        *d = (i32::from(*d) + i32::from(s)).clamp(-32768, 32767) as i16;
    }
}

/// Plays `pcm` as the caller's audio from the moment the call is up. With `hang_up_after` the caller
/// hangs up then; otherwise voxgate must end the call.
fn call_with_audio(
    vg: &Voxgate,
    pcm: &[i16],
    name: &str,
    hang_up_after: Option<Duration>,
) -> Value {
    let pcap = vg.dir.join(format!("{name}.pcap"));
    common::write_pcmu_pcap(&pcap, pcm);
    let file = match hang_up_after {
        Some(_) => "tests/sipp/uac_speak_hangup.xml",
        None => "tests/sipp/uac_speak.xml",
    };
    let template = std::fs::read_to_string(common::repo().join(file)).expect("scenario");
    let scenario = vg.dir.join(format!("{name}.xml"));
    std::fs::write(
        &scenario,
        template.replace("@PCAP@", &pcap.to_string_lossy()),
    )
    .expect("write scenario");
    let d = hang_up_after.map(|d| d.as_millis().to_string());
    let mut args = vec!["-m", "1"];
    if let Some(d) = d.as_deref() {
        args.extend(["-d", d]);
    }
    let out = vg.sipp_file(&scenario, &args);
    assert!(
        out.status.success(),
        "sipp failed:\n{}",
        common::tail(&vg.log_text(), 40)
    );
    vg.wait_ended_calls(1, Duration::from_secs(30)).remove(0)
}

#[test]
fn prompt_echoed_back_by_the_far_end_never_barges_in() {
    let _serial = serial();
    let vg = Voxgate::start("echo-sipp");
    // sipp sends every RTP packet straight back: our greeting returns at full level (0 dB echo loss).
    let out = vg.sipp("uac_long.xml", &["-m", "1", "-d", "13000", "-rtp_echo"]);
    assert!(out.status.success(), "sipp failed");
    let rec = vg.wait_ended_calls(1, Duration::from_secs(10)).remove(0);
    let received = rec["media_stats"]["packets_received"].as_u64().unwrap_or(0);
    assert!(
        received > 500,
        "the echo never came back ({received} packets): {rec:#}"
    );
    let kinds: Vec<String> = timeline(&rec).into_iter().map(|(_, k, _)| k).collect();
    assert!(
        !kinds.iter().any(|k| k == "barge_in"),
        "our own echo interrupted the greeting: {kinds:?}"
    );
    let bot = turns(&rec, "voxgate");
    let first = bot
        .first()
        .unwrap_or_else(|| panic!("no voxgate turn: {rec:#}"));
    assert_eq!(first["interrupted"], false, "{first:#}");
    assert!(
        first["text"]
            .as_str()
            .unwrap_or("")
            .starts_with("Welcome to the voxgate demo bank"),
        "{first:#}"
    );
    let spoken = first["end_ms"].as_u64().unwrap_or(0) - first["start_ms"].as_u64().unwrap_or(0);
    // sipp calls from Alice's number, so the first prompt is the question about her declined payment.
    let first_prompt = voxgate_media::wav::load_wav_8k_mono(
        &common::repo().join("prompts/en/predict_declined.wav"),
    )
    .expect("prompt");
    let full = first_prompt.len() as u64 / 8;
    assert!(
        spoken + 100 >= full,
        "first prompt played {spoken} ms of {full} ms"
    );
    assert!(
        turns(&rec, "caller").is_empty(),
        "echo was taken for caller speech: {:#}",
        rec["turns"]
    );
}

/// 14 s of the greeting's echo (-12 dB, 100 ms), as the caller's stream.
fn echo_only() -> Vec<i16> {
    echo_of_greeting(14 * RATE, 100, -12.0)
}

#[test]
fn echo_in_the_caller_stream_does_not_barge_in() {
    let _serial = serial();
    let vg = Voxgate::start("echo-pcap");
    let rec = call_with_audio(&vg, &echo_only(), "echo", Some(Duration::from_secs(13)));
    let kinds: Vec<String> = timeline(&rec).into_iter().map(|(_, k, _)| k).collect();
    assert!(
        !kinds.iter().any(|k| k == "barge_in"),
        "echo interrupted the greeting: {kinds:?}"
    );
    assert!(turns(&rec, "caller").is_empty(), "{:#}", rec["turns"]);
}

/// Control for the two tests above: without the echo guard the same echo does interrupt the greeting,
/// so their passing is the guard's doing.
#[test]
fn without_the_echo_guard_the_echo_barges_in() {
    let _serial = serial();
    let vg = Voxgate::start_with("echo-noguard", |c| {
        c.set("speech", "echo_guard", "false");
    });
    let rec = call_with_audio(&vg, &echo_only(), "echo", Some(Duration::from_secs(13)));
    assert!(
        at_of(&rec, "barge_in").is_some(),
        "expected the unguarded echo to barge in: {:#}",
        rec["timeline"]
    );
}

#[test]
fn caller_speech_over_the_echo_barges_in_and_is_transcribed() {
    let _serial = serial();
    let vg = Voxgate::start("speak-over-echo");
    let speech = common::tts_phone(
        &vg.dir,
        "flite:slt",
        "I would like to check my account balance, please.",
    );
    let speak_at = 3 * RATE;
    // The echo lasts as long as our greeting plays: it stops (about 250 ms after the speech onset,
    // plus the echo delay) when the barge-in stops the greeting.
    let mut pcm = echo_of_greeting(speak_at + onset(&speech) + 350 * RATE / 1000, 100, -12.0);
    pcm.resize(speak_at + speech.len() + 12 * RATE, 0);
    mix_into(&mut pcm, &speech, speak_at);
    // The caller stops after asking: hang up once voxgate has moved on to verification.
    let rec = call_with_audio(&vg, &pcm, "speak", Some(Duration::from_secs(17)));

    // Times on the timeline count from the INVITE; the caller's audio starts when the call is confirmed.
    let media_start = at_of(&rec, "confirmed").expect("confirmed") as i64;
    let expected_onset = media_start + ((speak_at + onset(&speech)) / 8) as i64;
    let (barge_at, detail) = timeline(&rec)
        .into_iter()
        .find(|(_, k, _)| k == "barge_in")
        .map(|(at, _, d)| (at as i64, d))
        .unwrap_or_else(|| panic!("no barge-in: {:#}", rec["timeline"]));
    eprintln!(
        "barge-in: onset found {} ms after the speech began ({detail})",
        barge_at - expected_onset
    );
    assert!(
        (-200..=300).contains(&(barge_at - expected_onset)),
        "barge-in onset {barge_at} ms vs speech onset {expected_onset} ms"
    );

    let greeting_turn = turns(&rec, "voxgate").remove(0);
    assert_eq!(greeting_turn["interrupted"], true, "{greeting_turn:#}");
    let stopped = greeting_turn["end_ms"].as_i64().unwrap_or(0);
    eprintln!(
        "greeting stopped {} ms after speech onset",
        stopped - expected_onset
    );
    assert!(
        stopped - expected_onset < 500,
        "greeting stopped at {stopped} ms, speech began at {expected_onset} ms"
    );

    let caller = turns(&rec, "caller");
    let said = caller
        .iter()
        .find(|t| {
            t["text"]
                .as_str()
                .unwrap_or("")
                .to_lowercase()
                .contains("balance")
        })
        .unwrap_or_else(|| panic!("utterance not transcribed: {:#}", rec["turns"]));
    eprintln!("caller turn: {said:#}");
    let (start, end) = (
        said["start_ms"].as_i64().unwrap_or(0),
        said["end_ms"].as_i64().unwrap_or(0),
    );
    let speech_ms = (speech.len() / 8) as i64;
    assert!(
        start <= expected_onset && start >= expected_onset - 600,
        "turn starts at {start} ms, speech at {expected_onset} ms"
    );
    assert!(
        end > expected_onset + speech_ms / 2 && end <= expected_onset + speech_ms + 300,
        "turn ends at {end} ms; speech {expected_onset}+{speech_ms} ms"
    );
    // End-of-utterance latency: from the end of the caller's words to the endpointer's decision, and
    // to the recognised text.
    let decided = at_of(&rec, "utterance").unwrap_or(0) as i64;
    let recognized = at_of(&rec, "recognized").unwrap_or(0) as i64;
    let words_end = expected_onset + (onset_to_end(&speech) / 8) as i64;
    eprintln!(
        "end of utterance decided {} ms after the last word; text ready {} ms after it",
        decided - words_end,
        recognized - words_end
    );
    assert!(recognized >= decided && decided > words_end);
    let confidence = said["confidence"].as_f64().unwrap_or(0.0);
    assert!(confidence > 0.3, "confidence {confidence}");

    // The dialog acted on the words: a balance needs verification, so the account number is asked for
    // (after a confirmation when whisper was unsure).
    assert_eq!(rec["dialog"]["intent"]["name"], "balance", "{rec:#}");
    assert!(
        timeline(&rec).iter().any(|(_, k, d)| k == "prompt"
            && (d.starts_with("ask_account") || d.starts_with("confirm/balance"))),
        "{:#}",
        rec["timeline"]
    );
    assert_eq!(rec["digits"], "", "a spoken choice is not a key press");
}

#[test]
fn a_cough_over_the_greeting_does_not_stop_it() {
    let _serial = serial();
    let vg = Voxgate::start("cough");
    // Three short bursts (~60 ms each) of band-limited noise: louder than speech, too short to be a word.
    let dir = vg.dir.clone();
    let burst = noise_burst(&dir, 60);
    let mut pcm = vec![0i16; 14 * RATE];
    for at_s in [2, 4, 6] {
        mix_into(&mut pcm, &burst, at_s * RATE);
    }
    let rec = call_with_audio(&vg, &pcm, "cough", Some(Duration::from_secs(12)));
    let kinds: Vec<String> = timeline(&rec).into_iter().map(|(_, k, _)| k).collect();
    assert!(
        !kinds.iter().any(|k| k == "barge_in"),
        "a cough stopped the greeting: {kinds:?}"
    );
}

fn noise_burst(dir: &Path, ms: usize) -> Vec<i16> {
    let path = dir.join("burst.wav");
    let status = std::process::Command::new("sox")
        .args(["-R", "-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(&path)
        .args(["synth", &format!("{}", ms as f64 / 1000.0), "brownnoise"])
        .args([
            "sinc", "300-3400", "norm", "-6", "fade", "0.005", "-0", "0.01",
        ])
        .status()
        .expect("sox");
    assert!(status.success());
    common::read_wav(&path).2
}
