//! Money amounts: "twelve dollars fifty", "$12.50", "one thousand two hundred", "十二块五".

use super::numbers::{
    han_digit, han_unit, is_han_numeric, num_word, parse_cardinal, parse_han_cardinal, NumWord,
};
use super::text::{fold_han, normalize};

/// An amount in minor units (cents, pence, fen: every supported currency has two decimals).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount {
    pub minor_units: i64,
    /// ISO 4217 code when the caller named a currency or used its symbol; the flow supplies the account's
    /// currency otherwise.
    pub currency: Option<&'static str>,
}

/// Currency of a major-unit word (symbols were turned into these words by normalisation).
fn major_currency(w: &str) -> Option<&'static str> {
    Some(match w {
        "dollar" | "dollars" | "buck" | "bucks" | "usd" => "USD",
        "euro" | "euros" | "eur" => "EUR",
        "pound" | "pounds" | "quid" | "gbp" | "sterling" => "GBP",
        "yuan" | "rmb" | "renminbi" | "kuai" | "cny" => "CNY",
        _ => return None,
    })
}

/// A minor-unit word and the currency it implies ("cents" exist in several currencies: none implied).
fn minor_currency(w: &str) -> Option<Option<&'static str>> {
    Some(match w {
        "cent" | "cents" => None,
        "penny" | "pence" | "p" => Some("GBP"),
        "fen" => Some("CNY"),
        _ => return None,
    })
}

/// A number at `words[i..]`: whole part, hundredths, tokens used. "12.50", "one point five", "1200".
fn number_at(words: &[String], i: usize) -> Option<(u64, u64, usize)> {
    let w = words.get(i)?;
    if let Some((whole, frac)) = w.split_once('.') {
        if !whole.is_empty()
            && !frac.is_empty()
            && whole
                .bytes()
                .chain(frac.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Some((
                whole.parse().ok()?,
                hundredths(frac.bytes().map(|b| b - b'0'))?,
                1,
            ));
        }
    }
    let (whole, used) = parse_cardinal(words, i)?;
    // "one point five", "two point zero five": the fraction is read digit by digit.
    if words.get(i + used).map(String::as_str) == Some("point") {
        let frac: Vec<u8> = words[i + used + 1..]
            .iter()
            .map_while(|w| match num_word(w) {
                Some(NumWord::Digit(d)) => Some(d),
                _ => None,
            })
            .collect();
        if !frac.is_empty() {
            return Some((
                whole,
                hundredths(frac.iter().copied())?,
                used + 1 + frac.len(),
            ));
        }
    }
    Some((whole, 0, used))
}

/// Decimal fraction digits → hundredths, rounded half up (".505" → 51).
fn hundredths(digits: impl Iterator<Item = u8>) -> Option<u64> {
    let d: Vec<u8> = digits.collect();
    if d.iter().any(|x| *x > 9) {
        return None;
    }
    let first = u64::from(*d.first().unwrap_or(&0));
    let second = u64::from(*d.get(1).unwrap_or(&0));
    let round = u64::from(d.get(2).is_some_and(|x| *x >= 5));
    Some(first * 10 + second + round)
}

fn to_minor(whole: u64, hundredths: u64) -> Option<i64> {
    i64::try_from(whole.checked_mul(100)?.checked_add(hundredths)?).ok()
}

/// The amount a caller said, e.g. "twelve dollars fifty" (1250, USD), "$12.50", "one thousand two
/// hundred" (120000, no currency), "one point five" (150), "fifty cents" (50), "twelve fifty" (1250: the
/// way prices are read), "十二块五" (1250, CNY). With several numbers, the first that names a currency wins,
/// else the first number; `None` when there is no number (or only a percentage).
pub fn amount(text: &str) -> Option<Amount> {
    let han = han_amount(text);
    if han.is_some_and(|(_, named)| named) {
        return han.map(|(a, _)| a);
    }
    let norm = normalize(text);
    let words = &norm.words;
    let mut first: Option<Amount> = None;
    let mut i = 0;
    while i < words.len() {
        let Some((whole, mut cents, used)) = number_at(words, i) else {
            i += 1;
            continue;
        };
        let mut j = i + used;
        let next = words.get(j).map(String::as_str);
        if matches!(next, Some("percent" | "per")) {
            i = j + 1;
            continue;
        }
        let symbol = i
            .checked_sub(1)
            .and_then(|p| major_currency(&words[p]))
            .filter(|_| matches!(words[i - 1].as_str(), "dollar" | "euro" | "pound" | "yuan"));
        let mut currency = symbol;
        let mut named = symbol.is_some();
        let mut minor_only = false;
        if let Some(c) = next.and_then(major_currency) {
            currency = Some(c);
            named = true;
            j += 1;
            // "twelve dollars (and) fifty (cents)".
            let k = if words.get(j).map(String::as_str) == Some("and") {
                j + 1
            } else {
                j
            };
            if cents == 0 {
                if let Some((c, 0, u)) = number_at(words, k).filter(|(c, _, _)| *c < 100) {
                    cents = c;
                    j = k + u;
                    if words.get(j).is_some_and(|w| minor_currency(w).is_some()) {
                        j += 1;
                    }
                }
            }
        } else if let Some(c) = next.and_then(minor_currency) {
            // "fifty cents".
            minor_only = true;
            named = true;
            currency = currency.or(c);
            j += 1;
        } else if symbol.is_none() && cents == 0 && whole < 100 {
            // "twelve fifty": a second small number right after is the cents.
            if let Some((c, 0, u)) = number_at(words, j).filter(|(c, _, _)| (10..100).contains(c)) {
                if words.get(j + u).is_none_or(|w| major_currency(w).is_none()) {
                    cents = c;
                    j += u;
                }
            }
        }
        let minor = if minor_only {
            i64::try_from(whole).ok()
        } else {
            to_minor(whole, cents)
        };
        if let Some(minor_units) = minor {
            let a = Amount {
                minor_units,
                currency,
            };
            if named {
                return Some(a);
            }
            first = first.or(Some(a));
        }
        i = j.max(i + 1);
    }
    first.or(han.map(|(a, _)| a))
}

