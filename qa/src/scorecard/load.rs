//! Scorecard files: TOML as written, then every check an operator needs before a scorecard goes live, each
//! reported with `file:line:column`. All problems are collected, not just the first. Loading is a pure
//! function of the file text, so a reload gives the same scorecard (and `version`) for the same file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::model::{
    Anchor, Check, EventMatcher, Matcher, Measure, Near, Phrase, PhraseMatcher, PhraseSet,
    Proximity, Rule, Scorecard, SectionInfo, Severity, Source, Span, SpeakerSel, Trend, Window,
};
use super::text::{tokenize, Vocab, MIN_SIMILARITY};

/// Word similarity a phrase word needs by default (see [`super::text`]): one slip in a 7-letter word, or a
/// sound-alike ("save"/"safe").
const DEFAULT_FUZZY: f64 = 0.85;
const DEFAULT_PASS_MARK: f64 = 80.0;
/// Occurrences of a count rule closer than this (from different matchers) are one occurrence: the caller
/// saying "agent" and the dialog's `command agent` event for it.
const DEFAULT_MERGE_SECS: f64 = 3.0;
/// Overlaps shorter than this are back-channel ("mm-hm"), not talk-over.
const DEFAULT_MIN_OVERLAP_MS: i64 = 500;
const DEFAULT_MIN_SPEECH_SECS: f64 = 10.0;
const DEFAULT_TREND_DELTA: f64 = 0.3;
const DEFAULT_MIN_REASON_CHARS: i64 = 3;
/// No window, gap or duration is longer than a day.
const MAX_SECS: f64 = 86_400.0;

