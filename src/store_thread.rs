//! The storage thread: owns the write connection so database syncs never stall signalling or media. It also
//! scores every finished call (after its record is durable), stores live alerts before they are announced,
//! and applies the retention setting.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::{broadcast, watch};
use voxgate_qa::scorecard::{self, Alert, ScorecardSet};
use voxgate_qa::store::{StoreLocation, StoredAlert};
use voxgate_qa::{CallRecord, Store, StoreError};

use crate::live::JsonPoster;
use crate::metrics::Metrics;

/// Retention runs this often (and at start-up).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Calls deleted per retention transaction, so a big backlog never holds the writer long.
const PURGE_BATCH: u32 = 500;

enum StoreMsg {
    /// A call arrived: make it visible in the call list.
    Insert { key: u64, record: Box<CallRecord> },
    /// A call was rejected before it started: insert it finished.
    InsertFinished { record: Box<CallRecord> },
    /// The call goes on: write what is known so far.
    Update { key: u64, record: Box<CallRecord> },
    /// The call is over: write its final record durably, then score it.
    Save { key: u64, record: Box<CallRecord> },
    /// A realtime rule failed during the call.
    Alert {
        key: u64,
        call_id: String,
        alert: Box<Alert>,
        at_ms: i64,
    },
}

#[derive(Clone)]
pub struct StoreHandle {
    tx: Sender<StoreMsg>,
}

impl StoreHandle {
    pub fn insert(&self, key: u64, record: CallRecord) {
        let _ = self.tx.send(StoreMsg::Insert {
            key,
            record: Box::new(record),
        });
    }
    pub fn insert_finished(&self, record: CallRecord) {
        let _ = self.tx.send(StoreMsg::InsertFinished {
            record: Box::new(record),
        });
    }
    /// Writes the record of a call still in progress (the agent's screen-pop reads it), keeping it open.
    pub fn update(&self, key: u64, record: CallRecord) {
        let _ = self.tx.send(StoreMsg::Update {
            key,
            record: Box::new(record),
        });
    }
    pub fn save(&self, key: u64, record: CallRecord) {
        let _ = self.tx.send(StoreMsg::Save {
            key,
            record: Box::new(record),
        });
    }
    pub fn alert(&self, key: u64, call_id: String, alert: Alert, at_ms: i64) {
        let _ = self.tx.send(StoreMsg::Alert {
            key,
            call_id,
            alert: Box::new(alert),
            at_ms,
        });
    }
}

/// What the storage thread works with besides the database.
pub struct StoreServices {
    pub metrics: Arc<Metrics>,
    pub scorecards: watch::Receiver<ScorecardSet>,
    /// Score finished calls (`[qa] enabled`).
    pub scoring: bool,
    pub alerts: broadcast::Sender<Arc<StoredAlert>>,
    pub alert_webhook: Option<JsonPoster>,
    /// `[storage] retention_days`; 0 keeps everything.
    pub retention_days: u32,
    /// Recordings are only deleted inside this directory.
    pub recording_dir: PathBuf,
}

/// Opens the store (so start-up fails clearly on a bad path or URL) and starts its thread. The thread ends,
/// after writing everything queued, when every [`StoreHandle`] is dropped.
pub fn spawn(
    location: &StoreLocation,
    services: StoreServices,
) -> Result<(StoreHandle, std::thread::JoinHandle<()>), StoreError> {
    let mut store = Store::open_at(location)?;
    let orphans = store.close_orphans(crate::calls::wall_ms())?;
    if orphans > 0 {
        tracing::warn!(
            orphans,
            "calls left open by an earlier run were marked interrupted"
        );
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let label = location.describe();
    let handle = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || run(store, rx, services, label))
        .map_err(|source| StoreError::CreateDir {
            path: PathBuf::from("<store thread>"),
            source,
        })?;
    Ok((StoreHandle { tx }, handle))
}

struct Writer {
    store: Store,
    services: StoreServices,
    /// Call key → store id, for calls inserted and not yet saved.
    ids: HashMap<u64, i64>,
    label: String,
}

