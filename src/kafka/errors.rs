//! Kafka error codes bramble answers with (the protocol's numbers), and the mapping from
//! broker and log errors to them.

use crate::broker::partition::AppendError;
use crate::broker::producer_state::ProducerError;
use crate::broker::TopicError;
use crate::group::GroupError;
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
/// The coordinator cannot take this yet; retry (here: the group memory pool is full).
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
/// This node is not the group coordinator.
pub const NOT_COORDINATOR: i16 = 16;
/// The topic name is not valid.
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
/// Fewer in-sync replicas than `min.insync.replicas`.
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
/// The write reached the high watermark, but the ISR had shrunk below `min_insync_replicas`.
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
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
/// The preferred replica is not alive or not in sync, so it cannot lead.
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
/// No replica that may lead is alive.
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
/// The partition already has the leader the election would give it.
pub const ELECTION_NOT_NEEDED: i16 = 84;
/// The leader epoch in the request is newer than the partition's.
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
/// A record in the batch is not acceptable.
pub const INVALID_RECORD: i16 = 87;
/// The topic id is not known.
pub const UNKNOWN_TOPIC_ID: i16 = 100;
/// The generation is not the group's current one.
pub const ILLEGAL_GENERATION: i16 = 22;
/// The member's protocol type or protocols do not match the group's.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
/// The group id is empty or otherwise unusable.
pub const INVALID_GROUP_ID: i16 = 24;
/// The member id is not in the group.
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// The session timeout is outside the broker's allowed range.
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
/// The group is rebalancing; rejoin.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// The offset metadata string is too long.
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
/// The idempotent producer's batch does not continue its sequence.
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// The producer's epoch is older than the current one.
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
/// The partition has no state for this producer.
pub const UNKNOWN_PRODUCER_ID: i16 = 59;
/// The group has members, so it cannot be deleted.
pub const NON_EMPTY_GROUP: i16 = 68;
/// The group does not exist.
pub const GROUP_ID_NOT_FOUND: i16 = 69;
/// JoinGroup needs the member id the coordinator just gave (KIP-394).
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// The group has reached `group_max_size` members.
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
/// Another member took this static member's group.instance.id.
pub const FENCED_INSTANCE_ID: i16 = 82;
/// The group is subscribed to the topic whose offsets were to be deleted.
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// The code for a refused append (log or idempotent-producer error).
pub fn from_append_error(error: &AppendError) -> i16 {
    match error {
        AppendError::Log(error) => from_log_error(error),
        AppendError::Producer(ProducerError::OutOfOrderSequence { .. }) => {
            OUT_OF_ORDER_SEQUENCE_NUMBER
        }
        AppendError::Producer(ProducerError::InvalidEpoch { .. }) => INVALID_PRODUCER_EPOCH,
        AppendError::Producer(ProducerError::UnknownProducer { .. }) => UNKNOWN_PRODUCER_ID,
        AppendError::Producer(ProducerError::InvalidRecord(_)) => INVALID_RECORD,
    }
}

/// The code for a refused group operation.
pub fn from_group_error(error: GroupError) -> i16 {
    match error {
        GroupError::CoordinatorNotAvailable | GroupError::Storage => COORDINATOR_NOT_AVAILABLE,
        GroupError::MemoryPoolFull => COORDINATOR_LOAD_IN_PROGRESS,
        GroupError::InvalidGroupId => INVALID_GROUP_ID,
        GroupError::UnknownMemberId => UNKNOWN_MEMBER_ID,
        GroupError::IllegalGeneration => ILLEGAL_GENERATION,
        GroupError::InconsistentGroupProtocol => INCONSISTENT_GROUP_PROTOCOL,
        GroupError::InvalidSessionTimeout => INVALID_SESSION_TIMEOUT,
        GroupError::RebalanceInProgress => REBALANCE_IN_PROGRESS,
        GroupError::MemberIdRequired => MEMBER_ID_REQUIRED,
        // No code says "too many groups"; this one is fatal for the client, and the broker
        // logs which limit was hit.
        GroupError::GroupMaxSizeReached | GroupError::TooManyGroups => GROUP_MAX_SIZE_REACHED,
        GroupError::FencedInstanceId => FENCED_INSTANCE_ID,
        GroupError::NonEmptyGroup => NON_EMPTY_GROUP,
        GroupError::GroupIdNotFound => GROUP_ID_NOT_FOUND,
        GroupError::MetadataTooLarge => INVALID_REQUEST,
        GroupError::OffsetMetadataTooLarge => OFFSET_METADATA_TOO_LARGE,
        GroupError::GroupSubscribedToTopic => GROUP_SUBSCRIBED_TO_TOPIC,
        GroupError::UnknownTopicOrPartition => UNKNOWN_TOPIC_OR_PARTITION,
        GroupError::NotCoordinator => NOT_COORDINATOR,
    }
}

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
