//! Rule evaluation, shared by post-call scoring ([`score`]) and live checking ([`super::LiveScorer`]).
//!
//! An evaluation context tokenizes the call's turns once (words interned per call, so each heard word is
//! compared with each scorecard word at most once), then every rule reads it.

use std::cell::{Cell, OnceCell};

use crate::record::{CallRecord, Speaker, Turn};
use crate::sentiment;

use super::model::{
    Anchor, Check, EventMatcher, Matcher, Measure, PhraseMatcher, PhraseSet, Proximity, Rule,
    Scorecard, Source, Span, SpeakerSel, Trend, Window,
};
use super::result::{Evidence, Outcome, RuleResult, ScoreResult, SectionResult};
use super::text::{
    joined_similarity, tokenize, tokens_into, Tok, Vocab, TOK_CLAUSE, TOK_FILLER, TOK_HAN, TOK_NEG,
};

/// A negator this many tokens before a phrase negates it ("I did not say safe account").
const NEGATION_REACH: usize = 3;
/// At most this many fillers ("um") are skipped inside a phrase.
const MAX_FILLERS: usize = 2;
/// Evidence kept per rule.
const MAX_EVIDENCE: usize = 5;
/// Live, a window counts as closed this long after its end: recognition lags the audio, so a turn that
/// started inside the window may still be on its way.
pub(crate) const LIVE_GRACE_MS: u64 = 5_000;
/// Turns shorter than this (or under [`MIN_RATE_WORDS`]) say too little for a speech rate.
const MIN_RATE_TURN_MS: u64 = 1_000;
const MIN_RATE_WORDS: usize = 3;
/// A sentiment trend needs this many turns.
const MIN_TREND_TURNS: usize = 4;
/// How much arousal lowers a turn's mood for the trend (arousal 2 = −0.5).
const AROUSAL_MOOD: f32 = 0.25;
const UNKNOWN: u8 = u8::MAX;

/// Scores a call with a scorecard.
pub fn score(card: &Scorecard, call: &CallRecord) -> ScoreResult {
    let ctx = Ctx::new(card, call, None, false);
    let rules = card
        .rules
        .iter()
        .map(|r| {
            let e = ctx.eval(r);
            RuleResult {
                rule: r.id.clone(),
                title: r.title.clone(),
                section: card.sections[r.section].name.clone(),
                kind: r.check.kind().to_string(),
                outcome: e.outcome,
                weight: r.weight,
                critical: r.critical,
                evidence: e.evidence,
                note: e.note,
            }
        })
        .collect();
    let mut result = ScoreResult {
        scorecard: card.name.clone(),
        version: card.version.clone(),
        score: 0.0,
        raw_score: 0.0,
        passed: false,
        critical_failed: false,
        sections: card
            .sections
            .iter()
            .map(|s| SectionResult {
                name: s.name.clone(),
                title: s.title.clone(),
                score: None,
                earned: 0.0,
                possible: 0.0,
            })
            .collect(),
        rules,
    };
    result.recompute(card.pass_mark);
    result
}

/// One rule's verdict.
#[derive(Debug)]
pub(crate) struct Eval {
    pub outcome: Outcome,
    pub evidence: Vec<Evidence>,
    pub note: String,
}

impl Eval {
    fn new(outcome: Outcome, evidence: Vec<Evidence>, note: String) -> Self {
        Self {
            outcome,
            evidence,
            note,
        }
    }

    fn na(note: impl Into<String>) -> Self {
        Self::new(Outcome::NotApplicable, Vec::new(), note.into())
    }
}

/// Something a matcher found: phrase words in a turn, or an event.
#[derive(Clone, Debug)]
struct Occ {
    start: u64,
    end: u64,
    turn: Option<usize>,
    /// Token range (phrases), to order and relate matches inside one turn.
    tok: usize,
    tok_end: usize,
    speaker: Option<Speaker>,
    quote: String,
    negated: bool,
    /// Which matcher of the rule found it.
    matcher: usize,
}

impl Occ {
    fn evidence(&self) -> Evidence {
        Evidence {
            turn: self.turn,
            speaker: self.speaker,
            quote: self.quote.clone(),
            start_ms: self.start,
            end_ms: self.end,
        }
    }

    /// `self` happened before `other` (events at the same millisecond count as before).
    fn before(&self, other: &Occ) -> bool {
        match (self.turn, other.turn) {
            (Some(a), Some(b)) if a == b => self.tok < other.tok,
            _ => self.start <= other.start,
        }
    }
}

/// A phrase found in a turn, by token range.
#[derive(Clone, Copy, Debug)]
struct Hit {
    a: usize,
    b: usize,
    negated: bool,
}

pub(crate) struct Ctx<'a> {
    card: &'a Scorecard,
    call: &'a CallRecord,
    turns: Vec<&'a Turn>,
    /// Every turn's tokens, one after the other; `spans[t]` is turn `t`'s range.
    all_toks: Vec<Tok>,
    spans: Vec<std::ops::Range<usize>>,
    vocab: Vocab,
    /// Similarity of (heard word, scorecard word), computed on first use.
    memo: Vec<Cell<u8>>,
    answer_ms: u64,
    answered: bool,
    /// The end of the call; live, the latest moment known so far.
    end_ms: u64,
    live: bool,
    hold: Vec<(u64, u64)>,
    queue: Vec<(u64, u64)>,
    /// Hold, queue and ringing an agent: silence there is expected.
    waiting: Vec<(u64, u64)>,
    /// Lexical sentiment per turn, computed once for all sentiment rules.
    sentiments: Vec<OnceCell<sentiment::Sentiment>>,
}

