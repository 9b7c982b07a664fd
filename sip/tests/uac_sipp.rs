//! Outgoing calls against a real SIP stack: sipp plays the agent's phone (UAS) on
//! loopback, driven through `sipp::Driver`. sipp's exit status says whether it saw a
//! complete, correct call (ACK matched, BYE answered).
//!
//! Skipped with a note when sipp is not installed (Debian package sip-tester).

mod sipp;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voxgate_sip::endpoint::{
    CallHandle, EndReason, Event, OutgoingCall, OutgoingFailure, Transport,
};
use voxgate_sip::sdp::{self, LocalMedia};
use voxgate_sip::Uri;

use sipp::{scenario_file, sipp_installed, Driver, Sipp};

impl Driver {
    /// Places the test call towards `remote` (sipp's UAS).
    fn call(&mut self, remote: SocketAddr) -> CallHandle {
        let local_media = LocalMedia::new("127.0.0.1".parse().unwrap(), 40000, 1);
        let out = OutgoingCall {
            target: Uri::parse(&format!("sip:agent@{remote}")).unwrap(),
            to: None,
            from_user: "voxgate".into(),
            from_display: Some("Voxgate Hotline".into()),
            remote,
            transport: Transport::Udp,
            local: self.local,
            sdp_offer: sdp::build_offer(&local_media).to_string(),
            extra_headers: vec![("X-Voxgate-Call-Id".into(), "sipp-interop".into())],
        };
        let call = self.ep.invite(Instant::now(), out).expect("invite");
        self.flush();
        call
    }
}

#[test]
fn sipp_uas_answers_and_we_hang_up() {
    if !sipp_installed() {
        eprintln!("sipp not installed; skipping the UAC interop test");
        return;
    }
    let sipp = Sipp::start(&["-sn", "uas"], "answer");
    let mut d = Driver::new();
    let call = d.call(sipp.addr);
    let answer = loop {
        match d.next_event(Duration::from_secs(10)) {
            Event::OutgoingProgress {
                call: c,
                status: 180,
                ..
            } if c == call => {}
            Event::OutgoingAnswered { call: c, answer } if c == call => break answer,
            other => panic!("expected 180 then 200, got {other:?}"),
        }
    };
    assert_eq!(answer.media[0].formats, vec!["0"], "sipp answers PCMU");
    d.idle(Duration::from_secs(1));
    d.ep.hangup(Instant::now(), call).expect("hangup");
    d.flush();
    assert_eq!(
        d.next_event(Duration::from_secs(10)),
        Event::CallEnded {
            call,
            reason: EndReason::LocalHangup
        }
    );
    let status = sipp.wait(Duration::from_secs(20));
    assert!(
        status.success(),
        "sipp must count one successful call: {status:?}"
    );
    assert_eq!(d.ep.active_calls(), 0);
}

#[test]
fn sipp_uas_busy_gets_acked() {
    if !sipp_installed() {
        eprintln!("sipp not installed; skipping the UAC interop test");
        return;
    }
    let file = scenario_file("uas_busy.xml");
    let sipp = Sipp::start(&["-sf", &file], "busy");
    let mut d = Driver::new();
    let call = d.call(sipp.addr);
    assert_eq!(
        d.next_event(Duration::from_secs(10)),
        Event::OutgoingFailed {
            call,
            status: Some(486),
            reason: OutgoingFailure::Rejected
        }
    );
    // Keep the endpoint running (a lost ACK is re-sent for a retransmitted 486) until
    // sipp is done.
    let mut sipp = sipp;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sipp.exited() {
        assert!(Instant::now() < deadline, "sipp did not exit");
        d.idle(Duration::from_millis(100));
    }
    let status = sipp.wait(Duration::from_secs(1));
    assert!(
        status.success(),
        "sipp must see our ACK for the 486: {status:?}"
    );
}
