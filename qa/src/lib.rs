//! Call records, their durable storage, and automated quality checking.
//!
//! Quality checking scores what is stored here, so the record is the contract between the call path and QA:
//! who called, when, how it ended, the call's timeline, its turns and where its recording is.

pub mod acoustics;
pub mod record;
pub mod scorecard;
pub mod sentiment;
pub mod store;

pub use record::{
    Acoustics, CallRecord, CallSummary, DialogEvent, DialogSummary, Handoff, IntentResult,
    SlotValue, Speaker, TimelineEvent, Turn, TurnSegment,
};
pub use store::{CallFilter, Store, StoreError};
