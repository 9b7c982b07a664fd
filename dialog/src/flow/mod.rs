//! Declarative call flows: TOML files modelled on VoiceXML's form interpretation, run by a sans-IO engine.
//!
//! * [`load_file`] / [`load_str`] parse and validate a flow (unknown forms, prompts, intents, variables
//!   nobody sets, unreachable forms and slots, forms that never leave), reporting every problem with
//!   `file:line:column`.
//! * [`Session::step`] runs one call: events in (with `now`), actions out, [`Session::poll_timeout`] for the
//!   next deadline. No clock, no I/O: tests drive it with simulated event streams.
//!
//! A flow is shared per call (`Arc<Flow>`): reloading builds a new one for new calls while calls in progress
//! finish on the flow they started with.

mod engine;
mod load;
mod model;
mod value;

#[cfg(test)]
mod tests;

pub use engine::{
    Action, Analytics, BackendFailure, Event, Listen, Say, Session, TransferFailure,
    TransferOutcome,
};
pub use load::{load_file, load_str, FlowError, LoadError, Location, Problem};
pub use model::{
    Command, CommandAction, Cond, Endpointing, Flow, Form, FormId, Handler, HandlerEvent, Op,
    PromptItem, Slot, SlotKind, Step, StepKind, BUILTIN_VARS,
};
pub use value::Value;
