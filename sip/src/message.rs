//! SIP message model, parser and serializer (RFC 3261 §7, §18.3, §20).
//!
//! The parser is deliberately two-level: [`SipMessage::parse`] only checks the
//! framing (start line, header lines, Content-Length) and stores header values as
//! unfolded text; typed accessors on [`Headers`] validate individual headers on
//! demand. That way a broken optional header never prevents answering a request,
//! while broken mandatory headers still yield a precise [`ParseError`].

use std::fmt;

use crate::header::{split_list, CSeq, MediaType, Method, NameAddr, Via};
use crate::uri::{Uri, UriError};

/// Why bytes could not be understood as a SIP message or header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("message head is not valid UTF-8")]
    InvalidUtf8,
    #[error("malformed start line")]
    InvalidStartLine,
    #[error("unsupported protocol version {0:?}")]
    UnsupportedVersion(String),
    #[error("invalid method token")]
    InvalidMethod,
    #[error("invalid status code")]
    InvalidStatusCode,
    #[error("invalid Request-URI: {0}")]
    InvalidRequestUri(UriError),
    #[error("Request-URI must not carry headers")]
    HeadersInRequestUri,
    #[error("malformed header line {line}")]
    InvalidHeaderLine { line: usize },
    #[error("invalid Content-Length")]
    InvalidContentLength,
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    #[error("body shorter than Content-Length ({declared} declared, {available} available)")]
    BodyTruncated { declared: usize, available: usize },
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    #[error("malformed {0} header")]
    InvalidHeader(&'static str),
    #[error("header {0} must appear exactly once")]
    DuplicateHeader(&'static str),
}

/// Compact form → canonical name (RFC 3261 §7.3.3 and later registrations).
fn expand_compact(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    Some(match c.to_ascii_lowercase() {
        'i' => "Call-ID",
        'f' => "From",
        'm' => "Contact",
        'e' => "Content-Encoding",
        'l' => "Content-Length",
        't' => "To",
        'v' => "Via",
        'k' => "Supported",
        's' => "Subject",
        'c' => "Content-Type",
        'o' => "Event",
        'u' => "Allow-Events",
        'r' => "Refer-To",
        'b' => "Referred-By",
        'x' => "Session-Expires",
        'y' => "Identity",
        _ => return None,
    })
}

const KNOWN_HEADERS: &[&str] = &[
    "Accept",
    "Allow",
    "Allow-Events",
    "Call-ID",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Event",
    "Expires",
    "From",
    "Identity",
    "Max-Forwards",
    "Min-Expires",
    "P-Asserted-Identity",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Require",
    "Retry-After",
    "Route",
    "Server",
    "Session-Expires",
    "Subject",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
];

/// Canonical spelling for known headers (case-insensitive match, compact forms
/// expanded); unknown names are kept as received.
pub fn canonical_name(name: &str) -> String {
    if let Some(c) = expand_compact(name) {
        return c.to_string();
    }
    KNOWN_HEADERS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_string(), |k| (*k).to_string())
}

fn name_matches(stored: &str, query: &str) -> bool {
    stored.eq_ignore_ascii_case(query) || expand_compact(query).is_some_and(|c| c == stored)
}

/// Headers whose comma-joined values are split into separate entries at parse
/// time, so the top value is always the first entry (Via needs this for
/// received/rport rewriting and response routing).
const SPLIT_ON_PARSE: &[&str] = &["Via", "Route", "Record-Route", "Contact"];

