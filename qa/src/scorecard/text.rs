//! Tokens and fuzzy word comparison for phrase rules.
//!
//! Text is compared as tokens: Latin words (lowercased, apostrophes dropped, so "don't" = "dont") and single
//! Han characters (Mandarin has no spaces; a phrase of characters matches as a character sequence).
//! Whisper on phone audio writes real words that sound like the spoken ones ("save account" for "safe
//! account", "a count" for "account"), so words compare by edit distance and sound-alike key; Han characters
//! compare exactly.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use voxgate_dialog::nlu::{edit_distance, is_han, phonetic_key};

/// Similarity given to a word that only differs by an inflection ("fee"/"fees", "sue"/"suing").
const INFLECTED: u8 = 90;
/// Similarity given to sound-alike words whose spelling is still close ("save"/"safe").
const SOUND_ALIKE: u8 = 85;
/// Lowest similarity ever reported; thresholds below it would match unrelated words.
pub(crate) const MIN_SIMILARITY: u8 = 50;

/// One token of a text, as the tokenizer reports it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawToken<'a> {
    /// Comparison form: lowercase, apostrophes removed; one character for Han.
    pub key: &'a str,
    /// Byte range in the text.
    pub start: usize,
    pub end: usize,
    /// Character range in the text (for interpolating times).
    pub cstart: usize,
    pub cend: usize,
    pub han: bool,
    pub negator: bool,
    /// Hesitation ("um", "呃") that a phrase may skip over.
    pub filler: bool,
    /// First token of a clause (after `.`, `,`, `?`, `，`, `。`…): negation does not reach across it.
    pub clause: bool,
}

const NEGATORS: &[&str] = &[
    "not", "no", "never", "cannot", "nobody", "nothing", "none", "neither", "nor", "without",
    "dont", "didnt", "doesnt", "wont", "cant", "isnt", "wasnt", "arent", "werent", "shouldnt",
    "wouldnt", "couldnt", "havent", "hasnt", "hadnt", "aint", "mustnt",
];

const FILLERS: &[&str] = &[
    "um", "uh", "uhm", "umm", "er", "erm", "ah", "hmm", "mm", "嗯", "呃",
];

fn latin_negator(raw_lower: &str, key: &str) -> bool {
    raw_lower.ends_with("n't") || NEGATORS.contains(&key)
}

/// 不 starts common words that negate nothing: 对不起 (sorry), 不错 (good), 不客气, 不好意思, 不过 (but).
fn han_negator(c: char, rest: &str) -> bool {
    match c {
        '不' => {
            !(rest.starts_with('起')
                || rest.starts_with('错')
                || rest.starts_with('客')
                || rest.starts_with('过')
                || rest.starts_with("好意思"))
        }
        '没' | '别' | '未' | '无' => true,
        _ => false,
    }
}

fn clause_mark(c: char) -> bool {
    matches!(
        c,
        '.' | ',' | '!' | '?' | ';' | ':' | '。' | '，' | '！' | '？' | '；' | '：' | '、' | '…'
    )
}

/// A Latin word being collected by [`tokenize`].
#[derive(Default)]
struct Word {
    /// Lowercase, apostrophes kept (for "n't").
    raw: String,
    key: String,
    start: usize,
    cstart: usize,
    /// Just after the last letter or digit (a trailing apostrophe is not part of the word).
    end: usize,
    cend: usize,
}

