//! One partition as the broker serves it: its log behind a lock, the high watermark, and
//! group commit (concurrent producers share one fsync).

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::now_ms;
use super::producer_state::{self, Check, ProducerError, ProducerStates};
use crate::log::{AppendInfo, CleanReport, Log, LogConfig, LogError};

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The log refused the bytes.
    #[error(transparent)]
    Log(#[from] LogError),
    /// An idempotent producer's sequence or epoch does not fit.
    #[error(transparent)]
    Producer(#[from] ProducerError),
}

/// Limits of the per-partition producer state.
#[derive(Debug, Clone, Copy)]
pub struct ProducerLimits {
    /// Most producers remembered per partition.
    pub max_producers: u32,
    /// Forget a producer idle this long.
    pub expiration_ms: i64,
}

/// A partition of a topic on this node (single node: always the leader).
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// Partition index within the topic.
    pub index: i32,
    log: Mutex<Log>,
    /// Idempotent producers; locked only while `log` is held, so appends see one order.
    producers: Mutex<ProducerStates>,
    /// Bounds of `producers`, kept to rebuild it after a follower truncates.
    producer_limits: ProducerLimits,
    leader_epoch: AtomicI32,
    /// Cluster mode: the high watermark is set by replication (the ISR), not by appends.
    replicated: AtomicBool,
    /// Acknowledge only what is fsynced (see `broker.log_flush_on_ack`).
    flush_on_ack: bool,
    /// Offset below which everything is on disk.
    durable: watch::Sender<i64>,
    /// Set while one task runs an fsync for everybody waiting.
    syncing: AtomicBool,
    high_watermark: AtomicI64,
    /// Bumped whenever any partition's high watermark moves; long-polling fetches wait on it.
    data_arrived: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("topic", &self.topic)
            .field("index", &self.index)
            .field("high_watermark", &self.high_watermark())
            .finish_non_exhaustive()
    }
}

impl Partition {
    /// Wrap an opened log, rebuilding its producer state from the newest usable snapshot and
    /// the batch headers after it.
    pub fn new(
        topic: &str,
        index: i32,
        log: Log,
        flush_on_ack: bool,
        data_arrived: Arc<watch::Sender<u64>>,
        limits: ProducerLimits,
        now_ms: i64,
    ) -> Partition {
        let producers = load_producer_state(&log, limits, now_ms);
        let end = log.log_end_offset();
        let leader_epoch = log.latest_epoch().unwrap_or(0);
        // Whatever survived recovery is on disk: it is the high watermark after a restart.
        let (durable, _) = watch::channel(end);
        Partition {
            topic: topic.to_string(),
            index,
            log: Mutex::new(log),
            producers: Mutex::new(producers),
            producer_limits: limits,
            leader_epoch: AtomicI32::new(leader_epoch),
            replicated: AtomicBool::new(false),
            flush_on_ack,
            durable,
            syncing: AtomicBool::new(false),
            high_watermark: AtomicI64::new(end),
            data_arrived,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock aborts the process (panic = "abort"), so a
        // poisoned lock can only be seen in tests; the log itself stays consistent.
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current leader epoch (0 on a single node).
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Cluster mode: the partition's leader epoch as the controller set it.
    pub fn set_leader_epoch(&self, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::Release);
    }

    /// Cluster mode: from now on the high watermark moves only by [`Partition::advance_high_watermark_to`].
    pub fn set_replicated(&self) {
        self.replicated.store(true, Ordering::Release);
    }

    /// Cluster mode: move the high watermark forward (never back) and wake fetchers.
    pub fn advance_high_watermark_to(&self, offset: i64) {
        self.advance_high_watermark(offset);
    }

    /// Wakes everybody waiting on new data (cluster mode: the ISR changed, so waiting
    /// acks=all writes re-check).
    pub fn wake_waiters(&self) {
        self.data_arrived.send_modify(|generation| *generation += 1);
    }

    /// A follower appends batches exactly as its leader stored them (offsets and epochs kept).
    pub fn append_as_follower(
        &self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let headers = crate::log::batch::peek_headers(batches)?;
        let mut log = self.lock();
        let info = log.append_as_follower(batches, now_ms)?;
        // Idempotent producers' sequences follow the data, so a new leader after a failover
        // still recognises a retried batch.
        let mut producers = self.lock_producers();
        for header in &headers {
            producers.replay(header);
        }
        drop(producers);
        drop(log);
        self.data_arrived.send_modify(|generation| *generation += 1);
        Ok(info)
    }

    /// A follower cuts its log at `offset` (diverged from its new leader).
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let mut log = self.lock();
        log.truncate_to(offset.max(0))?;
        // Producer state may describe batches that are gone: rebuild it from what is left.
        *self.lock_producers() = load_producer_state(&log, self.producer_limits, now_ms());
        drop(log);
        self.durable.send_modify(|d| *d = (*d).min(offset));
        Ok(())
    }

