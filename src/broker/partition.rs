//! One partition as the broker serves it: its log behind a lock, the high watermark, and
//! group commit (concurrent producers share one fsync).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::log::{AppendInfo, Log, LogConfig, LogError};

/// A partition of a topic on this node (single node: always the leader).
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// Partition index within the topic.
    pub index: i32,
    log: Mutex<Log>,
    leader_epoch: i32,
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
    /// Wrap an opened log.
    pub fn new(
        topic: &str,
        index: i32,
        log: Log,
        flush_on_ack: bool,
        data_arrived: Arc<watch::Sender<u64>>,
    ) -> Partition {
        let end = log.log_end_offset();
        let leader_epoch = log.latest_epoch().unwrap_or(0);
        // Whatever survived recovery is on disk: it is the high watermark after a restart.
        let (durable, _) = watch::channel(end);
        Partition {
            topic: topic.to_string(),
            index,
            log: Mutex::new(log),
            leader_epoch,
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
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current leader epoch (0 on a single node).
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// Validate and append producer batches, assigning offsets. Not yet durable: see
    /// [`Partition::wait_durable`].
    pub fn append(&self, batches: &mut [u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let info = self.lock().append(batches, self.leader_epoch, now_ms)?;
        if !self.flush_on_ack {
            self.advance_high_watermark(info.last_offset + 1);
        }
        Ok(info)
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
        if self.flush_on_ack {
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
        if epoch == self.leader_epoch {
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

    /// Flush indexes and fsync (clean shutdown).
    pub fn close(&self) -> Result<(), LogError> {
        self.lock().close()
    }
}
