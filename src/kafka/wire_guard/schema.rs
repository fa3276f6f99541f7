//! The request layouts the wire guard walks: one [`Schema`] per struct of each request, as
//! kafka-protocol 0.18.0 decodes it.
//!
//! Transcribed from Kafka's message definitions (`clients/src/main/resources/common/message/
//! *Request.json`) in the form that kafka-protocol 0.18.0's generated decoders actually read:
//! nullability follows the crate's Rust types (`Option<..>` accepts null in every version),
//! known tagged fields are exactly the ones the crate parses, and every struct of a message
//! shares the message's first flexible version. Re-check this table when the crate is
//! upgraded; the tests in `wire_guard` compare it with the crate's decoder version by version.

use kafka_protocol::messages::ApiKey;

/// Open-ended upper version bound ("N+" in Kafka's message definitions).
pub(super) const MAX: i16 = i16::MAX;
/// `flexible_from` of a message that has no flexible version.
pub(super) const NEVER: i16 = i16::MAX;

/// How one field is laid out on the wire (only the kinds our requests use; Kafka also has
/// uint16, uint32 and float64). Strings, bytes and arrays use the compact
/// (varint length) form in flexible versions and the classic form before.
#[derive(Debug)]
pub(super) enum Kind {
    I8,
    I16,
    I32,
    I64,
    Bool,
    Uuid,
    /// A string; `nullable` = the decoder accepts a null (-1 / 0) length.
    Str {
        nullable: bool,
    },
    /// Opaque bytes (record batches in Produce are this too: the crate does not parse them).
    Bytes {
        nullable: bool,
    },
    /// A counted sequence of `elem`.
    Array {
        elem: &'static Kind,
        nullable: bool,
    },
    /// A nested struct (in flexible versions it ends with its own tagged-field section).
    Struct(&'static Schema),
}

pub(super) const STR: Kind = Kind::Str { nullable: false };
pub(super) const STR_N: Kind = Kind::Str { nullable: true };
pub(super) const BYTES: Kind = Kind::Bytes { nullable: false };
pub(super) const BYTES_N: Kind = Kind::Bytes { nullable: true };

/// One field of a struct, present in versions `min..=max`; `tag` is set for a tagged field
/// (which then only appears in the struct's tagged-field section).
#[derive(Debug)]
pub(super) struct Field {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    pub tag: Option<u32>,
    pub kind: Kind,
}

impl Field {
    /// Whether the field exists at `version`.
    pub fn in_version(&self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// A struct: its fields in wire order (tagged fields anywhere in the list).
#[derive(Debug)]
pub(super) struct Schema {
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// The top-level request struct of one API, with the versions the crate decodes.
#[derive(Debug)]
pub(super) struct Api {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
    pub flexible_from: i16,
    pub schema: &'static Schema,
}

pub(super) use tables::APIS;

/// The tables, one line per field, kept out of rustfmt's reach so they stay compact.
#[rustfmt::skip]
mod tables {
    use super::*;

    const fn f(name: &'static str, min: i16, max: i16, kind: Kind) -> Field {
        Field {
            name,
            min,
            max,
            tag: None,
            kind,
        }
    }

    const fn tagged(tag: u32, name: &'static str, min: i16, max: i16, kind: Kind) -> Field {
        Field {
            name,
            min,
            max,
            tag: Some(tag),
            kind,
        }
    }


    pub(in super::super) static APIS: &[Api] = &[
        Api { key: ApiKey::ApiVersions, min: 0, max: 4, flexible_from: 3, schema: &API_VERSIONS_REQUEST },
        Api { key: ApiKey::Metadata, min: 0, max: 13, flexible_from: 9, schema: &METADATA_REQUEST },
        Api { key: ApiKey::Produce, min: 3, max: 13, flexible_from: 9, schema: &PRODUCE_REQUEST },
        Api { key: ApiKey::Fetch, min: 4, max: 18, flexible_from: 12, schema: &FETCH_REQUEST },
        Api { key: ApiKey::ListOffsets, min: 1, max: 10, flexible_from: 6, schema: &LIST_OFFSETS_REQUEST },
        Api { key: ApiKey::CreateTopics, min: 2, max: 7, flexible_from: 5, schema: &CREATE_TOPICS_REQUEST },
        Api { key: ApiKey::DeleteTopics, min: 1, max: 6, flexible_from: 4, schema: &DELETE_TOPICS_REQUEST },
        Api { key: ApiKey::CreatePartitions, min: 0, max: 3, flexible_from: 2, schema: &CREATE_PARTITIONS_REQUEST },
        Api { key: ApiKey::ElectLeaders, min: 0, max: 2, flexible_from: 2, schema: &ELECT_LEADERS_REQUEST },
        Api { key: ApiKey::DescribeConfigs, min: 1, max: 4, flexible_from: 4, schema: &DESCRIBE_CONFIGS_REQUEST },
        Api { key: ApiKey::AlterConfigs, min: 0, max: 2, flexible_from: 2, schema: &ALTER_CONFIGS_REQUEST },
        Api { key: ApiKey::IncrementalAlterConfigs, min: 0, max: 1, flexible_from: 1, schema: &INCREMENTAL_ALTER_CONFIGS_REQUEST },
        Api { key: ApiKey::OffsetForLeaderEpoch, min: 2, max: 4, flexible_from: 4, schema: &OFFSET_FOR_LEADER_EPOCH_REQUEST },
        Api { key: ApiKey::FindCoordinator, min: 0, max: 6, flexible_from: 3, schema: &FIND_COORDINATOR_REQUEST },
        Api { key: ApiKey::JoinGroup, min: 0, max: 9, flexible_from: 6, schema: &JOIN_GROUP_REQUEST },
        Api { key: ApiKey::SyncGroup, min: 0, max: 5, flexible_from: 4, schema: &SYNC_GROUP_REQUEST },
        Api { key: ApiKey::Heartbeat, min: 0, max: 4, flexible_from: 4, schema: &HEARTBEAT_REQUEST },
        Api { key: ApiKey::LeaveGroup, min: 0, max: 5, flexible_from: 4, schema: &LEAVE_GROUP_REQUEST },
        Api { key: ApiKey::OffsetCommit, min: 2, max: 9, flexible_from: 8, schema: &OFFSET_COMMIT_REQUEST },
        Api { key: ApiKey::OffsetFetch, min: 1, max: 9, flexible_from: 6, schema: &OFFSET_FETCH_REQUEST },
        Api { key: ApiKey::OffsetDelete, min: 0, max: 0, flexible_from: NEVER, schema: &OFFSET_DELETE_REQUEST },
        Api { key: ApiKey::ListGroups, min: 0, max: 5, flexible_from: 3, schema: &LIST_GROUPS_REQUEST },
        Api { key: ApiKey::DescribeGroups, min: 0, max: 6, flexible_from: 5, schema: &DESCRIBE_GROUPS_REQUEST },
        Api { key: ApiKey::DeleteGroups, min: 0, max: 2, flexible_from: 2, schema: &DELETE_GROUPS_REQUEST },
        Api { key: ApiKey::InitProducerId, min: 0, max: 5, flexible_from: 2, schema: &INIT_PRODUCER_ID_REQUEST },
        Api { key: ApiKey::DeleteRecords, min: 0, max: 2, flexible_from: 2, schema: &DELETE_RECORDS_REQUEST },
        Api { key: ApiKey::SaslHandshake, min: 0, max: 1, flexible_from: NEVER, schema: &SASL_HANDSHAKE_REQUEST },
        Api { key: ApiKey::SaslAuthenticate, min: 0, max: 2, flexible_from: 2, schema: &SASL_AUTHENTICATE_REQUEST },
        Api { key: ApiKey::DescribeCluster, min: 0, max: 2, flexible_from: 0, schema: &DESCRIBE_CLUSTER_REQUEST },
        Api { key: ApiKey::DescribeProducers, min: 0, max: 0, flexible_from: 0, schema: &DESCRIBE_PRODUCERS_REQUEST },
        Api { key: ApiKey::DescribeAcls, min: 1, max: 3, flexible_from: 2, schema: &DESCRIBE_ACLS_REQUEST },
        Api { key: ApiKey::CreateAcls, min: 1, max: 3, flexible_from: 2, schema: &CREATE_ACLS_REQUEST },
        Api { key: ApiKey::DeleteAcls, min: 1, max: 3, flexible_from: 2, schema: &DELETE_ACLS_REQUEST },
        Api { key: ApiKey::DescribeUserScramCredentials, min: 0, max: 0, flexible_from: 0, schema: &DESCRIBE_USER_SCRAM_CREDENTIALS_REQUEST },
        Api { key: ApiKey::AlterUserScramCredentials, min: 0, max: 0, flexible_from: 0, schema: &ALTER_USER_SCRAM_CREDENTIALS_REQUEST },
    ];

    /// `ApiVersionsRequest` (ApiVersions), versions 0-4.
    static API_VERSIONS_REQUEST: Schema = Schema {
        name: "ApiVersionsRequest",
        fields: &[
            f("client_software_name", 3, MAX, STR),
            f("client_software_version", 3, MAX, STR),
        ],
    };

    /// `MetadataRequest` (Metadata), versions 0-13.
    static METADATA_REQUEST: Schema = Schema {
        name: "MetadataRequest",
        fields: &[
            f("topics", 0, MAX, Kind::Array { elem: &Kind::Struct(&METADATA_REQUEST_TOPIC), nullable: true }),
            f("allow_auto_topic_creation", 4, MAX, Kind::Bool),
            f("include_cluster_authorized_operations", 8, 10, Kind::Bool),
            f("include_topic_authorized_operations", 8, MAX, Kind::Bool),
        ],
    };

    /// `MetadataRequestTopic` (Metadata), versions 0-13.
    static METADATA_REQUEST_TOPIC: Schema = Schema {
        name: "MetadataRequestTopic",
        fields: &[
            f("topic_id", 10, MAX, Kind::Uuid),
            f("name", 0, MAX, STR_N),
        ],
    };

    /// `ProduceRequest` (Produce), versions 3-13.
    static PRODUCE_REQUEST: Schema = Schema {
        name: "ProduceRequest",
        fields: &[
            f("transactional_id", 3, MAX, STR_N),
            f("acks", 3, MAX, Kind::I16),
            f("timeout_ms", 3, MAX, Kind::I32),
            f("topic_data", 3, MAX, Kind::Array { elem: &Kind::Struct(&TOPIC_PRODUCE_DATA), nullable: false }),
        ],
    };

    /// `TopicProduceData` (Produce), versions 3-13.
    static TOPIC_PRODUCE_DATA: Schema = Schema {
        name: "TopicProduceData",
        fields: &[
            f("name", 3, 12, STR),
            f("topic_id", 13, MAX, Kind::Uuid),
            f("partition_data", 3, MAX, Kind::Array { elem: &Kind::Struct(&PARTITION_PRODUCE_DATA), nullable: false }),
        ],
    };

    /// `PartitionProduceData` (Produce), versions 3-13.
    static PARTITION_PRODUCE_DATA: Schema = Schema {
        name: "PartitionProduceData",
        fields: &[
            f("index", 3, MAX, Kind::I32),
            f("records", 3, MAX, BYTES_N),
        ],
    };

    /// `FetchRequest` (Fetch), versions 4-18.
    static FETCH_REQUEST: Schema = Schema {
        name: "FetchRequest",
        fields: &[
            f("replica_id", 4, 14, Kind::I32),
            f("max_wait_ms", 4, MAX, Kind::I32),
            f("min_bytes", 4, MAX, Kind::I32),
            f("max_bytes", 4, MAX, Kind::I32),
            f("isolation_level", 4, MAX, Kind::I8),
            f("session_id", 7, MAX, Kind::I32),
            f("session_epoch", 7, MAX, Kind::I32),
            f("topics", 4, MAX, Kind::Array { elem: &Kind::Struct(&FETCH_TOPIC), nullable: false }),
            f("forgotten_topics_data", 7, MAX, Kind::Array { elem: &Kind::Struct(&FORGOTTEN_TOPIC), nullable: false }),
            f("rack_id", 11, MAX, STR),
            tagged(0, "cluster_id", 12, MAX, STR_N),
            tagged(1, "replica_state", 15, MAX, Kind::Struct(&REPLICA_STATE)),
        ],
    };

    /// `FetchTopic` (Fetch), versions 4-18.
    static FETCH_TOPIC: Schema = Schema {
        name: "FetchTopic",
        fields: &[
            f("topic", 4, 12, STR),
            f("topic_id", 13, MAX, Kind::Uuid),
            f("partitions", 4, MAX, Kind::Array { elem: &Kind::Struct(&FETCH_PARTITION), nullable: false }),
        ],
    };

    /// `ForgottenTopic` (Fetch), versions 4-18.
    static FORGOTTEN_TOPIC: Schema = Schema {
        name: "ForgottenTopic",
        fields: &[
            f("topic", 7, 12, STR),
            f("topic_id", 13, MAX, Kind::Uuid),
            f("partitions", 7, MAX, Kind::Array { elem: &Kind::I32, nullable: false }),
        ],
    };

    /// `ReplicaState` (Fetch), versions 4-18.
    static REPLICA_STATE: Schema = Schema {
        name: "ReplicaState",
        fields: &[
            f("replica_id", 15, MAX, Kind::I32),
            f("replica_epoch", 15, MAX, Kind::I64),
        ],
    };

    /// `FetchPartition` (Fetch), versions 4-18.
    static FETCH_PARTITION: Schema = Schema {
        name: "FetchPartition",
        fields: &[
            f("partition", 4, MAX, Kind::I32),
            f("current_leader_epoch", 9, MAX, Kind::I32),
            f("fetch_offset", 4, MAX, Kind::I64),
            f("last_fetched_epoch", 12, MAX, Kind::I32),
            f("log_start_offset", 5, MAX, Kind::I64),
            f("partition_max_bytes", 4, MAX, Kind::I32),
            tagged(0, "replica_directory_id", 17, MAX, Kind::Uuid),
            tagged(1, "high_watermark", 18, MAX, Kind::I64),
        ],
    };

    /// `ListOffsetsRequest` (ListOffsets), versions 1-10.
    static LIST_OFFSETS_REQUEST: Schema = Schema {
        name: "ListOffsetsRequest",
        fields: &[
            f("replica_id", 1, MAX, Kind::I32),
            f("isolation_level", 2, MAX, Kind::I8),
            f("topics", 1, MAX, Kind::Array { elem: &Kind::Struct(&LIST_OFFSETS_TOPIC), nullable: false }),
            f("timeout_ms", 10, MAX, Kind::I32),
        ],
    };

    /// `ListOffsetsTopic` (ListOffsets), versions 1-10.
    static LIST_OFFSETS_TOPIC: Schema = Schema {
        name: "ListOffsetsTopic",
        fields: &[
            f("name", 1, MAX, STR),
            f("partitions", 1, MAX, Kind::Array { elem: &Kind::Struct(&LIST_OFFSETS_PARTITION), nullable: false }),
        ],
    };

    /// `ListOffsetsPartition` (ListOffsets), versions 1-10.
    static LIST_OFFSETS_PARTITION: Schema = Schema {
        name: "ListOffsetsPartition",
        fields: &[
            f("partition_index", 1, MAX, Kind::I32),
            f("current_leader_epoch", 4, MAX, Kind::I32),
            f("timestamp", 1, MAX, Kind::I64),
        ],
    };

    /// `CreateTopicsRequest` (CreateTopics), versions 2-7.
    static CREATE_TOPICS_REQUEST: Schema = Schema {
        name: "CreateTopicsRequest",
        fields: &[
            f("topics", 2, MAX, Kind::Array { elem: &Kind::Struct(&CREATABLE_TOPIC), nullable: false }),
            f("timeout_ms", 2, MAX, Kind::I32),
            f("validate_only", 2, MAX, Kind::Bool),
        ],
    };

    /// `CreatableTopic` (CreateTopics), versions 2-7.
    static CREATABLE_TOPIC: Schema = Schema {
        name: "CreatableTopic",
        fields: &[
            f("name", 2, MAX, STR),
            f("num_partitions", 2, MAX, Kind::I32),
            f("replication_factor", 2, MAX, Kind::I16),
            f("assignments", 2, MAX, Kind::Array { elem: &Kind::Struct(&CREATABLE_REPLICA_ASSIGNMENT), nullable: false }),
            f("configs", 2, MAX, Kind::Array { elem: &Kind::Struct(&CREATABLE_TOPIC_CONFIG), nullable: false }),
        ],
    };

    /// `CreatableReplicaAssignment` (CreateTopics), versions 2-7.
    static CREATABLE_REPLICA_ASSIGNMENT: Schema = Schema {
        name: "CreatableReplicaAssignment",
        fields: &[
            f("partition_index", 2, MAX, Kind::I32),
            f("broker_ids", 2, MAX, Kind::Array { elem: &Kind::I32, nullable: false }),
        ],
    };

    /// `CreatableTopicConfig` (CreateTopics), versions 2-7.
    static CREATABLE_TOPIC_CONFIG: Schema = Schema {
        name: "CreatableTopicConfig",
        fields: &[
            f("name", 2, MAX, STR),
            f("value", 2, MAX, STR_N),
        ],
    };

    /// `DeleteTopicsRequest` (DeleteTopics), versions 1-6.
    static DELETE_TOPICS_REQUEST: Schema = Schema {
        name: "DeleteTopicsRequest",
        fields: &[
            f("topics", 6, MAX, Kind::Array { elem: &Kind::Struct(&DELETE_TOPIC_STATE), nullable: false }),
            f("topic_names", 1, 5, Kind::Array { elem: &STR, nullable: false }),
            f("timeout_ms", 1, MAX, Kind::I32),
        ],
    };

    /// `DeleteTopicState` (DeleteTopics), versions 1-6.
    static DELETE_TOPIC_STATE: Schema = Schema {
        name: "DeleteTopicState",
        fields: &[
            f("name", 6, MAX, STR_N),
            f("topic_id", 6, MAX, Kind::Uuid),
        ],
    };

    /// `CreatePartitionsRequest` (CreatePartitions), versions 0-3.
    static CREATE_PARTITIONS_REQUEST: Schema = Schema {
        name: "CreatePartitionsRequest",
        fields: &[
            f("topics", 0, MAX, Kind::Array { elem: &Kind::Struct(&CREATE_PARTITIONS_TOPIC), nullable: false }),
            f("timeout_ms", 0, MAX, Kind::I32),
            f("validate_only", 0, MAX, Kind::Bool),
        ],
    };

    /// `CreatePartitionsTopic` (CreatePartitions), versions 0-3.
    static CREATE_PARTITIONS_TOPIC: Schema = Schema {
        name: "CreatePartitionsTopic",
        fields: &[
            f("name", 0, MAX, STR),
            f("count", 0, MAX, Kind::I32),
            f("assignments", 0, MAX, Kind::Array { elem: &Kind::Struct(&CREATE_PARTITIONS_ASSIGNMENT), nullable: true }),
        ],
    };

    /// `CreatePartitionsAssignment` (CreatePartitions), versions 0-3.
    static CREATE_PARTITIONS_ASSIGNMENT: Schema = Schema {
        name: "CreatePartitionsAssignment",
        fields: &[
            f("broker_ids", 0, MAX, Kind::Array { elem: &Kind::I32, nullable: false }),
        ],
    };

    /// `ElectLeadersRequest` (ElectLeaders), versions 0-2.
    static ELECT_LEADERS_REQUEST: Schema = Schema {
        name: "ElectLeadersRequest",
        fields: &[
            f("election_type", 1, MAX, Kind::I8),
            f("topic_partitions", 0, MAX, Kind::Array { elem: &Kind::Struct(&ELECT_LEADERS_TOPIC_PARTITIONS), nullable: true }),
            f("timeout_ms", 0, MAX, Kind::I32),
        ],
    };

    /// `TopicPartitions` (ElectLeaders), versions 0-2.
    static ELECT_LEADERS_TOPIC_PARTITIONS: Schema = Schema {
        name: "TopicPartitions",
        fields: &[
            f("topic", 0, MAX, STR),
            f("partitions", 0, MAX, Kind::Array { elem: &Kind::I32, nullable: false }),
        ],
    };

    /// `DescribeConfigsRequest` (DescribeConfigs), versions 1-4.
    static DESCRIBE_CONFIGS_REQUEST: Schema = Schema {
        name: "DescribeConfigsRequest",
        fields: &[
            f("resources", 1, MAX, Kind::Array { elem: &Kind::Struct(&DESCRIBE_CONFIGS_RESOURCE), nullable: false }),
            f("include_synonyms", 1, MAX, Kind::Bool),
            f("include_documentation", 3, MAX, Kind::Bool),
        ],
    };

    /// `DescribeConfigsResource` (DescribeConfigs), versions 1-4.
    static DESCRIBE_CONFIGS_RESOURCE: Schema = Schema {
        name: "DescribeConfigsResource",
        fields: &[
            f("resource_type", 1, MAX, Kind::I8),
            f("resource_name", 1, MAX, STR),
            f("configuration_keys", 1, MAX, Kind::Array { elem: &STR, nullable: true }),
        ],
    };

    /// `AlterConfigsRequest` (AlterConfigs), versions 0-2.
    static ALTER_CONFIGS_REQUEST: Schema = Schema {
        name: "AlterConfigsRequest",
        fields: &[
            f("resources", 0, MAX, Kind::Array { elem: &Kind::Struct(&ALTER_CONFIGS__ALTER_CONFIGS_RESOURCE), nullable: false }),
            f("validate_only", 0, MAX, Kind::Bool),
        ],
    };

    /// `AlterConfigsResource` (AlterConfigs), versions 0-2.
    static ALTER_CONFIGS__ALTER_CONFIGS_RESOURCE: Schema = Schema {
        name: "AlterConfigsResource",
        fields: &[
            f("resource_type", 0, MAX, Kind::I8),
            f("resource_name", 0, MAX, STR),
            f("configs", 0, MAX, Kind::Array { elem: &Kind::Struct(&ALTER_CONFIGS__ALTERABLE_CONFIG), nullable: false }),
        ],
    };

    /// `AlterableConfig` (AlterConfigs), versions 0-2.
    static ALTER_CONFIGS__ALTERABLE_CONFIG: Schema = Schema {
        name: "AlterableConfig",
        fields: &[
            f("name", 0, MAX, STR),
            f("value", 0, MAX, STR_N),
        ],
    };

    /// `IncrementalAlterConfigsRequest` (IncrementalAlterConfigs), versions 0-1.
    static INCREMENTAL_ALTER_CONFIGS_REQUEST: Schema = Schema {
        name: "IncrementalAlterConfigsRequest",
        fields: &[
            f("resources", 0, MAX, Kind::Array { elem: &Kind::Struct(&INCREMENTAL_ALTER_CONFIGS__ALTER_CONFIGS_RESOURCE), nullable: false }),
            f("validate_only", 0, MAX, Kind::Bool),
        ],
    };

    /// `AlterConfigsResource` (IncrementalAlterConfigs), versions 0-1.
    static INCREMENTAL_ALTER_CONFIGS__ALTER_CONFIGS_RESOURCE: Schema = Schema {
        name: "AlterConfigsResource",
        fields: &[
            f("resource_type", 0, MAX, Kind::I8),
            f("resource_name", 0, MAX, STR),
            f("configs", 0, MAX, Kind::Array { elem: &Kind::Struct(&INCREMENTAL_ALTER_CONFIGS__ALTERABLE_CONFIG), nullable: false }),
        ],
    };

    /// `AlterableConfig` (IncrementalAlterConfigs), versions 0-1.
    static INCREMENTAL_ALTER_CONFIGS__ALTERABLE_CONFIG: Schema = Schema {
        name: "AlterableConfig",
        fields: &[
            f("name", 0, MAX, STR),
            f("config_operation", 0, MAX, Kind::I8),
            f("value", 0, MAX, STR_N),
        ],
    };

    /// `OffsetForLeaderEpochRequest` (OffsetForLeaderEpoch), versions 2-4.
    static OFFSET_FOR_LEADER_EPOCH_REQUEST: Schema = Schema {
        name: "OffsetForLeaderEpochRequest",
        fields: &[
            f("replica_id", 3, MAX, Kind::I32),
            f("topics", 2, MAX, Kind::Array { elem: &Kind::Struct(&OFFSET_FOR_LEADER_TOPIC), nullable: false }),
        ],
    };

    /// `OffsetForLeaderTopic` (OffsetForLeaderEpoch), versions 2-4.
    static OFFSET_FOR_LEADER_TOPIC: Schema = Schema {
        name: "OffsetForLeaderTopic",
        fields: &[
            f("topic", 2, MAX, STR),
            f("partitions", 2, MAX, Kind::Array { elem: &Kind::Struct(&OFFSET_FOR_LEADER_PARTITION), nullable: false }),
        ],
    };

    /// `OffsetForLeaderPartition` (OffsetForLeaderEpoch), versions 2-4.
    static OFFSET_FOR_LEADER_PARTITION: Schema = Schema {
        name: "OffsetForLeaderPartition",
        fields: &[
            f("partition", 2, MAX, Kind::I32),
            f("current_leader_epoch", 2, MAX, Kind::I32),
            f("leader_epoch", 2, MAX, Kind::I32),
        ],
    };

    /// `FindCoordinatorRequest` (FindCoordinator), versions 0-6.
    static FIND_COORDINATOR_REQUEST: Schema = Schema {
        name: "FindCoordinatorRequest",
        fields: &[
            f("key", 0, 3, STR),
            f("key_type", 1, MAX, Kind::I8),
            f("coordinator_keys", 4, MAX, Kind::Array { elem: &STR, nullable: false }),
        ],
    };

    /// `JoinGroupRequest` (JoinGroup), versions 0-9.
    static JOIN_GROUP_REQUEST: Schema = Schema {
        name: "JoinGroupRequest",
        fields: &[
            f("group_id", 0, MAX, STR),
            f("session_timeout_ms", 0, MAX, Kind::I32),
            f("rebalance_timeout_ms", 1, MAX, Kind::I32),
            f("member_id", 0, MAX, STR),
            f("group_instance_id", 5, MAX, STR_N),
            f("protocol_type", 0, MAX, STR),
            f("protocols", 0, MAX, Kind::Array { elem: &Kind::Struct(&JOIN_GROUP_REQUEST_PROTOCOL), nullable: false }),
            f("reason", 8, MAX, STR_N),
        ],
    };

    /// `JoinGroupRequestProtocol` (JoinGroup), versions 0-9.
    static JOIN_GROUP_REQUEST_PROTOCOL: Schema = Schema {
        name: "JoinGroupRequestProtocol",
        fields: &[
            f("name", 0, MAX, STR),
            f("metadata", 0, MAX, BYTES),
        ],
    };

    /// `SyncGroupRequest` (SyncGroup), versions 0-5.
    static SYNC_GROUP_REQUEST: Schema = Schema {
        name: "SyncGroupRequest",
        fields: &[
            f("group_id", 0, MAX, STR),
            f("generation_id", 0, MAX, Kind::I32),
            f("member_id", 0, MAX, STR),
            f("group_instance_id", 3, MAX, STR_N),
            f("protocol_type", 5, MAX, STR_N),
            f("protocol_name", 5, MAX, STR_N),
            f("assignments", 0, MAX, Kind::Array { elem: &Kind::Struct(&SYNC_GROUP_REQUEST_ASSIGNMENT), nullable: false }),
        ],
    };

    /// `SyncGroupRequestAssignment` (SyncGroup), versions 0-5.
    static SYNC_GROUP_REQUEST_ASSIGNMENT: Schema = Schema {
        name: "SyncGroupRequestAssignment",
        fields: &[
            f("member_id", 0, MAX, STR),
            f("assignment", 0, MAX, BYTES),
        ],
    };

    /// `HeartbeatRequest` (Heartbeat), versions 0-4.
    static HEARTBEAT_REQUEST: Schema = Schema {
        name: "HeartbeatRequest",
        fields: &[
            f("group_id", 0, MAX, STR),
            f("generation_id", 0, MAX, Kind::I32),
            f("member_id", 0, MAX, STR),
            f("group_instance_id", 3, MAX, STR_N),
        ],
    };

    /// `LeaveGroupRequest` (LeaveGroup), versions 0-5.
    static LEAVE_GROUP_REQUEST: Schema = Schema {
        name: "LeaveGroupRequest",
        fields: &[
            f("group_id", 0, MAX, STR),
            f("member_id", 0, 2, STR),
            f("members", 3, MAX, Kind::Array { elem: &Kind::Struct(&MEMBER_IDENTITY), nullable: false }),
        ],
    };

    /// `MemberIdentity` (LeaveGroup), versions 0-5.
    static MEMBER_IDENTITY: Schema = Schema {
        name: "MemberIdentity",
        fields: &[
            f("member_id", 3, MAX, STR),
            f("group_instance_id", 3, MAX, STR_N),
            f("reason", 5, MAX, STR_N),
        ],
    };

    /// `OffsetCommitRequest` (OffsetCommit), versions 2-9.
    static OFFSET_COMMIT_REQUEST: Schema = Schema {
        name: "OffsetCommitRequest",
        fields: &[
            f("group_id", 2, MAX, STR),
            f("generation_id_or_member_epoch", 2, MAX, Kind::I32),
            f("member_id", 2, MAX, STR),
            f("group_instance_id", 7, MAX, STR_N),
            f("retention_time_ms", 2, 4, Kind::I64),
            f("topics", 2, MAX, Kind::Array { elem: &Kind::Struct(&OFFSET_COMMIT_REQUEST_TOPIC), nullable: false }),
        ],
    };

    /// `OffsetCommitRequestTopic` (OffsetCommit), versions 2-9.
    static OFFSET_COMMIT_REQUEST_TOPIC: Schema = Schema {
        name: "OffsetCommitRequestTopic",
        fields: &[
            f("name", 2, MAX, STR),
            f("partitions", 2, MAX, Kind::Array { elem: &Kind::Struct(&OFFSET_COMMIT_REQUEST_PARTITION), nullable: false }),
        ],
    };

    /// `OffsetCommitRequestPartition` (OffsetCommit), versions 2-9.
    static OFFSET_COMMIT_REQUEST_PARTITION: Schema = Schema {
        name: "OffsetCommitRequestPartition",
        fields: &[
            f("partition_index", 2, MAX, Kind::I32),
            f("committed_offset", 2, MAX, Kind::I64),
            f("committed_leader_epoch", 6, MAX, Kind::I32),
            f("committed_metadata", 2, MAX, STR_N),
        ],
    };

    /// `OffsetFetchRequest` (OffsetFetch), versions 1-9.
    static OFFSET_FETCH_REQUEST: Schema = Schema {
        name: "OffsetFetchRequest",
        fields: &[
            f("group_id", 1, 7, STR),
            f("topics", 1, 7, Kind::Array { elem: &Kind::Struct(&OFFSET_FETCH_REQUEST_TOPIC), nullable: true }),
            f("groups", 8, MAX, Kind::Array { elem: &Kind::Struct(&OFFSET_FETCH_REQUEST_GROUP), nullable: false }),
            f("require_stable", 7, MAX, Kind::Bool),
        ],
    };

    /// `OffsetFetchRequestGroup` (OffsetFetch), versions 1-9.
    static OFFSET_FETCH_REQUEST_GROUP: Schema = Schema {
        name: "OffsetFetchRequestGroup",
        fields: &[
            f("group_id", 8, MAX, STR),
            f("member_id", 9, MAX, STR_N),
            f("member_epoch", 9, MAX, Kind::I32),
            f("topics", 8, MAX, Kind::Array { elem: &Kind::Struct(&OFFSET_FETCH_REQUEST_TOPICS), nullable: true }),
        ],
    };

    /// `OffsetFetchRequestTopic` (OffsetFetch), versions 1-9.
    static OFFSET_FETCH_REQUEST_TOPIC: Schema = Schema {
        name: "OffsetFetchRequestTopic",
        fields: &[
            f("name", 1, 7, STR),
            f("partition_indexes", 1, 7, Kind::Array { elem: &Kind::I32, nullable: false }),
        ],
    };

    /// `OffsetFetchRequestTopics` (OffsetFetch), versions 1-9.
    static OFFSET_FETCH_REQUEST_TOPICS: Schema = Schema {
        name: "OffsetFetchRequestTopics",
        fields: &[
            f("name", 8, MAX, STR),
            f("partition_indexes", 8, MAX, Kind::Array { elem: &Kind::I32, nullable: false }),
        ],
    };

    /// `OffsetDeleteRequest` (OffsetDelete), versions 0-0.
    static OFFSET_DELETE_REQUEST: Schema = Schema {
        name: "OffsetDeleteRequest",
        fields: &[
            f("group_id", 0, MAX, STR),
            f("topics", 0, MAX, Kind::Array { elem: &Kind::Struct(&OFFSET_DELETE_REQUEST_TOPIC), nullable: false }),
        ],
    };

    /// `OffsetDeleteRequestTopic` (OffsetDelete), versions 0-0.
    static OFFSET_DELETE_REQUEST_TOPIC: Schema = Schema {
        name: "OffsetDeleteRequestTopic",
        fields: &[
            f("name", 0, MAX, STR),
            f("partitions", 0, MAX, Kind::Array { elem: &Kind::Struct(&OFFSET_DELETE_REQUEST_PARTITION), nullable: false }),
        ],
    };

    /// `OffsetDeleteRequestPartition` (OffsetDelete), versions 0-0.
    static OFFSET_DELETE_REQUEST_PARTITION: Schema = Schema {
        name: "OffsetDeleteRequestPartition",
        fields: &[
            f("partition_index", 0, MAX, Kind::I32),
        ],
    };

    /// `ListGroupsRequest` (ListGroups), versions 0-5.
    static LIST_GROUPS_REQUEST: Schema = Schema {
        name: "ListGroupsRequest",
        fields: &[
            f("states_filter", 4, MAX, Kind::Array { elem: &STR, nullable: false }),
            f("types_filter", 5, MAX, Kind::Array { elem: &STR, nullable: false }),
        ],
    };

    /// `DescribeGroupsRequest` (DescribeGroups), versions 0-6.
    static DESCRIBE_GROUPS_REQUEST: Schema = Schema {
        name: "DescribeGroupsRequest",
        fields: &[
            f("groups", 0, MAX, Kind::Array { elem: &STR, nullable: false }),
            f("include_authorized_operations", 3, MAX, Kind::Bool),
        ],
    };

    /// `DeleteGroupsRequest` (DeleteGroups), versions 0-2.
    static DELETE_GROUPS_REQUEST: Schema = Schema {
        name: "DeleteGroupsRequest",
        fields: &[
            f("groups_names", 0, MAX, Kind::Array { elem: &STR, nullable: false }),
        ],
    };

    /// `InitProducerIdRequest` (InitProducerId), versions 0-5.
    static INIT_PRODUCER_ID_REQUEST: Schema = Schema {
        name: "InitProducerIdRequest",
        fields: &[
            f("transactional_id", 0, MAX, STR_N),
            f("transaction_timeout_ms", 0, MAX, Kind::I32),
            f("producer_id", 3, MAX, Kind::I64),
            f("producer_epoch", 3, MAX, Kind::I16),
        ],
    };

    /// `DeleteRecordsRequest` (DeleteRecords), versions 0-2.
    static DELETE_RECORDS_REQUEST: Schema = Schema {
        name: "DeleteRecordsRequest",
        fields: &[
            f("topics", 0, MAX, Kind::Array { elem: &Kind::Struct(&DELETE_RECORDS_TOPIC), nullable: false }),
            f("timeout_ms", 0, MAX, Kind::I32),
        ],
    };

    /// `DeleteRecordsTopic` (DeleteRecords), versions 0-2.
    static DELETE_RECORDS_TOPIC: Schema = Schema {
        name: "DeleteRecordsTopic",
        fields: &[
            f("name", 0, MAX, STR),
            f("partitions", 0, MAX, Kind::Array { elem: &Kind::Struct(&DELETE_RECORDS_PARTITION), nullable: false }),
        ],
    };

    /// `DeleteRecordsPartition` (DeleteRecords), versions 0-2.
    static DELETE_RECORDS_PARTITION: Schema = Schema {
        name: "DeleteRecordsPartition",
        fields: &[
            f("partition_index", 0, MAX, Kind::I32),
            f("offset", 0, MAX, Kind::I64),
        ],
    };

    /// `SaslHandshakeRequest` (SaslHandshake), versions 0-1.
    static SASL_HANDSHAKE_REQUEST: Schema = Schema {
        name: "SaslHandshakeRequest",
        fields: &[
            f("mechanism", 0, MAX, STR),
        ],
    };

    /// `SaslAuthenticateRequest` (SaslAuthenticate), versions 0-2.
    static SASL_AUTHENTICATE_REQUEST: Schema = Schema {
        name: "SaslAuthenticateRequest",
        fields: &[
            f("auth_bytes", 0, MAX, BYTES),
        ],
    };

    /// `DescribeClusterRequest` (DescribeCluster), versions 0-2.
    static DESCRIBE_CLUSTER_REQUEST: Schema = Schema {
        name: "DescribeClusterRequest",
        fields: &[
            f("include_cluster_authorized_operations", 0, MAX, Kind::Bool),
            f("endpoint_type", 1, MAX, Kind::I8),
            f("include_fenced_brokers", 2, MAX, Kind::Bool),
        ],
    };

    /// `DescribeProducersRequest` (DescribeProducers), versions 0-0.
    static DESCRIBE_PRODUCERS_REQUEST: Schema = Schema {
        name: "DescribeProducersRequest",
        fields: &[
            f("topics", 0, MAX, Kind::Array { elem: &Kind::Struct(&TOPIC_REQUEST), nullable: false }),
        ],
    };

    /// `TopicRequest` (DescribeProducers), versions 0-0.
    static TOPIC_REQUEST: Schema = Schema {
        name: "TopicRequest",
        fields: &[
            f("name", 0, MAX, STR),
            f("partition_indexes", 0, MAX, Kind::Array { elem: &Kind::I32, nullable: false }),
        ],
    };

    /// `DescribeAclsRequest` (DescribeAcls), versions 1-3.
    static DESCRIBE_ACLS_REQUEST: Schema = Schema {
        name: "DescribeAclsRequest",
        fields: &[
            f("resource_type_filter", 1, MAX, Kind::I8),
            f("resource_name_filter", 1, MAX, STR_N),
            f("pattern_type_filter", 1, MAX, Kind::I8),
            f("principal_filter", 1, MAX, STR_N),
            f("host_filter", 1, MAX, STR_N),
            f("operation", 1, MAX, Kind::I8),
            f("permission_type", 1, MAX, Kind::I8),
        ],
    };

    /// `CreateAclsRequest` (CreateAcls), versions 1-3.
    static CREATE_ACLS_REQUEST: Schema = Schema {
        name: "CreateAclsRequest",
        fields: &[
            f("creations", 1, MAX, Kind::Array { elem: &Kind::Struct(&ACL_CREATION), nullable: false }),
        ],
    };

    /// `AclCreation` (CreateAcls), versions 1-3.
    static ACL_CREATION: Schema = Schema {
        name: "AclCreation",
        fields: &[
            f("resource_type", 1, MAX, Kind::I8),
            f("resource_name", 1, MAX, STR),
            f("resource_pattern_type", 1, MAX, Kind::I8),
            f("principal", 1, MAX, STR),
            f("host", 1, MAX, STR),
            f("operation", 1, MAX, Kind::I8),
            f("permission_type", 1, MAX, Kind::I8),
        ],
    };

    /// `DeleteAclsRequest` (DeleteAcls), versions 1-3.
    static DELETE_ACLS_REQUEST: Schema = Schema {
        name: "DeleteAclsRequest",
        fields: &[
            f("filters", 1, MAX, Kind::Array { elem: &Kind::Struct(&DELETE_ACLS_FILTER), nullable: false }),
        ],
    };

    /// `DeleteAclsFilter` (DeleteAcls), versions 1-3.
    static DELETE_ACLS_FILTER: Schema = Schema {
        name: "DeleteAclsFilter",
        fields: &[
            f("resource_type_filter", 1, MAX, Kind::I8),
            f("resource_name_filter", 1, MAX, STR_N),
            f("pattern_type_filter", 1, MAX, Kind::I8),
            f("principal_filter", 1, MAX, STR_N),
            f("host_filter", 1, MAX, STR_N),
            f("operation", 1, MAX, Kind::I8),
            f("permission_type", 1, MAX, Kind::I8),
        ],
    };

    /// `DescribeUserScramCredentialsRequest` (DescribeUserScramCredentials), version 0.
    static DESCRIBE_USER_SCRAM_CREDENTIALS_REQUEST: Schema = Schema {
        name: "DescribeUserScramCredentialsRequest",
        fields: &[
            f("users", 0, MAX, Kind::Array { elem: &Kind::Struct(&USER_NAME), nullable: true }),
        ],
    };

    /// `UserName` (DescribeUserScramCredentials), version 0.
    static USER_NAME: Schema = Schema {
        name: "UserName",
        fields: &[
            f("name", 0, MAX, STR),
        ],
    };

    /// `AlterUserScramCredentialsRequest` (AlterUserScramCredentials), version 0.
    static ALTER_USER_SCRAM_CREDENTIALS_REQUEST: Schema = Schema {
        name: "AlterUserScramCredentialsRequest",
        fields: &[
            f("deletions", 0, MAX, Kind::Array { elem: &Kind::Struct(&SCRAM_CREDENTIAL_DELETION), nullable: false }),
            f("upsertions", 0, MAX, Kind::Array { elem: &Kind::Struct(&SCRAM_CREDENTIAL_UPSERTION), nullable: false }),
        ],
    };

    /// `ScramCredentialDeletion` (AlterUserScramCredentials), version 0.
    static SCRAM_CREDENTIAL_DELETION: Schema = Schema {
        name: "ScramCredentialDeletion",
        fields: &[
            f("name", 0, MAX, STR),
            f("mechanism", 0, MAX, Kind::I8),
        ],
    };

    /// `ScramCredentialUpsertion` (AlterUserScramCredentials), version 0.
    static SCRAM_CREDENTIAL_UPSERTION: Schema = Schema {
        name: "ScramCredentialUpsertion",
        fields: &[
            f("name", 0, MAX, STR),
            f("mechanism", 0, MAX, Kind::I8),
            f("iterations", 0, MAX, Kind::I32),
            f("salt", 0, MAX, BYTES),
            f("salted_password", 0, MAX, BYTES),
        ],
    };

}
