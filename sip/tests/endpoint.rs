//! Endpoint scenarios driven like a sipp UAC: raw SIP text in, transmitted bytes
//! and events out, all on simulated time.

mod common;

use std::net::SocketAddr;

use common::{as_request, as_response, Sim};
use std::time::Duration;

use voxgate_sip::endpoint::{
    CallError, CallHandle, EndReason, EndpointConfig, Event, IncomingCall, Transport,
};
use voxgate_sip::sdp::{self, Direction, LocalMedia};
use voxgate_sip::{Method, Request, Response, SipMessage};

const OFFER: &str = "v=0\r\no=sipp 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

/// The trunk's side of the test: sends raw SIP text to the endpoint and reads what it sends back.
type Peer = Sim;

fn config() -> EndpointConfig {
    EndpointConfig {
        max_calls: 2,
        retry_after_secs: 17,
        user_agent: "voxgate-test".into(),
        contact_host: "198.51.100.1".into(),
        udp_port: 5060,
        tcp_port: 5061,
        seed: 42,
        ..EndpointConfig::default()
    }
}

impl Peer {
    fn new(transport: Transport) -> Self {
        Self::with(transport, "198.51.100.1:5060", "192.0.2.20:5070", config())
    }

    fn with(transport: Transport, local: &str, remote: &str, cfg: EndpointConfig) -> Self {
        let remote: SocketAddr = remote.parse().unwrap();
        Sim::on(transport, local.parse().unwrap(), remote, cfg)
    }

    fn tp(&self) -> &'static str {
        match self.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    fn messages(&mut self) -> Vec<SipMessage> {
        self.transmits()
            .into_iter()
            .map(|t| {
                assert_eq!(t.transport, self.transport);
                assert_eq!(t.local, self.local);
                SipMessage::parse(&t.payload).expect("we only send parseable SIP")
            })
            .collect()
    }

    fn responses(&mut self) -> Vec<Response> {
        self.messages()
            .into_iter()
            .map(|m| match m {
                SipMessage::Response(r) => r,
                SipMessage::Request(r) => panic!("expected response, got {}", r.method),
            })
            .collect()
    }

    fn statuses(&mut self) -> Vec<u16> {
        self.responses().iter().map(|r| r.status).collect()
    }

    fn invite(&self, call_id: &str, branch: &str, extra: &str, body: &str) -> String {
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        format!(
            "INVITE sip:hotline@198.51.100.1 SIP/2.0\r\n\
Via: SIP/2.0/{tp} {me};branch={branch};rport\r\n\
From: \"Alice\" <sip:+4930111@bank.example>;tag=ftag-{call_id}\r\n\
To: <sip:0800123@198.51.100.1>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
Contact: <sip:sipp@{me}>\r\n{extra}{ct}Content-Length: {len}\r\n\r\n{body}",
            tp = self.tp(),
            me = self.me,
            len = body.len(),
        )
    }

    /// In-dialog request; `dialog` is (Call-ID, our To tag).
    fn in_dialog(
        &self,
        method: &str,
        (call_id, to_tag): (&str, &str),
        cseq: u32,
        branch: &str,
        extra: &str,
        body: &str,
    ) -> String {
        format!(
            "{method} sip:hotline@198.51.100.1 SIP/2.0\r\n\
Via: SIP/2.0/{tp} {me};branch={branch}\r\n\
From: \"Alice\" <sip:+4930111@bank.example>;tag=ftag-{call_id}\r\n\
To: <sip:0800123@198.51.100.1>;tag={to_tag}\r\n\
Call-ID: {call_id}\r\nCSeq: {cseq} {cseq_method}\r\nMax-Forwards: 70\r\n\
Contact: <sip:sipp@{me}>\r\n{extra}Content-Length: {len}\r\n\r\n{body}",
            tp = self.tp(),
            me = self.me,
            cseq_method = if method == "ACK" { "ACK" } else { method },
            len = body.len(),
        )
    }

    /// INVITE → 100 + IncomingCall; returns the call and the event.
    fn incoming(&mut self, call_id: &str, branch: &str) -> IncomingCall {
        let inv = self.invite(call_id, branch, "", OFFER);
        self.send(&inv);
        assert_eq!(self.statuses(), vec![100]);
        match self.events().as_slice() {
            [Event::IncomingCall(c)] => c.clone(),
            other => panic!("expected IncomingCall, got {other:?}"),
        }
    }

    /// Full setup up to CallConfirmed; returns (call, our To tag).
    fn confirmed_call(&mut self, call_id: &str) -> (CallHandle, String) {
        self.confirmed_call_with(call_id, "")
    }

    /// `confirmed_call` with `extra` headers (e.g. Record-Route) in the INVITE.
    fn confirmed_call_with(&mut self, call_id: &str, extra: &str) -> (CallHandle, String) {
        let inv = self.invite(call_id, &format!("z9hG4bK-{call_id}"), extra, OFFER);
        self.send(&inv);
        assert_eq!(self.statuses(), vec![100]);
        let c = match self.events().as_slice() {
            [Event::IncomingCall(c)] => c.clone(),
            other => panic!("expected IncomingCall, got {other:?}"),
        };
        self.ep.answer(self.now, c.call, answer_sdp(&c)).unwrap();
        let ok = self.responses().pop().unwrap();
        assert_eq!(ok.status, 200);
        let tag = ok.headers.to().unwrap().tag().unwrap().to_string();
        let ack = self.in_dialog(
            "ACK",
            (call_id, &tag),
            1,
            &format!("z9hG4bK-ack-{call_id}"),
            "",
            "",
        );
        self.send(&ack);
        assert_eq!(self.events(), vec![Event::CallConfirmed { call: c.call }]);
        (c.call, tag)
    }
}

impl Peer {
    /// NOTIFY of the subscription a REFER created (RFC 3515 §2.4.4); empty `event`, `state`
    /// or `frag` leave out the Event header, Subscription-State or sipfrag body.
    fn notify(
        &self,
        dialog: (&str, &str),
        cseq: u32,
        branch: &str,
        event: &str,
        state: &str,
        frag: &str,
    ) -> String {
        let mut extra = String::new();
        if !event.is_empty() {
            extra += &format!("Event: {event}\r\n");
        }
        if !state.is_empty() {
            extra += &format!("Subscription-State: {state}\r\n");
        }
        if !frag.is_empty() {
            extra += "Content-Type: message/sipfrag;version=2.0\r\n";
        }
        self.in_dialog("NOTIFY", dialog, cseq, branch, &extra, frag)
    }

    /// The one message the endpoint sent, which must be a REFER.
    fn sent_refer(&mut self) -> Request {
        let sent = self.transmits();
        assert_eq!(sent.len(), 1, "exactly the REFER");
        let refer = as_request(&sent[0]);
        assert_eq!(refer.method, Method::Refer);
        refer
    }
}

fn answer_sdp(c: &IncomingCall) -> String {
    let local = LocalMedia::new("198.51.100.1".parse().unwrap(), 40000, 7);
    let n = sdp::negotiate(c.offer.as_ref().expect("offer"), &local).unwrap();
    n.answer.to_string()
}

fn reply_to(req: &Request, status: u16) -> String {
    let resp = Response::from_request(req, status, None);
    String::from_utf8(resp.to_bytes()).unwrap()
}

