//! Flow files: TOML as written ([`RawFlow`]), then every check an operator needs before a flow goes live,
//! each reported with `file:line:column`. All problems are collected, not just the first.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::nlu::{bank_intents, IntentModel, NluError};
use crate::HangupCause;

use super::model::{
    Command, CommandAction, Cond, Endpointing, Flow, Form, FormId, Handler, HandlerEvent, Op,
    PromptItem, Slot, SlotKind, Step, StepKind, BUILTIN_VARS,
};
use super::value::Value;

/// Where in a flow file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    fn at(file: &Path, text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Self {
            file: file.to_path_buf(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One thing wrong with a flow file.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("cannot read the flow file: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Syntax(toml::de::Error),
    #[error("no form named `{0}`")]
    UnknownForm(String),
    #[error("no prompt `{0}` in [prompts]")]
    UnknownPrompt(String),
    #[error("no prompt in [prompts] starts with `{prefix}` and ends with `{suffix}`")]
    UnknownTemplate { prefix: String, suffix: String },
    #[error("intent `{0}` is not in the intent set")]
    UnknownIntent(String),
    #[error("unknown backend operation `{0}` (known: {known})", known = Op::ALL.map(Op::name).join(", "))]
    UnknownOp(String),
    #[error("variable `{0}` is never set (no slot, backend result or `set` produces it)")]
    UnsetVariable(String),
    #[error("form `{0}` cannot be reached from the start form, a command or a handler")]
    UnreachableForm(String),
    #[error("slot `{0}` repeats an earlier slot of this form and would never be asked")]
    UnreachableSlot(String),
    #[error("`{field}`: {value:?} is not one of {allowed}")]
    BadChoice {
        field: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("`{field}` = {value} out of range ({range})")]
    OutOfRange {
        field: &'static str,
        value: String,
        range: &'static str,
    },
    #[error("a step needs exactly one of say, invoke, set, clear, route, goto, return, transfer, hangup (found {0})")]
    StepKind(usize),
    #[error("`{0}` needs `{1}`")]
    Missing(&'static str, &'static str),
    #[error("bad condition {0:?}: expected `var`, `!var`, `var == value` or `var != value`")]
    BadCondition(String),
    #[error("slot `{0}` has no prompt")]
    NoPrompt(String),
    #[error("a command needs `goto` or `action`, and an `intent` or `dtmf`")]
    BadCommand,
    #[error("form `{0}` never leaves: its last step must be an unconditional goto, route, return, transfer or hangup")]
    NoExit(String),
    #[error("the intent set does not compile: {0}")]
    Intents(#[from] NluError),
}

/// A problem and where it is.
#[derive(Debug)]
pub struct FlowError {
    pub location: Option<Location>,
    pub problem: Problem,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(l) => write!(f, "{l}: {}", self.problem),
            None => write!(f, "{}", self.problem),
        }
    }
}

/// Everything wrong with a flow file, in file order.
#[derive(Debug, thiserror::Error)]
pub struct LoadError {
    pub errors: Vec<FlowError>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    flow: RawHeader,
    #[serde(default)]
    prompts: BTreeMap<String, String>,
    #[serde(default)]
    command: Vec<Spanned<RawCommand>>,
    #[serde(default)]
    handler: Vec<Spanned<RawHandler>>,
    #[serde(default)]
    form: BTreeMap<Spanned<String>, Spanned<RawForm>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: String,
    language: Spanned<String>,
    start: Spanned<String>,
    escalate: Spanned<String>,
    #[serde(default)]
    verify: Option<Spanned<String>>,
    backend_error: Spanned<String>,
    transfer_failed: Spanned<String>,
    #[serde(default = "default_max_errors")]
    max_errors: Spanned<i64>,
    #[serde(default = "default_no_input_ms")]
    no_input_ms: Spanned<i64>,
}

fn default_max_errors() -> Spanned<i64> {
    Spanned::new(0..0, 4)
}

