//! Building v2 record batches from individual records, for data that enters the log
//! without a Kafka producer (MQTT ingest). The output is exactly what a producer would
//! send: one uncompressed batch, producer id -1, CRC-32C over the CRC'd range, ready for
//! `Partition::append`.
//!
//! The builder writes straight into one buffer (record sizes are computed, not measured by
//! encoding twice), so a batch costs one allocation that the caller sizes and bounds.

use super::batch::{field, HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2};

/// One record header: a UTF-8 key and a byte value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header's name.
    pub key: &'a str,
    /// The header's value (Kafka allows null; ingest never needs it).
    pub value: &'a [u8],
}

/// Accumulates records into one uncompressed v2 batch.
#[derive(Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    count: u32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
}

impl BatchBuilder {
    /// Start a batch whose base timestamp is `base_timestamp_ms`; `capacity_bytes` is the
    /// caller's estimate of the finished size (see [`BatchBuilder::record_bytes`]).
    pub fn new(base_timestamp_ms: i64, capacity_bytes: usize) -> BatchBuilder {
        let mut buf = Vec::with_capacity(capacity_bytes.max(HEADER_BYTES));
        buf.resize(HEADER_BYTES, 0);
        BatchBuilder {
            buf,
            count: 0,
            base_timestamp_ms,
            max_timestamp_ms: base_timestamp_ms,
        }
    }

    /// Bytes one record will take in the batch (length prefix included); lets a caller
    /// decide whether it still fits under a size limit before pushing it.
    pub fn record_bytes(
        offset_delta: u32,
        timestamp_delta: i64,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[Header<'_>],
    ) -> usize {
        let body = Self::body_bytes(offset_delta, timestamp_delta, key, value, headers);
        varint_len(body as i64) + body
    }

    fn body_bytes(
        offset_delta: u32,
        timestamp_delta: i64,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[Header<'_>],
    ) -> usize {
        let key_bytes = match key {
            Some(key) => varint_len(key.len() as i64) + key.len(),
            None => varint_len(-1),
        };
        let header_bytes: usize = headers
            .iter()
            .map(|h| {
                varint_len(h.key.len() as i64)
                    + h.key.len()
                    + varint_len(h.value.len() as i64)
                    + h.value.len()
            })
            .sum();
        1 + varint_len(timestamp_delta)
            + varint_len(i64::from(offset_delta))
            + key_bytes
            + varint_len(value.len() as i64)
            + value.len()
            + varint_len(headers.len() as i64)
            + header_bytes
    }

    /// Append one record.
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[Header<'_>],
    ) {
        let offset_delta = self.count;
        let timestamp_delta = timestamp_ms - self.base_timestamp_ms;
        let body = Self::body_bytes(offset_delta, timestamp_delta, key, value, headers);
        let start = self.buf.len();
        let out = &mut self.buf;
        put_varint(out, body as i64);
        let body_start = out.len();
        out.push(0); // record attributes: unused in v2
        put_varint(out, timestamp_delta);
        put_varint(out, i64::from(offset_delta));
        match key {
            Some(key) => {
                put_varint(out, key.len() as i64);
                out.extend_from_slice(key);
            }
            None => put_varint(out, -1),
        }
        put_varint(out, value.len() as i64);
        out.extend_from_slice(value);
        put_varint(out, headers.len() as i64);
        for header in headers {
            put_varint(out, header.key.len() as i64);
            out.extend_from_slice(header.key.as_bytes());
            put_varint(out, header.value.len() as i64);
            out.extend_from_slice(header.value);
        }
        debug_assert_eq!(
            out.len() - body_start,
            body,
            "computed record size must match the encoding"
        );
        debug_assert!(out.len() > start);
        self.count += 1;
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
    }

    /// Records pushed so far.
    pub fn record_count(&self) -> u32 {
        self.count
    }

    /// Size of the batch if finished now.
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Whether no record has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Fill in the header and CRC and return the batch. Panics if no record was pushed: an
    /// empty batch is invalid and callers check [`BatchBuilder::is_empty`].
    pub fn finish(mut self) -> Vec<u8> {
        assert!(self.count > 0, "a record batch needs at least one record");
        let length = i32::try_from(self.buf.len() - LOG_OVERHEAD).expect("batch larger than 2 GiB");
        let count = i32::try_from(self.count).expect("record count fits i32");
        let b = &mut self.buf;
        b[field::BASE_OFFSET..field::BASE_OFFSET + 8].copy_from_slice(&0i64.to_be_bytes());
        b[field::LENGTH..field::LENGTH + 4].copy_from_slice(&length.to_be_bytes());
        b[field::LEADER_EPOCH..field::LEADER_EPOCH + 4].copy_from_slice(&(-1i32).to_be_bytes());
        b[field::MAGIC] = MAGIC_V2 as u8;
        // attributes: no compression, create time, not transactional, not control
        b[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&0i16.to_be_bytes());
        b[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&(count - 1).to_be_bytes());
        let base_timestamp = field::LAST_OFFSET_DELTA + 4;
        b[base_timestamp..base_timestamp + 8]
            .copy_from_slice(&self.base_timestamp_ms.to_be_bytes());
        b[field::MAX_TIMESTAMP..field::MAX_TIMESTAMP + 8]
            .copy_from_slice(&self.max_timestamp_ms.to_be_bytes());
        b[field::PRODUCER_ID..field::PRODUCER_ID + 8].copy_from_slice(&(-1i64).to_be_bytes());
        b[field::PRODUCER_EPOCH..field::PRODUCER_EPOCH + 2].copy_from_slice(&(-1i16).to_be_bytes());
        b[field::BASE_SEQUENCE..field::BASE_SEQUENCE + 4].copy_from_slice(&(-1i32).to_be_bytes());
        b[field::RECORD_COUNT..field::RECORD_COUNT + 4].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&b[field::ATTRIBUTES..]);
        b[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        self.buf
    }
}

/// Bytes a zigzag varint takes.
pub fn varint_len(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    // 7 payload bits per byte; zero still takes one byte.
    (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
}

/// Appends a zigzag varint (Kafka's record field encoding).
fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn varint_lengths_match_encoding() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            8191,
            8192,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(varint_len(v), out.len(), "{v}");
        }
    }

