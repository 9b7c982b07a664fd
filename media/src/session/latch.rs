//! Symmetric-RTP latching that a stranger cannot steal.
//!
//! Ports are public and predictable, so "latch onto the first packet" lets anyone who sprays the port range
//! receive the prompts and mute the real caller. The rules here:
//! - a packet from the IP the SDP named is accepted at once (its port may differ: NAT);
//! - any other source must send [`CONFIRM_PACKETS`] consecutive packets with one SSRC before it is believed
//!   (the SDP held a private address behind NAT, or the caller moved), and only while the current source
//!   has been quiet for [`QUIET_BEFORE_MOVE`];
//! - everything else is dropped and counted by the session.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Consecutive packets (one source, one SSRC) before an unexpected source is latched: 200 ms of audio.
pub const CONFIRM_PACKETS: u32 = 10;
/// How long the current source must be silent before another may take over.
pub const QUIET_BEFORE_MOVE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub struct SourceLatch {
    expected_ip: Option<IpAddr>,
    latched: Option<SocketAddr>,
    last_accepted: Option<Instant>,
    candidate: Option<(SocketAddr, u32, u32)>,
}

impl SourceLatch {
    pub fn new(expected: Option<SocketAddr>) -> Self {
        Self {
            expected_ip: expected.map(|a| a.ip()).filter(|ip| !ip.is_unspecified()),
            ..Self::default()
        }
    }

    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// Whether the packet from `src` (RTP SSRC `ssrc`) belongs to the session; latches as a side effect.
    pub fn accept(&mut self, now: Instant, src: SocketAddr, ssrc: u32) -> bool {
        if self.latched == Some(src) {
            self.last_accepted = Some(now);
            self.candidate = None;
            return true;
        }
        let current_quiet = self
            .last_accepted
            .is_none_or(|t| now.saturating_duration_since(t) >= QUIET_BEFORE_MOVE);
        if Some(src.ip()) == self.expected_ip && (self.latched.is_none() || current_quiet) {
            self.latch(now, src);
            return true;
        }
        if !current_quiet {
            return false;
        }
        let count = match self.candidate {
            Some((a, s, n)) if a == src && s == ssrc => n + 1,
            _ => 1,
        };
        if count >= CONFIRM_PACKETS {
            self.latch(now, src);
            true
        } else {
            self.candidate = Some((src, ssrc, count));
            false
        }
    }

    /// RTCP from `src` is believed when it comes from the IP of the RTP source (or the SDP's).
    pub fn accepts_rtcp_from(&self, src: SocketAddr) -> bool {
        match (self.latched, self.expected_ip) {
            (Some(rtp), _) => rtp.ip() == src.ip(),
            (None, Some(ip)) => ip == src.ip(),
            (None, None) => false,
        }
    }

    fn latch(&mut self, now: Instant, src: SocketAddr) {
        self.latched = Some(src);
        self.last_accepted = Some(now);
        self.candidate = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sdp_ip_latches_at_once_even_from_another_port() {
        let t0 = Instant::now();
        let mut l = SourceLatch::new(Some(addr("192.0.2.10:4000")));
        assert!(l.accept(t0, addr("192.0.2.10:4002"), 1));
        assert_eq!(l.latched(), Some(addr("192.0.2.10:4002")));
    }

    #[test]
    fn a_stranger_spraying_first_does_not_steal_the_call() {
        let t0 = Instant::now();
        let mut l = SourceLatch::new(Some(addr("192.0.2.10:4000")));
        // An attacker's packets were queued before the caller's.
        for i in 0..5 {
            assert!(!l.accept(t0, addr("203.0.113.66:9999"), 7 + i));
        }
        assert!(l.accept(t0, addr("192.0.2.10:4000"), 1));
        // While the caller talks, a steady stranger is never believed.
        for i in 1..100 {
            let now = t0 + Duration::from_millis(20 * i);
            assert!(l.accept(now, addr("192.0.2.10:4000"), 1));
            assert!(!l.accept(now, addr("203.0.113.66:9999"), 7));
        }
        assert_eq!(l.latched(), Some(addr("192.0.2.10:4000")));
        assert!(!l.accepts_rtcp_from(addr("203.0.113.66:9999")));
        assert!(l.accepts_rtcp_from(addr("192.0.2.10:4001")));
    }

    #[test]
    fn nat_source_confirmed_after_consistent_packets() {
        // SDP carries a private address; media really comes from the NAT's public one.
        let t0 = Instant::now();
        let mut l = SourceLatch::new(Some(addr("10.1.1.5:4000")));
        let nat = addr("198.51.100.7:61000");
        for i in 0..CONFIRM_PACKETS - 1 {
            assert!(!l.accept(t0 + Duration::from_millis(20 * u64::from(i)), nat, 42));
        }
        assert!(l.accept(t0 + Duration::from_millis(200), nat, 42));
        assert_eq!(l.latched(), Some(nat));
    }

    #[test]
    fn mixed_ssrcs_or_sources_never_confirm() {
        let t0 = Instant::now();
        let mut l = SourceLatch::new(None);
        for i in 0..50u32 {
            let src = if i % 2 == 0 {
                addr("203.0.113.1:1")
            } else {
                addr("203.0.113.2:1")
            };
            assert!(!l.accept(t0, src, i));
        }
        assert_eq!(l.latched(), None);
    }

    #[test]
    fn moves_only_after_the_current_source_went_quiet() {
        let t0 = Instant::now();
        let mut l = SourceLatch::new(Some(addr("192.0.2.10:4000")));
        assert!(l.accept(t0, addr("192.0.2.10:4000"), 1));
        let moved = addr("192.0.2.10:5000");
        // The same IP on a new port while the old port is live: refused.
        assert!(!l.accept(t0 + Duration::from_millis(100), moved, 1));
        // After a second of silence the caller's new port (NAT rebinding) is taken at once.
        assert!(l.accept(t0 + Duration::from_millis(1200), moved, 1));
        assert_eq!(l.latched(), Some(moved));
    }
}
