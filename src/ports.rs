//! RTP/RTCP port pairs for calls, from the configured range.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("no free RTP port pair left in {min}..={max}")]
    Exhausted { min: u16, max: u16 },
}

/// A bound even/odd socket pair owned by one call; dropping it closes the sockets, [`PortPool::release`]
/// makes the number reusable.
#[derive(Debug)]
pub struct PortPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub port: u16,
}

/// Hands out even RTP ports (RTCP = port + 1). Released ports go to the back of the queue so a late packet
/// of a finished call is unlikely to reach the next call on the same port.
pub struct PortPool {
    bind: IpAddr,
    free: VecDeque<u16>,
    min: u16,
    max: u16,
}

impl PortPool {
    pub fn new(bind: IpAddr, min: u16, max: u16) -> Self {
        let first = min + (min % 2);
        let free = (first..max).step_by(2).collect();
        Self {
            bind,
            free,
            min,
            max,
        }
    }

    /// Binds the next free pair. A pair something else on the box holds is skipped and goes to the back of
    /// the queue, to be tried again later.
    pub fn allocate(&mut self) -> Result<PortPair, PortError> {
        for _ in 0..self.free.len() {
            let Some(port) = self.free.pop_front() else {
                break;
            };
            let pair = UdpSocket::bind(SocketAddr::new(self.bind, port)).and_then(|rtp| {
                UdpSocket::bind(SocketAddr::new(self.bind, port + 1)).map(|rtcp| (rtp, rtcp))
            });
            let Ok((rtp, rtcp)) = pair else {
                self.free.push_back(port);
                continue;
            };
            if rtp.set_nonblocking(true).is_err() || rtcp.set_nonblocking(true).is_err() {
                self.free.push_back(port);
                continue;
            }
            return Ok(PortPair { rtp, rtcp, port });
        }
        Err(PortError::Exhausted {
            min: self.min,
            max: self.max,
        })
    }

    pub fn release(&mut self, port: u16) {
        self.free.push_back(port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn pairs_are_even_and_recycled_last() {
        let mut pool = PortPool::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 41001, 41010);
        let a = pool.allocate().unwrap();
        assert_eq!(a.port % 2, 0);
        assert_eq!(a.port, 41002);
        let b = pool.allocate().unwrap();
        assert_eq!(b.port, 41004);
        let a_port = a.port;
        drop(a);
        pool.release(a_port);
        let mut seen = vec![];
        while let Ok(p) = pool.allocate() {
            seen.push(p.port);
            std::mem::forget(p);
        }
        assert_eq!(seen, vec![41006, 41008, 41002]);
    }

    #[test]
    fn skips_ports_taken_by_others() {
        // Another program holds the RTCP port of the first pair: that whole pair is skipped.
        let _squatter = UdpSocket::bind("127.0.0.1:41101").unwrap();
        let mut pool = PortPool::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 41100, 41105);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_eq!((a.port, b.port), (41102, 41104));
        assert!(matches!(pool.allocate(), Err(PortError::Exhausted { .. })));
        // Once the other program lets go, the pair is usable again.
        drop(_squatter);
        assert_eq!(pool.allocate().unwrap().port, 41100);
    }
}
