//! A demo bank in SQLite: three seeded customers, real state changes, persistent PIN lockout.
//!
//! Same storage rules as the call records: WAL, `synchronous = FULL` (a lockout counter or a card freeze must
//! survive a power cut, or an attacker could reset PIN attempts by pulling the plug), ordered migrations keyed
//! by `user_version`. One `Mutex<Connection>` serialises calls: backend calls are a few per call-minute and
//! never on the media path, so a pool would buy nothing.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::BackendError;
use crate::phone::phone_digits;
use crate::pin::{constant_time_eq, hash_pin, new_salt};
use crate::types::{
    AccountSummary, CardStatus, CardSummary, CustomerEvent, CustomerSummary, EventKind, Pin,
    RefusalReason, Request, Response, Transaction, TxStatus,
};
use crate::Backend;

/// Wrong PINs allowed before the account locks, unless configured otherwise.
pub const DEFAULT_MAX_PIN_ATTEMPTS: u32 = 3;

/// How many transactions one request may return: a phone menu reads out a few, not a statement.
const MAX_TRANSACTIONS: u32 = 50;
/// How many recent events a customer summary carries.
const RECENT_EVENTS: u32 = 5;
/// Fraud notes come from speech recognition; cap them so one runaway transcript cannot bloat the database.
const MAX_NOTE_CHARS: usize = 2000;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE customers (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    language     TEXT NOT NULL,
    vip          INTEGER NOT NULL DEFAULT 0,
    phone_digits TEXT NOT NULL
);
CREATE INDEX customers_phone ON customers(phone_digits);
CREATE TABLE accounts (
    number        TEXT PRIMARY KEY,
    customer      TEXT NOT NULL REFERENCES customers(id),
    kind          TEXT NOT NULL,
    currency      TEXT NOT NULL,
    balance_minor INTEGER NOT NULL,
    pin_salt      BLOB NOT NULL,
    pin_hash      BLOB NOT NULL,
    pin_failures  INTEGER NOT NULL DEFAULT 0,
    flagged       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX accounts_customer ON accounts(customer);
CREATE TABLE cards (
    id       INTEGER PRIMARY KEY,
    customer TEXT NOT NULL REFERENCES customers(id),
    account  TEXT NOT NULL REFERENCES accounts(number),
    last4    TEXT NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('active', 'frozen', 'blocked'))
);
CREATE INDEX cards_customer ON cards(customer);
CREATE TABLE transactions (
    id           INTEGER PRIMARY KEY,
    account      TEXT NOT NULL REFERENCES accounts(number),
    at_ms        INTEGER NOT NULL,
    description  TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('posted', 'pending', 'declined'))
);
CREATE INDEX transactions_account ON transactions(account, at_ms);
CREATE TABLE events (
    id       INTEGER PRIMARY KEY,
    customer TEXT NOT NULL REFERENCES customers(id),
    at_ms    INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    detail   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_customer ON events(customer, at_ms);
CREATE TABLE fraud_cases (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    customer TEXT NOT NULL REFERENCES customers(id),
    at_ms    INTEGER NOT NULL,
    note     TEXT NOT NULL
);
"#];

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// One seeded customer with one account and one card. Times are ages relative to the first run, so "a recent
/// declined payment" is recent whenever the demo is first started.
struct Seed {
    id: &'static str,
    name: &'static str,
    language: &'static str,
    vip: bool,
    phone: &'static str,
    account: &'static str,
    currency: &'static str,
    balance_minor: i64,
    pin: &'static str,
    card_last4: &'static str,
    transactions: &'static [(i64, &'static str, i64, TxStatus)],
    events: &'static [(i64, EventKind, &'static str)],
}

