//! Kafka v2 record batches: header layout, validation and offset assignment.
//!
//! Records are never decompressed or re-encoded; everything here reads or rewrites the
//! fixed 61-byte header. The two fields a broker rewrites (base offset and partition leader
//! epoch) sit before the CRC'd range, so rewriting them keeps the producer's CRC valid.

use super::{BatchInfo, LogError};

/// Bytes before `batchLength`'s coverage starts: baseOffset i64 + batchLength i32.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 batch header, up to and including recordCount.
pub const HEADER_BYTES: usize = 61;
/// The only batch format this log stores.
pub const MAGIC_V2: i8 = 2;
/// Highest compression codec id Kafka defines (zstd).
const MAX_COMPRESSION: u8 = 4;

/// Byte offsets of the header fields (big-endian).
pub(crate) mod field {
    pub const BASE_OFFSET: usize = 0;
    pub const LENGTH: usize = 8;
    pub const LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    /// The CRC covers everything from here to the end of the batch.
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORD_COUNT: usize = 57;
}

/// How strictly a batch is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// Producer input: at least one record, `lastOffsetDelta == recordCount - 1`, known codec.
    Produce,
    /// Bytes already accepted by some log (a leader's, or ours on disk): structure only.
    Stored,
}

pub(crate) fn read_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn read_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

pub(crate) fn read_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Checks what the header alone can tell, given `available` bytes from the batch start
/// onward, and returns the batch's full size. `header` must hold at least [`HEADER_BYTES`]
/// bytes or the whole of `available` if that is less.
pub(crate) fn check_header(
    header: &[u8],
    available: u64,
    max_batch_bytes: u32,
) -> Result<u32, LogError> {
    if header.len() <= field::MAGIC {
        return Err(LogError::CorruptBatch(format!(
            "truncated batch: {available} bytes left, too few to hold a header"
        )));
    }
    // Magic first: a v0/v1 message set has a different layout, so its "length" means nothing.
    let magic = header[field::MAGIC] as i8;
    if magic != MAGIC_V2 {
        return Err(LogError::CorruptBatch(format!(
            "magic {magic}; only v2 record batches (magic 2) are accepted"
        )));
    }
    if header.len() < HEADER_BYTES {
        return Err(LogError::CorruptBatch(format!(
            "truncated batch: {available} bytes left, a v2 header needs {HEADER_BYTES}"
        )));
    }
    let length = read_i32(header, field::LENGTH);
    if length < (HEADER_BYTES - LOG_OVERHEAD) as i32 {
        return Err(LogError::CorruptBatch(format!(
            "batchLength {length} is below the {}-byte minimum",
            HEADER_BYTES - LOG_OVERHEAD
        )));
    }
    // Fits u32: length is a positive i32.
    let size = LOG_OVERHEAD as u64 + length as u64;
    if size > u64::from(max_batch_bytes) {
        return Err(LogError::BatchTooLarge {
            size,
            max: max_batch_bytes,
        });
    }
    if size > available {
        return Err(LogError::CorruptBatch(format!(
            "truncated batch: header says {size} bytes, only {available} present"
        )));
    }
    Ok(size as u32)
}

/// Decodes the header fields into a [`BatchInfo`]; `size_bytes` comes from [`check_header`].
pub(crate) fn parse_info(header: &[u8], size_bytes: u32) -> BatchInfo {
    let attributes = read_i16(header, field::ATTRIBUTES);
    BatchInfo {
        base_offset: read_i64(header, field::BASE_OFFSET),
        last_offset_delta: read_i32(header, field::LAST_OFFSET_DELTA),
        record_count: read_i32(header, field::RECORD_COUNT),
        max_timestamp: read_i64(header, field::MAX_TIMESTAMP),
        producer_id: read_i64(header, field::PRODUCER_ID),
        producer_epoch: read_i16(header, field::PRODUCER_EPOCH),
        base_sequence: read_i32(header, field::BASE_SEQUENCE),
        partition_leader_epoch: read_i32(header, field::LEADER_EPOCH),
        compression: (attributes & 0x07) as u8,
        is_transactional: attributes & 0x10 != 0,
        is_control: attributes & 0x20 != 0,
        size_bytes,
    }
}

/// Judges the decoded header fields; the offset arithmetic elsewhere relies on these.
pub(crate) fn check_fields(info: &BatchInfo, strictness: Strictness) -> Result<(), LogError> {
    if info.last_offset_delta < 0 || info.record_count < 0 {
        return Err(LogError::CorruptBatch(format!(
            "negative lastOffsetDelta {} or recordCount {}",
            info.last_offset_delta, info.record_count
        )));
    }
    if strictness == Strictness::Produce {
        if info.record_count < 1 {
            return Err(LogError::InvalidRecord("batch holds no records".into()));
        }
        if info.last_offset_delta != info.record_count - 1 {
            return Err(LogError::InvalidRecord(format!(
                "lastOffsetDelta {} does not match recordCount {}",
                info.last_offset_delta, info.record_count
            )));
        }
        if info.compression > MAX_COMPRESSION {
            return Err(LogError::InvalidRecord(format!(
                "unknown compression codec {}",
                info.compression
            )));
        }
    }
    Ok(())
}

