//! The broker's state on one node: topics, their partitions and logs, and the operations the
//! Kafka API handlers call (create/delete topics, add partitions, change topic configs).
//! Nothing here knows the Kafka wire format.

pub mod partition;
pub mod produce;
pub mod producer_ids;
pub mod producer_state;
pub mod store;
pub mod topic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::ids::Uuid;
use crate::log::{Log, LogError};

pub use partition::Partition;
pub use topic::{Topic, TopicConfig};

/// Wall-clock milliseconds since the Unix epoch (record timestamps, retention).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Why a topic operation was refused; the Kafka layer maps each to its error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The name breaks Kafka's naming rules.
    #[error("invalid topic name: {0}")]
    InvalidName(String),
    /// A topic with this name exists.
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    /// No topic with this name.
    #[error("topic '{0}' does not exist")]
    Unknown(String),
    /// Partition count out of range.
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    /// Replication factor this cluster cannot give.
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    /// A topic setting was refused.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The broker's own topics cannot be changed by clients this way.
    #[error("{0}")]
    PolicyViolation(String),
    /// The disk said no.
    #[error("storage error: {0}")]
    Storage(String),
}

impl From<LogError> for TopicError {
    fn from(error: LogError) -> Self {
        TopicError::Storage(error.to_string())
    }
}

impl From<std::io::Error> for TopicError {
    fn from(error: std::io::Error) -> Self {
        TopicError::Storage(error.to_string())
    }
}

/// Topics and partitions on this node.
#[derive(Debug)]
pub struct Broker {
    /// The `[broker]` settings.
    pub config: BrokerConfig,
    /// This node's id (Kafka's `broker.id`).
    pub node_id: i32,
    /// The cluster id from `meta.properties`.
    pub cluster_id: String,
    log_dirs: Vec<PathBuf>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    partition_count: AtomicU32,
    data_arrived: Arc<watch::Sender<u64>>,
    /// Serialises topic creation, deletion and changes against each other.
    admin: tokio::sync::Mutex<()>,
}

impl Broker {
    /// Open every log directory, recover every partition found there, and return the
    /// broker ready to serve.
    pub fn open(config: BrokerConfig, node_id: i32) -> anyhow::Result<Broker> {
        let mut cluster_id: Option<String> = None;
        for dir in &config.log_dirs {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create log dir {}: {e}", dir.display()))?;
            let meta = store::load_or_init_meta(dir, node_id, cluster_id.as_deref())?;
            match &cluster_id {
                Some(id) if *id != meta.cluster_id => anyhow::bail!(
                    "log dir {} belongs to cluster {} but {} to {id}",
                    dir.display(),
                    meta.cluster_id,
                    config.log_dirs[0].display()
                ),
                _ => cluster_id = Some(meta.cluster_id),
            }
        }
        let (data_arrived, _) = watch::channel(0u64);
        let broker = Broker {
            node_id,
            cluster_id: cluster_id.unwrap_or_default(),
            log_dirs: config.log_dirs.clone(),
            config,
            topics: RwLock::new(BTreeMap::new()),
            partition_count: AtomicU32::new(0),
            data_arrived: Arc::new(data_arrived),
            admin: tokio::sync::Mutex::new(()),
        };
        broker.load_topics()?;
        Ok(broker)
    }

