//! Digit strings: spoken ([`digits`]) and keyed ([`DigitCollector`]).

use std::time::{Duration, Instant};

use super::error::NluError;
use super::numbers::{han_digit, han_unit, num_word, parse_cardinal, parse_han_cardinal, NumWord};
use super::text::{is_han, normalize};

/// Tokens for digit reading: Latin words (numerals kept whole) and single Han characters, in order.
fn digit_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if is_han(c) {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(c.to_string());
        } else if c.is_alphanumeric() || c == '\'' {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    // Contractions and apostrophes the same way as everywhere else ("o'clock" is not a digit).
    out.into_iter()
        .flat_map(|w| {
            if w.chars().any(is_han) {
                vec![w]
            } else {
                normalize(&w).words
            }
        })
        .collect()
}

/// A token that is clearly part of a digit string (not a homophone or "oh").
fn is_digitish(t: &str) -> bool {
    t.bytes().all(|b| b.is_ascii_digit())
        || matches!(
            num_word(t),
            Some(NumWord::Digit(_) | NumWord::Teen(_) | NumWord::Tens(_))
        )
        || t.chars().next().and_then(han_digit).is_some()
        || matches!(t, "double" | "triple")
}

/// The digit a homophone stands for when it sits inside a digit string ("four to five" = 425).
fn homophone(t: &str) -> Option<char> {
    Some(match t {
        "oh" | "o" => '0',
        "won" => '1',
        "to" | "too" => '2',
        "for" => '4',
        "ate" => '8',
        _ => return None,
    })
}

/// The digit string a caller spoke: "four one five" → "415", "oh" / "zero" → 0, "double five" → "55",
/// "triple seven" → "777", numerals as written ("12 34 five six" → "123456"), tens and teens as their
/// digits ("nineteen eighty four" → "1984"), plain cardinals ("four hundred and twelve" → "412"), and
/// Mandarin 一二三…零〇 with 幺 for one. Words around the digits are ignored ("my number is …"); `None` if
/// there are no digits.
pub fn digits(text: &str) -> Option<String> {
    let tokens = digit_tokens(text);
    let mut out = String::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        let first = t.chars().next();
        if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() {
            out.push_str(t);
            i += 1;
        } else if first.is_some_and(is_han) {
            // A run of Han numerals: digit by digit unless it uses units (十百千万), then a cardinal.
            let run: Vec<char> = tokens[i..]
                .iter()
                .map_while(|t| {
                    let mut cs = t.chars();
                    match (cs.next(), cs.next()) {
                        (Some(c), None) if han_digit(c).is_some() || han_unit(c).is_some() => {
                            Some(c)
                        }
                        _ => None,
                    }
                })
                .collect();
            if run.is_empty() {
                i += 1;
            } else if run.iter().any(|c| han_unit(*c).is_some()) {
                match parse_han_cardinal(&run, 0) {
                    Some((v, used)) => {
                        out.push_str(&v.to_string());
                        i += used;
                    }
                    None => i += 1,
                }
            } else {
                out.extend(
                    run.iter()
                        .filter_map(|c| han_digit(*c))
                        .map(|d| char::from(b'0' + d)),
                );
                i += run.len();
            }
        } else if matches!(t, "double" | "triple") {
            let times = if t == "double" { 2 } else { 3 };
            let next = tokens.get(i + 1).map(String::as_str);
            match next.and_then(|n| single_digit(n).or_else(|| homophone(n).filter(|d| *d == '0')))
            {
                Some(d) => {
                    out.extend(std::iter::repeat_n(d, times));
                    i += 2;
                }
                None => i += 1,
            }
        } else if matches!(num_word(t), Some(NumWord::Digit(_)))
            && !matches!(
                tokens.get(i + 1).and_then(|n| num_word(n)),
                Some(NumWord::Hundred | NumWord::Scale(_))
            )
        {
            // Digit words are read one by one even when a tens word follows ("one twenty").
            out.extend(single_digit(t));
            i += 1;
        } else if let Some((v, used)) = parse_cardinal(&tokens, i) {
            out.push_str(&v.to_string());
            i += used;
        } else if let Some(d) = homophone(t) {
            let before = i > 0 && is_digitish(&tokens[i - 1]);
            let after = tokens.get(i + 1).is_some_and(|n| is_digitish(n));
            // "oh" needs one digit beside it ("four oh five", "oh four"); other homophones need both, so
            // "I want to pay" stays words.
            let inside = if matches!(t, "oh" | "o") {
                before || after
            } else {
                before && after
            };
            if inside {
                out.push(d);
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

fn single_digit(t: &str) -> Option<char> {
    match num_word(t) {
        Some(NumWord::Digit(d)) => Some(char::from(b'0' + d)),
        _ => {
            let mut cs = t.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) if c.is_ascii_digit() => Some(c),
                (Some(c), None) => han_digit(c).map(|d| char::from(b'0' + d)),
                _ => None,
            }
        }
    }
}

const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Keypad collection rules for one prompt ("enter your 4-digit PIN followed by hash").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigitConfig {
    pub min_len: usize,
    /// Entry completes as soon as this many digits are in.
    pub max_len: usize,
    /// Ends the entry early (typically `#`); `None` to complete only on length or pause.
    pub terminator: Option<char>,
    /// Wipes what was typed so far (typically `*`), so a caller can start over without waiting.
    pub clear: Option<char>,
    /// How long to wait for the first key.
    pub first_digit_timeout: Duration,
    /// How long a pause between keys may be; a pause with at least `min_len` digits completes the entry.
    pub inter_digit_timeout: Duration,
}

impl Default for DigitConfig {
    fn default() -> Self {
        Self {
            min_len: 1,
            max_len: 16,
            terminator: Some('#'),
            clear: Some('*'),
            first_digit_timeout: Duration::from_secs(8),
            inter_digit_timeout: Duration::from_secs(4),
        }
    }
}

/// What a key press or a timeout did to the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Collect {
    /// Keep collecting; re-read [`DigitCollector::poll_timeout`].
    Pending,
    /// The clear key wiped the entry; collection starts over (first-digit timeout again).
    Cleared,
    /// The entry is complete: max length, terminator, or a pause after at least `min_len` digits.
    Collected(String),
    /// The terminator came before `min_len` digits; the entry is finished (re-prompt, then
    /// [`DigitCollector::restart`]).
    TooShort(String),
    /// Nobody finished in time; the digits so far (empty: no key at all).
    Timeout(String),
    /// The key was not a digit, terminator or clear key, or the entry had already finished.
    Ignored,
}

