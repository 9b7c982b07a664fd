//! Fuzzy word matching: a compact phonetic key plus edit distance.
//!
//! Whisper's errors on telephone audio are mostly real words that sound like the spoken one ("cart" for
//! "card", "a count" for "account", "scanned" for "scammed"); a sound-alike key catches those, edit distance
//! catches spelling-level slips, and the two together decide how much a heard word counts as a known one.

/// A Metaphone-like sound key: consonant skeleton, voiced/voiceless pairs merged (b/p, d/t, g/k, v/f, z/s,
/// the pairs a telephone band blurs), vowels kept only as a leading `A`, repeats collapsed.
///
/// Codes: `P T K F S J X` (sh/ch) `0` (th) `L M N R W Y H A`.
pub fn phonetic_key(word: &str) -> String {
    let w: Vec<u8> = word
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    let mut key = String::with_capacity(w.len());
    let vowel = |c: Option<&u8>| matches!(c, Some(b'a' | b'e' | b'i' | b'o' | b'u' | b'y'));
    let front = |c: Option<&u8>| matches!(c, Some(b'e' | b'i' | b'y'));
    let mut i = 0;
    // Silent first letters: knife, gnome, pneumatic, write, psychology.
    if w.len() > 1
        && matches!(
            (w[0], w[1]),
            (b'k' | b'g' | b'p', b'n') | (b'w', b'r') | (b'p', b's')
        )
    {
        i = 1;
    }
    let push = |key: &mut String, c: char| {
        if !key.ends_with(c) {
            key.push(c);
        }
    };
    let start = i;
    while i < w.len() {
        let c = w[i];
        let next = w.get(i + 1);
        let next2 = w.get(i + 2);
        // A doubled letter sounds once (except "cc" in "accent", close enough to ignore).
        if i > start && w[i - 1] == c && c != b'c' {
            i += 1;
            continue;
        }
        match c {
            b'a' | b'e' | b'i' | b'o' | b'u' if i == start => push(&mut key, 'A'),
            // Silent in a final "mb" (climb, thumb).
            b'b' if !(i + 1 == w.len() && i > 0 && w[i - 1] == b'm') => push(&mut key, 'P'),
            b'c' => {
                if next == Some(&b'h') {
                    push(&mut key, 'X');
                    i += 1;
                } else if front(next) {
                    push(&mut key, 'S');
                } else {
                    push(&mut key, 'K');
                }
            }
            b'd' => {
                if next == Some(&b'g') && front(next2) {
                    push(&mut key, 'J');
                    i += 1;
                } else {
                    push(&mut key, 'T');
                }
            }
            b'f' | b'v' => push(&mut key, 'F'),
            b'g' => {
                if next == Some(&b'h') {
                    // "gh": hard at the start (ghost), silent or f-like inside (night, tough): drop.
                    if i == start {
                        push(&mut key, 'K');
                    }
                    i += 1;
                } else if next == Some(&b'n') && (i + 2 == w.len() || w[i + 2..] == *b"ed") {
                    // sign, signed
                } else if front(next) {
                    push(&mut key, 'J');
                } else {
                    push(&mut key, 'K');
                }
            }
            b'h' if i == start && vowel(next) => push(&mut key, 'H'),
            b'j' => push(&mut key, 'J'),
            b'k' if !(i > 0 && w[i - 1] == b'c') => push(&mut key, 'K'),
            b'l' => push(&mut key, 'L'),
            b'm' => push(&mut key, 'M'),
            b'n' => push(&mut key, 'N'),
            b'p' => {
                if next == Some(&b'h') {
                    push(&mut key, 'F');
                    i += 1;
                } else {
                    push(&mut key, 'P');
                }
            }
            b'q' => push(&mut key, 'K'),
            b'r' => push(&mut key, 'R'),
            b's' => {
                if next == Some(&b'h') {
                    push(&mut key, 'X');
                    i += 1;
                } else if next == Some(&b'i') && matches!(next2, Some(b'o' | b'a')) {
                    push(&mut key, 'X');
                } else {
                    push(&mut key, 'S');
                }
            }
            b't' => {
                if next == Some(&b'i') && matches!(next2, Some(b'o' | b'a')) {
                    push(&mut key, 'X');
                } else if next == Some(&b'h') {
                    push(&mut key, '0');
                    i += 1;
                } else if !(next == Some(&b'c') && next2 == Some(&b'h')) {
                    push(&mut key, 'T');
                }
            }
            b'w' => {
                if i == start && next == Some(&b'h') {
                    push(&mut key, 'W');
                    i += 1;
                } else if vowel(next) {
                    push(&mut key, 'W');
                }
            }
            b'x' => {
                if i == start {
                    push(&mut key, 'S');
                } else {
                    push(&mut key, 'K');
                    push(&mut key, 'S');
                }
            }
            b'y' => {
                if i == start && vowel(next) {
                    push(&mut key, 'Y');
                } else if i == start {
                    push(&mut key, 'A');
                }
            }
            b'z' => push(&mut key, 'S'),
            _ => {}
        }
        i += 1;
    }
    key
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions), the typo model.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    if a.is_empty() {
        return b.len();
    }
    if b.is_empty() {
        return a.len();
    }
    let n = b.len();
    // Three rolling rows (two back for transpositions); on the stack for word-sized inputs, since the
    // classifier calls this thousands of times per utterance.
    const STACK: usize = 32;
    let (mut s2, mut s1, mut s0) = (
        [0usize; STACK + 1],
        [0usize; STACK + 1],
        [0usize; STACK + 1],
    );
    let (mut h2, mut h1, mut h0);
    let (mut prev2, mut prev, mut cur): (&mut [usize], &mut [usize], &mut [usize]) = if n <= STACK {
        (&mut s2[..=n], &mut s1[..=n], &mut s0[..=n])
    } else {
        h2 = vec![0usize; n + 1];
        h1 = vec![0usize; n + 1];
        h0 = vec![0usize; n + 1];
        (&mut h2[..], &mut h1[..], &mut h0[..])
    };
    for (j, p) in prev.iter_mut().enumerate() {
        *p = j;
    }
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=n {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[n]
}

