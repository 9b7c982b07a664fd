//! Sans-IO dialog logic: given what happened on the call and `now`, decide what the call says and does next.
//!
//! This crate holds the call's decision logic so it can be tested on simulated event streams, away from
//! sockets and audio. The first engine is a keypad menu ([`MenuIvr`]); the conversational engine of the
//! dialog-manager issue replaces it behind the same [`Event`]/[`Action`] vocabulary.
//!
//! [`nlu`] is the understanding layer that engine builds on: intents from (misheard) recogniser text, and
//! entities (digit strings, keypad collection, yes/no, amounts, dates).

use std::time::{Duration, Instant};

pub mod flow;
pub mod nlu;

/// Something that happened on the call, fed to the engine in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Media is flowing; the engine may start talking.
    Started,
    /// Everything queued with [`Action::Play`] has finished playing (not sent after [`Action::StopPlayback`]).
    PromptDone,
    /// A keypad digit, from whichever DTMF source.
    Digit(char),
    /// The deadline from [`MenuIvr::poll_timeout`] has passed.
    Timeout,
    /// Caller speech interrupted the prompt; the media side already flushed it (no `PromptDone` follows).
    BargeIn,
    /// The caller started speaking (endpointer); a result follows.
    SpeechStarted,
    /// What the caller said (final recognition result).
    Speech { text: String, confidence: f32 },
    /// The caller spoke but no text came out: recogniser overloaded, failed, or heard nothing usable.
    SpeechFailed { overloaded: bool },
}

/// One piece of what the call should say; the media side maps it to prompt fragments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Say {
    /// A bundled prompt by name, e.g. `greeting`.
    Prompt(&'static str),
    /// An amount in minor units (cents) with an ISO 4217 code.
    Currency {
        minor_units: i64,
        code: &'static str,
    },
    /// Digits read one by one.
    Digits(String),
    /// A pause.
    Silence(Duration),
}

/// Why the engine ends the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangupCause {
    /// The caller was served and the goodbye was played.
    Completed,
    /// The caller never chose anything.
    NoInput,
    /// Too many invalid choices.
    TooManyErrors,
}

impl HangupCause {
    pub fn as_str(self) -> &'static str {
        match self {
            HangupCause::Completed => "completed",
            HangupCause::NoInput => "no_input",
            HangupCause::TooManyErrors => "too_many_errors",
        }
    }
}

/// What the engine wants done, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue these items behind whatever is playing.
    Play { items: Vec<Say>, barge_in: bool },
    /// Stop the prompt now and drop everything queued (barge-in).
    StopPlayback,
    /// Store this digit on the call record; sensitive digits arrive here already masked as `*`.
    RecordDigit(char),
    /// A menu selection worth showing on the call timeline.
    MenuChoice { digit: char, option: &'static str },
    /// End the call.
    HangUp(HangupCause),
}

/// Menu behaviour that sites tune.
#[derive(Clone, Debug)]
pub struct MenuConfig {
    /// How long to wait for a key after the menu finished playing.
    pub input_timeout: Duration,
    /// No-input or invalid attempts before giving up.
    pub max_attempts: u32,
    /// Demo balance read out for option 1, in cents.
    pub demo_balance_minor: i64,
    pub currency: &'static str,
}

impl Default for MenuConfig {
    fn default() -> Self {
        Self {
            input_timeout: Duration::from_secs(8),
            max_attempts: 3,
            demo_balance_minor: 123_456,
            currency: "USD",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing said yet.
    Idle,
    /// The menu is playing; a key interrupts it.
    Menu,
    /// The menu finished; waiting for a key until the deadline.
    AwaitingChoice {
        deadline: Instant,
    },
    /// The caller is speaking (or their words are being recognised); the safety deadline keeps a lost
    /// result from trapping the caller.
    Listening {
        deadline: Instant,
    },
    /// Reading the answer to a choice; keys are recorded but ignored.
    Responding,
    /// Playing the goodbye; the call ends when it finishes.
    Closing(HangupCause),
    Done,
}

/// Keypad menu: greeting with options, one choice, an answer, goodbye. Re-prompts on silence or invalid keys.
#[derive(Debug)]
pub struct MenuIvr {
    config: MenuConfig,
    state: State,
    attempts: u32,
}

impl MenuIvr {
    pub fn new(config: MenuConfig) -> Self {
        Self {
            config,
            state: State::Idle,
            attempts: 0,
        }
    }

    /// When [`Event::Timeout`] must be delivered, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingChoice { deadline } | State::Listening { deadline } => Some(deadline),
            _ => None,
        }
    }

