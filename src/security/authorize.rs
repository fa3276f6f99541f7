//! Which ACL each Kafka request needs, checked before the handler runs, as Kafka's
//! authorizer does ("Operations and Resources on Protocols").
//!
//! Lists are split: the topics, groups or config resources the principal may not touch are
//! taken out of the request and answered with Kafka's authorization error next to the
//! handler's answers for the rest:
//! - topics (TOPIC_AUTHORIZATION_FAILED): Produce Write; Fetch Read; ListOffsets,
//!   OffsetForLeaderEpoch, OffsetFetch Describe (v8+: within each group's answer); Metadata Describe, and a full listing shows only
//!   described topics; CreateTopics Create (on the cluster or the topic); DeleteTopics
//!   Delete; CreatePartitions Alter; OffsetCommit and OffsetDelete Read;
//! - config resources: DescribeConfigs DescribeConfigs, AlterConfigs and
//!   IncrementalAlterConfigs AlterConfigs, on the topic (29) or, for a broker, the cluster
//!   (CLUSTER_AUTHORIZATION_FAILED);
//! - groups (GROUP_AUTHORIZATION_FAILED): FindCoordinator (v4+ keys), OffsetFetch (v8+
//!   groups) and DescribeGroups Describe, DeleteGroups Delete; ListGroups without Describe on the cluster lists only
//!   the groups the principal may describe.
//!
//! A request about one group is refused whole when the group is: JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup and OffsetCommit need Read on it, OffsetFetch (v0-v7) and
//! FindCoordinator (v0-v3) Describe, OffsetDelete Delete. Replica requests from a client listener, ACL and
//! user changes need the cluster — except the very first user, which a client on the node
//! itself (loopback) may add.

use std::collections::HashSet;

use kafka_protocol::messages::{
    alter_configs_response::AlterConfigsResourceResponse,
    alter_user_scram_credentials_response::AlterUserScramCredentialsResult,
    create_partitions_response::CreatePartitionsTopicResult,
    create_topics_response::CreatableTopicResult, delete_groups_response::DeletableGroupResult,
    delete_topics_response::DeletableTopicResult, describe_configs_response::DescribeConfigsResult,
    describe_groups_response::DescribedGroup,
    elect_leaders_response::PartitionResult as ElectionPartitionResult,
    elect_leaders_response::ReplicaElectionResult, fetch_response::FetchableTopicResponse,
    fetch_response::PartitionData, find_coordinator_response::Coordinator,
    incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResourceResponse,
    list_offsets_response::ListOffsetsPartitionResponse,
    list_offsets_response::ListOffsetsTopicResponse, metadata_response::MetadataResponseTopic,
    offset_commit_response::OffsetCommitResponsePartition,
    offset_commit_response::OffsetCommitResponseTopic,
    offset_delete_response::OffsetDeleteResponsePartition,
    offset_delete_response::OffsetDeleteResponseTopic,
    offset_fetch_response::OffsetFetchResponseGroup,
    offset_fetch_response::OffsetFetchResponsePartition,
    offset_fetch_response::OffsetFetchResponsePartitions,
    offset_fetch_response::OffsetFetchResponseTopic,
    offset_fetch_response::OffsetFetchResponseTopics,
    offset_for_leader_epoch_response::EpochEndOffset,
    offset_for_leader_epoch_response::OffsetForLeaderTopicResult,
    produce_response::PartitionProduceResponse, produce_response::TopicProduceResponse,
    AlterUserScramCredentialsResponse, BrokerId, DescribeUserScramCredentialsResponse,
    ElectLeadersResponse, FetchResponse, FindCoordinatorResponse, GroupId, HeartbeatResponse,
    JoinGroupResponse, LeaveGroupResponse, OffsetCommitResponse, OffsetDeleteResponse,
    OffsetFetchResponse, OffsetForLeaderEpochResponse, RequestKind, ResponseKind,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::kafka::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::kafka::Context;

/// TOPIC_AUTHORIZATION_FAILED.
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
/// GROUP_AUTHORIZATION_FAILED.
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
/// CLUSTER_AUTHORIZATION_FAILED.
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

/// Config resource type of a broker's loggers (served by neither, but a cluster resource).
const RESOURCE_BROKER_LOGGER: i8 = 8;

/// A topic taken out of a request, with the partitions it named.
pub type RefusedTopic = (TopicName, Vec<i32>);

/// A config resource, group or coordinator key taken out of a request.
#[derive(Debug, Clone)]
pub struct RefusedResource {
    /// The config resource type (DescribeConfigs, AlterConfigs); unused for groups.
    pub resource_type: i8,
    /// The resource's name (a topic, a broker id, a group).
    pub name: StrBytes,
    /// The authorization error to answer with.
    pub code: i16,
}

/// The parts of a request taken out of it, to be answered as refused.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Topics, with the partitions named.
    pub topics: Vec<RefusedTopic>,
    /// Config resources, groups or coordinator keys.
    pub resources: Vec<RefusedResource>,
    /// OffsetFetch v8+: the topics refused within each group.
    pub group_topics: Vec<(GroupId, Vec<RefusedTopic>)>,
}

