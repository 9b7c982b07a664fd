//! The flow interpreter: one [`Session`] per call, fed [`Event`]s with `now`, answering with [`Action`]s.
//!
//! Form interpretation follows VoiceXML's FIA: on entering a form, the first slot whose variable is unset
//! (and whose `when` holds) is asked; an answer fills it (and any `mixed` slot it also answers), then the
//! next unset slot is asked; when none is left, the form's steps run until one leaves the form. No-input
//! and no-match are counted per slot; the handler with the highest `count` not above the occurrence is
//! searched slot → form → flow. Every no-input/no-match also counts toward the flow's `max_errors`, after
//! which the caller goes to the escalation form (a human): nobody is trapped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::nlu::{self, DigitCollector, DigitConfig, Hypothesis, IntentResult, Outcome};
use crate::HangupCause;

use super::model::{
    CommandAction, Endpointing, Flow, FormId, Handler, HandlerEvent, Op, PromptItem, SlotKind,
    StepKind,
};
use super::value::Value;

/// Longest wait for a recognition result after the caller started speaking.
const HEARING_LIMIT: Duration = Duration::from_secs(30);
/// Pause between keys that completes a digit entry with enough digits.
const INTER_DIGIT: Duration = Duration::from_secs(4);
/// How long after a digit slot filled by length its terminator key is still taken as part of it.
const SPARE_TERMINATOR: Duration = Duration::from_secs(3);

/// Something that happened on the call.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Media flows; the caller's and the dialled number (for predict-before-ask and routing).
    Started {
        caller: Option<String>,
        called: Option<String>,
    },
    /// Everything queued with [`Action::Play`] finished (not sent after a stop or barge-in).
    PromptDone,
    /// Caller speech interrupted the prompt; the media side already flushed it.
    BargeIn,
    SpeechStarted,
    /// A final recognition result: n-best hypotheses, best first, with confidences.
    Speech {
        nbest: Vec<(String, f32)>,
    },
    /// The caller spoke but no text came out.
    SpeechFailed {
        overloaded: bool,
    },
    Digit(char),
    /// The deadline from [`Session::poll_timeout`] passed.
    Timeout,
    BackendResult {
        id: u64,
        result: Result<Vec<(String, Value)>, BackendFailure>,
    },
    /// What came of an [`Action::Transfer`].
    TransferResult(TransferOutcome),
    /// A fact learnt outside the dialog (a voiceprint verdict): sets a variable.
    Fact {
        name: String,
        value: Value,
    },
    Hangup,
}

/// What came of a hand-off to a human.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    /// A human took the call (bridged, or the far end accepted a blind transfer).
    Connected,
    /// Nobody took it; the flow's `on_fail` form (or its `transfer_failed` form) runs with the builtin
    /// variable `transfer_failure` set to [`TransferFailure::as_str`].
    Failed(TransferFailure),
}

/// Why nobody took a hand-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferFailure {
    /// No agent with the skill and language exists (or none is configured).
    NoAgents,
    /// The caller waited `queue_timeout` in the queue; flows usually offer to keep waiting.
    QueueTimeout,
    /// Agents or the transfer target were reached but did not take the call.
    Failed,
}

impl TransferFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferFailure::NoAgents => "no_agents",
            TransferFailure::QueueTimeout => "queue_timeout",
            TransferFailure::Failed => "failed",
        }
    }
}

/// Why a backend call produced no result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendFailure {
    /// Down, timed out, or answered garbage: apologise and hand over.
    Unavailable,
    /// Refused this request (unknown account, card already frozen).
    Refused,
}

/// One piece of what the call says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Say {
    Prompt(Arc<str>),
    Money { minor_units: i64, currency: String },
    Digits(String),
    Number(i64),
}

/// What the answer to a slot should be listened for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub slot: String,
    /// False for keypad-only slots: nothing the caller says is recognised.
    pub speech: bool,
    pub endpointing: Endpointing,
    pub bias: Option<String>,
}

/// What the engine wants done, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Play {
        items: Vec<Say>,
        barge_in: bool,
    },
    StopPlayback,
    Listen(Listen),
    /// A secret is being collected (true) or no longer (false): mute the caller in the recording, do not
    /// recognise speech, mask keys.
    Sensitive(bool),
    /// A key for the call record, already masked (`*`) while a secret is collected.
    RecordDigit(char),
    Invoke {
        id: u64,
        op: Op,
        args: Vec<(String, Value)>,
    },
    Transfer {
        skill: String,
        priority: bool,
        reason: String,
    },
    HangUp(HangupCause),
    /// A variable got a value (display form: secrets masked).
    SlotFilled {
        name: String,
        display: String,
        confidence: f32,
    },
    SlotCleared {
        name: String,
    },
    Analytics(Analytics),
}