fn default_no_input_ms() -> Spanned<i64> {
    Spanned::new(0..0, 7000)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    name: String,
    #[serde(default)]
    intent: Option<Spanned<String>>,
    #[serde(default)]
    dtmf: Option<Spanned<String>>,
    #[serde(default)]
    goto: Option<Spanned<String>>,
    #[serde(default)]
    action: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHandler {
    event: Spanned<String>,
    #[serde(default)]
    count: Option<Spanned<i64>>,
    #[serde(default)]
    say: Vec<Spanned<String>>,
    #[serde(default)]
    goto: Option<Spanned<String>>,
    #[serde(default)]
    reprompt: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForm {
    #[serde(default)]
    requires: Vec<Spanned<String>>,
    #[serde(default)]
    slot: Vec<Spanned<RawSlot>>,
    #[serde(default, rename = "do")]
    steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    handler: Vec<Spanned<RawHandler>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlot {
    name: Spanned<String>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    prompt: Vec<Spanned<String>>,
    #[serde(default)]
    reprompt: Vec<Spanned<String>>,
    #[serde(default)]
    values: Vec<Spanned<String>>,
    #[serde(default)]
    dtmf: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    confirm_below: Option<Spanned<f64>>,
    #[serde(default)]
    confirm: Vec<Spanned<String>>,
    #[serde(default)]
    min: Option<Spanned<i64>>,
    #[serde(default)]
    max: Option<Spanned<i64>>,
    #[serde(default)]
    terminator: Option<Spanned<String>>,
    #[serde(default)]
    keypad_only: bool,
    #[serde(default)]
    sensitive: bool,
    #[serde(default)]
    mixed: bool,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    endpoint: Option<Spanned<String>>,
    #[serde(default)]
    barge_in: Option<bool>,
    #[serde(default)]
    no_input_ms: Option<Spanned<i64>>,
    #[serde(default)]
    handler: Vec<Spanned<RawHandler>>,
    #[serde(default)]
    when: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(default)]
    when: Option<Spanned<String>>,
    #[serde(default)]
    say: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    barge_in: Option<bool>,
    #[serde(default)]
    invoke: Option<Spanned<String>>,
    #[serde(default)]
    on_error: Option<Spanned<String>>,
    #[serde(default)]
    set: Option<BTreeMap<String, Spanned<toml::Value>>>,
    #[serde(default)]
    clear: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    route: Option<Spanned<String>>,
    #[serde(default)]
    cases: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    default: Option<Spanned<String>>,
    #[serde(default)]
    goto: Option<Spanned<String>>,
    #[serde(default, rename = "return")]
    ret: Option<bool>,
    #[serde(default)]
    transfer: Option<Spanned<String>>,
    #[serde(default)]
    priority: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    on_fail: Option<Spanned<String>>,
    #[serde(default)]
    hangup: Option<Spanned<String>>,
}

/// Reads and validates a flow file.
pub fn load_file(path: &Path) -> Result<Flow, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        errors: vec![FlowError {
            location: None,
            problem: Problem::Io(e),
        }],
    })?;
    load_str(path, &text)
}

/// Validates flow text; `path` is only used in messages.
pub fn load_str(path: &Path, text: &str) -> Result<Flow, LoadError> {
    let raw: RawFlow = toml::from_str(text).map_err(|e| LoadError {
        errors: vec![FlowError {
            location: Some(Location::at(path, text, e.span().map_or(0, |s| s.start))),
            problem: Problem::Syntax(e),
        }],
    })?;
    let mut v = Validator {
        path,
        text,
        errors: Vec::new(),
        form_ids: raw
            .form
            .keys()
            .enumerate()
            .map(|(i, k)| (k.get_ref().clone(), i))
            .collect(),
        prompts: &raw.prompts,
    };
    let intents = match IntentModel::new(&bank_intents()) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            return Err(LoadError {
                errors: vec![FlowError {
                    location: None,
                    problem: Problem::Intents(e),
                }],
            })
        }
    };
    let intent_names: BTreeSet<String> = intents.intent_names().map(str::to_string).collect();
    let flow = v.flow(&raw, intents, &intent_names);
    v.check_variables(&raw, &flow);
    v.check_reachability(&raw, &flow);
    if v.errors.is_empty() {
        Ok(flow)
    } else {
        v.errors
            .sort_by_key(|e| e.location.as_ref().map_or((0, 0), |l| (l.line, l.column)));
        Err(LoadError { errors: v.errors })
    }
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<FlowError>,
    form_ids: BTreeMap<String, FormId>,
    prompts: &'a BTreeMap<String, String>,
}

