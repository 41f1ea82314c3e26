//! An async client for the file server, with leader discovery.
//!
//! A [`Client`] keeps one connection, to the server it believes leads. When a
//! server answers `ERR_REDIRECT host:port` the client goes there at once; on
//! `ERR_REDIRECT _` (no leader known, e.g. during an election) or when it
//! cannot connect, it pauses for [`ClientConfig::backoff`] and tries the next
//! server it knows. Every request gets at most [`ClientConfig::attempts_max`]
//! attempts.
//!
//! Retrying is safe only when the request surely had no effect: a redirect
//! (the server proposed nothing) or a failed connect (nothing was sent). When
//! a connection breaks or goes quiet after a change was sent, the change may
//! or may not happen, so the client returns [`ClientError::ConnectionLost`] or
//! [`ClientError::Timeout`] instead of sending it twice;
//! [`ClientError::outcome_unknown`] tells the two kinds of failure apart.
//! Reads change nothing and are retried on the next server in that case.
//!
//! With [`ClientConfig::tls`] set, every connection is TLS; which servers
//! the client accepts is described in [`tls`].

use crate::protocol::{parse_request, parse_response, Limits, Parsed, Request, Response, Version};
use bytes::Bytes;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

pub mod tls;

pub use tls::ClientTls;

/// How a client finds and talks to the cluster.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The servers' client addresses, `host:port`; any one will do to start.
    pub servers: Vec<String>,
    /// Attempts per request, counting every redirect and failed connection.
    pub attempts_max: usize,
    /// The pause before trying another server when no leader is known.
    pub backoff: Duration,
    /// How long to wait for a connection, and then for an answer.
    pub request_timeout: Duration,
    /// The largest file and name the client sends or accepts.
    pub limits: Limits,
    /// TLS for every connection, for a cluster with `[tls] clients = true`;
    /// `None` speaks plain TCP.
    pub tls: Option<ClientTls>,
}

impl ClientConfig {
    /// Defaults for `servers`: 20 attempts, 100 ms backoff (long enough for an
    /// election to finish within the attempts), a 5 s timeout, default
    /// limits, no TLS.
    pub fn new(servers: impl IntoIterator<Item = impl Into<String>>) -> ClientConfig {
        ClientConfig {
            servers: servers.into_iter().map(Into::into).collect(),
            attempts_max: 20,
            backoff: Duration::from_millis(100),
            request_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            tls: None,
        }
    }
}

/// A file as read from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// Its version.
    pub version: Version,
    /// Its contents.
    pub contents: Bytes,
    /// Seconds until it expires; 0 means never.
    pub exptime_s: u64,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `ERR_FILE_NOT_FOUND`.
    #[error("file not found")]
    NotFound,
    /// `ERR_VERSION`: a cas named a version that is not current.
    #[error("version mismatch: the current version is {current}")]
    VersionMismatch {
        /// The file's current version.
        current: Version,
    },
    /// The request cannot be sent: a bad name, or a file over the limits
    /// (the source says which).
    #[error("invalid request")]
    InvalidRequest(#[from] crate::protocol::ProtocolError),
    /// `ERR_CMD_ERR`: the server refused the request as malformed.
    #[error("the server refused the request as malformed")]
    Rejected,
    /// `ERR_INTERNAL`: the server could not tell whether a change happened.
    #[error("the server could not tell whether the change happened")]
    Internal,
    /// No server led the cluster within the attempts.
    #[error("no leader answered after {attempts} attempts; last: {last}")]
    Unavailable {
        /// How many attempts were made.
        attempts: usize,
        /// What went wrong the last time.
        last: String,
    },
    /// The connection broke after the request was sent.
    #[error("connection to {address} lost after the request was sent")]
    ConnectionLost {
        /// The server.
        address: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// No answer within the timeout.
    #[error("no answer from {address} within {timeout:?}")]
    Timeout {
        /// The server.
        address: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The server answered something the protocol does not allow here.
    #[error("unexpected answer from the server: {0}")]
    UnexpectedResponse(String),
}

impl ClientError {
    /// Whether a change may have happened although it was not confirmed:
    /// the connection broke or timed out, or the server said `ERR_INTERNAL`.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            ClientError::Internal
                | ClientError::ConnectionLost { .. }
                | ClientError::Timeout { .. }
        )
    }
}

/// What became of one attempt.
enum Attempt {
    /// The answer.
    Answered(Response),
    /// Nothing happened; try `next` (or the next server) after `pause`.
    Retry { problem: String, pause: bool },
    /// The request may have taken effect: report, do not resend.
    Failed(ClientError),
}