const SEED: &[Seed] = &[
    Seed {
        id: "C1001",
        name: "Alice Chen",
        language: "en",
        vip: false,
        phone: "+15550100001",
        account: "12345678",
        currency: "USD",
        balance_minor: 123_456,
        pin: "2580",
        card_last4: "4242",
        transactions: &[
            (6 * DAY_MS, "Salary ACME Corp", 320_000, TxStatus::Posted),
            (3 * DAY_MS, "Grocery Mart", -8_640, TxStatus::Posted),
            (2 * DAY_MS, "StreamFlix subscription", -1_299, TxStatus::Posted),
            (2 * HOUR_MS, "ShopMart Online", -24_999, TxStatus::Declined),
        ],
        events: &[(
            2 * HOUR_MS,
            EventKind::PaymentDeclined,
            "ShopMart Online, 249.99 USD, card ending 4242: declined by fraud screening (unusual merchant)",
        )],
    },
    Seed {
        id: "C1002",
        name: "Bob Li",
        language: "en",
        vip: false,
        phone: "+15550100002",
        account: "87654321",
        currency: "USD",
        balance_minor: 8_810,
        pin: "1357",
        card_last4: "9911",
        transactions: &[
            (8 * DAY_MS, "Transfer from Alice Chen", 15_000, TxStatus::Posted),
            (4 * DAY_MS, "ATM withdrawal", -6_000, TxStatus::Posted),
            (DAY_MS, "Corner Coffee", -450, TxStatus::Posted),
        ],
        events: &[],
    },
    Seed {
        id: "C1003",
        name: "王芳",
        language: "zh",
        vip: true,
        phone: "+8613800000001",
        account: "11112222",
        currency: "CNY",
        balance_minor: 500_000,
        pin: "4321",
        card_last4: "6666",
        transactions: &[
            (10 * DAY_MS, "工资", 800_000, TxStatus::Posted),
            (3 * DAY_MS, "超市购物", -23_550, TxStatus::Posted),
            (5 * HOUR_MS, "话费充值", -10_000, TxStatus::Pending),
        ],
        events: &[],
    },
];

/// Where the demo bank lives and how strict it is.
#[derive(Clone, Debug)]
pub struct DemoBankConfig {
    pub path: PathBuf,
    /// Wrong PINs before lockout; 0 is treated as 1.
    pub max_pin_attempts: u32,
}

impl DemoBankConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_pin_attempts: DEFAULT_MAX_PIN_ATTEMPTS,
        }
    }
}

/// The demo bank. See the module docs for why it is a single locked connection.
pub struct DemoBank {
    conn: Mutex<Connection>,
    max_pin_attempts: u32,
}

impl DemoBank {
    /// Opens (creating, migrating and on first run seeding) the database.
    pub fn open(config: &DemoBankConfig) -> Result<Self, BackendError> {
        let path = &config.path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| BackendError::Db(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| BackendError::Db(format!("cannot open {}: {e}", path.display())))?;
        Self::init(conn, path, config.max_pin_attempts)
    }

    /// A private seeded bank that vanishes on drop, for tests.
    pub fn open_in_memory(max_pin_attempts: u32) -> Result<Self, BackendError> {
        let conn = Connection::open_in_memory().map_err(db_err)?;
        Self::init(conn, Path::new(":memory:"), max_pin_attempts)
    }

    fn init(
        mut conn: Connection,
        path: &Path,
        max_pin_attempts: u32,
    ) -> Result<Self, BackendError> {
        let ctx = |e: rusqlite::Error| BackendError::Db(format!("{}: {e}", path.display()));
        configure(&conn).map_err(ctx)?;
        migrate(&mut conn, path)?;
        if seed_if_new(&mut conn).map_err(ctx)? {
            tracing::info!(path = %path.display(), "demo bank seeded");
        }
        Ok(Self {
            conn: Mutex::new(conn),
            max_pin_attempts: max_pin_attempts.max(1),
        })
    }

    pub fn max_pin_attempts(&self) -> u32 {
        self.max_pin_attempts
    }

