//! Retention, DeleteRecords and truncation.

use super::partition_tests::{assert_every_offset_readable, read_all};
use super::test_support::*;
use super::testing::decode_records;
use super::{Log, LogConfig, LogError};

/// 12 two-record batches (offsets 0..24), batch i stamped 1000*i, about 3 batches a segment.
fn filled(config: LogConfig) -> (tempfile::TempDir, Log) {
    let (dir, mut log) = temp_log(config);
    for i in 0..12 {
        append_n(&mut log, 2, 60, 1000 * i);
    }
    (dir, log)
}

#[test]
fn retention_by_time_deletes_old_segments_but_never_the_active_one() {
    let (_dir, mut log) = filled(LogConfig {
        retention_ms: Some(5_000),
        ..small_config(700)
    });
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4, "{bases:?}");
    assert_eq!(
        log.apply_retention(5_000).unwrap(),
        0,
        "nothing is older than now - 5s"
    );
    // Segments whose newest record is older than 8_000 go.
    let deleted = log.apply_retention(13_000).unwrap();
    assert!(deleted >= 1);
    let start = log.log_start_offset();
    assert_eq!(start, log.segment_base_offsets()[0]);
    assert!(start > 0);
    assert!(!log.segment_file(0, "log").exists() && !log.segment_file(0, "index").exists());
    assert!(
        matches!(log.read(0, 100, i64::MAX), Err(LogError::OffsetOutOfRange { log_start, .. }) if log_start == start)
    );
    assert_every_offset_readable(&log);
    // Far in the future everything but the active segment goes.
    log.apply_retention(1_000_000).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), *bases.last().unwrap());
    assert_eq!(log.log_end_offset(), 24);
}

#[test]
fn retention_by_size_keeps_at_least_the_limit() {
    let (_dir, mut log) = filled(LogConfig {
        retention_bytes: Some(1_500),
        ..small_config(700)
    });
    let before = log.segment_count();
    let deleted = log.apply_retention(0).unwrap();
    assert!(deleted > 0 && log.segment_count() == before - deleted);
    assert!(log.size_bytes() >= 1_500, "size {}", log.size_bytes());
    let oldest = log.segment_base_offsets()[0];
    assert_eq!(log.log_start_offset(), oldest);
    assert_eq!(log.apply_retention(0).unwrap(), 0);
    let mut tiny = LogConfig {
        retention_bytes: Some(0),
        ..small_config(700)
    };
    tiny.retention_ms = None;
    log.set_config(tiny);
    log.apply_retention(0).unwrap();
    assert_eq!(log.segment_count(), 1, "the active segment stays");
}

#[test]
fn truncation_removes_the_tail_across_segments_and_appends_continue() {
    let (dir, mut log) = filled(small_config(700));
    log.append(&mut records(2, 1, 50_000), 3, 0).unwrap();
    assert_eq!(log.epoch_entries(), [(0, 0), (3, 24)]);
    log.truncate_to(7).unwrap();
    // Offset 7 is inside batch 6..=7: the batch goes, the log ends at 6.
    assert_eq!(log.log_end_offset(), 6);
    assert!(log.segment_base_offsets().iter().all(|&b| b <= 6));
    assert_eq!(log.epoch_entries(), [(0, 0)]);
    assert_eq!(log.max_timestamp_and_offset(), Some((2001, 5)));
    assert_eq!(log.offset_for_timestamp(2500).unwrap(), None);
    assert_every_offset_readable(&log);
    assert_eq!(append_n(&mut log, 2, 60, 9_000), 6);
    assert_eq!(log.max_timestamp_and_offset(), Some((9001, 7)));
    let bytes = read_all(&log);
    let offsets: Vec<i64> = decode_records(&bytes).iter().map(|r| r.0).collect();
    assert_eq!(offsets, (0..8).collect::<Vec<_>>());
    drop(log);
    let log = Log::open(&dir.path().join("topic-0"), small_config(700), 0).unwrap();
    assert_eq!(read_all(&log), bytes);
    assert_every_offset_readable(&log);
}

#[test]
fn truncating_to_a_segment_base_or_the_log_start() {
    let (_dir, mut log) = filled(small_config(700));
    let second = log.segment_base_offsets()[1];
    log.truncate_to(second).unwrap();
    assert_eq!(log.log_end_offset(), second);
    assert_eq!(log.segment_base_offsets(), [0]);
    log.truncate_to(100).unwrap();
    assert_eq!(
        log.log_end_offset(),
        second,
        "truncating past the end changes nothing"
    );
    log.truncate_to(0).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (0, 0, 0)
    );
    assert_eq!(log.epoch_entries(), []);
    assert_eq!(append_n(&mut log, 1, 1, 1), 0);
}

#[test]
fn a_fully_truncated_log_restarts_at_the_given_offset() {
    let (_dir, mut log) = filled(small_config(700));
    log.truncate_fully_and_start_at(500).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(log.segment_base_offsets(), [500]);
    assert_eq!(append_n(&mut log, 1, 1, 1), 500);
    assert_every_offset_readable(&log);
}

#[test]
fn delete_records_advances_the_start_and_drops_whole_segments() {
    let (dir, mut log) = filled(small_config(700));
    let bases = log.segment_base_offsets();
    let target = bases[2] + 1;
    log.delete_records_before(target).unwrap();
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.segment_base_offsets(), bases[2..]);
    assert!(matches!(
        log.read(target - 1, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // The batch holding the new start is served whole; the consumer skips what it must.
    let info = super::batch::validate_batches(&log.read(target, 1, i64::MAX).unwrap(), u32::MAX)
        .unwrap()[0];
    assert!(info.base_offset < target && target <= info.last_offset());
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().0, target);
    assert_eq!(log.epoch_entries(), [(0, target)]);
    log.delete_records_before(2).unwrap();
    assert_eq!(
        log.log_start_offset(),
        target,
        "the log start never moves back"
    );
    assert!(matches!(
        log.delete_records_before(25),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    log.delete_records_before(24).unwrap();
    assert_eq!(log.segment_count(), 1, "the active segment stays");
    assert!(log.read(24, 100, i64::MAX).unwrap().is_empty());
    drop(log);
    // The log start is not persisted here (the broker keeps log-start-offset-checkpoint).
    let log = Log::open(&dir.path().join("topic-0"), small_config(700), 0).unwrap();
    assert_eq!(log.log_start_offset(), *bases.last().unwrap());
}
