//! Behaviour of [`Log`] appends, reads, lookups, epochs and group commit.

use super::batch::validate_batches;
use super::test_support::*;
use super::testing::{self, build_test_batch, decode_records};
use super::{Log, LogConfig, LogError};

/// Every offset in the log can be read, and the batch returned holds it.
pub fn assert_every_offset_readable(log: &Log) {
    for offset in log.log_start_offset()..log.log_end_offset() {
        let bytes = log.read(offset, 1, i64::MAX).unwrap();
        let infos = validate_batches(&bytes, u32::MAX).unwrap();
        assert_eq!(infos.len(), 1, "offset {offset}");
        assert!(
            infos[0].base_offset <= offset && offset <= infos[0].last_offset(),
            "offset {offset}"
        );
    }
}

/// Reads the whole log from its start, one segment-bounded read at a time.
pub fn read_all(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let chunk = log.read(next, 1 << 20, i64::MAX).unwrap();
        let infos = validate_batches(&chunk, u32::MAX).unwrap();
        next = infos.last().unwrap().next_offset();
        out.extend(chunk);
    }
    out
}

#[test]
fn append_and_read_round_trip_across_segment_rolls() {
    let (_dir, mut log) = temp_log(small_config(1000));
    let mut expected = Vec::new();
    for i in 0..30u8 {
        let values = [vec![i; 50], vec![i + 100; 50], vec![i; 7]];
        let recs: Vec<(&[u8], &[u8])> = values.iter().map(|v| (&b"k"[..], &v[..])).collect();
        let mut b = testing::batch(&recs, 1000 + i64::from(i));
        let info = log.append(&mut b, 0, 0).unwrap();
        assert_eq!(info.base_offset, i64::from(i) * 3);
        expected.extend(values);
    }
    assert!(log.segment_count() > 5, "segments: {}", log.segment_count());
    assert_eq!(log.log_end_offset(), 90);
    let records = decode_records(&read_all(&log));
    assert_eq!(records.len(), 90);
    for (i, (offset, key, value)) in records.iter().enumerate() {
        assert_eq!(
            (*offset, key.as_slice(), value),
            (i as i64, &b"k"[..], &expected[i])
        );
    }
    // Every closed segment respects segment_bytes; sizes add up.
    let dir = log.dir().to_path_buf();
    let total: u64 = log
        .segment_base_offsets()
        .iter()
        .map(|&b| file_len(&log.segment_file(b, "log")))
        .sum();
    assert_eq!(total, log.size_bytes());
    for &base in &log.segment_base_offsets() {
        assert!(file_len(&log.segment_file(base, "log")) <= 1000);
        assert!(dir.join(format!("{base:020}.index")).exists());
        assert!(dir.join(format!("{base:020}.timeindex")).exists());
    }
    assert_every_offset_readable(&log);
}

#[test]
fn offsets_are_assigned_consecutively_across_multi_batch_appends() {
    let (_dir, mut log) = temp_log(small_config(1 << 20));
    let mut buf = records(2, 10, 100);
    buf.extend(records(1, 10, 200));
    buf.extend(records(4, 10, 300));
    let info = log.append(&mut buf, 5, 0).unwrap();
    assert_eq!(
        (
            info.base_offset,
            info.last_offset,
            info.batch_count,
            info.max_timestamp
        ),
        (0, 6, 3, 303)
    );
    // The caller's buffer now holds exactly the stored bytes.
    let stored = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(stored, buf);
    let infos = validate_batches(&stored, u32::MAX).unwrap();
    let bases: Vec<i64> = infos.iter().map(|i| i.base_offset).collect();
    assert_eq!(bases, [0, 2, 3]);
    assert!(infos.iter().all(|i| i.partition_leader_epoch == 5));
    let info = log.append(&mut records(1, 1, 400), 5, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (7, 7));
    let offsets: Vec<i64> = decode_records(&read_all(&log))
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(offsets, (0..8).collect::<Vec<_>>());
}