/// What the check decided.
#[derive(Debug, Default)]
pub enum Decision {
    /// Everything asked for is allowed.
    #[default]
    Allowed,
    /// Parts were taken out of the request; add them to the response as refused.
    Partial(Refusals),
    /// A full Metadata listing: drop the topics the principal may not describe.
    FilterMetadata,
    /// A ListGroups without Describe on the cluster: drop the groups the principal may
    /// not describe.
    FilterGroups,
    /// The whole request is refused with this response.
    Refused(Box<ResponseKind>),
}

struct Check<'a> {
    ctx: &'a Context,
}

impl Check<'_> {
    fn allows(&self, op: Operation, t: ResourceType, name: &str) -> bool {
        self.ctx.security.authorizer().allows(
            &self.ctx.principal,
            self.ctx.peer.map(|p| p.ip()),
            op,
            t,
            name,
        )
    }

    fn topic(&self, op: Operation, name: &str) -> bool {
        self.allows(op, ResourceType::Topic, name)
    }

    fn group(&self, op: Operation, name: &str) -> bool {
        self.allows(op, ResourceType::Group, name)
    }

    fn cluster(&self, op: Operation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// `op` on a config resource: a topic's own ACLs, the cluster's for a broker. Other
    /// types pass here and are refused by the handler as not served.
    fn config_resource(&self, op: Operation, resource_type: i8, name: &str) -> bool {
        match resource_type {
            RESOURCE_TOPIC => self.topic(op, name),
            RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => self.cluster(op),
            _ => true,
        }
    }
}

/// Keeps in `items` what `allowed` lets through; the rest go to `refused` as `refusal`
/// describes them.
fn split<T, R>(
    items: &mut Vec<T>,
    refused: &mut Vec<R>,
    allowed: impl Fn(&T) -> bool,
    refusal: impl Fn(&T) -> R,
) {
    items.retain(|item| {
        let ok = allowed(item);
        if !ok {
            refused.push(refusal(item));
        }
        ok
    });
}

/// A refused group.
fn refused_group(name: &GroupId) -> RefusedResource {
    RefusedResource {
        resource_type: 0,
        name: name.0.clone(),
        code: GROUP_AUTHORIZATION_FAILED,
    }
}

/// A refused config resource: a topic's error, or the cluster's for a broker.
fn refused_config(resource_type: i8, name: &StrBytes) -> RefusedResource {
    RefusedResource {
        resource_type,
        name: name.clone(),
        code: if resource_type == RESOURCE_TOPIC {
            TOPIC_AUTHORIZATION_FAILED
        } else {
            CLUSTER_AUTHORIZATION_FAILED
        },
    }
}

/// [`split`] for a list of topics with partitions: `$name` is the topic's name field,
/// `$parts.$index` its partitions and their index field.
macro_rules! split_topics {
    ($check:expr, $items:expr, $refused:expr, $op:expr, $name:ident, $parts:ident . $index:ident) => {
        split(
            &mut $items,
            $refused,
            |t| $check.topic($op, &t.$name),
            |t| (t.$name.clone(), t.$parts.iter().map(|p| p.$index).collect()),
        )
    };
}

