//! Counters on the Kafka paths, cheap enough for every request: messages and bytes in and
//! out per topic, and request counts and latencies per API in fixed histogram buckets.
//! Process-wide (one broker per process), so the hot paths need no handle passed down.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Topics tracked one by one; traffic of further topics is counted under `_other`.
pub const TOPICS_TRACKED_MAX: usize = 10_000;
/// API keys tracked (Kafka's keys are below this).
pub const API_KEYS_MAX: usize = 96;
/// Upper bounds of the latency buckets, in microseconds (`+Inf` is implied).
pub const LATENCY_BUCKETS_US: [u64; 13] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 10_000_000,
];

/// Picks one counter out of a topic's traffic.
type TrafficField = fn(&TopicTraffic) -> u64;

/// Traffic of one topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicTraffic {
    /// Records appended.
    pub messages_in: u64,
    /// Record-batch bytes appended.
    pub bytes_in: u64,
    /// Records sent to fetchers (whole batches, as Kafka counts them).
    pub messages_out: u64,
    /// Record-batch bytes sent to fetchers.
    pub bytes_out: u64,
}

/// Requests of one API.
#[derive(Debug)]
struct ApiStats {
    count: AtomicU64,
    /// Answers that carried a throttle_time_ms because a memory pool was short.
    throttled: AtomicU64,
    sum_us: AtomicU64,
    /// Non-cumulative: bucket i counts latencies in (bound[i-1], bound[i]]; the last is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
}

impl ApiStats {
    const fn new() -> ApiStats {
        ApiStats {
            count: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS_US.len() + 1],
        }
    }
}

/// The Kafka counters.
#[derive(Debug)]
pub struct KafkaMetrics {
    topics: Mutex<BTreeMap<String, TopicTraffic>>,
    apis: [ApiStats; API_KEYS_MAX],
}

static KAFKA: KafkaMetrics = KafkaMetrics {
    topics: Mutex::new(BTreeMap::new()),
    apis: [const { ApiStats::new() }; API_KEYS_MAX],
};

/// The process's Kafka counters.
pub fn kafka() -> &'static KafkaMetrics {
    &KAFKA
}

impl KafkaMetrics {
    fn topic(&self, topic: &str, update: impl FnOnce(&mut TopicTraffic)) {
        let mut topics = self.topics.lock().expect("metrics lock");
        if let Some(traffic) = topics.get_mut(topic) {
            update(traffic);
        } else {
            let key = if topics.len() < TOPICS_TRACKED_MAX {
                topic
            } else {
                "_other"
            };
            update(topics.entry(key.to_string()).or_default());
        }
    }

    /// `messages` records of `bytes` bytes were appended to `topic`.
    pub fn produced(&self, topic: &str, messages: u64, bytes: u64) {
        self.topic(topic, |t| {
            t.messages_in += messages;
            t.bytes_in += bytes;
        });
    }

    /// `records` (stored batches) were sent from `topic`.
    pub fn fetched(&self, topic: &str, records: &[u8]) {
        if records.is_empty() {
            return;
        }
        let messages = count_records(records);
        self.topic(topic, |t| {
            t.messages_out += messages;
            t.bytes_out += records.len() as u64;
        });
    }

