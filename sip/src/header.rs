//! Typed views of the header values the UA acts on (Via, From/To/Contact, CSeq, ...).
//!
//! Headers are stored as text in [`crate::message::Headers`]; these types are parsed
//! on demand so that an unknown or odd header never makes a whole message unusable.

use std::fmt;
use std::net::IpAddr;

use crate::message::ParseError;
use crate::text::{is_token, parse_quoted, quote, split_outside_quotes};
use crate::uri::{find_param, parse_hostport, parse_params, write_params, Host, Param, Uri};

/// The RFC 3261 branch prefix that marks a globally unique transaction id.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// SIP request methods. Methods are case-sensitive (RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Info,
    Register,
    Subscribe,
    Notify,
    Message,
    Publish,
    Refer,
    Update,
    Prack,
    Other(String),
}

impl Method {
    /// Parses a method token; `%` is *not* an escape here (RFC 4475 §3.1.1.5).
    pub fn parse(s: &str) -> Result<Method, ParseError> {
        if !is_token(s) {
            return Err(ParseError::InvalidMethod);
        }
        Ok(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "REGISTER" => Method::Register,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            "REFER" => Method::Refer,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            other => Method::Other(other.to_string()),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Register => "REGISTER",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Refer => "REFER",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Via transport token; unknown transports are legal syntax (RFC 4475 §3.1.1.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ViaTransport {
    Udp,
    Tcp,
    Tls,
    Sctp,
    Ws,
    Wss,
    Other(String),
}

impl ViaTransport {
    fn parse(s: &str) -> ViaTransport {
        match s.to_ascii_uppercase().as_str() {
            "UDP" => ViaTransport::Udp,
            "TCP" => ViaTransport::Tcp,
            "TLS" => ViaTransport::Tls,
            "SCTP" => ViaTransport::Sctp,
            "WS" => ViaTransport::Ws,
            "WSS" => ViaTransport::Wss,
            _ => ViaTransport::Other(s.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ViaTransport::Udp => "UDP",
            ViaTransport::Tcp => "TCP",
            ViaTransport::Tls => "TLS",
            ViaTransport::Sctp => "SCTP",
            ViaTransport::Ws => "WS",
            ViaTransport::Wss => "WSS",
            ViaTransport::Other(s) => s,
        }
    }
}

/// One Via header value (`SIP/2.0/UDP host:port;branch=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: ViaTransport,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Vec<Param>,
}

impl Via {
    pub fn new(transport: ViaTransport, host: Host, port: Option<u16>, branch: &str) -> Self {
        Self {
            transport,
            host,
            port,
            params: vec![Param::new("branch", Some(branch.to_string()))],
        }
    }

    /// Parses a single Via value; LWS around `/` is allowed (RFC 4475 §3.1.1.1).
    pub fn parse(s: &str) -> Result<Via, ParseError> {
        let bad = ParseError::InvalidHeader("Via");
        let mut parts = s.splitn(3, '/');
        let proto = parts.next().ok_or(bad.clone())?.trim();
        let version = parts.next().ok_or(bad.clone())?.trim();
        let rest = parts.next().ok_or(bad.clone())?.trim_start();
        if !proto.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(bad);
        }
        let transport_end = rest
            .find(|c: char| c.is_ascii_whitespace())
            .ok_or(bad.clone())?;
        let (transport, rest) = rest.split_at(transport_end);
        if !is_token(transport) {
            return Err(bad);
        }
        let (sent_by, params) = match rest.split_once(';') {
            Some((sb, p)) => (sb.trim(), parse_params(p).ok_or(bad.clone())?),
            None => (rest.trim(), Vec::new()),
        };
        let (host, port) = parse_hostport(sent_by).map_err(|_| bad.clone())?;
        Ok(Via {
            transport: ViaTransport::parse(transport),
            host,
            port,
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        find_param(&self.params, name)
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch").and_then(|p| p.value.as_deref())
    }

    /// Branch that is an RFC 3261 transaction id: the magic cookie plus at least one char.
    ///
    /// A bare `z9hG4bK` (RFC 4475 §3.3.1 badbranch) does not qualify and falls back to
    /// RFC 2543 matching.
    pub fn rfc3261_branch(&self) -> Option<&str> {
        self.branch()
            .filter(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    pub fn received(&self) -> Option<IpAddr> {
        self.param("received")
            .and_then(|p| p.value.as_deref())
            .and_then(|v| v.trim_matches(['[', ']']).parse().ok())
    }

    /// `Some(None)` when `rport` is present without value (a request for it, RFC 3581).
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport")
            .map(|p| p.value.as_deref().and_then(|v| v.parse().ok()))
    }

    /// `host[:port]` as used for transaction matching (host case-folded).
    pub fn sent_by_key(&self) -> String {
        let host = self.host.to_string().to_ascii_lowercase();
        format!("{host}:{}", self.port.unwrap_or(5060))
    }

    /// Sets or replaces a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        match self
            .params
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            Some(p) => p.value = value,
            None => self.params.push(Param::new(name, value)),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport.as_str(), self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write_params(f, &self.params)
    }
}

/// `name-addr` / `addr-spec` with header parameters: From, To, Contact, Route, P-Asserted-Identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display_name: Option<String>,
    pub uri: Uri,
    pub params: Vec<Param>,
}

impl NameAddr {
    pub fn new(uri: Uri) -> Self {
        Self {
            display_name: None,
            uri,
            params: Vec::new(),
        }
    }

    /// Parses one value; `header` only labels the error.
    pub fn parse(s: &str, header: &'static str) -> Result<NameAddr, ParseError> {
        let bad = ParseError::InvalidHeader(header);
        let s = s.trim();
        let (display_name, uri_str, after) = if s.starts_with('"') {
            let (name, rest) = parse_quoted(s).ok_or(bad.clone())?;
            let rest = rest.trim_start();
            let inner = rest.strip_prefix('<').ok_or(bad.clone())?;
            let (uri, after) = inner.split_once('>').ok_or(bad.clone())?;
            (Some(name), uri, after)
        } else if let Some(lt) = s.find('<') {
            let name = s.get(..lt).unwrap_or("").trim();
            // Unquoted display names are token sequences (RFC 4475 §3.1.2.15).
            if name.split_ascii_whitespace().any(|t| {
                !t.bytes()
                    .all(|b| crate::text::is_token_byte(b) || b >= 0x80)
            }) {
                return Err(bad);
            }
            let inner = s.get(lt + 1..).unwrap_or("");
            let (uri, after) = inner.split_once('>').ok_or(bad.clone())?;
            let name = (!name.is_empty()).then(|| name.to_string());
            (name, uri, after)
        } else {
            // addr-spec: the URI ends at the first ';', the rest are header params.
            match s.split_once(';') {
                Some((uri, params)) => (None, uri, s.get(uri.len()..).unwrap_or(params)),
                None => (None, s, ""),
            }
        };
        let uri = Uri::parse(uri_str.trim()).map_err(|_| bad.clone())?;
        let after = after.trim();
        let params = if after.is_empty() {
            Vec::new()
        } else {
            let p = after.strip_prefix(';').ok_or(bad.clone())?;
            parse_params(p).ok_or(bad)?
        };
        Ok(NameAddr {
            display_name,
            uri,
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        find_param(&self.params, name)
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag").and_then(|p| p.value.as_deref())
    }

    pub fn set_tag(&mut self, tag: &str) {
        match self
            .params
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case("tag"))
        {
            Some(p) => p.value = Some(tag.to_string()),
            None => self.params.push(Param::new("tag", Some(tag.to_string()))),
        }
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display_name {
            write!(f, "{} ", quote(d))?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

/// CSeq: sequence number (< 2^31, RFC 3261 §8.1.1.5) and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<CSeq, ParseError> {
        let bad = ParseError::InvalidHeader("CSeq");
        let mut it = s.split_ascii_whitespace();
        let num = it.next().ok_or(bad.clone())?;
        let method = it.next().ok_or(bad.clone())?;
        if it.next().is_some() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad);
        }
        let seq: u32 = num.parse().map_err(|_| bad.clone())?;
        if seq >= 1 << 31 {
            return Err(bad);
        }
        let method = Method::parse(method).map_err(|_| bad)?;
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// `type/subtype;params` of Content-Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    pub kind: String,
    pub subtype: String,
    pub params: Vec<Param>,
}

impl MediaType {
    pub fn parse(s: &str) -> Result<MediaType, ParseError> {
        let bad = ParseError::InvalidHeader("Content-Type");
        let (main, params) = match s.split_once(';') {
            Some((m, p)) => (m, parse_params(p).ok_or(bad.clone())?),
            None => (s, Vec::new()),
        };
        let (kind, subtype) = main.split_once('/').ok_or(bad.clone())?;
        let (kind, subtype) = (kind.trim(), subtype.trim());
        if !is_token(kind) || !is_token(subtype) {
            return Err(bad);
        }
        Ok(MediaType {
            kind: kind.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params,
        })
    }

    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    /// Parameter value with surrounding quotes removed (e.g. multipart `boundary`).
    pub fn param_unquoted(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
            .and_then(|p| p.value.as_deref())
            .map(|v| v.trim_matches('"'))
    }
}

/// Splits a comma-joined list header value into its elements (quote/angle aware).
pub fn split_list(value: &str) -> Vec<&str> {
    split_outside_quotes(value, b',')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_and_params() {
        let v = Via::parse("SIP  /   2.0 /UDP    192.0.2.2;rport;branch=z9hG4bK390skdjuw").unwrap();
        assert_eq!(v.transport, ViaTransport::Udp);
        assert_eq!(v.host, Host::Ip("192.0.2.2".parse().unwrap()));
        assert_eq!(v.port, None);
        assert_eq!(v.branch(), Some("z9hG4bK390skdjuw"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.sent_by_key(), "192.0.2.2:5060");
    }

    #[test]
    fn via_ipv6_received_rport() {
        let v = Via::parse(
            "SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bKx;received=2001:db8::1;rport=4000",
        )
        .unwrap();
        assert_eq!(v.transport, ViaTransport::Tcp);
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.received(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(v.rport(), Some(Some(4000)));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bKx;received=2001:db8::1;rport=4000"
        );
    }

    #[test]
    fn via_rejects_garbage() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP",
            "SIP/3.0/UDP host",
            "HTTP/2.0/UDP host",
            "SIP/2.0/UDP host:port",
            "",
            ";",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad:?} should fail");
        }
        assert!(Via::parse("SIP/2.0/UDP host;branch=z9hG4bK")
            .unwrap()
            .rfc3261_branch()
            .is_none());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
            "From",
        )
        .unwrap();
        assert_eq!(n.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse(
            "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
            "To",
        )
        .unwrap();
        assert_eq!(n.display_name, None);
        assert_eq!(n.tag(), Some("1918181833n"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323", "From").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("caller"));
        assert_eq!(n.to_string(), "\"caller\" <sip:caller@example.com>;tag=323");
        assert!(NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>", "To").is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>", "From").is_err());
        assert!(NameAddr::parse("<sip:a@b>;;;", "Contact").is_err());
        assert!(NameAddr::parse("<sip:a@b> junk", "Contact").is_err());
    }

    #[test]
    fn cseq_limits() {
        assert_eq!(CSeq::parse("0009 INVITE").unwrap().seq, 9);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("-1 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
        assert!(CSeq::parse("1 INVITE extra").is_err());
    }

    #[test]
    fn media_type() {
        let m = MediaType::parse("multipart/mixed;boundary=\"7a9c\"").unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(m.param_unquoted("boundary"), Some("7a9c"));
        assert!(MediaType::parse("application").is_err());
    }
}