/// Per-call analytics, emitted as they happen.
#[derive(Clone, Debug, PartialEq)]
pub enum Analytics {
    FormEntered {
        form: String,
    },
    Intent {
        slot: String,
        intent: String,
        confidence: f32,
        margin: f32,
    },
    OutOfScope {
        slot: String,
        reason: &'static str,
    },
    NoInput {
        slot: String,
        count: u32,
    },
    NoMatch {
        slot: String,
        count: u32,
    },
    Command {
        name: String,
    },
    Confirmation {
        slot: String,
        accepted: bool,
    },
    Escalated {
        errors: u32,
    },
    Verification {
        outcome: String,
    },
    /// `accept`, `reject`, `not_enough_speech`, `no_template`, `enrolling`.
    Voiceprint {
        outcome: String,
    },
    BackendFailed {
        op: &'static str,
        failure: BackendFailure,
    },
    Handoff {
        skill: String,
        reason: String,
    },
    TransferFailed {
        /// [`TransferFailure::as_str`].
        reason: &'static str,
    },
    /// `contained`: served in self-service, no hand-off tried. A caller who needed a human and found none
    /// was not served by the bot: not contained.
    Ended {
        contained: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    /// The slot's prompt plays.
    Prompting,
    /// Prompt over; waiting for speech or a key until the deadline.
    Waiting(Instant),
    /// The caller speaks; a result is due by the deadline.
    Hearing(Instant),
    /// Keys are coming in (digit slots; the collector holds the deadline).
    Keying,
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Idle,
    Asking {
        slot: usize,
        ask: Ask,
    },
    Confirming {
        slot: usize,
        value: Value,
        confidence: f32,
        ask: Ask,
    },
    /// Executing the form's steps (transient within one `step`).
    Running,
    Backend {
        id: u64,
        op: Op,
        on_error: Option<FormId>,
    },
    Transferring {
        on_fail: Option<FormId>,
    },
    /// The caller talks to a human; the dialog is done but the call goes on.
    Bridged,
    Closing(HangupCause),
    Done,
}

/// One call's dialog state.
#[derive(Debug)]
pub struct Session {
    flow: Arc<Flow>,
    vars: BTreeMap<String, Value>,
    phase: Phase,
    form: FormId,
    pc: usize,
    return_to: Option<FormId>,
    counters: BTreeMap<(usize, HandlerEvent), u32>,
    attempts: BTreeMap<usize, u32>,
    errors: u32,
    last_play: Option<(Vec<Say>, bool)>,
    playing: bool,
    sensitive: bool,
    collector: Option<DigitCollector>,
    /// A digit slot filled by its length: its terminator, if pressed soon after, is swallowed.
    spare_terminator: Option<(char, Instant)>,
    next_id: u64,
    transferred: bool,
    /// A hand-off to a human was tried (connected or not).
    handed_off: bool,
    out: Vec<Action>,
}

impl Session {
    pub fn new(flow: Arc<Flow>) -> Self {
        let start = flow.start;
        Self {
            flow,
            vars: BTreeMap::new(),
            phase: Phase::Idle,
            form: start,
            pc: 0,
            return_to: None,
            counters: BTreeMap::new(),
            attempts: BTreeMap::new(),
            errors: 0,
            last_play: None,
            playing: false,
            sensitive: false,
            collector: None,
            spare_terminator: None,
            next_id: 1,
            transferred: false,
            handed_off: false,
            out: Vec::new(),
        }
    }

    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    pub fn vars(&self) -> &BTreeMap<String, Value> {
        &self.vars
    }

    /// Name of the form the call is in.
    pub fn form_name(&self) -> &str {
        self.flow
            .forms
            .get(self.form)
            .map_or("", |f| f.name.as_str())
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether a human took the call.
    pub fn transferred(&self) -> bool {
        self.transferred
    }

    /// No-input plus no-match events so far.
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// When [`Event::Timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ask = match &self.phase {
            Phase::Asking { ask, .. } | Phase::Confirming { ask, .. } => *ask,
            _ => return None,
        };
        match ask {
            Ask::Waiting(t) | Ask::Hearing(t) => Some(t),
            Ask::Keying => self
                .collector
                .as_ref()
                .and_then(DigitCollector::poll_timeout),
            Ask::Prompting => None,
        }
    }