#[test]
fn basic_call_100_180_200_ack_bye() {
    let mut p = Peer::new(Transport::Udp);
    let c = p.incoming("basic", "z9hG4bK-basic");
    assert_eq!(c.from, "sip:+4930111@bank.example");
    assert_eq!(c.from_display.as_deref(), Some("Alice"));
    assert_eq!(c.to, "sip:0800123@198.51.100.1");
    assert_eq!(c.call_id, "basic");
    assert_eq!(c.remote, p.remote);
    assert_eq!(c.parse_warnings, 0);
    assert_eq!(c.offer.as_ref().unwrap().media[0].port, 6000);
    assert_eq!(p.ep.active_calls(), 1);

    p.ep.send_provisional(p.now, c.call, 180, None).unwrap();
    let ringing = p.responses();
    assert_eq!(ringing[0].status, 180);
    let tag = ringing[0].headers.to().unwrap().tag().unwrap().to_string();
    assert_eq!(ringing[0].headers.get("Server"), Some("voxgate-test"));
    assert!(ringing[0].headers.get("Contact").is_some());

    p.ep.answer(p.now, c.call, answer_sdp(&c)).unwrap();
    let ok = p.responses().pop().unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.headers.to().unwrap().tag(),
        Some(tag.as_str()),
        "same tag as 180"
    );
    assert_eq!(ok.headers.get("Contact"), Some("<sip:198.51.100.1:5060>"));
    assert!(ok
        .headers
        .content_type()
        .unwrap()
        .unwrap()
        .is("application", "sdp"));
    let answer = sdp::SessionDescription::parse(&ok.body).unwrap();
    assert_eq!(answer.media[0].formats, vec!["8", "101"]);
    assert_eq!(
        p.ep.send_provisional(p.now, c.call, 180, None),
        Err(CallError::WrongState)
    );

    let ack = p.in_dialog("ACK", ("basic", &tag), 1, "z9hG4bK-ack", "", "");
    p.send(&ack);
    assert_eq!(p.events(), vec![Event::CallConfirmed { call: c.call }]);
    assert!(p.transmits().is_empty(), "ACK is never answered");

    let bye = p.in_dialog("BYE", ("basic", &tag), 2, "z9hG4bK-bye", "", "");
    p.send(&bye);
    let resp = p.responses();
    assert_eq!(resp.len(), 1);
    assert_eq!(resp[0].status, 200);
    assert_eq!(resp[0].headers.cseq().unwrap().method, Method::Bye);
    assert_eq!(
        p.events(),
        vec![Event::CallEnded {
            call: c.call,
            reason: EndReason::RemoteBye
        }]
    );
    assert_eq!(p.ep.active_calls(), 0);
    // A retransmitted BYE gets the same 200 from the transaction, no new event.
    p.send(&bye);
    assert_eq!(p.statuses(), vec![200]);
    assert!(p.events().is_empty());
    assert_eq!(
        p.ep.answer(p.now, c.call, String::new()),
        Err(CallError::UnknownCall)
    );
}

#[test]
fn responses_stamp_received_and_rport_and_go_to_source() {
    let mut p = Peer::new(Transport::Udp);
    // Via claims a private address; the packet comes from the NAT's public one.
    let inv = p
        .invite("nat", "z9hG4bK-nat", "", OFFER)
        .replace(&format!("UDP {}", p.me), "UDP 10.0.0.7:5999");
    p.send(&inv);
    let t = p.transmits();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].remote, p.remote);
    let trying = match SipMessage::parse(&t[0].payload).unwrap() {
        SipMessage::Response(r) => r,
        SipMessage::Request(_) => panic!(),
    };
    let via = trying.headers.top_via().unwrap();
    assert_eq!(via.received(), Some(p.remote.ip()));
    assert_eq!(via.rport(), Some(Some(p.remote.port())));
    assert_eq!(via.branch(), Some("z9hG4bK-nat"));
}

#[test]
fn two_hundred_retransmitted_until_ack() {
    let mut p = Peer::new(Transport::Udp);
    let c = p.incoming("retx", "z9hG4bK-retx");
    p.ep.answer(p.now, c.call, answer_sdp(&c)).unwrap();
    let first = p.transmits();
    assert_eq!(first.len(), 1);
    let sent = p.run_until(Duration::from_millis(12_000));
    let times: Vec<u64> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, vec![500, 1500, 3500, 7500, 11500]);
    assert!(sent.iter().all(|(_, t)| t.payload == first[0].payload));
    let tag = SipMessage::parse(&first[0].payload)
        .unwrap()
        .headers()
        .to()
        .unwrap()
        .tag()
        .unwrap()
        .to_string();
    let ack = p.in_dialog("ACK", ("retx", &tag), 1, "z9hG4bK-a", "", "");
    p.send(&ack);
    assert_eq!(p.events(), vec![Event::CallConfirmed { call: c.call }]);
    assert!(p.run_until(Duration::from_secs(60)).is_empty());
    assert_eq!(p.ep.stats().retransmissions, 5);
}

#[test]
fn ack_timeout_sends_bye() {
    let mut p = Peer::new(Transport::Udp);
    let c = p.incoming("noack", "z9hG4bK-noack");
    p.ep.answer(p.now, c.call, answer_sdp(&c)).unwrap();
    p.transmits();
    let sent = p.run_until(Duration::from_millis(32_000));
    let (retx, rest): (Vec<_>, Vec<_>) = sent
        .iter()
        .partition(|(_, t)| matches!(SipMessage::parse(&t.payload), Ok(SipMessage::Response(_))));
    assert_eq!(retx.len(), 10, "T1 doubling to T2 until 64*T1");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0, 32_000);
    let bye = as_request(&rest[0].1);
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri.to_string(), format!("sip:sipp@{}", p.me));
    assert_eq!(bye.headers.get("User-Agent"), Some("voxgate-test"));
    assert_eq!(bye.headers.get("Max-Forwards"), Some("70"));
    assert!(bye.headers.get("Contact").is_some());
    assert_eq!(bye.headers.to().unwrap().tag(), Some("ftag-noack"));
    assert_eq!(
        p.events(),
        vec![Event::CallEnded {
            call: c.call,
            reason: EndReason::AckTimeout
        }]
    );
    assert_eq!(p.ep.active_calls(), 0);
    // The BYE's 200 is consumed quietly; the call already ended.
    p.send(&reply_to(&bye, 200));
    assert!(p.events().is_empty());
}

#[test]
fn cancel_gets_200_and_487_and_ack_is_absorbed() {
    let mut p = Peer::new(Transport::Udp);
    let c = p.incoming("cxl", "z9hG4bK-cxl");
    p.ep.send_provisional(p.now, c.call, 180, None).unwrap();
    let tag = p.responses()[0]
        .headers
        .to()
        .unwrap()
        .tag()
        .unwrap()
        .to_string();
    let cancel = format!(
        "CANCEL sip:hotline@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-cxl;rport\r\n\
From: \"Alice\" <sip:+4930111@bank.example>;tag=ftag-cxl\r\nTo: <sip:0800123@198.51.100.1>\r\n\
Call-ID: cxl\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        me = p.me
    );
    p.send(&cancel);
    let resp = p.responses();
    let got: Vec<(u16, Method)> = resp
        .iter()
        .map(|r| (r.status, r.headers.cseq().unwrap().method))
        .collect();
    assert_eq!(got, vec![(200, Method::Cancel), (487, Method::Invite)]);
    assert_eq!(resp[1].headers.to().unwrap().tag(), Some(tag.as_str()));
    assert_eq!(
        p.events(),
        vec![Event::CallEnded {
            call: c.call,
            reason: EndReason::Cancelled
        }]
    );
    assert_eq!(
        p.ep.answer(p.now, c.call, String::new()),
        Err(CallError::UnknownCall)
    );
    // 487 is retransmitted (Timer G) until the ACK arrives.
    let sent = p.run_until(Duration::from_millis(600));
    assert_eq!(sent.len(), 1);
    let ack = format!(
        "ACK sip:hotline@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-cxl;rport\r\n\
From: \"Alice\" <sip:+4930111@bank.example>;tag=ftag-cxl\r\nTo: <sip:0800123@198.51.100.1>;tag={tag}\r\n\
Call-ID: cxl\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        me = p.me
    );
    p.send(&ack);
    assert!(p.transmits().is_empty());
    assert!(p.events().is_empty());
    assert!(p.run_until(Duration::from_secs(60)).is_empty());
    assert_eq!(p.ep.poll_timeout(), None, "all transactions cleaned up");
    // CANCEL for nothing → 481.
    p.send(&cancel.replace("z9hG4bK-cxl", "z9hG4bK-other"));
    assert_eq!(p.statuses(), vec![481]);
}

