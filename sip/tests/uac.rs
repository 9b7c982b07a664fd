//! Outgoing calls (UAC, the agent leg of a B2BUA transfer) on simulated time: the test
//! plays the agent's PBX, answering our INVITE with raw SIP text, and checks what the
//! endpoint transmits and reports.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{as_request, as_response, Sim};

use voxgate_sip::body::BodyError;
use voxgate_sip::endpoint::{
    AnswerError, CallError, CallHandle, EndReason, EndpointConfig, Event, OutgoingCall,
    OutgoingFailure, Transport,
};
use voxgate_sip::sdp::{self, LocalMedia, SdpError};
use voxgate_sip::{Method, Request, SipMessage, Uri};

const ANSWER: &str =
    "v=0\r\no=agent 1 1 IN IP4 192.0.2.51\r\ns=-\r\nc=IN IP4 192.0.2.51\r\nt=0 0\r\n\
m=audio 7000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// The agent's phone, as written in its Contact.
const AGENT_CONTACT: &str = "<sip:agent@192.0.2.51:5062>";

fn config() -> EndpointConfig {
    EndpointConfig {
        max_calls: 4,
        user_agent: "voxgate-test".into(),
        contact_host: "198.51.100.1".into(),
        udp_port: 5060,
        tcp_port: 5061,
        seed: 7,
        ..EndpointConfig::default()
    }
}

fn offer() -> String {
    let local = LocalMedia::new("198.51.100.1".parse().unwrap(), 40000, 9);
    sdp::build_offer(&local).to_string()
}

/// Voxgate placing calls towards a PBX at `remote`.
type Uac = Sim;

/// One placed call: its handle and the INVITE as it went on the wire.
struct Placed {
    call: CallHandle,
    invite: Request,
}

impl Uac {
    fn new(transport: Transport) -> Self {
        Self::with(transport, config())
    }

    fn with(transport: Transport, cfg: EndpointConfig) -> Self {
        Sim::on(
            transport,
            "198.51.100.1:5060".parse().unwrap(),
            "192.0.2.50:5060".parse().unwrap(),
            cfg,
        )
    }

    fn outgoing(&self) -> OutgoingCall {
        OutgoingCall {
            target: Uri::parse("sip:agent42@pbx.example").unwrap(),
            to: None,
            from_user: "+4930111".into(),
            from_display: Some("Caller \"VIP\"".into()),
            remote: self.remote,
            transport: self.transport,
            local: self.local,
            sdp_offer: offer(),
            extra_headers: vec![("X-Voxgate-Call-Id".into(), "vg-123".into())],
        }
    }

    fn place(&mut self) -> Placed {
        let call = self.ep.invite(self.now, self.outgoing()).unwrap();
        let sent = self.transmits();
        assert_eq!(sent.len(), 1, "exactly the INVITE");
        assert_eq!(sent[0].remote, self.remote);
        Placed {
            call,
            invite: as_request(&sent[0]),
        }
    }

    fn requests(&mut self) -> Vec<Request> {
        self.transmits().iter().map(as_request).collect()
    }

    /// INVITE answered with 200 (tag `agent-1`, SDP); returns the call, the INVITE and the ACK.
    fn answered(&mut self) -> (Placed, Request) {
        let p = self.place();
        self.send(&reply(&p.invite, 200, Some("agent-1"), "", ANSWER));
        let ack = self.requests();
        assert_eq!(ack.len(), 1);
        assert_eq!(ack[0].method, Method::Ack);
        match self.events().as_slice() {
            [Event::OutgoingAnswered { call, .. }] => assert_eq!(*call, p.call),
            other => panic!("expected OutgoingAnswered, got {other:?}"),
        }
        (p, ack[0].clone())
    }
}

fn from_tag(req: &Request) -> String {
    req.headers.from().unwrap().tag().unwrap().to_string()
}

/// The PBX's response to `req`: Via, From, Call-ID and CSeq echoed, To tagged with
/// `to_tag`, the agent's Contact on dialog-creating responses, `extra` headers
/// (e.g. Record-Route) and an SDP `body`.
fn reply(req: &Request, status: u16, to_tag: Option<&str>, extra: &str, body: &str) -> String {
    let h = &req.headers;
    let to = match to_tag {
        Some(tag) => format!("{};tag={tag}", h.get("To").unwrap()),
        None => h.get("To").unwrap().to_string(),
    };
    let contact = if (101..300).contains(&status) {
        format!("Contact: {AGENT_CONTACT}\r\n")
    } else {
        String::new()
    };
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "SIP/2.0 {status} Whatever\r\nVia: {via};received=198.51.100.1;rport=5060\r\n\
From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n{contact}{extra}{ct}\
Content-Length: {len}\r\n\r\n{body}",
        via = h.get("Via").unwrap(),
        from = h.get("From").unwrap(),
        call_id = h.get("Call-ID").unwrap(),
        cseq = h.get("CSeq").unwrap(),
        len = body.len(),
    )
}

