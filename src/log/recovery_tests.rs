//! Crash recovery: torn and corrupt tails, damaged or missing indexes.

use super::partition_tests::{assert_every_offset_readable, read_all};
use super::test_support::*;
use super::Log;

fn reopen(dir: &tempfile::TempDir) -> Log {
    Log::open(&dir.path().join("topic-0"), small_config(700), 0).unwrap()
}

/// A log of 3 or more segments with 10 two-record batches, dropped without close (a crash).
fn crashed_log() -> (tempfile::TempDir, i64, Vec<u8>) {
    let (dir, mut log) = temp_log(small_config(700));
    for i in 0..10 {
        append_n(&mut log, 2, 60, 1000 + i);
    }
    assert!(log.segment_count() >= 3);
    let bytes = read_all(&log);
    let active = *log.segment_base_offsets().last().unwrap();
    (dir, active, bytes)
}

fn segment_file(dir: &tempfile::TempDir, base: i64, ext: &str) -> std::path::PathBuf {
    dir.path().join("topic-0").join(format!("{base:020}.{ext}"))
}

#[test]
fn a_torn_tail_is_cut_and_appends_continue() {
    let (dir, active, bytes) = crashed_log();
    let log_path = segment_file(&dir, active, "log");
    let clean_len = file_len(&log_path);
    let partial = records(2, 60, 5000);
    append_raw(&log_path, &partial[..partial.len() / 2]);
    let mut log = reopen(&dir);
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(file_len(&log_path), clean_len);
    assert_eq!(read_all(&log), bytes);
    assert_eq!(append_n(&mut log, 1, 5, 6000), 20);
    assert_every_offset_readable(&log);
}

#[test]
fn garbage_after_the_last_batch_is_cut() {
    let (dir, active, _) = crashed_log();
    let log_path = segment_file(&dir, active, "log");
    let clean_len = file_len(&log_path);
    append_raw(&log_path, &[0xAB; 200]);
    let log = reopen(&dir);
    assert_eq!((log.log_end_offset(), file_len(&log_path)), (20, clean_len));
}

#[test]
fn a_corrupt_last_batch_is_cut() {
    let (dir, active, _) = crashed_log();
    let log_path = segment_file(&dir, active, "log");
    let len = file_len(&log_path);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&log_path)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xFF], len - 3).unwrap();
    let mut log = reopen(&dir);
    assert_eq!(log.log_end_offset(), 18);
    assert_eq!(append_n(&mut log, 1, 5, 6000), 18);
    assert_every_offset_readable(&log);
}

#[test]
fn a_batch_with_the_wrong_offset_ends_recovery() {
    let (dir, active, _) = crashed_log();
    let log_path = segment_file(&dir, active, "log");
    let len = file_len(&log_path);
    // A whole, CRC-valid batch whose offset does not continue the log (stale bytes).
    append_raw(
        &log_path,
        &super::testing::build_test_batch(3, 0, &[(b"k", b"v")], 1, |_| {}),
    );
    let log = reopen(&dir);
    assert_eq!((log.log_end_offset(), file_len(&log_path)), (20, len));
}

#[test]
fn deleted_indexes_are_rebuilt() {
    let (dir, active, bytes) = crashed_log();
    let first_index = segment_file(&dir, 0, "index");
    let index_len = file_len(&first_index);
    assert!(index_len > 0);
    for base in [0, active] {
        std::fs::remove_file(segment_file(&dir, base, "index")).unwrap();
        std::fs::remove_file(segment_file(&dir, base, "timeindex")).unwrap();
    }
    let log = reopen(&dir);
    assert_eq!(file_len(&first_index), index_len);
    assert!(file_len(&segment_file(&dir, 0, "timeindex")) > 0);
    assert_eq!(read_all(&log), bytes);
    assert_eq!(log.max_timestamp_and_offset(), Some((1010, 19)));
    assert_eq!(log.offset_for_timestamp(1003).unwrap(), Some((4, 1003)));
    assert_every_offset_readable(&log);
}

#[test]
fn an_index_cut_mid_entry_is_repaired() {
    let (dir, active, bytes) = crashed_log();
    for base in [0, active] {
        let path = segment_file(&dir, base, "index");
        let len = file_len(&path);
        if len > 0 {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(len - 3).unwrap();
        }
        append_raw(&segment_file(&dir, base, "timeindex"), &[1, 2, 3, 4, 5]);
    }
    let log = reopen(&dir);
    for base in [0, active] {
        assert_eq!(file_len(&segment_file(&dir, base, "index")) % 8, 0);
        assert_eq!(file_len(&segment_file(&dir, base, "timeindex")) % 12, 0);
    }
    assert_eq!(read_all(&log), bytes);
    assert_every_offset_readable(&log);
}

#[test]
fn an_index_pointing_past_its_log_is_rebuilt() {
    let (dir, _, bytes) = crashed_log();
    let path = segment_file(&dir, 0, "index");
    let mut bogus = Vec::new();
    bogus.extend_from_slice(&1u32.to_be_bytes());
    bogus.extend_from_slice(&1_000_000u32.to_be_bytes());
    append_raw(&path, &bogus);
    let log = reopen(&dir);
    assert_eq!(read_all(&log), bytes);
    assert_every_offset_readable(&log);
}

#[test]
fn an_active_segment_of_pure_garbage_recovers_empty() {
    let (dir, mut log) = temp_log(small_config(700));
    append_n(&mut log, 2, 60, 1);
    drop(log);
    let path = segment_file(&dir, 0, "log");
    std::fs::write(&path, vec![7u8; 300]).unwrap();
    let mut log = reopen(&dir);
    assert_eq!((log.log_end_offset(), file_len(&path)), (0, 0));
    assert_eq!(append_n(&mut log, 1, 1, 1), 0);
}

#[test]
fn epochs_past_the_recovered_end_are_forgotten() {
    let (dir, mut log) = temp_log(small_config(1 << 20));
    log.append(&mut records(2, 1, 1), 1, 0).unwrap();
    log.append(&mut records(2, 1, 1), 2, 0).unwrap();
    let cut = file_len(&log.segment_file(0, "log")) - 1;
    drop(log);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(segment_file(&dir, 0, "log"))
        .unwrap();
    f.set_len(cut).unwrap();
    let log = Log::open(&dir.path().join("topic-0"), small_config(1 << 20), 0).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.epoch_entries(), [(1, 0)]);
}

#[test]
fn orphan_index_files_are_removed() {
    let (dir, log) = temp_log(small_config(1 << 20));
    drop(log);
    let orphan = segment_file(&dir, 42, "index");
    std::fs::write(&orphan, [0u8; 8]).unwrap();
    let log = reopen(&dir);
    assert!(!orphan.exists());
    assert_eq!(log.segment_base_offsets(), [0]);
}

#[test]
fn an_index_naming_no_batch_is_rebuilt() {
    let (dir, _, bytes) = crashed_log();
    let path = segment_file(&dir, 0, "index");
    let index = std::fs::read(&path).unwrap();
    let mut bent = index.clone();
    let n = bent.len();
    // Point the last entry one byte into its batch: in bounds, increasing, but wrong.
    let position = u32::from_be_bytes(bent[n - 4..].try_into().unwrap()) + 1;
    bent[n - 4..].copy_from_slice(&position.to_be_bytes());
    std::fs::write(&path, &bent).unwrap();
    let log = reopen(&dir);
    assert_eq!(std::fs::read(&path).unwrap(), index);
    assert_eq!(read_all(&log), bytes);
    assert_every_offset_readable(&log);
}
