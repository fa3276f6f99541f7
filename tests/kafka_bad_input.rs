//! Bad input gets a clear protocol answer or a closed connection, never a crash, and the
//! server keeps serving everyone else. Raw bytes over TCP against a real process.

mod support;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use support::{closed, roundtrip, Node};

fn frame(api_key: ApiKey, version: i16, body: &impl Encodable) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")))
        .encode(&mut buf, api_key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let length = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&length.to_be_bytes());
    buf.to_vec()
}

fn raw_frame(header_and_body: &[u8]) -> Vec<u8> {
    let mut out = (header_and_body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(header_and_body);
    out
}

fn still_serves(node: &Node) {
    let mut stream = node.connect();
    let response = roundtrip(
        &mut stream,
        &frame(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default()),
    )
    .expect("server stopped answering");
    let mut body = Bytes::from(response);
    ResponseHeader::decode(&mut body, 0).unwrap();
    let versions = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(versions.error_code, 0);
}

fn produce(node: &Node, topic: &str, records: Vec<u8>) -> i16 {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    let mut stream = node.connect();
    let response =
        roundtrip(&mut stream, &frame(ApiKey::Produce, 8, &request)).expect("no produce response");
    let mut body = Bytes::from(response);
    ResponseHeader::decode(&mut body, ApiKey::Produce.response_header_version(8)).unwrap();
    let response = ProduceResponse::decode(&mut body, 8).unwrap();
    response.responses[0].partition_responses[0].error_code
}

#[test]
fn oversize_frame_closes_only_that_connection() {
    let mut node = Node::start("socket_request_max_bytes = 2000000\nmessage_max_bytes = 1000000");
    let mut stream = node.connect();
    use std::io::Write;
    stream.write_all(&(50_000_000i32).to_be_bytes()).unwrap();
    assert!(
        closed(&mut stream),
        "an oversize frame must close the connection"
    );
    let mut negative = node.connect();
    negative.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert!(closed(&mut negative));
    still_serves(&node);
    assert!(node.is_running());
}

#[test]
fn unknown_api_key_and_unsupported_version_close_the_connection() {
    let node = Node::start("");
    let mut unknown = node.connect();
    let mut bytes = vec![0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0, 0]; // api key 999
    bytes.extend_from_slice(&[0; 8]);
    unknown.write_all_frame(&raw_frame(&bytes));
    assert!(closed(&mut unknown));
    let mut too_new = node.connect();
    too_new.write_all_frame(
        &frame(ApiKey::Metadata, 12, &MetadataRequest::default())
            .iter()
            .enumerate()
            .map(|(i, b)| if i == 7 { 99 } else { *b })
            .collect::<Vec<u8>>(),
    ); // version 99
    assert!(closed(&mut too_new));
    still_serves(&node);
}

#[test]
fn api_versions_at_an_unknown_version_answers_unsupported_version_in_v0() {
    let node = Node::start("");
    let mut stream = node.connect();
    let mut request = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    request[6..8].copy_from_slice(&99i16.to_be_bytes());
    let response = roundtrip(&mut stream, &request).expect("ApiVersions must be answered");
    let mut body = Bytes::from(response);
    let header = ResponseHeader::decode(&mut body, 0).unwrap();
    assert_eq!(header.correlation_id, 7);
    let versions = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(versions.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(versions
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version >= 3));
}

#[test]
fn malformed_bodies_close_the_connection_without_crashing() {
    // 4 GiB of address space: what a 32-bit Pi has, and far below what a forged array
    // count would make an unguarded decoder reserve.
    let mut node = Node::start_limited("", Some(4 << 20));
    // A Metadata v1 request whose topic array claims 2^31-1 entries: the decoder would
    // reserve hundreds of GB for it; the guard must refuse it first.
    let mut huge = vec![0, 3, 0, 1, 0, 0, 0, 9, 0, 0];
    huge.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    huge.extend_from_slice(&[0, 1, b'a']);
    let mut stream = node.connect();
    stream.write_all_frame(&raw_frame(&huge));
    assert!(closed(&mut stream));
    // Truncated: a header and half a body.
    let full = frame(
        ApiKey::Metadata,
        9,
        &MetadataRequest::default().with_topics(Some(vec![Default::default()])),
    );
    for cut in [8usize, 12, full.len() - 6] {
        let mut stream = node.connect();
        stream.write_all_frame(&raw_frame(&full[4..cut]));
        assert!(closed(&mut stream), "cut at {cut}");
    }
    // Garbage that is not even a header.
    let mut stream = node.connect();
    stream.write_all_frame(&raw_frame(&[1, 2, 3]));
    assert!(closed(&mut stream));
    still_serves(&node);
    assert!(node.is_running(), "{}", node.log());
}

#[test]
fn produce_errors_use_the_protocols_codes() {
    let node = Node::start("message_max_bytes = 4096");
    let good = bramble::log::testing::batch(&[(b"k", b"v")], 1_700_000_000_000);
    assert_eq!(produce(&node, "ok", good.clone()), 0);

    let big_value = vec![b'x'; 8000];
    let big = bramble::log::testing::batch(&[(b"k", &big_value)], 1_700_000_000_000);
    assert_eq!(produce(&node, "ok", big), 10, "MESSAGE_TOO_LARGE");

    let mut corrupt = good.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(produce(&node, "ok", corrupt), 2, "CORRUPT_MESSAGE");

    assert_eq!(
        produce(&node, "bad topic!", good.clone()),
        17,
        "INVALID_TOPIC_EXCEPTION"
    );

    // Half a batch.
    assert_eq!(
        produce(&node, "ok", good[..good.len() / 2].to_vec()),
        2,
        "CORRUPT_MESSAGE"
    );
    still_serves(&node);
}

trait WriteFrame {
    fn write_all_frame(&mut self, bytes: &[u8]);
}

impl WriteFrame for std::net::TcpStream {
    fn write_all_frame(&mut self, bytes: &[u8]) {
        use std::io::Write;
        // The server may close as soon as it has seen enough; a failed write is fine.
        let _ = self.write_all(bytes);
    }
}
