//! Drift-free tick schedule for the media thread.
//!
//! Deadlines are always `start + n * period`, never "last wake + period", so sleeping
//! late or early never accumulates into drift. The thread sleeps until
//! [`MediaClock::next_deadline`], then calls [`MediaClock::on_wake`] with the real time.
//!
//! Catch-up policy: if up to `max_burst` ticks are due, all of them are reported in
//! `due` and the caller runs that many frames back to back (a short stall is absorbed
//! without changing the audio timeline). If more are due, the thread was stalled badly
//! (swap, suspend, debugger); bursting dozens of frames would flood the peer's jitter
//! buffer, so only the newest tick is run (`due = 1`) and the rest are reported as
//! `skipped`. The caller must still advance its media timelines by the skipped ticks
//! (e.g. `RtpSession::skip_frames`), so RTP timestamps keep tracking real time.

use std::time::{Duration, Instant};

/// Outcome of one wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticks {
    /// Frames to process now.
    pub due: u32,
    /// Ticks dropped instead of being run (only after a stall longer than the burst limit).
    pub skipped: u32,
    /// How late the oldest due deadline was served.
    pub late_by: Duration,
}

/// Lateness statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClockStats {
    /// Calls to `on_wake`.
    pub wakes: u64,
    /// Ticks run.
    pub ticks: u64,
    /// Ticks served more than `late_threshold` after their deadline.
    pub late_ticks: u64,
    /// Ticks skipped by the catch-up policy.
    pub skipped_ticks: u64,
    /// Worst lateness seen.
    pub max_late: Duration,
    /// Wakes before the next deadline (nothing due).
    pub early_wakes: u64,
}

/// The 20 ms media schedule.
#[derive(Debug, Clone)]
pub struct MediaClock {
    start: Instant,
    period: Duration,
    /// Index of the next deadline not yet consumed.
    next: u64,
    max_burst: u32,
    late_threshold: Duration,
    stats: ClockStats,
}

impl MediaClock {
    /// Default burst limit: 3 ticks (60 ms at 20 ms).
    pub const DEFAULT_MAX_BURST: u32 = 3;

    /// Schedule with the first deadline at `start`.
    pub fn new(start: Instant, period: Duration) -> Self {
        Self::with_policy(
            start,
            period,
            Self::DEFAULT_MAX_BURST,
            Duration::from_millis(2),
        )
    }

    /// Schedule with an explicit burst limit and the lateness that counts as a late tick.
    pub fn with_policy(
        start: Instant,
        period: Duration,
        max_burst: u32,
        late_threshold: Duration,
    ) -> Self {
        Self {
            start,
            period: period.max(Duration::from_micros(1)),
            next: 0,
            max_burst: max_burst.max(1),
            late_threshold,
            stats: ClockStats::default(),
        }
    }

    /// Tick period.
    pub fn period(&self) -> Duration {
        self.period
    }

    fn deadline(&self, n: u64) -> Instant {
        let nanos = self.period.as_nanos().saturating_mul(u128::from(n));
        let d = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.start + d
    }

    /// When the thread should wake next.
    pub fn next_deadline(&self) -> Instant {
        self.deadline(self.next)
    }

    /// Account a wake-up at `now`; see the module docs for the catch-up policy.
    pub fn on_wake(&mut self, now: Instant) -> Ticks {
        self.stats.wakes += 1;
        let first = self.next_deadline();
        if now < first {
            self.stats.early_wakes += 1;
            return Ticks {
                due: 0,
                skipped: 0,
                late_by: Duration::ZERO,
            };
        }
        let late_by = now - first;
        // Deadlines n with deadline(n) <= now: n <= elapsed / period.
        let elapsed = now - self.start;
        let last = (elapsed.as_nanos() / self.period.as_nanos()) as u64;
        let pending = last.saturating_sub(self.next) + 1;
        let (due, skipped) = if pending <= u64::from(self.max_burst) {
            (pending as u32, 0u64)
        } else {
            (1, pending - 1)
        };
        self.next = last + 1;
        self.stats.ticks += u64::from(due);
        self.stats.skipped_ticks += skipped;
        if late_by > self.late_threshold {
            self.stats.late_ticks += 1;
        }
        self.stats.max_late = self.stats.max_late.max(late_by);
        Ticks {
            due,
            skipped: u32::try_from(skipped).unwrap_or(u32::MAX),
            late_by,
        }
    }

    /// Lateness statistics.
    pub fn stats(&self) -> ClockStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(20);

    #[test]
    fn deadlines_do_not_drift_with_jittery_wakes() {
        let t0 = Instant::now();
        let mut c = MediaClock::new(t0, P);
        let mut total = 0u64;
        for n in 0..10_000u64 {
            let d = c.next_deadline();
            assert_eq!(d, t0 + P * n as u32);
            // Always wake 0.7 ms late: with accumulated sleeps this would drift 7 s.
            let t = c.on_wake(d + Duration::from_micros(700));
            assert_eq!(t.due, 1);
            assert_eq!(t.late_by, Duration::from_micros(700));
            total += u64::from(t.due);
        }
        assert_eq!(total, 10_000);
        assert_eq!(c.next_deadline(), t0 + P * 10_000);
        assert_eq!(c.stats().late_ticks, 0);
    }

    #[test]
    fn early_wake_runs_nothing() {
        let t0 = Instant::now();
        let mut c = MediaClock::new(t0, P);
        assert_eq!(c.on_wake(t0).due, 1);
        let t = c.on_wake(t0 + Duration::from_millis(19));
        assert_eq!((t.due, t.skipped), (0, 0));
        assert_eq!(c.next_deadline(), t0 + P);
        assert_eq!(c.stats().early_wakes, 1);
    }

    #[test]
    fn short_stall_catches_up_long_stall_skips() {
        let t0 = Instant::now();
        let mut c = MediaClock::new(t0, P);
        c.on_wake(t0);
        // 45 ms late for deadline 1: deadlines 1, 2, 3 are due (3 <= burst limit).
        let t = c.on_wake(t0 + P + Duration::from_millis(45));
        assert_eq!((t.due, t.skipped), (3, 0));
        assert_eq!(t.late_by, Duration::from_millis(45));
        assert_eq!(c.next_deadline(), t0 + P * 4);
        // A 1 s stall: 50 ticks pending, one is run and 49 skipped; the grid is kept.
        let t = c.on_wake(t0 + P * 4 + Duration::from_millis(990));
        assert_eq!((t.due, t.skipped), (1, 49));
        assert_eq!(c.next_deadline(), t0 + P * 54);
        let s = c.stats();
        assert_eq!(s.ticks, 5);
        assert_eq!(s.skipped_ticks, 49);
        assert_eq!(s.late_ticks, 2);
        assert_eq!(s.max_late, Duration::from_millis(990));
        // Every deadline was either run or skipped exactly once.
        assert_eq!(s.ticks + s.skipped_ticks, 54);
    }
}