#[test]
fn options_in_and_out_of_dialog() {
    let mut p = Peer::new(Transport::Udp);
    let opt = format!(
        "OPTIONS sip:198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-o1\r\n\
From: <sip:sbc@bank.example>;tag=o1\r\nTo: <sip:198.51.100.1>\r\nCall-ID: opt1\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        me = p.me
    );
    p.send(&opt);
    let r = p.responses().pop().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("Allow"),
        Some("INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY")
    );
    assert!(r.headers.get("Accept").unwrap().contains("application/sdp"));
    assert!(r.headers.get("Accept").unwrap().contains("message/sipfrag"));
    assert!(r.headers.contains("Supported"));
    assert!(r.headers.to().unwrap().tag().is_some());
    assert!(p.events().is_empty());
    // Answered statelessly: a retransmission gets the same answer, and a flood of pings leaves no
    // transaction (and so no timer) behind.
    p.send(&opt);
    assert_eq!(p.statuses(), vec![200]);
    for i in 0..1000 {
        p.send(&opt.replace("z9hG4bK-o1", &format!("z9hG4bK-flood{i}")));
    }
    assert_eq!(p.statuses().len(), 1000);
    assert_eq!(
        p.ep.poll_timeout(),
        None,
        "no state kept for out-of-dialog OPTIONS"
    );

    p.send(
        &opt.replace("z9hG4bK-o1", "z9hG4bK-o2")
            .replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(p.statuses(), vec![483]);

    let (_call, tag) = p.confirmed_call("optdlg");
    let in_dlg = p.in_dialog("OPTIONS", ("optdlg", &tag), 2, "z9hG4bK-o3", "", "");
    p.send(&in_dlg);
    let r = p.responses().pop().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.to().unwrap().tag(), Some(tag.as_str()));
    assert!(r.headers.contains("Allow"));
}

#[test]
fn reinvite_hold_and_resume() {
    let mut p = Peer::new(Transport::Udp);
    let (call, tag) = p.confirmed_call("hold");
    let local = LocalMedia::new("198.51.100.1".parse().unwrap(), 40000, 7);

    for (cseq, attr, expect) in [
        (2, "a=sendonly\r\n", Direction::RecvOnly),
        (4, "a=sendrecv\r\n", Direction::SendRecv),
    ] {
        let body = format!("{OFFER}{attr}").replace("o=sipp 1 1", &format!("o=sipp 1 {cseq}"));
        let reinv = p.in_dialog(
            "INVITE",
            ("hold", &tag),
            cseq,
            &format!("z9hG4bK-re{cseq}"),
            "Content-Type: application/sdp\r\n",
            &body,
        );
        p.send(&reinv);
        assert_eq!(p.statuses(), vec![100]);
        let offer = match p.events().as_slice() {
            [Event::ReInvite {
                call: c,
                offer: Some(o),
            }] if *c == call => o.clone(),
            other => panic!("expected ReInvite, got {other:?}"),
        };
        let mut l = local.clone();
        l.session_version += u64::from(cseq);
        let n = sdp::negotiate(&offer, &l).unwrap();
        assert_eq!(n.direction, expect);
        // A second re-INVITE while this one is pending → 491.
        let glare = p.in_dialog("INVITE", ("hold", &tag), cseq + 1, "z9hG4bK-glare", "", "");
        p.send(&glare);
        assert_eq!(p.statuses(), vec![491]);
        let glare_ack = p.in_dialog("ACK", ("hold", &tag), cseq + 1, "z9hG4bK-glare", "", "");
        p.send(&glare_ack);
        assert!(p.transmits().is_empty());

        p.ep.answer_reinvite(p.now, call, Ok(n.answer.to_string()))
            .unwrap();
        let ok = p.responses().pop().unwrap();
        assert_eq!(ok.status, 200);
        assert_eq!(ok.headers.cseq().unwrap().seq, cseq);
        let body = String::from_utf8(ok.body.clone()).unwrap();
        assert!(body.contains(expect.as_attr()), "{body}");
        assert_eq!(
            p.ep.answer_reinvite(p.now, call, Ok(String::new())),
            Err(CallError::WrongState)
        );
        // 200 retransmits until the ACK, which produces no event.
        let at = p.now - p.t0 + Duration::from_millis(600);
        assert_eq!(p.run_until(at).len(), 1);
        // The peer did not get our 200 and retransmits its re-INVITE: it gets the same 200 again
        // (not 491), and no second ReInvite event.
        p.send(&reinv);
        let again = p.responses();
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].status, again[0].body.clone()),
            (200, ok.body.clone())
        );
        assert!(p.events().is_empty());
        let ack = p.in_dialog("ACK", ("hold", &tag), cseq, "z9hG4bK-reack", "", "");
        p.send(&ack);
        assert!(p.events().is_empty());
        let later = p.now - p.t0 + Duration::from_secs(40);
        assert!(p.run_until(later).is_empty());
    }
    assert_eq!(p.ep.active_calls(), 1);

    // A re-INVITE the app refuses.
    let reinv = p.in_dialog("INVITE", ("hold", &tag), 20, "z9hG4bK-re20", "", "");
    p.send(&reinv);
    assert_eq!(p.statuses(), vec![100]);
    assert_eq!(p.events(), vec![Event::ReInvite { call, offer: None }]);
    assert_eq!(
        p.ep.answer_reinvite(p.now, call, Err(200)),
        Err(CallError::InvalidStatus(200))
    );
    p.ep.answer_reinvite(p.now, call, Err(488)).unwrap();
    assert_eq!(p.statuses(), vec![488]);
    // A lower CSeq is out of order → 500.
    let old = p.in_dialog("INFO", ("hold", &tag), 5, "z9hG4bK-old", "", "");
    p.send(&old);
    assert_eq!(p.statuses(), vec![500]);
}

#[test]
fn info_dtmf() {
    let mut p = Peer::new(Transport::Udp);
    let (call, tag) = p.confirmed_call("dtmf");
    let info = p.in_dialog(
        "INFO",
        ("dtmf", &tag),
        2,
        "z9hG4bK-i1",
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=5\r\nDuration=160\r\n",
    );
    p.send(&info);
    assert_eq!(p.statuses(), vec![200]);
    assert_eq!(
        p.events(),
        vec![Event::DtmfInfo {
            call,
            digit: '5',
            duration_ms: 160
        }]
    );
    let info = p.in_dialog(
        "INFO",
        ("dtmf", &tag),
        3,
        "z9hG4bK-i2",
        "Content-Type: application/dtmf\r\n",
        "#",
    );
    p.send(&info);
    assert_eq!(p.statuses(), vec![200]);
    assert_eq!(
        p.events(),
        vec![Event::DtmfInfo {
            call,
            digit: '#',
            duration_ms: 0
        }]
    );
    // Retransmission: same 200, no duplicate digit.
    p.send(&info);
    assert_eq!(p.statuses(), vec![200]);
    assert!(p.events().is_empty());
}

