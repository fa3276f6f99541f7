//! Cluster mode for the Kafka side: broker registration, topic assignment, the controller,
//! and partition replication, the way Kafka-on-ZooKeeper did them.
//!
//! - Every node registers the ephemeral `/brokers/ids/<id>` (`{"host":..,"port":..}`).
//! - Any node creating a topic writes `/brokers/topics/<t>` (`{"version":1,"partitions":
//!   {"0":[1,2,3]}}`, replicas round-robin over the live brokers) and each partition's
//!   `/brokers/topics/<t>/partitions/<p>/state` (`{"leader":N,"leader_epoch":E,"isr":[..]}`);
//!   the quorum serialises those writes. Every node polls and watches `/brokers` and opens
//!   the local logs of every topic it finds.
//! - The controller (the quorum leader) elects a new leader from the ISR when a leader's
//!   `/brokers/ids/<id>` disappears, bumping the leader epoch, and drops dead brokers from
//!   every ISR. A partition leader adds a follower back to the ISR once it has caught up to
//!   the high watermark.
//! - Followers fetch from the partition leader's Kafka listener with Fetch requests carrying
//!   their `replica_id`, after truncating to the leader's end offset of their latest epoch
//!   (OffsetForLeaderEpoch). The leader's high watermark is the least log end offset over
//!   the ISR; `acks=all` is answered only once it passes the batch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};

use crate::broker::{now_ms, Broker, Partition, Topic, TopicError};
use crate::cluster::{Cluster, LocalZk};
use crate::coordinator::ErrorCode;
use crate::kafka::errors;
use crate::server::zk::ZkHandle;

/// How often every node re-reads the broker metadata even without a watch event.
const RECONCILE_INTERVAL: Duration = Duration::from_millis(200);
/// How long a follower's fetch waits on the leader for new data.
const FOLLOWER_MAX_WAIT_MS: i32 = 500;
/// Most bytes one follower fetch asks for.
const FOLLOWER_FETCH_BYTES: i32 = 1 << 20;

/// A partition's leader, leader epoch and in-sync replicas (the state znode's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The leader's broker id, -1 when none is alive.
    pub leader: i32,
    /// Bumped at every leader change.
    pub leader_epoch: i32,
    /// Replicas that have everything the high watermark covers.
    pub isr: Vec<i32>,
}

/// A topic's replica assignment (the topic znode's JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Assignment {
    version: u32,
    /// Partition index (as a string, like Kafka) to replica broker ids.
    partitions: BTreeMap<String, Vec<i32>>,
    /// Topic config overrides given at creation.
    #[serde(default)]
    config: BTreeMap<String, String>,
}

/// A registered broker (the `/brokers/ids/<id>` JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Advertised host.
    pub host: String,
    /// Advertised Kafka port.
    pub port: u16,
    /// Every advertised listener as `PROTOCOL://host:port` (Kafka's `endpoints`), so a
    /// client is told the address of the listener kind it came in on.
    #[serde(default)]
    pub endpoints: Vec<String>,
}

impl BrokerInfo {
    /// The address for clients of a `protocol` listener (the first one when none matches).
    pub fn address_for(&self, protocol: crate::config::SecurityProtocol) -> (String, u16) {
        self.endpoints
            .iter()
            .find(|e| crate::config::split_protocol(e).is_ok_and(|(p, _)| p == protocol))
            .and_then(|e| crate::config::split_host_port(e).ok())
            .unwrap_or_else(|| (self.host.clone(), self.port))
    }
}

/// What this node knows of one partition.
#[derive(Debug, Clone)]
struct Known {
    replicas: Vec<i32>,
    state: PartitionState,
    /// The state znode's version (for compare-and-set).
    version: i32,
}

type Key = (String, i32);

