//! Shared by the sipp interop tests: a sipp process on loopback and a tiny blocking driver
//! that moves datagrams and timers between a UDP socket and the sans-IO endpoint. sipp's
//! exit status says whether it saw a complete, correct call.
//!
//! The tests skip with a note when sipp is not installed (Debian package sip-tester).

#![allow(dead_code)]

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use voxgate_sip::endpoint::{Endpoint, EndpointConfig, Event, Transport};

pub fn sipp_installed() -> bool {
    Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral port");
    s.local_addr().expect("local addr").port()
}

/// Path of a scenario in this directory.
pub fn scenario_file(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A sipp process on loopback; killed on drop if the test fails before it exits.
pub struct Sipp {
    child: Child,
    /// Where sipp listens.
    pub addr: SocketAddr,
    errors: PathBuf,
}

impl Sipp {
    /// `args` name the scenario (`-sn <builtin>` or `-sf <file>`) and, for a UAC
    /// scenario, the remote `host:port` to call.
    pub fn start(args: &[&str], name: &str) -> Sipp {
        let port = free_udp_port();
        let media_port = free_udp_port();
        let errors = std::env::temp_dir().join(format!(
            "voxgate-sipp-{name}-{}.errors.log",
            std::process::id()
        ));
        let child = Command::new("sipp")
            .args(args)
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
        // Ready once it holds its port; retransmissions would cover a miss anyway.
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

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn wait(mut self, limit: Duration) -> ExitStatus {
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
pub struct Driver {
    pub ep: Endpoint,
    pub sock: UdpSocket,
    pub local: SocketAddr,
}

impl Driver {
    pub fn new() -> Driver {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind driver socket");
        let local = sock.local_addr().expect("local addr");
        let ep = Endpoint::new(EndpointConfig {
            contact_host: "127.0.0.1".into(),
            udp_port: local.port(),
            user_agent: "voxgate-sipp-test".into(),
            seed: u64::from(std::process::id()),
            ..EndpointConfig::default()
        });
        Driver { ep, sock, local }
    }

    pub fn flush(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            self.sock.send_to(&t.payload, t.remote).expect("send");
        }
    }

    /// Runs I/O and timers for at most `max`, returning early with the first event.
    pub fn step(&mut self, max: Duration) -> Option<Event> {
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

    pub fn next_event(&mut self, limit: Duration) -> Event {
        self.step(limit)
            .unwrap_or_else(|| panic!("no event within {limit:?}"))
    }

    /// Keeps the call's I/O going for `d` (the far end may retransmit or send requests).
    pub fn idle(&mut self, d: Duration) {
        if let Some(ev) = self.step(d) {
            panic!("unexpected event {ev:?}");
        }
    }
}
