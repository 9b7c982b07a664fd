//! Runs a flow's backend operations ([`Op`]) against the configured [`Backend`]: the dialog names an
//! operation and its inputs; this module turns that into backend requests and the answer into flow
//! variables. Synchronous: the controller runs it on a blocking worker, never on a media thread.

use crate::{Backend, BackendError, EventKind, Pin, Request, Response};
use voxgate_dialog::flow::{BackendFailure, Op, Value};

/// Variables a result sets.
pub type Vars = Vec<(String, Value)>;

/// Runs `op` with `args` (variables by name, as the engine passed them).
pub fn run(
    backend: &dyn Backend,
    op: Op,
    args: &[(String, Value)],
) -> Result<Vars, BackendFailure> {
    // The flow was validated, but a path may reach the step without the value.
    let text = |name: &str| text_arg(args, name).ok_or(BackendFailure::Refused);
    let call = |req: &Request| backend.call(req).map_err(unavailable);
    let mut out: Vars = Vec::new();
    let mut set = |k: &str, v: Value| out.push((k.to_string(), v));
    match op {
        Op::LookupCaller => {
            let phone = text("caller")?;
            match call(&Request::LookupCaller { phone })? {
                Response::Customer(c) => {
                    set("customer_known", Value::Bool(true));
                    set("customer_id", Value::Text(c.customer_id));
                    set("customer_name", Value::Text(c.name));
                    set("vip", Value::Bool(c.vip));
                    if let Some(e) = c.recent_events.first() {
                        set("recent_event", Value::Text(event_key(e.kind).to_string()));
                    }
                }
                Response::NotFound => set("customer_known", Value::Bool(false)),
                other => return Err(unexpected(op, &other)),
            }
        }
        Op::VerifyPin => {
            let account = text("account")?;
            let pin = Pin::new(text("pin")?);
            if customer_of(backend, &account)?.is_none() {
                set("verify_result", Value::Text("unknown_account".into()));
                set("verified", Value::Bool(false));
                return Ok(out);
            }
            match call(&Request::VerifyPin { account, pin })? {
                Response::PinOk { customer_id } => {
                    set("verify_result", Value::Text("ok".into()));
                    set("verified", Value::Bool(true));
                    set("pin_verified", Value::Bool(true));
                    set("customer_id", Value::Text(customer_id.clone()));
                    if let Ok(Response::Customer(c)) = backend.call(&Request::GetCustomer {
                        customer: customer_id,
                    }) {
                        set("customer_name", Value::Text(c.name));
                        set("vip", Value::Bool(c.vip));
                    }
                }
                Response::PinWrong { attempts_left } => {
                    set("verify_result", Value::Text("wrong".into()));
                    set("verified", Value::Bool(false));
                    set("attempts_left", Value::Number(i64::from(attempts_left)));
                }
                Response::PinLocked => {
                    set("verify_result", Value::Text("locked".into()));
                    set("verified", Value::Bool(false));
                    set("attempts_left", Value::Number(0));
                }
                other => return Err(unexpected(op, &other)),
            }
        }
        Op::Balance => match call(&Request::Balance {
            account: text("account")?,
        })? {
            Response::Balance {
                amount_minor,
                currency,
            } => set(
                "balance",
                Value::Money {
                    minor_units: amount_minor,
                    currency,
                },
            ),
            other => return Err(unexpected(op, &other)),
        },
        Op::Transactions => match call(&Request::Transactions {
            account: text("account")?,
            limit: 5,
        })? {
            Response::Transactions { transactions } => {
                set(
                    "transaction_count",
                    Value::Number(transactions.len() as i64),
                );
                if let Some(t) = transactions.first() {
                    set(
                        "last_amount",
                        Value::Money {
                            minor_units: t.amount_minor.saturating_abs(),
                            currency: t.currency.clone(),
                        },
                    );
                }
            }
            other => return Err(unexpected(op, &other)),
        },
        Op::FreezeCard => {
            let customer =
                customer_of(backend, &text("account")?)?.ok_or(BackendFailure::Refused)?;
            match call(&Request::FreezeCard {
                customer,
                card_last4: None,
            })? {
                Response::CardFrozen { card_last4, .. } => {
                    set("card_last4", Value::Digits(card_last4));
                    set("card_frozen", Value::Bool(true));
                }
                other => return Err(unexpected(op, &other)),
            }
        }
        Op::ReportFraud => {
            let customer =
                customer_of(backend, &text("account")?)?.ok_or(BackendFailure::Refused)?;
            match call(&Request::ReportFraud {
                customer,
                note: "reported on the hotline".into(),
            })? {
                Response::FraudCase {
                    case_id,
                    frozen_cards,
                } => {
                    // Read out digit by digit ("FR-000007" → 0 0 0 0 0 7).
                    let digits: String = case_id.chars().filter(char::is_ascii_digit).collect();
                    set("case_id", Value::Digits(digits));
                    if let Some(last4) = frozen_cards.first() {
                        set("card_last4", Value::Digits(last4.clone()));
                    }
                    set("card_frozen", Value::Bool(!frozen_cards.is_empty()));
                }
                other => return Err(unexpected(op, &other)),
            }
        }
        // Answered by the appliance from the caller's speech, never by the bank.
        Op::VoiceprintVerify | Op::VoiceprintEnroll => return Err(BackendFailure::Refused),
    }
    Ok(out)
}