    #[test]
    fn built_batch_passes_log_validation_and_decodes_with_headers() {
        let mut builder = BatchBuilder::new(1_000, 0);
        let headers = [
            Header {
                key: "mqtt.topic",
                value: b"sensors/a",
            },
            Header {
                key: "unit",
                value: "°C".as_bytes(),
            },
        ];
        let expected = BatchBuilder::record_bytes(0, 0, Some(b"sensors/a"), b"21.5", &headers);
        builder.push(1_000, Some(b"sensors/a"), b"21.5", &headers);
        assert_eq!(builder.size_bytes(), HEADER_BYTES + expected);
        builder.push(1_007, None, &[7u8; 300], &[]);
        builder.push(999, Some(b""), b"", &[]);
        let batch = builder.finish();

        let infos = crate::log::validate_batches(&batch, 1 << 20).expect("valid batch");
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].last_offset_delta, 2);
        assert_eq!(infos[0].max_timestamp, 1_007);

        // An independent decoder (kafka-protocol's, which checks the CRC) reads it back.
        let mut bytes = Bytes::from(batch);
        let set = RecordBatchDecoder::decode(&mut bytes).expect("decodes");
        let records = set.records;
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].key.as_deref(), Some(&b"sensors/a"[..]));
        assert_eq!(records[0].value.as_deref(), Some(&b"21.5"[..]));
        assert_eq!(records[0].timestamp, 1_000);
        assert_eq!(records[0].headers.len(), 2);
        let unit = records[0]
            .headers
            .iter()
            .find(|(k, _)| k.as_str() == "unit")
            .and_then(|(_, v)| v.clone());
        assert_eq!(unit.as_deref(), Some("°C".as_bytes()));
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].offset, 1);
        assert_eq!(records[1].timestamp, 1_007);
        assert_eq!(records[2].key.as_deref(), Some(&b""[..]));
        assert_eq!(records[2].timestamp, 999);
    }

    #[test]
    fn finishing_an_empty_batch_is_a_bug() {
        let result = std::panic::catch_unwind(|| BatchBuilder::new(0, 0).finish());
        assert!(result.is_err());
    }
}
