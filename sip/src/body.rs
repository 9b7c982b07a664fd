//! Message body interpretation: SDP (plain or inside multipart, as SIP-I trunks
//! send it next to ISUP), DTMF INFO payloads and the `message/sipfrag` of REFER NOTIFYs.

use crate::message::{Headers, Request, Response};
use crate::sdp::{SdpError, SessionDescription};

/// Why a request body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("malformed Content-Type")]
    BadContentType,
    #[error("unsupported body type {0}")]
    Unsupported(String),
    #[error("malformed SDP: {0}")]
    Sdp(#[from] SdpError),
}

/// The SDP offer/answer carried by `req`, if any.
pub fn extract_sdp(req: &Request) -> Result<Option<SessionDescription>, BodyError> {
    extract_sdp_from(&req.headers, &req.body)
}

/// The SDP carried by a response (the answer in a 2xx, early media in a 18x), if any.
pub fn extract_response_sdp(resp: &Response) -> Result<Option<SessionDescription>, BodyError> {
    extract_sdp_from(&resp.headers, &resp.body)
}

fn extract_sdp_from(
    headers: &Headers,
    body: &[u8],
) -> Result<Option<SessionDescription>, BodyError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let ct = headers
        .content_type()
        .map_err(|_| BodyError::BadContentType)?;
    let Some(ct) = ct else {
        // Body without Content-Type violates RFC 3261 §7.4.1; SDP is the only
        // thing a peer would plausibly send, so try it.
        return SessionDescription::parse(body)
            .map(Some)
            .map_err(Into::into);
    };
    if ct.is("application", "sdp") {
        return SessionDescription::parse(body)
            .map(Some)
            .map_err(Into::into);
    }
    if ct.kind == "multipart" {
        let boundary = ct
            .param_unquoted("boundary")
            .ok_or(BodyError::BadContentType)?;
        // RFC 2046 §5.1.1: 1 to 70 characters. The cap also bounds the delimiter search's cost,
        // which a hostile kilobyte-long boundary would otherwise make quadratic.
        if boundary.is_empty() || boundary.len() > 70 {
            return Err(BodyError::BadContentType);
        }
        return match find_part(body, boundary, "application", "sdp") {
            Some(part) => SessionDescription::parse(part)
                .map(Some)
                .map_err(Into::into),
            None => Ok(None),
        };
    }
    Err(BodyError::Unsupported(format!(
        "{}/{}",
        ct.kind, ct.subtype
    )))
}