/// A request the agent sends inside the dialog our INVITE created (agent tag `agent-1`).
fn from_agent(invite: &Request, method: &str, cseq: u32, extra: &str, body: &str) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else if method == "INFO" {
        "Content-Type: application/dtmf-relay\r\n".to_string()
    } else if method == "NOTIFY" {
        "Content-Type: message/sipfrag\r\n".to_string()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    format!(
        "{method} sip:198.51.100.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.51:5062;branch=z9hG4bK-agent-{method}-{cseq}\r\n\
From: <sip:agent42@pbx.example>;tag=agent-1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContact: {AGENT_CONTACT}\r\n{extra}{ct}\
Content-Length: {len}\r\n\r\n{body}",
        to = invite.headers.get("From").unwrap(),
        call_id = invite.headers.get("Call-ID").unwrap(),
        len = body.len(),
    )
}

fn failed(call: CallHandle, status: Option<u16>, reason: OutgoingFailure) -> Vec<Event> {
    vec![Event::OutgoingFailed {
        call,
        status,
        reason,
    }]
}

#[test]
fn invite_is_well_formed() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    let inv = &p.invite;
    assert!(inv.validate().is_ok());
    assert_eq!(inv.method, Method::Invite);
    assert_eq!(inv.uri.to_string(), "sip:agent42@pbx.example");
    let via = inv.headers.top_via().unwrap();
    assert_eq!(via.sent_by_key(), "198.51.100.1:5060");
    assert!(via.rfc3261_branch().is_some(), "fresh z9hG4bK branch");
    assert_eq!(via.rport(), Some(None), "rport requested (RFC 3581)");
    assert_eq!(inv.headers.max_forwards().unwrap(), Some(70));
    let from = inv.headers.from().unwrap();
    assert_eq!(from.uri.to_string(), "sip:+4930111@198.51.100.1");
    assert_eq!(from.display_name.as_deref(), Some("Caller \"VIP\""));
    assert!(!from_tag(inv).is_empty());
    let to = inv.headers.to().unwrap();
    assert_eq!(to.uri.to_string(), "sip:agent42@pbx.example");
    assert_eq!(to.tag(), None);
    assert!(!inv.headers.call_id().unwrap().is_empty());
    assert_eq!(inv.headers.get("CSeq"), Some("1 INVITE"));
    assert_eq!(inv.headers.get("Contact"), Some("<sip:198.51.100.1:5060>"));
    assert_eq!(inv.headers.get("Allow"), Some(voxgate_sip::endpoint::ALLOW));
    assert_eq!(inv.headers.get("User-Agent"), Some("voxgate-test"));
    assert_eq!(inv.headers.get("X-Voxgate-Call-Id"), Some("vg-123"));
    assert!(inv
        .headers
        .content_type()
        .unwrap()
        .unwrap()
        .is("application", "sdp"));
    assert_eq!(inv.body, offer().into_bytes());
    assert_eq!(u.ep.active_calls(), 1);
    assert!(u.events().is_empty());

    // A second call gets its own identifiers.
    let q = u.place();
    assert_ne!(q.call, p.call);
    assert_ne!(
        q.invite.headers.call_id().unwrap(),
        inv.headers.call_id().unwrap()
    );
    assert_ne!(from_tag(&q.invite), from_tag(inv));
    assert_ne!(q.invite.headers.top_via().unwrap().branch(), via.branch());
}

#[test]
fn ringing_then_200_is_acked_through_the_dialog() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    u.send(&reply(&p.invite, 100, None, "", ""));
    assert!(u.events().is_empty(), "100 Trying is not reported");
    u.send(&reply(&p.invite, 180, Some("agent-1"), "", ""));
    assert_eq!(
        u.events(),
        vec![Event::OutgoingProgress {
            call: p.call,
            status: 180,
            early_media: None
        }]
    );
    assert!(u.transmits().is_empty());

    // Record-Route as two proxies wrote it: the one nearest the agent on top.
    let rr = "Record-Route: <sip:core.pbx.example;lr>, <sip:192.0.2.60:5070;lr>\r\n";
    u.send(&reply(&p.invite, 200, Some("agent-1"), rr, ANSWER));
    match u.events().as_slice() {
        [Event::OutgoingAnswered { call, answer }] => {
            assert_eq!(*call, p.call);
            assert_eq!(answer.media[0].port, 7000);
        }
        other => panic!("expected OutgoingAnswered, got {other:?}"),
    }
    let sent = u.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].remote,
        "192.0.2.60:5070".parse().unwrap(),
        "first route of the reversed Record-Route is the next hop"
    );
    let ack = as_request(&sent[0]);
    assert!(ack.validate().is_ok());
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(
        ack.uri.to_string(),
        "sip:agent@192.0.2.51:5062",
        "2xx Contact"
    );
    let routes: Vec<&str> = ack.headers.get_all("Route").collect();
    assert_eq!(
        routes,
        vec!["<sip:192.0.2.60:5070;lr>", "<sip:core.pbx.example;lr>"]
    );
    assert_eq!(ack.headers.get("CSeq"), Some("1 ACK"));
    let ack_via = ack.headers.top_via().unwrap();
    let inv_via = p.invite.headers.top_via().unwrap();
    assert!(ack_via.rfc3261_branch().is_some());
    assert_ne!(
        ack_via.branch(),
        inv_via.branch(),
        "ACK for a 2xx is its own transaction (RFC 3261 §17.1.1.3)"
    );
    assert_eq!(from_tag(&ack), from_tag(&p.invite));
    assert_eq!(ack.headers.to().unwrap().tag(), Some("agent-1"));
    assert_eq!(
        ack.headers.call_id().unwrap(),
        p.invite.headers.call_id().unwrap()
    );
    assert!(ack.body.is_empty(), "the offer was in the INVITE");
    assert_eq!(u.ep.active_calls(), 1);
    assert!(
        u.run_until(Duration::from_secs(60)).is_empty(),
        "no INVITE or ACK retransmissions"
    );
    assert!(u.events().is_empty());
}

