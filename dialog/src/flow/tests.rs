//! Flow engine on simulated event streams, against the bundled bank flow and small purpose-built flows.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::HangupCause;

fn bank() -> Arc<Flow> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../flows/bank.en.toml");
    match load_file(&path) {
        Ok(f) => Arc::new(f),
        Err(e) => panic!("bundled flow does not load:\n{e}"),
    }
}

/// A call on simulated time.
struct Call {
    s: Session,
    now: Instant,
    log: Vec<Action>,
}

impl Call {
    fn new(flow: Arc<Flow>) -> Self {
        Self {
            s: Session::new(flow),
            now: Instant::now(),
            log: Vec::new(),
        }
    }

    fn ev(&mut self, e: Event) -> Vec<Action> {
        let a = self.s.step(e, self.now);
        self.log.extend(a.iter().cloned());
        a
    }

    fn start(&mut self, caller: &str) -> Vec<Action> {
        self.ev(Event::Started {
            caller: Some(caller.into()),
            called: Some("100".into()),
        })
    }

    fn say(&mut self, text: &str, conf: f32) -> Vec<Action> {
        self.ev(Event::Speech {
            nbest: vec![(text.to_string(), conf)],
        })
    }

    fn keys(&mut self, keys: &str) -> Vec<Action> {
        let mut out = Vec::new();
        for k in keys.chars() {
            out.extend(self.ev(Event::Digit(k)));
        }
        out
    }

    fn done(&mut self) -> Vec<Action> {
        self.ev(Event::PromptDone)
    }

    /// Lets the next deadline pass.
    fn wait(&mut self) -> Vec<Action> {
        let due = self.s.poll_timeout().expect("a deadline is armed");
        self.now = due + Duration::from_millis(1);
        self.ev(Event::Timeout)
    }

    fn reply(
        &mut self,
        actions: &[Action],
        result: Result<Vec<(&str, Value)>, BackendFailure>,
    ) -> Vec<Action> {
        let id = invoked(actions).expect("an Invoke").0;
        self.ev(Event::BackendResult {
            id,
            result: result.map(|v| v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
        })
    }
}

fn prompts(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Play { items, .. } => Some(items),
            _ => None,
        })
        .flatten()
        .map(|s| match s {
            Say::Prompt(p) => p.to_string(),
            Say::Digits(d) => format!("digits:{d}"),
            Say::Money {
                minor_units,
                currency,
            } => format!("money:{minor_units}{currency}"),
            Say::Number(n) => format!("number:{n}"),
        })
        .collect()
}

type Invoked = (u64, Op, Vec<(String, Value)>);

fn invoked(actions: &[Action]) -> Option<Invoked> {
    actions.iter().find_map(|a| match a {
        Action::Invoke { id, op, args } => Some((*id, *op, args.clone())),
        _ => None,
    })
}

fn transfer(actions: &[Action]) -> Option<(String, bool)> {
    actions.iter().find_map(|a| match a {
        Action::Transfer {
            skill, priority, ..
        } => Some((skill.clone(), *priority)),
        _ => None,
    })
}

fn unknown_caller() -> Result<Vec<(&'static str, Value)>, BackendFailure> {
    Ok(vec![("customer_known", Value::Bool(false))])
}

/// Started → lookup → greeting, waiting for the caller.
fn at_greeting() -> Call {
    let mut c = Call::new(bank());
    let a = c.start("+15550109999");
    let (_, op, args) = invoked(&a).expect("lookup first");
    assert_eq!(op, Op::LookupCaller);
    assert_eq!(args[0].1, Value::Digits("+15550109999".into()));
    let a = c.reply(&a, unknown_caller());
    assert_eq!(prompts(&a), ["greeting"]);
    c.done();
    c
}

/// Account then PIN, answered `ok`.
fn verify(c: &mut Call, account_by_speech: bool) -> Vec<Action> {
    if account_by_speech {
        let a = c.say("one two three four five six seven eight", 0.9);
        assert_eq!(prompts(&a), ["ask_pin"]);
    }
    c.done();
    let a = c.keys("2580#");
    let (_, op, args) = invoked(&a).expect("verify_pin");
    assert_eq!(op, Op::VerifyPin);
    assert!(args.iter().any(|(k, v)| k == "pin" && v.is_secret()));
    c.reply(
        &a,
        Ok(vec![
            ("verify_result", Value::Text("ok".into())),
            ("verified", Value::Bool(true)),
            ("pin_verified", Value::Bool(true)),
        ]),
    )
}