    /// A card's status, `None` if the customer has no card with those last digits.
    pub fn card_status(
        &self,
        customer: &str,
        last4: &str,
    ) -> Result<Option<CardStatus>, BackendError> {
        let conn = self.lock();
        let status: Option<String> = conn
            .query_row(
                "SELECT status FROM cards WHERE customer = ?1 AND last4 = ?2 ORDER BY id LIMIT 1",
                params![customer, digits_only(last4)],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        status
            .map(|s| {
                CardStatus::from_name(&s)
                    .ok_or_else(|| BackendError::Db(format!("unknown card status {s:?}")))
            })
            .transpose()
    }

    /// Whether the account is under a fraud investigation, `None` if it does not exist.
    pub fn account_flagged(&self, account: &str) -> Result<Option<bool>, BackendError> {
        self.account_field(account, "flagged")
            .map(|v| v.map(|flagged| flagged != 0))
    }

    /// Consecutive wrong PINs so far, `None` if the account does not exist.
    pub fn pin_failures(&self, account: &str) -> Result<Option<u32>, BackendError> {
        self.account_field(account, "pin_failures")
            .map(|v| v.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    /// `(case id, note)` of the customer's fraud cases, oldest first.
    pub fn fraud_cases(&self, customer: &str) -> Result<Vec<(String, String)>, BackendError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT id, note FROM fraud_cases WHERE customer = ?1 ORDER BY id")
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![customer], |r| Ok((case_id(r.get(0)?), r.get(1)?)))
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        Ok(rows)
    }

    /// Clears a PIN lockout, as the bank's staff would after verifying the customer another way. Returns
    /// whether the account exists.
    pub fn unlock_pin(&self, account: &str) -> Result<bool, BackendError> {
        let conn = self.lock();
        let n = conn
            .execute(
                "UPDATE accounts SET pin_failures = 0 WHERE number = ?1",
                params![digits_only(account)],
            )
            .map_err(db_err)?;
        Ok(n > 0)
    }

    fn account_field(
        &self,
        account: &str,
        column: &'static str,
    ) -> Result<Option<i64>, BackendError> {
        let conn = self.lock();
        conn.query_row(
            &format!("SELECT {column} FROM accounts WHERE number = ?1"),
            params![digits_only(account)],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)
    }

    /// A panic while holding the lock leaves the connection usable (an open transaction rolls back when
    /// dropped), so recover the guard instead of failing every later call.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn dispatch(&self, conn: &mut Connection, req: &Request) -> rusqlite::Result<Response> {
        match req {
            Request::LookupCaller { phone } => lookup_caller(conn, phone),
            Request::GetCustomer { customer } => {
                Ok(summary(conn, customer)?.map_or(Response::NotFound, Response::Customer))
            }
            Request::VerifyAccount { account } => verify_account(conn, account),
            Request::VerifyPin { account, pin } => self.verify_pin(conn, account, pin),
            Request::Balance { account } => balance(conn, account),
            Request::Transactions { account, limit } => transactions(conn, account, *limit),
            Request::FreezeCard {
                customer,
                card_last4,
            } => freeze_card(conn, customer, card_last4.as_deref()),
            Request::UnfreezeCard {
                customer,
                card_last4,
            } => unfreeze_card(conn, customer, card_last4.as_deref()),
            Request::ReportFraud { customer, note } => report_fraud(conn, customer, note),
        }
    }

    fn verify_pin(
        &self,
        conn: &mut Connection,
        account: &str,
        pin: &Pin,
    ) -> rusqlite::Result<Response> {
        let number = digits_only(account);
        // IMMEDIATE: read-check-increment must not interleave with another process guessing concurrently.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(String, Vec<u8>, Vec<u8>, i64)> = tx
            .query_row(
                "SELECT customer, pin_salt, pin_hash, pin_failures FROM accounts WHERE number = ?1",
                params![number],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((customer, salt, stored, failures)) = row else {
            return Ok(Response::NotFound);
        };
        let max = i64::from(self.max_pin_attempts);
        if failures >= max {
            return Ok(Response::PinLocked);
        }
        let entered: String = pin
            .expose()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if constant_time_eq(&hash_pin(&salt, &entered), &stored) {
            if failures != 0 {
                tx.execute(
                    "UPDATE accounts SET pin_failures = 0 WHERE number = ?1",
                    params![number],
                )?;
            }
            tx.commit()?;
            return Ok(Response::PinOk {
                customer_id: customer,
            });
        }
        let failures = failures + 1;
        tx.execute(
            "UPDATE accounts SET pin_failures = ?2 WHERE number = ?1",
            params![number, failures],
        )?;
        let resp = if failures >= max {
            add_event(
                &tx,
                &customer,
                EventKind::PinLocked,
                &format!(
                    "PIN locked on account {} after {failures} wrong attempts",
                    mask(&number)
                ),
            )?;
            tracing::warn!(account = %mask(&number), "PIN locked after too many wrong attempts");
            Response::PinLocked
        } else {
            Response::PinWrong {
                attempts_left: u32::try_from(max - failures).unwrap_or(0),
            }
        };
        tx.commit()?;
        Ok(resp)
    }
}

impl Backend for DemoBank {
    fn call(&self, req: &Request) -> Result<Response, BackendError> {
        let mut conn = self.lock();
        let resp = self.dispatch(&mut conn, req).map_err(db_err);
        tracing::debug!(
            backend = "demo-bank",
            request = req.kind(),
            ok = resp.is_ok(),
            "backend call"
        );
        resp
    }

