//! RTP (RFC 3550 §5.1) parsing and building, zero-copy, never panicking on input.
//!
//! Own implementation rather than a crate: the needed subset is small, and owning it lets
//! every malformed-header case map to a precise error variant.

/// Fixed RTP header length.
pub const RTP_HEADER_LEN: usize = 12;

/// Why an RTP packet was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpParseError {
    /// Shorter than the fixed header.
    #[error("packet too short for an RTP header: {0} bytes")]
    TooShort(usize),
    /// Version field is not 2.
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    /// CSRC list runs past the end of the packet.
    #[error("CSRC list ({count} entries) exceeds packet length")]
    CsrcOverflow {
        /// Declared CSRC count.
        count: u8,
    },
    /// Extension header or its body runs past the end of the packet.
    #[error("header extension exceeds packet length")]
    ExtensionOverflow,
    /// Padding flag set with a padding count of 0 or larger than the remaining payload.
    #[error("invalid padding length {0}")]
    BadPadding(u8),
    /// Payload type in the RTCP range (RFC 5761 §4): this is RTCP, not RTP.
    #[error("payload type {0} collides with RTCP packet types")]
    RtcpPayloadType(u8),
}

/// Why an RTP packet could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpBuildError {
    /// The output buffer is too small.
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Payload type does not fit in 7 bits.
    #[error("payload type {0} out of range")]
    PayloadType(u8),
}

/// The fixed-header fields a sender chooses per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit (start of talkspurt / start of DTMF event).
    pub marker: bool,
    /// 7-bit payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// RFC 3550 §5.3.1 header extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpExtension<'a> {
    /// Profile-defined 16-bit identifier (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// Extension body (a multiple of 4 bytes).
    pub data: &'a [u8],
}

/// A parsed RTP packet borrowing from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Fixed header fields.
    pub header: RtpHeader,
    /// Raw CSRC list (4 bytes per entry).
    csrcs: &'a [u8],
    /// Header extension, if present.
    pub extension: Option<RtpExtension<'a>>,
    /// Payload with padding removed.
    pub payload: &'a [u8],
    /// Number of padding bytes that were stripped.
    pub padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// Number of contributing sources.
    pub fn csrc_count(&self) -> usize {
        self.csrcs.len() / 4
    }

    /// Contributing sources, in order.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.csrcs
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// RFC 5761 demultiplexing: second byte 192..=223 means RTCP (SR=200, RR=201, ...).
pub fn is_rtcp(data: &[u8]) -> bool {
    matches!(data.get(1), Some(192..=223)) && data.first().is_some_and(|b| b >> 6 == 2)
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *d.get(at)?,
        *d.get(at + 1)?,
        *d.get(at + 2)?,
        *d.get(at + 3)?,
    ]))
}

/// Parse one RTP datagram.
pub fn parse_rtp(data: &[u8]) -> Result<RtpPacket<'_>, RtpParseError> {
    if data.len() < RTP_HEADER_LEN {
        return Err(RtpParseError::TooShort(data.len()));
    }
    let b0 = data[0];
    let b1 = data[1];
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtpParseError::BadVersion(version));
    }
    let has_padding = b0 & 0x20 != 0;
    let has_ext = b0 & 0x10 != 0;
    let cc = b0 & 0x0F;
    let marker = b1 & 0x80 != 0;
    let pt = b1 & 0x7F;
    // PT 72..=95 with the marker set lands in 200..=223 on the wire: RTCP, not RTP.
    if (72..=95).contains(&pt) {
        return Err(RtpParseError::RtcpPayloadType(pt));
    }
    let too_short = RtpParseError::TooShort(data.len());
    let header = RtpHeader {
        marker,
        payload_type: pt,
        sequence: be16(data, 2).ok_or(too_short)?,
        timestamp: be32(data, 4).ok_or(too_short)?,
        ssrc: be32(data, 8).ok_or(too_short)?,
    };
    let csrc_end = RTP_HEADER_LEN + 4 * cc as usize;
    let csrcs = data
        .get(RTP_HEADER_LEN..csrc_end)
        .ok_or(RtpParseError::CsrcOverflow { count: cc })?;
    let mut pos = csrc_end;
    let extension = if has_ext {
        let profile = be16(data, pos).ok_or(RtpParseError::ExtensionOverflow)?;
        let words = be16(data, pos + 2).ok_or(RtpParseError::ExtensionOverflow)?;
        let start = pos + 4;
        let end = start + 4 * words as usize;
        let ext = data
            .get(start..end)
            .ok_or(RtpParseError::ExtensionOverflow)?;
        pos = end;
        Some(RtpExtension { profile, data: ext })
    } else {
        None
    };
    let body = data.get(pos..).unwrap_or_default();
    let (payload, padding) = if has_padding {
        let pad = *body.last().ok_or(RtpParseError::BadPadding(0))?;
        if pad == 0 || pad as usize > body.len() {
            return Err(RtpParseError::BadPadding(pad));
        }
        (&body[..body.len() - pad as usize], pad)
    } else {
        (body, 0)
    };
    Ok(RtpPacket {
        header,
        csrcs,
        extension,
        payload,
        padding,
    })
}

