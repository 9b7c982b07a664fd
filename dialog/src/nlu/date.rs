//! Dates: "yesterday", "March third", "the 3rd of March", "3/14", "last Friday", "三月十四号".

use super::numbers::{num_word, numeral, ordinal_word, parse_han_cardinal, NumWord};
use super::text::{fold_han, is_han};

/// A calendar date as (year, month 1–12, day 1–31).
pub type Ymd = (i32, u32, u32);

/// Days since 1970-01-01 (proleptic Gregorian), after Howard Hinnant's `days_from_civil`.
fn days_from_civil((y, m, d): Ymd) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> Option<Ymd> {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Some((
        i32::try_from(y).ok()?,
        u32::try_from(m).ok()?,
        u32::try_from(d).ok()?,
    ))
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn valid((y, m, d): Ymd) -> bool {
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// `today` moved by `days`; `None` beyond ±100,000 years' worth (absurd "… days ago" input).
fn shift(today: Ymd, days: i64) -> Option<Ymd> {
    if days.unsigned_abs() > 36_500_000 {
        return None;
    }
    civil_from_days(days_from_civil(today) + days)
}

/// Monday = 0 … Sunday = 6.
fn weekday(date: Ymd) -> i64 {
    // 1970-01-01 was a Thursday.
    (days_from_civil(date) + 3).rem_euclid(7)
}

/// A month and day without a year: the latest such date on or before `today`. Callers of a bank line
/// ask about what happened (transactions, a lost card, a scam call), so an unqualified "March third"
/// said in January means last March.
fn latest(today: Ymd, m: u32, d: u32) -> Option<Ymd> {
    (0..8)
        .map(|back| (today.0 - back, m, d))
        .find(|c| valid(*c) && *c <= today)
}

fn month_word(w: &str) -> Option<u32> {
    Some(match w {
        "january" | "jan" => 1,
        "february" | "feb" => 2,
        "march" | "mar" => 3,
        "april" | "apr" => 4,
        "may" => 5,
        "june" | "jun" => 6,
        "july" | "jul" => 7,
        "august" | "aug" => 8,
        "september" | "sep" | "sept" => 9,
        "october" | "oct" => 10,
        "november" | "nov" => 11,
        "december" | "dec" => 12,
        _ => return None,
    })
}

fn weekday_word(w: &str) -> Option<i64> {
    Some(match w {
        "monday" => 0,
        "tuesday" => 1,
        "wednesday" => 2,
        "thursday" => 3,
        "friday" => 4,
        "saturday" => 5,
        "sunday" => 6,
        _ => return None,
    })
}

/// Lowercase tokens; keeps "3/14" and "2024-03-14" whole, splits "twenty-first".
fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut w = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if c.is_alphanumeric() && !is_han(c) {
            w.extend(c.to_lowercase());
        } else if (c == '/' || c == '-' || c == '.') && between_digits {
            w.push(c);
        } else if c == '\'' && !w.is_empty() {
            // "today's" → "today"
            out.push(std::mem::take(&mut w));
        } else if !w.is_empty() {
            out.push(std::mem::take(&mut w));
        }
    }
    if !w.is_empty() {
        out.push(w);
    }
    out
}

/// A day of the month at `t[i..]`: "3", "3rd", "third", "twenty first", "twenty-one", "14th"; with the
/// tokens used.
fn day_at(t: &[String], i: usize) -> Option<(u32, usize)> {
    let w = t.get(i)?.as_str();
    let digits: String = w.chars().take_while(char::is_ascii_digit).collect();
    if !digits.is_empty() {
        let suffix = &w[digits.len()..];
        if !matches!(suffix, "" | "st" | "nd" | "rd" | "th") {
            return None;
        }
        let d: u32 = digits.parse().ok()?;
        return (1..=31).contains(&d).then_some((d, 1));
    }
    if let Some(d) = ordinal_word(w) {
        return Some((d, 1));
    }
    if let Some(NumWord::Tens(tens @ (20 | 30))) = num_word(w) {
        if let Some(unit) = t
            .get(i + 1)
            .and_then(|n| ordinal_word(n))
            .filter(|u| *u < 10)
        {
            return Some((u32::from(tens) + unit, 2));
        }
    }
    match num_word(w)? {
        NumWord::Digit(_) | NumWord::Teen(_) | NumWord::Tens(_) => {
            let (v, used) = super::numbers::parse_cardinal(t, i)?;
            let d = u32::try_from(v).ok()?;
            (1..=31).contains(&d).then_some((d, used))
        }
        _ => None,
    }
}

