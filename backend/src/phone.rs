//! Caller-ID normalisation.
//!
//! Caller IDs arrive as SIP From URIs, tel: URIs or hand-typed numbers ("+1 555-010-0001"); customers are
//! stored by the digits of their E.164 number, so all of these must reduce to the same key.

/// Reduces a caller ID to `+digits` (international) or `digits`, or `""` if it is not a phone number.
///
/// Accepts `"Name" <sip:+1555...@host;params>`, `sip:`/`sips:`/`tel:` URIs (user part before `@`, URI
/// parameters after `;` dropped), `%2B` for `+`, a `00` international prefix, and spaces, dashes, dots and
/// parentheses as separators. Anything else (a SIP user like `alice`) yields `""` so it can never match.
pub fn normalize_phone(raw: &str) -> String {
    let mut s = raw.trim();
    if let (Some(open), Some(close)) = (s.find('<'), s.rfind('>')) {
        if open < close {
            s = &s[open + 1..close];
        }
    }
    s = s.trim();
    for scheme in ["sips:", "sip:", "tel:"] {
        if let Some(prefix) = s.get(..scheme.len()) {
            if prefix.eq_ignore_ascii_case(scheme) {
                s = &s[scheme.len()..];
                break;
            }
        }
    }
    if let Some(at) = s.find('@') {
        s = &s[..at];
    }
    if let Some(semi) = s.find(';') {
        s = &s[..semi];
    }
    let s = s.trim();
    let (mut international, s) = match s.get(..3) {
        Some(p) if p.eq_ignore_ascii_case("%2b") => (true, &s[3..]),
        _ => match s.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, s),
        },
    };
    let mut digits = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '\t' | '-' | '.' | '(' | ')' => {}
            _ => return String::new(),
        }
    }
    if !international {
        if let Some(rest) = digits.strip_prefix("00") {
            digits = rest.to_owned();
            international = true;
        }
    }
    if digits.is_empty() {
        return String::new();
    }
    if international {
        format!("+{digits}")
    } else {
        digits
    }
}

/// The lookup key: the normalised number's digits without `+`, so `+15550100001` and a carrier's bare
/// `15550100001` match the same customer.
pub fn phone_digits(raw: &str) -> String {
    normalize_phone(raw).trim_start_matches('+').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_common_caller_id_forms() {
        for raw in [
            "+15550100001",
            "+1 555-010-0001",
            " +1 (555) 010.0001 ",
            "sip:+15550100001@carrier.example",
            "SIP:+15550100001@carrier.example;transport=udp",
            "sips:+15550100001@carrier.example",
            "tel:+1-555-010-0001",
            "tel:+15550100001;ext=7",
            "sip:+15550100001;user=phone@carrier",
            "\"Alice Chen\" <sip:+15550100001@10.0.0.1:5060>;tag=abc",
            "<tel:+15550100001>",
            "sip:%2B15550100001@carrier",
            "0015550100001",
        ] {
            assert_eq!(normalize_phone(raw), "+15550100001", "{raw}");
            assert_eq!(phone_digits(raw), "15550100001", "{raw}");
        }
    }

    #[test]
    fn bare_national_digits_keep_no_plus() {
        assert_eq!(normalize_phone("15550100002"), "15550100002");
        assert_eq!(phone_digits("sip:15550100002@pbx"), "15550100002");
    }

    #[test]
    fn non_numbers_normalise_to_empty() {
        for raw in [
            "",
            "   ",
            "sip:alice@example.com",
            "anonymous",
            "sip:@host",
            "tel:",
            "+",
            "12a34",
        ] {
            assert_eq!(normalize_phone(raw), "", "{raw:?}");
        }
    }

    #[test]
    fn multibyte_input_does_not_panic() {
        assert_eq!(normalize_phone("王芳"), "");
        assert_eq!(normalize_phone("s\u{e9}"), "");
        assert_eq!(normalize_phone("\u{e9}ip:+1"), "");
    }
}
