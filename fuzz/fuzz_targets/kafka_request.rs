//! One Kafka request frame (without its size prefix) as bramble would take it off the socket:
//! header, then `wire_guard::check_body`, then `RequestKind::decode` only if the guard passed.
//! Must never panic or abort; libFuzzer's malloc limit turns any huge allocation into a crash.
#![no_main]

use bramble::kafka::wire_guard;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(prefix) = data.get(..4) else {
        return;
    };
    let api_key = i16::from_be_bytes([prefix[0], prefix[1]]);
    let version = i16::from_be_bytes([prefix[2], prefix[3]]);
    let Ok(key) = ApiKey::try_from(api_key) else {
        return;
    };
    let mut frame = Bytes::copy_from_slice(data);
    let Ok(header) = RequestHeader::decode(&mut frame, key.request_header_version(version)) else {
        return;
    };
    assert_eq!(
        (header.request_api_key, header.request_api_version),
        (api_key, version)
    );
    let body = frame;
    let Ok(len) = wire_guard::body_len(key, version, &body) else {
        return;
    };
    wire_guard::check_body(key, version, &body).expect("check_body agrees with body_len");
    let mut rest = body.clone();
    if RequestKind::decode(key, &mut rest, version).is_ok() {
        // The guard walked exactly what the decoder read.
        assert_eq!(
            body.len() - rest.len(),
            len,
            "guard and decoder disagree on the length"
        );
    }
});
