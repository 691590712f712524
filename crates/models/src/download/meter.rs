//! The transfer rate and the progress reports made from it.

use std::time::{Duration, Instant};

use super::{Progress, Stage};

/// Smoothed transfer rate and the progress record.
#[derive(Debug)]
pub(super) struct Meter {
    at: Instant,
    bytes: u64,
    rate: Option<f64>,
}

impl Meter {
    /// Time constant of the exponential smoothing.
    const TAU: f64 = 3.0;

    pub(super) fn new(now: Instant, bytes: u64) -> Self {
        Self { at: now, bytes, rate: None }
    }

    /// Folds in the byte counter's value at `now`; returns the smoothed rate.
    fn sample(&mut self, now: Instant, bytes: u64) -> f64 {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        if dt < 0.05 {
            return self.rate.unwrap_or(0.0);
        }
        let instant = bytes.saturating_sub(self.bytes) as f64 / dt;
        let rate = match self.rate {
            None => instant,
            Some(r) => r + (1.0 - (-dt / Self::TAU).exp()) * (instant - r),
        };
        self.at = now;
        self.bytes = bytes;
        self.rate = Some(rate);
        rate
    }

    pub(super) fn progress(&mut self, stage: Stage, done: u64, total: Option<u64>, counter: u64) -> Progress {
        let rate = self.sample(Instant::now(), counter);
        let eta = match total {
            Some(t) if rate >= 1.0 => Some(Duration::from_secs_f64(t.saturating_sub(done) as f64 / rate)),
            _ => None,
        };
        Progress { stage, done, total, bytes_per_sec: rate, eta }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_smooths_and_estimates() {
        let t0 = Instant::now();
        let mut m = Meter::new(t0, 0);
        assert_eq!(m.sample(t0 + Duration::from_millis(10), 100), 0.0);
        assert!((m.sample(t0 + Duration::from_secs(1), 1000) - 1000.0).abs() < 1e-9);
        // A burst moves the smoothed rate only part of the way.
        let r = m.sample(t0 + Duration::from_secs(2), 11_000);
        assert!(r > 1000.0 && r < 10_000.0, "{r}");
        // A stall decays it.
        let r2 = m.sample(t0 + Duration::from_secs(3), 11_000);
        assert!(r2 < r, "{r2} < {r}");
    }
}
