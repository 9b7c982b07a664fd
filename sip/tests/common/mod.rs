//! The simulated-time harness the endpoint test files share: one `Endpoint`, the flow it
//! talks on, and a clock that only moves when a test moves it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voxgate_sip::endpoint::{Endpoint, EndpointConfig, Event, Transmit, Transport};
use voxgate_sip::{Request, Response, SipMessage};

/// An endpoint driven by hand: input on one flow (`local` ↔ `remote`), time from `t0`.
pub struct Sim {
    pub ep: Endpoint,
    pub t0: Instant,
    pub now: Instant,
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Host:port the peer writes in Via/Contact.
    pub me: String,
}

impl Sim {
    pub fn on(
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        cfg: EndpointConfig,
    ) -> Self {
        let t0 = Instant::now();
        let me = match remote {
            SocketAddr::V4(a) => a.to_string(),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        Self {
            ep: Endpoint::new(cfg),
            t0,
            now: t0,
            transport,
            local,
            remote,
            me,
        }
    }

    pub fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes());
    }

    pub fn send_bytes(&mut self, data: &[u8]) {
        self.ep
            .handle_input(self.now, self.transport, self.local, self.remote, data);
    }

    /// Everything the endpoint wants sent, in order; all of it on the test's flow.
    pub fn transmits(&mut self) -> Vec<Transmit> {
        let out: Vec<Transmit> = std::iter::from_fn(|| self.ep.poll_transmit()).collect();
        for t in &out {
            assert_eq!(t.transport, self.transport);
            assert_eq!(t.local, self.local);
        }
        out
    }

    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ep.poll_event()).collect()
    }

    /// Advances simulated time to `t0 + at`, firing every timer on the way, and
    /// returns (ms since t0, transmit) for everything sent.
    pub fn run_until(&mut self, at: Duration) -> Vec<(u64, Transmit)> {
        let target = self.t0 + at;
        let mut out = Vec::new();
        while let Some(t) = self.ep.poll_timeout() {
            if t > target {
                break;
            }
            assert!(t >= self.now, "deadline in the past");
            self.now = t;
            self.ep.handle_timeout(t);
            let ms = (t - self.t0).as_millis() as u64;
            out.extend(self.transmits().into_iter().map(|x| (ms, x)));
        }
        self.now = target;
        out
    }
}

pub fn as_request(t: &Transmit) -> Request {
    match SipMessage::parse(&t.payload).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(r) => panic!("expected request, got {}", r.status),
    }
}

pub fn as_response(t: &Transmit) -> Response {
    match SipMessage::parse(&t.payload).unwrap() {
        SipMessage::Response(r) => r,
        SipMessage::Request(r) => panic!("expected response, got {}", r.method),
    }
}
