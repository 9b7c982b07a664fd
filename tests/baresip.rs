//! A full call from baresip (an independent SIP softphone, run headless): it must hear the greeting, and the
//! key it presses must reach the call record.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::baresip::{caller_wav, dump, Baresip};
use common::{best_correlation, Voxgate};

fn silent_caller(path: &Path, secs: u32) {
    caller_wav(path, &vec![0i16; 8000 * secs as usize]);
}

/// What baresip decoded (sndfile's "-dec" dump), as 8 kHz mono.
fn heard(dir: &Path) -> Vec<i16> {
    dump(dir, "-dec.wav")
}

fn greeting() -> Vec<i16> {
    voxgate_media::wav::load_wav_8k_mono(&common::repo().join("prompts/en/greeting.wav"))
        .expect("greeting prompt")
}

fn to_f32(x: &[i16]) -> Vec<f32> {
    x.iter().map(|&s| s as f32 / 32768.0).collect()
}

#[test]
fn baresip_hears_the_greeting_and_its_key_press_is_recorded() {
    let vg = Voxgate::start("baresip");
    let caller = vg.dir.join("caller.wav");
    silent_caller(&caller, 40);

    let bs = Baresip::start(
        &vg.dir.join("baresip"),
        &caller,
        ";audio_codecs=PCMU/8000/1",
    );
    let reply = bs.command("dial", &format!("sip:hotline@{}", vg.sip_addr()));
    assert!(!reply.contains("\"ok\":false"), "dial refused: {reply}");

    // Let the greeting play for a while, then press 0 (RFC 4733 from baresip) to interrupt it and ask for an
    // agent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while vg.get_json("/healthz")["active_calls"].as_u64() != Some(1) {
        assert!(
            Instant::now() < deadline,
            "baresip call never became active:\n{}",
            bs.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(3500));
    let reply = bs.command("sndcode", "0");
    assert!(!reply.contains("\"ok\":false"), "sndcode refused: {reply}");

    // No agent is configured: voxgate says so and hangs up by itself.
    let calls = vg.wait_ended_calls(1, Duration::from_secs(30));
    let rec = &calls[0];
    assert_eq!(rec["digits"], "0", "{rec:#}\nbaresip log:\n{}", bs.log());
    assert_eq!(rec["end_reason"], "completed", "{rec:#}");
    assert!(rec["from_uri"].as_str().unwrap_or("").contains("caller"));

    // What baresip decoded (sndfile's "-dec" dump) must contain the start of the greeting.
    std::thread::sleep(Duration::from_millis(500));
    drop(bs);
    let heard = heard(&vg.dir.join("baresip"));
    let greeting = greeting();
    let needle = to_f32(&greeting[..greeting.len().min(8000 * 2)]);
    // The greeting starts as soon as the call is up: search the first 6 s of what was heard.
    let head = &heard[..heard.len().min(8000 * 6)];
    let (corr, lag) = best_correlation(&to_f32(head), &needle);
    // G.711 round trip keeps correlation well above 0.9; unrelated audio stays far below 0.5.
    eprintln!(
        "greeting found in what baresip heard: correlation {corr:.3} at {:.2} s",
        lag as f64 / 8000.0
    );
    assert!(
        corr > 0.8,
        "greeting not found in what baresip heard: corr {corr:.3} at {lag}"
    );
}

/// Correlation of the 20 ms energy envelopes of `a` and `b` at the best lag up to `max_lag` frames. Codecs
/// like Opus keep the envelope but not the waveform, so this is the fair check for them.
#[cfg(feature = "opus")]
fn envelope_correlation(a: &[i16], b: &[i16], max_lag: usize) -> (f64, usize) {
    let env = |x: &[i16]| -> Vec<f64> {
        x.chunks_exact(160)
            .map(|f| (f.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / 160.0).sqrt())
            .collect()
    };
    let (ea, eb) = (env(a), env(b));
    let n = ea.len().min(eb.len()).saturating_sub(max_lag);
    let mut best = (0.0, 0);
    for lag in 0..max_lag {
        let (xa, xb) = (&ea[lag..lag + n], &eb[..n]);
        let (ma, mb) = (
            xa.iter().sum::<f64>() / n as f64,
            xb.iter().sum::<f64>() / n as f64,
        );
        let num: f64 = xa.iter().zip(xb).map(|(p, q)| (p - ma) * (q - mb)).sum();
        let den = (xa.iter().map(|p| (p - ma).powi(2)).sum::<f64>()
            * xb.iter().map(|q| (q - mb).powi(2)).sum::<f64>())
        .sqrt();
        if den > 0.0 && num / den > best.0 {
            best = (num / den, lag);
        }
    }
    best
}

