//! RFC 3261 §17 transaction state machines on caller-supplied time.
//!
//! Each transaction owns its timers and the bytes it may have to resend; the
//! owner drives it with `handle_*` calls and asks `poll_timeout` for the next
//! deadline (quinn-proto style). Transactions never build responses themselves —
//! except the ACK for a non-2xx final, which RFC 3261 §17.1.1.3 assigns to the
//! INVITE client transaction.

use std::time::{Duration, Instant};

use crate::header::{Method, Via};
use crate::message::{ParseError, Request, Response};

/// Base timer values (RFC 3261 §17.1.1.1, table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; drives retransmission and the 64*T1 timeouts.
    pub t1: Duration,
    /// Cap on the retransmission interval for non-INVITE requests and responses.
    pub t2: Duration,
    /// How long the network may hold a message.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// Clamps configured values: zero timers would make retransmission loops spin,
    /// absurdly large ones would overflow `Instant` arithmetic.
    pub(crate) fn sanitized(self) -> Self {
        let min = Duration::from_millis(1);
        let max = Duration::from_secs(600);
        let t1 = self.t1.clamp(min, max);
        Self {
            t1,
            t2: self.t2.clamp(t1, max),
            t4: self.t4.min(max),
        }
    }

    /// Timers B, F, H and J, and the 2xx give-up time.
    pub fn timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// Timer D lower bound for unreliable transports (RFC 3261 §17.1.1.2).
const TIMER_D_UNRELIABLE: Duration = Duration::from_secs(32);

/// Server transaction identity (RFC 3261 §17.2.3), with RFC 2543 fallback.
///
/// ACK is keyed as INVITE so it finds the INVITE transaction it acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionKey {
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: Method,
    },
    Rfc2543 {
        request_uri: String,
        call_id: String,
        from_tag: String,
        cseq: u32,
        via: String,
        method: Method,
    },
}

impl TransactionKey {
    pub fn for_request(req: &Request) -> Result<TransactionKey, ParseError> {
        let via = req.headers.top_via()?;
        let method = match req.method {
            Method::Ack => Method::Invite,
            ref m => m.clone(),
        };
        Ok(match via.rfc3261_branch() {
            Some(branch) => TransactionKey::Rfc3261 {
                branch: branch.to_string(),
                sent_by: via.sent_by_key(),
                method,
            },
            None => TransactionKey::Rfc2543 {
                request_uri: req.uri.to_string(),
                call_id: req.headers.call_id()?.to_string(),
                from_tag: req.headers.from()?.tag().unwrap_or_default().to_string(),
                cseq: req.headers.cseq()?.seq,
                via: rfc2543_via(&via),
                method,
            },
        })
    }

    /// Same transaction identity for another method (CANCEL → INVITE lookup).
    pub fn with_method(&self, method: Method) -> TransactionKey {
        let mut k = self.clone();
        match &mut k {
            TransactionKey::Rfc3261 { method: m, .. }
            | TransactionKey::Rfc2543 { method: m, .. } => *m = method,
        }
        k
    }
}

fn rfc2543_via(via: &Via) -> String {
    format!("{}|{}", via.sent_by_key(), via.branch().unwrap_or_default())
}

/// Server transaction states; non-INVITE starts in `Trying`, INVITE in `Proceeding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Terminated,
}

/// What a server transaction timer asks its owner to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerTimerEvent {
    /// Timer G: resend [`ServerTransaction::last_response`].
    Retransmit,
    /// Timer H: no ACK for a non-2xx final; the transaction is terminated.
    AckTimeout,
    /// Timer I/J fired (or the state machine ended): drop the transaction.
    Terminated,
}

/// Misuse of a transaction by its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    #[error("transaction already sent a final response")]
    AlreadyFinal,
    #[error("status {0} is not a valid response code")]
    InvalidStatus(u16),
}

/// INVITE (RFC 3261 §17.2.1) or non-INVITE (§17.2.2) server transaction.
#[derive(Debug, Clone)]
pub struct ServerTransaction {
    invite: bool,
    reliable: bool,
    timers: TimerConfig,
    state: ServerState,
    last_response: Option<Vec<u8>>,
    last_status: Option<u16>,
    /// Timer G and its current interval.
    retransmit: Option<(Instant, Duration)>,
    /// Timer H.
    ack_deadline: Option<Instant>,
    /// Timer I or J.
    terminate_at: Option<Instant>,
}