fn run(store: Store, rx: Receiver<StoreMsg>, services: StoreServices, label: String) {
    let mut w = Writer {
        store,
        services,
        ids: HashMap::new(),
        label,
    };
    let mut next_retention = Instant::now();
    loop {
        if w.services.retention_days > 0 && Instant::now() >= next_retention {
            w.retention();
            next_retention = Instant::now() + RETENTION_EVERY;
        }
        let msg = if w.services.retention_days > 0 {
            match rx.recv_timeout(next_retention.saturating_duration_since(Instant::now())) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(m) => m,
                Err(_) => return,
            }
        };
        if let Err(e) = w.handle(msg) {
            Metrics::inc(&w.services.metrics.store_errors_total);
            tracing::error!(store = %w.label, error = %e, "call store write failed");
        }
    }
}

impl Writer {
    fn handle(&mut self, msg: StoreMsg) -> Result<(), StoreError> {
        match msg {
            StoreMsg::Insert { key, record } => {
                let id = self.store.insert_call(&record)?;
                self.ids.insert(key, id);
            }
            StoreMsg::InsertFinished { record } => {
                let mut rec = *record;
                rec.id = self.store.insert_call(&rec)?;
                self.store.save_call(&rec)?;
            }
            StoreMsg::Update { key, record } => {
                if let Some(id) = self.ids.get(&key) {
                    let mut rec = *record;
                    rec.id = *id;
                    self.store.save_call(&rec)?;
                }
            }
            StoreMsg::Save { key, record } => {
                let mut rec = *record;
                rec.id = match self.ids.remove(&key) {
                    Some(id) => id,
                    None => self.store.insert_call(&rec)?,
                };
                // Durable first: a crash while scoring must not lose the call.
                self.store.save_call(&rec)?;
                if self.services.scoring {
                    self.score(&rec)?;
                }
            }
            StoreMsg::Alert {
                key,
                call_id,
                alert,
                at_ms,
            } => {
                let Some(id) = self.ids.get(&key).copied() else {
                    return Ok(());
                };
                let stored = Arc::new(self.store.insert_alert(id, &call_id, &alert, at_ms)?);
                Metrics::inc(&self.services.metrics.qa_alerts_total);
                tracing::info!(
                    call = id,
                    rule = %stored.alert.rule,
                    severity = voxgate_qa::store::severity_name(stored.alert.severity),
                    "alert"
                );
                if let Some(hook) = &self.services.alert_webhook {
                    if let Ok(doc) = serde_json::to_value(stored.as_ref()) {
                        hook.post(doc);
                    }
                }
                let _ = self.services.alerts.send(stored);
            }
        }
        Ok(())
    }

    /// Scores a finished call with every scorecard of its language.
    fn score(&mut self, rec: &CallRecord) -> Result<(), StoreError> {
        let cards = self
            .services
            .scorecards
            .borrow()
            .for_language(&rec.language);
        if cards.is_empty() {
            return Ok(());
        }
        let mut results = Vec::with_capacity(cards.len());
        for card in &cards {
            let result = scorecard::score(card, rec);
            Metrics::add(
                &self.services.metrics.qa_rules_evaluated_total,
                result.rules.len() as u64,
            );
            results.push((result, card.pass_mark));
        }
        self.store
            .save_scores(rec.id, &results, crate::calls::wall_ms())?;
        Metrics::inc(&self.services.metrics.qa_calls_scored_total);
        Ok(())
    }

    fn retention(&mut self) {
        let cutoff = crate::calls::wall_ms() - i64::from(self.services.retention_days) * 86_400_000;
        loop {
            let batch = match self.store.purge_ended_before(cutoff, PURGE_BATCH) {
                Ok(b) => b,
                Err(e) => {
                    Metrics::inc(&self.services.metrics.store_errors_total);
                    tracing::error!(error = %e, "retention purge failed");
                    return;
                }
            };
            for (_, path) in &batch {
                let Some(path) = path else { continue };
                let path = PathBuf::from(path);
                if !path.starts_with(&self.services.recording_dir) {
                    tracing::warn!(path = %path.display(), "retention: recording outside the recording directory left in place");
                    continue;
                }
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "retention: cannot delete recording")
                    }
                }
            }
            Metrics::add(
                &self.services.metrics.qa_retention_purged_total,
                batch.len() as u64,
            );
            if !batch.is_empty() {
                tracing::info!(
                    calls = batch.len(),
                    "retention: purged calls older than the retention period"
                );
            }
            if (batch.len() as u32) < PURGE_BATCH {
                return;
            }
        }
    }
}