impl<'a> Ctx<'a> {
    /// `extra` is a turn not (yet) in the record, e.g. a partial transcript.
    pub fn new(
        card: &'a Scorecard,
        call: &'a CallRecord,
        extra: Option<&'a Turn>,
        live: bool,
    ) -> Self {
        let mut turns: Vec<&Turn> = call.turns.iter().collect();
        turns.extend(extra);
        let sentiments = vec![OnceCell::new(); turns.len()];
        let mut vocab = Vocab::default();
        let mut all_toks = Vec::with_capacity(turns.iter().map(|t| t.text.len() / 4).sum());
        let spans = turns
            .iter()
            .map(|t| {
                let start = all_toks.len();
                tokens_into(&t.text, &mut vocab, &mut all_toks);
                start..all_toks.len()
            })
            .collect();
        let memo = vec![Cell::new(UNKNOWN); vocab.len() * card.words.len()];

        let answered_at = call
            .answered_at_ms
            .map(|a| a.saturating_sub(call.started_at_ms).max(0) as u64)
            .or_else(|| {
                call.timeline
                    .iter()
                    .find(|e| e.kind == "answered")
                    .map(|e| e.at_ms)
            });
        let last_activity = turns
            .iter()
            .map(|t| t.end_ms)
            .chain(call.timeline.iter().map(|e| e.at_ms))
            .chain(call.dialog.events.iter().map(|e| e.at_ms))
            .max()
            .unwrap_or(0);
        let ended = call
            .ended_at_ms
            .map(|e| e.saturating_sub(call.started_at_ms).max(0) as u64)
            .or_else(|| {
                call.timeline
                    .iter()
                    .find(|e| e.kind == "ended")
                    .map(|e| e.at_ms)
            });
        let end_ms = match (live, ended) {
            (false, Some(e)) => e,
            _ => last_activity,
        };
        let hold = intervals(
            call,
            end_ms,
            |k, d| k == "reinvite" && d.contains("hold"),
            |k, d| (k == "reinvite" && !d.contains("hold")) || k == "ended",
        );
        let queue = intervals(
            call,
            end_ms,
            |k, _| k == "queued",
            |k, _| {
                matches!(
                    k,
                    "agent_answered" | "agent_left" | "transfer_failed" | "ended"
                )
            },
        );
        let ringing = intervals(
            call,
            end_ms,
            |k, _| k == "agent_ringing",
            |k, _| {
                matches!(
                    k,
                    "agent_answered" | "agent_left" | "transfer_failed" | "queued" | "ended"
                )
            },
        );
        let mut waiting: Vec<(u64, u64)> =
            hold.iter().chain(&queue).chain(&ringing).copied().collect();
        waiting.sort_unstable();
        Self {
            card,
            call,
            turns,
            all_toks,
            spans,
            vocab,
            memo,
            answer_ms: answered_at.unwrap_or(0),
            answered: answered_at.is_some(),
            end_ms,
            live,
            hold,
            queue,
            waiting,
            sentiments,
        }
    }

    fn toks(&self, t: usize) -> &[Tok] {
        &self.all_toks[self.spans[t].clone()]
    }

    pub fn eval(&self, rule: &Rule) -> Eval {
        let window = match rule.window.as_ref().map(|w| self.resolve(w)) {
            Some(None) => return Eval::na("the window's anchor speaker never spoke"),
            Some(Some(w)) => Some(w),
            None => None,
        };
        let open = (0, u64::MAX);
        let win = window.unwrap_or(open);
        let desc = rule.window.as_ref().map(describe).unwrap_or_default();
        match &rule.check {
            Check::Phrase { matcher, present } => self.phrase_rule(matcher, *present, win, &desc),
            Check::Sequence { first, then } => self.sequence(first, then, win),
            Check::Count {
                matchers,
                min,
                max,
                merge_ms,
            } => self.count(matchers, *min, *max, *merge_ms, win, &desc),
            Check::Silence {
                max_gap_ms,
                max_pct,
                exclude_waiting,
            } => self.silence(*max_gap_ms, *max_pct, *exclude_waiting, win),
            Check::TalkOver {
                by,
                of,
                max_count,
                max_total_ms,
                min_overlap_ms,
            } => self.talk_over(*by, *of, *max_count, *max_total_ms, *min_overlap_ms, win),
            Check::SpeechRate {
                speaker,
                min_wpm,
                max_wpm,
                min_speech_ms,
            } => self.speech_rate(*speaker, *min_wpm, *max_wpm, *min_speech_ms, win),
            Check::Duration {
                measure,
                min_ms,
                max_ms,
            } => self.duration(*measure, *min_ms, *max_ms),
            Check::Sentiment {
                speaker,
                negative_at,
                arousal_above,
                trend,
                trend_delta,
            } => self.sentiment(
                *speaker,
                *negative_at,
                *arousal_above,
                *trend,
                *trend_delta,
                win,
            ),
            Check::TransferReason { min_chars } => self.transfer_reason(*min_chars),
        }
    }

    /// The window as `from..=to` ms (`to` = `u64::MAX` when open); `None` when its anchor never happened.
    fn resolve(&self, w: &Window) -> Option<(u64, u64)> {
        let anchor = match w.anchor {
            Anchor::Arrival => 0,
            Anchor::Answer => self.answer_ms,
            Anchor::FirstTurn(s) => self
                .turns
                .iter()
                .filter(|t| s.matches(t.speaker))
                .map(|t| t.start_ms)
                .min()?,
        };
        Some(match w.span {
            Span::First(ms) => (anchor, anchor + ms),
            Span::Last(ms) => (self.end_ms.saturating_sub(ms), u64::MAX),
            Span::Abs { from, to } => (anchor + from, to.map_or(u64::MAX, |t| anchor + t)),
            Span::Rel { from, to } => {
                let len = self.end_ms.saturating_sub(anchor) as f64;
                let at = |f: f32| anchor + (len * f64::from(f)).round() as u64;
                (at(from), if to >= 1.0 { u64::MAX } else { at(to) })
            }
        })
    }

