//! Kafka error codes bramble answers with (the protocol's numbers), and the mapping from
//! broker and log errors to them.

use crate::broker::TopicError;
use crate::log::LogError;

/// No error.
pub const NONE: i16 = 0;
/// Something unexpected on the server.
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
/// The fetch offset is outside the log.
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
/// A batch failed its CRC or is not a valid v2 batch.
pub const CORRUPT_MESSAGE: i16 = 2;
/// The topic or partition does not exist.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// No leader right now; retry.
pub const LEADER_NOT_AVAILABLE: i16 = 5;
/// This node does not lead the partition.
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// The request took longer than it allowed.
pub const REQUEST_TIMED_OUT: i16 = 7;
/// A batch is larger than `max.message.bytes`.
pub const MESSAGE_TOO_LARGE: i16 = 10;
/// The group coordinator is not available.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// This node is not the group coordinator.
pub const NOT_COORDINATOR: i16 = 16;
/// The topic name is not valid.
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
/// Fewer in-sync replicas than `min.insync.replicas`.
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
/// `acks` other than -1, 0, 1.
pub const INVALID_REQUIRED_ACKS: i16 = 21;
/// The request version is not served.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// The topic exists already.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Bad partition count.
pub const INVALID_PARTITIONS: i16 = 37;
/// Bad replication factor.
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
/// Bad replica assignment.
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
/// A configuration value was refused.
pub const INVALID_CONFIG: i16 = 40;
/// The request is not valid.
pub const INVALID_REQUEST: i16 = 42;
/// Old message format (magic 0 or 1).
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
/// A policy refused the change.
pub const POLICY_VIOLATION: i16 = 44;
/// The disk failed.
pub const KAFKA_STORAGE_ERROR: i16 = 56;
/// The leader epoch in the request is older than the partition's.
pub const FENCED_LEADER_EPOCH: i16 = 74;
/// The leader epoch in the request is newer than the partition's.
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
/// A record in the batch is not acceptable.
pub const INVALID_RECORD: i16 = 87;
/// The topic id is not known.
pub const UNKNOWN_TOPIC_ID: i16 = 100;

/// The error code and message for a failed append or read.
pub fn from_log_error(error: &LogError) -> i16 {
    match error {
        LogError::CorruptBatch(_) => CORRUPT_MESSAGE,
        LogError::InvalidRecord(_) => INVALID_RECORD,
        LogError::BatchTooLarge { .. } => MESSAGE_TOO_LARGE,
        LogError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        LogError::Io { .. } => KAFKA_STORAGE_ERROR,
    }
}

/// The error code for a refused topic operation.
pub fn from_topic_error(error: &TopicError) -> i16 {
    match error {
        TopicError::InvalidName(_) => INVALID_TOPIC_EXCEPTION,
        TopicError::AlreadyExists(_) => TOPIC_ALREADY_EXISTS,
        TopicError::Unknown(_) => UNKNOWN_TOPIC_OR_PARTITION,
        TopicError::InvalidPartitions(_) => INVALID_PARTITIONS,
        TopicError::InvalidReplicationFactor(_) => INVALID_REPLICATION_FACTOR,
        TopicError::InvalidConfig(_) => INVALID_CONFIG,
        TopicError::PolicyViolation(_) => POLICY_VIOLATION,
        TopicError::Storage(_) => KAFKA_STORAGE_ERROR,
    }
}
