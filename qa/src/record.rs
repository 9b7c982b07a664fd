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
}

/// A list row: the record without its timeline.
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
}
