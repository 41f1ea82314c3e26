//! TLS for the file server's clients, on when the cluster's `[tls]` says
//! `clients = true`: every client connection must complete a TLS handshake
//! (the node's own certificate, no client certificate asked) before any
//! request is read.
//!
//! Until its first byte arrives a new connection is idle like any other
//! (evictable, closed after the idle timeout), so that TCP connections that
//! never start TLS cannot hold slots; from the first byte the handshake is
//! a request in progress, bounded by the read timeout. A client that does
//! not speak TLS fails the handshake and is closed without an answer.

use super::connection::{self, Admitted};
use super::{ServerConfig, ServerError, Shared};
use skiff_node::tls::NodeTls;
use std::io;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

/// The acceptor for clients, if the cluster asks for client TLS.
pub(super) fn acceptor(config: &ServerConfig) -> Result<Option<TlsAcceptor>, ServerError> {
    let Some(tls) = config.cluster.tls.as_ref().filter(|tls| tls.clients) else {
        return Ok(None);
    };
    let server_config = NodeTls::load(tls, config.id)?.client_facing_server_config()?;
    Ok(Some(TlsAcceptor::from(server_config)))
}

/// Serves one client over TLS: waits idle for its first byte, runs the
/// handshake within the read timeout, then serves it like any client.
pub(super) async fn serve_client(
    stream: TcpStream,
    acceptor: &TlsAcceptor,
    shared: &Shared,
    mut admitted: Admitted,
) -> io::Result<()> {
    let mut first_byte = [0u8; 1];
    // A peek: the handshake must see the byte.
    match admitted
        .idle_until(shared, stream.peek(&mut first_byte))
        .await?
    {
        None | Some(0) => return Ok(()),
        Some(_) => {}
    }
    let read_timeout = shared.client_limits.read_timeout;
    let handshake = tokio::select! {
        _ = admitted.stopping.changed() => return Ok(()),
        handshake = timeout(read_timeout, acceptor.accept(stream)) => handshake,
    };
    match handshake {
        Ok(Ok(stream)) => connection::serve_client(stream, shared, admitted).await,
        Ok(Err(error)) => {
            // Often a client that does not speak TLS: nothing to warn about.
            tracing::debug!(%error, "client TLS handshake failed; closing");
            Ok(())
        }
        Err(_) => {
            if let Some(suppressed) = shared.warnings.slow_client.check() {
                tracing::warn!(
                    timeout = ?read_timeout,
                    suppressed,
                    "a client TLS handshake did not complete within client_read_timeout_ms; closing"
                );
            }
            Ok(())
        }
    }
}
