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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::health::{Health, ReplicationStatus};
use crate::ids::Uuid;
use crate::kafka::errors;
use crate::memory::{Grant, Pool};
use crate::server::zk::ZkHandle;

mod election;
pub use election::ElectionKind;

/// How often every node re-reads the broker metadata even without a watch event.
const RECONCILE_INTERVAL: Duration = Duration::from_millis(200);
/// How long a follower's fetch waits on the leader for new data.
const FOLLOWER_MAX_WAIT_MS: i32 = 500;
/// Most bytes one follower fetch asks for.
const FOLLOWER_FETCH_BYTES: i32 = 1 << 20;
/// How often a produce waiting for its ISR re-checks that this node still leads.
const STAND_DOWN_CHECK: Duration = Duration::from_millis(250);

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
    /// The topic id every node gives the topic (Kafka's base64 form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    topic_id: Option<String>,
}

impl Assignment {
    fn id(&self) -> Option<Uuid> {
        self.topic_id.as_deref().and_then(Uuid::from_base64)
    }
}

/// A registered broker (the `/brokers/ids/<id>` JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Advertised host (of the first listener).
    pub host: String,
    /// Advertised Kafka port (of the first listener).
    pub port: u16,
    /// Every advertised `host:port`, in `broker.listeners` order, so a client is told the
    /// address of the listener (plain or TLS) it came in on.
    #[serde(default)]
    pub endpoints: Vec<(String, u16)>,
}

impl BrokerInfo {
    /// The address a client of listener number `listener` should use.
    pub fn endpoint(&self, listener: usize) -> (String, u16) {
        self.endpoints
            .get(listener)
            .cloned()
            .unwrap_or_else(|| (self.host.clone(), self.port))
    }
}

/// Leader side: what this node, leading a partition since `since` at `epoch`, knows of
/// its followers.
#[derive(Debug, Clone)]
struct Led {
    epoch: i32,
    since: Instant,
    followers: BTreeMap<i32, FollowerEnd>,
    /// Replicas outside the ISR and since when: one rejoins only after fetching since
    /// (a dead follower's last fetch must not bring it back).
    out_since: BTreeMap<i32, Instant>,
}

/// A follower as its leader sees it through its fetches.
#[derive(Debug, Clone, Copy)]
struct FollowerEnd {
    /// Its log end offset: the offset of its last fetch.
    end: i64,
    /// When it last fetched.
    fetched: Instant,
    /// When it last fetched from the leader's log end (fully caught up).
    caught_up: Instant,
    /// The leader's log end when it last fetched: reaching it by the next fetch counts as
    /// caught up as of that earlier fetch (Kafka's rule, so a follower under steady load,
    /// always a little behind, stays in sync).
    leader_end_then: i64,
}

/// A replica that left the ISR stays out at least this long, so a controller and a partition
/// leader that see its liveness differently (a restarted node fetches before the quorum's
/// heartbeats reach it again) change the ISR at most this often.
const ISR_REJOIN_HOLD: Duration = Duration::from_millis(FOLLOWER_MAX_WAIT_MS as u64);

/// A follower that fetched within this time counts as fetching (its long polls return
/// at least every `FOLLOWER_MAX_WAIT_MS`), so it may rejoin the ISR once caught up.
const FETCHING_RECENTLY: Duration = Duration::from_millis(2 * FOLLOWER_MAX_WAIT_MS as u64);

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
    /// The group coordinator: told when this node gains or loses an offsets partition.
    groups: Arc<GroupCoordinator>,
    known: Mutex<BTreeMap<Key, Known>>,
    /// Leader side: each follower's log end offset, from its last fetch.
    follower_ends: Mutex<BTreeMap<Key, Led>>,
    /// Follower side: the running fetcher of each partition and the epoch it follows.
    fetchers: Mutex<BTreeMap<Key, (i32, tokio::task::JoinHandle<()>)>>,
    /// The replication pool of the memory budget: each follower fetch holds its response's
    /// bytes from it until the records are appended.
    pool: Arc<Pool>,
    /// Where the under-replicated and offline counts go, for `/health` and `/metrics`.
    health: Arc<Health>,
    /// ISR shrinks and expansions of partitions this node led, since start.
    isr_shrinks: AtomicU64,
    isr_expands: AtomicU64,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// Where the cluster's id is kept, as Kafka-on-ZooKeeper kept it.
const CLUSTER_ID_PATH: &str = "/cluster/id";

/// The `/config/topics/<t>` JSON: a topic's config overrides, where Kafka-on-ZooKeeper kept
/// them. AlterConfigs on any node writes it and every node applies it to its logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopicConfigNode {
    version: u32,
    config: BTreeMap<String, String>,
}

impl Replication {
    /// A metadata path under `cluster.metadata_chroot` ("" = the root).
    fn p(&self, path: &str) -> String {
        format!("{}{path}", self.cluster.metadata_chroot())
    }

    fn topic_path(&self, topic: &str) -> String {
        self.p(&format!("/brokers/topics/{topic}"))
    }

    fn topic_config_path(&self, topic: &str) -> String {
        self.p(&format!("/config/topics/{topic}"))
    }

    fn state_path(&self, topic: &str, partition: i32) -> String {
        self.p(&format!(
            "/brokers/topics/{topic}/partitions/{partition}/state"
        ))
    }