#[test]
fn unknown_method_501_and_unsupported_405() {
    let mut p = Peer::new(Transport::Udp);
    let req = |m: &str, b: &str| {
        format!(
            "{m} sip:198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5070;branch={b}\r\n\
From: <sip:x@bank.example>;tag=1\r\nTo: <sip:198.51.100.1>\r\nCall-ID: {b}\r\nCSeq: 1 {m}\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    p.send(&req("FOOBAR", "z9hG4bK-f"));
    let r = p.responses().pop().unwrap();
    assert_eq!(r.status, 501);
    assert_eq!(
        r.headers.get("Allow"),
        Some("INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY")
    );
    for (i, m) in [
        "SUBSCRIBE",
        "REGISTER",
        "MESSAGE",
        "PUBLISH",
        "UPDATE",
        "PRACK",
    ]
    .iter()
    .enumerate()
    {
        p.send(&req(m, &format!("z9hG4bK-{i}")));
        let r = p.responses().pop().unwrap();
        assert_eq!(r.status, 405, "{m}");
        assert!(r.headers.contains("Allow"));
    }
    // REFER and NOTIFY are in Allow, so never 405: a REFER is declined, a NOTIFY outside
    // a dialog matches no subscription; both statelessly, like other out-of-dialog requests.
    p.send(&req("REFER", "z9hG4bK-refer"));
    assert_eq!(p.statuses(), vec![603]);
    p.send(&req("NOTIFY", "z9hG4bK-notify"));
    assert_eq!(p.statuses(), vec![481]);
    assert!(p.events().is_empty());
    assert_eq!(p.ep.poll_timeout(), None);
    assert_eq!(p.ep.stats().requests, 9);
}

#[test]
fn over_capacity_503_with_retry_after() {
    let mut p = Peer::new(Transport::Udp);
    let a = p.incoming("cap1", "z9hG4bK-cap1");
    let _b = p.incoming("cap2", "z9hG4bK-cap2");
    let inv = p.invite("cap3", "z9hG4bK-cap3", "", OFFER);
    p.send(&inv);
    let r = p.responses().pop().unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.headers.get("Retry-After"), Some("17"));
    assert!(p.events().is_empty());
    assert_eq!(p.ep.stats().rejected_503, 1);
    // Freeing a slot lets the next call in.
    p.ep.reject(p.now, a.call, 486).unwrap();
    assert_eq!(p.statuses(), vec![486]);
    assert_eq!(
        p.events(),
        vec![Event::CallEnded {
            call: a.call,
            reason: EndReason::Rejected(486)
        }]
    );
    let inv = p.invite("cap4", "z9hG4bK-cap4", "", OFFER);
    p.send(&inv);
    assert_eq!(p.statuses(), vec![100]);
    assert_eq!(p.events().len(), 1);
}

#[test]
fn unknown_dialog_gets_481() {
    let mut p = Peer::new(Transport::Udp);
    for (m, b) in [
        ("BYE", "z9hG4bK-b1"),
        ("INFO", "z9hG4bK-b2"),
        ("INVITE", "z9hG4bK-b3"),
    ] {
        let req = p.in_dialog(m, ("ghost", "nosuchtag"), 5, b, "", "");
        p.send(&req);
        assert_eq!(p.statuses(), vec![481], "{m}");
    }
    // Out-of-dialog BYE (no To tag) as well.
    let bye = p
        .in_dialog("BYE", ("ghost2", "x"), 5, "z9hG4bK-b4", "", "")
        .replace(";tag=x", "");
    p.send(&bye);
    assert_eq!(p.statuses(), vec![481]);
    // ACK for nothing is dropped silently.
    let ack = p.in_dialog("ACK", ("ghost", "nosuchtag"), 5, "z9hG4bK-b5", "", "");
    p.send(&ack);
    assert!(p.transmits().is_empty());
}

#[test]
fn retransmitted_invite_is_absorbed() {
    let mut p = Peer::new(Transport::Udp);
    let c = p.incoming("dup", "z9hG4bK-dup");
    let inv = p.invite("dup", "z9hG4bK-dup", "", OFFER);
    p.send(&inv);
    assert_eq!(p.statuses(), vec![100], "last provisional resent");
    assert!(p.events().is_empty());
    p.ep.send_provisional(p.now, c.call, 183, Some(answer_sdp(&c)))
        .unwrap();
    let early = p.responses().pop().unwrap();
    assert_eq!(early.status, 183);
    assert!(!early.body.is_empty());
    p.send(&inv);
    assert_eq!(p.statuses(), vec![183]);
    p.ep.answer(p.now, c.call, answer_sdp(&c)).unwrap();
    let ok = p.responses().pop().unwrap();
    // After the 2xx the transaction is gone; the call resends its 2xx.
    p.send(&inv);
    let again = p.responses();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0], ok);
    assert!(p.events().is_empty());
    assert_eq!(p.ep.active_calls(), 1);
    // Same Call-ID/From tag/CSeq via another branch: a merged request → 482.
    let merged = p.invite("dup", "z9hG4bK-otherpath", "", OFFER);
    p.send(&merged);
    assert_eq!(p.statuses(), vec![482]);
    assert!(p.events().is_empty());
}

#[test]
fn our_bye_retransmits_on_timer_e_and_completes_on_200() {
    let mut p = Peer::new(Transport::Udp);
    let (call, _tag) = p.confirmed_call("ourbye");
    p.ep.hangup(p.now, call).unwrap();
    assert_eq!(p.ep.hangup(p.now, call), Err(CallError::WrongState));
    let sent = p.transmits();
    assert_eq!(sent.len(), 1);
    let bye = as_request(&sent[0]);
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(
        sent[0].remote, p.remote,
        "remote target is the peer's Contact"
    );
    let via = bye.headers.top_via().unwrap();
    assert!(via.branch().unwrap().starts_with("z9hG4bK"));
    assert_eq!(via.sent_by_key(), "198.51.100.1:5060");
    assert_eq!(bye.headers.cseq().unwrap().method, Method::Bye);
    let retx = p.run_until(Duration::from_millis(2000));
    let times: Vec<u64> = retx.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, vec![500, 1500]);
    assert!(retx.iter().all(|(_, t)| t.payload == sent[0].payload));
    assert!(
        p.events().is_empty(),
        "call ends only when the BYE completes"
    );
    p.send(&reply_to(&bye, 200));
    assert_eq!(
        p.events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::LocalHangup
        }]
    );
    assert_eq!(p.ep.active_calls(), 0);
    assert!(p.run_until(Duration::from_secs(60)).is_empty());
}

#[test]
fn our_bye_times_out() {
    let mut p = Peer::new(Transport::Udp);
    let (call, _) = p.confirmed_call("byeto");
    p.ep.hangup(p.now, call).unwrap();
    p.transmits();
    let sent = p.run_until(Duration::from_secs(40));
    assert_eq!(sent.len(), 10);
    assert_eq!(
        p.events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::TransactionTimeout
        }]
    );
}

#[test]
fn hangup_before_answer_and_before_ack() {
    let mut p = Peer::new(Transport::Udp);
    let c = p.incoming("early", "z9hG4bK-early");
    p.ep.hangup(p.now, c.call).unwrap();
    assert_eq!(p.statuses(), vec![480]);
    assert_eq!(
        p.events(),
        vec![Event::CallEnded {
            call: c.call,
            reason: EndReason::LocalHangup
        }]
    );
    // Hangup while the 2xx is unacknowledged waits for the ACK, then sends BYE.
    let c = p.incoming("late", "z9hG4bK-late");
    p.ep.answer(p.now, c.call, answer_sdp(&c)).unwrap();
    let tag = p.responses()[0]
        .headers
        .to()
        .unwrap()
        .tag()
        .unwrap()
        .to_string();
    p.ep.hangup(p.now, c.call).unwrap();
    assert!(p.transmits().is_empty());
    let ack = p.in_dialog("ACK", ("late", &tag), 1, "z9hG4bK-lateack", "", "");
    p.send(&ack);
    assert_eq!(p.events(), vec![Event::CallConfirmed { call: c.call }]);
    let sent = p.transmits();
    assert_eq!(sent.len(), 1);
    let bye = as_request(&sent[0]);
    assert_eq!(bye.method, Method::Bye);
    p.send(&reply_to(&bye, 200));
    assert_eq!(
        p.events(),
        vec![Event::CallEnded {
            call: c.call,
            reason: EndReason::LocalHangup
        }]
    );
}

#[test]
fn tcp_retransmits_only_the_2xx() {
    let mut p = Peer::with(
        Transport::Tcp,
        "198.51.100.1:5061",
        "192.0.2.20:40001",
        config(),
    );
    let c = p.incoming("tcp", "z9hG4bK-tcp");
    p.ep.answer(p.now, c.call, answer_sdp(&c)).unwrap();
    let ok = p.responses().pop().unwrap();
    assert_eq!(
        ok.headers.get("Contact"),
        Some("<sip:198.51.100.1:5061;transport=tcp>")
    );
    let tag = ok.headers.to().unwrap().tag().unwrap().to_string();
    // RFC 3261 §13.3.1.4: the UAS core retransmits its 2xx even on TCP (0.5, 1.5, 3.5, 7.5 s).
    let resent = p.run_until(Duration::from_secs(10));
    assert_eq!(resent.len(), 4, "2xx retransmitted on T1 doubling");
    assert!(resent.iter().all(|(_, t)| as_response(t).status == 200));
    let ack = p.in_dialog("ACK", ("tcp", &tag), 1, "z9hG4bK-tack", "", "");
    p.send(&ack);
    assert_eq!(p.events(), vec![Event::CallConfirmed { call: c.call }]);
    p.ep.hangup(p.now, c.call).unwrap();
    let sent = p.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].remote, p.remote, "same connection");
    let bye = as_request(&sent[0]);
    assert_eq!(
        bye.headers.top_via().unwrap().transport,
        voxgate_sip::ViaTransport::Tcp
    );
    let at = p.now - p.t0 + Duration::from_secs(10);
    assert!(p.run_until(at).is_empty(), "no Timer E on TCP");
    p.send(&reply_to(&bye, 200));
    assert_eq!(p.events().len(), 1);

    // Rejections over TCP: no Timer G, ACK ends the transaction at once (Timer I = 0).
    let c = p.incoming("tcp2", "z9hG4bK-tcp2");
    p.ep.reject(p.now, c.call, 603).unwrap();
    let r = p.responses().pop().unwrap();
    assert_eq!(r.status, 603);
    p.events();
    let at = p.now - p.t0 + Duration::from_secs(5);
    assert!(p.run_until(at).is_empty());
    // The ACK timeout still applies on TCP.
    let c = p.incoming("tcp3", "z9hG4bK-tcp3");
    p.ep.answer(p.now, c.call, answer_sdp(&c)).unwrap();
    p.transmits();
    let at = p.now - p.t0 + Duration::from_secs(33);
    let sent = p.run_until(at);
    let (last, resent) = sent.split_last().unwrap();
    assert!(
        resent.iter().all(|(_, t)| as_response(t).status == 200),
        "2xx retransmissions"
    );
    assert_eq!(as_request(&last.1).method, Method::Bye, "then the BYE");
}

