//! Turning a request frame into a typed request and a response into bytes. No I/O: the
//! server reads frames off the socket and hands them here.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::api_versions;
use super::wire_guard;

/// A request ready for a handler.
#[derive(Debug)]
pub struct Request {
    /// The header (api key, version, correlation id, client id).
    pub header: RequestHeader,
    /// Which API.
    pub api_key: ApiKey,
    /// The decoded body.
    pub body: RequestKind,
}

/// What to do with a frame that did not become a request.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// ApiVersions at a version we do not speak: answer with UNSUPPORTED_VERSION in the v0
    /// format, as Kafka does, so the client can retry with a version we list.
    #[error("ApiVersions v{version} is not supported")]
    ApiVersionsUnsupported {
        /// The correlation id to answer with.
        correlation_id: i32,
        /// The version asked for.
        version: i16,
    },
    /// Anything else that cannot be answered: the connection is closed.
    #[error("{0}")]
    Close(String),
}

/// Decode one frame (without its 4-byte length prefix).
pub fn decode_request(mut frame: Bytes) -> Result<Request, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::Close(format!(
            "frame of {} bytes is too short",
            frame.len()
        )));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key =
        ApiKey::try_from(key).map_err(|_| FrameError::Close(format!("unknown API key {key}")))?;
    let Some((min, max)) = api_versions::supported(api_key) else {
        return Err(FrameError::Close(format!("API {api_key:?} is not served")));
    };
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions {
            return Err(FrameError::ApiVersionsUnsupported {
                correlation_id,
                version,
            });
        }
        return Err(FrameError::Close(format!(
            "{api_key:?} v{version} is not served (versions {min}..={max})"
        )));
    }
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| FrameError::Close(format!("bad request header: {e}")))?;
    wire_guard::check_body(api_key, version, &frame)
        .map_err(|e| FrameError::Close(format!("malformed {api_key:?} v{version}: {e}")))?;
    let body = RequestKind::decode(api_key, &mut frame, version)
        .map_err(|e| FrameError::Close(format!("malformed {api_key:?} v{version}: {e}")))?;
    Ok(Request {
        header,
        api_key,
        body,
    })
}

/// Encode a response with its header and 4-byte length prefix.
pub fn encode_response(
    request: &RequestHeader,
    api_key: ApiKey,
    response: &ResponseKind,
) -> anyhow::Result<BytesMut> {
    let version = request.request_api_version;
    // Size a Fetch response's buffer exactly: growing it by doubling would copy megabytes of
    // records several times and leave freed buffers the allocator has to give back.
    let capacity = match response {
        ResponseKind::Fetch(fetch) => fetch.compute_size(version).unwrap_or(0) + 64,
        _ => 256,
    };
    let mut buf = BytesMut::with_capacity(capacity);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(request.correlation_id);
    header.encode(&mut buf, api_key.response_header_version(version))?;
    response.encode(&mut buf, version)?;
    let length = i32::try_from(buf.len() - 4)?;
    buf[0..4].copy_from_slice(&length.to_be_bytes());
    Ok(buf)
}

/// The answer to an ApiVersions request at a version we do not speak: v0 body, v0 header.
pub fn encode_api_versions_unsupported(correlation_id: i32) -> anyhow::Result<BytesMut> {
    let response = ApiVersionsResponse::default()
        .with_error_code(super::errors::UNSUPPORTED_VERSION)
        .with_api_keys(api_versions::api_keys());
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, 0)?;
    response.encode(&mut buf, 0)?;
    let length = i32::try_from(buf.len() - 4)?;
    buf[0..4].copy_from_slice(&length.to_be_bytes());
    Ok(buf)
}