#[test]
fn rejected_input_writes_nothing() {
    let (_dir, mut log) = temp_log(LogConfig {
        max_batch_bytes: 400,
        ..small_config(1 << 20)
    });
    append_n(&mut log, 2, 10, 1);
    let size = log.size_bytes();

    let good = records(1, 10, 5);
    let mut bad_crc = records(1, 10, 5);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x55;
    let mut bad_magic = records(1, 10, 5);
    bad_magic[16] = 1;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        ([good.clone(), bad_crc].concat(), "corrupt"),
        ([good.clone(), bad_magic].concat(), "corrupt"),
        (
            [good.clone(), good[..good.len() - 4].to_vec()].concat(),
            "corrupt",
        ),
        ([good.clone(), records(1, 500, 5)].concat(), "too large"),
        (Vec::new(), "invalid"),
    ];
    for (mut buf, kind) in cases {
        let before = buf.clone();
        let err = log.append(&mut buf, 0, 0).unwrap_err();
        let matched = match kind {
            "corrupt" => matches!(err, LogError::CorruptBatch(_)),
            "too large" => matches!(err, LogError::BatchTooLarge { max: 400, .. }),
            _ => matches!(err, LogError::InvalidRecord(_)),
        };
        assert!(matched, "{kind}: {err}");
        assert_eq!(buf, before, "the input is untouched");
        assert_eq!((log.log_end_offset(), log.size_bytes()), (2, size));
    }
    assert!(matches!(
        log.append_as_follower(&[], 0),
        Err(LogError::InvalidRecord(_))
    ));
    assert_eq!(file_len(&log.segment_file(0, "log")), size);
}

#[test]
fn a_read_at_any_offset_inside_a_batch_returns_that_batch() {
    let (_dir, mut log) = temp_log(small_config(1 << 20));
    for _ in 0..10 {
        append_n(&mut log, 5, 30, 1);
    }
    for offset in 0..50 {
        let bytes = log.read(offset, 1, i64::MAX).unwrap();
        let info = validate_batches(&bytes, u32::MAX).unwrap()[0];
        assert_eq!(info.base_offset, offset / 5 * 5, "offset {offset}");
    }
}

#[test]
fn the_first_batch_is_returned_whole_even_past_max_bytes() {
    let (_dir, mut log) = temp_log(small_config(1 << 20));
    append_n(&mut log, 3, 2000, 1);
    append_n(&mut log, 1, 10, 1);
    append_n(&mut log, 1, 10, 1);
    let first = log.read(0, 100, i64::MAX).unwrap();
    assert!(first.len() > 6000);
    assert_eq!(validate_batches(&first, u32::MAX).unwrap().len(), 1);
    let small = log.read(3, 1 << 20, i64::MAX).unwrap();
    let two = small.len();
    assert_eq!(validate_batches(&small, u32::MAX).unwrap().len(), 2);
    // max_bytes that ends mid-batch returns only whole batches.
    let one = log.read(3, two as u32 - 1, i64::MAX).unwrap();
    assert_eq!(validate_batches(&one, u32::MAX).unwrap().len(), 1);
    assert_eq!(log.read(3, 0, i64::MAX).unwrap().len(), two / 2);
}

#[test]
fn reads_stop_below_max_offset() {
    let (_dir, mut log) = temp_log(small_config(1 << 20));
    for _ in 0..4 {
        append_n(&mut log, 3, 10, 1);
    }
    let bytes = log.read(0, 1 << 20, 5).unwrap();
    let infos = validate_batches(&bytes, u32::MAX).unwrap();
    assert_eq!(
        infos.len(),
        1,
        "batch 3..=5 is not wholly below the high watermark 5"
    );
    assert_eq!(log.read(0, 1 << 20, 6).unwrap().len(), bytes.len() * 2);
    assert!(
        log.read(3, 1 << 20, 5).unwrap().is_empty(),
        "KIP-74 never passes max_offset"
    );
    assert!(log.read(6, 1 << 20, 6).unwrap().is_empty());
}

#[test]
fn reads_outside_the_log_are_out_of_range() {
    let (_dir, mut log) = temp_log(small_config(1 << 20));
    append_n(&mut log, 3, 10, 1);
    assert!(log.read(3, 100, i64::MAX).unwrap().is_empty());
    for offset in [-1, 4, 1000] {
        let err = log.read(offset, 100, i64::MAX).unwrap_err();
        assert!(
            matches!(err, LogError::OffsetOutOfRange { requested, log_start: 0, log_end: 3 } if requested == offset)
        );
    }
    let (_dir, empty) = temp_log(small_config(1 << 20));
    assert_eq!((empty.log_start_offset(), empty.log_end_offset()), (0, 0));
    assert!(empty.read(0, 100, i64::MAX).unwrap().is_empty());
}

#[test]
fn reopening_after_a_clean_close_keeps_everything() {
    let (dir, mut log) = temp_log(small_config(600));
    for i in 0..20 {
        append_n(&mut log, 2, 40, 1000 + i);
    }
    log.close().unwrap();
    let bytes = read_all(&log);
    let (start, end, segments) = (
        log.log_start_offset(),
        log.log_end_offset(),
        log.segment_base_offsets(),
    );
    let index_lens: Vec<u64> = segments
        .iter()
        .map(|&b| file_len(&log.segment_file(b, "index")))
        .collect();
    let max_ts = log.max_timestamp_and_offset();
    drop(log);
    let mut log = Log::open(&dir.path().join("topic-0"), small_config(600), 5).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));
    assert_eq!(log.segment_base_offsets(), segments);
    assert_eq!(log.flushed_offset(), end);
    assert_eq!(read_all(&log), bytes);
    assert_eq!(log.max_timestamp_and_offset(), max_ts);
    let after: Vec<u64> = segments
        .iter()
        .map(|&b| file_len(&log.segment_file(b, "index")))
        .collect();
    assert_eq!(after, index_lens, "recovery rebuilds the same sparse index");
    assert_eq!(append_n(&mut log, 1, 1, 2000), end);
    assert_every_offset_readable(&log);
}