#[test]
fn ipv6_via_and_sdp() {
    let cfg = EndpointConfig {
        contact_host: "2001:db8::1".into(),
        ..config()
    };
    let mut p = Peer::with(
        Transport::Udp,
        "[2001:db8::1]:5060",
        "[2001:db8::20]:5070",
        cfg,
    );
    let offer6 =
        "v=0\r\no=sipp 1 1 IN IP6 2001:db8::20\r\ns=-\r\nc=IN IP6 2001:db8::20\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n";
    // Via carries a different (stale) IPv6 sent-by to force received=.
    let inv = p
        .invite("v6", "z9hG4bK-v6", "", offer6)
        .replace(&format!("UDP {}", p.me), "UDP [2001:db8::99]:5070");
    p.send(&inv);
    let t = p.transmits();
    assert_eq!(t[0].remote, p.remote);
    let trying = match SipMessage::parse(&t[0].payload).unwrap() {
        SipMessage::Response(r) => r,
        SipMessage::Request(_) => panic!(),
    };
    let via = trying.headers.top_via().unwrap();
    assert_eq!(via.received(), Some("2001:db8::20".parse().unwrap()));
    assert_eq!(via.rport(), Some(Some(5070)));
    let c = match p.events().pop() {
        Some(Event::IncomingCall(c)) => c,
        other => panic!("{other:?}"),
    };
    let local = LocalMedia::new("2001:db8::1".parse().unwrap(), 40000, 9);
    let n = sdp::negotiate(c.offer.as_ref().unwrap(), &local).unwrap();
    assert_eq!(n.remote_rtp, Some("[2001:db8::20]:6000".parse().unwrap()));
    p.ep.answer(p.now, c.call, n.answer.to_string()).unwrap();
    let ok = p.responses().pop().unwrap();
    assert_eq!(ok.headers.get("Contact"), Some("<sip:[2001:db8::1]:5060>"));
    assert!(String::from_utf8(ok.body)
        .unwrap()
        .contains("c=IN IP6 2001:db8::1"));
    let tag = ok.headers.to().unwrap().tag().unwrap().to_string();
    let ack = p.in_dialog("ACK", ("v6", &tag), 1, "z9hG4bK-v6ack", "", "");
    p.send(&ack);
    p.ep.hangup(p.now, c.call).unwrap();
    let bye = p.transmits();
    assert_eq!(bye[0].remote, p.remote);
    let bye = as_request(&bye[0]);
    assert_eq!(
        bye.headers.top_via().unwrap().sent_by_key(),
        "[2001:db8::1]:5060"
    );
}

#[test]
fn malformed_requests() {
    let mut p = Peer::new(Transport::Udp);
    // Pure garbage: dropped and counted.
    p.send_bytes(b"\x00\x01garbage\xff\r\n\r\n");
    assert!(p.transmits().is_empty());
    assert_eq!(p.ep.stats().parse_errors, 1);
    // Unparseable start line but a usable Via → 400.
    let bad = p.invite("bad1", "z9hG4bK-bad1", "", OFFER).replace(
        "INVITE sip:hotline@198.51.100.1 SIP/2.0",
        "INVITE  sip:hotline@198.51.100.1 SIP/2.0",
    );
    p.send(&bad);
    let r = p.responses().pop().unwrap();
    assert_eq!(r.status, 400);
    // RFC 3581: rport requested → received and rport are both filled in.
    assert_eq!(r.headers.top_via().unwrap().received(), Some(p.remote.ip()));
    assert_eq!(r.headers.top_via().unwrap().rport(), Some(Some(5070)));
    // Wrong version → 505.
    let v7 = p
        .invite("bad2", "z9hG4bK-bad2", "", OFFER)
        .replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia");
    p.send(&v7);
    assert_eq!(p.statuses(), vec![505]);
    // Missing Call-ID, CSeq mismatch, duplicated To → 400.
    for (find, replace) in [
        ("Call-ID: bad3\r\n", ""),
        ("CSeq: 1 INVITE", "CSeq: 1 OPTIONS"),
        (
            "To: <sip:0800123@198.51.100.1>\r\n",
            "To: <sip:a@b>\r\nTo: <sip:c@d>\r\n",
        ),
    ] {
        let m = p
            .invite("bad3", "z9hG4bK-bad3", "", OFFER)
            .replace(find, replace);
        p.send(&m);
        assert_eq!(p.statuses(), vec![400], "{replace}");
    }
    // Body shorter than Content-Length over UDP → 400.
    let short = p.invite("bad4", "z9hG4bK-bad4", "", OFFER).replace(
        &format!("Content-Length: {}", OFFER.len()),
        "Content-Length: 9999",
    );
    p.send(&short);
    assert_eq!(p.statuses(), vec![400]);
    // Malformed SDP → 400, unknown body type → 415, Require → 420, bad scheme → 416.
    let m = p.invite("bad5", "z9hG4bK-bad5", "", "this is not sdp");
    p.send(&m);
    assert_eq!(p.statuses(), vec![400]);
    let m = p
        .invite("bad6", "z9hG4bK-bad6", "", "hello")
        .replace("application/sdp", "text/plain");
    p.send(&m);
    let r = p.responses().pop().unwrap();
    assert_eq!(r.status, 415);
    assert_eq!(r.headers.get("Accept"), Some("application/sdp"));
    let m = p.invite("bad7", "z9hG4bK-bad7", "Require: 100rel\r\n", OFFER);
    p.send(&m);
    let r = p.responses().pop().unwrap();
    assert_eq!(r.status, 420);
    assert_eq!(r.headers.get("Unsupported"), Some("100rel"));
    let m = p
        .invite("bad8", "z9hG4bK-bad8", "", OFFER)
        .replace("INVITE sip:hotline@198.51.100.1", "INVITE mailto:a@b");
    p.send(&m);
    assert_eq!(p.statuses(), vec![416]);
    // A malformed ACK is never answered.
    let ack = p
        .in_dialog("ACK", ("x", "y"), 1, "z9hG4bK-ack", "", "")
        .replace("Call-ID: x\r\n", "");
    p.send(&ack);
    assert!(p.transmits().is_empty());
    assert!(p.events().is_empty());
    assert_eq!(p.ep.active_calls(), 0);
}

#[test]
fn parse_warnings_and_pai() {
    let mut p = Peer::new(Transport::Udp);
    let inv = p
        .invite(
            "warn",
            "legacybranch",
            "P-Asserted-Identity: \"Bank\" <sip:+4930999@bank.example>\r\n",
            OFFER,
        )
        .replace("Max-Forwards: 70\r\n", "");
    p.send(&inv);
    assert_eq!(p.statuses(), vec![100]);
    let c = match p.events().pop() {
        Some(Event::IncomingCall(c)) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        c.p_asserted_identity.as_deref(),
        Some("sip:+4930999@bank.example")
    );
    assert_eq!(
        c.parse_warnings, 2,
        "missing Max-Forwards + RFC 2543 branch"
    );
    // RFC 2543 matching still absorbs the retransmission.
    p.send(&inv);
    assert_eq!(p.statuses(), vec![100]);
    assert!(p.events().is_empty());
}

