//! A small Kafka client for the command line: one connection, typed requests, versions
//! negotiated with ApiVersions like any Kafka client.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response the CLI accepts.
const RESPONSE_MAX_BYTES: u32 = 128 << 20;

/// One connection to a Kafka-protocol broker.
#[derive(Debug)]
pub struct Client {
    stream: crate::tls::Stream,
    correlation_id: i32,
    versions: HashMap<i16, (i16, i16)>,
}

impl Client {
    /// Connect and learn which versions the broker speaks.
    pub async fn connect(address: &str) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {address}: {e}"))?;
        stream.set_nodelay(true)?;
        Client::over(crate::tls::Stream::Plain(stream)).await
    }

    /// Speak Kafka over an open connection (a peer's `BRKF` stream, say).
    pub async fn over(stream: crate::tls::Stream) -> anyhow::Result<Client> {
        let mut client = Client {
            stream,
            correlation_id: 0,
            versions: HashMap::new(),
        };
        let response = client.send_at(ApiVersionsRequest::default(), 0).await?;
        anyhow::ensure!(
            response.error_code == 0,
            "ApiVersions failed with error {}",
            response.error_code
        );
        client.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(client)
    }

    /// Send a request at the highest version both sides speak, up to `wanted`.
    pub async fn send<R: Request>(
        &mut self,
        request: R,
        wanted: i16,
    ) -> anyhow::Result<R::Response> {
        let (min, max) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("the broker does not serve API {}", R::KEY))?;
        let version = wanted.min(max);
        anyhow::ensure!(
            version >= min,
            "the broker needs API {} v{min}+, this client speaks up to v{wanted}",
            R::KEY
        );
        self.send_at(request, version).await
    }

    /// Send a request at an exact version and wait for its response.
    pub async fn send_at<R: Request>(
        &mut self,
        request: R,
        version: i16,
    ) -> anyhow::Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let api_key =
            ApiKey::try_from(R::KEY).map_err(|_| anyhow::anyhow!("unknown API key {}", R::KEY))?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("bramble-cli")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, api_key.request_header_version(version))?;
        request.encode(&mut buf, version)?;
        let length = i32::try_from(buf.len() - 4)?;
        buf[0..4].copy_from_slice(&length.to_be_bytes());
        self.stream.write_all(&buf).await?;
        self.stream.flush().await?;
        let length = self.stream.read_u32().await?;
        anyhow::ensure!(
            length <= RESPONSE_MAX_BYTES,
            "response of {length} bytes is too large"
        );
        let mut body = BytesMut::zeroed(length as usize);
        self.stream.read_exact(&mut body).await?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api_key.response_header_version(version))?;
        anyhow::ensure!(
            header.correlation_id == self.correlation_id,
            "response out of order"
        );
        R::Response::decode(&mut body, version)
    }
}

impl Client {
    /// Log in with SCRAM over SaslHandshake v1 and SaslAuthenticate (a SASL listener
    /// answers nothing else before this).
    pub async fn login_scram(
        &mut self,
        mechanism: crate::security::scram::Mechanism,
        user: &str,
        password: &str,
    ) -> anyhow::Result<()> {
        use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
        let handshake = self
            .send_at(
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism.name())),
                1,
            )
            .await?;
        anyhow::ensure!(
            handshake.error_code == 0,
            "the broker does not offer {} (it offers {:?})",
            mechanism.name(),
            handshake.mechanisms
        );
        let rng = ring::rand::SystemRandom::new();
        let scram = crate::security::scram::Client::new(
            mechanism,
            user,
            password,
            &crate::security::random_nonce(&rng),
        );
        let version = self
            .versions
            .get(&SaslAuthenticateRequest::KEY)
            .map_or(0, |&(_, max)| max.min(2));
        let first = self
            .send_at(
                SaslAuthenticateRequest::default().with_auth_bytes(scram.first_message().into()),
                version,
            )
            .await?;
        let refused = |code: i16, message: &Option<StrBytes>| {
            anyhow::anyhow!(
                "login as {user} refused (error {code}: {})",
                message.as_deref().unwrap_or("")
            )
        };
        if first.error_code != 0 {
            return Err(refused(first.error_code, &first.error_message));
        }
        let (last, expected) = scram
            .final_message(&first.auth_bytes)
            .map_err(|e| anyhow::anyhow!("bad SCRAM answer from the broker: {e}"))?;
        let done = self
            .send_at(
                SaslAuthenticateRequest::default().with_auth_bytes(last.into()),
                version,
            )
            .await?;
        if done.error_code != 0 {
            return Err(refused(done.error_code, &done.error_message));
        }
        anyhow::ensure!(
            done.auth_bytes.as_ref() == expected.as_slice(),
            "the broker could not prove it knows the credential"
        );
        Ok(())
    }
}

/// Kafka's murmur2 hash, so keyed records land on the partition the Java client would pick.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len() as u32;
    let mut h = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka_reference_values() {
        // Reference values from Kafka's own partitioner tests.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }
}
