//! The sans-IO user agent the I/O driver talks to.
//!
//! The driver feeds datagrams/framed messages with [`Endpoint::handle_input`], fires
//! timers with [`Endpoint::handle_timeout`] at [`Endpoint::poll_timeout`], and drains
//! [`Endpoint::poll_transmit`] and [`Endpoint::poll_event`] after every call. The call
//! logic answers [`Event`]s with the command methods. Nothing here reads a clock or
//! touches a socket.
//!
//! Layering inside: transactions (RFC 3261 §17) absorb retransmissions and own
//! non-2xx retransmission; calls own their [`Dialog`] and the 2xx-until-ACK timer;
//! the endpoint routes messages between them and enforces the trunk policy
//! (capacity guard, supported methods, response addressing per §18.2.2).
//!
//! Calls go both ways. Incoming ones (UAS) start with [`Event::IncomingCall`]. Outgoing
//! ones (UAC, the agent leg of a B2BUA transfer) start with [`Endpoint::invite`] and end
//! with exactly one of [`Event::OutgoingFailed`] or [`Event::OutgoingAnswered`] followed
//! later by [`Event::CallEnded`]. Until the 2xx an outgoing call is an INVITE client
//! transaction plus CANCEL handling (§9.1); the 2xx creates the dialog (§12.1.2), the
//! endpoint ACKs it itself (§13.2.2.4) and from then on the call is routed, re-INVITEd
//! and hung up exactly like an incoming one. 2xx retransmissions and 2xx from other
//! forks arrive after the INVITE transaction ended, so the endpoint keeps the ACKs for
//! 64*T1 (the "Accepted" state of RFC 6026) and answers extra forks with ACK + BYE.
//!
//! Blind transfer (RFC 3515): [`Endpoint::refer`] sends an in-dialog REFER on an established
//! call; its final response is [`Event::ReferResponse`] and each NOTIFY of the implicit
//! subscription is [`Event::ReferNotify`]. REFERs from the peer are declined (603).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use crate::body::{extract_response_sdp, extract_sdp, parse_dtmf_info, sipfrag_status, BodyError};
use crate::dialog::{Dialog, DialogError, DialogId};
use crate::header::{CSeq, Method, NameAddr, Via, ViaTransport, MAGIC_COOKIE};
use crate::message::{
    canonical_name, salvage_request_headers, Headers, ParseError, Request, Response, SipMessage,
};
use crate::rng::SplitMix64;
use crate::sdp::{self, SdpError};
use crate::text::{hex_u64, is_token};
use crate::transaction::{
    build_cancel, ClientKey, ClientResponseAction, ClientState, ClientTimerEvent,
    ClientTransaction, ServerState, ServerTimerEvent, ServerTransaction, TransactionKey,
    TwoXxEvent, TwoXxRetransmit,
};
use crate::uri::{find_param, parse_params, Host, SipUri, Uri};

pub use crate::transaction::TimerConfig;

/// Methods this UA implements; advertised in Allow. REFER is sent (blind transfer) and
/// NOTIFY received for its subscription; an incoming REFER is understood but declined.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY";
/// Bodies this UA understands; advertised in Accept.
pub const ACCEPT: &str =
    "application/sdp, application/dtmf-relay, application/dtmf, message/sipfrag";

/// Event package of the implicit REFER subscription (RFC 3515 §2.4.4).
const REFER_EVENT: &str = "refer";

/// REFER subscriptions a call keeps listening to: a peer that never sends the final NOTIFY
/// must not make the list grow with every REFER. The oldest is forgotten first.
const MAX_REFER_SUBSCRIPTIONS: usize = 4;

/// Transport of a message. TCP is reliable: no retransmissions, zero wait timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn reliable(self) -> bool {
        self == Transport::Tcp
    }

    fn via_transport(self) -> ViaTransport {
        match self {
            Transport::Udp => ViaTransport::Udp,
            Transport::Tcp => ViaTransport::Tcp,
        }
    }
}

/// Opaque identifier of a call, stable from `IncomingCall` or [`Endpoint::invite`] to
/// `CallEnded` or `OutgoingFailed`. Incoming and outgoing calls share one number space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// Static endpoint configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Calls beyond this are refused with 503 + Retry-After.
    pub max_calls: usize,
    pub retry_after_secs: u32,
    /// Sent as Server (responses) and User-Agent (requests).
    pub user_agent: String,
    /// Public host or IP for Contact and Via sent-by.
    pub contact_host: String,
    pub udp_port: u16,
    pub tcp_port: u16,
    pub timers: TimerConfig,
    /// Seed for tags and branches; vary it per process start in production.
    pub seed: u64,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            max_calls: 100,
            retry_after_secs: 30,
            user_agent: "voxgate".to_string(),
            contact_host: "127.0.0.1".to_string(),
            udp_port: 5060,
            tcp_port: 5060,
            timers: TimerConfig::default(),
            seed: 0,
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub transport: Transport,
    /// Local socket to send from (the one the peer talks to).
    pub local: SocketAddr,
    /// Destination; for TCP, the connection identified by (local, remote).
    pub remote: SocketAddr,
    pub payload: Vec<u8>,
}

/// A new call offered by the trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub call: CallHandle,
    pub call_id: String,
    /// From URI (the caller).
    pub from: String,
    pub from_display: Option<String>,
    /// To URI (the dialled number).
    pub to: String,
    /// URI of the first P-Asserted-Identity (RFC 3325), the network-verified caller.
    pub p_asserted_identity: Option<String>,
    pub remote: SocketAddr,
    pub transport: Transport,
    /// `None` for a late-offer INVITE.
    pub offer: Option<sdp::SessionDescription>,
    /// Non-fatal oddities (missing Contact/Max-Forwards, RFC 2543 branch, bad PAI).
    pub parse_warnings: usize,
}

/// A call voxgate originates: the agent leg of a B2BUA transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingCall {
    /// Request-URI: the agent's SIP URI.
    pub target: Uri,
    /// To URI when it should differ from `target` (e.g. the agent's address-of-record
    /// while the request goes to a registered contact); `None` uses `target`.
    pub to: Option<Uri>,
    /// User part of our From URI (`sip:<from_user>@<contact_host>`), e.g. the caller's
    /// number so the agent's phone shows it; empty for a From without user part.
    pub from_user: String,
    pub from_display: Option<String>,
    /// Next hop (the agent's PBX or phone). Sans-IO cannot resolve names, so the
    /// application resolves the target's host itself.
    pub remote: SocketAddr,
    /// For TCP the driver must connect to `remote` if no connection exists yet.
    pub transport: Transport,
    /// Local socket to send from; responses and in-dialog requests arrive here.
    pub local: SocketAddr,
    /// SDP offer sent in the INVITE. Late offer (an INVITE without SDP) is not supported:
    /// the offer would then have to go into the ACK.
    pub sdp_offer: String,
    /// Added after the standard headers, e.g. `X-Voxgate-Call-Id` for the agent's screen
    /// pop. Headers the endpoint writes itself (Via, From, To, CSeq, ...) are refused.
    pub extra_headers: Vec<(String, String)>,
}

/// Why an outgoing call failed; reported with [`Event::OutgoingFailed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutgoingFailure {
    /// The callee or a proxy refused with the 3xx-6xx status in `status` (the
    /// transaction ACKed it, RFC 3261 §17.1.1.3). Redirects are not followed.
    #[error("rejected")]
    Rejected,
    /// No final response within 64*T1 (Timer B): nobody reachable answered.
    #[error("no response")]
    Timeout,
    /// The application hung up before the answer: CANCEL answered by 487, the INVITE
    /// abandoned without any response, or a 2xx that raced the CANCEL (ACKed, then BYE).
    #[error("cancelled")]
    Cancelled,
    /// A 2xx without SDP answer; we offered in the INVITE, so RFC 3264 requires one.
    /// The 2xx was ACKed and a BYE sent.
    #[error("2xx without SDP answer")]
    MissingAnswer,
    /// A 2xx whose SDP answer cannot be used; it was ACKed and a BYE sent.
    #[error("unusable SDP answer: {0}")]
    BadAnswer(AnswerError),
    /// A 2xx that cannot establish a dialog (no To tag, broken Contact or
    /// Record-Route); there is nothing to address an ACK or BYE to, so it is dropped.
    #[error("2xx cannot establish a dialog: {0}")]
    InvalidDialog(DialogError),
}

/// Why the SDP answer in a 2xx is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Body(#[from] BodyError),
    /// No audio stream with a non-zero port: the callee refused the only stream we offered.
    #[error("no active audio stream")]
    NoAudio,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    RemoteBye,
    /// CANCEL before the final answer; 200 and 487 were sent.
    Cancelled,
    /// Our BYE completed (any final response) or we rejected an unanswered call with 480.
    LocalHangup,
    /// No ACK for our 2xx within 64*T1; a BYE was sent.
    AckTimeout,
    /// Our BYE got no final response within 64*T1.
    TransactionTimeout,
    /// The application rejected the call with this status.
    Rejected(u16),
}