#[test]
fn multipart_invite_offer() {
    let mut p = Peer::new(Transport::Udp);
    let body = format!(
        "--sep\r\nContent-Type: application/sdp\r\n\r\n{OFFER}\r\n--sep\r\n\
Content-Type: application/ISUP;version=itu-t92+\r\n\r\nXYZ\r\n--sep--\r\n"
    );
    let inv = p.invite("mp", "z9hG4bK-mp", "", &body).replace(
        "Content-Type: application/sdp\r\nContent-Length",
        "Content-Type: multipart/mixed;boundary=sep\r\nContent-Length",
    );
    p.send(&inv);
    assert_eq!(p.statuses(), vec![100]);
    match p.events().pop() {
        Some(Event::IncomingCall(c)) => assert_eq!(c.offer.unwrap().media[0].port, 6000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn command_errors() {
    let mut p = Peer::new(Transport::Udp);
    let ghost = CallHandle(999);
    assert_eq!(p.ep.hangup(p.now, ghost), Err(CallError::UnknownCall));
    assert_eq!(p.ep.reject(p.now, ghost, 486), Err(CallError::UnknownCall));
    let c = p.incoming("cmd", "z9hG4bK-cmd");
    assert_eq!(
        p.ep.reject(p.now, c.call, 200),
        Err(CallError::InvalidStatus(200))
    );
    assert_eq!(
        p.ep.send_provisional(p.now, c.call, 200, None),
        Err(CallError::InvalidStatus(200))
    );
    assert_eq!(
        p.ep.answer_reinvite(p.now, c.call, Ok(String::new())),
        Err(CallError::WrongState)
    );
    assert!(p.transmits().is_empty(), "failed commands send nothing");
}

#[test]
fn bye_glare_and_bye_during_ringing() {
    let mut p = Peer::new(Transport::Udp);
    // Remote BYE while ours is in flight: one CallEnded only.
    let (call, tag) = p.confirmed_call("glare");
    p.ep.hangup(p.now, call).unwrap();
    let bye_out = as_request(&p.transmits()[0]);
    let bye_in = p.in_dialog("BYE", ("glare", &tag), 2, "z9hG4bK-gl", "", "");
    p.send(&bye_in);
    assert_eq!(p.statuses(), vec![200]);
    assert_eq!(
        p.events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::RemoteBye
        }]
    );
    p.send(&reply_to(&bye_out, 200));
    assert!(p.events().is_empty());

    // BYE on the early dialog: 200 for the BYE, 487 for the INVITE.
    let c = p.incoming("ring", "z9hG4bK-ring");
    p.ep.send_provisional(p.now, c.call, 180, None).unwrap();
    let tag = p.responses()[0]
        .headers
        .to()
        .unwrap()
        .tag()
        .unwrap()
        .to_string();
    let bye = p.in_dialog("BYE", ("ring", &tag), 2, "z9hG4bK-rb", "", "");
    p.send(&bye);
    let got: Vec<(u16, Method)> = p
        .responses()
        .iter()
        .map(|r| (r.status, r.headers.cseq().unwrap().method))
        .collect();
    assert_eq!(got, vec![(200, Method::Bye), (487, Method::Invite)]);
    assert_eq!(
        p.events(),
        vec![Event::CallEnded {
            call: c.call,
            reason: EndReason::RemoteBye
        }]
    );
}

#[test]
fn our_bye_follows_record_route() {
    let mut p = Peer::new(Transport::Udp);
    let inv = p.invite(
        "rr",
        "z9hG4bK-rr",
        "Record-Route: <sip:192.0.2.99:5080;lr>, <sip:core.bank.example;lr>\r\n",
        OFFER,
    );
    p.send(&inv);
    p.transmits();
    let c = match p.events().pop() {
        Some(Event::IncomingCall(c)) => c,
        other => panic!("{other:?}"),
    };
    p.ep.answer(p.now, c.call, answer_sdp(&c)).unwrap();
    let ok = p.responses().pop().unwrap();
    let rr: Vec<&str> = ok.headers.get_all("Record-Route").collect();
    assert_eq!(
        rr,
        vec!["<sip:192.0.2.99:5080;lr>", "<sip:core.bank.example;lr>"],
        "2xx echoes Record-Route in order (RFC 3261 §12.1.1)"
    );
    let tag = ok.headers.to().unwrap().tag().unwrap().to_string();
    let ack = p.in_dialog("ACK", ("rr", &tag), 1, "z9hG4bK-rrack", "", "");
    p.send(&ack);
    p.events();
    p.ep.hangup(p.now, c.call).unwrap();
    let sent = p.transmits();
    assert_eq!(
        sent[0].remote,
        "192.0.2.99:5080".parse().unwrap(),
        "first route is the next hop"
    );
    let bye = as_request(&sent[0]);
    let routes: Vec<&str> = bye.headers.get_all("Route").collect();
    assert_eq!(
        routes,
        vec!["<sip:192.0.2.99:5080;lr>", "<sip:core.bank.example;lr>"]
    );
    assert_eq!(bye.uri.to_string(), format!("sip:sipp@{}", p.me));
}

#[test]
fn pending_reinvite_is_terminated_when_the_call_ends() {
    let mut p = Peer::new(Transport::Udp);
    let (call, tag) = p.confirmed_call("pend");
    let reinv = p.in_dialog("INVITE", ("pend", &tag), 2, "z9hG4bK-pre", "", "");
    p.send(&reinv);
    assert_eq!(p.statuses(), vec![100]);
    assert_eq!(p.events(), vec![Event::ReInvite { call, offer: None }]);
    let bye = p.in_dialog("BYE", ("pend", &tag), 3, "z9hG4bK-pbye", "", "");
    p.send(&bye);
    let got: Vec<(u16, Method)> = p
        .responses()
        .iter()
        .map(|r| (r.status, r.headers.cseq().unwrap().method))
        .collect();
    assert_eq!(got, vec![(200, Method::Bye), (487, Method::Invite)]);
    assert_eq!(
        p.events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::RemoteBye
        }]
    );
    assert_eq!(
        p.ep.answer_reinvite(p.now, call, Ok(String::new())),
        Err(CallError::UnknownCall)
    );
}

#[test]
fn no_received_when_sent_by_matches_source() {
    let mut p = Peer::new(Transport::Udp);
    let inv = p
        .invite("plain", "z9hG4bK-plain", "", OFFER)
        .replace(";rport", "");
    p.send(&inv);
    let trying = p.responses().pop().unwrap();
    let via = trying.headers.top_via().unwrap();
    assert_eq!(via.received(), None);
    assert_eq!(via.rport(), None);
    assert_eq!(
        trying.headers.get("Via"),
        Some(format!("SIP/2.0/UDP {};branch=z9hG4bK-plain", p.me).as_str()),
        "Via echoed untouched"
    );
}

#[test]
fn udp_responses_follow_via_sent_by_unless_rport() {
    // The peer sends from an ephemeral port but advertises 5070 in Via.
    let mut p = Peer::with(
        Transport::Udp,
        "198.51.100.1:5060",
        "192.0.2.20:40001",
        config(),
    );
    let opt = |branch: &str, rport: &str| {
        format!(
            "OPTIONS sip:198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5070;branch={branch}{rport}\r\n\
From: <sip:sbc@bank.example>;tag=r1\r\nTo: <sip:198.51.100.1>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    p.send(&opt("z9hG4bK-norport", ""));
    let sent = p.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].remote,
        "192.0.2.20:5070".parse().unwrap(),
        "RFC 3261 §18.2.2"
    );
    p.send(&opt("z9hG4bK-rport", ";rport"));
    let sent = p.transmits();
    assert_eq!(
        sent[0].remote,
        "192.0.2.20:40001".parse().unwrap(),
        "RFC 3581 rport"
    );
    let via = as_response(&sent[0]).headers.top_via().unwrap();
    assert_eq!(
        via.rport(),
        Some(Some(40001)),
        "rport filled in with the source port"
    );
}

// ----- blind transfer by REFER (RFC 3515) -------------------------------------

const TRANSFER_TO: &str = "sip:+4989555@transfer.bank.example;user=phone";