/// A year at `t[i..]`: "2024", or spoken "twenty twenty four" / "nineteen ninety nine".
fn year_at(t: &[String], i: usize) -> Option<(i32, usize)> {
    let w = t.get(i)?;
    if let Some(y) = numeral(w).filter(|y| (1900..=2199).contains(y)) {
        return Some((i32::try_from(y).ok()?, 1));
    }
    let century = match num_word(w)? {
        NumWord::Teen(19) => 1900,
        NumWord::Tens(20) => 2000,
        _ => return None,
    };
    let (rest, used) = super::numbers::parse_cardinal(t, i + 1)?;
    (rest < 100).then_some((century + i32::try_from(rest).ok()?, 1 + used))
}

/// "3/14", "3/14/2024", "3/14/24" (US month/day) and "2024-03-14".
fn numeric_date(w: &str, today: Ymd) -> Option<Ymd> {
    let parts: Vec<&str> = w.split(['/', '-', '.']).collect();
    let num = |s: &str| -> Option<u32> { numeral(s).and_then(|v| u32::try_from(v).ok()) };
    let sep_slash = w.contains('/');
    match parts.as_slice() {
        [m, d] if sep_slash => latest(today, num(m)?, num(d)?),
        [m, d, y] if sep_slash => {
            let y = num(y)?;
            let y = if y < 100 { 2000 + y } else { y };
            let date = (i32::try_from(y).ok()?, num(m)?, num(d)?);
            valid(date).then_some(date)
        }
        [y, m, d] if w.contains('-') && y.len() == 4 => {
            let date = (i32::try_from(num(y)?).ok()?, num(m)?, num(d)?);
            valid(date).then_some(date)
        }
        _ => None,
    }
}