/// One header field: canonical name and unfolded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// Ordered header list with case-insensitive lookup and typed accessors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<Header>,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.entries.iter()
    }

    /// First value of `name` (long or compact form, any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|h| name_matches(&h.name, name))
            .map(|h| h.value.as_str())
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |h| name_matches(&h.name, name))
            .map(|h| h.value.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Appends a header; the name is canonicalized.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.entries.push(Header {
            name: canonical_name(name),
            value: value.into(),
        });
    }

    /// Inserts before all other headers (used for our own Via on requests).
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.entries.insert(
            0,
            Header {
                name: canonical_name(name),
                value: value.into(),
            },
        );
    }

    /// Replaces all values of `name` with a single one.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.push(name, value);
    }

    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|h| !name_matches(&h.name, name));
    }

    /// Mutable access to the first value (e.g. to stamp `received` on the top Via).
    pub fn first_mut(&mut self, name: &str) -> Option<&mut String> {
        self.entries
            .iter_mut()
            .find(|h| name_matches(&h.name, name))
            .map(|h| &mut h.value)
    }

    /// All values of a list header, with comma-joined values split.
    pub fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name)
            .flat_map(split_list)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// The value of a header that must appear exactly once.
    pub fn single(&self, name: &'static str) -> Result<&str, ParseError> {
        let mut it = self.get_all(name);
        let first = it.next().ok_or(ParseError::MissingHeader(name))?;
        if it.next().is_some() {
            return Err(ParseError::DuplicateHeader(name));
        }
        Ok(first)
    }

    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        let vias = self
            .get_all("Via")
            .flat_map(split_list)
            .map(Via::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if vias.is_empty() {
            return Err(ParseError::MissingHeader("Via"));
        }
        Ok(vias)
    }

    pub fn top_via(&self) -> Result<Via, ParseError> {
        let first = self.get("Via").ok_or(ParseError::MissingHeader("Via"))?;
        let top = split_list(first)
            .into_iter()
            .next()
            .ok_or(ParseError::InvalidHeader("Via"))?;
        Via::parse(top)
    }

    pub fn from(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(self.single("From")?, "From")
    }

    pub fn to(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(self.single("To")?, "To")
    }

    pub fn call_id(&self) -> Result<&str, ParseError> {
        let v = self.single("Call-ID")?.trim();
        if v.is_empty() || v.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ParseError::InvalidHeader("Call-ID"));
        }
        Ok(v)
    }

    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(self.single("CSeq")?)
    }

    /// Contact values; `*` (REGISTER wildcard) is not a name-addr and is rejected.
    pub fn contacts(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.list("Contact")
            .map(|v| NameAddr::parse(v, "Contact"))
            .collect()
    }

    /// `None` when absent; values above 255 are rejected (RFC 4475 §3.1.2.4).
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        let mut it = self.get_all("Max-Forwards");
        let Some(v) = it.next() else { return Ok(None) };
        if it.next().is_some() {
            return Err(ParseError::DuplicateHeader("Max-Forwards"));
        }
        let v = v.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::InvalidHeader("Max-Forwards"));
        }
        v.parse::<u8>()
            .map(Some)
            .map_err(|_| ParseError::InvalidHeader("Max-Forwards"))
    }

    pub fn content_type(&self) -> Result<Option<MediaType>, ParseError> {
        match self.get_all("Content-Type").count() {
            0 => Ok(None),
            1 => self.get("Content-Type").map(MediaType::parse).transpose(),
            _ => Err(ParseError::DuplicateHeader("Content-Type")),
        }
    }

    pub fn routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.list("Route")
            .map(|v| NameAddr::parse(v, "Route"))
            .collect()
    }

    pub fn record_routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.list("Record-Route")
            .map(|v| NameAddr::parse(v, "Record-Route"))
            .collect()
    }

    /// Parsed Content-Length; all copies must agree (RFC 4475 §3.4.9).
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        let mut result = None;
        for v in self.get_all("Content-Length") {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::InvalidContentLength);
            }
            let n: usize = v.parse().map_err(|_| ParseError::InvalidContentLength)?;
            match result {
                Some(prev) if prev != n => return Err(ParseError::ConflictingContentLength),
                _ => result = Some(n),
            }
        }
        Ok(result)
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        for h in self.entries.iter().filter(|h| h.name != "Content-Length") {
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// Either kind of SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    Request(Request),
    Response(Response),
}

