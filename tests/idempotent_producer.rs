//! Idempotent producing at the protocol level, against a real process: a retried batch is
//! stored once and acknowledged with its original offset (also after a clean restart and
//! after a crash), gaps, old epochs and unknown producers get Kafka's error codes, and
//! transactional producers are refused.

mod support;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use support::{roundtrip, Node};

const TOPIC: &str = "idem";

fn call<Req: Encodable, Resp: Decodable>(
    node: &Node,
    api: ApiKey,
    version: i16,
    body: &Req,
) -> Resp {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("idempotence-test")))
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let length = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&length.to_be_bytes());
    let mut stream = node.connect();
    let response = roundtrip(&mut stream, &buf).expect("no response");
    let mut body = Bytes::from(response);
    ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
    Resp::decode(&mut body, version).unwrap()
}

fn init_producer_id(node: &Node, transactional_id: Option<&str>) -> InitProducerIdResponse {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(
            transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.into()))),
        )
        .with_transaction_timeout_ms(60_000)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    call(node, ApiKey::InitProducerId, 4, &request)
}

/// A batch of `count` records from producer `pid` at `epoch`, first sequence `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, count: usize, tag: &str) -> Vec<u8> {
    let values: Vec<String> = (0..count).map(|i| format!("{tag}-{i}")).collect();
    let records: Vec<(&[u8], &[u8])> = values.iter().map(|v| (&b"k"[..], v.as_bytes())).collect();
    bramble::log::testing::build_test_batch(0, -1, &records, 1_700_000_000_000, |b| {
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
    })
}

/// Produces one batch with acks=all; returns (error code, base offset).
fn produce(node: &Node, batch: Vec<u8>) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let response: ProduceResponse = call(node, ApiKey::Produce, 9, &request);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn log_end(node: &Node) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let response: ListOffsetsResponse = call(node, ApiKey::ListOffsets, 7, &request);
    response.topics[0].partitions[0].offset
}

#[test]
fn a_retried_duplicate_batch_is_stored_once_with_its_original_offset() {
    let mut node = Node::start("");
    let init = init_producer_id(&node, None);
    assert_eq!(init.error_code, 0);
    assert_eq!(init.producer_epoch, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);
    assert_ne!(
        init_producer_id(&node, None).producer_id.0,
        pid,
        "every producer gets its own id"
    );

    // Someone else's plain record first, so offsets are not all zero.
    assert_eq!(
        produce(&node, bramble::log::testing::batch(&[(b"x", b"plain")], 1)),
        (0, 0)
    );
    let first = batch(pid, 0, 0, 3, "a");
    assert_eq!(produce(&node, first.clone()), (0, 1));
    assert_eq!(log_end(&node), 4);
    // The same batch again (a retry after a lost answer): same offset, nothing appended.
    assert_eq!(produce(&node, first.clone()), (0, 1));
    assert_eq!(
        log_end(&node),
        4,
        "the duplicate was not stored a second time"
    );

    let second = batch(pid, 0, 3, 2, "b");
    assert_eq!(produce(&node, second.clone()), (0, 4));
    assert_eq!(
        produce(&node, first.clone()),
        (0, 1),
        "older batches within the last five are still known"
    );

    assert_eq!(
        produce(&node, batch(pid, 0, 9, 1, "gap")).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(
        produce(&node, batch(999_999, 0, 7, 1, "stranger")).0,
        59,
        "UNKNOWN_PRODUCER_ID"
    );
    assert_eq!(
        produce(&node, batch(pid, 1, 0, 1, "new-epoch")),
        (0, 6),
        "a new epoch starts at sequence 0"
    );
    assert_eq!(
        produce(&node, batch(pid, 0, 5, 1, "zombie")).0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    assert_eq!(log_end(&node), 7);

    // Producer state survives a clean restart (snapshot) and a crash (snapshot + log tail).
    node.restart(true);
    assert_eq!(produce(&node, batch(pid, 1, 0, 1, "new-epoch")), (0, 6));
    assert_eq!(produce(&node, batch(pid, 1, 1, 1, "after-restart")), (0, 7));
    node.restart(false);
    assert_eq!(
        produce(&node, batch(pid, 1, 1, 1, "after-restart")),
        (0, 7),
        "duplicate recognised after a crash"
    );
    assert_eq!(produce(&node, batch(pid, 1, 3, 1, "gap")).0, 45);
    assert_eq!(log_end(&node), 8);

    // Ids are never reused after a restart.
    let later = init_producer_id(&node, None).producer_id.0;
    assert!(later > pid + 1, "{later} after {pid}");
}

#[test]
fn transactional_producers_are_refused() {
    let node = Node::start("");
    let init = init_producer_id(&node, Some("txn-1"));
    assert_eq!(
        init.error_code, 42,
        "INVALID_REQUEST: transactions are not supported"
    );
    assert_eq!(init.producer_id.0, -1);
}
