//! The sink: MQTT messages in, records appended, and a [`Commit`] to wait on before the
//! messages may be acknowledged.
//!
//! Both ways in (listener and bridge) hand the sink a burst of publishes. The sink routes
//! each one, renders its key, groups records by target partition (keeping each partition's
//! order), builds one v2 batch per partition and appends it with `Partition::append`, the
//! same call a Kafka produce makes. The returned [`Commit`] is waited on with
//! `Broker::wait_committed`, which is what a Kafka `acks=all` produce waits on: fsynced on
//! one node today, replicated once the cluster exists.

use std::sync::Arc;

use bytes::Bytes;

use super::codec::{Publish, QoS};
use super::metrics::MqttMetrics;
use super::routes::{Route, Routes};
use crate::broker::produce::partition_for_key;
use crate::broker::{now_ms, Broker, Partition, Topic, TopicError};
use crate::log::builder::{BatchBuilder, Header};
use crate::broker::partition::AppendError;

/// Why messages could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target topic could not be found or created.
    #[error("target topic {topic}: {source}")]
    Topic {
        /// The log topic.
        topic: String,
        /// Why.
        source: TopicError,
    },
    /// The log refused the append.
    #[error("append to {topic}-{partition}: {source}")]
    Append {
        /// The log topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Why.
        source: AppendError,
    },
}

/// A partition written and the offset just past its last record.
type CommitPoint = (Arc<Partition>, i64);

/// Where appended records must reach before their messages may be acknowledged: for each
/// partition written, the offset just past the last record. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    points: Option<Arc<[CommitPoint]>>,
}

impl Commit {
    /// Whether there is nothing to wait for.
    pub fn is_empty(&self) -> bool {
        self.points.as_ref().is_none_or(|p| p.is_empty())
    }
}

/// Who sent the messages.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The MQTT client id (a bridge's own client id for bridged messages).
    pub client_id: &'a str,
    /// A route that takes every message (a bridge with its own `topic`); `None` uses the
    /// shared routes.
    pub only_route: Option<&'a Route>,
}

/// Turns MQTT messages into records.
#[derive(Debug)]
pub struct Sink {
    broker: Arc<Broker>,
    routes: Routes,
    metrics: Arc<MqttMetrics>,
    batch_bytes_max: usize,
}

/// A batch under construction for one partition.
struct Open {
    topic: Arc<Topic>,
    partition: Arc<Partition>,
    builder: BatchBuilder,
}

impl Sink {
    /// A sink writing to `broker` by `routes`; batches stay under `batch_bytes_max`.
    pub fn new(broker: Arc<Broker>, routes: Routes, metrics: Arc<MqttMetrics>, batch_bytes_max: u32) -> Sink {
        Sink {
            broker,
            routes,
            metrics,
            batch_bytes_max: batch_bytes_max as usize,
        }
    }

