//! Spoken readouts (English): numbers, digit strings and amounts as prompt-key lists.
//!
//! Keys refer to the bundled prompt set (`prompts/en/num/*`, `currency/*`, `digit/*`), so
//! the result can be fed straight into [`crate::player::PromptCache::get`].

const ONES: [&str; 20] = [
    "num/0", "num/1", "num/2", "num/3", "num/4", "num/5", "num/6", "num/7", "num/8", "num/9",
    "num/10", "num/11", "num/12", "num/13", "num/14", "num/15", "num/16", "num/17", "num/18",
    "num/19",
];
/// Indexed by the tens digit; 0 and 1 are never used (covered by `ONES`).
const TENS: [&str; 10] = [
    "num/0", "num/10", "num/20", "num/30", "num/40", "num/50", "num/60", "num/70", "num/80",
    "num/90",
];
const SCALES: [(u64, &str); 3] = [
    (1_000_000_000, "num/billion"),
    (1_000_000, "num/million"),
    (1_000, "num/thousand"),
];

/// Speaks `n` the American way, without "and": 1234 → one thousand two hundred thirty four.
///
/// Amounts of a trillion and above are read as "… thousand billion" because the prompt set
/// stops at billion.
pub fn number(n: u64) -> Vec<&'static str> {
    let mut out = Vec::new();
    if n == 0 {
        out.push(ONES[0]);
    } else {
        push_number(n, &mut out);
    }
    out
}

fn push_number(mut n: u64, out: &mut Vec<&'static str>) {
    for (scale, word) in SCALES {
        if n >= scale {
            push_number(n / scale, out);
            out.push(word);
            n %= scale;
        }
    }
    // n < 1000 here.
    if n >= 100 {
        push_below_100(n / 100, out);
        out.push("num/hundred");
        n %= 100;
    }
    if n > 0 {
        push_below_100(n, out);
    }
}

fn push_below_100(n: u64, out: &mut Vec<&'static str>) {
    let n = (n % 100) as usize;
    if let Some(&word) = ONES.get(n) {
        out.push(word);
        return;
    }
    if let Some(&tens) = TENS.get(n / 10) {
        out.push(tens);
    }
    let unit = n % 10;
    // "twenty", not "twenty zero".
    if unit > 0 {
        out.extend(ONES.get(unit));
    }
}

/// Speaks each digit of `s` (account numbers, "you pressed"); `*` and `#` are spoken as
/// star and pound, anything else (spaces, dashes, dots) is skipped.
pub fn digits(s: &str) -> Vec<&'static str> {
    s.chars()
        .filter_map(|c| match c {
            '0'..='9' => c.to_digit(10).and_then(|d| ONES.get(d as usize)).copied(),
            '*' => Some("digit/star"),
            '#' => Some("digit/pound"),
            _ => None,
        })
        .collect()
}

/// Unit names of a currency with spoken prompts: (singular, plural) major and minor units.
fn units(code: &str) -> Option<[&'static str; 4]> {
    if code.eq_ignore_ascii_case("USD") {
        Some([
            "currency/dollar",
            "currency/dollars",
            "currency/cent",
            "currency/cents",
        ])
    } else if code.eq_ignore_ascii_case("EUR") {
        Some([
            "currency/euro",
            "currency/euros",
            "currency/cent",
            "currency/cents",
        ])
    } else {
        None
    }
}