#[test]
fn the_bundled_bank_flow_loads() {
    let f = bank();
    assert_eq!(f.language, "en");
    assert!(f.forms.len() > 15);
    assert!(f
        .prompt_text("greeting")
        .is_some_and(|t| t.starts_with("Welcome")));
}

#[test]
fn lost_card_by_speech_end_to_end() {
    let mut c = at_greeting();
    let a = c.say("I lost my credit card", 0.9);
    // Card tasks need verification first.
    assert_eq!(prompts(&a), ["ask_account"]);
    assert!(a.contains(&Action::Analytics(Analytics::FormEntered {
        form: "verify".into()
    })));
    let a = verify(&mut c, true);
    assert_eq!(prompts(&a), ["verified_ok", "confirm_freeze"]);
    c.done();
    let a = c.say("Yes, please.", 0.9);
    let (_, op, _) = invoked(&a).expect("freeze");
    assert_eq!(op, Op::FreezeCard);
    let a = c.reply(
        &a,
        Ok(vec![
            ("card_last4", Value::Digits("4242".into())),
            ("card_frozen", Value::Bool(true)),
        ]),
    );
    assert_eq!(
        prompts(&a),
        [
            "card_frozen",
            "digits:4242",
            "card_frozen_2",
            "anything_else"
        ]
    );
    c.done();
    let a = c.say("No, that's all, thanks.", 0.9);
    assert_eq!(prompts(&a), ["goodbye"]);
    let a = c.done();
    assert!(a.contains(&Action::HangUp(HangupCause::Completed)));
    assert!(a.contains(&Action::Analytics(Analytics::Ended { contained: true })));
    assert!(c.s.is_done());
}

#[test]
fn the_pin_never_leaves_the_engine_unmasked() {
    let mut c = at_greeting();
    c.say("check my account balance", 0.9);
    verify(&mut c, true);
    for a in &c.log {
        let shown = format!("{a:?}");
        if let Action::Invoke { .. } = a {
            continue;
        }
        assert!(!shown.contains("2580"), "{shown}");
        assert!(
            !shown.contains("'2'") || !shown.contains("RecordDigit"),
            "{shown}"
        );
    }
    let masked: String = c
        .log
        .iter()
        .filter_map(|a| match a {
            Action::RecordDigit(d) => Some(*d),
            _ => None,
        })
        .collect();
    // The terminator comes after the entry completed at four digits: nothing to hide.
    assert_eq!(masked, "****#");
    assert!(c.log.contains(&Action::Sensitive(true)));
    assert!(c.log.contains(&Action::Sensitive(false)));
    // The PIN is cleared once checked.
    assert!(!c.s.vars().contains_key("pin"));
    // Speech while the PIN is asked is not taken as an answer.
    let mut c = at_greeting();
    c.say("check my account balance", 0.9);
    c.say("one two three four five six seven eight", 0.9);
    let a = c.say("two five eight zero", 0.9);
    assert!(a.is_empty(), "{a:?}");
}

#[test]
fn one_answer_fills_several_slots() {
    let mut c = at_greeting();
    let a = c.say(
        "I lost my card, my account number is one two three four five six seven eight",
        0.9,
    );
    assert_eq!(
        c.s.vars().get("intent"),
        Some(&Value::Text("lost_card".into()))
    );
    assert_eq!(
        c.s.vars().get("account"),
        Some(&Value::Digits("12345678".into()))
    );
    // Straight to the PIN: the account was already given.
    assert_eq!(prompts(&a), ["ask_pin"]);
}