    /// The shared routes.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Append `messages` (in order) and return what to wait on. `routed[i]` tells whether
    /// message `i` matched a route (an unrouted message is dropped, and counted).
    pub async fn ingest(&self, source: Source<'_>, messages: &[Publish], routed: &mut Vec<bool>) -> Result<Commit, SinkError> {
        routed.clear();
        let now = now_ms();
        let mut open: Vec<Open> = Vec::new();
        let mut points: Vec<CommitPoint> = Vec::new();
        let mut key = Vec::new();
        for message in messages {
            let (route, route_index) = match source.only_route {
                Some(route) => (route, None),
                None => match self.routes.find(&message.topic) {
                    Some((index, route)) => (route, Some(index)),
                    None => {
                        tracing::debug!(topic = %message.topic, client = source.client_id, "no route matches; message dropped");
                        self.metrics.unrouted.add(message.payload.len());
                        routed.push(false);
                        continue;
                    }
                },
            };
            routed.push(true);
            route.key.render(&message.topic, source.client_id, &mut key);
            let slot = self.open_slot(&mut open, &route.topic, &key, now).await?;
            let qos = [b"0", b"1", b"2"][message.qos as usize];
            let mut headers: Vec<Header<'_>> = Vec::new();
            if route.headers {
                headers.reserve(4 + message.properties.user_properties.len());
                headers.push(Header { key: "mqtt.topic", value: message.topic.as_bytes() });
                headers.push(Header { key: "mqtt.qos", value: qos });
                headers.push(Header {
                    key: "mqtt.retain",
                    value: if message.retain { b"true" } else { b"false" },
                });
                headers.push(Header { key: "mqtt.client_id", value: source.client_id.as_bytes() });
                let p = &message.properties;
                if let Some(content_type) = &p.content_type {
                    headers.push(Header { key: "mqtt.content_type", value: content_type.as_bytes() });
                }
                if let Some(response_topic) = &p.response_topic {
                    headers.push(Header { key: "mqtt.response_topic", value: response_topic.as_bytes() });
                }
                if let Some(correlation) = &p.correlation_data {
                    headers.push(Header { key: "mqtt.correlation_data", value: correlation });
                }
                for (name, value) in &p.user_properties {
                    headers.push(Header { key: name, value: value.as_bytes() });
                }
            }
            let entry = &mut open[slot];
            let size = BatchBuilder::record_bytes(entry.builder.record_count(), 0, Some(&key), &message.payload, &headers);
            if !entry.builder.is_empty() && entry.builder.size_bytes() + size > self.batch_bytes_max {
                let full = std::mem::replace(&mut entry.builder, BatchBuilder::new(now, 0));
                points.push(append(entry, full, now)?);
            }
            let entry = &mut open[slot];
            // Records of one batch are a millisecond apart at most; keep arrival order.
            entry.builder.push(now, Some(&key), &message.payload, &headers);
            self.metrics.ingested.add(message.payload.len());
            if let Some(index) = route_index {
                self.metrics.routes[index].add(message.payload.len());
            }
        }
        for mut entry in open {
            let builder = std::mem::replace(&mut entry.builder, BatchBuilder::new(now, 0));
            if !builder.is_empty() {
                points.push(append(&entry, builder, now)?);
            }
        }
        // One wait per partition is enough: a later offset covers the earlier ones.
        points.sort_by(|a, b| Arc::as_ptr(&a.0).cmp(&Arc::as_ptr(&b.0)).then(b.1.cmp(&a.1)));
        points.dedup_by(|later, earlier| Arc::ptr_eq(&later.0, &earlier.0));
        Ok(Commit {
            points: if points.is_empty() { None } else { Some(points.into()) },
        })
    }

    /// The index in `open` of the batch for `topic`'s partition for `key`, opening it.
    async fn open_slot(&self, open: &mut Vec<Open>, topic: &str, key: &[u8], now: i64) -> Result<usize, SinkError> {
        let found = open.iter().position(|o| o.topic.name == topic);
        let topic = match found {
            Some(i) => open[i].topic.clone(),
            None => self
                .broker
                .resolve_topic(topic, true)
                .await
                .map_err(|source| SinkError::Topic { topic: topic.to_string(), source })?,
        };
        let count = u32::try_from(topic.partitions.len()).unwrap_or(u32::MAX);
        let index = if count <= 1 { 0 } else { partition_for_key(key, count) as usize };
        let partition = topic.partitions[index].clone();
        if let Some(i) = open.iter().position(|o| Arc::ptr_eq(&o.partition, &partition)) {
            return Ok(i);
        }
        open.push(Open {
            topic,
            partition,
            builder: BatchBuilder::new(now, 0),
        });
        Ok(open.len() - 1)
    }

    /// Wait until `commit` is committed (see `Broker::wait_committed`).
    pub async fn wait(&self, commit: &Commit) -> std::io::Result<()> {
        if let Some(points) = &commit.points {
            for (partition, end_offset) in points.iter() {
                self.broker.wait_committed(partition, *end_offset).await?;
            }
        }
        Ok(())
    }
}

fn append(entry: &Open, builder: BatchBuilder, now: i64) -> Result<CommitPoint, SinkError> {
    let mut batch = builder.finish();
    let info = entry.partition.append(&mut batch, now).map_err(|source| SinkError::Append {
        topic: entry.partition.topic.clone(),
        partition: entry.partition.index,
        source,
    })?;
    // The per-topic traffic counters of /metrics count MQTT records as Kafka produces do.
    let records = u64::try_from(info.last_offset - info.base_offset + 1).unwrap_or(0);
    crate::health::metrics::kafka().produced(&entry.partition.topic, records, batch.len() as u64);
    Ok((entry.partition.clone(), info.last_offset + 1))
}

/// A message from any source in the sink's terms (the bridge converts its client's type).
pub fn message(topic: String, payload: Bytes, qos: QoS, retain: bool) -> Publish {
    Publish {
        dup: false,
        qos,
        retain,
        topic,
        packet_id: 0,
        properties: Default::default(),
        payload,
    }
}
