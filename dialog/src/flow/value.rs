//! Values of flow variables: what slots hold, backend results carry and prompts read out.

use std::fmt;

/// A flow variable's value. Typed, because a prompt reads a balance differently from an account number,
/// and a PIN must never be shown.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// A word-like value: an intent name, a route key ("ok", "locked"), a customer name.
    Text(String),
    /// A digit string read digit by digit (account number, card's last four).
    Digits(String),
    /// Money in minor units (cents) with an ISO 4217 code.
    Money {
        minor_units: i64,
        currency: String,
    },
    Number(i64),
    Bool(bool),
    /// A secret (PIN): passed to the backend, never shown, logged or read out.
    Secret(String),
}

impl Value {
    /// Whether a `when` condition on this value holds: set, not `false`, not empty.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Text(s) | Value::Digits(s) | Value::Secret(s) => !s.is_empty(),
            Value::Number(n) => *n != 0,
            Value::Money { .. } => true,
        }
    }

    /// The key this value selects in a `route` table or a `$var` prompt template: text and digits as they
    /// are, booleans as `true`/`false`. Secrets and money select nothing.
    pub fn key(&self) -> Option<String> {
        match self {
            Value::Text(s) | Value::Digits(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Money { .. } | Value::Secret(_) => None,
        }
    }

    /// What the call record, analytics and agent screen may show. Secrets are masked.
    pub fn display(&self) -> String {
        match self {
            Value::Text(s) | Value::Digits(s) => s.clone(),
            Value::Money {
                minor_units,
                currency,
            } => {
                let sign = if *minor_units < 0 { "-" } else { "" };
                let m = minor_units.unsigned_abs();
                format!("{sign}{}.{:02} {currency}", m / 100, m % 100)
            }
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Secret(s) => "*".repeat(s.chars().count()),
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, Value::Secret(_))
    }
}

/// Debug output is what logs see: it must not leak a secret.
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Secret(_) => write!(f, "Secret(<{} chars>)", self.display().len()),
            other => write!(f, "{}", other.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let pin = Value::Secret("2580".into());
        assert_eq!(pin.display(), "****");
        assert!(!format!("{pin:?}").contains("2580"));
        assert_eq!(pin.key(), None);
    }

    #[test]
    fn money_displays_with_cents() {
        let v = Value::Money {
            minor_units: -123_456,
            currency: "USD".into(),
        };
        assert_eq!(v.display(), "-1234.56 USD");
    }
}
