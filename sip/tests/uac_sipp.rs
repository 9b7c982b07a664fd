//! Outgoing calls against a real SIP stack: sipp plays the agent's phone (UAS) on
//! loopback and a tiny blocking driver here moves datagrams and timers between a UDP
//! socket and the sans-IO endpoint. sipp's exit status says whether it saw a complete,
//! correct call (ACK matched, BYE answered).
//!
//! Skipped with a note when sipp is not installed (Debian package sip-tester).

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use voxgate_sip::endpoint::{
    CallHandle, EndReason, Endpoint, EndpointConfig, Event, OutgoingCall, OutgoingFailure,
    Transport,
};
use voxgate_sip::sdp::{self, LocalMedia};
use voxgate_sip::Uri;

fn sipp_installed() -> bool {
    Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral port");
    s.local_addr().expect("local addr").port()
}

/// A sipp UAS on loopback; killed on drop if the test fails before it exits.
struct Sipp {
    child: Child,
    addr: SocketAddr,
    errors: PathBuf,
}

impl Sipp {
    /// `scenario` is `-sn <builtin>` or `-sf <file>`.
    fn start(scenario: &[&str], name: &str) -> Sipp {
        let port = free_udp_port();
        let media_port = free_udp_port();
        let errors = std::env::temp_dir().join(format!(
            "voxgate-uac-sipp-{name}-{}.errors.log",
            std::process::id()
        ));
        let child = Command::new("sipp")
            .args(scenario)
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &media_port.to_string()])
            .args(["-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error"])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&errors)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // Ready once it holds its port; the INVITE's Timer A would cover a miss anyway.
        let deadline = Instant::now() + Duration::from_secs(5);
        while UdpSocket::bind(addr).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        Sipp {
            child,
            addr,
            errors,
        }
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn wait(mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if !status.success() {
                    eprintln!(
                        "sipp errors:\n{}",
                        std::fs::read_to_string(&self.errors).unwrap_or_default()
                    );
                }
                let _ = std::fs::remove_file(&self.errors);
                return status;
            }
            assert!(Instant::now() < deadline, "sipp did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Blocking I/O loop around the endpoint: sends what it transmits, feeds it what the
/// socket receives, fires its timer at `poll_timeout`.
struct Driver {
    ep: Endpoint,
    sock: UdpSocket,
    local: SocketAddr,
}

impl Driver {
    fn new() -> Driver {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind driver socket");
        let local = sock.local_addr().expect("local addr");
        let ep = Endpoint::new(EndpointConfig {
            contact_host: "127.0.0.1".into(),
            udp_port: local.port(),
            user_agent: "voxgate-uac-test".into(),
            seed: u64::from(std::process::id()),
            ..EndpointConfig::default()
        });
        Driver { ep, sock, local }
    }

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

    fn flush(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            self.sock.send_to(&t.payload, t.remote).expect("send");
        }
    }

    /// Runs I/O and timers for at most `max`, returning early with the first event.
    fn step(&mut self, max: Duration) -> Option<Event> {
        let until = Instant::now() + max;
        let mut buf = vec![0u8; 65_535];
        loop {
            if let Some(ev) = self.ep.poll_event() {
                return Some(ev);
            }
            let now = Instant::now();
            if now >= until {
                return None;
            }
            let wake = self.ep.poll_timeout().map_or(until, |t| t.min(until));
            let wait = wake
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            self.sock.set_read_timeout(Some(wait)).expect("timeout");
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    self.ep.handle_input(
                        Instant::now(),
                        Transport::Udp,
                        self.local,
                        from,
                        &buf[..n],
                    );
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("recv: {e}"),
            }
            let now = Instant::now();
            if self.ep.poll_timeout().is_some_and(|t| t <= now) {
                self.ep.handle_timeout(now);
            }
            self.flush();
        }
    }

    fn next_event(&mut self, limit: Duration) -> Event {
        self.step(limit)
            .unwrap_or_else(|| panic!("no event within {limit:?}"))
    }

    /// Keeps the call's I/O going for `d` (the far end may retransmit or send requests).
    fn idle(&mut self, d: Duration) {
        if let Some(ev) = self.step(d) {
            panic!("unexpected event {ev:?}");
        }
    }
}

fn scenario_file(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
        .to_string_lossy()
        .into_owned()
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