/// A textual argument (digits, text or a secret) by variable name.
pub fn text_arg(args: &[(String, Value)], name: &str) -> Option<String> {
    match args.iter().find(|(k, _)| k == name).map(|(_, v)| v) {
        Some(Value::Digits(s) | Value::Text(s) | Value::Secret(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The customer owning `account`, `None` if there is no such account.
fn customer_of(backend: &dyn Backend, account: &str) -> Result<Option<String>, BackendFailure> {
    match backend
        .call(&Request::VerifyAccount {
            account: account.to_string(),
        })
        .map_err(unavailable)?
    {
        Response::Account {
            exists: true,
            customer_id,
        } => Ok(customer_id),
        Response::Account { exists: false, .. } | Response::NotFound => Ok(None),
        other => Err(unexpected(Op::VerifyPin, &other)),
    }
}

/// Route keys the flow matches on.
fn event_key(kind: EventKind) -> &'static str {
    match kind {
        EventKind::PaymentDeclined => "declined_payment",
        EventKind::CardBlocked => "card_blocked",
        EventKind::CardFrozen => "card_frozen",
        EventKind::CardUnfrozen => "card_unfrozen",
        EventKind::PinLocked => "pin_locked",
        EventKind::FraudReported => "fraud_reported",
        EventKind::Other => "other",
    }
}

fn unavailable(e: BackendError) -> BackendFailure {
    tracing::warn!(error = %e, "backend unavailable");
    BackendFailure::Unavailable
}

/// A refusal (not allowed by phone, card choice needed) or an answer of the wrong kind.
fn unexpected(op: Op, resp: &Response) -> BackendFailure {
    tracing::info!(
        op = op.name(),
        response = resp.kind(),
        "backend refused or answered off-topic"
    );
    BackendFailure::Refused
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DemoBank;

    fn bank() -> DemoBank {
        DemoBank::open_in_memory(3).expect("demo bank")
    }

    fn arg(k: &str, v: Value) -> (String, Value) {
        (k.to_string(), v)
    }

    fn get<'a>(vars: &'a Vars, k: &str) -> Option<&'a Value> {
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v)
    }

    fn verify(b: &DemoBank, account: &str, pin: &str) -> Vars {
        run(
            b,
            Op::VerifyPin,
            &[
                arg("account", Value::Digits(account.into())),
                arg("pin", Value::Secret(pin.into())),
            ],
        )
        .expect("verify")
    }

    #[test]
    fn alices_number_predicts_her_declined_payment() {
        let b = bank();
        let v = run(
            &b,
            Op::LookupCaller,
            &[arg("caller", Value::Digits("+15550100001".into()))],
        )
        .expect("lookup");
        assert_eq!(get(&v, "customer_known"), Some(&Value::Bool(true)));
        assert_eq!(
            get(&v, "recent_event"),
            Some(&Value::Text("declined_payment".into()))
        );
        let v = run(
            &b,
            Op::LookupCaller,
            &[arg("caller", Value::Digits("+15550109999".into()))],
        )
        .expect("lookup");
        assert_eq!(get(&v, "customer_known"), Some(&Value::Bool(false)));
    }

    #[test]
    fn pin_checks_count_down_to_a_lockout() {
        let b = bank();
        let v = verify(&b, "12345678", "2580");
        assert_eq!(get(&v, "verify_result"), Some(&Value::Text("ok".into())));
        assert_eq!(
            get(&v, "customer_name"),
            Some(&Value::Text("Alice Chen".into()))
        );
        let v = verify(&b, "99999999", "2580");
        assert_eq!(
            get(&v, "verify_result"),
            Some(&Value::Text("unknown_account".into()))
        );
        let results: Vec<Option<Value>> = (0..3)
            .map(|_| get(&verify(&b, "87654321", "0000"), "verify_result").cloned())
            .collect();
        assert_eq!(
            results,
            [
                Some(Value::Text("wrong".into())),
                Some(Value::Text("wrong".into())),
                Some(Value::Text("locked".into()))
            ]
        );
        // Locked even for the right PIN.
        let v = verify(&b, "87654321", "1357");
        assert_eq!(
            get(&v, "verify_result"),
            Some(&Value::Text("locked".into()))
        );
    }

    #[test]
    fn balance_freeze_and_fraud_against_the_demo_bank() {
        let b = bank();
        let acct = [arg("account", Value::Digits("12345678".into()))];
        let v = run(&b, Op::Balance, &acct).expect("balance");
        assert_eq!(
            get(&v, "balance"),
            Some(&Value::Money {
                minor_units: 123_456,
                currency: "USD".into()
            })
        );
        let v = run(&b, Op::FreezeCard, &acct).expect("freeze");
        assert_eq!(get(&v, "card_last4"), Some(&Value::Digits("4242".into())));
        let v = run(
            &b,
            Op::ReportFraud,
            &[arg("account", Value::Digits("87654321".into()))],
        )
        .expect("fraud");
        assert!(matches!(get(&v, "case_id"), Some(Value::Digits(d)) if !d.is_empty()));
        assert_eq!(get(&v, "card_frozen"), Some(&Value::Bool(true)));
        let v = run(&b, Op::Transactions, &acct).expect("transactions");
        assert!(get(&v, "last_amount").is_some());
        // A missing input is a refusal, not a panic.
        assert_eq!(run(&b, Op::Balance, &[]), Err(BackendFailure::Refused));
    }
}