/// Where in a scorecard file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    fn at(file: &Path, text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Self {
            file: file.to_path_buf(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One thing wrong with a scorecard file.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Only the message: the location is given separately, so each problem stays on one line.
    #[error("{}", .0.message())]
    Syntax(toml::de::Error),
    #[error("`{field}`: {value:?} is not one of {allowed}")]
    BadChoice {
        field: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("`{field}` = {value} out of range ({range})")]
    OutOfRange {
        field: &'static str,
        value: String,
        range: &'static str,
    },
    #[error("`{field}` must not be empty")]
    Empty { field: &'static str },
    #[error("`{field}` {value:?} must be letters, digits, `_`, `-` or `.` only")]
    BadName { field: &'static str, value: String },
    #[error("{0} needs {1}")]
    Missing(&'static str, &'static str),
    #[error("`{field}` does not apply to a `{kind}` rule")]
    NotForKind {
        field: &'static str,
        kind: &'static str,
    },
    #[error("`{0}` cannot be combined with `{1}`")]
    Conflict(&'static str, &'static str),
    #[error("`{0}` must be greater than `{1}`")]
    NotAfter(&'static str, &'static str),
    #[error("`{0}` only applies to realtime rules (`realtime = true`)")]
    NotRealtime(&'static str),
    #[error("`realtime = true` on a rule that cannot fail before the call ends: {0}")]
    NotLive(&'static str),
    #[error("phrase {0:?} has no words")]
    EmptyPhrase(String),
    #[error("no section named `{0}`")]
    UnknownSection(String),
    #[error("rule `{0}` is defined twice")]
    DuplicateRule(String),
    #[error("section `{0}` is defined twice")]
    DuplicateSection(String),
    #[error("scorecard `{name}` is also defined in {other}")]
    DuplicateScorecard { name: String, other: String },
    #[error("`anchor = \"speaker\"` needs a rule that has a speaker")]
    NoSpeaker,
}

/// A problem and where it is.
#[derive(Debug)]
pub struct CardError {
    pub location: Option<Location>,
    pub problem: Problem,
}

impl fmt::Display for CardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(l) => write!(f, "{l}: {}", self.problem),
            None => write!(f, "{}", self.problem),
        }
    }
}

/// Everything wrong with one or more scorecard files, in file order.
#[derive(Debug, thiserror::Error)]
pub struct LoadError {
    pub errors: Vec<CardError>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl LoadError {
    fn io(path: &Path, e: std::io::Error) -> Self {
        Self {
            errors: vec![CardError {
                location: None,
                problem: Problem::Io {
                    path: path.display().to_string(),
                    source: e,
                },
            }],
        }
    }
}

type Sp<T> = Option<Spanned<T>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCard {
    scorecard: RawHeader,
    #[serde(default)]
    section: Vec<Spanned<RawSection>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: Spanned<String>,
    #[serde(default)]
    title: Option<String>,
    language: Spanned<String>,
    #[serde(default)]
    pass_mark: Sp<f64>,
    #[serde(default)]
    fuzzy: Sp<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    name: Spanned<String>,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    #[serde(default)]
    first_secs: Sp<f64>,
    #[serde(default)]
    last_secs: Sp<f64>,
    #[serde(default)]
    from_secs: Sp<f64>,
    #[serde(default)]
    to_secs: Sp<f64>,
    #[serde(default)]
    from_pct: Sp<f64>,
    #[serde(default)]
    to_pct: Sp<f64>,
    #[serde(default)]
    anchor: Sp<String>,
}

/// The phrase-matching keys, shared by `phrase` rules and phrase matchers in `first`/`then`/`match`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatcher {
    #[serde(default)]
    speaker: Sp<String>,
    #[serde(default)]
    phrases: Sp<Vec<Spanned<String>>>,
    #[serde(default)]
    fuzzy: Sp<f64>,
    #[serde(default)]
    count_negated: Sp<bool>,
    #[serde(default)]
    near: Sp<Vec<Spanned<String>>>,
    #[serde(default)]
    near_words: Sp<i64>,
    #[serde(default)]
    near_secs: Sp<f64>,
    #[serde(default)]
    near_speaker: Sp<String>,
    #[serde(default)]
    event: Sp<String>,
    #[serde(default)]
    detail: Sp<String>,
    #[serde(default)]
    source: Sp<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    section: Sp<String>,
    kind: Spanned<String>,
    #[serde(default)]
    weight: Sp<f64>,
    #[serde(default)]
    critical: bool,
    #[serde(default)]
    realtime: Sp<bool>,
    #[serde(default)]
    severity: Sp<String>,
    #[serde(default)]
    partials: Sp<bool>,
    #[serde(default)]
    window: Sp<RawWindow>,
    // phrase (and speaker for talk_over, speech_rate, sentiment)
    #[serde(default)]
    speaker: Sp<String>,
    #[serde(default)]
    phrases: Sp<Vec<Spanned<String>>>,
    #[serde(default)]
    expect: Sp<String>,
    #[serde(default)]
    fuzzy: Sp<f64>,
    #[serde(default)]
    count_negated: Sp<bool>,
    #[serde(default)]
    near: Sp<Vec<Spanned<String>>>,
    #[serde(default)]
    near_words: Sp<i64>,
    #[serde(default)]
    near_secs: Sp<f64>,
    #[serde(default)]
    near_speaker: Sp<String>,
    // sequence
    #[serde(default)]
    first: Sp<Vec<Spanned<RawMatcher>>>,
    #[serde(default)]
    then: Sp<Vec<Spanned<RawMatcher>>>,
    // count
    #[serde(default, rename = "match")]
    matches: Sp<Vec<Spanned<RawMatcher>>>,
    #[serde(default)]
    min: Sp<i64>,
    #[serde(default)]
    max: Sp<i64>,
    #[serde(default)]
    merge_secs: Sp<f64>,
    // silence
    #[serde(default)]
    max_gap_secs: Sp<f64>,
    #[serde(default)]
    max_silence_pct: Sp<f64>,
    #[serde(default)]
    exclude_waiting: Sp<bool>,
    // talk_over
    #[serde(default)]
    interrupted: Sp<String>,
    #[serde(default)]
    max_count: Sp<i64>,
    #[serde(default)]
    max_total_secs: Sp<f64>,
    #[serde(default)]
    min_overlap_ms: Sp<i64>,
    // speech_rate
    #[serde(default)]
    min_wpm: Sp<f64>,
    #[serde(default)]
    max_wpm: Sp<f64>,
    #[serde(default)]
    min_speech_secs: Sp<f64>,
    // duration
    #[serde(default)]
    measure: Sp<String>,
    #[serde(default)]
    min_secs: Sp<f64>,
    #[serde(default)]
    max_secs: Sp<f64>,
    // sentiment
    #[serde(default)]
    negative_at: Sp<f64>,
    #[serde(default)]
    arousal_above: Sp<f64>,
    #[serde(default)]
    trend: Sp<String>,
    #[serde(default)]
    trend_delta: Sp<f64>,
    // transfer_reason
    #[serde(default)]
    min_chars: Sp<i64>,
}

const KINDS: &str =
    "phrase, sequence, count, silence, talk_over, speech_rate, duration, sentiment, transfer_reason";

/// The kind-specific keys a rule may have, by kind.
fn kind_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "phrase" => &[
            "speaker",
            "phrases",
            "expect",
            "fuzzy",
            "count_negated",
            "near",
            "near_words",
            "near_secs",
            "near_speaker",
            "window",
        ],
        "sequence" => &["first", "then", "window"],
        "count" => &["match", "min", "max", "merge_secs", "window"],
        "silence" => &[
            "max_gap_secs",
            "max_silence_pct",
            "exclude_waiting",
            "window",
        ],
        "talk_over" => &[
            "speaker",
            "interrupted",
            "max_count",
            "max_total_secs",
            "min_overlap_ms",
            "window",
        ],
        "speech_rate" => &["speaker", "min_wpm", "max_wpm", "min_speech_secs", "window"],
        "duration" => &["measure", "min_secs", "max_secs"],
        "sentiment" => &[
            "speaker",
            "negative_at",
            "arousal_above",
            "trend",
            "trend_delta",
            "window",
        ],
        "transfer_reason" => &["min_chars"],
        _ => return None,
    })
}

impl RawRule {
    /// The kind-specific keys present, with where they are.
    fn present(&self) -> Vec<(&'static str, usize)> {
        let mut v = Vec::new();
        macro_rules! keys {
            ($($f:ident),* $(,)?) => {$(
                if let Some(x) = &self.$f {
                    v.push((stringify!($f), x.span().start));
                }
            )*};
        }
        keys!(
            window,
            speaker,
            phrases,
            expect,
            fuzzy,
            count_negated,
            near,
            near_words,
            near_secs,
            near_speaker,
            first,
            then,
            min,
            max,
            merge_secs,
            max_gap_secs,
            max_silence_pct,
            exclude_waiting,
            interrupted,
            max_count,
            max_total_secs,
            min_overlap_ms,
            min_wpm,
            max_wpm,
            min_speech_secs,
            measure,
            min_secs,
            max_secs,
            negative_at,
            arousal_above,
            trend,
            trend_delta,
            min_chars,
        );
        if let Some(x) = &self.matches {
            v.push(("match", x.span().start));
        }
        v
    }

