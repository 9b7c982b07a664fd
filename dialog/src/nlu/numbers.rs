//! Spoken numbers in English words and Mandarin characters, shared by the entity parsers.

/// One English number word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumWord {
    /// 0–9.
    Digit(u8),
    /// 10–19.
    Teen(u8),
    /// 20, 30, … 90.
    Tens(u8),
    Hundred,
    /// thousand, million, billion.
    Scale(u64),
}

pub(crate) fn num_word(w: &str) -> Option<NumWord> {
    use NumWord::*;
    Some(match w {
        "zero" => Digit(0),
        "one" => Digit(1),
        "two" => Digit(2),
        "three" => Digit(3),
        "four" => Digit(4),
        "five" => Digit(5),
        "six" => Digit(6),
        "seven" => Digit(7),
        "eight" => Digit(8),
        "nine" => Digit(9),
        "ten" => Teen(10),
        "eleven" => Teen(11),
        "twelve" => Teen(12),
        "thirteen" => Teen(13),
        "fourteen" => Teen(14),
        "fifteen" => Teen(15),
        "sixteen" => Teen(16),
        "seventeen" => Teen(17),
        "eighteen" => Teen(18),
        "nineteen" => Teen(19),
        "twenty" => Tens(20),
        "thirty" => Tens(30),
        "forty" | "fourty" => Tens(40),
        "fifty" => Tens(50),
        "sixty" => Tens(60),
        "seventy" => Tens(70),
        "eighty" => Tens(80),
        "ninety" => Tens(90),
        "hundred" => Hundred,
        "thousand" => Scale(1_000),
        "million" => Scale(1_000_000),
        "billion" => Scale(1_000_000_000),
        _ => return None,
    })
}

/// Day-of-month ordinals as words: "first" … "thirty first" is handled by the caller (tens + ordinal).
pub(crate) fn ordinal_word(w: &str) -> Option<u32> {
    Some(match w {
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "fifth" => 5,
        "sixth" => 6,
        "seventh" => 7,
        "eighth" => 8,
        "ninth" => 9,
        "tenth" => 10,
        "eleventh" => 11,
        "twelfth" => 12,
        "thirteenth" => 13,
        "fourteenth" => 14,
        "fifteenth" => 15,
        "sixteenth" => 16,
        "seventeenth" => 17,
        "eighteenth" => 18,
        "nineteenth" => 19,
        "twentieth" => 20,
        "thirtieth" => 30,
        _ => return None,
    })
}

/// A numeral token's value ("1200"; not "12.5").
pub(crate) fn numeral(w: &str) -> Option<u64> {
    if w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    w.parse().ok()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    Start,
    Digit,
    Teen,
    Tens,
    Hundred,
    Scale,
    Numeral,
}

/// Parses an English cardinal at `tokens[at..]` ("four hundred and twelve", "twenty five", "a thousand",
/// "1200", "5 thousand"); returns the value and how many tokens it used. Stops where the words stop
/// forming one number, so "four one five" yields 4 and leaves "one five" ("twenty twenty" is 20, 20).
pub(crate) fn parse_cardinal<S: AsRef<str>>(tokens: &[S], at: usize) -> Option<(u64, usize)> {
    let word = |i: usize| tokens.get(i).map(AsRef::as_ref);
    let mut total: u64 = 0;
    let mut current: u64 = 0;
    let mut last = Last::Start;
    let mut last_scale: Option<u64> = None;
    let mut i = at;
    while let Some(w) = word(i) {
        let next = word(i + 1).and_then(num_word);
        if w == "a"
            && last == Last::Start
            && matches!(next, Some(NumWord::Hundred | NumWord::Scale(_)))
        {
            current = 1;
            last = Last::Digit;
            i += 1;
            continue;
        }
        if w == "and"
            && matches!(last, Last::Hundred | Last::Scale)
            && matches!(
                next,
                Some(NumWord::Digit(_) | NumWord::Teen(_) | NumWord::Tens(_))
            )
        {
            i += 1;
            continue;
        }
        let after_group = matches!(last, Last::Start | Last::Hundred | Last::Scale);
        match (num_word(w), numeral(w)) {
            (Some(NumWord::Digit(d)), _) if after_group || last == Last::Tens => {
                current += u64::from(d);
                last = Last::Digit;
            }
            (Some(NumWord::Teen(n)), _) if after_group => {
                current += u64::from(n);
                last = Last::Teen;
            }
            (Some(NumWord::Tens(n)), _) if after_group => {
                current += u64::from(n);
                last = Last::Tens;
            }
            (Some(NumWord::Hundred), _)
                if matches!(last, Last::Digit | Last::Teen | Last::Tens | Last::Numeral)
                    && current < 100 =>
            {
                current *= 100;
                last = Last::Hundred;
            }
            // Scales must fall: "two million three thousand", not "three thousand two million".
            (Some(NumWord::Scale(s)), _)
                if matches!(
                    last,
                    Last::Digit | Last::Teen | Last::Tens | Last::Hundred | Last::Numeral
                ) && last_scale.is_none_or(|l| s < l) =>
            {
                total = total.checked_add(current.checked_mul(s)?)?;
                current = 0;
                last = Last::Scale;
                last_scale = Some(s);
            }
            (None, Some(v)) if last == Last::Start => {
                current = v;
                last = Last::Numeral;
            }
            _ => break,
        }
        i += 1;
    }
    if last == Last::Start {
        return None;
    }
    Some((total.checked_add(current)?, i - at))
}

