//! Test-only network emulator (seeded loss, jitter, reordering, duplication) and an
//! allocation counter used to check the per-frame paths never allocate.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::rtcp::SplitMix64;

/// A datagram in flight.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub at: Instant,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
    order: u64,
}

/// What happened to a sent datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Dropped,
    Delivered,
    Duplicated,
}

/// One direction of an emulated link.
#[derive(Debug)]
pub struct NetEm {
    rng: SplitMix64,
    /// Loss probability.
    pub loss: f64,
    /// Fixed one-way delay.
    pub base: Duration,
    /// Extra delay uniform in [0, jitter).
    pub jitter: Duration,
    /// Probability of an extra `reorder_delay` (holds a packet back behind later ones).
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Duplication probability (the copy gets its own delay).
    pub dup: f64,
    queue: Vec<Datagram>,
    order: u64,
}

impl NetEm {
    pub fn new(seed: u64, loss: f64, base: Duration, jitter: Duration) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            loss,
            base,
            jitter,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(50),
            dup: 0.0,
            queue: Vec::new(),
            order: 0,
        }
    }

    fn delay(&mut self) -> Duration {
        let mut d = self.base + self.jitter.mul_f64(self.rng.next_f64());
        if self.rng.next_f64() < self.reorder {
            d += self.reorder_delay;
        }
        d
    }

    fn enqueue(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        let at = now + self.delay();
        self.order += 1;
        self.queue.push(Datagram {
            at,
            from,
            to,
            data: data.to_vec(),
            order: self.order,
        });
    }

    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) -> Fate {
        if self.rng.next_f64() < self.loss {
            return Fate::Dropped;
        }
        self.enqueue(now, from, to, data);
        if self.rng.next_f64() < self.dup {
            self.enqueue(now, from, to, data);
            return Fate::Duplicated;
        }
        Fate::Delivered
    }

    /// The earliest datagram due at or before `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Datagram> {
        let idx = self
            .queue
            .iter()
            .enumerate()
            .filter(|(_, d)| d.at <= now)
            .min_by_key(|(_, d)| (d.at, d.order))
            .map(|(i, _)| i)?;
        Some(self.queue.swap_remove(idx))
    }
}

/// Run `f` and count heap allocations made on this thread meanwhile (uses the crate's
/// shared test allocator probe; a crate may only have one global allocator).
pub fn count_allocs<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let mut r = None;
    let n = crate::resample::alloc_probe::allocations_in(|| r = Some(f()));
    match r {
        Some(r) => (r, n),
        None => unreachable!("allocations_in runs the closure"),
    }
}