    fn name(&self) -> &'static str {
        "demo-bank"
    }
}

fn db_err(e: rusqlite::Error) -> BackendError {
    BackendError::Db(e.to_string())
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), BackendError> {
    let ctx = |e: rusqlite::Error| BackendError::Db(format!("migrating {}: {e}", path.display()));
    let supported = MIGRATIONS.len() as i64;
    loop {
        // One migration per IMMEDIATE transaction, re-reading the version inside it, so two processes
        // opening the same new file cannot both apply a migration.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(ctx)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(ctx)?;
        if version > supported {
            return Err(BackendError::Db(format!(
                "{} has schema version {version}, newer than this voxgate ({supported})",
                path.display()
            )));
        }
        let Some(sql) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return Ok(());
        };
        tx.execute_batch(sql).map_err(ctx)?;
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(ctx)?;
        tx.commit().map_err(ctx)?;
    }
}

/// Seeds once per database (a `meta` marker, not "no customers yet", so state changes are never undone by a
/// reseed). Returns whether it seeded.
fn seed_if_new(conn: &mut Connection) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let seeded: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'seeded_at_ms'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if seeded.is_some() {
        return Ok(false);
    }
    let now = now_ms();
    for c in SEED {
        tx.execute(
            "INSERT INTO customers (id, name, language, vip, phone_digits) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.id, c.name, c.language, c.vip, phone_digits(c.phone)],
        )?;
        let salt = new_salt();
        tx.execute(
            "INSERT INTO accounts (number, customer, kind, currency, balance_minor, pin_salt, pin_hash)
             VALUES (?1, ?2, 'checking', ?3, ?4, ?5, ?6)",
            params![
                c.account,
                c.id,
                c.currency,
                c.balance_minor,
                &salt[..],
                &hash_pin(&salt, c.pin)[..]
            ],
        )?;
        tx.execute(
            "INSERT INTO cards (customer, account, last4, status) VALUES (?1, ?2, ?3, 'active')",
            params![c.id, c.account, c.card_last4],
        )?;
        for (age, description, amount, status) in c.transactions {
            tx.execute(
                "INSERT INTO transactions (account, at_ms, description, amount_minor, currency, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![c.account, now - age, description, amount, c.currency, status.as_str()],
            )?;
        }
        for (age, kind, detail) in c.events {
            tx.execute(
                "INSERT INTO events (customer, at_ms, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                params![c.id, now - age, kind.as_str(), detail],
            )?;
        }
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('seeded_at_ms', ?1)",
        params![now.to_string()],
    )?;
    tx.commit()?;
    Ok(true)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Account numbers and card digits arrive from speech or DTMF ("1234 5678", "12-34-56-78"); anything that is
/// not digits and separators maps to "" so it can never match.
fn digits_only(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '0'..='9' => out.push(c),
            ' ' | '\t' | '-' | '.' => {}
            _ => return String::new(),
        }
    }
    out
}

fn mask(number: &str) -> String {
    let tail: String = number
        .chars()
        .skip(number.chars().count().saturating_sub(4))
        .collect();
    format!("****{tail}")
}

fn case_id(rowid: i64) -> String {
    format!("FR-{rowid:06}")
}

fn corrupt(col: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, what.into())
}

fn add_event(
    conn: &Connection,
    customer: &str,
    kind: EventKind,
    detail: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO events (customer, at_ms, kind, detail) VALUES (?1, ?2, ?3, ?4)",
        params![customer, now_ms(), kind.as_str(), detail],
    )?;
    Ok(())
}

