//! Small lexical helpers shared by the SIP and SDP parsers (RFC 3261 §25.1).
//!
//! Everything here works on `&str` and never indexes past a boundary it has not
//! checked, so hostile input can only produce `None`/errors, never panics.

/// `token` characters from RFC 3261 §25.1.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Splits `s` at `sep`, ignoring separators inside quoted strings and `<...>`.
///
/// Comma-joined header values (`Via: a, b`) and parameter lists both need this,
/// because display names and URIs may legally contain the separator.
pub(crate) fn split_outside_quotes(s: &str, sep: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    let mut angle = 0u32;
    for (i, b) in s.bytes().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
            continue;
        }
        match b {
            b'"' => in_quotes = true,
            b'<' => angle += 1,
            b'>' => angle = angle.saturating_sub(1),
            _ if b == sep && angle == 0 => {
                // `sep` is ASCII, so `i` and `i + 1` are char boundaries.
                parts.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(s.get(start..).unwrap_or(""));
    parts
}

/// Parses a quoted string at the start of `s` (which must begin with `"`).
///
/// Returns the unescaped content and the remainder after the closing quote, or
/// `None` when the quote is unterminated.
pub(crate) fn parse_quoted(s: &str) -> Option<(String, &str)> {
    let rest = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                let (_, escaped) = chars.next()?;
                out.push(escaped);
            }
            '"' => return Some((out, rest.get(i + 1..).unwrap_or(""))),
            _ => out.push(c),
        }
    }
    None
}

/// Quotes `s` for use as a display name, escaping `"` and `\`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// True when every quote in `s` is balanced (used to validate quoted param values).
pub(crate) fn quotes_balanced(s: &str) -> bool {
    let mut in_quotes = false;
    let mut escaped = false;
    for b in s.bytes() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        }
    }
    !in_quotes
}

/// Lower-case hex of `v`, fixed width, for tags and branches.
pub(crate) fn hex_u64(v: u64) -> String {
    format!("{v:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_quotes_and_angles() {
        let parts = split_outside_quotes(r#""a,b" <sip:x;y=1,2>, c"#, b',');
        assert_eq!(parts, vec![r#""a,b" <sip:x;y=1,2>"#, " c"]);
        let parts = split_outside_quotes(r#""esc \" , still" , next"#, b',');
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn quoted_string_round_trip() {
        let (v, rest) = parse_quoted(r#""J Rosenberg \\\"" <sip:x>"#).unwrap();
        assert_eq!(v, r#"J Rosenberg \""#);
        assert_eq!(rest, " <sip:x>");
        assert_eq!(quote(&v), r#""J Rosenberg \\\"""#);
        assert!(parse_quoted("\"unterminated").is_none());
        assert!(parse_quoted("\"ends with escape\\").is_none());
    }

    #[test]
    fn token_chars() {
        assert!(is_token("!interesting-Method0123456789_*+`.%indeed'~"));
        assert!(!is_token("IN VITE"));
        assert!(!is_token(""));
    }
}