/// What the application must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new INVITE passed the capacity guard; 100 Trying was already sent. The
    /// app must `answer`, `reject` or `send_provisional`.
    IncomingCall(IncomingCall),
    /// ACK for our 2xx arrived.
    CallConfirmed { call: CallHandle },
    /// In-dialog INVITE; the app must call `answer_reinvite`. `offer` is `None` for
    /// a re-INVITE without SDP (the app may answer it with Err(488) for now).
    ReInvite {
        call: CallHandle,
        offer: Option<sdp::SessionDescription>,
    },
    /// INFO with application/dtmf-relay or application/dtmf; 200 was already sent.
    /// `duration_ms` is 0 when the body carries none.
    DtmfInfo {
        call: CallHandle,
        digit: char,
        duration_ms: u32,
    },
    /// A call ended after it was established: an incoming call at any point after
    /// `IncomingCall`, an outgoing one after `OutgoingAnswered`.
    CallEnded { call: CallHandle, reason: EndReason },
    /// 101-199 to our INVITE (100 Trying is hop-by-hop and not reported). `early_media`
    /// is the SDP a 183 (or 180) carries, when it parses; playing it is optional.
    OutgoingProgress {
        call: CallHandle,
        status: u16,
        early_media: Option<sdp::SessionDescription>,
    },
    /// 2xx to our INVITE, already ACKed: the call is up (no `CallConfirmed` follows,
    /// our own ACK confirms it) and ends later with `CallEnded`.
    /// The answer has an active audio stream; checking its codecs against what we
    /// offered is up to the application (`sdp::negotiate_answer`, then `hangup`).
    OutgoingAnswered {
        call: CallHandle,
        answer: sdp::SessionDescription,
    },
    /// The outgoing call never got established; nothing else is reported for it.
    /// `status` is the final status received, `None` when none arrived.
    OutgoingFailed {
        call: CallHandle,
        status: Option<u16>,
        reason: OutgoingFailure,
    },
    /// Final response to our REFER (provisionals are not reported): 202 when the peer
    /// accepted the transfer, its error status when it refused, 408 when nothing answered
    /// within 64*T1 (Timer F). RFC 3261 §12.2.1.2 suggests ending the call on 408/481;
    /// that is left to the application.
    ReferResponse { call: CallHandle, status: u16 },
    /// NOTIFY of the subscription our REFER created; 200 was already sent. `status` is the
    /// status line of its `message/sipfrag` body (how the transfer target answered the
    /// peer's INVITE), `None` when the body is missing or unreadable. `terminated`: the
    /// peer sends no more NOTIFYs for this REFER.
    ReferNotify {
        call: CallHandle,
        status: Option<u16>,
        terminated: bool,
    },
}

/// Why an application command was refused (nothing was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("unknown or already ended call")]
    UnknownCall,
    #[error("command not valid in the call's current state")]
    WrongState,
    #[error("status {0} not allowed for this command")]
    InvalidStatus(u16),
    #[error("target URI must not carry headers")]
    InvalidTarget,
    #[error("From user part contains characters not allowed in a SIP URI user")]
    InvalidFromUser,
    #[error("display name contains control characters")]
    InvalidDisplayName,
    /// Index into `OutgoingCall::extra_headers`.
    #[error("extra header #{0} has an invalid name or value")]
    InvalidExtraHeader(usize),
    /// Index into `OutgoingCall::extra_headers`.
    #[error("extra header #{0} is one the endpoint writes itself")]
    ReservedExtraHeader(usize),
    #[error("invalid SDP offer: {0}")]
    InvalidOffer(SdpError),
    #[error("local and remote addresses are of different IP families")]
    AddressFamilyMismatch,
    #[error("Refer-To is not a valid sip:, sips: or tel: URI")]
    InvalidReferTo,
    /// Headers in Refer-To (`?Replaces=...`) would make the peer put them into its INVITE;
    /// a blind transfer has no use for that.
    #[error("Refer-To must not carry URI headers")]
    ReferToHeaders,
    #[error("Referred-By is not a valid URI without headers")]
    InvalidReferredBy,
    #[error("a REFER on this call is still waiting for its final response")]
    ReferPending,
}

/// Headers [`Endpoint::invite`] writes itself; an extra header may not repeat them.
const RESERVED_HEADERS: &[&str] = &[
    "Via",
    "Max-Forwards",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Allow",
    "User-Agent",
    "Content-Type",
    "Content-Length",
];

/// 2xx from distinct forks ACKed per INVITE; more are dropped, so a hostile peer cannot
/// make us send unbounded ACK/BYE pairs.
const MAX_FORKS: usize = 16;

/// `user` characters of a SIP URI (RFC 3261 §25.1: unreserved, escaped, user-unreserved).
fn is_user_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()%&=+$,;?/".contains(&b)
}

/// Counters for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Parseable requests received (including retransmissions).
    pub requests: u64,
    /// Responses received for our requests.
    pub responses_received: u64,
    /// Responses transmitted, including retransmissions.
    pub responses_sent: u64,
    /// Requests transmitted, including retransmissions.
    pub requests_sent: u64,
    /// Unparseable messages or requests missing mandatory headers.
    pub parse_errors: u64,
    pub rejected_503: u64,
    /// Retransmissions sent (timer-driven or in reply to a retransmitted request).
    pub retransmissions: u64,
}

/// Where a message came from; responses and in-dialog requests go back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
}

#[derive(Debug)]
struct ServerTx {
    tx: ServerTransaction,
    /// Where responses go (the flow the request arrived on).
    flow: Flow,
    /// Kept for INVITEs so later responses (18x, 200, 487) can be built.
    request: Option<Request>,
    call: Option<CallHandle>,
}

/// What a client transaction's responses and timeouts mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxOwner {
    /// BYE of this call; `None` once the call has been reported ended (or for a BYE
    /// ending a dialog no call owns).
    Bye(Option<CallHandle>),
    /// Initial INVITE of an outgoing call.
    Invite(CallHandle),
    /// CANCEL of an outgoing INVITE: its outcome shows in the INVITE's final response.
    Cancel,
    /// REFER of this call with CSeq `seq`.
    Refer { call: CallHandle, seq: u32 },
}

#[derive(Debug)]
struct ClientTx {
    tx: ClientTransaction,
    flow: Flow,
    owner: TxOwner,
}

/// An outgoing INVITE without a 2xx yet (RFC 3261 §13.2).
#[derive(Debug)]
struct OutgoingLeg {
    invite: Request,
    /// Key of the INVITE client transaction.
    key: ClientKey,
    flow: Flow,
    /// A provisional arrived, so a CANCEL may be sent (RFC 3261 §9.1).
    provisional: bool,
    /// The application hung up; the CANCEL goes out with the first provisional.
    hangup: bool,
    /// Set when the CANCEL is sent: without a final response by then the INVITE is
    /// abandoned (RFC 3261 §9.1, 64*T1).
    cancel_deadline: Option<Instant>,
}

/// Our INVITE after its first 2xx (RFC 6026 "Accepted"). The client transaction has
/// ended, yet 2xx retransmissions keep coming until our ACK arrives, each needing
/// the ACK again, and other forks may answer too (RFC 3261 §13.2.2.4).
#[derive(Debug)]
struct Accepted {
    until: Instant,
    invite: Request,
    flow: Flow,
    /// Remote tag → (next hop, ACK bytes), one per dialog the INVITE created.
    acks: HashMap<String, (Flow, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// INVITE received, no final response yet.
    Incoming,
    /// 2xx sent, waiting for ACK.
    Answered,
    Confirmed,
    /// Our BYE is in flight.
    Terminating,
}

/// A 2xx we retransmit until the matching ACK (RFC 3261 §13.3.1.4).
#[derive(Debug)]
struct PendingAck {
    timer: TwoXxRetransmit,
    flow: Flow,
    bytes: Vec<u8>,
    cseq: u32,
    /// True for the initial INVITE (ACK confirms the call).
    initial: bool,
}

#[derive(Debug)]
struct Call {
    state: CallState,
    dialog: Dialog,
    flow: Flow,
    /// Server transaction of the initial INVITE; `None` for outgoing calls.
    invite_key: Option<TransactionKey>,
    invite_seq: u32,
    /// Sent-by and branch of the initial INVITE, to tell retransmissions from merged
    /// requests (empty for outgoing calls).
    invite_via: String,
    /// `(Call-ID, From tag)` index entry; `None` for outgoing calls.
    early_key: Option<(String, String)>,
    reinvite: Option<TransactionKey>,
    pending_ack: Option<PendingAck>,
    hangup_after_ack: bool,
    /// CSeq of our REFER while it waits for a final response.
    refer_pending: Option<u32>,
    /// CSeq numbers of our REFERs whose subscription may still send NOTIFYs (RFC 3515
    /// §2.4.6: the NOTIFY's `id`), oldest first, at most [`MAX_REFER_SUBSCRIPTIONS`].
    refer_subscriptions: VecDeque<u32>,
}

/// Sans-IO SIP user agent for a trunk: UAS for incoming calls, UAC for outgoing ones.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    rng: SplitMix64,
    next_call: u64,
    server_txs: BTreeMap<TransactionKey, ServerTx>,
    client_txs: BTreeMap<ClientKey, ClientTx>,
    calls: BTreeMap<CallHandle, Call>,
    /// Outgoing calls until their 2xx moves them to `calls`.
    outgoing: BTreeMap<CallHandle, OutgoingLeg>,
    /// Our INVITEs after their first 2xx, keyed like their client transaction.
    accepted: BTreeMap<ClientKey, Accepted>,
    dialogs: HashMap<DialogId, CallHandle>,
    early: HashMap<(String, String), CallHandle>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: EndpointStats,
}