/// A client of the file server. Requests are sent one at a time.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    /// Index into `config.servers` of the server to use.
    current: usize,
    connection: Option<Connection>,
}

/// A connection's byte stream: plain TCP or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug> Stream for S {}

#[derive(Debug)]
struct Connection {
    address: String,
    stream: Box<dyn Stream>,
    /// Bytes read but not yet parsed.
    buffer: Vec<u8>,
}

impl Client {
    /// A client that will connect on its first request.
    pub fn new(config: ClientConfig) -> Client {
        Client {
            config,
            current: 0,
            connection: None,
        }
    }

    /// The server the client talks to now, if connected.
    pub fn connected_to(&self) -> Option<&str> {
        self.connection.as_ref().map(|c| c.address.as_str())
    }

    /// Creates or replaces `name`; returns the new version.
    pub async fn write(
        &mut self,
        name: &str,
        contents: impl Into<Bytes>,
        exptime_s: u64,
    ) -> Result<Version, ClientError> {
        let request = Request::Write {
            name: name.to_string(),
            contents: contents.into(),
            exptime_s,
        };
        match self.call(&request).await? {
            Response::Written { version } => Ok(version),
            other => Err(unexpected(other)),
        }
    }

    /// Reads `name`.
    pub async fn read(&mut self, name: &str) -> Result<File, ClientError> {
        let request = Request::Read {
            name: name.to_string(),
        };
        match self.call(&request).await? {
            Response::Contents {
                version,
                contents,
                exptime_s,
            } => Ok(File {
                version,
                contents,
                exptime_s,
            }),
            Response::FileNotFound => Err(ClientError::NotFound),
            other => Err(unexpected(other)),
        }
    }

    /// Replaces `name` if its version is still `version`; returns the new one.
    pub async fn cas(
        &mut self,
        name: &str,
        version: Version,
        contents: impl Into<Bytes>,
        exptime_s: u64,
    ) -> Result<Version, ClientError> {
        let request = Request::Cas {
            name: name.to_string(),
            version,
            contents: contents.into(),
            exptime_s,
        };
        match self.call(&request).await? {
            Response::Written { version } => Ok(version),
            Response::VersionMismatch { current } => Err(ClientError::VersionMismatch { current }),
            Response::FileNotFound => Err(ClientError::NotFound),
            other => Err(unexpected(other)),
        }
    }

