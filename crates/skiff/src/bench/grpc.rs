//! etcd's native API: a gRPC `KV.Put` or `KV.Range` over one HTTP/2
//! connection, as an etcd client library would send it, with the message
//! encoded by hand.
//!
//! gRPC is HTTP/2 with a `POST` to `/<service>/<method>`, the request body
//! one length-prefixed protobuf message, and the outcome in the
//! `grpc-status` trailer (or header, for an answer without a body). A
//! `PutRequest` is two protobuf fields, `key = 1` and `value = 2`, both
//! bytes, and a `RangeRequest` for one key is its field `key = 1` alone
//! (its `serializable` field left false: a linearizable read, etcd's
//! default), so the bench needs no protobuf compiler and no gRPC framework:
//! the `h2` crate does the HTTP/2.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Request};
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// The method of etcd's v3 API that stores a key.
pub const PUT_PATH: &str = "/etcdserverpb.KV/Put";
/// The method of etcd's v3 API that reads keys.
pub const RANGE_PATH: &str = "/etcdserverpb.KV/Range";
/// The protobuf wire type of length-delimited fields (bytes, strings).
const LENGTH_DELIMITED: u8 = 2;

/// The gRPC body of a `PutRequest { key, value }`: the uncompressed flag,
/// the message's length (4 bytes, big-endian) and the message.
pub fn put_body(key: &[u8], value: &[u8]) -> Bytes {
    let mut message = Vec::with_capacity(key.len() + value.len() + 16);
    put_bytes_field(1, key, &mut message);
    put_bytes_field(2, value, &mut message);
    grpc_frame(&message)
}

/// The gRPC body of a linearizable `RangeRequest { key }`.
pub fn range_body(key: &[u8]) -> Bytes {
    let mut message = Vec::with_capacity(key.len() + 8);
    put_bytes_field(1, key, &mut message);
    grpc_frame(&message)
}

/// `message` framed as a gRPC body: the uncompressed flag and the length.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut body = BytesMut::with_capacity(5 + message.len());
    body.put_u8(0);
    body.put_u32(u32::try_from(message.len()).expect("values are limited to a megabyte"));
    body.put_slice(message);
    body.freeze()
}

fn put_bytes_field(number: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(number << 3 | LENGTH_DELIMITED);
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// One HTTP/2 connection to an etcd member.
///
/// The connection's I/O is driven by whichever put is waiting, in the
/// client's own task, rather than by a task of its own: one client, one
/// task, no wake-ups between tasks, so the client spends as little CPU per
/// put as it can.
pub struct GrpcConnection {
    sender: h2::client::SendRequest<Bytes>,
    connection: h2::client::Connection<TcpStream, Bytes>,
    uri: http::Uri,
}

impl GrpcConnection {
    /// Connects to `address`, to call the method at `path` (e.g. [`PUT_PATH`]).
    pub async fn connect(address: SocketAddr, path: &str) -> Result<GrpcConnection, String> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = h2::client::handshake(stream)
            .await
            .map_err(|e| format!("HTTP/2 handshake with {address}: {e}"))?;
        let uri = format!("http://{address}{path}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        Ok(GrpcConnection {
            sender,
            connection,
            uri,
        })
    }

    /// Sends one call with `body` (see [`put_body`], [`range_body`]) and
    /// waits for etcd's answer; an error unless the call succeeded.
    pub async fn call(&mut self, body: Bytes) -> Result<(), String> {
        let exchange = exchange(self.sender.clone(), self.uri.clone(), body);
        tokio::pin!(exchange);
        tokio::select! {
            outcome = &mut exchange => outcome,
            ended = &mut self.connection => match ended {
                Ok(()) => Err("etcd closed the connection".into()),
                Err(error) => Err(h2_error(error)),
            },
        }
    }
}

async fn exchange(
    sender: h2::client::SendRequest<Bytes>,
    uri: http::Uri,
    body: Bytes,
) -> Result<(), String> {
    let request = Request::post(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .map_err(|e| e.to_string())?;
    let mut sender = sender.ready().await.map_err(h2_error)?;
    let (answer, mut stream) = sender.send_request(request, false).map_err(h2_error)?;
    stream.send_data(body, true).map_err(h2_error)?;
    let answer = answer.await.map_err(h2_error)?;
    if answer.status() != http::StatusCode::OK {
        return Err(format!("etcd answered HTTP {}", answer.status()));
    }
    if let Some(outcome) = grpc_outcome(answer.headers()) {
        return outcome; // an answer without a body
    }
    let mut body = answer.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(h2_error)?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.map_err(h2_error)?;
    trailers
        .as_ref()
        .and_then(grpc_outcome)
        .unwrap_or_else(|| Err("an answer without grpc-status".into()))
}

fn h2_error(error: h2::Error) -> String {
    format!("HTTP/2: {error}")
}

/// The outcome `grpc-status` (and `grpc-message`) report, if present.
fn grpc_outcome(headers: &HeaderMap) -> Option<Result<(), String>> {
    let status = headers.get("grpc-status")?;
    if status == "0" {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or("");
    Some(Err(format!(
        "etcd answered grpc-status {}: {message}",
        status.to_str().unwrap_or("?")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_request_is_two_length_delimited_fields_in_a_grpc_frame() {
        let body = put_body(b"k1", &[7u8; 200]);
        // Frame: not compressed, message length 4 + 3 + 200 = 207.
        assert_eq!(&body[..5], &[0, 0, 0, 0, 207]);
        // key: field 1, wire type 2, length 2.
        assert_eq!(&body[5..9], &[0x0a, 2, b'k', b'1']);
        // value: field 2, wire type 2, length 200 as a two-byte varint.
        assert_eq!(&body[9..12], &[0x12, 0xc8, 0x01]);
        assert_eq!(body.len(), 5 + 207);
    }

    #[test]
    fn a_range_request_is_its_key_alone() {
        let body = range_body(b"bench-3");
        assert_eq!(&body[..5], &[0, 0, 0, 0, 9]);
        assert_eq!(&body[5..7], &[0x0a, 7]);
        assert_eq!(&body[7..], b"bench-3");
    }

    #[test]
    fn grpc_status_zero_is_success_and_others_carry_the_message() {
        let mut headers = HeaderMap::new();
        assert!(grpc_outcome(&headers).is_none());
        headers.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(grpc_outcome(&headers), Some(Ok(())));
        headers.insert("grpc-status", "14".parse().unwrap());
        headers.insert("grpc-message", "unavailable".parse().unwrap());
        let error = grpc_outcome(&headers).unwrap().unwrap_err();
        assert!(error.contains("14: unavailable"), "{error}");
    }
}
