//! `bramble group list|describe|delete|reset-offsets`, like kafka-consumer-groups.sh.

use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, ListOffsetsRequest,
    MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::client::Client;
use super::topic::Server;
use crate::group::subscription::assigned_partitions;

/// Group subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List every group with its state and protocol type.
    List {
        #[command(flatten)]
        server: Server,
    },
    /// Show a group's members and, per partition, its committed offset, log end and lag.
    Describe {
        /// Group id.
        group: String,
        #[command(flatten)]
        server: Server,
    },
    /// Delete an empty group and its committed offsets.
    Delete {
        /// Group id.
        group: String,
        #[command(flatten)]
        server: Server,
    },
    /// Move an inactive group's committed offsets of one topic (a dry run unless --execute).
    ResetOffsets {
        /// Group id.
        group: String,
        /// The topic whose offsets move.
        #[arg(long)]
        topic: String,
        /// To the first offset still in the log.
        #[arg(long = "to-earliest", group = "target")]
        to_earliest: bool,
        /// To the log end.
        #[arg(long = "to-latest", group = "target")]
        to_latest: bool,
        /// To this offset (kept within the log).
        #[arg(long = "to-offset", group = "target")]
        to_offset: Option<i64>,
        /// By this many records from the committed offset (negative goes back).
        #[arg(long = "shift-by", group = "target", allow_negative_numbers = true)]
        shift_by: Option<i64>,
        /// Commit the new offsets (without it, only show them).
        #[arg(long)]
        execute: bool,
        #[command(flatten)]
        server: Server,
    },
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Run a group subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { server } => {
            let mut client = Client::connect(&server.bootstrap_server).await?;
            let response = client.send(ListGroupsRequest::default(), 4).await?;
            anyhow::ensure!(
                response.error_code == 0,
                "ListGroups failed: error {}",
                response.error_code
            );
            let mut groups = response.groups;
            groups.sort_by(|a, b| a.group_id.0.as_str().cmp(b.group_id.0.as_str()));
            println!("{:<40} {:<22} PROTOCOL-TYPE", "GROUP", "STATE");
            for g in groups {
                println!(
                    "{:<40} {:<22} {}",
                    g.group_id.0.as_str(),
                    g.group_state.as_str(),
                    g.protocol_type.as_str()
                );
            }
            Ok(())
        }
        Command::Describe { group, server } => describe(&server.bootstrap_server, &group).await,
        Command::Delete { group, server } => {
            let mut client = Client::connect(&server.bootstrap_server).await?;
            let response = client
                .send(
                    DeleteGroupsRequest::default().with_groups_names(vec![group_id(&group)]),
                    2,
                )
                .await?;
            for result in response.results {
                match result.error_code {
                    0 => println!("Deleted group {group}."),
                    68 => {
                        anyhow::bail!("group {group} still has members; stop its consumers first")
                    }
                    69 => anyhow::bail!("group {group} does not exist"),
                    code => anyhow::bail!("cannot delete group {group}: error {code}"),
                }
            }
            Ok(())
        }
        Command::ResetOffsets {
            group,
            topic,
            to_earliest,
            to_latest,
            to_offset,
            shift_by,
            execute,
            server,
        } => {
            let target = match (to_earliest, to_latest, to_offset, shift_by) {
                (true, _, _, _) => Target::Earliest,
                (_, true, _, _) => Target::Latest,
                (_, _, Some(offset), _) => Target::Offset(offset),
                (_, _, _, Some(shift)) => Target::Shift(shift),
                _ => anyhow::bail!(
                    "say where to: --to-earliest, --to-latest, --to-offset N or --shift-by N"
                ),
            };
            reset(&server.bootstrap_server, &group, &topic, target, execute).await
        }
    }
}

/// Where reset-offsets moves a partition.
#[derive(Debug, Clone, Copy)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Shift(i64),
}

/// The log start (`timestamp` -2) or end (-1) of each listed partition of a topic.
async fn list_offsets(
    client: &mut Client,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let response = client.send(request, 5).await?;
    let mut out = BTreeMap::new();
    for p in response.topics.into_iter().flat_map(|t| t.partitions) {
        anyhow::ensure!(
            p.error_code == 0,
            "{topic}-{}: error {}",
            p.partition_index,
            p.error_code
        );
        out.insert(p.partition_index, p.offset);
    }
    Ok(out)
}

/// Committed offsets of a group: topic → partition → offset.
async fn committed(
    client: &mut Client,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> anyhow::Result<BTreeMap<String, BTreeMap<i32, i64>>> {
    let topics = topics.map(|list| {
        list.into_iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(&t))
                    .with_partition_indexes(ps)
            })
            .collect()
    });
    let response = client
        .send(
            OffsetFetchRequest::default()
                .with_group_id(group_id(group))
                .with_topics(topics),
            7,
        )
        .await?;
    anyhow::ensure!(
        response.error_code == 0,
        "OffsetFetch failed: error {}",
        response.error_code
    );
    let mut out: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            if p.committed_offset >= 0 {
                out.entry(t.name.0.as_str().to_string())
                    .or_default()
                    .insert(p.partition_index, p.committed_offset);
            }
        }
    }
    Ok(out)
}