/// [`split`] for a list of topics named by an optional name (Metadata, DeleteTopics v6+);
/// an entry without a name is left to the handler.
macro_rules! split_optional_names {
    ($check:expr, $items:expr, $refused:expr, $op:expr) => {
        split(
            $items,
            $refused,
            |t| t.name.as_ref().is_none_or(|n| $check.topic($op, n)),
            |t| (t.name.clone().unwrap_or_default(), Vec::new()),
        )
    };
}

/// [`split`] for the config resources of DescribeConfigs, AlterConfigs and
/// IncrementalAlterConfigs (three request types with the same two fields).
macro_rules! split_configs {
    ($check:expr, $resources:expr, $op:expr, $refused:expr) => {
        split(
            &mut $resources,
            $refused,
            |res| $check.config_resource($op, res.resource_type, &res.resource_name),
            |res| refused_config(res.resource_type, &res.resource_name),
        )
    };
}

/// A response of `$response` type carrying only `$code`, as the whole answer.
macro_rules! refuse_whole {
    ($variant:ident, $response:ty, $code:expr) => {
        Decision::Refused(Box::new(ResponseKind::$variant(
            <$response>::default().with_error_code($code),
        )))
    };
}

/// A whole response whose every named topic and partition carries `code`.
fn refuse_topics(mut empty: ResponseKind, topics: &[RefusedTopic], code: i16) -> Decision {
    add_topics(&mut empty, topics, code);
    Decision::Refused(Box::new(empty))
}