    /// Feeds one event; returns what to do, in order.
    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::Started { caller, called } => {
                if self.phase == Phase::Idle {
                    for (name, v) in [("caller", caller), ("called", called)] {
                        if let Some(v) = v {
                            self.vars.insert(name.to_string(), Value::Digits(v));
                        }
                    }
                    self.enter(self.flow.start, now);
                }
            }
            Event::PromptDone => self.prompt_done(now),
            Event::BargeIn => {
                self.playing = false;
                if let Some(ask) = self.ask_mut() {
                    if *ask == Ask::Prompting {
                        *ask = Ask::Hearing(now + HEARING_LIMIT);
                    }
                }
            }
            Event::SpeechStarted => {
                if let Some(ask) = self.ask_mut() {
                    if matches!(*ask, Ask::Waiting(_)) {
                        *ask = Ask::Hearing(now + HEARING_LIMIT);
                    }
                }
            }
            Event::Speech { nbest } => self.speech(&nbest, now),
            Event::SpeechFailed { .. } => {
                if let Some(slot) = self.current_slot() {
                    if !self.flow.forms[self.form].slots[slot].keypad_only {
                        self.event(HandlerEvent::NoMatch, now);
                    }
                }
            }
            Event::Digit(d) => self.digit(d, now),
            Event::Timeout => self.timeout(now),
            Event::BackendResult { id, result } => self.backend_result(id, result, now),
            Event::TransferResult(outcome) => {
                if let Phase::Transferring { on_fail } = self.phase {
                    match outcome {
                        TransferOutcome::Connected => self.phase = Phase::Bridged,
                        TransferOutcome::Failed(why) => {
                            self.transferred = false;
                            self.vars.insert(
                                "transfer_failure".into(),
                                Value::Text(why.as_str().into()),
                            );
                            self.emit(Action::Analytics(Analytics::TransferFailed {
                                reason: why.as_str(),
                            }));
                            self.enter(on_fail.unwrap_or(self.flow.transfer_failed), now);
                        }
                    }
                }
            }
            Event::Fact { name, value } => self.set_var(name, value, 1.0),
            Event::Hangup => {
                if self.phase != Phase::Done {
                    self.phase = Phase::Done;
                    self.emit(Action::Analytics(Analytics::Ended {
                        contained: !self.handed_off,
                    }));
                }
            }
        }
        std::mem::take(&mut self.out)
    }

    fn emit(&mut self, a: Action) {
        self.out.push(a);
    }

    fn ask_mut(&mut self) -> Option<&mut Ask> {
        match &mut self.phase {
            Phase::Asking { ask, .. } | Phase::Confirming { ask, .. } => Some(ask),
            _ => None,
        }
    }

    fn current_slot(&self) -> Option<usize> {
        match &self.phase {
            Phase::Asking { slot, .. } | Phase::Confirming { slot, .. } => Some(*slot),
            _ => None,
        }
    }

    fn set_var(&mut self, name: String, value: Value, confidence: f32) {
        // What the caller gave as an account or card number is shown by its last four digits only.
        let long_number = self
            .flow
            .forms
            .iter()
            .flat_map(|f| &f.slots)
            .any(|s| s.var == name && s.kind.is_long_number());
        let display = match &value {
            Value::Digits(d) if long_number => {
                let n = d.chars().count();
                let tail: String = d.chars().skip(n.saturating_sub(4)).collect();
                format!("{}{tail}", "*".repeat(n.saturating_sub(4)))
            }
            v => v.display(),
        };
        self.vars.insert(name.clone(), value);
        self.emit(Action::SlotFilled {
            name,
            display,
            confidence,
        });
    }

    fn set_sensitive(&mut self, on: bool) {
        if self.sensitive != on {
            self.sensitive = on;
            self.emit(Action::Sensitive(on));
        }
    }

    fn render(&self, items: &[PromptItem]) -> Vec<Say> {
        let mut out = Vec::new();
        for item in items {
            match item {
                PromptItem::Prompt(k) => out.push(Say::Prompt(k.clone())),
                PromptItem::Var(v) => match self.vars.get(v) {
                    Some(Value::Money {
                        minor_units,
                        currency,
                    }) => out.push(Say::Money {
                        minor_units: *minor_units,
                        currency: currency.clone(),
                    }),
                    Some(Value::Digits(d)) => out.push(Say::Digits(d.clone())),
                    Some(Value::Number(n)) => out.push(Say::Number(*n)),
                    Some(Value::Text(t)) if self.flow.prompts.contains_key(t) => {
                        out.push(Say::Prompt(Arc::from(t.as_str())))
                    }
                    // Secrets are never read out; free text has no recording.
                    _ => {}
                },
                PromptItem::Template {
                    prefix,
                    var,
                    suffix,
                } => {
                    if let Some(key) = self.vars.get(var).and_then(Value::key) {
                        let k = format!("{prefix}{key}{suffix}");
                        if self.flow.prompts.contains_key(&k) {
                            out.push(Say::Prompt(Arc::from(k.as_str())));
                        }
                    }
                }
            }
        }
        out
    }

    fn play(&mut self, items: &[PromptItem], barge_in: bool) {
        let say = self.render(items);
        if say.is_empty() {
            return;
        }
        self.playing = true;
        self.last_play = Some((say.clone(), barge_in));
        self.emit(Action::Play {
            items: say,
            barge_in,
        });
    }

    fn stop_playing(&mut self) {
        if self.playing {
            self.playing = false;
            self.emit(Action::StopPlayback);
        }
    }

    /// Enters a form (FIA start): counters reset, verification first if the form requires it.
    fn enter(&mut self, form: FormId, now: Instant) {
        let flow = Arc::clone(&self.flow);
        let Some(f) = flow.forms.get(form) else {
            return;
        };
        let unmet = f
            .requires
            .iter()
            .find(|v| !self.vars.get(*v).is_some_and(Value::is_truthy));
        if let Some(unmet) = unmet {
            match flow.verify {
                Some(verify) if verify != form => {
                    self.vars
                        .insert("required".into(), Value::Text(unmet.clone()));
                    self.return_to = Some(form);
                    return self.enter(verify, now);
                }
                _ => {
                    if form != flow.escalate {
                        return self.enter(flow.escalate, now);
                    }
                }
            }
        }
        self.set_sensitive(false);
        self.form = form;
        self.pc = 0;
        self.counters.clear();
        self.attempts.clear();
        self.collector = None;
        self.emit(Action::Analytics(Analytics::FormEntered {
            form: f.name.clone(),
        }));
        self.advance(now);
    }

    /// Asks the first unset slot, or runs the steps when every slot is filled.
    fn advance(&mut self, now: Instant) {
        let flow = Arc::clone(&self.flow);
        let form = &flow.forms[self.form];
        let next = form.slots.iter().position(|s| {
            !self.vars.contains_key(&s.var) && s.when.as_ref().is_none_or(|c| c.holds(&self.vars))
        });
        match next {
            Some(slot) => self.ask(slot, now),
            None => {
                self.set_sensitive(false);
                self.run_steps(now);
            }
        }
    }

    fn ask(&mut self, slot: usize, now: Instant) {
        let flow = Arc::clone(&self.flow);
        let s = &flow.forms[self.form].slots[slot];
        let attempt = {
            let a = self.attempts.entry(slot).or_insert(0);
            *a += 1;
            *a
        };
        self.set_sensitive(s.sensitive);
        let idx = (attempt as usize).min(s.prompts.len()).saturating_sub(1);
        if let Some(items) = s.prompts.get(idx) {
            self.play(items, s.barge_in);
        }
        self.emit(Action::Listen(Listen {
            slot: s.var.clone(),
            speech: !s.keypad_only,
            endpointing: s.endpointing,
            bias: s.bias.clone(),
        }));
        self.collector = match s.kind {
            SlotKind::Digits {
                min,
                max,
                terminator,
            } => DigitCollector::new(
                DigitConfig {
                    min_len: min,
                    max_len: max,
                    terminator,
                    clear: Some('*'),
                    first_digit_timeout: s.no_input,
                    inter_digit_timeout: INTER_DIGIT,
                },
                now,
            )
            .ok(),
            _ => None,
        };
        self.phase = Phase::Asking {
            slot,
            ask: Ask::Prompting,
        };
        if !self.playing {
            self.start_waiting(now);
        }
    }

    /// The prompt is over: the no-input timer runs from now.
    fn start_waiting(&mut self, now: Instant) {
        let Some(slot) = self.current_slot() else {
            return;
        };
        let no_input = self.flow.forms[self.form].slots[slot].no_input;
        let keyed = self.collector.is_some();
        if let Some(c) = self.collector.as_mut() {
            if c.digits().is_empty() {
                c.restart(now);
            }
        }
        if let Some(ask) = self.ask_mut() {
            *ask = if keyed {
                Ask::Keying
            } else {
                Ask::Waiting(now + no_input)
            };
        }
    }

    fn prompt_done(&mut self, now: Instant) {
        self.playing = false;
        match self.phase {
            Phase::Asking {
                ask: Ask::Prompting,
                ..
            }
            | Phase::Confirming {
                ask: Ask::Prompting,
                ..
            } => self.start_waiting(now),
            Phase::Closing(cause) => {
                self.phase = Phase::Done;
                self.emit(Action::HangUp(cause));
                self.emit(Action::Analytics(Analytics::Ended {
                    contained: !self.handed_off,
                }));
            }
            _ => {}
        }
    }

    fn run_steps(&mut self, now: Instant) {
        let flow = Arc::clone(&self.flow);
        let form = &flow.forms[self.form];
        self.phase = Phase::Running;
        while let Some(step) = form.steps.get(self.pc) {
            self.pc += 1;
            if step.when.as_ref().is_some_and(|c| !c.holds(&self.vars)) {
                continue;
            }
            match &step.kind {
                StepKind::Say { items, barge_in } => self.play(items, *barge_in),
                StepKind::Invoke { op, on_error } => {
                    let mut args = Vec::new();
                    for name in op.inputs() {
                        match self.vars.get(*name) {
                            Some(v) => args.push((name.to_string(), v.clone())),
                            None => {
                                // Validated as produced somewhere, but not on this path.
                                self.emit(Action::Analytics(Analytics::BackendFailed {
                                    op: op.name(),
                                    failure: BackendFailure::Refused,
                                }));
                                return self.enter(on_error.unwrap_or(flow.backend_error), now);
                            }
                        }
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    self.phase = Phase::Backend {
                        id,
                        op: *op,
                        on_error: *on_error,
                    };
                    self.emit(Action::Invoke { id, op: *op, args });
                    return;
                }
                StepKind::Set(pairs) => {
                    for (k, v) in pairs {
                        self.set_var(k.clone(), v.clone(), 1.0);
                    }
                }
                StepKind::Clear(names) => {
                    for n in names {
                        if self.vars.remove(n).is_some() {
                            self.emit(Action::SlotCleared { name: n.clone() });
                        }
                    }
                }
                StepKind::Route {
                    var,
                    cases,
                    default,
                } => {
                    let key = self.vars.get(var).and_then(Value::key);
                    let target = cases
                        .iter()
                        .find(|(k, _)| Some(k) == key.as_ref())
                        .map_or(*default, |(_, f)| *f);
                    return self.enter(target, now);
                }
                StepKind::Goto(f) => return self.enter(*f, now),
                StepKind::Return => {
                    let target = self.return_to.take().unwrap_or(flow.start);
                    return self.enter(target, now);
                }
                StepKind::Transfer {
                    skill,
                    priority,
                    reason,
                    on_fail,
                } => {
                    self.transferred = true;
                    self.handed_off = true;
                    // A flow that offers "keep waiting" after a queue timeout transfers to the same skill.
                    self.vars
                        .insert("transfer_skill".into(), Value::Text(skill.clone()));
                    self.emit(Action::Analytics(Analytics::Handoff {
                        skill: skill.clone(),
                        reason: reason.clone(),
                    }));
                    self.emit(Action::Transfer {
                        skill: skill.clone(),
                        priority: *priority,
                        reason: reason.clone(),
                    });
                    self.phase = Phase::Transferring { on_fail: *on_fail };
                    return;
                }
                StepKind::HangUp(cause) => {
                    self.phase = Phase::Closing(*cause);
                    if !self.playing {
                        self.prompt_done(now);
                    }
                    return;
                }
            }
        }
        // Validation makes every form end in a step that leaves it; never strand the caller.
        self.enter(flow.escalate, now);
    }

    fn backend_result(
        &mut self,
        id: u64,
        result: Result<Vec<(String, Value)>, BackendFailure>,
        now: Instant,
    ) {
        let Phase::Backend {
            id: want,
            op,
            on_error,
        } = self.phase
        else {
            return;
        };
        if id != want {
            return;
        }
        match result {
            Ok(pairs) => {
                for (k, v) in pairs {
                    self.set_var(k, v, 1.0);
                }
                if op == Op::VerifyPin {
                    let outcome = self
                        .vars
                        .get("verify_result")
                        .map_or_else(|| "unknown".to_string(), Value::display);
                    self.emit(Action::Analytics(Analytics::Verification { outcome }));
                }
                if matches!(op, Op::VoiceprintVerify | Op::VoiceprintEnroll) {
                    if let Some(outcome) = self.vars.get("voiceprint").map(Value::display) {
                        self.emit(Action::Analytics(Analytics::Voiceprint { outcome }));
                    }
                }
                self.run_steps(now);
            }
            Err(failure) => {
                self.emit(Action::Analytics(Analytics::BackendFailed {
                    op: op.name(),
                    failure,
                }));
                self.enter(on_error.unwrap_or(self.flow.backend_error), now);
            }
        }
    }

    fn timeout(&mut self, now: Instant) {
        let Some(due) = self.poll_timeout() else {
            return;
        };
        if now < due {
            return;
        }
        let ask = match &self.phase {
            Phase::Asking { ask, .. } | Phase::Confirming { ask, .. } => *ask,
            _ => return,
        };
        match ask {
            Ask::Waiting(_) => self.event(HandlerEvent::NoInput, now),
            // The result never came: the caller did speak, so it is a no-match.
            Ask::Hearing(_) => self.event(HandlerEvent::NoMatch, now),
            Ask::Keying => {
                let collected = self.collector.as_mut().map(|c| c.timeout(now));
                match collected {
                    Some(nlu::Collect::Collected(d)) => self.keyed(d, now),
                    Some(nlu::Collect::Timeout(d)) if d.is_empty() => {
                        self.event(HandlerEvent::NoInput, now)
                    }
                    Some(nlu::Collect::Timeout(_)) | Some(nlu::Collect::TooShort(_)) => {
                        self.event(HandlerEvent::NoMatch, now)
                    }
                    _ => {}
                }
            }
            Ask::Prompting => {}
        }
    }

    fn digit(&mut self, d: char, now: Instant) {
        let flow = Arc::clone(&self.flow);
        // Account and card numbers are personal data too: their keys are shown masked, like a PIN's.
        let long_number = self
            .current_slot()
            .is_some_and(|s| flow.forms[self.form].slots[s].kind.is_long_number());
        let shown = if self.sensitive || (long_number && d.is_ascii_digit()) {
            '*'
        } else {
            d
        };
        self.emit(Action::RecordDigit(shown));
        // Callers end a PIN with # even when its last digit already completed it: that # is not an answer
        // to the next question.
        if let Some((t, until)) = self.spare_terminator.take() {
            if d == t && now <= until {
                return;
            }
        }
        let Some(slot) = self.current_slot() else {
            return;
        };
        let s = &flow.forms[self.form].slots[slot];
        if let Phase::Confirming { .. } = self.phase {
            self.stop_playing();
            match d {
                '1' => self.confirmed(true, now),
                '2' => self.confirmed(false, now),
                _ => self.event(HandlerEvent::NoMatch, now),
            }
            return;
        }
        if let Some(c) = self.collector.as_mut() {
            let r = c.key(now, d);
            if r != nlu::Collect::Ignored {
                self.stop_playing();
                if let Some(ask) = self.ask_mut() {
                    *ask = Ask::Keying;
                }
            }
            match r {
                nlu::Collect::Collected(digits) => {
                    if let SlotKind::Digits {
                        terminator: Some(t),
                        ..
                    } = s.kind
                    {
                        if d != t {
                            self.spare_terminator = Some((t, now + SPARE_TERMINATOR));
                        }
                    }
                    self.keyed(digits, now)
                }
                nlu::Collect::TooShort(_) => self.event(HandlerEvent::NoMatch, now),
                _ => {}
            }
            return;
        }
        self.stop_playing();
        if let Some(value) = s.dtmf.get(&d) {
            let value = match s.kind {
                SlotKind::YesNo => Value::Bool(value == "yes" || value == "true"),
                _ => Value::Text(value.clone()),
            };
            if let SlotKind::Intent { .. } = s.kind {
                self.emit(Action::Analytics(Analytics::Intent {
                    slot: s.var.clone(),
                    intent: value.display(),
                    confidence: 1.0,
                    margin: 1.0,
                }));
            }
            return self.fill(slot, value, 1.0, now);
        }
        if let Some(cmd) = flow.commands.iter().find(|c| c.dtmf == Some(d)) {
            return self.command(cmd.name.clone(), cmd.action.clone(), now);
        }
        self.event(HandlerEvent::NoMatch, now);
    }

    /// A complete keypad entry for the current digit slot.
    fn keyed(&mut self, digits: String, now: Instant) {
        let Some(slot) = self.current_slot() else {
            return;
        };
        let s = &self.flow.forms[self.form].slots[slot];
        let value = if s.sensitive {
            Value::Secret(digits)
        } else {
            Value::Digits(digits)
        };
        self.fill(slot, value, 1.0, now);
    }

    fn speech(&mut self, nbest: &[(String, f32)], now: Instant) {
        let flow = Arc::clone(&self.flow);
        let Some(slot) = self.current_slot() else {
            return;
        };
        let s = &flow.forms[self.form].slots[slot];
        if s.keypad_only {
            // A caller reading their PIN aloud: not recognised, not stored; wait for keys.
            return;
        }
        let hyps: Vec<Hypothesis<'_>> = nbest.iter().map(|(t, c)| Hypothesis::new(t, *c)).collect();
        let asr_conf = nbest.first().map_or(0.0, |(_, c)| *c);
        let intents = flow.intents.classify(&hyps);

        if let Phase::Confirming { .. } = self.phase {
            let answer =
                nbest
                    .iter()
                    .find_map(|(t, _)| nlu::yes_no(t))
                    .or(match intents.intent() {
                        Some("yes") => Some(true),
                        Some("no") => Some(false),
                        _ => None,
                    });
            match answer {
                Some(yes) => self.confirmed(yes, now),
                None => self.event(HandlerEvent::NoMatch, now),
            }
            return;
        }

        // Commands ("agent", "repeat") win unless the slot itself expects that intent.
        if let Some(name) = intents.intent() {
            let expected =
                matches!(&s.kind, SlotKind::Intent { values } if values.iter().any(|v| v == name));
            let yes_no = matches!(s.kind, SlotKind::YesNo) && (name == "yes" || name == "no");
            if !expected && !yes_no {
                if let Some(cmd) = flow
                    .commands
                    .iter()
                    .find(|c| c.intent.as_deref() == Some(name))
                {
                    return self.command(cmd.name.clone(), cmd.action.clone(), now);
                }
            }
        }

        // Mixed initiative: other slots this answer also fills.
        for (fi, form) in flow.forms.iter().enumerate() {
            for (si, other) in form.slots.iter().enumerate() {
                if !other.mixed
                    || (fi == self.form && si == slot)
                    || other.var == s.var
                    || self.vars.contains_key(&other.var)
                {
                    continue;
                }
                if let Some(v) = extract(&other.kind, nbest, &intents) {
                    self.set_var(other.var.clone(), v.0, asr_conf);
                }
            }
        }

        match extract(&s.kind, nbest, &intents) {
            Some((value, conf)) => {
                let confidence = conf.min(asr_conf.max(conf * 0.5));
                if let SlotKind::Intent { .. } = s.kind {
                    self.emit(Action::Analytics(Analytics::Intent {
                        slot: s.var.clone(),
                        intent: value.display(),
                        confidence: conf,
                        margin: intents.margin,
                    }));
                }
                match s.confirm_below {
                    Some(t) if confidence < t => {
                        self.phase = Phase::Confirming {
                            slot,
                            value: value.clone(),
                            confidence,
                            ask: Ask::Prompting,
                        };
                        // The confirmation prompt may read the candidate value.
                        self.vars.insert(s.var.clone(), value);
                        self.play(&s.confirm, true);
                        self.vars.remove(&s.var);
                        self.emit(Action::Listen(Listen {
                            slot: s.var.clone(),
                            speech: true,
                            endpointing: Endpointing::YesNo,
                            bias: None,
                        }));
                        if !self.playing {
                            self.start_waiting(now);
                        }
                    }
                    _ => self.fill(slot, value, confidence, now),
                }
            }
            None => {
                if let (SlotKind::Intent { .. }, Outcome::OutOfScope(why)) =
                    (&s.kind, &intents.outcome)
                {
                    self.emit(Action::Analytics(Analytics::OutOfScope {
                        slot: s.var.clone(),
                        reason: match why {
                            nlu::OutOfScope::NoSpeech => "no_speech",
                            nlu::OutOfScope::LowScore => "low_score",
                            nlu::OutOfScope::Ambiguous => "ambiguous",
                        },
                    }));
                }
                if self.vars.contains_key(&s.var) {
                    // A mixed answer filled this very variable through another slot.
                    self.advance(now);
                } else {
                    self.event(HandlerEvent::NoMatch, now);
                }
            }
        }
    }

    fn confirmed(&mut self, yes: bool, now: Instant) {
        let Phase::Confirming {
            slot,
            value,
            confidence,
            ..
        } = self.phase.clone()
        else {
            return;
        };
        let var = self.flow.forms[self.form].slots[slot].var.clone();
        self.emit(Action::Analytics(Analytics::Confirmation {
            slot: var,
            accepted: yes,
        }));
        if yes {
            self.fill(slot, value, confidence.max(0.9), now);
        } else {
            // "No" clears the slot: ask it again.
            self.ask(slot, now);
        }
    }

    fn fill(&mut self, slot: usize, value: Value, confidence: f32, now: Instant) {
        let var = self.flow.forms[self.form].slots[slot].var.clone();
        self.collector = None;
        self.set_var(var, value, confidence);
        self.advance(now);
    }

    fn command(&mut self, name: String, action: CommandAction, now: Instant) {
        self.emit(Action::Analytics(Analytics::Command { name }));
        match action {
            CommandAction::Goto(f) => {
                self.stop_playing();
                self.enter(f, now);
            }
            CommandAction::Repeat => {
                if let Some((items, barge_in)) = self.last_play.clone() {
                    self.stop_playing();
                    self.playing = true;
                    self.emit(Action::Play { items, barge_in });
                    if let Some(ask) = self.ask_mut() {
                        *ask = Ask::Prompting;
                    }
                }
            }
            CommandAction::Help => self.event(HandlerEvent::Help, now),
        }
    }

    /// No-input, no-match or help on the current slot: count, escalate, or run the matching handler.
    fn event(&mut self, ev: HandlerEvent, now: Instant) {
        let flow = Arc::clone(&self.flow);
        let Some(slot) = self.current_slot() else {
            return;
        };
        let s = &flow.forms[self.form].slots[slot];
        let count = {
            let c = self.counters.entry((slot, ev)).or_insert(0);
            *c += 1;
            *c
        };
        match ev {
            HandlerEvent::NoInput => self.emit(Action::Analytics(Analytics::NoInput {
                slot: s.var.clone(),
                count,
            })),
            HandlerEvent::NoMatch => self.emit(Action::Analytics(Analytics::NoMatch {
                slot: s.var.clone(),
                count,
            })),
            HandlerEvent::Help => {}
        }
        if ev != HandlerEvent::Help {
            self.errors += 1;
            if self.errors >= flow.max_errors {
                self.emit(Action::Analytics(Analytics::Escalated {
                    errors: self.errors,
                }));
                self.stop_playing();
                return self.enter(flow.escalate, now);
            }
        }
        let handler = find_handler(&s.handlers, ev, count)
            .or_else(|| find_handler(&flow.forms[self.form].handlers, ev, count))
            .or_else(|| find_handler(&flow.handlers, ev, count))
            .cloned();
        let Some(h) = handler else {
            return self.ask(slot, now);
        };
        self.play(&h.say, s.barge_in);
        if let Some(f) = h.goto {
            return self.enter(f, now);
        }
        if h.reprompt {
            self.ask(slot, now);
        } else if self.playing {
            if let Some(ask) = self.ask_mut() {
                *ask = Ask::Prompting;
            }
        } else {
            self.start_waiting(now);
        }
    }
}

