//! SQLite storage for call records.
//!
//! WAL mode so the HTTP readers never block the writer; `synchronous = FULL` because a finished call's record
//! must be durable before anything reports it.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::record::{CallRecord, CallSummary, Speaker, TimelineEvent, Turn};

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
    #[error("database {path} has schema version {found}, newer than this voxgate ({supported})")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored JSON is corrupt: {0}")]
    Json(#[from] serde_json::Error),
    #[error("stored turn has unknown speaker {0:?}")]
    UnknownSpeaker(String),
}

/// Ordered migrations; index + 1 is the schema version after applying it.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE calls (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id        TEXT NOT NULL,
    from_uri       TEXT NOT NULL,
    to_uri         TEXT NOT NULL,
    remote_addr    TEXT NOT NULL,
    transport      TEXT NOT NULL,
    codec          TEXT NOT NULL DEFAULT '',
    started_at_ms  INTEGER NOT NULL,
    answered_at_ms INTEGER,
    ended_at_ms    INTEGER,
    end_reason     TEXT,
    digits         TEXT NOT NULL DEFAULT '',
    recording_path TEXT,
    media_stats    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX calls_call_id ON calls(call_id);
CREATE INDEX calls_started ON calls(started_at_ms);
CREATE TABLE call_events (
    call        INTEGER NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (call, seq)
);
"#,
    r#"
CREATE TABLE call_turns (
    call        INTEGER NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    speaker     TEXT NOT NULL,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    text        TEXT NOT NULL,
    confidence  REAL,
    interrupted INTEGER NOT NULL DEFAULT 0,
    segments    TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (call, seq)
);
"#,
    r#"
ALTER TABLE calls ADD COLUMN dialog TEXT NOT NULL DEFAULT '{}';
"#,
];