/// The Kafka cluster metadata and replication on this node.
pub struct Replication {
    node_id: i32,
    zk: ZkHandle,
    cluster: Arc<Cluster>,
    broker: Arc<Broker>,
    known: Mutex<BTreeMap<Key, Known>>,
    /// Leader side: each follower's log end offset, from its last fetch.
    follower_ends: Mutex<BTreeMap<Key, BTreeMap<i32, i64>>>,
    /// Follower side: the running fetcher of each partition and the epoch it follows.
    fetchers: Mutex<BTreeMap<Key, (i32, tokio::task::JoinHandle<()>)>>,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn topic_path(topic: &str) -> String {
    format!("/brokers/topics/{topic}")
}

fn state_path(topic: &str, partition: i32) -> String {
    format!("/brokers/topics/{topic}/partitions/{partition}/state")
}

impl Replication {
    /// Starts registration, metadata reconciliation, the controller and the fetchers.
    pub fn start(
        broker: Arc<Broker>,
        zk: ZkHandle,
        cluster: Arc<Cluster>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Arc<Replication> {
        let r = Arc::new(Replication {
            node_id: broker.node_id,
            zk,
            cluster,
            broker,
            known: Mutex::new(BTreeMap::new()),
            follower_ends: Mutex::new(BTreeMap::new()),
            fetchers: Mutex::new(BTreeMap::new()),
        });
        let me = r.clone();
        tokio::spawn(async move {
            let mut events = me.zk.watch("/brokers");
            loop {
                me.register().await;
                me.reconcile().await;
                if me.cluster.is_leader() {
                    me.control().await;
                }
                me.expand_isr().await;
                tokio::select! {
                    _ = tokio::time::sleep(RECONCILE_INTERVAL) => {}
                    _ = events.recv() => {}
                    _ = shutdown.changed() => break,
                }
            }
            for (_, (_, task)) in std::mem::take(&mut *me.fetchers.lock().expect("fetchers")) {
                task.abort();
            }
        });
        r
    }

    async fn ensure(&self, path: &str) {
        if self.zk.get(path).is_none() {
            if let Err(e) = self.zk.create(path, b"", false).await {
                if e != ErrorCode::NodeExists {
                    tracing::debug!(path, error = ?e, "cannot create znode yet");
                }
            }
        }
    }

    /// Creates the `/brokers` paths and this node's ephemeral registration if missing.
    async fn register(&self) {
        for path in ["/brokers", "/brokers/ids", "/brokers/topics"] {
            self.ensure(path).await;
        }
        let path = format!("/brokers/ids/{}", self.node_id);
        if self
            .zk
            .get(&path)
            .is_some_and(|(_, stat)| stat.ephemeral_owner != 0)
        {
            return;
        }
        let Some((host, port)) = self.broker.config.advertised().into_iter().next() else {
            return;
        };
        let config = &self.broker.config;
        let advertised = if config.advertised_listeners.is_empty() {
            &config.listeners
        } else {
            &config.advertised_listeners
        };
        let endpoints = advertised
            .iter()
            .filter_map(|entry| {
                let (protocol, _) = crate::config::split_protocol(entry).ok()?;
                let (host, port) = crate::config::split_host_port(entry).ok()?;
                Some(format!("{}://{host}:{port}", protocol.name()))
            })
            .collect();
        let data = serde_json::to_vec(&BrokerInfo {
            host,
            port,
            endpoints,
        })
        .expect("json");
        match self.zk.create(&path, &data, true).await {
            Ok(_) => tracing::info!(node = self.node_id, "broker registered"),
            Err(ErrorCode::NodeExists) => {
                // A previous life's ephemeral still there: replace it with ours.
                let _ = self.zk.delete(&path, -1).await;
            }
            Err(e) => tracing::debug!(error = ?e, "broker registration failed; retrying"),
        }
    }

    /// Live brokers (registered ids), sorted.
    pub fn live_brokers(&self) -> Vec<(i32, BrokerInfo)> {
        let mut out: Vec<(i32, BrokerInfo)> = self
            .zk
            .children("/brokers/ids")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|id| {
                let n: i32 = id.parse().ok()?;
                let (data, _) = self.zk.get(&format!("/brokers/ids/{id}"))?;
                Some((n, serde_json::from_slice(&data).ok()?))
            })
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Creates a topic through the quorum: its assignment and partition states, then the
    /// local logs.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        crate::broker::topic::validate_topic_name(name).map_err(TopicError::InvalidName)?;
        let partitions = if partitions == -1 {
            self.broker.config.num_partitions as i32
        } else {
            partitions
        };
        let rf = if replication_factor == -1 {
            self.broker.config.default_replication_factor as i16
        } else {
            replication_factor
        };
        let live: Vec<i32> = self.live_brokers().into_iter().map(|(id, _)| id).collect();
        if partitions <= 0 {
            return Err(TopicError::InvalidPartitions(format!(
                "partition count must be at least 1, got {partitions}"
            )));
        }
        if rf <= 0 || rf as usize > live.len() {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "replication factor {rf} with {} live brokers",
                live.len()
            )));
        }
        if self.zk.get(&topic_path(name)).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        if validate_only {
            return self
                .broker
                .create_topic(name, partitions, 1, configs, true)
                .await;
        }
        let n = live.len();
        let assignment: BTreeMap<String, Vec<i32>> = (0..partitions as usize)
            .map(|p| {
                (
                    p.to_string(),
                    (0..rf as usize).map(|k| live[(p + k) % n]).collect(),
                )
            })
            .collect();
        let body = Assignment {
            version: 1,
            partitions: assignment.clone(),
            config: configs.clone(),
        };
        match self
            .zk
            .create(
                &topic_path(name),
                &serde_json::to_vec(&body).expect("json"),
                false,
            )
            .await
        {
            Ok(_) => {}
            Err(ErrorCode::NodeExists) => return Err(TopicError::AlreadyExists(name.to_string())),
            Err(e) => {
                return Err(TopicError::Storage(format!(
                    "writing the topic znode: {e:?}"
                )))
            }
        }
        self.ensure(&format!("{}/partitions", topic_path(name)))
            .await;
        for (p, replicas) in &assignment {
            self.ensure(&format!("{}/partitions/{p}", topic_path(name)))
                .await;
            let state = PartitionState {
                leader: replicas[0],
                leader_epoch: 0,
                isr: replicas.clone(),
            };
            if let Err(e) = self
                .zk
                .create(
                    &format!("{}/partitions/{p}/state", topic_path(name)),
                    &serde_json::to_vec(&state).expect("json"),
                    false,
                )
                .await
            {
                if e != ErrorCode::NodeExists {
                    return Err(TopicError::Storage(format!(
                        "writing the partition state: {e:?}"
                    )));
                }
            }
        }
        tracing::info!(
            topic = name,
            partitions,
            replication_factor = rf,
            "topic assigned"
        );
        let topic = self.local_topic(name, partitions, configs).await?;
        self.reconcile().await;
        Ok(topic)
    }

    async fn local_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        match self
            .broker
            .create_topic(name, partitions, 1, configs, false)
            .await
        {
            Ok(t) => {
                for p in &t.partitions {
                    p.set_replicated();
                }
                Ok(t)
            }
            Err(TopicError::AlreadyExists(_)) => self
                .broker
                .topic(name)
                .ok_or_else(|| TopicError::Unknown(name.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Reads every topic and partition state from the tree and acts on changes.
    async fn reconcile(&self) {
        for name in self.zk.children("/brokers/topics").unwrap_or_default() {
            let Some((data, _)) = self.zk.get(&topic_path(&name)) else {
                continue;
            };
            let Ok(assignment) = serde_json::from_slice::<Assignment>(&data) else {
                continue;
            };
            let topic = match self
                .local_topic(
                    &name,
                    assignment.partitions.len() as i32,
                    assignment.config.clone(),
                )
                .await
            {
                Ok(t) => t,
                Err(error) => {
                    tracing::warn!(topic = %name, %error, "cannot open the local logs of a replicated topic");
                    continue;
                }
            };
            for p in &topic.partitions {
                p.set_replicated();
            }
            for (index, replicas) in &assignment.partitions {
                let Ok(index) = index.parse::<i32>() else {
                    continue;
                };
                let Some((data, stat)) = self.zk.get(&state_path(&name, index)) else {
                    continue;
                };
                let Ok(state) = serde_json::from_slice::<PartitionState>(&data) else {
                    continue;
                };
                let key = (name.clone(), index);
                let changed = {
                    let mut known = self.known.lock().expect("known");
                    let entry = Known {
                        replicas: replicas.clone(),
                        state: state.clone(),
                        version: stat.version,
                    };
                    let changed = known.get(&key).is_none_or(|k| k.state != state);
                    known.insert(key.clone(), entry);
                    changed
                };
                if changed {
                    self.apply(&key, replicas, &state);
                }
            }
        }
    }

    fn apply(&self, key: &Key, replicas: &[i32], state: &PartitionState) {
        let Some(partition) = self.broker.partition(&key.0, key.1) else {
            return;
        };
        tracing::info!(topic = %key.0, partition = key.1, leader = state.leader, leader_epoch = state.leader_epoch, isr = ?state.isr, "partition state");
        partition.set_leader_epoch(state.leader_epoch);
        let mut fetchers = self.fetchers.lock().expect("fetchers");
        if state.leader == self.node_id || !replicas.contains(&self.node_id) || state.leader < 0 {
            if let Some((_, task)) = fetchers.remove(key) {
                task.abort();
            }
            if state.leader == self.node_id {
                self.follower_ends.lock().expect("ends").remove(key);
            }
            return;
        }
        if fetchers
            .get(key)
            .is_some_and(|(epoch, _)| *epoch == state.leader_epoch)
        {
            return;
        }
        if let Some((_, task)) = fetchers.remove(key) {
            task.abort();
        }
        let task = tokio::spawn(follow(
            self.node_id,
            self.zk.clone(),
            partition,
            state.leader,
            state.leader_epoch,
        ));
        fetchers.insert(key.clone(), (state.leader_epoch, task));
    }

    /// Writes a partition state with compare-and-set on the version this node read.
    async fn write_state(&self, key: &Key, version: i32, state: &PartitionState) {
        match self
            .zk
            .set(
                &state_path(&key.0, key.1),
                &serde_json::to_vec(state).expect("json"),
                version,
            )
            .await
        {
            Ok(_) => {
                tracing::info!(topic = %key.0, partition = key.1, leader = state.leader, leader_epoch = state.leader_epoch, isr = ?state.isr, "partition state written")
            }
            Err(e) => {
                tracing::debug!(topic = %key.0, partition = key.1, error = ?e, "partition state write lost a race")
            }
        }
    }

    /// The controller: elect leaders from the ISR for partitions whose leader is gone, and
    /// drop dead brokers from every ISR.
    async fn control(&self) {
        let live: BTreeSet<i32> = self.live_brokers().into_iter().map(|(id, _)| id).collect();
        if live.is_empty() {
            return;
        }
        let snapshot: Vec<(Key, Known)> = self
            .known
            .lock()
            .expect("known")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, k) in snapshot {
            let alive_isr: Vec<i32> = k
                .state
                .isr
                .iter()
                .copied()
                .filter(|r| live.contains(r))
                .collect();
            let mut next = k.state.clone();
            if k.state.leader < 0 || !live.contains(&k.state.leader) {
                // Never an out-of-sync replica: with no live ISR member, no leader.
                let Some(leader) = k.replicas.iter().copied().find(|r| alive_isr.contains(r))
                else {
                    if k.state.leader >= 0 {
                        next.leader = -1;
                        next.leader_epoch += 1;
                        self.write_state(&key, k.version, &next).await;
                    }
                    continue;
                };
                next.leader = leader;
                next.leader_epoch += 1;
                next.isr = alive_isr;
            } else if alive_isr.len() != k.state.isr.len() {
                next.isr = alive_isr;
            } else {
                continue;
            }
            self.write_state(&key, k.version, &next).await;
        }
    }

    /// Partition leader: add caught-up live followers back to the ISR.
    async fn expand_isr(&self) {
        let live: BTreeSet<i32> = self.live_brokers().into_iter().map(|(id, _)| id).collect();
        let led: Vec<(Key, Known)> = self
            .known
            .lock()
            .expect("known")
            .iter()
            .filter(|(_, v)| v.state.leader == self.node_id)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, k) in led {
            let Some(partition) = self.broker.partition(&key.0, key.1) else {
                continue;
            };
            let hw = partition.high_watermark();
            let ends = self
                .follower_ends
                .lock()
                .expect("ends")
                .get(&key)
                .cloned()
                .unwrap_or_default();
            let joining: Vec<i32> = ends
                .iter()
                .filter(|(r, end)| {
                    !k.state.isr.contains(r)
                        && live.contains(r)
                        && **end >= hw
                        && k.replicas.contains(r)
                })
                .map(|(r, _)| *r)
                .collect();
            if joining.is_empty() {
                continue;
            }
            let mut next = k.state.clone();
            next.isr.extend(joining);
            next.isr.sort_unstable();
            self.write_state(&key, k.version, &next).await;
        }
    }

    fn state_of(&self, topic: &str, partition: i32) -> Option<Known> {
        self.known
            .lock()
            .expect("known")
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Produce: whether this node leads the partition and, for `acks=all`, whether the ISR
    /// is large enough (`min_insync_replicas`).
    pub fn check_produce(&self, topic: &str, partition: i32, acks: i16) -> Result<(), i16> {
        let Some(k) = self.state_of(topic, partition) else {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        };
        if k.state.leader != self.node_id {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        }
        if acks == -1
            && k.state.isr.len() < usize::from(self.broker.config.min_insync_replicas.max(1))
        {
            return Err(errors::NOT_ENOUGH_REPLICAS);
        }
        Ok(())
    }

    /// Fetch: consumers and followers fetch from the leader only. A follower's fetch offset
    /// is its log end offset: record it and move the high watermark.
    pub fn check_fetch(
        &self,
        topic: &str,
        partition: &Partition,
        replica_id: i32,
        fetch_offset: i64,
    ) -> Result<(), i16> {
        let Some(k) = self.state_of(topic, partition.index) else {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        };
        if k.state.leader != self.node_id {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        }
        if replica_id >= 0 {
            self.follower_ends
                .lock()
                .expect("ends")
                .entry((topic.to_string(), partition.index))
                .or_default()
                .insert(replica_id, fetch_offset);
            self.update_high_watermark(topic, partition);
        }
        Ok(())
    }

    /// Leader: high watermark = least log end offset over the ISR (its own counted once
    /// durable when acknowledging only what is fsynced).
    pub fn update_high_watermark(&self, topic: &str, partition: &Partition) {
        let Some(k) = self.state_of(topic, partition.index) else {
            return;
        };
        if k.state.leader != self.node_id {
            return;
        }
        let mut hw = if self.broker.config.log_flush_on_ack {
            partition.flushed_offset()
        } else {
            partition.log_end_offset()
        };
        let ends = self
            .follower_ends
            .lock()
            .expect("ends")
            .get(&(topic.to_string(), partition.index))
            .cloned()
            .unwrap_or_default();
        for r in &k.state.isr {
            if *r == self.node_id {
                continue;
            }
            match ends.get(r) {
                Some(end) => hw = hw.min(*end),
                None => return,
            }
        }
        partition.advance_high_watermark_to(hw);
    }

    /// Metadata: (leader, leader epoch, replicas, ISR) of a partition as this node knows it.
    pub fn describe(&self, topic: &str, partition: i32) -> Option<(i32, i32, Vec<i32>, Vec<i32>)> {
        self.state_of(topic, partition).map(|k| {
            (
                k.state.leader,
                k.state.leader_epoch,
                k.replicas,
                k.state.isr,
            )
        })
    }

    /// The quorum leader, which is the controller.
    pub fn controller(&self) -> i32 {
        (*self.cluster.leader().borrow()).map_or(-1, |l| l as i32)
    }
}

/// A follower's fetcher for one partition at one leader epoch: truncate, then fetch forever.
async fn follow(node_id: i32, zk: ZkHandle, partition: Arc<Partition>, leader: i32, epoch: i32) {
    let topic = partition.topic.clone();
    let mut truncated = false;
    loop {
        if let Err(error) =
            follow_once(node_id, &zk, &partition, leader, epoch, &mut truncated).await
        {
            tracing::debug!(topic = %topic, partition = partition.index, leader, %error, "follower fetch failed; retrying");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn follow_once(
    node_id: i32,
    zk: &ZkHandle,
    partition: &Partition,
    leader: i32,
    epoch: i32,
    truncated: &mut bool,
) -> anyhow::Result<()> {
    let (data, _) = zk
        .get(&format!("/brokers/ids/{leader}"))
        .ok_or_else(|| anyhow::anyhow!("leader {leader} is not registered"))?;
    let info: BrokerInfo = serde_json::from_slice(&data)?;
    let mut client =
        crate::cli::client::Client::connect(&format!("{}:{}", info.host, info.port)).await?;
    let name = TopicName(StrBytes::from_string(partition.topic.clone()));
    if !*truncated {
        if let Some(latest) = partition.latest_log_epoch() {
            let request = OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(node_id))
                .with_topics(vec![OffsetForLeaderTopic::default()
                    .with_topic(name.clone())
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(partition.index)
                        .with_current_leader_epoch(epoch)
                        .with_leader_epoch(latest)])]);
            let response = client.send(request, 4).await?;
            let answer = response
                .topics
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or_else(|| anyhow::anyhow!("empty OffsetForLeaderEpoch answer"))?;
            anyhow::ensure!(
                answer.error_code == 0,
                "OffsetForLeaderEpoch error {}",
                answer.error_code
            );
            let end = partition.log_end_offset();
            if answer.end_offset >= 0 && answer.end_offset < end {
                tracing::info!(topic = %partition.topic, partition = partition.index, from = end, to = answer.end_offset, latest, "follower truncating to the leader's epoch end");
                partition.truncate_to(answer.end_offset)?;
            }
        }
        *truncated = true;
        tracing::info!(topic = %partition.topic, partition = partition.index, leader, epoch, log_end = partition.log_end_offset(), "following");
    }
    loop {
        let offset = partition.log_end_offset();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(node_id))
            .with_max_wait_ms(FOLLOWER_MAX_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(FOLLOWER_FETCH_BYTES)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name.clone())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition.index)
                    .with_current_leader_epoch(epoch)
                    .with_fetch_offset(offset)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(FOLLOWER_FETCH_BYTES)])]);
        let response = client.send(request, 12).await?;
        let data = response
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| anyhow::anyhow!("empty Fetch answer"))?;
        anyhow::ensure!(data.error_code == 0, "Fetch error {}", data.error_code);
        if let Some(records) = &data.records {
            if !records.is_empty() {
                partition.append_as_follower(records, now_ms())?;
            }
        }
        partition.advance_high_watermark_to(data.high_watermark.min(partition.log_end_offset()));
    }
}
