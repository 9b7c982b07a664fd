//! Text normalisation shared by the classifier and the entity parsers.
//!
//! Recognisers differ in casing, punctuation, contractions and script (whisper writes Mandarin in simplified
//! or traditional characters, English numbers as words or numerals); everything downstream compares the
//! normalised form so those differences do not count as evidence.

/// The writing system of an utterance, detected from its characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// Latin letters (English) only.
    Latin,
    /// Han characters (Mandarin) only.
    Han,
    /// Both, e.g. "我的visa卡丢了".
    Mixed,
    /// Neither: empty, digits or punctuation only.
    Unknown,
}

/// Which script `text` is written in; the classifier uses word features for Latin runs and character
/// n-grams for Han runs, so mixed text needs no choice, but callers may want to pick a reply language.
pub fn detect_script(text: &str) -> Script {
    let mut latin = false;
    let mut han = false;
    for c in text.chars() {
        if is_han(c) {
            han = true;
        } else if c.is_alphabetic() {
            latin = true;
        }
    }
    match (latin, han) {
        (true, true) => Script::Mixed,
        (true, false) => Script::Latin,
        (false, true) => Script::Han,
        (false, false) => Script::Unknown,
    }
}

/// CJK unified ideographs (with extension A and the compatibility block) and 〇, the characters Mandarin
/// text uses.
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3007 | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Traditional → simplified for the characters that matter to a bank hotline; whisper writes either.
const TRADITIONAL: &[(char, char)] = &[
    ('丟', '丢'),
    ('餘', '余'),
    ('額', '额'),
    ('帳', '账'),
    ('賬', '账'),
    ('戶', '户'),
    ('轉', '转'),
    ('詐', '诈'),
    ('騙', '骗'),
    ('錢', '钱'),
    ('說', '说'),
    ('話', '话'),
    ('謝', '谢'),
    ('見', '见'),
    ('對', '对'),
    ('個', '个'),
    ('幫', '帮'),
    ('凍', '冻'),
    ('結', '结'),
    ('掛', '挂'),
    ('務', '务'),
    ('電', '电'),
    ('們', '们'),
    ('這', '这'),
    ('還', '还'),
    ('麼', '么'),
    ('嗎', '吗'),
    ('沒', '没'),
    ('員', '员'),
    ('聽', '听'),
    ('請', '请'),
    ('號', '号'),
    ('碼', '码'),
    ('記', '记'),
    ('錄', '录'),
    ('詢', '询'),
    ('筆', '笔'),
    ('細', '细'),
    ('單', '单'),
    ('銀', '银'),
    ('遺', '遗'),
    ('盜', '盗'),
    ('竊', '窃'),
    ('選', '选'),
    ('項', '项'),
    ('複', '复'),
    ('會', '会'),
    ('點', '点'),
    ('時', '时'),
    ('問', '问'),
    ('題', '题'),
    ('開', '开'),
    ('關', '关'),
    ('費', '费'),
    ('讓', '让'),
    ('給', '给'),
    ('將', '将'),
    ('從', '从'),
    ('過', '过'),
    ('錯', '错'),
    ('幾', '几'),
    ('萬', '万'),
    ('億', '亿'),
    ('兩', '两'),
    ('塊', '块'),
    ('圓', '圆'),
    ('幣', '币'),
    ('歐', '欧'),
    ('鎊', '镑'),
    ('東', '东'),
    ('設', '设'),
    ('機', '机'),
    ('動', '动'),
    ('盡', '尽'),
    ('來', '来'),
    ('實', '实'),
    ('與', '与'),
    ('擔', '担'),
    ('聯', '联'),
    ('繫', '系'),
    ('係', '系'),
    ('線', '线'),
    ('專', '专'),
    ('為', '为'),
    ('煩', '烦'),
    ('決', '决'),
    ('辦', '办'),
    ('後', '后'),
    ('歷', '历'),
    ('據', '据'),
    ('匯', '汇'),
];

/// Folds a traditional Han character to its simplified form where the table knows it.
pub(crate) fn fold_han(c: char) -> char {
    TRADITIONAL
        .iter()
        .find(|(t, _)| *t == c)
        .map_or(c, |(_, s)| *s)
}

/// Han characters that carry no intent (pronouns, particles, "want", "a bit"); dropped before n-grams so
/// "查一下余额" and "查余额" share their bigrams.
const HAN_STOP: &[char] = &[
    '我', '的', '了', '吗', '呢', '啊', '吧', '呀', '嘛', '请', '一', '下', '你', '要', '想', '把',
    '让', '给', '在', '就', '也', '都', '还', '和', '跟', '那', '这', '个', '些', '们', '嗯', '哦',
    '喂', '您',
];