    /// A `phrase` rule's matcher keys, as a matcher.
    fn as_matcher(&self) -> RawMatcher {
        RawMatcher {
            speaker: self.speaker.clone(),
            phrases: self.phrases.clone(),
            fuzzy: self.fuzzy.clone(),
            count_negated: self.count_negated.clone(),
            near: self.near.clone(),
            near_words: self.near_words.clone(),
            near_secs: self.near_secs.clone(),
            near_speaker: self.near_speaker.clone(),
            ..Default::default()
        }
    }
}

impl Scorecard {
    /// Reads and validates a scorecard file.
    pub fn load(path: &Path) -> Result<Scorecard, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Validates scorecard text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Scorecard, LoadError> {
        parse_located(text, path).map(|(card, _)| card)
    }
}

/// The scorecard and where its name is (for duplicate names across files).
fn parse_located(text: &str, path: &Path) -> Result<(Scorecard, Location), LoadError> {
    let raw: RawCard = toml::from_str(text).map_err(|e| LoadError {
        errors: vec![CardError {
            location: Some(Location::at(path, text, e.span().map_or(0, |s| s.start))),
            problem: Problem::Syntax(e),
        }],
    })?;
    let mut v = Validator {
        path,
        text,
        errors: Vec::new(),
        words: Vocab::default(),
        fuzzy: DEFAULT_FUZZY,
    };
    let card = v.card(&raw);
    if v.errors.is_empty() {
        let at = Location::at(path, text, raw.scorecard.name.span().start);
        Ok((card, at))
    } else {
        v.errors
            .sort_by_key(|e| e.location.as_ref().map_or((0, 0), |l| (l.line, l.column)));
        Err(LoadError { errors: v.errors })
    }
}

/// FNV-1a of the file text: not cryptographic, only a stable label for "which version scored this".
fn version_of(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", h >> 16)
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<CardError>,
    words: Vocab,
    /// The card's default word similarity.
    fuzzy: f64,
}

