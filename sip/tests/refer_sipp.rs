//! Blind transfer against a real SIP stack: sipp plays the trunk's caller (UAC), voxgate
//! answers and then transfers it by REFER (RFC 3515). The scenario (`sipp/uac_refer.xml`)
//! checks the REFER's headers, accepts it, sends the two NOTIFYs of the implicit
//! subscription and expects voxgate's BYE; sipp's exit status says whether all of it matched.
//!
//! Skipped with a note when sipp is not installed (Debian package sip-tester).

mod sipp;

use std::time::{Duration, Instant};

use voxgate_sip::endpoint::{EndReason, Event};
use voxgate_sip::sdp::{self, LocalMedia};

use sipp::{scenario_file, sipp_installed, Driver, Sipp};

#[test]
fn sipp_caller_is_transferred_by_refer() {
    if !sipp_installed() {
        eprintln!("sipp not installed; skipping the REFER interop test");
        return;
    }
    let mut d = Driver::new();
    let file = scenario_file("uac_refer.xml");
    let target = d.local.to_string();
    let sipp = Sipp::start(&["-sf", &file, &target], "refer");
    let limit = Duration::from_secs(10);

    let incoming = match d.next_event(limit) {
        Event::IncomingCall(c) => c,
        other => panic!("expected IncomingCall, got {other:?}"),
    };
    let call = incoming.call;
    let local = LocalMedia::new("127.0.0.1".parse().unwrap(), 40000, 1);
    let offer = incoming.offer.as_ref().expect("sipp offers SDP");
    let answer = sdp::negotiate(offer, &local).expect("negotiate");
    d.ep.answer(Instant::now(), call, answer.answer.to_string())
        .expect("answer");
    d.flush();
    assert_eq!(d.next_event(limit), Event::CallConfirmed { call });

    d.ep.refer(
        Instant::now(),
        call,
        "sip:desk@pbx.example;user=phone",
        Some("sip:hotline@127.0.0.1"),
    )
    .expect("refer");
    d.flush();
    assert_eq!(
        d.next_event(limit),
        Event::ReferResponse { call, status: 202 }
    );
    assert_eq!(
        d.next_event(limit),
        Event::ReferNotify {
            call,
            status: Some(100),
            terminated: false
        }
    );
    assert_eq!(
        d.next_event(limit),
        Event::ReferNotify {
            call,
            status: Some(200),
            terminated: true
        }
    );
    d.ep.hangup(Instant::now(), call).expect("hangup");
    d.flush();
    assert_eq!(
        d.next_event(limit),
        Event::CallEnded {
            call,
            reason: EndReason::LocalHangup
        }
    );
    let status = sipp.wait(Duration::from_secs(20));
    assert!(
        status.success(),
        "sipp must see the REFER, both NOTIFYs answered and our BYE: {status:?}"
    );
    assert_eq!(d.ep.active_calls(), 0);
}