    /// Removes `name`.
    pub async fn delete(&mut self, name: &str) -> Result<(), ClientError> {
        let request = Request::Delete {
            name: name.to_string(),
        };
        match self.call(&request).await? {
            Response::Deleted => Ok(()),
            Response::FileNotFound => Err(ClientError::NotFound),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `request` to the leader, following redirects, and returns the
    /// answer. `ERR_CMD_ERR` and `ERR_INTERNAL` come back as errors.
    pub async fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        let wire = self.encode_checked(request)?;
        let mut last = String::from("no server configured");
        for attempt in 1..=self.config.attempts_max {
            match self.attempt(request, &wire).await {
                Attempt::Answered(Response::CommandError) => {
                    self.connection = None; // the server closes it
                    return Err(ClientError::Rejected);
                }
                Attempt::Answered(Response::Internal) => return Err(ClientError::Internal),
                Attempt::Answered(response) => return Ok(response),
                Attempt::Failed(error) => return Err(error),
                Attempt::Retry { problem, pause } => {
                    tracing::debug!(attempt, %problem, "retrying");
                    last = problem;
                    if pause && attempt < self.config.attempts_max {
                        tokio::time::sleep(self.config.backoff).await;
                    }
                }
            }
        }
        Err(ClientError::Unavailable {
            attempts: self.config.attempts_max,
            last,
        })
    }

    /// Encodes `request` and checks it the way a server with the client's
    /// limits would parse it, so that a request the server would refuse (and
    /// answer by closing the connection) is caught here.
    fn encode_checked(&self, request: &Request) -> Result<Vec<u8>, ClientError> {
        let mut wire = Vec::new();
        request.encode(&mut wire);
        match parse_request(&wire, &self.config.limits)? {
            Parsed::Complete { value, consumed } if value == *request && consumed == wire.len() => {
                Ok(wire)
            }
            _ => Err(ClientError::UnexpectedResponse(format!(
                "request {request:?} does not survive encoding"
            ))),
        }
    }

    async fn attempt(&mut self, request: &Request, wire: &[u8]) -> Attempt {
        if self.config.servers.is_empty() {
            return Attempt::Retry {
                problem: "no server configured".into(),
                pause: false,
            };
        }
        let timeout = self.config.request_timeout;
        let limits = self.config.limits;
        let connection = match self.connect().await {
            Ok(connection) => connection,
            Err(problem) => {
                self.move_to_next_server();
                return Attempt::Retry {
                    problem,
                    pause: true,
                };
            }
        };
        let exchange = tokio::time::timeout(timeout, connection.exchange(wire, &limits)).await;
        let address = connection.address.clone();
        match exchange {
            Ok(Ok(Response::Redirect { leader })) => {
                self.connection = None;
                self.follow_redirect(&address, leader)
            }
            Ok(Ok(response)) => Attempt::Answered(response),
            Ok(Err(source)) => {
                self.connection = None;
                self.move_to_next_server();
                let problem = format!("{address}: {source}");
                match request {
                    Request::Read { .. } => Attempt::Retry {
                        problem,
                        pause: true,
                    },
                    _ => Attempt::Failed(ClientError::ConnectionLost { address, source }),
                }
            }
            Err(_) => {
                self.connection = None;
                self.move_to_next_server();
                Attempt::Failed(ClientError::Timeout { address, timeout })
            }
        }
    }

    fn follow_redirect(&mut self, from: &str, leader: Option<String>) -> Attempt {
        match leader {
            Some(leader) => {
                let problem = format!("{from} redirected to {leader}");
                self.current = match self.config.servers.iter().position(|s| *s == leader) {
                    Some(known) => known,
                    None => {
                        self.config.servers.push(leader);
                        self.config.servers.len() - 1
                    }
                };
                Attempt::Retry {
                    problem,
                    pause: false,
                }
            }
            None => {
                self.move_to_next_server();
                Attempt::Retry {
                    problem: format!("{from} knows no leader"),
                    pause: true,
                }
            }
        }
    }

    fn move_to_next_server(&mut self) {
        self.current = (self.current + 1) % self.config.servers.len().max(1);
    }

    /// The open connection, or a new one to the current server.
    async fn connect(&mut self) -> Result<&mut Connection, String> {
        if self.connection.as_mut().is_some_and(Connection::is_broken) {
            // Closed by the server while idle (it restarted, or dropped idle
            // clients): nothing was sent on it, so reconnecting is safe.
            self.connection = None;
        }
        if self.connection.is_none() {
            let address = self.config.servers[self.current].clone();
            let timeout = self.config.request_timeout;
            let connecting = connect(&address, self.config.tls.as_ref());
            let stream = match tokio::time::timeout(timeout, connecting).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(format!("cannot connect to {address}: {e}")),
                Err(_) => return Err(format!("cannot connect to {address} within {timeout:?}")),
            };
            self.connection = Some(Connection {
                address,
                stream,
                buffer: Vec::new(),
            });
        }
        Ok(self.connection.as_mut().expect("set above"))
    }
}

/// A connection to `address`, over TLS if `tls`: a failure here means
/// nothing was sent.
async fn connect(address: &str, tls: Option<&ClientTls>) -> std::io::Result<Box<dyn Stream>> {
    let stream = TcpStream::connect(address).await?;
    let _ = stream.set_nodelay(true);
    Ok(match tls {
        Some(tls) => Box::new(tls.connect(address, stream).await?),
        None => Box::new(stream),
    })
}

impl Connection {
    /// Whether the server closed the connection (or sent bytes nobody asked
    /// for) since the last answer. Polls a read once without waiting, so
    /// that over TLS the records that carry no data (session tickets) are
    /// taken in and only data or a close count.
    fn is_broken(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let mut buffer = ReadBuf::new(&mut byte);
        let mut context = Context::from_waker(Waker::noop());
        let polled = Pin::new(&mut self.stream).poll_read(&mut context, &mut buffer);
        !matches!(polled, Poll::Pending)
    }

    /// Sends one request and reads one response.
    async fn exchange(&mut self, wire: &[u8], limits: &Limits) -> std::io::Result<Response> {
        self.stream.write_all(wire).await?;
        // TLS may hold written bytes until flushed.
        self.stream.flush().await?;
        loop {
            match parse_response(&self.buffer, limits) {
                Ok(Parsed::Complete { value, consumed }) => {
                    self.buffer.drain(..consumed);
                    return Ok(value);
                }
                Ok(Parsed::Incomplete) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

fn unexpected(response: Response) -> ClientError {
    let mut wire = Vec::new();
    response.encode(&mut wire);
    ClientError::UnexpectedResponse(String::from_utf8_lossy(&wire).trim_end().to_string())
}

#[cfg(test)]
mod tests;
