//! Scorecards: declarative QA rules (TOML) evaluated on every call, post-call ([`score`]) and live
//! ([`LiveScorer`]).
//!
//! A scorecard is a TOML file (bundled: `scorecards/bank.en.toml`, `scorecards/bank.zh.toml`). Loading
//! ([`Scorecard::load`], [`Scorecard::parse`], [`ScorecardSet::load_dir`]) validates everything and reports
//! every problem as `file:line:column: message`; it is a pure function of the file text, so a reload gives
//! the same card, and `version` (a short FNV hash of the text) tells which version scored a stored result.
//!
//! # File format
//!
//! ```toml
//! [scorecard]
//! name = "bank_en"            # unique across the scorecard directory
//! title = "Bank hotline"      # default: name
//! language = "en"             # calls whose language's primary subtag matches (en-GB → en)
//! pass_mark = 80              # 0..=100, default 80
//! fuzzy = 0.85                # default word similarity for phrases, 0.5..=1 (1 = exact words)
//!
//! [[section]]                 # optional; rules without `section` go to an implicit "general"
//! name = "opening"
//! title = "Greeting and closing"
//!
//! [[rule]]
//! id = "greeting"             # unique in the card
//! title = "Staff greeted the caller within the first 10 s"
//! section = "opening"
//! kind = "phrase"             # see below
//! weight = 10                 # default 1; 0 = shown and alerted, never scored
//! critical = false            # a failure auto-fails the call
//! realtime = false            # also checked live; alerts once per call when it fails
//! severity = "warning"        # realtime only: info | warning | critical (default warning)
//! partials = true             # realtime only: also check partial transcripts (default: true for
//!                             # rules that match phrases, false otherwise)
//! window = { first_secs = 10 }
//! ```
//!
//! Speakers (`speaker`, `interrupted`, `near_speaker`, matcher `speaker`): `caller`, `agent`, `voxgate`,
//! `staff` (voxgate or agent: whoever speaks for the bank), `any`.
//!
//! ## Rule kinds
//!
//! | kind | keys | passes when | not applicable when |
//! |---|---|---|---|
//! | `phrase` | `speaker` (any), `phrases`, `expect` = present\|absent, phrase options | a phrase is said (present) / none is (absent) | present: no transcript at all |
//! | `sequence` | `first`, `then` (lists of matchers) | the first `then` occurrence has a `first` occurrence before it | nothing of `then` happened |
//! | `count` | `match` (matchers), `min`, `max`, `merge_secs` (3) | the number of occurrences is within bounds | — |
//! | `silence` | `max_gap_secs`, `max_silence_pct`, `exclude_waiting` (true) | no gap between turns is longer / the share of silence between the first and last word is at most | fewer than two turns |
//! | `talk_over` | `speaker` (staff: who interrupts), `interrupted` (any), `max_count`, `max_total_secs`, `min_overlap_ms` (500) | `speaker` started talking over someone else at most that often / long | `speaker` never spoke |
//! | `speech_rate` | `speaker` (staff), `min_wpm`, `max_wpm`, `min_speech_secs` (10) | words per minute of speech over the speaker's turns is within bounds | less speech than `min_speech_secs` |
//! | `duration` | `measure` = call\|hold\|queue, `min_secs`, `max_secs` | answer→hang-up, time on hold (re-INVITE hold→active), or time queued (queued→agent answered) is within bounds | call: never answered |
//! | `sentiment` | `speaker` (caller), `negative_at`, `arousal_above`, `trend` = not_worsening\|improving, `trend_delta` (0.3) | no turn's lexical score is at or below `negative_at` and no turn's arousal above `arousal_above`; the trend holds | the speaker never spoke; a trend alone with under 4 turns, or `improving` for a caller who did not start unhappy |
//! | `transfer_reason` | `min_chars` (3) | the hand-off carries a reason | no hand-off |
//!
//! Matchers (in `first`, `then`, `match`) are inline tables: a phrase matcher `{ speaker = "caller",
//! phrases = [...], <phrase options> }` or an event matcher `{ event = "verification", detail =
//! "verified", source = "dialog" }` (`detail`: case-insensitive substring of the event's detail;
//! `source`: `dialog` events, `timeline` events, or `any`). A count counts a phrase at most once per turn,
//! and an occurrence from another matcher within `merge_secs` after the previous one counts with it (the
//! caller saying "agent" and the dialog's `command agent` event are one request).
//!
//! Phrase options: `fuzzy` (per-rule word similarity), `count_negated` (default false: "I did not say
//! safe account" does not count), `near = [...]` with `near_words = N` (another phrase within N words in
//! the same turn) or `near_secs = N` (said by `near_speaker`, default the rule's speaker, within N s).
//!
//! ## Windows
//!
//! `window` restricts what a rule looks at (phrases by where they start, turns by their start, gaps and
//! overlaps clipped to it); a sequence's window applies to `then` only. Exactly one of: `first_secs`,
//! `last_secs` (before the call's end), `from_secs`/`to_secs`, `from_pct`/`to_pct` (of anchor..end).
//! `anchor` = `answer` (default; arrival when never answered), `arrival`, `speaker` (the rule's speaker's
//! first turn: "the agent greeted within 10 s of joining"), or a speaker name. A rule whose anchor
//! speaker never spoke is not applicable; with `last_secs` only a speaker anchor is allowed, for just that
//! ("the agent closed politely", on calls where an agent spoke). `duration` and `transfer_reason` take no window.
//!
//! # Matching
//!
//! Text is compared as tokens: Latin words lowercased without punctuation or apostrophes ("Don't" =
//! "dont"), every Han character its own token (so Mandarin phrases match character sequences). Words
//! match fuzzily because whisper on phone audio writes sound-alikes: a heard word counts when its
//! similarity reaches the threshold (default 0.85): identical 1.0, an inflection ("fees", "sued", "suing")
//! 0.9, the same sound-alike key with close spelling ("save"/"safe") 0.85, otherwise 1 − edit distance /
//! length. Words under 3 letters and Han characters must be identical; words must start alike. Two heard
//! words may stand for one phrase word ("safe a count" = "safe account"), and up to two hesitations
//! ("um", "呃") inside a phrase are skipped. A match preceded within 3 tokens of its clause by a negator
//! (not, no, never, nobody, any "n't"; 不 (but not 不起/不错/不客气/不过/不好意思), 没, 别, 未, 无) is
//! negated. Traditional characters are not folded to simplified: list both forms where it matters.
//!
//! # Scoring
//!
//! Each rule passes, fails or is not applicable (N/A rules count neither way). Score = 100 × weight of
//! passed rules / weight of applicable rules (100 when none applied), per section too (`None` when none
//! applied), to one decimal. A failed `critical` rule is an auto-fail: `score` = 0 with `raw_score` kept,
//! `critical_failed` and not `passed`; otherwise `passed` = score ≥ `pass_mark`. [`ScoreResult::recompute`]
//! redoes this after a reviewer changes an outcome.
//!
//! Evidence points at words and time: turn index into `call.turns`, speaker, the matched words (or a
//! description for measures: "silence 17.2 s"), and start/end ms narrowed with whisper's segments when
//! their words line up with the turn's text, else interpolated by character position in the turn.
//! Passing rules carry evidence too (where the greeting was found), at most 5 items per rule.
//!
//! # Live
//!
//! [`LiveScorer::on_turn`] re-checks a call's realtime rules on the call so far (the call's end is the
//! latest time seen) and turns each newly failing rule into one [`Alert`]; an alert raised from a partial
//! transcript is not raised again by the final. A window counts as closed live 5 s after its end
//! (recognition lags the audio). The loader refuses `realtime = true` on rules that cannot fail before the
//! call ends: a phrase that must be present or a minimum count without a window that closes (`first_secs`
//! or `to_secs`), windows measured from the end (`last_secs`, `*_pct`), minimum durations, the share of
//! silence, speech rates and sentiment trends (whole-call averages). Alert-only checks (fraud indicators)
//! are ordinary rules with `weight = 0`, so they also show in the scorecard.
//!
//! # Performance
//!
//! Phrases are compiled once at load into a per-card vocabulary; evaluation tokenizes each turn once,
//! interns the call's words and memoizes each (heard word, card word) similarity; a bit filter on how
//! the phrases' first words start skips most tokens without comparing anything. `benches/REPORT.md`
//! (scenario 7) has the measured rules per second on stored calls;
//! `cargo test --release -p voxgate-qa bundled_card_is_fast -- --ignored --nocapture` times one card.

mod eval;
mod live;
mod load;
mod model;
mod result;
mod text;

#[cfg(test)]
mod tests;

pub use eval::score;
pub use live::{Alert, LiveScorer};
pub use load::{CardError, LoadError, Location, Problem, ScorecardSet};
pub use model::{RuleInfo, Scorecard, SectionInfo, Severity};
pub use result::{Evidence, Outcome, RuleResult, ScoreResult, SectionResult};
