//! Which ACL each Kafka request needs, checked before the handler runs.
//!
//! Topic lists are split: the topics the principal may not touch are taken out of the
//! request and answered with TOPIC_AUTHORIZATION_FAILED next to the handler's answers for
//! the rest (Produce: Write; Fetch, ListOffsets: Read/Describe; Metadata: Describe, and a
//! full listing shows only described topics; CreateTopics: Create; DeleteTopics: Delete;
//! CreatePartitions: Alter).
//! Group requests need Read on the group (GROUP_AUTHORIZATION_FAILED); replica fetches,
//! ACL and user changes need the cluster (CLUSTER_AUTHORIZATION_FAILED) — except the very
//! first user, which a client on the node itself (loopback) may add.

use std::collections::HashSet;

use kafka_protocol::messages::{
    create_topics_response::CreatableTopicResult, delete_topics_response::DeletableTopicResult,
    fetch_response::FetchableTopicResponse, fetch_response::PartitionData,
    list_offsets_response::ListOffsetsPartitionResponse,
    list_offsets_response::ListOffsetsTopicResponse, metadata_response::MetadataResponseTopic,
    offset_commit_response::OffsetCommitResponsePartition,
    offset_commit_response::OffsetCommitResponseTopic,
    offset_fetch_response::OffsetFetchResponseGroup, produce_response::PartitionProduceResponse,
    produce_response::TopicProduceResponse, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsResponse, ElectLeadersResponse, FetchResponse, HeartbeatResponse,
    JoinGroupResponse, LeaveGroupResponse, OffsetCommitResponse, OffsetFetchResponse, RequestKind,
    ResponseKind, SyncGroupResponse, TopicName,
};

use super::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::kafka::Context;

/// TOPIC_AUTHORIZATION_FAILED.
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
/// GROUP_AUTHORIZATION_FAILED.
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
/// CLUSTER_AUTHORIZATION_FAILED.
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

/// What the check decided.
#[derive(Debug, Default)]
pub enum Decision {
    /// Everything asked for is allowed.
    #[default]
    Allowed,
    /// These topics (with their partitions) were taken out of the request; add them to
    /// the response as refused.
    Topics(Vec<(TopicName, Vec<i32>)>),
    /// A full Metadata listing: drop the topics the principal may not describe.
    FilterMetadata,
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
}