#[test]
fn low_confidence_is_confirmed_and_no_clears_the_slot() {
    let mut c = at_greeting();
    let a = c.say("I lost my credit card", 0.3);
    assert_eq!(prompts(&a), ["confirm/lost_card"]);
    assert!(!c.s.vars().contains_key("intent"));
    c.done();
    let a = c.say("no", 0.9);
    assert!(a.contains(&Action::Analytics(Analytics::Confirmation {
        slot: "intent".into(),
        accepted: false
    })));
    // Asked again, tapered to the short prompt.
    assert_eq!(prompts(&a), ["greeting_short"]);
    c.done();
    let a = c.say("check my balance", 0.35);
    assert_eq!(prompts(&a), ["confirm/balance"]);
    c.done();
    let a = c.keys("1");
    assert_eq!(
        c.s.vars().get("intent"),
        Some(&Value::Text("balance".into()))
    );
    assert_eq!(prompts(&a), ["ask_account"]);
}

#[test]
fn handlers_escalate_by_count_then_a_human_takes_over() {
    let mut c = at_greeting();
    // 1st no-match: the flow-wide handler, then the tapered re-prompt.
    let a = c.say("the weather in paris", 0.9);
    assert_eq!(prompts(&a), ["not_understood", "greeting_short"]);
    c.done();
    // 2nd: the slot's count=2 handler offers the keypad and waits without re-prompting.
    let a = c.say("purple elephants", 0.9);
    assert_eq!(prompts(&a), ["not_understood", "keypad_menu"]);
    c.done();
    // 3rd error (a no-input this time): max_errors reached, a human.
    let a = c.wait();
    assert!(a.contains(&Action::Analytics(Analytics::Escalated { errors: 3 })));
    assert_eq!(prompts(&a), ["transfer_agent"]);
    assert_eq!(transfer(&a), Some(("general".into(), false)));
    let a = c.ev(Event::TransferResult(TransferOutcome::Connected));
    assert!(a.is_empty());
    let a = c.ev(Event::Hangup);
    assert!(a.contains(&Action::Analytics(Analytics::Ended { contained: false })));
}

#[test]
fn no_input_reprompts_with_the_noinput_handler() {
    let mut c = at_greeting();
    let a = c.wait();
    assert!(a.contains(&Action::Analytics(Analytics::NoInput {
        slot: "intent".into(),
        count: 1
    })));
    assert_eq!(prompts(&a), ["no_input", "greeting_short"]);
}

#[test]
fn agent_by_keypad_or_by_voice_at_any_time() {
    let mut c = at_greeting();
    let a = c.keys("0");
    assert_eq!(transfer(&a), Some(("general".into(), false)));
    let mut c = at_greeting();
    c.say("check my balance", 0.9);
    let a = c.say("transfer me to an agent", 0.9);
    assert!(a.contains(&Action::Analytics(Analytics::Command {
        name: "agent".into()
    })));
    assert_eq!(transfer(&a), Some(("general".into(), false)));
}

#[test]
fn keypad_menu_fallback_fills_the_intent() {
    let mut c = at_greeting();
    let a = c.keys("2");
    assert!(a.contains(&Action::Analytics(Analytics::Intent {
        slot: "intent".into(),
        intent: "lost_card".into(),
        confidence: 1.0,
        margin: 1.0
    })));
    assert_eq!(
        c.s.vars().get("intent"),
        Some(&Value::Text("lost_card".into()))
    );
    assert_eq!(prompts(&a), ["ask_account"]);
}

#[test]
fn wrong_pins_retry_then_lockout_goes_to_an_agent() {
    let mut c = at_greeting();
    c.say("what's my balance", 0.9);
    c.say("one two three four five six seven eight", 0.9);
    c.done();
    let a = c.keys("1111#");
    let a = c.reply(
        &a,
        Ok(vec![
            ("verify_result", Value::Text("wrong".into())),
            ("verified", Value::Bool(false)),
        ]),
    );
    assert!(a.contains(&Action::Analytics(Analytics::Verification {
        outcome: "wrong".into()
    })));
    // The account is asked again (it may have been misheard).
    assert_eq!(prompts(&a), ["wrong_pin", "ask_account"]);
    c.done();
    c.keys("12345678");
    c.done();
    let a = c.keys("2222#");
    let a = c.reply(
        &a,
        Ok(vec![
            ("verify_result", Value::Text("locked".into())),
            ("verified", Value::Bool(false)),
        ]),
    );
    assert_eq!(prompts(&a), ["locked_out", "transfer_agent"]);
    assert!(transfer(&a).is_some());
}

