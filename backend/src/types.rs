//! Requests and responses, which are also the webhook's JSON (`{"type": "verify_pin", ...}`).
//!
//! Money is integer minor units plus an ISO 4217 code (floats would misstate cents). Times are Unix
//! milliseconds UTC; the dialog engine formats them in the caller's language.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A PIN in transit. `Debug` is redacted so a request can be logged or put in a dialog event without leaking
/// it; there is deliberately no `Display`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pin(String);

impl Pin {
    pub fn new(pin: impl Into<String>) -> Self {
        Self(pin.into())
    }

    /// The digits, for the one place that must compare or send them.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

impl From<&str> for Pin {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Pin {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// What the dialog engine asks. `customer` fields are the id from `LookupCaller`, `VerifyAccount` or
/// `VerifyPin`; the engine, not the backend, decides which requests need a verified caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Caller ID → customer summary, so the greeting can use name and language. Caller ID is spoofable: it
    /// identifies, it does not authenticate.
    LookupCaller {
        phone: String,
    },
    /// The summary for a customer identified another way (account + PIN from an unknown phone).
    GetCustomer {
        customer: String,
    },
    /// Whether an account number exists; answers nothing else, so it cannot be used to mine details.
    VerifyAccount {
        account: String,
    },
    VerifyPin {
        account: String,
        pin: Pin,
    },
    Balance {
        account: String,
    },
    /// The newest `limit` transactions, newest first.
    Transactions {
        account: String,
        limit: u32,
    },
    /// `card_last4: None` means "my card" and is only answered when the customer has exactly one usable card.
    FreezeCard {
        customer: String,
        card_last4: Option<String>,
    },
    UnfreezeCard {
        customer: String,
        card_last4: Option<String>,
    },
    /// Opens a case, freezes every card and flags the accounts: the caller may be talking while the
    /// fraudster is still spending.
    ReportFraud {
        customer: String,
        note: String,
    },
}

impl Request {
    /// The JSON `type`, for logs and metrics (never log the request itself at info level: it holds data).
    pub fn kind(&self) -> &'static str {
        match self {
            Request::LookupCaller { .. } => "lookup_caller",
            Request::GetCustomer { .. } => "get_customer",
            Request::VerifyAccount { .. } => "verify_account",
            Request::VerifyPin { .. } => "verify_pin",
            Request::Balance { .. } => "balance",
            Request::Transactions { .. } => "transactions",
            Request::FreezeCard { .. } => "freeze_card",
            Request::UnfreezeCard { .. } => "unfreeze_card",
            Request::ReportFraud { .. } => "report_fraud",
        }
    }

    /// Whether `resp` is a possible answer to this request, so a confused webhook cannot, say, answer a
    /// balance query with "PIN ok" and have the dialog act on it.
    pub fn accepts(&self, resp: &Response) -> bool {
        use Response as R;
        match self {
            Request::LookupCaller { .. } | Request::GetCustomer { .. } => {
                matches!(resp, R::Customer(_) | R::NotFound)
            }
            Request::VerifyAccount { .. } => matches!(resp, R::Account { .. }),
            Request::VerifyPin { .. } => {
                matches!(
                    resp,
                    R::PinOk { .. } | R::PinWrong { .. } | R::PinLocked | R::NotFound
                )
            }
            Request::Balance { .. } => matches!(resp, R::Balance { .. } | R::NotFound),
            Request::Transactions { .. } => matches!(resp, R::Transactions { .. } | R::NotFound),
            Request::FreezeCard { .. } => matches!(
                resp,
                R::CardFrozen { .. } | R::CardChoiceNeeded { .. } | R::Refused { .. } | R::NotFound
            ),
            Request::UnfreezeCard { .. } => matches!(
                resp,
                R::CardUnfrozen { .. }
                    | R::CardChoiceNeeded { .. }
                    | R::Refused { .. }
                    | R::NotFound
            ),
            Request::ReportFraud { .. } => matches!(resp, R::FraudCase { .. } | R::NotFound),
        }
    }
}

/// The backend's answer. `NotFound` covers an unknown phone, customer, account or card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Customer(CustomerSummary),
    NotFound,
    Account {
        exists: bool,
        customer_id: Option<String>,
    },
    PinOk {
        customer_id: String,
    },
    /// `attempts_left` is at least 1; the attempt that uses up the last one answers `PinLocked`.
    PinWrong {
        attempts_left: u32,
    },
    /// Too many wrong PINs; stays locked (even for the right PIN) until the bank unlocks it.
    PinLocked,
    Balance {
        amount_minor: i64,
        currency: String,
    },
    Transactions {
        transactions: Vec<Transaction>,
    },
    CardFrozen {
        card_last4: String,
        was_already_frozen: bool,
    },
    CardUnfrozen {
        card_last4: String,
        was_already_active: bool,
    },
    /// `card_last4` was omitted but several cards qualify: ask the caller which one.
    CardChoiceNeeded {
        cards: Vec<CardSummary>,
    },
    FraudCase {
        case_id: String,
        /// Every card of the customer that is frozen now (whether or not it already was).
        frozen_cards: Vec<String>,
    },
    /// The request is understood but not allowed over the phone; the dialog should offer an agent.
    Refused {
        reason: RefusalReason,
    },
}

