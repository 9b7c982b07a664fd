//! A validated flow: what [`super::load`] builds from a TOML file and [`super::Session`] runs. Every name
//! is resolved (forms by index, prompts checked to exist), so the engine never meets a dangling reference.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::nlu::IntentModel;
use crate::HangupCause;

use super::value::Value;

/// Index of a form in [`Flow::forms`].
pub type FormId = usize;

/// A loaded, validated flow. Shared by every call that started on it (`Arc`); a reload builds a new one
/// for new calls while calls in progress finish on theirs.
#[derive(Debug)]
pub struct Flow {
    pub name: String,
    /// Language code of prompts and recognition (`en`, `zh`).
    pub language: String,
    pub source: PathBuf,
    pub start: FormId,
    /// Where repeated failure goes (a human, normally).
    pub escalate: FormId,
    /// Form that establishes `verified` for forms that require it.
    pub verify: Option<FormId>,
    /// Where a failed backend call goes when the step names no `on_error`.
    pub backend_error: FormId,
    /// Where a failed transfer goes when the step names no `on_fail`.
    pub transfer_failed: FormId,
    /// No-input plus no-match events in one call before escalation.
    pub max_errors: u32,
    /// Prompt key → the words it says (transcripts, rendering, validation).
    pub prompts: BTreeMap<String, String>,
    pub commands: Vec<Command>,
    /// Flow-wide handlers, searched after the slot's and the form's.
    pub handlers: Vec<Handler>,
    pub forms: Vec<Form>,
    pub intents: Arc<IntentModel>,
}

impl Flow {
    pub fn form_id(&self, name: &str) -> Option<FormId> {
        self.forms.iter().position(|f| f.name == name)
    }

    /// The words of a prompt key, for the transcript.
    pub fn prompt_text(&self, key: &str) -> Option<&str> {
        self.prompts.get(key).map(String::as_str)
    }
}

/// A VoiceXML-style form: slots filled in order (the first unset one is asked), then its steps run.
#[derive(Debug)]
pub struct Form {
    pub name: String,
    /// Variables that must be truthy before the form runs; if `verified` is missing, the flow's verify form
    /// runs first and returns here.
    pub requires: Vec<String>,
    pub slots: Vec<Slot>,
    pub steps: Vec<Step>,
    pub handlers: Vec<Handler>,
}

/// One piece of information to collect.
#[derive(Debug)]
pub struct Slot {
    /// Variable it fills (flow-wide: a value said early fills a later form's slot too).
    pub var: String,
    pub kind: SlotKind,
    /// Tapered prompts: the n-th attempt plays `prompts[min(n, len) - 1]`.
    pub prompts: Vec<Vec<PromptItem>>,
    /// Keypad alternatives for intent and yes/no slots: key → value.
    pub dtmf: BTreeMap<char, String>,
    /// Below this confidence the value is confirmed ("You want …, right?").
    pub confirm_below: Option<f32>,
    pub confirm: Vec<PromptItem>,
    /// Only the keypad fills it; speech is not even recognised (PINs).
    pub keypad_only: bool,
    /// Masked on the record and in logs; the recording's caller channel is muted while it is collected.
    pub sensitive: bool,
    /// May be filled from an answer to another slot ("my card is lost, account 1234 5678").
    pub mixed: bool,
    /// Words that bias the recogniser for this answer.
    pub bias: Option<String>,
    pub endpointing: Endpointing,
    pub barge_in: bool,
    pub no_input: Duration,
    pub handlers: Vec<Handler>,
    /// Asked only when this holds.
    pub when: Option<Cond>,
}

/// What a slot collects and how an answer is understood.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotKind {
    /// One of these intents of the flow's intent model.
    Intent {
        values: Vec<String>,
    },
    /// A digit string, spoken or keyed.
    Digits {
        min: usize,
        max: usize,
        terminator: Option<char>,
    },
    YesNo,
    Amount,
}

impl SlotKind {
    /// Digit strings as long as account and card numbers: personal data, shown masked.
    pub fn is_long_number(&self) -> bool {
        matches!(self, SlotKind::Digits { max, .. } if *max >= crate::nlu::REDACT_MIN_DIGITS)
    }
}

/// Endpointing preset for the answer (the media side maps it to silence timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpointing {
    FreeSpeech,
    YesNo,
    DigitString,
}

/// One item of a prompt sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptItem {
    /// A prompt key.
    Prompt(Arc<str>),
    /// A variable read out by type (money as currency, digits one by one).
    Var(String),
    /// A prompt key built from a variable: `confirm/$intent` → `confirm/lost_card`.
    Template {
        prefix: String,
        var: String,
        suffix: String,
    },
}

/// `when = "var"`, `"!var"`, `"var == value"`, `"var != value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub var: String,
    pub equals: Option<String>,
    pub negate: bool,
}