/// Check `request` for the connection's principal, taking refused parts out of it.
pub fn check(ctx: &Context, request: &mut RequestKind) -> Decision {
    let security = &ctx.security;
    // Replica requests from other nodes come through the peer port, which only members
    // reach (with mutual TLS under `[cluster] tls`): the cluster itself is asking.
    if ctx.inter_broker {
        return Decision::Allowed;
    }
    if security.config.allow_everyone_if_no_acl_found && security.acls.is_empty() {
        return Decision::Allowed;
    }
    let c = Check { ctx };
    let mut topics: Vec<RefusedTopic> = Vec::new();
    let mut resources: Vec<RefusedResource> = Vec::new();
    let mut group_topics: Vec<(GroupId, Vec<RefusedTopic>)> = Vec::new();
    match request {
        RequestKind::Produce(r) => split_topics!(
            c,
            r.topic_data,
            &mut topics,
            Operation::Write,
            name,
            partition_data.index
        ),
        RequestKind::Fetch(r) => {
            if r.replica_id.0 >= 0 || r.replica_state.replica_id.0 >= 0 {
                if !c.cluster(Operation::ClusterAction) {
                    return refuse_whole!(Fetch, FetchResponse, CLUSTER_AUTHORIZATION_FAILED);
                }
            } else {
                split_topics!(
                    c,
                    r.topics,
                    &mut topics,
                    Operation::Read,
                    topic,
                    partitions.partition
                );
            }
        }
        RequestKind::ListOffsets(r) => split_topics!(
            c,
            r.topics,
            &mut topics,
            Operation::Describe,
            name,
            partitions.partition_index
        ),
        RequestKind::OffsetForLeaderEpoch(r) => {
            let asked = |t: &kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderTopic| {
                let parts = t.partitions.iter().map(|p| p.partition).collect();
                (t.topic.clone(), parts)
            };
            if r.replica_id.0 >= 0 {
                if !c.cluster(Operation::ClusterAction) {
                    let all: Vec<_> = r.topics.iter().map(asked).collect();
                    return refuse_topics(
                        ResponseKind::OffsetForLeaderEpoch(OffsetForLeaderEpochResponse::default()),
                        &all,
                        CLUSTER_AUTHORIZATION_FAILED,
                    );
                }
            } else {
                split(
                    &mut r.topics,
                    &mut topics,
                    |t| c.topic(Operation::Describe, &t.topic),
                    asked,
                );
            }
        }
        RequestKind::Metadata(r) => match &mut r.topics {
            Some(asked) if !asked.is_empty() => {
                split_optional_names!(c, asked, &mut topics, Operation::Describe)
            }
            _ => return Decision::FilterMetadata,
        },
        RequestKind::CreateTopics(r) => {
            let cluster = c.cluster(Operation::Create);
            split(
                &mut r.topics,
                &mut topics,
                |t| cluster || c.topic(Operation::Create, &t.name),
                |t| (t.name.clone(), Vec::new()),
            );
        }
        RequestKind::DeleteTopics(r) => {
            split(
                &mut r.topic_names,
                &mut topics,
                |name| c.topic(Operation::Delete, name),
                |name| (name.clone(), Vec::new()),
            );
            split_optional_names!(c, &mut r.topics, &mut topics, Operation::Delete);
        }
        RequestKind::CreatePartitions(r) => split(
            &mut r.topics,
            &mut topics,
            |t| c.topic(Operation::Alter, &t.name),
            |t| (t.name.clone(), Vec::new()),
        ),
        RequestKind::DescribeConfigs(r) => {
            split_configs!(c, r.resources, Operation::DescribeConfigs, &mut resources)
        }
        RequestKind::AlterConfigs(r) => {
            split_configs!(c, r.resources, Operation::AlterConfigs, &mut resources)
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            split_configs!(c, r.resources, Operation::AlterConfigs, &mut resources)
        }
        RequestKind::FindCoordinator(r) if r.key_type == 0 => {
            if !r.coordinator_keys.is_empty() {
                // v4+: one answer per key.
                split(
                    &mut r.coordinator_keys,
                    &mut resources,
                    |key| c.group(Operation::Describe, key),
                    |key| refused_group(&GroupId(key.clone())),
                );
            } else if !r.key.is_empty() && !c.group(Operation::Describe, &r.key) {
                return Decision::Refused(Box::new(ResponseKind::FindCoordinator(
                    FindCoordinatorResponse::default()
                        .with_error_code(GROUP_AUTHORIZATION_FAILED)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                )));
            }
        }
        RequestKind::ListGroups(_) if !c.cluster(Operation::Describe) => {
            return Decision::FilterGroups;
        }
        RequestKind::DescribeGroups(r) => split(
            &mut r.groups,
            &mut resources,
            |g| c.group(Operation::Describe, g),
            refused_group,
        ),
        RequestKind::DeleteGroups(r) => split(
            &mut r.groups_names,
            &mut resources,
            |g| c.group(Operation::Delete, g),
            refused_group,
        ),
        RequestKind::JoinGroup(r) if !c.group(Operation::Read, &r.group_id) => {
            return refuse_whole!(JoinGroup, JoinGroupResponse, GROUP_AUTHORIZATION_FAILED);
        }
        RequestKind::SyncGroup(r) if !c.group(Operation::Read, &r.group_id) => {
            return refuse_whole!(SyncGroup, SyncGroupResponse, GROUP_AUTHORIZATION_FAILED);
        }
        RequestKind::Heartbeat(r) if !c.group(Operation::Read, &r.group_id) => {
            return refuse_whole!(Heartbeat, HeartbeatResponse, GROUP_AUTHORIZATION_FAILED);
        }
        RequestKind::LeaveGroup(r) if !c.group(Operation::Read, &r.group_id) => {
            return refuse_whole!(LeaveGroup, LeaveGroupResponse, GROUP_AUTHORIZATION_FAILED);
        }
        RequestKind::OffsetCommit(r) => {
            let asked =
                |t: &kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic| {
                    let parts = t.partitions.iter().map(|p| p.partition_index).collect();
                    (t.name.clone(), parts)
                };
            if !c.group(Operation::Read, &r.group_id) {
                let all: Vec<_> = r.topics.iter().map(asked).collect();
                return refuse_topics(
                    ResponseKind::OffsetCommit(OffsetCommitResponse::default()),
                    &all,
                    GROUP_AUTHORIZATION_FAILED,
                );
            }
            // As Kafka: the allowed topics are committed, the refused ones answered 29.
            split(
                &mut r.topics,
                &mut topics,
                |t| c.topic(Operation::Read, &t.name),
                asked,
            );
        }
        RequestKind::OffsetDelete(r) => {
            if !c.group(Operation::Delete, &r.group_id) {
                return refuse_whole!(
                    OffsetDelete,
                    OffsetDeleteResponse,
                    GROUP_AUTHORIZATION_FAILED
                );
            }
            split_topics!(
                c,
                r.topics,
                &mut topics,
                Operation::Read,
                name,
                partitions.partition_index
            );
        }
        // v8+: one answer per group, and within it per topic.
        RequestKind::OffsetFetch(r) if !r.groups.is_empty() => {
            split(
                &mut r.groups,
                &mut resources,
                |g| c.group(Operation::Describe, &g.group_id),
                |g| refused_group(&g.group_id),
            );
            for g in &mut r.groups {
                let mut refused = Vec::new();
                if let Some(listed) = &mut g.topics {
                    split(
                        listed,
                        &mut refused,
                        |t| c.topic(Operation::Describe, &t.name),
                        |t| (t.name.clone(), t.partition_indexes.clone()),
                    );
                }
                if !refused.is_empty() {
                    group_topics.push((g.group_id.clone(), refused));
                }
            }
        }
        RequestKind::OffsetFetch(r) => {
            let asked =
                |t: &kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic| {
                    (t.name.clone(), t.partition_indexes.clone())
                };
            if !c.group(Operation::Describe, &r.group_id) {
                // v2+ read the top-level error; v0 and v1 each partition's.
                let all: Vec<_> = r.topics.iter().flatten().map(asked).collect();
                return refuse_topics(
                    ResponseKind::OffsetFetch(
                        OffsetFetchResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED),
                    ),
                    &all,
                    GROUP_AUTHORIZATION_FAILED,
                );
            }
            if let Some(listed) = &mut r.topics {
                split(
                    listed,
                    &mut topics,
                    |t| c.topic(Operation::Describe, &t.name),
                    asked,
                );
            }
        }
        RequestKind::DescribeUserScramCredentials(_) if !c.cluster(Operation::Describe) => {
            return refuse_whole!(
                DescribeUserScramCredentials,
                DescribeUserScramCredentialsResponse,
                CLUSTER_AUTHORIZATION_FAILED
            );
        }
        // The top-level error code exists from v1 on: every named partition carries it too.
        RequestKind::ElectLeaders(r) if !c.cluster(Operation::Alter) => {
            let results = r
                .topic_partitions
                .iter()
                .flatten()
                .map(|t| {
                    ReplicaElectionResult::default()
                        .with_topic(t.topic.clone())
                        .with_partition_result(
                            t.partitions
                                .iter()
                                .map(|&p| {
                                    ElectionPartitionResult::default()
                                        .with_partition_id(p)
                                        .with_error_code(CLUSTER_AUTHORIZATION_FAILED)
                                })
                                .collect(),
                        )
                })
                .collect();
            return Decision::Refused(Box::new(ResponseKind::ElectLeaders(
                ElectLeadersResponse::default().with_replica_election_results(results),
            )));
        }
        // The first user may be made from the node itself (a loopback client), so a setup
        // that allows nothing without ACLs can still be bootstrapped.
        RequestKind::AlterUserScramCredentials(r)
            if !(c.cluster(Operation::Alter)
                || (security.users.is_empty()
                    && ctx.peer.is_some_and(|p| p.ip().is_loopback()))) =>
        {
            let mut users: Vec<_> = r
                .deletions
                .iter()
                .map(|d| d.name.clone())
                .chain(r.upsertions.iter().map(|u| u.name.clone()))
                .collect();
            users.sort();
            users.dedup();
            let message = StrBytes::from_static_str(
                "managing users needs Alter on the cluster (a super user)",
            );
            return Decision::Refused(Box::new(ResponseKind::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(
                    users
                        .into_iter()
                        .map(|user| {
                            AlterUserScramCredentialsResult::default()
                                .with_user(user)
                                .with_error_code(CLUSTER_AUTHORIZATION_FAILED)
                                .with_error_message(Some(message.clone()))
                        })
                        .collect(),
                ),
            )));
        }
        _ => {}
    }
    if topics.is_empty() && resources.is_empty() && group_topics.is_empty() {
        return Decision::Allowed;
    }
    tracing::debug!(
        principal = %ctx.principal,
        topics = topics.len(),
        resources = resources.len(),
        "refused by ACL"
    );
    Decision::Partial(Refusals {
        topics,
        resources,
        group_topics,
    })
}

