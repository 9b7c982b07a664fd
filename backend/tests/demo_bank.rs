//! The demo bank end to end through the `Backend` trait, on real database files.

use std::path::PathBuf;
use std::sync::Arc;

use voxgate_backend::{
    Backend, CardStatus, DemoBank, DemoBankConfig, EventKind, RefusalReason, Request, Response,
    TxStatus,
};

/// A database file in the temp dir, removed (with its WAL files) before and after the test.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("voxgate-backend-{}-{name}.db", std::process::id()));
        let db = Self(path);
        db.remove();
        db
    }

    fn config(&self) -> DemoBankConfig {
        DemoBankConfig::new(&self.0)
    }

    fn open(&self) -> DemoBank {
        DemoBank::open(&self.config()).unwrap()
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

fn customer_of(bank: &DemoBank, phone: &str) -> voxgate_backend::CustomerSummary {
    match bank
        .call(&Request::LookupCaller {
            phone: phone.into(),
        })
        .unwrap()
    {
        Response::Customer(c) => c,
        other => panic!("{phone}: {other:?}"),
    }
}

fn verify_pin(bank: &DemoBank, account: &str, pin: &str) -> Response {
    bank.call(&Request::VerifyPin {
        account: account.into(),
        pin: pin.into(),
    })
    .unwrap()
}

#[test]
fn seed_has_the_three_customers() {
    let db = TempDb::new("seed");
    let bank = db.open();
    assert_eq!(bank.name(), "demo-bank");

    let alice = customer_of(&bank, "+15550100001");
    assert_eq!(alice.customer_id, "C1001");
    assert_eq!(alice.name, "Alice Chen");
    assert_eq!(alice.language, "en");
    assert!(!alice.flagged);
    assert_eq!(alice.accounts.len(), 1);
    assert_eq!(alice.accounts[0].masked_number, "****5678");
    assert_eq!(alice.accounts[0].currency, "USD");
    assert_eq!(alice.cards.len(), 1);
    assert_eq!(alice.cards[0].last4, "4242");
    assert_eq!(alice.cards[0].status, CardStatus::Active);
    assert_eq!(alice.recent_events.len(), 1);
    assert_eq!(alice.recent_events[0].kind, EventKind::PaymentDeclined);
    assert!(alice.recent_events[0].detail.contains("ShopMart"));
    assert!(alice.recent_events[0].at_ms > 0);

    let bob = customer_of(&bank, "+15550100002");
    assert_eq!((bob.name.as_str(), bob.language.as_str()), ("Bob Li", "en"));
    assert_eq!(bob.cards[0].last4, "9911");

    let wang = customer_of(&bank, "+8613800000001");
    assert_eq!((wang.name.as_str(), wang.language.as_str()), ("王芳", "zh"));
    assert_eq!(wang.accounts[0].masked_number, "****2222");
    assert_eq!(wang.cards[0].last4, "6666");

    // The summary never carries a full account number.
    let json = serde_json::to_string(&alice).unwrap();
    assert!(!json.contains("12345678"), "{json}");
}

#[test]
fn lookup_caller_normalises_and_misses_cleanly() {
    let bank = DemoBank::open_in_memory(3).unwrap();
    for phone in [
        "sip:+15550100001@carrier.example",
        "tel:+1-555-010-0001",
        "\"Alice\" <sip:+1 555 010 0001@10.0.0.1>",
        "15550100001",
    ] {
        assert_eq!(customer_of(&bank, phone).customer_id, "C1001", "{phone}");
    }
    for phone in ["+15550100009", "sip:alice@example.com", "", "anonymous"] {
        assert_eq!(
            bank.call(&Request::LookupCaller {
                phone: phone.into()
            })
            .unwrap(),
            Response::NotFound,
            "{phone}"
        );
    }
}

#[test]
fn get_customer_by_id() {
    let bank = DemoBank::open_in_memory(3).unwrap();
    match bank
        .call(&Request::GetCustomer {
            customer: "C1003".into(),
        })
        .unwrap()
    {
        Response::Customer(c) => assert_eq!(c.name, "王芳"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        bank.call(&Request::GetCustomer {
            customer: "C9999".into()
        })
        .unwrap(),
        Response::NotFound
    );
}

#[test]
fn verify_account_reveals_only_existence_and_id() {
    let bank = DemoBank::open_in_memory(3).unwrap();
    assert_eq!(
        bank.call(&Request::VerifyAccount {
            account: "1234 5678".into()
        })
        .unwrap(),
        Response::Account {
            exists: true,
            customer_id: Some("C1001".into())
        }
    );
    assert_eq!(
        bank.call(&Request::VerifyAccount {
            account: "99999999".into()
        })
        .unwrap(),
        Response::Account {
            exists: false,
            customer_id: None
        }
    );
}

#[test]
fn verify_pin_ok_wrong_and_reset() {
    let bank = DemoBank::open_in_memory(3).unwrap();
    assert_eq!(
        verify_pin(&bank, "12345678", "2580"),
        Response::PinOk {
            customer_id: "C1001".into()
        }
    );
    assert_eq!(
        verify_pin(&bank, "12345678", "0000"),
        Response::PinWrong { attempts_left: 2 }
    );
    assert_eq!(
        verify_pin(&bank, "12345678", "1111"),
        Response::PinWrong { attempts_left: 1 }
    );
    assert_eq!(bank.pin_failures("12345678").unwrap(), Some(2));
    // A correct PIN resets the counter.
    assert_eq!(
        verify_pin(&bank, "12345678", "2580"),
        Response::PinOk {
            customer_id: "C1001".into()
        }
    );
    assert_eq!(bank.pin_failures("12345678").unwrap(), Some(0));
    assert_eq!(
        verify_pin(&bank, "12345678", "0000"),
        Response::PinWrong { attempts_left: 2 }
    );
    // Other customers' PINs.
    assert_eq!(
        verify_pin(&bank, "87654321", "1357"),
        Response::PinOk {
            customer_id: "C1002".into()
        }
    );
    assert_eq!(
        verify_pin(&bank, "11112222", "4321"),
        Response::PinOk {
            customer_id: "C1003".into()
        }
    );
    // Someone else's PIN does not open Alice's account.
    assert_eq!(
        verify_pin(&bank, "12345678", "1357"),
        Response::PinWrong { attempts_left: 1 }
    );
    assert_eq!(verify_pin(&bank, "00000000", "2580"), Response::NotFound);
}

#[test]
fn pin_lockout_persists_across_reopen() {
    let db = TempDb::new("lockout");
    {
        let bank = db.open();
        assert_eq!(
            verify_pin(&bank, "87654321", "0000"),
            Response::PinWrong { attempts_left: 2 }
        );
        assert_eq!(
            verify_pin(&bank, "87654321", "0001"),
            Response::PinWrong { attempts_left: 1 }
        );
    }
    {
        // The count survived the restart: one more wrong PIN locks.
        let bank = db.open();
        assert_eq!(bank.pin_failures("87654321").unwrap(), Some(2));
        assert_eq!(verify_pin(&bank, "87654321", "0002"), Response::PinLocked);
    }
    let bank = db.open();
    // Locked even for the right PIN, and the right PIN does not reset the counter.
    assert_eq!(verify_pin(&bank, "87654321", "1357"), Response::PinLocked);
    assert_eq!(bank.pin_failures("87654321").unwrap(), Some(3));
    let bob = customer_of(&bank, "+15550100002");
    assert_eq!(bob.recent_events[0].kind, EventKind::PinLocked);
    // Staff unlock.
    assert!(bank.unlock_pin("87654321").unwrap());
    assert_eq!(
        verify_pin(&bank, "87654321", "1357"),
        Response::PinOk {
            customer_id: "C1002".into()
        }
    );
    // Other accounts were never affected.
    assert_eq!(bank.pin_failures("12345678").unwrap(), Some(0));
}

#[test]
fn configured_attempt_limit() {
    let db = TempDb::new("limit");
    let mut config = db.config();
    config.max_pin_attempts = 5;
    let bank = DemoBank::open(&config).unwrap();
    assert_eq!(bank.max_pin_attempts(), 5);
    assert_eq!(
        verify_pin(&bank, "11112222", "0000"),
        Response::PinWrong { attempts_left: 4 }
    );
}

#[test]
fn balance_in_minor_units() {
    let bank = DemoBank::open_in_memory(3).unwrap();
    let balance = |account: &str| {
        bank.call(&Request::Balance {
            account: account.into(),
        })
        .unwrap()
    };
    assert_eq!(
        balance("12345678"),
        Response::Balance {
            amount_minor: 123_456,
            currency: "USD".into()
        }
    );
    assert_eq!(
        balance("87654321"),
        Response::Balance {
            amount_minor: 8_810,
            currency: "USD".into()
        }
    );
    assert_eq!(
        balance("11112222"),
        Response::Balance {
            amount_minor: 500_000,
            currency: "CNY".into()
        }
    );
    assert_eq!(balance("1"), Response::NotFound);
}

#[test]
fn transactions_newest_first_with_declined() {
    let bank = DemoBank::open_in_memory(3).unwrap();
    let Response::Transactions { transactions } = bank
        .call(&Request::Transactions {
            account: "12345678".into(),
            limit: 3,
        })
        .unwrap()
    else {
        panic!("not transactions");
    };
    assert_eq!(transactions.len(), 3);
    assert!(transactions.windows(2).all(|w| w[0].at_ms >= w[1].at_ms));
    assert_eq!(transactions[0].description, "ShopMart Online");
    assert_eq!(transactions[0].status, TxStatus::Declined);
    assert_eq!(transactions[0].amount_minor, -24_999);
    assert_eq!(transactions[0].currency, "USD");

    let Response::Transactions { transactions } = bank
        .call(&Request::Transactions {
            account: "11112222".into(),
            limit: 100,
        })
        .unwrap()
    else {
        panic!("not transactions");
    };
    assert_eq!(transactions.len(), 3);
    assert!(transactions.iter().all(|t| t.currency == "CNY"));
    assert_eq!(
        bank.call(&Request::Transactions {
            account: "42".into(),
            limit: 5
        })
        .unwrap(),
        Response::NotFound
    );
}

#[test]
fn freeze_and_unfreeze_are_idempotent() {
    let db = TempDb::new("freeze");
    let freeze = |bank: &DemoBank, last4: Option<&str>| {
        bank.call(&Request::FreezeCard {
            customer: "C1001".into(),
            card_last4: last4.map(Into::into),
        })
        .unwrap()
    };
    let unfreeze = |bank: &DemoBank| {
        bank.call(&Request::UnfreezeCard {
            customer: "C1001".into(),
            card_last4: None,
        })
        .unwrap()
    };
    {
        let bank = db.open();
        assert_eq!(
            freeze(&bank, None),
            Response::CardFrozen {
                card_last4: "4242".into(),
                was_already_frozen: false
            }
        );
        assert_eq!(
            freeze(&bank, Some("4242")),
            Response::CardFrozen {
                card_last4: "4242".into(),
                was_already_frozen: true
            }
        );
        assert_eq!(freeze(&bank, Some("0000")), Response::NotFound);
    }
    // Still frozen after a restart: the seed did not run again.
    let bank = db.open();
    assert_eq!(
        bank.card_status("C1001", "4242").unwrap(),
        Some(CardStatus::Frozen)
    );
    let alice = customer_of(&bank, "+15550100001");
    assert_eq!(alice.cards[0].status, CardStatus::Frozen);
    assert_eq!(alice.recent_events[0].kind, EventKind::CardFrozen);
    assert_eq!(
        unfreeze(&bank),
        Response::CardUnfrozen {
            card_last4: "4242".into(),
            was_already_active: false
        }
    );
    assert_eq!(
        unfreeze(&bank),
        Response::CardUnfrozen {
            card_last4: "4242".into(),
            was_already_active: true
        }
    );
    assert_eq!(
        bank.card_status("C1001", "4242").unwrap(),
        Some(CardStatus::Active)
    );
    assert_eq!(
        bank.call(&Request::FreezeCard {
            customer: "C9999".into(),
            card_last4: None
        })
        .unwrap(),
        Response::NotFound
    );
}

#[test]
fn fraud_report_freezes_cards_and_flags_account() {
    let bank = DemoBank::open_in_memory(3).unwrap();
    assert_eq!(bank.account_flagged("87654321").unwrap(), Some(false));
    let resp = bank
        .call(&Request::ReportFraud {
            customer: "C1002".into(),
            note: "caller did not make the ATM withdrawal".into(),
        })
        .unwrap();
    let Response::FraudCase {
        case_id,
        frozen_cards,
    } = resp
    else {
        panic!("{resp:?}");
    };
    assert!(case_id.starts_with("FR-"), "{case_id}");
    assert_eq!(frozen_cards, ["9911"]);
    assert_eq!(
        bank.card_status("C1002", "9911").unwrap(),
        Some(CardStatus::Frozen)
    );
    assert_eq!(bank.account_flagged("87654321").unwrap(), Some(true));
    assert_eq!(
        bank.fraud_cases("C1002").unwrap(),
        [(
            case_id.clone(),
            "caller did not make the ATM withdrawal".to_owned()
        )]
    );
    let bob = customer_of(&bank, "+15550100002");
    assert!(bob.flagged);
    assert!(bob.accounts[0].flagged);
    assert_eq!(bob.recent_events[0].kind, EventKind::FraudReported);
    assert!(bob.recent_events[0].detail.contains(&case_id));

    // The caller cannot undo the fraud freeze by phone.
    assert_eq!(
        bank.call(&Request::UnfreezeCard {
            customer: "C1002".into(),
            card_last4: Some("9911".into())
        })
        .unwrap(),
        Response::Refused {
            reason: RefusalReason::AccountFlagged
        }
    );
    assert_eq!(
        bank.card_status("C1002", "9911").unwrap(),
        Some(CardStatus::Frozen)
    );
    // Other customers untouched.
    assert_eq!(bank.account_flagged("12345678").unwrap(), Some(false));
    assert_eq!(
        bank.card_status("C1001", "4242").unwrap(),
        Some(CardStatus::Active)
    );

    // A second report opens a second case; cards were already frozen and stay so.
    let Response::FraudCase {
        case_id: second,
        frozen_cards,
    } = bank
        .call(&Request::ReportFraud {
            customer: "C1002".into(),
            note: String::new(),
        })
        .unwrap()
    else {
        panic!("not a fraud case");
    };
    assert_ne!(second, case_id);
    assert_eq!(frozen_cards, ["9911"]);
    assert_eq!(
        bank.call(&Request::ReportFraud {
            customer: "C9999".into(),
            note: String::new()
        })
        .unwrap(),
        Response::NotFound
    );
}

#[test]
fn shared_across_threads() {
    let bank: Arc<dyn Backend> = Arc::new(DemoBank::open_in_memory(3).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let bank = Arc::clone(&bank);
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let resp = bank
                        .call(&Request::Balance {
                            account: if i % 2 == 0 { "12345678" } else { "87654321" }.into(),
                        })
                        .unwrap();
                    assert!(matches!(resp, Response::Balance { .. }));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn two_handles_on_one_file_seed_once() {
    let db = TempDb::new("twice");
    let a = db.open();
    let b = db.open();
    assert_eq!(customer_of(&a, "+15550100001").customer_id, "C1001");
    assert_eq!(customer_of(&b, "+8613800000001").customer_id, "C1003");
    // A write through one handle is seen by the other (same file, WAL).
    a.call(&Request::FreezeCard {
        customer: "C1003".into(),
        card_last4: None,
    })
    .unwrap();
    assert_eq!(
        b.card_status("C1003", "6666").unwrap(),
        Some(CardStatus::Frozen)
    );
    // Opening again did not duplicate the seed (one card, one account).
    let wang = customer_of(&b, "+8613800000001");
    assert_eq!((wang.cards.len(), wang.accounts.len()), (1, 1));
}