impl Validator<'_> {
    fn err<T>(&mut self, at: &Spanned<T>, problem: Problem) {
        self.err_at(at.span().start, problem);
    }

    fn err_at(&mut self, offset: usize, problem: Problem) {
        let location = Some(Location::at(self.path, self.text, offset));
        self.errors.push(CardError { location, problem });
    }

    fn name(&mut self, s: &Spanned<String>, field: &'static str) -> String {
        let v = s.get_ref().trim();
        if v.is_empty() {
            self.err(s, Problem::Empty { field });
        } else if !v
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            self.err(
                s,
                Problem::BadName {
                    field,
                    value: v.to_string(),
                },
            );
        }
        v.to_string()
    }

    fn number(
        &mut self,
        v: &Spanned<f64>,
        field: &'static str,
        lo: f64,
        hi: f64,
        range: &'static str,
    ) -> f64 {
        let x = *v.get_ref();
        if x.is_finite() && x >= lo && x <= hi {
            x
        } else {
            self.err(
                v,
                Problem::OutOfRange {
                    field,
                    value: x.to_string(),
                    range,
                },
            );
            lo
        }
    }

    fn int(
        &mut self,
        v: &Spanned<i64>,
        field: &'static str,
        lo: i64,
        hi: i64,
        range: &'static str,
    ) -> i64 {
        let x = *v.get_ref();
        if (lo..=hi).contains(&x) {
            x
        } else {
            self.err(
                v,
                Problem::OutOfRange {
                    field,
                    value: x.to_string(),
                    range,
                },
            );
            lo
        }
    }

    fn ms(&mut self, v: &Spanned<f64>, field: &'static str) -> u64 {
        (self.number(v, field, 0.0, MAX_SECS, "0..=86400 seconds") * 1000.0).round() as u64
    }

    fn opt_ms(&mut self, v: &Sp<f64>, field: &'static str) -> Option<u64> {
        v.as_ref().map(|v| self.ms(v, field))
    }

    fn opt_count(&mut self, v: &Sp<i64>, field: &'static str) -> Option<u32> {
        v.as_ref()
            .map(|v| self.int(v, field, 0, 100_000, "0..=100000") as u32)
    }

    fn speaker(&mut self, s: &Sp<String>, field: &'static str, default: SpeakerSel) -> SpeakerSel {
        let Some(s) = s else { return default };
        match SpeakerSel::parse(s.get_ref()) {
            Some(v) => v,
            None => {
                self.err(
                    s,
                    Problem::BadChoice {
                        field,
                        value: s.get_ref().clone(),
                        allowed: SpeakerSel::NAMES,
                    },
                );
                default
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        s: &Spanned<String>,
        field: &'static str,
        options: &[(&str, T)],
        allowed: &'static str,
    ) -> Option<T> {
        let found = options
            .iter()
            .find(|(n, _)| *n == s.get_ref())
            .map(|(_, v)| *v);
        if found.is_none() {
            self.err(
                s,
                Problem::BadChoice {
                    field,
                    value: s.get_ref().clone(),
                    allowed,
                },
            );
        }
        found
    }

    fn card(&mut self, raw: &RawCard) -> Scorecard {
        let h = &raw.scorecard;
        let name = self.name(&h.name, "name");
        let language = h.language.get_ref().trim().to_ascii_lowercase();
        if language.is_empty()
            || !language
                .chars()
                .all(|c| c.is_ascii_alphabetic() || c == '-')
        {
            self.err(
                &h.language,
                Problem::BadName {
                    field: "language",
                    value: language.clone(),
                },
            );
        }
        let pass_mark = h.pass_mark.as_ref().map_or(DEFAULT_PASS_MARK, |p| {
            self.number(p, "pass_mark", 0.0, 100.0, "0..=100")
        });
        if let Some(f) = &h.fuzzy {
            self.fuzzy = self.fuzzy_value(f);
        }

        let mut sections: Vec<SectionInfo> = Vec::new();
        for s in &raw.section {
            let r = s.get_ref();
            let name = self.name(&r.name, "name");
            if sections.iter().any(|x| x.name == name) {
                self.err(&r.name, Problem::DuplicateSection(name.clone()));
                continue;
            }
            sections.push(SectionInfo {
                title: r.title.clone().unwrap_or_else(|| name.clone()),
                name,
            });
        }

        let mut rules: Vec<Rule> = Vec::new();
        let mut ids = BTreeSet::new();
        for r in &raw.rule {
            let Some(rule) = self.rule(r.get_ref(), &mut sections) else {
                continue;
            };
            if !ids.insert(rule.id.clone()) {
                self.err(&r.get_ref().id, Problem::DuplicateRule(rule.id.clone()));
                continue;
            }
            rules.push(rule);
        }
        Scorecard {
            title: h.title.clone().unwrap_or_else(|| name.clone()),
            name,
            language,
            version: version_of(self.text),
            pass_mark: pass_mark as f32,
            sections,
            rules,
            words: std::mem::take(&mut self.words),
        }
    }

    fn fuzzy_value(&mut self, f: &Spanned<f64>) -> f64 {
        self.number(
            f,
            "fuzzy",
            f64::from(MIN_SIMILARITY) / 100.0,
            1.0,
            "0.5..=1 (1 = exact words)",
        )
    }

    fn section(&mut self, r: &RawRule, sections: &mut Vec<SectionInfo>) -> usize {
        match &r.section {
            Some(s) => match sections.iter().position(|x| &x.name == s.get_ref()) {
                Some(i) => i,
                None => {
                    self.err(s, Problem::UnknownSection(s.get_ref().clone()));
                    0
                }
            },
            None => match sections.iter().position(|x| x.name == "general") {
                Some(i) => i,
                None => {
                    sections.push(SectionInfo {
                        name: "general".into(),
                        title: "General".into(),
                    });
                    sections.len() - 1
                }
            },
        }
    }

    fn rule(&mut self, r: &RawRule, sections: &mut Vec<SectionInfo>) -> Option<Rule> {
        let id = self.name(&r.id, "id");
        let section = self.section(r, sections);
        let kind = r.kind.get_ref().as_str();
        let Some(allowed) = kind_fields(kind) else {
            self.err(
                &r.kind,
                Problem::BadChoice {
                    field: "kind",
                    value: kind.to_string(),
                    allowed: KINDS,
                },
            );
            return None;
        };
        let kind_name: &'static str = kind_fields_name(kind);
        for (field, at) in r.present() {
            if !allowed.contains(&field) {
                self.err_at(
                    at,
                    Problem::NotForKind {
                        field,
                        kind: kind_name,
                    },
                );
            }
        }
        let weight = r
            .weight
            .as_ref()
            .map_or(1.0, |w| self.number(w, "weight", 0.0, 1000.0, "0..=1000"));
        let check = self.check(r, kind_name)?;
        let window = match &r.window {
            Some(w) if allowed.contains(&"window") => self.window(w, &check),
            _ => None,
        };
        let realtime = r.realtime.as_ref().is_some_and(|x| *x.get_ref());
        let severity = match &r.severity {
            Some(s) => {
                if !realtime {
                    self.err(s, Problem::NotRealtime("severity"));
                }
                self.choice(
                    s,
                    "severity",
                    &[
                        ("info", Severity::Info),
                        ("warning", Severity::Warning),
                        ("critical", Severity::Critical),
                    ],
                    "info, warning, critical",
                )
                .unwrap_or(Severity::Warning)
            }
            None => Severity::Warning,
        };
        let phrase_based = match &check {
            Check::Phrase { .. } => true,
            Check::Sequence { first, then } => first.iter().chain(then).any(Matcher::has_phrases),
            Check::Count { matchers, .. } => matchers.iter().any(Matcher::has_phrases),
            _ => false,
        };
        let partials = match &r.partials {
            Some(p) => {
                if !realtime {
                    self.err(p, Problem::NotRealtime("partials"));
                }
                *p.get_ref()
            }
            None => phrase_based,
        };
        if let (Some(rt), true) = (&r.realtime, realtime) {
            if let Some(why) = live_blocker(&check, window.as_ref()) {
                self.err(rt, Problem::NotLive(why));
            }
        }
        Some(Rule {
            title: r.title.clone().unwrap_or_else(|| id.clone()),
            id,
            section,
            weight: weight as f32,
            critical: r.critical,
            realtime: realtime.then_some(severity),
            partials,
            window,
            check,
        })
    }

    fn check(&mut self, r: &RawRule, kind: &'static str) -> Option<Check> {
        let need = |this: &mut Self, present: bool, what: &'static str| {
            if !present {
                this.err(&r.kind, Problem::Missing(kind_rule(kind), what));
            }
        };
        Some(match kind {
            "phrase" => {
                let present = match &r.expect {
                    Some(e) => self
                        .choice(
                            e,
                            "expect",
                            &[("present", true), ("absent", false)],
                            "present, absent",
                        )
                        .unwrap_or(true),
                    None => true,
                };
                let raw = r.as_matcher();
                need(self, raw.phrases.is_some(), "`phrases`");
                Check::Phrase {
                    matcher: self.phrase_matcher(&raw, SpeakerSel::Any)?,
                    present,
                }
            }
            "sequence" => {
                need(self, r.first.is_some(), "`first` (what must come before)");
                need(self, r.then.is_some(), "`then` (what it must come before)");
                Check::Sequence {
                    first: self.matchers(&r.first),
                    then: self.matchers(&r.then),
                }
            }
            "count" => {
                need(self, r.matches.is_some(), "`match`");
                need(self, r.min.is_some() || r.max.is_some(), "`min` or `max`");
                let min = self.opt_count(&r.min, "min");
                let max = self.opt_count(&r.max, "max");
                if let (Some(lo), Some(hi), Some(at)) = (min, max, &r.max) {
                    if lo > hi {
                        self.err(at, Problem::NotAfter("max", "min"));
                    }
                }
                Check::Count {
                    matchers: self.matchers(&r.matches),
                    min,
                    max,
                    merge_ms: match &r.merge_secs {
                        Some(m) => self.ms(m, "merge_secs"),
                        None => (DEFAULT_MERGE_SECS * 1000.0) as u64,
                    },
                }
            }
            "silence" => {
                need(
                    self,
                    r.max_gap_secs.is_some() || r.max_silence_pct.is_some(),
                    "`max_gap_secs` or `max_silence_pct`",
                );
                Check::Silence {
                    max_gap_ms: self.opt_ms(&r.max_gap_secs, "max_gap_secs"),
                    max_pct: r
                        .max_silence_pct
                        .as_ref()
                        .map(|p| self.number(p, "max_silence_pct", 0.0, 100.0, "0..=100") as f32),
                    exclude_waiting: r.exclude_waiting.as_ref().is_none_or(|x| *x.get_ref()),
                }
            }
            "talk_over" => {
                need(
                    self,
                    r.max_count.is_some() || r.max_total_secs.is_some(),
                    "`max_count` or `max_total_secs`",
                );
                Check::TalkOver {
                    by: self.speaker(&r.speaker, "speaker", SpeakerSel::Staff),
                    of: self.speaker(&r.interrupted, "interrupted", SpeakerSel::Any),
                    max_count: self.opt_count(&r.max_count, "max_count"),
                    max_total_ms: self.opt_ms(&r.max_total_secs, "max_total_secs"),
                    min_overlap_ms: match &r.min_overlap_ms {
                        Some(m) => self.int(m, "min_overlap_ms", 0, 60_000, "0..=60000") as u64,
                        None => DEFAULT_MIN_OVERLAP_MS as u64,
                    },
                }
            }
            "speech_rate" => {
                need(
                    self,
                    r.min_wpm.is_some() || r.max_wpm.is_some(),
                    "`min_wpm` or `max_wpm`",
                );
                let wpm = |this: &mut Self, v: &Sp<f64>, f: &'static str| {
                    v.as_ref()
                        .map(|v| this.number(v, f, 1.0, 1000.0, "1..=1000") as f32)
                };
                let min_wpm = wpm(self, &r.min_wpm, "min_wpm");
                let max_wpm = wpm(self, &r.max_wpm, "max_wpm");
                if let (Some(lo), Some(hi), Some(at)) = (min_wpm, max_wpm, &r.max_wpm) {
                    if lo > hi {
                        self.err(at, Problem::NotAfter("max_wpm", "min_wpm"));
                    }
                }
                Check::SpeechRate {
                    speaker: self.speaker(&r.speaker, "speaker", SpeakerSel::Staff),
                    min_wpm,
                    max_wpm,
                    min_speech_ms: match &r.min_speech_secs {
                        Some(m) => self.ms(m, "min_speech_secs"),
                        None => (DEFAULT_MIN_SPEECH_SECS * 1000.0) as u64,
                    },
                }
            }
            "duration" => {
                need(
                    self,
                    r.min_secs.is_some() || r.max_secs.is_some(),
                    "`min_secs` or `max_secs`",
                );
                let measure = match &r.measure {
                    Some(m) => self
                        .choice(
                            m,
                            "measure",
                            &[
                                ("call", Measure::Call),
                                ("hold", Measure::Hold),
                                ("queue", Measure::Queue),
                            ],
                            "call, hold, queue",
                        )
                        .unwrap_or(Measure::Call),
                    None => Measure::Call,
                };
                Check::Duration {
                    measure,
                    min_ms: self.opt_ms(&r.min_secs, "min_secs"),
                    max_ms: self.opt_ms(&r.max_secs, "max_secs"),
                }
            }
            "sentiment" => {
                need(
                    self,
                    r.negative_at.is_some() || r.arousal_above.is_some() || r.trend.is_some(),
                    "`negative_at`, `arousal_above` or `trend`",
                );
                let trend = r.trend.as_ref().and_then(|t| {
                    self.choice(
                        t,
                        "trend",
                        &[
                            ("not_worsening", Trend::NotWorsening),
                            ("improving", Trend::Improving),
                        ],
                        "not_worsening, improving",
                    )
                });
                if let (Some(d), None) = (&r.trend_delta, &r.trend) {
                    self.err(d, Problem::Missing("`trend_delta`", "`trend`"));
                }
                Check::Sentiment {
                    speaker: self.speaker(&r.speaker, "speaker", SpeakerSel::Caller),
                    negative_at: r
                        .negative_at
                        .as_ref()
                        .map(|v| self.number(v, "negative_at", -1.0, 1.0, "-1..=1") as f32),
                    arousal_above: r
                        .arousal_above
                        .as_ref()
                        .map(|v| self.number(v, "arousal_above", 0.0, 100.0, "0..=100") as f32),
                    trend,
                    trend_delta: r.trend_delta.as_ref().map_or(DEFAULT_TREND_DELTA, |v| {
                        self.number(v, "trend_delta", 0.0, 2.0, "0..=2")
                    }) as f32,
                }
            }
            "transfer_reason" => Check::TransferReason {
                min_chars: match &r.min_chars {
                    Some(m) => self.int(m, "min_chars", 1, 1000, "1..=1000") as usize,
                    None => DEFAULT_MIN_REASON_CHARS as usize,
                },
            },
            _ => return None,
        })
    }

    fn matchers(&mut self, raw: &Sp<Vec<Spanned<RawMatcher>>>) -> Vec<Matcher> {
        let Some(list) = raw else { return Vec::new() };
        if list.get_ref().is_empty() {
            self.err(list, Problem::Empty { field: "matchers" });
        }
        list.get_ref()
            .iter()
            .filter_map(|m| self.matcher(m))
            .collect()
    }

    fn matcher(&mut self, m: &Spanned<RawMatcher>) -> Option<Matcher> {
        let r = m.get_ref();
        match (&r.event, &r.phrases) {
            (Some(_), Some(p)) => {
                self.err(p, Problem::Conflict("phrases", "event"));
                None
            }
            (None, None) => {
                self.err(m, Problem::Missing("a matcher", "`phrases` or `event`"));
                None
            }
            (None, Some(_)) => {
                for (field, at) in [
                    ("detail", r.detail.as_ref().map(|x| x.span().start)),
                    ("source", r.source.as_ref().map(|x| x.span().start)),
                ] {
                    if let Some(at) = at {
                        self.err_at(at, Problem::Conflict(field, "phrases"));
                    }
                }
                self.phrase_matcher(r, SpeakerSel::Any).map(Matcher::Phrase)
            }
            (Some(kind), None) => {
                let phrase_keys = [
                    ("speaker", r.speaker.as_ref().map(|x| x.span().start)),
                    ("fuzzy", r.fuzzy.as_ref().map(|x| x.span().start)),
                    (
                        "count_negated",
                        r.count_negated.as_ref().map(|x| x.span().start),
                    ),
                    ("near", r.near.as_ref().map(|x| x.span().start)),
                    ("near_words", r.near_words.as_ref().map(|x| x.span().start)),
                    ("near_secs", r.near_secs.as_ref().map(|x| x.span().start)),
                    (
                        "near_speaker",
                        r.near_speaker.as_ref().map(|x| x.span().start),
                    ),
                ];
                for (field, at) in phrase_keys {
                    if let Some(at) = at {
                        self.err_at(at, Problem::Conflict(field, "event"));
                    }
                }
                let k = kind.get_ref().trim();
                if k.is_empty() {
                    self.err(kind, Problem::Empty { field: "event" });
                }
                let source = match &r.source {
                    Some(s) => self
                        .choice(
                            s,
                            "source",
                            &[
                                ("dialog", Source::Dialog),
                                ("timeline", Source::Timeline),
                                ("any", Source::Any),
                            ],
                            "dialog, timeline, any",
                        )
                        .unwrap_or(Source::Any),
                    None => Source::Any,
                };
                Some(Matcher::Event(EventMatcher {
                    kind: k.to_string(),
                    detail: r
                        .detail
                        .as_ref()
                        .map(|d| d.get_ref().to_lowercase())
                        .filter(|d| !d.is_empty()),
                    source,
                }))
            }
        }
    }

    fn phrases(&mut self, list: &Spanned<Vec<Spanned<String>>>, field: &'static str) -> PhraseSet {
        if list.get_ref().is_empty() {
            self.err(list, Problem::Empty { field });
        }
        let mut out = Vec::new();
        for p in list.get_ref() {
            let mut words = Vec::new();
            let vocab = &mut self.words;
            tokenize(p.get_ref(), |t| words.push(vocab.intern(t.key, t.han)));
            if words.is_empty() {
                self.err(p, Problem::EmptyPhrase(p.get_ref().clone()));
                continue;
            }
            out.push(Phrase {
                text: p.get_ref().trim().to_string(),
                words,
            });
        }
        let starts = out.iter().fold(0, |acc, p| {
            acc | self.words.feats[p.words[0] as usize].starts
        });
        PhraseSet { list: out, starts }
    }

    fn phrase_matcher(
        &mut self,
        r: &RawMatcher,
        default_speaker: SpeakerSel,
    ) -> Option<PhraseMatcher> {
        let phrases = self.phrases(r.phrases.as_ref()?, "phrases");
        let speaker = self.speaker(&r.speaker, "speaker", default_speaker);
        let fuzzy = match &r.fuzzy {
            Some(f) => self.fuzzy_value(f),
            None => self.fuzzy,
        };
        let near = match &r.near {
            Some(list) => {
                let within = match (&r.near_words, &r.near_secs) {
                    (Some(w), None) => {
                        Proximity::Words(self.int(w, "near_words", 0, 1000, "0..=1000") as usize)
                    }
                    (None, Some(s)) => Proximity::Ms(self.ms(s, "near_secs")),
                    (Some(_), Some(s)) => {
                        self.err(s, Problem::Conflict("near_secs", "near_words"));
                        Proximity::Words(0)
                    }
                    (None, None) => {
                        self.err(
                            list,
                            Problem::Missing("`near`", "`near_words` or `near_secs`"),
                        );
                        Proximity::Words(0)
                    }
                };
                if let (Proximity::Words(_), Some(s)) = (within, &r.near_speaker) {
                    self.err(
                        s,
                        Problem::Conflict("near_speaker", "near_words (same turn)"),
                    );
                }
                Some(Near {
                    phrases: self.phrases(list, "near"),
                    within,
                    speaker: self.speaker(&r.near_speaker, "near_speaker", speaker),
                })
            }
            None => {
                for (field, at) in [
                    ("near_words", r.near_words.as_ref().map(|x| x.span().start)),
                    ("near_secs", r.near_secs.as_ref().map(|x| x.span().start)),
                    (
                        "near_speaker",
                        r.near_speaker.as_ref().map(|x| x.span().start),
                    ),
                ] {
                    if let Some(at) = at {
                        self.err_at(at, Problem::Missing(field_name(field), "`near`"));
                    }
                }
                None
            }
        };
        Some(PhraseMatcher {
            speaker,
            phrases,
            threshold: (fuzzy * 100.0).round() as u8,
            count_negated: r.count_negated.as_ref().is_some_and(|x| *x.get_ref()),
            near,
        })
    }

    fn window(&mut self, w: &Spanned<RawWindow>, check: &Check) -> Option<Window> {
        let r = w.get_ref();
        let groups: [(&'static str, Option<usize>); 4] = [
            ("first_secs", r.first_secs.as_ref().map(|x| x.span().start)),
            ("last_secs", r.last_secs.as_ref().map(|x| x.span().start)),
            (
                "from_secs/to_secs",
                r.from_secs
                    .as_ref()
                    .or(r.to_secs.as_ref())
                    .map(|x| x.span().start),
            ),
            (
                "from_pct/to_pct",
                r.from_pct
                    .as_ref()
                    .or(r.to_pct.as_ref())
                    .map(|x| x.span().start),
            ),
        ];
        let set: Vec<(&'static str, usize)> = groups
            .iter()
            .filter_map(|(n, at)| at.map(|a| (*n, a)))
            .collect();
        match set.as_slice() {
            [] => {
                self.err(
                    w,
                    Problem::Missing(
                        "a window",
                        "`first_secs`, `last_secs`, `from_secs`/`to_secs` or `from_pct`/`to_pct`",
                    ),
                );
                return None;
            }
            [_] => {}
            [(a, _), (b, at), ..] => {
                self.err_at(*at, Problem::Conflict(b, a));
                return None;
            }
        }
        let span = if let Some(f) = &r.first_secs {
            Span::First(self.ms(f, "first_secs"))
        } else if let Some(l) = &r.last_secs {
            // The end is the end: only a speaker anchor means something here (not applicable until that
            // speaker has spoken).
            if let Some(a) = r
                .anchor
                .as_ref()
                .filter(|a| matches!(a.get_ref().as_str(), "answer" | "arrival"))
            {
                self.err(a, Problem::Conflict("anchor", "last_secs"));
            }
            Span::Last(self.ms(l, "last_secs"))
        } else if r.from_secs.is_some() || r.to_secs.is_some() {
            let from = self.opt_ms(&r.from_secs, "from_secs").unwrap_or(0);
            let to = self.opt_ms(&r.to_secs, "to_secs");
            if let (Some(t), Some(at)) = (to, &r.to_secs) {
                if t <= from {
                    self.err(at, Problem::NotAfter("to_secs", "from_secs"));
                }
            }
            Span::Abs { from, to }
        } else {
            let pct = |this: &mut Self, v: &Sp<f64>, f: &'static str, d: f64| {
                v.as_ref()
                    .map_or(d, |v| this.number(v, f, 0.0, 100.0, "0..=100"))
            };
            let from = pct(self, &r.from_pct, "from_pct", 0.0);
            let to = pct(self, &r.to_pct, "to_pct", 100.0);
            if let Some(at) = &r.to_pct {
                if to <= from {
                    self.err(at, Problem::NotAfter("to_pct", "from_pct"));
                }
            }
            Span::Rel {
                from: (from / 100.0) as f32,
                to: (to / 100.0) as f32,
            }
        };
        let anchor = match &r.anchor {
            None => Anchor::Answer,
            Some(a) => match a.get_ref().as_str() {
                "arrival" => Anchor::Arrival,
                "answer" => Anchor::Answer,
                "speaker" => match check.speaker() {
                    Some(s) => Anchor::FirstTurn(s),
                    None => {
                        self.err(a, Problem::NoSpeaker);
                        Anchor::Answer
                    }
                },
                other => match SpeakerSel::parse(other) {
                    Some(s) => Anchor::FirstTurn(s),
                    None => {
                        self.err(
                            a,
                            Problem::BadChoice {
                                field: "anchor",
                                value: other.to_string(),
                                allowed:
                                    "arrival, answer, speaker, caller, agent, voxgate, staff, any",
                            },
                        );
                        Anchor::Answer
                    }
                },
            },
        };
        Some(Window { span, anchor })
    }
}

