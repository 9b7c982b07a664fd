//! Durable storage of calls, transcripts, scores, reviews and alerts.
//!
//! One implementation of every query over the [`Db`] seam, so SQLite (the embedded default) and PostgreSQL
//! behave alike and one test suite covers both. Schema changes are numbered migrations applied at open.

mod db;
pub mod pg_server;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use db::{Db, Dialect, Param, Row, Val};
pub use postgres::PgDb;
pub use sqlite::SqliteDb;

use crate::record::{
    Acoustics, CallRecord, CallSummary, Speaker, TimelineEvent, Turn, TurnSegment,
};
use crate::scorecard::{Alert, Outcome, ScoreResult, Severity};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory for {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database has schema version {found}, newer than this voxgate ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The connection URL is deliberately not part of the message: it may hold a password.
    #[error("cannot connect to PostgreSQL: {0}")]
    PgConnect(#[source] ::postgres::Error),
    #[error("PostgreSQL error: {0}")]
    Pg(#[from] ::postgres::Error),
    #[error("stored JSON is corrupt: {0}")]
    Json(#[from] serde_json::Error),
    #[error("stored turn has unknown speaker {0:?}")]
    UnknownSpeaker(String),
    #[error("stored value {0:?} is not a rule outcome")]
    UnknownOutcome(String),
    #[error("column {index} is not {expected}")]
    Column {
        index: usize,
        expected: &'static str,
    },
    #[error("call {call} was not scored by scorecard {scorecard:?}")]
    NotScored { call: i64, scorecard: String },
    #[error("scorecard {scorecard:?} has no rule {rule:?}")]
    UnknownRule { scorecard: String, rule: String },
    #[error("rule {rule:?} is already {outcome}")]
    NoChange { rule: String, outcome: &'static str },
    #[error("a review needs a comment saying why")]
    EmptyComment,
}

/// Where calls are stored.
#[derive(Clone, Debug)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    /// Not `Display`: the URL may hold a password.
    Postgres(String),
}

impl StoreLocation {
    /// For logs: the SQLite path, or just "PostgreSQL".
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite(p) => p.display().to_string(),
            StoreLocation::Postgres(_) => "PostgreSQL".to_string(),
        }
    }
}

/// Which calls a listing returns, newest first. Every field narrows the list.
#[derive(Clone, Debug, Default)]
pub struct CallFilter {
    pub call_id: Option<String>,
    /// Only calls still in progress (`true`) or finished (`false`).
    pub active: Option<bool>,
    /// Started at or after (epoch ms).
    pub from_ms: Option<i64>,
    /// Started before (epoch ms).
    pub to_ms: Option<i64>,
    pub min_score: Option<f32>,
    pub max_score: Option<f32>,
    pub passed: Option<bool>,
    /// Failed this rule (after reviews).
    pub rule_failed: Option<String>,
    pub agent: Option<String>,
    pub intent: Option<String>,
    /// `Some("any")`: calls with any alert; `Some(rule)`: with an alert of that rule.
    pub alert: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

/// A reviewer's change of one rule's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub id: i64,
    pub call: i64,
    pub scorecard: String,
    pub rule: String,
    /// The outcome before this review (the scorecard's, or an earlier review's).
    pub previous: Outcome,
    pub outcome: Outcome,
    pub comment: String,
    pub reviewer: String,
    pub at_ms: i64,
}

/// What a reviewer asks to change.
#[derive(Clone, Debug)]
pub struct ReviewDraft {
    pub scorecard: String,
    pub rule: String,
    pub outcome: Outcome,
    pub comment: String,
    pub reviewer: String,
    pub at_ms: i64,
}

/// A call's result for one scorecard: as reviewed now, with the original kept and the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredScore {
    /// Rule outcomes after reviews, scores recomputed.
    pub result: ScoreResult,
    /// The scorecard's own result, unchanged by reviews.
    pub original: ScoreResult,
    pub pass_mark: f32,
    pub scored_at_ms: i64,
    /// Every review of this call's rules on this scorecard, oldest first.
    pub reviews: Vec<Review>,
}

/// An alert as stored: numbered, tied to its call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    pub id: i64,
    /// Store id of the call.
    pub call: i64,
    /// SIP Call-ID.
    pub call_id: String,
    pub raised_at_ms: i64,
    #[serde(flatten)]
    pub alert: Alert,
}

/// Which alerts a listing returns, newest first.
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    pub call: Option<i64>,
    /// Only alerts with a larger id (for catching up after a reconnect).
    pub after_id: Option<i64>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub severity: Option<Severity>,
    pub limit: u32,
}