/// A Mandarin digit character's value (幺 is "one" when reading phone numbers; 两 is "two" in counts).
pub(crate) fn han_digit(c: char) -> Option<u8> {
    Some(match c {
        '零' | '〇' => 0,
        '一' | '幺' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

pub(crate) fn han_unit(c: char) -> Option<u64> {
    Some(match c {
        '十' => 10,
        '百' => 100,
        '千' => 1_000,
        '万' | '萬' => 10_000,
        '亿' | '億' => 100_000_000,
        _ => return None,
    })
}

/// Whether `c` can be part of a Mandarin number.
pub(crate) fn is_han_numeric(c: char) -> bool {
    han_digit(c).is_some() || han_unit(c).is_some() || c.is_ascii_digit()
}

/// Parses a Mandarin cardinal at `chars[at..]` ("一百二十", "两千五", "十二", "3万"); returns the value and
/// the characters used. A digit right after 百/千/万 is the colloquial short form: "一百五" = 150, while
/// "一百零五" = 105. Two digits in a row end the number: "一二三" is read digit by digit elsewhere.
pub(crate) fn parse_han_cardinal(chars: &[char], at: usize) -> Option<(u64, usize)> {
    let mut result: u64 = 0; // completed 万/亿 sections
    let mut section: u64 = 0; // the part below the next 万/亿
    let mut num: Option<u64> = None; // a digit (or Arabic numeral) waiting for its unit
    let mut last_unit: Option<u64> = None;
    let mut i = at;
    while let Some(&c) = chars.get(i) {
        let ascii = c.is_ascii_digit();
        if let Some(d) = han_digit(c)
            .map(u64::from)
            .or_else(|| c.to_digit(10).map(u64::from))
        {
            let prev_ascii = i > at && chars[i - 1].is_ascii_digit();
            num = match num {
                Some(n) if ascii && prev_ascii => Some(n.checked_mul(10)?.checked_add(d)?),
                // 零 is a placeholder: "一百零五".
                Some(0) | None => Some(d),
                Some(_) => break,
            };
        } else if let Some(u) = han_unit(c) {
            if u >= 10_000 {
                let n = section.checked_add(num.take().unwrap_or(0))?;
                if n == 0 {
                    break;
                }
                result = result.checked_add(n.checked_mul(u)?)?;
                section = 0;
            } else {
                let n = match num.take() {
                    Some(n) => n,
                    None if u == 10 => 1,
                    None => break,
                };
                section = section.checked_add(n.checked_mul(u)?)?;
            }
            last_unit = Some(u);
        } else {
            break;
        }
        i += 1;
    }
    if i == at {
        return None;
    }
    let tail = match (num, last_unit) {
        (Some(d), Some(u)) if u >= 100 && i >= at + 2 && han_unit(chars[i - 2]).is_some() => {
            d.checked_mul(u / 10)?
        }
        (Some(d), _) => d,
        (None, _) => 0,
    };
    Some((result.checked_add(section)?.checked_add(tail)?, i - at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn en(s: &str) -> Option<(u64, usize)> {
        let t: Vec<&str> = s.split(' ').collect();
        parse_cardinal(&t, 0)
    }

    #[test]
    fn english_cardinals() {
        assert_eq!(en("four hundred and twelve"), Some((412, 4)));
        assert_eq!(en("one thousand two hundred"), Some((1200, 4)));
        assert_eq!(en("twenty five"), Some((25, 2)));
        assert_eq!(en("a hundred and twenty dollars"), Some((120, 4)));
        assert_eq!(en("four one five"), Some((4, 1)));
        assert_eq!(en("twelve fifty"), Some((12, 1)));
        assert_eq!(en("5 thousand"), Some((5000, 2)));
        assert_eq!(
            en("two million three thousand and one"),
            Some((2_003_001, 6))
        );
        assert_eq!(en("zero"), Some((0, 1)));
        assert_eq!(en("hundred"), None);
        assert_eq!(en("and five"), None);
    }

    #[test]
    fn mandarin_cardinals() {
        let p = |s: &str| parse_han_cardinal(&s.chars().collect::<Vec<_>>(), 0).map(|v| v.0);
        assert_eq!(p("十二"), Some(12));
        assert_eq!(p("二十"), Some(20));
        assert_eq!(p("一百二十"), Some(120));
        assert_eq!(p("一百零五"), Some(105));
        assert_eq!(p("一百五"), Some(150));
        assert_eq!(p("两千五"), Some(2500));
        assert_eq!(p("三万"), Some(30_000));
        assert_eq!(p("两万五"), Some(25_000));
        assert_eq!(p("一千二百三十四"), Some(1234));
        assert_eq!(p("12"), Some(12));
        assert_eq!(p("3万"), Some(30_000));
        assert_eq!(p("元"), None);
    }
}