fn lookup_caller(conn: &Connection, phone: &str) -> rusqlite::Result<Response> {
    let key = phone_digits(phone);
    if key.is_empty() {
        return Ok(Response::NotFound);
    }
    let mut stmt = conn.prepare("SELECT id FROM customers WHERE phone_digits = ?1 LIMIT 2")?;
    let ids = stmt
        .query_map(params![key], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    // A number shared by two customers identifies neither: fall back to asking for the account.
    match ids.as_slice() {
        [id] => Ok(summary(conn, id)?.map_or(Response::NotFound, Response::Customer)),
        _ => Ok(Response::NotFound),
    }
}

fn summary(conn: &Connection, customer: &str) -> rusqlite::Result<Option<CustomerSummary>> {
    let row: Option<(String, String, bool)> = conn
        .query_row(
            "SELECT name, language, vip FROM customers WHERE id = ?1",
            params![customer],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((name, language, vip)) = row else {
        return Ok(None);
    };
    let accounts = conn
        .prepare("SELECT number, kind, currency, flagged FROM accounts WHERE customer = ?1 ORDER BY number")?
        .query_map(params![customer], |r| {
            Ok(AccountSummary {
                masked_number: mask(&r.get::<_, String>(0)?),
                kind: r.get(1)?,
                currency: r.get(2)?,
                flagged: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let cards = load_cards(conn, customer)?
        .into_iter()
        .map(|c| c.summary())
        .collect();
    let recent_events = conn
        .prepare(
            "SELECT at_ms, kind, detail FROM events WHERE customer = ?1 ORDER BY at_ms DESC, id DESC LIMIT ?2",
        )?
        .query_map(params![customer, RECENT_EVENTS], |r| {
            Ok(CustomerEvent {
                at_ms: r.get(0)?,
                kind: EventKind::from_name(&r.get::<_, String>(1)?),
                detail: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(CustomerSummary {
        customer_id: customer.to_owned(),
        name,
        language,
        vip,
        flagged: accounts.iter().any(|a| a.flagged),
        accounts,
        cards,
        recent_events,
    }))
}

fn verify_account(conn: &Connection, account: &str) -> rusqlite::Result<Response> {
    let customer: Option<String> = conn
        .query_row(
            "SELECT customer FROM accounts WHERE number = ?1",
            params![digits_only(account)],
            |r| r.get(0),
        )
        .optional()?;
    Ok(Response::Account {
        exists: customer.is_some(),
        customer_id: customer,
    })
}

fn balance(conn: &Connection, account: &str) -> rusqlite::Result<Response> {
    let row: Option<(i64, String)> = conn
        .query_row(
            "SELECT balance_minor, currency FROM accounts WHERE number = ?1",
            params![digits_only(account)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(match row {
        Some((amount_minor, currency)) => Response::Balance {
            amount_minor,
            currency,
        },
        None => Response::NotFound,
    })
}

fn transactions(conn: &Connection, account: &str, limit: u32) -> rusqlite::Result<Response> {
    let number = digits_only(account);
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM accounts WHERE number = ?1",
            params![number],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(Response::NotFound);
    }
    let transactions = conn
        .prepare(
            "SELECT at_ms, description, amount_minor, currency, status FROM transactions
             WHERE account = ?1 ORDER BY at_ms DESC, id DESC LIMIT ?2",
        )?
        .query_map(params![number, limit.min(MAX_TRANSACTIONS)], |r| {
            let status: String = r.get(4)?;
            Ok(Transaction {
                at_ms: r.get(0)?,
                description: r.get(1)?,
                amount_minor: r.get(2)?,
                currency: r.get(3)?,
                status: TxStatus::from_name(&status)
                    .ok_or_else(|| corrupt(4, format!("unknown transaction status {status:?}")))?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Response::Transactions { transactions })
}

struct CardRow {
    id: i64,
    account: String,
    last4: String,
    status: CardStatus,
}

impl CardRow {
    fn summary(&self) -> CardSummary {
        CardSummary {
            last4: self.last4.clone(),
            status: self.status,
        }
    }
}

fn load_cards(conn: &Connection, customer: &str) -> rusqlite::Result<Vec<CardRow>> {
    conn.prepare("SELECT id, account, last4, status FROM cards WHERE customer = ?1 ORDER BY id")?
        .query_map(params![customer], |r| {
            let status: String = r.get(3)?;
            Ok(CardRow {
                id: r.get(0)?,
                account: r.get(1)?,
                last4: r.get(2)?,
                status: CardStatus::from_name(&status)
                    .ok_or_else(|| corrupt(3, format!("unknown card status {status:?}")))?,
            })
        })?
        .collect()
}

/// Resolves which card a freeze/unfreeze means. Without `last4`, a card in the state the caller wants to
/// leave (`from`) wins if it is the only one ("unfreeze my card" means the frozen one), then the only usable
/// card; several candidates make the caller choose. `Err` is the answer to give instead.
fn pick_card(
    conn: &Connection,
    customer: &str,
    last4: Option<&str>,
    from: CardStatus,
) -> rusqlite::Result<Result<CardRow, Response>> {
    let mut cards = load_cards(conn, customer)?;
    let choose = |cards: Vec<&CardRow>| Response::CardChoiceNeeded {
        cards: cards.into_iter().map(CardRow::summary).collect(),
    };
    if let Some(last4) = last4 {
        let want = digits_only(last4);
        cards.retain(|c| c.last4 == want);
        return Ok(match cards.len() {
            0 => Err(Response::NotFound),
            1 => Ok(cards.remove(0)),
            _ => Err(choose(cards.iter().collect())),
        });
    }
    let preferred: Vec<usize> = (0..cards.len())
        .filter(|&i| cards[i].status == from)
        .collect();
    if let [i] = preferred[..] {
        return Ok(Ok(cards.swap_remove(i)));
    }
    if preferred.len() > 1 {
        return Ok(Err(choose(preferred.iter().map(|&i| &cards[i]).collect())));
    }
    let usable: Vec<usize> = (0..cards.len())
        .filter(|&i| cards[i].status != CardStatus::Blocked)
        .collect();
    Ok(match usable[..] {
        [i] => Ok(cards.swap_remove(i)),
        [] if cards.is_empty() => Err(Response::NotFound),
        [] => Err(Response::Refused {
            reason: RefusalReason::CardBlocked,
        }),
        _ => Err(choose(usable.iter().map(|&i| &cards[i]).collect())),
    })
}

fn set_card_status(conn: &Connection, card: &CardRow, status: CardStatus) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE cards SET status = ?2 WHERE id = ?1",
        params![card.id, status.as_str()],
    )?;
    Ok(())
}

fn freeze_card(
    conn: &mut Connection,
    customer: &str,
    last4: Option<&str>,
) -> rusqlite::Result<Response> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let card = match pick_card(&tx, customer, last4, CardStatus::Active)? {
        Ok(card) => card,
        Err(resp) => return Ok(resp),
    };
    let resp = match card.status {
        CardStatus::Blocked => Response::Refused {
            reason: RefusalReason::CardBlocked,
        },
        CardStatus::Frozen => Response::CardFrozen {
            card_last4: card.last4,
            was_already_frozen: true,
        },
        CardStatus::Active => {
            set_card_status(&tx, &card, CardStatus::Frozen)?;
            add_event(
                &tx,
                customer,
                EventKind::CardFrozen,
                &format!("Card ending {} frozen by phone", card.last4),
            )?;
            Response::CardFrozen {
                card_last4: card.last4,
                was_already_frozen: false,
            }
        }
    };
    tx.commit()?;
    Ok(resp)
}

fn unfreeze_card(
    conn: &mut Connection,
    customer: &str,
    last4: Option<&str>,
) -> rusqlite::Result<Response> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let card = match pick_card(&tx, customer, last4, CardStatus::Frozen)? {
        Ok(card) => card,
        Err(resp) => return Ok(resp),
    };
    let resp = match card.status {
        CardStatus::Blocked => Response::Refused {
            reason: RefusalReason::CardBlocked,
        },
        CardStatus::Active => Response::CardUnfrozen {
            card_last4: card.last4,
            was_already_active: true,
        },
        CardStatus::Frozen => {
            let flagged: bool = tx.query_row(
                "SELECT flagged FROM accounts WHERE number = ?1",
                params![card.account],
                |r| r.get(0),
            )?;
            if flagged {
                Response::Refused {
                    reason: RefusalReason::AccountFlagged,
                }
            } else {
                set_card_status(&tx, &card, CardStatus::Active)?;
                add_event(
                    &tx,
                    customer,
                    EventKind::CardUnfrozen,
                    &format!("Card ending {} unfrozen by phone", card.last4),
                )?;
                Response::CardUnfrozen {
                    card_last4: card.last4,
                    was_already_active: false,
                }
            }
        }
    };
    tx.commit()?;
    Ok(resp)
}

fn report_fraud(conn: &mut Connection, customer: &str, note: &str) -> rusqlite::Result<Response> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let exists: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM customers WHERE id = ?1",
            params![customer],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(Response::NotFound);
    }
    let note: String = note.chars().take(MAX_NOTE_CHARS).collect();
    tx.execute(
        "INSERT INTO fraud_cases (customer, at_ms, note) VALUES (?1, ?2, ?3)",
        params![customer, now_ms(), note],
    )?;
    let case_id = case_id(tx.last_insert_rowid());
    tx.execute(
        "UPDATE cards SET status = 'frozen' WHERE customer = ?1 AND status = 'active'",
        params![customer],
    )?;
    tx.execute(
        "UPDATE accounts SET flagged = 1 WHERE customer = ?1",
        params![customer],
    )?;
    let frozen_cards = tx
        .prepare("SELECT last4 FROM cards WHERE customer = ?1 AND status = 'frozen' ORDER BY id")?
        .query_map(params![customer], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    add_event(
        &tx,
        customer,
        EventKind::FraudReported,
        &format!("Fraud case {case_id} opened by phone; all cards frozen"),
    )?;
    tx.commit()?;
    tracing::info!(customer, case_id = %case_id, "fraud case opened");
    Ok(Response::FraudCase {
        case_id,
        frozen_cards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_card(bank: &DemoBank, customer: &str, account: &str, last4: &str, status: &str) {
        bank.lock()
            .execute(
                "INSERT INTO cards (customer, account, last4, status) VALUES (?1, ?2, ?3, ?4)",
                params![customer, account, last4, status],
            )
            .unwrap();
    }

    fn freeze(bank: &DemoBank, customer: &str, last4: Option<&str>) -> Response {
        bank.call(&Request::FreezeCard {
            customer: customer.into(),
            card_last4: last4.map(Into::into),
        })
        .unwrap()
    }

    fn unfreeze(bank: &DemoBank, customer: &str, last4: Option<&str>) -> Response {
        bank.call(&Request::UnfreezeCard {
            customer: customer.into(),
            card_last4: last4.map(Into::into),
        })
        .unwrap()
    }

    #[test]
    fn several_cards_without_last4_asks_which() {
        let bank = DemoBank::open_in_memory(3).unwrap();
        add_card(&bank, "C1001", "12345678", "1111", "active");
        match freeze(&bank, "C1001", None) {
            Response::CardChoiceNeeded { cards } => {
                let last4: Vec<_> = cards.iter().map(|c| c.last4.as_str()).collect();
                assert_eq!(last4, ["4242", "1111"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            bank.card_status("C1001", "4242").unwrap(),
            Some(CardStatus::Active)
        );
    }

    #[test]
    fn unfreeze_without_last4_prefers_the_only_frozen_card() {
        let bank = DemoBank::open_in_memory(3).unwrap();
        add_card(&bank, "C1001", "12345678", "1111", "frozen");
        assert_eq!(
            unfreeze(&bank, "C1001", None),
            Response::CardUnfrozen {
                card_last4: "1111".into(),
                was_already_active: false
            }
        );
        assert_eq!(
            bank.card_status("C1001", "4242").unwrap(),
            Some(CardStatus::Active)
        );
    }

    #[test]
    fn blocked_cards_are_refused_and_skipped() {
        let bank = DemoBank::open_in_memory(3).unwrap();
        add_card(&bank, "C1002", "87654321", "3030", "blocked");
        // The blocked card is not a candidate: "freeze my card" means the usable one.
        assert_eq!(
            freeze(&bank, "C1002", None),
            Response::CardFrozen {
                card_last4: "9911".into(),
                was_already_frozen: false
            }
        );
        let refused = Response::Refused {
            reason: RefusalReason::CardBlocked,
        };
        assert_eq!(freeze(&bank, "C1002", Some("3030")), refused);
        assert_eq!(unfreeze(&bank, "C1002", Some("3030")), refused);
        assert_eq!(
            bank.card_status("C1002", "3030").unwrap(),
            Some(CardStatus::Blocked)
        );
    }

    #[test]
    fn pins_are_stored_salted_and_hashed() {
        let bank = DemoBank::open_in_memory(3).unwrap();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = bank
            .lock()
            .prepare("SELECT pin_salt, pin_hash FROM accounts ORDER BY number")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 3);
        for (salt, hash) in &rows {
            assert_eq!(hash.len(), 32);
            assert_eq!(salt.len(), crate::pin::SALT_LEN);
            for pin in ["2580", "1357", "4321"] {
                assert!(!hash.windows(4).any(|w| w == pin.as_bytes()));
            }
        }
        assert_ne!(rows[0].0, rows[1].0, "salts must differ");
    }

    #[test]
    fn digits_only_and_mask() {
        assert_eq!(digits_only("1234 5678"), "12345678");
        assert_eq!(digits_only("12-34-56-78"), "12345678");
        assert_eq!(digits_only("1234x"), "");
        assert_eq!(mask("12345678"), "****5678");
        assert_eq!(mask("12"), "****12");
    }
}