/// Figures for the dashboards, over calls started in a period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub calls: u64,
    pub finished: u64,
    pub scored: u64,
    pub average_score: Option<f64>,
    pub passed: u64,
    /// Scored calls per 10-point band: `[0, 10)`, …, `[90, 100]`.
    pub score_histogram: Vec<u64>,
    pub top_failed_rules: Vec<FailedRule>,
    pub intents: Vec<Count>,
    pub contained: u64,
    pub handed_off: u64,
    /// Contained / (contained + handed off).
    pub containment_rate: Option<f64>,
    /// Answer to hang-up, over finished answered calls.
    pub average_handle_ms: Option<f64>,
    pub alerts: u64,
    pub alerts_by_severity: Vec<Count>,
    /// (start of the hour, epoch ms) → alerts raised in it.
    pub alerts_per_hour: Vec<HourCount>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedRule {
    pub scorecard: String,
    pub rule: String,
    pub title: String,
    pub calls: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub name: String,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HourCount {
    pub hour_ms: i64,
    pub count: u64,
}

/// Ordered migrations; index + 1 is the schema version after applying it. `{ID}`, `{INT}` and `{REAL}` are
/// the dialect's auto-increment key, integer and float types.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE calls (
    id             {ID},
    call_id        TEXT NOT NULL,
    from_uri       TEXT NOT NULL,
    to_uri         TEXT NOT NULL,
    remote_addr    TEXT NOT NULL,
    transport      TEXT NOT NULL,
    codec          TEXT NOT NULL DEFAULT '',
    started_at_ms  {INT} NOT NULL,
    answered_at_ms {INT},
    ended_at_ms    {INT},
    end_reason     TEXT,
    digits         TEXT NOT NULL DEFAULT '',
    recording_path TEXT,
    media_stats    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX calls_call_id ON calls(call_id);
CREATE INDEX calls_started ON calls(started_at_ms);
CREATE TABLE call_events (
    call        {INT} NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    seq         {INT} NOT NULL,
    at_ms       {INT} NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (call, seq)
);
"#,
    r#"
CREATE TABLE call_turns (
    call        {INT} NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    seq         {INT} NOT NULL,
    speaker     TEXT NOT NULL,
    start_ms    {INT} NOT NULL,
    end_ms      {INT} NOT NULL,
    text        TEXT NOT NULL,
    confidence  {REAL},
    interrupted {INT} NOT NULL DEFAULT 0,
    segments    TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (call, seq)
);
"#,
    r#"
ALTER TABLE calls ADD COLUMN dialog TEXT NOT NULL DEFAULT '{}';
"#,
    r#"
ALTER TABLE call_turns ADD COLUMN acoustics TEXT;
ALTER TABLE calls ADD COLUMN language TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN intent TEXT;
ALTER TABLE calls ADD COLUMN agent TEXT;
ALTER TABLE calls ADD COLUMN contained {INT};
ALTER TABLE calls ADD COLUMN score {REAL};
ALTER TABLE calls ADD COLUMN passed {INT};
ALTER TABLE calls ADD COLUMN alerts {INT} NOT NULL DEFAULT 0;
CREATE INDEX calls_open ON calls(id) WHERE ended_at_ms IS NULL;
CREATE INDEX calls_ended ON calls(ended_at_ms);
CREATE INDEX calls_score ON calls(score);
CREATE TABLE call_scores (
    call         {INT} NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    scorecard    TEXT NOT NULL,
    seq          {INT} NOT NULL,
    version      TEXT NOT NULL,
    pass_mark    {REAL} NOT NULL,
    original     TEXT NOT NULL,
    effective    TEXT NOT NULL,
    score        {REAL} NOT NULL,
    passed       {INT} NOT NULL,
    scored_at_ms {INT} NOT NULL,
    PRIMARY KEY (call, scorecard)
);
CREATE TABLE rule_results (
    call      {INT} NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    scorecard TEXT NOT NULL,
    rule      TEXT NOT NULL,
    title     TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    PRIMARY KEY (call, scorecard, rule)
);
CREATE INDEX rule_results_outcome ON rule_results(rule, outcome);
CREATE TABLE reviews (
    id        {ID},
    call      {INT} NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    scorecard TEXT NOT NULL,
    rule      TEXT NOT NULL,
    previous  TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    comment   TEXT NOT NULL,
    reviewer  TEXT NOT NULL,
    at_ms     {INT} NOT NULL
);
CREATE INDEX reviews_call ON reviews(call);
CREATE TABLE alerts (
    id           {ID},
    call         {INT} NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    call_id      TEXT NOT NULL,
    raised_at_ms {INT} NOT NULL,
    scorecard    TEXT NOT NULL,
    rule         TEXT NOT NULL,
    title        TEXT NOT NULL,
    severity     TEXT NOT NULL,
    speaker      TEXT,
    quote        TEXT NOT NULL,
    start_ms     {INT} NOT NULL,
    end_ms       {INT} NOT NULL,
    from_partial {INT} NOT NULL,
    note         TEXT NOT NULL
);
CREATE INDEX alerts_call ON alerts(call);
CREATE INDEX alerts_time ON alerts(raised_at_ms);
"#,
];

fn migration_sql(sql: &str, dialect: Dialect) -> String {
    let (id, int, real) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "REAL"),
        Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", "BIGINT", "DOUBLE PRECISION"),
    };
    sql.replace("{ID}", id)
        .replace("{INT}", int)
        .replace("{REAL}", real)
}

/// The call store over one database connection.
pub struct Store {
    db: Box<dyn Db>,
}

