//! SDP (RFC 4566) parsing/serialization and RFC 3264 offer/answer for one audio stream.
//!
//! Only what a telephony trunk needs is interpreted (connection, media, rtpmap,
//! fmtp, ptime, direction, rtcp); every other line is preserved so a parsed
//! description re-serializes faithfully.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an SDP body could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP is not valid UTF-8")]
    InvalidUtf8,
    #[error("SDP must start with v=0")]
    MissingVersion,
    #[error("malformed SDP line {line}")]
    InvalidLine { line: usize },
    #[error("malformed o= line")]
    InvalidOrigin,
    #[error("missing o= line")]
    MissingOrigin,
    #[error("malformed c= line")]
    InvalidConnection,
    #[error("malformed t= line")]
    InvalidTiming,
    #[error("malformed m= line")]
    InvalidMedia,
}

/// Why an offer cannot be answered; all map to 488 Not Acceptable Here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("offer has no usable audio stream")]
    NoAudioStream,
    #[error("no codec in the offer is supported")]
    NoCommonCodec,
    #[error("audio offered only over unsupported transport {0:?}")]
    UnsupportedTransport(String),
}

impl NegotiationError {
    /// SIP status to reject the offer with (RFC 3261 §13.3.1.3).
    pub fn status_code(&self) -> u16 {
        488
    }
}

/// Address type of `o=`/`c=` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrType {
    Ip4,
    Ip6,
}

impl AddrType {
    fn parse(s: &str) -> Option<AddrType> {
        match s {
            "IP4" => Some(AddrType::Ip4),
            "IP6" => Some(AddrType::Ip6),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        }
    }

    fn of(ip: IpAddr) -> AddrType {
        match ip {
            IpAddr::V4(_) => AddrType::Ip4,
            IpAddr::V6(_) => AddrType::Ip6,
        }
    }
}

/// `c=IN <addrtype> <address>`; the address may be a host name or carry `/ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub addr_type: AddrType,
    pub address: String,
}

impl Connection {
    pub fn from_ip(ip: IpAddr) -> Self {
        Self {
            addr_type: AddrType::of(ip),
            address: ip.to_string(),
        }
    }

    /// The IP address, if the address is a literal (multicast `/ttl` suffix stripped).
    pub fn ip(&self) -> Option<IpAddr> {
        let addr = self.address.split('/').next().unwrap_or_default();
        match self.addr_type {
            AddrType::Ip4 => addr.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            AddrType::Ip6 => addr.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        }
    }

    /// RFC 2543-style hold (`c=IN IP4 0.0.0.0`, RFC 3264 §8.4).
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }

    fn parse(v: &str) -> Result<Connection, SdpError> {
        let mut it = v.split_ascii_whitespace();
        let (Some("IN"), Some(at), Some(address), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(SdpError::InvalidConnection);
        };
        let addr_type = AddrType::parse(at).ok_or(SdpError::InvalidConnection)?;
        Ok(Connection {
            addr_type,
            address: address.to_string(),
        })
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IN {} {}", self.addr_type.as_str(), self.address)
    }
}

/// `o=` line. Session id/version are kept as digit strings: peers use values
/// beyond 64 bits and we only ever compare them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: String,
    pub connection: Connection,
}

impl Origin {
    fn parse(v: &str) -> Result<Origin, SdpError> {
        let f: Vec<&str> = v.split_ascii_whitespace().collect();
        let [user, id, version, net, at, addr] = f.as_slice() else {
            return Err(SdpError::InvalidOrigin);
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(id) || !digits(version) || *net != "IN" {
            return Err(SdpError::InvalidOrigin);
        }
        Ok(Origin {
            username: (*user).to_string(),
            session_id: (*id).to_string(),
            session_version: (*version).to_string(),
            connection: Connection {
                addr_type: AddrType::parse(at).ok_or(SdpError::InvalidOrigin)?,
                address: (*addr).to_string(),
            },
        })
    }
}

/// `a=name[:value]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    pub fn flag(name: &str) -> Self {
        Self {
            name: name.to_string(),
            value: None,
        }
    }

    pub fn value(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            value: Some(value.into()),
        }
    }

    fn parse(v: &str) -> Attribute {
        match v.split_once(':') {
            Some((n, val)) => Attribute::value(n, val),
            None => Attribute::flag(v),
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "a={}:{}", self.name, v),
            None => write!(f, "a={}", self.name),
        }
    }
}