fn via_identity(via: &Via) -> String {
    format!("{}|{}", via.sent_by_key(), via.branch().unwrap_or_default())
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Self {
        let rng = SplitMix64::new(config.seed);
        Self {
            config,
            rng,
            next_call: 1,
            server_txs: BTreeMap::new(),
            client_txs: BTreeMap::new(),
            calls: BTreeMap::new(),
            outgoing: BTreeMap::new(),
            accepted: BTreeMap::new(),
            dialogs: HashMap::new(),
            early: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
        }
    }

    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// Calls counted by the capacity guard: incoming ones from `IncomingCall`, outgoing
    /// ones from `invite`, until `CallEnded` or `OutgoingFailed`. Outgoing legs count
    /// because they hold media resources like incoming ones; `invite` itself is never
    /// refused for capacity, since the caller's leg is already up.
    pub fn active_calls(&self) -> usize {
        self.calls.len() + self.outgoing.len()
    }

    /// Next message to put on the wire; drain after every `handle_*` and command call.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the call logic.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Earliest deadline at which `handle_timeout` must be called; `None` when idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let server = self.server_txs.values().filter_map(|s| s.tx.poll_timeout());
        let client = self.client_txs.values().filter_map(|c| c.tx.poll_timeout());
        let calls = self
            .calls
            .values()
            .filter_map(|c| c.pending_ack.as_ref().and_then(|p| p.timer.poll_timeout()));
        let legs = self.outgoing.values().filter_map(|l| l.cancel_deadline);
        let accepted = self.accepted.values().map(|a| a.until);
        server
            .chain(client)
            .chain(calls)
            .chain(legs)
            .chain(accepted)
            .min()
    }

    /// One datagram (UDP) or one framed message (TCP) from `remote`, received on `local`.
    pub fn handle_input(
        &mut self,
        now: Instant,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let flow = Flow {
            transport,
            local,
            remote,
        };
        match SipMessage::parse(data) {
            Ok(SipMessage::Request(req)) => {
                self.stats.requests += 1;
                self.handle_request(now, flow, req);
            }
            Ok(SipMessage::Response(resp)) => {
                self.stats.responses_received += 1;
                self.handle_response(now, flow, resp);
            }
            Err(e) => {
                self.stats.parse_errors += 1;
                tracing::debug!(%remote, error = %e, "unparseable SIP message");
                self.reply_to_garbage(flow, data, &e);
            }
        }
    }

    /// Fires every timer due at `now` (retransmissions, timeouts, cleanup).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.server_timers(now);
        self.client_timers(now);
        self.call_timers(now);
        self.outgoing_timers(now);
    }

    // ----- application commands -------------------------------------------------

    /// Places an outgoing call: sends the INVITE and runs its client transaction (over
    /// UDP Timer A retransmits it; Timer B fails the call after 64*T1 without any
    /// response). Ringing is not time-limited here: the application hangs up after its
    /// own no-answer timeout. Nothing is sent when the parameters are refused.
    pub fn invite(&mut self, now: Instant, out: OutgoingCall) -> Result<CallHandle, CallError> {
        if out.local.is_ipv4() != out.remote.is_ipv4() {
            return Err(CallError::AddressFamilyMismatch);
        }
        // A Request-URI with ?headers is not allowed on the wire (RFC 3261 §19.1.5).
        if out.target.as_sip().is_some_and(|u| u.headers.is_some()) {
            return Err(CallError::InvalidTarget);
        }
        if !out.from_user.bytes().all(is_user_byte) {
            return Err(CallError::InvalidFromUser);
        }
        // Quoting escapes `"` and `\` but a CR/LF would still split the header.
        if out
            .from_display
            .as_deref()
            .is_some_and(|d| d.chars().any(char::is_control))
        {
            return Err(CallError::InvalidDisplayName);
        }
        for (i, (name, value)) in out.extra_headers.iter().enumerate() {
            if !is_token(name) || value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(CallError::InvalidExtraHeader(i));
            }
            if RESERVED_HEADERS.contains(&canonical_name(name).as_str()) {
                return Err(CallError::ReservedExtraHeader(i));
            }
        }
        sdp::SessionDescription::parse(out.sdp_offer.as_bytes())
            .map_err(CallError::InvalidOffer)?;

        let flow = Flow {
            transport: out.transport,
            local: out.local,
            remote: out.remote,
        };
        let via = self.local_via(out.transport);
        let tag = self.new_tag();
        let call_id = format!("{}{}", self.new_tag(), self.new_tag());
        let mut from_uri = SipUri::new(self.local_host(), None);
        from_uri.user = (!out.from_user.is_empty()).then_some(out.from_user);
        let mut from = NameAddr::new(Uri::Sip(from_uri));
        from.display_name = out.from_display;
        from.set_tag(&tag);
        let to = NameAddr::new(out.to.unwrap_or_else(|| out.target.clone()));
        let mut req = Request::new(Method::Invite, out.target);
        let h = &mut req.headers;
        h.push("Via", via.to_string());
        h.push("Max-Forwards", "70");
        h.push("From", from.to_string());
        h.push("To", to.to_string());
        h.push("Call-ID", call_id);
        h.push(
            "CSeq",
            CSeq {
                seq: 1,
                method: Method::Invite,
            }
            .to_string(),
        );
        h.push("Contact", self.contact(out.transport));
        h.push("Allow", ALLOW);
        h.push("User-Agent", self.config.user_agent.clone());
        for (name, value) in out.extra_headers {
            h.push(&name, value);
        }
        h.push("Content-Type", "application/sdp");
        req.body = out.sdp_offer.into_bytes();

        let handle = CallHandle(self.next_call);
        // The transaction only fails on a missing Via branch, and we just wrote one.
        let key = self
            .start_client_tx(now, req.clone(), flow, TxOwner::Invite(handle))
            .ok_or(CallError::WrongState)?;
        self.next_call += 1;
        self.outgoing.insert(
            handle,
            OutgoingLeg {
                invite: req,
                key,
                flow,
                provisional: false,
                hangup: false,
                cancel_deadline: None,
            },
        );
        Ok(handle)
    }

    /// Sends 101-199 (typically 180 Ringing or 183 with early-media SDP).
    pub fn send_provisional(
        &mut self,
        now: Instant,
        call: CallHandle,
        status: u16,
        sdp: Option<String>,
    ) -> Result<(), CallError> {
        if !(101..=199).contains(&status) {
            return Err(CallError::InvalidStatus(status));
        }
        let c = self.lookup(call)?;
        if c.state != CallState::Incoming {
            return Err(CallError::WrongState);
        }
        let key = c.invite_key.clone().ok_or(CallError::WrongState)?;
        self.respond_in_invite_tx(now, &key, status, sdp.map(String::into_bytes))
    }

    /// Sends 200 OK with `sdp` and retransmits it until ACK (T1 doubling to T2);
    /// after 64*T1 without ACK a BYE is sent and the call ends with `AckTimeout`.
    pub fn answer(&mut self, now: Instant, call: CallHandle, sdp: String) -> Result<(), CallError> {
        let c = self.lookup(call)?;
        if c.state != CallState::Incoming {
            return Err(CallError::WrongState);
        }
        let key = c.invite_key.clone().ok_or(CallError::WrongState)?;
        let seq = c.invite_seq;
        self.send_2xx(now, call, &key, seq, sdp.into_bytes(), true)?;
        if let Some(c) = self.calls.get_mut(&call) {
            c.state = CallState::Answered;
        }
        Ok(())
    }

    /// Rejects an unanswered call with a final 300-699 status; ends with `Rejected`.
    pub fn reject(&mut self, now: Instant, call: CallHandle, status: u16) -> Result<(), CallError> {
        if !(300..=699).contains(&status) {
            return Err(CallError::InvalidStatus(status));
        }
        let c = self.lookup(call)?;
        if c.state != CallState::Incoming {
            return Err(CallError::WrongState);
        }
        let key = c.invite_key.clone().ok_or(CallError::WrongState)?;
        self.respond_in_invite_tx(now, &key, status, None)?;
        self.end_call(call, EndReason::Rejected(status));
        Ok(())
    }

    /// Ends the call from our side: BYE when answered (`CallEnded` follows when the
    /// BYE completes or times out; if our 2xx is not ACKed yet the BYE waits for the
    /// ACK, RFC 3261 §15), or 480 when not yet answered (`CallEnded` immediately).
    ///
    /// An unanswered outgoing call is cancelled (`OutgoingFailed` with `Cancelled`
    /// follows): CANCEL right away once a provisional arrived, otherwise with the first
    /// provisional, because a CANCEL must not overtake the INVITE (RFC 3261 §9.1); if
    /// none ever comes, Timer B ends it. A 2xx that still arrives is ACKed and BYE'd.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) -> Result<(), CallError> {
        if let Some(leg) = self.outgoing.get_mut(&call) {
            if leg.hangup {
                return Err(CallError::WrongState);
            }
            leg.hangup = true;
            if leg.provisional {
                self.send_cancel(now, call);
            }
            return Ok(());
        }
        let c = self.calls.get_mut(&call).ok_or(CallError::UnknownCall)?;
        match c.state {
            CallState::Incoming => {
                let key = c.invite_key.clone().ok_or(CallError::WrongState)?;
                self.respond_in_invite_tx(now, &key, 480, None)?;
                self.end_call(call, EndReason::LocalHangup);
                Ok(())
            }
            CallState::Answered if !c.hangup_after_ack => {
                c.hangup_after_ack = true;
                Ok(())
            }
            CallState::Confirmed => {
                self.send_bye(now, call, true);
                Ok(())
            }
            CallState::Answered | CallState::Terminating => Err(CallError::WrongState),
        }
    }

    /// Answers a pending re-INVITE: `Ok(sdp)` → 200 (retransmitted until ACK),
    /// `Err(status)` → that final error status (e.g. 488).
    pub fn answer_reinvite(
        &mut self,
        now: Instant,
        call: CallHandle,
        result: Result<String, u16>,
    ) -> Result<(), CallError> {
        let c = self.lookup(call)?;
        let key = c.reinvite.clone().ok_or(CallError::WrongState)?;
        let pending = self
            .server_txs
            .get(&key)
            .is_some_and(|s| s.tx.awaiting_final());
        if !pending {
            return Err(CallError::WrongState);
        }
        match result {
            Ok(sdp) => {
                let seq = self
                    .server_txs
                    .get(&key)
                    .and_then(|s| s.request.as_ref())
                    .and_then(|r| r.headers.cseq().ok())
                    .map(|c| c.seq)
                    .ok_or(CallError::WrongState)?;
                self.send_2xx(now, call, &key, seq, sdp.into_bytes(), false)?;
            }
            Err(status) => {
                if !(300..=699).contains(&status) {
                    return Err(CallError::InvalidStatus(status));
                }
                self.respond_in_invite_tx(now, &key, status, None)?;
            }
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.reinvite = None;
        }
        Ok(())
    }

    /// Blind transfer (RFC 3515): asks the peer of an established call, incoming or
    /// outgoing, to call `refer_to` (a sip:, sips: or tel: URI without headers) itself.
    /// Sends an in-dialog REFER with Refer-To and, when given, Referred-By (RFC 3892) as
    /// a non-INVITE client transaction (over UDP Timer E retransmits it, Timer F gives up
    /// after 64*T1). `ReferResponse` reports its outcome and `ReferNotify` the peer's
    /// progress; the call itself stays up until the application hangs up. One REFER at a
    /// time: another is refused until the first has its final response.
    pub fn refer(
        &mut self,
        now: Instant,
        call: CallHandle,
        refer_to: &str,
        referred_by: Option<&str>,
    ) -> Result<(), CallError> {
        let c = self.lookup(call)?;
        if c.state != CallState::Confirmed {
            return Err(CallError::WrongState);
        }
        if c.refer_pending.is_some() {
            return Err(CallError::ReferPending);
        }
        let target = refer_target(refer_to)?;
        let referrer = referred_by.map(referrer_uri).transpose()?;
        let transport = c.flow.transport;
        let via = self.local_via(transport);
        let (ua, contact) = (self.config.user_agent.clone(), self.contact(transport));
        let c = self.calls.get_mut(&call).ok_or(CallError::UnknownCall)?;
        let mut req = c.dialog.create_request(Method::Refer, &via);
        let seq = c.dialog.local_seq;
        req.headers.push("Refer-To", format!("<{target}>"));
        if let Some(by) = referrer {
            req.headers.push("Referred-By", format!("<{by}>"));
        }
        req.headers.push("User-Agent", ua);
        // REFER requires a Contact (RFC 3515 §2.4.1): the subscription's NOTIFYs go there.
        req.headers.push("Contact", contact);
        let flow = next_hop(c.flow, &c.dialog);
        // The transaction only fails on a missing Via branch, and we just wrote one.
        self.start_client_tx(now, req, flow, TxOwner::Refer { call, seq })
            .ok_or(CallError::WrongState)?;
        if let Some(c) = self.calls.get_mut(&call) {
            c.refer_pending = Some(seq);
            if c.refer_subscriptions.len() >= MAX_REFER_SUBSCRIPTIONS {
                c.refer_subscriptions.pop_front();
            }
            // The subscription exists from now on: its first NOTIFY may overtake the 202.
            c.refer_subscriptions.push_back(seq);
        }
        Ok(())
    }

    // ----- request handling -----------------------------------------------------

    fn handle_request(&mut self, now: Instant, flow: Flow, mut req: Request) {
        let Ok(top_via) = req.headers.top_via() else {
            // Malformed Via (RFC 4475 §3.1.2.1): answer 400 to the packet's
            // source with the Via copied verbatim, if there is one at all.
            self.stats.parse_errors += 1;
            if req.method != Method::Ack && req.headers.contains("Via") {
                let resp = self.response_to(&req.headers, 400, true);
                self.send_response_bytes(flow, resp.to_bytes());
            }
            return;
        };
        stamp_via(&mut req, &top_via, flow.remote);
        let flow = response_flow(flow, &top_via);
        if let Err(e) = req.validate() {
            self.stats.parse_errors += 1;
            if req.method != Method::Ack {
                let mut resp = self.response_to(&req.headers, 400, true);
                resp.reason = format!("Bad Request ({e})");
                let key = TransactionKey::for_request(&req).ok();
                self.respond_new_tx(now, flow, &req, key, resp);
            }
            return;
        }
        let Ok(key) = TransactionKey::for_request(&req) else {
            return;
        };
        if let Some(stx) = self.server_txs.get_mut(&key) {
            if req.method == Method::Ack {
                stx.tx.on_ack(now);
            } else if let Some(bytes) = stx.tx.on_retransmission() {
                let bytes = bytes.to_vec();
                self.stats.retransmissions += 1;
                self.send_response_bytes(flow, bytes);
            }
            return;
        }
        match req.method {
            Method::Ack => self.handle_2xx_ack(now, &req),
            Method::Cancel => self.handle_cancel(now, flow, &req, key),
            _ => {
                let max_forwards = req.headers.max_forwards().ok().flatten();
                if matches!(req.method, Method::Invite | Method::Options) && max_forwards == Some(0)
                {
                    let resp = self.response_to(&req.headers, 483, true);
                    self.respond_new_tx(now, flow, &req, Some(key), resp);
                    return;
                }
                if !matches!(req.uri.scheme(), "sip" | "sips" | "tel") {
                    let resp = self.response_to(&req.headers, 416, true);
                    self.respond_new_tx(now, flow, &req, Some(key), resp);
                    return;
                }
                match DialogId::for_incoming_request(&req) {
                    Ok(Some(id)) => self.handle_in_dialog(now, flow, req, key, id),
                    Ok(None) => self.handle_out_of_dialog(now, flow, req, key),
                    Err(_) => {}
                }
            }
        }
    }

    fn handle_out_of_dialog(
        &mut self,
        now: Instant,
        flow: Flow,
        req: Request,
        key: TransactionKey,
    ) {
        match req.method {
            Method::Invite => self.handle_new_invite(now, flow, req, key),
            Method::Options => {
                let resp = self.options_response(&req);
                self.respond_new_tx(now, flow, &req, Some(key), resp);
            }
            // A NOTIFY outside a dialog matches no subscription of ours (RFC 6665 §4.1.3).
            Method::Bye | Method::Info | Method::Notify => {
                let resp = self.response_to(&req.headers, 481, true);
                self.respond_new_tx(now, flow, &req, Some(key), resp);
            }
            Method::Refer => self.decline_refer(now, flow, &req, key, true),
            _ => self.reject_unsupported(now, flow, &req, key),
        }
    }

    /// 405 for methods we know but do not implement, 501 for unknown ones.
    fn reject_unsupported(&mut self, now: Instant, flow: Flow, req: &Request, key: TransactionKey) {
        let status = match req.method {
            Method::Other(_) => 501,
            _ => 405,
        };
        let mut resp = self.response_to(&req.headers, status, true);
        resp.headers.push("Allow", ALLOW);
        self.respond_new_tx(now, flow, req, Some(key), resp);
    }

    fn handle_new_invite(&mut self, now: Instant, flow: Flow, req: Request, key: TransactionKey) {
        let (Ok(call_id), Ok(from), Ok(cseq), Ok(top_via)) = (
            req.headers.call_id(),
            req.headers.from(),
            req.headers.cseq(),
            req.headers.top_via(),
        ) else {
            return;
        };
        let early_key = (
            call_id.to_string(),
            from.tag().unwrap_or_default().to_string(),
        );
        if let Some(&handle) = self.early.get(&early_key) {
            let Some(call) = self.calls.get(&handle) else {
                return;
            };
            if call.invite_seq == cseq.seq && call.invite_via == via_identity(&top_via) {
                // Retransmission after our 2xx ended the transaction: resend the 2xx.
                if let Some(p) = call.pending_ack.as_ref().filter(|p| p.initial) {
                    let bytes = p.bytes.clone();
                    self.stats.retransmissions += 1;
                    self.send_response_bytes(flow, bytes);
                }
            } else {
                // Same request via another path (RFC 3261 §8.2.2.2).
                let resp = self.response_to(&req.headers, 482, true);
                self.respond_new_tx(now, flow, &req, Some(key), resp);
            }
            return;
        }
        let required: Vec<String> = req.headers.list("Require").map(str::to_string).collect();
        if !required.is_empty() {
            let mut resp = self.response_to(&req.headers, 420, true);
            resp.headers.push("Unsupported", required.join(", "));
            self.respond_new_tx(now, flow, &req, Some(key), resp);
            return;
        }
        if self.active_calls() >= self.config.max_calls {
            self.stats.rejected_503 += 1;
            let mut resp = self.response_to(&req.headers, 503, true);
            resp.headers
                .push("Retry-After", self.config.retry_after_secs.to_string());
            self.respond_new_tx(now, flow, &req, Some(key), resp);
            return;
        }
        let offer = match extract_sdp(&req) {
            Ok(o) => o,
            Err(e) => {
                let status = match e {
                    BodyError::Unsupported(_) => 415,
                    BodyError::BadContentType | BodyError::Sdp(_) => 400,
                };
                let mut resp = self.response_to(&req.headers, status, true);
                if status == 415 {
                    resp.headers.push("Accept", "application/sdp");
                } else {
                    resp.reason = format!("Bad Request ({e})");
                }
                self.respond_new_tx(now, flow, &req, Some(key), resp);
                return;
            }
        };
        let local_tag = self.new_tag();
        let dialog = match Dialog::new_uas(&req, &local_tag, 0) {
            Ok(d) => d,
            Err(e) => {
                let mut resp = self.response_to(&req.headers, 400, true);
                resp.reason = format!("Bad Request ({e})");
                self.respond_new_tx(now, flow, &req, Some(key), resp);
                return;
            }
        };

        let mut warnings = 0;
        if !req.headers.contains("Contact") {
            warnings += 1;
        }
        if !req.headers.contains("Max-Forwards") {
            warnings += 1;
        }
        if top_via.rfc3261_branch().is_none() {
            warnings += 1;
        }
        let pai =
            req.headers
                .list("P-Asserted-Identity")
                .next()
                .and_then(|v| match NameAddr::parse(v, "P-Asserted-Identity") {
                    Ok(na) => Some(na.uri.to_string()),
                    Err(_) => {
                        warnings += 1;
                        None
                    }
                });
        let to_uri = req
            .headers
            .to()
            .map(|t| t.uri.to_string())
            .unwrap_or_default();

        let handle = CallHandle(self.next_call);
        self.next_call += 1;
        let trying = self.response_to(&req.headers, 100, false).to_bytes();
        let mut tx = ServerTransaction::new_invite(flow.transport.reliable(), self.config.timers);
        // A fresh INVITE transaction always accepts 100.
        let _ = tx.send_response(now, 100, trying.clone());
        self.send_response_bytes(flow, trying);

        let incoming = IncomingCall {
            call: handle,
            call_id: early_key.0.clone(),
            from: from.uri.to_string(),
            from_display: from.display_name.clone(),
            to: to_uri,
            p_asserted_identity: pai,
            remote: flow.remote,
            transport: flow.transport,
            offer,
            parse_warnings: warnings,
        };
        self.dialogs.insert(dialog.id.clone(), handle);
        self.early.insert(early_key.clone(), handle);
        self.calls.insert(
            handle,
            Call {
                state: CallState::Incoming,
                dialog,
                flow,
                invite_key: Some(key.clone()),
                invite_seq: cseq.seq,
                invite_via: via_identity(&top_via),
                early_key: Some(early_key),
                reinvite: None,
                pending_ack: None,
                hangup_after_ack: false,
                refer_pending: None,
                refer_subscriptions: VecDeque::new(),
            },
        );
        self.server_txs.insert(
            key,
            ServerTx {
                tx,
                flow,
                request: Some(req),
                call: Some(handle),
            },
        );
        self.events.push_back(Event::IncomingCall(incoming));
    }

    fn handle_cancel(&mut self, now: Instant, flow: Flow, req: &Request, key: TransactionKey) {
        let invite_key = key.with_method(Method::Invite);
        let Some(stx) = self.server_txs.get(&invite_key) else {
            let resp = self.response_to(&req.headers, 481, true);
            self.respond_new_tx(now, flow, req, Some(key), resp);
            return;
        };
        let pending = stx.tx.awaiting_final();
        let call = stx.call;
        // The 200 to CANCEL carries the same To tag as responses to the INVITE.
        let tag = call
            .and_then(|h| self.calls.get(&h))
            .map(|c| c.dialog.id.local_tag.clone());
        let ok = match tag {
            Some(tag) => self.response_to_tagged(&req.headers, 200, &tag),
            None => self.response_to(&req.headers, 200, true),
        };
        self.respond_new_tx(now, flow, req, Some(key), ok);
        if !pending {
            return;
        }
        // RFC 3261 §9.2: 487 for the INVITE.
        let _ = self.respond_in_invite_tx(now, &invite_key, 487, None);
        let Some(handle) = call else { return };
        let is_initial = self
            .calls
            .get(&handle)
            .is_some_and(|c| c.invite_key.as_ref() == Some(&invite_key));
        if is_initial {
            self.end_call(handle, EndReason::Cancelled);
        } else if let Some(c) = self.calls.get_mut(&handle) {
            c.reinvite = None;
        }
    }

    fn handle_2xx_ack(&mut self, now: Instant, req: &Request) {
        let Ok(Some(id)) = DialogId::for_incoming_request(req) else {
            return;
        };
        let Some(&handle) = self.dialogs.get(&id) else {
            return;
        };
        let Ok(cseq) = req.headers.cseq() else { return };
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let Some(pending) = call.pending_ack.as_ref().filter(|p| p.cseq == cseq.seq) else {
            return;
        };
        let initial = pending.initial;
        call.pending_ack = None;
        if !initial {
            return;
        }
        call.state = CallState::Confirmed;
        let hangup = call.hangup_after_ack;
        self.events.push_back(Event::CallConfirmed { call: handle });
        if hangup {
            self.send_bye(now, handle, true);
        }
    }

    fn handle_in_dialog(
        &mut self,
        now: Instant,
        flow: Flow,
        req: Request,
        key: TransactionKey,
        id: DialogId,
    ) {
        let Some(&handle) = self.dialogs.get(&id) else {
            let resp = self.response_to(&req.headers, 481, false);
            self.respond_new_tx(now, flow, &req, Some(key), resp);
            return;
        };
        let Ok(cseq) = req.headers.cseq() else { return };
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        // A retransmission of a re-INVITE we already answered (our 2xx was lost): resend that 2xx.
        // Answering 491 or 500 instead would make the peer give up and never ACK our 2xx.
        if req.method == Method::Invite {
            if let Some(p) = call
                .pending_ack
                .as_ref()
                .filter(|p| !p.initial && p.cseq == cseq.seq)
            {
                let bytes = p.bytes.clone();
                self.stats.retransmissions += 1;
                self.send_response_bytes(flow, bytes);
                return;
            }
        }
        if let Err(e) = call.dialog.accept_remote_cseq(cseq.seq) {
            tracing::debug!(call = handle.0, error = %e, "out-of-order in-dialog request");
            let resp = self.response_to(&req.headers, 500, false);
            self.respond_new_tx(now, flow, &req, Some(key), resp);
            return;
        }
        match req.method {
            Method::Bye => {
                let resp = self.response_to(&req.headers, 200, false);
                self.respond_new_tx(now, flow, &req, Some(key), resp);
                self.end_call_at(now, handle, EndReason::RemoteBye);
            }
            Method::Invite => self.handle_reinvite(now, flow, req, key, handle),
            Method::Info => {
                let resp = self.response_to(&req.headers, 200, false);
                self.respond_new_tx(now, flow, &req, Some(key), resp);
                if let Some((digit, duration_ms)) = parse_dtmf_info(&req) {
                    self.events.push_back(Event::DtmfInfo {
                        call: handle,
                        digit,
                        duration_ms,
                    });
                }
            }
            Method::Options => {
                let resp = self.options_response(&req);
                self.respond_new_tx(now, flow, &req, Some(key), resp);
            }
            Method::Notify => self.handle_notify(now, flow, &req, key, handle),
            Method::Refer => self.decline_refer(now, flow, &req, key, false),
            _ => self.reject_unsupported(now, flow, &req, key),
        }
    }

    /// The hotline transfers callers but is never transferred itself: a REFER from the
    /// peer is understood (it is in Allow) and declined (RFC 3515 §2.4.2).
    fn decline_refer(
        &mut self,
        now: Instant,
        flow: Flow,
        req: &Request,
        key: TransactionKey,
        tag: bool,
    ) {
        let resp = self.response_to(&req.headers, 603, tag);
        self.respond_new_tx(now, flow, req, Some(key), resp);
    }

    /// In-dialog NOTIFY (RFC 6665 §4.1.3). The only subscriptions we hold are the implicit
    /// ones of our REFERs (RFC 3515 §2.4.4): other packages get 489, a NOTIFY matching none
    /// of them 481.
    fn handle_notify(
        &mut self,
        now: Instant,
        flow: Flow,
        req: &Request,
        key: TransactionKey,
        handle: CallHandle,
    ) {
        let subscription = match notify_event(&req.headers) {
            None => Err((400, "Bad Request (malformed Event)")),
            Some(NotifyEvent::Other) => Err((489, "Bad Event")),
            Some(NotifyEvent::Refer { id }) => {
                let subs = self.calls.get(&handle).map(|c| &c.refer_subscriptions);
                // Without `id` the NOTIFY belongs to the first REFER (RFC 3515 §2.4.6); we
                // take the oldest we still listen to.
                let seq = match id {
                    Some(id) => subs.and_then(|s| s.iter().find(|s| s.to_string() == id)),
                    None => subs.and_then(|s| s.front()),
                };
                match (seq.copied(), subscription_terminated(&req.headers)) {
                    (None, _) => Err((481, "Subscription Does Not Exist")),
                    (Some(_), None) => Err((400, "Bad Request (missing Subscription-State)")),
                    (Some(seq), Some(terminated)) => Ok((seq, terminated)),
                }
            }
        };
        let (seq, terminated) = match subscription {
            Ok(s) => s,
            Err((status, reason)) => {
                let mut resp = self.response_to(&req.headers, status, false);
                resp.reason = reason.to_string();
                if status == 489 {
                    resp.headers.push("Allow-Events", REFER_EVENT);
                }
                self.respond_new_tx(now, flow, req, Some(key), resp);
                return;
            }
        };
        let resp = self.response_to(&req.headers, 200, false);
        self.respond_new_tx(now, flow, req, Some(key), resp);
        if terminated {
            if let Some(c) = self.calls.get_mut(&handle) {
                c.refer_subscriptions.retain(|&s| s != seq);
            }
        }
        self.events.push_back(Event::ReferNotify {
            call: handle,
            status: sipfrag_status(req),
            terminated,
        });
    }

    fn handle_reinvite(
        &mut self,
        now: Instant,
        flow: Flow,
        req: Request,
        key: TransactionKey,
        handle: CallHandle,
    ) {
        let Some(call) = self.calls.get(&handle) else {
            return;
        };
        let status = match call.state {
            CallState::Terminating => Some(481),
            // A second INVITE before our final to the first (RFC 3261 §14.2).
            CallState::Incoming => Some(500),
            _ if call.reinvite.is_some() || call.pending_ack.is_some() => Some(491),
            _ => None,
        };
        if let Some(status) = status {
            let mut resp = self.response_to(&req.headers, status, false);
            if status == 500 {
                resp.headers.push("Retry-After", "1");
            }
            self.respond_new_tx(now, flow, &req, Some(key), resp);
            return;
        }
        let offer = match extract_sdp(&req) {
            Ok(o) => o,
            Err(e) => {
                let status = if matches!(e, BodyError::Unsupported(_)) {
                    415
                } else {
                    400
                };
                let resp = self.response_to(&req.headers, status, false);
                self.respond_new_tx(now, flow, &req, Some(key), resp);
                return;
            }
        };
        let trying = self.response_to(&req.headers, 100, false).to_bytes();
        let mut tx = ServerTransaction::new_invite(flow.transport.reliable(), self.config.timers);
        let _ = tx.send_response(now, 100, trying.clone());
        self.send_response_bytes(flow, trying);
        if let Some(call) = self.calls.get_mut(&handle) {
            call.dialog.refresh_target(&req.headers);
            call.reinvite = Some(key.clone());
        }
        self.server_txs.insert(
            key,
            ServerTx {
                tx,
                flow,
                request: Some(req),
                call: Some(handle),
            },
        );
        self.events.push_back(Event::ReInvite {
            call: handle,
            offer,
        });
    }

    // ----- responses to our requests ------------------------------------------

    fn handle_response(&mut self, now: Instant, _flow: Flow, resp: Response) {
        let Ok(key) = ClientKey::for_response(&resp) else {
            self.stats.parse_errors += 1;
            return;
        };
        let Some(ctx) = self.client_txs.get_mut(&key) else {
            if key.method == Method::Invite && (200..300).contains(&resp.status) {
                self.handle_late_2xx(now, &key, &resp);
            }
            // Otherwise a stray or late response (RFC 3261 §18.1.2): drop.
            return;
        };
        let action = ctx.tx.on_response(now, &resp);
        let flow = ctx.flow;
        let ack = ctx.tx.ack().map(<[u8]>::to_vec);
        let owner = ctx.owner;
        let finished = ctx.tx.state() == ClientState::Terminated;
        match action {
            ClientResponseAction::Deliver | ClientResponseAction::DeliverAndAck => {
                if let (ClientResponseAction::DeliverAndAck, Some(ack)) = (action, ack) {
                    self.send_request_bytes(flow, ack);
                }
                match owner {
                    TxOwner::Bye(call) if resp.status >= 200 => {
                        if let Some(ctx) = self.client_txs.get_mut(&key) {
                            ctx.owner = TxOwner::Bye(None);
                        }
                        if let Some(handle) = call {
                            // Any final response ends the call: 481/408 mean it is gone anyway.
                            self.end_call_at(now, handle, EndReason::LocalHangup);
                        }
                    }
                    TxOwner::Invite(handle) => self.outgoing_response(now, handle, &key, &resp),
                    TxOwner::Refer { call, seq } if resp.status >= 200 => {
                        self.refer_completed(call, seq, resp.status);
                    }
                    TxOwner::Bye(_) | TxOwner::Cancel | TxOwner::Refer { .. } => {}
                }
            }
            ClientResponseAction::ResendAck => {
                if let Some(ack) = ack {
                    self.stats.retransmissions += 1;
                    self.send_request_bytes(flow, ack);
                }
            }
            ClientResponseAction::Absorb => {}
        }
        if finished {
            self.client_txs.remove(&key);
        }
    }

    /// A response from our outgoing INVITE's client transaction (retransmissions are
    /// already absorbed, the ACK for a non-2xx final already sent).
    fn outgoing_response(
        &mut self,
        now: Instant,
        handle: CallHandle,
        key: &ClientKey,
        resp: &Response,
    ) {
        let status = resp.status;
        if status < 200 {
            let Some(leg) = self.outgoing.get_mut(&handle) else {
                return;
            };
            leg.provisional = true;
            if leg.hangup {
                if leg.cancel_deadline.is_none() {
                    self.send_cancel(now, handle);
                }
                return;
            }
            if status > 100 {
                self.events.push_back(Event::OutgoingProgress {
                    call: handle,
                    status,
                    // Early media is a courtesy: an SDP we cannot parse is simply not offered.
                    early_media: extract_response_sdp(resp).ok().flatten(),
                });
            }
            return;
        }
        if status < 300 {
            self.outgoing_answered(now, handle, key, resp);
            return;
        }
        let Some(leg) = self.outgoing.remove(&handle) else {
            return;
        };
        let reason = if leg.hangup {
            OutgoingFailure::Cancelled
        } else {
            OutgoingFailure::Rejected
        };
        self.events.push_back(Event::OutgoingFailed {
            call: handle,
            status: Some(status),
            reason,
        });
    }

    /// The first 2xx to our INVITE: the dialog is created from it (RFC 3261 §12.1.2), so
    /// a To tag different from an earlier 18x's is fine. ACK always; BYE right after when
    /// the application already hung up or the answer is unusable.
    fn outgoing_answered(
        &mut self,
        now: Instant,
        handle: CallHandle,
        key: &ClientKey,
        resp: &Response,
    ) {
        let Some(leg) = self.outgoing.remove(&handle) else {
            return;
        };
        let status = Some(resp.status);
        let mut dialog = match Dialog::new_uac(&leg.invite, resp) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(call = handle.0, error = %e, "2xx cannot establish a dialog");
                self.remember_accepted(now, key, &leg.invite, leg.flow);
                self.events.push_back(Event::OutgoingFailed {
                    call: handle,
                    status,
                    reason: OutgoingFailure::InvalidDialog(e),
                });
                return;
            }
        };
        self.remember_accepted(now, key, &leg.invite, leg.flow);
        self.send_2xx_ack(key, &leg.invite, &dialog, leg.flow);
        let answer = if leg.hangup {
            Err(OutgoingFailure::Cancelled)
        } else {
            match extract_response_sdp(resp) {
                Ok(Some(sd)) if has_active_audio(&sd) => Ok(sd),
                Ok(Some(_)) => Err(OutgoingFailure::BadAnswer(AnswerError::NoAudio)),
                Ok(None) => Err(OutgoingFailure::MissingAnswer),
                Err(e) => Err(OutgoingFailure::BadAnswer(AnswerError::Body(e))),
            }
        };
        match answer {
            Ok(answer) => {
                let invite_seq = dialog.local_seq;
                self.dialogs.insert(dialog.id.clone(), handle);
                self.calls.insert(
                    handle,
                    Call {
                        // Our ACK is the confirmation (RFC 3261 §13.2.2.4).
                        state: CallState::Confirmed,
                        dialog,
                        flow: leg.flow,
                        invite_key: None,
                        invite_seq,
                        invite_via: String::new(),
                        early_key: None,
                        reinvite: None,
                        pending_ack: None,
                        hangup_after_ack: false,
                        refer_pending: None,
                        refer_subscriptions: VecDeque::new(),
                    },
                );
                self.events.push_back(Event::OutgoingAnswered {
                    call: handle,
                    answer,
                });
            }
            Err(reason) => {
                self.send_bye_on(now, &mut dialog, leg.flow);
                self.events.push_back(Event::OutgoingFailed {
                    call: handle,
                    status,
                    reason,
                });
            }
        }
    }

    /// Final outcome of our REFER: a response or Timer F (408). A refused REFER created no
    /// subscription. Nothing is reported for a call that has already ended.
    fn refer_completed(&mut self, handle: CallHandle, seq: u32, status: u16) {
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        if c.refer_pending == Some(seq) {
            c.refer_pending = None;
        }
        if status >= 300 {
            c.refer_subscriptions.retain(|&s| s != seq);
        }
        self.events.push_back(Event::ReferResponse {
            call: handle,
            status,
        });
    }

    /// A 2xx after our INVITE transaction ended: a retransmission (its ACK was lost or
    /// is still on the way) gets the same ACK again; a new fork's 2xx is ACKed and its
    /// dialog ended with BYE, since the call already has its answer (RFC 3261 §13.2.2.4).
    fn handle_late_2xx(&mut self, now: Instant, key: &ClientKey, resp: &Response) {
        let Some(acc) = self.accepted.get(key) else {
            return;
        };
        let Ok(Some(id)) = DialogId::for_incoming_response(resp) else {
            return;
        };
        if let Some((hop, bytes)) = acc.acks.get(&id.remote_tag) {
            let (hop, bytes) = (*hop, bytes.clone());
            self.stats.retransmissions += 1;
            self.send_request_bytes(hop, bytes);
            return;
        }
        if acc.acks.len() >= MAX_FORKS {
            return;
        }
        let (invite, flow) = (acc.invite.clone(), acc.flow);
        let Ok(mut dialog) = Dialog::new_uac(&invite, resp) else {
            return;
        };
        self.send_2xx_ack(key, &invite, &dialog, flow);
        self.send_bye_on(now, &mut dialog, flow);
    }

    // ----- timers -------------------------------------------------------------

    fn server_timers(&mut self, now: Instant) {
        let due: Vec<TransactionKey> = self
            .server_txs
            .iter()
            .filter(|(_, s)| s.tx.poll_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let mut remove = false;
            while let Some(ev) = self
                .server_txs
                .get_mut(&key)
                .and_then(|s| s.tx.handle_timeout(now))
            {
                match ev {
                    ServerTimerEvent::Retransmit => {
                        let retransmit = self
                            .server_txs
                            .get(&key)
                            .and_then(|s| s.tx.last_response().map(|b| (s.flow, b.to_vec())));
                        if let Some((flow, bytes)) = retransmit {
                            self.stats.retransmissions += 1;
                            self.send_response_bytes(flow, bytes);
                        }
                    }
                    ServerTimerEvent::AckTimeout | ServerTimerEvent::Terminated => remove = true,
                }
            }
            if remove {
                self.server_txs.remove(&key);
            }
        }
    }

    fn client_timers(&mut self, now: Instant) {
        let due: Vec<ClientKey> = self
            .client_txs
            .iter()
            .filter(|(_, c)| c.tx.poll_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let mut remove = false;
            while let Some(ev) = self
                .client_txs
                .get_mut(&key)
                .and_then(|c| c.tx.handle_timeout(now))
            {
                match ev {
                    ClientTimerEvent::Retransmit => {
                        if let Some(c) = self.client_txs.get(&key) {
                            let (flow, bytes) = (c.flow, c.tx.request_bytes().to_vec());
                            self.stats.retransmissions += 1;
                            self.send_request_bytes(flow, bytes);
                        }
                    }
                    ClientTimerEvent::Timeout => {
                        let owner = self.client_txs.get_mut(&key).map(|c| {
                            let owner = c.owner;
                            if let TxOwner::Bye(_) = owner {
                                c.owner = TxOwner::Bye(None);
                            }
                            owner
                        });
                        match owner {
                            Some(TxOwner::Bye(Some(handle))) => {
                                self.end_call_at(now, handle, EndReason::TransactionTimeout);
                            }
                            Some(TxOwner::Invite(handle)) => {
                                self.abandon_outgoing(now, handle, OutgoingFailure::Timeout);
                            }
                            Some(TxOwner::Refer { call, seq }) => {
                                self.refer_completed(call, seq, 408);
                            }
                            _ => {}
                        }
                        remove = true;
                    }
                    ClientTimerEvent::Terminated => remove = true,
                }
            }
            if remove {
                self.client_txs.remove(&key);
            }
        }
    }

    fn call_timers(&mut self, now: Instant) {
        let due: Vec<CallHandle> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.pending_ack
                    .as_ref()
                    .and_then(|p| p.timer.poll_timeout())
                    .is_some_and(|t| t <= now)
            })
            .map(|(h, _)| *h)
            .collect();
        for handle in due {
            while let Some(call) = self.calls.get_mut(&handle) {
                let Some(pending) = call.pending_ack.as_mut() else {
                    break;
                };
                match pending.timer.handle_timeout(now) {
                    None => break,
                    Some(TwoXxEvent::Retransmit) => {
                        let (flow, bytes) = (pending.flow, pending.bytes.clone());
                        self.stats.retransmissions += 1;
                        self.send_response_bytes(flow, bytes);
                    }
                    Some(TwoXxEvent::GiveUp) => {
                        // RFC 3261 §13.3.1.4: confirm the dialog, then end the session with BYE.
                        call.pending_ack = None;
                        self.send_bye(now, handle, false);
                        self.end_call_at(now, handle, EndReason::AckTimeout);
                        break;
                    }
                }
            }
        }
    }

    /// Outgoing INVITEs whose CANCEL got no final response in 64*T1 (RFC 3261 §9.1),
    /// and Accepted records past 64*T1 (RFC 6026 Timer M).
    fn outgoing_timers(&mut self, now: Instant) {
        let due: Vec<CallHandle> = self
            .outgoing
            .iter()
            .filter(|(_, l)| l.cancel_deadline.is_some_and(|t| t <= now))
            .map(|(h, _)| *h)
            .collect();
        for handle in due {
            if let Some(key) = self.outgoing.get(&handle).map(|l| l.key.clone()) {
                self.client_txs.remove(&key);
            }
            self.abandon_outgoing(now, handle, OutgoingFailure::Cancelled);
        }
        self.accepted.retain(|_, a| a.until > now);
    }

    /// Gives up on an unanswered outgoing call. A 2xx may still come (a slow callee, a
    /// CANCEL that was lost): the Accepted record gets it ACKed and BYE'd.
    fn abandon_outgoing(&mut self, now: Instant, handle: CallHandle, reason: OutgoingFailure) {
        let Some(leg) = self.outgoing.remove(&handle) else {
            return;
        };
        self.remember_accepted(now, &leg.key, &leg.invite, leg.flow);
        let reason = if leg.hangup {
            OutgoingFailure::Cancelled
        } else {
            reason
        };
        self.events.push_back(Event::OutgoingFailed {
            call: handle,
            status: None,
            reason,
        });
    }

    // ----- helpers --------------------------------------------------------------

    /// A call the application may command; outgoing calls before their answer exist
    /// but accept only `hangup`.
    fn lookup(&self, call: CallHandle) -> Result<&Call, CallError> {
        match self.calls.get(&call) {
            Some(c) => Ok(c),
            None if self.outgoing.contains_key(&call) => Err(CallError::WrongState),
            None => Err(CallError::UnknownCall),
        }
    }

    /// Our Via for a new client transaction: fresh branch, and `rport` so responses
    /// come back through NAT to the port we sent from (RFC 3581).
    fn local_via(&mut self, transport: Transport) -> Via {
        let branch = self.new_branch();
        let mut via = Via::new(
            transport.via_transport(),
            self.local_host(),
            Some(self.local_port(transport)),
            &branch,
        );
        via.set_param("rport", None);
        via
    }

    /// Sends `req` and keeps its client transaction; `None` when `req` has no branch.
    fn start_client_tx(
        &mut self,
        now: Instant,
        req: Request,
        flow: Flow,
        owner: TxOwner,
    ) -> Option<ClientKey> {
        let tx =
            ClientTransaction::new(now, req, flow.transport.reliable(), self.config.timers).ok()?;
        let key = tx.key().clone();
        self.send_request_bytes(flow, tx.request_bytes().to_vec());
        self.client_txs
            .insert(key.clone(), ClientTx { tx, flow, owner });
        Some(key)
    }

    /// CANCEL for an outgoing call's INVITE, on the INVITE's flow (RFC 3261 §9.1).
    fn send_cancel(&mut self, now: Instant, handle: CallHandle) {
        let deadline = now + self.config.timers.sanitized().timeout();
        let Some(leg) = self.outgoing.get_mut(&handle) else {
            return;
        };
        leg.cancel_deadline = Some(deadline);
        let (cancel, flow) = (build_cancel(&leg.invite), leg.flow);
        self.start_client_tx(now, cancel, flow, TxOwner::Cancel);
    }

    fn remember_accepted(&mut self, now: Instant, key: &ClientKey, invite: &Request, flow: Flow) {
        let until = now + self.config.timers.sanitized().timeout();
        self.accepted
            .entry(key.clone())
            .or_insert_with(|| Accepted {
                until,
                invite: invite.clone(),
                flow,
                acks: HashMap::new(),
            });
    }

    /// ACK for a 2xx (RFC 3261 §13.2.2.4): built by the dialog (CSeq number of the
    /// INVITE, Request-URI and Route from the 2xx's Contact and Record-Route), in its
    /// own transaction (fresh branch), sent to the dialog's next hop. Kept in the
    /// Accepted record for 2xx retransmissions.
    fn send_2xx_ack(&mut self, key: &ClientKey, invite: &Request, dialog: &Dialog, flow: Flow) {
        let seq = invite.headers.cseq().map_or(dialog.local_seq, |c| c.seq);
        let via = self.local_via(flow.transport);
        let bytes = dialog.create_ack(seq, &via).to_bytes();
        let hop = next_hop(flow, dialog);
        self.send_request_bytes(hop, bytes.clone());
        if let Some(acc) = self.accepted.get_mut(key) {
            acc.acks.insert(dialog.id.remote_tag.clone(), (hop, bytes));
        }
    }

    fn new_tag(&mut self) -> String {
        hex_u64(self.rng.next_u64())
    }

    fn new_branch(&mut self) -> String {
        format!("{MAGIC_COOKIE}{}", hex_u64(self.rng.next_u64()))
    }

    fn local_host(&self) -> Host {
        let h = &self.config.contact_host;
        let bracketed = if h.contains(':') && !h.starts_with('[') {
            format!("[{h}]")
        } else {
            h.clone()
        };
        Host::parse(&bracketed).unwrap_or_else(|_| Host::Domain(h.clone()))
    }

    fn local_port(&self, transport: Transport) -> u16 {
        match transport {
            Transport::Udp => self.config.udp_port,
            Transport::Tcp => self.config.tcp_port,
        }
    }

    fn contact(&self, transport: Transport) -> String {
        let host = self.local_host();
        let port = self.local_port(transport);
        match transport {
            Transport::Udp => format!("<sip:{host}:{port}>"),
            Transport::Tcp => format!("<sip:{host}:{port};transport=tcp>"),
        }
    }

    /// Response skeleton with Server header; `tag` adds a fresh To tag when missing.
    fn response_to(&mut self, h: &Headers, status: u16, tag: bool) -> Response {
        let to_tag = tag.then(|| self.new_tag());
        let mut resp = Response::from_request_headers(h, status, to_tag.as_deref());
        resp.headers.push("Server", self.config.user_agent.clone());
        resp
    }

    fn response_to_tagged(&self, h: &Headers, status: u16, tag: &str) -> Response {
        let mut resp = Response::from_request_headers(h, status, Some(tag));
        resp.headers.push("Server", self.config.user_agent.clone());
        resp
    }

    fn options_response(&mut self, req: &Request) -> Response {
        let mut resp = self.response_to(&req.headers, 200, true);
        resp.headers.push("Allow", ALLOW);
        resp.headers.push("Accept", ACCEPT);
        resp.headers.push("Supported", "");
        resp
    }

    /// Sends a response and, when the request is identifiable, keeps a server
    /// transaction so retransmissions of the request are answered identically.
    fn respond_new_tx(
        &mut self,
        now: Instant,
        flow: Flow,
        req: &Request,
        key: Option<TransactionKey>,
        resp: Response,
    ) {
        let bytes = resp.to_bytes();
        self.send_response_bytes(flow, bytes.clone());
        let Some(key) = key else { return };
        // Out-of-dialog non-INVITE requests (OPTIONS pings, probes, junk) are answered statelessly, as
        // proxies' stateless replies do: a retransmission simply gets the same answer again, and a flood
        // leaves no transaction state behind to hold memory for 32 s and slow every timer scan.
        let in_dialog = req.headers.to().ok().is_some_and(|to| to.tag().is_some());
        if req.method != Method::Invite && !in_dialog {
            return;
        }
        let reliable = flow.transport.reliable();
        let mut tx = if req.method == Method::Invite {
            ServerTransaction::new_invite(reliable, self.config.timers)
        } else {
            ServerTransaction::new_non_invite(reliable, self.config.timers)
        };
        if tx.send_response(now, resp.status, bytes).is_ok()
            && tx.state() != ServerState::Terminated
        {
            self.server_txs.insert(
                key,
                ServerTx {
                    tx,
                    flow,
                    request: None,
                    call: None,
                },
            );
        }
    }

    /// Sends a response inside an existing INVITE server transaction (our tag, Contact).
    fn respond_in_invite_tx(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        status: u16,
        body: Option<Vec<u8>>,
    ) -> Result<(), CallError> {
        let stx = self.server_txs.get(key).ok_or(CallError::WrongState)?;
        if !stx.tx.awaiting_final() {
            return Err(CallError::WrongState);
        }
        let req = stx.request.as_ref().ok_or(CallError::WrongState)?;
        let flow = stx.flow;
        let tag = stx
            .call
            .and_then(|h| self.calls.get(&h))
            .map(|c| c.dialog.id.local_tag.clone())
            .ok_or(CallError::WrongState)?;
        let mut resp = self.response_to_tagged(&req.headers, status, &tag);
        if status < 300 {
            resp.headers.push("Contact", self.contact(flow.transport));
            copy_record_route(req, &mut resp);
        }
        if let Some(body) = body.filter(|b| !b.is_empty()) {
            resp.headers.push("Content-Type", "application/sdp");
            resp.body = body;
        }
        let bytes = resp.to_bytes();
        let stx = self.server_txs.get_mut(key).ok_or(CallError::WrongState)?;
        stx.tx
            .send_response(now, status, bytes.clone())
            .map_err(|_| CallError::WrongState)?;
        let terminated = stx.tx.state() == ServerState::Terminated;
        self.send_response_bytes(flow, bytes);
        if terminated {
            self.server_txs.remove(key);
        }
        Ok(())
    }

    fn send_2xx(
        &mut self,
        now: Instant,
        call: CallHandle,
        key: &TransactionKey,
        seq: u32,
        sdp: Vec<u8>,
        initial: bool,
    ) -> Result<(), CallError> {
        let stx = self.server_txs.get(key).ok_or(CallError::WrongState)?;
        let req = stx.request.as_ref().ok_or(CallError::WrongState)?;
        let c = self.calls.get(&call).ok_or(CallError::UnknownCall)?;
        let flow = stx.flow;
        let mut resp = self.response_to_tagged(&req.headers, 200, &c.dialog.id.local_tag);
        resp.headers.push("Contact", self.contact(flow.transport));
        copy_record_route(req, &mut resp);
        resp.headers.push("Allow", ALLOW);
        resp.headers.push("Supported", "");
        if !sdp.is_empty() {
            resp.headers.push("Content-Type", "application/sdp");
            resp.body = sdp;
        }
        let bytes = resp.to_bytes();
        let stx = self.server_txs.get_mut(key).ok_or(CallError::WrongState)?;
        stx.tx
            .send_response(now, 200, bytes.clone())
            .map_err(|_| CallError::WrongState)?;
        self.server_txs.remove(key);
        self.send_response_bytes(flow, bytes.clone());
        let timers = self.config.timers;
        if let Some(c) = self.calls.get_mut(&call) {
            c.pending_ack = Some(PendingAck {
                // RFC 3261 §13.3.1.4: the 2xx is retransmitted even over TCP, because the ACK is
                // end-to-end and a later hop towards the caller may be UDP.
                timer: TwoXxRetransmit::new(now, false, timers),
                flow,
                bytes,
                cseq: seq,
                initial,
            });
        }
        Ok(())
    }

    /// Sends BYE in the call's dialog. With `report`, the call ends (and the
    /// event fires) when the BYE completes; otherwise the caller ends it.
    fn send_bye(&mut self, now: Instant, handle: CallHandle, report: bool) {
        let Some(transport) = self.calls.get(&handle).map(|c| c.flow.transport) else {
            return;
        };
        let via = self.local_via(transport);
        let (ua, contact) = (self.config.user_agent.clone(), self.contact(transport));
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let req = bye_request(&mut call.dialog, &via, ua, contact);
        call.state = CallState::Terminating;
        let flow = next_hop(call.flow, &call.dialog);
        self.start_client_tx(now, req, flow, TxOwner::Bye(report.then_some(handle)));
    }

    /// BYE for a dialog no call owns: a 2xx we cannot use, or one from an extra fork.
    fn send_bye_on(&mut self, now: Instant, dialog: &mut Dialog, flow: Flow) {
        let via = self.local_via(flow.transport);
        let (ua, contact) = (self.config.user_agent.clone(), self.contact(flow.transport));
        let req = bye_request(dialog, &via, ua, contact);
        let hop = next_hop(flow, dialog);
        self.start_client_tx(now, req, hop, TxOwner::Bye(None));
    }

    /// Ends a call, first answering any of its INVITEs still waiting for a final
    /// response with 487 (RFC 3261 §15.1.2), so no transaction is left dangling.
    fn end_call_at(&mut self, now: Instant, handle: CallHandle, reason: EndReason) {
        let pending: Vec<TransactionKey> = self
            .server_txs
            .iter()
            .filter(|(_, s)| s.call == Some(handle) && s.tx.awaiting_final())
            .map(|(k, _)| k.clone())
            .collect();
        for key in pending {
            let _ = self.respond_in_invite_tx(now, &key, 487, None);
        }
        self.end_call(handle, reason);
    }

    fn end_call(&mut self, handle: CallHandle, reason: EndReason) {
        let Some(call) = self.calls.remove(&handle) else {
            return;
        };
        self.dialogs.remove(&call.dialog.id);
        if let Some(key) = &call.early_key {
            self.early.remove(key);
        }
        for stx in self.server_txs.values_mut() {
            if stx.call == Some(handle) {
                stx.call = None;
            }
        }
        self.events.push_back(Event::CallEnded {
            call: handle,
            reason,
        });
    }

    fn send_response_bytes(&mut self, flow: Flow, payload: Vec<u8>) {
        self.stats.responses_sent += 1;
        self.push_transmit(flow, payload);
    }

    fn send_request_bytes(&mut self, flow: Flow, payload: Vec<u8>) {
        self.stats.requests_sent += 1;
        self.push_transmit(flow, payload);
    }

    fn push_transmit(&mut self, flow: Flow, payload: Vec<u8>) {
        self.transmits.push_back(Transmit {
            transport: flow.transport,
            local: flow.local,
            remote: flow.remote,
            payload,
        });
    }

    /// 400 (or 505) for a message that failed to parse, if enough can be salvaged
    /// to address a response; otherwise the message is dropped.
    fn reply_to_garbage(&mut self, flow: Flow, data: &[u8], err: &ParseError) {
        let Some((method, mut headers)) = salvage_request_headers(data) else {
            return;
        };
        if method == "ACK" {
            return;
        }
        if !headers.contains("Via") {
            return;
        }
        if let Ok(mut via) = headers.top_via() {
            stamp(&mut via, flow.remote);
            if let Some(first) = headers.first_mut("Via") {
                *first = via.to_string();
            }
        }
        let status = match err {
            ParseError::UnsupportedVersion(_) => 505,
            _ => 400,
        };
        let mut resp = self.response_to(&headers, status, true);
        if status == 400 {
            resp.reason = format!("Bad Request ({err})");
        }
        self.send_response_bytes(flow, resp.to_bytes());
    }
}

