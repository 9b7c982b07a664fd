//! A compiled scorecard: rules with their matchers prepared once at load.

use serde::{Deserialize, Serialize};

use crate::record::Speaker;

use super::text::Vocab;

/// How urgent a realtime rule's alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Whose turns a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpeakerSel {
    Caller,
    Agent,
    Voxgate,
    /// The assistant or a human agent: whoever speaks for the bank.
    Staff,
    Any,
}

impl SpeakerSel {
    pub const NAMES: &'static str = "caller, agent, voxgate, staff, any";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "caller" => Self::Caller,
            "agent" => Self::Agent,
            "voxgate" => Self::Voxgate,
            "staff" => Self::Staff,
            "any" => Self::Any,
            _ => return None,
        })
    }

    pub fn matches(self, s: Speaker) -> bool {
        match self {
            Self::Caller => s == Speaker::Caller,
            Self::Agent => s == Speaker::Agent,
            Self::Voxgate => s == Speaker::Voxgate,
            Self::Staff => s != Speaker::Caller,
            Self::Any => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Agent => "agent",
            Self::Voxgate => "voxgate",
            Self::Staff => "staff",
            Self::Any => "anyone",
        }
    }
}

/// Where a window's offsets count from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// The call's arrival (0 ms).
    Arrival,
    /// The answer (arrival when never answered).
    Answer,
    /// The first turn of these speakers (the rule is not applicable when they never spoke).
    FirstTurn(SpeakerSel),
}

/// Which part of a window's definition bounds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Span {
    /// `first_secs`: anchor ..= anchor + ms.
    First(u64),
    /// `last_secs`: end − ms ..= end.
    Last(u64),
    /// `from_secs`/`to_secs` after the anchor.
    Abs { from: u64, to: Option<u64> },
    /// `from_pct`/`to_pct` of anchor..end.
    Rel { from: f32, to: f32 },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Window {
    pub span: Span,
    pub anchor: Anchor,
}

impl Window {
    /// The window ends at a time known before the call ends (so "not said in it" can fail live).
    pub fn closes_early(&self) -> bool {
        matches!(self.span, Span::First(_) | Span::Abs { to: Some(_), .. })
    }

    /// The window's position depends on when the call ends.
    pub fn needs_end(&self) -> bool {
        matches!(self.span, Span::Last(_) | Span::Rel { .. })
    }
}

/// A phrase compiled to card-vocabulary word ids.
#[derive(Clone, Debug)]
pub(crate) struct Phrase {
    pub text: String,
    pub words: Vec<u32>,
}

/// Phrases with the [`super::text::WordFeat::starts`] bits of their first words: a heard word whose bits
/// miss them all cannot begin a match, so most tokens are skipped without comparing words.
#[derive(Clone, Debug, Default)]
pub(crate) struct PhraseSet {
    pub list: Vec<Phrase>,
    pub starts: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Proximity {
    Words(usize),
    Ms(u64),
}

#[derive(Clone, Debug)]
pub(crate) struct Near {
    pub phrases: PhraseSet,
    pub within: Proximity,
    /// Whose words count for `Proximity::Ms` (word proximity is within the same turn).
    pub speaker: SpeakerSel,
}

#[derive(Clone, Debug)]
pub(crate) struct PhraseMatcher {
    pub speaker: SpeakerSel,
    pub phrases: PhraseSet,
    /// Lowest word similarity (percent) that counts as the word.
    pub threshold: u8,
    pub count_negated: bool,
    pub near: Option<Near>,
}

/// Where event matchers look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Dialog,
    Timeline,
    Any,
}

#[derive(Clone, Debug)]
pub(crate) struct EventMatcher {
    pub kind: String,
    /// Lowercase substring of the event's detail.
    pub detail: Option<String>,
    pub source: Source,
}

#[derive(Clone, Debug)]
pub(crate) enum Matcher {
    Phrase(PhraseMatcher),
    Event(EventMatcher),
}