impl ServerTransaction {
    pub fn new_invite(reliable: bool, timers: TimerConfig) -> Self {
        Self::new(true, reliable, timers, ServerState::Proceeding)
    }

    pub fn new_non_invite(reliable: bool, timers: TimerConfig) -> Self {
        Self::new(false, reliable, timers, ServerState::Trying)
    }

    fn new(invite: bool, reliable: bool, timers: TimerConfig, state: ServerState) -> Self {
        Self {
            invite,
            reliable,
            timers: timers.sanitized(),
            state,
            last_response: None,
            last_status: None,
            retransmit: None,
            ack_deadline: None,
            terminate_at: None,
        }
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    pub fn is_invite(&self) -> bool {
        self.invite
    }

    pub fn last_status(&self) -> Option<u16> {
        self.last_status
    }

    pub fn last_response(&self) -> Option<&[u8]> {
        self.last_response.as_deref()
    }

    /// True until a final response has been sent.
    pub fn awaiting_final(&self) -> bool {
        matches!(self.state, ServerState::Trying | ServerState::Proceeding)
    }

    /// Records a response from the TU; the caller transmits `bytes` itself.
    pub fn send_response(
        &mut self,
        now: Instant,
        status: u16,
        bytes: Vec<u8>,
    ) -> Result<(), TransactionError> {
        if !(100..=699).contains(&status) {
            return Err(TransactionError::InvalidStatus(status));
        }
        if !self.awaiting_final() {
            return Err(TransactionError::AlreadyFinal);
        }
        self.last_response = Some(bytes);
        self.last_status = Some(status);
        if status < 200 {
            self.state = ServerState::Proceeding;
            return Ok(());
        }
        if self.invite && status < 300 {
            // 2xx retransmission belongs to the TU (RFC 3261 §13.3.1.4).
            self.state = ServerState::Terminated;
            return Ok(());
        }
        self.state = ServerState::Completed;
        if self.invite {
            if !self.reliable {
                self.retransmit = Some((now + self.timers.t1, self.timers.t1));
            }
            self.ack_deadline = Some(now + self.timers.timeout());
        } else {
            let wait = if self.reliable {
                Duration::ZERO
            } else {
                self.timers.timeout()
            };
            self.terminate_at = Some(now + wait);
        }
        Ok(())
    }

    /// A retransmitted request arrived: the response to resend, if any.
    pub fn on_retransmission(&self) -> Option<&[u8]> {
        match self.state {
            ServerState::Proceeding | ServerState::Completed => self.last_response.as_deref(),
            _ => None,
        }
    }

    /// ACK for a non-2xx final: stops Timer G/H and starts Timer I.
    /// Returns false when the ACK was a duplicate or not expected.
    pub fn on_ack(&mut self, now: Instant) -> bool {
        if !self.invite || self.state != ServerState::Completed {
            return false;
        }
        self.state = ServerState::Confirmed;
        self.retransmit = None;
        self.ack_deadline = None;
        let wait = if self.reliable {
            Duration::ZERO
        } else {
            self.timers.t4
        };
        self.terminate_at = Some(now + wait);
        true
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.retransmit.map(|(t, _)| t),
            self.ack_deadline,
            self.terminate_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires at most one expired timer; call until it returns `None`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<ServerTimerEvent> {
        if self.ack_deadline.is_some_and(|t| t <= now) {
            self.ack_deadline = None;
            self.retransmit = None;
            self.state = ServerState::Terminated;
            return Some(ServerTimerEvent::AckTimeout);
        }
        if let Some((at, interval)) = self.retransmit {
            if at <= now {
                let next = (interval * 2).min(self.timers.t2);
                self.retransmit = Some((now + next, next));
                return Some(ServerTimerEvent::Retransmit);
            }
        }
        if self.terminate_at.is_some_and(|t| t <= now) {
            self.terminate_at = None;
            self.state = ServerState::Terminated;
            return Some(ServerTimerEvent::Terminated);
        }
        None
    }
}

/// Client transaction identity (RFC 3261 §17.1.3): top Via branch + CSeq method.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey {
    pub branch: String,
    pub method: Method,
}

impl ClientKey {
    /// Key of the client transaction a response belongs to.
    pub fn for_response(resp: &Response) -> Result<ClientKey, ParseError> {
        let via = resp.headers.top_via()?;
        let branch = via
            .branch()
            .ok_or(ParseError::InvalidHeader("Via"))?
            .to_string();
        Ok(ClientKey {
            branch,
            method: resp.headers.cseq()?.method,
        })
    }
}

/// Client transaction states (RFC 3261 §17.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// What to do with a response received by a client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientResponseAction {
    /// Pass the response to the TU.
    Deliver,
    /// Send [`ClientTransaction::ack`] and pass the response to the TU.
    DeliverAndAck,
    /// Retransmitted non-2xx final: resend the ACK only.
    ResendAck,
    /// Duplicate or late response: ignore.
    Absorb,
}