impl Validator<'_> {
    fn err<T>(&mut self, at: &Spanned<T>, problem: Problem) {
        self.err_at(at.span().start, problem);
    }

    fn err_at(&mut self, offset: usize, problem: Problem) {
        let location = Some(Location::at(self.path, self.text, offset));
        self.errors.push(FlowError { location, problem });
    }

    fn form(&mut self, name: &Spanned<String>) -> FormId {
        match self.form_ids.get(name.get_ref()) {
            Some(&id) => id,
            None => {
                self.err(name, Problem::UnknownForm(name.get_ref().clone()));
                0
            }
        }
    }

    fn opt_form(&mut self, name: &Option<Spanned<String>>) -> Option<FormId> {
        name.as_ref().map(|n| self.form(n))
    }

    fn items(&mut self, raw: &[Spanned<String>]) -> Vec<PromptItem> {
        raw.iter().map(|s| self.item(s)).collect()
    }

    fn item(&mut self, s: &Spanned<String>) -> PromptItem {
        let text = s.get_ref();
        match text.find('$') {
            Some(0) => PromptItem::Var(text[1..].to_string()),
            Some(i) => {
                let prefix = text[..i].to_string();
                let rest = &text[i + 1..];
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let var = rest[..end].to_string();
                let suffix = rest[end..].to_string();
                if !self
                    .prompts
                    .keys()
                    .any(|k| k.starts_with(&prefix) && k.ends_with(&suffix))
                {
                    self.err(
                        s,
                        Problem::UnknownTemplate {
                            prefix: prefix.clone(),
                            suffix: suffix.clone(),
                        },
                    );
                }
                PromptItem::Template {
                    prefix,
                    var,
                    suffix,
                }
            }
            None => {
                if !self.prompts.contains_key(text) {
                    self.err(s, Problem::UnknownPrompt(text.clone()));
                }
                PromptItem::Prompt(Arc::from(text.as_str()))
            }
        }
    }

    fn cond(&mut self, raw: &Option<Spanned<String>>) -> Option<Cond> {
        let raw = raw.as_ref()?;
        match parse_cond(raw.get_ref()) {
            Some(c) => Some(c),
            None => {
                self.err(raw, Problem::BadCondition(raw.get_ref().clone()));
                None
            }
        }
    }

    fn ranged(
        &mut self,
        v: &Spanned<i64>,
        field: &'static str,
        lo: i64,
        hi: i64,
        range: &'static str,
    ) -> i64 {
        let x = *v.get_ref();
        if (lo..=hi).contains(&x) {
            x
        } else {
            self.err(
                v,
                Problem::OutOfRange {
                    field,
                    value: x.to_string(),
                    range,
                },
            );
            lo
        }
    }

    fn handlers(&mut self, raw: &[Spanned<RawHandler>]) -> Vec<Handler> {
        let mut out = Vec::new();
        for h in raw {
            let r = h.get_ref();
            let event = match r.event.get_ref().as_str() {
                "noinput" => HandlerEvent::NoInput,
                "nomatch" => HandlerEvent::NoMatch,
                "help" => HandlerEvent::Help,
                other => {
                    self.err(
                        &r.event,
                        Problem::BadChoice {
                            field: "event",
                            value: other.to_string(),
                            allowed: "noinput, nomatch, help",
                        },
                    );
                    continue;
                }
            };
            let count = match &r.count {
                Some(c) => self.ranged(c, "count", 1, 100, "1..=100") as u32,
                None => 1,
            };
            out.push(Handler {
                event,
                count,
                say: self.items(&r.say),
                goto: self.opt_form(&r.goto),
                reprompt: r.reprompt.unwrap_or(true),
            });
        }
        out
    }

    fn flow(
        &mut self,
        raw: &RawFlow,
        intents: Arc<IntentModel>,
        intent_names: &BTreeSet<String>,
    ) -> Flow {
        let h = &raw.flow;
        let language = h.language.get_ref().clone();
        if !matches!(language.as_str(), "en" | "zh") {
            self.err(
                &h.language,
                Problem::BadChoice {
                    field: "language",
                    value: language.clone(),
                    allowed: "en, zh",
                },
            );
        }
        let max_errors = self.ranged(&h.max_errors, "max_errors", 1, 100, "1..=100") as u32;
        let no_input_ms = self.ranged(&h.no_input_ms, "no_input_ms", 1000, 60_000, "1000..=60000");
        let no_input = Duration::from_millis(no_input_ms as u64);
        let start = self.form(&h.start);
        let escalate = self.form(&h.escalate);
        let verify = self.opt_form(&h.verify);
        let backend_error = self.form(&h.backend_error);
        let transfer_failed = self.form(&h.transfer_failed);

        let mut commands = Vec::new();
        for c in &raw.command {
            let r = c.get_ref();
            let action = match (&r.goto, &r.action) {
                (Some(g), None) => CommandAction::Goto(self.form(g)),
                (None, Some(a)) => match a.get_ref().as_str() {
                    "repeat" => CommandAction::Repeat,
                    "help" => CommandAction::Help,
                    other => {
                        self.err(
                            a,
                            Problem::BadChoice {
                                field: "action",
                                value: other.to_string(),
                                allowed: "repeat, help",
                            },
                        );
                        continue;
                    }
                },
                _ => {
                    self.err(c, Problem::BadCommand);
                    continue;
                }
            };
            if r.intent.is_none() && r.dtmf.is_none() {
                self.err(c, Problem::BadCommand);
                continue;
            }
            if let Some(i) = &r.intent {
                if !intent_names.contains(i.get_ref()) {
                    self.err(i, Problem::UnknownIntent(i.get_ref().clone()));
                }
            }
            let dtmf = r.dtmf.as_ref().and_then(|d| self.dtmf_key(d));
            commands.push(Command {
                name: r.name.clone(),
                intent: r.intent.as_ref().map(|i| i.get_ref().clone()),
                dtmf,
                action,
            });
        }
        let handlers = self.handlers(&raw.handler);

        let mut forms = Vec::new();
        for (name, form) in &raw.form {
            let f = form.get_ref();
            let mut slots = Vec::new();
            let mut seen = BTreeSet::new();
            for s in &f.slot {
                let r = s.get_ref();
                if !seen.insert(r.name.get_ref().clone()) {
                    self.err(&r.name, Problem::UnreachableSlot(r.name.get_ref().clone()));
                }
                if let Some(slot) = self.slot(r, no_input, intent_names) {
                    slots.push(slot);
                }
            }
            let steps: Vec<Step> = f.steps.iter().filter_map(|s| self.step(s)).collect();
            let leaves = steps.last().is_some_and(|s| {
                s.when.is_none()
                    && matches!(
                        s.kind,
                        StepKind::Route { .. }
                            | StepKind::Goto(_)
                            | StepKind::Return
                            | StepKind::Transfer { .. }
                            | StepKind::HangUp(_)
                    )
            });
            if !leaves && f.steps.len() == steps.len() {
                self.err(name, Problem::NoExit(name.get_ref().clone()));
            }
            forms.push(Form {
                name: name.get_ref().clone(),
                requires: f.requires.iter().map(|r| r.get_ref().clone()).collect(),
                slots,
                steps,
                handlers: self.handlers(&f.handler),
            });
        }
        Flow {
            name: h.name.clone(),
            language,
            source: self.path.to_path_buf(),
            start,
            escalate,
            verify,
            backend_error,
            transfer_failed,
            max_errors,
            prompts: raw.prompts.clone(),
            commands,
            handlers,
            forms,
            intents,
        }
    }

    fn dtmf_key(&mut self, d: &Spanned<String>) -> Option<char> {
        let mut chars = d.get_ref().chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
            _ => {
                self.err(
                    d,
                    Problem::BadChoice {
                        field: "dtmf",
                        value: d.get_ref().clone(),
                        allowed: "one of 0-9, *, #",
                    },
                );
                None
            }
        }
    }

    fn slot(
        &mut self,
        r: &RawSlot,
        default_no_input: Duration,
        intent_names: &BTreeSet<String>,
    ) -> Option<Slot> {
        let kind = match r.kind.get_ref().as_str() {
            "intent" => {
                let mut values = Vec::new();
                for v in &r.values {
                    if !intent_names.contains(v.get_ref()) {
                        self.err(v, Problem::UnknownIntent(v.get_ref().clone()));
                    }
                    values.push(v.get_ref().clone());
                }
                if values.is_empty() {
                    self.err(&r.name, Problem::Missing("intent slot", "values"));
                }
                for v in r.dtmf.values() {
                    if !intent_names.contains(v.get_ref()) {
                        self.err(v, Problem::UnknownIntent(v.get_ref().clone()));
                    }
                }
                SlotKind::Intent { values }
            }
            "digits" => {
                let min = match &r.min {
                    Some(m) => self.ranged(m, "min", 1, 32, "1..=32") as usize,
                    None => 1,
                };
                let max = match &r.max {
                    Some(m) => self.ranged(m, "max", 1, 32, "1..=32") as usize,
                    None => 32,
                };
                if min > max {
                    if let Some(m) = &r.min {
                        self.err(
                            m,
                            Problem::OutOfRange {
                                field: "min",
                                value: min.to_string(),
                                range: "at most max",
                            },
                        );
                    }
                }
                let terminator = r.terminator.as_ref().and_then(|t| self.dtmf_key(t));
                SlotKind::Digits {
                    min,
                    max,
                    terminator,
                }
            }
            "yes_no" => SlotKind::YesNo,
            "amount" => SlotKind::Amount,
            other => {
                self.err(
                    &r.kind,
                    Problem::BadChoice {
                        field: "type",
                        value: other.to_string(),
                        allowed: "intent, digits, yes_no, amount",
                    },
                );
                return None;
            }
        };
        if r.prompt.is_empty() {
            self.err(&r.name, Problem::NoPrompt(r.name.get_ref().clone()));
        }
        let mut prompts = vec![self.items(&r.prompt)];
        if !r.reprompt.is_empty() {
            prompts.push(self.items(&r.reprompt));
        }
        let mut dtmf = BTreeMap::new();
        for (k, v) in &r.dtmf {
            let key = Spanned::new(v.span(), k.clone());
            if let Some(c) = self.dtmf_key(&key) {
                dtmf.insert(c, v.get_ref().clone());
            }
        }
        let confirm_below = r.confirm_below.as_ref().map(|c| {
            let x = *c.get_ref();
            if !(0.0..=1.0).contains(&x) {
                self.err(
                    c,
                    Problem::OutOfRange {
                        field: "confirm_below",
                        value: x.to_string(),
                        range: "0..=1",
                    },
                );
            }
            x as f32
        });
        if confirm_below.is_some() && r.confirm.is_empty() {
            self.err(&r.name, Problem::Missing("confirm_below", "confirm"));
        }
        let endpointing = match r.endpoint.as_ref().map(|e| e.get_ref().as_str()) {
            None => match kind {
                SlotKind::Digits { .. } => Endpointing::DigitString,
                SlotKind::YesNo => Endpointing::YesNo,
                _ => Endpointing::FreeSpeech,
            },
            Some("free") => Endpointing::FreeSpeech,
            Some("yes_no") => Endpointing::YesNo,
            Some("digits") => Endpointing::DigitString,
            Some(other) => {
                if let Some(e) = &r.endpoint {
                    self.err(
                        e,
                        Problem::BadChoice {
                            field: "endpoint",
                            value: other.to_string(),
                            allowed: "free, yes_no, digits",
                        },
                    );
                }
                Endpointing::FreeSpeech
            }
        };
        let no_input = match &r.no_input_ms {
            Some(ms) => {
                Duration::from_millis(
                    self.ranged(ms, "no_input_ms", 1000, 60_000, "1000..=60000") as u64
                )
            }
            None => default_no_input,
        };
        Some(Slot {
            var: r.name.get_ref().clone(),
            kind,
            prompts,
            dtmf,
            confirm_below,
            confirm: self.items(&r.confirm),
            keypad_only: r.keypad_only,
            sensitive: r.sensitive,
            mixed: r.mixed,
            bias: r.bias.clone(),
            endpointing,
            barge_in: r.barge_in.unwrap_or(true),
            no_input,
            handlers: self.handlers(&r.handler),
            when: self.cond(&r.when),
        })
    }

    fn step(&mut self, s: &Spanned<RawStep>) -> Option<Step> {
        let r = s.get_ref();
        let kinds = [
            r.say.is_some(),
            r.invoke.is_some(),
            r.set.is_some(),
            r.clear.is_some(),
            r.route.is_some(),
            r.goto.is_some(),
            r.ret.is_some(),
            r.transfer.is_some(),
            r.hangup.is_some(),
        ]
        .into_iter()
        .filter(|&k| k)
        .count();
        if kinds != 1 {
            self.err(s, Problem::StepKind(kinds));
            return None;
        }
        let when = self.cond(&r.when);
        let kind = if let Some(say) = &r.say {
            StepKind::Say {
                items: self.items(say),
                barge_in: r.barge_in.unwrap_or(true),
            }
        } else if let Some(op) = &r.invoke {
            let Some(o) = Op::from_name(op.get_ref()) else {
                self.err(op, Problem::UnknownOp(op.get_ref().clone()));
                return None;
            };
            StepKind::Invoke {
                op: o,
                on_error: self.opt_form(&r.on_error),
            }
        } else if let Some(set) = &r.set {
            let mut out = Vec::new();
            for (k, v) in set {
                let value = match v.get_ref() {
                    toml::Value::String(s) => Value::Text(s.clone()),
                    toml::Value::Boolean(b) => Value::Bool(*b),
                    toml::Value::Integer(i) => Value::Number(*i),
                    _ => {
                        self.err(
                            v,
                            Problem::BadChoice {
                                field: "set",
                                value: v.get_ref().to_string(),
                                allowed: "a string, boolean or integer",
                            },
                        );
                        continue;
                    }
                };
                out.push((k.clone(), value));
            }
            StepKind::Set(out)
        } else if let Some(clear) = &r.clear {
            StepKind::Clear(clear.iter().map(|c| c.get_ref().clone()).collect())
        } else if let Some(var) = &r.route {
            let Some(default) = &r.default else {
                self.err(var, Problem::Missing("route", "default"));
                return None;
            };
            let cases = r
                .cases
                .iter()
                .map(|(k, f)| (k.clone(), self.form(f)))
                .collect();
            StepKind::Route {
                var: var.get_ref().clone(),
                cases,
                default: self.form(default),
            }
        } else if let Some(g) = &r.goto {
            StepKind::Goto(self.form(g))
        } else if r.ret.is_some() {
            StepKind::Return
        } else if let Some(skill) = &r.transfer {
            StepKind::Transfer {
                skill: skill.get_ref().clone(),
                priority: r.priority,
                reason: r.reason.clone().unwrap_or_else(|| skill.get_ref().clone()),
                on_fail: self.opt_form(&r.on_fail),
            }
        } else if let Some(h) = &r.hangup {
            let cause = match h.get_ref().as_str() {
                "completed" => HangupCause::Completed,
                "no_input" => HangupCause::NoInput,
                "too_many_errors" => HangupCause::TooManyErrors,
                other => {
                    self.err(
                        h,
                        Problem::BadChoice {
                            field: "hangup",
                            value: other.to_string(),
                            allowed: "completed, no_input, too_many_errors",
                        },
                    );
                    return None;
                }
            };
            StepKind::HangUp(cause)
        } else {
            return None;
        };
        Some(Step { when, kind })
    }

    /// Every variable read (conditions, prompts, routes, backend inputs) must be produced somewhere.
    fn check_variables(&mut self, raw: &RawFlow, flow: &Flow) {
        let mut produced: BTreeSet<String> = BUILTIN_VARS.iter().map(|s| s.to_string()).collect();
        for form in &flow.forms {
            for s in &form.slots {
                produced.insert(s.var.clone());
            }
            for st in &form.steps {
                match &st.kind {
                    StepKind::Invoke { op, .. } => {
                        produced.extend(op.outputs().iter().map(|s| s.to_string()));
                    }
                    StepKind::Set(pairs) => {
                        produced.extend(pairs.iter().map(|(k, _)| k.clone()));
                    }
                    _ => {}
                }
            }
        }
        // (offset of the slot, step or form that reads it, variable)
        let mut reads: Vec<(usize, String)> = Vec::new();
        for ((_, rf), form) in raw.form.iter().zip(&flow.forms) {
            let at = rf.span().start;
            reads.extend(form.requires.iter().map(|r| (at, r.clone())));
            for (rs, slot) in rf.get_ref().slot.iter().zip(&form.slots) {
                let at = rs.span().start;
                let items = slot.prompts.iter().flatten().chain(&slot.confirm);
                reads.extend(prompt_vars(items).into_iter().map(|v| (at, v)));
                reads.extend(slot.when.iter().map(|c| (at, c.var.clone())));
            }
            for (rs, step) in rf.get_ref().steps.iter().zip(&form.steps) {
                let at = rs.span().start;
                reads.extend(step.when.iter().map(|c| (at, c.var.clone())));
                match &step.kind {
                    StepKind::Say { items, .. } => {
                        reads.extend(prompt_vars(items.iter()).into_iter().map(|v| (at, v)));
                    }
                    StepKind::Invoke { op, .. } => {
                        reads.extend(op.inputs().iter().map(|v| (at, v.to_string())));
                    }
                    StepKind::Route { var, .. } => reads.push((at, var.clone())),
                    _ => {}
                }
            }
        }
        for (at, var) in reads {
            if !produced.contains(&var) {
                self.err_at(at, Problem::UnsetVariable(var));
            }
        }
    }

    /// Every form must be reachable from an entry point (start, escalation, verification, error forms,
    /// commands, handlers).
    fn check_reachability(&mut self, raw: &RawFlow, flow: &Flow) {
        let n = flow.forms.len();
        if n == 0 {
            return;
        }
        let mut edges: Vec<Vec<FormId>> = vec![Vec::new(); n];
        let mut roots = vec![
            flow.start,
            flow.escalate,
            flow.backend_error,
            flow.transfer_failed,
        ];
        roots.extend(flow.verify);
        for c in &flow.commands {
            if let CommandAction::Goto(f) = c.action {
                roots.push(f);
            }
        }
        roots.extend(flow.handlers.iter().filter_map(|h| h.goto));
        for (i, form) in flow.forms.iter().enumerate() {
            let e = &mut edges[i];
            if !form.requires.is_empty() {
                e.extend(flow.verify);
            }
            e.extend(form.handlers.iter().filter_map(|h| h.goto));
            for s in &form.slots {
                e.extend(s.handlers.iter().filter_map(|h| h.goto));
            }
            for st in &form.steps {
                match &st.kind {
                    StepKind::Invoke { on_error, .. } => e.extend(*on_error),
                    StepKind::Route { cases, default, .. } => {
                        e.extend(cases.iter().map(|(_, f)| *f));
                        e.push(*default);
                    }
                    StepKind::Goto(f) => e.push(*f),
                    StepKind::Transfer { on_fail, .. } => e.extend(*on_fail),
                    _ => {}
                }
            }
        }
        let mut seen = vec![false; n];
        let mut queue: VecDeque<FormId> = roots.into_iter().filter(|&r| r < n).collect();
        while let Some(f) = queue.pop_front() {
            if std::mem::replace(&mut seen[f], true) {
                continue;
            }
            queue.extend(edges[f].iter().copied().filter(|&t| t < n && !seen[t]));
        }
        for ((name, _), reached) in raw.form.iter().zip(seen) {
            if !reached {
                self.err(name, Problem::UnreachableForm(name.get_ref().clone()));
            }
        }
    }
}

fn prompt_vars<'a>(items: impl Iterator<Item = &'a PromptItem>) -> Vec<String> {
    items
        .filter_map(|i| match i {
            PromptItem::Var(v) | PromptItem::Template { var: v, .. } => Some(v.clone()),
            PromptItem::Prompt(_) => None,
        })
        .collect()
}

fn parse_cond(s: &str) -> Option<Cond> {
    let ident = |x: &str| {
        let x = x.trim();
        (!x.is_empty() && x.chars().all(|c| c.is_alphanumeric() || c == '_')).then(|| x.to_string())
    };
    if let Some((l, r)) = s.split_once("!=") {
        return Some(Cond {
            var: ident(l)?,
            equals: Some(ident(r)?),
            negate: true,
        });
    }
    if let Some((l, r)) = s.split_once("==") {
        return Some(Cond {
            var: ident(l)?,
            equals: Some(ident(r)?),
            negate: false,
        });
    }
    let s = s.trim();
    match s.strip_prefix('!') {
        Some(rest) => Some(Cond {
            var: ident(rest)?,
            equals: None,
            negate: true,
        }),
        None => Some(Cond {
            var: ident(s)?,
            equals: None,
            negate: false,
        }),
    }
}