fn bye_request(dialog: &mut Dialog, via: &Via, ua: String, contact: String) -> Request {
    let mut req = dialog.create_request(Method::Bye, via);
    req.headers.push("User-Agent", ua);
    req.headers.push("Contact", contact);
    req
}

/// A Refer-To target: a sip:/sips: URI or a tel: number (RFC 3966), without headers.
fn refer_target(s: &str) -> Result<Uri, CallError> {
    let uri = Uri::parse(s).map_err(|_| CallError::InvalidReferTo)?;
    match &uri {
        Uri::Sip(u) if u.headers.is_some() => Err(CallError::ReferToHeaders),
        Uri::Sip(_) => Ok(uri),
        Uri::Other { scheme, rest } if scheme.eq_ignore_ascii_case("tel") => {
            if rest.contains('?') {
                Err(CallError::ReferToHeaders)
            } else if is_tel_number(rest) {
                Ok(uri)
            } else {
                Err(CallError::InvalidReferTo)
            }
        }
        Uri::Other { .. } => Err(CallError::InvalidReferTo),
    }
}

/// RFC 3966 `telephone-subscriber`, checked just far enough that it has digits and
/// cannot break out of the `<...>` it is sent in.
fn is_tel_number(s: &str) -> bool {
    let number = s.split(';').next().unwrap_or_default();
    number.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:&+$;=%#".contains(&b))
}