    /// Starts registration, metadata reconciliation, the controller and the fetchers.
    pub fn start(
        broker: Arc<Broker>,
        groups: Arc<GroupCoordinator>,
        zk: ZkHandle,
        cluster: Arc<Cluster>,
        pool: Arc<Pool>,
        health: Arc<Health>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Arc<Replication> {
        let r = Arc::new(Replication {
            node_id: broker.node_id,
            zk,
            cluster,
            broker,
            groups: groups.clone(),
            known: Mutex::new(BTreeMap::new()),
            follower_ends: Mutex::new(BTreeMap::new()),
            fetchers: Mutex::new(BTreeMap::new()),
            pool,
            health,
            isr_shrinks: AtomicU64::new(0),
            isr_expands: AtomicU64::new(0),
        });
        // Before the first reconcile, which hands the coordinator its offsets partitions.
        groups.attach_cluster(r.clone());
        let me = r.clone();
        tokio::spawn(async move {
            let mut events = me.zk.watch(&me.p("/brokers"));
            let mut config_events = me.zk.watch(&me.p("/config/topics"));
            let rebalance_every =
                Duration::from_secs(me.broker.config.leader_imbalance_check_interval_seconds);
            let mut last_rebalance = Instant::now();
            loop {
                me.register().await;
                me.reconcile().await;
                if me.cluster.is_leader() {
                    me.claim_controller().await;
                    me.control().await;
                    if me.broker.config.auto_leader_rebalance_enable
                        && last_rebalance.elapsed() >= rebalance_every
                    {
                        last_rebalance = Instant::now();
                        me.rebalance_leaders().await;
                    }
                }
                me.maintain_isr().await;
                me.health.inputs.set_replication(me.status());
                tokio::select! {
                    _ = tokio::time::sleep(RECONCILE_INTERVAL) => {}
                    _ = events.recv() => {}
                    _ = config_events.recv() => {}
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

    /// Creates the `/brokers` paths, `/cluster/id` and this node's ephemeral registration
    /// if missing.
    async fn register(&self) {
        let root = self.cluster.metadata_chroot();
        for (i, _) in root.match_indices('/').skip(1) {
            self.ensure(&root[..i]).await;
        }
        if !root.is_empty() {
            self.ensure(root).await;
        }
        for path in [
            "/brokers",
            "/brokers/ids",
            "/brokers/topics",
            "/cluster",
            "/config",
            "/config/topics",
        ] {
            self.ensure(&self.p(path)).await;
        }
        if self.zk.get(&self.p(CLUSTER_ID_PATH)).is_none() {
            // The first node to get here names the cluster with its own id (Kafka's format).
            let body = serde_json::json!({"version": "1", "id": self.broker.cluster_id});
            match self
                .zk
                .create(&self.p(CLUSTER_ID_PATH), body.to_string().as_bytes(), false)
                .await
            {
                Ok(_) | Err(ErrorCode::NodeExists) => {}
                Err(e) => tracing::debug!(error = ?e, "cannot write /cluster/id yet"),
            }
        }
        let path = self.p(&format!("/brokers/ids/{}", self.node_id));
        match self.zk.get(&path).map(|(_, stat)| stat.ephemeral_owner) {
            Some(owner) if owner != 0 && Some(owner) == self.zk.own_session() => return,
            // A previous life's registration, whose session has not expired yet: replace it
            // now, or the controller would see this node go when that session does.
            Some(_) => {
                let _ = self.zk.delete(&path, -1).await;
            }
            None => {}
        }
        let endpoints = self.broker.config.advertised();
        let Some((host, port)) = endpoints.first().cloned() else {
            return;
        };
        let info = BrokerInfo {
            host,
            port,
            endpoints,
        };
        let data = serde_json::to_vec(&info).expect("json");
        match self.zk.create(&path, &data, true).await {
            Ok(_) => tracing::info!(node = self.node_id, "broker registered"),
            Err(ErrorCode::NodeExists) => {
                tracing::debug!(node = self.node_id, "registration raced; retrying")
            }
            Err(e) => tracing::debug!(error = ?e, "broker registration failed; retrying"),
        }
    }

    /// Live brokers (registered ids), sorted.
    pub fn live_brokers(&self) -> Vec<(i32, BrokerInfo)> {
        let mut out: Vec<(i32, BrokerInfo)> = self
            .zk
            .children(&self.p("/brokers/ids"))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|id| {
                let n: i32 = id.parse().ok()?;
                let (data, _) = self.zk.get(&self.p(&format!("/brokers/ids/{id}")))?;
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
        if self.zk.get(&self.topic_path(name)).is_some() {
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
        let id = Uuid::random().map_err(|e| TopicError::Storage(e.to_string()))?;
        let body = Assignment {
            version: 1,
            partitions: assignment.clone(),
            config: configs.clone(),
            topic_id: Some(id.to_base64()),
        };
        match self
            .zk
            .create(
                &self.topic_path(name),
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
        // After the assignment, so a losing concurrent creation never touches the winner's;
        // until it lands, every node reads the same overrides from the assignment.
        self.write_topic_config(name, &configs).await?;
        self.create_states(name, &assignment).await?;
        tracing::info!(
            topic = name,
            partitions,
            replication_factor = rf,
            "topic assigned"
        );
        let topic = self
            .local_topic(name, partitions, configs, Some(id))
            .await?;
        self.reconcile().await;
        Ok(topic)
    }

    /// AlterConfigs in a cluster: validates the overrides, writes them to
    /// `/config/topics/<t>` through the quorum, and applies them here; every other node
    /// applies them when it sees the change.
    pub async fn set_topic_config(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        if self.zk.get(&self.topic_path(name)).is_none() {
            return Err(TopicError::Unknown(name.to_string()));
        }
        self.broker
            .set_topic_config(name, overrides.clone(), true)
            .await?;
        if validate_only {
            return Ok(());
        }
        self.write_topic_config(name, &overrides).await?;
        self.broker.set_topic_config(name, overrides, false).await
    }

    /// Creates or replaces `/config/topics/<t>`.
    async fn write_topic_config(
        &self,
        name: &str,
        config: &BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        let path = self.topic_config_path(name);
        let body = serde_json::to_vec(&TopicConfigNode {
            version: 1,
            config: config.clone(),
        })
        .expect("json");
        let written = match self.zk.create(&path, &body, false).await {
            Err(ErrorCode::NodeExists) => self.zk.set(&path, &body, -1).await.map(|_| ()),
            other => other.map(|_| ()),
        };
        written.map_err(|e| TopicError::Storage(format!("writing {path}: {e:?}")))
    }

    /// A topic's overrides as the cluster has them: `/config/topics/<t>`, or for a topic
    /// written before that znode existed, the ones its assignment was created with.
    fn cluster_topic_config(
        &self,
        name: &str,
        assignment: &Assignment,
    ) -> BTreeMap<String, String> {
        self.zk
            .get(&self.topic_config_path(name))
            .and_then(|(data, _)| serde_json::from_slice::<TopicConfigNode>(&data).ok())
            .map_or_else(|| assignment.config.clone(), |node| node.config)
    }

    /// Writes the first state of each partition in `assignment` (leader: the first replica).
    async fn create_states(
        &self,
        name: &str,
        assignment: &BTreeMap<String, Vec<i32>>,
    ) -> Result<(), TopicError> {
        self.ensure(&format!("{}/partitions", self.topic_path(name)))
            .await;
        for (p, replicas) in assignment {
            self.ensure(&format!("{}/partitions/{p}", self.topic_path(name)))
                .await;
            let state = PartitionState {
                leader: replicas[0],
                leader_epoch: 0,
                isr: replicas.clone(),
            };
            if let Err(e) = self
                .zk
                .create(
                    &self.state_path(name, p.parse().unwrap_or(-1)),
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
        Ok(())
    }

    /// DeleteTopics in a cluster: removes the topic's znodes through the quorum; every node
    /// (this one too) then deletes its local logs when it sees the topic gone.
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, TopicError> {
        let path = self.topic_path(name);
        let Some((data, _)) = self.zk.get(&path) else {
            return Err(TopicError::Unknown(name.to_string()));
        };
        let id = serde_json::from_slice::<Assignment>(&data)
            .ok()
            .and_then(|a| a.id())
            .or_else(|| self.broker.topic(name).map(|t| t.id))
            .unwrap_or(Uuid([0; 16]));
        let partitions = self
            .zk
            .children(&format!("{path}/partitions"))
            .unwrap_or_default();
        for p in &partitions {
            for child in [
                format!("{path}/partitions/{p}/state"),
                format!("{path}/partitions/{p}"),
            ] {
                match self.zk.delete(&child, -1).await {
                    Ok(()) | Err(ErrorCode::NoNode) => {}
                    Err(e) => return Err(TopicError::Storage(format!("deleting {child}: {e:?}"))),
                }
            }
        }
        for doomed in [format!("{path}/partitions"), path.clone()] {
            match self.zk.delete(&doomed, -1).await {
                Ok(()) => {}
                Err(ErrorCode::NoNode) if doomed != path => {}
                Err(ErrorCode::NoNode) => return Err(TopicError::Unknown(name.to_string())),
                Err(e) => return Err(TopicError::Storage(format!("deleting {doomed}: {e:?}"))),
            }
        }
        match self.zk.delete(&self.topic_config_path(name), -1).await {
            Ok(()) | Err(ErrorCode::NoNode) => {}
            Err(e) => {
                tracing::warn!(topic = name, error = ?e, "cannot delete the topic's config znode")
            }
        }
        tracing::info!(topic = name, "topic deleted from the cluster metadata");
        self.reconcile().await;
        Ok(id)
    }

    /// CreatePartitions in a cluster: adds partitions to the assignment (compare-and-set on
    /// the topic znode), replicas round robin over the live brokers with the topic's
    /// replication factor; every node opens the new logs when it sees them.
    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let path = self.topic_path(name);
        let Some((data, stat)) = self.zk.get(&path) else {
            return Err(TopicError::Unknown(name.to_string()));
        };
        let mut assignment: Assignment = serde_json::from_slice(&data)
            .map_err(|e| TopicError::Storage(format!("reading {path}: {e}")))?;
        let current = assignment.partitions.len() as i32;
        if total <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic {name} has {current} partitions; the new count must be larger, got {total}"
            )));
        }
        let rf = assignment.partitions.get("0").map_or(1, Vec::len);
        let live: Vec<i32> = self.live_brokers().into_iter().map(|(id, _)| id).collect();
        if rf > live.len() {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "the topic has replication factor {rf} and {} brokers are alive",
                live.len()
            )));
        }
        if validate_only {
            return Ok(());
        }
        let n = live.len();
        let added: BTreeMap<String, Vec<i32>> = (current as usize..total as usize)
            .map(|p| (p.to_string(), (0..rf).map(|k| live[(p + k) % n]).collect()))
            .collect();
        assignment.partitions.extend(added.clone());
        match self
            .zk
            .set(
                &path,
                &serde_json::to_vec(&assignment).expect("json"),
                stat.version,
            )
            .await
        {
            Ok(_) => {}
            Err(ErrorCode::BadVersion) => {
                return Err(TopicError::InvalidPartitions(format!(
                    "topic {name} changed meanwhile; try again"
                )))
            }
            Err(e) => return Err(TopicError::Storage(format!("writing {path}: {e:?}"))),
        }
        self.create_states(name, &added).await?;
        tracing::info!(topic = name, from = current, to = total, "partitions added");
        self.reconcile().await;
        Ok(())
    }

    /// Creates one of the broker's own topics (`__consumer_offsets`) through the quorum if
    /// nobody has yet, with `replication_factor` capped by the cluster's size; refused while
    /// fewer brokers are alive than that (as Kafka does), so it never ends up with fewer
    /// replicas than it should.
    pub async fn ensure_internal_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u16,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        if let Some(topic) = self.broker.topic(name) {
            return Ok(topic);
        }
        if self.zk.get(&self.topic_path(name)).is_none() {
            let rf = usize::from(replication_factor.max(1)).min(self.cluster.members().len());
            let partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
            match self
                .create_topic(name, partitions, rf as i16, configs, false)
                .await
            {
                Ok(topic) => return Ok(topic),
                Err(TopicError::AlreadyExists(_)) => {}
                Err(error) => return Err(error),
            }
        }
        self.reconcile().await;
        self.broker
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))
    }

