//! Rebuilding the coordinator's state from `__consumer_offsets` at startup: every record of
//! each partition is applied in log order (offsets and their tombstones to the offset cache,
//! group metadata to the groups).

use super::offsets::CommittedOffset;
use super::record::{self, Record};
use super::{Groups, Now, OFFSETS_TOPIC};
use crate::broker::Partition;
use crate::log::records::for_each_record;
use crate::log::scan_valid_prefix;

/// Applies every record of one offsets partition, in order; returns how many were read.
/// A single node reads up to the high watermark; a new partition leader in a cluster reads
/// to its log end (`to_log_end`), which its followers are about to copy.
pub(super) fn replay_partition(
    partition: &Partition,
    groups: &mut Groups,
    now: Now,
    to_log_end: bool,
) -> anyhow::Result<u64> {
    let mut offset = partition.log_start_offset();
    let end = if to_log_end {
        partition.log_end_offset()
    } else {
        partition.high_watermark()
    };
    let mut count = 0u64;
    while offset < end {
        let chunk = if to_log_end {
            partition.read_for_follower(offset, 1 << 20)?
        } else {
            partition.read(offset, 1 << 20)?
        };
        let (infos, _) = scan_valid_prefix(&chunk);
        if infos.is_empty() {
            anyhow::bail!(
                "{OFFSETS_TOPIC}-{} has no readable batch at offset {offset}",
                partition.index
            );
        }
        let mut pos = 0usize;
        for info in &infos {
            let batch = &chunk[pos..pos + info.size_bytes as usize];
            pos += info.size_bytes as usize;
            offset = info.next_offset();
            if info.is_control {
                continue;
            }
            let parsed = for_each_record(batch, |r| {
                count += 1;
                let Some(key) = r.key else { return };
                match record::decode(key, r.value) {
                    Ok(Record::Offset(group, topic, p, value)) => {
                        let committed = value.map(|v| CommittedOffset {
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata,
                            commit_wall_ms: v.commit_timestamp_ms,
                            record_offset: r.offset,
                        });
                        groups.apply_offset(&group, &topic, p, committed, r.offset, now);
                    }
                    Ok(Record::Group(group, value)) => groups.restore_group(&group, value, now),
                    Err(why) => tracing::warn!(
                        partition = partition.index,
                        offset = r.offset,
                        why,
                        "skipping an unreadable record"
                    ),
                }
            });
            if let Err(error) = parsed {
                tracing::warn!(partition = partition.index, offset = info.base_offset, %error, "skipping an unreadable batch");
            }
        }
    }
    Ok(count)
}
