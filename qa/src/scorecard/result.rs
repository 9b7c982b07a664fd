//! What scoring a call produces: per-rule outcomes with evidence, section and overall scores.

use serde::{Deserialize, Serialize};

use crate::record::Speaker;

/// A rule's verdict on one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// The rule does not concern this call (no transfer for a transfer rule, the agent never spoke, …); it
    /// counts neither for nor against the score.
    NotApplicable,
}

/// Where in the call a rule's verdict comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Index into the call's `turns` (`None` for timeline/dialog events and whole-call measures).
    pub turn: Option<usize>,
    pub speaker: Option<Speaker>,
    /// The matched words for phrases; a short description for measures ("silence 17.2 s").
    pub quote: String,
    /// Milliseconds from the call's arrival, narrowed to the words where the transcript allows.
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleResult {
    pub rule: String,
    pub title: String,
    pub section: String,
    pub kind: String,
    pub outcome: Outcome,
    pub weight: f32,
    pub critical: bool,
    pub evidence: Vec<Evidence>,
    /// One line for people: what was found or missed, and where.
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SectionResult {
    pub name: String,
    pub title: String,
    /// 0..=100; `None` when no rule of the section applied.
    pub score: Option<f32>,
    pub earned: f32,
    pub possible: f32,
}

/// A call scored by one scorecard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreResult {
    pub scorecard: String,
    /// The scorecard version that scored it.
    pub version: String,
    /// 0..=100: `raw_score`, or 0 when a critical rule failed.
    pub score: f32,
    /// 100 × earned weight / weight of the rules that applied (100 when none applied).
    pub raw_score: f32,
    pub passed: bool,
    pub critical_failed: bool,
    pub sections: Vec<SectionResult>,
    pub rules: Vec<RuleResult>,
}

/// Percentages are kept to one decimal: stable in JSON and in the database.
fn percent(earned: f32, possible: f32) -> f32 {
    (1000.0 * earned / possible).round() / 10.0
}

impl ScoreResult {
    /// Recomputes sections, scores and the verdict from the rules' outcomes (after a reviewer changed
    /// one). A failed critical rule is an auto-fail: `score` = 0, `passed` = false, `raw_score` kept.
    pub fn recompute(&mut self, pass_mark: f32) {
        for s in &mut self.sections {
            let (earned, possible) = self
                .rules
                .iter()
                .filter(|r| r.section == s.name)
                .fold((0.0, 0.0), tally);
            s.earned = earned;
            s.possible = possible;
            s.score = (possible > 0.0).then(|| percent(earned, possible));
        }
        let (earned, possible) = self.rules.iter().fold((0.0, 0.0), tally);
        self.raw_score = if possible > 0.0 {
            percent(earned, possible)
        } else {
            100.0
        };
        self.critical_failed = self
            .rules
            .iter()
            .any(|r| r.critical && r.outcome == Outcome::Fail);
        self.score = if self.critical_failed {
            0.0
        } else {
            self.raw_score
        };
        self.passed = !self.critical_failed && self.score >= pass_mark;
    }
}

fn tally((earned, possible): (f32, f32), r: &RuleResult) -> (f32, f32) {
    match r.outcome {
        Outcome::Pass => (earned + r.weight, possible + r.weight),
        Outcome::Fail => (earned, possible + r.weight),
        Outcome::NotApplicable => (earned, possible),
    }
}