    /// The newest leader epoch in this log's epoch cache.
    pub fn latest_log_epoch(&self) -> Option<i32> {
        self.lock().latest_epoch()
    }

    /// A follower's read: whole batches from `offset` up to the log end, not the high watermark.
    pub fn read_for_follower(&self, offset: i64, max_bytes: u32) -> Result<Vec<u8>, LogError> {
        let log = self.lock();
        let end = log.log_end_offset();
        if offset >= end {
            return Ok(Vec::new());
        }
        log.read(offset, max_bytes, end)
    }

    fn lock_producers(&self) -> MutexGuard<'_, ProducerStates> {
        self.producers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Validate and append producer batches, assigning offsets. Not yet durable: see
    /// [`Partition::wait_durable`]. Batches of idempotent producers are checked against
    /// their sequences first; a retried duplicate is answered with its original offsets
    /// (and `batch_count` 0) without being appended again.
    pub fn append(&self, batches: &mut [u8], now_ms: i64) -> Result<AppendInfo, AppendError> {
        let mut log = self.lock();
        let mut headers = crate::log::batch::peek_headers(batches)?;
        if headers.iter().all(|h| h.producer_id < 0) {
            let info = log.append(batches, self.leader_epoch(), now_ms)?;
            drop(log);
            self.appended(&info);
            return Ok(info);
        }
        let mut producers = self.lock_producers();
        if let Check::Duplicate(meta) = producers.check(&headers)? {
            tracing::debug!(topic = %self.topic, partition = self.index, base_offset = meta.base_offset,
                first_seq = meta.first_seq, "duplicate batch acknowledged without appending");
            return Ok(AppendInfo {
                base_offset: meta.base_offset,
                last_offset: meta.last_offset,
                max_timestamp: meta.max_timestamp,
                batch_count: 0,
            });
        }
        let info = log.append(batches, self.leader_epoch(), now_ms)?;
        let mut next = info.base_offset;
        for header in &mut headers {
            header.base_offset = next;
            next = header.next_offset();
        }
        producers.record(&headers, now_ms);
        drop(producers);
        drop(log);
        self.appended(&info);
        Ok(info)
    }

    fn appended(&self, info: &AppendInfo) {
        if self.replicated.load(Ordering::Acquire) {
            // Followers long-poll for new data past the high watermark.
            self.data_arrived.send_modify(|generation| *generation += 1);
        } else if !self.flush_on_ack {
            self.advance_high_watermark(info.last_offset + 1);
        }
    }

    /// The epoch and last sequence this partition knows for a producer (tests, tools).
    pub fn producer_state(&self, producer_id: i64) -> Option<(i16, Option<i32>)> {
        self.lock_producers().last(producer_id)
    }

    /// Forgets idle producers and writes a producer snapshot if the state changed since the
    /// last one (called periodically and at close, so a restart reads only a short tail).
    pub fn snapshot_producers(&self, now_ms: i64) -> Result<(), LogError> {
        let (bytes, path, dir, offset) = {
            let log = self.lock();
            let mut producers = self.lock_producers();
            producers.expire(now_ms);
            let offset = log.log_end_offset();
            if !producers.needs_snapshot(offset) {
                return Ok(());
            }
            producers.mark_snapshotted(offset);
            let dir = log.dir().to_path_buf();
            (
                producers.encode_snapshot(offset),
                producer_state::snapshot_path(&dir, offset),
                dir,
                offset,
            )
        };
        if let Err(error) = crate::log::checkpoint::write_atomically(&path, &bytes) {
            // Write it again next time.
            self.lock_producers().dirty_again();
            return Err(error);
        }
        producer_state::prune_snapshots(&dir, offset);
        Ok(())
    }

    /// One compaction pass if this partition's log is compacted and dirty enough; the
    /// partition lock is held only to plan and to swap files, not while reading and writing.
    pub fn clean(
        &self,
        now_ms: i64,
        map_budget_bytes: u64,
    ) -> Result<Option<CleanReport>, LogError> {
        let Some(job) = self.lock().clean_job(now_ms) else {
            return Ok(None);
        };
        let outcome = job.run(now_ms, map_budget_bytes)?;
        self.lock().finish_clean(outcome)
    }

    /// Wait until everything below `offset` is on disk, running the fsync ourselves if no
    /// other task is; one fsync covers every append made before it started.
    pub async fn wait_durable(&self, offset: i64) -> std::io::Result<()> {
        let mut durable = self.durable.subscribe();
        loop {
            if *durable.borrow_and_update() >= offset {
                return Ok(());
            }
            if self.syncing.swap(true, Ordering::AcqRel) {
                // Somebody else is syncing; it notifies when done (after clearing the flag).
                if durable.changed().await.is_err() {
                    return Err(std::io::Error::other("partition closed"));
                }
                continue;
            }
            let result = self.sync_once().await;
            self.syncing.store(false, Ordering::Release);
            // Wake the waiters even if nothing moved, so one of them takes over.
            self.durable.send_modify(|_| {});
            result?;
        }
    }

