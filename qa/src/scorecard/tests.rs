//! Scorecard tests: every rule kind on small synthetic calls, the loader's errors, live alerts, and the
//! bundled scorecards on realistic calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::record::{
    Acoustics, CallRecord, DialogEvent, Handoff, Speaker, TimelineEvent, Turn, TurnSegment,
};

const T0: i64 = 1_700_000_000_000;
const C: Speaker = Speaker::Caller;
const V: Speaker = Speaker::Voxgate;
const A: Speaker = Speaker::Agent;

fn ms(s: f64) -> u64 {
    (s * 1000.0).round() as u64
}

fn t(speaker: Speaker, start: f64, end: f64, text: &str) -> Turn {
    Turn {
        speaker,
        start_ms: ms(start),
        end_ms: ms(end),
        text: text.into(),
        confidence: None,
        interrupted: false,
        segments: Vec::new(),
        acoustics: None,
    }
}

fn aroused(mut turn: Turn, arousal: f32) -> Turn {
    turn.acoustics = Some(Acoustics {
        speech_ms: (turn.end_ms - turn.start_ms) as u32,
        arousal: Some(arousal),
        ..Default::default()
    });
    turn
}

/// A call answered 1 s after arrival that ended at `end` seconds.
fn call(turns: Vec<Turn>, end: f64) -> CallRecord {
    CallRecord {
        call_id: "test".into(),
        started_at_ms: T0,
        answered_at_ms: Some(T0 + 1000),
        ended_at_ms: Some(T0 + ms(end) as i64),
        turns,
        language: "en".into(),
        media_stats: serde_json::json!({}),
        ..Default::default()
    }
}

fn dialog_event(at: f64, kind: &str, detail: &str) -> DialogEvent {
    DialogEvent {
        at_ms: ms(at),
        kind: kind.into(),
        detail: detail.into(),
    }
}

fn timeline(at: f64, kind: &str, detail: &str) -> TimelineEvent {
    TimelineEvent {
        at_ms: ms(at),
        kind: kind.into(),
        detail: detail.into(),
    }
}

fn card(rules: &str) -> Scorecard {
    let text = format!("[scorecard]\nname = \"t\"\nlanguage = \"en\"\n\n{rules}");
    Scorecard::parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn result<'a>(r: &'a ScoreResult, id: &str) -> &'a RuleResult {
    r.rules
        .iter()
        .find(|x| x.rule == id)
        .unwrap_or_else(|| panic!("no rule {id}"))
}

fn outcome(card: &Scorecard, call: &CallRecord, id: &str) -> Outcome {
    result(&score(card, call), id).outcome
}

#[test]
fn phrase_present_and_absent_with_evidence() {
    let c = card(
        r#"
[[rule]]
id = "hello"
kind = "phrase"
speaker = "staff"
phrases = ["good morning", "hello"]

[[rule]]
id = "promise"
kind = "phrase"
expect = "absent"
speaker = "staff"
phrases = ["guaranteed returns"]
"#,
    );
    let rec = call(
        vec![
            t(V, 1.0, 3.0, "Good morning!"),
            t(C, 4.0, 6.0, "Hello, is this a good fund?"),
            t(A, 7.0, 12.0, "Yes, it has guaranteed returns."),
        ],
        20.0,
    );
    let r = score(&c, &rec);
    let hello = result(&r, "hello");
    assert_eq!(hello.outcome, Outcome::Pass);
    assert_eq!(hello.evidence[0].quote, "Good morning");
    assert_eq!(hello.evidence[0].turn, Some(0));
    assert_eq!(hello.evidence[0].speaker, Some(V));
    let promise = result(&r, "promise");
    assert_eq!(promise.outcome, Outcome::Fail);
    assert_eq!(promise.evidence[0].quote, "guaranteed returns");
    assert_eq!(promise.evidence[0].turn, Some(2));
    // "Yes, it has guaranteed returns." is 31 characters over 5 s; the words are characters 12..30.
    assert_eq!(promise.evidence[0].start_ms, 7000 + 5000 * 12 / 31);
    assert_eq!(promise.evidence[0].end_ms, 7000 + 5000 * 30 / 31);
    assert!(
        promise.note.contains("\"guaranteed returns\" by agent at"),
        "{}",
        promise.note
    );

    // The caller's "hello" does not count for staff; without staff greeting the rule fails.
    let rec = call(vec![t(C, 4.0, 6.0, "Hello?")], 20.0);
    assert_eq!(outcome(&c, &rec, "hello"), Outcome::Fail);
    assert_eq!(outcome(&c, &rec, "promise"), Outcome::Pass);
    // No transcript at all: nothing to judge.
    assert_eq!(
        outcome(&c, &call(Vec::new(), 20.0), "hello"),
        Outcome::NotApplicable
    );
}

#[test]
fn evidence_time_comes_from_whisper_segments() {
    let c = card(
        r#"
[[rule]]
id = "fraud"
kind = "phrase"
expect = "absent"
speaker = "caller"
phrases = ["safe account"]
"#,
    );
    let mut turn = t(C, 10.0, 20.0, "Hello there. Move it to a safe account now.");
    turn.segments = vec![
        TurnSegment {
            start_ms: 10_000,
            end_ms: 14_000,
            text: " Hello there.".into(),
        },
        TurnSegment {
            start_ms: 14_000,
            end_ms: 20_000,
            text: " Move it to a safe account now.".into(),
        },
    ];
    let r = score(&c, &call(vec![turn.clone()], 30.0));
    let e = &result(&r, "fraud").evidence[0];
    assert_eq!(e.quote, "safe account");
    // Second segment, 31 characters over 6 s; "safe account" is characters 14..26.
    assert_eq!(
        (e.start_ms, e.end_ms),
        (14_000 + 6000 * 14 / 31, 14_000 + 6000 * 26 / 31)
    );

    // Segments that do not line up with the text (e.g. redacted afterwards) fall back to the turn.
    turn.segments.truncate(1);
    let r = score(&c, &call(vec![turn], 30.0));
    let e = &result(&r, "fraud").evidence[0];
    assert_eq!(
        (e.start_ms, e.end_ms),
        (10_000 + 10_000 * 26 / 43, 10_000 + 10_000 * 38 / 43)
    );
}

#[test]
fn time_windows() {
    let c = card(
        r#"
[[rule]]
id = "first"
kind = "phrase"
speaker = "staff"
phrases = ["hello"]
window = { first_secs = 10 }

[[rule]]
id = "last"
kind = "phrase"
speaker = "staff"
phrases = ["goodbye"]
window = { last_secs = 30 }

[[rule]]
id = "abs"
kind = "phrase"
speaker = "caller"
phrases = ["card"]
window = { from_secs = 20, to_secs = 40 }

[[rule]]
id = "abs_arrival"
kind = "phrase"
speaker = "caller"
phrases = ["stolen"]
window = { from_secs = 31, to_secs = 32, anchor = "arrival" }

[[rule]]
id = "rel"
kind = "phrase"
speaker = "caller"
phrases = ["please"]
window = { from_pct = 50 }

[[rule]]
id = "agent_first"
kind = "phrase"
speaker = "agent"
phrases = ["hello"]
window = { first_secs = 10, anchor = "speaker" }
"#,
    );
    let good = call(
        vec![
            t(V, 2.0, 6.0, "Hello, welcome to the bank."),
            t(C, 30.0, 34.0, "The card was stolen yesterday."),
            t(A, 60.0, 64.0, "Hi, Ann here. Hello!"),
            t(C, 75.0, 78.0, "Freeze it please."),
            t(V, 90.0, 95.0, "Thank you, goodbye."),
        ],
        100.0,
    );
    let r = score(&c, &good);
    for id in ["first", "last", "abs", "abs_arrival", "rel", "agent_first"] {
        assert_eq!(
            result(&r, id).outcome,
            Outcome::Pass,
            "{id}: {}",
            result(&r, id).note
        );
    }
    // The agent's "Hello" is ~1 s after the agent's first turn started at 60 s.
    assert!(result(&r, "agent_first").evidence[0].start_ms >= 60_000);

    let late = call(
        vec![
            // Answered at 1 s: the first 10 s end at 11 s.
            t(V, 12.0, 14.0, "Hello."),
            t(C, 15.0, 18.0, "My card please, it was stolen."),
            t(A, 60.0, 62.0, "Ann speaking."),
            t(A, 72.0, 74.0, "Hello?"),
            t(V, 60.0, 65.0, "Goodbye."),
        ],
        100.0,
    );
    let r = score(&c, &late);
    for id in ["first", "last", "abs", "abs_arrival", "rel", "agent_first"] {
        assert_eq!(
            result(&r, id).outcome,
            Outcome::Fail,
            "{id}: {}",
            result(&r, id).note
        );
    }
    assert_eq!(
        result(&r, "first").note,
        "not said by staff in the first 10.0 s"
    );
    // No agent: the agent's window has no anchor.
    let no_agent = call(vec![t(V, 2.0, 4.0, "Hello")], 50.0);
    assert_eq!(
        outcome(&c, &no_agent, "agent_first"),
        Outcome::NotApplicable
    );
}