/// Finds the first MIME part of type `kind/subtype` (RFC 2046 §5.1).
fn find_part<'a>(body: &'a [u8], boundary: &str, kind: &str, subtype: &str) -> Option<&'a [u8]> {
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let mut starts = Vec::new();
    let mut i = 0;
    while let Some(off) = find(body.get(i..)?, delim) {
        starts.push(i + off);
        i += off + delim.len();
    }
    for pair in starts.windows(2) {
        let [a, b] = pair else { continue };
        let part = body.get(a + delim.len()..*b)?;
        // Skip the rest of the delimiter line; drop the CRLF that belongs to the next delimiter.
        let nl = part.iter().position(|&c| c == b'\n')?;
        let part = part.get(nl + 1..)?;
        let part = part
            .strip_suffix(b"\r\n")
            .or_else(|| part.strip_suffix(b"\n"))
            .unwrap_or(part);
        let (head, body_start) = crate::message::split_head(part);
        let head = String::from_utf8_lossy(head);
        let is_match = head.lines().any(|l| {
            l.split_once(':').is_some_and(|(n, v)| {
                n.trim().eq_ignore_ascii_case("content-type")
                    && crate::header::MediaType::parse(v.trim()).is_ok_and(|m| m.is(kind, subtype))
            })
        });
        if is_match {
            return part.get(body_start..);
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// DTMF digit and duration from an INFO body (`application/dtmf-relay` or
/// `application/dtmf`). Duration is 0 when the body does not carry one.
pub fn parse_dtmf_info(req: &Request) -> Option<(char, u32)> {
    let ct = req.headers.content_type().ok()??;
    let text = std::str::from_utf8(&req.body).ok()?;
    if ct.is("application", "dtmf-relay") {
        let mut digit = None;
        let mut duration = 0;
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("signal") {
                digit = dtmf_char(v);
            } else if k.eq_ignore_ascii_case("duration") {
                duration = v.parse().unwrap_or(0);
            }
        }
        return digit.map(|d| (d, duration));
    }
    if ct.is("application", "dtmf") {
        return dtmf_char(text.trim()).map(|d| (d, 0));
    }
    None
}

/// Status code of the status line a `message/sipfrag` body (RFC 3420) starts with: in a
/// REFER's NOTIFY, how the transfer target answered (RFC 3515 §2.4.5). `None` for another
/// body type, a fragment starting with a request line, or anything unreadable.
pub fn sipfrag_status(req: &Request) -> Option<u16> {
    let ct = req.headers.content_type().ok()??;
    if !ct.is("message", "sipfrag") {
        return None;
    }
    let line = req.body.split(|&b| b == b'\n').next()?;
    let version = line.get(..8)?;
    if !version.eq_ignore_ascii_case(b"SIP/2.0 ") {
        return None;
    }
    let code = line.get(8..11)?;
    // After the code: end of line or the reason phrase (RFC 3261 §7.2).
    if !matches!(line.get(11), None | Some(b' ' | b'\r')) || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    (100..=699).contains(&status).then_some(status)
}

fn dtmf_char(s: &str) -> Option<char> {
    match s {
        "10" => return Some('*'),
        "11" => return Some('#'),
        _ => {}
    }
    let mut chars = s.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() {
        return None;
    }
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::SipMessage;

    fn req(ct: &str, body: &[u8]) -> Request {
        let mut text = format!(
            "INFO sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        text.extend_from_slice(body);
        match SipMessage::parse(&text).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!(),
        }
    }

    #[test]
    fn dtmf_relay_and_dtmf() {
        assert_eq!(
            parse_dtmf_info(&req(
                "application/dtmf-relay",
                b"Signal=5\r\nDuration=160\r\n"
            )),
            Some(('5', 160))
        );
        assert_eq!(
            parse_dtmf_info(&req("application/dtmf-relay", b"signal = #\nduration= 250")),
            Some(('#', 250))
        );
        assert_eq!(
            parse_dtmf_info(&req("application/dtmf-relay", b"Signal=11\r\n")),
            Some(('#', 0))
        );
        assert_eq!(
            parse_dtmf_info(&req("application/dtmf", b"a")),
            Some(('A', 0))
        );
        assert_eq!(
            parse_dtmf_info(&req("application/dtmf-relay", b"Signal=X\r\n")),
            None
        );
        assert_eq!(parse_dtmf_info(&req("text/plain", b"5")), None);
    }

    #[test]
    fn sipfrag_status_line() {
        let frag = |body: &[u8]| sipfrag_status(&req("message/sipfrag;version=2.0", body));
        assert_eq!(frag(b"SIP/2.0 100 Trying\r\n"), Some(100));
        assert_eq!(frag(b"SIP/2.0 200 OK"), Some(200));
        assert_eq!(frag(b"sip/2.0 486\r\nContact: <sip:x@y>\r\n"), Some(486));
        assert_eq!(frag(b"SIP/2.0 603 Declined\nVia: x"), Some(603));
        for bad in [
            &b""[..],
            b"garbage",
            b"SIP/2.0 20 OK",
            b"SIP/2.0 2000 OK",
            b"SIP/2.0 099 Low",
            b"SIP/2.0 700 High",
            b"SIP/2.0 2x0 OK",
            b"SIP/3.0 200 OK",
            b"INVITE sip:a@b SIP/2.0\r\n",
            b"\r\nSIP/2.0 200 OK",
            b"SIP/2.0 \xff\xfe\xfd",
        ] {
            assert_eq!(frag(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            sipfrag_status(&req("text/plain", b"SIP/2.0 200 OK")),
            None,
            "only message/sipfrag is read"
        );
    }

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n";

    #[test]
    fn sdp_plain_and_multipart() {
        assert!(extract_sdp(&req("application/sdp", SDP.as_bytes()))
            .unwrap()
            .is_some());
        let body = format!(
            "--b1\r\nContent-Type: application/ISUP;version=itu-t92+\r\n\r\n\x01\x02\r\n\
--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--b1--\r\n"
        );
        let sd = extract_sdp(&req("multipart/mixed;boundary=b1", body.as_bytes()))
            .unwrap()
            .unwrap();
        assert_eq!(sd.media[0].port, 4000);
        let no_sdp = "--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1--\r\n";
        assert_eq!(
            extract_sdp(&req("multipart/mixed; boundary=\"b1\"", no_sdp.as_bytes())),
            Ok(None)
        );
        assert_eq!(
            extract_sdp(&req("text/plain", b"hello")),
            Err(BodyError::Unsupported("text/plain".into()))
        );
        assert!(matches!(
            extract_sdp(&req("application/sdp", b"garbage")),
            Err(BodyError::Sdp(_))
        ));
        assert_eq!(extract_sdp(&req("application/sdp", b"")), Ok(None));
    }

    #[test]
    fn overlong_multipart_boundary_is_refused() {
        let long = "a".repeat(71);
        let body =
            format!("--{long}\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--{long}--\r\n");
        assert_eq!(
            extract_sdp(&req(
                &format!("multipart/mixed;boundary={long}"),
                body.as_bytes()
            )),
            Err(BodyError::BadContentType)
        );
        let ok = "a".repeat(70);
        let body = format!("--{ok}\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--{ok}--\r\n");
        assert!(extract_sdp(&req(
            &format!("multipart/mixed;boundary={ok}"),
            body.as_bytes()
        ))
        .unwrap()
        .is_some());
    }
}