#[test]
fn busy_486_is_acked_by_the_transaction_and_fails() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    u.send(&reply(&p.invite, 100, None, "", ""));
    let busy = reply(&p.invite, 486, Some("busy-1"), "", "");
    u.send(&busy);
    assert_eq!(
        u.events(),
        failed(p.call, Some(486), OutgoingFailure::Rejected)
    );
    let sent = u.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].remote, u.remote, "same hop as the INVITE");
    let ack = as_request(&sent[0]);
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, p.invite.uri, "Request-URI of the INVITE");
    assert_eq!(
        ack.headers.top_via().unwrap().branch(),
        p.invite.headers.top_via().unwrap().branch(),
        "non-2xx ACK belongs to the INVITE transaction (RFC 3261 §17.1.1.3)"
    );
    assert_eq!(ack.headers.get("CSeq"), Some("1 ACK"));
    assert_eq!(ack.headers.to().unwrap().tag(), Some("busy-1"));
    assert_eq!(u.ep.active_calls(), 0);

    // The PBX did not get our ACK and retransmits: the ACK again, nothing reported.
    u.send(&busy);
    assert_eq!(u.transmits()[0].payload, sent[0].payload);
    assert!(u.events().is_empty());
    assert_eq!(
        u.ep.hangup(u.now, p.call),
        Err(CallError::UnknownCall),
        "the call is gone"
    );
    assert!(u.run_until(Duration::from_secs(60)).is_empty());
}

#[test]
fn no_response_retransmits_then_times_out_at_64_t1() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    let sent = u.run_until(Duration::from_millis(31_999));
    let times: Vec<u64> = sent.iter().map(|(t, _)| *t).collect();
    // Timer A: T1 = 500 ms, doubling without a cap.
    assert_eq!(times, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert!(sent
        .iter()
        .all(|(_, t)| as_request(t).headers.get("Via") == p.invite.headers.get("Via")));
    assert!(u.events().is_empty());
    assert!(u.run_until(Duration::from_secs(32)).is_empty());
    assert_eq!(u.events(), failed(p.call, None, OutgoingFailure::Timeout));
    assert_eq!(u.ep.active_calls(), 0);
    assert!(u.run_until(Duration::from_secs(120)).is_empty());
    assert_eq!(u.ep.poll_timeout(), None, "nothing left behind");
}

#[test]
fn cancel_after_ringing_gets_487_and_fails_as_cancelled() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    u.send(&reply(&p.invite, 180, Some("agent-1"), "", ""));
    u.events();
    u.ep.hangup(u.now, p.call).unwrap();
    assert_eq!(u.ep.hangup(u.now, p.call), Err(CallError::WrongState));
    let sent = u.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].remote, u.remote);
    let cancel = as_request(&sent[0]);
    assert!(cancel.validate().is_ok());
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.uri, p.invite.uri);
    assert_eq!(cancel.headers.get("Via"), p.invite.headers.get("Via"));
    assert_eq!(cancel.headers.get("CSeq"), Some("1 CANCEL"));
    assert_eq!(cancel.headers.get("From"), p.invite.headers.get("From"));
    assert_eq!(cancel.headers.get("To"), p.invite.headers.get("To"));
    assert_eq!(
        cancel.headers.get("Call-ID"),
        p.invite.headers.get("Call-ID")
    );
    assert!(u.events().is_empty(), "the 487 decides");

    u.send(&reply(&cancel, 200, Some("agent-1"), "", ""));
    assert!(u.transmits().is_empty());
    assert!(u.events().is_empty());
    u.send(&reply(&p.invite, 487, Some("agent-1"), "", ""));
    let ack = u.requests();
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].method, Method::Ack);
    assert_eq!(ack[0].headers.get("Via"), p.invite.headers.get("Via"));
    assert_eq!(
        u.events(),
        failed(p.call, Some(487), OutgoingFailure::Cancelled)
    );
    assert_eq!(u.ep.active_calls(), 0);
    // CANCEL's Timer K and the INVITE's Timer D run out quietly.
    assert!(u.run_until(Duration::from_secs(60)).is_empty());
    assert_eq!(u.ep.poll_timeout(), None);
}

#[test]
fn hangup_before_any_response_cancels_on_the_first_provisional() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    u.ep.hangup(u.now, p.call).unwrap();
    assert!(
        u.transmits().is_empty(),
        "no CANCEL before a provisional (RFC 3261 §9.1)"
    );
    // The INVITE keeps being retransmitted meanwhile.
    let retx = u.run_until(Duration::from_millis(600));
    assert_eq!(retx.len(), 1);
    assert_eq!(as_request(&retx[0].1).method, Method::Invite);
    u.send(&reply(&p.invite, 100, None, "", ""));
    let sent = u.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, Method::Cancel);
    // A later 180 neither re-sends the CANCEL nor is reported.
    u.send(&reply(&p.invite, 180, Some("agent-1"), "", ""));
    assert!(u.transmits().is_empty());
    assert!(u.events().is_empty());
    u.send(&reply(&p.invite, 487, Some("agent-1"), "", ""));
    assert_eq!(u.requests()[0].method, Method::Ack);
    assert_eq!(
        u.events(),
        failed(p.call, Some(487), OutgoingFailure::Cancelled)
    );
}