/// A Referred-By URI (RFC 3892 allows any scheme); without headers, and nothing that
/// would end the `<...>` it is sent in.
fn referrer_uri(s: &str) -> Result<Uri, CallError> {
    let uri = Uri::parse(s).map_err(|_| CallError::InvalidReferredBy)?;
    let safe = match &uri {
        Uri::Sip(u) => u.headers.is_none(),
        Uri::Other { rest, .. } => !rest.bytes().any(|b| b"<>\"?".contains(&b)),
    };
    if safe {
        Ok(uri)
    } else {
        Err(CallError::InvalidReferredBy)
    }
}

/// The `Event` header of a NOTIFY (RFC 6665 §8.2.1).
enum NotifyEvent {
    /// The REFER package; `id` names the REFER by its CSeq number (RFC 3515 §2.4.6).
    Refer {
        id: Option<String>,
    },
    Other,
}

/// `None` for a missing, repeated or malformed Event header. Package names and `id`
/// compare byte by byte (RFC 6665 §8.2.1), so `Refer` is another package.
fn notify_event(h: &Headers) -> Option<NotifyEvent> {
    let value = h.single("Event").ok()?;
    let (package, params) = match value.split_once(';') {
        Some((p, rest)) => (p.trim(), parse_params(rest)?),
        None => (value.trim(), Vec::new()),
    };
    if !is_token(package) {
        return None;
    }
    if package != REFER_EVENT {
        return Some(NotifyEvent::Other);
    }
    let id = match find_param(&params, "id") {
        Some(p) => Some(p.value.clone().filter(|v| is_token(v))?),
        None => None,
    };
    Some(NotifyEvent::Refer { id })
}

