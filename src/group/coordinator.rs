//! The group coordinator the Kafka handlers call: the [`Groups`] state machine behind one
//! lock, parked JoinGroup/SyncGroup requests as oneshot channels, and `__consumer_offsets`.
//!
//! Writes go through `Partition::append` and `wait_durable` like any produce, so the cluster
//! layer can replicate this topic like any other. Records are appended while the lock is held
//! (so the log order is the order of the state changes), and the offset cache is updated
//! only once a commit's record is durable. At startup [`GroupCoordinator::load`] replays the
//! topic to rebuild the cache and the groups. The timers (sessions, rebalance deadlines,
//! offset expiry) are driven by a task in `server` through [`GroupCoordinator::tick`].
//!
//! In a cluster (`attach_cluster`), `__consumer_offsets` is a replicated topic like any
//! other and a group's coordinator is the node that leads the group's partition of it. The
//! replication layer calls [`GroupCoordinator::partition_leadership`] whenever that changes:
//! a new leader replays the partition into its state, a former one forgets the groups, and
//! requests for groups whose partition this node does not lead get `NOT_COORDINATOR`.
//! Writes are acknowledged once the partition's in-sync replicas have them (acks=all).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

use super::offsets::{CommittedOffset, OffsetDeleteResult};
use super::record::{self, OffsetValue, RecordKey};
use super::sync::SyncRequest;
use super::{
    Effect, GroupConfig, GroupError, GroupState, Groups, JoinResult, Now, Outcome, SyncResult,
    OFFSETS_TOPIC,
};
use crate::broker::{now_ms, Broker, Partition, Topic};
use crate::log::records::{build_batch, KeyValue};
use crate::memory::{Grant, Pool};

/// One partition's offset in an OffsetCommit.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record.
    pub leader_epoch: i32,
    /// The consumer's metadata string.
    pub metadata: String,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// `client.id`.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Protocol metadata (Stable groups only).
    pub metadata: Bytes,
    /// Assignment (Stable groups only).
    pub assignment: Bytes,
}

/// A group as DescribeGroups and ListGroups show it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State name.
    pub state: GroupState,
    /// Protocol type ("" if none).
    pub protocol_type: String,
    /// Chosen protocol (Stable groups only, else "").
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

type Key = (String, String);

/// A key and value (None: a tombstone) to write to the offsets topic.
type RawRecord = (Vec<u8>, Option<Vec<u8>>);

/// OffsetFetch's answer: per topic, per partition, the committed offset if any.
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

#[derive(Debug)]
struct Inner {
    groups: Groups,
    joins: HashMap<Key, oneshot::Sender<JoinResult>>,
    syncs: HashMap<Key, oneshot::Sender<SyncResult>>,
    /// What the groups' members hold (metadata, assignments), drawn from the group pool of
    /// the memory budget; None until [`GroupCoordinator::set_memory_pool`].
    memory: Option<Grant>,
}

impl Inner {
    /// Makes room in the group pool for the state to grow by `extra_bytes`; false when the
    /// pool cannot give it (the request is refused, the state untouched).
    fn reserve(&mut self, extra_bytes: u64) -> bool {
        let wanted = self.groups.memory_bytes().saturating_add(extra_bytes);
        self.memory
            .as_mut()
            .is_none_or(|grant| grant.bytes() >= wanted || grant.try_resize(wanted))
    }

    /// Brings the grant to what the groups hold now (members left, expired or were
    /// replaced: their bytes go back to the pool).
    fn settle(&mut self) {
        let held = self.groups.memory_bytes();
        if let Some(grant) = self.memory.as_mut() {
            grant.try_resize(held);
        }
    }
}

/// The group coordinator of this node.
#[derive(Debug)]
pub struct GroupCoordinator {
    broker: Arc<Broker>,
    inner: Mutex<Inner>,
    /// Poked when a timer may have become due sooner.
    wake: Notify,
    started: Instant,
    offsets_topic: RwLock<Option<Arc<Topic>>>,
    /// Serialises the lazy creation of the offsets topic.
    create_topic: tokio::sync::Mutex<()>,
    /// Cluster mode: the replicated topics (set once at startup).
    cluster: OnceLock<Arc<crate::replication::Replication>>,
    /// Cluster mode: the offsets partitions this node leads and has loaded, with their
    /// leader epoch. Changed only while `inner` is locked, so a write under that lock sees
    /// a settled answer.
    led: Mutex<BTreeMap<i32, i32>>,
}

