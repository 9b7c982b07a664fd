//! Understanding layer: what the caller wants (intents) and the values they said (entities).
//!
//! Pure functions and sans-IO state only, built for whisper output on telephone audio, so every matcher
//! expects misheard words: fuzzy and sound-alike word matching, adjacent-word joins ("a count" →
//! "account"), traditional→simplified folding for Mandarin.
//!
//! * Intents: [`IntentModel`] compiled once from [`IntentSpec`]s (bundled: [`bank_intents_en`],
//!   [`bank_intents_zh`], both merged in [`bank_intents`]); [`IntentModel::classify`] ranks every intent
//!   for an n-best list and returns an intent or [`OutOfScope`] (no speech, low score, or ambiguous) so
//!   the dialog can clarify instead of guessing.
//! * Entities: [`digits`] (spoken digit strings), [`DigitCollector`] (keypad entry), [`yes_no`],
//!   [`amount`], [`date`].
//!
//! # Measured accuracy (bundled intents, default [`NluConfig`])
//!
//! * Test table (`eval.rs`, 62 utterances: the real tiny.en mishearings from the voice tests, clean
//!   requests, typical slips, out-of-scope, Mandarin simplified and traditional): **62/62 (100 %)**, both
//!   languages merged and per language (en 45/45, zh 17/17). In-sample: the table was used to write the
//!   intent sets and tune the constants. Lowest in-scope best score 0.83, highest out-of-scope 0.29, against
//!   `accept = 0.5`.
//! * Held-out recordings (`heldout.in`, 43 requests spoken by espeak-ng, band-limited to 8 kHz and
//!   transcribed by whisper tiny.en): **31/43 (72 %)** on what whisper wrote, 43/43 on the sentences as
//!   spoken. Of the 12 misses, 8 end as out-of-scope (the dialog re-asks) and 4 are accepted wrongly, all
//!   where whisper lost the meaning ("Forget it" → "Sir got it", "Yeah that's correct" → "You have not
//!   correct"). The set was not used to write the intents; the first measurement, before two generic
//!   fuzzy-matching fixes it prompted ("reasons" ≠ "person", "large" ≠ "charge"), was 31/43 and 41/43.
//! * Speed: ~55 µs per utterance in a release build for the merged set (11 intents, ~190 examples, ~160
//!   keywords), ~0.5 ms unoptimised.

mod amount;
mod bank;
mod date;
mod digits;
mod error;
mod intent;
mod numbers;
mod phonetic;
mod redact;
mod text;
mod yes_no;

#[cfg(test)]
mod eval;

pub use amount::{amount, Amount};
pub use bank::{bank_intents, bank_intents_en, bank_intents_zh, BANK_INTENTS};
pub use date::{date, Ymd};
pub use digits::{digits, Collect, DigitCollector, DigitConfig};
pub use error::NluError;
pub use intent::{
    Hypothesis, IntentModel, IntentResult, IntentScore, IntentSpec, Keyword, NluConfig, OutOfScope,
    Outcome,
};
pub use phonetic::{edit_distance, phonetic_key};
pub use redact::{redact_numbers, MIN_DIGITS as REDACT_MIN_DIGITS, REDACTED};
pub use text::{detect_script, is_han, Script};
pub use yes_no::yes_no;