/// Whether `Subscription-State` says `terminated`; `None` when it is missing or malformed
/// (it is mandatory in NOTIFY, RFC 6665 §4.1.3).
fn subscription_terminated(h: &Headers) -> Option<bool> {
    let value = h.single("Subscription-State").ok()?;
    let state = value.split(';').next().unwrap_or_default().trim();
    is_token(state).then(|| state.eq_ignore_ascii_case("terminated"))
}

/// An answer we can bridge must keep at least one audio stream (RFC 3264 §6: port 0
/// rejects a stream). Codec checks need the local capabilities and are left to the
/// application.
fn has_active_audio(sd: &sdp::SessionDescription) -> bool {
    sd.media
        .iter()
        .any(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)
}

/// Dialog-creating responses echo Record-Route in order (RFC 3261 §12.1.1), so
/// the peer builds the same route set we did.
fn copy_record_route(req: &Request, resp: &mut Response) {
    for rr in req.headers.get_all("Record-Route") {
        resp.headers.push("Record-Route", rr);
    }
}

/// RFC 3261 §18.2.1 / RFC 3581: record where the request really came from.
fn stamp(via: &mut Via, source: SocketAddr) {
    let ip = source.ip();
    let rport_requested = via.rport().is_some();
    if via.host.ip() != Some(ip) || rport_requested {
        via.set_param("received", Some(ip.to_string()));
    }
    if rport_requested {
        via.set_param("rport", Some(source.port().to_string()));
    }
}