impl Word {
    fn flush(&mut self, clause: &mut bool, f: &mut impl FnMut(RawToken<'_>)) {
        if self.raw.is_empty() {
            return;
        }
        let trimmed = self.raw.trim_end_matches('\'');
        if !self.key.is_empty() {
            f(RawToken {
                key: &self.key,
                start: self.start,
                end: self.end,
                cstart: self.cstart,
                cend: self.cend,
                han: false,
                negator: latin_negator(trimmed, &self.key),
                filler: FILLERS.contains(&self.key.as_str()),
                clause: *clause,
            });
            *clause = false;
        }
        self.raw.clear();
        self.key.clear();
    }
}

/// Calls `f` with every token of `text`, in order.
pub(crate) fn tokenize(text: &str, mut f: impl FnMut(RawToken<'_>)) {
    let mut word = Word::default();
    let mut clause = true;
    for (chars, (i, c)) in text.char_indices().enumerate() {
        let c = match c {
            '’' | '‘' | '`' | 'ʼ' => '\'',
            c => c,
        };
        if is_han(c) {
            word.flush(&mut clause, &mut f);
            let mut buf = [0u8; 4];
            let key: &str = c.encode_utf8(&mut buf);
            let end = i + c.len_utf8();
            f(RawToken {
                key,
                start: i,
                end,
                cstart: chars,
                cend: chars + 1,
                han: true,
                negator: han_negator(c, &text[end..]),
                filler: FILLERS.contains(&key),
                clause,
            });
            clause = false;
        } else if c.is_alphanumeric() || (c == '\'' && !word.raw.is_empty()) {
            if word.raw.is_empty() {
                word.start = i;
                word.cstart = chars;
            }
            if c == '\'' {
                word.raw.push(c);
            } else if c.is_ascii() {
                let l = c.to_ascii_lowercase();
                word.raw.push(l);
                word.key.push(l);
                word.end = i + 1;
                word.cend = chars + 1;
            } else {
                word.raw.extend(c.to_lowercase());
                word.key.extend(c.to_lowercase());
                word.end = i + c.len_utf8();
                word.cend = chars + 1;
            }
        } else {
            word.flush(&mut clause, &mut f);
            if clause_mark(c) {
                clause = true;
            }
        }
    }
    word.flush(&mut clause, &mut f);
}

/// A word prepared once for many comparisons.
#[derive(Clone, Debug)]
pub(crate) struct WordFeat {
    pub text: Box<str>,
    chars: Box<[char]>,
    key: Box<[u8]>,
    /// Which letters occur: a cheap lower bound on the edit distance rejects most pairs.
    mask: u64,
    /// First letter and first sound code, kept inline: most comparisons stop at them.
    first: char,
    onset: u8,
    len: u32,
    pub han: bool,
    /// [`start_bits`] of the word.
    pub starts: u64,
}

/// A filter on how words start (first letter in the low half, first sound code in the high half): two
/// words can only match (see [`similarity`]) when their bits overlap.
fn start_bits(first: char, onset: u8) -> u64 {
    let letter = 1u64 << (first as u32 % 32);
    if onset == 0 {
        letter
    } else {
        letter | 1u64 << (32 + u32::from(onset) % 32)
    }
}

impl WordFeat {
    pub fn new(text: &str, han: bool) -> Self {
        let chars: Box<[char]> = text.chars().collect();
        let mut mask = 0u64;
        for &c in chars.iter() {
            let bit = match c {
                'a'..='z' => c as u32 - 'a' as u32,
                '0'..='9' => 26 + c as u32 - '0' as u32,
                _ => 36 + c as u32 % 28,
            };
            mask |= 1 << bit;
        }
        let key = if han {
            Box::default()
        } else {
            phonetic_key(text).into_bytes().into_boxed_slice()
        };
        let first = chars.first().copied().unwrap_or('\0');
        let onset = key.first().copied().unwrap_or(0);
        Self {
            text: text.into(),
            first,
            onset,
            starts: start_bits(first, onset),
            len: chars.len() as u32,
            chars,
            key,
            mask,
            han,
        }
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }
}

/// `long` is `short` plus an English inflection ("fee"/"fees", "sue"/"sued"/"suing").
fn inflected(short: &[char], long: &[char]) -> bool {
    const SUFFIXES: [&str; 5] = ["s", "es", "d", "ed", "ing"];
    let rest_is = |stem: &[char]| {
        long.starts_with(stem) && {
            let rest = &long[stem.len()..];
            SUFFIXES.iter().any(|s| s.chars().eq(rest.iter().copied()))
        }
    };
    rest_is(short) || (short.last() == Some(&'e') && rest_is(&short[..short.len() - 1]))
}

/// How much a heard word counts as a known one, 0..=100 (percent): 100 identical, 90 an inflection, 85 a
/// sound-alike with similar spelling, otherwise `100 × (1 − edit distance / longer length)`; 0 below
/// [`MIN_SIMILARITY`]. Words under 3 letters and Han characters must be identical ("no"/"now" and
/// "to"/"two" flip meanings); under 4 letters only inflections count besides identity; words must start
/// alike (the same letter or the same first sound).
pub(crate) fn similarity(heard: &WordFeat, known: &WordFeat) -> u8 {
    if heard.han || known.han || heard.len.min(known.len) < 3 {
        return if heard.text == known.text { 100 } else { 0 };
    }
    // Misheard words keep their onset (a letter, or at least its sound: "phone"/"fone"); checking it
    // first rejects most pairs before any text is compared.
    if heard.first != known.first && heard.onset != known.onset {
        return 0;
    }
    if heard.text == known.text {
        return 100;
    }
    let (a, b) = (&heard.chars, &known.chars);
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if inflected(short, long) {
        return INFLECTED;
    }
    if short.len() < 4 {
        return 0;
    }
    // Each edit changes at most two letters' presence, and at least the length difference.
    let differing = (heard.mask ^ known.mask).count_ones() as usize;
    let lower = (long.len() - short.len()).max(differing.div_ceil(2));
    if lower * 2 > long.len() {
        return 0;
    }
    let d = edit_distance(a, b);
    let lex = 100.0 * (1.0 - d as f32 / long.len() as f32);
    let mut s = lex.round() as u8;
    if lex >= 60.0 && heard.key.len() >= 2 && heard.key == known.key {
        s = s.max(SOUND_ALIKE);
    }
    if s < MIN_SIMILARITY {
        0
    } else {
        s
    }
}

/// How much two adjacent heard words written together count as one known word ("a count" → "account",
/// "some one" → "someone"); only for known words of 5+ letters with the same first letter, since short
/// joins match too much by chance.
pub(crate) fn joined_similarity(a: &WordFeat, b: &WordFeat, known: &WordFeat) -> u8 {
    if a.first != known.first || known.len < 5 || a.han || b.han || known.han {
        return 0;
    }
    let len = a.len() + b.len();
    if len.abs_diff(known.len()) > 2 {
        return 0;
    }
    let differing = ((a.mask | b.mask) ^ known.mask).count_ones() as usize;
    if differing > 2 {
        return 0;
    }
    let joined = WordFeat::new(&format!("{}{}", a.text, b.text), false);
    similarity(&joined, known)
}

/// FNV-1a: interning hashes every word of every turn, and these keys are short and not adversarial
/// enough to need SipHash (a caller cannot choose many colliding words in one call).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Words interned to small ids, each prepared once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Vocab {
    ids: HashMap<Box<str>, u32, BuildHasherDefault<Fnv>>,
    pub feats: Vec<WordFeat>,
}

impl Vocab {
    pub fn intern(&mut self, key: &str, han: bool) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.feats.len() as u32;
        self.feats.push(WordFeat::new(key, han));
        self.ids.insert(key.into(), id);
        id
    }