/// Which calls a listing returns, newest first.
#[derive(Clone, Debug, Default)]
pub struct CallFilter {
    pub call_id: Option<String>,
    /// Only calls still in progress (no end time).
    pub active: Option<bool>,
    pub limit: u32,
    pub offset: u32,
}

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut store = Self { conn };
        store.configure()?;
        store.migrate(path)?;
        Ok(store)
    }

    /// An in-memory store for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let mut store = Self {
            conn: Connection::open_in_memory()?,
        };
        store.configure()?;
        store.migrate(Path::new(":memory:"))?;
        Ok(store)
    }

    fn configure(&self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        self.conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(())
    }

    fn migrate(&mut self, path: &Path) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::SchemaTooNew {
                path: path.to_path_buf(),
                found: version,
                supported,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Records a call as it arrives so the call list shows it while it is in progress. Returns its id.
    pub fn insert_call(&self, rec: &CallRecord) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO calls (call_id, from_uri, to_uri, remote_addr, transport, codec, started_at_ms,
                                answered_at_ms, ended_at_ms, end_reason, digits, recording_path, media_stats)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                rec.call_id,
                rec.from_uri,
                rec.to_uri,
                rec.remote_addr,
                rec.transport,
                rec.codec,
                rec.started_at_ms,
                rec.answered_at_ms,
                rec.ended_at_ms,
                rec.end_reason,
                rec.digits,
                rec.recording_path,
                rec.media_stats.to_string(),
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Writes the whole record (fields and timeline) in one transaction.
    pub fn save_call(&mut self, rec: &CallRecord) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE calls SET codec = ?2, answered_at_ms = ?3, ended_at_ms = ?4, end_reason = ?5, digits = ?6,
                              recording_path = ?7, media_stats = ?8, dialog = ?9
             WHERE id = ?1",
            params![
                rec.id,
                rec.codec,
                rec.answered_at_ms,
                rec.ended_at_ms,
                rec.end_reason,
                rec.digits,
                rec.recording_path,
                rec.media_stats.to_string(),
                serde_json::to_string(&rec.dialog)?,
            ],
        )?;
        tx.execute("DELETE FROM call_events WHERE call = ?1", params![rec.id])?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO call_events (call, seq, at_ms, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (seq, ev) in rec.timeline.iter().enumerate() {
                stmt.execute(params![
                    rec.id,
                    seq as i64,
                    ev.at_ms as i64,
                    ev.kind,
                    ev.detail
                ])?;
            }
        }
        tx.execute("DELETE FROM call_turns WHERE call = ?1", params![rec.id])?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO call_turns (call, seq, speaker, start_ms, end_ms, text, confidence, interrupted, segments)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (seq, t) in rec.turns.iter().enumerate() {
                stmt.execute(params![
                    rec.id,
                    seq as i64,
                    t.speaker.as_str(),
                    t.start_ms as i64,
                    t.end_ms as i64,
                    t.text,
                    t.confidence.map(f64::from),
                    t.interrupted,
                    serde_json::to_string(&t.segments)?,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn get_call(&self, id: i64) -> Result<Option<CallRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, call_id, from_uri, to_uri, remote_addr, transport, codec, started_at_ms,
                        answered_at_ms, ended_at_ms, end_reason, digits, recording_path, media_stats, dialog
                 FROM calls WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        CallRecord {
                            id: r.get(0)?,
                            call_id: r.get(1)?,
                            from_uri: r.get(2)?,
                            to_uri: r.get(3)?,
                            remote_addr: r.get(4)?,
                            transport: r.get(5)?,
                            codec: r.get(6)?,
                            started_at_ms: r.get(7)?,
                            answered_at_ms: r.get(8)?,
                            ended_at_ms: r.get(9)?,
                            end_reason: r.get(10)?,
                            digits: r.get(11)?,
                            recording_path: r.get(12)?,
                            media_stats: serde_json::Value::Null,
                            timeline: Vec::new(),
                            turns: Vec::new(),
                            dialog: Default::default(),
                        },
                        r.get::<_, String>(13)?,
                        r.get::<_, String>(14)?,
                    ))
                },
            )
            .optional()?;
        let Some((mut rec, stats, dialog)) = row else {
            return Ok(None);
        };
        rec.media_stats = serde_json::from_str(&stats)?;
        rec.dialog = serde_json::from_str(&dialog)?;
        let mut stmt = self
            .conn
            .prepare("SELECT at_ms, kind, detail FROM call_events WHERE call = ?1 ORDER BY seq")?;
        rec.timeline = stmt
            .query_map(params![id], |r| {
                Ok(TimelineEvent {
                    at_ms: r.get::<_, i64>(0)?.max(0) as u64,
                    kind: r.get(1)?,
                    detail: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT speaker, start_ms, end_ms, text, confidence, interrupted, segments
             FROM call_turns WHERE call = ?1 ORDER BY seq",
        )?;
        let rows = stmt
            .query_map(params![id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<f64>>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (speaker, start, end, text, confidence, interrupted, segments) in rows {
            let Some(speaker) = Speaker::from_name(&speaker) else {
                return Err(StoreError::UnknownSpeaker(speaker));
            };
            rec.turns.push(Turn {
                speaker,
                start_ms: start.max(0) as u64,
                end_ms: end.max(0) as u64,
                text,
                confidence: confidence.map(|c| c as f32),
                interrupted,
                segments: serde_json::from_str(&segments)?,
            });
        }
        Ok(Some(rec))
    }

    pub fn list_calls(&self, filter: &CallFilter) -> Result<Vec<CallSummary>, StoreError> {
        let limit = if filter.limit == 0 {
            100
        } else {
            filter.limit.min(1000)
        };
        let active = filter.active.map(i64::from);
        let mut stmt = self.conn.prepare(
            "SELECT id, call_id, from_uri, to_uri, started_at_ms, answered_at_ms, ended_at_ms, end_reason, digits,
                    recording_path IS NOT NULL
             FROM calls
             WHERE (?1 IS NULL OR call_id = ?1)
               AND (?2 IS NULL OR (?2 = 1 AND ended_at_ms IS NULL) OR (?2 = 0 AND ended_at_ms IS NOT NULL))
             ORDER BY id DESC LIMIT ?3 OFFSET ?4",
        )?;
        let rows = stmt
            .query_map(params![filter.call_id, active, limit, filter.offset], |r| {
                Ok(CallSummary {
                    id: r.get(0)?,
                    call_id: r.get(1)?,
                    from_uri: r.get(2)?,
                    to_uri: r.get(3)?,
                    started_at_ms: r.get(4)?,
                    answered_at_ms: r.get(5)?,
                    ended_at_ms: r.get(6)?,
                    end_reason: r.get(7)?,
                    digits: r.get(8)?,
                    has_recording: r.get(9)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Marks calls left without an end time by a crash or power cut, so they never look active forever.
    pub fn close_orphans(&self, now_ms: i64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "UPDATE calls SET ended_at_ms = ?1, end_reason = 'interrupted' WHERE ended_at_ms IS NULL",
            params![now_ms],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{DialogEvent, IntentResult, SlotValue, TurnSegment};

    fn sample() -> CallRecord {
        CallRecord {
            call_id: "abc@10.0.0.1".into(),
            from_uri: "sip:+15550100001@carrier".into(),
            to_uri: "sip:hotline@voxgate".into(),
            remote_addr: "127.0.0.1:5070".into(),
            transport: "udp".into(),
            started_at_ms: 1_700_000_000_000,
            media_stats: serde_json::json!({}),
            ..Default::default()
        }
    }

    #[test]
    fn insert_update_and_read_back() {
        let mut s = Store::open_in_memory().unwrap();
        let mut rec = sample();
        rec.id = s.insert_call(&rec).unwrap();
        let active = s
            .list_calls(&CallFilter {
                active: Some(true),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(active.len(), 1);
        rec.codec = "PCMU".into();
        rec.answered_at_ms = Some(rec.started_at_ms + 40);
        rec.ended_at_ms = Some(rec.started_at_ms + 9000);
        rec.end_reason = Some("remote_bye".into());
        rec.digits = "1".into();
        rec.media_stats = serde_json::json!({"packets_received": 400});
        rec.timeline = vec![
            TimelineEvent {
                at_ms: 40,
                kind: "answered".into(),
                detail: String::new(),
            },
            TimelineEvent {
                at_ms: 3000,
                kind: "dtmf".into(),
                detail: "1 rfc4733".into(),
            },
        ];
        rec.turns = vec![
            Turn {
                speaker: Speaker::Voxgate,
                start_ms: 60,
                end_ms: 2100,
                text: "Welcome to the demo bank.".into(),
                confidence: None,
                interrupted: true,
                segments: vec![],
            },
            Turn {
                speaker: Speaker::Caller,
                start_ms: 1800,
                end_ms: 3200,
                text: "My balance, please.".into(),
                confidence: Some(0.75),
                interrupted: false,
                segments: vec![TurnSegment {
                    start_ms: 1800,
                    end_ms: 3200,
                    text: "My balance, please.".into(),
                }],
            },
        ];
        rec.dialog.flow = "demo-bank".into();
        rec.dialog.intent = Some(IntentResult {
            name: "balance".into(),
            confidence: 0.9,
            margin: 0.5,
        });
        rec.dialog.slots.insert(
            "pin".into(),
            SlotValue {
                display: "****".into(),
                confidence: 1.0,
            },
        );
        rec.dialog.verification = Some("verified".into());
        rec.dialog.contained = Some(true);
        rec.dialog.events.push(DialogEvent {
            at_ms: 2000,
            kind: "intent".into(),
            detail: "balance 0.90".into(),
        });
        s.save_call(&rec).unwrap();
        assert_eq!(s.get_call(rec.id).unwrap().as_ref(), Some(&rec));
        assert!(s
            .list_calls(&CallFilter {
                active: Some(true),
                ..Default::default()
            })
            .unwrap()
            .is_empty());
        let by_id = s
            .list_calls(&CallFilter {
                call_id: Some("abc@10.0.0.1".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(by_id.len(), 1);
        assert_eq!(by_id[0].end_reason.as_deref(), Some("remote_bye"));
        assert_eq!(s.get_call(rec.id + 1).unwrap(), None);
    }

    #[test]
    fn file_database_survives_reopen_and_closes_orphans() {
        let dir = std::env::temp_dir().join(format!("voxgate-store-{}", std::process::id()));
        let path = dir.join("nested").join("calls.db");
        let _ = std::fs::remove_dir_all(&dir);
        let id = {
            let s = Store::open(&path).unwrap();
            s.insert_call(&sample()).unwrap()
        };
        let s = Store::open(&path).unwrap();
        assert_eq!(s.close_orphans(1).unwrap(), 1);
        let rec = s.get_call(id).unwrap().unwrap();
        assert_eq!(rec.end_reason.as_deref(), Some("interrupted"));
        let mode: String = s
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = std::env::temp_dir().join(format!("voxgate-store-new-{}", std::process::id()));
        let path = dir.join("calls.db");
        let _ = std::fs::remove_dir_all(&dir);
        drop(Store::open(&path).unwrap());
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