/// How long a cluster-mode write to `__consumer_offsets` waits for its in-sync replicas.
const REPLICATION_WAIT: Duration = Duration::from_secs(10);

impl GroupCoordinator {
    /// A coordinator with no groups; [`GroupCoordinator::load`] fills it.
    pub fn new(broker: Arc<Broker>) -> GroupCoordinator {
        let config = GroupConfig::from_broker(&broker.config);
        GroupCoordinator {
            broker,
            inner: Mutex::new(Inner {
                groups: Groups::new(config),
                joins: HashMap::new(),
                syncs: HashMap::new(),
                memory: None,
            }),
            wake: Notify::new(),
            started: Instant::now(),
            offsets_topic: RwLock::new(None),
            create_topic: tokio::sync::Mutex::new(()),
            cluster: OnceLock::new(),
            led: Mutex::new(BTreeMap::new()),
        }
    }

    /// Cluster mode: `__consumer_offsets` is replicated and groups live where their
    /// partition's leader is. Called once, before clients are served.
    pub fn attach_cluster(&self, replication: Arc<crate::replication::Replication>) {
        let _ = self.cluster.set(replication);
    }

    fn led(&self) -> MutexGuard<'_, BTreeMap<i32, i32>> {
        self.led.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this node is the group's coordinator (always, on a single node).
    pub fn check_coordinator(&self, group_id: &str) -> Result<(), GroupError> {
        if self.cluster.get().is_none() {
            return Ok(());
        }
        let partition = self.partition_for(group_id);
        if self.led().contains_key(&partition) {
            Ok(())
        } else {
            Err(GroupError::NotCoordinator)
        }
    }

    /// Cluster mode: this node became (`leading`) or stopped being the leader of offsets
    /// partition `index` at `leader_epoch`. The groups of that partition are dropped; a new
    /// leader rebuilds them from its copy of the log, which holds every acknowledged write.
    pub fn partition_leadership(&self, index: i32, leading: bool, leader_epoch: i32) {
        let Some(topic) = self.current_topic() else {
            return;
        };
        let Some(partition) = topic.partitions.get(index as usize).cloned() else {
            return;
        };
        if leading && self.led().get(&index) == Some(&leader_epoch) {
            return;
        }
        if !leading && !self.led().contains_key(&index) {
            return;
        }
        let count = topic.partitions.len() as u32;
        let mut inner = self.lock();
        self.led().remove(&index);
        let unloaded = inner
            .groups
            .unload(|id| record::partition_for(id, count) == index);
        // Parked JoinGroup/SyncGroup calls of those groups end; their clients look for the
        // coordinator again.
        inner
            .joins
            .retain(|(group, _), _| !unloaded.contains(group));
        inner
            .syncs
            .retain(|(group, _), _| !unloaded.contains(group));
        if !leading {
            tracing::info!(
                partition = index,
                groups = unloaded.len(),
                "no longer the coordinator of {OFFSETS_TOPIC} partition; groups unloaded"
            );
            return;
        }
        let started = Instant::now();
        let now = self.now();
        match super::replay::replay_partition(&partition, &mut inner.groups, now, true) {
            Ok(records) => {
                self.led().insert(index, leader_epoch);
                tracing::info!(
                    partition = index,
                    leader_epoch,
                    records,
                    groups = inner.groups.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "coordinating the groups of an {OFFSETS_TOPIC} partition"
                );
            }
            Err(error) => {
                tracing::error!(partition = index, %error, "cannot load the groups of an {OFFSETS_TOPIC} partition; not coordinating them")
            }
        }
        // Unloaded groups give their bytes back; loaded ones hold theirs.
        inner.settle();
        drop(inner);
        self.wake.notify_one();
    }