#[test]
fn a_backend_outage_apologises_and_hands_over() {
    let mut c = at_greeting();
    c.say("check my balance", 0.9);
    let a = verify(&mut c, true);
    let (_, op, _) = invoked(&a).expect("balance");
    assert_eq!(op, Op::Balance);
    let a = c.reply(&a, Err(BackendFailure::Unavailable));
    assert_eq!(prompts(&a), ["backend_down", "transfer_agent"]);
    assert!(transfer(&a).is_some());
}

#[test]
fn balance_is_read_as_money() {
    let mut c = at_greeting();
    c.say("check my account balance", 0.9);
    let a = verify(&mut c, true);
    let a = c.reply(
        &a,
        Ok(vec![(
            "balance",
            Value::Money {
                minor_units: 123_456,
                currency: "USD".into(),
            },
        )]),
    );
    assert_eq!(
        prompts(&a),
        ["balance_is", "money:123456USD", "anything_else"]
    );
}

#[test]
fn fraud_freezes_first_and_transfers_with_priority() {
    let mut c = at_greeting();
    let a = c.say(
        "someone called and told me to move my money to a safe account",
        0.9,
    );
    assert_eq!(prompts(&a), ["fraud_intro", "ask_account"]);
    c.done();
    let a = c.keys("12345678");
    let (_, op, _) = invoked(&a).expect("report_fraud");
    assert_eq!(op, Op::ReportFraud);
    let a = c.reply(
        &a,
        Ok(vec![
            ("case_id", Value::Digits("7001".into())),
            ("card_last4", Value::Digits("4242".into())),
            ("card_frozen", Value::Bool(true)),
        ]),
    );
    assert_eq!(prompts(&a), ["fraud_done", "digits:7001", "fraud_transfer"]);
    assert_eq!(transfer(&a), Some(("fraud".into(), true)));
}

#[test]
fn a_failed_transfer_never_leaves_the_caller_in_silence() {
    let mut c = at_greeting();
    c.keys("0");
    let a = c.ev(Event::TransferResult(TransferOutcome::Failed(
        TransferFailure::NoAgents,
    )));
    assert_eq!(prompts(&a), ["no_agent"]);
    let a = c.done();
    assert!(a.contains(&Action::HangUp(HangupCause::Completed)));
}

#[test]
fn a_queue_timeout_offers_to_keep_waiting_or_go_back_to_the_assistant() {
    let mut c = at_greeting();
    c.keys("0");
    let timeout = Event::TransferResult(TransferOutcome::Failed(TransferFailure::QueueTimeout));
    let a = c.ev(timeout.clone());
    assert!(a.contains(&Action::Analytics(Analytics::TransferFailed {
        reason: "queue_timeout"
    })));
    assert_eq!(prompts(&a), ["queue_options"]);
    assert_eq!(
        c.s.vars().get("transfer_failure"),
        Some(&Value::Text("queue_timeout".into()))
    );
    c.done();
    // 1 = keep waiting: the same hand-off again.
    let a = c.keys("1");
    assert_eq!(transfer(&a), Some(("general".into(), false)));
    // Timed out again, and this time back to the assistant.
    let a = c.ev(timeout);
    assert_eq!(prompts(&a), ["queue_options"]);
    c.done();
    let a = c.say("no", 0.9);
    assert_eq!(transfer(&a), None);
    assert_eq!(prompts(&a), ["anything_else"]);
}

#[test]
fn a_fraud_caller_who_keeps_waiting_stays_on_the_priority_fraud_line() {
    let mut c = at_greeting();
    c.say(
        "someone called and told me to move my money to a safe account",
        0.9,
    );
    c.done();
    let a = c.keys("12345678");
    let a = c.reply(
        &a,
        Ok(vec![
            ("case_id", Value::Digits("7001".into())),
            ("card_last4", Value::Digits("4242".into())),
            ("card_frozen", Value::Bool(true)),
        ]),
    );
    assert_eq!(transfer(&a), Some(("fraud".into(), true)));
    c.ev(Event::TransferResult(TransferOutcome::Failed(
        TransferFailure::QueueTimeout,
    )));
    c.done();
    let a = c.say("yes please", 0.9);
    assert_eq!(transfer(&a), Some(("fraud".into(), true)));
}

