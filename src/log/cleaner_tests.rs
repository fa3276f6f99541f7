//! Compaction: latest value per key survives, offsets never move, tombstones expire, and an
//! interrupted swap is repaired at open.

use super::records::{build_batch, for_each_record};
use super::scan_valid_prefix;
use super::test_support::*;
use super::{Log, LogConfig};

fn compact_config() -> LogConfig {
    LogConfig {
        compact: true,
        delete_retention_ms: 1_000,
        ..small_config(400)
    }
}

/// Appends one record per call: key `k{key}`, value `v{n}` (None: a tombstone).
fn put(log: &mut Log, key: u32, value: Option<u32>, ts: i64) -> i64 {
    let k = format!("k{key}");
    let v = value.map(|v| format!("v{v}"));
    let mut batch = build_batch(&[(Some(k.as_bytes()), v.as_deref().map(str::as_bytes))], ts);
    log.append(&mut batch, 0, ts).unwrap().base_offset
}

/// Every record readable from the log start: (offset, key, value).
fn contents(log: &Log) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let chunk = log.read(next, 1 << 20, i64::MAX).unwrap();
        if chunk.is_empty() {
            break;
        }
        let (infos, valid) = scan_valid_prefix(&chunk);
        assert_eq!(valid, chunk.len(), "reads return whole valid batches");
        let mut pos = 0;
        for info in &infos {
            let batch = &chunk[pos..pos + info.size_bytes as usize];
            for_each_record(batch, |r| {
                let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                out.push((r.offset, text(r.key.unwrap()), r.value.map(text)));
            })
            .unwrap();
            pos += info.size_bytes as usize;
            next = info.next_offset();
        }
    }
    out
}

fn clean(log: &mut Log, now_ms: i64) -> Option<super::CleanReport> {
    let job = log.clean_job(now_ms)?;
    let outcome = job.run(now_ms, 1 << 20).unwrap();
    log.finish_clean(outcome).unwrap()
}

/// 40 updates to 4 keys (k0..k3, value = update number), many small segments.
fn updated(log: &mut Log) {
    for n in 0..40 {
        put(log, n % 4, Some(n), 10_000 + i64::from(n));
    }
}

#[test]
fn compaction_keeps_the_latest_value_of_each_key_at_its_offset() {
    let (_dir, mut log) = temp_log(compact_config());
    updated(&mut log);
    assert!(log.segment_count() > 4, "{}", log.segment_count());
    let report = clean(&mut log, 20_000).expect("a first pass has work");
    assert!(
        report.records_removed > 0 && report.bytes_after < report.bytes_before,
        "{report:?}"
    );
    // The next pass merges the now small cleaned segments (grouped by their current size).
    let more = log.log_end_offset() as u32;
    for n in more..more + 40 {
        put(&mut log, n % 4, Some(n), 10_000 + i64::from(n));
    }
    let segments_before = log.segment_count();
    clean(&mut log, 20_000).expect("new dirty segments");
    assert!(
        log.segment_count() < segments_before,
        "small cleaned segments are merged"
    );
    let end = log.log_end_offset();
    let active_base = *log.segment_base_offsets().last().unwrap();
    assert_eq!(log.log_end_offset(), end, "the log end never moves");
    let records = contents(&log);
    // In the closed part each key appears once, with its latest value there; the active
    // segment is untouched.
    let closed: Vec<_> = records.iter().filter(|r| r.0 < active_base).collect();
    let mut keys: Vec<&String> = closed.iter().map(|r| &r.1).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        closed.len(),
        "one record per key in cleaned segments: {closed:?}"
    );
    for (offset, _, value) in &records {
        assert_eq!(
            value.as_deref(),
            Some(format!("v{offset}").as_str()),
            "offsets keep their records"
        );
    }
    assert!(
        records.iter().any(|r| r.0 == end - 1),
        "the newest record is there"
    );
    // Nothing more to do until more data arrives.
    assert!(log.clean_job(20_000).is_none());
    // Reopening finds the same records.
    let dir = log.dir().to_path_buf();
    log.close().unwrap();
    drop(log);
    let log = Log::open(&dir, compact_config(), 0).unwrap();
    assert_eq!(contents(&log), records);
}