impl Store {
    /// Opens (creating if needed) the store and brings its schema up to date.
    pub fn open_at(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => Self::open(path),
            StoreLocation::Postgres(url) => {
                let mut pg = PgDb::connect(url)?;
                // Several boxes may start together against one database.
                pg.lock_migrations()?;
                let migrated = Self::with_db(Box::new(pg));
                match migrated {
                    Ok(mut store) => {
                        // Unlocking needs the concrete type; the lock is also released when the session ends.
                        store.db.batch("SELECT pg_advisory_unlock_all()")?;
                        Ok(store)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Opens (creating if needed) a SQLite store.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::with_db(Box::new(SqliteDb::open(path)?))
    }

    /// An in-memory SQLite store for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::with_db(Box::new(SqliteDb::open_in_memory()?))
    }

    /// Wraps a connection and migrates its schema.
    pub fn with_db(db: Box<dyn Db>) -> Result<Self, StoreError> {
        let mut store = Self { db };
        store.migrate()?;
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version = self.db.schema_version()?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported,
            });
        }
        let dialect = self.db.dialect();
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            self.transaction(|db| {
                db.batch(&migration_sql(sql, dialect))?;
                db.set_schema_version(i as i64 + 1)
            })?;
        }
        Ok(())
    }

    /// Runs `f` in one transaction (SQLite: `BEGIN IMMEDIATE`, so concurrent writers queue instead of
    /// failing half-way); rolls back on error.
    fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let begin = match self.db.dialect() {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        };
        self.db.batch(begin)?;
        match f(self.db.as_mut()) {
            Ok(v) => {
                self.db.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.db.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Records a call as it arrives so the call list shows it while it is in progress. Returns its id.
    pub fn insert_call(&mut self, rec: &CallRecord) -> Result<i64, StoreError> {
        let rows = self.db.query(
            "INSERT INTO calls (call_id, from_uri, to_uri, remote_addr, transport, codec, started_at_ms,
                                answered_at_ms, ended_at_ms, end_reason, digits, recording_path, media_stats,
                                language)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            &[
                rec.call_id.as_str().into(),
                rec.from_uri.as_str().into(),
                rec.to_uri.as_str().into(),
                rec.remote_addr.as_str().into(),
                rec.transport.as_str().into(),
                rec.codec.as_str().into(),
                rec.started_at_ms.into(),
                rec.answered_at_ms.into(),
                rec.ended_at_ms.into(),
                rec.end_reason.clone().into(),
                rec.digits.as_str().into(),
                rec.recording_path.clone().into(),
                rec.media_stats.to_string().into(),
                rec.language.as_str().into(),
            ],
        )?;
        rows.first()
            .ok_or(StoreError::Column {
                index: 0,
                expected: "the new id",
            })?
            .int(0)
    }

    /// Writes the whole record (fields, timeline, turns) in one transaction.
    pub fn save_call(&mut self, rec: &CallRecord) -> Result<(), StoreError> {
        let dialog = serde_json::to_string(&rec.dialog)?;
        let intent = rec.dialog.intent.as_ref().map(|i| i.name.clone());
        let agent = rec.dialog.handoff.as_ref().and_then(|h| h.agent.clone());
        let mut turns = Vec::with_capacity(rec.turns.len());
        for t in &rec.turns {
            let acoustics = match &t.acoustics {
                Some(a) => Some(serde_json::to_string(a)?),
                None => None,
            };
            turns.push((serde_json::to_string(&t.segments)?, acoustics));
        }
        self.transaction(|db| {
            db.execute(
                "UPDATE calls SET codec = ?, answered_at_ms = ?, ended_at_ms = ?, end_reason = ?, digits = ?,
                                  recording_path = ?, media_stats = ?, dialog = ?, language = ?, intent = ?,
                                  agent = ?, contained = ?
                 WHERE id = ?",
                &[
                    rec.codec.as_str().into(),
                    rec.answered_at_ms.into(),
                    rec.ended_at_ms.into(),
                    rec.end_reason.clone().into(),
                    rec.digits.as_str().into(),
                    rec.recording_path.clone().into(),
                    rec.media_stats.to_string().into(),
                    dialog.into(),
                    rec.language.as_str().into(),
                    intent.into(),
                    agent.into(),
                    rec.dialog.contained.into(),
                    rec.id.into(),
                ],
            )?;
            db.execute("DELETE FROM call_events WHERE call = ?", &[rec.id.into()])?;
            for (seq, ev) in rec.timeline.iter().enumerate() {
                db.execute(
                    "INSERT INTO call_events (call, seq, at_ms, kind, detail) VALUES (?, ?, ?, ?, ?)",
                    &[
                        rec.id.into(),
                        (seq as i64).into(),
                        (ev.at_ms as i64).into(),
                        ev.kind.as_str().into(),
                        ev.detail.as_str().into(),
                    ],
                )?;
            }
            db.execute("DELETE FROM call_turns WHERE call = ?", &[rec.id.into()])?;
            for (seq, (t, (segments, acoustics))) in rec.turns.iter().zip(turns).enumerate() {
                db.execute(
                    "INSERT INTO call_turns (call, seq, speaker, start_ms, end_ms, text, confidence, interrupted,
                                             segments, acoustics)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    &[
                        rec.id.into(),
                        (seq as i64).into(),
                        t.speaker.as_str().into(),
                        (t.start_ms as i64).into(),
                        (t.end_ms as i64).into(),
                        t.text.as_str().into(),
                        t.confidence.map(f64::from).into(),
                        t.interrupted.into(),
                        segments.into(),
                        acoustics.into(),
                    ],
                )?;
            }
            Ok(())
        })
    }

    pub fn get_call(&mut self, id: i64) -> Result<Option<CallRecord>, StoreError> {
        let rows = self.db.query(
            "SELECT id, call_id, from_uri, to_uri, remote_addr, transport, codec, started_at_ms,
                    answered_at_ms, ended_at_ms, end_reason, digits, recording_path, media_stats, dialog, language
             FROM calls WHERE id = ?",
            &[id.into()],
        )?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let mut rec = CallRecord {
            id: r.int(0)?,
            call_id: r.text(1)?,
            from_uri: r.text(2)?,
            to_uri: r.text(3)?,
            remote_addr: r.text(4)?,
            transport: r.text(5)?,
            codec: r.text(6)?,
            started_at_ms: r.int(7)?,
            answered_at_ms: r.opt_int(8)?,
            ended_at_ms: r.opt_int(9)?,
            end_reason: r.opt_text(10)?,
            digits: r.text(11)?,
            recording_path: r.opt_text(12)?,
            media_stats: serde_json::from_str(&r.text(13)?)?,
            timeline: Vec::new(),
            turns: Vec::new(),
            dialog: serde_json::from_str(&r.text(14)?)?,
            language: r.text(15)?,
        };
        for r in self.db.query(
            "SELECT at_ms, kind, detail FROM call_events WHERE call = ? ORDER BY seq",
            &[id.into()],
        )? {
            rec.timeline.push(TimelineEvent {
                at_ms: r.int(0)?.max(0) as u64,
                kind: r.text(1)?,
                detail: r.text(2)?,
            });
        }
        for r in self.db.query(
            "SELECT speaker, start_ms, end_ms, text, confidence, interrupted, segments, acoustics
             FROM call_turns WHERE call = ? ORDER BY seq",
            &[id.into()],
        )? {
            let speaker = r.text(0)?;
            let Some(speaker) = Speaker::from_name(&speaker) else {
                return Err(StoreError::UnknownSpeaker(speaker));
            };
            let segments: Vec<TurnSegment> = serde_json::from_str(&r.text(6)?)?;
            let acoustics: Option<Acoustics> = match r.opt_text(7)? {
                Some(a) => Some(serde_json::from_str(&a)?),
                None => None,
            };
            rec.turns.push(Turn {
                speaker,
                start_ms: r.int(1)?.max(0) as u64,
                end_ms: r.int(2)?.max(0) as u64,
                text: r.text(3)?,
                confidence: r.opt_real(4)?.map(|c| c as f32),
                interrupted: r.bool(5)?,
                segments,
                acoustics,
            });
        }
        Ok(Some(rec))
    }

    /// The `WHERE` clause and its parameters for a filter.
    fn where_clause(f: &CallFilter) -> (String, Vec<Param>) {
        let mut conds: Vec<&str> = Vec::new();
        let mut params: Vec<Param> = Vec::new();
        if let Some(c) = &f.call_id {
            conds.push("call_id = ?");
            params.push(c.as_str().into());
        }
        match f.active {
            Some(true) => conds.push("ended_at_ms IS NULL"),
            Some(false) => conds.push("ended_at_ms IS NOT NULL"),
            None => {}
        }
        if let Some(v) = f.from_ms {
            conds.push("started_at_ms >= ?");
            params.push(v.into());
        }
        if let Some(v) = f.to_ms {
            conds.push("started_at_ms < ?");
            params.push(v.into());
        }
        if let Some(v) = f.min_score {
            conds.push("score >= ?");
            params.push(f64::from(v).into());
        }
        if let Some(v) = f.max_score {
            conds.push("score <= ?");
            params.push(f64::from(v).into());
        }
        if let Some(v) = f.passed {
            conds.push("passed = ?");
            params.push(v.into());
        }
        if let Some(rule) = &f.rule_failed {
            conds.push(
                "EXISTS (SELECT 1 FROM rule_results r WHERE r.call = calls.id AND r.rule = ? AND r.outcome = 'fail')",
            );
            params.push(rule.as_str().into());
        }
        if let Some(v) = &f.agent {
            conds.push("agent = ?");
            params.push(v.as_str().into());
        }
        if let Some(v) = &f.intent {
            conds.push("intent = ?");
            params.push(v.as_str().into());
        }
        match f.alert.as_deref() {
            None => {}
            Some("any") => conds.push("alerts > 0"),
            Some(rule) => {
                conds
                    .push("EXISTS (SELECT 1 FROM alerts a WHERE a.call = calls.id AND a.rule = ?)");
                params.push(rule.into());
            }
        }
        let sql = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        (sql, params)
    }

    pub fn list_calls(&mut self, filter: &CallFilter) -> Result<Vec<CallSummary>, StoreError> {
        let limit = if filter.limit == 0 {
            100
        } else {
            filter.limit.min(10_000)
        };
        let (cond, mut params) = Self::where_clause(filter);
        params.push(i64::from(limit).into());
        params.push(i64::from(filter.offset).into());
        let sql = format!(
            "SELECT id, call_id, from_uri, to_uri, started_at_ms, answered_at_ms, ended_at_ms, end_reason, digits,
                    CASE WHEN recording_path IS NULL THEN 0 ELSE 1 END, language, intent, agent, contained, score,
                    passed, alerts
             FROM calls{cond} ORDER BY id DESC LIMIT ? OFFSET ?"
        );
        self.db
            .query(&sql, &params)?
            .iter()
            .map(|r| {
                Ok(CallSummary {
                    id: r.int(0)?,
                    call_id: r.text(1)?,
                    from_uri: r.text(2)?,
                    to_uri: r.text(3)?,
                    started_at_ms: r.int(4)?,
                    answered_at_ms: r.opt_int(5)?,
                    ended_at_ms: r.opt_int(6)?,
                    end_reason: r.opt_text(7)?,
                    digits: r.text(8)?,
                    has_recording: r.bool(9)?,
                    language: r.text(10)?,
                    intent: r.opt_text(11)?,
                    agent: r.opt_text(12)?,
                    contained: r.opt_bool(13)?,
                    score: r.opt_real(14)?.map(|s| s as f32),
                    passed: r.opt_bool(15)?,
                    alerts: r.int(16)?.clamp(0, i64::from(u32::MAX)) as u32,
                })
            })
            .collect()
    }

    /// How many calls the filter matches (ignoring limit and offset).
    pub fn count_calls(&mut self, filter: &CallFilter) -> Result<u64, StoreError> {
        let (cond, params) = Self::where_clause(filter);
        let rows = self
            .db
            .query(&format!("SELECT COUNT(*) FROM calls{cond}"), &params)?;
        Ok(rows.first().map_or(Ok(0), |r| r.int(0))?.max(0) as u64)
    }

    /// Failed rules (after reviews) of each call, for exports.
    pub fn failed_rules(&mut self, call: i64) -> Result<Vec<String>, StoreError> {
        self.db
            .query(
                "SELECT rule FROM rule_results WHERE call = ? AND outcome = 'fail' ORDER BY scorecard, rule",
                &[call.into()],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
    }

    /// Marks calls left without an end time by a crash or power cut, so they never look active forever.
    pub fn close_orphans(&mut self, now_ms: i64) -> Result<usize, StoreError> {
        Ok(self.db.execute(
            "UPDATE calls SET ended_at_ms = ?, end_reason = 'interrupted' WHERE ended_at_ms IS NULL",
            &[now_ms.into()],
        )? as usize)
    }

    /// Stores a call's scores (one per scorecard, in order; the first is the call's headline score),
    /// replacing earlier ones. Reviews made before are applied again to rules that still exist.
    pub fn save_scores(
        &mut self,
        call: i64,
        scores: &[(ScoreResult, f32)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let reviews = self.reviews(call)?;
        self.transaction(|db| {
            db.execute("DELETE FROM call_scores WHERE call = ?", &[call.into()])?;
            db.execute("DELETE FROM rule_results WHERE call = ?", &[call.into()])?;
            for (seq, (original, pass_mark)) in scores.iter().enumerate() {
                let mine: Vec<&Review> = reviews
                    .iter()
                    .filter(|r| r.scorecard == original.scorecard)
                    .collect();
                let effective = apply_reviews(original, &mine, *pass_mark);
                db.execute(
                    "INSERT INTO call_scores (call, scorecard, seq, version, pass_mark, original, effective, score,
                                              passed, scored_at_ms)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    &[
                        call.into(),
                        original.scorecard.as_str().into(),
                        (seq as i64).into(),
                        original.version.as_str().into(),
                        f64::from(*pass_mark).into(),
                        serde_json::to_string(original)?.into(),
                        serde_json::to_string(&effective)?.into(),
                        f64::from(effective.score).into(),
                        effective.passed.into(),
                        now_ms.into(),
                    ],
                )?;
                for r in &effective.rules {
                    db.execute(
                        "INSERT INTO rule_results (call, scorecard, rule, title, outcome) VALUES (?, ?, ?, ?, ?)",
                        &[
                            call.into(),
                            original.scorecard.as_str().into(),
                            r.rule.as_str().into(),
                            r.title.as_str().into(),
                            outcome_name(r.outcome).into(),
                        ],
                    )?;
                }
                if seq == 0 {
                    set_headline(db, call, &effective)?;
                }
            }
            Ok(())
        })
    }

    fn reviews(&mut self, call: i64) -> Result<Vec<Review>, StoreError> {
        self.db
            .query(
                "SELECT id, call, scorecard, rule, previous, outcome, comment, reviewer, at_ms
                 FROM reviews WHERE call = ? ORDER BY id",
                &[call.into()],
            )?
            .iter()
            .map(review_of)
            .collect()
    }

    /// The call's scores, in scorecard order, each with its original and its reviews.
    pub fn get_scores(&mut self, call: i64) -> Result<Vec<StoredScore>, StoreError> {
        let reviews = self.reviews(call)?;
        self.db
            .query(
                "SELECT original, effective, pass_mark, scored_at_ms FROM call_scores WHERE call = ? ORDER BY seq",
                &[call.into()],
            )?
            .iter()
            .map(|r| {
                let original: ScoreResult = serde_json::from_str(&r.text(0)?)?;
                let result: ScoreResult = serde_json::from_str(&r.text(1)?)?;
                let reviews = reviews
                    .iter()
                    .filter(|v| v.scorecard == original.scorecard)
                    .cloned()
                    .collect();
                Ok(StoredScore {
                    result,
                    original,
                    pass_mark: r.real(2)? as f32,
                    scored_at_ms: r.int(3)?,
                    reviews,
                })
            })
            .collect()
    }

    /// A reviewer changes one rule's outcome: the original result stays, the review joins the audit trail,
    /// and the call's score is recomputed. Refused when the call was not scored by that scorecard, the rule
    /// is not in it, the outcome would not change, or no comment is given.
    pub fn add_review(&mut self, call: i64, draft: &ReviewDraft) -> Result<Review, StoreError> {
        if draft.comment.trim().is_empty() {
            return Err(StoreError::EmptyComment);
        }
        self.transaction(|db| {
            let rows = db.query(
                "SELECT effective, pass_mark, seq FROM call_scores WHERE call = ? AND scorecard = ?",
                &[call.into(), draft.scorecard.as_str().into()],
            )?;
            let Some(row) = rows.first() else {
                return Err(StoreError::NotScored {
                    call,
                    scorecard: draft.scorecard.clone(),
                });
            };
            let mut effective: ScoreResult = serde_json::from_str(&row.text(0)?)?;
            let pass_mark = row.real(1)? as f32;
            let seq = row.int(2)?;
            let Some(rule) = effective.rules.iter_mut().find(|r| r.rule == draft.rule) else {
                return Err(StoreError::UnknownRule {
                    scorecard: draft.scorecard.clone(),
                    rule: draft.rule.clone(),
                });
            };
            let previous = rule.outcome;
            if previous == draft.outcome {
                return Err(StoreError::NoChange {
                    rule: draft.rule.clone(),
                    outcome: outcome_name(previous),
                });
            }
            rule.outcome = draft.outcome;
            effective.recompute(pass_mark);
            let id = db
                .query(
                    "INSERT INTO reviews (call, scorecard, rule, previous, outcome, comment, reviewer, at_ms)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    &[
                        call.into(),
                        draft.scorecard.as_str().into(),
                        draft.rule.as_str().into(),
                        outcome_name(previous).into(),
                        outcome_name(draft.outcome).into(),
                        draft.comment.as_str().into(),
                        draft.reviewer.as_str().into(),
                        draft.at_ms.into(),
                    ],
                )?
                .first()
                .ok_or(StoreError::Column {
                    index: 0,
                    expected: "the new id",
                })?
                .int(0)?;
            db.execute(
                "UPDATE call_scores SET effective = ?, score = ?, passed = ? WHERE call = ? AND scorecard = ?",
                &[
                    serde_json::to_string(&effective)?.into(),
                    f64::from(effective.score).into(),
                    effective.passed.into(),
                    call.into(),
                    draft.scorecard.as_str().into(),
                ],
            )?;
            db.execute(
                "UPDATE rule_results SET outcome = ? WHERE call = ? AND scorecard = ? AND rule = ?",
                &[
                    outcome_name(draft.outcome).into(),
                    call.into(),
                    draft.scorecard.as_str().into(),
                    draft.rule.as_str().into(),
                ],
            )?;
            if seq == 0 {
                set_headline(db, call, &effective)?;
            }
            Ok(Review {
                id,
                call,
                scorecard: draft.scorecard.clone(),
                rule: draft.rule.clone(),
                previous,
                outcome: draft.outcome,
                comment: draft.comment.clone(),
                reviewer: draft.reviewer.clone(),
                at_ms: draft.at_ms,
            })
        })
    }

    /// Stores a live alert and counts it on its call.
    pub fn insert_alert(
        &mut self,
        call: i64,
        call_id: &str,
        alert: &Alert,
        raised_at_ms: i64,
    ) -> Result<StoredAlert, StoreError> {
        let id = self.transaction(|db| {
            let id = db
                .query(
                    "INSERT INTO alerts (call, call_id, raised_at_ms, scorecard, rule, title, severity, speaker,
                                         quote, start_ms, end_ms, from_partial, note)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    &[
                        call.into(),
                        call_id.into(),
                        raised_at_ms.into(),
                        alert.scorecard.as_str().into(),
                        alert.rule.as_str().into(),
                        alert.title.as_str().into(),
                        severity_name(alert.severity).into(),
                        alert.speaker.map(Speaker::as_str).into(),
                        alert.quote.as_str().into(),
                        (alert.start_ms as i64).into(),
                        (alert.end_ms as i64).into(),
                        alert.from_partial.into(),
                        alert.note.as_str().into(),
                    ],
                )?
                .first()
                .ok_or(StoreError::Column {
                    index: 0,
                    expected: "the new id",
                })?
                .int(0)?;
            db.execute(
                "UPDATE calls SET alerts = alerts + 1 WHERE id = ?",
                &[call.into()],
            )?;
            Ok(id)
        })?;
        Ok(StoredAlert {
            id,
            call,
            call_id: call_id.to_string(),
            raised_at_ms,
            alert: alert.clone(),
        })
    }

    pub fn list_alerts(&mut self, f: &AlertFilter) -> Result<Vec<StoredAlert>, StoreError> {
        let mut conds: Vec<&str> = Vec::new();
        let mut params: Vec<Param> = Vec::new();
        if let Some(c) = f.call {
            conds.push("call = ?");
            params.push(c.into());
        }
        if let Some(v) = f.after_id {
            conds.push("id > ?");
            params.push(v.into());
        }
        if let Some(v) = f.from_ms {
            conds.push("raised_at_ms >= ?");
            params.push(v.into());
        }
        if let Some(v) = f.to_ms {
            conds.push("raised_at_ms < ?");
            params.push(v.into());
        }
        if let Some(s) = f.severity {
            conds.push("severity = ?");
            params.push(severity_name(s).into());
        }
        let cond = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let limit = if f.limit == 0 {
            100
        } else {
            f.limit.min(10_000)
        };
        params.push(i64::from(limit).into());
        let sql = format!(
            "SELECT id, call, call_id, raised_at_ms, scorecard, rule, title, severity, speaker, quote, start_ms,
                    end_ms, from_partial, note
             FROM alerts{cond} ORDER BY id DESC LIMIT ?"
        );
        self.db
            .query(&sql, &params)?
            .iter()
            .map(|r| {
                let speaker = match r.opt_text(8)? {
                    Some(s) => Some(Speaker::from_name(&s).ok_or(StoreError::UnknownSpeaker(s))?),
                    None => None,
                };
                let severity = r.text(7)?;
                Ok(StoredAlert {
                    id: r.int(0)?,
                    call: r.int(1)?,
                    call_id: r.text(2)?,
                    raised_at_ms: r.int(3)?,
                    alert: Alert {
                        scorecard: r.text(4)?,
                        rule: r.text(5)?,
                        title: r.text(6)?,
                        severity: severity_of(&severity)
                            .ok_or(StoreError::UnknownOutcome(severity))?,
                        speaker,
                        quote: r.text(9)?,
                        start_ms: r.int(10)?.max(0) as u64,
                        end_ms: r.int(11)?.max(0) as u64,
                        from_partial: r.bool(12)?,
                        note: r.text(13)?,
                    },
                })
            })
            .collect()
    }

    /// Dashboard figures over calls started in `[from_ms, to_ms)` (either end open).
    pub fn dashboard(
        &mut self,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<Dashboard, StoreError> {
        let filter = CallFilter {
            from_ms,
            to_ms,
            ..Default::default()
        };
        let (cond, params) = Self::where_clause(&filter);
        let and = if cond.is_empty() { " WHERE" } else { " AND" };
        let mut d = Dashboard::default();
        let one = |rows: Vec<Row>| rows.into_iter().next().unwrap_or_default();
        let r = one(self.db.query(
            &format!(
                "SELECT COUNT(*),
                        CAST(SUM(CASE WHEN ended_at_ms IS NULL THEN 0 ELSE 1 END) AS BIGINT),
                        CAST(SUM(CASE WHEN score IS NULL THEN 0 ELSE 1 END) AS BIGINT),
                        CAST(AVG(score) AS DOUBLE PRECISION),
                        CAST(SUM(CASE WHEN passed = 1 THEN 1 ELSE 0 END) AS BIGINT),
                        CAST(SUM(CASE WHEN contained = 1 THEN 1 ELSE 0 END) AS BIGINT),
                        CAST(SUM(CASE WHEN contained = 0 THEN 1 ELSE 0 END) AS BIGINT),
                        CAST(SUM(alerts) AS BIGINT)
                 FROM calls{cond}"
            ),
            &params,
        )?);
        let count =
            |i: usize| -> Result<u64, StoreError> { Ok(r.opt_int(i)?.unwrap_or(0).max(0) as u64) };
        d.calls = count(0)?;
        d.finished = count(1)?;
        d.scored = count(2)?;
        d.average_score = r.opt_real(3)?;
        d.passed = count(4)?;
        d.contained = count(5)?;
        d.handed_off = count(6)?;
        d.alerts = count(7)?;
        let decided = d.contained + d.handed_off;
        d.containment_rate = (decided > 0).then(|| d.contained as f64 / decided as f64);
        d.average_handle_ms = one(self.db.query(
            &format!(
                "SELECT CAST(AVG(ended_at_ms - answered_at_ms) AS DOUBLE PRECISION) FROM calls{cond}{and}
                 answered_at_ms IS NOT NULL AND ended_at_ms IS NOT NULL"
            ),
            &params,
        )?)
        .opt_real(0)?;
        d.score_histogram = vec![0; 10];
        for r in self.db.query(
            &format!(
                "SELECT CASE WHEN score >= 90 THEN 9 WHEN score >= 80 THEN 8 WHEN score >= 70 THEN 7
                             WHEN score >= 60 THEN 6 WHEN score >= 50 THEN 5 WHEN score >= 40 THEN 4
                             WHEN score >= 30 THEN 3 WHEN score >= 20 THEN 2 WHEN score >= 10 THEN 1 ELSE 0 END,
                        COUNT(*)
                 FROM calls{cond}{and} score IS NOT NULL GROUP BY 1"
            ),
            &params,
        )? {
            let band = r.int(0)?.clamp(0, 9) as usize;
            d.score_histogram[band] = r.int(1)?.max(0) as u64;
        }
        for r in self.db.query(
            &format!(
                "SELECT r.scorecard, r.rule, MAX(r.title), COUNT(*) FROM rule_results r
                 WHERE r.outcome = 'fail' AND r.call IN (SELECT id FROM calls{cond})
                 GROUP BY r.scorecard, r.rule ORDER BY 4 DESC, 2 LIMIT 10"
            ),
            &params,
        )? {
            d.top_failed_rules.push(FailedRule {
                scorecard: r.text(0)?,
                rule: r.text(1)?,
                title: r.text(2)?,
                calls: r.int(3)?.max(0) as u64,
            });
        }
        for r in self.db.query(
            &format!(
                "SELECT intent, COUNT(*) FROM calls{cond}{and} intent IS NOT NULL GROUP BY intent ORDER BY 2 DESC, 1"
            ),
            &params,
        )? {
            d.intents.push(Count {
                name: r.text(0)?,
                count: r.int(1)?.max(0) as u64,
            });
        }
        let in_calls = format!(" WHERE call IN (SELECT id FROM calls{cond})");
        for r in self.db.query(
            &format!(
                "SELECT severity, COUNT(*) FROM alerts{in_calls} GROUP BY severity ORDER BY 2 DESC, 1"
            ),
            &params,
        )? {
            d.alerts_by_severity.push(Count {
                name: r.text(0)?,
                count: r.int(1)?.max(0) as u64,
            });
        }
        for r in self.db.query(
            &format!(
                "SELECT (raised_at_ms / 3600000) * 3600000, COUNT(*) FROM alerts{in_calls} GROUP BY 1 ORDER BY 1"
            ),
            &params,
        )? {
            d.alerts_per_hour.push(HourCount {
                hour_ms: r.int(0)?,
                count: r.int(1)?.max(0) as u64,
            });
        }
        Ok(d)
    }

    /// Retention: deletes up to `batch` calls that ended before `cutoff_ms` (turns, scores, reviews and
    /// alerts go with them) and returns their recording paths for the caller to delete.
    pub fn purge_ended_before(
        &mut self,
        cutoff_ms: i64,
        batch: u32,
    ) -> Result<Vec<(i64, Option<String>)>, StoreError> {
        self.transaction(|db| {
            let rows = db.query(
                "SELECT id, recording_path FROM calls WHERE ended_at_ms IS NOT NULL AND ended_at_ms < ?
                 ORDER BY id LIMIT ?",
                &[cutoff_ms.into(), i64::from(batch.max(1)).into()],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let id = r.int(0)?;
                db.execute("DELETE FROM calls WHERE id = ?", &[id.into()])?;
                out.push((id, r.opt_text(1)?));
            }
            Ok(out)
        })
    }
}

