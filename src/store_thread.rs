//! The storage thread: owns the write connection so SQLite's fsyncs never stall signalling or media.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use voxgate_qa::{CallRecord, Store, StoreError};

use crate::metrics::Metrics;

enum StoreMsg {
    /// A call arrived: make it visible in the call list.
    Insert { key: u64, record: Box<CallRecord> },
    /// A call was rejected before it started: insert it finished.
    InsertFinished { record: Box<CallRecord> },
    /// The call goes on: write what is known so far.
    Update { key: u64, record: Box<CallRecord> },
    /// The call is over: write its final record durably.
    Save { key: u64, record: Box<CallRecord> },
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
}

/// Opens the store (so start-up fails clearly on a bad path) and starts its thread. The thread ends, after
/// writing everything queued, when every [`StoreHandle`] is dropped.
pub fn spawn(
    path: &Path,
    metrics: Arc<Metrics>,
) -> Result<(StoreHandle, std::thread::JoinHandle<()>), StoreError> {
    let store = Store::open(path)?;
    let orphans = store.close_orphans(crate::calls::wall_ms())?;
    if orphans > 0 {
        tracing::warn!(
            orphans,
            "calls left open by an earlier run were marked interrupted"
        );
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let path: PathBuf = path.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || run(store, rx, metrics, path))
        .map_err(|source| StoreError::CreateDir {
            path: PathBuf::from("<store thread>"),
            source,
        })?;
    Ok((StoreHandle { tx }, handle))
}

fn run(mut store: Store, rx: Receiver<StoreMsg>, metrics: Arc<Metrics>, path: PathBuf) {
    let mut ids: HashMap<u64, i64> = HashMap::new();
    for msg in rx {
        let result = match msg {
            StoreMsg::Insert { key, record } => store.insert_call(&record).map(|id| {
                ids.insert(key, id);
            }),
            StoreMsg::InsertFinished { record } => store.insert_call(&record).and_then(|id| {
                let mut rec = *record;
                rec.id = id;
                store.save_call(&rec)
            }),
            StoreMsg::Update { key, record } => match ids.get(&key) {
                Some(id) => {
                    let mut rec = *record;
                    rec.id = *id;
                    store.save_call(&rec)
                }
                None => Ok(()),
            },
            StoreMsg::Save { key, record } => {
                let mut rec = *record;
                match ids.remove(&key) {
                    Some(id) => {
                        rec.id = id;
                        store.save_call(&rec)
                    }
                    None => store.insert_call(&rec).and_then(|id| {
                        rec.id = id;
                        store.save_call(&rec)
                    }),
                }
            }
        };
        if let Err(e) = result {
            Metrics::inc(&metrics.store_errors_total);
            tracing::error!(path = %path.display(), error = %e, "call store write failed");
        }
    }
}