#[test]
fn proximity_in_words_and_seconds() {
    let c = card(
        r#"
[[rule]]
id = "words"
kind = "phrase"
speaker = "staff"
phrases = ["fees"]
near = ["risk"]
near_words = 4

[[rule]]
id = "tight"
kind = "phrase"
speaker = "staff"
phrases = ["fees"]
near = ["risk"]
near_words = 3

[[rule]]
id = "secs"
kind = "phrase"
speaker = "staff"
phrases = ["fees"]
near = ["risks"]
near_secs = 10
"#,
    );
    // "fees" is token 2, "risk" token 7: four tokens between them.
    let one = call(
        vec![t(
            A,
            5.0,
            10.0,
            "There are fees for this and the risk is yours.",
        )],
        30.0,
    );
    assert_eq!(outcome(&c, &one, "words"), Outcome::Pass);
    assert_eq!(outcome(&c, &one, "tight"), Outcome::Fail);
    let apart = |risk_at: f64| {
        call(
            vec![
                t(A, 5.0, 10.0, "There are fees."),
                t(A, risk_at, risk_at + 4.0, "Please note the risks."),
            ],
            60.0,
        )
    };
    // "fees" ends at 5 + 5 × 14/15 s; "risks" starts 16/22 into its turn.
    assert_eq!(outcome(&c, &apart(12.0), "secs"), Outcome::Pass);
    assert_eq!(outcome(&c, &apart(30.0), "secs"), Outcome::Fail);
    assert_eq!(
        outcome(&c, &apart(12.0), "words"),
        Outcome::Fail,
        "word proximity is per turn"
    );
}

#[test]
fn negated_mentions_do_not_count_unless_asked() {
    let c = card(
        r#"
[[rule]]
id = "fraud"
kind = "phrase"
expect = "absent"
speaker = "caller"
phrases = ["safe account", "让我把钱转到"]

[[rule]]
id = "fraud_any"
kind = "phrase"
expect = "absent"
speaker = "caller"
phrases = ["safe account"]
count_negated = true
"#,
    );
    let negated = call(
        vec![t(C, 1.0, 4.0, "I did not mention a safe account.")],
        10.0,
    );
    let r = score(&c, &negated);
    assert_eq!(result(&r, "fraud").outcome, Outcome::Pass);
    assert!(result(&r, "fraud")
        .note
        .contains("1 negated mention ignored"));
    assert_eq!(result(&r, "fraud_any").outcome, Outcome::Fail);
    // Negation does not reach across a sentence or beyond three words.
    for text in [
        "No. Safe account, they said.",
        "I never thought it would be a real safe account",
    ] {
        let r = score(&c, &call(vec![t(C, 1.0, 4.0, text)], 10.0));
        assert_eq!(result(&r, "fraud").outcome, Outcome::Fail, "{text}");
    }
    let zh = |text: &str| outcome(&c, &call(vec![t(C, 1.0, 4.0, text)], 10.0), "fraud");
    assert_eq!(zh("他没有让我把钱转到别的地方"), Outcome::Pass);
    assert_eq!(zh("他让我把钱转到别的地方"), Outcome::Fail);
    // 对不起 is "sorry", not a negation.
    assert_eq!(zh("对不起让我把钱转到哪里"), Outcome::Fail);
}

#[test]
fn fuzzy_matching_tolerates_whisper_mishearings() {
    let c = card(
        r#"
[[rule]]
id = "fuzzy"
kind = "phrase"
expect = "absent"
speaker = "caller"
phrases = ["safe account", "gift card"]

[[rule]]
id = "exact"
kind = "phrase"
expect = "absent"
speaker = "caller"
phrases = ["safe account"]
fuzzy = 1.0
"#,
    );
    let check = |text: &str| {
        let r = score(&c, &call(vec![t(C, 1.0, 5.0, text)], 10.0));
        (
            result(&r, "fuzzy").outcome,
            result(&r, "fuzzy")
                .evidence
                .first()
                .map(|e| e.quote.clone()),
            result(&r, "exact").outcome,
        )
    };
    assert_eq!(
        check("They said to move it to a save account."),
        (Outcome::Fail, Some("save account".into()), Outcome::Pass)
    );
    assert_eq!(
        check("put it in the safe a count"),
        (Outcome::Fail, Some("safe a count".into()), Outcome::Pass)
    );
    assert_eq!(
        check("Buy some gift cards"),
        (Outcome::Fail, Some("gift cards".into()), Outcome::Pass)
    );
    assert_eq!(
        check("Safe, um, account"),
        (
            Outcome::Fail,
            Some("Safe, um, account".into()),
            Outcome::Fail
        )
    );
    assert_eq!(
        check("It's on my sofa account"),
        (Outcome::Pass, None, Outcome::Pass)
    );
    assert_eq!(check("a safe amount"), (Outcome::Pass, None, Outcome::Pass));
}

#[test]
fn han_text_matches_by_character() {
    let text = "[scorecard]\nname = \"zh\"\nlanguage = \"zh\"\n\n[[rule]]\nid = \"fraud\"\nkind = \"phrase\"\nexpect = \"absent\"\nspeaker = \"caller\"\nphrases = [\"安全账户\", \"礼品卡\"]\n";
    let c = Scorecard::parse(text, Path::new("zh.toml")).unwrap();
    let r = score(
        &c,
        &call(
            vec![t(C, 2.0, 6.0, "他说把钱转到安全账户，然后买礼品卡。")],
            10.0,
        ),
    );
    let f = result(&r, "fraud");
    assert_eq!(f.outcome, Outcome::Fail);
    assert_eq!(f.evidence[0].quote, "安全账户");
    assert_eq!(f.evidence[1].quote, "礼品卡");
    // 18 characters over 4 s; 安全账户 is characters 6..10.
    assert_eq!(f.evidence[0].start_ms, 2000 + 4000 * 6 / 18);
    assert_eq!(f.evidence[0].end_ms, 2000 + 4000 * 10 / 18);
    // A different character is a different word.
    assert_eq!(
        outcome(&c, &call(vec![t(C, 2.0, 6.0, "安全帐号")], 10.0), "fraud"),
        Outcome::Pass
    );
}