impl Response {
    /// The JSON `type`, for logs and error messages that must not carry customer data.
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Customer(_) => "customer",
            Response::NotFound => "not_found",
            Response::Account { .. } => "account",
            Response::PinOk { .. } => "pin_ok",
            Response::PinWrong { .. } => "pin_wrong",
            Response::PinLocked => "pin_locked",
            Response::Balance { .. } => "balance",
            Response::Transactions { .. } => "transactions",
            Response::CardFrozen { .. } => "card_frozen",
            Response::CardUnfrozen { .. } => "card_unfrozen",
            Response::CardChoiceNeeded { .. } => "card_choice_needed",
            Response::FraudCase { .. } => "fraud_case",
            Response::Refused { .. } => "refused",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The account is under a fraud investigation: cards cannot be unfrozen by the caller.
    AccountFlagged,
    /// The card is blocked by the bank (lost, stolen, compromised); freezing or unfreezing does not apply.
    CardBlocked,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSummary {
    pub customer_id: String,
    pub name: String,
    /// BCP 47 tag (`en`, `zh`): picks the prompts and the ASR/TTS voice.
    pub language: String,
    pub vip: bool,
    /// Some account is under a fraud investigation.
    pub flagged: bool,
    pub accounts: Vec<AccountSummary>,
    pub cards: Vec<CardSummary>,
    /// Newest first, a handful at most: what the caller is probably calling about.
    pub recent_events: Vec<CustomerEvent>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSummary {
    /// Only the last 4 digits, e.g. `****5678`: a caller identified by caller ID alone is not verified.
    pub masked_number: String,
    pub kind: String,
    pub currency: String,
    pub flagged: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSummary {
    pub last4: String,
    pub status: CardStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    Active,
    /// Temporarily frozen by the customer (or by a fraud report); can be unfrozen.
    Frozen,
    /// Blocked by the bank; only a replacement helps.
    Blocked,
}

impl CardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CardStatus::Active => "active",
            CardStatus::Frozen => "frozen",
            CardStatus::Blocked => "blocked",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "active" => Some(CardStatus::Active),
            "frozen" => Some(CardStatus::Frozen),
            "blocked" => Some(CardStatus::Blocked),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerEvent {
    pub at_ms: i64,
    pub kind: EventKind,
    /// Human-readable detail in the bank's words (merchant, amount, reason).
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    PaymentDeclined,
    CardBlocked,
    CardFrozen,
    CardUnfrozen,
    PinLocked,
    FraudReported,
    /// Any kind a webhook sends that this version does not know: still shown, never a parse failure.
    #[serde(other)]
    Other,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PaymentDeclined => "payment_declined",
            EventKind::CardBlocked => "card_blocked",
            EventKind::CardFrozen => "card_frozen",
            EventKind::CardUnfrozen => "card_unfrozen",
            EventKind::PinLocked => "pin_locked",
            EventKind::FraudReported => "fraud_reported",
            EventKind::Other => "other",
        }
    }

    pub fn from_name(name: &str) -> Self {
        match name {
            "payment_declined" => EventKind::PaymentDeclined,
            "card_blocked" => EventKind::CardBlocked,
            "card_frozen" => EventKind::CardFrozen,
            "card_unfrozen" => EventKind::CardUnfrozen,
            "pin_locked" => EventKind::PinLocked,
            "fraud_reported" => EventKind::FraudReported,
            _ => EventKind::Other,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub at_ms: i64,
    pub description: String,
    /// Negative for money out.
    pub amount_minor: i64,
    pub currency: String,
    pub status: TxStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    Posted,
    Pending,
    /// Attempted but refused; did not move money.
    Declined,
}

impl TxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TxStatus::Posted => "posted",
            TxStatus::Pending => "pending",
            TxStatus::Declined => "declined",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "posted" => Some(TxStatus::Posted),
            "pending" => Some(TxStatus::Pending),
            "declined" => Some(TxStatus::Declined),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_json_is_tagged_snake_case() {
        let req = Request::VerifyPin {
            account: "12345678".into(),
            pin: "2580".into(),
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"type": "verify_pin", "account": "12345678", "pin": "2580"})
        );
        let back: Request = serde_json::from_value(
            json!({"type": "freeze_card", "customer": "C1", "card_last4": null}),
        )
        .unwrap();
        assert_eq!(
            back,
            Request::FreezeCard {
                customer: "C1".into(),
                card_last4: None
            }
        );
    }