/// A Mandarin amount: "十二块五" (12.5 yuan), "一百元", "三块五毛", "五十美元", "12元". Returns the amount and
/// whether a currency or unit character was present.
fn han_amount(text: &str) -> Option<(Amount, bool)> {
    let chars: Vec<char> = text.chars().map(fold_han).collect();
    let mut i = 0;
    while i < chars.len() {
        if !is_han_numeric(chars[i]) {
            i += 1;
            continue;
        }
        // Plain Arabic numbers without a Han unit after them are the English parser's job.
        let Some((whole, used)) = parse_han_cardinal(&chars, i) else {
            i += 1;
            continue;
        };
        let mut j = i + used;
        let mut cents: u64 = 0;
        // "十二点五元".
        if chars.get(j) == Some(&'点') {
            let frac: Vec<u8> = chars[j + 1..]
                .iter()
                .map_while(|c| han_digit(*c).or_else(|| c.to_digit(10).map(|d| d as u8)))
                .collect();
            if !frac.is_empty() {
                cents = hundredths(frac.iter().copied())?;
                j += 1 + frac.len();
            }
        }
        let rest: String = chars[j..].iter().take(3).collect();
        let (currency, unit_len) = if rest.starts_with("美元") || rest.starts_with("美金") {
            (Some("USD"), 2)
        } else if rest.starts_with("欧元") {
            (Some("EUR"), 2)
        } else if rest.starts_with("英镑") {
            (Some("GBP"), 2)
        } else if rest.starts_with("人民币") {
            (Some("CNY"), 3)
        } else if rest.starts_with(['元', '块', '圆']) {
            (Some("CNY"), 1)
        } else if rest.starts_with(['角', '毛']) {
            // "五毛": tenths only.
            let minor = whole.checked_mul(10)?;
            return Some((
                Amount {
                    minor_units: i64::try_from(minor).ok()?,
                    currency: Some("CNY"),
                },
                true,
            ));
        } else {
            (None, 0)
        };
        j += unit_len;
        if currency.is_some() && cents == 0 {
            // "三块五(毛)", "十二元五角六分", "十二块零五分".
            let mut k = j;
            if chars.get(k) == Some(&'零') {
                k += 1;
            }
            if let Some(d) = chars.get(k).and_then(|c| han_digit(*c)) {
                match chars.get(k + 1) {
                    Some('分') => cents = u64::from(d),
                    _ => {
                        cents = u64::from(d) * 10;
                        if let (Some('角' | '毛'), Some(f)) = (
                            chars.get(k + 1),
                            chars.get(k + 2).and_then(|c| han_digit(*c)),
                        ) {
                            cents += u64::from(f);
                        }
                    }
                }
            }
        }
        // Without a currency only a number with units counts ("两千"): a lone 一 is "a" in "查一下", and
        // Arabic numerals are left to the English reading.
        if currency.is_none() && !chars[i..j].iter().any(|c| han_unit(*c).is_some()) {
            i = j.max(i + 1);
            continue;
        }
        return Some((
            Amount {
                minor_units: to_minor(whole, cents)?,
                currency,
            },
            currency.is_some(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(minor_units: i64, currency: Option<&'static str>) -> Option<Amount> {
        Some(Amount {
            minor_units,
            currency,
        })
    }

    #[test]
    fn amounts() {
        let cases: &[(&str, Option<Amount>)] = &[
            ("twelve dollars fifty", a(1250, Some("USD"))),
            ("twelve dollars and fifty cents", a(1250, Some("USD"))),
            ("$12.50", a(1250, Some("USD"))),
            ("I'd like to send $1,200 please", a(120_000, Some("USD"))),
            ("one thousand two hundred", a(120_000, None)),
            ("one point five", a(150, None)),
            ("two point zero five", a(205, None)),
            ("fifty cents", a(50, None)),
            ("twelve fifty", a(1250, None)),
            ("a hundred and twenty dollars", a(12_000, Some("USD"))),
            ("20 bucks", a(2000, Some("USD"))),
            ("five pounds twenty", a(520, Some("GBP"))),
            ("€5", a(500, Some("EUR"))),
            ("12.5", a(1250, None)),
            ("3.999", a(400, None)),
            ("pay 50 dollars from account 1234", a(5000, Some("USD"))),
            ("account 1234, fifty dollars", a(5000, Some("USD"))),
            ("five percent", None),
            ("no money", None),
            ("十二块五", a(1250, Some("CNY"))),
            ("一百元", a(10_000, Some("CNY"))),
            ("三块五毛", a(350, Some("CNY"))),
            ("五十美元", a(5000, Some("USD"))),
            ("12元", a(1200, Some("CNY"))),
            ("两千", a(200_000, None)),
            ("查一下余额", None),
            ("五毛", a(50, Some("CNY"))),
            ("十二点五元", a(1250, Some("CNY"))),
            ("一百零五块", a(10_500, Some("CNY"))),
            ("99999999999999999999 dollars", None),
        ];
        for (text, want) in cases {
            assert_eq!(amount(text), *want, "{text:?}");
        }
    }
}