/// Media direction; as a field of [`Negotiated`] it says what *we* may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn from_flags(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    pub fn can_send(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn can_recv(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The other side's view of the same stream (RFC 3264 §6.1).
    pub fn mirror(self) -> Direction {
        Direction::from_flags(self.can_recv(), self.can_send())
    }

    /// Only what both allow.
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.can_send() && other.can_send(),
            self.can_recv() && other.can_recv(),
        )
    }

    pub fn as_attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attr(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// Parsed `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

impl RtpMap {
    fn parse(v: &str) -> Option<RtpMap> {
        let (pt, rest) = v.trim().split_once(' ')?;
        let mut parts = rest.trim().split('/');
        let encoding = parts.next()?.trim().to_string();
        let clock_rate = parts.next()?.trim().parse().ok()?;
        let channels = match parts.next() {
            Some(c) => Some(c.trim().parse().ok()?),
            None => None,
        };
        Some(RtpMap {
            payload_type: pt.parse().ok()?,
            encoding,
            clock_rate,
            channels,
        })
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    pub media: String,
    pub port: u16,
    pub port_count: Option<u16>,
    pub proto: String,
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    pub bandwidth: Vec<String>,
    pub attributes: Vec<Attribute>,
    /// Uninterpreted lines (`i=`, `k=`), kept for faithful re-serialization.
    pub other: Vec<(char, String)>,
}

impl MediaDescription {
    fn parse(v: &str) -> Result<MediaDescription, SdpError> {
        let mut it = v.split_ascii_whitespace();
        let (Some(media), Some(port), Some(proto)) = (it.next(), it.next(), it.next()) else {
            return Err(SdpError::InvalidMedia);
        };
        let (port, port_count) = match port.split_once('/') {
            Some((p, c)) => (p, Some(c.parse().map_err(|_| SdpError::InvalidMedia)?)),
            None => (port, None),
        };
        Ok(MediaDescription {
            media: media.to_string(),
            port: port.parse().map_err(|_| SdpError::InvalidMedia)?,
            port_count,
            proto: proto.to_string(),
            formats: it.map(str::to_string).collect(),
            connection: None,
            bandwidth: Vec::new(),
            attributes: Vec::new(),
            other: Vec::new(),
        })
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    pub fn rtpmaps(&self) -> impl Iterator<Item = RtpMap> + '_ {
        self.attributes
            .iter()
            .filter(|a| a.name == "rtpmap")
            .filter_map(|a| a.value.as_deref().and_then(RtpMap::parse))
    }

    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        self.rtpmaps().find(|r| r.payload_type == pt)
    }

    /// `a=fmtp:<pt> <params>` value for a payload type.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes
            .iter()
            .filter(|a| a.name == "fmtp")
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| {
                let (p, params) = v.split_once(' ')?;
                (p.parse::<u8>().ok()? == pt).then_some(params.trim())
            })
    }

    pub fn ptime(&self) -> Option<u32> {
        self.attribute("ptime")
            .and_then(|a| a.value.as_deref())
            .and_then(|v| v.trim().parse().ok())
    }

    /// Media-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        self.attributes
            .iter()
            .find_map(|a| Direction::from_attr(&a.name))
    }

    /// `a=rtcp:<port> [IN IP4 <addr>]` (RFC 3605).
    pub fn rtcp(&self) -> Option<(u16, Option<IpAddr>)> {
        let v = self.attribute("rtcp")?.value.as_deref()?;
        let mut it = v.split_ascii_whitespace();
        let port = it.next()?.parse().ok()?;
        let rest: Vec<&str> = it.collect();
        let addr = rest
            .get(2)
            .and_then(|a| a.parse().ok())
            .filter(|_| rest.first() == Some(&"IN"));
        Some((port, addr))
    }

    fn write(&self, out: &mut String) {
        out.push_str(&format!("m={} {}", self.media, self.port));
        if let Some(c) = self.port_count {
            out.push_str(&format!("/{c}"));
        }
        out.push_str(&format!(" {}", self.proto));
        for fmt in &self.formats {
            out.push(' ');
            out.push_str(fmt);
        }
        out.push_str("\r\n");
        write_other(out, &self.other, &['i'], false);
        if let Some(c) = &self.connection {
            out.push_str(&format!("c={c}\r\n"));
        }
        for b in &self.bandwidth {
            out.push_str(&format!("b={b}\r\n"));
        }
        write_other(out, &self.other, &['i'], true);
        for a in &self.attributes {
            out.push_str(&format!("{a}\r\n"));
        }
    }
}