#[test]
fn hangup_without_any_response_gives_up_at_timer_b() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    u.ep.hangup(u.now, p.call).unwrap();
    let sent = u.run_until(Duration::from_secs(40));
    assert!(
        sent.iter()
            .all(|(_, t)| as_request(t).method == Method::Invite),
        "never a CANCEL"
    );
    assert_eq!(u.events(), failed(p.call, None, OutgoingFailure::Cancelled));
    assert_eq!(u.ep.active_calls(), 0);
}

#[test]
fn cancel_without_final_response_is_abandoned_after_64_t1() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    u.send(&reply(&p.invite, 180, Some("agent-1"), "", ""));
    u.events();
    u.ep.hangup(u.now, p.call).unwrap();
    let cancel = u.requests().pop().unwrap();
    u.send(&reply(&cancel, 200, Some("agent-1"), "", ""));
    assert!(u.run_until(Duration::from_millis(31_999)).is_empty());
    assert!(u.events().is_empty());
    u.run_until(Duration::from_secs(32));
    assert_eq!(u.events(), failed(p.call, None, OutgoingFailure::Cancelled));
    assert_eq!(u.ep.active_calls(), 0);
}

#[test]
fn two_hundred_racing_the_cancel_is_acked_then_byed() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    u.send(&reply(&p.invite, 180, Some("agent-1"), "", ""));
    u.events();
    u.ep.hangup(u.now, p.call).unwrap();
    let cancel = u.requests().pop().unwrap();
    assert_eq!(cancel.method, Method::Cancel);

    // The agent picked up before the CANCEL arrived.
    let ok = reply(&p.invite, 200, Some("agent-1"), "", ANSWER);
    u.send(&ok);
    let sent = u.requests();
    let methods: Vec<&Method> = sent.iter().map(|r| &r.method).collect();
    assert_eq!(methods, vec![&Method::Ack, &Method::Bye]);
    let (ack, bye) = (&sent[0], &sent[1]);
    assert_eq!(ack.headers.get("CSeq"), Some("1 ACK"));
    assert_eq!(bye.headers.get("CSeq"), Some("2 BYE"));
    assert_eq!(bye.uri.to_string(), "sip:agent@192.0.2.51:5062");
    assert_eq!(bye.headers.to().unwrap().tag(), Some("agent-1"));
    assert_eq!(from_tag(bye), from_tag(&p.invite));
    assert_eq!(
        u.events(),
        failed(p.call, Some(200), OutgoingFailure::Cancelled)
    );
    assert_eq!(u.ep.active_calls(), 0);

    // The CANCEL finds nothing to cancel any more; the BYE completes; nothing reported.
    u.send(&reply(&cancel, 481, Some("agent-1"), "", ""));
    u.send(&reply(bye, 200, None, "", ""));
    assert!(u.transmits().is_empty());
    // The 200 crossed our ACK: it is acknowledged again, not BYE'd twice.
    u.send(&ok);
    let again = u.requests();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0], *ack);
    assert!(u.events().is_empty());
}

#[test]
fn remote_bye_ends_the_answered_call() {
    let mut u = Uac::new(Transport::Udp);
    let (p, _ack) = u.answered();
    u.send(&from_agent(&p.invite, "BYE", 1, "", ""));
    let sent = u.transmits();
    assert_eq!(sent.len(), 1);
    let ok = as_response(&sent[0]);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers.get("CSeq"), Some("1 BYE"));
    assert_eq!(
        ok.headers.to().unwrap().tag(),
        Some(from_tag(&p.invite).as_str())
    );
    assert_eq!(
        u.events(),
        vec![Event::CallEnded {
            call: p.call,
            reason: EndReason::RemoteBye
        }]
    );
    assert_eq!(u.ep.active_calls(), 0);
    assert_eq!(u.ep.hangup(u.now, p.call), Err(CallError::UnknownCall));
}

#[test]
fn our_hangup_after_answer_sends_bye() {
    let mut u = Uac::new(Transport::Udp);
    let (p, ack) = u.answered();
    u.ep.hangup(u.now, p.call).unwrap();
    assert_eq!(u.ep.hangup(u.now, p.call), Err(CallError::WrongState));
    let sent = u.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].remote,
        "192.0.2.51:5062".parse().unwrap(),
        "the agent's Contact, no route set"
    );
    let bye = as_request(&sent[0]);
    assert!(bye.validate().is_ok());
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri.to_string(), "sip:agent@192.0.2.51:5062");
    assert_eq!(bye.headers.get("CSeq"), Some("2 BYE"));
    assert_eq!(
        from_tag(&bye),
        from_tag(&p.invite),
        "local tag is our From tag"
    );
    assert_eq!(bye.headers.to().unwrap().tag(), Some("agent-1"));
    assert_ne!(
        bye.headers.top_via().unwrap().branch(),
        ack.headers.top_via().unwrap().branch()
    );
    assert!(
        u.events().is_empty(),
        "the call ends when the BYE completes"
    );
    u.send(&reply(&bye, 200, None, "", ""));
    assert_eq!(
        u.events(),
        vec![Event::CallEnded {
            call: p.call,
            reason: EndReason::LocalHangup
        }]
    );
    assert_eq!(u.ep.active_calls(), 0);
}