    /// Nothing more can happen inside a window ending at `to`.
    fn closed(&self, to: u64) -> bool {
        !self.live || (to != u64::MAX && self.end_ms >= to.saturating_add(LIVE_GRACE_MS))
    }

    fn sim(&self, heard: u32, known: u32) -> u8 {
        let cell = &self.memo[heard as usize * self.card.words.len() + known as usize];
        let v = cell.get();
        if v != UNKNOWN {
            return v;
        }
        let s = super::text::similarity(
            &self.vocab.feats[heard as usize],
            &self.card.words.feats[known as usize],
        );
        cell.set(s);
        s
    }

    /// The phrase's words starting at token `i`: the end of the match.
    fn match_at(&self, toks: &[Tok], i: usize, words: &[u32], threshold: u8) -> Option<usize> {
        let mut j = i;
        for (k, &w) in words.iter().enumerate() {
            if k > 0 {
                let mut skipped = 0;
                while skipped < MAX_FILLERS && toks.get(j).is_some_and(|t| t.has(TOK_FILLER)) {
                    j += 1;
                    skipped += 1;
                }
            }
            let t = toks.get(j)?;
            if self.sim(t.word, w) >= threshold {
                j += 1;
                continue;
            }
            let next = toks
                .get(j + 1)
                .filter(|n| !n.has(TOK_CLAUSE) && !t.has(TOK_HAN))?;
            let joined = joined_similarity(
                &self.vocab.feats[t.word as usize],
                &self.vocab.feats[next.word as usize],
                &self.card.words.feats[w as usize],
            );
            if joined >= threshold {
                j += 2;
            } else {
                return None;
            }
        }
        Some(j)
    }

    fn negated(toks: &[Tok], i: usize) -> bool {
        let mut k = i;
        for _ in 0..NEGATION_REACH {
            if k == 0 || toks[k].has(TOK_CLAUSE) {
                return false;
            }
            k -= 1;
            if toks[k].has(TOK_NEG) {
                return true;
            }
        }
        false
    }

