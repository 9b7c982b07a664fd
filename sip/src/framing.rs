//! Message framing for stream transports (RFC 3261 §18.3).
//!
//! On TCP the only message boundary is Content-Length, so a peer that sends garbage
//! or omits the header can desynchronize the stream forever. The decoder therefore
//! fails fast: any framing error is final, and the caller is expected to close the
//! connection.

use crate::message::{canonical_name, find_head_end_from};

/// Default cap on the header section.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Default cap on a message body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a stream can no longer be decoded. Close the connection on any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("header section exceeds {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("body of {declared} bytes exceeds {limit} bytes")]
    BodyTooLarge { declared: usize, limit: usize },
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    #[error("invalid or conflicting Content-Length")]
    InvalidContentLength,
    #[error("malformed message head")]
    MalformedHead,
}

/// Incremental decoder: `push` bytes as they arrive, then `pop` until `Ok(None)`.
#[derive(Debug)]
pub struct StreamDecoder {
    buf: Vec<u8>,
    max_head: usize,
    max_body: usize,
    /// Line start where the search for the end of the head resumes, so a peer
    /// dribbling bytes cannot make decoding quadratic.
    scan_from: usize,
    failed: Option<FramingError>,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::with_limits(MAX_HEAD_BYTES, MAX_BODY_BYTES)
    }

    pub fn with_limits(max_head: usize, max_body: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_head,
            max_body,
            scan_from: 0,
            failed: None,
        }
    }

    /// Appends received bytes. Ignored once the decoder has failed.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered but not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Returns the next complete message, `Ok(None)` if more bytes are needed, or
    /// the (sticky) error that makes the stream unusable.
    pub fn pop(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.try_pop() {
            Ok(m) => Ok(m),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                Err(e)
            }
        }
    }

    fn try_pop(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        // CRLF keep-alives (RFC 5626 §3.5.1) between messages carry no message.
        let skip = self
            .buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(self.buf.len());
        if skip > 0 {
            self.buf.drain(..skip);
            self.scan_from = 0;
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let (head_end, body_start) = match find_head_end_from(&self.buf, self.scan_from) {
            Ok(found) => found,
            Err(resume) => {
                // Check the start line once, as soon as it is complete, so a non-SIP
                // peer is rejected without waiting for 64 KiB of junk.
                if self.scan_from == 0 && resume > 0 {
                    let first = self.buf.get(..resume).unwrap_or_default();
                    let end = first
                        .iter()
                        .position(|&b| b == b'\n')
                        .unwrap_or(first.len());
                    check_start_line(first.get(..end).unwrap_or_default())?;
                }
                self.scan_from = resume;
                if self.buf.len() > self.max_head {
                    return Err(FramingError::HeadTooLarge {
                        limit: self.max_head,
                    });
                }
                return Ok(None);
            }
        };
        if head_end > self.max_head {
            return Err(FramingError::HeadTooLarge {
                limit: self.max_head,
            });
        }
        let head = self.buf.get(..head_end).unwrap_or_default();
        let declared = content_length(head)?;
        if declared > self.max_body {
            return Err(FramingError::BodyTooLarge {
                declared,
                limit: self.max_body,
            });
        }
        let total = body_start + declared;
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let msg = std::mem::replace(&mut self.buf, rest);
        self.scan_from = 0;
        Ok(Some(msg))
    }
}

fn check_start_line(line: &[u8]) -> Result<(), FramingError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let ok = line.starts_with(b"SIP/2.0 ") || line.ends_with(b" SIP/2.0");
    if ok {
        Ok(())
    } else {
        Err(FramingError::MalformedHead)
    }
}

/// Extracts Content-Length from a raw head (folded lines cannot hide it: a
/// continuation line never starts with a header name).
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let head = std::str::from_utf8(head).map_err(|_| FramingError::MalformedHead)?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    check_start_line(lines.next().unwrap_or_default().as_bytes())?;
    let mut found: Option<usize> = None;
    for line in lines {
        if line.is_empty() || line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(FramingError::MalformedHead);
        };
        if canonical_name(name.trim_end()) != "Content-Length" {
            continue;
        }
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FramingError::InvalidContentLength);
        }
        let n: usize = value
            .parse()
            .map_err(|_| FramingError::InvalidContentLength)?;
        match found {
            Some(prev) if prev != n => return Err(FramingError::InvalidContentLength),
            _ => found = Some(n),
        }
    }
    found.ok_or(FramingError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 3\r\n\r\nabc";

    #[test]
    fn byte_by_byte_and_back_to_back() {
        let mut d = StreamDecoder::new();
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(MSG);
        let mut out = Vec::new();
        for b in &stream {
            d.push(std::slice::from_ref(b));
            while let Some(m) = d.pop().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(out, vec![MSG.to_vec(), MSG.to_vec()]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn two_messages_in_one_chunk() {
        let mut d = StreamDecoder::new();
        let mut chunk = MSG.to_vec();
        chunk.extend_from_slice(MSG);
        d.push(&chunk);
        assert_eq!(d.pop().unwrap().as_deref(), Some(MSG));
        assert_eq!(d.pop().unwrap().as_deref(), Some(MSG));
        assert_eq!(d.pop().unwrap(), None);
    }

    #[test]
    fn missing_content_length_is_fatal() {
        let mut d = StreamDecoder::new();
        d.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\nbody");
        assert_eq!(d.pop(), Err(FramingError::MissingContentLength));
        d.push(MSG);
        assert_eq!(d.pop(), Err(FramingError::MissingContentLength));
    }

    #[test]
    fn garbage_fails_without_waiting() {
        let mut d = StreamDecoder::new();
        d.push(b"GET / HTTP/1.1\r\nHost: x");
        assert_eq!(d.pop(), Err(FramingError::MalformedHead));
        let mut d = StreamDecoder::new();
        d.push(b"OPTIONS sip:a@b SIP/2.0\r\nl: -5\r\n\r\n");
        assert_eq!(d.pop(), Err(FramingError::InvalidContentLength));
        let mut d = StreamDecoder::new();
        d.push(b"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\nContent-Length: 6\r\n\r\n");
        assert_eq!(d.pop(), Err(FramingError::InvalidContentLength));
    }

    #[test]
    fn limits() {
        let mut d = StreamDecoder::with_limits(64, 8);
        d.push(b"OPTIONS sip:a@b SIP/2.0\r\n");
        assert_eq!(d.pop(), Ok(None));
        d.push(&[b'X'; 100]);
        assert_eq!(d.pop(), Err(FramingError::HeadTooLarge { limit: 64 }));
        let mut d = StreamDecoder::with_limits(1024, 8);
        d.push(b"OPTIONS sip:a@b SIP/2.0\r\nl: 9\r\n\r\n");
        assert_eq!(
            d.pop(),
            Err(FramingError::BodyTooLarge {
                declared: 9,
                limit: 8
            })
        );
    }

    #[test]
    fn partial_body_waits() {
        let mut d = StreamDecoder::new();
        d.push(&MSG[..MSG.len() - 1]);
        assert_eq!(d.pop(), Ok(None));
        d.push(&MSG[MSG.len() - 1..]);
        assert_eq!(d.pop().unwrap().as_deref(), Some(MSG));
    }
}
