//! Serving one client connection: parse, execute, answer, in order, within
//! the client limits.
//!
//! * While no request is in progress the connection is idle: it holds no
//!   buffer, may be evicted to make room for a new client (see
//!   [`super::slots`]), and is closed after the idle timeout.
//! * From a request's first byte until it is whole, the read timeout runs;
//!   a request that does not arrive whole in time closes the connection
//!   without an answer (the request was never executed).
//! * A request that needs more than the connection's unbudgeted buffer
//!   waits for the pending-bytes budget, within the same read timeout; if
//!   the budget has no room by then, or could never hold the request, the
//!   client gets `ERR_INTERNAL` and the connection closes.
//! * An answer must be taken by the client within the read timeout too, so
//!   that a client that never reads cannot pin its answer forever.
//!
//! The stream is any byte stream: plain TCP, or TLS once its handshake is
//! done (see [`super::client_tls`]).

use super::buffer::RequestBuffer;
use super::request_metrics::command_of;
use super::slots::{Eviction, Slot};
use super::Shared;
use crate::protocol::{parse_client_message, ClientMessage, Parsed, Response};
use std::future::Future;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant};

/// What an admitted connection holds besides its stream: its slot, word of
/// its eviction, and word of the server stopping.
pub(super) struct Admitted {
    /// The connection's slot, given back when the connection ends.
    pub(super) slot: Slot,
    /// Resolves when the connection is evicted to make room.
    pub(super) eviction: Eviction,
    /// Changes when the server stops.
    pub(super) stopping: watch::Receiver<bool>,
}

impl Admitted {
    /// Waits, idle (evictable, under the idle timeout), for `ready`, then
    /// marks the connection busy. `None` if the connection must close
    /// instead: the server stops, the connection was evicted, or the idle
    /// timeout passed.
    pub(super) async fn idle_until<T>(
        &mut self,
        shared: &Shared,
        ready: impl Future<Output = io::Result<T>>,
    ) -> io::Result<Option<T>> {
        let idle_timeout = shared.client_limits.idle_timeout;
        self.slot.set_idle();
        let woke = tokio::select! {
            _ = self.stopping.changed() => return Ok(None),
            _ = &mut self.eviction => {
                tracing::debug!("closing an idle client connection to make room for a new one");
                return Ok(None);
            }
            woke = timeout(idle_timeout, ready) => woke,
        };
        let Ok(ready) = woke else {
            tracing::debug!(timeout = ?idle_timeout, "closing an idle client connection");
            return Ok(None);
        };
        let ready = ready?;
        // False if evicted between waking and now.
        Ok(self.slot.set_busy().then_some(ready))
    }
}

/// The most read from an idle connection when it wakes: enough for most
/// requests whole, small enough to cost idle connections next to nothing.
const IDLE_READ_BYTES: usize = 512;
const _: () = assert!(IDLE_READ_BYTES <= super::buffer::UNBUDGETED_BYTES);