    /// Non-overlapping matches of any of `phrases` in turn `t`, in order.
    fn hits(&self, t: usize, phrases: &PhraseSet, threshold: u8) -> Vec<Hit> {
        let toks = self.toks(t);
        let mut out: Vec<Hit> = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            if toks[i].starts & phrases.starts == 0 {
                i += 1;
                continue;
            }
            let longest = phrases
                .list
                .iter()
                .filter_map(|p| self.match_at(toks, i, &p.words, threshold))
                .max();
            match longest {
                Some(b) => {
                    out.push(Hit {
                        a: i,
                        b,
                        negated: Self::negated(toks, i),
                    });
                    i = b;
                }
                None => i += 1,
            }
        }
        out
    }

    fn occ_of_hit(&self, t: usize, h: Hit, matcher: usize) -> Occ {
        let turn = self.turns[t];
        let toks = self.toks(t);
        let (start, end) = self.span_time(t, h.a, h.b);
        let quote = turn
            .text
            .get(toks[h.a].start as usize..toks[h.b - 1].end as usize)
            .unwrap_or("")
            .to_string();
        Occ {
            start,
            end,
            turn: Some(t),
            tok: h.a,
            tok_end: h.b,
            speaker: Some(turn.speaker),
            quote,
            negated: h.negated,
            matcher,
        }
    }

    /// Everything a phrase matcher finds starting inside `win` (negated ones flagged).
    fn phrase_occ(&self, m: &PhraseMatcher, win: (u64, u64), matcher: usize) -> Vec<Occ> {
        let mut out = Vec::new();
        for (t, turn) in self.turns.iter().enumerate() {
            if !m.speaker.matches(turn.speaker) || turn.end_ms < win.0 || turn.start_ms > win.1 {
                continue;
            }
            for h in self.hits(t, &m.phrases, m.threshold) {
                let o = self.occ_of_hit(t, h, matcher);
                if o.start >= win.0 && o.start <= win.1 {
                    out.push(o);
                }
            }
        }
        if let Some(near) = &m.near {
            let counts = |h: &Hit| m.count_negated || !h.negated;
            match near.within {
                Proximity::Words(n) => out.retain(|o| {
                    let Some(t) = o.turn else { return false };
                    self.hits(t, &near.phrases, m.threshold)
                        .iter()
                        .filter(|h| counts(h))
                        .any(|h| gap(o.tok, o.tok_end, h.a, h.b) <= n)
                }),
                Proximity::Ms(ms) => {
                    let near_occ: Vec<(u64, u64)> = self
                        .turns
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| near.speaker.matches(t.speaker))
                        .flat_map(|(t, _)| {
                            self.hits(t, &near.phrases, m.threshold)
                                .into_iter()
                                .filter(counts)
                                .map(move |h| (t, h))
                        })
                        .map(|(t, h)| self.span_time(t, h.a, h.b))
                        .collect();
                    out.retain(|o| {
                        near_occ
                            .iter()
                            .any(|&(s, e)| gap_u64(o.start, o.end, s, e) <= ms)
                    });
                }
            }
        }
        out
    }

    fn event_occ(&self, m: &EventMatcher, win: (u64, u64), matcher: usize) -> Vec<Occ> {
        let dialog = matches!(m.source, Source::Dialog | Source::Any)
            .then_some(&self.call.dialog.events)
            .into_iter()
            .flatten()
            .map(|e| (e.at_ms, &e.kind, &e.detail));
        let timeline = matches!(m.source, Source::Timeline | Source::Any)
            .then_some(&self.call.timeline)
            .into_iter()
            .flatten()
            .map(|e| (e.at_ms, &e.kind, &e.detail));
        let mut out: Vec<Occ> = dialog
            .chain(timeline)
            .filter(|(at, kind, detail)| {
                *kind == &m.kind
                    && *at >= win.0
                    && *at <= win.1
                    && m.detail
                        .as_ref()
                        .is_none_or(|d| detail.to_lowercase().contains(d.as_str()))
            })
            .map(|(at, kind, detail)| Occ {
                start: at,
                end: at,
                turn: None,
                tok: 0,
                tok_end: 0,
                speaker: None,
                quote: if detail.is_empty() {
                    kind.clone()
                } else {
                    format!("{kind}: {detail}")
                },
                negated: false,
                matcher,
            })
            .collect();
        out.sort_by_key(|o| o.start);
        out
    }

    /// Occurrences that count (negated phrases only where the matcher says so), in time order.
    fn occurrences(&self, matchers: &[Matcher], win: (u64, u64)) -> Vec<Occ> {
        let mut out: Vec<Occ> = Vec::new();
        for (i, m) in matchers.iter().enumerate() {
            match m {
                Matcher::Phrase(p) => out.extend(
                    self.phrase_occ(p, win, i)
                        .into_iter()
                        .filter(|o| p.count_negated || !o.negated),
                ),
                Matcher::Event(e) => out.extend(self.event_occ(e, win, i)),
            }
        }
        out.sort_by_key(|o| (o.start, o.turn, o.tok));
        out
    }

    /// Time of tokens `a..b` of turn `t`: from whisper's segments when they line up with the text,
    /// otherwise interpolated by character position in the turn.
    fn span_time(&self, t: usize, a: usize, b: usize) -> (u64, u64) {
        let turn = self.turns[t];
        let toks = self.toks(t);
        if let Some(v) = segment_time(turn, toks.len(), a, b) {
            return v;
        }
        let chars = turn.text.chars().count().max(1) as u64;
        let dur = turn.end_ms.saturating_sub(turn.start_ms);
        let at = |c: u32| turn.start_ms + dur * u64::from(c).min(chars) / chars;
        (at(toks[a].cstart), at(toks[b - 1].cend))
    }

    /// Time of bytes `start..end` of turn `t`'s text.
    fn byte_time(&self, t: usize, start: usize, end: usize) -> (u64, u64) {
        let toks = self.toks(t);
        let a = toks.iter().position(|k| k.end as usize > start);
        let b = toks.iter().rposition(|k| (k.start as usize) < end);
        match (a, b) {
            (Some(a), Some(b)) if a <= b => self.span_time(t, a, b + 1),
            _ => (self.turns[t].start_ms, self.turns[t].end_ms),
        }
    }

    fn turn_evidence(&self, t: usize) -> Evidence {
        let turn = self.turns[t];
        Evidence {
            turn: Some(t),
            speaker: Some(turn.speaker),
            quote: excerpt(&turn.text),
            start_ms: turn.start_ms,
            end_ms: turn.end_ms,
        }
    }

    fn in_window(win: (u64, u64), at: u64) -> bool {
        at >= win.0 && at <= win.1
    }

    fn phrase_rule(&self, m: &PhraseMatcher, present: bool, win: (u64, u64), desc: &str) -> Eval {
        let all = self.phrase_occ(m, win, 0);
        let (counted, negated): (Vec<Occ>, Vec<Occ>) =
            all.into_iter().partition(|o| m.count_negated || !o.negated);
        let ignored = if negated.is_empty() {
            String::new()
        } else {
            format!(
                "; {} negated mention{} ignored (\"{}\")",
                negated.len(),
                plural(negated.len()),
                negated[0].quote
            )
        };
        let evidence = |v: &[Occ]| v.iter().take(MAX_EVIDENCE).map(Occ::evidence).collect();
        match (present, counted.first()) {
            (true, Some(o)) => Eval::new(
                Outcome::Pass,
                evidence(&counted),
                format!(
                    "\"{}\" by {} at {}",
                    o.quote,
                    speaker_name(o.speaker),
                    secs(o.start)
                ),
            ),
            (true, None) => {
                if self.turns.is_empty() {
                    Eval::na("no transcript")
                } else if !self.closed(win.1) {
                    Eval::na(format!("not said yet{desc}"))
                } else {
                    Eval::new(
                        Outcome::Fail,
                        evidence(&negated),
                        format!("not said by {}{desc}{ignored}", m.speaker.name()),
                    )
                }
            }
            (false, Some(o)) => Eval::new(
                Outcome::Fail,
                evidence(&counted),
                format!(
                    "\"{}\" by {} at {}{}",
                    o.quote,
                    speaker_name(o.speaker),
                    secs(o.start),
                    more(counted.len())
                ),
            ),
            (false, None) => Eval::new(
                Outcome::Pass,
                evidence(&negated),
                format!("not said{desc}{ignored}"),
            ),
        }
    }

    fn sequence(&self, first: &[Matcher], then: &[Matcher], win: (u64, u64)) -> Eval {
        let later = self.occurrences(then, win);
        let Some(b) = later.first() else {
            return Eval::na(format!("no {}", labels(then)));
        };
        let earlier = self.occurrences(first, (0, u64::MAX));
        match earlier.iter().find(|a| a.before(b)) {
            Some(a) => Eval::new(
                Outcome::Pass,
                vec![a.evidence(), b.evidence()],
                format!(
                    "{} at {} before \"{}\" at {}",
                    a.quote,
                    secs(a.start),
                    b.quote,
                    secs(b.start)
                ),
            ),
            None => Eval::new(
                Outcome::Fail,
                vec![b.evidence()],
                format!(
                    "\"{}\" by {} at {} without {} before it",
                    b.quote,
                    speaker_name(b.speaker),
                    secs(b.start),
                    labels(first)
                ),
            ),
        }
    }

    fn count(
        &self,
        matchers: &[Matcher],
        min: Option<u32>,
        max: Option<u32>,
        merge_ms: u64,
        win: (u64, u64),
        desc: &str,
    ) -> Eval {
        let mut counted: Vec<Occ> = Vec::new();
        let mut turns_seen: Vec<usize> = Vec::new();
        for o in self.occurrences(matchers, win) {
            // One request per turn, however often it is repeated in it.
            if let Some(t) = o.turn {
                if turns_seen.contains(&t) {
                    continue;
                }
                turns_seen.push(t);
            }
            // A phrase and the event it caused (or two matchers on one thing) are one occurrence.
            if let Some(prev) = counted.last() {
                if prev.matcher != o.matcher && o.start <= prev.end.saturating_add(merge_ms) {
                    continue;
                }
            }
            counted.push(o);
        }
        let n = counted.len() as u32;
        let bounds = match (min, max) {
            (Some(lo), Some(hi)) => format!("{lo}..={hi}"),
            (Some(lo), None) => format!("at least {lo}"),
            (None, Some(hi)) => format!("at most {hi}"),
            (None, None) => String::new(),
        };
        let note = format!(
            "{} {n} time{}{desc} ({bounds})",
            labels(matchers),
            plural(n as usize)
        );
        let last: Vec<Evidence> = counted
            .iter()
            .rev()
            .take(MAX_EVIDENCE)
            .rev()
            .map(Occ::evidence)
            .collect();
        if max.is_some_and(|hi| n > hi) {
            return Eval::new(Outcome::Fail, last, note);
        }
        if min.is_some_and(|lo| n < lo) {
            if !self.closed(win.1) {
                return Eval::na(note);
            }
            return Eval::new(Outcome::Fail, last, note);
        }
        Eval::new(Outcome::Pass, last, note)
    }

    fn silence(
        &self,
        max_gap_ms: Option<u64>,
        max_pct: Option<f32>,
        exclude_waiting: bool,
        win: (u64, u64),
    ) -> Eval {
        // Talk as merged intervals, each with the first turn that starts it.
        let mut talk: Vec<(u64, u64, usize)> = self
            .turns
            .iter()
            .enumerate()
            .filter(|(_, t)| t.end_ms >= win.0 && t.start_ms <= win.1)
            .map(|(i, t)| (t.start_ms.max(win.0), t.end_ms.min(win.1), i))
            .collect();
        talk.sort_unstable();
        let mut merged: Vec<(u64, u64, usize)> = Vec::new();
        for (s, e, i) in talk {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e, i)),
            }
        }
        if merged.len() < 2 {
            return Eval::na("fewer than two turns to measure silence between");
        }
        let none: &[(u64, u64)] = &[];
        let waiting = if exclude_waiting {
            &self.waiting[..]
        } else {
            none
        };
        let mut gaps: Vec<(u64, u64, usize)> = Vec::new();
        for w in merged.windows(2) {
            for (s, e) in subtract((w[0].1, w[1].0), waiting) {
                gaps.push((s, e, w[1].2));
            }
        }
        let total: u64 = gaps.iter().map(|g| g.1 - g.0).sum();
        let span_start = merged[0].0;
        let span_end = merged[merged.len() - 1].1;
        let span: u64 = subtract((span_start, span_end), waiting)
            .iter()
            .map(|(s, e)| e - s)
            .sum();
        let pct = if span > 0 {
            100.0 * total as f32 / span as f32
        } else {
            0.0
        };
        // The first of the longest gaps.
        let longest = gaps
            .iter()
            .fold(None::<(u64, u64, usize)>, |best, &g| match best {
                Some(b) if b.1 - b.0 >= g.1 - g.0 => Some(b),
                _ => Some(g),
            });
        let mut evidence = Vec::new();
        let mut note = match longest {
            Some((s, e, t)) => {
                evidence.push(Evidence {
                    turn: Some(t),
                    speaker: None,
                    quote: format!("silence {}", secs(e - s)),
                    start_ms: s,
                    end_ms: e,
                });
                format!("longest gap {} at {}", secs(e - s), secs(s))
            }
            None => "no gaps".to_string(),
        };
        note.push_str(&format!(", {pct:.0}% silence"));
        let gap_fail = max_gap_ms.is_some_and(|m| longest.is_some_and(|(s, e, _)| e - s > m));
        let pct_fail = max_pct.is_some_and(|m| pct > m);
        if let (true, Some(m)) = (gap_fail, max_gap_ms) {
            note.push_str(&format!(" (max gap {})", secs(m)));
        }
        if let (true, Some(m)) = (pct_fail, max_pct) {
            note.push_str(&format!(" (max {m:.0}%)"));
        }
        let outcome = if gap_fail || pct_fail {
            Outcome::Fail
        } else {
            Outcome::Pass
        };
        Eval::new(outcome, evidence, note)
    }

    fn talk_over(
        &self,
        by: SpeakerSel,
        of: SpeakerSel,
        max_count: Option<u32>,
        max_total_ms: Option<u64>,
        min_overlap_ms: u64,
        win: (u64, u64),
    ) -> Eval {
        let mut found: Vec<(usize, u64)> = Vec::new();
        let mut any = false;
        for (xi, x) in self.turns.iter().enumerate() {
            if !by.matches(x.speaker) || !Self::in_window(win, x.start_ms) {
                continue;
            }
            any = true;
            let overlap = self
                .turns
                .iter()
                .filter(|y| {
                    y.speaker != x.speaker
                        && of.matches(y.speaker)
                        && y.start_ms < x.start_ms
                        && x.start_ms < y.end_ms
                })
                .map(|y| x.end_ms.min(y.end_ms) - x.start_ms)
                .max();
            if let Some(ov) = overlap.filter(|&ov| ov >= min_overlap_ms) {
                found.push((xi, ov));
            }
        }
        if !any {
            return Eval::na(format!("{} never spoke", by.name()));
        }
        let n = found.len() as u32;
        let total: u64 = found.iter().map(|f| f.1).sum();
        let evidence = found
            .iter()
            .take(MAX_EVIDENCE)
            .map(|&(xi, ov)| {
                let x = self.turns[xi];
                Evidence {
                    turn: Some(xi),
                    speaker: Some(x.speaker),
                    quote: excerpt(&x.text),
                    start_ms: x.start_ms,
                    end_ms: x.start_ms + ov,
                }
            })
            .collect();
        let mut note = format!(
            "{n} interruption{} of {} by {}, {} in total",
            plural(n as usize),
            of.name(),
            by.name(),
            secs(total)
        );
        let count_fail = max_count.is_some_and(|m| n > m);
        let total_fail = max_total_ms.is_some_and(|m| total > m);
        if let Some(m) = max_count {
            note.push_str(&format!(" (max {m})"));
        }
        if let Some(m) = max_total_ms {
            note.push_str(&format!(" (max {})", secs(m)));
        }
        let outcome = if count_fail || total_fail {
            Outcome::Fail
        } else {
            Outcome::Pass
        };
        Eval::new(outcome, evidence, note)
    }

    fn speech_rate(
        &self,
        speaker: SpeakerSel,
        min_wpm: Option<f32>,
        max_wpm: Option<f32>,
        min_speech_ms: u64,
        win: (u64, u64),
    ) -> Eval {
        let mut words = 0usize;
        let mut ms = 0u64;
        let mut turns = 0usize;
        // (rate, turn) of the fastest and slowest turns.
        let mut fastest: Option<(f32, usize)> = None;
        let mut slowest: Option<(f32, usize)> = None;
        for (i, t) in self.turns.iter().enumerate() {
            if !speaker.matches(t.speaker) || t.interrupted || !Self::in_window(win, t.start_ms) {
                continue;
            }
            let n = self.toks(i).iter().filter(|k| !k.has(TOK_FILLER)).count();
            let speech = t
                .acoustics
                .as_ref()
                .map(|a| u64::from(a.speech_ms))
                .filter(|&s| s > 0)
                .unwrap_or(t.end_ms.saturating_sub(t.start_ms));
            if speech < MIN_RATE_TURN_MS || n < MIN_RATE_WORDS {
                continue;
            }
            let rate = n as f32 * 60_000.0 / speech as f32;
            if fastest.is_none_or(|f| rate > f.0) {
                fastest = Some((rate, i));
            }
            if slowest.is_none_or(|s| rate < s.0) {
                slowest = Some((rate, i));
            }
            words += n;
            ms += speech;
            turns += 1;
        }
        if ms < min_speech_ms || ms == 0 {
            return Eval::na(format!(
                "only {} of {} speech to measure",
                secs(ms),
                speaker.name()
            ));
        }
        let rate = words as f32 * 60_000.0 / ms as f32;
        let too_slow = min_wpm.is_some_and(|m| rate < m);
        let too_fast = max_wpm.is_some_and(|m| rate > m);
        let pick = if too_slow || (max_wpm.is_none() && !too_fast) {
            slowest
        } else {
            fastest
        };
        let evidence = pick
            .map(|(r, i)| {
                let mut e = self.turn_evidence(i);
                e.quote = format!("{:.0} wpm: {}", r, e.quote);
                e
            })
            .into_iter()
            .collect();
        let range = match (min_wpm, max_wpm) {
            (Some(lo), Some(hi)) => format!("{lo:.0}–{hi:.0}"),
            (Some(lo), None) => format!("at least {lo:.0}"),
            (None, Some(hi)) => format!("at most {hi:.0}"),
            (None, None) => String::new(),
        };
        let note = format!(
            "{} {rate:.0} wpm over {turns} turn{} ({}), expected {range}",
            speaker.name(),
            plural(turns),
            secs(ms)
        );
        let outcome = if too_slow || too_fast {
            Outcome::Fail
        } else {
            Outcome::Pass
        };
        Eval::new(outcome, evidence, note)
    }

    fn duration(&self, measure: Measure, min_ms: Option<u64>, max_ms: Option<u64>) -> Eval {
        let (what, d, evidence) = match measure {
            Measure::Call => {
                if !self.answered {
                    return Eval::na("the call was not answered");
                }
                let d = self.end_ms.saturating_sub(self.answer_ms);
                let e = Evidence {
                    turn: None,
                    speaker: None,
                    quote: format!("call {}", clock(d)),
                    start_ms: self.answer_ms,
                    end_ms: self.end_ms,
                };
                ("call", d, e)
            }
            Measure::Hold | Measure::Queue => {
                let (what, list) = if measure == Measure::Hold {
                    ("hold", &self.hold)
                } else {
                    ("queue", &self.queue)
                };
                let d: u64 = list.iter().map(|(s, e)| e - s).sum();
                let (s, e) = list
                    .iter()
                    .max_by_key(|(s, e)| e - s)
                    .copied()
                    .unwrap_or((self.answer_ms, self.answer_ms));
                let ev = Evidence {
                    turn: None,
                    speaker: None,
                    quote: format!("{what} {}", clock(d)),
                    start_ms: s,
                    end_ms: e,
                };
                (what, d, ev)
            }
        };
        let mut note = format!("{what} {}", clock(d));
        let short = min_ms.is_some_and(|m| d < m);
        let long = max_ms.is_some_and(|m| d > m);
        if let (true, Some(m)) = (short, min_ms) {
            note.push_str(&format!(" (min {})", clock(m)));
        }
        if let (true, Some(m)) = (long, max_ms) {
            note.push_str(&format!(" (max {})", clock(m)));
        }
        let outcome = if long || (short && !self.live) {
            Outcome::Fail
        } else if short {
            Outcome::NotApplicable
        } else {
            Outcome::Pass
        };
        Eval::new(outcome, vec![evidence], note)
    }

    fn sentiment(
        &self,
        speaker: SpeakerSel,
        negative_at: Option<f32>,
        arousal_above: Option<f32>,
        trend: Option<Trend>,
        trend_delta: f32,
        win: (u64, u64),
    ) -> Eval {
        let mut flagged: Vec<Evidence> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        let mut moods: Vec<(f32, usize)> = Vec::new();
        let (mut lowest, mut highest): (Option<f32>, Option<f32>) = (None, None);
        for (i, t) in self.turns.iter().enumerate() {
            if !speaker.matches(t.speaker) || !Self::in_window(win, t.start_ms) {
                continue;
            }
            let s = self.sentiments[i].get_or_init(|| sentiment::lexical(&t.text));
            let arousal = t.acoustics.as_ref().and_then(|a| a.arousal);
            lowest = Some(lowest.map_or(s.score, |l: f32| l.min(s.score)));
            if let Some(a) = arousal {
                highest = Some(highest.map_or(a, |h: f32| h.max(a)));
            }
            moods.push((
                (s.score - AROUSAL_MOOD * arousal.unwrap_or(0.0).max(0.0)).clamp(-1.0, 1.0),
                i,
            ));
            let negative = negative_at.is_some_and(|n| s.score <= n);
            let aroused = arousal_above.is_some_and(|m| arousal.is_some_and(|a| a > m));
            if !(negative || aroused) {
                continue;
            }
            let mut e = self.turn_evidence(i);
            let hits: Vec<_> = s.hits.iter().filter(|h| h.weight < 0.0).collect();
            if let (true, Some(first), Some(last)) = (negative, hits.first(), hits.last()) {
                e.quote = hits
                    .iter()
                    .map(|h| h.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" … ");
                let (s0, _) = self.byte_time(i, first.start, first.end);
                let (_, e1) = self.byte_time(i, last.start, last.end);
                e.start_ms = s0;
                e.end_ms = e1.max(s0);
            }
            if flagged.len() < MAX_EVIDENCE {
                flagged.push(e);
            }
            if notes.is_empty() {
                let mut what = Vec::new();
                if negative {
                    what.push(format!("sentiment {:.2}", s.score));
                }
                if let (true, Some(a)) = (aroused, arousal) {
                    what.push(format!("arousal {a:.1}"));
                }
                notes.push(format!(
                    "{} {} at {}",
                    speaker.name(),
                    what.join(", "),
                    secs(t.start_ms)
                ));
            }
        }
        if moods.is_empty() {
            return Eval::na(format!("{} never spoke", speaker.name()));
        }
        let checks_turns = negative_at.is_some() || arousal_above.is_some();
        let mut trend_fail = false;
        let mut trend_known = false;
        if let Some(tr) = trend {
            if moods.len() >= MIN_TREND_TURNS {
                let half = moods.len() / 2;
                let mean = |v: &[(f32, usize)]| v.iter().map(|m| m.0).sum::<f32>() / v.len() as f32;
                let early = mean(&moods[..half]);
                let late = mean(&moods[moods.len() - half..]);
                let change = late - early;
                match tr {
                    Trend::NotWorsening => {
                        trend_known = true;
                        if change < -trend_delta {
                            trend_fail = true;
                            notes.push(format!("mood fell from {early:.2} to {late:.2}"));
                            let worst = moods[moods.len() - half..]
                                .iter()
                                .min_by(|a, b| a.0.total_cmp(&b.0))
                                .map(|m| m.1);
                            if let Some(i) = worst.filter(|_| flagged.len() < MAX_EVIDENCE) {
                                flagged.push(self.turn_evidence(i));
                            }
                        } else {
                            notes.push(format!("mood {early:.2} → {late:.2}"));
                        }
                    }
                    Trend::Improving => {
                        // Only a caller who started unhappy can improve.
                        if early <= -trend_delta {
                            trend_known = true;
                            if change < trend_delta {
                                trend_fail = true;
                                notes
                                    .push(format!("mood did not improve ({early:.2} → {late:.2})"));
                            } else {
                                notes.push(format!("mood improved {early:.2} → {late:.2}"));
                            }
                        } else {
                            notes.push(format!("mood was not negative to begin with ({early:.2})"));
                        }
                    }
                }
            } else {
                notes.push(format!("too few turns for a trend ({})", moods.len()));
            }
        }
        let turn_fail = !flagged.is_empty() && checks_turns;
        if turn_fail || trend_fail {
            return Eval::new(Outcome::Fail, flagged, notes.join("; "));
        }
        if !checks_turns && !trend_known {
            return Eval::na(notes.join("; "));
        }
        let mut summary = Vec::new();
        if negative_at.is_some() {
            summary.push(format!("lowest sentiment {:.2}", lowest.unwrap_or(0.0)));
        }
        if arousal_above.is_some() {
            summary.push(match highest {
                Some(h) => format!("highest arousal {h:.1}"),
                None => "no arousal measured".to_string(),
            });
        }
        summary.extend(notes);
        Eval::new(Outcome::Pass, Vec::new(), summary.join("; "))
    }

    fn transfer_reason(&self, min_chars: usize) -> Eval {
        let event = self
            .call
            .dialog
            .events
            .iter()
            .rev()
            .find(|e| e.kind == "handoff");
        let handoff = self.call.dialog.handoff.as_ref();
        if event.is_none() && handoff.is_none() {
            return Eval::na("no transfer");
        }
        let (skill, reason) = match handoff {
            Some(h) => (h.skill.clone(), h.reason.clone()),
            None => {
                let d = event.map_or("", |e| e.detail.as_str());
                match d.split_once('(') {
                    Some((s, r)) => (s.trim().to_string(), r.trim_end_matches(')').to_string()),
                    None => (d.trim().to_string(), String::new()),
                }
            }
        };
        let at = event.map_or(self.end_ms, |e| e.at_ms);
        let reason = reason.trim();
        let evidence = vec![Evidence {
            turn: None,
            speaker: None,
            quote: format!("{skill} ({reason})"),
            start_ms: at,
            end_ms: at,
        }];
        if reason.chars().count() >= min_chars {
            Eval::new(
                Outcome::Pass,
                evidence,
                format!("transferred to {skill} at {}: {reason}", secs(at)),
            )
        } else {
            Eval::new(
                Outcome::Fail,
                evidence,
                format!("transferred to {skill} at {} without a reason", secs(at)),
            )
        }
    }
}