/// VoiceXML's selection: among handlers for `ev`, the one with the highest `count` ≤ the occurrence.
fn find_handler(handlers: &[Handler], ev: HandlerEvent, count: u32) -> Option<&Handler> {
    handlers
        .iter()
        .filter(|h| h.event == ev && h.count <= count)
        .max_by_key(|h| h.count)
}

/// The value an answer gives a slot of this kind, with its confidence.
fn extract(
    kind: &SlotKind,
    nbest: &[(String, f32)],
    intents: &IntentResult,
) -> Option<(Value, f32)> {
    match kind {
        SlotKind::Intent { values } => {
            let has = |v: &str| values.iter().any(|x| x == v);
            if let Some(name) = intents.intent().filter(|n| has(n)) {
                return Some((Value::Text(name.to_string()), intents.score_of(name)));
            }
            // "No, that's all, thanks" answers a yes/no-bearing question even when the intent model
            // hesitates between `no` and `goodbye`.
            let (yes, no) = (has("yes"), has("no"));
            nbest.iter().find_map(|(t, c)| match nlu::yes_no(t)? {
                true if yes => Some((Value::Text("yes".into()), *c)),
                false if no => Some((Value::Text("no".into()), *c)),
                _ => None,
            })
        }
        SlotKind::Digits { min, max, .. } => nbest.iter().find_map(|(t, c)| {
            let d = nlu::digits(t)?;
            (*min..=*max)
                .contains(&d.len())
                .then_some((Value::Digits(d), *c))
        }),
        SlotKind::YesNo => nbest
            .iter()
            .find_map(|(t, c)| nlu::yes_no(t).map(|b| (Value::Bool(b), *c)))
            .or_else(|| match intents.intent() {
                Some("yes") => Some((Value::Bool(true), intents.score_of("yes"))),
                Some("no") => Some((Value::Bool(false), intents.score_of("no"))),
                _ => None,
            }),
        SlotKind::Amount => nbest.iter().find_map(|(t, c)| {
            let a = nlu::amount(t)?;
            Some((
                Value::Money {
                    minor_units: a.minor_units,
                    currency: a.currency.unwrap_or("USD").to_string(),
                },
                *c,
            ))
        }),
    }
}