pub(crate) fn is_han_stop(c: char) -> bool {
    HAN_STOP.contains(&c)
}

/// English words that carry no intent on their own; dropped for keyword and example matching.
const STOP_WORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "any", "are", "as", "at", "be", "been", "being", "but", "by",
    "could", "did", "do", "does", "er", "for", "from", "get", "go", "going", "gonna", "got", "had",
    "has", "have", "having", "hello", "hey", "hi", "how", "hmm", "i", "if", "in", "is", "it",
    "its", "just", "let", "like", "may", "me", "might", "mine", "must", "my", "myself", "need",
    "needs", "of", "on", "or", "our", "please", "really", "shall", "should", "so", "some", "the",
    "their", "them", "then", "there", "these", "they", "this", "those", "to", "uh", "uhm", "um",
    "us", "very", "wanna", "want", "wanted", "wants", "was", "we", "well", "were", "what", "when",
    "where", "which", "who", "why", "will", "with", "would", "you", "your", "can", "ah", "oh",
    "also", "tell",
];

pub(crate) fn is_stop_word(w: &str) -> bool {
    STOP_WORDS.contains(&w)
}

/// Expands one lowercased word with an apostrophe (or a common apostrophe-less spelling whisper emits)
/// into the words it stands for, so "I'd" and "i would" compare equal.
fn expand_contraction(w: &str, out: &mut Vec<String>) {
    let whole: Option<&[&str]> = match w {
        "i'm" | "im" => Some(&["i", "am"]),
        "can't" | "cant" | "cannot" => Some(&["can", "not"]),
        "won't" | "wont" => Some(&["will", "not"]),
        "shan't" => Some(&["shall", "not"]),
        "ain't" => Some(&["is", "not"]),
        "let's" => Some(&["let", "us"]),
        "dont" => Some(&["do", "not"]),
        "didnt" => Some(&["did", "not"]),
        "doesnt" => Some(&["does", "not"]),
        "isnt" => Some(&["is", "not"]),
        "thats" => Some(&["that", "is"]),
        "whats" => Some(&["what", "is"]),
        "ive" => Some(&["i", "have"]),
        "youre" => Some(&["you", "are"]),
        _ => None,
    };
    if let Some(words) = whole {
        out.extend(words.iter().map(|s| (*s).to_owned()));
        return;
    }
    let suffixes: &[(&str, &[&str])] = &[
        ("n't", &["not"]),
        ("'re", &["are"]),
        ("'ve", &["have"]),
        ("'ll", &["will"]),
        ("'d", &["would"]),
        ("'m", &["am"]),
        ("'s", &["is"]),
    ];
    for (suffix, expansion) in suffixes {
        if let Some(stem) = w.strip_suffix(suffix) {
            if stem.is_empty() {
                break;
            }
            // "'s" is "is" after pronouns and question words, a possessive otherwise ("bank's").
            if *suffix == "'s"
                && !matches!(
                    stem,
                    "it" | "that"
                        | "what"
                        | "there"
                        | "here"
                        | "he"
                        | "she"
                        | "who"
                        | "where"
                        | "how"
                )
            {
                out.push(stem.to_owned());
                return;
            }
            out.push(stem.to_owned());
            out.extend(expansion.iter().map(|s| (*s).to_owned()));
            return;
        }
    }
    let cleaned: String = w.chars().filter(|c| *c != '\'').collect();
    if !cleaned.is_empty() {
        out.push(cleaned);
    }
}

/// A normalised utterance: Latin words in order (stop-words kept, callers decide) and Han runs, folded to
/// simplified characters.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Normalized {
    pub words: Vec<String>,
    pub han_runs: Vec<Vec<char>>,
}

