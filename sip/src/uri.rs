//! SIP URIs (RFC 3261 §19.1), parsed just far enough to route, compare and re-serialize.
//!
//! Escapes (`%HH`) are kept verbatim: the UA never needs the unescaped user part
//! for routing, and keeping it verbatim guarantees a faithful round trip.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::text::split_outside_quotes;

/// Why a URI could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("missing or invalid URI scheme")]
    InvalidScheme,
    #[error("empty host")]
    EmptyHost,
    #[error("invalid host")]
    InvalidHost,
    #[error("invalid port")]
    InvalidPort,
    #[error("empty or invalid URI parameter")]
    InvalidParam,
    #[error("illegal character in URI")]
    IllegalChar,
}

/// A `name[=value]` parameter; the value is kept as written (quotes included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
}

impl Param {
    pub fn new(name: impl Into<String>, value: Option<String>) -> Self {
        Self {
            name: name.into(),
            value,
        }
    }
}

/// Looks up a parameter by case-insensitive name.
pub(crate) fn find_param<'a>(params: &'a [Param], name: &str) -> Option<&'a Param> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Parses `;a=b;c` style parameter lists (input without the leading `;`).
///
/// Empty parameters (`;;`) are rejected: RFC 4475 §3.1.2.1 treats them as malformed.
pub(crate) fn parse_params(s: &str) -> Option<Vec<Param>> {
    let mut out = Vec::new();
    for raw in split_outside_quotes(s, b';') {
        let raw = raw.trim();
        if raw.is_empty() {
            return None;
        }
        let (name, value) = match raw.split_once('=') {
            Some((n, v)) => {
                let v = v.trim();
                if v.is_empty() || !crate::text::quotes_balanced(v) {
                    return None;
                }
                (n.trim(), Some(v.to_string()))
            }
            None => (raw, None),
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b == b'"') {
            return None;
        }
        out.push(Param::new(name, value));
    }
    Some(out)
}

pub(crate) fn write_params(f: &mut fmt::Formatter<'_>, params: &[Param]) -> fmt::Result {
    for p in params {
        match &p.value {
            Some(v) => write!(f, ";{}={}", p.name, v)?,
            None => write!(f, ";{}", p.name)?,
        }
    }
    Ok(())
}

/// Host part of a SIP URI or Via sent-by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Domain(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses a host, accepting `[v6]`, dotted IPv4 and host names.
    pub fn parse(s: &str) -> Result<Host, UriError> {
        if s.is_empty() {
            return Err(UriError::EmptyHost);
        }
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(UriError::InvalidHost)?;
            return inner
                .parse::<Ipv6Addr>()
                .map(|a| Host::Ip(IpAddr::V6(a)))
                .map_err(|_| UriError::InvalidHost);
        }
        if let Ok(v4) = s.parse::<Ipv4Addr>() {
            return Ok(Host::Ip(IpAddr::V4(v4)));
        }
        // Tolerate `_` (seen in the wild) but nothing that could smuggle syntax.
        if s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            Ok(Host::Domain(s.to_string()))
        } else {
            Err(UriError::InvalidHost)
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Domain(_) => None,
        }
    }

    /// Case-insensitive comparison as required for host names (RFC 3261 §19.1.4).
    pub fn matches(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Ip(a), Host::Ip(b)) => a == b,
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        Host::Ip(ip)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// Splits `host[:port]` where host may be a bracketed IPv6 reference.
pub(crate) fn parse_hostport(s: &str) -> Result<(Host, Option<u16>), UriError> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']').ok_or(UriError::InvalidHost)?;
        let (h, rest) = s.split_at(close + 1);
        match rest {
            "" => (h, None),
            r => (h, Some(r.strip_prefix(':').ok_or(UriError::InvalidPort)?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| UriError::InvalidPort)?)
        }
        Some(_) => return Err(UriError::InvalidPort),
    };
    Ok((Host::parse(host)?, port))
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub secure: bool,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Vec<Param>,
    /// Raw `?headers` part without the `?`.
    pub headers: Option<String>,
}

