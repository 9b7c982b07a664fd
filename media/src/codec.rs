//! Codec dispatch between the internal 8 kHz / 20 ms PCM pipeline and RTP payloads.
//!
//! Enum dispatch instead of trait objects: the set of codecs is closed and the hot path
//! stays monomorphic. Opus is only compiled with the `opus` feature (it links libopus);
//! without it, `CodecKind::Opus` still exists (so SDP code can name it) but creating an
//! encoder/decoder for it fails with [`CodecError::Unsupported`].

use crate::g711;
use crate::plc::G711Plc;
use crate::{Frame, FRAME_SAMPLES};

/// Codecs the appliance can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// G.711 μ-law (static PT 0).
    Pcmu,
    /// G.711 A-law (static PT 8).
    Pcma,
    /// Opus, run narrowband at 8 kHz internally; RTP clock is always 48 kHz (RFC 7587).
    Opus,
}

impl CodecKind {
    /// RTP timestamp clock rate.
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => 8000,
            CodecKind::Opus => 48000,
        }
    }

    /// RTP timestamp advance for one 20 ms frame.
    pub fn timestamp_increment_per_frame(self) -> u32 {
        self.rtp_clock_rate() / 50
    }

    /// Whether payload bytes map linearly onto samples (one byte per sample), so that
    /// packets of any ptime can be split or joined into 20 ms frames.
    pub fn is_sample_aligned(self) -> bool {
        matches!(self, CodecKind::Pcmu | CodecKind::Pcma)
    }

    /// Static RTP payload type, if the codec has one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            CodecKind::Pcmu => Some(0),
            CodecKind::Pcma => Some(8),
            CodecKind::Opus => None,
        }
    }

    /// Largest payload [`Encoder::encode`] produces for one frame.
    pub fn max_frame_payload(self) -> usize {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => FRAME_SAMPLES,
            CodecKind::Opus => OPUS_MAX_PAYLOAD,
        }
    }
}

/// Upper bound we allow for one 20 ms Opus packet (the format maximum is 1275 bytes).
pub const OPUS_MAX_PAYLOAD: usize = 1275;

/// Codec failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The codec was not compiled in (e.g. Opus without the `opus` feature).
    #[error("codec {0:?} is not supported by this build")]
    Unsupported(CodecKind),
    /// The output buffer cannot hold one encoded frame.
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
        /// Bytes provided.
        available: usize,
    },
    /// A G.711 payload that is not exactly one 20 ms frame.
    #[error("payload is {got} bytes, expected {expected}")]
    PayloadLength {
        /// Required length.
        expected: usize,
        /// Received length.
        got: usize,
    },
    /// An empty payload (loss must go through `conceal`).
    #[error("empty payload")]
    EmptyPayload,
    /// Opus decoded to a duration other than 20 ms (we only negotiate ptime 20 for Opus).
    #[error("opus packet holds {samples} samples at 8 kHz, expected 160")]
    OpusFrameDuration {
        /// Decoded samples per channel.
        samples: usize,
    },
    /// libopus returned an error code.
    #[error("libopus {op} failed with code {code}")]
    Opus {
        /// The failing libopus function.
        op: &'static str,
        /// libopus error code (negative).
        code: i32,
    },
}

#[cfg(feature = "opus")]
fn opus_err(e: opus::Error) -> CodecError {
    CodecError::Opus {
        op: e.function(),
        code: e.code() as i32,
    }
}

enum EncInner {
    Pcmu,
    Pcma,
    #[cfg(feature = "opus")]
    Opus(Box<opus::Encoder>),
}

/// Encodes 20 ms frames of internal PCM into RTP payloads.
pub struct Encoder {
    kind: CodecKind,
    inner: EncInner,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("kind", &self.kind).finish()
    }
}

impl Encoder {
    /// Create an encoder; Opus is set up for VoIP narrowband with in-band FEC.
    pub fn new(kind: CodecKind) -> Result<Self, CodecError> {
        let inner = match kind {
            CodecKind::Pcmu => EncInner::Pcmu,
            CodecKind::Pcma => EncInner::Pcma,
            #[cfg(feature = "opus")]
            CodecKind::Opus => {
                let mut e = opus::Encoder::new(8000, opus::Channels::Mono, opus::Application::Voip)
                    .map_err(opus_err)?;
                e.set_bitrate(opus::Bitrate::Bits(16_000))
                    .map_err(opus_err)?;
                e.set_inband_fec(true).map_err(opus_err)?;
                // FEC is only emitted when the encoder expects loss.
                e.set_packet_loss_perc(5).map_err(opus_err)?;
                EncInner::Opus(Box::new(e))
            }
            #[cfg(not(feature = "opus"))]
            CodecKind::Opus => return Err(CodecError::Unsupported(kind)),
        };
        Ok(Self { kind, inner })
    }