#[test]
fn weights_sections_not_applicable_critical_and_pass_mark() {
    let rules = |critical: bool, pass_mark: u32| {
        format!(
            r#"[scorecard]
name = "w"
language = "en"
pass_mark = {pass_mark}

[[section]]
name = "one"
title = "One"

[[section]]
name = "two"
title = "Two"

[[rule]]
id = "greet"
section = "one"
kind = "phrase"
phrases = ["hello"]
weight = 10

[[rule]]
id = "close"
section = "one"
kind = "phrase"
phrases = ["goodbye"]
weight = 5
critical = {critical}

[[rule]]
id = "transfer"
section = "two"
kind = "transfer_reason"
weight = 3

[[rule]]
id = "alert_only"
kind = "phrase"
expect = "absent"
phrases = ["lawyer"]
weight = 0
"#
        )
    };
    let rec = call(
        vec![t(V, 1.0, 2.0, "Hello"), t(C, 3.0, 5.0, "I want my lawyer")],
        10.0,
    );
    let load = |text: String| Scorecard::parse(&text, Path::new("w.toml")).unwrap();

    let r = score(&load(rules(false, 60)), &rec);
    assert_eq!(result(&r, "transfer").outcome, Outcome::NotApplicable);
    assert_eq!(result(&r, "alert_only").outcome, Outcome::Fail);
    assert_eq!(r.raw_score, 66.7, "10 of 15 applicable");
    assert_eq!(r.score, 66.7);
    assert!(r.passed && !r.critical_failed);
    let names: Vec<&str> = r.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["one", "two", "general"]);
    assert_eq!((r.sections[0].earned, r.sections[0].possible), (10.0, 15.0));
    assert_eq!(r.sections[0].score, Some(66.7));
    assert_eq!(r.sections[1].score, None, "only a not-applicable rule");
    assert_eq!(r.sections[2].score, None, "weight 0");

    let r = score(&load(rules(false, 70)), &rec);
    assert!(!r.passed, "66.7 is under the pass mark 70");

    let r = score(&load(rules(true, 60)), &rec);
    assert!(r.critical_failed && !r.passed);
    assert_eq!(
        (r.score, r.raw_score),
        (0.0, 66.7),
        "auto-fail keeps the raw score"
    );

    // A reviewer overturns the critical failure: recompute from the outcomes.
    let mut reviewed = r.clone();
    reviewed.rules[1].outcome = Outcome::Pass;
    reviewed.recompute(60.0);
    assert_eq!((reviewed.score, reviewed.raw_score), (100.0, 100.0));
    assert!(reviewed.passed && !reviewed.critical_failed);

    // Nothing applicable: nothing went wrong.
    let empty = card("[[rule]]\nid = \"x\"\nkind = \"transfer_reason\"\n");
    let r = score(&empty, &rec);
    assert_eq!(r.score, 100.0);
    assert!(r.passed);

    // Serialized outcomes are lowercase words.
    let json = serde_json::to_string(&Outcome::NotApplicable).unwrap();
    assert_eq!(json, "\"not_applicable\"");
    assert_eq!(
        serde_json::to_string(&Severity::Critical).unwrap(),
        "\"critical\""
    );
}

#[test]
fn sequence_rule() {
    let c = card(
        r#"
[[rule]]
id = "verified_first"
kind = "sequence"
first = [{ event = "verification", detail = "verified" }, { event = "voiceprint", detail = "accept" }]
then = [{ speaker = "staff", phrases = ["balance is"] }]
"#,
    );
    let with = |events: Vec<DialogEvent>, turns: Vec<Turn>| {
        let mut rec = call(turns, 60.0);
        rec.dialog.events = events;
        rec
    };
    let balance = || vec![t(V, 25.0, 29.0, "Your balance is 100 dollars.")];
    let r = score(
        &c,
        &with(
            vec![dialog_event(20.0, "verification", "verified")],
            balance(),
        ),
    );
    let rr = result(&r, "verified_first");
    assert_eq!(rr.outcome, Outcome::Pass);
    assert_eq!(rr.evidence.len(), 2);
    assert_eq!(rr.evidence[0].quote, "verification: verified");
    assert_eq!(rr.evidence[0].start_ms, 20_000);
    assert_eq!(rr.evidence[1].quote, "balance is");

    // A voiceprint accept counts too ("accept: 0.93" as the call path writes it).
    let r = with(
        vec![dialog_event(20.0, "voiceprint", "accept: 0.93")],
        balance(),
    );
    assert_eq!(outcome(&c, &r, "verified_first"), Outcome::Pass);

    for events in [
        vec![dialog_event(30.0, "verification", "verified")],
        vec![dialog_event(20.0, "verification", "wrong_pin")],
        vec![dialog_event(20.0, "voiceprint", "reject")],
        Vec::new(),
    ] {
        let r = score(&c, &with(events.clone(), balance()));
        let rr = result(&r, "verified_first");
        assert_eq!(rr.outcome, Outcome::Fail, "{events:?}");
        assert!(
            rr.note
                .contains("without verification verified / voiceprint accept"),
            "{}",
            rr.note
        );
    }
    // Fees and risks (near each other) disclosed before the caller confirmed the transfer.
    let disclosed = card(
        r#"
[[rule]]
id = "disclosed"
kind = "sequence"
first = [{ speaker = "staff", phrases = ["fee"], near = ["risk"], near_words = 10 }]
then = [{ event = "confirmation", detail = "yes" }]
"#,
    );
    let transfer = |staff: &str| {
        with(
            vec![dialog_event(30.0, "confirmation", "transfer yes")],
            vec![t(A, 20.0, 28.0, staff)],
        )
    };
    let said = transfer("There is a fee of two pounds, and the exchange rate risk is yours.");
    assert_eq!(outcome(&disclosed, &said, "disclosed"), Outcome::Pass);
    let fee_only = transfer("There is a fee of two pounds.");
    assert_eq!(outcome(&disclosed, &fee_only, "disclosed"), Outcome::Fail);

    // The balance never said: nothing to check.
    let none = with(Vec::new(), vec![t(V, 1.0, 3.0, "Hello")]);
    assert_eq!(outcome(&c, &none, "verified_first"), Outcome::NotApplicable);
}

#[test]
fn count_rule_merges_a_phrase_with_its_event() {
    let c = card(
        r#"
[[rule]]
id = "human"
kind = "count"
match = [
  { speaker = "caller", phrases = ["agent", "human", "real person"] },
  { event = "command", detail = "agent", source = "dialog" },
]
max = 2

[[rule]]
id = "at_least_one"
kind = "count"
match = [{ speaker = "caller", phrases = ["thanks"] }]
min = 1
"#,
    );
    let mut rec = call(
        vec![
            t(C, 5.0, 6.0, "Agent."),
            t(C, 10.0, 12.0, "I want a human, a human!"),
            t(V, 13.0, 15.0, "Connecting you to an agent."),
        ],
        40.0,
    );
    rec.dialog.events = vec![
        // The dialog's command for the first request: the same request.
        dialog_event(6.5, "command", "agent"),
        // Pressed 0 later: a third request.
        dialog_event(20.0, "command", "agent"),
    ];
    let r = score(&c, &rec);
    let h = result(&r, "human");
    assert_eq!(h.outcome, Outcome::Fail, "{}", h.note);
    assert!(h.note.contains(" 3 times"), "{}", h.note);
    let quotes: Vec<&str> = h.evidence.iter().map(|e| e.quote.as_str()).collect();
    assert_eq!(quotes, ["Agent", "human", "command: agent"]);
    assert_eq!(result(&r, "at_least_one").outcome, Outcome::Fail);

    rec.dialog.events.pop();
    assert_eq!(outcome(&c, &rec, "human"), Outcome::Pass);
}