/// The call row's headline score columns follow its first scorecard.
fn set_headline(db: &mut dyn Db, call: i64, result: &ScoreResult) -> Result<(), StoreError> {
    db.execute(
        "UPDATE calls SET score = ?, passed = ? WHERE id = ?",
        &[
            f64::from(result.score).into(),
            result.passed.into(),
            call.into(),
        ],
    )?;
    Ok(())
}

/// The original result with the latest review of each rule applied.
fn apply_reviews(original: &ScoreResult, reviews: &[&Review], pass_mark: f32) -> ScoreResult {
    let mut latest: BTreeMap<&str, Outcome> = BTreeMap::new();
    for r in reviews {
        latest.insert(r.rule.as_str(), r.outcome);
    }
    let mut out = original.clone();
    if latest.is_empty() {
        return out;
    }
    for rule in &mut out.rules {
        if let Some(o) = latest.get(rule.rule.as_str()) {
            rule.outcome = *o;
        }
    }
    out.recompute(pass_mark);
    out
}

fn review_of(r: &Row) -> Result<Review, StoreError> {
    let outcome = |i: usize| -> Result<Outcome, StoreError> {
        let s = r.text(i)?;
        outcome_of(&s).ok_or(StoreError::UnknownOutcome(s))
    };
    Ok(Review {
        id: r.int(0)?,
        call: r.int(1)?,
        scorecard: r.text(2)?,
        rule: r.text(3)?,
        previous: outcome(4)?,
        outcome: outcome(5)?,
        comment: r.text(6)?,
        reviewer: r.text(7)?,
        at_ms: r.int(8)?,
    })
}

pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::NotApplicable => "not_applicable",
    }
}

pub fn outcome_of(s: &str) -> Option<Outcome> {
    [Outcome::Pass, Outcome::Fail, Outcome::NotApplicable]
        .into_iter()
        .find(|o| outcome_name(*o) == s)
}

pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

pub fn severity_of(s: &str) -> Option<Severity> {
    [Severity::Info, Severity::Warning, Severity::Critical]
        .into_iter()
        .find(|v| severity_name(*v) == s)
}