/// The CRC stored in a whole batch.
pub(crate) fn stored_crc(batch: &[u8]) -> u32 {
    read_i32(batch, field::CRC) as u32
}

/// Checks one whole batch at the start of `rest`, returning its info.
fn check_batch(
    rest: &[u8],
    max_batch_bytes: u32,
    strictness: Strictness,
) -> Result<BatchInfo, LogError> {
    let header = &rest[..rest.len().min(HEADER_BYTES)];
    let size = check_header(header, rest.len() as u64, max_batch_bytes)?;
    let batch = &rest[..size as usize];
    let computed = crc32c::crc32c(&batch[field::ATTRIBUTES..]);
    let stored = stored_crc(batch);
    if computed != stored {
        return Err(LogError::CorruptBatch(format!(
            "CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}"
        )));
    }
    let info = parse_info(batch, size);
    check_fields(&info, strictness)?;
    Ok(info)
}

/// Walks `buf`, which must hold zero or more whole batches, and validates each: magic 2,
/// a sane length within the buffer, the CRC-32C, and (producer input) at least one record
/// with `lastOffsetDelta == recordCount - 1`. A trailing partial batch is an error.
pub fn validate_batches(buf: &[u8], max_batch_bytes: u32) -> Result<Vec<BatchInfo>, LogError> {
    walk(buf, max_batch_bytes, Strictness::Produce)
}

/// Like [`validate_batches`] with structural checks only, for batches a leader already
/// accepted (their offsets may come from a log with different rules).
pub(crate) fn validate_stored_batches(
    buf: &[u8],
    max_batch_bytes: u32,
) -> Result<Vec<BatchInfo>, LogError> {
    walk(buf, max_batch_bytes, Strictness::Stored)
}

fn walk(
    buf: &[u8],
    max_batch_bytes: u32,
    strictness: Strictness,
) -> Result<Vec<BatchInfo>, LogError> {
    let mut infos = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let info = check_batch(&buf[pos..], max_batch_bytes, strictness)
            .map_err(|e| at_batch(e, infos.len(), pos))?;
        pos += info.size_bytes as usize;
        infos.push(info);
    }
    Ok(infos)
}

/// Reads the headers of the whole batches in `buf` without checking CRCs (cheap: for a look
/// at producer ids before an append that validates everything). Lengths are checked, so a
/// bad buffer is an error here too.
pub fn peek_headers(buf: &[u8]) -> Result<Vec<BatchInfo>, LogError> {
    let mut infos = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let size = check_header(
            &rest[..rest.len().min(HEADER_BYTES)],
            rest.len() as u64,
            u32::MAX,
        )
        .map_err(|e| at_batch(e, infos.len(), pos))?;
        let info = parse_info(rest, size);
        pos += size as usize;
        infos.push(info);
    }
    Ok(infos)
}

/// Adds the batch's place in the request to a corruption message.
fn at_batch(err: LogError, index: usize, pos: usize) -> LogError {
    match err {
        LogError::CorruptBatch(m) => {
            LogError::CorruptBatch(format!("batch #{index} at byte {pos}: {m}"))
        }
        LogError::InvalidRecord(m) => {
            LogError::InvalidRecord(format!("batch #{index} at byte {pos}: {m}"))
        }
        other => other,
    }
}

/// Reads back stored bytes: returns the infos of the whole, intact batches at the start of
/// `buf` and how many bytes they cover; stops at the first torn or corrupt batch.
pub fn scan_valid_prefix(buf: &[u8]) -> (Vec<BatchInfo>, usize) {
    let mut infos = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        match check_batch(&buf[pos..], u32::MAX, Strictness::Stored) {
            Ok(info) => {
                pos += info.size_bytes as usize;
                infos.push(info);
            }
            Err(_) => break,
        }
    }
    (infos, pos)
}

/// Rewrites a batch's baseOffset (bytes 0..8, outside the CRC).
pub(crate) fn set_base_offset(batch: &mut [u8], offset: i64) {
    batch[field::BASE_OFFSET..field::BASE_OFFSET + 8].copy_from_slice(&offset.to_be_bytes());
}