impl Request {
    pub fn new(method: Method, uri: Uri) -> Self {
        Self {
            method,
            uri,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Serializes with a Content-Length that always matches the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(format!("{} {} SIP/2.0\r\n", self.method, self.uri).as_bytes());
        finish(&self.headers, &self.body, &mut out);
        out
    }

    /// Checks the headers every request must carry (RFC 3261 §8.1.1) and that the
    /// CSeq method matches the request method (RFC 4475 §3.1.2.17).
    pub fn validate(&self) -> Result<(), ParseError> {
        self.headers.top_via()?;
        self.headers.from()?;
        self.headers.to()?;
        self.headers.call_id()?;
        let cseq = self.headers.cseq()?;
        if cseq.method != self.method {
            return Err(ParseError::InvalidHeader("CSeq"));
        }
        self.headers.max_forwards()?;
        Ok(())
    }
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            reason: reason_phrase(status).to_string(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Builds a response per RFC 3261 §8.2.6: copies all Via values, From, To,
    /// Call-ID and CSeq, and adds `to_tag` when To has no tag yet (never on 100).
    pub fn from_request(req: &Request, status: u16, to_tag: Option<&str>) -> Response {
        Response::from_request_headers(&req.headers, status, to_tag)
    }

    /// [`Response::from_request`] working on headers alone, so a 400 can be built
    /// for a request whose start line or body could not be parsed.
    pub fn from_request_headers(h: &Headers, status: u16, to_tag: Option<&str>) -> Response {
        let mut resp = Response::new(status);
        for v in h.get_all("Via") {
            resp.headers.push("Via", v);
        }
        if let Some(from) = h.get("From") {
            resp.headers.push("From", from);
        }
        if let Some(to) = h.get("To") {
            let needs_tag = status > 100 && to_tag.is_some();
            let to_value = match (needs_tag, NameAddr::parse(to, "To")) {
                (true, Ok(parsed)) if parsed.tag().is_none() => {
                    format!("{};tag={}", to.trim_end(), to_tag.unwrap_or_default())
                }
                _ => to.to_string(),
            };
            resp.headers.push("To", to_value);
        }
        if let Some(call_id) = h.get("Call-ID") {
            resp.headers.push("Call-ID", call_id);
        }
        if let Some(cseq) = h.get("CSeq") {
            resp.headers.push("CSeq", cseq);
        }
        if status == 100 {
            // RFC 3261 §8.2.6.1: echo Timestamp in 100 Trying.
            if let Some(ts) = h.get("Timestamp") {
                resp.headers.push("Timestamp", ts);
            }
        }
        resp
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(format!("SIP/2.0 {} {}\r\n", self.status, self.reason).as_bytes());
        finish(&self.headers, &self.body, &mut out);
        out
    }

    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }
}

fn finish(headers: &Headers, body: &[u8], out: &mut Vec<u8>) {
    headers.write_to(out);
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

impl SipMessage {
    /// Parses one complete message (a UDP datagram or a framed TCP message).
    ///
    /// Leading CRLFs are skipped (RFC 3261 §7.5), bare LF line ends are tolerated,
    /// folded lines are unfolded, and bytes beyond Content-Length are ignored
    /// (RFC 4475 §3.1.1.8). Without Content-Length the body extends to the end of
    /// the datagram (RFC 3261 §18.3).
    pub fn parse(data: &[u8]) -> Result<SipMessage, ParseError> {
        let start = data
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(ParseError::Empty)?;
        let data = data.get(start..).unwrap_or_default();
        let (head, body_start) = split_head(data);
        let head = std::str::from_utf8(head).map_err(|_| ParseError::InvalidUtf8)?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let start_line = lines.next().ok_or(ParseError::Empty)?;
        let headers = parse_header_lines(lines)?;
        let mut headers = headers;
        let rest = data.get(body_start..).unwrap_or_default();
        let declared = headers.content_length()?;
        // The body is authoritative from here on; the serializer rewrites the length.
        headers.remove("Content-Length");
        let body = match declared {
            Some(n) if n > rest.len() => {
                return Err(ParseError::BodyTruncated {
                    declared: n,
                    available: rest.len(),
                })
            }
            Some(n) => rest.get(..n).unwrap_or_default().to_vec(),
            None => rest.to_vec(),
        };
        if let Some(rest) = start_line.strip_prefix("SIP/") {
            parse_status_line(rest, headers, body).map(SipMessage::Response)
        } else {
            parse_request_line(start_line, headers, body).map(SipMessage::Request)
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }

    pub fn headers(&self) -> &Headers {
        match self {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }
}

/// Best-effort recovery of the headers needed to answer an unparseable request
/// with 400 (RFC 3261 §8.2.6). Returns the method token and those headers, or
/// `None` for responses and anything without a start line.
pub fn salvage_request_headers(data: &[u8]) -> Option<(String, Headers)> {
    let start = data.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let data = data.get(start..)?;
    let (head, _) = split_head(data);
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let method = lines.next()?.split_ascii_whitespace().next()?.to_string();
    if method.starts_with("SIP/") || !crate::text::is_token(&method) {
        return None;
    }
    let mut headers = Headers::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = canonical_name(name.trim());
        if matches!(name.as_str(), "Via" | "From" | "To" | "Call-ID" | "CSeq") {
            if name == "Via" {
                for v in split_list(value) {
                    headers.push("Via", v.trim());
                }
            } else {
                headers.push(&name, value.trim());
            }
        }
    }
    Some((method, headers))
}

/// Finds the empty line ending the head; returns (head bytes, body offset).
/// Without an empty line the whole input is head (lenient for datagrams).
pub(crate) fn split_head(data: &[u8]) -> (&[u8], usize) {
    match find_head_end(data) {
        Some((head_end, body_start)) => (data.get(..head_end).unwrap_or_default(), body_start),
        None => (data, data.len()),
    }
}

/// Locates the end of the header section: `(end of last header line, body start)`.
pub(crate) fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    find_head_end_from(data, 0).ok()
}

/// Like [`find_head_end`] but starts at line start `from`; on failure returns the
/// start of the last incomplete line so an incremental caller can resume there.
pub(crate) fn find_head_end_from(data: &[u8], from: usize) -> Result<(usize, usize), usize> {
    let mut pos = from;
    while let Some(offset) = data
        .get(pos..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
    {
        let nl = pos + offset;
        let line = data.get(pos..nl).unwrap_or_default();
        if line.is_empty() || line == b"\r" {
            return Ok((pos, nl + 1));
        }
        pos = nl + 1;
    }
    Err(pos)
}

fn parse_header_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Headers, ParseError> {
    let mut headers = Headers::new();
    for (idx, line) in lines.enumerate() {
        let line_no = idx + 2;
        if line.starts_with([' ', '\t']) {
            let last = headers
                .entries
                .last_mut()
                .ok_or(ParseError::InvalidHeaderLine { line: line_no })?;
            let cont = line.trim();
            if !cont.is_empty() {
                if !last.value.is_empty() {
                    last.value.push(' ');
                }
                last.value.push_str(cont);
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(ParseError::InvalidHeaderLine { line: line_no })?;
        let name = name.trim_end_matches([' ', '\t']);
        if !crate::text::is_token(name) {
            return Err(ParseError::InvalidHeaderLine { line: line_no });
        }
        headers.entries.push(Header {
            name: canonical_name(name),
            value: value.trim().to_string(),
        });
    }
    // Split list headers only after unfolding, so folded lists split correctly.
    let mut split = Headers::new();
    for h in headers.entries {
        if SPLIT_ON_PARSE.contains(&h.name.as_str()) {
            for part in split_list(&h.value) {
                split.entries.push(Header {
                    name: h.name.clone(),
                    value: part.trim().to_string(),
                });
            }
        } else {
            split.entries.push(h);
        }
    }
    Ok(split)
}

fn check_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if v.len() > 4 && v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/")) {
        Err(ParseError::UnsupportedVersion(v.to_string()))
    } else {
        Err(ParseError::InvalidStartLine)
    }
}

/// Request-Line = Method SP Request-URI SP SIP-Version, with exactly single spaces
/// (RFC 4475 §3.1.2.8-10 reject extra whitespace).
fn parse_request_line(line: &str, headers: Headers, body: Vec<u8>) -> Result<Request, ParseError> {
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::InvalidStartLine);
    };
    if method.is_empty() || uri.is_empty() {
        return Err(ParseError::InvalidStartLine);
    }
    check_version(version)?;
    let method = Method::parse(method)?;
    let uri = Uri::parse(uri).map_err(ParseError::InvalidRequestUri)?;
    if uri.as_sip().is_some_and(|u| u.headers.is_some()) {
        return Err(ParseError::HeadersInRequestUri);
    }
    Ok(Request {
        method,
        uri,
        headers,
        body,
    })
}

/// Status-Line after the `SIP/` prefix; the reason phrase may be empty.
fn parse_status_line(rest: &str, headers: Headers, body: Vec<u8>) -> Result<Response, ParseError> {
    let (version, rest) = rest.split_once(' ').ok_or(ParseError::InvalidStartLine)?;
    check_version(&format!("SIP/{version}"))?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::InvalidStatusCode);
    }
    let status: u16 = code.parse().map_err(|_| ParseError::InvalidStatusCode)?;
    if !(100..=699).contains(&status) {
        return Err(ParseError::InvalidStatusCode);
    }
    Ok(Response {
        status,
        reason: reason.to_string(),
        headers,
        body,
    })
}