#[test]
fn silence_gaps_and_share_with_hold_excluded() {
    let c = card(
        r#"
[[rule]]
id = "gap"
kind = "silence"
max_gap_secs = 15

[[rule]]
id = "share"
kind = "silence"
max_silence_pct = 50

[[rule]]
id = "gap_with_hold"
kind = "silence"
max_gap_secs = 15
exclude_waiting = false
"#,
    );
    let turns = vec![
        t(V, 1.0, 5.0, "Hello"),
        t(C, 6.0, 10.0, "One moment please"),
        t(V, 30.0, 35.0, "Are you still there?"),
        t(C, 36.0, 40.0, "Yes"),
    ];
    let r = score(&c, &call(turns.clone(), 45.0));
    let gap = result(&r, "gap");
    assert_eq!(gap.outcome, Outcome::Fail);
    assert_eq!(
        (
            gap.evidence[0].start_ms,
            gap.evidence[0].end_ms,
            gap.evidence[0].turn
        ),
        (10_000, 30_000, Some(2))
    );
    assert_eq!(
        gap.note,
        "longest gap 20.0 s at 10.0 s, 56% silence (max gap 15.0 s)"
    );
    // Silence 1 + 20 + 1 s over the 39 s from first to last word: 56 %.
    assert_eq!(result(&r, "share").outcome, Outcome::Fail);

    // The caller put the call on hold from 12 to 28 s: that is not silence.
    let mut held = call(turns, 45.0);
    held.timeline = vec![
        timeline(12.0, "reinvite", "PCMU hold"),
        timeline(28.0, "reinvite", "PCMU active"),
    ];
    let r = score(&c, &held);
    let gap = result(&r, "gap");
    assert_eq!(gap.outcome, Outcome::Pass, "{}", gap.note);
    assert_eq!(
        (gap.evidence[0].start_ms, gap.evidence[0].end_ms),
        (10_000, 12_000)
    );
    // 6 s of silence over 23 s outside the hold.
    assert_eq!(result(&r, "share").outcome, Outcome::Pass);
    assert_eq!(result(&r, "gap_with_hold").outcome, Outcome::Fail);

    let one = call(vec![t(V, 1.0, 5.0, "Hello")], 10.0);
    assert_eq!(outcome(&c, &one, "gap"), Outcome::NotApplicable);
}

#[test]
fn talk_over_counts_and_totals() {
    let c = card(
        r#"
[[rule]]
id = "max1"
kind = "talk_over"
speaker = "staff"
interrupted = "caller"
max_count = 1

[[rule]]
id = "max2"
kind = "talk_over"
speaker = "staff"
max_count = 2

[[rule]]
id = "total3"
kind = "talk_over"
speaker = "agent"
max_total_secs = 3

[[rule]]
id = "caller"
kind = "talk_over"
speaker = "caller"
max_count = 0
"#,
    );
    let rec = call(
        vec![
            t(
                C,
                0.0,
                10.0,
                "Let me explain the whole story from the beginning",
            ),
            // 3 s over the caller.
            t(A, 5.0, 8.0, "Sorry, can I stop you there"),
            t(A, 12.0, 14.0, "So what happened"),
            // The caller talks over the agent for 1 s, then the agent over the caller for 1 s.
            t(C, 13.0, 16.0, "Well they called me"),
            t(A, 15.0, 17.0, "Who called"),
            // 0.2 s: a back-channel, not an interruption.
            t(C, 17.0, 18.0, "The bank"),
            t(A, 17.8, 19.0, "Mm-hm"),
        ],
        30.0,
    );
    let r = score(&c, &rec);
    let m1 = result(&r, "max1");
    assert_eq!(m1.outcome, Outcome::Fail);
    assert_eq!(
        m1.note,
        "2 interruptions of caller by staff, 4.0 s in total (max 1)"
    );
    assert_eq!(m1.evidence[0].turn, Some(1));
    assert_eq!(
        (m1.evidence[0].start_ms, m1.evidence[0].end_ms),
        (5000, 8000)
    );
    assert_eq!(
        (m1.evidence[1].start_ms, m1.evidence[1].end_ms),
        (15_000, 16_000)
    );
    assert_eq!(result(&r, "max2").outcome, Outcome::Pass);
    assert_eq!(result(&r, "total3").outcome, Outcome::Fail);
    let caller = result(&r, "caller");
    assert_eq!(caller.outcome, Outcome::Fail);
    assert_eq!(caller.evidence.len(), 1);
    assert_eq!(caller.evidence[0].turn, Some(3));
    // Nobody on the staff side spoke: not applicable.
    let alone = call(vec![t(C, 0.0, 3.0, "Hello?")], 10.0);
    assert_eq!(outcome(&c, &alone, "max1"), Outcome::NotApplicable);
}

#[test]
fn speech_rate_bounds() {
    let c = card(
        r#"
[[rule]]
id = "normal"
kind = "speech_rate"
speaker = "staff"
min_wpm = 90
max_wpm = 220
min_speech_secs = 5

[[rule]]
id = "slow"
kind = "speech_rate"
speaker = "staff"
max_wpm = 140
"#,
    );
    let twenty = "one two three four five six seven eight nine ten one two three four five six seven eight nine ten";
    let ten = "one two three four five six seven eight nine ten";
    let turns = vec![t(V, 0.0, 6.0, twenty), t(V, 10.0, 16.0, ten)];
    let r = score(&c, &call(turns.clone(), 20.0));
    // 30 words in 12 s: 150 wpm.
    let n = result(&r, "normal");
    assert_eq!(n.outcome, Outcome::Pass, "{}", n.note);
    assert!(
        n.note.starts_with("staff 150 wpm over 2 turns"),
        "{}",
        n.note
    );
    let s = result(&r, "slow");
    assert_eq!(s.outcome, Outcome::Fail);
    assert!(
        s.evidence[0].quote.starts_with("200 wpm: "),
        "{}",
        s.evidence[0].quote
    );
    assert_eq!(s.evidence[0].turn, Some(0));

    // Measured speech time (pauses excluded) wins over the turn length: 20 words in 2 s, 30 in 8 s is
    // 225 wpm.
    let mut fast = turns.clone();
    fast[0].acoustics = Some(Acoustics {
        speech_ms: 2000,
        ..Default::default()
    });
    assert_eq!(outcome(&c, &call(fast, 20.0), "normal"), Outcome::Fail);
    // Interrupted prompts are cut short and would look fast: left out.
    let mut cut = turns;
    cut[0].interrupted = true;
    let r = score(&c, &call(cut, 20.0));
    let n = result(&r, "normal");
    assert_eq!(n.outcome, Outcome::Pass);
    assert!(
        n.note.starts_with("staff 100 wpm over 1 turn "),
        "{}",
        n.note
    );
    // 6 s of speech is under the default minimum of 10 s.
    assert_eq!(result(&r, "slow").outcome, Outcome::NotApplicable);
}

#[test]
fn call_hold_and_queue_duration() {
    let c = card(
        r#"
[[rule]]
id = "call"
kind = "duration"
max_secs = 900

[[rule]]
id = "long_enough"
kind = "duration"
min_secs = 30

[[rule]]
id = "hold"
kind = "duration"
measure = "hold"
max_secs = 60

[[rule]]
id = "queue"
kind = "duration"
measure = "queue"
max_secs = 120
"#,
    );
    let mut rec = call(vec![t(V, 1.0, 3.0, "Hello")], 1000.0);
    rec.timeline = vec![
        timeline(100.0, "reinvite", "PCMU hold"),
        timeline(150.0, "reinvite", "PCMU active"),
        timeline(200.0, "reinvite", "PCMU hold"),
        timeline(230.0, "reinvite", "PCMU active"),
        timeline(300.0, "queued", "fraud, position 1, about 2 min"),
        timeline(400.0, "agent_answered", "ann"),
    ];
    let r = score(&c, &rec);
    let call_rule = result(&r, "call");
    assert_eq!(call_rule.outcome, Outcome::Fail);
    assert_eq!(call_rule.note, "call 16:39 (max 15:00)");
    assert_eq!(
        (call_rule.evidence[0].start_ms, call_rule.evidence[0].end_ms),
        (1000, 1_000_000)
    );
    assert_eq!(result(&r, "long_enough").outcome, Outcome::Pass);
    let hold = result(&r, "hold");
    assert_eq!(hold.outcome, Outcome::Fail, "80 s on hold");
    assert_eq!(hold.note, "hold 1:20 (max 1:00)");
    assert_eq!(
        (hold.evidence[0].start_ms, hold.evidence[0].end_ms),
        (100_000, 150_000)
    );
    assert_eq!(result(&r, "queue").outcome, Outcome::Pass, "100 s queued");

    let short = call(vec![t(V, 1.0, 3.0, "Hello")], 20.0);
    assert_eq!(outcome(&c, &short, "long_enough"), Outcome::Fail);
    let mut unanswered = short;
    unanswered.answered_at_ms = None;
    assert_eq!(outcome(&c, &unanswered, "call"), Outcome::NotApplicable);
}