fn kind_rule(kind: &'static str) -> &'static str {
    match kind {
        "phrase" => "a `phrase` rule",
        "sequence" => "a `sequence` rule",
        "count" => "a `count` rule",
        "silence" => "a `silence` rule",
        "talk_over" => "a `talk_over` rule",
        "speech_rate" => "a `speech_rate` rule",
        "duration" => "a `duration` rule",
        "sentiment" => "a `sentiment` rule",
        _ => "a `transfer_reason` rule",
    }
}

/// The kind's name with a static lifetime (the raw string is borrowed from the file).
fn kind_fields_name(kind: &str) -> &'static str {
    [
        "phrase",
        "sequence",
        "count",
        "silence",
        "talk_over",
        "speech_rate",
        "duration",
        "sentiment",
        "transfer_reason",
    ]
    .into_iter()
    .find(|k| *k == kind)
    .unwrap_or("phrase")
}

fn field_name(field: &'static str) -> &'static str {
    match field {
        "near_words" => "`near_words`",
        "near_secs" => "`near_secs`",
        _ => "`near_speaker`",
    }
}

/// Why a rule can only fail once the call is over (so `realtime = true` would never alert), if it can.
fn live_blocker(check: &Check, window: Option<&Window>) -> Option<&'static str> {
    if window.is_some_and(Window::needs_end) {
        return Some(
            "its window is measured from the end of the call (`last_secs`, `from_pct`/`to_pct`)",
        );
    }
    let closes = window.is_some_and(Window::closes_early);
    match check {
        Check::Phrase { present: true, .. } if !closes => Some(
            "a phrase that must be said is only missing when the call ends; give it a window that closes \
             (`first_secs` or `to_secs`)",
        ),
        Check::Count { min: Some(_), .. } if !closes => Some(
            "a minimum count is only missed when the call ends; give it a window that closes \
             (`first_secs` or `to_secs`)",
        ),
        Check::Duration { min_ms: Some(_), .. } => {
            Some("a minimum duration is only missed when the call ends")
        }
        Check::Silence {
            max_pct: Some(_), ..
        } => Some("the share of silence is only known when the call ends"),
        Check::SpeechRate { .. } => Some("the speech rate is averaged over the whole call"),
        Check::Sentiment { trend: Some(_), .. } => {
            Some("a sentiment trend compares the start of the call with its end")
        }
        _ => None,
    }
}