#[test]
fn refer_accepted_then_notifies_in_order() {
    let mut p = Peer::new(Transport::Udp);
    let (call, tag) = p.confirmed_call_with(
        "xfer",
        "Record-Route: <sip:192.0.2.99:5080;lr>, <sip:core.bank.example;lr>\r\n",
    );
    let dialog = ("xfer", tag.as_str());
    p.ep.refer(p.now, call, TRANSFER_TO, Some("sip:0800123@198.51.100.1"))
        .unwrap();
    let sent = p.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].remote,
        "192.0.2.99:5080".parse().unwrap(),
        "first route is the next hop"
    );
    let refer = as_request(&sent[0]);
    assert!(refer.validate().is_ok());
    assert_eq!(refer.method, Method::Refer);
    assert_eq!(refer.uri.to_string(), format!("sip:sipp@{}", p.me));
    let routes: Vec<&str> = refer.headers.get_all("Route").collect();
    assert_eq!(
        routes,
        vec!["<sip:192.0.2.99:5080;lr>", "<sip:core.bank.example;lr>"]
    );
    assert_eq!(refer.headers.from().unwrap().tag(), Some(tag.as_str()));
    assert_eq!(refer.headers.to().unwrap().tag(), Some("ftag-xfer"));
    assert_eq!(refer.headers.call_id().unwrap(), "xfer");
    assert_eq!(
        refer.headers.get("CSeq"),
        Some("1 REFER"),
        "first request in our CSeq space"
    );
    assert_eq!(
        refer.headers.get("Refer-To"),
        Some(&*format!("<{TRANSFER_TO}>"))
    );
    assert_eq!(
        refer.headers.get("Referred-By"),
        Some("<sip:0800123@198.51.100.1>")
    );
    assert_eq!(
        refer.headers.get("Contact"),
        Some("<sip:198.51.100.1:5060>")
    );
    assert_eq!(refer.headers.get("User-Agent"), Some("voxgate-test"));
    let via = refer.headers.top_via().unwrap();
    assert!(via.rfc3261_branch().is_some());
    assert_eq!(via.sent_by_key(), "198.51.100.1:5060");

    assert_eq!(
        p.ep.refer(p.now, call, TRANSFER_TO, None),
        Err(CallError::ReferPending)
    );
    assert!(p.transmits().is_empty(), "a refused REFER sends nothing");

    // Provisionals are absorbed; the 202 is reported once, its retransmission not at all.
    p.send(&reply_to(&refer, 100));
    assert!(p.events().is_empty());
    p.send(&reply_to(&refer, 202));
    assert_eq!(p.events(), vec![Event::ReferResponse { call, status: 202 }]);
    p.send(&reply_to(&refer, 202));
    assert!(p.events().is_empty());
    assert!(p.transmits().is_empty());

    let trying = p.notify(
        dialog,
        2,
        "z9hG4bK-n1",
        "refer",
        "active;expires=60",
        "SIP/2.0 100 Trying\r\n",
    );
    p.send(&trying);
    let r = p.responses();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].headers.cseq().unwrap().method, Method::Notify);
    assert_eq!(r[0].headers.to().unwrap().tag(), Some(tag.as_str()));
    assert_eq!(
        p.events(),
        vec![Event::ReferNotify {
            call,
            status: Some(100),
            terminated: false
        }]
    );
    // A retransmitted NOTIFY gets the same 200 and is not reported again.
    p.send(&trying);
    assert_eq!(p.statuses(), vec![200]);
    assert!(p.events().is_empty());

    let done = p.notify(
        dialog,
        3,
        "z9hG4bK-n2",
        "refer",
        "terminated;reason=noresource",
        "SIP/2.0 200 OK\r\n",
    );
    p.send(&done);
    assert_eq!(p.statuses(), vec![200]);
    assert_eq!(
        p.events(),
        vec![Event::ReferNotify {
            call,
            status: Some(200),
            terminated: true
        }]
    );
    // The subscription is over: a further NOTIFY matches nothing.
    let late = p.notify(
        dialog,
        4,
        "z9hG4bK-n3",
        "refer",
        "terminated",
        "SIP/2.0 200 OK\r\n",
    );
    p.send(&late);
    assert_eq!(p.statuses(), vec![481]);
    assert!(p.events().is_empty());

    // The transfer is done; voxgate leaves with a BYE in the next CSeq.
    p.ep.hangup(p.now, call).unwrap();
    let bye = as_request(&p.transmits()[0]);
    assert_eq!(bye.headers.get("CSeq"), Some("2 BYE"));
}

#[test]
fn refer_declined_603() {
    let mut p = Peer::new(Transport::Udp);
    let (call, tag) = p.confirmed_call("decl");
    p.ep.refer(p.now, call, TRANSFER_TO, None).unwrap();
    let refer = p.sent_refer();
    assert!(!refer.headers.contains("Referred-By"));
    p.send(&reply_to(&refer, 603));
    assert_eq!(p.events(), vec![Event::ReferResponse { call, status: 603 }]);
    // A refused REFER created no subscription.
    let stray = p.notify(
        ("decl", &tag),
        2,
        "z9hG4bK-d1",
        "refer",
        "terminated",
        "SIP/2.0 603 Declined\r\n",
    );
    p.send(&stray);
    assert_eq!(p.statuses(), vec![481]);
    assert!(p.events().is_empty());
    // Nothing pending any more: another REFER may go, in the next CSeq.
    p.ep.refer(p.now, call, "tel:+4989555", None).unwrap();
    let again = p.sent_refer();
    assert_eq!(again.headers.get("CSeq"), Some("2 REFER"));
    assert_eq!(again.headers.get("Refer-To"), Some("<tel:+4989555>"));
    assert_eq!(p.ep.active_calls(), 1, "the call stays up");
}

#[test]
fn unanswered_refer_retransmits_on_timer_e_then_408() {
    let mut p = Peer::new(Transport::Udp);
    let (call, _) = p.confirmed_call("lost");
    p.run_until(Duration::from_secs(1));
    let start = p.now - p.t0;
    p.ep.refer(p.now, call, TRANSFER_TO, None).unwrap();
    let first = p.transmits().remove(0);
    let retx = p.run_until(start + Duration::from_millis(31_999));
    let times: Vec<u64> = retx
        .iter()
        .map(|(t, _)| *t - start.as_millis() as u64)
        .collect();
    // Timer E: T1 doubling, capped at T2 = 4 s.
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert!(retx.iter().all(|(_, t)| t.payload == first.payload));
    assert!(p.events().is_empty());
    assert_eq!(
        p.ep.refer(p.now, call, TRANSFER_TO, None),
        Err(CallError::ReferPending)
    );
    // Timer F at 64*T1.
    assert!(p.run_until(start + Duration::from_secs(32)).is_empty());
    assert_eq!(p.events(), vec![Event::ReferResponse { call, status: 408 }]);
    assert!(p.run_until(start + Duration::from_secs(100)).is_empty());
    assert_eq!(p.ep.poll_timeout(), None);
    assert_eq!(p.ep.active_calls(), 1);
    // The response that finally shows up belongs to no transaction any more.
    p.send(&reply_to(&as_request(&first), 202));
    assert!(p.events().is_empty());
}

#[test]
fn refer_over_tcp_is_not_retransmitted() {
    let mut p = Peer::new(Transport::Tcp);
    let (call, _) = p.confirmed_call("tcpx");
    p.ep.refer(p.now, call, TRANSFER_TO, None).unwrap();
    let refer = p.sent_refer();
    assert_eq!(
        refer.headers.top_via().unwrap().sent_by_key(),
        "198.51.100.1:5061"
    );
    assert_eq!(
        refer.headers.get("Contact"),
        Some("<sip:198.51.100.1:5061;transport=tcp>")
    );
    assert!(p.run_until(Duration::from_secs(40)).is_empty());
    assert_eq!(p.events(), vec![Event::ReferResponse { call, status: 408 }]);
}