/// A complete session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    pub session_name: String,
    pub connection: Option<Connection>,
    pub bandwidth: Vec<String>,
    /// `t=` lines as raw `start stop` pairs.
    pub timing: Vec<(u64, u64)>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<MediaDescription>,
    /// Uninterpreted session-level lines (`i= u= e= p= r= z= k=`).
    pub other: Vec<(char, String)>,
}

/// Writes the uninterpreted lines whose type is (or, with `invert`, is not) in `kinds`.
fn write_other(out: &mut String, other: &[(char, String)], kinds: &[char], invert: bool) {
    for (k, v) in other.iter().filter(|(k, _)| kinds.contains(k) != invert) {
        out.push_str(&format!("{k}={v}\r\n"));
    }
}

impl SessionDescription {
    /// Parses an SDP body; tolerant of bare LF and unknown line types.
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::InvalidUtf8)?;
        let mut lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        match lines.next() {
            Some((_, "v=0")) => {}
            _ => return Err(SdpError::MissingVersion),
        }
        let mut origin = None;
        let mut sd = SessionDescription {
            origin: Origin {
                username: String::new(),
                session_id: String::new(),
                session_version: String::new(),
                connection: Connection::from_ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            },
            session_name: String::new(),
            connection: None,
            bandwidth: Vec::new(),
            timing: Vec::new(),
            attributes: Vec::new(),
            media: Vec::new(),
            other: Vec::new(),
        };
        for (idx, line) in lines {
            let mut chars = line.chars();
            let (Some(kind), Some('=')) = (chars.next(), chars.next()) else {
                return Err(SdpError::InvalidLine { line: idx + 1 });
            };
            let value = chars.as_str();
            match (kind, sd.media.last_mut()) {
                ('m', _) => sd.media.push(MediaDescription::parse(value)?),
                ('c', Some(m)) => m.connection = Some(Connection::parse(value)?),
                ('b', Some(m)) => m.bandwidth.push(value.to_string()),
                ('a', Some(m)) => m.attributes.push(Attribute::parse(value)),
                (k, Some(m)) if k.is_ascii_lowercase() => m.other.push((k, value.to_string())),
                ('o', None) => origin = Some(Origin::parse(value)?),
                ('s', None) => sd.session_name = value.to_string(),
                ('c', None) => sd.connection = Some(Connection::parse(value)?),
                ('b', None) => sd.bandwidth.push(value.to_string()),
                ('t', None) => {
                    let mut it = value.split_ascii_whitespace();
                    let (Some(a), Some(b), None) = (it.next(), it.next(), it.next()) else {
                        return Err(SdpError::InvalidTiming);
                    };
                    let a = a.parse().map_err(|_| SdpError::InvalidTiming)?;
                    let b = b.parse().map_err(|_| SdpError::InvalidTiming)?;
                    sd.timing.push((a, b));
                }
                ('a', None) => sd.attributes.push(Attribute::parse(value)),
                (k, None) if k.is_ascii_lowercase() => sd.other.push((k, value.to_string())),
                _ => return Err(SdpError::InvalidLine { line: idx + 1 }),
            }
        }
        sd.origin = origin.ok_or(SdpError::MissingOrigin)?;
        Ok(sd)
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Direction of a media section, falling back to session level, then sendrecv.
    pub fn media_direction(&self, m: &MediaDescription) -> Direction {
        m.direction()
            .or_else(|| {
                self.attributes
                    .iter()
                    .find_map(|a| Direction::from_attr(&a.name))
            })
            .unwrap_or(Direction::SendRecv)
    }

    /// Effective connection of a media section (media level overrides session level).
    pub fn media_connection<'a>(&'a self, m: &'a MediaDescription) -> Option<&'a Connection> {
        m.connection.as_ref().or(self.connection.as_ref())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(256);
        out.push_str("v=0\r\n");
        let o = &self.origin;
        out.push_str(&format!(
            "o={} {} {} {}\r\n",
            o.username, o.session_id, o.session_version, o.connection
        ));
        let name = if self.session_name.is_empty() {
            "-"
        } else {
            &self.session_name
        };
        out.push_str(&format!("s={name}\r\n"));
        write_other(&mut out, &self.other, &['i', 'u', 'e', 'p'], false);
        if let Some(c) = &self.connection {
            out.push_str(&format!("c={c}\r\n"));
        }
        for b in &self.bandwidth {
            out.push_str(&format!("b={b}\r\n"));
        }
        if self.timing.is_empty() {
            out.push_str("t=0 0\r\n");
        }
        for (a, b) in &self.timing {
            out.push_str(&format!("t={a} {b}\r\n"));
        }
        write_other(&mut out, &self.other, &['i', 'u', 'e', 'p'], true);
        for a in &self.attributes {
            out.push_str(&format!("{a}\r\n"));
        }
        for m in &self.media {
            m.write(&mut out);
        }
        f.write_str(&out)
    }
}