#[test]
fn a_known_caller_with_a_declined_payment_is_asked_about_it_first() {
    let mut c = Call::new(bank());
    let a = c.start("+15550100001");
    let a = c.reply(
        &a,
        Ok(vec![
            ("customer_known", Value::Bool(true)),
            ("recent_event", Value::Text("declined_payment".into())),
        ]),
    );
    assert_eq!(prompts(&a), ["predict_declined"]);
    c.done();
    let a = c.say("yes it is", 0.9);
    assert_eq!(prompts(&a), ["ask_account"]);
    let a = verify(&mut c, true);
    assert_eq!(
        prompts(&a),
        ["verified_ok", "declined_info", "anything_else"]
    );
    // "No, something else" goes to the normal greeting.
    let mut c = Call::new(bank());
    let a = c.start("+15550100001");
    c.reply(
        &a,
        Ok(vec![(
            "recent_event",
            Value::Text("declined_payment".into()),
        )]),
    );
    c.done();
    let a = c.say("no", 0.9);
    assert_eq!(prompts(&a), ["greeting"]);
}

#[test]
fn repeat_replays_the_last_prompt() {
    let mut c = at_greeting();
    let a = c.say("can you repeat that", 0.9);
    assert_eq!(prompts(&a), ["greeting"]);
    let a = c.keys("*");
    assert!(a.contains(&Action::StopPlayback));
    assert_eq!(prompts(&a), ["greeting"]);
}

#[test]
fn a_lost_recognition_result_counts_as_no_match() {
    let mut c = at_greeting();
    c.ev(Event::SpeechStarted);
    let due = c.s.poll_timeout().expect("hearing deadline");
    assert!(due >= c.now + Duration::from_secs(29));
    let a = c.wait();
    assert!(a.contains(&Action::Analytics(Analytics::NoMatch {
        slot: "intent".into(),
        count: 1
    })));
}

#[test]
fn per_slot_listening_follows_the_slot() {
    let mut c = Call::new(bank());
    let a = c.start("+1555");
    let a = c.reply(&a, unknown_caller());
    let listen = a.iter().find_map(|x| match x {
        Action::Listen(l) => Some(l.clone()),
        _ => None,
    });
    let l = listen.expect("listen");
    assert_eq!(l.endpointing, Endpointing::FreeSpeech);
    assert!(l.bias.is_some_and(|b| b.contains("balance")));
    c.done();
    c.say("check my balance", 0.9);
    let a = c.say("one two three four five six seven eight", 0.9);
    let l = a
        .iter()
        .find_map(|x| match x {
            Action::Listen(l) => Some(l.clone()),
            _ => None,
        })
        .expect("listen for the PIN");
    assert!(!l.speech, "PIN slot must not recognise speech");
    assert_eq!(l.endpointing, Endpointing::DigitString);
}

const MINI: &str = r#"
[flow]
name = "mini"
language = "en"
start = "a"
escalate = "a"
backend_error = "a"
transfer_failed = "a"

[prompts]
hello = "Hello"

[form.a]
[[form.a.do]]
say = ["hello"]

[[form.a.do]]
hangup = "completed"
"#;

#[test]
fn a_minimal_flow_loads_and_runs() {
    let flow = Arc::new(load_str(Path::new("mini.toml"), MINI).expect("mini"));
    let mut c = Call::new(flow);
    let a = c.start("1");
    assert_eq!(prompts(&a), ["hello"]);
    let a = c.done();
    assert!(a.contains(&Action::HangUp(HangupCause::Completed)));
}