    /// Counts the groups' metadata and assignments in `pool` from now on: a JoinGroup or
    /// SyncGroup that would overflow it is refused with an error the client retries.
    pub fn set_memory_pool(&self, pool: &Arc<Pool>) {
        let mut inner = self.lock();
        let mut grant = pool.empty_grant();
        let held = inner.groups.memory_bytes();
        if !grant.try_resize(held) {
            tracing::warn!(
                held,
                limit = pool.limit_bytes(),
                "the loaded consumer groups exceed the group pool; joins wait until members leave"
            );
        }
        inner.memory = Some(grant);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The two clocks, read here only.
    pub fn now(&self) -> Now {
        Now {
            mono_ms: self.started.elapsed().as_millis() as i64,
            wall_ms: now_ms(),
        }
    }

    /// The `__consumer_offsets` partition that holds a group (Kafka's rule).
    pub fn partition_for(&self, group_id: &str) -> i32 {
        let partitions = self
            .current_topic()
            .map_or(self.broker.config.offsets_topic_num_partitions, |t| {
                t.partitions.len() as u32
            });
        record::partition_for(group_id, partitions)
    }

    fn current_topic(&self) -> Option<Arc<Topic>> {
        let known = self
            .offsets_topic
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if known.is_some() || self.cluster.get().is_none() {
            return known;
        }
        // Cluster mode: another node may have created it; replication opened it here.
        let topic = self.broker.topic(OFFSETS_TOPIC)?;
        *self
            .offsets_topic
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(topic.clone());
        Some(topic)
    }

    /// The offsets topic, created (compacted) on first use as Kafka does.
    pub async fn offsets_topic(&self) -> Result<Arc<Topic>, GroupError> {
        if let Some(topic) = self.current_topic() {
            return Ok(topic);
        }
        let _creating = self.create_topic.lock().await;
        if let Some(topic) = self.current_topic() {
            return Ok(topic);
        }
        let config = &self.broker.config;
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                config.offsets_topic_segment_bytes.to_string(),
            ),
        ]);
        let partitions = config.offsets_topic_num_partitions;
        let created = match self.cluster.get() {
            Some(replication) => {
                replication
                    .ensure_internal_topic(
                        OFFSETS_TOPIC,
                        partitions,
                        config.offsets_topic_replication_factor,
                        configs,
                    )
                    .await
            }
            // A single node holds one replica of everything.
            None => {
                self.broker
                    .ensure_internal_topic(OFFSETS_TOPIC, partitions, 1, configs)
                    .await
            }
        };
        match created {
            Ok(topic) => {
                tracing::info!(partitions = topic.partitions.len(), "offsets topic ready");
                *self
                    .offsets_topic
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = Some(topic.clone());
                Ok(topic)
            }
            Err(error) => {
                tracing::error!(%error, "cannot create {OFFSETS_TOPIC}");
                Err(GroupError::CoordinatorNotAvailable)
            }
        }
    }

    /// Replays `__consumer_offsets` (if it exists) into the offset cache and the groups.
    /// Called once at startup, before clients are served.
    pub fn load(&self) -> anyhow::Result<()> {
        let Some(topic) = self.broker.topic(OFFSETS_TOPIC) else {
            return Ok(());
        };
        *self
            .offsets_topic
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(topic.clone());
        let now = self.now();
        let started = Instant::now();
        let mut inner = self.lock();
        let mut records = 0u64;
        for partition in &topic.partitions {
            records += super::replay::replay_partition(partition, &mut inner.groups, now, false)?;
        }
        let offsets: usize = inner.groups.iter().map(|g| g.offsets.len()).sum();
        tracing::info!(
            records,
            groups = inner.groups.len(),
            offsets,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded consumer groups from {OFFSETS_TOPIC}"
        );
        Ok(())
    }

    /// JoinGroup; waits (parked) until the join phase completes.
    pub async fn join(&self, req: super::JoinRequest) -> JoinResult {
        let member_id = req.member_id.clone();
        if let Err(error) = self.offsets_topic().await {
            return JoinResult::error(error, &member_id);
        }
        if let Err(error) = self.check_coordinator(&req.group_id) {
            return JoinResult::error(error, &member_id);
        }
        let wait_ms = u64::try_from(req.rebalance_timeout_ms.max(req.session_timeout_ms))
            .unwrap_or(0)
            + 5_000;
        let group_id = req.group_id.clone();
        let receiver = {
            let mut inner = self.lock();
            if !inner.reserve(req.memory_bytes()) {
                return JoinResult::error(GroupError::MemoryPoolFull, &member_id);
            }
            let mut effects = Vec::new();
            let outcome = inner.groups.join(req, self.now(), &mut effects);
            let receiver = match outcome {
                Outcome::Done(result) => Err(result),
                Outcome::Waiting(member) => {
                    let (tx, rx) = oneshot::channel();
                    inner.joins.insert((group_id.clone(), member), tx);
                    Ok(rx)
                }
            };
            self.deliver(&mut inner, effects);
            receiver
        };
        self.wake.notify_one();
        match receiver {
            Err(result) => result,
            Ok(rx) => match tokio::time::timeout(Duration::from_millis(wait_ms), rx).await {
                Ok(Ok(result)) => result,
                // Replaced by a newer JoinGroup of the same member, timed out, or the group
                // moved to another node: rejoin (there, if it moved).
                _ => JoinResult::error(
                    self.check_coordinator(&group_id)
                        .err()
                        .unwrap_or(GroupError::RebalanceInProgress),
                    &member_id,
                ),
            },
        }
    }

    /// SyncGroup; followers wait (parked) for the leader's assignments.
    pub async fn sync(&self, req: SyncRequest, wait_ms: u64) -> SyncResult {
        let group_id = req.group_id.clone();
        self.check_coordinator(&group_id)?;
        let receiver = {
            let mut inner = self.lock();
            let assigned: u64 = req.assignments.iter().map(|(_, a)| a.len() as u64).sum();
            if !inner.reserve(assigned) {
                // SyncGroup has no "retry later" code every client knows: REBALANCE_IN_PROGRESS
                // makes the leader rejoin, and the assignments come again.
                return Err(GroupError::RebalanceInProgress);
            }
            let mut effects = Vec::new();
            let outcome = inner.groups.sync(req, self.now(), &mut effects);
            let receiver = match outcome {
                Outcome::Done(result) => Err(result),
                Outcome::Waiting(member) => {
                    let (tx, rx) = oneshot::channel();
                    inner.syncs.insert((group_id.clone(), member), tx);
                    Ok(rx)
                }
            };
            self.deliver(&mut inner, effects);
            receiver
        };
        self.wake.notify_one();
        match receiver {
            Err(result) => result,
            Ok(rx) => match tokio::time::timeout(Duration::from_millis(wait_ms), rx).await {
                Ok(Ok(result)) => result,
                _ => Err(self
                    .check_coordinator(&group_id)
                    .err()
                    .unwrap_or(GroupError::RebalanceInProgress)),
            },
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.check_coordinator(group_id)?;
        let result =
            self.lock()
                .groups
                .heartbeat(group_id, member_id, instance_id, generation, self.now());
        self.wake.notify_one();
        result
    }

    /// LeaveGroup.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check_coordinator(group_id)?;
        let mut inner = self.lock();
        let mut effects = Vec::new();
        let result = inner
            .groups
            .leave(group_id, members, self.now(), &mut effects);
        self.deliver(&mut inner, effects);
        drop(inner);
        self.wake.notify_one();
        result
    }

    /// OffsetCommit: a request-wide error, or one result per offset in order. Answers once
    /// the offsets are durable.
    pub async fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<OffsetCommit>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let topic = self.offsets_topic().await?;
        self.check_coordinator(group_id)?;
        let max_metadata = self.lock().groups.config.offset_metadata_max_bytes;
        let results: Vec<Result<(), GroupError>> = offsets
            .iter()
            .map(|o| {
                if o.metadata.len() > max_metadata {
                    Err(GroupError::OffsetMetadataTooLarge)
                } else if self.broker.partition(&o.topic, o.partition).is_none() {
                    Err(GroupError::UnknownTopicOrPartition)
                } else {
                    Ok(())
                }
            })
            .collect();
        let accepted: Vec<&OffsetCommit> = offsets
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(o, _)| o)
            .collect();
        let now = self.now();
        let (partition, base) = {
            let mut inner = self.lock();
            inner
                .groups
                .validate_commit(group_id, generation, member_id, instance_id, now)?;
            if accepted.is_empty() {
                return Ok(results);
            }
            let records: Vec<RawRecord> = accepted
                .iter()
                .map(|o| {
                    let key = record::encode_key(&RecordKey::Offset {
                        group: group_id.into(),
                        topic: o.topic.clone(),
                        partition: o.partition,
                    });
                    let value = record::encode_offset(&OffsetValue {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata.clone(),
                        commit_timestamp_ms: now.wall_ms,
                    });
                    (key, Some(value))
                })
                .collect();
            self.write(&topic, group_id, &records)?
        };
        self.wait_durable(&partition, base + accepted.len() as i64)
            .await?;
        let mut inner = self.lock();
        for (i, o) in accepted.iter().enumerate() {
            let record_offset = base + i as i64;
            let committed = CommittedOffset {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata.clone(),
                commit_wall_ms: now.wall_ms,
                record_offset,
            };
            inner.groups.apply_offset(
                group_id,
                &o.topic,
                o.partition,
                Some(committed),
                record_offset,
                now,
            );
        }
        Ok(results)
    }

    /// OffsetFetch: the committed offsets of the named partitions, or of all (None).
    pub fn fetch(&self, group_id: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> FetchedOffsets {
        let inner = self.lock();
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|p| (p, inner.groups.committed(group_id, &topic, p).cloned()))
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    BTreeMap::new();
                if let Some(group) = inner.groups.get(group_id) {
                    for ((topic, partition), offset) in &group.offsets {
                        by_topic
                            .entry(topic.clone())
                            .or_default()
                            .push((*partition, Some(offset.clone())));
                    }
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// ListGroups: every group.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        self.lock()
            .groups
            .iter()
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .collect()
    }

    /// DescribeGroups: one group (an unknown one is described as Dead, as Kafka does).
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let inner = self.lock();
        let Some(group) = inner.groups.get(group_id) else {
            return GroupDescription {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let stable = group.state == GroupState::Stable;
        let protocol = if stable {
            group.protocol.clone().unwrap_or_default()
        } else {
            String::new()
        };
        GroupDescription {
            group_id: group.id.clone(),
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            members: group
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
            protocol,
        }
    }

    /// DeleteGroups: deletes an empty group and its offsets (tombstones in the offsets topic).
    pub async fn delete_group(&self, group_id: &str) -> Result<(), GroupError> {
        let topic = self.offsets_topic().await?;
        self.check_coordinator(group_id)?;
        let (partition, end) = {
            let mut inner = self.lock();
            let mut effects = Vec::new();
            let partitions = inner.groups.delete_group(group_id, &mut effects)?;
            let tombstones: Vec<RawRecord> = partitions
                .into_iter()
                .map(|(topic, partition)| {
                    (
                        record::encode_key(&RecordKey::Offset {
                            group: group_id.into(),
                            topic,
                            partition,
                        }),
                        None,
                    )
                })
                .collect();
            let written = if tombstones.is_empty() {
                None
            } else {
                Some(self.write(&topic, group_id, &tombstones)?)
            };
            self.deliver(&mut inner, effects);
            match written {
                Some((partition, base)) => (partition, base + tombstones.len() as i64),
                None => return Ok(()),
            }
        };
        self.wait_durable(&partition, end).await
    }

    /// OffsetDelete: removes offsets of topics the group does not consume.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<OffsetDeleteResult, GroupError> {
        let topic = self.offsets_topic().await?;
        self.check_coordinator(group_id)?;
        let now = self.now();
        let (results, written) = {
            let mut inner = self.lock();
            let results = inner.groups.check_offset_delete(group_id, partitions)?;
            let doomed: Vec<&(String, i32)> = results
                .iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(k, _)| k)
                .collect();
            if doomed.is_empty() {
                return Ok(results);
            }
            let tombstones: Vec<RawRecord> = doomed
                .iter()
                .map(|(t, p)| {
                    (
                        record::encode_key(&RecordKey::Offset {
                            group: group_id.into(),
                            topic: t.clone(),
                            partition: *p,
                        }),
                        None,
                    )
                })
                .collect();
            let (partition, base) = self.write(&topic, group_id, &tombstones)?;
            for (i, (t, p)) in doomed.iter().enumerate() {
                inner
                    .groups
                    .apply_offset(group_id, t, *p, None, base + i as i64, now);
            }
            (results.clone(), (partition, base + tombstones.len() as i64))
        };
        self.wait_durable(&written.0, written.1).await?;
        Ok(results)
    }

    /// Fires due timers (session expiry, rebalance and sync deadlines, initial delays).
    pub fn tick(&self) {
        let mut inner = self.lock();
        let mut effects = Vec::new();
        inner.groups.tick(self.now(), &mut effects);
        self.deliver(&mut inner, effects);
    }

    /// How long until a timer is due (None: nothing scheduled).
    pub fn next_timer(&self) -> Option<Duration> {
        let next = self.lock().groups.next_deadline_ms()?;
        Some(Duration::from_millis(
            u64::try_from(next - self.now().mono_ms).unwrap_or(0),
        ))
    }

    /// Resolves when a request may have scheduled an earlier timer.
    pub async fn timers_changed(&self) {
        self.wake.notified().await;
    }

    /// Deletes the offsets of groups empty longer than `offsets_retention_minutes`.
    pub async fn expire_offsets(&self) {
        let Some(topic) = self.current_topic() else {
            return;
        };
        let mut waits = Vec::new();
        {
            let mut inner = self.lock();
            let mut effects = Vec::new();
            let expired = inner.groups.expire_offsets(self.now(), &mut effects);
            let mut by_group: BTreeMap<&str, Vec<RawRecord>> = BTreeMap::new();
            for (group, topic_name, partition) in &expired.offsets {
                let key = RecordKey::Offset {
                    group: group.clone(),
                    topic: topic_name.clone(),
                    partition: *partition,
                };
                by_group
                    .entry(group)
                    .or_default()
                    .push((record::encode_key(&key), None));
            }
            for (group, tombstones) in by_group {
                match self.write(&topic, group, &tombstones) {
                    Ok((partition, base)) => {
                        waits.push((partition, base + tombstones.len() as i64))
                    }
                    Err(error) => tracing::error!(group, %error, "cannot write offset tombstones"),
                }
            }
            self.deliver(&mut inner, effects);
        }
        for (partition, end) in waits {
            let _ = self.wait_durable(&partition, end).await;
        }
    }

    /// Appends records for `group_id` to its partition of the offsets topic (under the lock,
    /// so log order is state-change order); returns the partition and the first offset.
    fn write(
        &self,
        topic: &Topic,
        group_id: &str,
        records: &[RawRecord],
    ) -> Result<(Arc<Partition>, i64), GroupError> {
        let index = record::partition_for(group_id, topic.partitions.len() as u32);
        let partition = topic.partitions[index as usize].clone();
        if let Some(replication) = self.cluster.get() {
            // Only the partition's leader appends, and only with enough in-sync replicas
            // (an offset commit is an acks=all write).
            if !self.led().contains_key(&index) {
                return Err(GroupError::NotCoordinator);
            }
            if let Err(code) = replication.check_produce(OFFSETS_TOPIC, index, -1) {
                tracing::debug!(
                    group = group_id,
                    code,
                    "{OFFSETS_TOPIC} not writable here now"
                );
                return Err(if code == crate::kafka::errors::NOT_LEADER_OR_FOLLOWER {
                    GroupError::NotCoordinator
                } else {
                    GroupError::CoordinatorNotAvailable
                });
            }
        }
        let refs: Vec<KeyValue<'_>> = records
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
            .collect();
        let mut batch = build_batch(&refs, now_ms());
        match partition.append(&mut batch, now_ms()) {
            Ok(info) => Ok((partition, info.base_offset)),
            Err(error) => {
                tracing::error!(group = group_id, %error, "cannot write to {OFFSETS_TOPIC}");
                Err(GroupError::Storage)
            }
        }
    }

    async fn wait_durable(&self, partition: &Partition, end: i64) -> Result<(), GroupError> {
        if let Some(replication) = self.cluster.get() {
            return replication
                .wait_replicated(partition, end, REPLICATION_WAIT)
                .await
                .map_err(|code| {
                    tracing::warn!(
                        partition = partition.index,
                        end,
                        code,
                        "{OFFSETS_TOPIC} write not replicated"
                    );
                    if code == crate::kafka::errors::NOT_LEADER_OR_FOLLOWER {
                        GroupError::NotCoordinator
                    } else {
                        GroupError::CoordinatorNotAvailable
                    }
                });
        }
        if !self.broker.config.log_flush_on_ack {
            return Ok(());
        }
        partition.wait_durable(end).await.map_err(|error| {
            tracing::error!(%error, "fsync of {OFFSETS_TOPIC} failed");
            GroupError::Storage
        })
    }

    /// Carries out effects: answers parked requests, writes group metadata.
    fn deliver(&self, inner: &mut Inner, effects: Vec<Effect>) {
        inner.settle();
        for effect in effects {
            match effect {
                Effect::JoinDone {
                    group,
                    member_id,
                    result,
                } => {
                    if let Some(tx) = inner.joins.remove(&(group, member_id)) {
                        let _ = tx.send(result);
                    }
                }
                Effect::SyncDone {
                    group,
                    member_id,
                    result,
                } => {
                    if let Some(tx) = inner.syncs.remove(&(group, member_id)) {
                        let _ = tx.send(result);
                    }
                }
                Effect::PersistGroup(group_id) => self.persist_group(inner, &group_id),
            }
        }
    }

    /// Writes a group's metadata (or its tombstone) and has it fsynced in the background: it
    /// only lets members carry on without a rebalance after a restart.
    fn persist_group(&self, inner: &Inner, group_id: &str) {
        let Some(topic) = self.current_topic() else {
            return;
        };
        let value = inner
            .groups
            .get(group_id)
            .map(|g| record::encode_group(&g.to_record()));
        let key = record::encode_key(&RecordKey::Group {
            group: group_id.to_string(),
        });
        if let Ok((partition, base)) = self.write(&topic, group_id, &[(key, value)]) {
            if self.broker.config.log_flush_on_ack {
                tokio::spawn(async move {
                    if let Err(error) = partition.wait_durable(base + 1).await {
                        tracing::error!(%error, "fsync of group metadata failed");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::JoinRequest;
    use crate::memory::pool::UNIT_BYTES;

    fn config() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 60_000,
            max_size: 100,
            max_groups: 10,
            member_metadata_max_bytes: 64 << 10,
            max_protocols: 4,
            offset_metadata_max_bytes: 16,
            offsets_retention_ms: 10_000,
        }
    }

    fn join_req(member: &str, metadata_bytes: usize) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: String::new(),
            instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 5_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from(vec![7u8; metadata_bytes]))],
            require_known_member_id: false,
            new_member_id: member.into(),
        }
    }

    fn inner(pool: &Arc<Pool>) -> Inner {
        Inner {
            groups: Groups::new(config()),
            joins: HashMap::new(),
            syncs: HashMap::new(),
            memory: Some(pool.empty_grant()),
        }
    }

    /// Joins as the coordinator does: reserve first, then apply and settle.
    fn join(inner: &mut Inner, req: JoinRequest) -> bool {
        if !inner.reserve(req.memory_bytes()) {
            return false;
        }
        let now = Now {
            mono_ms: 0,
            wall_ms: 0,
        };
        let mut effects = Vec::new();
        let _ = inner.groups.join(req, now, &mut effects);
        inner.settle();
        true
    }

    #[test]
    fn group_state_draws_from_its_pool_and_gives_it_back() {
        let pool = Pool::new("group_state", 16 * UNIT_BYTES);
        let mut inner = inner(&pool);
        assert!(join(&mut inner, join_req("m1", 4 << 10)));
        assert!(join(&mut inner, join_req("m2", 4 << 10)));
        let held = inner.groups.memory_bytes();
        assert!(held > 8 << 10);
        assert_eq!(pool.used_bytes(), held.div_ceil(UNIT_BYTES) * UNIT_BYTES);
        // A member whose metadata would overflow the pool is refused; nothing changes.
        assert!(!join(&mut inner, join_req("m3", 10 << 10)));
        assert!(!inner.groups.get("g").unwrap().members.contains_key("m3"));
        assert_eq!(inner.groups.memory_bytes(), held);
        assert_eq!(pool.exhausted_episodes(), 1);
        // Members leaving give their bytes back; then the big member fits.
        let now = Now {
            mono_ms: 0,
            wall_ms: 0,
        };
        let mut effects = Vec::new();
        let leaving = vec![("m1".to_string(), None), ("m2".to_string(), None)];
        inner
            .groups
            .leave("g", &leaving, now, &mut effects)
            .unwrap();
        inner.settle();
        assert_eq!(pool.used_bytes(), 0);
        assert!(join(&mut inner, join_req("m3", 10 << 10)));
        // The coordinator going away (or its grant) leaks nothing.
        drop(inner);
        assert_eq!(pool.used_bytes(), 0);
    }
}