/// Add the refused parts to the handler's response, or filter a full listing.
pub fn patch(ctx: &Context, decision: &Decision, response: &mut ResponseKind) {
    let c = Check { ctx };
    match (decision, response) {
        (Decision::Partial(refused), response) => {
            add_topics(response, &refused.topics, TOPIC_AUTHORIZATION_FAILED);
            add_resources(response, &refused.resources);
            add_group_topics(response, &refused.group_topics);
        }
        (Decision::FilterMetadata, ResponseKind::Metadata(m)) => m.topics.retain(|t| {
            t.name
                .as_ref()
                .is_none_or(|n| c.topic(Operation::Describe, n))
        }),
        (Decision::FilterGroups, ResponseKind::ListGroups(r)) => r
            .groups
            .retain(|g| c.group(Operation::Describe, &g.group_id)),
        _ => {}
    }
}

/// One answer per refused topic, each of its partitions answered by `partition`.
fn per_topic<T, P>(
    refused: &[RefusedTopic],
    partition: impl Fn(i32) -> P,
    topic: impl Fn(TopicName, Vec<P>) -> T,
) -> Vec<T> {
    refused
        .iter()
        .map(|(name, parts)| topic(name.clone(), parts.iter().map(|&i| partition(i)).collect()))
        .collect()
}