/// Audio codecs voxgate can terminate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
    Opus,
}

impl Codec {
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }

    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus => 48000,
        }
    }

    /// Static payload type (RFC 3551); Opus is always dynamic.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::Opus => None,
        }
    }

    fn rtpmap_value(self, pt: u8) -> String {
        match self {
            Codec::Opus => format!("{pt} opus/48000/2"),
            c => format!("{pt} {}/{}", c.encoding_name(), c.clock_rate()),
        }
    }

    /// Identifies a codec by rtpmap (case-insensitive name) or, without rtpmap, by
    /// static payload type. Dynamic numbers are never assumed.
    fn identify(pt: u8, rtpmap: Option<&RtpMap>) -> Option<Codec> {
        match rtpmap {
            Some(r) => [Codec::Pcmu, Codec::Pcma, Codec::Opus]
                .into_iter()
                .find(|c| {
                    r.encoding.eq_ignore_ascii_case(c.encoding_name())
                        && r.clock_rate == c.clock_rate()
                }),
            None => [Codec::Pcmu, Codec::Pcma]
                .into_iter()
                .find(|c| c.static_payload_type() == Some(pt)),
        }
    }
}

/// The codec chosen for a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecChoice {
    pub name: Codec,
    pub payload_type: u8,
    pub clock_rate: u32,
}

/// What we can do locally; the input to offer/answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Supported codecs; their order is our preference when we build offers.
    /// Answers follow the offerer's order (RFC 3264 §6.1).
    pub codecs: Vec<Codec>,
    pub telephone_event: bool,
    /// Address advertised in `c=` and `o=`.
    pub address: IpAddr,
    pub rtp_port: u16,
    pub ptime_ms: u32,
    pub session_id: u64,
    /// Must increase whenever a new description is sent in the same session.
    pub session_version: u64,
    /// Local wish (e.g. `SendOnly` to put the peer on hold); intersected with the offer.
    pub direction: Direction,
    /// Dynamic payload types used when *we* offer.
    pub opus_payload_type: u8,
    pub telephone_event_payload_type: u8,
}

impl LocalMedia {
    /// Sensible defaults: PCMA, PCMU, telephone-event, 20 ms, sendrecv.
    pub fn new(address: IpAddr, rtp_port: u16, session_id: u64) -> Self {
        Self {
            codecs: vec![Codec::Pcma, Codec::Pcmu],
            telephone_event: true,
            address,
            rtp_port,
            ptime_ms: 20,
            session_id,
            session_version: session_id,
            direction: Direction::SendRecv,
            opus_payload_type: 96,
            telephone_event_payload_type: 101,
        }
    }

    fn session(&self, media: Vec<MediaDescription>) -> SessionDescription {
        let conn = Connection::from_ip(self.address);
        SessionDescription {
            origin: Origin {
                username: "voxgate".to_string(),
                session_id: self.session_id.to_string(),
                session_version: self.session_version.to_string(),
                connection: conn.clone(),
            },
            session_name: "voxgate".to_string(),
            connection: Some(conn),
            bandwidth: Vec::new(),
            timing: vec![(0, 0)],
            attributes: Vec::new(),
            media,
            other: Vec::new(),
        }
    }
}

/// Result of a successful offer/answer exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: CodecChoice,
    pub telephone_event_pt: Option<u8>,
    /// `None` on hold (`0.0.0.0`), port 0 or a non-literal address.
    pub remote_rtp: Option<SocketAddr>,
    pub remote_rtcp: Option<SocketAddr>,
    pub ptime_ms: u32,
    /// What *we* may do on this stream.
    pub direction: Direction,
    /// Our answer (UAS) or the peer's answer (UAC, see [`negotiate_answer`]).
    pub answer: SessionDescription,
}

