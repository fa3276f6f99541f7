//! The guard must accept every request a real client encodes, consuming exactly what
//! kafka-protocol's decoder consumes, and must refuse malformed bodies without panicking.

use super::schema::{Api, Kind, Schema, APIS};
use super::*;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn topic(text: &'static str) -> TopicName {
    TopicName(s(text))
}

fn group(text: &'static str) -> GroupId {
    GroupId(s(text))
}

/// An unknown tagged field, as a newer client might send (dropped by the encoder in
/// non-flexible versions).
const UNKNOWN_TAG: i32 = 90;

fn unknown() -> Bytes {
    Bytes::from_static(b"future")
}

/// A realistic request of each API at `v`: a few filled arrays and strings, nested arrays,
/// and unknown tagged fields at the top and further down. Fields are set only in versions
/// that have them (the encoder refuses others).
fn realistic(key: ApiKey, v: i16) -> RequestKind {
    match key {
        ApiKey::ApiVersions => {
            let mut r = ApiVersionsRequest::default();
            if v >= 3 {
                r = r
                    .with_client_software_name(s("librdkafka"))
                    .with_client_software_version(s("2.3.0"));
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::Metadata => {
            let t = |name| {
                // Topic ids stay nil: bramble has no uuid dependency to make others, and a
                // uuid is 16 fixed bytes whatever its value.
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(topic(name)))
                    .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
            };
            let mut r = MetadataRequest::default().with_topics(Some(vec![t("sensors"), t("logs")]));
            if v >= 8 {
                r = r.with_include_topic_authorized_operations(true);
            }
            if (8..=10).contains(&v) {
                r = r.with_include_cluster_authorized_operations(true);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::Produce => {
            let part = |i| {
                produce_request::PartitionProduceData::default()
                    .with_index(i)
                    .with_records(Some(Bytes::from_static(b"\0\0\0\0\0\0\0\0record batch")))
                    .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
            };
            let t = produce_request::TopicProduceData::default()
                .with_name(topic("sensors"))
                .with_partition_data(vec![part(0), part(1), part(2)]);
            ProduceRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx-1"))))
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![t.clone(), t])
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
                .into()
        }
        ApiKey::Fetch => {
            let mut p = fetch_request::FetchPartition::default()
                .with_partition(1)
                .with_fetch_offset(42)
                .with_partition_max_bytes(1 << 20)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            if v >= 9 {
                p = p.with_current_leader_epoch(5);
            }
            if v >= 12 {
                p = p.with_last_fetched_epoch(4);
            }
            if v >= 5 {
                p = p.with_log_start_offset(0);
            }
            let t = fetch_request::FetchTopic::default()
                .with_topic(topic("sensors"))
                .with_partitions(vec![p.clone(), p]);
            let mut r = FetchRequest::default()
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(50 << 20)
                .with_isolation_level(1)
                .with_topics(vec![t]);
            if v >= 7 {
                let f = fetch_request::ForgottenTopic::default()
                    .with_topic(topic("old"))
                    .with_partitions(vec![3, 4]);
                r = r
                    .with_session_id(9)
                    .with_session_epoch(2)
                    .with_forgotten_topics_data(vec![f]);
            }
            if v >= 11 {
                r = r.with_rack_id(s("rack-a"));
            }
            if v >= 12 {
                r = r.with_cluster_id(Some(s("bramble-cluster")));
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::ListOffsets => {
            let mut p = list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            if v >= 4 {
                p = p.with_current_leader_epoch(3);
            }
            let t = list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic("sensors"))
                .with_partitions(vec![p.clone(), p.with_partition_index(1)]);
            let mut r = ListOffsetsRequest::default().with_topics(vec![t]);
            if v >= 2 {
                r = r.with_isolation_level(1);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::CreateTopics => {
            let a = create_topics_request::CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(1), BrokerId(2), BrokerId(3)]);
            let c = create_topics_request::CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("86400000")))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            let t = create_topics_request::CreatableTopic::default()
                .with_name(topic("sensors"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![a])
                .with_configs(vec![c.clone(), c.with_value(None)]);
            CreateTopicsRequest::default()
                .with_topics(vec![t])
                .with_timeout_ms(30_000)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
                .into()
        }
        ApiKey::DeleteTopics => {
            let mut r = DeleteTopicsRequest::default().with_timeout_ms(30_000);
            if v >= 6 {
                let t = delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(topic("sensors")))
                    .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
                let id = delete_topics_request::DeleteTopicState::default().with_name(None);
                r = r.with_topics(vec![t, id]);
            } else {
                r = r.with_topic_names(vec![topic("sensors"), topic("logs")]);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::CreatePartitions => {
            let a = create_partitions_request::CreatePartitionsAssignment::default()
                .with_broker_ids(vec![BrokerId(1), BrokerId(2)])
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            let t = create_partitions_request::CreatePartitionsTopic::default()
                .with_name(topic("sensors"))
                .with_count(6)
                .with_assignments(Some(vec![a.clone(), a]));
            let none = t.clone().with_assignments(None);
            CreatePartitionsRequest::default()
                .with_topics(vec![t, none])
                .with_timeout_ms(1000)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
                .into()
        }
        ApiKey::ElectLeaders => {
            let t = elect_leaders_request::TopicPartitions::default()
                .with_topic(topic("sensors"))
                .with_partitions(vec![0, 1, 2])
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            let mut r = ElectLeadersRequest::default()
                .with_topic_partitions(Some(vec![t.clone(), t]))
                .with_timeout_ms(30_000);
            if v >= 1 {
                r = r.with_election_type(1);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::DescribeConfigs => {
            let res = describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("sensors"))
                .with_configuration_keys(Some(vec![s("retention.ms"), s("cleanup.policy")]))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            let all = res.clone().with_configuration_keys(None);
            let mut r = DescribeConfigsRequest::default()
                .with_resources(vec![res, all])
                .with_include_synonyms(true);
            if v >= 3 {
                r = r.with_include_documentation(true);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::AlterConfigs => {
            let c = alter_configs_request::AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("1000")))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            let res = alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("sensors"))
                .with_configs(vec![c.clone(), c.with_value(None)]);
            AlterConfigsRequest::default()
                .with_resources(vec![res])
                .with_validate_only(true)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
                .into()
        }
        ApiKey::IncrementalAlterConfigs => {
            let c = incremental_alter_configs_request::AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(s("1000")))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            let res = incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("sensors"))
                .with_configs(vec![c.clone(), c.with_value(None).with_config_operation(1)]);
            IncrementalAlterConfigsRequest::default()
                .with_resources(vec![res])
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
                .into()
        }
        ApiKey::OffsetForLeaderEpoch => {
            let p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(7)
                .with_leader_epoch(6)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            let t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(topic("sensors"))
                .with_partitions(vec![p.clone(), p]);
            let mut r = OffsetForLeaderEpochRequest::default().with_topics(vec![t]);
            if v >= 3 {
                r = r.with_replica_id(BrokerId(-1));
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::FindCoordinator => {
            let mut r = FindCoordinatorRequest::default();
            if v <= 3 {
                r = r.with_key(s("group-a"));
            } else {
                r = r.with_coordinator_keys(vec![s("group-a"), s("group-b")]);
            }
            if v >= 1 {
                r = r.with_key_type(0);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::JoinGroup => {
            let p = join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x07sensors"))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            let mut r = JoinGroupRequest::default()
                .with_group_id(group("group-a"))
                .with_session_timeout_ms(45_000)
                .with_member_id(s(""))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![p.clone(), p.with_name(s("cooperative-sticky"))]);
            if v >= 1 {
                r = r.with_rebalance_timeout_ms(300_000);
            }
            if v >= 5 {
                r = r.with_group_instance_id(Some(s("pi-1")));
            }
            if v >= 8 {
                r = r.with_reason(Some(s("rejoin")));
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::SyncGroup => {
            let a = sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s("member-1"))
                .with_assignment(Bytes::from_static(b"\0\x01assignment"))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            let mut r = SyncGroupRequest::default()
                .with_group_id(group("group-a"))
                .with_generation_id(3)
                .with_member_id(s("member-1"))
                .with_assignments(vec![a.clone(), a.with_member_id(s("member-2"))]);
            if v >= 3 {
                r = r.with_group_instance_id(Some(s("pi-1")));
            }
            if v >= 5 {
                r = r
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")));
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::Heartbeat => {
            let mut r = HeartbeatRequest::default()
                .with_group_id(group("group-a"))
                .with_generation_id(3)
                .with_member_id(s("member-1"));
            if v >= 3 {
                r = r.with_group_instance_id(Some(s("pi-1")));
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::LeaveGroup => {
            let mut r = LeaveGroupRequest::default().with_group_id(group("group-a"));
            if v <= 2 {
                r = r.with_member_id(s("member-1"));
            } else {
                let mut m = leave_group_request::MemberIdentity::default()
                    .with_member_id(s("member-1"))
                    .with_group_instance_id(Some(s("pi-1")))
                    .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
                if v >= 5 {
                    m = m.with_reason(Some(s("shutdown")));
                }
                r = r.with_members(vec![m.clone(), m.with_member_id(s("member-2"))]);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::OffsetCommit => {
            let mut p = offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(100)
                .with_committed_metadata(Some(s("")))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            if v >= 6 {
                p = p.with_committed_leader_epoch(2);
            }
            let t = offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic("sensors"))
                .with_partitions(vec![
                    p.clone(),
                    p.with_partition_index(1).with_committed_metadata(None),
                ]);
            let mut r = OffsetCommitRequest::default()
                .with_group_id(group("group-a"))
                .with_generation_id_or_member_epoch(3)
                .with_member_id(s("member-1"))
                .with_topics(vec![t]);
            if v >= 7 {
                r = r.with_group_instance_id(Some(s("pi-1")));
            }
            if v <= 4 {
                r = r.with_retention_time_ms(-1);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::OffsetFetch => {
            let mut r = OffsetFetchRequest::default();
            if v <= 7 {
                let t = offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic("sensors"))
                    .with_partition_indexes(vec![0, 1, 2])
                    .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
                r = r.with_group_id(group("group-a")).with_topics(Some(vec![t]));
            } else {
                let t = offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(topic("sensors"))
                    .with_partition_indexes(vec![0, 1, 2])
                    .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
                let mut g = offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(group("group-a"))
                    .with_topics(Some(vec![t]));
                if v >= 9 {
                    g = g.with_member_id(Some(s("member-1"))).with_member_epoch(4);
                }
                let all = g.clone().with_group_id(group("group-b")).with_topics(None);
                r = r.with_groups(vec![g, all]);
            }
            if v >= 7 {
                r = r.with_require_stable(true);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::OffsetDelete => {
            let p = offset_delete_request::OffsetDeleteRequestPartition::default()
                .with_partition_index(0);
            let t = offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(topic("sensors"))
                .with_partitions(vec![p.clone(), p.with_partition_index(1)]);
            OffsetDeleteRequest::default()
                .with_group_id(group("group-a"))
                .with_topics(vec![t])
                .into()
        }
        ApiKey::ListGroups => {
            let mut r = ListGroupsRequest::default();
            if v >= 4 {
                r = r.with_states_filter(vec![s("Stable"), s("Empty")]);
            }
            if v >= 5 {
                r = r.with_types_filter(vec![s("classic")]);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::DescribeGroups => {
            let mut r = DescribeGroupsRequest::default()
                .with_groups(vec![group("group-a"), group("group-b")]);
            if v >= 3 {
                r = r.with_include_authorized_operations(true);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::DeleteGroups => DeleteGroupsRequest::default()
            .with_groups_names(vec![group("group-a"), group("group-b")])
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
            .into(),
        ApiKey::InitProducerId => {
            let mut r = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx-1"))))
                .with_transaction_timeout_ms(60_000);
            if v >= 3 {
                r = r.with_producer_id(ProducerId(77)).with_producer_epoch(1);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::DeleteRecords => {
            let p = delete_records_request::DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(10)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            let t = delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic("sensors"))
                .with_partitions(vec![p.clone(), p.with_partition_index(1)]);
            DeleteRecordsRequest::default()
                .with_topics(vec![t])
                .with_timeout_ms(1000)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
                .into()
        }
        ApiKey::SaslHandshake => SaslHandshakeRequest::default()
            .with_mechanism(s("PLAIN"))
            .into(),
        ApiKey::SaslAuthenticate => SaslAuthenticateRequest::default()
            .with_auth_bytes(Bytes::from_static(b"\0user\0secret"))
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
            .into(),
        ApiKey::DescribeCluster => {
            let mut r =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
            if v >= 1 {
                r = r.with_endpoint_type(1);
            }
            r.with_unknown_tagged_field(UNKNOWN_TAG, unknown()).into()
        }
        ApiKey::DescribeProducers => {
            let t = describe_producers_request::TopicRequest::default()
                .with_name(topic("sensors"))
                .with_partition_indexes(vec![0, 1])
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            DescribeProducersRequest::default()
                .with_topics(vec![t.clone(), t])
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
                .into()
        }
        ApiKey::DescribeAcls => DescribeAclsRequest::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(s("sensors")))
            .with_pattern_type_filter(3)
            .with_principal_filter(None)
            .with_host_filter(Some(s("*")))
            .with_operation(1)
            .with_permission_type(3)
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
            .into(),
        ApiKey::CreateAcls => {
            let c = create_acls_request::AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s("sensors"))
                .with_resource_pattern_type(3)
                .with_principal(s("User:pi"))
                .with_host(s("*"))
                .with_operation(3)
                .with_permission_type(3)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            CreateAclsRequest::default()
                .with_creations(vec![c.clone(), c])
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
                .into()
        }
        ApiKey::DeleteAcls => {
            let f = delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(None)
                .with_pattern_type_filter(1)
                .with_principal_filter(Some(s("User:pi")))
                .with_host_filter(None)
                .with_operation(1)
                .with_permission_type(1)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            DeleteAclsRequest::default()
                .with_filters(vec![f.clone(), f])
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
                .into()
        }
        ApiKey::DescribeUserScramCredentials => {
            let u = describe_user_scram_credentials_request::UserName::default()
                .with_name(s("alice"))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            DescribeUserScramCredentialsRequest::default()
                .with_users(Some(vec![u.clone(), u]))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
                .into()
        }
        ApiKey::AlterUserScramCredentials => {
            let d = alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                .with_name(s("bob"))
                .with_mechanism(2)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            let u = alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                .with_name(s("alice"))
                .with_mechanism(1)
                .with_iterations(4096)
                .with_salt(Bytes::from_static(b"0123456789abcdef"))
                .with_salted_password(Bytes::from_static(&[7; 32]))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
            AlterUserScramCredentialsRequest::default()
                .with_deletions(vec![d])
                .with_upsertions(vec![u.clone(), u])
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
                .into()
        }
        other => panic!("no realistic request for {other:?}"),
    }
}

fn encode(request: &RequestKind, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    request
        .encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encode {request:?} v{version}: {e}"));
    buf.to_vec()
}

/// Decodes with the crate (only ever called on bodies the guard accepted) and returns how
/// many bytes it consumed.
fn crate_decode(key: ApiKey, version: i16, body: &[u8]) -> anyhow::Result<(RequestKind, usize)> {
    let mut bytes = Bytes::copy_from_slice(body);
    let request = RequestKind::decode(key, &mut bytes, version)?;
    Ok((request, body.len() - bytes.len()))
}

fn covered_versions() -> impl Iterator<Item = (ApiKey, i16)> {
    covered()
        .iter()
        .flat_map(|&(key, min, max)| (min..=max).map(move |v| (key, v)))
}

fn realistic_bodies() -> Vec<(ApiKey, i16, Vec<u8>)> {
    covered_versions()
        .map(|(key, v)| (key, v, encode(&realistic(key, v), v)))
        .collect()
}

#[test]
fn every_covered_api_has_a_schema_in_range_of_the_crate() {
    for &(key, min, max) in covered() {
        for v in min..=max {
            assert!(find_api(key, v).is_some(), "{key:?} v{v} has no schema");
            let crate_range = key.valid_versions();
            assert!(crate_range.min <= v && v <= crate_range.max, "{key:?} v{v}");
        }
    }
}

#[test]
fn accepts_realistic_requests_of_every_covered_version_and_consumes_them_exactly() {
    let mut checked = 0;
    for (key, v, body) in realistic_bodies() {
        let len = body_len(key, v, &body).unwrap_or_else(|e| panic!("{key:?} v{v} refused: {e}"));
        assert_eq!(len, body.len(), "{key:?} v{v}");
        let (_, consumed) = crate_decode(key, v, &body).expect("crate decodes its own encoding");
        assert_eq!(
            consumed, len,
            "{key:?} v{v}: crate consumed a different length"
        );
        // Trailing bytes are not read (the crate leaves them too).
        let mut longer = body.clone();
        longer.extend_from_slice(&[0xff; 7]);
        assert_eq!(body_len(key, v, &longer), Ok(body.len()), "{key:?} v{v}");
        checked += 1;
    }
    assert!(checked > 150, "checked only {checked} (api, version) pairs");
}

#[test]
fn realistic_flexible_requests_carry_unknown_tagged_fields() {
    // Makes sure the test above really exercises the tagged-field sections.
    let body = encode(&realistic(ApiKey::Fetch, 12), 12);
    assert!(body.windows(6).any(|w| w == b"future"));
    assert!(
        body.windows(15).any(|w| w == b"bramble-cluster"),
        "known tag 0 present"
    );
}

#[test]
fn accepts_default_requests_of_every_covered_version() {
    for (key, v) in covered_versions() {
        let request = default_request(key);
        let body = encode(&request, v);
        assert_eq!(body_len(key, v, &body), Ok(body.len()), "{key:?} v{v}");
    }
}

fn default_request(key: ApiKey) -> RequestKind {
    match key {
        ApiKey::ApiVersions => ApiVersionsRequest::default().into(),
        ApiKey::Metadata => MetadataRequest::default().into(),
        ApiKey::Produce => ProduceRequest::default().into(),
        ApiKey::Fetch => FetchRequest::default().into(),
        ApiKey::ListOffsets => ListOffsetsRequest::default().into(),
        ApiKey::CreateTopics => CreateTopicsRequest::default().into(),
        ApiKey::DeleteTopics => DeleteTopicsRequest::default().into(),
        ApiKey::CreatePartitions => CreatePartitionsRequest::default().into(),
        ApiKey::ElectLeaders => ElectLeadersRequest::default().into(),
        ApiKey::DescribeConfigs => DescribeConfigsRequest::default().into(),
        ApiKey::AlterConfigs => AlterConfigsRequest::default().into(),
        ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::default().into(),
        ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::default().into(),
        ApiKey::FindCoordinator => FindCoordinatorRequest::default().into(),
        ApiKey::JoinGroup => JoinGroupRequest::default().into(),
        ApiKey::SyncGroup => SyncGroupRequest::default().into(),
        ApiKey::Heartbeat => HeartbeatRequest::default().into(),
        ApiKey::LeaveGroup => LeaveGroupRequest::default().into(),
        ApiKey::OffsetCommit => OffsetCommitRequest::default().into(),
        ApiKey::OffsetFetch => OffsetFetchRequest::default().into(),
        ApiKey::OffsetDelete => OffsetDeleteRequest::default().into(),
        ApiKey::ListGroups => ListGroupsRequest::default().into(),
        ApiKey::DescribeGroups => DescribeGroupsRequest::default().into(),
        ApiKey::DeleteGroups => DeleteGroupsRequest::default().into(),
        ApiKey::InitProducerId => InitProducerIdRequest::default().into(),
        ApiKey::DeleteRecords => DeleteRecordsRequest::default().into(),
        ApiKey::SaslHandshake => SaslHandshakeRequest::default().into(),
        ApiKey::SaslAuthenticate => SaslAuthenticateRequest::default().into(),
        ApiKey::DescribeCluster => DescribeClusterRequest::default().into(),
        ApiKey::DescribeProducers => DescribeProducersRequest::default().into(),
        ApiKey::DescribeAcls => DescribeAclsRequest::default().into(),
        ApiKey::CreateAcls => CreateAclsRequest::default().into(),
        ApiKey::DeleteAcls => DeleteAclsRequest::default().into(),
        ApiKey::DescribeUserScramCredentials => {
            DescribeUserScramCredentialsRequest::default().into()
        }
        ApiKey::AlterUserScramCredentials => AlterUserScramCredentialsRequest::default().into(),
        other => panic!("no default request for {other:?}"),
    }
}

// ---- schema-driven bodies: the table against the crate's decoder, all versions it knows ----

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes a length prefix the way the schema says (`None` = null).
fn put_len(out: &mut Vec<u8>, flexible: bool, wide: bool, len: Option<usize>) {
    match (flexible, len) {
        (true, None) => put_uvarint(out, 0),
        (true, Some(n)) => put_uvarint(out, n as u32 + 1),
        (false, None) if wide => out.extend_from_slice(&(-1i32).to_be_bytes()),
        (false, None) => out.extend_from_slice(&(-1i16).to_be_bytes()),
        (false, Some(n)) if wide => out.extend_from_slice(&(n as i32).to_be_bytes()),
        (false, Some(n)) => out.extend_from_slice(&(n as i16).to_be_bytes()),
    }
}

struct Gen {
    rng: Rng,
    version: i16,
    flexible: bool,
}

impl Gen {
    fn null(&mut self, nullable: bool) -> bool {
        nullable && self.rng.below(5) == 0
    }

    fn kind(&mut self, kind: &Kind, out: &mut Vec<u8>) {
        let random = |g: &mut Gen, out: &mut Vec<u8>, n: usize| {
            for _ in 0..n {
                out.push(g.rng.next() as u8);
            }
        };
        match kind {
            Kind::Bool => out.push(self.rng.below(2) as u8),
            Kind::I8 => random(self, out, 1),
            Kind::I16 => random(self, out, 2),
            Kind::I32 => random(self, out, 4),
            Kind::I64 => random(self, out, 8),
            Kind::Uuid => random(self, out, 16),
            Kind::Str { nullable } | Kind::Bytes { nullable } => {
                let wide = matches!(kind, Kind::Bytes { .. });
                if self.null(*nullable) {
                    put_len(out, self.flexible, wide, None);
                } else {
                    let n = self.rng.below(9) as usize;
                    put_len(out, self.flexible, wide, Some(n));
                    for _ in 0..n {
                        out.push(b'a' + self.rng.below(26) as u8);
                    }
                }
            }
            Kind::Array { elem, nullable } => {
                if self.null(*nullable) {
                    put_len(out, self.flexible, true, None);
                } else {
                    let n = self.rng.below(4) as usize;
                    put_len(out, self.flexible, true, Some(n));
                    for _ in 0..n {
                        self.kind(elem, out);
                    }
                }
            }
            Kind::Struct(schema) => self.schema(schema, out),
        }
    }

    fn schema(&mut self, schema: &Schema, out: &mut Vec<u8>) {
        for field in schema.fields {
            if field.tag.is_none() && field.in_version(self.version) {
                self.kind(&field.kind, out);
            }
        }
        if !self.flexible {
            return;
        }
        // Known tagged fields of this version (each maybe) and maybe one unknown, by tag.
        let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
        for field in schema.fields {
            if let Some(tag) = field.tag {
                if field.in_version(self.version) && self.rng.below(2) == 0 {
                    let mut value = Vec::new();
                    self.kind(&field.kind, &mut value);
                    tagged.push((tag, value));
                }
            }
        }
        if self.rng.below(3) == 0 {
            let len = self.rng.below(5) as usize;
            tagged.push((UNKNOWN_TAG as u32, vec![b'z'; len]));
        }
        put_uvarint(out, tagged.len() as u32);
        for (tag, value) in tagged {
            put_uvarint(out, tag);
            put_uvarint(out, value.len() as u32);
            out.extend_from_slice(&value);
        }
    }
}

fn generated(api: &Api, version: i16, seed: u64) -> Vec<u8> {
    let mut generator = Gen {
        rng: Rng(seed | 1),
        version,
        flexible: version >= api.flexible_from,
    };
    let mut out = Vec::new();
    generator.schema(api.schema, &mut out);
    out
}

#[test]
fn schema_table_matches_the_crate_decoder_in_every_version_it_knows() {
    // Bodies built from our table must be decoded by the crate, to the same length, and the
    // crate's re-encoding of what it decoded must pass the guard whole.
    for api in APIS {
        for v in api.min..=api.max {
            for seed in 0..60u64 {
                let body = generated(api, v, seed * 7919 + v as u64);
                let len = walk_api(api, v, &body)
                    .unwrap_or_else(|e| panic!("{:?} v{v} seed {seed}: {e}", api.key));
                assert_eq!(len, body.len());
                let (request, consumed) = crate_decode(api.key, v, &body).unwrap_or_else(|e| {
                    panic!(
                        "{:?} v{v} seed {seed}: crate refused {body:02x?}: {e}",
                        api.key
                    )
                });
                assert_eq!(
                    consumed,
                    body.len(),
                    "{:?} v{v} seed {seed}: {body:02x?}",
                    api.key
                );
                let mut again = BytesMut::new();
                if request.encode(&mut again, v).is_ok() {
                    assert_eq!(
                        walk_api(api, v, &again),
                        Ok(again.len()),
                        "{:?} v{v}",
                        api.key
                    );
                }
            }
        }
    }
}

#[test]
fn every_struct_element_takes_at_least_one_byte() {
    // The array check divides by the element's minimum size; an element that could be empty
    // on the wire would make a legal array look too long. None of our layouts has one.
    fn visit(kind: &Kind, api: &Api, v: i16) {
        match kind {
            Kind::Array { elem, .. } => {
                assert!(
                    min_size(elem, v, v >= api.flexible_from) >= 1,
                    "{:?} v{v}",
                    api.key
                );
                visit(elem, api, v);
            }
            Kind::Struct(schema) => {
                for field in schema.fields.iter().filter(|f| f.in_version(v)) {
                    visit(&field.kind, api, v);
                }
            }
            _ => {}
        }
    }
    for api in APIS {
        for v in api.min..=api.max {
            visit(&Kind::Struct(api.schema), api, v);
        }
    }
}

// ---- malformed bodies ----

#[test]
fn refuses_the_crash_body_a_count_of_0x7fff_ffff() {
    // Metadata v1: topics array claiming i32::MAX elements, then nothing. kafka-protocol
    // would call Vec::with_capacity(0x7fff_ffff) on this and abort.
    let mut body = 0x7fff_ffffi32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 16]);
    assert!(matches!(
        check_body(ApiKey::Metadata, 1, &body),
        Err(GuardError::ArrayTooLong {
            count: 0x7fff_ffff,
            field: "topics",
            ..
        })
    ));
    // Same in a flexible version (compact count) and for Produce's nested partition array.
    let mut flexible = vec![0xff, 0xff, 0xff, 0xff, 0x07];
    flexible.extend_from_slice(&[0; 15]);
    assert!(matches!(
        check_body(ApiKey::Metadata, 12, &flexible),
        Err(GuardError::ArrayTooLong { .. })
    ));
}

#[test]
fn refuses_huge_nested_counts() {
    // Produce v3: transactional_id null, acks, timeout, one topic "t", then a partition array
    // claiming 0x7fff_ffff elements.
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&1000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.push(b't');
    body.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    body.extend_from_slice(&[0; 12]);
    assert!(matches!(
        check_body(ApiKey::Produce, 3, &body),
        Err(GuardError::ArrayTooLong {
            field: "partition_data",
            ..
        })
    ));
}

#[test]
fn refuses_a_huge_length_inside_a_known_tagged_field() {
    // Fetch v12 whose top-level tagged section is replaced by a known tag (0, cluster_id)
    // claiming a 2^31-byte string.
    let r = FetchRequest::default().with_max_wait_ms(1);
    let base = encode(&RequestKind::Fetch(r), 12);
    // base ends with the tagged-field count 0; replace it by one field: tag 0, size 5,
    // compact string length 2^31.
    let mut evil = base[..base.len() - 1].to_vec();
    evil.extend_from_slice(&[1, 0, 5, 0x81, 0x80, 0x80, 0x80, 0x08]);
    assert!(matches!(
        check_body(ApiKey::Fetch, 12, &evil),
        Err(GuardError::BadLength {
            field: "cluster_id",
            ..
        })
    ));
}

/// Every position of every realistic body where a count or length could sit, overwritten
/// with huge and negative values: the guard must answer without panicking, and whatever it
/// accepts the crate must decode to the same length (or fail gracefully).
#[test]
fn survives_huge_and_negative_values_written_anywhere() {
    let patterns: [&[u8]; 6] = [
        &[0x7f, 0xff, 0xff, 0xff],
        &[0xff, 0xff, 0xff, 0xfe],
        &[0x80, 0x00, 0x00, 0x00],
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        &[0xff, 0xfe],
    ];
    for (key, v, body) in realistic_bodies() {
        for pos in 0..body.len() {
            for pattern in patterns {
                let mut evil = body.clone();
                for (i, b) in pattern.iter().enumerate() {
                    if let Some(slot) = evil.get_mut(pos + i) {
                        *slot = *b;
                    }
                }
                if let Ok(len) = body_len(key, v, &evil) {
                    if let Ok((_, consumed)) = crate_decode(key, v, &evil) {
                        assert_eq!(consumed, len, "{key:?} v{v} pos {pos}");
                    }
                }
            }
        }
    }
}

#[test]
fn refuses_every_truncation_of_every_realistic_body() {
    for (key, v, body) in realistic_bodies() {
        for cut in 0..body.len() {
            let prefix = &body[..cut];
            assert!(
                check_body(key, v, prefix).is_err(),
                "{key:?} v{v}: prefix of {cut}/{} bytes accepted",
                body.len()
            );
        }
    }
}

#[test]
fn refuses_negative_lengths() {
    // Heartbeat v0: group_id with length -2.
    let mut body = (-2i16).to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 20]);
    assert!(matches!(
        check_body(ApiKey::Heartbeat, 0, &body),
        Err(GuardError::BadLength { length: -2, .. })
    ));
    // A null (-1) where the field is not nullable is refused too (the crate would bail).
    let mut body = (-1i16).to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 20]);
    assert!(matches!(
        check_body(ApiKey::Heartbeat, 0, &body),
        Err(GuardError::BadLength { length: -1, .. })
    ));
    // Produce v3 with a negative topic array count.
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&1000i32.to_be_bytes());
    body.extend_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(
        check_body(ApiKey::Produce, 3, &body),
        Err(GuardError::BadLength {
            field: "topic_data",
            length: -5,
            ..
        })
    ));
    // SaslAuthenticate v0 bytes claiming more than is there.
    let mut body = 100i32.to_be_bytes().to_vec();
    body.extend_from_slice(b"short");
    assert!(matches!(
        check_body(ApiKey::SaslAuthenticate, 0, &body),
        Err(GuardError::BadLength {
            length: 100,
            remaining: 5,
            ..
        })
    ));
}

/// No request we serve has an array inside a known tagged field yet (Kafka adds them in newer
/// versions), so this walks a made-up layout: a tagged array of structs holding arrays.
#[test]
fn refuses_huge_counts_in_arrays_inside_known_tagged_fields() {
    use super::schema::{Field, MAX};
    static INNER: Schema = Schema {
        name: "Inner",
        fields: &[Field {
            name: "ids",
            min: 0,
            max: MAX,
            tag: None,
            kind: Kind::Array {
                elem: &Kind::I32,
                nullable: false,
            },
        }],
    };
    static OUTER: Schema = Schema {
        name: "Outer",
        fields: &[Field {
            name: "inners",
            min: 0,
            max: MAX,
            tag: Some(3),
            kind: Kind::Array {
                elem: &Kind::Struct(&INNER),
                nullable: false,
            },
        }],
    };
    let api = Api {
        key: ApiKey::Produce,
        min: 0,
        max: 0,
        flexible_from: 0,
        schema: &OUTER,
    };
    // One tagged field (tag 3, 13 bytes): two inners, ids [1, 2] and [], each with an empty
    // tagged section.
    let value = [3, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 0];
    let mut good = vec![1, 3, value.len() as u8];
    good.extend_from_slice(&value);
    assert_eq!(walk_api(&api, 0, &good), Ok(good.len()));
    // The inner array claims 2^31 ids.
    let mut evil = good.clone();
    evil.splice(4..5, [0x81, 0x80, 0x80, 0x80, 0x08]);
    assert!(matches!(
        walk_api(&api, 0, &evil),
        Err(GuardError::ArrayTooLong {
            within: "Inner",
            field: "ids",
            ..
        })
    ));
    // The tagged array itself claims 2^31 inners.
    let mut evil = good.clone();
    evil.splice(3..4, [0x81, 0x80, 0x80, 0x80, 0x08]);
    assert!(matches!(
        walk_api(&api, 0, &evil),
        Err(GuardError::ArrayTooLong {
            within: "Outer",
            field: "inners",
            ..
        })
    ));
}

#[test]
fn refuses_known_tags_out_of_version_and_with_a_wrong_size() {
    let base = encode(&RequestKind::Fetch(FetchRequest::default()), 12);
    // Tag 1 (replica_state) only exists from version 15.
    let mut body = base[..base.len() - 1].to_vec();
    body.extend_from_slice(&[1, 1, 12]);
    body.extend_from_slice(&[0; 12]);
    assert!(matches!(
        check_body(ApiKey::Fetch, 12, &body),
        Err(GuardError::BadTaggedField { tag: 1, .. })
    ));
    // Tag 0 (cluster_id) whose size says 9 but whose string takes 3 bytes.
    let mut body = base[..base.len() - 1].to_vec();
    body.extend_from_slice(&[1, 0, 9, 3, b'a', b'b', 0, 0, 0, 0, 0, 0]);
    assert!(matches!(
        check_body(ApiKey::Fetch, 12, &body),
        Err(GuardError::BadTaggedField { tag: 0, .. })
    ));
}

#[test]
fn refuses_overlong_varints() {
    // ApiVersions v3: software name length as a 6-byte varint.
    let body = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0];
    assert!(matches!(
        check_body(ApiKey::ApiVersions, 3, &body),
        Err(GuardError::BadVarint { .. })
    ));
}

#[test]
fn refuses_versions_it_has_no_schema_for() {
    assert_eq!(
        check_body(ApiKey::Produce, 2, &[]),
        Err(GuardError::NoSchema {
            api_key: 0,
            version: 2
        })
    );
    assert_eq!(
        check_body(ApiKey::Metadata, 13, &[]),
        Err(GuardError::NoSchema {
            api_key: 3,
            version: 13
        })
    );
    assert!(check_body(ApiKey::EndTxn, 0, &[]).is_err());
}

#[test]
fn random_bytes_never_panic_and_never_disagree_with_the_crate() {
    let mut rng = Rng(0x5eed);
    for (key, v) in covered_versions() {
        for _ in 0..200 {
            let len = rng.below(48) as usize;
            let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Ok(n) = body_len(key, v, &body) {
                if let Ok((_, consumed)) = crate_decode(key, v, &body) {
                    assert_eq!(consumed, n, "{key:?} v{v} {body:02x?}");
                }
            }
        }
    }
}

/// Writes a seed corpus for the `kafka_request` fuzz target (request header + body, as a
/// frame without its size prefix): the realistic request and a few table-generated ones for
/// every covered version. Run by hand, see fuzz/README.md.
#[test]
#[ignore = "writes files; run by hand to seed the fuzzer"]
fn write_fuzz_seeds() {
    let dir = std::env::var("BRAMBLE_FUZZ_SEEDS").expect("set BRAMBLE_FUZZ_SEEDS to a directory");
    std::fs::create_dir_all(&dir).unwrap();
    let frame = |key: ApiKey, v: i16, body: &[u8]| {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(v)
            .with_correlation_id(7)
            .with_client_id(Some(s("fuzz-seed")));
        let mut buf = BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(
            &header,
            &mut buf,
            key.request_header_version(v),
        )
        .unwrap();
        buf.extend_from_slice(body);
        buf
    };
    let mut written = 0;
    for (key, v, body) in realistic_bodies() {
        std::fs::write(
            format!("{dir}/{key:?}-v{v}-realistic"),
            frame(key, v, &body),
        )
        .unwrap();
        let api = find_api(key, v).unwrap();
        for seed in 0..3 {
            let body = generated(api, v, seed + 1);
            let name = format!("{dir}/{key:?}-v{v}-generated-{seed}");
            std::fs::write(name, frame(key, v, &body)).unwrap();
        }
        written += 4;
    }
    eprintln!("wrote {written} seeds to {dir}");
}