#[test]
fn retransmitted_200_gets_the_ack_again_and_one_event_only() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    let ok = reply(&p.invite, 200, Some("agent-1"), "", ANSWER);
    u.send(&ok);
    let first = u.transmits();
    assert_eq!(first.len(), 1);
    assert_eq!(u.events().len(), 1);
    let retx_before = u.ep.stats().retransmissions;
    for at in [500, 1500, 3500] {
        u.run_until(Duration::from_millis(at));
        u.send(&ok);
        let again = u.transmits();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].payload, first[0].payload, "the very same ACK");
        assert_eq!(again[0].remote, first[0].remote);
    }
    assert!(u.events().is_empty(), "OutgoingAnswered is reported once");
    assert_eq!(u.ep.stats().retransmissions, retx_before + 3);
    // After 64*T1 the record is gone; by then the agent has long given up.
    u.run_until(Duration::from_secs(33));
    u.send(&ok);
    assert!(u.transmits().is_empty());
    assert_eq!(u.ep.active_calls(), 1, "the call itself stays up");
}

#[test]
fn tcp_invite_is_not_retransmitted_and_times_out() {
    let mut u = Uac::new(Transport::Tcp);
    let p = u.place();
    let via = p.invite.headers.top_via().unwrap();
    assert_eq!(via.to_string().split(' ').next(), Some("SIP/2.0/TCP"));
    assert_eq!(via.sent_by_key(), "198.51.100.1:5061");
    assert_eq!(
        p.invite.headers.get("Contact"),
        Some("<sip:198.51.100.1:5061;transport=tcp>")
    );
    assert!(u.run_until(Duration::from_millis(31_999)).is_empty());
    assert!(u.run_until(Duration::from_secs(32)).is_empty());
    assert_eq!(u.events(), failed(p.call, None, OutgoingFailure::Timeout));
}

#[test]
fn tcp_answer_is_acked_on_the_same_connection() {
    let mut u = Uac::new(Transport::Tcp);
    let p = u.place();
    u.send(&reply(&p.invite, 200, Some("agent-1"), "", ANSWER));
    let sent = u.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].remote, u.remote, "TCP reuses the connection");
    assert_eq!(as_request(&sent[0]).method, Method::Ack);
    assert!(matches!(
        u.events().as_slice(),
        [Event::OutgoingAnswered { .. }]
    ));
    assert!(u.run_until(Duration::from_secs(60)).is_empty());
}

#[test]
fn early_media_183_and_a_200_with_another_to_tag() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    u.send(&reply(&p.invite, 183, Some("early-1"), "", ANSWER));
    match u.events().as_slice() {
        [Event::OutgoingProgress {
            call,
            status: 183,
            early_media: Some(sd),
        }] => {
            assert_eq!(*call, p.call);
            assert_eq!(sd.media[0].port, 7000);
        }
        other => panic!("expected OutgoingProgress with SDP, got {other:?}"),
    }
    // A forking proxy: a different branch picked up.
    u.send(&reply(&p.invite, 200, Some("agent-1"), "", ANSWER));
    assert!(matches!(
        u.events().as_slice(),
        [Event::OutgoingAnswered { .. }]
    ));
    let ack = u.requests().pop().unwrap();
    assert_eq!(ack.headers.to().unwrap().tag(), Some("agent-1"));
    // The early dialog is not the call's dialog; the 2xx's is.
    let early_bye = from_agent(&p.invite, "BYE", 1, "", "").replace("tag=agent-1", "tag=early-1");
    u.send(&early_bye);
    assert_eq!(as_response(&u.transmits()[0]).status, 481);
    u.send(&from_agent(&p.invite, "BYE", 2, "", ""));
    assert_eq!(as_response(&u.transmits()[0]).status, 200);
    assert_eq!(
        u.events(),
        vec![Event::CallEnded {
            call: p.call,
            reason: EndReason::RemoteBye
        }]
    );
}

#[test]
fn a_second_fork_answering_is_acked_and_byed() {
    let mut u = Uac::new(Transport::Udp);
    let (p, _ack) = u.answered();
    let other = reply(&p.invite, 200, Some("fork-2"), "", ANSWER);
    u.send(&other);
    let sent = u.requests();
    let methods: Vec<&Method> = sent.iter().map(|r| &r.method).collect();
    assert_eq!(methods, vec![&Method::Ack, &Method::Bye]);
    assert!(sent
        .iter()
        .all(|r| r.headers.to().unwrap().tag() == Some("fork-2")));
    assert!(u.events().is_empty());
    assert_eq!(u.ep.active_calls(), 1, "the first answer keeps the call");
    // Its retransmission only gets the ACK again.
    u.send(&other);
    let again = u.requests();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].method, Method::Ack);
}