/// Sans-IO keypad entry: feed keys and timeouts with `now`, arm a timer for [`Self::poll_timeout`].
#[derive(Clone, Debug)]
pub struct DigitCollector {
    config: DigitConfig,
    digits: String,
    deadline: Option<Instant>,
}

impl DigitCollector {
    /// Starts collecting at `now` (the first-digit timer runs from here, normally the prompt's end).
    pub fn new(config: DigitConfig, now: Instant) -> Result<Self, NluError> {
        if config.max_len == 0 || config.min_len > config.max_len {
            return Err(NluError::BadDigitLengths {
                min_len: config.min_len,
                max_len: config.max_len,
            });
        }
        // Capped so deadline arithmetic cannot overflow; no caller waits a day for a key.
        let config = DigitConfig {
            first_digit_timeout: config.first_digit_timeout.min(MAX_TIMEOUT),
            inter_digit_timeout: config.inter_digit_timeout.min(MAX_TIMEOUT),
            ..config
        };
        Ok(Self {
            config,
            digits: String::new(),
            deadline: Some(now + config.first_digit_timeout),
        })
    }

    /// Starts over with an empty entry, e.g. after a re-prompt.
    pub fn restart(&mut self, now: Instant) {
        self.digits.clear();
        self.deadline = Some(now + self.config.first_digit_timeout);
    }