    /// Which codec this is.
    pub fn kind(&self) -> CodecKind {
        self.kind
    }

    /// See [`CodecKind::rtp_clock_rate`].
    pub fn rtp_clock_rate(&self) -> u32 {
        self.kind.rtp_clock_rate()
    }

    /// See [`CodecKind::timestamp_increment_per_frame`].
    pub fn timestamp_increment_per_frame(&self) -> u32 {
        self.kind.timestamp_increment_per_frame()
    }

    /// Encode one frame into `out`; returns the payload length.
    pub fn encode(&mut self, pcm: &Frame, out: &mut [u8]) -> Result<usize, CodecError> {
        match &mut self.inner {
            EncInner::Pcmu | EncInner::Pcma => {
                let available = out.len();
                let dst = out
                    .get_mut(..FRAME_SAMPLES)
                    .ok_or(CodecError::BufferTooSmall {
                        needed: FRAME_SAMPLES,
                        available,
                    })?;
                if matches!(self.inner, EncInner::Pcmu) {
                    g711::encode_ulaw(pcm, dst);
                } else {
                    g711::encode_alaw(pcm, dst);
                }
                Ok(FRAME_SAMPLES)
            }
            #[cfg(feature = "opus")]
            EncInner::Opus(e) => {
                let cap = out.len().min(OPUS_MAX_PAYLOAD);
                let dst = out.get_mut(..cap).unwrap_or_default();
                e.encode(pcm, dst).map_err(opus_err)
            }
        }
    }
}

enum DecInner {
    Pcmu(Box<G711Plc>),
    Pcma(Box<G711Plc>),
    #[cfg(feature = "opus")]
    Opus(Box<opus::Decoder>),
}

/// Decodes RTP payloads into 20 ms frames and conceals lost ones.
pub struct Decoder {
    kind: CodecKind,
    inner: DecInner,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("kind", &self.kind).finish()
    }
}

impl Decoder {
    /// Create a decoder (G.711 ones carry an Appendix I concealer).
    pub fn new(kind: CodecKind) -> Result<Self, CodecError> {
        let inner = match kind {
            CodecKind::Pcmu => DecInner::Pcmu(Box::default()),
            CodecKind::Pcma => DecInner::Pcma(Box::default()),
            #[cfg(feature = "opus")]
            CodecKind::Opus => DecInner::Opus(Box::new(
                opus::Decoder::new(8000, opus::Channels::Mono).map_err(opus_err)?,
            )),
            #[cfg(not(feature = "opus"))]
            CodecKind::Opus => return Err(CodecError::Unsupported(kind)),
        };
        Ok(Self { kind, inner })
    }

    /// Which codec this is.
    pub fn kind(&self) -> CodecKind {
        self.kind
    }

    /// See [`CodecKind::rtp_clock_rate`].
    pub fn rtp_clock_rate(&self) -> u32 {
        self.kind.rtp_clock_rate()
    }

    /// See [`CodecKind::timestamp_increment_per_frame`].
    pub fn timestamp_increment_per_frame(&self) -> u32 {
        self.kind.timestamp_increment_per_frame()
    }

    /// Decode one 20 ms payload. G.711 output is delayed by
    /// [`crate::plc::PLC_DELAY_SAMPLES`] (the concealer's look-back).
    pub fn decode(&mut self, payload: &[u8], out: &mut Frame) -> Result<(), CodecError> {
        if payload.is_empty() {
            return Err(CodecError::EmptyPayload);
        }
        match &mut self.inner {
            DecInner::Pcmu(plc) | DecInner::Pcma(plc) => {
                if payload.len() != FRAME_SAMPLES {
                    return Err(CodecError::PayloadLength {
                        expected: FRAME_SAMPLES,
                        got: payload.len(),
                    });
                }
                if self.kind == CodecKind::Pcmu {
                    g711::decode_ulaw(payload, out);
                } else {
                    g711::decode_alaw(payload, out);
                }
                plc.good_frame(out);
                Ok(())
            }
            #[cfg(feature = "opus")]
            DecInner::Opus(d) => {
                let n = d.decode(payload, out, false).map_err(opus_err)?;
                if n != FRAME_SAMPLES {
                    return Err(CodecError::OpusFrameDuration { samples: n });
                }
                Ok(())
            }
        }
    }

    /// Synthesize a frame for a lost packet.
    pub fn conceal(&mut self, out: &mut Frame) {
        match &mut self.inner {
            DecInner::Pcmu(plc) | DecInner::Pcma(plc) => plc.conceal(out),
            #[cfg(feature = "opus")]
            DecInner::Opus(d) => {
                if d.decode(&[], out, false).is_err() {
                    out.fill(0);
                }
            }
        }
    }

