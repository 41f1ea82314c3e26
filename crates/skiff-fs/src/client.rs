//! An async client for the file server, with leader discovery and
//! exactly-once changes.
//!
//! A [`Client`] keeps one connection, to the server it believes leads. When a
//! server answers `ERR_REDIRECT host:port` the client goes there; on
//! `ERR_REDIRECT _` (no leader known, e.g. during an election) or when it
//! cannot connect, it tries the next server it knows. It pauses before every
//! retry but the first redirect to a named leader, starting at
//! [`ClientConfig::backoff`] and doubling to [`ClientConfig::backoff_max`],
//! so that an election in progress is waited out rather than spun on. A
//! request is given up after [`ClientConfig::retry_time_max`] (or
//! [`ClientConfig::attempts_max`] attempts), with an error that names the
//! servers tried and the last answer.
//!
//! # Sessions
//!
//! With [`ClientConfig::sessions`] (the default) the client opens a session
//! on its first change (see [`crate::protocol::session`]) and numbers its
//! writes, cas and deletes. When a connection breaks or goes quiet after a
//! change was sent, or the server answers `ERR_INTERNAL`, the outcome is
//! unknown; the client then sends the same numbered change again, to the
//! same or another server, and the cluster answers it with the first
//! outcome, applying it at most once. A server without the extension
//! refuses `session open`; the client then goes on without sessions.
//!
//! Without sessions (the classic protocol), retrying a change is safe only
//! when it surely had no effect: a redirect (the server proposed nothing) or
//! a failed connect (nothing was sent). When the outcome is unknown the
//! client returns [`ClientError::ConnectionLost`], [`ClientError::Timeout`]
//! or [`ClientError::Internal`] instead of sending it twice;
//! [`ClientError::outcome_unknown`] tells these from the failures in which
//! nothing changed. Reads change nothing and are always retried.
//!
//! With [`ClientConfig::tls`] set, every connection is TLS; which servers
//! the client accepts is described in [`tls`].

use crate::protocol::session::encode_open;
use crate::protocol::{
    parse_request, parse_response, Limits, Parsed, Request, Response, SessionId, SessionSeq,
    Version,
};
use bytes::Bytes;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub mod tls;

pub use tls::ClientTls;

/// How a client finds and talks to the cluster.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The servers' client addresses, `host:port`; any one will do to start.
    pub servers: Vec<String>,
    /// Attempts per request at most, counting every redirect, failed
    /// connection and resend.
    pub attempts_max: usize,
    /// The first pause before a retry; each further one doubles, up to
    /// [`ClientConfig::backoff_max`].
    pub backoff: Duration,
    /// The longest pause between two attempts.
    pub backoff_max: Duration,
    /// How long one request may take over all its attempts before it is
    /// given up.
    pub retry_time_max: Duration,
    /// How long to wait for a connection, and then for an answer.
    pub request_timeout: Duration,
    /// The largest file and name the client sends or accepts.
    pub limits: Limits,
    /// TLS for every connection, for a cluster with `[tls] clients = true`;
    /// `None` speaks plain TCP.
    pub tls: Option<ClientTls>,
    /// Whether changes go in a session, so that they can be resent after a
    /// broken connection and still apply once (see [Sessions](self#sessions)).
    pub sessions: bool,
}

impl ClientConfig {
    /// Defaults for `servers`: 20 attempts within 10 s, pauses from 100 ms
    /// (long enough for an election to finish within the attempts) doubling
    /// to 1 s, a 5 s timeout, default limits, no TLS, sessions on.
    pub fn new(servers: impl IntoIterator<Item = impl Into<String>>) -> ClientConfig {
        ClientConfig {
            servers: servers.into_iter().map(Into::into).collect(),
            attempts_max: 20,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            retry_time_max: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            tls: None,
            sessions: true,
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
    /// No server led the cluster within the attempts or the time allowed;
    /// nothing changed.
    #[error(
        "no leader answered after {attempts} attempts to {}; last: {last}",
        tried.join(", ")
    )]
    Unavailable {
        /// How many attempts were made.
        attempts: usize,
        /// The servers tried, in the order first tried.
        tried: Vec<String>,
        /// What went wrong the last time.
        last: String,
    },
    /// The session expired while a change of it was being resent: the
    /// change may have applied before, and the cluster no longer knows.
    #[error("the session expired while a change was resent; it may or may not have happened")]
    SessionLost,
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
                | ClientError::SessionLost
        )
    }
}