#[test]
fn newer_values_in_later_segments_win_over_cleaned_ones() {
    let (_dir, mut log) = temp_log(compact_config());
    // Key k50 is never updated again: the merged output of the first group then holds a
    // record past the group's first segment.
    for n in 0..40 {
        let key = if n == 12 { 50 } else { n % 4 };
        put(&mut log, key, Some(n), 10_000 + i64::from(n));
    }
    clean(&mut log, 20_000).unwrap();
    for n in 40..80 {
        put(&mut log, n % 4, Some(n), 10_000 + i64::from(n));
    }
    clean(&mut log, 20_000).expect("new dirty segments");
    let active_base = *log.segment_base_offsets().last().unwrap();
    let closed: Vec<_> = contents(&log)
        .into_iter()
        .filter(|r| r.0 < active_base)
        .collect();
    for key in 0..4 {
        let name = format!("k{key}");
        let hits: Vec<_> = closed.iter().filter(|r| r.1 == name).collect();
        assert!(hits.len() <= 1, "{hits:?}");
        if let Some(hit) = hits.first() {
            assert!(hit.0 >= 40, "an old value survived: {hit:?}");
        }
    }
}

#[test]
fn tombstones_are_kept_for_delete_retention_then_dropped() {
    let (_dir, mut log) = temp_log(compact_config());
    put(&mut log, 7, Some(1), 1_000);
    put(&mut log, 7, None, 2_000);
    updated(&mut log);
    clean(&mut log, 2_500).unwrap();
    let records = contents(&log);
    assert!(
        !records.iter().any(|r| r.1 == "k7" && r.2.is_some()),
        "the deleted value is gone"
    );
    assert!(
        records.iter().any(|r| r.1 == "k7" && r.2.is_none()),
        "the tombstone stays for a while"
    );
    // Past delete_retention_ms the tombstone goes too, even with nothing else dirty.
    clean(&mut log, 3_001).expect("a due tombstone makes a pass");
    assert!(!contents(&log).iter().any(|r| r.1 == "k7"));
}

#[test]
fn logs_without_compaction_are_never_cleaned() {
    let (_dir, mut log) = temp_log(small_config(400));
    updated(&mut log);
    assert!(log.clean_job(20_000).is_none());
}

#[test]
fn a_swap_interrupted_before_the_old_segments_went_is_repaired_at_open() {
    let (_dir, mut log) = temp_log(compact_config());
    // Key k50 is never updated again: the merged output of the first group then holds a
    // record past the group's first segment.
    for n in 0..40 {
        let key = if n == 12 { 50 } else { n % 4 };
        put(&mut log, key, Some(n), 10_000 + i64::from(n));
    }
    clean(&mut log, 20_000).unwrap();
    for n in 40..80 {
        put(&mut log, n % 4, Some(n), 10_000 + i64::from(n));
    }
    let expected_end = log.log_end_offset();
    let dir = log.dir().to_path_buf();
    let bases = log.segment_base_offsets();
    let job = log.clean_job(20_000).unwrap();
    let _outcome = job.run(20_000, 1 << 20).unwrap();
    // Do the first steps of the swap by hand for the first group, then "crash".
    let tmp = dir.join("cleaner-tmp");
    let first = bases[0];
    let name = |base: i64, ext: &str| format!("{base:020}.{ext}");
    std::fs::remove_file(dir.join(name(first, "index"))).unwrap();
    std::fs::remove_file(dir.join(name(first, "timeindex"))).unwrap();
    std::fs::rename(tmp.join(name(first, "log")), dir.join(name(first, "log"))).unwrap();
    drop(log);
    let log = Log::open(&dir, compact_config(), 0).unwrap();
    assert!(!tmp.exists(), "the unfinished output is removed");
    assert!(
        log.segment_count() < bases.len(),
        "segments covered by the merged output are gone"
    );
    assert_eq!(log.log_end_offset(), expected_end);
    let records = contents(&log);
    let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
    let mut sorted = offsets.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        offsets, sorted,
        "offsets strictly grow, no duplicates: {offsets:?}"
    );
    for (offset, _, value) in &records {
        assert_eq!(value.as_deref(), Some(format!("v{offset}").as_str()));
    }
}
