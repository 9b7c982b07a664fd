//! Sans-IO dialog logic: given what happened on the call and `now`, decide what the call says and does next.
//!
//! [`flow`] runs declarative call flows (TOML, modelled on VoiceXML's form interpretation) as a pure state
//! machine tested on simulated event streams; [`nlu`] is the understanding layer it builds on: intents from
//! (misheard) recogniser text, and entities (digit strings, keypad collection, yes/no, amounts, dates).

pub mod flow;
pub mod nlu;

/// Why the engine ends the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangupCause {
    /// The caller was served and the goodbye was played.
    Completed,
    /// The caller never chose anything.
    NoInput,
    /// Too many invalid choices.
    TooManyErrors,
}

impl HangupCause {
    pub fn as_str(self) -> &'static str {
        match self {
            HangupCause::Completed => "completed",
            HangupCause::NoInput => "no_input",
            HangupCause::TooManyErrors => "too_many_errors",
        }
    }
}
