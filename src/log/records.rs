//! The records inside an uncompressed v2 batch: a bounded parser (for the cleaner and for
//! replaying the broker's own internal topics) and a builder for the batches the broker writes
//! itself. Compressed batches are never opened here: decompressing could make a small stored
//! batch allocate without bound.

use super::batch::{field, read_i32, read_i64, HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2};

/// One record of a batch, borrowed from the batch bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Absolute offset (batch base offset + offset delta).
    pub offset: i64,
    /// Absolute timestamp (batch first timestamp + timestamp delta).
    pub timestamp: i64,
    /// The key; None for a null key.
    pub key: Option<&'a [u8]>,
    /// The value; None for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// The whole record as stored, length prefix included (copied verbatim by the cleaner).
    pub raw: &'a [u8],
}

/// Why the records of a batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// The batch is compressed; its records are not opened.
    #[error("batch is compressed with codec {0}")]
    Compressed(u8),
    /// A record runs past the batch or has an impossible length.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

/// Reads a zigzag varint (at most 10 bytes) at `*pos`, advancing it.
fn varint(buf: &[u8], pos: &mut usize) -> Result<i64, RecordsError> {
    let mut raw = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf
            .get(*pos)
            .ok_or(RecordsError::Malformed("varint runs past the batch"))?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(RecordsError::Malformed("varint longer than 10 bytes"))
}

/// Reads a length-prefixed nullable byte field.
fn nullable<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, RecordsError> {
    let len = varint(buf, pos)?;
    if len < 0 {
        return Ok(None);
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|&end| end <= buf.len())
        .ok_or(RecordsError::Malformed("field runs past its record"))?;
    let bytes = &buf[*pos..end];
    *pos = end;
    Ok(Some(bytes))
}

/// Calls `f` for each record of one whole uncompressed v2 batch, in order. The batch must
/// already have passed validation (its length and CRC); every record field is bounds-checked.
pub fn for_each_record<'a>(
    batch: &'a [u8],
    mut f: impl FnMut(RecordView<'a>),
) -> Result<(), RecordsError> {
    if batch.len() < HEADER_BYTES {
        return Err(RecordsError::Malformed("batch shorter than its header"));
    }
    let compression = batch[field::ATTRIBUTES + 1] & 0x07;
    if compression != 0 {
        return Err(RecordsError::Compressed(compression));
    }
    let base_offset = read_i64(batch, field::BASE_OFFSET);
    let first_timestamp = read_i64(batch, field::ATTRIBUTES + 2 + 4);
    let count = read_i32(batch, field::RECORD_COUNT);
    let mut pos = HEADER_BYTES;
    for _ in 0..count.max(0) {
        let start = pos;
        let len = varint(batch, &mut pos)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| pos.checked_add(len))
            .filter(|&end| end <= batch.len())
            .ok_or(RecordsError::Malformed("record runs past the batch"))?;
        let body = &batch[..end];
        pos += 1; // attributes
        let timestamp_delta = varint(body, &mut pos)?;
        let offset_delta = varint(body, &mut pos)?;
        let key = nullable(body, &mut pos)?;
        let value = nullable(body, &mut pos)?;
        f(RecordView {
            offset: base_offset.saturating_add(offset_delta),
            timestamp: first_timestamp.saturating_add(timestamp_delta),
            key,
            value,
            raw: &batch[start..end],
        });
        pos = end;
    }
    Ok(())
}

/// Appends a zigzag varint.
fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
    }
}

/// A record to build: key and value, None for null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds one uncompressed v2 batch (no producer id, offsets from 0, every record stamped
/// `timestamp_ms`), CRC included, ready for `Partition::append`. A None value is a tombstone.
pub fn build_batch(records: &[KeyValue<'_>], timestamp_ms: i64) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let count = records.len() as i32;
    let mut buf = Vec::with_capacity(HEADER_BYTES + records.len() * 64);
    buf.extend_from_slice(&0i64.to_be_bytes()); // base offset: assigned by the log
    buf.extend_from_slice(&0i32.to_be_bytes()); // batch length, below
    buf.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch: stamped by the log
    buf.push(MAGIC_V2 as u8);
    buf.extend_from_slice(&0u32.to_be_bytes()); // CRC, below
    buf.extend_from_slice(&0i16.to_be_bytes()); // attributes: uncompressed, create time
    buf.extend_from_slice(&(count - 1).to_be_bytes());
    buf.extend_from_slice(&timestamp_ms.to_be_bytes());
    buf.extend_from_slice(&timestamp_ms.to_be_bytes());
    buf.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    buf.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    buf.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    buf.extend_from_slice(&count.to_be_bytes());
    let mut body = Vec::new();
    for (index, (key, value)) in records.iter().enumerate() {
        body.clear();
        body.push(0); // attributes
        put_varint(&mut body, 0); // timestamp delta
        put_varint(&mut body, index as i64); // offset delta
        put_nullable(&mut body, *key);
        put_nullable(&mut body, *value);
        put_varint(&mut body, 0); // no headers
        put_varint(&mut buf, body.len() as i64);
        buf.extend_from_slice(&body);
    }
    finish_batch(&mut buf);
    buf
}

/// Sets the batch length and CRC of a whole batch whose records were just written.
pub(crate) fn finish_batch(buf: &mut [u8]) {
    let length = (buf.len() - LOG_OVERHEAD) as i32;
    buf[field::LENGTH..field::LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&buf[field::ATTRIBUTES..]);
    buf[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{testing, validate_batches};

    #[test]
    fn built_batches_validate_and_read_back() {
        let batch = build_batch(
            &[
                (Some(b"k1"), Some(b"v1")),
                (Some(b"k2"), None),
                (None, Some(b"")),
            ],
            1234,
        );
        let info = validate_batches(&batch, 1 << 20).unwrap()[0];
        assert_eq!(
            (
                info.record_count,
                info.last_offset_delta,
                info.max_timestamp
            ),
            (3, 2, 1234)
        );
        let mut seen = Vec::new();
        for_each_record(&batch, |r| {
            seen.push((
                r.offset,
                r.timestamp,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
            ))
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (0, 1234, Some(b"k1".to_vec()), Some(b"v1".to_vec())),
                (1, 1234, Some(b"k2".to_vec()), None),
                (2, 1234, None, Some(Vec::new())),
            ]
        );
    }

    #[test]
    fn records_of_test_batches_are_found_with_raw_bytes() {
        let batch = testing::build_test_batch(100, 0, &[(b"a", b"1"), (b"b", b"22")], 50, |_| {});
        let mut raws = 0;
        let mut offsets = Vec::new();
        for_each_record(&batch, |r| {
            raws += r.raw.len();
            offsets.push((r.offset, r.timestamp));
        })
        .unwrap();
        assert_eq!(offsets, vec![(100, 50), (101, 51)]);
        assert_eq!(raws, batch.len() - HEADER_BYTES);
    }

    #[test]
    fn compressed_and_truncated_batches_are_refused() {
        let gz = testing::batch_with(&[(b"a", b"1")], 5, |b| b[field::ATTRIBUTES + 1] |= 1);
        assert_eq!(
            for_each_record(&gz, |_| {}),
            Err(RecordsError::Compressed(1))
        );
        let batch = testing::batch(&[(b"a", b"12345")], 5);
        let cut = &batch[..batch.len() - 3];
        assert!(matches!(
            for_each_record(cut, |_| {}),
            Err(RecordsError::Malformed(_))
        ));
    }
}