/// Serves one client until it closes, sends a malformed request, breaks a
/// limit, is evicted, or the server stops.
pub(super) async fn serve_client<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    shared: &Shared,
    mut admitted: Admitted,
) -> io::Result<()> {
    let limits = &shared.client_limits;
    let mut buffer = RequestBuffer::new(&shared.budget, shared.limits.request_bytes_max());
    // When the request being received must be whole.
    let mut deadline = Instant::now() + limits.read_timeout;
    let mut out = Vec::new();
    loop {
        match parse_client_message(buffer.bytes(), &shared.limits) {
            Ok(Parsed::Complete { value, consumed }) => {
                // Released before the wait for a commit, which may be long.
                buffer.consume(consumed);
                out.clear();
                let (started, command) = (std::time::Instant::now(), command_of(&value));
                let requests = &shared.requests;
                match value {
                    ClientMessage::File(request) => {
                        let response = shared.execute(request).await;
                        requests.record(command, &response, started.elapsed());
                        response.encode(&mut out)
                    }
                    ClientMessage::Status => {
                        shared.status_report().encode(&mut out);
                        requests.record_status(started.elapsed());
                    }
                    ClientMessage::Snapshot => {
                        let answer = shared.snapshot_answer().await;
                        requests.record_snapshot(&answer, started.elapsed());
                        answer.encode(&mut out)
                    }
                    ClientMessage::Transfer(to) => {
                        let answer = shared.transfer_answer(to).await;
                        requests.record_transfer(&answer, started.elapsed());
                        answer.encode(&mut out)
                    }
                    ClientMessage::Member(request) => {
                        let reply = shared.member_reply(request).await;
                        requests.record_member(&reply, started.elapsed());
                        reply.encode(&mut out)
                    }
                    ClientMessage::Session(message) => {
                        let response = shared.execute_session(message).await;
                        requests.record(command, &response, started.elapsed());
                        response.encode(&mut out)
                    }
                }
                send(&mut stream, shared, &out).await?;
                // Any bytes left over begin the next request now.
                deadline = Instant::now() + limits.read_timeout;
                continue;
            }
            Ok(Parsed::Incomplete) => {}
            Err(error) => {
                tracing::debug!(%error, "malformed request; closing the connection");
                answer(&mut stream, shared, &Response::CommandError).await?;
                return stream.shutdown().await;
            }
        }
        // The first bytes of a request that arrives while idle: read into
        // a small array, so that an idle connection holds no buffer, yet
        // a small request still arrives in one read.
        let mut first = [0u8; IDLE_READ_BYTES];
        let mut first_read = 0;
        if buffer.is_empty() {
            match admitted.idle_until(shared, stream.read(&mut first)).await? {
                None | Some(0) => return Ok(()),
                Some(read) => first_read = read,
            }
            deadline = Instant::now() + limits.read_timeout;
        }
        let room = tokio::select! {
            _ = admitted.stopping.changed() => return Ok(()),
            room = timeout_at(deadline, buffer.make_room()) => room,
        };
        let refusal = match room {
            Ok(Ok(())) => None,
            Ok(Err(over)) => Some(over.to_string()),
            Err(_) => Some("no room in the budget within the read timeout".to_owned()),
        };
        if let Some(reason) = refusal {
            if let Some(suppressed) = shared.warnings.budget.check() {
                tracing::warn!(
                    %reason,
                    budget = shared.budget.total(),
                    suppressed,
                    "client_pending_bytes_max reached; answering ERR_INTERNAL and closing"
                );
            }
            answer(&mut stream, shared, &Response::Internal).await?;
            return Ok(());
        }
        if first_read > 0 {
            // Fits: an empty buffer's first room is far above IDLE_READ_BYTES.
            buffer.unfilled().extend_from_slice(&first[..first_read]);
            continue;
        }
        let read = tokio::select! {
            _ = admitted.stopping.changed() => return Ok(()),
            read = timeout_at(deadline, stream.read_buf(buffer.unfilled())) => read,
        };
        match read {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                if let Some(suppressed) = shared.warnings.slow_client.check() {
                    tracing::warn!(
                        timeout = ?limits.read_timeout,
                        received = buffer.bytes().len(),
                        suppressed,
                        "a client request did not arrive whole within client_read_timeout_ms; closing"
                    );
                }
                return Ok(());
            }
        }
    }
}

/// Sends `response`.
async fn answer(
    stream: &mut (impl AsyncWrite + Unpin),
    shared: &Shared,
    response: &Response,
) -> io::Result<()> {
    let mut out = Vec::new();
    response.encode(&mut out);
    send(stream, shared, &out).await
}

/// Sends `out` and flushes it, failing if the client does not take it within the read
/// timeout.
async fn send(
    stream: &mut (impl AsyncWrite + Unpin),
    shared: &Shared,
    out: &[u8],
) -> io::Result<()> {
    let read_timeout = shared.client_limits.read_timeout;
    // Flushed: TLS may hold written bytes until then.
    let sent = async {
        stream.write_all(out).await?;
        stream.flush().await
    };
    match timeout(read_timeout, sent).await {
        Ok(written) => written,
        Err(_) => {
            if let Some(suppressed) = shared.warnings.slow_client.check() {
                tracing::warn!(
                    timeout = ?read_timeout,
                    suppressed,
                    "a client did not take its answer within client_read_timeout_ms; closing"
                );
            }
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not take its answer in time",
            ))
        }
    }
}