/// Write a plain RTP packet (no CSRC, no extension, no padding) into `out`; returns its length.
pub fn build_rtp(
    header: &RtpHeader,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, RtpBuildError> {
    let len = RTP_HEADER_LEN + payload.len();
    let available = out.len();
    let dst = out.get_mut(..len).ok_or(RtpBuildError::BufferTooSmall {
        needed: len,
        available,
    })?;
    write_rtp_header(header, dst)?;
    dst[RTP_HEADER_LEN..].copy_from_slice(payload);
    Ok(len)
}

/// Write only the 12-byte fixed header, for callers that encode the payload in place
/// right after it (avoids a copy on the send path).
pub fn write_rtp_header(header: &RtpHeader, out: &mut [u8]) -> Result<(), RtpBuildError> {
    if header.payload_type > 0x7F {
        return Err(RtpBuildError::PayloadType(header.payload_type));
    }
    let available = out.len();
    let dst = out
        .get_mut(..RTP_HEADER_LEN)
        .ok_or(RtpBuildError::BufferTooSmall {
            needed: RTP_HEADER_LEN,
            available,
        })?;
    dst[0] = 0x80;
    dst[1] = header.payload_type | if header.marker { 0x80 } else { 0 };
    dst[2..4].copy_from_slice(&header.sequence.to_be_bytes());
    dst[4..8].copy_from_slice(&header.timestamp.to_be_bytes());
    dst[8..12].copy_from_slice(&header.ssrc.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> RtpHeader {
        RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 65535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
        }
    }

    #[test]
    fn build_then_parse_round_trips() {
        let mut buf = [0u8; 64];
        let n = build_rtp(&hdr(), &[1, 2, 3, 4, 5], &mut buf).unwrap();
        assert_eq!(n, 17);
        assert_eq!(&buf[..2], &[0x80, 0x88]);
        let p = parse_rtp(&buf[..n]).unwrap();
        assert_eq!(p.header, hdr());
        assert_eq!(p.payload, &[1, 2, 3, 4, 5]);
        assert_eq!(p.csrc_count(), 0);
        assert_eq!(p.extension, None);
        assert!(!is_rtcp(&buf[..n]));
    }

    #[test]
    fn parses_csrcs_extension_and_padding() {
        let mut d = vec![0xB2u8, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]; // V=2 P=1 X=1 CC=2
        d.extend_from_slice(&[0, 0, 0, 0xA1, 0, 0, 0, 0xA2]);
        d.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xFF, 0, 0]);
        d.extend_from_slice(&[9, 9, 9]);
        d.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let p = parse_rtp(&d).unwrap();
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![0xA1, 0xA2]);
        let ext = p.extension.unwrap();
        assert_eq!(ext.profile, 0xBEDE);
        assert_eq!(ext.data, &[0x10, 0xFF, 0, 0]);
        assert_eq!(p.payload, &[9, 9, 9]);
        assert_eq!(p.padding, 3);
        assert_eq!(p.header.sequence, 1);
        assert_eq!(p.header.timestamp, 2);
        assert_eq!(p.header.ssrc, 3);
    }

    #[test]
    fn rejects_malformed_packets() {
        assert_eq!(parse_rtp(&[0x80; 5]), Err(RtpParseError::TooShort(5)));
        let mut d = [0u8; 12];
        d[0] = 0x40;
        assert_eq!(parse_rtp(&d), Err(RtpParseError::BadVersion(1)));
        d[0] = 0x8F; // 15 CSRCs in a 12-byte packet
        assert_eq!(
            parse_rtp(&d),
            Err(RtpParseError::CsrcOverflow { count: 15 })
        );
        d[0] = 0x90; // extension flag, no extension
        assert_eq!(parse_rtp(&d), Err(RtpParseError::ExtensionOverflow));
        let mut e = d.to_vec();
        e.extend_from_slice(&[0, 0, 0xFF, 0xFF]); // claims 65535 words
        assert_eq!(parse_rtp(&e), Err(RtpParseError::ExtensionOverflow));
        d[0] = 0xA0; // padding flag with no payload
        assert_eq!(parse_rtp(&d), Err(RtpParseError::BadPadding(0)));
        let mut p = d.to_vec();
        p.extend_from_slice(&[1, 2, 9]);
        assert_eq!(parse_rtp(&p), Err(RtpParseError::BadPadding(9)));
        let mut r = [0u8; 12];
        r[0] = 0x80;
        r[1] = 200; // RTCP SR
        assert_eq!(parse_rtp(&r), Err(RtpParseError::RtcpPayloadType(72)));
        assert!(is_rtcp(&r));
    }

    #[test]
    fn fuzz_like_inputs_never_panic() {
        // Deterministic pseudo-random datagrams of every small length.
        let mut x: u32 = 0x9E37_79B9;
        for len in 0..80 {
            for _ in 0..200 {
                let d: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        (x & 0xFF) as u8 | 0x80 & (x >> 8) as u8
                    })
                    .collect();
                if let Ok(p) = parse_rtp(&d) {
                    assert!(p.payload.len() <= d.len());
                }
            }
        }
    }

    #[test]
    fn build_errors() {
        let mut small = [0u8; 13];
        assert_eq!(
            build_rtp(&hdr(), &[0; 4], &mut small),
            Err(RtpBuildError::BufferTooSmall {
                needed: 16,
                available: 13
            })
        );
        let mut h = hdr();
        h.payload_type = 128;
        assert_eq!(
            build_rtp(&h, &[], &mut [0u8; 20]),
            Err(RtpBuildError::PayloadType(128))
        );
    }
}