fn errors(text: &str) -> Vec<String> {
    match load_str(Path::new("bad.toml"), text) {
        Ok(_) => panic!("should not load"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn validation_reports_every_problem_with_its_line() {
    let bad = MINI
        .replace("say = [\"hello\"]", "say = [\"helo\"]")
        .replace("hangup = \"completed\"", "goto = \"nowhere\"")
        + r#"
[form.orphan]
[[form.orphan.slot]]
name = "x"
type = "digits"
prompt = ["hello"]
[[form.orphan.slot]]
name = "x"
type = "digits"
prompt = ["hello"]
[[form.orphan.do]]
when = "ghost == 1"
say = ["$ghost"]
[[form.orphan.do]]
hangup = "completed"
"#;
    let e = errors(&bad);
    let want = [
        "bad.toml:15:8: no prompt `helo` in [prompts]",
        "bad.toml:18:8: no form named `nowhere`",
        "bad.toml:20:7: form `orphan` cannot be reached",
        "bad.toml:26:8: slot `x` repeats an earlier slot",
        "bad.toml:29:1: variable `ghost` is never set",
    ];
    for w in want {
        assert!(
            e.iter().any(|x| x.starts_with(w)),
            "missing {w:?} in {e:#?}"
        );
    }
}

#[test]
fn validation_catches_bad_references_and_shapes() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "hangup = \"completed\"",
            "invoke = \"launch_rocket\"",
            "unknown backend operation `launch_rocket`",
        ),
        (
            "hangup = \"completed\"",
            "route = \"caller\"",
            "`route` needs `default`",
        ),
        (
            "hangup = \"completed\"",
            "say = [\"hello\"]",
            "form `a` never leaves",
        ),
        (
            "hangup = \"completed\"",
            "hangup = \"later\"",
            "`hangup`: \"later\" is not one of",
        ),
        (
            "say = [\"hello\"]",
            "say = [\"hello\"]\ngoto = \"a\"",
            "a step needs exactly one of",
        ),
        (
            "language = \"en\"",
            "language = \"fr\"",
            "`language`: \"fr\" is not one of en, zh",
        ),
    ];
    for (from, to, want) in cases {
        let e = errors(&MINI.replace(from, to));
        assert!(e.iter().any(|x| x.contains(want)), "{to}: {e:#?}");
        assert!(e.iter().all(|x| x.starts_with("bad.toml:")), "{e:#?}");
    }
    let e = errors("[flow\nname=");
    assert!(e[0].starts_with("bad.toml:1:"), "{e:?}");
}