#[test]
fn two_hundred_without_sdp_is_acked_then_byed() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    u.send(&reply(&p.invite, 200, Some("agent-1"), "", ""));
    let methods: Vec<Method> = u.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    assert_eq!(
        u.events(),
        failed(p.call, Some(200), OutgoingFailure::MissingAnswer)
    );
    assert_eq!(u.ep.active_calls(), 0);
}

#[test]
fn two_hundred_with_unusable_sdp_is_acked_then_byed() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    let rejected_audio = ANSWER.replace("m=audio 7000", "m=audio 0");
    u.send(&reply(&p.invite, 200, Some("agent-1"), "", &rejected_audio));
    let methods: Vec<Method> = u.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    assert_eq!(
        u.events(),
        failed(
            p.call,
            Some(200),
            OutgoingFailure::BadAnswer(AnswerError::NoAudio)
        )
    );

    let q = u.place();
    u.send(&reply(&q.invite, 200, Some("agent-1"), "", "garbage\r\n"));
    let methods: Vec<Method> = u.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    assert_eq!(
        u.events(),
        failed(
            q.call,
            Some(200),
            OutgoingFailure::BadAnswer(AnswerError::Body(BodyError::Sdp(SdpError::MissingVersion)))
        )
    );
}

#[test]
fn two_hundred_without_to_tag_cannot_form_a_dialog() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    u.send(&reply(&p.invite, 200, None, "", ANSWER));
    assert!(u.transmits().is_empty(), "nothing to address an ACK to");
    match u.events().as_slice() {
        [Event::OutgoingFailed {
            status: Some(200),
            reason: OutgoingFailure::InvalidDialog(_),
            ..
        }] => {}
        other => panic!("expected InvalidDialog, got {other:?}"),
    }
}

#[test]
fn info_and_reinvite_on_the_outgoing_dialog() {
    let mut u = Uac::new(Transport::Udp);
    let (p, _ack) = u.answered();
    u.send(&from_agent(
        &p.invite,
        "INFO",
        1,
        "",
        "Signal=5\r\nDuration=160\r\n",
    ));
    assert_eq!(as_response(&u.transmits()[0]).status, 200);
    assert_eq!(
        u.events(),
        vec![Event::DtmfInfo {
            call: p.call,
            digit: '5',
            duration_ms: 160
        }]
    );

    let hold = ANSWER.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    u.send(&from_agent(&p.invite, "INVITE", 2, "", &hold));
    assert_eq!(as_response(&u.transmits()[0]).status, 100);
    match u.events().as_slice() {
        [Event::ReInvite {
            call,
            offer: Some(_),
        }] => assert_eq!(*call, p.call),
        other => panic!("expected ReInvite, got {other:?}"),
    }
    u.ep.answer_reinvite(u.now, p.call, Ok(offer())).unwrap();
    let ok = as_response(&u.transmits()[0]);
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.headers.to().unwrap().tag(),
        Some(from_tag(&p.invite).as_str())
    );
    assert_eq!(ok.headers.get("CSeq"), Some("2 INVITE"));
    // An old CSeq is refused: the remote CSeq space is tracked for this dialog too.
    let stale = from_agent(&p.invite, "INFO", 1, "", "Signal=1\r\n").replace("INFO-1", "stale");
    u.send(&stale);
    assert_eq!(as_response(&u.transmits()[0]).status, 500);
}

#[test]
fn refer_on_the_outgoing_dialog() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    assert_eq!(
        u.ep.refer(u.now, p.call, "sip:desk@pbx.example", None),
        Err(CallError::WrongState),
        "no dialog before the answer"
    );
    let rr = "Record-Route: <sip:core.pbx.example;lr>, <sip:192.0.2.60:5070;lr>\r\n";
    u.send(&reply(&p.invite, 200, Some("agent-1"), rr, ANSWER));
    u.transmits();
    u.events();

    u.ep.refer(
        u.now,
        p.call,
        "sip:desk@pbx.example",
        Some("sip:hotline@198.51.100.1"),
    )
    .unwrap();
    let sent = u.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].remote, "192.0.2.60:5070".parse().unwrap());
    let refer = as_request(&sent[0]);
    assert!(refer.validate().is_ok());
    assert_eq!(refer.method, Method::Refer);
    assert_eq!(refer.uri.to_string(), "sip:agent@192.0.2.51:5062");
    let routes: Vec<&str> = refer.headers.get_all("Route").collect();
    assert_eq!(
        routes,
        vec!["<sip:192.0.2.60:5070;lr>", "<sip:core.pbx.example;lr>"]
    );
    assert_eq!(
        refer.headers.get("CSeq"),
        Some("2 REFER"),
        "after the INVITE's 1"
    );
    assert_eq!(from_tag(&refer), from_tag(&p.invite));
    assert_eq!(refer.headers.to().unwrap().tag(), Some("agent-1"));
    assert_eq!(
        refer.headers.call_id().unwrap(),
        p.invite.headers.call_id().unwrap()
    );
    assert_eq!(
        refer.headers.get("Refer-To"),
        Some("<sip:desk@pbx.example>")
    );
    assert_eq!(
        refer.headers.get("Referred-By"),
        Some("<sip:hotline@198.51.100.1>")
    );

    u.send(&reply(&refer, 202, None, "", ""));
    assert_eq!(
        u.events(),
        vec![Event::ReferResponse {
            call: p.call,
            status: 202
        }]
    );
    // The agent's side reports its call to the desk; NOTIFY may use the id form.
    u.send(&from_agent(
        &p.invite,
        "NOTIFY",
        1,
        "Event: refer;id=2\r\nSubscription-State: terminated;reason=noresource\r\n",
        "SIP/2.0 200 OK\r\n",
    ));
    let ok = as_response(&u.transmits()[0]);
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.headers.to().unwrap().tag(),
        Some(from_tag(&p.invite).as_str())
    );
    assert_eq!(
        u.events(),
        vec![Event::ReferNotify {
            call: p.call,
            status: Some(200),
            terminated: true
        }]
    );
    u.ep.hangup(u.now, p.call).unwrap();
    let bye = as_request(&u.transmits()[0]);
    assert_eq!(bye.headers.get("CSeq"), Some("3 BYE"));
}