    /// Opens (creating or growing) this node's logs of a replicated topic. A local topic of
    /// the same name with another id is an older topic deleted meanwhile: it goes first.
    async fn local_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        id: Option<Uuid>,
    ) -> Result<Arc<Topic>, TopicError> {
        if let (Some(existing), Some(id)) = (self.broker.topic(name), id) {
            if existing.id != id && !name.starts_with("__") {
                tracing::info!(
                    topic = name,
                    "a topic of this name with another id was deleted; replacing its logs"
                );
                self.forget_topic(name);
                self.broker.delete_topic(name).await?;
            }
        }
        let topic = match self
            .broker
            .create_topic_with_id(name, partitions, 1, configs, false, id)
            .await
        {
            Ok(t) => t,
            Err(TopicError::AlreadyExists(_)) => {
                let existing = self
                    .broker
                    .topic(name)
                    .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
                if (existing.partitions.len() as i32) < partitions {
                    match self.broker.create_partitions(name, partitions, false).await {
                        Ok(()) | Err(TopicError::InvalidPartitions(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                self.broker
                    .topic(name)
                    .ok_or_else(|| TopicError::Unknown(name.to_string()))?
            }
            Err(e) => return Err(e),
        };
        for p in &topic.partitions {
            p.set_replicated();
        }
        Ok(topic)
    }

    /// Forgets what this node knows of a topic's partitions and stops their fetchers.
    fn forget_topic(&self, name: &str) {
        self.known
            .lock()
            .expect("known")
            .retain(|(t, _), _| t != name);
        self.follower_ends
            .lock()
            .expect("ends")
            .retain(|(t, _), _| t != name);
        self.fetchers
            .lock()
            .expect("fetchers")
            .retain(|(t, _), (_, task)| {
                if t == name {
                    task.abort();
                }
                t != name
            });
    }

    /// Deletes this node's logs of topics that were replicated here and are gone from the
    /// cluster metadata (DeleteTopics on any node).
    async fn drop_deleted(&self, in_tree: &BTreeSet<String>) {
        let gone: BTreeSet<String> = {
            let known = self.known.lock().expect("known");
            known
                .keys()
                .map(|(t, _)| t.clone())
                .filter(|t| !in_tree.contains(t))
                .collect()
        };
        for name in gone {
            self.forget_topic(&name);
            match self.broker.delete_topic(&name).await {
                Ok(_) => {
                    tracing::info!(topic = %name, "deleted the local logs of a topic deleted in the cluster")
                }
                Err(TopicError::Unknown(_)) => {}
                Err(error) => {
                    tracing::warn!(topic = %name, %error, "cannot delete the local logs of a deleted topic")
                }
            }
        }
    }

    /// Reads every topic and partition state from the tree and acts on changes.
    async fn reconcile(&self) {
        let Some(names) = self.zk.children(&self.p("/brokers/topics")) else {
            return;
        };
        self.drop_deleted(&names.iter().cloned().collect()).await;
        for name in names {
            let Some((data, _)) = self.zk.get(&self.topic_path(&name)) else {
                continue;
            };
            let Ok(assignment) = serde_json::from_slice::<Assignment>(&data) else {
                continue;
            };
            let config = self.cluster_topic_config(&name, &assignment);
            let topic = match self
                .local_topic(
                    &name,
                    assignment.partitions.len() as i32,
                    config.clone(),
                    assignment.id(),
                )
                .await
            {
                Ok(t) => t,
                Err(error) => {
                    tracing::warn!(topic = %name, %error, "cannot open the local logs of a replicated topic");
                    continue;
                }
            };
            if topic.config.overrides != config {
                match self.broker.set_topic_config(&name, config, false).await {
                    Ok(()) => tracing::info!(topic = %name, "topic config changed in the cluster"),
                    Err(error) => {
                        tracing::warn!(topic = %name, %error, "cannot apply the cluster's topic config")
                    }
                }
            }
            let Some(topic) = self.broker.topic(&name) else {
                continue;
            };
            for p in &topic.partitions {
                p.set_replicated();
            }
            for (index, replicas) in &assignment.partitions {
                let Ok(index) = index.parse::<i32>() else {
                    continue;
                };
                let Some((data, stat)) = self.zk.get(&self.state_path(&name, index)) else {
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
                    if let Some(before) = known.get(&key).filter(|_| state.leader == self.node_id) {
                        let counter = match state.isr.len().cmp(&before.state.isr.len()) {
                            std::cmp::Ordering::Less => Some(&self.isr_shrinks),
                            std::cmp::Ordering::Greater => Some(&self.isr_expands),
                            std::cmp::Ordering::Equal => None,
                        };
                        if let Some(counter) = counter {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    }
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
        let leading = state.leader == self.node_id;
        let offsets = key.0 == OFFSETS_TOPIC;
        // The coordinator lets go of its groups before a fetcher may write to the log, and
        // loads them only once the fetcher of the old epoch is stopped.
        if offsets && !leading {
            self.groups
                .partition_leadership(key.1, false, state.leader_epoch);
        }
        self.apply_fetcher(key, replicas, state, partition);
        if offsets && leading {
            // Loading reads the partition from disk: keep the runtime's other tasks going.
            tokio::task::block_in_place(|| {
                self.groups
                    .partition_leadership(key.1, true, state.leader_epoch)
            });
        }
    }

    /// Starts, restarts or stops this node's fetcher of a partition for its new state.
    fn apply_fetcher(
        &self,
        key: &Key,
        replicas: &[i32],
        state: &PartitionState,
        partition: Arc<Partition>,
    ) {
        let mut fetchers = self.fetchers.lock().expect("fetchers");
        if state.leader == self.node_id || !replicas.contains(&self.node_id) || state.leader < 0 {
            if let Some((_, task)) = fetchers.remove(key) {
                task.abort();
            }
            let mut ends = self.follower_ends.lock().expect("ends");
            if state.leader == self.node_id {
                // A new leadership starts with no follower known (the ISR change of a
                // leader that stays keeps what it knows).
                if ends.get(key).is_none_or(|l| l.epoch != state.leader_epoch) {
                    ends.insert(
                        key.clone(),
                        Led {
                            epoch: state.leader_epoch,
                            since: Instant::now(),
                            followers: BTreeMap::new(),
                            out_since: BTreeMap::new(),
                        },
                    );
                }
                if let Some(led) = ends.get_mut(key) {
                    let now = Instant::now();
                    for r in replicas {
                        if state.isr.contains(r) {
                            led.out_since.remove(r);
                        } else {
                            led.out_since.entry(*r).or_insert(now);
                        }
                    }
                }
                drop(ends);
                // Waiting acks=all writes re-check against the new ISR.
                if let Some(partition) = self.broker.partition(&key.0, key.1) {
                    self.update_high_watermark(&key.0, &partition);
                    partition.wake_waiters();
                }
            } else {
                ends.remove(key);
            }
            return;
        }
        self.follower_ends.lock().expect("ends").remove(key);
        // acks=all writes waiting here learn that this node no longer leads.
        partition.wake_waiters();
        if fetchers
            .get(key)
            .is_some_and(|(epoch, _)| *epoch == state.leader_epoch)
        {
            return;
        }
        if let Some((_, task)) = fetchers.remove(key) {
            task.abort();
        }
        let fetch = FollowerFetch {
            pool: self.pool.clone(),
            floor_bytes: u64::from(self.broker.config.message_max_bytes),
        };
        let task = tokio::spawn(follow(Follower {
            node_id: self.node_id,
            zk: self.zk.clone(),
            cluster: self.cluster.clone(),
            partition,
            leader: state.leader,
            epoch: state.leader_epoch,
            fetch,
        }));
        fetchers.insert(key.clone(), (state.leader_epoch, task));
    }

    /// The quorum leader is the controller: it shows so in the ephemeral `/controller`
    /// (`{"version":1,"brokerid":N,"timestamp":"<ms>"}`, Kafka's format) and bumps the
    /// persistent `/controller_epoch` each time the controller changes.
    async fn claim_controller(&self) {
        if let Some((data, stat)) = self.zk.get(&self.p("/controller")) {
            let holder = serde_json::from_slice::<serde_json::Value>(&data)
                .ok()
                .and_then(|v| v.get("brokerid").and_then(serde_json::Value::as_i64));
            if holder == Some(i64::from(self.node_id)) && stat.ephemeral_owner != 0 {
                return;
            }
            // A former controller's registration that has not expired yet.
            if let Err(e) = self.zk.delete(&self.p("/controller"), stat.version).await {
                tracing::debug!(error = ?e, "cannot remove the former /controller yet");
                return;
            }
        }
        let epoch = match self.zk.get(&self.p("/controller_epoch")) {
            Some((data, stat)) => {
                let next = std::str::from_utf8(&data)
                    .ok()
                    .and_then(|t| t.trim().parse::<i64>().ok())
                    .unwrap_or(0)
                    + 1;
                match self
                    .zk
                    .set(
                        &self.p("/controller_epoch"),
                        next.to_string().as_bytes(),
                        stat.version,
                    )
                    .await
                {
                    Ok(_) => next,
                    Err(e) => {
                        tracing::debug!(error = ?e, "cannot bump /controller_epoch yet");
                        return;
                    }
                }
            }
            None => match self
                .zk
                .create(&self.p("/controller_epoch"), b"1", false)
                .await
            {
                Ok(_) => 1,
                Err(e) => {
                    tracing::debug!(error = ?e, "cannot create /controller_epoch yet");
                    return;
                }
            },
        };
        let body = serde_json::json!({
            "version": 1,
            "brokerid": self.node_id,
            "timestamp": now_ms().to_string(),
        });
        match self
            .zk
            .create(&self.p("/controller"), body.to_string().as_bytes(), true)
            .await
        {
            Ok(_) => tracing::info!(
                node = self.node_id,
                controller_epoch = epoch,
                "controller registered"
            ),
            Err(e) => tracing::debug!(error = ?e, "cannot register as controller yet"),
        }
    }

    /// Writes a partition state with compare-and-set on the version this node read.
    async fn write_state(&self, key: &Key, version: i32, state: &PartitionState) {
        match self
            .zk
            .set(
                &self.state_path(&key.0, key.1),
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
    ///
    /// A broker is live while it is registered and, seen from here, answers the quorum's
    /// heartbeats: a killed node is noticed within a few heartbeats, not a session timeout.
    async fn control(&self) {
        let live = self.reachable_brokers();
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

    /// Registered brokers, less those the quorum leader's heartbeats do not reach (only the
    /// quorum leader knows those; elsewhere it is every registered broker).
    fn reachable_brokers(&self) -> BTreeSet<i32> {
        let unreachable = self.cluster.unreachable_peers();
        self.live_brokers()
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !u64::try_from(*id).is_ok_and(|id| unreachable.contains(&id)))
            .collect()
    }

    /// Partition leader: drop followers that have not caught up with the log end for
    /// `replica_lag_time_max_ms` from the ISR, and add live followers that fetch and have
    /// reached the high watermark back to it.
    async fn maintain_isr(&self) {
        let lag_max = Duration::from_millis(self.broker.config.replica_lag_time_max_ms);
        // The controller's view of who is live, where this node is the controller: a
        // restarted follower fetches again before the quorum's heartbeats reach it, and
        // adding it back then would only have the controller drop it again.
        let live = self.reachable_brokers();
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
            let Some(led) = self.follower_ends.lock().expect("ends").get(&key).cloned() else {
                continue;
            };
            let (lagging, joining) =
                isr_changes(self.node_id, &k, &led, &live, hw, lag_max, Instant::now());
            if joining.is_empty() && lagging.is_empty() {
                continue;
            }
            if !lagging.is_empty() {
                tracing::warn!(topic = %key.0, partition = key.1, lagging = ?lagging, lag_max_ms = self.broker.config.replica_lag_time_max_ms, "followers out of sync: leaving the ISR");
            }
            let mut next = k.state.clone();
            next.isr.retain(|r| !lagging.contains(r));
            next.isr.extend(joining);
            next.isr.sort_unstable();
            self.write_state(&key, k.version, &next).await;
        }
    }

    /// What `/health` and `/metrics` show: partitions this node leads with fewer in-sync
    /// replicas than replicas (Kafka's under-replicated count, kept by the leader), and
    /// partitions with a replica here and no leader at all.
    fn status(&self) -> ReplicationStatus {
        let known = self.known.lock().expect("known");
        let count = |pred: &dyn Fn(&Known) -> bool| {
            u32::try_from(known.values().filter(|k| pred(k)).count()).unwrap_or(u32::MAX)
        };
        ReplicationStatus {
            under_replicated: count(&|k| {
                k.state.leader == self.node_id && k.state.isr.len() < k.replicas.len()
            }),
            offline: count(&|k| k.state.leader < 0 && k.replicas.contains(&self.node_id)),
            isr_shrinks: self.isr_shrinks.load(Ordering::Relaxed),
            isr_expands: self.isr_expands.load(Ordering::Relaxed),
        }
    }

    /// Leader: waits until the in-sync replicas have everything below `end` (acks=all).
    /// The error is the Kafka code: not the leader any more, too few in-sync replicas, a
    /// timeout, or a storage error.
    pub async fn wait_replicated(
        &self,
        partition: &Partition,
        end: i64,
        timeout: Duration,
    ) -> Result<(), i16> {
        let deadline = tokio::time::Instant::now() + timeout;
        // The leadership the write was appended under: once it changes, the write may be
        // truncated by the next leader, so it is never acknowledged.
        let epoch = self
            .state_of(&partition.topic, partition.index)
            .map(|k| k.state.leader_epoch);
        if self.broker.config.log_flush_on_ack {
            match tokio::time::timeout_at(deadline, partition.wait_durable(end)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(errors::KAFKA_STORAGE_ERROR),
                Err(_) => return Err(errors::REQUEST_TIMED_OUT),
            }
        }
        let mut arrivals = self.broker.data_arrived();
        loop {
            arrivals.borrow_and_update();
            let same_leadership = self
                .state_of(&partition.topic, partition.index)
                .is_some_and(|k| {
                    k.state.leader == self.node_id && Some(k.state.leader_epoch) == epoch
                });
            if !same_leadership {
                return Err(errors::NOT_LEADER_OR_FOLLOWER);
            }
            self.update_high_watermark(&partition.topic, partition);
            if partition.high_watermark() >= end {
                // Kafka's rule: the ISR that took it may have shrunk below the minimum
                // meanwhile; the client learns that its write has fewer copies than asked.
                return match self.check_produce(&partition.topic, partition.index, -1) {
                    Err(errors::NOT_ENOUGH_REPLICAS) => {
                        Err(errors::NOT_ENOUGH_REPLICAS_AFTER_APPEND)
                    }
                    _ => Ok(()),
                };
            }
            self.check_produce(&partition.topic, partition.index, -1)?;
            // Woken by new data, and at least every STAND_DOWN_CHECK: a node cut off from
            // the quorum stands down while its followers are silent, and its waiting
            // producers must hear NOT_LEADER_OR_FOLLOWER then, not a timeout much later.
            let wake = deadline.min(tokio::time::Instant::now() + STAND_DOWN_CHECK);
            if tokio::time::timeout_at(wake, arrivals.changed())
                .await
                .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Err(errors::REQUEST_TIMED_OUT);
            }
        }
    }

    /// Whether this node acts as the partition's leader: the tree says so and this node has
    /// not stood down for want of a quorum leader
    /// ([`crate::cluster::Cluster::stood_down`]), which is when
    /// the majority moves the leadership elsewhere.
    fn leads(&self, k: &Known) -> bool {
        k.state.leader == self.node_id && !self.cluster.stood_down()
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
        if !self.leads(&k) {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        }
        if acks == -1 && k.state.isr.len() < self.min_insync(topic, k.replicas.len()) {
            return Err(errors::NOT_ENOUGH_REPLICAS);
        }
        Ok(())
    }

    /// Requests only the partition leader answers (ListOffsets from consumers).
    pub fn check_leader(&self, topic: &str, partition: i32) -> Result<(), i16> {
        match self.state_of(topic, partition) {
            Some(k) if self.leads(&k) => Ok(()),
            _ => Err(errors::NOT_LEADER_OR_FOLLOWER),
        }
    }

    /// The topic's `min.insync.replicas` override, else the broker's for its replica count.
    fn min_insync(&self, topic: &str, replicas: usize) -> usize {
        let set = self
            .broker
            .topic(topic)
            .and_then(|t| t.config.overrides.get("min.insync.replicas").cloned())
            .and_then(|v| v.parse::<usize>().ok());
        set.unwrap_or_else(|| usize::from(self.broker.config.min_insync_for(replicas, true)))
            .max(1)
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
        if !self.leads(&k) {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        }
        if replica_id >= 0 {
            let now = Instant::now();
            let leader_end = partition.log_end_offset();
            let mut ends = self.follower_ends.lock().expect("ends");
            let led = ends
                .entry((topic.to_string(), partition.index))
                .or_insert_with(|| Led {
                    epoch: k.state.leader_epoch,
                    since: now,
                    followers: BTreeMap::new(),
                    out_since: BTreeMap::new(),
                });
            let entry = led.followers.entry(replica_id).or_insert(FollowerEnd {
                end: fetch_offset,
                fetched: now,
                caught_up: led.since,
                leader_end_then: i64::MAX,
            });
            if fetch_offset >= leader_end {
                entry.caught_up = now;
            } else if fetch_offset >= entry.leader_end_then {
                entry.caught_up = entry.caught_up.max(entry.fetched);
            }
            entry.end = fetch_offset;
            entry.fetched = now;
            entry.leader_end_then = leader_end;
            drop(ends);
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
        {
            let ends = self.follower_ends.lock().expect("ends");
            let followers = ends.get(&(topic.to_string(), partition.index));
            for r in &k.state.isr {
                if *r == self.node_id {
                    continue;
                }
                match followers.and_then(|l| l.followers.get(r)) {
                    Some(f) => hw = hw.min(f.end),
                    None => return,
                }
            }
        }
        partition.advance_high_watermark_to(hw);
    }

    /// Metadata: (leader, leader epoch, replicas, ISR) of a partition as this node knows it;
    /// no leader (-1) where this node leads in its tree but has stood down, so clients ask
    /// another node.
    pub fn describe(&self, topic: &str, partition: i32) -> Option<(i32, i32, Vec<i32>, Vec<i32>)> {
        self.state_of(topic, partition).map(|k| {
            (
                if k.state.leader == self.node_id && !self.leads(&k) {
                    -1
                } else {
                    k.state.leader
                },
                k.state.leader_epoch,
                k.replicas,
                k.state.isr,
            )
        })
    }

    /// The cluster id every node answers in Metadata: `/cluster/id`, written by the first
    /// node to register. `None` until this node has seen it: answering its own id meanwhile
    /// would tell a client connected to two nodes that they are two clusters.
    pub fn cluster_id(&self) -> Option<String> {
        self.zk.get(&self.p(CLUSTER_ID_PATH)).and_then(|(data, _)| {
            let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
            v.get("id")?.as_str().map(str::to_string)
        })
    }

    /// The quorum leader, which is the controller.
    pub fn controller(&self) -> i32 {
        (*self.cluster.leader().borrow()).map_or(-1, |l| l as i32)
    }
}

/// The partition leader's ISR decisions, at `now`: followers in the ISR that have not caught
/// up with the log end for more than `lag_max` (or never fetched in that time since this
/// leadership began) leave; live replicas outside it that fetch and have reached the high
/// watermark `hw` join. Returns (leaving, joining).
fn isr_changes(
    me: i32,
    k: &Known,
    led: &Led,
    live: &BTreeSet<i32>,
    hw: i64,
    lag_max: Duration,
    now: Instant,
) -> (Vec<i32>, Vec<i32>) {
    let leaving = k
        .state
        .isr
        .iter()
        .copied()
        .filter(|r| *r != me)
        .filter(|r| {
            let caught_up = led.followers.get(r).map_or(led.since, |f| f.caught_up);
            now.saturating_duration_since(caught_up) > lag_max
        })
        .collect();
    let joining = led
        .followers
        .iter()
        .filter(|(r, f)| {
            !k.state.isr.contains(r)
                && live.contains(r)
                && f.end >= hw
                && now.saturating_duration_since(f.fetched) < FETCHING_RECENTLY
                && led.out_since.get(r).is_none_or(|out| {
                    f.fetched > *out && now.saturating_duration_since(*out) >= ISR_REJOIN_HOLD
                })
                && k.replicas.contains(r)
        })
        .map(|(r, _)| *r)
        .collect();
    (leaving, joining)
}

/// How a follower sizes its fetches: from the replication pool, at least one batch.
struct FollowerFetch {
    pool: Arc<Pool>,
    /// The largest batch (`broker.message_max_bytes`): a fetch always has room for one.
    floor_bytes: u64,
}

impl FollowerFetch {
    /// Bytes for the next fetch's response, held until its records are appended: twice
    /// the response (the frame read, then the records decoded from it), as much of
    /// [`FOLLOWER_FETCH_BYTES`] as the pool has, down to one batch, waiting if not even that.
    async fn grant(&self) -> (Grant, i32) {
        let grant = self
            .pool
            .acquire_up_to(2 * FOLLOWER_FETCH_BYTES as u64, 2 * self.floor_bytes)
            .await;
        let max_bytes = i32::try_from(grant.bytes() / 2)
            .unwrap_or(i32::MAX)
            .clamp(1, FOLLOWER_FETCH_BYTES);
        (grant, max_bytes)
    }
}

/// What a follower's fetcher for one partition at one leader epoch works with.
struct Follower {
    node_id: i32,
    zk: ZkHandle,
    cluster: Arc<Cluster>,
    partition: Arc<Partition>,
    leader: i32,
    epoch: i32,
    fetch: FollowerFetch,
}

/// A follower's fetcher for one partition at one leader epoch: truncate, then fetch forever.
async fn follow(follower: Follower) {
    let mut truncated = false;
    loop {
        if let Err(error) = follow_once(&follower, &mut truncated).await {
            tracing::debug!(
                topic = %follower.partition.topic,
                partition = follower.partition.index,
                leader = follower.leader,
                %error,
                "follower fetch failed; retrying"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn follow_once(follower: &Follower, truncated: &mut bool) -> anyhow::Result<()> {
    let Follower {
        node_id,
        zk,
        cluster,
        partition,
        leader,
        epoch,
        fetch,
    } = follower;
    let (node_id, leader, epoch) = (*node_id, *leader, *epoch);
    anyhow::ensure!(
        zk.get(&format!(
            "{}/brokers/ids/{leader}",
            cluster.metadata_chroot()
        ))
        .is_some(),
        "leader {leader} is not registered"
    );
    // Replica fetches go to the leader's peer port (`BRKF`), mutual TLS with `[cluster] tls`,
    // not through its client listeners and their security.
    let stream = cluster.open_brkf(leader as u64).await?;
    let mut client = crate::cli::client::Client::over(stream).await?;
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
        let (grant, max_bytes) = fetch.grant().await;
        let offset = partition.log_end_offset();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(node_id))
            .with_max_wait_ms(FOLLOWER_MAX_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name.clone())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition.index)
                    .with_current_leader_epoch(epoch)
                    .with_fetch_offset(offset)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(max_bytes)])]);
        // A fetch answers within its max wait: one silent for longer than that plus an RPC
        // timeout is on a connection the network lost (after a partition heals, TCP's
        // backed-off retransmissions can take tens of seconds): open a new one.
        let response = tokio::time::timeout(
            Duration::from_millis(FOLLOWER_MAX_WAIT_MS as u64) + cluster.rpc_timeout(),
            client.send(request, 12),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no Fetch answer from leader {leader}"))??;
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
        drop(grant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::pool::UNIT_BYTES;

    fn known(isr: &[i32]) -> Known {
        Known {
            replicas: vec![1, 2, 3],
            state: PartitionState {
                leader: 1,
                leader_epoch: 4,
                isr: isr.to_vec(),
            },
            version: 0,
        }
    }

    fn follower(end: i64, fetched: Instant, caught_up: Instant) -> FollowerEnd {
        FollowerEnd {
            end,
            fetched,
            caught_up,
            leader_end_then: end,
        }
    }

    const LAG: Duration = Duration::from_secs(30);

    #[test]
    fn a_follower_behind_for_longer_than_the_lag_limit_leaves_the_isr() {
        let start = Instant::now();
        let now = start + Duration::from_secs(40);
        let led = Led {
            epoch: 4,
            since: start,
            followers: BTreeMap::from([
                // Fetching all along but stuck behind since the start.
                (2, follower(10, now, start)),
                // Caught up a moment ago.
                (3, follower(100, now, now - Duration::from_secs(1))),
            ]),
            out_since: BTreeMap::new(),
        };
        let live = BTreeSet::from([1, 2, 3]);
        let (leaving, joining) = isr_changes(1, &known(&[1, 2, 3]), &led, &live, 100, LAG, now);
        assert_eq!(leaving, vec![2]);
        assert!(joining.is_empty());
    }

    #[test]
    fn a_follower_never_heard_from_leaves_once_the_leadership_is_older_than_the_limit() {
        let start = Instant::now();
        let led = Led {
            epoch: 4,
            since: start,
            followers: BTreeMap::new(),
            out_since: BTreeMap::new(),
        };
        let live = BTreeSet::from([1, 2, 3]);
        let k = known(&[1, 2, 3]);
        let early = isr_changes(1, &k, &led, &live, 0, LAG, start + Duration::from_secs(5));
        assert!(early.0.is_empty(), "a new leader gives its followers time");
        let late = isr_changes(1, &k, &led, &live, 0, LAG, start + Duration::from_secs(31));
        assert_eq!(late.0, vec![2, 3]);
    }

    #[test]
    fn a_fetching_follower_at_the_high_watermark_rejoins_but_a_silent_one_does_not() {
        let start = Instant::now();
        let now = start + Duration::from_secs(60);
        let led = Led {
            epoch: 4,
            since: start,
            followers: BTreeMap::from([
                (2, follower(100, now, now)),
                // Its last fetch reached the high watermark, but it stopped fetching.
                (
                    3,
                    follower(
                        100,
                        now - Duration::from_secs(5),
                        now - Duration::from_secs(5),
                    ),
                ),
            ]),
            out_since: BTreeMap::new(),
        };
        let live = BTreeSet::from([1, 2, 3]);
        let (leaving, joining) = isr_changes(1, &known(&[1]), &led, &live, 100, LAG, now);
        assert!(leaving.is_empty());
        assert_eq!(joining, vec![2]);
        // Behind the high watermark: not yet.
        let (_, joining) = isr_changes(1, &known(&[1]), &led, &live, 101, LAG, now);
        assert!(joining.is_empty());
    }

    #[test]
    fn a_follower_removed_from_the_isr_rejoins_only_after_fetching_again() {
        let start = Instant::now();
        let removed = start + Duration::from_millis(300);
        let fetched_before = start + Duration::from_millis(100);
        let mut led = Led {
            epoch: 4,
            since: start,
            followers: BTreeMap::from([(2, follower(100, fetched_before, fetched_before))]),
            out_since: BTreeMap::from([(2, removed)]),
        };
        let live = BTreeSet::from([1, 2, 3]);
        let soon = removed + Duration::from_millis(100);
        let (_, joining) = isr_changes(1, &known(&[1, 3]), &led, &live, 100, LAG, soon);
        assert!(joining.is_empty(), "its last fetch predates its removal");
        led.followers.insert(2, follower(100, soon, soon));
        let (_, joining) = isr_changes(1, &known(&[1, 3]), &led, &live, 100, LAG, soon);
        assert!(
            joining.is_empty(),
            "fetching again, but within the hold after its removal"
        );
        let later = removed + ISR_REJOIN_HOLD;
        led.followers.insert(2, follower(100, later, later));
        let (_, joining) = isr_changes(1, &known(&[1, 3]), &led, &live, 100, LAG, later);
        assert_eq!(joining, vec![2]);
    }

    #[tokio::test]
    async fn follower_fetches_are_sized_by_the_replication_pool() {
        let pool = Pool::new("replication", 3 << 20);
        let fetch = FollowerFetch {
            pool: pool.clone(),
            floor_bytes: 256 << 10,
        };
        // A free pool: the full 1 MiB fetch, its response counted twice.
        let (first, max_bytes) = fetch.grant().await;
        assert_eq!(max_bytes, FOLLOWER_FETCH_BYTES);
        assert_eq!(first.bytes(), 2 * FOLLOWER_FETCH_BYTES as u64);
        // What is left (1 MiB) buys a smaller fetch, flagged as pressured.
        let (second, smaller) = fetch.grant().await;
        assert!(
            ((256 << 10)..FOLLOWER_FETCH_BYTES).contains(&smaller),
            "{smaller}"
        );
        assert!(second.pressured());
        assert!(pool.used_bytes() <= pool.limit_bytes());
        // Appended (or the fetcher aborted mid-fetch): every byte goes back.
        drop(first);
        drop(second);
        assert_eq!(pool.used_bytes(), 0);
        let waiting = {
            let held = pool.try_acquire(3 << 20).unwrap();
            let fetcher = tokio::spawn(async move { fetch.grant().await.1 });
            tokio::task::yield_now().await;
            assert!(!fetcher.is_finished(), "a dry pool makes the follower wait");
            fetcher.abort();
            let _ = fetcher.await;
            drop(held);
            pool.used_bytes()
        };
        assert_eq!(waiting, 0);
        assert_eq!(pool.peak_bytes() % UNIT_BYTES, 0);
    }
}