    /// A request of API `api_key` was answered after `elapsed`.
    pub fn request(&self, api_key: i16, elapsed: Duration) {
        let Some(stats) = usize::try_from(api_key).ok().and_then(|k| self.apis.get(k)) else {
            return;
        };
        let us = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        stats.count.fetch_add(1, Ordering::Relaxed);
        stats.sum_us.fetch_add(us, Ordering::Relaxed);
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        stats.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Traffic per topic, by name.
    pub fn topics(&self) -> BTreeMap<String, TopicTraffic> {
        self.topics.lock().expect("metrics lock").clone()
    }

    /// Counts an answer throttled for memory.
    pub fn throttled(&self, api_key: i16) {
        if let Some(stats) = usize::try_from(api_key).ok().and_then(|k| self.apis.get(k)) {
            stats.throttled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Answers of `api_key` throttled for memory so far.
    pub fn throttled_total(&self, api_key: i16) -> u64 {
        usize::try_from(api_key)
            .ok()
            .and_then(|k| self.apis.get(k))
            .map_or(0, |s| s.throttled.load(Ordering::Relaxed))
    }

    /// Requests answered, all APIs together.
    pub fn requests_total(&self) -> u64 {
        self.apis
            .iter()
            .map(|a| a.count.load(Ordering::Relaxed))
            .sum()
    }

    /// Append the Prometheus text of these counters to `out`.
    pub fn render(&self, out: &mut String) {
        let topics = self.topics();
        let series: [(&str, &str, TrafficField); 4] = [
            (
                "bramble_messages_in_total",
                "Records appended, per topic.",
                |t| t.messages_in,
            ),
            (
                "bramble_bytes_in_total",
                "Record-batch bytes appended, per topic.",
                |t| t.bytes_in,
            ),
            (
                "bramble_messages_out_total",
                "Records sent to fetchers, per topic.",
                |t| t.messages_out,
            ),
            (
                "bramble_bytes_out_total",
                "Record-batch bytes sent to fetchers, per topic.",
                |t| t.bytes_out,
            ),
        ];
        for (name, help, value) in series {
            header(out, name, help, "counter");
            for (topic, traffic) in &topics {
                let _ = writeln!(
                    out,
                    "{name}{{topic=\"{}\"}} {}",
                    escape(topic),
                    value(traffic)
                );
            }
        }
        header(
            out,
            "bramble_kafka_requests_total",
            "Kafka requests answered, per API.",
            "counter",
        );
        let apis: Vec<(String, &ApiStats)> = self
            .apis
            .iter()
            .enumerate()
            .filter(|(_, s)| s.count.load(Ordering::Relaxed) > 0)
            .map(|(key, s)| (api_name(key as i16), s))
            .collect();
        for (api, stats) in &apis {
            let _ = writeln!(
                out,
                "bramble_kafka_requests_total{{api=\"{api}\"}} {}",
                stats.count.load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "bramble_kafka_throttled_total",
            "Produce and Fetch answers that carried throttle_time_ms because a memory pool was short, per API.",
            "counter",
        );
        for (api, stats) in &apis {
            let throttled = stats.throttled.load(Ordering::Relaxed);
            if throttled > 0 {
                let _ = writeln!(
                    out,
                    "bramble_kafka_throttled_total{{api=\"{api}\"}} {throttled}"
                );
            }
        }
        header(
            out,
            "bramble_kafka_request_duration_seconds",
            "Time from request read to answer ready, per API.",
            "histogram",
        );
        for (api, stats) in &apis {
            let mut cumulative = 0;
            for (i, bucket) in stats.buckets.iter().enumerate() {
                cumulative += bucket.load(Ordering::Relaxed);
                let le = LATENCY_BUCKETS_US
                    .get(i)
                    .map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
                let _ = writeln!(out, "bramble_kafka_request_duration_seconds_bucket{{api=\"{api}\",le=\"{le}\"}} {cumulative}");
            }
            let sum = stats.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "bramble_kafka_request_duration_seconds_sum{{api=\"{api}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "bramble_kafka_request_duration_seconds_count{{api=\"{api}\"}} {cumulative}"
            );
        }
    }
}

/// `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Kafka's name of an API key (`Produce`, `Fetch`), or the number.
pub fn api_name(key: i16) -> String {
    kafka_protocol::messages::ApiKey::try_from(key)
        .map_or_else(|_| key.to_string(), |k| format!("{k:?}"))
}

/// Records in a run of v2 record batches (a truncated last batch, as a fetch may end with,
/// is not counted).
pub fn count_records(mut bytes: &[u8]) -> u64 {
    // baseOffset (8) batchLength (4) ... recordCount at byte 57 (4).
    const HEADER: usize = 61;
    let mut total = 0u64;
    while bytes.len() >= HEADER {
        let length = i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let Ok(size) = usize::try_from(length).map(|l| l + 12) else {
            break;
        };
        if size < HEADER || size > bytes.len() {
            break;
        }
        let records = i32::from_be_bytes([bytes[57], bytes[58], bytes[59], bytes[60]]);
        total += u64::try_from(records).unwrap_or(0);
        bytes = &bytes[size..];
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: i32, body: usize) -> Vec<u8> {
        let mut b = vec![0u8; 61 + body];
        let length = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&length.to_be_bytes());
        b[57..61].copy_from_slice(&records.to_be_bytes());
        b
    }

    #[test]
    fn counts_records_of_whole_batches_only() {
        let mut bytes = batch(3, 40);
        bytes.extend(batch(5, 10));
        assert_eq!(count_records(&bytes), 8);
        let truncated = &bytes[..bytes.len() - 4];
        assert_eq!(count_records(truncated), 3);
        assert_eq!(count_records(&[]), 0);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_named_by_api() {
        let metrics = KafkaMetrics {
            topics: Mutex::new(BTreeMap::new()),
            apis: [const { ApiStats::new() }; API_KEYS_MAX],
        };
        metrics.request(0, Duration::from_micros(300));
        metrics.request(0, Duration::from_millis(20));
        metrics.request(0, Duration::from_secs(60));
        metrics.produced("t\"1", 2, 100);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains(
                "bramble_kafka_request_duration_seconds_bucket{api=\"Produce\",le=\"0.0005\"} 1"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "bramble_kafka_request_duration_seconds_bucket{api=\"Produce\",le=\"0.025\"} 2"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "bramble_kafka_request_duration_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 3"
            ),
            "{out}"
        );
        assert!(
            out.contains("bramble_messages_in_total{topic=\"t\\\"1\"} 2"),
            "{out}"
        );
    }
}