impl Cond {
    pub fn holds(&self, vars: &BTreeMap<String, Value>) -> bool {
        let v = vars.get(&self.var);
        let base = match &self.equals {
            None => v.is_some_and(Value::is_truthy),
            Some(want) => v.and_then(Value::key).as_deref() == Some(want.as_str()),
        };
        base != self.negate
    }
}

/// Events a handler answers (VoiceXML's catch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HandlerEvent {
    NoInput,
    NoMatch,
    Help,
}

impl HandlerEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerEvent::NoInput => "noinput",
            HandlerEvent::NoMatch => "nomatch",
            HandlerEvent::Help => "help",
        }
    }
}

/// What to do on the `count`-th occurrence of an event (the handler with the highest `count` not above
/// the occurrence wins).
#[derive(Debug, Clone, PartialEq)]
pub struct Handler {
    pub event: HandlerEvent,
    pub count: u32,
    pub say: Vec<PromptItem>,
    pub goto: Option<FormId>,
    /// Ask the slot again after `say` (default); false waits silently.
    pub reprompt: bool,
}

/// Always-active phrases and keys ("agent", 0, "repeat").
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub intent: Option<String>,
    pub dtmf: Option<char>,
    pub action: CommandAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CommandAction {
    Goto(FormId),
    Repeat,
    Help,
}

/// Backend operations a flow may invoke. The dialog knows their inputs and outputs (for validation and
/// variable types); the appliance maps them onto its backend, except the voiceprint ones, which the
/// appliance answers itself from the caller's speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    LookupCaller,
    VerifyPin,
    Balance,
    Transactions,
    FreezeCard,
    ReportFraud,
    /// Compares the caller's speech so far with the customer's enrolled voiceprint.
    VoiceprintVerify,
    /// Starts (consented) enrolment: the caller's speech in this call becomes the customer's voiceprint.
    VoiceprintEnroll,
}

impl Op {
    pub const ALL: [Op; 8] = [
        Op::LookupCaller,
        Op::VerifyPin,
        Op::Balance,
        Op::Transactions,
        Op::FreezeCard,
        Op::ReportFraud,
        Op::VoiceprintVerify,
        Op::VoiceprintEnroll,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::LookupCaller => "lookup_caller",
            Op::VerifyPin => "verify_pin",
            Op::Balance => "balance",
            Op::Transactions => "transactions",
            Op::FreezeCard => "freeze_card",
            Op::ReportFraud => "report_fraud",
            Op::VoiceprintVerify => "voiceprint_verify",
            Op::VoiceprintEnroll => "voiceprint_enroll",
        }
    }

    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Variables the operation reads.
    pub fn inputs(self) -> &'static [&'static str] {
        match self {
            Op::LookupCaller => &["caller"],
            Op::VerifyPin => &["account", "pin"],
            Op::Balance | Op::Transactions | Op::FreezeCard | Op::ReportFraud => &["account"],
            Op::VoiceprintVerify => &["customer_id"],
            // The account verified with the PIN is kept with the voiceprint: a recognised voice later
            // stands for it.
            Op::VoiceprintEnroll => &["customer_id", "account"],
        }
    }

    /// Variables a successful result sets.
    pub fn outputs(self) -> &'static [&'static str] {
        match self {
            Op::LookupCaller => &[
                "customer_known",
                "customer_id",
                "customer_name",
                "vip",
                "recent_event",
                "recent_amount",
            ],
            Op::VerifyPin => &[
                "verify_result",
                "verified",
                "pin_verified",
                "customer_id",
                "customer_name",
                "vip",
                "attempts_left",
                "voiceprint_offer",
            ],
            Op::Balance => &["balance"],
            Op::Transactions => &["last_amount", "transaction_count"],
            Op::FreezeCard => &["card_last4", "card_frozen"],
            Op::ReportFraud => &["case_id", "card_last4", "card_frozen"],
            // An accepted voice also identifies the customer's account.
            Op::VoiceprintVerify => &["voiceprint", "voiceprint_score", "account"],
            Op::VoiceprintEnroll => &["voiceprint"],
        }
    }
}

/// Variables the engine sets itself: the numbers at call start, and `required` (the unmet requirement that
/// sent the caller to the verify form, so it can tell a step-up from a first verification).
pub const BUILTIN_VARS: [&str; 5] = [
    "caller",
    "called",
    "required",
    "transfer_failure",
    "transfer_skill",
];

/// One step of a form's `do` list, with its optional condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub when: Option<Cond>,
    pub kind: StepKind,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Say {
        items: Vec<PromptItem>,
        barge_in: bool,
    },
    Invoke {
        op: Op,
        on_error: Option<FormId>,
    },
    Set(Vec<(String, Value)>),
    Clear(Vec<String>),
    Route {
        var: String,
        cases: Vec<(String, FormId)>,
        default: FormId,
    },
    Goto(FormId),
    /// Back to the form that required verification.
    Return,
    Transfer {
        skill: String,
        priority: bool,
        reason: String,
        on_fail: Option<FormId>,
    },
    HangUp(HangupCause),
}