    /// Conceal a lost frame when the *following* packet is already at hand: Opus then
    /// recovers the lost frame from that packet's in-band FEC; G.711 falls back to PLC.
    pub fn conceal_with_next(&mut self, next_payload: &[u8], out: &mut Frame) {
        match &mut self.inner {
            #[cfg(feature = "opus")]
            DecInner::Opus(d) => match d.decode(next_payload, out, true) {
                Ok(FRAME_SAMPLES) => {}
                _ => self.conceal(out),
            },
            _ => {
                let _ = next_payload;
                self.conceal(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(n0: usize, freq: f32) -> Frame {
        let mut f = [0i16; FRAME_SAMPLES];
        for (i, s) in f.iter_mut().enumerate() {
            let t = (n0 + i) as f32 / 8000.0;
            *s = (6000.0 * (2.0 * std::f32::consts::PI * freq * t).sin()) as i16;
        }
        f
    }

    #[test]
    fn clock_rates() {
        assert_eq!(CodecKind::Pcmu.rtp_clock_rate(), 8000);
        assert_eq!(CodecKind::Pcma.timestamp_increment_per_frame(), 160);
        assert_eq!(CodecKind::Opus.rtp_clock_rate(), 48000);
        assert_eq!(CodecKind::Opus.timestamp_increment_per_frame(), 960);
    }

    #[test]
    fn g711_round_trip_through_codec_is_delayed_copy() {
        for kind in [CodecKind::Pcmu, CodecKind::Pcma] {
            let mut enc = Encoder::new(kind).unwrap();
            let mut dec = Decoder::new(kind).unwrap();
            let mut buf = [0u8; 200];
            let mut input = Vec::new();
            let mut output = Vec::new();
            for k in 0..5 {
                let f = sine(k * FRAME_SAMPLES, 700.0);
                input.extend_from_slice(&f);
                let n = enc.encode(&f, &mut buf).unwrap();
                assert_eq!(n, 160);
                let mut o = [0i16; FRAME_SAMPLES];
                dec.decode(&buf[..n], &mut o).unwrap();
                output.extend_from_slice(&o);
            }
            let d = crate::plc::PLC_DELAY_SAMPLES;
            for (a, b) in output[d..].iter().zip(&input) {
                assert!((a - b).abs() < 200, "{kind:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn g711_rejects_bad_lengths_and_small_buffers() {
        let mut enc = Encoder::new(CodecKind::Pcmu).unwrap();
        let mut small = [0u8; 100];
        assert_eq!(
            enc.encode(&[0; FRAME_SAMPLES], &mut small),
            Err(CodecError::BufferTooSmall {
                needed: 160,
                available: 100
            })
        );
        let mut dec = Decoder::new(CodecKind::Pcma).unwrap();
        let mut o = [0i16; FRAME_SAMPLES];
        assert_eq!(
            dec.decode(&[0xD5; 80], &mut o),
            Err(CodecError::PayloadLength {
                expected: 160,
                got: 80
            })
        );
        assert_eq!(dec.decode(&[], &mut o), Err(CodecError::EmptyPayload));
    }

    #[cfg(not(feature = "opus"))]
    #[test]
    fn opus_without_feature_is_unsupported() {
        assert_eq!(
            Encoder::new(CodecKind::Opus).unwrap_err(),
            CodecError::Unsupported(CodecKind::Opus)
        );
        assert!(Decoder::new(CodecKind::Opus).is_err());
    }

    #[cfg(feature = "opus")]
    #[test]
    fn opus_round_trip_and_plc() {
        let mut enc = Encoder::new(CodecKind::Opus).unwrap();
        let mut dec = Decoder::new(CodecKind::Opus).unwrap();
        let mut buf = [0u8; OPUS_MAX_PAYLOAD];
        let mut energy_in = 0f64;
        let mut energy_out = 0f64;
        for k in 0..50 {
            let f = sine(k * FRAME_SAMPLES, 440.0);
            let n = enc.encode(&f, &mut buf).unwrap();
            assert!(n > 0 && n < 200, "opus payload {n}");
            let mut o = [0i16; FRAME_SAMPLES];
            dec.decode(&buf[..n], &mut o).unwrap();
            if k > 10 {
                energy_in += f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
                energy_out += o.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
            }
        }
        let ratio = energy_out / energy_in;
        assert!((0.5..2.0).contains(&ratio), "energy ratio {ratio}");
        let mut o = [0i16; FRAME_SAMPLES];
        dec.conceal(&mut o);
        assert!(o.iter().any(|&s| s != 0), "opus PLC continues the signal");
    }
}
