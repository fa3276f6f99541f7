//! Sequence checks, duplicates, epochs, limits and snapshots of producer state.

use super::*;

/// An idempotent batch header: `count` records from sequence `seq`, at offset `offset`.
fn batch(pid: i64, epoch: i16, seq: i32, count: i32, offset: i64) -> BatchInfo {
    BatchInfo {
        base_offset: offset,
        last_offset_delta: count - 1,
        record_count: count,
        max_timestamp: 1_000,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        partition_leader_epoch: 0,
        compression: 0,
        is_transactional: false,
        is_control: false,
        size_bytes: 100,
    }
}

fn append(states: &mut ProducerStates, info: BatchInfo) -> Result<Check, ProducerError> {
    let check = states.check(&[info])?;
    if check == Check::Append {
        states.record(&[info], 0);
    }
    Ok(check)
}

#[test]
fn sequences_must_continue_and_retries_are_duplicates_with_their_offsets() {
    let mut s = ProducerStates::new(10, i64::MAX);
    assert_eq!(append(&mut s, batch(7, 0, 0, 3, 100)), Ok(Check::Append));
    assert_eq!(append(&mut s, batch(7, 0, 3, 2, 103)), Ok(Check::Append));
    // The first batch sent again (at whatever offset the request carries) is a duplicate.
    match append(&mut s, batch(7, 0, 0, 3, 0)) {
        Ok(Check::Duplicate(meta)) => assert_eq!((meta.base_offset, meta.last_offset), (100, 102)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        append(&mut s, batch(7, 0, 9, 1, 0)),
        Err(ProducerError::OutOfOrderSequence {
            producer_id: 7,
            got: 9,
            expected: 5
        })
    );
    assert_eq!(s.last(7), Some((0, Some(4))));
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let mut s = ProducerStates::new(10, i64::MAX);
    for i in 0..7 {
        append(&mut s, batch(1, 0, i, 1, i64::from(i))).unwrap();
    }
    assert!(matches!(
        append(&mut s, batch(1, 0, 2, 1, 0)),
        Ok(Check::Duplicate(_))
    ));
    // Sequence 1 fell out of the window: no longer recognised, and not in order either.
    assert!(matches!(
        append(&mut s, batch(1, 0, 1, 1, 0)),
        Err(ProducerError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn epochs_fence_old_producers_and_a_new_epoch_restarts_at_zero() {
    let mut s = ProducerStates::new(10, i64::MAX);
    append(&mut s, batch(5, 2, 0, 1, 0)).unwrap();
    assert!(matches!(
        append(&mut s, batch(5, 1, 1, 1, 1)),
        Err(ProducerError::InvalidEpoch {
            got: 1,
            current: 2,
            ..
        })
    ));
    assert!(matches!(
        append(&mut s, batch(5, 3, 4, 1, 1)),
        Err(ProducerError::OutOfOrderSequence { expected: 0, .. })
    ));
    assert_eq!(append(&mut s, batch(5, 3, 0, 1, 1)), Ok(Check::Append));
    assert_eq!(s.last(5), Some((3, Some(0))));
}

#[test]
fn unknown_producers_must_start_at_sequence_zero() {
    let s = ProducerStates::new(10, i64::MAX);
    assert_eq!(
        s.check(&[batch(9, 0, 4, 1, 0)]),
        Err(ProducerError::UnknownProducer {
            producer_id: 9,
            first_seq: 4
        })
    );
    assert_eq!(s.check(&[batch(9, 0, 0, 1, 0)]), Ok(Check::Append));
}

#[test]
fn batches_of_one_request_are_checked_in_order() {
    let s = ProducerStates::new(10, i64::MAX);
    assert_eq!(
        s.check(&[batch(1, 0, 0, 2, 0), batch(1, 0, 2, 2, 2)]),
        Ok(Check::Append)
    );
    assert!(s
        .check(&[batch(1, 0, 0, 2, 0), batch(1, 0, 3, 2, 2)])
        .is_err());
}

#[test]
fn sequences_wrap_after_i32_max() {
    let mut s = ProducerStates::new(10, i64::MAX);
    append(&mut s, batch(1, 0, 0, 1, 0)).unwrap();
    s.producers
        .get_mut(&1)
        .unwrap()
        .batches
        .back_mut()
        .unwrap()
        .last_seq = i32::MAX - 1;
    assert_eq!(
        append(&mut s, batch(1, 0, i32::MAX, 2, 1)),
        Ok(Check::Append)
    );
    assert_eq!(s.last(1), Some((0, Some(0))));
    assert_eq!(append(&mut s, batch(1, 0, 1, 1, 3)), Ok(Check::Append));
}

#[test]
fn idle_producers_expire_and_the_idlest_makes_room() {
    let mut s = ProducerStates::new(2, 1_000);
    s.record(&[batch(1, 0, 0, 1, 0)], 100);
    s.record(&[batch(2, 0, 0, 1, 1)], 200);
    s.record(&[batch(3, 0, 0, 1, 2)], 300);
    assert_eq!(s.len(), 2);
    assert!(s.last(1).is_none(), "the idlest producer was forgotten");
    assert_eq!(s.expire(1_250), 1);
    assert!(s.last(2).is_none() && s.last(3).is_some());
}

#[test]
fn non_idempotent_and_transactional_batches() {
    let mut s = ProducerStates::new(10, i64::MAX);
    let plain = batch(-1, -1, -1, 1, 0);
    assert_eq!(append(&mut s, plain), Ok(Check::Append));
    assert!(s.is_empty());
    let txn = BatchInfo {
        is_transactional: true,
        ..batch(1, 0, 0, 1, 0)
    };
    assert!(matches!(
        s.check(&[txn]),
        Err(ProducerError::InvalidRecord(_))
    ));
}

#[test]
fn snapshots_round_trip_and_reject_corruption() {
    let mut s = ProducerStates::new(10, i64::MAX);
    for pid in 0..3 {
        for i in 0..6 {
            s.record(&[batch(pid, 1, i * 2, 2, i64::from(i) * 2)], 50);
        }
    }
    let bytes = s.encode_snapshot(42);
    let mut back = ProducerStates::new(10, i64::MAX);
    assert_eq!(back.decode_snapshot(&bytes), Ok(42));
    assert_eq!(back.producers, s.producers);
    let mut bad = bytes.clone();
    bad[10] ^= 1;
    assert!(ProducerStates::new(10, 0).decode_snapshot(&bad).is_err());
    assert!(ProducerStates::new(10, 0)
        .decode_snapshot(&bytes[..bytes.len() - 5])
        .is_err());
}
