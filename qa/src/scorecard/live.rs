//! Realtime rules during the call: each new turn re-checks the call so far, and a realtime rule that fails
//! becomes one alert (never two for the same rule in the same call).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::record::{CallRecord, Speaker, Turn};

use super::eval::Ctx;
use super::model::{Scorecard, Severity};
use super::result::Outcome;

/// A realtime rule failed during a call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub scorecard: String,
    pub rule: String,
    pub title: String,
    pub severity: Severity,
    pub speaker: Option<Speaker>,
    /// The words (or measure) that failed the rule.
    pub quote: String,
    /// Milliseconds from the call's arrival.
    pub start_ms: u64,
    pub end_ms: u64,
    /// Raised from a partial transcript (the final may still differ).
    pub from_partial: bool,
    pub note: String,
}

/// Realtime checking for one call.
pub struct LiveScorer {
    cards: Vec<Arc<Scorecard>>,
    /// Per card, per rule: already alerted (non-realtime rules are marked from the start).
    done: Vec<Vec<bool>>,
}

impl LiveScorer {
    pub fn new(cards: Vec<Arc<Scorecard>>) -> LiveScorer {
        let done = cards
            .iter()
            .map(|c| c.rules.iter().map(|r| r.realtime.is_none()).collect())
            .collect();
        Self { cards, done }
    }

    /// `call` holds the turns so far (the new final turn included when `!partial`); `turn` is the new turn
    /// (final or partial; added to the call's turns for this check when the call does not hold it yet).
    /// Returns alerts for realtime rules that now fail and have not alerted yet.
    pub fn on_turn(&mut self, call: &CallRecord, turn: &Turn, partial: bool) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let held = call.turns.iter().any(|t| {
            t.speaker == turn.speaker && t.start_ms == turn.start_ms && t.text == turn.text
        });
        let extra = (!held).then_some(turn);
        for (card, done) in self.cards.iter().zip(self.done.iter_mut()) {
            let pending = |i: usize| !done[i] && (!partial || card.rules[i].partials);
            if !(0..card.rules.len()).any(pending) {
                continue;
            }
            let ctx = Ctx::new(card, call, extra, true);
            for (i, rule) in card.rules.iter().enumerate() {
                if done[i] || (partial && !rule.partials) {
                    continue;
                }
                let Some(severity) = rule.realtime else {
                    continue;
                };
                let e = ctx.eval(rule);
                if e.outcome != Outcome::Fail {
                    continue;
                }
                done[i] = true;
                // The most recent evidence is what tipped the rule over.
                let latest = e.evidence.iter().max_by_key(|v| v.start_ms);
                alerts.push(Alert {
                    scorecard: card.name.clone(),
                    rule: rule.id.clone(),
                    title: rule.title.clone(),
                    severity,
                    speaker: latest.map_or(Some(turn.speaker), |v| v.speaker),
                    quote: latest.map_or_else(|| turn.text.clone(), |v| v.quote.clone()),
                    start_ms: latest.map_or(turn.start_ms, |v| v.start_ms),
                    end_ms: latest.map_or(turn.end_ms, |v| v.end_ms),
                    from_partial: partial,
                    note: e.note,
                });
            }
        }
        alerts
    }
}