/// What a client transaction timer asks its owner to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTimerEvent {
    /// Timer A/E: resend [`ClientTransaction::request_bytes`].
    Retransmit,
    /// Timer B/F: no final response; report a timeout (408) to the TU.
    Timeout,
    /// Timer D/K: drop the transaction.
    Terminated,
}

/// INVITE (§17.1.1) or non-INVITE (§17.1.2) client transaction.
#[derive(Debug, Clone)]
pub struct ClientTransaction {
    key: ClientKey,
    reliable: bool,
    timers: TimerConfig,
    state: ClientState,
    request: Request,
    bytes: Vec<u8>,
    ack: Option<Vec<u8>>,
    /// Timer A/E and its current interval.
    retransmit: Option<(Instant, Duration)>,
    /// Timer B/F.
    timeout_at: Option<Instant>,
    /// Timer D/K.
    terminate_at: Option<Instant>,
}

impl ClientTransaction {
    /// Starts a transaction for `request`, whose top Via must carry the branch.
    /// The caller sends [`Self::request_bytes`] right away.
    pub fn new(
        now: Instant,
        request: Request,
        reliable: bool,
        timers: TimerConfig,
    ) -> Result<Self, ParseError> {
        let timers = timers.sanitized();
        let via = request.headers.top_via()?;
        let key = ClientKey {
            branch: via
                .branch()
                .ok_or(ParseError::InvalidHeader("Via"))?
                .to_string(),
            method: request.method.clone(),
        };
        let invite = request.method == Method::Invite;
        let bytes = request.to_bytes();
        Ok(Self {
            key,
            reliable,
            timers,
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            request,
            bytes,
            ack: None,
            retransmit: (!reliable).then_some((now + timers.t1, timers.t1)),
            timeout_at: Some(now + timers.timeout()),
            terminate_at: None,
        })
    }

