//! What supervisors watch while calls go on: the live board (one row per active call), the live transcript
//! stream (partial and final turns) and the alert stream, plus best-effort JSON POSTs (alert webhook,
//! screen pops) on their own thread.
//!
//! Producers never wait: broadcasts drop the oldest items for slow subscribers, and the POST queue is
//! bounded (a full queue drops and counts).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, watch};
use voxgate_qa::store::StoredAlert;

use crate::metrics::Metrics;

/// A turn as it happens: partial results replace each other until the final one.
#[derive(Clone, Debug, Serialize)]
pub struct LiveTurn {
    pub call_id: String,
    pub speaker: &'static str,
    /// Utterance number within the call (partials and the final of one utterance share it); 0 for prompts.
    pub utterance: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    pub partial: bool,
}

/// One active call on the supervisor board.
#[derive(Clone, Debug, Serialize)]
pub struct LiveCall {
    pub call_id: String,
    pub from_uri: String,
    pub to_uri: String,
    pub started_at_ms: i64,
    pub language: String,
    /// ringing, talking, queued, with_agent, transferring, ending.
    pub state: &'static str,
    /// The dialog form the call is in.
    pub step: Option<String>,
    pub intent: Option<String>,
    pub verification: Option<String>,
    pub agent: Option<String>,
    pub alerts: u32,
    /// The last few turns, oldest first.
    pub recent: Vec<LiveTurn>,
}

/// Channels between the call controller / store thread (producers) and the HTTP API (subscribers).
#[derive(Clone)]
pub struct LiveHub {
    pub alerts: broadcast::Sender<Arc<StoredAlert>>,
    pub turns: broadcast::Sender<Arc<LiveTurn>>,
    pub board: watch::Receiver<Arc<Vec<LiveCall>>>,
}

impl LiveHub {
    /// The hub and the board's sender (owned by the controller).
    pub fn new() -> (Self, watch::Sender<Arc<Vec<LiveCall>>>) {
        let (board_tx, board) = watch::channel(Arc::new(Vec::new()));
        let (alerts, _) = broadcast::channel(1024);
        let (turns, _) = broadcast::channel(4096);
        (
            Self {
                alerts,
                turns,
                board,
            },
            board_tx,
        )
    }
}

/// Which counters a poster bumps.
pub type Counter = fn(&Metrics) -> &AtomicU64;

/// POSTs JSON documents to one URL, one at a time, from its own thread.
#[derive(Clone)]
pub struct JsonPoster {
    tx: crossbeam_channel::Sender<serde_json::Value>,
    metrics: Arc<Metrics>,
    failed: Counter,
}

impl JsonPoster {
    /// Starts the posting thread. `ok`/`failed` are the counters for delivered and lost documents.
    pub fn spawn(
        name: &str,
        url: String,
        timeout: Duration,
        metrics: Arc<Metrics>,
        ok: Counter,
        failed: Counter,
    ) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded::<serde_json::Value>(256);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("voxgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let host = url_host(&url).to_string();
        let m = metrics.clone();
        let label = name.to_string();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                for doc in rx {
                    let result = agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .send(doc.to_string());
                    match result {
                        Ok(resp) if resp.status().is_success() => Metrics::inc(ok(&m)),
                        Ok(resp) => {
                            Metrics::inc(failed(&m));
                            tracing::warn!(target = %host, status = resp.status().as_u16(), "{label}: POST refused");
                        }
                        Err(e) => {
                            Metrics::inc(failed(&m));
                            // The URL may carry credentials: only its host goes to the log.
                            tracing::warn!(target = %host, error = %e, "{label}: POST failed");
                        }
                    }
                }
            })?;
        Ok(Self {
            tx,
            metrics,
            failed,
        })
    }

    /// Queues a document; a full queue drops it (counted as failed).
    pub fn post(&self, doc: serde_json::Value) {
        if self.tx.try_send(doc).is_err() {
            Metrics::inc((self.failed)(&self.metrics));
        }
    }
}

/// `https://user:pw@host:port/path` → `host:port`.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.rsplit('@').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn only_the_host_of_a_url_is_logged() {
        assert_eq!(
            url_host("https://u:secret@crm.example.com:8443/pop?x=1"),
            "crm.example.com:8443"
        );
        assert_eq!(url_host("http://10.0.0.9/alerts"), "10.0.0.9");
    }
}