/// Speaks an amount given in minor units (cents): 123456 USD → "one thousand two hundred
/// thirty four dollars and fifty six cents".
///
/// Zero cents are omitted, and an amount below one unit is read as cents only. For codes
/// without unit prompts the amount is read as a decimal ("twelve point three four").
pub fn currency(minor_units: i64, code: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if minor_units < 0 {
        out.push("currency/minus");
    }
    let abs = minor_units.unsigned_abs();
    let (major, minor) = (abs / 100, abs % 100);
    match units(code) {
        Some([one, many, cent, cents]) => {
            if major > 0 || minor == 0 {
                out.extend(number(major));
                out.push(if major == 1 { one } else { many });
            }
            if minor > 0 {
                if major > 0 {
                    out.push("currency/and");
                }
                out.extend(number(minor));
                out.push(if minor == 1 { cent } else { cents });
            }
        }
        None => {
            out.extend(number(major));
            out.push("num/point");
            out.extend(ONES.get((minor / 10) as usize));
            out.extend(ONES.get((minor % 10) as usize));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shorthand: "1 thousand 2 hundred 30 4" → ["num/1", "num/thousand", …].
    fn keys(words: &str) -> Vec<String> {
        words
            .split_whitespace()
            .map(|w| {
                if w.contains('/') {
                    w.to_string()
                } else {
                    format!("num/{w}")
                }
            })
            .collect()
    }

    fn check(n: u64, words: &str) {
        assert_eq!(number(n), keys(words), "number({n})");
    }

    #[test]
    fn small_numbers() {
        check(0, "0");
        check(7, "7");
        check(10, "10");
        check(15, "15");
        check(19, "19");
        check(20, "20");
        check(21, "20 1");
        check(40, "40");
        check(99, "90 9");
    }

    #[test]
    fn hundreds_and_thousands() {
        check(100, "1 hundred");
        check(101, "1 hundred 1");
        check(110, "1 hundred 10");
        check(115, "1 hundred 15");
        check(999, "9 hundred 90 9");
        check(1000, "1 thousand");
        check(1010, "1 thousand 10");
        check(1234, "1 thousand 2 hundred 30 4");
        check(20_000, "20 thousand");
        check(100_001, "1 hundred thousand 1");
        check(999_999, "9 hundred 90 9 thousand 9 hundred 90 9");
    }

    #[test]
    fn large_numbers() {
        check(1_000_000, "1 million");
        check(1_000_001, "1 million 1");
        check(2_500_000, "2 million 5 hundred thousand");
        check(1_000_000_000, "1 billion");
        check(
            1_234_567_890,
            "1 billion 2 hundred 30 4 million 5 hundred 60 7 thousand 8 hundred 90",
        );
        check(1_000_000_000_000, "1 thousand billion");
        // u64::MAX = 18,446,744,073,709,551,615 → must not panic and ends in "…15".
        let max = number(u64::MAX);
        assert_eq!(max.first(), Some(&"num/18"));
        assert_eq!(max.last(), Some(&"num/15"));
    }

    #[test]
    fn digit_strings() {
        assert_eq!(digits("0"), ["num/0"]);
        assert_eq!(
            digits("12-03 4"),
            ["num/1", "num/2", "num/0", "num/3", "num/4"]
        );
        assert_eq!(digits("*9#"), ["digit/star", "num/9", "digit/pound"]);
        assert!(
            digits("abc ٣").is_empty(),
            "non-ASCII digits are not spoken"
        );
    }

    #[test]
    fn dollars_and_euros() {
        assert_eq!(
            currency(123_456, "USD"),
            keys("1 thousand 2 hundred 30 4 currency/dollars currency/and 50 6 currency/cents")
        );
        assert_eq!(currency(100, "usd"), keys("1 currency/dollar"));
        assert_eq!(
            currency(101, "USD"),
            keys("1 currency/dollar currency/and 1 currency/cent")
        );
        assert_eq!(currency(0, "USD"), keys("0 currency/dollars"));
        assert_eq!(currency(5, "USD"), keys("5 currency/cents"));
        assert_eq!(
            currency(1_000_000, "EUR"),
            keys("10 thousand currency/euros")
        );
        assert_eq!(
            currency(-250, "EUR"),
            keys("currency/minus 2 currency/euros currency/and 50 currency/cents")
        );
        let min = currency(i64::MIN, "USD");
        assert_eq!(min.first(), Some(&"currency/minus"));
        assert_eq!(min.last(), Some(&"currency/cents"));
    }

    #[test]
    fn unknown_currency_reads_decimal() {
        assert_eq!(currency(1234, "GBP"), keys("12 point 3 4"));
        assert_eq!(currency(1205, "CHF"), keys("12 point 0 5"));
        assert_eq!(currency(-7, "XXX"), keys("currency/minus 0 point 0 7"));
    }

    #[test]
    fn every_key_exists_in_bundled_prompt_set() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../prompts/en");
        let cache = crate::player::PromptCache::load_dir(&dir).unwrap();
        let mut used: Vec<&str> = Vec::new();
        for n in (0..=1000).chain([1_234_567_890, u64::MAX]) {
            used.extend(number(n));
        }
        used.extend(digits("0123456789*#"));
        for code in ["USD", "EUR", "JPY"] {
            for amount in [-101, 0, 1, 100, 199, 123_456] {
                used.extend(currency(amount, code));
            }
        }
        for key in used {
            assert!(cache.contains(key), "prompt {key} missing from prompts/en");
        }
        let hold = cache.get("music/hold").unwrap();
        assert_eq!(hold.samples().len(), 8 * 8000);
    }
}

/// Mandarin readouts, keys into `prompts/zh/`: `num/0`–`num/9` (零…九), `num/10` (十), `num/hundred` (百),
/// `num/thousand` (千), `num/wan` (万), `num/yi` (亿), `num/point` (点), `currency/yuan|jiao|fen|usd|eur|minus`.
pub mod zh {
    const DIGITS: [&str; 10] = [
        "num/0", "num/1", "num/2", "num/3", "num/4", "num/5", "num/6", "num/7", "num/8", "num/9",
    ];

    /// 1234 → 一千二百三十四; 1005 → 一千零五; 10 → 十 (not 一十); 120000 → 十二万.
    pub fn number(n: u64) -> Vec<&'static str> {
        let mut out = Vec::new();
        if n == 0 {
            out.push(DIGITS[0]);
            return out;
        }
        // Groups of four digits: 亿 (10^8), 万 (10^4), units. Above 亿 the high part is read as a number of 亿.
        let groups = [
            (n / 100_000_000, "num/yi"),
            ((n / 10_000) % 10_000, "num/wan"),
        ];
        let mut started = false;
        let mut zero_pending = false;
        for (g, unit) in groups {
            if g > 0 {
                if g >= 10_000 {
                    out.extend(number(g));
                } else {
                    push_group(g, started, zero_pending || (started && g < 1_000), &mut out);
                }
                out.push(unit);
                started = true;
                zero_pending = false;
            } else if started {
                zero_pending = true;
            }
        }
        let low = n % 10_000;
        if low > 0 {
            push_group(
                low,
                started,
                zero_pending || (started && low < 1_000),
                &mut out,
            );
        }
        out
    }

    /// One group below 10 000. `inner`: a higher group was read (so a leading 一 of 十 is kept and gaps say 零).
    fn push_group(g: u64, inner: bool, zero_first: bool, out: &mut Vec<&'static str>) {
        let places = [
            (1_000, "num/thousand"),
            (100, "num/hundred"),
            (10, "num/10"),
        ];
        let mut zero = zero_first;
        let mut said = false;
        for (p, unit) in places {
            let d = (g / p % 10) as usize;
            if d == 0 {
                zero |= said;
                continue;
            }
            if zero {
                out.push(DIGITS[0]);
                zero = false;
            }
            // 十五, not 一十五, at the start of a number.
            if p != 10 || d != 1 || said || inner {
                out.push(DIGITS[d]);
            }
            out.push(unit);
            said = true;
        }
        let d = (g % 10) as usize;
        if d > 0 {
            if zero {
                out.push(DIGITS[0]);
            }
            out.push(DIGITS[d]);
        }
    }

    /// Each digit on its own: 87654321 → 八七六五四三二一.
    pub fn digits(s: &str) -> Vec<&'static str> {
        s.chars()
            .filter_map(|c| match c {
                '0'..='9' => c.to_digit(10).and_then(|d| DIGITS.get(d as usize)).copied(),
                '*' => Some("digit/star"),
                '#' => Some("digit/pound"),
                _ => None,
            })
            .collect()
    }

    /// CNY as 元/角/分 (12.05 → 十二元零五分); other currencies as a decimal and the currency's name
    /// (88.10 USD → 八十八点一美元).
    pub fn currency(minor_units: i64, code: &str) -> Vec<&'static str> {
        let mut out = Vec::new();
        if minor_units < 0 {
            out.push("currency/minus");
        }
        let abs = minor_units.unsigned_abs();
        let (major, jiao, fen) = (abs / 100, ((abs / 10) % 10) as usize, (abs % 10) as usize);
        if code.eq_ignore_ascii_case("CNY") || code.eq_ignore_ascii_case("RMB") {
            if major > 0 || abs == 0 {
                out.extend(number(major));
                out.push("currency/yuan");
            }
            if jiao > 0 {
                out.push(DIGITS[jiao]);
                out.push("currency/jiao");
            }
            if fen > 0 {
                if jiao == 0 && major > 0 {
                    out.push(DIGITS[0]);
                }
                out.push(DIGITS[fen]);
                out.push("currency/fen");
            }
            return out;
        }
        out.extend(number(major));
        if jiao > 0 || fen > 0 {
            out.push("num/point");
            out.push(DIGITS[jiao]);
            if fen > 0 {
                out.push(DIGITS[fen]);
            }
        }
        if code.eq_ignore_ascii_case("USD") {
            out.push("currency/usd");
        } else if code.eq_ignore_ascii_case("EUR") {
            out.push("currency/eur");
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Keys to characters, for readable expectations.
        fn hanzi(keys: &[&str]) -> String {
            keys.iter()
                .map(|k| match *k {
                    "num/0" => "零",
                    "num/1" => "一",
                    "num/2" => "二",
                    "num/3" => "三",
                    "num/4" => "四",
                    "num/5" => "五",
                    "num/6" => "六",
                    "num/7" => "七",
                    "num/8" => "八",
                    "num/9" => "九",
                    "num/10" => "十",
                    "num/hundred" => "百",
                    "num/thousand" => "千",
                    "num/wan" => "万",
                    "num/yi" => "亿",
                    "num/point" => "点",
                    "currency/yuan" => "元",
                    "currency/jiao" => "角",
                    "currency/fen" => "分",
                    "currency/usd" => "美元",
                    "currency/minus" => "负",
                    other => other,
                })
                .collect()
        }

        #[test]
        fn numbers_read_the_chinese_way() {
            for (n, want) in [
                (0, "零"),
                (7, "七"),
                (10, "十"),
                (15, "十五"),
                (20, "二十"),
                (88, "八十八"),
                (105, "一百零五"),
                (110, "一百一十"),
                (1005, "一千零五"),
                (1050, "一千零五十"),
                (1234, "一千二百三十四"),
                (10_005, "一万零五"),
                (12_000, "一万二千"),
                (100_000, "十万"),
                (120_000, "十二万"),
                (1_000_100, "一百万零一百"),
                (200_000_000, "二亿"),
                (300_050_000, "三亿零五万"),
            ] {
                assert_eq!(hanzi(&number(n)), want, "{n}");
            }
        }

        #[test]
        fn money_and_digits() {
            assert_eq!(hanzi(&currency(1205, "CNY")), "十二元零五分");
            assert_eq!(hanzi(&currency(523_080, "CNY")), "五千二百三十元八角");
            assert_eq!(hanzi(&currency(30, "CNY")), "三角");
            assert_eq!(hanzi(&currency(8810, "USD")), "八十八点一美元");
            assert_eq!(
                hanzi(&currency(-123_456, "USD")),
                "负一千二百三十四点五六美元"
            );
            assert_eq!(hanzi(&digits("4242")), "四二四二");
        }
    }
}
