//! Masks long numbers (account, card, PIN read aloud) in recogniser text before it is stored or logged.
//!
//! Whisper writes a spoken number in many shapes: `87654321`, `8765 4321`, `8-7-6-5`, `eight seven six five`,
//! `double five`. Any run of such tokens that adds up to [`MIN_DIGITS`] digits or more becomes
//! [`REDACTED`]; shorter numbers (amounts, card last four, "two cards") stay readable for QA.

/// Digit runs at least this long are masked: PINs are 4 digits, so those are caught when spoken with an
/// account number; a lone 4-digit PIN said aloud is indistinguishable from "4242", the card ending.
pub const MIN_DIGITS: usize = 6;
pub const REDACTED: &str = "[number]";

/// Digits a token stands for, or `None` when it is not part of a spoken number.
fn token_digits(token: &str) -> Option<usize> {
    let t: String = token
        .chars()
        .filter(|c| !matches!(c, ',' | '.' | '?' | '!' | ';' | ':'))
        .collect::<String>()
        .to_lowercase();
    if t.is_empty() {
        return None;
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '-') && t.chars().any(|c| c.is_ascii_digit()) {
        return Some(t.chars().filter(char::is_ascii_digit).count());
    }
    match t.as_str() {
        "zero" | "oh" | "o" | "one" | "two" | "three" | "four" | "five" | "six" | "seven"
        | "eight" | "nine" => Some(1),
        // "double five" = two digits: the multiplier adds one to the digit that follows.
        "double" => Some(1),
        "triple" => Some(2),
        _ => {
            // Hyphenated words: "eight-seven-six".
            let parts: Vec<&str> = t.split('-').collect();
            (parts.len() > 1)
                .then(|| parts.iter().map(|p| token_digits(p)).sum::<Option<usize>>())
                .flatten()
        }
    }
}

/// `text` with every long spoken or written number replaced by [`REDACTED`].
pub fn redact_numbers(text: &str) -> String {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let mut out: Vec<&str> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let mut j = i;
        let mut digits = 0;
        while let Some(n) = tokens.get(j).and_then(|t| token_digits(t)) {
            digits += n;
            j += 1;
        }
        if digits >= MIN_DIGITS {
            out.push(REDACTED);
            i = j;
        } else {
            out.extend_from_slice(&tokens[i..j.max(i + 1)]);
            i = j.max(i + 1);
        }
    }
    let mut s = out.join(" ");
    // Keep the sentence's final punctuation when the number ended it.
    if let Some(last) = text
        .trim_end()
        .chars()
        .last()
        .filter(|c| ".?!".contains(*c))
    {
        if s.ends_with(REDACTED) {
            s.push(last);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_numbers_are_masked_in_every_shape() {
        for (input, want) in [
            ("My account is 87654321.", "My account is [number]."),
            ("It's 8765 4321 thanks", "It's [number] thanks"),
            ("8-7-6-5-4-3-2-1", "[number]"),
            (
                "eight seven six five four three two one please",
                "[number] please",
            ),
            ("one two three double five six", "[number]"),
            ("Eight, seven, six, five, four, three.", "[number]."),
        ] {
            assert_eq!(redact_numbers(input), want, "{input}");
        }
    }

    #[test]
    fn short_numbers_and_words_stay() {
        for input in [
            "I have two cards",
            "card ending 4242",
            "I paid 120 dollars on the 5th",
            "one moment please",
            "check my balance",
        ] {
            assert_eq!(redact_numbers(input), input);
        }
    }
}