/// A word prepared for repeated fuzzy comparison: its stem's characters and phonetic key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WordForm {
    pub chars: Vec<char>,
    pub key: Vec<u8>,
}

impl WordForm {
    /// `stemmed` must already be normalised and stemmed.
    pub fn new(stemmed: &str) -> Self {
        Self {
            chars: stemmed.chars().collect(),
            key: phonetic_key(stemmed).into_bytes(),
        }
    }
}

/// Key codes a telephone line and a small recogniser confuse with each other: nasals, stops, fricatives,
/// liquids. Substituting across groups ("reset"/"repeat": S/P) is a different word.
const CONFUSABLE: &[&[u8]] = &[b"MN", b"PTK", b"FS0X", b"SXJ", b"LR"];

/// Keys one step apart where the step is a dropped or added sound, or a swap within a [`CONFUSABLE`] group.
fn keys_confusable(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return a.len().abs_diff(b.len()) == 1 && edit_distance(a, b) == 1;
    }
    let mut diffs = a.iter().zip(b).filter(|(x, y)| x != y);
    match (diffs.next(), diffs.next()) {
        (Some((x, y)), None) => CONFUSABLE.iter().any(|g| g.contains(x) && g.contains(y)),
        _ => false,
    }
}

/// Weakest fuzzy match that still counts; below it a heard word is unrelated to the known one.
pub(crate) const MIN_WORD_MATCH: f32 = 0.7;

/// How much a heard word counts as a known one, in 0..=1: 1 exact, ~0.85 sound-alike, 0.7–0.9 for small
/// edit distances, 0 when unrelated. Short words (under 3 letters) must match exactly: "no" vs "now" or
/// "to" vs "two" would otherwise flip meanings.
pub(crate) fn word_similarity(heard: &WordForm, known: &WordForm) -> f32 {
    if heard.chars == known.chars {
        return 1.0;
    }
    let (la, lb) = (heard.chars.len(), known.chars.len());
    let (short, long) = (la.min(lb), la.max(lb));
    if short < 3 || long - short > 3 {
        return 0.0;
    }
    let d = edit_distance(&heard.chars, &known.chars);
    let lex = 1.0 - d as f32 / long as f32;
    let (ka, kb) = (&heard.key, &known.key);
    let key_d = edit_distance(ka, kb);
    let mut score = 0.0f32;
    // One wrong letter in a 4+ letter word is a slip; two or three only in long words, and only if they
    // still sound alike ("version" is not "person").
    if (d == 1 && long >= 4) || (key_d <= 1 && ((d == 2 && long >= 7) || (d == 3 && long >= 10))) {
        score = lex;
    }
    if ka.len() >= 2 && ka == kb && lex >= 0.5 {
        score = score.max(0.85);
    } else if ka.len().min(kb.len()) >= 3
        && lex >= 0.6
        && ka.first() == kb.first()
        && keys_confusable(ka, kb)
    {
        // Nearly the same sound skeleton with the same onset: "scanned"/"scammed", "stolen"/"stole".
        score = score.max(0.7);
    }
    if score >= MIN_WORD_MATCH {
        score
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlu::text::stem;

    fn sim(a: &str, b: &str) -> f32 {
        word_similarity(&WordForm::new(&stem(a)), &WordForm::new(&stem(b)))
    }

    #[test]
    fn keys_merge_sound_alikes() {
        for (a, b) in [
            ("card", "cart"),
            ("account", "acount"),
            ("phone", "fone"),
            ("knight", "night"),
            ("scam", "skam"),
            ("agent", "ajent"),
            ("someone", "somone"),
        ] {
            assert_eq!(phonetic_key(a), phonetic_key(b), "{a} vs {b}");
        }
        assert_eq!(phonetic_key("balance"), "PLNS");
        assert_eq!(phonetic_key("thank"), "0NK");
        assert_eq!(phonetic_key("station"), "STXN");
        assert_ne!(phonetic_key("card"), phonetic_key("lost"));
    }

    #[test]
    fn edit_distances() {
        let d = |a: &str, b: &str| {
            edit_distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("card", "crad"), 1);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("same", "same"), 0);
    }

    #[test]
    fn mishearings_match_and_unrelated_words_do_not() {
        for (heard, known) in [
            ("cart", "card"),
            ("balence", "balance"),
            ("representive", "representative"),
            ("agen", "agent"),
            ("scanned", "scammed"),
            ("acount", "account"),
            ("goodbuy", "goodbye"),
        ] {
            let s = sim(heard, known);
            assert!(s >= MIN_WORD_MATCH, "{heard} ~ {known}: {s}");
            assert!(s < 1.0, "{heard} ~ {known}: {s}");
        }
        for (heard, known) in [
            ("weather", "balance"),
            ("no", "now"),
            ("bye", "buy"),
            ("melon", "money"),
            ("pizza", "pin"),
            ("rain", "again"),
            ("branch", "balance"),
            ("reset", "repeat"),
            ("half", "help"),
        ] {
            assert_eq!(sim(heard, known), 0.0, "{heard} vs {known}");
        }
        assert_eq!(sim("card", "card"), 1.0);
    }
}