#[test]
fn sentiment_thresholds_and_trend() {
    let c = card(
        r#"
[[rule]]
id = "calm"
kind = "sentiment"
speaker = "caller"
arousal_above = 1.5

[[rule]]
id = "trend"
kind = "sentiment"
speaker = "caller"
trend = "not_worsening"

[[rule]]
id = "improving"
kind = "sentiment"
speaker = "caller"
trend = "improving"
"#,
    );
    // Neutral words; only how they were said changes.
    let turns = |arousal: [f32; 4]| {
        let texts = [
            "my card number is on the letter",
            "the number is on the back",
            "it is the number on the card",
            "I read the number on the card",
        ];
        let v: Vec<Turn> = texts
            .iter()
            .zip(arousal)
            .enumerate()
            .map(|(i, (text, a))| aroused(t(C, 10.0 * i as f64, 10.0 * i as f64 + 5.0, text), a))
            .collect();
        call(v, 60.0)
    };
    let r = score(&c, &turns([0.0, 0.2, 2.0, 3.0]));
    let calm = result(&r, "calm");
    assert_eq!(calm.outcome, Outcome::Fail);
    assert_eq!(calm.evidence.len(), 2);
    assert_eq!(calm.evidence[0].turn, Some(2));
    assert_eq!(calm.note, "caller arousal 2.0 at 20.0 s");
    let trend = result(&r, "trend");
    assert_eq!(trend.outcome, Outcome::Fail, "{}", trend.note);
    assert_eq!(trend.evidence[0].turn, Some(3), "the worst late turn");
    assert_eq!(
        result(&r, "improving").outcome,
        Outcome::NotApplicable,
        "never negative"
    );

    let r = score(&c, &turns([0.5, 1.0, 0.4, 0.2]));
    assert_eq!(result(&r, "calm").outcome, Outcome::Pass);
    assert_eq!(result(&r, "trend").outcome, Outcome::Pass);
    // Calming down from an aroused start is an improvement.
    let r = score(&c, &turns([3.0, 3.0, 0.5, 0.0]));
    assert_eq!(result(&r, "improving").outcome, Outcome::Pass);
    assert_eq!(result(&r, "trend").outcome, Outcome::Pass);
    let r = score(&c, &turns([3.0, 3.0, 3.0, 2.8]));
    assert_eq!(result(&r, "improving").outcome, Outcome::Fail);

    let too_few = call(vec![aroused(t(C, 1.0, 3.0, "hi"), 0.0)], 10.0);
    assert_eq!(outcome(&c, &too_few, "trend"), Outcome::NotApplicable);
    assert_eq!(outcome(&c, &too_few, "calm"), Outcome::Pass);
}

#[test]
fn sentiment_from_words() {
    let c = card(
        r#"
[[rule]]
id = "angry"
kind = "sentiment"
speaker = "caller"
negative_at = -0.5
"#,
    );
    for text in [
        "This is ridiculous, I am furious and your service is terrible!",
        "太气人了，你们的服务太差了，我非常生气！",
    ] {
        let s = crate::sentiment::lexical(text);
        let r = score(
            &c,
            &call(
                vec![t(C, 2.0, 8.0, "Thanks."), t(C, 10.0, 16.0, text)],
                20.0,
            ),
        );
        let angry = result(&r, "angry");
        assert_eq!(angry.outcome, Outcome::Fail, "{text}: {}", s.score);
        let e = &angry.evidence[0];
        assert_eq!(e.turn, Some(1));
        // The quote is the negative words, timed where they are in the turn.
        let first = s.hits.iter().find(|h| h.weight < 0.0).unwrap();
        assert!(
            e.quote.starts_with(&first.text),
            "{} / {}",
            e.quote,
            first.text
        );
        assert!(
            e.start_ms >= 10_000 && e.end_ms <= 16_000 && e.start_ms < e.end_ms,
            "{e:?}"
        );
        assert!(
            angry.note.starts_with("caller sentiment -"),
            "{}",
            angry.note
        );
    }
    let calm = call(
        vec![t(C, 2.0, 8.0, "Thank you, that was very helpful.")],
        20.0,
    );
    assert_eq!(outcome(&c, &calm, "angry"), Outcome::Pass);
}

#[test]
fn transfer_reason_rule() {
    let c = card("[[rule]]\nid = \"reason\"\nkind = \"transfer_reason\"\n");
    let mut rec = call(vec![t(V, 1.0, 3.0, "Hello")], 60.0);
    assert_eq!(outcome(&c, &rec, "reason"), Outcome::NotApplicable);
    rec.dialog.events = vec![dialog_event(
        30.0,
        "handoff",
        "fraud (caller reports a scam)",
    )];
    let r = score(&c, &rec);
    let rr = result(&r, "reason");
    assert_eq!(rr.outcome, Outcome::Pass);
    assert_eq!(
        rr.note,
        "transferred to fraud at 30.0 s: caller reports a scam"
    );
    assert_eq!(rr.evidence[0].start_ms, 30_000);
    rec.dialog.handoff = Some(Handoff {
        skill: "general".into(),
        reason: " ".into(),
        priority: false,
        agent: None,
        tags: Vec::new(),
    });
    assert_eq!(outcome(&c, &rec, "reason"), Outcome::Fail);
}

#[test]
fn live_alerts_fire_once_from_partials_and_only_for_realtime_rules() {
    let c = Arc::new(card(
        r#"
[[rule]]
id = "fraud"
kind = "phrase"
expect = "absent"
speaker = "caller"
phrases = ["safe account"]
realtime = true
severity = "critical"
weight = 0

[[rule]]
id = "fraud_post_call"
kind = "phrase"
expect = "absent"
speaker = "caller"
phrases = ["safe account"]

[[rule]]
id = "greeting"
kind = "phrase"
speaker = "staff"
phrases = ["hello"]
window = { first_secs = 10 }
realtime = true
severity = "info"

[[rule]]
id = "human"
kind = "count"
match = [{ speaker = "caller", phrases = ["agent"] }]
max = 0
realtime = true
partials = false
"#,
    ));
    let mut live = LiveScorer::new(vec![c]);
    let mut rec = call(Vec::new(), 0.0);
    rec.ended_at_ms = None;

    let first = t(V, 1.0, 4.0, "Thanks for calling the bank.");
    rec.turns.push(first.clone());
    assert!(
        live.on_turn(&rec, &first, false).is_empty(),
        "the greeting window is still open"
    );

    // A partial transcript already shows the indicator.
    let partial = t(C, 5.0, 7.0, "they want me to use a save account");
    let alerts = live.on_turn(&rec, &partial, true);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!((a.rule.as_str(), a.severity), ("fraud", Severity::Critical));
    assert_eq!((a.quote.as_str(), a.speaker), ("save account", Some(C)));
    assert!(a.from_partial);
    assert!(a.start_ms >= 5000 && a.end_ms <= 7000 && a.start_ms < a.end_ms);
    // The final of the same turn does not raise it again.
    let fin = t(
        C,
        5.0,
        8.0,
        "They want me to use a safe account, and I need an agent.",
    );
    rec.turns.push(fin.clone());
    let alerts = live.on_turn(&rec, &fin, false);
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(rules, ["human"], "the count rule waits for the final");
    assert!(!alerts[0].from_partial);

    // The greeting window (answer at 1 s + 10 s) closes live only after the recognition grace.
    let late = t(C, 12.0, 14.0, "Hello?");
    rec.turns.push(late.clone());
    assert!(live.on_turn(&rec, &late, false).is_empty());
    let later = t(C, 15.0, 16.5, "Anyone there? safe account agent");
    rec.turns.push(later.clone());
    let alerts = live.on_turn(&rec, &later, false);
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(rules, ["greeting"]);
    assert_eq!(alerts[0].severity, Severity::Info);
    // Everything has alerted once; nothing more.
    let again = t(C, 17.0, 18.0, "safe account, agent");
    rec.turns.push(again.clone());
    assert!(live.on_turn(&rec, &again, false).is_empty());
}

