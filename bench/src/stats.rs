//! What one scenario measured: latencies of the operations that succeeded, and the
//! failures by kind.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::client::Failure;

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, to 3 significant
/// digits (within 0.1%).
const MAX_MICROS: u64 = 600_000_000;

#[derive(Clone)]
pub struct Tally {
    latencies: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            latencies: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds"),
            errors: BTreeMap::new(),
        }
    }
}

impl Tally {
    pub fn ok(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS);
        self.latencies
            .saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub fn failed(&mut self, why: &Failure) {
        *self.errors.entry(why.to_string()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        self.latencies
            .add(&other.latencies)
            .expect("histograms with the same bounds");
        for (why, n) in &other.errors {
            *self.errors.entry(why.clone()).or_default() += n;
        }
    }

    /// Operations that succeeded.
    pub fn successes(&self) -> u64 {
        self.latencies.len()
    }

    pub fn failures(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The latency at quantile `q` (0.5 = median) of the successes, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.latencies.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies.max() as f64 / 1000.0
    }

    /// "0" or "3 (HTTP 500: 2, timeout: 1)".
    pub fn describe_errors(&self) -> String {
        if self.errors.is_empty() {
            return "0".into();
        }
        let each: Vec<String> = self
            .errors
            .iter()
            .map(|(why, n)| format!("{why}: {n}"))
            .collect();
        format!("{} ({})", self.failures(), each.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.001
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut t = Tally::default();
        // 1 ms, 2 ms, …, 1000 ms.
        for ms in 1..=1000 {
            t.ok(Duration::from_millis(ms));
        }
        assert_eq!(t.successes(), 1000);
        assert!(close(t.quantile_ms(0.5), 500.0), "{}", t.quantile_ms(0.5));
        assert!(close(t.quantile_ms(0.99), 990.0), "{}", t.quantile_ms(0.99));
        assert!(close(t.max_ms(), 1000.0), "{}", t.max_ms());
        assert!(close(t.quantile_ms(0.0), 1.0), "{}", t.quantile_ms(0.0));
    }

    #[test]
    fn merging_adds_latencies_and_errors() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        for _ in 0..99 {
            a.ok(Duration::from_millis(10));
        }
        b.ok(Duration::from_secs(2));
        a.failed(&Failure::Status(500));
        b.failed(&Failure::Status(500));
        b.failed(&Failure::Timeout);
        a.merge(&b);
        assert_eq!((a.successes(), a.failures()), (100, 3));
        // 99 of 100 at 10 ms: the 99th percentile is still 10 ms, the maximum 2 s.
        assert!(close(a.quantile_ms(0.99), 10.0), "{}", a.quantile_ms(0.99));
        assert!(close(a.max_ms(), 2000.0), "{}", a.max_ms());
        assert_eq!(a.describe_errors(), "3 (HTTP 500: 2, timeout: 1)");
        assert_eq!(Tally::default().describe_errors(), "0");
    }
}