impl Matcher {
    pub fn has_phrases(&self) -> bool {
        matches!(self, Matcher::Phrase(_))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Measure {
    Call,
    Hold,
    Queue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trend {
    NotWorsening,
    Improving,
}

#[derive(Clone, Debug)]
pub(crate) enum Check {
    Phrase {
        matcher: PhraseMatcher,
        present: bool,
    },
    Sequence {
        first: Vec<Matcher>,
        then: Vec<Matcher>,
    },
    Count {
        matchers: Vec<Matcher>,
        min: Option<u32>,
        max: Option<u32>,
        merge_ms: u64,
    },
    Silence {
        max_gap_ms: Option<u64>,
        max_pct: Option<f32>,
        exclude_waiting: bool,
    },
    TalkOver {
        by: SpeakerSel,
        of: SpeakerSel,
        max_count: Option<u32>,
        max_total_ms: Option<u64>,
        min_overlap_ms: u64,
    },
    SpeechRate {
        speaker: SpeakerSel,
        min_wpm: Option<f32>,
        max_wpm: Option<f32>,
        min_speech_ms: u64,
    },
    Duration {
        measure: Measure,
        min_ms: Option<u64>,
        max_ms: Option<u64>,
    },
    Sentiment {
        speaker: SpeakerSel,
        negative_at: Option<f32>,
        arousal_above: Option<f32>,
        trend: Option<Trend>,
        trend_delta: f32,
    },
    TransferReason {
        min_chars: usize,
    },
}

impl Check {
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Phrase { .. } => "phrase",
            Check::Sequence { .. } => "sequence",
            Check::Count { .. } => "count",
            Check::Silence { .. } => "silence",
            Check::TalkOver { .. } => "talk_over",
            Check::SpeechRate { .. } => "speech_rate",
            Check::Duration { .. } => "duration",
            Check::Sentiment { .. } => "sentiment",
            Check::TransferReason { .. } => "transfer_reason",
        }
    }

    /// The speakers an `anchor = "speaker"` window is timed from.
    pub fn speaker(&self) -> Option<SpeakerSel> {
        match self {
            Check::Phrase { matcher, .. } => Some(matcher.speaker),
            Check::Count { matchers, .. } | Check::Sequence { then: matchers, .. } => {
                matchers.iter().find_map(|m| match m {
                    Matcher::Phrase(p) => Some(p.speaker),
                    Matcher::Event(_) => None,
                })
            }
            Check::TalkOver { by, .. } => Some(*by),
            Check::SpeechRate { speaker, .. } | Check::Sentiment { speaker, .. } => Some(*speaker),
            Check::Silence { .. } | Check::Duration { .. } | Check::TransferReason { .. } => None,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub id: String,
    pub title: String,
    pub section: usize,
    pub weight: f32,
    pub critical: bool,
    /// `Some` for realtime rules.
    pub realtime: Option<Severity>,
    /// A realtime rule also runs on partial transcripts.
    pub partials: bool,
    pub window: Option<Window>,
    pub check: Check,
}

/// A named group of rules with its own sub-score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionInfo {
    pub name: String,
    pub title: String,
}

/// What a rule is, for listings (the HTTP API, `voxgate scorecard check`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleInfo {
    pub id: String,
    pub title: String,
    pub section: String,
    pub kind: String,
    pub weight: f32,
    pub critical: bool,
    pub realtime: bool,
    /// Alert severity of a realtime rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// A validated scorecard, ready to score calls. Built only by [`Scorecard::parse`]/[`Scorecard::load`].
#[derive(Clone, Debug)]
pub struct Scorecard {
    pub name: String,
    pub title: String,
    /// Language of the calls it scores (`en`, `zh`).
    pub language: String,
    /// Short hash of the file text: stored results say which version scored them.
    pub version: String,
    pub pass_mark: f32,
    pub(crate) sections: Vec<SectionInfo>,
    pub(crate) rules: Vec<Rule>,
    /// Every word of every phrase, prepared once.
    pub(crate) words: Vocab,
}

impl Scorecard {
    pub fn rules(&self) -> impl Iterator<Item = RuleInfo> + '_ {
        self.rules.iter().map(|r| RuleInfo {
            id: r.id.clone(),
            title: r.title.clone(),
            section: self.sections[r.section].name.clone(),
            kind: r.check.kind().to_string(),
            weight: r.weight,
            critical: r.critical,
            realtime: r.realtime.is_some(),
            severity: r.realtime,
        })
    }

    pub fn sections(&self) -> &[SectionInfo] {
        &self.sections
    }
}