/// Rewrites a batch's partitionLeaderEpoch (bytes 12..16, outside the CRC).
pub(crate) fn set_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[field::LEADER_EPOCH..field::LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::testing;

    #[test]
    fn valid_batches_are_summarised_from_their_headers() {
        let mut buf = testing::batch(&[(b"k1", b"v1"), (b"k2", b"v2")], 1_000);
        buf.extend(testing::batch(&[(b"", b"v3")], 2_000));
        let infos = validate_batches(&buf, 1 << 20).unwrap();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].record_count, 2);
        assert_eq!(infos[0].last_offset_delta, 1);
        assert_eq!(infos[0].max_timestamp, 1_001);
        assert_eq!(infos[1].record_count, 1);
        assert_eq!(infos[1].max_timestamp, 2_000);
        assert_eq!(
            infos[0].size_bytes as usize + infos[1].size_bytes as usize,
            buf.len()
        );
        assert_eq!(infos[0].compression, 0);
        assert!(!infos[0].is_control && !infos[0].is_transactional);
    }

    #[test]
    fn empty_input_has_no_batches() {
        assert!(validate_batches(&[], 100).unwrap().is_empty());
    }

    #[test]
    fn crc_mismatch_is_corrupt() {
        let mut buf = testing::batch(&[(b"k", b"value")], 1);
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        assert!(
            matches!(validate_batches(&buf, 1 << 20), Err(LogError::CorruptBatch(m)) if m.contains("CRC"))
        );
    }

    #[test]
    fn bad_magic_is_corrupt() {
        let mut buf = testing::batch(&[(b"k", b"value")], 1);
        buf[field::MAGIC] = 1;
        assert!(
            matches!(validate_batches(&buf, 1 << 20), Err(LogError::CorruptBatch(m)) if m.contains("magic"))
        );
    }

    #[test]
    fn truncated_input_is_corrupt() {
        let buf = testing::batch(&[(b"k", b"value")], 1);
        for cut in [1, 16, 17, 40, buf.len() - 1] {
            assert!(
                matches!(
                    validate_batches(&buf[..cut], 1 << 20),
                    Err(LogError::CorruptBatch(_))
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn short_length_field_is_corrupt() {
        let mut buf = testing::batch(&[(b"k", b"value")], 1);
        buf[field::LENGTH..field::LENGTH + 4].copy_from_slice(&10i32.to_be_bytes());
        assert!(
            matches!(validate_batches(&buf, 1 << 20), Err(LogError::CorruptBatch(m)) if m.contains("minimum"))
        );
    }

    #[test]
    fn oversized_batch_is_too_large() {
        let buf = testing::batch(&[(b"k", &[7u8; 500][..])], 1);
        let err = validate_batches(&buf, 100).unwrap_err();
        assert!(
            matches!(err, LogError::BatchTooLarge { size, max: 100 } if size == buf.len() as u64)
        );
    }

    #[test]
    fn mismatched_record_count_is_invalid_for_producers_only() {
        let buf = testing::batch_with(&[(b"k", b"v"), (b"k", b"v")], 5, |b| {
            b[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
                .copy_from_slice(&5i32.to_be_bytes());
        });
        assert!(matches!(
            validate_batches(&buf, 1 << 20),
            Err(LogError::InvalidRecord(_))
        ));
        assert_eq!(
            validate_stored_batches(&buf, 1 << 20).unwrap()[0].last_offset_delta,
            5
        );
    }

    #[test]
    fn zero_records_is_invalid() {
        let buf = testing::batch_with(&[(b"k", b"v")], 5, |b| {
            b[field::RECORD_COUNT..field::RECORD_COUNT + 4].copy_from_slice(&0i32.to_be_bytes());
            b[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
                .copy_from_slice(&(-1i32).to_be_bytes());
        });
        assert!(validate_batches(&buf, 1 << 20).is_err());
    }

    #[test]
    fn offset_and_epoch_rewrites_keep_the_crc_valid() {
        let mut buf = testing::batch(&[(b"k", b"v")], 9);
        set_base_offset(&mut buf, 1234);
        set_leader_epoch(&mut buf, 7);
        let info = validate_batches(&buf, 1 << 20).unwrap()[0];
        assert_eq!(info.base_offset, 1234);
        assert_eq!(info.partition_leader_epoch, 7);
    }

    #[test]
    fn valid_prefix_stops_at_a_torn_or_corrupt_batch() {
        let one = testing::batch(&[(b"a", b"1")], 1);
        let mut buf = one.clone();
        buf.extend(&one);
        let whole = buf.len();
        buf.extend(&one[..one.len() - 3]);
        let (infos, valid) = scan_valid_prefix(&buf);
        assert_eq!((infos.len(), valid), (2, whole));

        let mut corrupt = buf[..whole].to_vec();
        let end = corrupt.len() - 1;
        corrupt[end] ^= 1;
        let (infos, valid) = scan_valid_prefix(&corrupt);
        assert_eq!((infos.len(), valid), (1, one.len()));
    }
}