    /// Whether the engine has ended the call.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match (self.state, event) {
            (State::Idle, Event::Started) => self.play_menu(&mut out, None),
            (State::Menu, Event::PromptDone) => {
                self.state = State::AwaitingChoice {
                    deadline: now + self.config.input_timeout,
                };
            }
            (State::Menu, Event::Digit(d)) => {
                out.push(Action::StopPlayback);
                self.choose(d, &mut out);
            }
            (State::AwaitingChoice { .. } | State::Listening { .. }, Event::Digit(d)) => {
                self.choose(d, &mut out)
            }
            (State::Menu | State::AwaitingChoice { .. }, Event::BargeIn | Event::SpeechStarted) => {
                self.state = State::Listening {
                    deadline: now + LISTEN_LIMIT,
                };
            }
            (
                State::Menu | State::AwaitingChoice { .. } | State::Listening { .. },
                Event::Speech { text, .. },
            ) => match spoken_choice(&text) {
                Some(digit) => {
                    out.push(Action::StopPlayback);
                    self.choose_option(digit, &mut out);
                }
                None => {
                    out.push(Action::StopPlayback);
                    self.retry(&mut out, "not_understood");
                }
            },
            (
                State::Menu | State::AwaitingChoice { .. } | State::Listening { .. },
                Event::SpeechFailed { overloaded },
            ) => {
                out.push(Action::StopPlayback);
                self.retry(
                    &mut out,
                    if overloaded {
                        "use_keypad"
                    } else {
                        "not_understood"
                    },
                );
            }
            (State::Listening { deadline }, Event::Timeout) if now >= deadline => {
                self.retry(&mut out, "not_understood");
            }
            (State::AwaitingChoice { deadline }, Event::Timeout) if now >= deadline => {
                self.attempts += 1;
                if self.attempts >= self.config.max_attempts {
                    self.close(&mut out, HangupCause::NoInput);
                } else {
                    self.play_menu(&mut out, Some("no_input"));
                }
            }
            (State::Responding, Event::PromptDone) => self.close(&mut out, HangupCause::Completed),
            (State::Closing(cause), Event::PromptDone) => {
                self.state = State::Done;
                out.push(Action::HangUp(cause));
            }
            // Keys pressed while we answer or say goodbye are not choices: keep them off the record in clear.
            (State::Responding | State::Closing(_), Event::Digit(_)) => {
                out.push(Action::RecordDigit('*'));
            }
            _ => {}
        }
        out
    }

    fn play_menu(&mut self, out: &mut Vec<Action>, preamble: Option<&'static str>) {
        let mut items = Vec::with_capacity(2);
        if let Some(p) = preamble {
            items.push(Say::Prompt(p));
        }
        items.push(Say::Prompt("greeting"));
        out.push(Action::Play {
            items,
            barge_in: true,
        });
        self.state = State::Menu;
    }

    /// A failed attempt: re-prompt with `preamble`, or give up after `max_attempts`.
    fn retry(&mut self, out: &mut Vec<Action>, preamble: &'static str) {
        self.attempts += 1;
        if self.attempts >= self.config.max_attempts {
            self.close(out, HangupCause::TooManyErrors);
        } else {
            self.play_menu(out, Some(preamble));
        }
    }

    fn choose(&mut self, digit: char, out: &mut Vec<Action>) {
        out.push(Action::RecordDigit(digit));
        self.choose_option(digit, out);
    }

    /// Acts on a menu option, whether pressed or said (`digit` is the option's key).
    fn choose_option(&mut self, digit: char, out: &mut Vec<Action>) {
        let (option, items) = match digit {
            '1' => (
                "balance",
                vec![
                    Say::Prompt("balance_is"),
                    Say::Currency {
                        minor_units: self.config.demo_balance_minor,
                        code: self.config.currency,
                    },
                ],
            ),
            '2' => ("card_services", vec![Say::Prompt("card_services")]),
            '0' => ("agent", vec![Say::Prompt("agent_unavailable")]),
            _ => {
                self.attempts += 1;
                if self.attempts >= self.config.max_attempts {
                    out.push(Action::Play {
                        items: vec![Say::Prompt("invalid_choice")],
                        barge_in: false,
                    });
                    self.close(out, HangupCause::TooManyErrors);
                } else {
                    self.play_menu(out, Some("invalid_choice"));
                }
                return;
            }
        };
        out.push(Action::MenuChoice { digit, option });
        out.push(Action::Play {
            items,
            barge_in: false,
        });
        self.state = State::Responding;
    }

    fn close(&mut self, out: &mut Vec<Action>, cause: HangupCause) {
        out.push(Action::Play {
            items: vec![Say::Prompt("goodbye")],
            barge_in: false,
        });
        self.state = State::Closing(cause);
    }
}

