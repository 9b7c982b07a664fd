//! Word error rate, scored the same way for voxgate and its peer: both transcripts go through one
//! normaliser, so formatting habits (punctuation, "4527" vs "four five two seven") do not count as errors.

const DIGITS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// Lowercase words without punctuation; digits are spelled one by one ("4527" → four five two seven,
/// which is how the corpus says numbers), "oh" as a digit is kept as said.
pub fn normalize(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for raw in text.split_whitespace() {
        let mut word = String::new();
        let flush = |w: &mut String, out: &mut Vec<String>| {
            if !w.is_empty() {
                out.push(std::mem::take(w));
            }
        };
        for c in raw.chars() {
            if let Some(d) = c.to_digit(10) {
                flush(&mut word, &mut words);
                words.push(DIGITS[d as usize].to_string());
            } else if c.is_alphabetic() || c == '\'' {
                word.extend(c.to_lowercase());
            } else if c == '-' {
                // "twenty-five" → twenty five
                flush(&mut word, &mut words);
            }
        }
        flush(&mut word, &mut words);
    }
    words
        .into_iter()
        .map(|w| w.trim_matches('\'').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance (substitutions + deletions + insertions).
pub fn edit_distance(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    let mut cur = vec![0; hypothesis.len() + 1];
    for (i, r) in reference.iter().enumerate() {
        cur[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let sub = prev[j] + usize::from(r != h);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[hypothesis.len()]
}

/// Errors and reference words over a set of (reference, hypothesis) pairs; WER = errors / words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WerCount {
    pub errors: usize,
    pub words: usize,
}

impl WerCount {
    pub fn add(&mut self, reference: &str, hypothesis: &str) {
        let r = normalize(reference);
        let h = normalize(hypothesis);
        self.errors += edit_distance(&r, &h);
        self.words += r.len();
    }

    /// As a fraction (0.25 = 25 %).
    pub fn wer(&self) -> f64 {
        self.errors as f64 / self.words.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_removes_formatting_differences() {
        assert_eq!(
            normalize("My card number is 4527, 3189."),
            normalize("my card number is four five two seven three one eight nine")
        );
        assert_eq!(
            normalize("Yes,  that's  correct!"),
            ["yes", "that's", "correct"]
        );
        assert_eq!(normalize("twenty-five"), ["twenty", "five"]);
        assert!(normalize(" ... ").is_empty());
    }

    #[test]
    fn edit_distance_counts_each_kind_of_error() {
        let w = |s: &str| normalize(s);
        assert_eq!(edit_distance(&w("a b c"), &w("a b c")), 0);
        assert_eq!(edit_distance(&w("a b c"), &w("a x c")), 1);
        assert_eq!(edit_distance(&w("a b c"), &w("a c")), 1);
        assert_eq!(edit_distance(&w("a b c"), &w("a b c d")), 1);
        assert_eq!(edit_distance(&w("a b c"), &w("")), 3);
        assert_eq!(edit_distance(&w(""), &w("x y")), 2);
    }

    #[test]
    fn wer_over_several_utterances() {
        let mut c = WerCount::default();
        c.add("check my balance", "check my melon");
        c.add("I lost my card", "I lost my card");
        assert_eq!(
            c,
            WerCount {
                errors: 1,
                words: 7
            }
        );
        assert!((c.wer() - 1.0 / 7.0).abs() < 1e-12);
        assert_eq!(WerCount::default().wer(), 0.0);
    }
}
