//! What every way into the log shares (Kafka Produce, MQTT ingest): finding or creating the
//! target topic, choosing a partition for a key as Kafka's default partitioner does, and
//! waiting until an append is committed.

use std::sync::Arc;

use super::{Broker, Partition, Topic, TopicError};

impl Broker {
    /// Find a topic, creating it with the broker defaults when `allow_create` is set.
    /// A bad name is [`TopicError::InvalidName`]; an unknown topic that may not be created
    /// is [`TopicError::Unknown`].
    pub async fn resolve_topic(
        &self,
        name: &str,
        allow_create: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        if let Some(topic) = self.topic(name) {
            return Ok(topic);
        }
        super::topic::validate_topic_name(name).map_err(TopicError::InvalidName)?;
        if !allow_create {
            return Err(TopicError::Unknown(name.to_string()));
        }
        match self
            .create_topic(name, -1, -1, Default::default(), false)
            .await
        {
            Ok(topic) => Ok(topic),
            // Another request created it first.
            Err(TopicError::AlreadyExists(_)) => self
                .topic(name)
                .ok_or_else(|| TopicError::Unknown(name.to_string())),
            Err(error) => Err(error),
        }
    }

    /// Wait until everything below `end_offset` of `partition` is committed: the point a
    /// Kafka `acks=all` produce is answered. On one node that is "fsynced" (or merely
    /// written when `log_flush_on_ack` is off); with replication it becomes "in every
    /// in-sync replica", and every caller of this function follows.
    pub async fn wait_committed(
        &self,
        partition: &Partition,
        end_offset: i64,
    ) -> std::io::Result<()> {
        if self.config.log_flush_on_ack {
            partition.wait_durable(end_offset).await
        } else {
            Ok(())
        }
    }
}

/// The partition Kafka's default partitioner picks for a non-null key:
/// `toPositive(murmur2(key)) % partitions`, so MQTT ingest and Kafka producers agree.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// MurmurHash2 (32-bit) with the seed Kafka uses.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const SEED: u32 = 0x9747_b28c;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_reference_values() {
        // The values Kafka's own tests check Utils.murmur2 against.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input) as i32,
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        for n in 1..8 {
            let p = partition_for_key(b"sensors/kitchen", n);
            assert!(p < n);
            assert_eq!(p, partition_for_key(b"sensors/kitchen", n));
        }
    }
}