/// Byte offset of the `n`th (0-based) occurrence of `needle`, as line:column.
fn at(text: &str, needle: &str, n: usize) -> String {
    let offset = text
        .match_indices(needle)
        .nth(n)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("{needle} #{n}"));
    let before = &text[..offset];
    format!(
        "{}:{}",
        before.matches('\n').count() + 1,
        offset - before.rfind('\n').map_or(0, |i| i + 1) + 1
    )
}

#[test]
fn loader_reports_every_problem_with_its_line_and_column() {
    let text = r#"[scorecard]
name = "bad"
language = "en"
pass_mark = 120

[[section]]
name = "main"

[[rule]]
id = "a"
kind = "phrase"
speaker = "boss"
phrases = ["hello", "..."]
window = { first_secs = 10, last_secs = 5 }
section = "nope"

[[rule]]
id = "a"
kind = "silence"
phrases = ["x"]
max_gap_secs = 10

[[rule]]
id = "c"
kind = "phrase"
phrases = ["hello"]
realtime = true

[[rule]]
id = "d"
kind = "count"
match = [{ event = "command", speaker = "caller" }]
min = 3
max = 2
severity = "warning"

[[rule]]
id = "e"
kind = "frobnicate"
"#;
    let err = Scorecard::parse(text, Path::new("bad.toml")).unwrap_err();
    let lines: Vec<String> = err.to_string().lines().map(String::from).collect();
    let expected = [
        "bad.toml:4:13: `pass_mark` = 120 out of range (0..=100)".to_string(),
        "bad.toml:12:11: `speaker`: \"boss\" is not one of caller, agent, voxgate, staff, any".to_string(),
        format!("bad.toml:{}: phrase \"...\" has no words", at(text, "\"...\"", 0)),
        format!("bad.toml:{}: `last_secs` cannot be combined with `first_secs`", at(text, "5 }", 0)),
        "bad.toml:15:11: no section named `nope`".to_string(),
        "bad.toml:18:6: rule `a` is defined twice".to_string(),
        "bad.toml:20:11: `phrases` does not apply to a `silence` rule".to_string(),
        "bad.toml:27:12: `realtime = true` on a rule that cannot fail before the call ends: a phrase \
             that must be said is only missing when the call ends; give it a window that closes \
             (`first_secs` or `to_secs`)".to_string(),
        format!("bad.toml:{}: `speaker` cannot be combined with `event`", at(text, "\"caller\" }", 0)),
        "bad.toml:34:7: `max` must be greater than `min`".to_string(),
        "bad.toml:35:12: `severity` only applies to realtime rules (`realtime = true`)".to_string(),
        "bad.toml:39:8: `kind`: \"frobnicate\" is not one of phrase, sequence, count, silence, talk_over, \
             speech_rate, duration, sentiment, transfer_reason".to_string(),
    ];
    assert_eq!(lines, expected);

    // Syntax and unknown keys stop at the first problem, with its place.
    let err = Scorecard::parse(
        "[scorecard]\nname = \"x\"\nlanguage = \"en\"\n\n[[rule]]\nid = \"a\"\nkind = \"phrase\"\nwieght = 5\n",
        Path::new("typo.toml"),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("typo.toml:8:1: "), "{msg}");
    assert!(msg.contains("unknown field `wieght`"), "{msg}");
}

#[test]
fn loader_refuses_realtime_rules_that_cannot_fail_early() {
    let refused = [
        "kind = \"phrase\"\nphrases = [\"bye\"]\nwindow = { last_secs = 30 }",
        "kind = \"phrase\"\nexpect = \"absent\"\nphrases = [\"x\"]\nwindow = { from_pct = 50 }",
        "kind = \"phrase\"\nphrases = [\"hi\"]\nwindow = { from_secs = 5 }",
        "kind = \"count\"\nmatch = [{ phrases = [\"x\"] }]\nmin = 1",
        "kind = \"duration\"\nmin_secs = 30",
        "kind = \"silence\"\nmax_silence_pct = 40",
        "kind = \"speech_rate\"\nmax_wpm = 200",
        "kind = \"sentiment\"\ntrend = \"not_worsening\"",
    ];
    for body in refused {
        let text = format!("[scorecard]\nname = \"x\"\nlanguage = \"en\"\n[[rule]]\nid = \"r\"\n{body}\nrealtime = true\n");
        let err = Scorecard::parse(&text, Path::new("x.toml")).unwrap_err();
        assert_eq!(err.errors.len(), 1, "{body}: {err}");
        assert!(
            err.to_string().contains("cannot fail before the call ends"),
            "{body}: {err}"
        );
    }
    let accepted = [
        "kind = \"phrase\"\nphrases = [\"hi\"]\nwindow = { first_secs = 10 }",
        "kind = \"phrase\"\nphrases = [\"hi\"]\nwindow = { from_secs = 5, to_secs = 20 }",
        "kind = \"phrase\"\nexpect = \"absent\"\nphrases = [\"x\"]",
        "kind = \"count\"\nmatch = [{ phrases = [\"x\"] }]\nmax = 1",
        "kind = \"count\"\nmatch = [{ phrases = [\"x\"] }]\nmin = 1\nwindow = { first_secs = 60 }",
        "kind = \"duration\"\nmax_secs = 600",
        "kind = \"silence\"\nmax_gap_secs = 20",
        "kind = \"talk_over\"\nmax_count = 2",
        "kind = \"sentiment\"\nnegative_at = -0.5",
        "kind = \"sequence\"\nfirst = [{ event = \"a\" }]\nthen = [{ event = \"b\" }]",
        "kind = \"transfer_reason\"",
    ];
    for body in accepted {
        let text = format!("[scorecard]\nname = \"x\"\nlanguage = \"en\"\n[[rule]]\nid = \"r\"\n{body}\nrealtime = true\n");
        if let Err(e) = Scorecard::parse(&text, Path::new("x.toml")) {
            panic!("{body}: {e}");
        }
    }
}

#[test]
fn last_secs_takes_only_a_speaker_anchor() {
    let card = |anchor: &str| {
        let text = format!(
            "[scorecard]\nname = \"x\"\nlanguage = \"en\"\n[[rule]]\nid = \"r\"\nkind = \"phrase\"\n\
             speaker = \"agent\"\nphrases = [\"bye\"]\nwindow = {{ last_secs = 30, anchor = \"{anchor}\" }}\n"
        );
        Scorecard::parse(&text, Path::new("x.toml"))
    };
    let err = card("answer").unwrap_err().to_string();
    assert!(
        err.contains("`anchor` cannot be combined with `last_secs`"),
        "{err}"
    );
    let card = card("speaker").expect("speaker anchor");
    // The bot alone: not applicable; once the agent spoke, their last 30 s count.
    let bot_only = call(
        vec![t(V, 1.0, 3.0, "Welcome."), t(C, 4.0, 6.0, "Hi.")],
        70.0,
    );
    assert_eq!(
        score(&card, &bot_only).rules[0].outcome,
        Outcome::NotApplicable
    );
    let mut with_agent = bot_only.clone();
    with_agent.turns.push(t(A, 10.0, 12.0, "Hello, bye."));
    assert_eq!(score(&card, &with_agent).rules[0].outcome, Outcome::Fail);
    with_agent.turns.push(t(A, 50.0, 52.0, "Okay, bye now."));
    assert_eq!(score(&card, &with_agent).rules[0].outcome, Outcome::Pass);
}