/// Where responses go (RFC 3261 §18.2.2, RFC 3581): over UDP, to the source address and, unless the
/// client asked for `rport`, to the port in its Via sent-by (5060 by default): a peer may send from an
/// ephemeral port yet listen only on its advertised one. TCP answers on the same connection.
fn response_flow(flow: Flow, top: &Via) -> Flow {
    if flow.transport != Transport::Udp || top.rport().is_some() {
        return flow;
    }
    let port = top.port.unwrap_or(5060);
    Flow {
        remote: SocketAddr::new(flow.remote.ip(), port),
        ..flow
    }
}

fn stamp_via(req: &mut Request, top: &Via, source: SocketAddr) {
    let mut via = top.clone();
    stamp(&mut via, source);
    if via != *top {
        if let Some(first) = req.headers.first_mut("Via") {
            *first = via.to_string();
        }
    }
}

/// Destination of in-dialog requests: the first route or the remote target when
/// it is an IP literal of the call's address family (sans-IO cannot resolve
/// names), otherwise along the call's flow (where it arrived from, or where we
/// sent our INVITE). TCP always reuses the call's connection.
fn next_hop(flow: Flow, dialog: &Dialog) -> Flow {
    if flow.transport == Transport::Tcp {
        return flow;
    }
    let target = dialog
        .route_set
        .first()
        .map(|r| &r.uri)
        .unwrap_or(&dialog.remote_target);
    let addr = match target {
        Uri::Sip(u) => u
            .host
            .ip()
            .filter(|ip| ip.is_ipv4() == flow.local.is_ipv4() && !ip.is_unspecified())
            .map(|ip| SocketAddr::new(ip, u.port.unwrap_or(5060))),
        Uri::Other { .. } => None,
    };
    Flow {
        remote: addr.unwrap_or(flow.remote),
        ..flow
    }
}