/// Check `request` for the connection's principal, taking refused topics out of it.
pub fn check(ctx: &Context, request: &mut RequestKind) -> Decision {
    let security = &ctx.security;
    // Replica fetches from other nodes come through the peer port, which only members reach
    // (with mutual TLS under `[cluster] tls`): the cluster itself is asking.
    if ctx.inter_broker {
        return Decision::Allowed;
    }
    if security.config.allow_everyone_if_no_acl_found && security.acls.is_empty() {
        return Decision::Allowed;
    }
    let c = Check { ctx };
    let mut refused = Vec::new();
    match request {
        RequestKind::Produce(r) => r.topic_data.retain(|t| {
            let ok = c.topic(Operation::Write, &t.name);
            if !ok {
                refused.push((
                    t.name.clone(),
                    t.partition_data.iter().map(|p| p.index).collect(),
                ));
            }
            ok
        }),
        RequestKind::Fetch(r) => {
            if r.replica_id.0 >= 0 || r.replica_state.replica_id.0 >= 0 {
                if !c.cluster(Operation::ClusterAction) {
                    return refuse_whole(ResponseKind::Fetch(
                        FetchResponse::default().with_error_code(CLUSTER_AUTHORIZATION_FAILED),
                    ));
                }
            } else {
                r.topics.retain(|t| {
                    let ok = c.topic(Operation::Read, &t.topic);
                    if !ok {
                        refused.push((
                            t.topic.clone(),
                            t.partitions.iter().map(|p| p.partition).collect(),
                        ));
                    }
                    ok
                });
            }
        }
        RequestKind::ListOffsets(r) => r.topics.retain(|t| {
            let ok = c.topic(Operation::Describe, &t.name);
            if !ok {
                refused.push((
                    t.name.clone(),
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                ));
            }
            ok
        }),
        RequestKind::Metadata(r) => match &mut r.topics {
            Some(topics) if !topics.is_empty() => topics.retain(|t| {
                let Some(name) = &t.name else { return true };
                let ok = c.topic(Operation::Describe, name);
                if !ok {
                    refused.push((name.clone(), Vec::new()));
                }
                ok
            }),
            _ => return Decision::FilterMetadata,
        },
        RequestKind::CreateTopics(r) => {
            let cluster = c.cluster(Operation::Create);
            r.topics.retain(|t| {
                let ok = cluster || c.topic(Operation::Create, &t.name);
                if !ok {
                    refused.push((t.name.clone(), Vec::new()));
                }
                ok
            })
        }
        RequestKind::DeleteTopics(r) => {
            r.topic_names.retain(|name| {
                let ok = c.topic(Operation::Delete, name);
                if !ok {
                    refused.push((name.clone(), Vec::new()));
                }
                ok
            });
            r.topics.retain(|t| {
                let Some(name) = &t.name else { return true };
                let ok = c.topic(Operation::Delete, name);
                if !ok {
                    refused.push((name.clone(), Vec::new()));
                }
                ok
            });
        }
        RequestKind::CreatePartitions(r) => r.topics.retain(|t| {
            let ok = c.topic(Operation::Alter, &t.name);
            if !ok {
                refused.push((t.name.clone(), Vec::new()));
            }
            ok
        }),
        RequestKind::JoinGroup(r) if !c.group(Operation::Read, &r.group_id) => {
            return refuse_group(ResponseKind::JoinGroup(
                JoinGroupResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED),
            ))
        }
        RequestKind::SyncGroup(r) if !c.group(Operation::Read, &r.group_id) => {
            return refuse_group(ResponseKind::SyncGroup(
                SyncGroupResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED),
            ))
        }
        RequestKind::Heartbeat(r) if !c.group(Operation::Read, &r.group_id) => {
            return refuse_group(ResponseKind::Heartbeat(
                HeartbeatResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED),
            ))
        }
        RequestKind::LeaveGroup(r) if !c.group(Operation::Read, &r.group_id) => {
            return refuse_group(ResponseKind::LeaveGroup(
                LeaveGroupResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED),
            ))
        }
        RequestKind::OffsetCommit(r) => {
            let group_ok = c.group(Operation::Read, &r.group_id);
            let topics = r
                .topics
                .iter()
                .filter(|t| !group_ok || !c.topic(Operation::Read, &t.name))
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(if group_ok {
                                            TOPIC_AUTHORIZATION_FAILED
                                        } else {
                                            GROUP_AUTHORIZATION_FAILED
                                        })
                                })
                                .collect(),
                        )
                })
                .collect::<Vec<_>>();
            if !topics.is_empty() {
                // Kafka commits the allowed part; bramble refuses the whole commit so a
                // group's offsets never move half-way.
                return refuse_whole(ResponseKind::OffsetCommit(
                    OffsetCommitResponse::default().with_topics(
                        r.topics
                            .iter()
                            .map(|t| {
                                let refused_topic = topics.iter().find(|x| x.name == t.name);
                                refused_topic.cloned().unwrap_or_else(|| {
                                    OffsetCommitResponseTopic::default()
                                        .with_name(t.name.clone())
                                        .with_partitions(
                                            t.partitions
                                                .iter()
                                                .map(|p| {
                                                    OffsetCommitResponsePartition::default()
                                                        .with_partition_index(p.partition_index)
                                                        .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                                                })
                                                .collect(),
                                        )
                                })
                            })
                            .collect(),
                    ),
                ));
            }
        }
        RequestKind::OffsetFetch(r) => {
            let mut groups: Vec<_> = r.groups.iter().map(|g| g.group_id.clone()).collect();
            if groups.is_empty() {
                groups.push(r.group_id.clone());
            }
            if groups.iter().any(|g| !c.group(Operation::Describe, g)) {
                return refuse_whole(ResponseKind::OffsetFetch(
                    OffsetFetchResponse::default()
                        .with_error_code(GROUP_AUTHORIZATION_FAILED)
                        .with_groups(
                            groups
                                .into_iter()
                                .map(|g| {
                                    OffsetFetchResponseGroup::default()
                                        .with_group_id(g)
                                        .with_error_code(GROUP_AUTHORIZATION_FAILED)
                                })
                                .collect(),
                        ),
                ));
            }
        }
        RequestKind::DescribeUserScramCredentials(_) if !c.cluster(Operation::Describe) => {
            return refuse_whole(ResponseKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsResponse::default()
                    .with_error_code(CLUSTER_AUTHORIZATION_FAILED),
            ))
        }
        RequestKind::ElectLeaders(_) if !c.cluster(Operation::Alter) => {
            return refuse_whole(ResponseKind::ElectLeaders(
                ElectLeadersResponse::default().with_error_code(CLUSTER_AUTHORIZATION_FAILED),
            ))
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
            return refuse_whole(ResponseKind::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(
                    users
                        .into_iter()
                        .map(|user| {
                            kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                                .with_user(user)
                                .with_error_code(CLUSTER_AUTHORIZATION_FAILED)
                                .with_error_message(Some(kafka_protocol::protocol::StrBytes::from_static_str(
                                    "managing users needs Alter on the cluster (a super user)",
                                )))
                        })
                        .collect(),
                ),
            ));
        }
        _ => {}
    }
    if refused.is_empty() {
        Decision::Allowed
    } else {
        tracing::debug!(principal = %ctx.principal, topics = refused.len(), "topics refused by ACL");
        Decision::Topics(refused)
    }
}