/// Intervals from an event matching `opens` to the next matching `closes` (or `end`), from the timeline.
fn intervals(
    call: &CallRecord,
    end: u64,
    opens: impl Fn(&str, &str) -> bool,
    closes: impl Fn(&str, &str) -> bool,
) -> Vec<(u64, u64)> {
    let mut events: Vec<_> = call.timeline.iter().collect();
    events.sort_by_key(|e| e.at_ms);
    let mut out = Vec::new();
    let mut open: Option<u64> = None;
    for e in events {
        if open.is_none() && opens(&e.kind, &e.detail) {
            open = Some(e.at_ms);
        } else if let Some(s) = open {
            if closes(&e.kind, &e.detail) {
                out.push((s, e.at_ms.max(s)));
                open = None;
            }
        }
    }
    if let Some(s) = open {
        out.push((s, end.max(s)));
    }
    out
}

/// `iv` minus the sorted intervals `cut`.
fn subtract(iv: (u64, u64), cut: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut s = iv.0;
    for &(cs, ce) in cut {
        if ce <= s || cs >= iv.1 {
            continue;
        }
        if cs > s {
            out.push((s, cs));
        }
        s = s.max(ce);
    }
    if s < iv.1 {
        out.push((s, iv.1));
    }
    out
}

/// Tokens between two token ranges (0 when they touch or overlap).
fn gap(a: usize, b: usize, c: usize, d: usize) -> usize {
    if c >= b {
        c - b
    } else {
        a.saturating_sub(d)
    }
}