async fn describe(address: &str, group: &str) -> anyhow::Result<()> {
    let mut client = Client::connect(address).await?;
    let response = client
        .send(
            DescribeGroupsRequest::default().with_groups(vec![group_id(group)]),
            5,
        )
        .await?;
    let described = response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no answer for {group}"))?;
    anyhow::ensure!(
        described.error_code == 0,
        "DescribeGroups failed: error {}",
        described.error_code
    );
    // (topic, partition) → (member id, host, client id)
    let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    for m in &described.members {
        for (topic, partitions) in assigned_partitions(&m.member_assignment).unwrap_or_default() {
            for p in partitions {
                let owner = (
                    m.member_id.as_str().to_string(),
                    m.client_host.as_str().to_string(),
                    m.client_id.as_str().to_string(),
                );
                owners.insert((topic.clone(), p), owner);
            }
        }
    }
    let offsets = committed(&mut client, group, None).await?;
    let mut rows: BTreeMap<(String, i32), Option<i64>> =
        owners.keys().map(|k| (k.clone(), None)).collect();
    for (topic, partitions) in &offsets {
        for (&p, &o) in partitions {
            rows.insert((topic.clone(), p), Some(o));
        }
    }
    if described.group_state.as_str() == "Dead" && rows.is_empty() {
        anyhow::bail!("group {group} does not exist");
    }
    println!(
        "Group {group} is {} ({} members, protocol {})\n",
        described.group_state.as_str(),
        described.members.len(),
        if described.protocol_data.is_empty() {
            "-"
        } else {
            described.protocol_data.as_str()
        }
    );
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, p) in rows.keys() {
        by_topic.entry(topic.clone()).or_default().push(*p);
    }
    let mut ends: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for (topic, partitions) in by_topic {
        let found = list_offsets(&mut client, &topic, &partitions, -1)
            .await
            .unwrap_or_default();
        ends.insert(topic, found);
    }
    println!(
        "{:<24} {:<24} {:>9} {:>14} {:>14} {:>8}  {:<48} {:<16} CLIENT-ID",
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST"
    );
    for ((topic, p), current) in rows {
        let end = ends.get(&topic).and_then(|e| e.get(&p)).copied();
        let lag = match (current, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => "-".into(),
        };
        let (member, host, client) = owners
            .get(&(topic.clone(), p))
            .cloned()
            .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        println!(
            "{group:<24} {topic:<24} {p:>9} {:>14} {:>14} {lag:>8}  {member:<48} {host:<16} {client}",
            current.map_or("-".into(), |c| c.to_string()),
            end.map_or("-".into(), |e| e.to_string()),
        );
    }
    Ok(())
}

async fn reset(
    address: &str,
    group: &str,
    topic: &str,
    target: Target,
    execute: bool,
) -> anyhow::Result<()> {
    let mut client = Client::connect(address).await?;
    let described = client
        .send(
            DescribeGroupsRequest::default().with_groups(vec![group_id(group)]),
            5,
        )
        .await?;
    if let Some(g) = described.groups.first() {
        let state = g.group_state.as_str();
        anyhow::ensure!(
            state == "Empty" || state == "Dead",
            "offsets can only be reset while the group is inactive, but {group} is {state}: stop its consumers first"
        );
    }
    let metadata = client
        .send(
            MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
            ])),
            9,
        )
        .await?;
    let meta = metadata
        .topics
        .first()
        .ok_or_else(|| anyhow::anyhow!("no metadata for {topic}"))?;
    anyhow::ensure!(
        meta.error_code == 0,
        "topic {topic}: error {}",
        meta.error_code
    );
    let mut partitions: Vec<i32> = meta.partitions.iter().map(|p| p.partition_index).collect();
    partitions.sort_unstable();
    let starts = list_offsets(&mut client, topic, &partitions, -2).await?;
    let ends = list_offsets(&mut client, topic, &partitions, -1).await?;
    let current = committed(
        &mut client,
        group,
        Some(vec![(topic.to_string(), partitions.clone())]),
    )
    .await?;
    let current = current.get(topic).cloned().unwrap_or_default();
    let mut new_offsets = Vec::new();
    println!(
        "{:<24} {:<24} {:>9} NEW-OFFSET",
        "GROUP", "TOPIC", "PARTITION"
    );
    for p in &partitions {
        let (start, end) = (starts[p], ends[p]);
        let wanted = match target {
            Target::Earliest => start,
            Target::Latest => end,
            Target::Offset(o) => o,
            Target::Shift(by) => current.get(p).copied().unwrap_or(start).saturating_add(by),
        };
        let offset = wanted.clamp(start, end);
        println!("{group:<24} {topic:<24} {p:>9} {offset}");
        new_offsets.push((*p, offset));
    }
    if !execute {
        println!("\n(dry run: add --execute to commit these offsets)");
        return Ok(());
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                new_offsets
                    .iter()
                    .map(|&(p, o)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(o)
                            .with_committed_leader_epoch(-1)
                            .with_committed_metadata(Some(StrBytes::default()))
                    })
                    .collect(),
            )]);
    let response = client.send(request, 8).await?;
    for p in response.topics.iter().flat_map(|t| t.partitions.iter()) {
        anyhow::ensure!(
            p.error_code == 0,
            "{topic}-{}: commit failed with error {}",
            p.partition_index,
            p.error_code
        );
    }
    println!("\nCommitted new offsets for group {group}.");
    Ok(())
}