    pub fn len(&self) -> usize {
        self.feats.len()
    }
}

pub(crate) const TOK_HAN: u8 = 1;
pub(crate) const TOK_NEG: u8 = 2;
pub(crate) const TOK_FILLER: u8 = 4;
pub(crate) const TOK_CLAUSE: u8 = 8;

/// A token of a turn, its word interned in the evaluation's [`Vocab`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tok {
    pub word: u32,
    /// The word's [`WordFeat::starts`], kept here so phrase scans skip most tokens without a lookup.
    pub starts: u64,
    pub start: u32,
    pub end: u32,
    pub cstart: u32,
    pub cend: u32,
    pub flags: u8,
}

impl Tok {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Tokenizes `text` into `out`, interning words in `vocab`.
pub(crate) fn tokens_into(text: &str, vocab: &mut Vocab, out: &mut Vec<Tok>) {
    tokenize(text, |t| {
        let mut flags = 0;
        if t.han {
            flags |= TOK_HAN;
        }
        if t.negator {
            flags |= TOK_NEG;
        }
        if t.filler {
            flags |= TOK_FILLER;
        }
        if t.clause {
            flags |= TOK_CLAUSE;
        }
        let word = vocab.intern(t.key, t.han);
        out.push(Tok {
            word,
            starts: vocab.feats[word as usize].starts,
            start: t.start as u32,
            end: t.end as u32,
            cstart: t.cstart as u32,
            cend: t.cend as u32,
            flags,
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        let mut v = Vec::new();
        tokenize(text, |t| v.push(t.key.to_string()));
        v
    }

    fn sim(a: &str, b: &str) -> u8 {
        similarity(&WordFeat::new(a, false), &WordFeat::new(b, false))
    }

    #[test]
    fn tokens_fold_case_punctuation_and_split_han() {
        assert_eq!(
            keys("Don’t move it to a SAFE-account, please!"),
            ["dont", "move", "it", "to", "a", "safe", "account", "please"]
        );
        assert_eq!(
            keys("他让我把钱转到安全账户"),
            "他让我把钱转到安全账户"
                .chars()
                .map(String::from)
                .collect::<Vec<_>>()
        );
        assert_eq!(keys("我的visa卡"), ["我", "的", "visa", "卡"]);
        let mut toks = Vec::new();
        tokenize("No. I didn't, 对不起 没有", |t| {
            toks.push((
                t.key.to_string(),
                t.negator,
                t.clause,
                t.start,
                t.end,
                t.cstart,
            ))
        });
        let neg: Vec<bool> = toks.iter().map(|t| t.1).collect();
        assert_eq!(neg, [true, false, true, false, false, false, true, false]);
        let clause: Vec<bool> = toks.iter().map(|t| t.2).collect();
        assert_eq!(
            clause,
            [true, true, false, true, false, false, false, false]
        );
        // "didn't" keeps its byte range including the apostrophe.
        assert_eq!((toks[2].3, toks[2].4), (6, 12));
        // Character offsets count Han characters as one.
        assert_eq!(toks[7].5, 19);
    }

    #[test]
    fn mishearings_are_similar_and_unrelated_words_are_not() {
        assert!(sim("save", "safe") >= 85, "{}", sim("save", "safe"));
        assert!(sim("acount", "account") >= 85);
        assert!(sim("gaurantee", "guarantee") >= 85);
        assert!(sim("goodbuy", "goodbye") >= 85);
        assert_eq!(sim("fees", "fee"), INFLECTED);
        assert_eq!(sim("suing", "sue"), INFLECTED);
        assert_eq!(sim("sued", "sue"), INFLECTED);
        assert_eq!(sim("no", "now"), 0);
        assert_eq!(sim("sue", "see"), 0);
        assert!(sim("count", "court") < 85);
        assert_eq!(sim("weather", "balance"), 0);
        assert_eq!(sim("lawyer", "lawyer"), 100);
        let w = |s: &str| WordFeat::new(s, false);
        assert!(joined_similarity(&w("a"), &w("count"), &w("account")) >= 85);
        assert_eq!(joined_similarity(&w("some"), &w("one"), &w("someone")), 100);
        assert!(joined_similarity(&w("a"), &w("count"), &w("amount")) < 85);
        assert_eq!(joined_similarity(&w("b"), &w("count"), &w("account")), 0);
        let han = |a: &str, b: &str| similarity(&WordFeat::new(a, true), &WordFeat::new(b, true));
        assert_eq!(han("钱", "钱"), 100);
        assert_eq!(han("钱", "前"), 0);
    }
}