/// First payload type of `m`, in its order, that identifies a codec we support.
/// RTP payload types a session can carry: 7 bits, and not 72–95, which would look like RTCP when
/// RTP and RTCP share a port (RFC 5761 §4).
fn usable_pt(pt: u8) -> bool {
    pt <= 127 && !(72..=95).contains(&pt)
}

fn pick_codec(m: &MediaDescription, local: &LocalMedia) -> Option<CodecChoice> {
    m.formats.iter().find_map(|f| {
        let pt: u8 = f.parse().ok().filter(|&pt| usable_pt(pt))?;
        let codec = Codec::identify(pt, m.rtpmap(pt).as_ref())?;
        local.codecs.contains(&codec).then(|| CodecChoice {
            name: codec,
            payload_type: pt,
            clock_rate: codec.clock_rate(),
        })
    })
}

fn telephone_event_pt(m: &MediaDescription) -> Option<u8> {
    m.rtpmaps()
        .find(|r| {
            r.encoding.eq_ignore_ascii_case("telephone-event")
                && r.clock_rate == 8000
                && usable_pt(r.payload_type)
        })
        .map(|r| r.payload_type)
        .filter(|pt| m.formats.iter().any(|f| f.parse::<u8>().ok() == Some(*pt)))
}

fn is_rtp_avp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP")
}

fn remote_addrs(
    sdp: &SessionDescription,
    m: &MediaDescription,
) -> (Option<SocketAddr>, Option<SocketAddr>, bool) {
    let conn = sdp.media_connection(m);
    let hold = conn.is_some_and(Connection::is_unspecified);
    let ip = conn
        .and_then(Connection::ip)
        .filter(|ip| !ip.is_unspecified());
    let rtp = ip
        .filter(|_| m.port != 0)
        .map(|ip| SocketAddr::new(ip, m.port));
    let rtcp = rtp.and_then(|rtp| match m.rtcp() {
        Some((port, addr)) => Some(SocketAddr::new(addr.unwrap_or(rtp.ip()), port)),
        None => m.port.checked_add(1).map(|p| SocketAddr::new(rtp.ip(), p)),
    });
    (rtp, rtcp, hold)
}

/// Answers an offer (RFC 3264 §6): first codec in the offer's order that we
/// support, telephone-event with the offer's payload type, mirrored direction.
///
/// The answer keeps one m-line per offered m-line as RFC 3264 requires; every
/// line except the chosen audio stream is rejected with port 0.
pub fn negotiate(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<Negotiated, NegotiationError> {
    let mut chosen: Option<(usize, CodecChoice)> = None;
    let mut error = NegotiationError::NoAudioStream;
    for (i, m) in offer.media.iter().enumerate() {
        if !m.media.eq_ignore_ascii_case("audio") || m.port == 0 {
            continue;
        }
        if !is_rtp_avp(&m.proto) {
            if error == NegotiationError::NoAudioStream {
                error = NegotiationError::UnsupportedTransport(m.proto.clone());
            }
            continue;
        }
        match pick_codec(m, local) {
            Some(c) => {
                chosen = Some((i, c));
                break;
            }
            None => error = NegotiationError::NoCommonCodec,
        }
    }
    let (index, codec) = chosen.ok_or(error)?;
    let offered = offer
        .media
        .get(index)
        .ok_or(NegotiationError::NoAudioStream)?;

    let te_pt = if local.telephone_event {
        telephone_event_pt(offered)
    } else {
        None
    };
    let (remote_rtp, remote_rtcp, hold) = remote_addrs(offer, offered);
    let mut offer_dir = offer.media_direction(offered);
    if hold {
        // c=0.0.0.0: the offerer does not want to receive (RFC 3264 §8.4).
        offer_dir = offer_dir.intersect(Direction::SendOnly);
    }
    let direction = offer_dir.mirror().intersect(local.direction);
    let ptime_ms = offered
        .ptime()
        .filter(|p| (10..=120).contains(p))
        .unwrap_or(local.ptime_ms);

    let mut formats = vec![codec.payload_type.to_string()];
    let mut attributes = vec![Attribute::value(
        "rtpmap",
        codec.name.rtpmap_value(codec.payload_type),
    )];
    if let Some(pt) = te_pt {
        formats.push(pt.to_string());
        attributes.push(Attribute::value(
            "rtpmap",
            format!("{pt} telephone-event/8000"),
        ));
        let events = offered.fmtp(pt).unwrap_or("0-15");
        attributes.push(Attribute::value("fmtp", format!("{pt} {events}")));
    }
    attributes.push(Attribute::value("ptime", ptime_ms.to_string()));
    attributes.push(Attribute::flag(direction.as_attr()));

    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == index {
                MediaDescription {
                    media: "audio".to_string(),
                    port: local.rtp_port,
                    port_count: None,
                    proto: m.proto.clone(),
                    formats: formats.clone(),
                    connection: None,
                    bandwidth: Vec::new(),
                    attributes: attributes.clone(),
                    other: Vec::new(),
                }
            } else {
                rejected(m)
            }
        })
        .collect();

    Ok(Negotiated {
        codec,
        telephone_event_pt: te_pt,
        remote_rtp,
        remote_rtcp,
        ptime_ms,
        direction,
        answer: local.session(media),
    })
}

