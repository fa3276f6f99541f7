//! The sink: MQTT messages in, records appended, and a [`Commit`] to wait on before the
//! messages may be acknowledged.
//!
//! Both ways in (listener and bridge) hand the sink a burst of publishes. The sink routes
//! each one, renders its key, groups records by target partition (keeping each partition's
//! order), builds one v2 batch per partition and appends it with `Partition::append`, the
//! same call a Kafka produce makes. The returned [`Commit`] is waited on as a Kafka
//! `acks=all` produce is: on a single node `Broker::wait_committed` (fsynced under
//! `log_flush_on_ack`); in a cluster, fsynced and then in the ISR (the partition's high
//! watermark has passed it), through the same `Replication` calls the Produce handler makes.
//! In a cluster, topics are created through the controller, and a partition this node does
//! not lead is refused (the connection closes unacknowledged; see the README).

use std::sync::Arc;

use bytes::Bytes;

use super::codec::{Publish, QoS};
use super::metrics::MqttMetrics;
use super::routes::{Route, Routes};
use crate::broker::partition::AppendError;
use crate::broker::produce::partition_for_key;
use crate::broker::{now_ms, Broker, Partition, Topic, TopicError};
use crate::log::builder::{BatchBuilder, Header};
use crate::replication::Replication;

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
    /// In a cluster, this node does not lead the partition the message belongs to.
    #[error("{topic}-{partition} is not led by this node (Kafka error {code})")]
    NotLeader {
        /// The log topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The Kafka error code the replication layer gave.
        code: i16,
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

/// How long a commit may take in a cluster (Kafka's default `request.timeout.ms`) before the
/// connection is closed unacknowledged.
pub const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
    replication: Option<Arc<Replication>>,
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
    pub fn new(
        broker: Arc<Broker>,
        replication: Option<Arc<Replication>>,
        routes: Routes,
        metrics: Arc<MqttMetrics>,
        batch_bytes_max: u32,
    ) -> Sink {
        Sink {
            broker,
            replication,
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
    pub async fn ingest(
        &self,
        source: Source<'_>,
        messages: &[Publish],
        routed: &mut Vec<bool>,
    ) -> Result<Commit, SinkError> {
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
                headers.push(Header {
                    key: "mqtt.topic",
                    value: message.topic.as_bytes(),
                });
                headers.push(Header {
                    key: "mqtt.qos",
                    value: qos,
                });
                headers.push(Header {
                    key: "mqtt.retain",
                    value: if message.retain { b"true" } else { b"false" },
                });
                headers.push(Header {
                    key: "mqtt.client_id",
                    value: source.client_id.as_bytes(),
                });
                let p = &message.properties;
                if let Some(content_type) = &p.content_type {
                    headers.push(Header {
                        key: "mqtt.content_type",
                        value: content_type.as_bytes(),
                    });
                }
                if let Some(response_topic) = &p.response_topic {
                    headers.push(Header {
                        key: "mqtt.response_topic",
                        value: response_topic.as_bytes(),
                    });
                }
                if let Some(correlation) = &p.correlation_data {
                    headers.push(Header {
                        key: "mqtt.correlation_data",
                        value: correlation,
                    });
                }
                for (name, value) in &p.user_properties {
                    headers.push(Header {
                        key: name,
                        value: value.as_bytes(),
                    });
                }
            }
            let entry = &mut open[slot];
            let size = BatchBuilder::record_bytes(
                entry.builder.record_count(),
                0,
                Some(&key),
                &message.payload,
                &headers,
            );
            if !entry.builder.is_empty() && entry.builder.size_bytes() + size > self.batch_bytes_max
            {
                let full = std::mem::replace(&mut entry.builder, BatchBuilder::new(now, 0));
                points.push(append(entry, full, now)?);
            }
            let entry = &mut open[slot];
            // Records of one batch are a millisecond apart at most; keep arrival order.
            entry
                .builder
                .push(now, Some(&key), &message.payload, &headers);
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
        points.sort_by(|a, b| {
            Arc::as_ptr(&a.0)
                .cmp(&Arc::as_ptr(&b.0))
                .then(b.1.cmp(&a.1))
        });
        points.dedup_by(|later, earlier| Arc::ptr_eq(&later.0, &earlier.0));
        Ok(Commit {
            points: if points.is_empty() {
                None
            } else {
                Some(points.into())
            },
        })
    }

    /// The index in `open` of the batch for `topic`'s partition for `key`, opening it.
    async fn open_slot(
        &self,
        open: &mut Vec<Open>,
        topic: &str,
        key: &[u8],
        now: i64,
    ) -> Result<usize, SinkError> {
        let found = open.iter().position(|o| o.topic.name == topic);
        let topic = match found {
            Some(i) => open[i].topic.clone(),
            None => self
                .resolve_topic(topic)
                .await
                .map_err(|source| SinkError::Topic {
                    topic: topic.to_string(),
                    source,
                })?,
        };
        let count = u32::try_from(topic.partitions.len()).unwrap_or(u32::MAX);
        let index = if count <= 1 {
            0
        } else {
            partition_for_key(key, count) as usize
        };
        let partition = topic.partitions[index].clone();
        if let Some(replication) = &self.replication {
            replication
                .check_produce(&topic.name, partition.index, -1)
                .map_err(|code| SinkError::NotLeader {
                    topic: topic.name.clone(),
                    partition: partition.index,
                    code,
                })?;
        }
        if let Some(i) = open
            .iter()
            .position(|o| Arc::ptr_eq(&o.partition, &partition))
        {
            return Ok(i);
        }
        open.push(Open {
            topic,
            partition,
            builder: BatchBuilder::new(now, 0),
        });
        Ok(open.len() - 1)
    }

    /// Find a route's topic, creating it with the broker's defaults (through the controller
    /// in a cluster).
    async fn resolve_topic(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        let Some(replication) = &self.replication else {
            return self.broker.resolve_topic(name, true).await;
        };
        if let Some(topic) = self.broker.topic(name) {
            return Ok(topic);
        }
        match replication
            .create_topic(name, -1, -1, Default::default(), false)
            .await
        {
            Ok(topic) => Ok(topic),
            Err(TopicError::AlreadyExists(_)) => self
                .broker
                .topic(name)
                .ok_or_else(|| TopicError::Unknown(name.to_string())),
            Err(error) => Err(error),
        }
    }

    /// Wait until `commit` is committed, as `acks=all` is: fsynced, and in a cluster in the
    /// ISR, within [`COMMIT_TIMEOUT`].
    pub async fn wait(&self, commit: &Commit) -> std::io::Result<()> {
        let Some(points) = &commit.points else {
            return Ok(());
        };
        let Some(replication) = &self.replication else {
            for (partition, end_offset) in points.iter() {
                self.broker.wait_committed(partition, *end_offset).await?;
            }
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
        let mut arrivals = self.broker.data_arrived();
        for (partition, end_offset) in points.iter() {
            if self.broker.config.log_flush_on_ack {
                partition.wait_durable(*end_offset).await?;
            }
            // The same steps as the Produce handler's acks=all wait.
            loop {
                arrivals.borrow_and_update();
                replication.update_high_watermark(&partition.topic, partition);
                if partition.high_watermark() >= *end_offset {
                    break;
                }
                if let Err(code) = replication.check_produce(&partition.topic, partition.index, -1)
                {
                    return Err(std::io::Error::other(format!(
                        "{}-{} cannot commit (Kafka error {code})",
                        partition.topic, partition.index
                    )));
                }
                match tokio::time::timeout_at(deadline, arrivals.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(std::io::Error::other("the broker is closing")),
                    Err(_) => {
                        let message = format!(
                            "{}-{}: the ISR did not reach offset {end_offset} in time",
                            partition.topic, partition.index
                        );
                        return Err(std::io::Error::other(message));
                    }
                }
            }
        }
        Ok(())
    }
}

fn append(entry: &Open, builder: BatchBuilder, now: i64) -> Result<CommitPoint, SinkError> {
    let mut batch = builder.finish();
    let info = entry
        .partition
        .append(&mut batch, now)
        .map_err(|source| SinkError::Append {
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
