use thiserror::Error;

/// What is wrong with an intent set, a threshold or a collector setting; found once, when a flow loads.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum NluError {
    #[error("no intents given")]
    NoIntents,
    #[error("intent #{index} has an empty name")]
    EmptyName { index: usize },
    #[error("intent `{intent}` is defined twice")]
    DuplicateIntent { intent: String },
    #[error("intent `{intent}` has neither examples nor keywords")]
    NoEvidence { intent: String },
    #[error("intent `{intent}`: example #{index} has no words")]
    EmptyExample { intent: String, index: usize },
    #[error(
        "intent `{intent}`: keyword #{index} has no content words (only stop-words or punctuation)"
    )]
    EmptyKeyword { intent: String, index: usize },
    #[error("intent `{intent}`: keyword #{index} weight {weight} is outside (0, 1]")]
    BadWeight {
        intent: String,
        index: usize,
        weight: f32,
    },
    #[error("{field} = {value} is outside 0..=1")]
    BadThreshold { field: &'static str, value: f32 },
    #[error("digit collector: need 1 <= max_len ({max_len}) and min_len ({min_len}) <= max_len")]
    BadDigitLengths { min_len: usize, max_len: usize },
}