#[test]
fn notify_checks_event_subscription_and_body() {
    let mut p = Peer::new(Transport::Udp);
    let (call, tag) = p.confirmed_call("nfy");
    let dialog = ("nfy", tag.as_str());
    p.ep.refer(p.now, call, TRANSFER_TO, None).unwrap();
    let refer = p.sent_refer();
    p.send(&reply_to(&refer, 202));
    p.events();
    let frag = "SIP/2.0 180 Ringing\r\n";
    let mut cseq = 1;
    let mut send = |p: &mut Peer, event: &str, state: &str, body: &str| {
        cseq += 1;
        let n = p.notify(
            dialog,
            cseq,
            &format!("z9hG4bK-nfy{cseq}"),
            event,
            state,
            body,
        );
        p.send(&n);
        let r = p.responses();
        assert_eq!(r.len(), 1);
        (r[0].clone(), p.events())
    };

    let (r, ev) = send(&mut p, "presence", "active", frag);
    assert_eq!(
        r.status, 489,
        "RFC 6665: an event package we did not subscribe to"
    );
    assert_eq!(r.headers.get("Allow-Events"), Some("refer"));
    assert!(ev.is_empty());
    let (r, ev) = send(&mut p, "Refer", "active", frag);
    assert_eq!(r.status, 489, "package names compare byte by byte");
    assert!(ev.is_empty());
    let (r, ev) = send(&mut p, "", "active", frag);
    assert_eq!(r.status, 400, "Event is mandatory");
    assert!(ev.is_empty());
    let (r, ev) = send(&mut p, "refer;;", "active", frag);
    assert_eq!(r.status, 400);
    assert!(ev.is_empty());
    let (r, ev) = send(&mut p, "refer", "", frag);
    assert_eq!(r.status, 400, "Subscription-State is mandatory");
    assert!(ev.is_empty());
    let (r, ev) = send(&mut p, "refer;id=999", "active", frag);
    assert_eq!(r.status, 481, "no REFER with CSeq 999");
    assert!(ev.is_empty());

    let notify = |status, terminated| {
        vec![Event::ReferNotify {
            call,
            status,
            terminated,
        }]
    };
    let (r, ev) = send(&mut p, "refer;id=1", "pending", frag);
    assert_eq!(r.status, 200, "id is the REFER's CSeq number");
    assert_eq!(ev, notify(Some(180), false));
    let (r, ev) = send(&mut p, "o", "active", "");
    assert_eq!(r.status, 489, "a package called o");
    assert!(ev.is_empty());
    let (r, ev) = send(&mut p, "refer", "active", "");
    assert_eq!(r.status, 200);
    assert_eq!(ev, notify(None, false), "no body, no status");
    let (r, ev) = send(&mut p, "refer", "active", "this is not a sipfrag\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(ev, notify(None, false), "garbage body, no status");
    let (r, ev) = send(&mut p, "refer", "TERMINATED;reason=timeout", "SIP/2.0 9");
    assert_eq!(r.status, 200);
    assert_eq!(ev, notify(None, true));
    // The subscription ended; a second REFER's NOTIFY uses the compact Event form `o`.
    p.ep.refer(p.now, call, TRANSFER_TO, None).unwrap();
    let second = p.sent_refer();
    assert_eq!(second.headers.get("CSeq"), Some("2 REFER"));
    p.send(&reply_to(&second, 202));
    p.events();
    let compact = p.in_dialog(
        "NOTIFY",
        dialog,
        50,
        "z9hG4bK-nfy-compact",
        "o: refer;id=2\r\nSubscription-State: terminated\r\nc: message/sipfrag\r\n",
        "SIP/2.0 486 Busy Here\r\n",
    );
    p.send(&compact);
    assert_eq!(p.statuses(), vec![200]);
    assert_eq!(p.events(), notify(Some(486), true));
    assert!(p.transmits().is_empty());
    assert_eq!(p.ep.active_calls(), 1);
}

#[test]
fn refer_arguments_and_state_are_checked() {
    let mut p = Peer::new(Transport::Udp);
    let ghost = CallHandle(999);
    assert_eq!(
        p.ep.refer(p.now, ghost, TRANSFER_TO, None),
        Err(CallError::UnknownCall)
    );
    // Ringing, then answered but not yet ACKed: no REFER before the dialog is confirmed.
    let c = p.incoming("early", "z9hG4bK-early");
    assert_eq!(
        p.ep.refer(p.now, c.call, TRANSFER_TO, None),
        Err(CallError::WrongState)
    );
    p.ep.answer(p.now, c.call, answer_sdp(&c)).unwrap();
    p.transmits();
    assert_eq!(
        p.ep.refer(p.now, c.call, TRANSFER_TO, None),
        Err(CallError::WrongState)
    );

    let (call, _) = p.confirmed_call("args");
    for (to, err) in [
        (
            "sip:agent@pbx.example?Replaces=abc",
            CallError::ReferToHeaders,
        ),
        ("sip:agent@pbx.example?", CallError::ReferToHeaders),
        ("tel:+4989555?x=y", CallError::ReferToHeaders),
        ("", CallError::InvalidReferTo),
        ("not a uri", CallError::InvalidReferTo),
        ("<sip:agent@pbx.example>", CallError::InvalidReferTo),
        ("sip:agent@pbx example", CallError::InvalidReferTo),
        ("sip:agent@pbx.example\r\nX: y", CallError::InvalidReferTo),
        ("sip:agent@pbx.example>;x", CallError::InvalidReferTo),
        ("http://transfer.example/", CallError::InvalidReferTo),
        ("tel:hotline", CallError::InvalidReferTo),
        ("tel:+49<89>", CallError::InvalidReferTo),
    ] {
        assert_eq!(p.ep.refer(p.now, call, to, None), Err(err), "{to:?}");
    }
    for by in [
        "sip:me@voxgate?subject=x",
        "<sip:me@voxgate>",
        "urn:x\">",
        "sip:",
    ] {
        assert_eq!(
            p.ep.refer(p.now, call, TRANSFER_TO, Some(by)),
            Err(CallError::InvalidReferredBy),
            "{by:?}"
        );
    }
    assert!(p.transmits().is_empty(), "refused REFERs send nothing");
    // What is accepted: tel: with visual separators and parameters, sips:, Referred-By tel:.
    p.ep.refer(
        p.now,
        call,
        "tel:+49-89-555;phone-context=+49",
        Some("tel:+49800123"),
    )
    .unwrap();
    let refer = p.sent_refer();
    assert_eq!(
        refer.headers.get("Refer-To"),
        Some("<tel:+49-89-555;phone-context=+49>")
    );
    assert_eq!(refer.headers.get("Referred-By"), Some("<tel:+49800123>"));
    assert_eq!(
        refer.headers.get("CSeq"),
        Some("1 REFER"),
        "refused attempts used no CSeq"
    );
    p.send(&reply_to(&refer, 202));
    p.events();
    p.ep.refer(p.now, call, "sips:agent@pbx.example:5061", None)
        .unwrap();
    assert_eq!(
        p.sent_refer().headers.get("Refer-To"),
        Some("<sips:agent@pbx.example:5061>")
    );
    // While our BYE is in flight the call takes no REFER.
    p.ep.hangup(p.now, call).unwrap();
    p.transmits();
    assert_eq!(
        p.ep.refer(p.now, call, TRANSFER_TO, None),
        Err(CallError::WrongState)
    );
}

#[test]
fn incoming_refer_is_declined() {
    let mut p = Peer::new(Transport::Udp);
    let (call, tag) = p.confirmed_call("theirs");
    let refer = p.in_dialog(
        "REFER",
        ("theirs", &tag),
        2,
        "z9hG4bK-theirs",
        "Refer-To: <sip:elsewhere@bank.example>\r\n",
        "",
    );
    p.send(&refer);
    let r = p.responses();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 603);
    assert_eq!(r[0].headers.to().unwrap().tag(), Some(tag.as_str()));
    assert!(p.events().is_empty());
    // Retransmission: same answer from the server transaction.
    p.send(&refer);
    assert_eq!(p.statuses(), vec![603]);
    // The call is unaffected.
    let info = p.in_dialog(
        "INFO",
        ("theirs", &tag),
        3,
        "z9hG4bK-theirs-info",
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=5\r\nDuration=100\r\n",
    );
    p.send(&info);
    assert_eq!(p.statuses(), vec![200]);
    assert_eq!(
        p.events(),
        vec![Event::DtmfInfo {
            call,
            digit: '5',
            duration_ms: 100
        }]
    );
}

#[test]
fn refer_response_after_the_call_ended_is_not_reported() {
    let mut p = Peer::new(Transport::Udp);
    let (call, tag) = p.confirmed_call("gone");
    p.ep.refer(p.now, call, TRANSFER_TO, None).unwrap();
    let refer = p.sent_refer();
    let bye = p.in_dialog("BYE", ("gone", &tag), 2, "z9hG4bK-gone", "", "");
    p.send(&bye);
    assert_eq!(p.statuses(), vec![200]);
    assert_eq!(
        p.events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::RemoteBye
        }]
    );
    p.send(&reply_to(&refer, 202));
    assert!(p.events().is_empty(), "nothing after CallEnded");
    assert!(p.run_until(Duration::from_secs(40)).is_empty());
    assert!(p.events().is_empty());
}
