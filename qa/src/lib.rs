//! Call records and their durable storage.
//!
//! Quality checking scores what is stored here, so the record is the contract between the call path and QA:
//! who called, when, how it ended, the call's timeline and where its recording is.

pub mod record;
pub mod store;

pub use record::{
    CallRecord, CallSummary, DialogEvent, DialogSummary, Handoff, IntentResult, SlotValue, Speaker,
    TimelineEvent, Turn, TurnSegment,
};
pub use store::{CallFilter, Store, StoreError};