fn refuse_group(response: ResponseKind) -> Decision {
    refuse_whole(response)
}

fn refuse_whole(response: ResponseKind) -> Decision {
    Decision::Refused(Box::new(response))
}

/// Add the refused topics to the handler's response, or filter a full Metadata listing.
pub fn patch(ctx: &Context, decision: &Decision, response: &mut ResponseKind) {
    let refused = match decision {
        Decision::Allowed | Decision::Refused(_) => return,
        Decision::FilterMetadata => {
            if let ResponseKind::Metadata(m) = response {
                let c = Check { ctx };
                m.topics.retain(|t| {
                    t.name
                        .as_ref()
                        .is_none_or(|n| c.topic(Operation::Describe, n))
                });
            }
            return;
        }
        Decision::Topics(refused) => refused,
    };
    let code = TOPIC_AUTHORIZATION_FAILED;
    match response {
        ResponseKind::Produce(r) => r.responses.extend(refused.iter().map(|(name, parts)| {
            TopicProduceResponse::default()
                .with_name(name.clone())
                .with_partition_responses(
                    parts
                        .iter()
                        .map(|&i| {
                            PartitionProduceResponse::default()
                                .with_index(i)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })),
        ResponseKind::Fetch(r) => r.responses.extend(refused.iter().map(|(name, parts)| {
            FetchableTopicResponse::default()
                .with_topic(name.clone())
                .with_partitions(
                    parts
                        .iter()
                        .map(|&i| {
                            PartitionData::default()
                                .with_partition_index(i)
                                .with_error_code(code)
                                .with_high_watermark(-1)
                        })
                        .collect(),
                )
        })),
        ResponseKind::ListOffsets(r) => r.topics.extend(refused.iter().map(|(name, parts)| {
            ListOffsetsTopicResponse::default()
                .with_name(name.clone())
                .with_partitions(
                    parts
                        .iter()
                        .map(|&i| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(i)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })),
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
            kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult::default()
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