#[test]
fn timestamps_are_found_across_segments() {
    let (_dir, mut log) = temp_log(small_config(500));
    // Batch i has records at 1000*i and 1000*i + 1: max timestamp 1000*i + 1.
    for i in 1..=20 {
        append_n(&mut log, 2, 40, 1000 * i);
    }
    assert!(log.segment_count() > 3);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1001)));
    assert_eq!(log.offset_for_timestamp(1001).unwrap(), Some((0, 1001)));
    assert_eq!(log.offset_for_timestamp(1002).unwrap(), Some((2, 2001)));
    assert_eq!(
        log.offset_for_timestamp(15_500).unwrap(),
        Some((30, 16_001))
    );
    assert_eq!(
        log.offset_for_timestamp(20_001).unwrap(),
        Some((38, 20_001))
    );
    assert_eq!(log.offset_for_timestamp(20_002).unwrap(), None);
    assert_eq!(log.max_timestamp_and_offset(), Some((20_001, 39)));
    // An out-of-order older timestamp never moves the maximum.
    append_n(&mut log, 1, 1, 5);
    assert_eq!(log.max_timestamp_and_offset(), Some((20_001, 39)));
    let (_dir, empty) = temp_log(small_config(500));
    assert_eq!(empty.max_timestamp_and_offset(), None);
    assert_eq!(empty.offset_for_timestamp(0).unwrap(), None);
}

#[test]
fn leader_epochs_are_recorded_answered_and_persisted() {
    let (dir, mut log) = temp_log(small_config(1 << 20));
    assert_eq!(
        (log.latest_epoch(), log.end_offset_for_epoch(0)),
        (None, None)
    );
    log.append(&mut records(3, 1, 1), 1, 0).unwrap();
    log.append(&mut records(2, 1, 1), 1, 0).unwrap();
    log.append(&mut records(2, 1, 1), 4, 0).unwrap();
    assert_eq!(log.epoch_entries(), [(1, 0), (4, 5)]);
    assert_eq!(log.end_offset_for_epoch(0), None);
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 5)));
    assert_eq!(log.end_offset_for_epoch(3), Some((1, 5)));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 7)));
    assert!(matches!(
        log.append(&mut records(1, 1, 1), 2, 0),
        Err(LogError::InvalidRecord(_))
    ));
    assert_eq!(log.log_end_offset(), 7);
    let text = std::fs::read_to_string(log.epoch_checkpoint_path()).unwrap();
    assert_eq!(text, "0\n2\n1 0\n4 5\n");
    drop(log);
    let log = Log::open(&dir.path().join("topic-0"), small_config(1 << 20), 0).unwrap();
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 7)));
}

#[test]
fn follower_appends_keep_the_leaders_offsets_and_epochs() {
    let (_dir, mut log) = temp_log(small_config(1 << 20));
    let mut leader = build_test_batch(0, 2, &[(b"a", b"1"), (b"b", b"2")], 10, |_| {});
    leader.extend(build_test_batch(2, 3, &[(b"c", b"3")], 11, |_| {}));
    let info = log.append_as_follower(&leader, 0).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.batch_count),
        (0, 2, 2)
    );
    assert_eq!(log.epoch_entries(), [(2, 0), (3, 2)]);
    assert_eq!(log.read(0, 1 << 20, i64::MAX).unwrap(), leader);
    let gap = build_test_batch(5, 3, &[(b"d", b"4")], 12, |_| {});
    assert!(matches!(
        log.append_as_follower(&gap, 0),
        Err(LogError::InvalidRecord(_))
    ));
    let mut corrupt = build_test_batch(3, 3, &[(b"d", b"4")], 12, |_| {});
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(
        log.append_as_follower(&corrupt, 0),
        Err(LogError::CorruptBatch(_))
    ));
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn prepare_sync_and_mark_flushed_track_the_recovery_point() {
    let (_dir, mut log) = temp_log(small_config(1 << 20));
    assert!(log.prepare_sync().is_none());
    append_n(&mut log, 3, 10, 1);
    let pending = log.prepare_sync().unwrap();
    assert_eq!(pending.offset(), 3);
    append_n(&mut log, 2, 10, 1);
    assert_eq!(log.flushed_offset(), 0);
    let done = pending.run().unwrap();
    log.mark_flushed(done);
    assert_eq!(log.flushed_offset(), 3);
    let pending = log.prepare_sync().unwrap();
    log.mark_flushed(pending.run().unwrap());
    assert_eq!(log.flushed_offset(), 5);
    assert!(log.prepare_sync().is_none());

    // A sync captured before a truncation does not vouch for what is written after it.
    append_n(&mut log, 2, 10, 1);
    let stale = log.prepare_sync().unwrap();
    log.truncate_to(5).unwrap();
    append_n(&mut log, 2, 10, 1);
    log.mark_flushed(stale.run().unwrap());
    assert_eq!(log.flushed_offset(), 5);
}