fn gap_u64(a: u64, b: u64, c: u64, d: u64) -> u64 {
    if c >= b {
        c - b
    } else {
        a.saturating_sub(d)
    }
}

/// Segment-level time of tokens `a..b` when the segments' tokens line up one-to-one with the turn's.
fn segment_time(turn: &Turn, ntoks: usize, a: usize, b: usize) -> Option<(u64, u64)> {
    if turn.segments.is_empty() {
        return None;
    }
    let mut map: Vec<(usize, usize, usize)> = Vec::with_capacity(ntoks);
    let mut lens = Vec::with_capacity(turn.segments.len());
    for (si, s) in turn.segments.iter().enumerate() {
        tokenize(&s.text, |t| map.push((si, t.cstart, t.cend)));
        lens.push(s.text.chars().count().max(1) as u64);
    }
    if map.len() != ntoks {
        return None;
    }
    let at = |si: usize, c: usize| {
        let s = &turn.segments[si];
        s.start_ms + s.end_ms.saturating_sub(s.start_ms) * (c as u64).min(lens[si]) / lens[si]
    };
    let (sa, ca, _) = map[a];
    let (sb, _, cb) = map[b - 1];
    let start = at(sa, ca);
    Some((start, at(sb, cb).max(start)))
}

fn describe(w: &Window) -> String {
    let anchor = match w.anchor {
        Anchor::Arrival => " of the call's arrival".to_string(),
        Anchor::Answer => String::new(),
        Anchor::FirstTurn(s) => format!(" after {} first spoke", s.name()),
    };
    match w.span {
        Span::First(ms) => format!(" in the first {}{anchor}", secs(ms)),
        Span::Last(ms) => format!(" in the last {}", secs(ms)),
        Span::Abs { from, to: Some(to) } => {
            format!(" between {} and {}{anchor}", secs(from), secs(to))
        }
        Span::Abs { from, to: None } => format!(" after {}{anchor}", secs(from)),
        Span::Rel { from, to } => format!(
            " between {:.0}% and {:.0}% of the call",
            from * 100.0,
            to * 100.0
        ),
    }
}

fn label(m: &Matcher) -> String {
    match m {
        Matcher::Phrase(p) => match p.phrases.list.as_slice() {
            [one] => format!("\"{}\"", one.text),
            [first, rest @ ..] => format!("\"{}\" (or {} more)", first.text, rest.len()),
            [] => String::new(),
        },
        Matcher::Event(e) => match &e.detail {
            Some(d) => format!("{} {d}", e.kind),
            None => e.kind.clone(),
        },
    }
}

fn labels(ms: &[Matcher]) -> String {
    ms.iter().map(label).collect::<Vec<_>>().join(" / ")
}

fn speaker_name(s: Option<Speaker>) -> &'static str {
    s.map_or("event", Speaker::as_str)
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn more(n: usize) -> String {
    if n > 1 {
        format!(" (and {} more)", n - 1)
    } else {
        String::new()
    }
}

/// The start of a turn's text, for evidence quotes.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    let t = text.trim();
    if t.chars().count() <= MAX_CHARS {
        return t.to_string();
    }
    let cut: String = t.chars().take(MAX_CHARS).collect();
    format!("{}…", cut.trim_end())
}