#[test]
fn keys_of_pins_and_account_numbers_are_masked_and_a_late_terminator_is_swallowed() {
    let mut c = at_greeting();
    c.keys("2");
    c.done();
    let a = c.keys("87654321");
    let shown: String = a
        .iter()
        .filter_map(|a| match a {
            Action::RecordDigit(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert_eq!(shown, "********");
    assert!(a.iter().any(|a| matches!(a,
        Action::SlotFilled { name, display, .. } if name == "account" && display == "****4321")));
    assert_eq!(prompts(&a), ["ask_pin"]);
    c.done();
    // The PIN completes on its 4th digit; the caller's habitual # must not answer the next question.
    let a = c.keys("1357");
    let a = c.reply(
        &a,
        Ok(vec![
            ("verify_result", Value::Text("ok".into())),
            ("verified", Value::Bool(true)),
            ("pin_verified", Value::Bool(true)),
        ]),
    );
    assert!(prompts(&a).contains(&"confirm_freeze".to_string()), "{a:?}");
    let a = c.keys("#");
    assert!(prompts(&a).is_empty(), "{a:?}");
    assert!(!c
        .log
        .iter()
        .any(|a| matches!(a, Action::Analytics(Analytics::NoMatch { .. }))));
    // The next key answers the question.
    let a = c.keys("1");
    assert_eq!(invoked(&a).map(|i| i.1), Some(Op::FreezeCard));
}

/// A caller whose number belongs to a customer (who may have a voiceprint), at the greeting.
fn known_caller_at_greeting() -> Call {
    let mut c = Call::new(bank());
    let a = c.start("+15550100002");
    let a = c.reply(
        &a,
        Ok(vec![
            ("customer_known", Value::Bool(true)),
            ("customer_id", Value::Text("C3".into())),
            ("customer_name", Value::Text("Bob Li".into())),
        ]),
    );
    assert_eq!(prompts(&a), ["greeting"]);
    c.done();
    c
}

#[test]
fn a_recognised_voice_verifies_a_balance_request_and_a_card_action_steps_up_to_the_pin() {
    let mut c = known_caller_at_greeting();
    let a = c.say("check my account balance", 0.9);
    let (_, op, args) = invoked(&a).expect("voiceprint check");
    assert_eq!(op, Op::VoiceprintVerify);
    assert_eq!(
        args,
        [("customer_id".to_string(), Value::Text("C3".into()))]
    );
    let a = c.reply(
        &a,
        Ok(vec![
            ("voiceprint", Value::Text("accept".into())),
            ("account", Value::Digits("87654321".into())),
        ]),
    );
    assert!(a.contains(&Action::Analytics(Analytics::Voiceprint {
        outcome: "accept".into()
    })));
    // The account shows masked even though no slot collected it.
    assert!(a.iter().any(|a| matches!(a,
        Action::SlotFilled { name, display, .. } if name == "account" && display == "****4321")));
    assert_eq!(prompts(&a), ["voice_recognised"]);
    let (_, op, args) = invoked(&a).expect("balance without a PIN");
    assert_eq!(op, Op::Balance);
    assert_eq!(args[0].1, Value::Digits("87654321".into()));
    c.reply(&a, Ok(vec![("balance", Value::Number(8810))]));
    c.done();
    // Freezing a card is riskier: the PIN is asked although the voice matched; the account is known.
    let a = c.say("I lost my card", 0.9);
    assert_eq!(prompts(&a), ["ask_pin"]);
    c.done();
    let a = c.keys("1357#");
    assert_eq!(invoked(&a).map(|i| i.1), Some(Op::VerifyPin));
}

#[test]
fn an_unrecognised_voice_falls_back_to_account_and_pin() {
    for outcome in ["reject", "not_enough_speech", "no_template"] {
        let mut c = known_caller_at_greeting();
        let a = c.say("check my account balance", 0.9);
        let a = c.reply(&a, Ok(vec![("voiceprint", Value::Text(outcome.into()))]));
        assert_eq!(prompts(&a), ["ask_account"], "{outcome}");
    }
    // Voiceprints off or failing: the same.
    let mut c = known_caller_at_greeting();
    let a = c.say("check my account balance", 0.9);
    let a = c.reply(&a, Err(BackendFailure::Refused));
    assert_eq!(prompts(&a), ["ask_account"]);
    // An unknown number is never voice-checked.
    let mut c = at_greeting();
    let a = c.say("check my account balance", 0.9);
    assert_eq!(invoked(&a), None);
    assert_eq!(prompts(&a), ["ask_account"]);
}

#[test]
fn voiceprint_enrolment_is_offered_after_the_pin_and_needs_consent() {
    for (answer, enrols) in [("yes please", true), ("no thanks", false)] {
        let mut c = at_greeting();
        c.say("check my account balance", 0.9);
        c.say("one two three four five six seven eight", 0.9);
        c.done();
        let a = c.keys("1357#");
        let a = c.reply(
            &a,
            Ok(vec![
                ("verify_result", Value::Text("ok".into())),
                ("verified", Value::Bool(true)),
                ("pin_verified", Value::Bool(true)),
                ("customer_id", Value::Text("C3".into())),
                ("voiceprint_offer", Value::Bool(true)),
            ]),
        );
        assert_eq!(prompts(&a), ["verified_ok", "voice_offer"]);
        c.done();
        let a = c.say(answer, 0.9);
        let a = if enrols {
            let (_, op, args) = invoked(&a).expect("enrol");
            assert_eq!(op, Op::VoiceprintEnroll);
            assert!(args.contains(&("account".to_string(), Value::Digits("12345678".into()))));
            let a = c.reply(
                &a,
                Ok(vec![("voiceprint", Value::Text("enrolling".into()))]),
            );
            assert_eq!(prompts(&a), ["voice_enrolling"]);
            a
        } else {
            a
        };
        // Then the request the caller came with.
        assert_eq!(invoked(&a).map(|i| i.1), Some(Op::Balance), "{answer}");
    }
}