/// Default reason phrases for the codes this UA sends.
pub fn reason_phrase(status: u16) -> &'static str {
    let known = match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    };
    if !known.is_empty() {
        return known;
    }
    match status / 100 {
        1 => "Session Progress",
        2 => "OK",
        3 => "Redirect",
        4 => "Client Error",
        5 => "Server Error",
        _ => "Global Failure",
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::ViaTransport;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    fn req(s: &str) -> Request {
        match SipMessage::parse(s.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("expected request"),
        }
    }

    #[test]
    fn parses_basic_invite() {
        let r = req(INVITE);
        assert_eq!(r.method, Method::Invite);
        assert_eq!(
            r.headers.call_id().unwrap(),
            "a84b4c76e66710@pc33.atlanta.example.com"
        );
        assert_eq!(r.headers.cseq().unwrap().seq, 314159);
        assert_eq!(r.headers.from().unwrap().tag(), Some("1928301774"));
        assert_eq!(r.headers.to().unwrap().tag(), None);
        assert_eq!(r.headers.max_forwards().unwrap(), Some(70));
        assert_eq!(r.body, b"v=0\n");
        assert!(r.validate().is_ok());
        let ct = r.headers.content_type().unwrap().unwrap();
        assert!(ct.is("application", "sdp"));
    }

    #[test]
    fn serializer_round_trips_and_fixes_content_length() {
        let mut r = req(INVITE);
        r.body = b"v=0\r\no=x\r\n".to_vec();
        let bytes = r.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("Content-Length: 10\r\n\r\nv=0"));
        assert_eq!(text.matches("Content-Length").count(), 1);
        let again = req(&text);
        assert_eq!(again, r);
    }

    #[test]
    fn compact_forms_bare_lf_and_folding() {
        let s = "OPTIONS sip:a@b SIP/2.0\n\
v: SIP/2.0/UDP h1;branch=z9hG4bK1, SIP/2.0/TCP h2;branch=z9hG4bK2\n\
V: SIP/2.0/UDP h3\n\
\x20;branch=z9hG4bK3\n\
f: <sip:x@y>;tag=1\n\
t: <sip:a@b>\n\
i: cid\n\
CSEQ: 1 OPTIONS\n\
l: 0\n\n";
        let r = req(s);
        let vias = r.headers.vias().unwrap();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[1].transport, ViaTransport::Tcp);
        assert_eq!(vias[2].branch(), Some("z9hG4bK3"));
        assert_eq!(r.headers.call_id().unwrap(), "cid");
        assert!(r.headers.get("call-id").is_some());
        assert!(r.headers.get("i").is_some());
        assert!(r.validate().is_ok());
    }

    #[test]
    fn content_length_rules() {
        let base = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n";
        let short = format!("{base}Content-Length: 10\r\n\r\nabc");
        assert_eq!(
            SipMessage::parse(short.as_bytes()),
            Err(ParseError::BodyTruncated {
                declared: 10,
                available: 3
            })
        );
        let truncated = format!("{base}Content-Length: 2\r\n\r\nabcdef");
        let r = req(&truncated);
        assert_eq!(r.body, b"ab");
        let missing = format!("{base}\r\nabcdef");
        assert_eq!(req(&missing).body, b"abcdef");
        let negative = format!("{base}Content-Length: -1\r\n\r\n");
        assert_eq!(
            SipMessage::parse(negative.as_bytes()),
            Err(ParseError::InvalidContentLength)
        );
        let conflict = format!("{base}Content-Length: 1\r\nl: 2\r\n\r\nab");
        assert_eq!(
            SipMessage::parse(conflict.as_bytes()),
            Err(ParseError::ConflictingContentLength)
        );
    }

    #[test]
    fn response_from_request_copies_and_tags() {
        let r = req(INVITE);
        let resp = Response::from_request(&r, 180, Some("abc"));
        assert_eq!(resp.headers.to().unwrap().tag(), Some("abc"));
        assert_eq!(resp.headers.get("Via"), r.headers.get("Via"));
        assert_eq!(resp.headers.cseq().unwrap(), r.headers.cseq().unwrap());
        let trying = Response::from_request(&r, 100, Some("abc"));
        assert_eq!(trying.headers.to().unwrap().tag(), None);
        let bytes = resp.to_bytes();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("SIP/2.0 180 Ringing\r\n"));
        match SipMessage::parse(text.as_bytes()).unwrap() {
            SipMessage::Response(p) => assert_eq!(p.status, 180),
            SipMessage::Request(_) => panic!("expected response"),
        }
    }

    #[test]
    fn start_line_errors() {
        let tail = "\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n";
        for (line, err) in [
            ("INVITE  sip:a@b SIP/2.0", ParseError::InvalidStartLine),
            ("INVITE sip:a@b SIP/2.0 ", ParseError::InvalidStartLine),
            ("INVITE sip:a@b; lr SIP/2.0", ParseError::InvalidStartLine),
            (
                "INVITE sip:a@b SIP/7.0",
                ParseError::UnsupportedVersion("SIP/7.0".into()),
            ),
            ("SIP/2.0 4294967301 big", ParseError::InvalidStatusCode),
            ("SIP/2.0 99 low", ParseError::InvalidStatusCode),
            ("IN VITE", ParseError::InvalidStartLine),
            (
                "INVITE <sip:a@b> SIP/2.0",
                ParseError::InvalidRequestUri(UriError::InvalidScheme),
            ),
            (
                "INVITE sip:a@b?Route=x SIP/2.0",
                ParseError::HeadersInRequestUri,
            ),
        ] {
            let msg = format!("{line}{tail}");
            assert_eq!(SipMessage::parse(msg.as_bytes()), Err(err), "{line}");
        }
        assert_eq!(SipMessage::parse(b"\r\n\r\n"), Err(ParseError::Empty));
        assert_eq!(
            SipMessage::parse(b"OPTIONS sip:a@b SIP/2.0\r\nno colon here\r\n\r\n"),
            Err(ParseError::InvalidHeaderLine { line: 2 })
        );
        assert_eq!(
            SipMessage::parse(b"OPTIONS sip:a@b SIP/2.0\r\n continuation first\r\n\r\n"),
            Err(ParseError::InvalidHeaderLine { line: 2 })
        );
        assert_eq!(
            SipMessage::parse(b"OPTIONS sip:a@b SIP/2.0\r\nX: \xff\r\n\r\n"),
            Err(ParseError::InvalidUtf8)
        );
    }

    #[test]
    fn validate_reports_missing_and_mismatch() {
        let r = req("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 OPTIONS\r\n\r\n");
        assert_eq!(r.validate(), Err(ParseError::MissingHeader("From")));
        let r = req(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
        );
        assert_eq!(r.validate(), Err(ParseError::InvalidHeader("CSeq")));
        let r = req(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:a@b>\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
        );
        assert_eq!(r.validate(), Err(ParseError::DuplicateHeader("To")));
    }
}
