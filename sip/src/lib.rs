//! Sans-IO SIP for a trunk-facing user agent: bytes and `now` in, bytes, events and deadlines out.
//!
//! Layering follows RFC 3261: [`message`] (syntax) → [`transaction`] (retransmission and
//! matching) → [`dialog`] (in-dialog request construction) → [`endpoint`] (the UA core the
//! I/O driver talks to). [`sdp`] implements the RFC 3264 offer/answer used by the endpoint's
//! caller, and [`framing`] splits TCP byte streams into messages.

pub mod body;
pub mod dialog;
pub mod endpoint;
pub mod framing;
pub mod header;
pub mod message;
mod rng;
pub mod sdp;
mod text;
pub mod transaction;
pub mod uri;

pub use header::{CSeq, MediaType, Method, NameAddr, Via, ViaTransport, MAGIC_COOKIE};
pub use message::{Headers, ParseError, Request, Response, SipMessage};
pub use uri::{Host, Param, SipUri, Uri, UriError};