/// Longest wait for a recognition result once the caller started speaking.
const LISTEN_LIMIT: Duration = Duration::from_secs(30);

/// The menu option a spoken request names, through the intent model (robust to misheard words). The
/// conversational engine replaces the menu; until then, intents map onto its keys.
fn spoken_choice(text: &str) -> Option<char> {
    static MODEL: std::sync::OnceLock<Option<nlu::IntentModel>> = std::sync::OnceLock::new();
    let model = MODEL
        .get_or_init(|| nlu::IntentModel::new(&nlu::bank_intents()).ok())
        .as_ref()?;
    match model.classify_text(text).intent()? {
        "balance" | "transactions" => Some('1'),
        "lost_card" => Some('2'),
        "agent" | "fraud" => Some('0'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plays(actions: &[Action]) -> Vec<Vec<Say>> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Play { items, .. } => Some(items.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn greeting_then_choice_then_goodbye_then_hangup() {
        let t0 = Instant::now();
        let mut ivr = MenuIvr::new(MenuConfig::default());
        let a = ivr.handle(t0, Event::Started);
        assert_eq!(plays(&a), vec![vec![Say::Prompt("greeting")]]);
        assert!(ivr.handle(t0, Event::PromptDone).is_empty());
        assert_eq!(ivr.poll_timeout(), Some(t0 + Duration::from_secs(8)));
        let a = ivr.handle(t0, Event::Digit('1'));
        assert_eq!(a[0], Action::RecordDigit('1'));
        assert_eq!(
            a[1],
            Action::MenuChoice {
                digit: '1',
                option: "balance"
            }
        );
        assert_eq!(
            plays(&a),
            vec![vec![
                Say::Prompt("balance_is"),
                Say::Currency {
                    minor_units: 123_456,
                    code: "USD"
                }
            ]]
        );
        let a = ivr.handle(t0, Event::PromptDone);
        assert_eq!(plays(&a), vec![vec![Say::Prompt("goodbye")]]);
        let a = ivr.handle(t0, Event::PromptDone);
        assert_eq!(a, vec![Action::HangUp(HangupCause::Completed)]);
        assert!(ivr.is_done());
    }

    #[test]
    fn digit_during_greeting_barges_in() {
        let t0 = Instant::now();
        let mut ivr = MenuIvr::new(MenuConfig::default());
        ivr.handle(t0, Event::Started);
        let a = ivr.handle(t0, Event::Digit('2'));
        assert_eq!(a[0], Action::StopPlayback);
        assert_eq!(plays(&a), vec![vec![Say::Prompt("card_services")]]);
    }

    #[test]
    fn no_input_reprompts_then_gives_up() {
        let t0 = Instant::now();
        let cfg = MenuConfig::default();
        let mut ivr = MenuIvr::new(cfg.clone());
        ivr.handle(t0, Event::Started);
        let mut now = t0;
        for attempt in 1..cfg.max_attempts {
            ivr.handle(now, Event::PromptDone);
            // An early timeout is not a timeout.
            assert!(ivr.handle(now, Event::Timeout).is_empty());
            now += cfg.input_timeout;
            let a = ivr.handle(now, Event::Timeout);
            assert_eq!(
                plays(&a),
                vec![vec![Say::Prompt("no_input"), Say::Prompt("greeting")]],
                "attempt {attempt}"
            );
        }
        ivr.handle(now, Event::PromptDone);
        now += cfg.input_timeout;
        let a = ivr.handle(now, Event::Timeout);
        assert_eq!(plays(&a), vec![vec![Say::Prompt("goodbye")]]);
        assert_eq!(
            ivr.handle(now, Event::PromptDone),
            vec![Action::HangUp(HangupCause::NoInput)]
        );
    }

    #[test]
    fn invalid_keys_escalate_to_hangup() {
        let t0 = Instant::now();
        let mut ivr = MenuIvr::new(MenuConfig::default());
        ivr.handle(t0, Event::Started);
        let a = ivr.handle(t0, Event::Digit('9'));
        assert_eq!(
            plays(&a),
            vec![vec![Say::Prompt("invalid_choice"), Say::Prompt("greeting")]]
        );
        ivr.handle(t0, Event::Digit('7'));
        let a = ivr.handle(t0, Event::Digit('#'));
        assert_eq!(
            plays(&a),
            vec![
                vec![Say::Prompt("invalid_choice")],
                vec![Say::Prompt("goodbye")]
            ]
        );
        assert_eq!(
            ivr.handle(t0, Event::PromptDone),
            vec![Action::HangUp(HangupCause::TooManyErrors)]
        );
    }

    #[test]
    fn spoken_request_over_the_greeting_selects_the_option() {
        let t0 = Instant::now();
        let mut ivr = MenuIvr::new(MenuConfig::default());
        ivr.handle(t0, Event::Started);
        assert!(ivr.handle(t0, Event::BargeIn).is_empty());
        assert_eq!(ivr.poll_timeout(), Some(t0 + LISTEN_LIMIT));
        let a = ivr.handle(
            t0,
            Event::Speech {
                text: " I'd like to check my balance, please.".into(),
                confidence: 0.8,
            },
        );
        assert!(
            !a.iter().any(|a| matches!(a, Action::RecordDigit(_))),
            "a spoken choice is not a key press: {a:?}"
        );
        assert!(a.contains(&Action::MenuChoice {
            digit: '1',
            option: "balance"
        }));
        assert_eq!(plays(&a)[0][0], Say::Prompt("balance_is"));
    }

    #[test]
    fn unrecognised_or_failed_speech_reprompts_then_gives_up() {
        let t0 = Instant::now();
        let mut ivr = MenuIvr::new(MenuConfig::default());
        ivr.handle(t0, Event::Started);
        ivr.handle(t0, Event::SpeechStarted);
        let a = ivr.handle(
            t0,
            Event::Speech {
                text: "what is the weather".into(),
                confidence: 0.9,
            },
        );
        assert_eq!(
            plays(&a),
            vec![vec![Say::Prompt("not_understood"), Say::Prompt("greeting")]]
        );
        let a = ivr.handle(t0, Event::SpeechFailed { overloaded: true });
        assert_eq!(
            plays(&a),
            vec![vec![Say::Prompt("use_keypad"), Say::Prompt("greeting")]]
        );
        let a = ivr.handle(t0, Event::SpeechFailed { overloaded: false });
        assert_eq!(plays(&a), vec![vec![Say::Prompt("goodbye")]]);
    }

    #[test]
    fn a_lost_recognition_result_does_not_trap_the_caller() {
        let t0 = Instant::now();
        let mut ivr = MenuIvr::new(MenuConfig::default());
        ivr.handle(t0, Event::Started);
        ivr.handle(t0, Event::PromptDone);
        ivr.handle(t0, Event::SpeechStarted);
        let a = ivr.handle(t0 + LISTEN_LIMIT, Event::Timeout);
        assert_eq!(
            plays(&a),
            vec![vec![Say::Prompt("not_understood"), Say::Prompt("greeting")]]
        );
    }

    #[test]
    fn spoken_keywords() {
        assert_eq!(spoken_choice("Can I talk to a human?"), Some('0'));
        assert_eq!(spoken_choice("I lost my card."), Some('2'));
        assert_eq!(spoken_choice("How much money do I have"), Some('1'));
        assert_eq!(spoken_choice("check my account melon"), Some('1'));
        assert_eq!(spoken_choice("我的信用卡丢了"), Some('2'));
        assert_eq!(spoken_choice("hello"), None);
    }

    #[test]
    fn digits_after_choice_are_masked_and_ignored() {
        let t0 = Instant::now();
        let mut ivr = MenuIvr::new(MenuConfig::default());
        ivr.handle(t0, Event::Started);
        ivr.handle(t0, Event::Digit('0'));
        assert_eq!(
            ivr.handle(t0, Event::Digit('5')),
            vec![Action::RecordDigit('*')]
        );
    }
}