    fn load_topics(&self) -> anyhow::Result<()> {
        // topic -> partition index -> directory
        let mut found: BTreeMap<String, BTreeMap<i32, PathBuf>> = BTreeMap::new();
        for dir in &self.log_dirs {
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if !entry.file_type()?.is_dir() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with("-delete") {
                    // A deletion interrupted by a crash: finish it.
                    tracing::info!(dir = %entry.path().display(), "removing partially deleted partition");
                    std::fs::remove_dir_all(entry.path())?;
                    continue;
                }
                if let Some((topic, index)) = store::parse_partition_dir(&name) {
                    found.entry(topic).or_default().insert(index, entry.path());
                }
            }
        }
        let now = now_ms();
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        for (name, dirs) in found {
            let count = dirs.len() as i32;
            if dirs.keys().copied().ne(0..count) {
                anyhow::bail!(
                    "topic {name} has partitions {:?} on disk; expected 0..{count}",
                    dirs.keys().collect::<Vec<_>>()
                );
            }
            let home = dirs[&0].parent().map(Path::to_path_buf).unwrap_or_default();
            let config = TopicConfig {
                overrides: store::read_topic_config(&home, &name),
            };
            let log_config = config.log_config(&self.config);
            let id = match store::read_partition_metadata(&dirs[&0]) {
                Some(id) => id,
                None => Uuid::random()?,
            };
            let mut partitions = Vec::with_capacity(dirs.len());
            for (index, dir) in dirs {
                let log = Log::open(&dir, log_config.clone(), now)?;
                if store::read_partition_metadata(&dir).is_none() {
                    store::write_partition_metadata(&dir, id)?;
                }
                tracing::info!(topic = %name, partition = index, log_start = log.log_start_offset(), log_end = log.log_end_offset(), "loaded partition");
                partitions.push(Arc::new(self.new_partition(&name, index, log)));
            }
            self.partition_count
                .fetch_add(partitions.len() as u32, Ordering::Relaxed);
            topics.insert(
                name.clone(),
                Arc::new(Topic {
                    name,
                    id,
                    config,
                    partitions,
                }),
            );
        }
        Ok(())
    }

    fn new_partition(&self, topic: &str, index: i32, log: Log) -> Partition {
        let limits = partition::ProducerLimits {
            max_producers: self.config.max_producers_per_partition,
            expiration_ms: self.config.producer_id_expiration_ms,
        };
        Partition::new(
            topic,
            index,
            log,
            self.config.log_flush_on_ack,
            self.data_arrived.clone(),
            limits,
            now_ms(),
        )
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every topic, in name order.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics().into_iter().find(|topic| topic.id == id)
    }

    /// One partition, if both topic and partition exist.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let topic = self.topic(topic)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i).cloned())
    }

    /// Subscribe to "some high watermark moved" (long-polling fetches wait on it).
    pub fn data_arrived(&self) -> watch::Receiver<u64> {
        self.data_arrived.subscribe()
    }

    /// Where a new partition goes: the log dir holding the fewest partitions.
    fn pick_log_dir(&self) -> PathBuf {
        let mut counts: Vec<(usize, &PathBuf)> = self
            .log_dirs
            .iter()
            .map(|dir| {
                let count = std::fs::read_dir(dir)
                    .map(|entries| entries.filter_map(Result::ok).count())
                    .unwrap_or(usize::MAX);
                (count, dir)
            })
            .collect();
        counts.sort();
        counts[0].1.clone()
    }

    fn home_dir(&self, topic: &Topic) -> PathBuf {
        // Topic configs live next to partition 0.
        self.log_dirs
            .iter()
            .find(|dir| store::partition_dir(dir, &topic.name, 0).exists())
            .unwrap_or(&self.log_dirs[0])
            .clone()
    }

    fn check_partition_budget(&self, more: u32) -> Result<(), TopicError> {
        let now = self.partition_count.load(Ordering::Relaxed);
        if now.saturating_add(more) > self.config.max_partitions {
            return Err(TopicError::InvalidPartitions(format!(
                "this broker holds {now} partitions and broker.max_partitions is {}",
                self.config.max_partitions
            )));
        }
        Ok(())
    }

    /// Create a topic (partitions = -1 / replication = -1 take the broker defaults).
    /// With `validate_only`, check everything and create nothing.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        self.create_topic_with_id(
            name,
            partitions,
            replication_factor,
            configs,
            validate_only,
            None,
        )
        .await
    }

    /// [`Broker::create_topic`] with the topic id given (cluster mode: the id the topic has
    /// on every node, from its `/brokers/topics` znode) instead of a new random one.
    pub async fn create_topic_with_id(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
        id: Option<Uuid>,
    ) -> Result<Arc<Topic>, TopicError> {
        topic::validate_topic_name(name).map_err(TopicError::InvalidName)?;
        let partitions = if partitions == -1 {
            self.config.num_partitions as i32
        } else {
            partitions
        };
        if partitions <= 0 {
            return Err(TopicError::InvalidPartitions(format!(
                "partition count must be at least 1, got {partitions}"
            )));
        }
        let replication_factor = if replication_factor == -1 {
            self.config.default_replication_factor as i16
        } else {
            replication_factor
        };
        if replication_factor != 1 {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "replication factor {replication_factor} is larger than the 1 available broker"
            )));
        }
        for (key, value) in &configs {
            TopicConfig::validate_entry(key, value).map_err(TopicError::InvalidConfig)?;
        }
        let _admin = self.admin.lock().await;
        if self.topic(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        self.check_partition_budget(partitions as u32)?;
        let id = match id {
            Some(id) => id,
            None => Uuid::random()?,
        };
        let config = TopicConfig { overrides: configs };
        let topic = Topic {
            name: name.to_string(),
            id,
            config,
            partitions: Vec::new(),
        };
        if validate_only {
            return Ok(Arc::new(topic));
        }
        let log_dir = self.pick_log_dir();
        store::write_topic_config(&log_dir, name, &topic.config.overrides)?;
        let topic = self.add_partitions(topic, &log_dir, partitions)?;
        tracing::info!(topic = %name, partitions, "created topic");
        Ok(topic)
    }

    /// Open logs for partitions `topic.partitions.len()..total` and publish the topic.
    fn add_partitions(
        &self,
        mut topic: Topic,
        log_dir: &Path,
        total: i32,
    ) -> Result<Arc<Topic>, TopicError> {
        let log_config = topic.config.log_config(&self.config);
        let now = now_ms();
        let first_new = topic.partitions.len() as i32;
        for index in first_new..total {
            let dir = store::partition_dir(log_dir, &topic.name, index);
            let log = Log::open(&dir, log_config.clone(), now)?;
            store::write_partition_metadata(&dir, topic.id)?;
            topic
                .partitions
                .push(Arc::new(self.new_partition(&topic.name, index, log)));
        }
        self.partition_count
            .fetch_add((total - first_new) as u32, Ordering::Relaxed);
        let topic = Arc::new(topic);
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.name.clone(), topic.clone());
        Ok(topic)
    }

    /// Grow a topic to `total` partitions (Kafka never shrinks).
    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _admin = self.admin.lock().await;
        let existing = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let current = existing.partitions.len() as i32;
        if total <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic {name} has {current} partitions; the new count must be larger, got {total}"
            )));
        }
        self.check_partition_budget((total - current) as u32)?;
        if validate_only {
            return Ok(());
        }
        let topic = Topic {
            name: existing.name.clone(),
            id: existing.id,
            config: existing.config.clone(),
            partitions: existing.partitions.clone(),
        };
        let log_dir = self.home_dir(&existing);
        self.add_partitions(topic, &log_dir, total)?;
        tracing::info!(topic = %name, from = current, to = total, "added partitions");
        Ok(())
    }

    /// Delete a topic and its data. The directories are renamed first (so a crash midway
    /// finishes the deletion at the next start) and then removed.
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, TopicError> {
        if name.starts_with("__") {
            return Err(TopicError::PolicyViolation(format!(
                "{name} is the broker's own topic and cannot be deleted"
            )));
        }
        let _admin = self.admin.lock().await;
        let topic = self
            .topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        self.partition_count
            .fetch_sub(topic.partitions.len() as u32, Ordering::Relaxed);
        let mut doomed = Vec::new();
        for partition in &topic.partitions {
            for dir in &self.log_dirs {
                let path = store::partition_dir(dir, name, partition.index);
                if path.exists() {
                    let mut renamed = path.clone().into_os_string();
                    renamed.push(format!(".{}-delete", topic.id.to_base64()));
                    std::fs::rename(&path, &renamed)?;
                    doomed.push(PathBuf::from(renamed));
                }
            }
        }
        for dir in &self.log_dirs {
            store::write_topic_config(dir, name, &BTreeMap::new())?;
        }
        tokio::task::spawn_blocking(move || {
            for path in doomed {
                if let Err(error) = std::fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), %error, "could not remove deleted partition");
                }
            }
        });
        tracing::info!(topic = %name, "deleted topic");
        Ok(topic.id)
    }

    /// Replace a topic's overrides (AlterConfigs semantics: the full set).
    pub async fn set_topic_config(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        for (key, value) in &overrides {
            TopicConfig::validate_entry(key, value).map_err(TopicError::InvalidConfig)?;
        }
        let _admin = self.admin.lock().await;
        let existing = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        if validate_only {
            return Ok(());
        }
        store::write_topic_config(&self.home_dir(&existing), name, &overrides)?;
        let config = TopicConfig { overrides };
        let log_config = config.log_config(&self.config);
        for partition in &existing.partitions {
            partition.set_log_config(log_config.clone());
        }
        let topic = Arc::new(Topic {
            name: existing.name.clone(),
            id: existing.id,
            config,
            partitions: existing.partitions.clone(),
        });
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.name.clone(), topic);
        Ok(())
    }

    /// Apply retention and age-based rolling to every partition, and snapshot producer state.
    pub fn run_retention(&self, now_ms: i64) {
        for topic in self.topics() {
            for partition in &topic.partitions {
                match partition.apply_retention(now_ms) {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::info!(topic = %topic.name, partition = partition.index, deleted, "retention deleted segments")
                    }
                    Err(error) => {
                        tracing::error!(topic = %topic.name, partition = partition.index, %error, "retention failed")
                    }
                }
                if let Err(error) = partition.snapshot_producers(now_ms) {
                    tracing::warn!(topic = %topic.name, partition = partition.index, %error, "producer snapshot failed");
                }
            }
        }
    }

    /// One compaction pass over every partition whose topic is compacted and dirty enough.
    pub fn run_cleaner(&self, now_ms: i64) {
        let budget = self.config.log_cleaner_dedupe_buffer_size;
        for topic in self.topics() {
            if !topic.config.cleanup_policy().0 {
                continue;
            }
            for partition in &topic.partitions {
                if let Err(error) = partition.clean(now_ms, budget) {
                    tracing::error!(topic = %topic.name, partition = partition.index, %error, "compaction failed");
                }
            }
        }
    }

    /// Create one of the broker's own topics (like `__consumer_offsets`) if it is missing;
    /// returns the topic, whatever partition count it was created with.
    pub async fn ensure_internal_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u16,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        if let Some(topic) = self.topic(name) {
            return Ok(topic);
        }
        let replication_factor = i16::try_from(replication_factor).unwrap_or(i16::MAX);
        match self
            .create_topic(name, partitions as i32, replication_factor, configs, false)
            .await
        {
            Ok(topic) => Ok(topic),
            Err(TopicError::AlreadyExists(_)) => self
                .topic(name)
                .ok_or_else(|| TopicError::Unknown(name.into())),
            Err(error) => Err(error),
        }
    }

    /// fsync every partition with unflushed data (periodic flush when not flushing on ack).
    pub async fn flush_all(&self) {
        for topic in self.topics() {
            for partition in &topic.partitions {
                if let Err(error) = partition.flush().await {
                    tracing::error!(topic = %topic.name, partition = partition.index, %error, "flush failed");
                }
            }
        }
    }

    /// Write Kafka's per-log-dir checkpoint files: `recovery-point-offset-checkpoint`
    /// (what is fsynced), `replication-offset-checkpoint` (high watermarks) and
    /// `log-start-offset-checkpoint`, each listing the partitions stored in that dir.
    pub fn write_checkpoints(&self) -> Result<(), LogError> {
        use crate::log::checkpoint::{write_offset_checkpoint, PartitionOffsets};
        for dir in &self.log_dirs {
            let mut recovery = PartitionOffsets::new();
            let mut high_watermarks = PartitionOffsets::new();
            let mut log_starts = PartitionOffsets::new();
            for topic in self.topics() {
                for partition in &topic.partitions {
                    if !store::partition_dir(dir, &topic.name, partition.index).exists() {
                        continue;
                    }
                    let key = (topic.name.clone(), partition.index);
                    recovery.insert(key.clone(), partition.flushed_offset());
                    high_watermarks.insert(key.clone(), partition.high_watermark());
                    log_starts.insert(key, partition.log_start_offset());
                }
            }
            write_offset_checkpoint(&dir.join("recovery-point-offset-checkpoint"), &recovery)?;
            write_offset_checkpoint(&dir.join("replication-offset-checkpoint"), &high_watermarks)?;
            write_offset_checkpoint(&dir.join("log-start-offset-checkpoint"), &log_starts)?;
        }
        Ok(())
    }

    /// Flush and close every log (clean shutdown).
    pub fn close(&self) {
        for topic in self.topics() {
            for partition in &topic.partitions {
                if let Err(error) = partition.close() {
                    tracing::error!(topic = %topic.name, partition = partition.index, %error, "close failed");
                }
            }
        }
        if let Err(error) = self.write_checkpoints() {
            tracing::error!(%error, "writing checkpoints failed");
        }
    }
}