/// All loaded scorecards; cheap to clone (shared), replaced as a whole on reload.
#[derive(Clone, Debug, Default)]
pub struct ScorecardSet {
    cards: Arc<Vec<Arc<Scorecard>>>,
}

impl ScorecardSet {
    /// Loads every `*.toml` in `dir` (in file-name order); reports the problems of all files together.
    /// Two files defining the same scorecard name are refused.
    pub fn load_dir(dir: &Path) -> Result<ScorecardSet, LoadError> {
        let entries = std::fs::read_dir(dir).map_err(|e| LoadError::io(dir, e))?;
        let mut files = Vec::new();
        for e in entries {
            let e = e.map_err(|e| LoadError::io(dir, e))?;
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
                files.push(p);
            }
        }
        files.sort();
        let mut errors = Vec::new();
        let mut cards = Vec::new();
        let mut names: BTreeMap<String, Location> = BTreeMap::new();
        for f in files {
            let loaded = std::fs::read_to_string(&f)
                .map_err(|e| LoadError::io(&f, e))
                .and_then(|text| parse_located(&text, &f));
            match loaded {
                Ok((card, at)) => {
                    if let Some(other) = names.get(&card.name) {
                        errors.push(CardError {
                            location: Some(at),
                            problem: Problem::DuplicateScorecard {
                                name: card.name.clone(),
                                other: other.to_string(),
                            },
                        });
                        continue;
                    }
                    names.insert(card.name.clone(), at);
                    cards.push(Arc::new(card));
                }
                Err(e) => errors.extend(e.errors),
            }
        }
        if errors.is_empty() {
            Ok(Self {
                cards: Arc::new(cards),
            })
        } else {
            Err(LoadError { errors })
        }
    }

    pub fn from_cards(cards: Vec<Scorecard>) -> ScorecardSet {
        Self {
            cards: Arc::new(cards.into_iter().map(Arc::new).collect()),
        }
    }

    /// The scorecards for calls in `lang`, in load order (the first gives the call's headline score).
    /// Only the primary language subtag is compared, so `en-GB` calls use `en` cards.
    pub fn for_language(&self, lang: &str) -> Vec<Arc<Scorecard>> {
        let primary = |l: &str| {
            l.split(['-', '_'])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        };
        let want = primary(lang);
        self.cards
            .iter()
            .filter(|c| !want.is_empty() && primary(&c.language) == want)
            .cloned()
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Scorecard>> {
        self.cards.iter().find(|c| c.name == name).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Scorecard>> {
        self.cards.as_ref().clone()
    }
}
