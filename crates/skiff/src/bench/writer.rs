//! One client's connection to the target, and the operation it repeats.
//!
//! Every client writes its own key (a file for skiff, a key for etcd),
//! always with the same value of the chosen size, so each write replaces
//! the last one of that client and the targets hold as much data at the
//! end as at the start. With `--reads`, every client reads its own key,
//! written before the load, with a linearizable read.

use super::grpc::GrpcConnection;
use super::http::HttpConnection;
use crate::error_chain;
use base64::Engine;
use bytes::Bytes;
use skiff_fs::{Client, ClientConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// How long one write may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one of the targets.
pub enum Writer {
    /// A file-server client that writes one file.
    Skiff(SkiffWriter),
    /// An HTTP/1.1 client that puts one etcd key through the JSON gateway.
    EtcdJson(EtcdJsonWriter),
    /// A gRPC client that puts (or reads) one etcd key.
    EtcdGrpc(EtcdGrpcWriter),
}

impl Writer {
    /// Performs one operation (a write, or a read with `--reads`) and waits
    /// for its answer.
    pub async fn write(&mut self) -> Result<(), String> {
        match self {
            Writer::Skiff(writer) => writer.write().await,
            Writer::EtcdJson(writer) => writer.write().await,
            Writer::EtcdGrpc(writer) => writer.write().await,
        }
    }
}

/// The key or file name of client `client`.
pub fn key(client: usize) -> String {
    format!("bench-{client}")
}

/// The value every write carries: `bytes` printable bytes.
pub fn value(bytes: usize) -> Bytes {
    (0..bytes).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Writes (or reads) one file through [`skiff_fs::Client`], which finds
/// the leader and follows it.
pub struct SkiffWriter {
    client: Client,
    name: String,
    value: Bytes,
    reads: bool,
}

impl SkiffWriter {
    /// A writer of file `key(client)` on the servers at `servers`.
    pub fn new(servers: &[String], client: usize, value: Bytes) -> SkiffWriter {
        let mut config = ClientConfig::new(servers.iter().cloned());
        config.request_timeout = REQUEST_TIMEOUT;
        SkiffWriter {
            client: Client::new(config),
            name: key(client),
            value,
            reads: false,
        }
    }

    /// A reader of file `key(client)`, which holds `value`. Every server
    /// serves reads, followers too, so the readers start on the servers
    /// in turn and stay there: the load spreads over the cluster.
    pub fn reader(servers: &[String], client: usize, value: Bytes) -> SkiffWriter {
        let mut servers = servers.to_vec();
        let first = client % servers.len().max(1);
        servers.rotate_left(first);
        SkiffWriter {
            reads: true,
            ..SkiffWriter::new(&servers, client, value)
        }
    }

    async fn write(&mut self) -> Result<(), String> {
        if self.reads {
            let file = (self.client.read(&self.name).await).map_err(|e| error_chain::render(&e))?;
            if file.contents != self.value {
                return Err(format!("{} holds other contents than written", self.name));
            }
            return Ok(());
        }
        self.client
            .write(&self.name, self.value.clone(), 0)
            .await
            .map(|_version| ())
            .map_err(|e| error_chain::render(&e))
    }
}

/// Puts one key through etcd's JSON gateway (`POST /v3/kv/put`) on one
/// keep-alive connection, reconnecting after a failure.
pub struct EtcdJsonWriter {
    address: SocketAddr,
    /// The whole request, headers and body, the same for every put.
    request: Vec<u8>,
    connection: Option<HttpConnection>,
}

impl EtcdJsonWriter {
    /// A writer of key `key(client)` through the member at `address`.
    pub fn new(address: SocketAddr, client: usize, value: &[u8]) -> EtcdJsonWriter {
        let engine = base64::engine::general_purpose::STANDARD;
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            engine.encode(key(client)),
            engine.encode(value)
        );
        EtcdJsonWriter {
            address,
            request: super::http::post_request(address, "/v3/kv/put", body.as_bytes()),
            connection: None,
        }
    }

    async fn write(&mut self) -> Result<(), String> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => self
                .connection
                .insert(HttpConnection::connect(self.address).await?),
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, connection.exchange(&self.request))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")));
        match answer {
            // etcd answers a put with its header; errors carry "error".
            Ok((200, body)) if body.starts_with(b"{\"header\"") => Ok(()),
            Ok((status, body)) => Err(format!(
                "etcd answered {status}: {}",
                String::from_utf8_lossy(&body)
            )),
            Err(error) => {
                self.connection = None;
                Err(error)
            }
        }
    }
}

/// Puts (or reads) one key with etcd's gRPC API (`KV.Put`, `KV.Range`) on
/// one HTTP/2 connection, reconnecting after a failure.
pub struct EtcdGrpcWriter {
    address: SocketAddr,
    /// The method called.
    path: &'static str,
    /// The request's body, the same for every call.
    body: Bytes,
    /// Boxed: an HTTP/2 connection's state is large, and the writers of all
    /// targets share one enum.
    connection: Option<Box<GrpcConnection>>,
}

impl EtcdGrpcWriter {
    /// A writer of key `key(client)` through the member at `address`.
    pub fn new(address: SocketAddr, client: usize, value: &[u8]) -> EtcdGrpcWriter {
        EtcdGrpcWriter {
            address,
            path: super::grpc::PUT_PATH,
            body: super::grpc::put_body(key(client).as_bytes(), value),
            connection: None,
        }
    }

    /// A reader of key `key(client)` through the member at `address`, with
    /// etcd's default, linearizable range request.
    pub fn reader(address: SocketAddr, client: usize) -> EtcdGrpcWriter {
        EtcdGrpcWriter {
            address,
            path: super::grpc::RANGE_PATH,
            body: super::grpc::range_body(key(client).as_bytes()),
            connection: None,
        }
    }

    async fn write(&mut self) -> Result<(), String> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => self.connection.insert(Box::new(
                GrpcConnection::connect(self.address, self.path).await?,
            )),
        };
        let put = tokio::time::timeout(REQUEST_TIMEOUT, connection.call(self.body.clone()))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")));
        if put.is_err() {
            self.connection = None;
        }
        put
    }
}
