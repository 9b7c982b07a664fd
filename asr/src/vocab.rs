//! Whisper token vocabulary as shipped with CTranslate2 models, and its GGML form.
//!
//! CTranslate2 stores tokens in GPT-2's byte-level BPE spelling (every byte mapped to a printable character by
//! `bytes_to_unicode`); whisper.cpp wants the raw bytes of the plain BPE tokens only and synthesises the special
//! tokens (`<|endoftext|>` onward) itself from `n_vocab`.

use thiserror::Error;

/// Why a vocabulary cannot be used.
#[derive(Debug, Error)]
pub enum VocabError {
    #[error("vocabulary.json is not a JSON array of strings")]
    Json(#[source] serde_json::Error),
    #[error("vocabulary.txt is not valid UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    #[error("vocabulary has no <|endoftext|> token, so the plain BPE tokens cannot be told from the special ones")]
    MissingEndOfText,
    #[error("token {index} contains {ch:?}, which is not in GPT-2's byte-to-unicode table")]
    UnmappableChar { index: usize, ch: char },
}

/// The marker that ends the plain BPE tokens in every Whisper vocabulary.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// Token strings indexed by token id, in CTranslate2's byte-level spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    tokens: Vec<String>,
}

impl Vocabulary {
    pub fn from_tokens(tokens: Vec<String>) -> Self {
        Self { tokens }
    }

    /// Parses `vocabulary.txt` (one token per line). Empty lines are kept as tokens: the multilingual
    /// vocabulary really has an empty token (id 50256); only the newline ending the file is not a token.
    pub fn from_txt(bytes: &[u8]) -> Result<Self, VocabError> {
        let text = std::str::from_utf8(bytes).map_err(VocabError::NotUtf8)?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let tokens = text
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line).to_owned())
            .collect();
        Ok(Self { tokens })
    }

    /// Parses `vocabulary.json` (a JSON array of token strings).
    pub fn from_json(bytes: &[u8]) -> Result<Self, VocabError> {
        let tokens: Vec<String> = serde_json::from_slice(bytes).map_err(VocabError::Json)?;
        Ok(Self { tokens })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Id of `<|endoftext|>`: 50256 for English-only models, 50257 for multilingual ones.
    pub fn end_of_text(&self) -> Option<usize> {
        self.tokens.iter().position(|t| t == END_OF_TEXT)
    }

    /// Raw bytes of the plain BPE tokens (ids below `<|endoftext|>`), as whisper.cpp's vocabulary section wants.
    pub fn bpe_bytes(&self) -> Result<Vec<Vec<u8>>, VocabError> {
        let eot = self.end_of_text().ok_or(VocabError::MissingEndOfText)?;
        self.tokens
            .iter()
            .take(eot)
            .enumerate()
            .map(|(index, token)| {
                token
                    .chars()
                    .map(|ch| unicode_to_byte(ch).ok_or(VocabError::UnmappableChar { index, ch }))
                    .collect()
            })
            .collect()
    }
}

/// Bytes GPT-2 keeps as their own code point; all others are shifted to U+0100.. in byte order.
const fn is_printable(b: u8) -> bool {
    matches!(b, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff)
}

const SHIFTED: usize = 68;

/// The bytes that GPT-2 remaps, in the order they receive U+0100, U+0101, ...
const SHIFTED_BYTES: [u8; SHIFTED] = {
    let mut out = [0u8; SHIFTED];
    let mut n = 0;
    let mut b = 0usize;
    while b < 256 {
        if !is_printable(b as u8) {
            out[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    out
};

/// GPT-2's `bytes_to_unicode`: the printable character a byte is spelled with in the BPE vocabulary.
pub fn byte_to_unicode(b: u8) -> char {
    if is_printable(b) {
        return char::from(b);
    }
    let n = SHIFTED_BYTES.iter().position(|&s| s == b).unwrap_or(0) as u32;
    // 0x100 + n (n < 68) is always a valid scalar value.
    char::from_u32(0x100 + n).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Inverse of [`byte_to_unicode`]; `None` for characters that never appear in a byte-level BPE token.
pub fn unicode_to_byte(ch: char) -> Option<u8> {
    let c = u32::from(ch);
    if c < 0x100 {
        let b = c as u8;
        return is_printable(b).then_some(b);
    }
    SHIFTED_BYTES.get((c - 0x100) as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_to_unicode_is_a_bijection_over_all_bytes() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let ch = byte_to_unicode(b);
            assert!(seen.insert(ch), "{b} maps to a duplicate {ch:?}");
            assert!(
                !ch.is_whitespace() && !ch.is_control(),
                "{b} maps to {ch:?}"
            );
            assert_eq!(unicode_to_byte(ch), Some(b), "byte {b}");
        }
        // Reference points from GPT-2's encoder.py: space is 'Ġ', newline 'Ċ', 0x00 is U+0100, 0xAD is U+0143.
        assert_eq!(byte_to_unicode(b' '), 'Ġ');
        assert_eq!(byte_to_unicode(b'\n'), 'Ċ');
        assert_eq!(byte_to_unicode(0x00), '\u{100}');
        assert_eq!(byte_to_unicode(0xad), '\u{143}');
        assert_eq!(byte_to_unicode(b'A'), 'A');
        assert_eq!(unicode_to_byte(' '), None);
        assert_eq!(unicode_to_byte('\u{144}'), None);
        assert_eq!(unicode_to_byte('中'), None);
    }

    #[test]
    fn txt_keeps_inner_empty_tokens_and_drops_final_newline() {
        let v = Vocabulary::from_txt("a\n\nĠb\n<|endoftext|>\n<|startoftranscript|>\n".as_bytes())
            .unwrap();
        assert_eq!(v.len(), 5);
        assert_eq!(v.end_of_text(), Some(3));
        assert_eq!(
            v.bpe_bytes().unwrap(),
            vec![b"a".to_vec(), vec![], b" b".to_vec()]
        );
    }

    #[test]
    fn json_decodes_multibyte_utf8_tokens() {
        // "åľº" is the byte-level spelling of the UTF-8 bytes of "场".
        let v = Vocabulary::from_json(r#"["åľº", "ĠHello", "<|endoftext|>"]"#.as_bytes()).unwrap();
        let bytes = v.bpe_bytes().unwrap();
        assert_eq!(bytes[0], "场".as_bytes());
        assert_eq!(bytes[1], b" Hello");
    }

    #[test]
    fn errors_are_precise() {
        assert!(matches!(
            Vocabulary::from_json(b"{\"a\":1}"),
            Err(VocabError::Json(_))
        ));
        assert!(matches!(
            Vocabulary::from_txt(&[0xff, b'\n']),
            Err(VocabError::NotUtf8(_))
        ));
        let no_eot = Vocabulary::from_tokens(vec!["a".into()]);
        assert!(matches!(
            no_eot.bpe_bytes(),
            Err(VocabError::MissingEndOfText)
        ));
        let bad = Vocabulary::from_tokens(vec!["ok".into(), "a b".into(), END_OF_TEXT.into()]);
        assert!(matches!(
            bad.bpe_bytes(),
            Err(VocabError::UnmappableChar { index: 1, ch: ' ' })
        ));
    }
}