/// What became of one attempt.
enum Attempt {
    /// The answer.
    Answered(Response),
    /// Nothing happened; try again, at once when `pause` is false.
    Retry { problem: String, pause: bool },
    /// The request may have taken effect; with `resendable`, sending it
    /// again is safe (it is numbered, or a read).
    Unknown {
        error: ClientError,
        resendable: bool,
    },
}

/// A client of the file server. Requests are sent one at a time.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    /// Index into `config.servers` of the server to use.
    current: usize,
    /// Boxed, so that a client stays small where many are kept side by
    /// side (one per benchmark connection, in an enum with other clients).
    connection: Option<Box<Connection>>,
    /// The session open now, and the number its next change gets.
    session: Option<SessionSeq>,
}

/// Whether a request may be sent again when its outcome is unknown, and
/// whether that outcome matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resend {
    /// It changes nothing the caller cares about (a read, a session's
    /// opening): sent again as often as needed, and if no answer comes,
    /// nothing happened.
    Idempotent,
    /// A numbered change, which the cluster applies once however often it
    /// arrives: sent again, but if no answer comes, it may have applied.
    Numbered,
    /// A plain change, which could apply twice: never sent again once it
    /// may have arrived.
    Never,
}

/// The answer to a request sent until answered, and whether an attempt
/// before the answer may have applied it.
struct Answered {
    response: Response,
    uncertain: bool,
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
            session: None,
        }
    }

    /// The session the client's changes go in now, if one is open.
    pub fn session(&self) -> Option<SessionId> {
        self.session.map(|session| session.id)
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
    /// answer: in the client's session when it is a change and sessions are
    /// on. `ERR_CMD_ERR` and `ERR_INTERNAL` come back as errors.
    pub async fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        let wire = self.encode_checked(request)?;
        if matches!(request, Request::Read { .. }) {
            return self.send_until_answered(&wire, Resend::Idempotent).await;
        }
        if !self.config.sessions {
            return self.send_until_answered(&wire, Resend::Never).await;
        }
        self.call_in_session(&wire).await
    }

    /// Sends the encoded change `wire` as the session's next number,
    /// opening a session first when none is open.
    async fn call_in_session(&mut self, wire: &[u8]) -> Result<Response, ClientError> {
        // A session that expired before this change reached any server is
        // replaced once; the change applied nowhere, so it may go again.
        for _ in 0..2 {
            let Some(session) = self.open_session().await? else {
                return self.send_until_answered(wire, Resend::Never).await;
            };
            let mut numbered = Vec::with_capacity(wire.len() + 40);
            session.encode_prefix(&mut numbered);
            numbered.extend_from_slice(wire);
            let sent = self.send_answering(&numbered, Resend::Numbered).await;
            // Whatever came of it, this number is used up.
            self.session = Some(SessionSeq {
                seq: session.seq + 1,
                ..session
            });
            let answered = sent?;
            match answered.response {
                Response::SessionExpired if answered.uncertain => {
                    self.session = None;
                    return Err(ClientError::SessionLost);
                }
                Response::SessionExpired => self.session = None,
                response => return finish(response),
            }
        }
        Err(ClientError::SessionLost)
    }

    /// The session the next change goes in: the open one, or a new one.
    /// `None` when the servers do not know sessions.
    async fn open_session(&mut self) -> Result<Option<SessionSeq>, ClientError> {
        if let Some(session) = self.session {
            return Ok(Some(session));
        }
        let mut wire = Vec::new();
        encode_open(&mut wire);
        // A session opened twice is harmless: the store forgets the unused one.
        match self
            .send_answering(&wire, Resend::Idempotent)
            .await?
            .response
        {
            Response::SessionOpened { id } => {
                let session = SessionSeq { id, seq: 1 };
                self.session = Some(session);
                Ok(Some(session))
            }
            Response::CommandError => {
                tracing::warn!("the server does not know sessions; going on without them");
                self.config.sessions = false;
                Ok(None)
            }
            Response::Internal => Err(ClientError::Internal),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `wire` until a server answers it, and turns the protocol's
    /// errors into [`ClientError`]s.
    async fn send_until_answered(
        &mut self,
        wire: &[u8],
        resend: Resend,
    ) -> Result<Response, ClientError> {
        finish(self.send_answering(wire, resend).await?.response)
    }

    /// Sends `wire` to the leader, following redirects and pausing between
    /// attempts (see the module's documentation), until a server answers,
    /// the attempts or the time run out, or the outcome becomes unknown for
    /// a request that must not be resent. An `ERR_INTERNAL` is resent when
    /// that is safe.
    async fn send_answering(
        &mut self,
        wire: &[u8],
        resend: Resend,
    ) -> Result<Answered, ClientError> {
        let deadline = Instant::now() + self.config.retry_time_max;
        let mut pause = self.config.backoff;
        let mut tried: Vec<String> = Vec::new();
        let mut last = String::from("no server configured");
        // The last error that left the outcome unknown, reported if no
        // answer comes after it.
        let mut unknown: Option<ClientError> = None;
        let mut paused_last = true;
        let mut attempts = 0;
        while attempts < self.config.attempts_max {
            attempts += 1;
            if let Some(server) = self.config.servers.get(self.current) {
                if !tried.contains(server) {
                    tried.push(server.clone());
                }
            }
            let (problem, pause_now) = match self.attempt(wire, resend).await {
                Attempt::Answered(Response::Internal) if resend != Resend::Never => {
                    // Often a leader deposed while the request waited.
                    self.connection = None;
                    self.move_to_next_server();
                    if resend == Resend::Numbered {
                        unknown = Some(ClientError::Internal);
                    }
                    ("ERR_INTERNAL".to_string(), true)
                }
                Attempt::Answered(response) => {
                    return Ok(Answered {
                        response,
                        uncertain: unknown.is_some(),
                    })
                }
                Attempt::Unknown {
                    error,
                    resendable: true,
                } => {
                    let problem = error.to_string();
                    unknown = Some(error);
                    (problem, true)
                }
                Attempt::Unknown { error, .. } => return Err(error),
                // A leader named by a redirect is tried at once, but not
                // twice in a row: servers redirecting to each other must
                // not make the client spin.
                Attempt::Retry { problem, pause } => (problem, pause || !paused_last),
            };
            tracing::debug!(attempt = attempts, %problem, "retrying");
            last = problem;
            paused_last = pause_now;
            if pause_now {
                let now = Instant::now();
                if now + pause >= deadline {
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(self.config.backoff_max);
            } else if Instant::now() >= deadline {
                break;
            }
        }
        match unknown {
            Some(error) => Err(error),
            None => Err(ClientError::Unavailable {
                attempts,
                tried,
                last,
            }),
        }
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

    async fn attempt(&mut self, wire: &[u8], resend: Resend) -> Attempt {
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
        let error = match exchange {
            Ok(Ok(Response::Redirect { leader })) => {
                self.connection = None;
                return self.follow_redirect(&address, leader);
            }
            Ok(Ok(response)) => {
                if response == Response::CommandError {
                    self.connection = None; // the server closes it
                }
                return Attempt::Answered(response);
            }
            Ok(Err(source)) => ClientError::ConnectionLost { address, source },
            Err(_) => ClientError::Timeout { address, timeout },
        };
        self.connection = None;
        self.move_to_next_server();
        match resend {
            Resend::Idempotent => Attempt::Retry {
                problem: error.to_string(),
                pause: true,
            },
            Resend::Numbered | Resend::Never => Attempt::Unknown {
                error,
                resendable: resend == Resend::Numbered,
            },
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
                    problem: format!("{from} knows no leader (ERR_REDIRECT _)"),
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
        if self
            .connection
            .as_deref_mut()
            .is_some_and(Connection::is_broken)
        {
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
            self.connection = Some(Box::new(Connection {
                address,
                stream,
                buffer: Vec::new(),
            }));
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

/// The answer to a request, with `ERR_CMD_ERR` and `ERR_INTERNAL` as
/// errors.
fn finish(response: Response) -> Result<Response, ClientError> {
    match response {
        Response::CommandError => Err(ClientError::Rejected),
        Response::Internal => Err(ClientError::Internal),
        response => Ok(response),
    }
}

fn unexpected(response: Response) -> ClientError {
    let mut wire = Vec::new();
    response.encode(&mut wire);
    ClientError::UnexpectedResponse(String::from_utf8_lossy(&wire).trim_end().to_string())
}

#[cfg(test)]
mod tests;