    pub fn key(&self) -> &ClientKey {
        &self.key
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    pub fn request_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// ACK generated for a non-2xx final response to an INVITE.
    pub fn ack(&self) -> Option<&[u8]> {
        self.ack.as_deref()
    }

    fn is_invite(&self) -> bool {
        self.key.method == Method::Invite
    }

    pub fn on_response(&mut self, now: Instant, resp: &Response) -> ClientResponseAction {
        let provisional = resp.status < 200;
        match (self.state, provisional) {
            (ClientState::Terminated, _) => ClientResponseAction::Absorb,
            (ClientState::Completed, _) => {
                if self.is_invite() && resp.status >= 300 {
                    ClientResponseAction::ResendAck
                } else {
                    ClientResponseAction::Absorb
                }
            }
            (_, true) => {
                self.state = ClientState::Proceeding;
                if self.is_invite() {
                    // Timers A and B stop once the INVITE is known to have arrived.
                    self.retransmit = None;
                    self.timeout_at = None;
                } else if let Some((at, _)) = self.retransmit {
                    // Timer E keeps running, now at T2 (RFC 3261 §17.1.2.2).
                    self.retransmit = Some((at, self.timers.t2));
                }
                ClientResponseAction::Deliver
            }
            (_, false) => {
                self.retransmit = None;
                self.timeout_at = None;
                if self.is_invite() && resp.status < 300 {
                    // The TU (dialog layer) ACKs 2xx itself.
                    self.state = ClientState::Terminated;
                    return ClientResponseAction::Deliver;
                }
                self.state = ClientState::Completed;
                let wait = match (self.reliable, self.is_invite()) {
                    (true, _) => Duration::ZERO,
                    (false, true) => TIMER_D_UNRELIABLE,
                    (false, false) => self.timers.t4,
                };
                self.terminate_at = Some(now + wait);
                if self.is_invite() {
                    self.ack = Some(build_non2xx_ack(&self.request, resp).to_bytes());
                    ClientResponseAction::DeliverAndAck
                } else {
                    ClientResponseAction::Deliver
                }
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.retransmit.map(|(t, _)| t),
            self.timeout_at,
            self.terminate_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires at most one expired timer; call until it returns `None`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<ClientTimerEvent> {
        if self.timeout_at.is_some_and(|t| t <= now) {
            self.timeout_at = None;
            self.retransmit = None;
            self.state = ClientState::Terminated;
            return Some(ClientTimerEvent::Timeout);
        }
        if let Some((at, interval)) = self.retransmit {
            if at <= now {
                let next = if self.is_invite() {
                    interval * 2
                } else if self.state == ClientState::Proceeding {
                    self.timers.t2
                } else {
                    (interval * 2).min(self.timers.t2)
                };
                self.retransmit = Some((now + next, next));
                return Some(ClientTimerEvent::Retransmit);
            }
        }
        if self.terminate_at.is_some_and(|t| t <= now) {
            self.terminate_at = None;
            self.state = ClientState::Terminated;
            return Some(ClientTimerEvent::Terminated);
        }
        None
    }
}

/// ACK for a non-2xx final (RFC 3261 §17.1.1.3): same Request-URI, Call-ID, From,
/// CSeq number and top Via as the INVITE, To from the response, Route copied.
pub fn build_non2xx_ack(invite: &Request, resp: &Response) -> Request {
    let to = resp.headers.get("To").or_else(|| invite.headers.get("To"));
    same_transaction(Method::Ack, invite, to)
}

/// CANCEL for a pending INVITE (RFC 3261 §9.1): same Request-URI, Call-ID, From,
/// To (no tag: the dialog is not known yet), CSeq number and top Via as the INVITE,
/// so every hop matches it to the INVITE's transaction; Route copied.
pub fn build_cancel(invite: &Request) -> Request {
    same_transaction(Method::Cancel, invite, invite.headers.get("To"))
}

/// A request hop-by-hop matched to the INVITE's transaction (ACK to a non-2xx, CANCEL):
/// the INVITE's Request-URI, top Via, From, Call-ID, CSeq number and Routes, with `to`.
fn same_transaction(method: Method, invite: &Request, to: Option<&str>) -> Request {
    let cseq_method = method.as_str().to_string();
    let mut req = Request::new(method, invite.uri.clone());
    let h = &invite.headers;
    if let Some(via) = h.get("Via") {
        let top = crate::header::split_list(via)
            .into_iter()
            .next()
            .unwrap_or_default();
        req.headers.push("Via", top.trim());
    }
    req.headers.push("Max-Forwards", "70");
    if let Some(v) = h.get("From") {
        req.headers.push("From", v);
    }
    if let Some(v) = to {
        req.headers.push("To", v);
    }
    if let Some(v) = h.get("Call-ID") {
        req.headers.push("Call-ID", v);
    }
    if let Ok(cseq) = h.cseq() {
        req.headers
            .push("CSeq", format!("{} {cseq_method}", cseq.seq));
    }
    for r in h.get_all("Route") {
        req.headers.push("Route", r);
    }
    req
}

/// UAS core retransmission of a 2xx to INVITE until ACK (RFC 3261 §13.3.1.4).
///
/// Lives outside the INVITE server transaction because that transaction ends
/// as soon as the 2xx is sent; the dialog layer owns this one.
#[derive(Debug, Clone)]
pub struct TwoXxRetransmit {
    next: Option<(Instant, Duration)>,
    /// `None` once the give-up event has fired.
    give_up_at: Option<Instant>,
    t2: Duration,
}

/// What the 2xx retransmission timer asks its owner to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwoXxEvent {
    Retransmit,
    /// 64*T1 without ACK: the session should be ended with BYE.
    GiveUp,
}

impl TwoXxRetransmit {
    /// Started when the 2xx is first sent; `reliable` disables retransmission
    /// but keeps the ACK deadline.
    pub fn new(now: Instant, reliable: bool, timers: TimerConfig) -> Self {
        let timers = timers.sanitized();
        Self {
            next: (!reliable).then_some((now + timers.t1, timers.t1)),
            give_up_at: Some(now + timers.timeout()),
            t2: timers.t2,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = self.next.map(|(t, _)| t);
        [next, self.give_up_at].into_iter().flatten().min()
    }

    /// Fires at most one expired timer; call until it returns `None`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TwoXxEvent> {
        if self.give_up_at.is_some_and(|t| t <= now) {
            self.next = None;
            self.give_up_at = None;
            return Some(TwoXxEvent::GiveUp);
        }
        let (at, interval) = self.next?;
        if at > now {
            return None;
        }
        let next = (interval * 2).min(self.t2);
        self.next = Some((now + next, next));
        Some(TwoXxEvent::Retransmit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::SipMessage;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    trait Timed {
        type Event: Copy;
        fn poll(&self) -> Option<Instant>;
        fn handle(&mut self, now: Instant) -> Option<Self::Event>;
    }

    impl Timed for ServerTransaction {
        type Event = ServerTimerEvent;
        fn poll(&self) -> Option<Instant> {
            self.poll_timeout()
        }
        fn handle(&mut self, now: Instant) -> Option<ServerTimerEvent> {
            self.handle_timeout(now)
        }
    }

    impl Timed for ClientTransaction {
        type Event = ClientTimerEvent;
        fn poll(&self) -> Option<Instant> {
            self.poll_timeout()
        }
        fn handle(&mut self, now: Instant) -> Option<ClientTimerEvent> {
            self.handle_timeout(now)
        }
    }

    impl Timed for TwoXxRetransmit {
        type Event = TwoXxEvent;
        fn poll(&self) -> Option<Instant> {
            self.poll_timeout()
        }
        fn handle(&mut self, now: Instant) -> Option<TwoXxEvent> {
            self.handle_timeout(now)
        }
    }

    /// Drives a timer owner until `end`, recording (offset ms, event).
    fn run<T: Timed>(t0: Instant, end: Duration, t: &mut T) -> Vec<(u64, T::Event)> {
        let mut out = Vec::new();
        while let Some(at) = t.poll() {
            if at > t0 + end {
                break;
            }
            let mut fired = false;
            while let Some(e) = t.handle(at) {
                fired = true;
                out.push(((at - t0).as_millis() as u64, e));
            }
            assert!(fired, "poll_timeout returned a deadline that fired nothing");
        }
        out
    }

    fn request(text: &str) -> Request {
        match SipMessage::parse(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("bad fixture: {other:?}"),
        }
    }

    fn response(text: &str) -> Response {
        match SipMessage::parse(text.as_bytes()) {
            Ok(SipMessage::Response(r)) => r,
            other => panic!("bad fixture: {other:?}"),
        }
    }

    const INVITE: &str =
        "INVITE sip:bob@b SIP/2.0\r\nVia: SIP/2.0/UDP a:5060;branch=z9hG4bKabc\r\n\
From: <sip:a@a>;tag=1\r\nTo: <sip:bob@b>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\n\
Route: <sip:p1;lr>\r\nContent-Length: 0\r\n\r\n";
    const BYE: &str = "BYE sip:bob@b SIP/2.0\r\nVia: SIP/2.0/UDP a:5060;branch=z9hG4bKbye\r\n\
From: <sip:a@a>;tag=1\r\nTo: <sip:bob@b>;tag=2\r\nCall-ID: c1\r\nCSeq: 8 BYE\r\nContent-Length: 0\r\n\r\n";

    fn resp_for(req: &str, status: u16) -> Response {
        let r = request(req);
        let mut resp = Response::from_request(&r, status, Some("totag"));
        // Round-trip through bytes, as the network would.
        resp = response(&String::from_utf8(resp.to_bytes()).unwrap());
        resp
    }

    #[test]
    fn invite_server_non2xx_timer_g_and_h() {
        let t0 = Instant::now();
        let mut tx = ServerTransaction::new_invite(false, TimerConfig::default());
        tx.send_response(t0, 100, b"100".to_vec()).unwrap();
        assert_eq!(tx.on_retransmission(), Some(&b"100"[..]));
        tx.send_response(t0, 486, b"486".to_vec()).unwrap();
        assert_eq!(tx.state(), ServerState::Completed);
        assert_eq!(
            tx.send_response(t0, 200, vec![]),
            Err(TransactionError::AlreadyFinal)
        );
        let events = run(t0, Duration::from_secs(40), &mut tx);
        let retrans: Vec<u64> = events
            .iter()
            .filter(|(_, e)| *e == ServerTimerEvent::Retransmit)
            .map(|(t, _)| *t)
            .collect();
        // Timer G: T1, doubling, capped at T2 = 4 s, until Timer H at 64*T1 = 32 s.
        assert_eq!(
            retrans,
            vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(events.last(), Some(&(32000, ServerTimerEvent::AckTimeout)));
        assert_eq!(tx.state(), ServerState::Terminated);
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn invite_server_ack_then_timer_i() {
        let t0 = Instant::now();
        let mut tx = ServerTransaction::new_invite(false, TimerConfig::default());
        tx.send_response(t0, 487, b"487".to_vec()).unwrap();
        assert_eq!(
            tx.handle_timeout(t0 + ms(500)),
            Some(ServerTimerEvent::Retransmit)
        );
        assert!(tx.on_ack(t0 + ms(700)));
        assert_eq!(tx.state(), ServerState::Confirmed);
        assert!(!tx.on_ack(t0 + ms(800)), "duplicate ACK is absorbed");
        assert_eq!(tx.on_retransmission(), None);
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + ms(700) + Duration::from_secs(5))
        );
        assert_eq!(tx.handle_timeout(t0 + ms(5699)), None);
        assert_eq!(
            tx.handle_timeout(t0 + ms(5700)),
            Some(ServerTimerEvent::Terminated)
        );
        assert_eq!(tx.state(), ServerState::Terminated);
    }

    #[test]
    fn invite_server_reliable_has_no_timer_g_and_zero_timer_i() {
        let t0 = Instant::now();
        let mut tx = ServerTransaction::new_invite(true, TimerConfig::default());
        tx.send_response(t0, 603, b"603".to_vec()).unwrap();
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        assert!(tx.on_ack(t0 + ms(10)));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(10)));
        assert_eq!(
            tx.handle_timeout(t0 + ms(10)),
            Some(ServerTimerEvent::Terminated)
        );
    }

    #[test]
    fn invite_server_2xx_terminates_immediately() {
        let t0 = Instant::now();
        let mut tx = ServerTransaction::new_invite(false, TimerConfig::default());
        tx.send_response(t0, 200, b"200".to_vec()).unwrap();
        assert_eq!(tx.state(), ServerState::Terminated);
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn non_invite_server_timer_j() {
        let t0 = Instant::now();
        let mut tx = ServerTransaction::new_non_invite(false, TimerConfig::default());
        assert_eq!(tx.state(), ServerState::Trying);
        assert_eq!(tx.on_retransmission(), None, "nothing to resend in Trying");
        tx.send_response(t0, 200, b"200".to_vec()).unwrap();
        assert_eq!(tx.on_retransmission(), Some(&b"200"[..]));
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(tx.handle_timeout(t0 + ms(31999)), None);
        assert_eq!(
            tx.handle_timeout(t0 + Duration::from_secs(32)),
            Some(ServerTimerEvent::Terminated)
        );
        let mut tcp = ServerTransaction::new_non_invite(true, TimerConfig::default());
        tcp.send_response(t0, 200, b"200".to_vec()).unwrap();
        assert_eq!(tcp.poll_timeout(), Some(t0));
        assert_eq!(
            tcp.send_response(t0, 500, vec![]),
            Err(TransactionError::AlreadyFinal)
        );
        assert_eq!(
            ServerTransaction::new_non_invite(true, TimerConfig::default()).send_response(
                t0,
                99,
                vec![]
            ),
            Err(TransactionError::InvalidStatus(99))
        );
    }

    #[test]
    fn non_invite_client_timer_e_f() {
        let t0 = Instant::now();
        let mut tx =
            ClientTransaction::new(t0, request(BYE), false, TimerConfig::default()).unwrap();
        let events = run(t0, Duration::from_secs(40), &mut tx);
        let retrans: Vec<u64> = events
            .iter()
            .filter(|(_, e)| *e == ClientTimerEvent::Retransmit)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(
            retrans,
            vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(events.last(), Some(&(32000, ClientTimerEvent::Timeout)));
        assert_eq!(tx.state(), ClientState::Terminated);
    }

    #[test]
    fn non_invite_client_proceeding_uses_t2_then_completes_with_timer_k() {
        let t0 = Instant::now();
        let mut tx =
            ClientTransaction::new(t0, request(BYE), false, TimerConfig::default()).unwrap();
        assert_eq!(
            tx.handle_timeout(t0 + ms(500)),
            Some(ClientTimerEvent::Retransmit)
        );
        assert_eq!(
            tx.on_response(t0 + ms(600), &resp_for(BYE, 100)),
            ClientResponseAction::Deliver
        );
        assert_eq!(tx.state(), ClientState::Proceeding);
        // Next Timer E was scheduled for 1500 ms; after that it runs at T2.
        assert_eq!(
            tx.handle_timeout(t0 + ms(1500)),
            Some(ClientTimerEvent::Retransmit)
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(5500)));
        assert_eq!(
            tx.on_response(t0 + ms(2000), &resp_for(BYE, 200)),
            ClientResponseAction::Deliver
        );
        assert_eq!(tx.state(), ClientState::Completed);
        assert_eq!(
            tx.on_response(t0 + ms(2100), &resp_for(BYE, 200)),
            ClientResponseAction::Absorb
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(7000)), "Timer K = T4");
        assert_eq!(
            tx.handle_timeout(t0 + ms(7000)),
            Some(ClientTimerEvent::Terminated)
        );
    }

    #[test]
    fn non_invite_client_reliable_no_retransmit() {
        let t0 = Instant::now();
        let mut tx =
            ClientTransaction::new(t0, request(BYE), true, TimerConfig::default()).unwrap();
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        tx.on_response(t0 + ms(5), &resp_for(BYE, 200));
        assert_eq!(
            tx.handle_timeout(t0 + ms(5)),
            Some(ClientTimerEvent::Terminated)
        );
    }

    #[test]
    fn invite_client_timer_a_b() {
        let t0 = Instant::now();
        let mut tx =
            ClientTransaction::new(t0, request(INVITE), false, TimerConfig::default()).unwrap();
        assert_eq!(tx.state(), ClientState::Calling);
        let events = run(t0, Duration::from_secs(40), &mut tx);
        let retrans: Vec<u64> = events
            .iter()
            .filter(|(_, e)| *e == ClientTimerEvent::Retransmit)
            .map(|(t, _)| *t)
            .collect();
        // Timer A doubles without the T2 cap.
        assert_eq!(retrans, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(events.last(), Some(&(32000, ClientTimerEvent::Timeout)));
    }

    #[test]
    fn invite_client_non2xx_generates_ack_and_timer_d() {
        let t0 = Instant::now();
        let mut tx =
            ClientTransaction::new(t0, request(INVITE), false, TimerConfig::default()).unwrap();
        assert_eq!(
            tx.on_response(t0 + ms(100), &resp_for(INVITE, 180)),
            ClientResponseAction::Deliver
        );
        assert_eq!(tx.poll_timeout(), None, "Timers A and B stop on 1xx");
        let busy = resp_for(INVITE, 486);
        assert_eq!(
            tx.on_response(t0 + ms(200), &busy),
            ClientResponseAction::DeliverAndAck
        );
        let ack = match SipMessage::parse(tx.ack().unwrap()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("ACK expected"),
        };
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.headers.cseq().unwrap().seq, 7);
        assert_eq!(ack.headers.cseq().unwrap().method, Method::Ack);
        assert_eq!(ack.headers.to().unwrap().tag(), Some("totag"));
        assert_eq!(ack.headers.top_via().unwrap().branch(), Some("z9hG4bKabc"));
        assert_eq!(ack.headers.get("Route"), Some("<sip:p1;lr>"));
        assert_eq!(
            tx.on_response(t0 + ms(300), &busy),
            ClientResponseAction::ResendAck
        );
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + ms(200) + Duration::from_secs(32))
        );
        assert_eq!(
            tx.handle_timeout(t0 + ms(200) + Duration::from_secs(32)),
            Some(ClientTimerEvent::Terminated)
        );
    }

    #[test]
    fn invite_client_2xx_terminates() {
        let t0 = Instant::now();
        let mut tx =
            ClientTransaction::new(t0, request(INVITE), false, TimerConfig::default()).unwrap();
        assert_eq!(
            tx.on_response(t0, &resp_for(INVITE, 200)),
            ClientResponseAction::Deliver
        );
        assert_eq!(tx.state(), ClientState::Terminated);
        assert!(tx.ack().is_none());
        assert_eq!(
            tx.on_response(t0, &resp_for(INVITE, 200)),
            ClientResponseAction::Absorb
        );
    }

    #[test]
    fn two_xx_retransmit_schedule() {
        let t0 = Instant::now();
        let mut r = TwoXxRetransmit::new(t0, false, TimerConfig::default());
        let events = run(t0, Duration::from_secs(40), &mut r);
        let times: Vec<u64> = events.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            times,
            vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500, 32000]
        );
        assert_eq!(events.last().map(|e| e.1), Some(TwoXxEvent::GiveUp));
        let mut tcp = TwoXxRetransmit::new(t0, true, TimerConfig::default());
        assert_eq!(tcp.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(tcp.handle_timeout(t0 + ms(500)), None);
    }