#[test]
fn commands_for_incoming_calls_are_refused_on_outgoing_ones() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    assert_eq!(
        u.ep.answer(u.now, p.call, offer()),
        Err(CallError::WrongState)
    );
    assert_eq!(u.ep.reject(u.now, p.call, 486), Err(CallError::WrongState));
    assert_eq!(
        u.ep.send_provisional(u.now, p.call, 180, None),
        Err(CallError::WrongState)
    );
    assert_eq!(
        u.ep.answer_reinvite(u.now, p.call, Ok(offer())),
        Err(CallError::WrongState)
    );
    assert!(u.transmits().is_empty());
}

#[test]
fn invalid_parameters_are_refused_before_sending() {
    let mut u = Uac::new(Transport::Udp);
    let base = u.outgoing();
    let cases: Vec<(OutgoingCall, CallError)> = vec![
        (
            OutgoingCall {
                target: Uri::parse("sip:agent@pbx.example?Subject=hi").unwrap(),
                ..base.clone()
            },
            CallError::InvalidTarget,
        ),
        (
            OutgoingCall {
                from_user: "a b".into(),
                ..base.clone()
            },
            CallError::InvalidFromUser,
        ),
        (
            OutgoingCall {
                from_display: Some("Eve\r\nX-Injected: 1".into()),
                ..base.clone()
            },
            CallError::InvalidDisplayName,
        ),
        (
            OutgoingCall {
                extra_headers: vec![
                    ("X-Ok".into(), "1".into()),
                    ("X-Bad".into(), "a\r\nVia: evil".into()),
                ],
                ..base.clone()
            },
            CallError::InvalidExtraHeader(1),
        ),
        (
            OutgoingCall {
                extra_headers: vec![("Bad Name".into(), "1".into())],
                ..base.clone()
            },
            CallError::InvalidExtraHeader(0),
        ),
        (
            OutgoingCall {
                extra_headers: vec![("i".into(), "spoofed-call-id".into())],
                ..base.clone()
            },
            CallError::ReservedExtraHeader(0),
        ),
        (
            OutgoingCall {
                sdp_offer: String::new(),
                ..base.clone()
            },
            CallError::InvalidOffer(SdpError::MissingVersion),
        ),
        (
            OutgoingCall {
                remote: "[2001:db8::1]:5060".parse().unwrap(),
                ..base.clone()
            },
            CallError::AddressFamilyMismatch,
        ),
    ];
    for (out, err) in cases {
        assert_eq!(u.ep.invite(u.now, out), Err(err));
    }
    assert!(u.transmits().is_empty());
    assert_eq!(u.ep.active_calls(), 0);
    // A From without user part and a tel: To are fine.
    let ok = OutgoingCall {
        from_user: String::new(),
        to: Some(Uri::parse("tel:+4930222").unwrap()),
        extra_headers: Vec::new(),
        ..base
    };
    u.ep.invite(u.now, ok).unwrap();
    let inv = u.requests().pop().unwrap();
    assert_eq!(
        inv.headers.from().unwrap().uri.to_string(),
        "sip:198.51.100.1"
    );
    assert_eq!(inv.headers.to().unwrap().uri.to_string(), "tel:+4930222");
}

#[test]
fn outgoing_calls_count_towards_the_capacity_guard() {
    let mut u = Uac::with(
        Transport::Udp,
        EndpointConfig {
            max_calls: 1,
            ..config()
        },
    );
    let p = u.place();
    // An incoming call from the trunk now meets a full house.
    u.send(
        "INVITE sip:hotline@198.51.100.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK-in1\r\n\
From: <sip:+4930999@bank.example>;tag=in1\r\nTo: <sip:hotline@198.51.100.1>\r\n\
Call-ID: in-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:c@192.0.2.50>\r\n\
Content-Length: 0\r\n\r\n",
    );
    assert_eq!(as_response(&u.transmits()[0]).status, 503);
    assert!(u.events().is_empty());
    // Once the outgoing call failed, the slot is free again.
    u.send(&reply(&p.invite, 603, Some("x"), "", ""));
    u.transmits();
    assert_eq!(u.ep.active_calls(), 0);
}