const DIGIT_WORDS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// Lowercases, expands contractions, spells single-digit numerals as words ("press 1" = "press one"),
/// removes thousands separators, turns currency symbols into words, and splits Han runs out.
pub(crate) fn normalize(text: &str) -> Normalized {
    let mut out = Normalized::default();
    let mut word = String::new();
    let mut han: Vec<char> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let flush_word = |word: &mut String, out: &mut Normalized| {
        if word.is_empty() {
            return;
        }
        let w = std::mem::take(word);
        let trimmed = w.trim_matches('\'');
        if trimmed.is_empty() {
            return;
        }
        let mut expanded = Vec::with_capacity(2);
        expand_contraction(trimmed, &mut expanded);
        for e in expanded {
            if e.len() == 1 && e.as_bytes()[0].is_ascii_digit() {
                out.words
                    .push(DIGIT_WORDS[(e.as_bytes()[0] - b'0') as usize].to_owned());
            } else {
                out.words.push(e);
            }
        }
    };
    for (i, &raw) in chars.iter().enumerate() {
        let c = match raw {
            '’' | '‘' | '`' | 'ʼ' => '\'',
            c => c,
        };
        if is_han(c) {
            flush_word(&mut word, &mut out);
            han.push(fold_han(c));
            continue;
        }
        if !han.is_empty() {
            out.han_runs.push(std::mem::take(&mut han));
        }
        let prev_digit = i > 0 && chars[i - 1].is_ascii_digit();
        let next_digit = chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if c.is_alphanumeric() || (c == '\'' && !word.is_empty()) {
            word.extend(c.to_lowercase());
        } else if c == ',' && prev_digit && next_digit {
            // Thousands separator: "1,200" is one number.
        } else if c == '.' && prev_digit && next_digit {
            word.push('.');
        } else {
            flush_word(&mut word, &mut out);
            let symbol = match c {
                '$' => Some("dollar"),
                '€' => Some("euro"),
                '£' => Some("pound"),
                '¥' => Some("yuan"),
                '%' => Some("percent"),
                _ => None,
            };
            if let Some(s) = symbol {
                out.words.push(s.to_owned());
            }
        }
    }
    flush_word(&mut word, &mut out);
    if !han.is_empty() {
        out.han_runs.push(han);
    }
    out
}

/// A light suffix stripper so inflections match ("cards"/"card", "scammed"/"scam", "balanced"/"balance").
/// Both sides of every comparison go through it, so it only has to be consistent, not linguistically right.
pub(crate) fn stem(word: &str) -> String {
    let mut w: Vec<char> = word.chars().collect();
    if w.len() <= 3 || !w.iter().all(|c| c.is_alphabetic()) {
        return word.to_owned();
    }
    let ends = |w: &[char], s: &str| {
        let n = s.chars().count();
        w.len() > n && w[w.len() - n..].iter().copied().eq(s.chars())
    };
    if ends(&w, "ies") && w.len() > 4 {
        w.truncate(w.len() - 3);
        w.push('y');
    } else if ends(&w, "sses") {
        w.truncate(w.len() - 2);
    } else if ends(&w, "s") && !ends(&w, "ss") && !ends(&w, "us") && !ends(&w, "is") {
        w.pop();
    }
    let mut stripped = false;
    if ends(&w, "ing") && w.len() >= 6 {
        w.truncate(w.len() - 3);
        stripped = true;
    } else if ends(&w, "ed") && w.len() >= 5 {
        w.truncate(w.len() - 2);
        stripped = true;
    }
    if stripped {
        let n = w.len();
        if n >= 2 && w[n - 1] == w[n - 2] && !matches!(w[n - 1], 'l' | 's' | 'z') {
            w.pop();
        }
    }
    if w.len() > 3 && w.last() == Some(&'e') {
        w.pop();
    }
    w.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contractions_case_and_punctuation() {
        let n = normalize(" I'd like to check my balance, please. I can't! It's the bank's");
        assert_eq!(
            n.words,
            [
                "i", "would", "like", "to", "check", "my", "balance", "please", "i", "can", "not",
                "it", "is", "the", "bank"
            ]
        );
        assert_eq!(normalize("Don’t").words, ["do", "not"]);
        assert_eq!(normalize("dont").words, ["do", "not"]);
    }

    #[test]
    fn numbers_and_symbols() {
        assert_eq!(normalize("Press 1").words, ["press", "one"]);
        assert_eq!(
            normalize("$1,200.50 now").words,
            ["dollar", "1200.50", "now"]
        );
        assert_eq!(normalize("4-1-5").words, ["four", "one", "five"]);
    }

    #[test]
    fn han_runs_are_split_and_folded() {
        let n = normalize("我的visa卡丟了");
        assert_eq!(n.words, ["visa"]);
        assert_eq!(n.han_runs, vec![vec!['我', '的'], vec!['卡', '丢', '了']]);
    }

    #[test]
    fn scripts() {
        assert_eq!(detect_script("check my balance"), Script::Latin);
        assert_eq!(detect_script("查一下余额"), Script::Han);
        assert_eq!(detect_script("我的visa卡丢了"), Script::Mixed);
        assert_eq!(detect_script("123 ?"), Script::Unknown);
    }

    #[test]
    fn stems() {
        for (a, b) in [
            ("cards", "card"),
            ("scammed", "scam"),
            ("balanced", "balance"),
            ("balances", "balance"),
            ("transactions", "transaction"),
            ("freezing", "freeze"),
            ("charges", "charge"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} vs {b}");
        }
        assert_ne!(stem("card"), stem("cart"));
        assert_eq!(stem("yes"), "yes");
    }
}