fn rejected(m: &MediaDescription) -> MediaDescription {
    MediaDescription {
        media: m.media.clone(),
        port: 0,
        port_count: None,
        proto: m.proto.clone(),
        formats: m.formats.clone(),
        connection: None,
        bandwidth: Vec::new(),
        attributes: Vec::new(),
        other: Vec::new(),
    }
}

/// Builds an offer with all local codecs (used when voxgate originates calls).
pub fn build_offer(local: &LocalMedia) -> SessionDescription {
    let mut formats = Vec::new();
    let mut attributes = Vec::new();
    for &codec in &local.codecs {
        let pt = codec
            .static_payload_type()
            .unwrap_or(local.opus_payload_type);
        formats.push(pt.to_string());
        attributes.push(Attribute::value("rtpmap", codec.rtpmap_value(pt)));
    }
    if local.telephone_event {
        let pt = local.telephone_event_payload_type;
        formats.push(pt.to_string());
        attributes.push(Attribute::value(
            "rtpmap",
            format!("{pt} telephone-event/8000"),
        ));
        attributes.push(Attribute::value("fmtp", format!("{pt} 0-15")));
    }
    attributes.push(Attribute::value("ptime", local.ptime_ms.to_string()));
    attributes.push(Attribute::flag(local.direction.as_attr()));
    local.session(vec![MediaDescription {
        media: "audio".to_string(),
        port: local.rtp_port,
        port_count: None,
        proto: "RTP/AVP".to_string(),
        formats,
        connection: None,
        bandwidth: Vec::new(),
        attributes,
        other: Vec::new(),
    }])
}

