//! Builders for valid (or deliberately broken) v2 record batches, for tests here, in the
//! broker and in `tests/`. Always compiled so integration tests can use them; tiny and
//! allocation-only, it costs the daemon nothing.

use super::batch::{field, read_i32, read_i64, HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2};

/// Appends a zigzag varint (Kafka's record field encoding).
fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a zigzag varint at `*pos`, advancing it.
fn get_varint(buf: &[u8], pos: &mut usize) -> i64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn encode_record(out: &mut Vec<u8>, index: usize, key: &[u8], value: &[u8]) {
    let mut body = Vec::new();
    body.push(0); // attributes
    put_varint(&mut body, index as i64); // timestamp delta: record i is at base + i ms
    put_varint(&mut body, index as i64); // offset delta
    if key.is_empty() {
        put_varint(&mut body, -1);
    } else {
        put_varint(&mut body, key.len() as i64);
        body.extend_from_slice(key);
    }
    put_varint(&mut body, value.len() as i64);
    body.extend_from_slice(value);
    put_varint(&mut body, 0); // no headers
    put_varint(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// Builds an uncompressed v2 batch with a correct CRC-32C. Record `i` gets timestamp
/// `timestamp_ms + i` and offset `base_offset + i`; an empty key is written as a null key.
/// `tweak` may edit the bytes before the CRC is computed (to build invalid-but-CRC-valid input).
pub fn build_test_batch(
    base_offset: i64,
    partition_leader_epoch: i32,
    records: &[(&[u8], &[u8])],
    timestamp_ms: i64,
    tweak: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let count = records.len() as i32;
    let mut buf = Vec::with_capacity(HEADER_BYTES);
    buf.extend_from_slice(&base_offset.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes()); // batchLength, filled in below
    buf.extend_from_slice(&partition_leader_epoch.to_be_bytes());
    buf.push(MAGIC_V2 as u8);
    buf.extend_from_slice(&0u32.to_be_bytes()); // crc, filled in below
    buf.extend_from_slice(&0i16.to_be_bytes()); // attributes: no compression, create time
    buf.extend_from_slice(&(count - 1).max(0).to_be_bytes());
    buf.extend_from_slice(&timestamp_ms.to_be_bytes());
    buf.extend_from_slice(&(timestamp_ms + i64::from(count - 1).max(0)).to_be_bytes());
    buf.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    buf.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    buf.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    buf.extend_from_slice(&count.to_be_bytes());
    debug_assert_eq!(buf.len(), HEADER_BYTES);
    for (i, (key, value)) in records.iter().enumerate() {
        encode_record(&mut buf, i, key, value);
    }
    let length = (buf.len() - LOG_OVERHEAD) as i32;
    buf[field::LENGTH..field::LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    tweak(&mut buf);
    fix_crc(&mut buf);
    buf
}

/// An uncompressed batch at offset 0, epoch -1; see [`build_test_batch`].
pub fn batch(records: &[(&[u8], &[u8])], timestamp_ms: i64) -> Vec<u8> {
    build_test_batch(0, -1, records, timestamp_ms, |_| {})
}

/// Like [`batch`], with `tweak` applied before the CRC is computed.
pub fn batch_with(
    records: &[(&[u8], &[u8])],
    timestamp_ms: i64,
    tweak: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    build_test_batch(0, -1, records, timestamp_ms, tweak)
}

/// Recomputes the CRC-32C of one whole batch in place.
pub fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[field::ATTRIBUTES..]);
    batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// One decoded record of an uncompressed batch: (offset, key, value); a null key is empty.
pub type TestRecord = (i64, Vec<u8>, Vec<u8>);

/// Decodes every record of a buffer of whole uncompressed batches, for assertions.
/// Panics on malformed input: it is a test helper, not a parser for untrusted bytes.
pub fn decode_records(buf: &[u8]) -> Vec<TestRecord> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let b = &buf[pos..];
        let size = LOG_OVERHEAD + read_i32(b, field::LENGTH) as usize;
        let base = read_i64(b, field::BASE_OFFSET);
        let count = read_i32(b, field::RECORD_COUNT);
        let mut p = HEADER_BYTES;
        for _ in 0..count {
            let len = get_varint(b, &mut p) as usize;
            let end = p + len;
            p += 1; // attributes
            get_varint(b, &mut p); // timestamp delta
            let offset_delta = get_varint(b, &mut p);
            let key_len = get_varint(b, &mut p);
            let key = if key_len < 0 {
                Vec::new()
            } else {
                b[p..p + key_len as usize].to_vec()
            };
            p += key_len.max(0) as usize;
            let value_len = get_varint(b, &mut p);
            let value = b[p..p + value_len.max(0) as usize].to_vec();
            out.push((base + offset_delta, key, value));
            p = end;
        }
        pos += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_batches_decode_back() {
        let mut buf = build_test_batch(10, 3, &[(b"k", b"hello"), (b"", b"world")], 100, |_| {});
        buf.extend(batch(&[(b"x", &[0u8; 300][..])], 5));
        let records = decode_records(&buf);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0], (10, b"k".to_vec(), b"hello".to_vec()));
        assert_eq!(records[1], (11, Vec::new(), b"world".to_vec()));
        assert_eq!(records[2].2.len(), 300);
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::from(i32::MAX),
            i64::MIN / 2,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut pos = 0;
            assert_eq!(get_varint(&out, &mut pos), v);
            assert_eq!(pos, out.len());
        }
    }
}
