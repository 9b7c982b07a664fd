//! The shape of a stored call.

use serde::{Deserialize, Serialize};

/// One thing that happened during a call, at a millisecond offset from the call's arrival.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub at_ms: u64,
    /// Machine-readable kind, e.g. `answered`, `dtmf`, `prompt_started`, `barge_in`, `hold`, `hangup`.
    pub kind: String,
    /// Human-readable detail; never holds secret digits (those are masked before they get here).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Who spoke a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    Caller,
    /// The voice assistant (prompt text as played).
    Voxgate,
    /// A human agent after a transfer.
    Agent,
}

impl Speaker {
    pub fn as_str(self) -> &'static str {
        match self {
            Speaker::Caller => "caller",
            Speaker::Voxgate => "voxgate",
            Speaker::Agent => "agent",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        [Speaker::Caller, Speaker::Voxgate, Speaker::Agent]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A timed piece of a turn's text (whisper segment), relative to the call's arrival.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnSegment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// One turn of the conversation, in milliseconds from the call's arrival.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub speaker: Speaker,
    pub start_ms: u64,
    pub end_ms: u64,
    /// What was said; secrets (PINs, card numbers) are masked before they get here.
    pub text: String,
    /// Recogniser confidence (0..=1) for caller turns; `None` for prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// A prompt cut short by barge-in, or an utterance cut at the maximum length.
    #[serde(default)]
    pub interrupted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<TurnSegment>,
    /// How it was said (caller and agent turns measured from their audio; `None` for prompts and for
    /// turns whose audio was not kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acoustics: Option<Acoustics>,
}

/// Acoustic measurements of one spoken turn; QA's emotion rules compare them with the same speaker's
/// earlier turns (arousal), because absolute loudness and pitch differ between people and phone lines.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Acoustics {
    /// Voiced speech in the turn (pauses excluded).
    pub speech_ms: u32,
    /// RMS level of the speech frames, dB relative to full scale.
    pub loudness_dbfs: f32,
    /// Median fundamental frequency of voiced frames; `None` when no frame was voiced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitch_hz: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitch_p10_hz: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitch_p90_hz: Option<f32>,
    /// Words (Han characters count as words) per minute of speech; `None` without text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words_per_min: Option<f32>,
    /// Rise of loudness, pitch and rate over the speaker's earlier turns in the call, in units of their
    /// spread (0 = as before, > 1.5 = markedly aroused); `None` until there is a baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arousal: Option<f32>,
}

/// Everything stored about one call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Store-assigned id, used in the HTTP API.
    pub id: i64,
    /// SIP Call-ID.
    pub call_id: String,
    pub from_uri: String,
    pub to_uri: String,
    pub remote_addr: String,
    pub transport: String,
    /// Negotiated codec name, e.g. `PCMU`.
    pub codec: String,
    /// Unix epoch milliseconds.
    pub started_at_ms: i64,
    pub answered_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    /// Why the call ended, e.g. `remote_bye`, `cancelled`, `completed`, `rejected_488`.
    pub end_reason: Option<String>,
    /// Keypad digits as shown to people: sensitive ones are already `*`.
    pub digits: String,
    /// Path of the stereo WAV (left caller, right voxgate), when recorded.
    pub recording_path: Option<String>,
    /// RTP/RTCP figures at hang-up (JSON object), for telecom engineers.
    pub media_stats: serde_json::Value,
    pub timeline: Vec<TimelineEvent>,
    /// The conversation, in order of start time.
    #[serde(default)]
    pub turns: Vec<Turn>,
    /// What the dialog understood and did: the context an agent and QA need.
    #[serde(default)]
    pub dialog: DialogSummary,
    /// Language of the call's flow (`en`, `zh`): picks the scorecards that score it.
    #[serde(default)]
    pub language: String,
}

/// The dialog's outcome, kept up to date during the call (agents read it on screen-pop).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DialogSummary {
    /// Name of the flow that ran the call.
    #[serde(default)]
    pub flow: String,
    /// The caller's request (the flow's `intent` slot) as last understood.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentResult>,
    /// Variables the dialog filled, in display form (secrets masked), by name.
    #[serde(default)]
    pub slots: std::collections::BTreeMap<String, SlotValue>,
    /// PIN verification outcome: `verified`, `wrong_pin`, `locked_out`, `unknown_account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    /// Voiceprint outcome: `enrolled`, `enrolling`, `accept`, `reject`, `not_enough_speech`, `no_template`, `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voiceprint: Option<String>,
    #[serde(default)]
    pub no_input: u32,
    #[serde(default)]
    pub no_match: u32,
    /// Finished without a human (`None` while the call is in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contained: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Handoff>,
    /// Analytics events in order, for reports.
    #[serde(default)]
    pub events: Vec<DialogEvent>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntentResult {
    pub name: String,
    pub confidence: f32,
    /// Lead over the runner-up intent.
    pub margin: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlotValue {
    pub display: String,
    pub confidence: f32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub skill: String,
    pub reason: String,
    pub priority: bool,
    /// Agent who took the call, once connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// What routing took into account about the caller (`vip`, `upset`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// One analytics event, at a millisecond offset from the call's arrival.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialogEvent {
    pub at_ms: u64,
    /// e.g. `form`, `intent`, `no_input`, `no_match`, `confirmation`, `verification`, `handoff`, `ended`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A list row: the record without its timeline and transcript, with what QA lists filter on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallSummary {
    pub id: i64,
    pub call_id: String,
    pub from_uri: String,
    pub to_uri: String,
    pub started_at_ms: i64,
    pub answered_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub digits: String,
    pub has_recording: bool,
    pub language: String,
    pub intent: Option<String>,
    /// Agent who took the call after a hand-off.
    pub agent: Option<String>,
    /// Finished without a human; `None` while in progress or when the dialog never said.
    pub contained: Option<bool>,
    /// Score of the call's first scorecard after reviews (`None` until scored).
    pub score: Option<f32>,
    pub passed: Option<bool>,
    pub alerts: u32,
}