impl SipUri {
    /// A URI with just a host and optional port; handy for Contact/Via building.
    pub fn new(host: Host, port: Option<u16>) -> Self {
        Self {
            secure: false,
            user: None,
            password: None,
            host,
            port,
            params: Vec::new(),
            headers: None,
        }
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        find_param(&self.params, name)
    }

    /// Loose-routing flag of a Route/Record-Route URI (RFC 3261 §16.12).
    pub fn is_loose_route(&self) -> bool {
        self.param("lr").is_some()
    }

    fn parse_after_scheme(rest: &str, secure: bool) -> Result<SipUri, UriError> {
        if rest
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'<' || b == b'>' || b == b'"')
        {
            return Err(UriError::IllegalChar);
        }
        let (userinfo, hostpart) = match rest.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (Some(user.to_string()), Some(pw.to_string())),
                None => (Some(u.to_string()), None),
            },
        };
        let (before_headers, headers) = match hostpart.split_once('?') {
            Some((b, h)) => (b, Some(h.to_string())),
            None => (hostpart, None),
        };
        let (hostport, params) = match before_headers.split_once(';') {
            Some((hp, p)) => (hp, parse_params(p).ok_or(UriError::InvalidParam)?),
            None => (before_headers, Vec::new()),
        };
        let (host, port) = parse_hostport(hostport)?;
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write_params(f, &self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// Any URI: SIP/SIPS parsed, everything else (tel:, urn:, ...) kept opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    Other { scheme: String, rest: String },
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let s = s.trim();
        let (scheme, rest) = s.split_once(':').ok_or(UriError::InvalidScheme)?;
        let scheme_ok = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
        if !scheme_ok {
            return Err(UriError::InvalidScheme);
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_after_scheme(rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_after_scheme(rest, true).map(Uri::Sip)
        } else {
            if rest.is_empty() || rest.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return Err(UriError::IllegalChar);
            }
            Ok(Uri::Other {
                scheme: scheme.to_string(),
                rest: rest.to_string(),
            })
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other { .. } => None,
        }
    }

    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Other { scheme, .. } => scheme,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => write!(f, "{u}"),
            Uri::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

impl From<SipUri> for Uri {
    fn from(u: SipUri) -> Self {
        Uri::Sip(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_sip_uri() {
        let u = Uri::parse("sip:alice:pw@[2001:db8::1]:5070;transport=tcp;lr?subject=x").unwrap();
        let s = u.as_sip().unwrap();
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert_eq!(s.host, Host::Ip("2001:db8::1".parse().unwrap()));
        assert_eq!(s.port, Some(5070));
        assert!(s.is_loose_route());
        assert_eq!(s.param("TRANSPORT").unwrap().value.as_deref(), Some("tcp"));
        assert_eq!(s.headers.as_deref(), Some("subject=x"));
        assert_eq!(
            u.to_string(),
            "sip:alice:pw@[2001:db8::1]:5070;transport=tcp;lr?subject=x"
        );
    }

    #[test]
    fn semicolon_in_user_part() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        let s = u.as_sip().unwrap();
        assert_eq!(s.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(s.host, Host::Domain("example.com".into()));
        assert!(s.params.is_empty());
    }

    #[test]
    fn rejects_bad_uris() {
        assert_eq!(Uri::parse("<sip:a@b>"), Err(UriError::InvalidScheme));
        assert_eq!(Uri::parse("sip:a@b:99999"), Err(UriError::InvalidPort));
        assert_eq!(Uri::parse("sip:a@b:5x"), Err(UriError::InvalidPort));
        assert_eq!(Uri::parse("sip:a@"), Err(UriError::EmptyHost));
        assert_eq!(Uri::parse("sip:a@[::1"), Err(UriError::InvalidHost));
        assert_eq!(Uri::parse("sip:a@b;;x"), Err(UriError::InvalidParam));
        assert_eq!(Uri::parse("sip:a b@c"), Err(UriError::IllegalChar));
        assert_eq!(Uri::parse("nocolon"), Err(UriError::InvalidScheme));
    }

    #[test]
    fn other_schemes_are_opaque() {
        let u = Uri::parse("tel:+15551234567;phone-context=x").unwrap();
        assert_eq!(u.scheme(), "tel");
        assert_eq!(u.to_string(), "tel:+15551234567;phone-context=x");
    }
}