fn bundled_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scorecards")
}

fn bundled() -> ScorecardSet {
    ScorecardSet::load_dir(&bundled_dir()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn scorecard_sets_load_directories_and_pick_by_language() {
    let set = bundled();
    let names: Vec<String> = set.all().iter().map(|c| c.name.clone()).collect();
    assert_eq!(names, ["bank_en", "bank_zh"]);
    assert_eq!(set.for_language("en")[0].name, "bank_en");
    assert_eq!(set.for_language("zh-CN")[0].name, "bank_zh");
    assert!(set.for_language("fr").is_empty());
    assert!(set.for_language("").is_empty());
    assert!(set.get("bank_zh").is_some());
    let en = set.get("bank_en").unwrap();
    assert_eq!(en.version.len(), 12);
    // Loading is a pure function of the file: same text, same version.
    let again = Scorecard::load(&bundled_dir().join("bank.en.toml")).unwrap();
    assert_eq!(again.version, en.version);
    let info: Vec<RuleInfo> = en.rules().collect();
    assert!(info.len() >= 14);
    let fraud = info
        .iter()
        .find(|r| r.id == "caller_no_fraud_indicator")
        .unwrap();
    assert_eq!(
        (
            fraud.realtime,
            fraud.severity,
            fraud.weight,
            fraud.section.as_str()
        ),
        (true, Some(Severity::Critical), 0.0, "risk")
    );

    // Duplicate names across files are refused; problems of all files are reported together.
    let dir = std::env::temp_dir().join(format!("voxgate-scorecards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = |name: &str| {
        std::fs::copy(bundled_dir().join("bank.en.toml"), dir.join(name)).unwrap();
    };
    copy("a.toml");
    copy("b.toml");
    std::fs::write(dir.join("c.toml"), "[scorecard]\nname = \"c\"\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "not a scorecard").unwrap();
    let err = ScorecardSet::load_dir(&dir).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains("b.toml:6:8: scorecard `bank_en` is also defined in"),
        "{err}"
    );
    assert!(
        lines[1].contains("c.toml:1:1: missing field `language`"),
        "{err}"
    );
    assert!(ScorecardSet::load_dir(Path::new("/nonexistent/cards")).is_err());
}

/// An English balance enquiry as the demo flow runs it.
fn balance_call(verified_at: Option<f64>) -> CallRecord {
    let mut rec = call(
        vec![
            t(V, 1.0, 14.0, "Welcome to the voxgate demo bank. Tell me in a few words what you need, or press 1 for your account balance, 2 for a lost or stolen card, 3 to report fraud, or 0 to speak to an agent."),
            t(C, 15.0, 17.0, "I'd like to check my balance."),
            t(V, 17.5, 21.5, "You want to hear your account balance, right?"),
            t(C, 22.0, 23.0, "Yes."),
            t(V, 23.5, 27.0, "Please say or key in your eight digit account number."),
            t(C, 28.0, 33.0, "one two three four five six seven eight"),
            t(V, 33.5, 38.0, "Now please key in your four digit PIN on the keypad, followed by hash."),
            t(V, 46.0, 50.0, "Your available balance is 1,250 dollars and 40 cents."),
            t(V, 51.0, 54.0, "Is there anything else I can help you with?"),
            t(C, 55.0, 56.0, "No, thank you."),
            t(V, 56.5, 58.5, "Thank you for calling. Goodbye."),
        ],
        60.0,
    );
    rec.dialog.events = vec![
        dialog_event(14.5, "form", "start"),
        dialog_event(17.2, "intent", "intent: balance 0.93 (margin 0.60)"),
        dialog_event(23.2, "confirmation", "intent yes"),
    ];
    if let Some(v) = verified_at {
        rec.dialog
            .events
            .push(dialog_event(v, "verification", "verified"));
    }
    rec.timeline = vec![timeline(0.0, "arrived", ""), timeline(1.0, "answered", "")];
    rec
}

#[test]
fn bundled_english_card_passes_a_clean_balance_call() {
    let en = bundled().get("bank_en").unwrap();
    let r = score(&en, &balance_call(Some(45.0)));
    for rr in &r.rules {
        let expected = match rr.rule.as_str() {
            "agent_greeting"
            | "agent_recording_notice"
            | "agent_verified_before_account_data"
            | "agent_closing"
            | "transfer_reason" => Outcome::NotApplicable,
            _ => Outcome::Pass,
        };
        assert_eq!(rr.outcome, expected, "{}: {}", rr.rule, rr.note);
    }
    assert_eq!(r.score, 100.0);
    assert!(r.passed && !r.critical_failed);
    let greeting = result(&r, "greeting");
    assert_eq!(greeting.evidence[0].quote, "Welcome");
    let closing = result(&r, "closing");
    assert_eq!(closing.evidence[0].quote, "anything else");
    let verified = result(&r, "verified_before_account_data");
    assert_eq!(verified.evidence[1].quote, "balance is");
    assert_eq!(verified.evidence[1].turn, Some(7));

    // The balance read out before the PIN was checked is a critical failure.
    let r = score(&en, &balance_call(Some(55.0)));
    assert_eq!(
        result(&r, "verified_before_account_data").outcome,
        Outcome::Fail
    );
    assert!(r.critical_failed && !r.passed);
    assert_eq!(r.score, 0.0);
    assert!(r.raw_score < 100.0 && r.raw_score > 70.0, "{}", r.raw_score);
}

/// A caller coached by a scammer, handed to the fraud team.
fn fraud_call() -> CallRecord {
    let mut rec = call(
        vec![
            t(V, 1.0, 8.0, "Welcome to the voxgate demo bank. Tell me in a few words what you need."),
            t(C, 9.0, 16.0, "They told me to transfer my savings to a save account, someone from the bank called."),
            t(V, 16.5, 20.0, "I'm sorry to hear that. Let me get you to our fraud team."),
            t(A, 36.0, 40.0, "Hello, this is Ann from the fraud team, this call is recorded. How can I help?"),
            t(C, 41.0, 50.0, "They said they were from the bank and I should buy gift cards. I want a lawyer."),
            t(A, 50.5, 56.0, "Please do not move any money. I am freezing your card now."),
            t(A, 60.0, 63.0, "Is there anything else? Goodbye."),
        ],
        64.0,
    );
    rec.dialog.events = vec![
        dialog_event(16.2, "intent", "intent: fraud 0.88 (margin 0.50)"),
        dialog_event(20.5, "handoff", "fraud (caller reports a scam)"),
    ];
    rec.dialog.handoff = Some(Handoff {
        skill: "fraud".into(),
        reason: "caller reports a scam".into(),
        priority: true,
        agent: Some("ann".into()),
        tags: Vec::new(),
    });
    rec.timeline = vec![
        timeline(1.0, "answered", ""),
        timeline(21.0, "agent_ringing", "ann"),
        timeline(35.0, "agent_answered", "ann"),
    ];
    rec
}

#[test]
fn bundled_english_card_on_a_fraud_call() {
    let en = bundled().get("bank_en").unwrap();
    let rec = fraud_call();
    let r = score(&en, &rec);
    let fraud = result(&r, "caller_no_fraud_indicator");
    assert_eq!(fraud.outcome, Outcome::Fail);
    let quotes: Vec<&str> = fraud.evidence.iter().map(|e| e.quote.as_str()).collect();
    assert_eq!(
        quotes,
        ["save account", "said they were from the bank", "gift cards"]
    );
    assert_eq!(result(&r, "caller_coached_transfer").outcome, Outcome::Fail);
    assert_eq!(
        result(&r, "caller_no_legal_threat").evidence[0].quote,
        "lawyer"
    );
    assert_eq!(result(&r, "agent_greeting").outcome, Outcome::Pass);
    assert_eq!(result(&r, "transfer_reason").outcome, Outcome::Pass);
    // The agent waited 16 s to be connected: ringing an agent is not silence.
    assert_eq!(result(&r, "no_long_silence").outcome, Outcome::Pass);
    // Risk indicators alert; they do not move the score. (The caller's mood rules depend on the sentiment
    // lexicon and may fail on this caller's words.)
    let weighed_failures: Vec<&str> = r
        .rules
        .iter()
        .filter(|x| x.outcome == Outcome::Fail && x.weight > 0.0)
        .map(|x| x.rule.as_str())
        .filter(|id| !id.starts_with("caller_mood") && *id != "caller_not_angry")
        .collect();
    assert!(weighed_failures.is_empty(), "{weighed_failures:?}");
    assert!(r.passed && !r.critical_failed && r.score > 90.0);

    // Live: the fraud indicators alert as the caller speaks, once each.
    let mut live = LiveScorer::new(vec![en]);
    let mut so_far = rec.clone();
    so_far.turns.clear();
    so_far.ended_at_ms = None;
    let mut raised = Vec::new();
    for turn in &rec.turns {
        if turn.speaker == C {
            // Half the words first, as a partial.
            let half: Vec<&str> = turn.text.split(' ').collect();
            let mut partial = turn.clone();
            partial.text = half[..half.len() / 2].join(" ");
            raised.extend(live.on_turn(&so_far, &partial, true));
        }
        so_far.turns.push(turn.clone());
        raised.extend(live.on_turn(&so_far, turn, false));
    }
    let got: Vec<(&str, bool)> = raised
        .iter()
        .map(|a| (a.rule.as_str(), a.from_partial))
        .collect();
    assert_eq!(
        got,
        [
            ("caller_coached_transfer", true),
            ("caller_no_fraud_indicator", false),
            ("caller_no_legal_threat", false),
        ]
    );
    assert_eq!(raised[1].quote, "save account");
    assert_eq!(raised[1].severity, Severity::Critical);
}

/// The agent leg is scored on the agent's own behaviour: greeting, recording notice, verification before
/// account data, closing.
#[test]
fn bundled_english_card_scores_the_agent() {
    let en = bundled().get("bank_en").unwrap();
    let rec = fraud_call();
    let r = score(&en, &rec);
    for id in ["agent_greeting", "agent_recording_notice", "agent_closing"] {
        assert_eq!(
            result(&r, id).outcome,
            Outcome::Pass,
            "{id}: {}",
            result(&r, id).note
        );
        assert!(result(&r, id)
            .evidence
            .iter()
            .all(|e| e.turn.is_some_and(|t| t >= 3)));
    }
    assert_eq!(
        result(&r, "agent_recording_notice").evidence[0].quote,
        "call is recorded"
    );
    assert_eq!(
        result(&r, "agent_closing").evidence[0].quote,
        "anything else"
    );
    // No account data from the agent: nothing to verify.
    assert_eq!(
        result(&r, "agent_verified_before_account_data").outcome,
        Outcome::NotApplicable
    );

    // The agent reads the last transaction before asking anything: a critical failure …
    let mut careless = fraud_call();
    careless.turns[5] = t(
        A,
        50.5,
        56.0,
        "I see. Your last transaction was a transfer of nine hundred dollars.",
    );
    let r = score(&en, &careless);
    let v = result(&r, "agent_verified_before_account_data");
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.note);
    assert_eq!(v.evidence[0].quote, "last transaction");
    assert!(r.critical_failed && r.score == 0.0);

    // … and after the security question it passes.
    let mut careful = careless.clone();
    careful.turns[3] = t(
        A,
        36.0,
        40.0,
        "Hello, this call is recorded. Can you confirm your date of birth?",
    );
    let r = score(&en, &careful);
    let v = result(&r, "agent_verified_before_account_data");
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.note);
    assert_eq!(v.evidence[0].quote, "date of birth");

    // An agent who never says the recording notice or goodbye loses those points only.
    let mut terse = fraud_call();
    terse.turns[3] = t(A, 36.0, 40.0, "Hello, fraud team.");
    terse.turns[6] = t(A, 60.0, 63.0, "Okay.");
    let r = score(&en, &terse);
    assert_eq!(result(&r, "agent_recording_notice").outcome, Outcome::Fail);
    assert_eq!(result(&r, "agent_closing").outcome, Outcome::Fail);
    assert!(!r.critical_failed && r.score < 100.0);
}

#[test]
fn bundled_mandarin_card() {
    let zh = bundled().get("bank_zh").unwrap();
    let mut rec = call(
        vec![
            t(
                V,
                1.0,
                9.0,
                "您好，欢迎致电演示银行。请用一句话告诉我您需要什么。",
            ),
            t(C, 10.0, 16.0, "有人冒充银行打电话，让我把钱转到安全账户。"),
            t(V, 16.5, 20.0, "很抱歉听到这个消息，我为您转接反诈骗专员。"),
            t(C, 21.0, 24.0, "我要投诉，还要找律师。"),
            t(A, 30.0, 33.0, "您好，我是反诈骗专员小王，本次通话录音。"),
            t(A, 45.0, 48.0, "还有什么可以帮您？再见。"),
        ],
        50.0,
    );
    rec.language = "zh".into();
    rec.timeline = vec![
        timeline(20.5, "agent_ringing", "wang"),
        timeline(29.0, "agent_answered", "wang"),
    ];
    let r = score(&zh, &rec);
    let fraud = result(&r, "caller_no_fraud_indicator");
    assert_eq!(fraud.outcome, Outcome::Fail);
    let quotes: Vec<&str> = fraud.evidence.iter().map(|e| e.quote.as_str()).collect();
    assert_eq!(quotes, ["冒充银行", "让我把钱转到", "安全账户"]);
    let legal = result(&r, "caller_no_legal_threat");
    let quotes: Vec<&str> = legal.evidence.iter().map(|e| e.quote.as_str()).collect();
    assert_eq!(quotes, ["投诉", "律师"]);
    for id in [
        "greeting",
        "agent_greeting",
        "agent_recording_notice",
        "agent_closing",
        "closing",
        "no_forbidden_promise",
        "no_long_silence",
    ] {
        assert_eq!(
            result(&r, id).outcome,
            Outcome::Pass,
            "{id}: {}",
            result(&r, id).note
        );
    }
    // Mandarin account data before verification.
    rec.turns
        .push(t(V, 40.0, 44.0, "您的可用余额是一千二百元。"));
    rec.turns.sort_by_key(|t| t.start_ms);
    let r = score(&zh, &rec);
    assert!(r.critical_failed);
    assert_eq!(
        result(&r, "verified_before_account_data").evidence[0].quote,
        "余额是"
    );
}

/// Evaluating the bundled English card on a 40-turn call must stay far below a millisecond (release).
#[test]
#[ignore = "timing; run with --release -- --ignored"]
fn bundled_card_is_fast() {
    let en = bundled().get("bank_en").unwrap();
    let base = balance_call(Some(45.0));
    let mut rec = base.clone();
    rec.turns.clear();
    for i in 0..4 {
        for turn in &base.turns {
            let mut tt = turn.clone();
            tt.start_ms += i * 60_000;
            tt.end_ms += i * 60_000;
            rec.turns.push(tt);
        }
    }
    rec.turns.truncate(40);
    rec.ended_at_ms = Some(T0 + 240_000);
    let n = 2000;
    let start = std::time::Instant::now();
    let mut rules = 0;
    for _ in 0..n {
        rules += std::hint::black_box(score(&en, &rec)).rules.len();
    }
    let per = start.elapsed() / n;
    eprintln!(
        "{} rules on {} turns: {per:?} per call, {:.0} rules/s",
        en.rules().count(),
        rec.turns.len(),
        rules as f64 / (per.as_secs_f64() * n as f64)
    );
    assert!(per < std::time::Duration::from_millis(1), "{per:?}");
}