    #[test]
    fn configurable_timers() {
        let t0 = Instant::now();
        let timers = TimerConfig {
            t1: ms(100),
            t2: ms(300),
            t4: ms(1000),
        };
        let mut tx = ClientTransaction::new(t0, request(BYE), false, timers).unwrap();
        let events = run(t0, Duration::from_secs(10), &mut tx);
        let times: Vec<u64> = events.iter().map(|(t, _)| *t).collect();
        assert_eq!(&times[..4], &[100, 300, 600, 900]);
        assert_eq!(events.last(), Some(&(6400, ClientTimerEvent::Timeout)));
        // Zero timers are clamped instead of spinning forever.
        let zero = TimerConfig {
            t1: Duration::ZERO,
            t2: Duration::ZERO,
            t4: Duration::ZERO,
        };
        let mut tx = ServerTransaction::new_invite(false, zero);
        tx.send_response(t0, 500, vec![]).unwrap();
        let events = run(t0, Duration::from_secs(1), &mut tx);
        assert_eq!(events.last(), Some(&(64, ServerTimerEvent::AckTimeout)));
        // Absurd values are capped instead of overflowing Instant arithmetic.
        let huge = TimerConfig {
            t1: Duration::MAX,
            t2: Duration::MAX,
            t4: Duration::MAX,
        };
        let mut tx = ClientTransaction::new(t0, request(BYE), false, huge).unwrap();
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(600)));
        assert_eq!(
            tx.handle_timeout(t0 + Duration::from_secs(600)),
            Some(ClientTimerEvent::Retransmit)
        );
    }

    #[test]
    fn transaction_keys() {
        let invite = request(INVITE);
        let k = TransactionKey::for_request(&invite).unwrap();
        let ack_text = INVITE
            .replace("INVITE sip", "ACK sip")
            .replace("7 INVITE", "7 ACK");
        let ack = request(&ack_text);
        assert_eq!(TransactionKey::for_request(&ack).unwrap(), k);
        let cancel_text = INVITE
            .replace("INVITE sip", "CANCEL sip")
            .replace("7 INVITE", "7 CANCEL");
        let cancel = TransactionKey::for_request(&request(&cancel_text)).unwrap();
        assert_ne!(cancel, k);
        assert_eq!(cancel.with_method(Method::Invite), k);
        // Other sent-by, same branch: a different transaction.
        let other = request(&INVITE.replace("UDP a:5060", "UDP other:5060"));
        assert_ne!(TransactionKey::for_request(&other).unwrap(), k);
        // RFC 2543 fallback when the branch lacks the cookie.
        let old = request(&INVITE.replace("z9hG4bKabc", "1234"));
        let old_key = TransactionKey::for_request(&old).unwrap();
        assert!(matches!(old_key, TransactionKey::Rfc2543 { cseq: 7, .. }));
        let old_ack = request(
            &ack_text
                .replace("z9hG4bKabc", "1234")
                .replace("To: <sip:bob@b>", "To: <sip:bob@b>;tag=x"),
        );
        assert_eq!(TransactionKey::for_request(&old_ack).unwrap(), old_key);
    }
}
