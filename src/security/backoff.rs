//! The delay before a failed login is answered: it starts at the configured delay and
//! doubles with each further failure from the same client address, up to a maximum; an
//! address with no failure for [`FORGET_AFTER`] starts over. Password guessing from one
//! address slows to one try per maximum delay.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An address's failures are forgotten after this long without one.
pub const FORGET_AFTER: Duration = Duration::from_secs(300);
/// Most addresses remembered; past it the longest-quiet ones are forgotten.
pub const ADDRESSES_MAX: usize = 4096;

/// Failed logins by client address.
#[derive(Debug)]
pub struct Backoff {
    first_ms: u32,
    max_ms: u32,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Backoff {
    /// A back-off starting at `first_ms`, growing to `max_ms`.
    pub fn new(first_ms: u32, max_ms: u32) -> Backoff {
        Backoff {
            first_ms,
            max_ms,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Count a failure from `ip` at `now`; the delay to wait before answering it.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Duration {
        let mut failures = self.failures.lock().expect("backoff lock poisoned");
        if failures.len() >= ADDRESSES_MAX && !failures.contains_key(&ip) {
            failures.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
            if failures.len() >= ADDRESSES_MAX {
                // Still full: drop the quietest address.
                if let Some(quietest) = failures.iter().min_by_key(|(_, (_, last))| *last) {
                    let quietest = *quietest.0;
                    failures.remove(&quietest);
                }
            }
        }
        let entry = failures.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let doublings = (entry.0 - 1).min(16);
        let ms = u64::from(self.first_ms)
            .saturating_mul(1 << doublings)
            .min(u64::from(self.max_ms));
        Duration::from_millis(ms)
    }

    /// A successful login from `ip` clears its failures.
    pub fn succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .expect("backoff lock poisoned")
            .remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_per_failure_caps_and_resets() {
        let backoff = Backoff::new(100, 1000);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t = Instant::now();
        let delays: Vec<u128> = (0..6).map(|_| backoff.failed(ip, t).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.failed(other, t).as_millis(), 100);
        assert_eq!(backoff.failed(ip, t + FORGET_AFTER).as_millis(), 100);
        backoff.succeeded(ip);
        assert_eq!(backoff.failed(ip, t).as_millis(), 100);
    }
}
