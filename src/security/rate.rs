//! Requests per second per connection (`security.max_requests_per_second_per_connection`):
//! each Kafka, ZooKeeper and MQTT connection draws one token per request from its own
//! bucket, which refills at the limit and holds one second's worth. A connection whose
//! bucket is empty is not read until a token is back: TCP backpressure, so nothing is
//! refused and nothing is lost, and other connections are not slowed. Kafka answers tell
//! the client how long it waited (`throttle_time_ms`).
//!
//! Each episode (a connection first held back, until its bucket has filled again) is
//! logged once and counted in `/metrics`, with every held request and the time held.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A token bucket: `per_second` tokens a second, at most `per_second` held.
#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `per_second` (at least 1).
    pub fn new(per_second: u32, now: Instant) -> TokenBucket {
        let per_second = f64::from(per_second.max(1));
        TokenBucket {
            per_second,
            tokens: per_second,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        self.last = now;
    }

    /// Takes a token for one request: how long to wait before serving it (zero when a
    /// token was there). Waiting that long pays the debt back exactly.
    pub fn take(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_second)
        }
    }

    /// Whether the bucket has filled up again (the end of an episode).
    pub fn full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.per_second
    }
}

/// Which listener a connection came in on (the `/metrics` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// A Kafka listener.
    Kafka,
    /// The ZooKeeper client port (or its TLS port).
    ZooKeeper,
    /// The MQTT listener (or its TLS port).
    Mqtt,
}

impl Listener {
    const ALL: [Listener; 3] = [Listener::Kafka, Listener::ZooKeeper, Listener::Mqtt];

    fn name(self) -> &'static str {
        match self {
            Listener::Kafka => "kafka",
            Listener::ZooKeeper => "zookeeper",
            Listener::Mqtt => "mqtt",
        }
    }

    fn counters(self) -> &'static Counters {
        &COUNTERS[self as usize]
    }
}

struct Counters {
    episodes: AtomicU64,
    requests: AtomicU64,
    waited_us: AtomicU64,
}

static COUNTERS: [Counters; 3] = [const {
    Counters {
        episodes: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        waited_us: AtomicU64::new(0),
    }
}; 3];

/// One connection's request rate.
#[derive(Debug)]
pub struct ConnectionRate {
    bucket: Option<TokenBucket>,
    listener: Listener,
    peer: SocketAddr,
    limit: u32,
    in_episode: bool,
}

impl ConnectionRate {
    /// The rate of a new connection; `per_second` 0 means no limit.
    pub fn new(per_second: u32, listener: Listener, peer: SocketAddr) -> ConnectionRate {
        ConnectionRate {
            bucket: (per_second > 0).then(|| TokenBucket::new(per_second, Instant::now())),
            listener,
            peer,
            limit: per_second,
            in_episode: false,
        }
    }

    /// Whether the next [`ConnectionRate::pace`] would wait.
    pub fn would_wait(&mut self) -> bool {
        self.bucket.as_mut().is_some_and(|b| {
            b.refill(Instant::now());
            b.tokens < 1.0
        })
    }

    /// Takes a token for the request just read, waiting (reading nothing more from the
    /// connection) until there is one. Returns how long it waited.
    pub async fn pace(&mut self) -> Duration {
        let Some(bucket) = &mut self.bucket else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        if self.in_episode && bucket.full(now) {
            self.in_episode = false;
        }
        let wait = bucket.take(now);
        if wait.is_zero() {
            return wait;
        }
        let counters = self.listener.counters();
        if !self.in_episode {
            self.in_episode = true;
            counters.episodes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                peer = %self.peer,
                listener = self.listener.name(),
                limit = self.limit,
                "connection over security.max_requests_per_second_per_connection; reading it more slowly"
            );
        }
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters
            .waited_us
            .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
        tokio::time::sleep(wait).await;
        wait
    }
}

/// Renders one counter of a listener.
type CounterText = fn(&Counters) -> String;

/// Append the Prometheus text of the rate limit's counters to `out`.
pub fn render(out: &mut String) {
    use crate::health::metrics::header;
    let series: [(&str, &str, CounterText); 3] = [
        (
            "bramble_connection_rate_limited_episodes_total",
            "Times a connection was first held back by max_requests_per_second_per_connection (each is logged once), per listener.",
            |c| c.episodes.load(Ordering::Relaxed).to_string(),
        ),
        (
            "bramble_connection_rate_limited_requests_total",
            "Requests that waited for their connection's request rate, per listener.",
            |c| c.requests.load(Ordering::Relaxed).to_string(),
        ),
        (
            "bramble_connection_rate_limited_seconds_total",
            "Time connections were not read because of their request rate, per listener.",
            |c| (c.waited_us.load(Ordering::Relaxed) as f64 / 1e6).to_string(),
        ),
    ];
    for (name, help, value) in series {
        header(out, name, help, "counter");
        for listener in Listener::ALL {
            let _ = writeln!(
                out,
                "{name}{{listener=\"{}\"}} {}",
                listener.name(),
                value(listener.counters())
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_second_of_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, start);
        for _ in 0..10 {
            assert_eq!(bucket.take(start), Duration::ZERO);
        }
        // The 11th waits a tenth of a second; the 12th, taken at once, two tenths.
        let wait = bucket.take(start);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        let wait = bucket.take(start);
        assert!((wait.as_secs_f64() - 0.2).abs() < 1e-9, "{wait:?}");
        // After waiting the debt out, one request per tenth of a second.
        let later = start + Duration::from_millis(200);
        let wait = bucket.take(later);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert!(!bucket.full(later));
        // Quiet for long enough, the bucket is full again (and holds no more).
        let much_later = start + Duration::from_secs(5);
        assert!(bucket.full(much_later));
        for _ in 0..10 {
            assert_eq!(bucket.take(much_later), Duration::ZERO);
        }
        assert!(bucket.take(much_later) > Duration::ZERO);
    }

    #[tokio::test]
    async fn an_unlimited_connection_never_waits() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut rate = ConnectionRate::new(0, Listener::Kafka, peer);
        for _ in 0..10_000 {
            assert_eq!(rate.pace().await, Duration::ZERO);
        }
    }
}
