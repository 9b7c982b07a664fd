//! Distributions as the report shows them: percentiles by nearest rank, so every figure is a value that
//! was actually measured (no interpolation between two samples).

/// p50/p95/p99 and friends of one distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// Nearest-rank percentile of sorted data (`p` in 0..=100); `None` when empty.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Summary {
    /// `None` for no samples; NaNs are dropped.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let pct = |p| percentile_sorted(&v, p).unwrap_or(f64::NAN);
        Some(Summary {
            n: v.len(),
            min: v[0],
            p50: pct(50.0),
            p95: pct(95.0),
            p99: pct(99.0),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        })
    }
}

/// Points of an empirical CDF (value, fraction ≤ value), thinned to at most `max_points` so plots stay
/// small whatever the sample count.
pub fn cdf(values: &[f64], max_points: usize) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 || max_points == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(max_points).max(1);
    let mut out: Vec<(f64, f64)> = (0..n)
        .step_by(step)
        .map(|i| (v[i], (i + 1) as f64 / n as f64))
        .collect();
    if out.last().map(|p| p.1) != Some(1.0) {
        out.push((v[n - 1], 1.0));
    }
    out
}

/// A fixed-bucket histogram of microsecond values, for distributions too large to keep (packet
/// intervals of a thousand calls): 10 µs buckets up to 100 ms, one overflow bucket.
#[derive(Debug, Clone)]
pub struct UsHistogram {
    buckets: Vec<u64>,
    count: u64,
    max_us: u64,
}

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 10_000;

impl Default for UsHistogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; BUCKETS + 1],
            count: 0,
            max_us: 0,
        }
    }
}

impl UsHistogram {
    pub fn add(&mut self, us: u64) {
        let i = ((us / BUCKET_US) as usize).min(BUCKETS);
        self.buckets[i] += 1;
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    pub fn merge(&mut self, other: &UsHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.max_us = self.max_us.max(other.max_us);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// Upper edge of the bucket holding the nearest-rank percentile, in µs (exact max for the last one).
    pub fn percentile_us(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = (((p / 100.0) * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(if i == BUCKETS {
                    self.max_us
                } else {
                    ((i as u64 + 1) * BUCKET_US).min(self.max_us)
                });
            }
        }
        Some(self.max_us)
    }

    /// CDF points (ms, fraction) over the non-empty buckets, at most `max_points`.
    pub fn cdf_ms(&self, max_points: usize) -> Vec<(f64, f64)> {
        if self.count == 0 {
            return Vec::new();
        }
        let mut pts = Vec::new();
        let mut seen = 0u64;
        for (i, &c) in self.buckets.iter().enumerate() {
            if c == 0 {
                continue;
            }
            seen += c;
            let edge = if i == BUCKETS {
                self.max_us
            } else {
                (i as u64 + 1) * BUCKET_US
            };
            pts.push((edge as f64 / 1000.0, seen as f64 / self.count as f64));
        }
        if pts.len() > max_points && max_points > 1 {
            let step = pts.len().div_ceil(max_points - 1);
            let last = pts[pts.len() - 1];
            pts = pts.into_iter().step_by(step).collect();
            if pts.last() != Some(&last) {
                pts.push(last);
            }
        }
        pts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&v).unwrap();
        assert_eq!((s.p50, s.p95, s.p99, s.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(s.n, 100);
        assert!((s.mean - 50.5).abs() < 1e-9);
        // Unsorted input, fewer samples than 1/(1-p): p99 is the max.
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.p50, s.p99), (1.0, 2.0, 3.0));
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn cdf_is_thinned_and_ends_at_one() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        let c = cdf(&v, 50);
        assert!(c.len() <= 51, "{}", c.len());
        assert_eq!(c.last(), Some(&(999.0, 1.0)));
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn histogram_percentiles_match_the_bucket_of_the_rank() {
        let mut h = UsHistogram::default();
        for us in 0..1000 {
            h.add(us);
        }
        // Rank 990 is value 989, in bucket [980, 990): upper edge 990.
        assert_eq!(h.percentile_us(99.0), Some(990));
        assert_eq!(h.percentile_us(100.0), Some(999));
        h.add(5_000_000);
        assert_eq!(h.percentile_us(100.0), Some(5_000_000));
        let mut g = UsHistogram::default();
        g.merge(&h);
        assert_eq!(g.count(), 1001);
        assert_eq!(g.max_us(), 5_000_000);
        assert!(UsHistogram::default().percentile_us(50.0).is_none());
    }
}