/// The date a caller named, resolved against `today` (year, month, day): "today", "yesterday",
/// "tomorrow", "the day before yesterday", "three days ago", "last Friday" / "Friday" (the latest one
/// before / on or before today), "March third", "March 3rd, 2024", "the 3rd of March", "3/14" (US
/// month/day), "2024-03-14", and Mandarin 今天/昨天/前天/明天/后天, "三月十四号", "2024年3月14日",
/// "星期五"/"周五". Without a year, the latest such date on or before today. `None` when there is no date
/// or it does not exist (February 30th), or `today` itself is invalid.
pub fn date(text: &str, today: Ymd) -> Option<Ymd> {
    if !valid(today) {
        return None;
    }
    if text.chars().any(is_han) {
        if let Some(d) = han_date(text, today) {
            return Some(d);
        }
    }
    let t = tokens(text);
    let word = |i: usize| t.get(i).map(String::as_str);
    // Explicit dates first: they are more specific than a relative word in the same sentence.
    for (i, w) in t.iter().enumerate() {
        if w.contains(['/', '-', '.']) {
            if let Some(d) = numeric_date(w, today) {
                return Some(d);
            }
        }
        let Some(m) = month_word(w) else { continue };
        // "March third", "March the 3rd", "March 3rd, 2024".
        let j = if word(i + 1) == Some("the") {
            i + 2
        } else {
            i + 1
        };
        if let Some((d, used)) = day_at(&t, j) {
            if let Some((y, _)) = year_at(&t, j + used) {
                let date = (y, m, d);
                return valid(date).then_some(date);
            }
            return latest(today, m, d);
        }
        // "the 3rd of March", "3rd March", "third of March".
        let before = if i > 0 && word(i - 1) == Some("of") {
            i - 1
        } else {
            i
        };
        for start in before.saturating_sub(2)..before {
            if let Some((d, used)) = day_at(&t, start) {
                if start + used == before {
                    if let Some((y, _)) = year_at(&t, i + 1) {
                        let date = (y, m, d);
                        return valid(date).then_some(date);
                    }
                    return latest(today, m, d);
                }
            }
        }
    }
    for (i, w) in t.iter().enumerate() {
        match w.as_str() {
            "today" | "tonight" => return Some(today),
            "yesterday" => {
                let before = i >= 2 && word(i - 1) == Some("before") && word(i - 2) == Some("day");
                return shift(today, if before { -2 } else { -1 });
            }
            "tomorrow" => {
                let after = i >= 2 && word(i - 1) == Some("after") && word(i - 2) == Some("day");
                return shift(today, if after { 2 } else { 1 });
            }
            "ago" if i >= 1 => {
                let unit = match word(i - 1) {
                    Some("day" | "days") => 1,
                    Some("week" | "weeks") => 7,
                    _ => continue,
                };
                // "three days ago", "a week ago", "2 weeks ago".
                let count = if i >= 2 && matches!(word(i - 2), Some("a" | "one")) {
                    Some(1)
                } else {
                    (0..i - 1).rev().take(2).find_map(|s| {
                        super::numbers::parse_cardinal(&t, s)
                            .filter(|(_, used)| s + used == i - 1)
                            .map(|(v, _)| v)
                    })
                };
                if let Some(days) = count
                    .and_then(|n| i64::try_from(n).ok())
                    .and_then(|n| n.checked_mul(-unit))
                {
                    return shift(today, days);
                }
            }
            _ => {
                if let Some(wd) = weekday_word(w) {
                    let strictly_before = i >= 1 && word(i - 1) == Some("last");
                    let mut back = (weekday(today) - wd).rem_euclid(7);
                    if back == 0 && strictly_before {
                        back = 7;
                    }
                    return shift(today, -back);
                }
            }
        }
    }
    None
}

