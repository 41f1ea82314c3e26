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

use super::buffer::RequestBuffer;
use super::slots::{Eviction, Slot};
use super::Shared;
use crate::protocol::{parse_client_message, ClientMessage, Parsed, Response};
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant};

/// Serves one client until it closes, sends a malformed request, breaks a
/// limit, is evicted, or the server stops.
pub(super) async fn serve_client(
    mut stream: TcpStream,
    shared: &Shared,
    slot: Slot,
    mut eviction: Eviction,
    mut stopping: watch::Receiver<bool>,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let limits = &shared.client_limits;
    let mut buffer = RequestBuffer::new(&shared.budget, shared.limits.request_bytes_max());
    // When the request being received must be whole.
    let mut deadline = Instant::now() + limits.read_timeout;
    loop {
        match parse_client_message(buffer.bytes(), &shared.limits) {
            Ok(Parsed::Complete { value, consumed }) => {
                // Released before the wait for a commit, which may be long.
                buffer.consume(consumed);
                let mut out = Vec::new();
                match value {
                    ClientMessage::File(request) => shared.execute(request).await.encode(&mut out),
                    ClientMessage::Status => shared.status_report().encode(&mut out),
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
        if buffer.is_empty() {
            slot.set_idle();
            let mut first_byte = [0u8; 1];
            let woke = tokio::select! {
                _ = stopping.changed() => return Ok(()),
                _ = &mut eviction => {
                    tracing::debug!("closing an idle client connection to make room for a new one");
                    return Ok(());
                }
                // A peek, not `readable`, which may wake without data and
                // would then count an idle connection as busy.
                woke = timeout(limits.idle_timeout, stream.peek(&mut first_byte)) => woke,
            };
            let Ok(peeked) = woke else {
                tracing::debug!(timeout = ?limits.idle_timeout, "closing an idle client connection");
                return Ok(());
            };
            if peeked? == 0 {
                return Ok(());
            }
            if !slot.set_busy() {
                // Evicted between waking and now.
                return Ok(());
            }
            deadline = Instant::now() + limits.read_timeout;
        }
        let room = tokio::select! {
            _ = stopping.changed() => return Ok(()),
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
        let read = tokio::select! {
            _ = stopping.changed() => return Ok(()),
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
async fn answer(stream: &mut TcpStream, shared: &Shared, response: &Response) -> io::Result<()> {
    let mut out = Vec::new();
    response.encode(&mut out);
    send(stream, shared, &out).await
}

/// Sends `out`, failing if the client does not take it within the read
/// timeout.
async fn send(stream: &mut TcpStream, shared: &Shared, out: &[u8]) -> io::Result<()> {
    let read_timeout = shared.client_limits.read_timeout;
    match timeout(read_timeout, stream.write_all(out)).await {
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