/// Processes the peer's answer to an offer built by [`build_offer`] (UAC side).
pub fn negotiate_answer(
    local: &LocalMedia,
    answer: &SessionDescription,
) -> Result<Negotiated, NegotiationError> {
    let m = answer
        .media
        .iter()
        .find(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)
        .ok_or(NegotiationError::NoAudioStream)?;
    if !is_rtp_avp(&m.proto) {
        return Err(NegotiationError::UnsupportedTransport(m.proto.clone()));
    }
    let codec = pick_codec(m, local).ok_or(NegotiationError::NoCommonCodec)?;
    let te_pt = if local.telephone_event {
        telephone_event_pt(m)
    } else {
        None
    };
    let (remote_rtp, remote_rtcp, hold) = remote_addrs(answer, m);
    let mut answer_dir = answer.media_direction(m);
    if hold {
        answer_dir = answer_dir.intersect(Direction::SendOnly);
    }
    Ok(Negotiated {
        codec,
        telephone_event_pt: te_pt,
        remote_rtp,
        remote_rtcp,
        ptime_ms: m.ptime().unwrap_or(local.ptime_ms),
        direction: answer_dir.mirror().intersect(local.direction),
        answer: answer.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalMedia {
        LocalMedia::new("192.0.2.10".parse().unwrap(), 40000, 4242)
    }

    fn offer(extra: &str) -> SessionDescription {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n{extra}"
        );
        SessionDescription::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn parse_and_serialize_round_trip() {
        let text = "v=0\r\no=alice 2890844526 2890844527 IN IP4 host.example.com\r\ns=Talk\r\n\
i=info\r\nc=IN IP4 192.0.2.1/127\r\nb=AS:64\r\nt=0 0\r\na=sendonly\r\n\
m=audio 49170 RTP/AVP 0 8 97\r\nc=IN IP4 192.0.2.2\r\na=rtpmap:97 iLBC/8000\r\na=fmtp:97 mode=30\r\n\
a=ptime:30\r\nm=video 51372/2 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n";
        let sd = SessionDescription::parse(text.as_bytes()).unwrap();
        assert_eq!(sd.origin.session_version, "2890844527");
        assert_eq!(
            sd.connection.as_ref().unwrap().ip(),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(sd.media.len(), 2);
        let a = &sd.media[0];
        assert_eq!(a.formats, vec!["0", "8", "97"]);
        assert_eq!(a.fmtp(97), Some("mode=30"));
        assert_eq!(a.ptime(), Some(30));
        assert_eq!(a.direction(), None);
        assert_eq!(sd.media_direction(a), Direction::SendOnly);
        assert_eq!(sd.media[1].port_count, Some(2));
        assert_eq!(sd.to_string(), text);
        // Bare LF is accepted too.
        let lf = text.replace("\r\n", "\n");
        assert_eq!(SessionDescription::parse(lf.as_bytes()).unwrap(), sd);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            SessionDescription::parse(b"o=x"),
            Err(SdpError::MissingVersion)
        );
        assert_eq!(
            SessionDescription::parse(b"v=0\r\ns=-\r\n"),
            Err(SdpError::MissingOrigin)
        );
        assert_eq!(
            SessionDescription::parse(b"v=0\r\no=- x 1 IN IP4 a\r\n"),
            Err(SdpError::InvalidOrigin)
        );
        assert_eq!(
            SessionDescription::parse(b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 99999 RTP/AVP 0\r\n"),
            Err(SdpError::InvalidMedia)
        );
        assert_eq!(
            SessionDescription::parse(b"v=0\r\no=- 1 1 IN IP4 a\r\nc=IN IP5 x\r\n"),
            Err(SdpError::InvalidConnection)
        );
        assert_eq!(
            SessionDescription::parse(b"v=0\r\no=- 1 1 IN IP4 a\r\ngarbage\r\n"),
            Err(SdpError::InvalidLine { line: 3 })
        );
        assert_eq!(
            SessionDescription::parse(b"\xff"),
            Err(SdpError::InvalidUtf8)
        );
    }

    #[test]
    fn picks_first_supported_in_offer_order() {
        let o = offer("m=audio 5000 RTP/AVP 18 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n");
        let n = negotiate(&o, &local()).unwrap();
        assert_eq!(n.codec.name, Codec::Pcma);
        assert_eq!(n.codec.payload_type, 8);
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.remote_rtp, Some("198.51.100.7:5000".parse().unwrap()));
        assert_eq!(n.remote_rtcp, Some("198.51.100.7:5001".parse().unwrap()));
        assert_eq!(n.direction, Direction::SendRecv);
        assert_eq!(n.ptime_ms, 20);
        let m = &n.answer.media[0];
        assert_eq!(m.formats, vec!["8", "101"]);
        assert_eq!(m.port, 40000);
        assert_eq!(m.fmtp(101), Some("0-16"));
        assert_eq!(n.answer.origin.session_id, "4242");
        let text = n.answer.to_string();
        assert!(text.contains("c=IN IP4 192.0.2.10\r\n"));
        assert!(text.contains("a=sendrecv\r\n"));
    }

    #[test]
    fn payload_types_rtp_cannot_carry_are_ignored() {
        // 90 is in the RTCP-conflict range and 200 is not 7-bit: neither may be chosen.
        let o = offer(
            "m=audio 5000 RTP/AVP 90 8 110\r\na=rtpmap:90 PCMU/8000\r\na=rtpmap:110 telephone-event/8000\r\n\
a=rtpmap:91 telephone-event/8000\r\n",
        );
        let n = negotiate(&o, &local()).unwrap();
        assert_eq!(n.codec.payload_type, 8);
        assert_eq!(n.telephone_event_pt, Some(110));
        let o = offer("m=audio 5000 RTP/AVP 90\r\na=rtpmap:90 PCMU/8000\r\n");
        assert_eq!(
            negotiate(&o, &local()),
            Err(NegotiationError::NoCommonCodec)
        );
    }

    #[test]
    fn dynamic_pt_matched_by_name_not_number() {
        // pt 0 remapped to something else by rtpmap must not be taken as PCMU.
        let o = offer(
            "m=audio 5000 RTP/AVP 0 97 98\r\na=rtpmap:0 G729/8000\r\na=rtpmap:97 OPUS/48000/2\r\n\
a=rtpmap:98 Telephone-Event/8000\r\n",
        );
        let mut l = local();
        assert_eq!(negotiate(&o, &l), Err(NegotiationError::NoCommonCodec));
        l.codecs.push(Codec::Opus);
        let n = negotiate(&o, &l).unwrap();
        assert_eq!(
            n.codec,
            CodecChoice {
                name: Codec::Opus,
                payload_type: 97,
                clock_rate: 48000
            }
        );
        assert_eq!(n.telephone_event_pt, Some(98));
        assert!(n.answer.to_string().contains("a=rtpmap:97 opus/48000/2"));
    }

    #[test]
    fn direction_mirroring_and_hold() {
        let cases = [
            ("a=sendonly\r\n", Direction::RecvOnly),
            ("a=recvonly\r\n", Direction::SendOnly),
            ("a=inactive\r\n", Direction::Inactive),
            ("a=sendrecv\r\n", Direction::SendRecv),
        ];
        for (attr, expect) in cases {
            let o = offer(&format!("m=audio 5000 RTP/AVP 0\r\n{attr}"));
            let n = negotiate(&o, &local()).unwrap();
            assert_eq!(n.direction, expect, "{attr}");
            assert!(n.answer.to_string().contains(expect.as_attr()));
        }
        let hold = SessionDescription::parse(
            b"v=0\r\no=- 1 2 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
        )
        .unwrap();
        let n = negotiate(&hold, &local()).unwrap();
        assert_eq!(n.remote_rtp, None);
        assert_eq!(n.remote_rtcp, None);
        assert_eq!(n.direction, Direction::RecvOnly);
        let mut l = local();
        l.direction = Direction::SendOnly;
        let o = offer("m=audio 5000 RTP/AVP 0\r\n");
        assert_eq!(negotiate(&o, &l).unwrap().direction, Direction::SendOnly);
    }

    #[test]
    fn rejects_and_keeps_mline_count() {
        let o = offer("m=video 6000 RTP/AVP 31\r\n");
        assert_eq!(
            negotiate(&o, &local()),
            Err(NegotiationError::NoAudioStream)
        );
        let o = offer("m=audio 0 RTP/AVP 0\r\n");
        assert_eq!(
            negotiate(&o, &local()),
            Err(NegotiationError::NoAudioStream)
        );
        let o = offer("m=audio 5000 RTP/SAVP 0\r\n");
        assert_eq!(
            negotiate(&o, &local()),
            Err(NegotiationError::UnsupportedTransport("RTP/SAVP".into()))
        );
        assert_eq!(negotiate(&o, &local()).unwrap_err().status_code(), 488);
        let o = offer("m=video 6000 RTP/AVP 31\r\nm=audio 5000 RTP/AVP 0\r\nc=IN IP6 2001:db8::5\r\na=rtcp:7000\r\na=ptime:30\r\n");
        let n = negotiate(&o, &local()).unwrap();
        assert_eq!(n.answer.media.len(), 2);
        assert_eq!(n.answer.media[0].port, 0);
        assert_eq!(n.answer.media[1].port, 40000);
        assert_eq!(n.remote_rtp, Some("[2001:db8::5]:5000".parse().unwrap()));
        assert_eq!(n.remote_rtcp, Some("[2001:db8::5]:7000".parse().unwrap()));
        assert_eq!(n.ptime_ms, 30);
        assert!(n.answer.to_string().contains("a=ptime:30"));
    }

    #[test]
    fn offer_and_answer_processing() {
        let mut l = local();
        l.codecs = vec![Codec::Opus, Codec::Pcmu];
        l.address = "2001:db8::10".parse().unwrap();
        let o = build_offer(&l);
        let text = o.to_string();
        assert!(text.contains("m=audio 40000 RTP/AVP 96 0 101\r\n"));
        assert!(text.contains("c=IN IP6 2001:db8::10\r\n"));
        // The peer answers our offer using its own negotiate().
        let peer = LocalMedia::new("192.0.2.99".parse().unwrap(), 50000, 1);
        let parsed = SessionDescription::parse(text.as_bytes()).unwrap();
        let peer_side = negotiate(&parsed, &peer).unwrap();
        assert_eq!(peer_side.codec.name, Codec::Pcmu);
        let ours = negotiate_answer(&l, &peer_side.answer).unwrap();
        assert_eq!(ours.codec.name, Codec::Pcmu);
        assert_eq!(ours.telephone_event_pt, Some(101));
        assert_eq!(ours.remote_rtp, Some("192.0.2.99:50000".parse().unwrap()));
        assert_eq!(ours.direction, Direction::SendRecv);
    }
}
