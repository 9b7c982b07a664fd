//! Self-service banking backends the dialog engine calls.
//!
//! The dialog engine is sans-IO: it emits `InvokeBackend(request)` and the binary runs [`Backend::call`] on a
//! small worker pool, feeding the result back as an event. The trait is therefore synchronous and
//! `Send + Sync`, and [`Request`], [`Response`] and [`BackendError`] are plain `Clone + PartialEq` data so they
//! can travel inside dialog events.
//!
//! Two implementations:
//! - [`DemoBank`]: a seeded SQLite bank for demos and tests, with persistent PIN lockout.
//! - [`WebhookBackend`]: POSTs the [`Request`] JSON to the bank's own service and parses the [`Response`] JSON,
//!   so the types double as the webhook's wire format.

mod demo;
mod error;
pub mod flow_ops;
mod phone;
mod pin;
mod types;
mod webhook;

pub use demo::{DemoBank, DemoBankConfig, DEFAULT_MAX_PIN_ATTEMPTS};
pub use error::BackendError;
pub use phone::{normalize_phone, phone_digits};
pub use types::{
    AccountSummary, CardStatus, CardSummary, CustomerEvent, CustomerSummary, EventKind, Pin,
    RefusalReason, Request, Response, Transaction, TxStatus,
};
pub use webhook::{WebhookBackend, WebhookConfig};

/// A self-service backend.
///
/// Synchronous because the dialog engine already runs it off the media path on a worker thread; `Send + Sync`
/// because that pool shares one instance.
pub trait Backend: Send + Sync {
    /// Runs one request. `Ok` carries the business answer (including "not found", "wrong PIN", "refused");
    /// `Err` means the backend could not answer at all.
    fn call(&self, req: &Request) -> Result<Response, BackendError>;

    /// Short stable name for logs and metrics.
    fn name(&self) -> &'static str;
}