    /// When [`Self::timeout`] must be called, if the entry is still open.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The digits typed so far.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    pub fn is_finished(&self) -> bool {
        self.deadline.is_none()
    }

    pub fn key(&mut self, now: Instant, key: char) -> Collect {
        if self.deadline.is_none() {
            return Collect::Ignored;
        }
        if Some(key) == self.config.clear {
            self.restart(now);
            return Collect::Cleared;
        }
        if Some(key) == self.config.terminator {
            self.deadline = None;
            let entry = std::mem::take(&mut self.digits);
            return if entry.len() >= self.config.min_len {
                Collect::Collected(entry)
            } else {
                Collect::TooShort(entry)
            };
        }
        if !key.is_ascii_digit() {
            return Collect::Ignored;
        }
        self.digits.push(key);
        if self.digits.len() >= self.config.max_len {
            self.deadline = None;
            return Collect::Collected(std::mem::take(&mut self.digits));
        }
        self.deadline = Some(now + self.config.inter_digit_timeout);
        Collect::Pending
    }

    /// The deadline from [`Self::poll_timeout`] has (supposedly) passed. An early call changes nothing.
    pub fn timeout(&mut self, now: Instant) -> Collect {
        match self.deadline {
            Some(deadline) if now >= deadline => {
                self.deadline = None;
                let entry = std::mem::take(&mut self.digits);
                if !entry.is_empty() && entry.len() >= self.config.min_len {
                    Collect::Collected(entry)
                } else {
                    Collect::Timeout(entry)
                }
            }
            Some(_) => Collect::Pending,
            None => Collect::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_digit_strings() {
        let cases: &[(&str, Option<&str>)] = &[
            ("four one five", Some("415")),
            ("Four, one, five.", Some("415")),
            ("my number is four one five oh", Some("4150")),
            ("oh four one", Some("041")),
            ("zero zero seven", Some("007")),
            ("double five", Some("55")),
            ("triple seven two", Some("7772")),
            ("double oh seven", Some("007")),
            ("12 34 five six", Some("123456")),
            ("415-555-0199", Some("4155550199")),
            ("nineteen eighty four", Some("1984")),
            ("twenty five", Some("25")),
            ("four hundred and twelve", Some("412")),
            ("one two three four", Some("1234")),
            ("four to five", Some("425")),
            ("I want to pay", None),
            ("oh well", None),
            ("um, let me see, uh, five five", Some("55")),
            ("幺三八零零一二三四五六", Some("13800123456")),
            ("我的卡号是六二二五", Some("6225")),
            ("〇七五五", Some("0755")),
            ("二十五", Some("25")),
            ("hello", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(digits(text).as_deref(), *want, "{text:?}");
        }
    }

    fn cfg(min_len: usize, max_len: usize) -> DigitConfig {
        DigitConfig {
            min_len,
            max_len,
            ..DigitConfig::default()
        }
    }

    #[test]
    fn collector_rejects_impossible_lengths() {
        let t0 = Instant::now();
        assert!(DigitCollector::new(cfg(5, 4), t0).is_err());
        assert!(DigitCollector::new(cfg(0, 0), t0).is_err());
        assert!(DigitCollector::new(cfg(0, 1), t0).is_ok());
    }

    #[test]
    fn collects_up_to_max_len() {
        let t0 = Instant::now();
        let mut c = DigitCollector::new(cfg(4, 4), t0).unwrap();
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(8)));
        for k in ['1', '2', '3'] {
            assert_eq!(c.key(t0, k), Collect::Pending);
        }
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(4)));
        assert_eq!(c.key(t0, '4'), Collect::Collected("1234".into()));
        assert!(c.is_finished());
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.key(t0, '5'), Collect::Ignored);
    }

    #[test]
    fn terminator_completes_or_is_too_short() {
        let t0 = Instant::now();
        let mut c = DigitCollector::new(cfg(2, 10), t0).unwrap();
        c.key(t0, '1');
        assert_eq!(c.key(t0, '#'), Collect::TooShort("1".into()));
        c.restart(t0);
        assert_eq!(c.digits(), "");
        c.key(t0, '1');
        c.key(t0, '2');
        assert_eq!(c.digits(), "12");
        assert_eq!(c.key(t0, '#'), Collect::Collected("12".into()));
    }

    #[test]
    fn star_clears_and_rearms_the_first_digit_timer() {
        let t0 = Instant::now();
        let mut c = DigitCollector::new(cfg(1, 10), t0).unwrap();
        c.key(t0, '9');
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(c.key(t1, '*'), Collect::Cleared);
        assert_eq!(c.digits(), "");
        assert_eq!(c.poll_timeout(), Some(t1 + Duration::from_secs(8)));
        assert_eq!(c.key(t1, 'A'), Collect::Ignored);
    }

    #[test]
    fn timeouts() {
        let t0 = Instant::now();
        let mut c = DigitCollector::new(cfg(4, 6), t0).unwrap();
        // Early: nothing happens.
        assert_eq!(c.timeout(t0), Collect::Pending);
        assert_eq!(
            c.timeout(t0 + Duration::from_secs(8)),
            Collect::Timeout(String::new())
        );
        assert_eq!(c.timeout(t0 + Duration::from_secs(9)), Collect::Ignored);

        // A pause after too few digits is a timeout with the partial entry.
        let mut c = DigitCollector::new(cfg(4, 6), t0).unwrap();
        c.key(t0, '1');
        c.key(t0, '2');
        let d = c.poll_timeout().unwrap();
        assert_eq!(d, t0 + Duration::from_secs(4));
        assert_eq!(c.timeout(d), Collect::Timeout("12".into()));

        // A pause after enough digits completes the entry.
        let mut c = DigitCollector::new(cfg(4, 6), t0).unwrap();
        for k in "12345".chars() {
            c.key(t0, k);
        }
        assert_eq!(
            c.timeout(t0 + Duration::from_secs(4)),
            Collect::Collected("12345".into())
        );
    }
}