/// Opus end to end with an independent implementation (baresip's libopus at 48 kHz stereo).
#[cfg(feature = "opus")]
#[test]
fn baresip_opus_call_hears_the_greeting() {
    let vg = Voxgate::start_with("baresip-opus", |c| {
        c.set("media", "codecs", "[\"opus\", \"pcmu\"]")
    });
    let caller = vg.dir.join("caller.wav");
    silent_caller(&caller, 6);
    let bs = Baresip::start(
        &vg.dir.join("baresip"),
        &caller,
        ";audio_codecs=opus/48000/2",
    );
    let reply = bs.command("dial", &format!("sip:hotline@{}", vg.sip_addr()));
    assert!(!reply.contains("\"ok\":false"), "dial refused: {reply}");
    // The caller's audio file ends after 6 s and baresip hangs up.
    let rec = vg.wait_ended_calls(1, Duration::from_secs(30)).remove(0);
    assert_eq!(rec["codec"], "opus", "{rec:#}\nbaresip log:\n{}", bs.log());
    drop(bs);
    let heard = heard(&vg.dir.join("baresip"));
    let greeting = greeting();
    let (corr, lag) = envelope_correlation(&heard, &greeting, 100);
    eprintln!(
        "Opus: greeting envelope correlation {corr:.3} at {} ms",
        lag * 20
    );
    assert!(
        corr > 0.85,
        "greeting not heard over Opus: envelope corr {corr:.3}"
    );
}

/// The caller talks over the greeting: the greeting must stop shortly after the caller starts (measured
/// on what baresip sent and heard), and what the caller said must be on the call record as a turn.
#[test]
fn baresip_caller_interrupts_the_greeting_by_voice() {
    let vg = Voxgate::start("baresip-voice");
    let speech = common::tts_phone(&vg.dir, "flite:rms", "I lost my card. Please freeze it.");
    let mut pcm = vec![0i16; 8000 * 3];
    pcm.extend_from_slice(&speech);
    pcm.extend(vec![0i16; 8000 * 25]);
    let caller = vg.dir.join("caller.wav");
    caller_wav(&caller, &pcm);

    let bs = Baresip::start(
        &vg.dir.join("baresip"),
        &caller,
        ";audio_codecs=PCMU/8000/1",
    );
    let reply = bs.command("dial", &format!("sip:hotline@{}", vg.sip_addr()));
    assert!(!reply.contains("\"ok\":false"), "dial refused: {reply}");
    // voxgate understands the request and asks for the account number (a lost card needs verification);
    // the caller hangs up then.
    std::thread::sleep(Duration::from_secs(15));
    let _ = bs.command("hangup", "");
    let rec = vg.wait_ended_calls(1, Duration::from_secs(20)).remove(0);
    std::thread::sleep(Duration::from_millis(500));
    drop(bs);
    let kinds = common::timeline_lines(&rec);
    assert!(
        kinds.iter().any(|k| k.starts_with("barge_in speech")),
        "{kinds:#?}"
    );
    assert_eq!(rec["dialog"]["intent"]["name"], "lost_card", "{rec:#}");
    assert!(
        kinds
            .iter()
            .any(|k| k.starts_with("prompt ask_account")
                || k.starts_with("prompt confirm/lost_card")),
        "{kinds:#?}"
    );
    assert_eq!(rec["end_reason"], "remote_bye", "{rec:#}");
    let caller_turn = rec["turns"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["speaker"] == "caller"))
        .unwrap_or_else(|| panic!("no caller turn: {rec:#}"));
    let text = caller_turn["text"].as_str().unwrap_or("").to_lowercase();
    eprintln!("caller turn: {caller_turn}");
    assert!(text.contains("card"), "{text}");
    assert!(caller_turn["confidence"].as_f64().unwrap_or(0.0) > 0.3);

    // On the client's side: when did the caller start talking (what baresip sent) and when did the
    // greeting stop reaching it (what baresip heard)? Both dumps start with the call's audio.
    let dir = vg.dir.join("baresip");
    let sent = dump(&dir, "-enc.wav");
    let heard = dump(&dir, "-dec.wav");
    let onset = sent
        .chunks(160)
        .position(|f| common::rms_dbfs(f) > -40.0)
        .expect("caller speech in what baresip sent");
    let frames: Vec<f64> = heard.chunks(160).map(common::rms_dbfs).collect();
    assert!(
        frames.iter().take(onset).filter(|&&d| d > -40.0).count() > onset / 3,
        "greeting not heard before the caller spoke"
    );
    // Nothing new plays for at least 1.5 s after the onset (the caller is still talking), so the last
    // loud frame in that window is where the greeting stopped.
    let window = frames
        .get(onset..(onset + 75).min(frames.len()))
        .unwrap_or(&[]);
    let last_loud = window.iter().rposition(|&d| d > -45.0).map_or(0, |i| i + 1);
    let stop_ms = last_loud * 20;
    eprintln!(
        "client side: caller onset at {:.2} s, greeting stopped {stop_ms} ms later",
        onset as f64 * 0.02
    );
    assert!(
        stop_ms <= 500,
        "greeting still heard {stop_ms} ms after the caller started speaking"
    );
}