/// Add `refused` topics, answered with `code`, to a response listing topics.
fn add_topics(response: &mut ResponseKind, refused: &[RefusedTopic], code: i16) {
    match response {
        ResponseKind::Produce(r) => r.responses.extend(per_topic(
            refused,
            |i| {
                PartitionProduceResponse::default()
                    .with_index(i)
                    .with_error_code(code)
            },
            |name, parts| {
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_partition_responses(parts)
            },
        )),
        ResponseKind::Fetch(r) => r.responses.extend(per_topic(
            refused,
            |i| {
                PartitionData::default()
                    .with_partition_index(i)
                    .with_error_code(code)
                    .with_high_watermark(-1)
            },
            |name, parts| {
                FetchableTopicResponse::default()
                    .with_topic(name)
                    .with_partitions(parts)
            },
        )),
        ResponseKind::ListOffsets(r) => r.topics.extend(per_topic(
            refused,
            |i| {
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(i)
                    .with_error_code(code)
            },
            |name, parts| {
                ListOffsetsTopicResponse::default()
                    .with_name(name)
                    .with_partitions(parts)
            },
        )),
        ResponseKind::OffsetForLeaderEpoch(r) => r.topics.extend(per_topic(
            refused,
            |i| {
                EpochEndOffset::default()
                    .with_partition(i)
                    .with_error_code(code)
                    .with_leader_epoch(-1)
                    .with_end_offset(-1)
            },
            |name, parts| {
                OffsetForLeaderTopicResult::default()
                    .with_topic(name)
                    .with_partitions(parts)
            },
        )),
        ResponseKind::OffsetCommit(r) => r.topics.extend(per_topic(
            refused,
            |i| {
                OffsetCommitResponsePartition::default()
                    .with_partition_index(i)
                    .with_error_code(code)
            },
            |name, parts| {
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(parts)
            },
        )),
        ResponseKind::OffsetFetch(r) => r.topics.extend(per_topic(
            refused,
            |i| {
                OffsetFetchResponsePartition::default()
                    .with_partition_index(i)
                    .with_committed_offset(-1)
                    .with_committed_leader_epoch(-1)
                    .with_error_code(code)
            },
            |name, parts| {
                OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(parts)
            },
        )),
        ResponseKind::OffsetDelete(r) => r.topics.extend(per_topic(
            refused,
            |i| {
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(i)
                    .with_error_code(code)
            },
            |name, parts| {
                OffsetDeleteResponseTopic::default()
                    .with_name(name)
                    .with_partitions(parts)
            },
        )),
        ResponseKind::Metadata(r) => {
            let seen: HashSet<TopicName> = r.topics.iter().filter_map(|t| t.name.clone()).collect();
            r.topics.extend(
                refused
                    .iter()
                    .filter(|(n, _)| !seen.contains(n))
                    .map(|(name, _)| {
                        MetadataResponseTopic::default()
                            .with_name(Some(name.clone()))
                            .with_error_code(code)
                    }),
            )
        }
        ResponseKind::CreateTopics(r) => r.topics.extend(refused.iter().map(|(name, _)| {
            CreatableTopicResult::default()
                .with_name(name.clone())
                .with_error_code(code)
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        })),
        ResponseKind::CreatePartitions(r) => r.results.extend(refused.iter().map(|(name, _)| {
            CreatePartitionsTopicResult::default()
                .with_name(name.clone())
                .with_error_code(code)
        })),
        ResponseKind::DeleteTopics(r) => r.responses.extend(refused.iter().map(|(name, _)| {
            DeletableTopicResult::default()
                .with_name(Some(name.clone()))
                .with_error_code(code)
        })),
        _ => {}
    }
}