    #[test]
    fn debug_redacts_the_pin() {
        let req = Request::VerifyPin {
            account: "12345678".into(),
            pin: "2580".into(),
        };
        let dbg = format!("{req:?} {req:#?}");
        assert!(!dbg.contains("2580"), "{dbg}");
        assert!(dbg.contains("redacted"), "{dbg}");
        assert!(dbg.contains("12345678"), "{dbg}");
    }

    #[test]
    fn responses_round_trip_including_newtype_customer() {
        let summary = CustomerSummary {
            customer_id: "C1".into(),
            name: "王芳".into(),
            language: "zh".into(),
            vip: true,
            flagged: false,
            accounts: vec![AccountSummary {
                masked_number: "****2222".into(),
                kind: "checking".into(),
                currency: "CNY".into(),
                flagged: false,
            }],
            cards: vec![CardSummary {
                last4: "6666".into(),
                status: CardStatus::Active,
            }],
            recent_events: vec![],
        };
        let all = [
            Response::Customer(summary),
            Response::NotFound,
            Response::Account {
                exists: false,
                customer_id: None,
            },
            Response::PinWrong { attempts_left: 2 },
            Response::PinLocked,
            Response::Refused {
                reason: RefusalReason::AccountFlagged,
            },
        ];
        for resp in all {
            let text = serde_json::to_string(&resp).unwrap();
            assert_eq!(
                serde_json::from_str::<Response>(&text).unwrap(),
                resp,
                "{text}"
            );
        }
        let v = serde_json::to_value(Response::PinLocked).unwrap();
        assert_eq!(v, json!({"type": "pin_locked"}));
    }

    #[test]
    fn unknown_event_kinds_parse_as_other() {
        let ev: CustomerEvent =
            serde_json::from_value(json!({"at_ms": 1, "kind": "address_changed", "detail": ""}))
                .unwrap();
        assert_eq!(ev.kind, EventKind::Other);
    }

    #[test]
    fn accepts_rejects_mismatched_answers() {
        let bal = Request::Balance {
            account: "1".into(),
        };
        assert!(bal.accepts(&Response::NotFound));
        assert!(!bal.accepts(&Response::PinOk {
            customer_id: "C1".into()
        }));
    }
}