/// Mandarin dates: relative words, "N月N日/号" with an optional "N年", weekdays.
fn han_date(text: &str, today: Ymd) -> Option<Ymd> {
    let chars: Vec<char> = text.chars().map(fold_han).collect();
    let s: String = chars.iter().collect();
    // Month/day first, as in English.
    if let Some(pos) = chars.iter().position(|c| *c == '月') {
        let num_before = |end: usize| -> Option<(u64, usize)> {
            (end.saturating_sub(4)..end).find_map(|start| {
                parse_han_cardinal(&chars, start).filter(|(_, used)| start + used == end)
            })
        };
        if let Some((m, m_start)) = num_before(pos).map(|(m, used)| (m, pos - used)) {
            if let Some((d, used)) = parse_han_cardinal(&chars, pos + 1) {
                if matches!(chars.get(pos + 1 + used), Some('日' | '号')) {
                    let (m, d) = (u32::try_from(m).ok()?, u32::try_from(d).ok()?);
                    let year = (m_start >= 1 && chars[m_start - 1] == '年')
                        .then(|| num_before(m_start - 1))
                        .flatten()
                        .and_then(|(y, _)| i32::try_from(y).ok());
                    return match year {
                        Some(y) => Some((y, m, d)).filter(|x| valid(*x)),
                        None => latest(today, m, d),
                    };
                }
            }
        }
    }
    for (word, days) in [
        ("大前天", -3),
        ("前天", -2),
        ("昨天", -1),
        ("今天", 0),
        ("大后天", 3),
        ("后天", 2),
        ("明天", 1),
    ] {
        if s.contains(word) {
            return shift(today, days);
        }
    }
    for prefix in ["星期", "礼拜", "周"] {
        if let Some(at) = s.find(prefix) {
            let after = s[at + prefix.len()..].chars().next();
            let wd = match after {
                Some('一') => 0,
                Some('二') => 1,
                Some('三') => 2,
                Some('四') => 3,
                Some('五') => 4,
                Some('六') => 5,
                Some('日' | '天') => 6,
                _ => continue,
            };
            let last_week = s[..at].ends_with('上');
            let mut back = (weekday(today) - wd).rem_euclid(7);
            if last_week && back == 0 {
                back = 7;
            }
            return shift(today, -back);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Ymd = (2025, 3, 20); // a Thursday

    #[test]
    fn calendar_arithmetic() {
        assert_eq!(days_from_civil((1970, 1, 1)), 0);
        assert_eq!(civil_from_days(0), Some((1970, 1, 1)));
        for day in [-800_000i64, -1, 0, 59, 11_016, 20_167, 800_000] {
            let ymd = civil_from_days(day).unwrap();
            assert!(valid(ymd), "{ymd:?}");
            assert_eq!(days_from_civil(ymd), day);
        }
        assert_eq!(weekday(TODAY), 3);
        assert_eq!(shift((2024, 3, 1), -1), Some((2024, 2, 29)));
        assert_eq!(shift((2025, 1, 1), -1), Some((2024, 12, 31)));
        assert!(!valid((2025, 2, 29)));
        assert!(valid((2000, 2, 29)));
        assert!(!valid((1900, 2, 29)));
    }

    #[test]
    fn dates() {
        let cases: &[(&str, Option<Ymd>)] = &[
            ("today", Some(TODAY)),
            ("What did I spend today?", Some(TODAY)),
            ("yesterday", Some((2025, 3, 19))),
            ("the day before yesterday", Some((2025, 3, 18))),
            ("tomorrow", Some((2025, 3, 21))),
            ("three days ago", Some((2025, 3, 17))),
            ("a week ago", Some((2025, 3, 13))),
            ("2 weeks ago", Some((2025, 3, 6))),
            ("March third", Some((2025, 3, 3))),
            ("on March 3rd", Some((2025, 3, 3))),
            ("March the third", Some((2025, 3, 3))),
            ("the 3rd of March", Some((2025, 3, 3))),
            ("3rd March", Some((2025, 3, 3))),
            ("the third of March", Some((2025, 3, 3))),
            ("March twenty first", Some((2024, 3, 21))),
            ("the twenty-first of March", Some((2024, 3, 21))),
            ("December 25th", Some((2024, 12, 25))),
            ("March 3rd, 2024", Some((2024, 3, 3))),
            ("March 3rd twenty twenty three", Some((2023, 3, 3))),
            ("3/14", Some((2025, 3, 14))),
            ("3/25", Some((2024, 3, 25))),
            ("3/14/2025", Some((2025, 3, 14))),
            ("on 12/1/24", Some((2024, 12, 1))),
            ("2025-03-14", Some((2025, 3, 14))),
            ("February 29th", Some((2024, 2, 29))),
            ("February 30th", None),
            ("13/40", None),
            ("last Friday", Some((2025, 3, 14))),
            ("last Thursday", Some((2025, 3, 13))),
            ("on Thursday", Some(TODAY)),
            ("Monday", Some((2025, 3, 17))),
            ("May I check my balance", None),
            ("wait a second", None),
            ("", None),
            ("99999999999999999 weeks ago", None),
            ("今天", Some(TODAY)),
            ("昨天", Some((2025, 3, 19))),
            ("前天的交易", Some((2025, 3, 18))),
            ("三月十四号", Some((2025, 3, 14))),
            ("3月14日", Some((2025, 3, 14))),
            ("十二月一日", Some((2024, 12, 1))),
            ("2024年3月14日", Some((2024, 3, 14))),
            ("上周五", Some((2025, 3, 14))),
            ("星期一", Some((2025, 3, 17))),
        ];
        for (text, want) in cases {
            assert_eq!(date(text, TODAY), *want, "{text:?}");
        }
        assert_eq!(date("today", (2025, 2, 30)), None);
    }
}