    async fn sync_once(&self) -> std::io::Result<()> {
        let pending = self.lock().prepare_sync();
        let Some(pending) = pending else {
            let flushed = self.lock().flushed_offset();
            self.publish_durable(flushed);
            return Ok(());
        };
        let offset = tokio::task::spawn_blocking(move || pending.run())
            .await
            .map_err(std::io::Error::other)??;
        self.lock().mark_flushed(offset);
        self.publish_durable(offset);
        Ok(())
    }

    fn publish_durable(&self, offset: i64) {
        self.durable.send_if_modified(|current| {
            if offset > *current {
                *current = offset;
                true
            } else {
                false
            }
        });
        if self.flush_on_ack && !self.replicated.load(Ordering::Acquire) {
            self.advance_high_watermark(offset);
        }
    }

    /// Run an fsync if anything is unflushed (the periodic flush when not flushing on ack).
    pub async fn flush(&self) -> std::io::Result<()> {
        let end = self.log_end_offset();
        self.wait_durable(end).await
    }

    fn advance_high_watermark(&self, offset: i64) {
        let previous = self.high_watermark.fetch_max(offset, Ordering::AcqRel);
        if offset > previous {
            self.data_arrived.send_modify(|generation| *generation += 1);
        }
    }

    /// Everything below this offset is on disk (Kafka's recovery point).
    pub fn flushed_offset(&self) -> i64 {
        *self.durable.borrow()
    }

    /// Consumers see records below this offset.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.lock().log_start_offset()
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.lock().log_end_offset()
    }

    /// Read whole batches from `offset`, at most `max_bytes` (but at least one batch), never
    /// past the high watermark.
    pub fn read(&self, offset: i64, max_bytes: u32) -> Result<Vec<u8>, LogError> {
        let high_watermark = self.high_watermark();
        let log = self.lock();
        if offset > high_watermark && offset <= log.log_end_offset() {
            // Written but not yet committed: nothing to give yet, not an error.
            return Ok(Vec::new());
        }
        log.read(offset, max_bytes, high_watermark)
    }

    /// Offset of the first batch whose timestamp is at or after `timestamp_ms`.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>, LogError> {
        self.lock().offset_for_timestamp(timestamp_ms)
    }

    /// The newest timestamp in the log and its offset.
    pub fn max_timestamp_and_offset(&self) -> Option<(i64, i64)> {
        self.lock().max_timestamp_and_offset()
    }

    /// OffsetForLeaderEpoch: the end offset of `epoch` as this log knows it.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let log = self.lock();
        if epoch == self.leader_epoch() {
            return Some((epoch, log.log_end_offset()));
        }
        log.end_offset_for_epoch(epoch)
    }

    /// Apply size and time retention; returns segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let mut log = self.lock();
        log.maybe_roll(now_ms)?;
        log.apply_retention(now_ms)
    }

    /// Replace the log settings (topic config changed).
    pub fn set_log_config(&self, config: LogConfig) {
        self.lock().set_config(config);
    }

    /// Bytes on disk.
    pub fn size_bytes(&self) -> u64 {
        self.lock().size_bytes()
    }

    /// Flush indexes and fsync, and snapshot the producer state (clean shutdown).
    pub fn close(&self) -> Result<(), LogError> {
        self.lock().close()?;
        self.snapshot_producers(super::now_ms())
    }
}

/// Producer state at open: the newest snapshot not past the log end, then the headers of the
/// batches after it (or of the whole log when no snapshot is usable).
fn load_producer_state(log: &Log, limits: ProducerLimits, now_ms: i64) -> ProducerStates {
    let dir = log.dir();
    let end = log.log_end_offset();
    producer_state::prune_snapshots(dir, end);
    let mut states = ProducerStates::new(limits.max_producers, limits.expiration_ms);
    let mut from = log.log_start_offset();
    for offset in producer_state::list_snapshots(dir) {
        let path = producer_state::snapshot_path(dir, offset);
        let mut candidate = ProducerStates::new(limits.max_producers, limits.expiration_ms);
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| candidate.decode_snapshot(&b))
        {
            Ok(at) => {
                states = candidate;
                from = from.max(at);
                break;
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring an unreadable producer snapshot")
            }
        }
    }
    let mut replayed = 0u64;
    let scanned = log.for_each_batch_header(from, |info| {
        states.replay(info);
        replayed += 1;
    });
    if let Err(error) = scanned {
        tracing::warn!(dir = %dir.display(), %error, "producer state rebuilt only up to a bad batch header");
    }
    states.expire(now_ms);
    tracing::debug!(dir = %dir.display(), from, replayed, producers = states.len(), "rebuilt producer state");
    states
}