#[test]
fn stats_count_outgoing_traffic() {
    let mut u = Uac::new(Transport::Udp);
    let p = u.place();
    u.run_until(Duration::from_millis(500));
    u.send(&reply(&p.invite, 180, Some("agent-1"), "", ""));
    u.send(&reply(&p.invite, 200, Some("agent-1"), "", ANSWER));
    u.transmits();
    u.ep.hangup(u.now, p.call).unwrap();
    let bye = u.requests().pop().unwrap();
    u.send(&reply(&bye, 200, None, "", ""));
    let s = u.ep.stats();
    assert_eq!(s.requests_sent, 4, "INVITE twice, ACK, BYE");
    assert_eq!(s.retransmissions, 1);
    assert_eq!(s.responses_received, 3);
    assert_eq!(s.responses_sent, 0);
    assert_eq!(s.requests, 0);
}

/// splitmix64, so the mutation run is reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &str) -> Vec<u8> {
    const INTERESTING: &[u8] = b" \t\r\n:;,=\"<>@/?%0123456789-.z\x00\xff";
    let mut out = input.as_bytes().to_vec();
    for _ in 0..rng.below(4) {
        let len = out.len();
        match rng.below(4) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            1 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(8.min(len - i));
                out.drain(i..i + n);
            }
            2 => out.truncate(rng.below(len + 1)),
            _ => {
                let i = rng.below(len + 1);
                out.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
        }
    }
    out
}

/// Checks the outgoing-call event contract per call: `OutgoingAnswered` at most once,
/// then exactly one terminal event (`OutgoingFailed` before an answer, `CallEnded` after).
fn record(events: Vec<Event>, seen: &mut BTreeMap<CallHandle, (bool, u32)>) {
    for ev in events {
        match ev {
            Event::OutgoingAnswered { call, .. } => {
                let s = seen.entry(call).or_default();
                assert!(!s.0 && s.1 == 0, "answered twice or after its end");
                s.0 = true;
            }
            Event::OutgoingFailed { call, .. } => {
                let s = seen.entry(call).or_default();
                assert!(!s.0, "a failure after the answer");
                s.1 += 1;
            }
            Event::CallEnded { call, .. } => {
                let s = seen.entry(call).or_default();
                assert!(s.0, "CallEnded for an unanswered outgoing call");
                s.1 += 1;
            }
            _ => {}
        }
    }
}

#[test]
fn mutated_responses_never_panic_and_every_call_ends_once() {
    let mut u = Uac::with(
        Transport::Udp,
        EndpointConfig {
            max_calls: 1000,
            ..config()
        },
    );
    let mut rng = Rng(0x5eed_0ac0);
    // Per call: (answered, terminal events seen).
    let mut seen: BTreeMap<CallHandle, (bool, u32)> = BTreeMap::new();
    let rr = "Record-Route: <sip:192.0.2.60:5070;lr>\r\n";
    for round in 0..300u64 {
        let p = u.place();
        seen.entry(p.call).or_default();
        let templates = [
            reply(&p.invite, 100, None, "", ""),
            reply(&p.invite, 180, Some("agent-1"), "", ""),
            reply(&p.invite, 183, Some("early-1"), "", ANSWER),
            reply(&p.invite, 200, Some("agent-1"), rr, ANSWER),
            reply(&p.invite, 200, Some("fork-2"), "", ANSWER),
            reply(&p.invite, 486, Some("agent-1"), "", ""),
            reply(&p.invite, 487, Some("agent-1"), "", ""),
            from_agent(&p.invite, "BYE", 5, "", ""),
            from_agent(&p.invite, "INVITE", 6, "", ANSWER),
            from_agent(&p.invite, "INFO", 7, "", "Signal=5\r\n"),
        ];
        for _ in 0..1 + rng.below(6) {
            let pick = rng.below(templates.len());
            let data = mutate(&mut rng, &templates[pick]);
            u.ep.handle_input(u.now, u.transport, u.local, u.remote, &data);
            if rng.below(5) == 0 {
                let _ = u.ep.hangup(u.now, p.call);
            }
            if rng.below(7) == 0 {
                let _ = u.ep.answer_reinvite(u.now, p.call, Ok(offer()));
            }
            let at = u.now - u.t0 + Duration::from_millis(rng.below(4000) as u64);
            u.run_until(at);
            for t in u.transmits() {
                assert!(
                    SipMessage::parse(&t.payload).is_ok(),
                    "round {round}: we sent unparseable bytes"
                );
            }
            record(u.events(), &mut seen);
        }
    }
    // Hang up whatever is still up, then let every timer run out.
    let open: Vec<CallHandle> = seen
        .iter()
        .filter(|(_, s)| s.1 == 0)
        .map(|(c, _)| *c)
        .collect();
    for call in open {
        let _ = u.ep.hangup(u.now, call);
    }
    let end = u.now - u.t0 + Duration::from_secs(300);
    u.run_until(end);
    u.transmits();
    let events = u.events();
    record(events, &mut seen);
    assert!(
        seen.values().all(|s| s.1 == 1),
        "every call ends exactly once"
    );
    assert!(seen.values().any(|s| s.0), "some calls were answered");
    assert_eq!(u.ep.active_calls(), 0);
    assert_eq!(u.ep.poll_timeout(), None, "nothing left behind");
}