/// Add the topics refused within each group to an OffsetFetch v8+ response.
fn add_group_topics(response: &mut ResponseKind, refused: &[(GroupId, Vec<RefusedTopic>)]) {
    let ResponseKind::OffsetFetch(out) = response else {
        return;
    };
    for (group, topics) in refused {
        let Some(answer) = out.groups.iter_mut().find(|g| &g.group_id == group) else {
            continue;
        };
        answer.topics.extend(per_topic(
            topics,
            |i| {
                OffsetFetchResponsePartitions::default()
                    .with_partition_index(i)
                    .with_committed_offset(-1)
                    .with_committed_leader_epoch(-1)
                    .with_error_code(TOPIC_AUTHORIZATION_FAILED)
            },
            |name, parts| {
                OffsetFetchResponseTopics::default()
                    .with_name(name)
                    .with_partitions(parts)
            },
        ));
    }
}

/// Add `refused` config resources, groups or coordinator keys to a response.
fn add_resources(response: &mut ResponseKind, refused: &[RefusedResource]) {
    let message = |r: &RefusedResource| {
        Some(StrBytes::from_string(format!(
            "not authorized (Kafka error {}) for {}",
            r.code, r.name
        )))
    };
    // The three config answers are distinct types with the same four fields.
    macro_rules! config_result {
        ($result:ty, $r:expr) => {
            <$result>::default()
                .with_resource_type($r.resource_type)
                .with_resource_name($r.name.clone())
                .with_error_code($r.code)
                .with_error_message(message($r))
        };
    }
    for r in refused {
        match response {
            ResponseKind::DescribeConfigs(out) => {
                out.results.push(config_result!(DescribeConfigsResult, r))
            }
            ResponseKind::AlterConfigs(out) => out
                .responses
                .push(config_result!(AlterConfigsResourceResponse, r)),
            ResponseKind::IncrementalAlterConfigs(out) => out
                .responses
                .push(config_result!(IncrementalResourceResponse, r)),
            ResponseKind::FindCoordinator(out) => out.coordinators.push(
                Coordinator::default()
                    .with_key(r.name.clone())
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(r.code),
            ),
            ResponseKind::DescribeGroups(out) => out.groups.push(
                DescribedGroup::default()
                    .with_group_id(GroupId(r.name.clone()))
                    .with_error_code(r.code),
            ),
            ResponseKind::OffsetFetch(out) => out.groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(r.name.clone()))
                    .with_error_code(r.code),
            ),
            ResponseKind::DeleteGroups(out) => out.results.push(
                DeletableGroupResult::default()
                    .with_group_id(GroupId(r.name.clone()))
                    .with_error_code(r.code),
            ),
            _ => {}
        }
    }
}