#[test]
fn a_roll_syncs_the_closed_segment() {
    let (_dir, mut log) = temp_log(small_config(300));
    append_n(&mut log, 3, 60, 1);
    append_n(&mut log, 3, 60, 1);
    assert_eq!(log.segment_base_offsets(), [0, 3]);
    assert_eq!(log.flushed_offset(), 3);
}

#[test]
fn segments_roll_by_age() {
    let config = LogConfig {
        segment_ms: 100,
        ..small_config(1 << 20)
    };
    let (_dir, mut log) = temp_log(config);
    log.append(&mut records(1, 1, 0), 0, 1_000).unwrap();
    log.append(&mut records(1, 1, 0), 0, 1_050).unwrap();
    log.maybe_roll(1_100).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&mut records(1, 1, 0), 0, 1_101).unwrap();
    assert_eq!(log.segment_base_offsets(), [0, 2]);
    log.maybe_roll(1_150).unwrap();
    assert_eq!(log.segment_count(), 2);
    log.maybe_roll(1_202).unwrap();
    assert_eq!(log.segment_base_offsets(), [0, 2, 3]);
    log.maybe_roll(5_000).unwrap();
    assert_eq!(log.segment_count(), 3, "an empty segment never rolls");
}

#[test]
fn deleting_a_log_removes_its_directory() {
    let (dir, mut log) = temp_log(small_config(1 << 20));
    append_n(&mut log, 1, 1, 1);
    log.delete().unwrap();
    assert!(!dir.path().join("topic-0").exists());
}

#[test]
fn index_files_hold_kafkas_entries() {
    let (_dir, mut log) = temp_log(small_config(1 << 20));
    for i in 0..40 {
        append_n(&mut log, 1 + (i % 3) as usize, 30, 100 * i);
    }
    append_n(&mut log, 1, 1, 5); // an older timestamp adds no time index entry
    let segment = log.read(0, 1 << 20, i64::MAX).unwrap();
    let infos = validate_batches(&segment, u32::MAX).unwrap();
    let mut starts = std::collections::HashMap::new();
    let mut pos = 0u32;
    for info in &infos {
        starts.insert(pos, info.last_offset());
        pos += info.size_bytes;
    }
    let index = std::fs::read(log.segment_file(0, "index")).unwrap();
    assert!(index.len() >= 8 * 10 && index.len() % 8 == 0);
    let mut last_position = 0;
    for entry in index.chunks(8) {
        let relative = i64::from(u32::from_be_bytes(entry[..4].try_into().unwrap()));
        let position = u32::from_be_bytes(entry[4..].try_into().unwrap());
        assert_eq!(
            starts.get(&position),
            Some(&relative),
            "entry names a batch's last offset and start"
        );
        assert!(position > last_position);
        last_position = position;
    }
    let time = std::fs::read(log.segment_file(0, "timeindex")).unwrap();
    assert!(!time.is_empty() && time.len() % 12 == 0);
    let mut last_ts = i64::MIN;
    for entry in time.chunks(12) {
        let ts = i64::from_be_bytes(entry[..8].try_into().unwrap());
        let relative = i64::from(u32::from_be_bytes(entry[8..].try_into().unwrap()));
        assert!(ts > last_ts, "timestamps strictly increase");
        last_ts = ts;
        let holder = infos.iter().find(|i| i.last_offset() == relative).unwrap();
        assert_eq!(holder.max_timestamp, ts);
    }
}

#[test]
fn a_log_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Log>();
    assert_send::<super::PendingSync>();
}

#[test]
fn configs_are_validated() {
    assert_eq!(LogConfig::default().validate(), Ok(()));
    assert_eq!(LogConfig::default().segment_bytes, 1 << 30);
    assert!(LogConfig {
        segment_bytes: 1 << 31,
        ..LogConfig::default()
    }
    .validate()
    .is_err());
    assert!(LogConfig {
        segment_bytes: 0,
        ..LogConfig::default()
    }
    .validate()
    .is_err());
    assert!(LogConfig {
        segment_ms: 0,
        ..LogConfig::default()
    }
    .validate()
    .is_err());
}
