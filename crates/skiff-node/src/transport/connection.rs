//! Reading and writing frames on a socket, and the handshake both ways.

use super::wire::{self, Frame, Hello, WireError, LENGTH_BYTES};
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a peer connection was closed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The socket failed or closed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a valid frame.
    #[error("{0}")]
    Wire(#[from] WireError),
    /// The handshake did not complete in time.
    #[error("handshake timed out after {HANDSHAKE_TIMEOUT:?}")]
    HandshakeTimeout,
    /// The handshake was refused, by us or by the peer.
    #[error("handshake refused: {0}")]
    Refused(String),
    /// A valid frame arrived where the protocol does not allow it.
    #[error("unexpected {0} frame")]
    Unexpected(&'static str),
}

/// Reads one frame's version and body (without the length prefix).
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Bytes, ConnectionError> {
    let mut prefix = [0; LENGTH_BYTES];
    reader.read_exact(&mut prefix).await?;
    let length = wire::check_length(prefix)?;
    let mut body = BytesMut::zeroed(length);
    reader.read_exact(&mut body).await?;
    Ok(body.freeze())
}

/// Encodes and writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &Frame<'_>,
) -> Result<(), ConnectionError> {
    let mut out = Vec::new();
    wire::encode_frame(frame, &mut out)?;
    writer.write_all(&out).await?;
    writer.flush().await?;
    Ok(())
}

/// The dialer's side: sends `hello`, expects the listener's `Hello` back
/// from node `hello.peer_id` of the same cluster.
pub async fn handshake_as_dialer<S>(stream: &mut S, hello: Hello) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = async {
        write_frame(stream, &Frame::Hello(hello)).await?;
        let body = read_frame(stream).await?;
        match wire::decode_frame(&body)? {
            Frame::Hello(answer)
                if answer.cluster_id == hello.cluster_id
                    && answer.node_id == hello.peer_id
                    && answer.peer_id == hello.node_id =>
            {
                Ok(())
            }
            Frame::Hello(answer) => Err(ConnectionError::Refused(format!(
                "expected node {} of cluster {}, found node {} of cluster {}",
                hello.peer_id, hello.cluster_id, answer.node_id, answer.cluster_id
            ))),
            Frame::Refused(reason) => Err(ConnectionError::Refused(reason)),
            Frame::Message(_) => Err(ConnectionError::Unexpected("message")),
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .map_err(|_| ConnectionError::HandshakeTimeout)?
}

/// The listener's side: reads the dialer's `Hello`, checks it with
/// `admit` (which names the reason for a refusal), and answers. Returns the
/// dialer's node id.
pub async fn handshake_as_listener<S>(
    stream: &mut S,
    me: Hello,
    admit: impl FnOnce(&Hello) -> Result<(), String>,
) -> Result<u64, ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = async {
        let body = read_frame(stream).await?;
        let hello = match wire::decode_frame(&body)? {
            Frame::Hello(hello) => hello,
            Frame::Refused(_) => return Err(ConnectionError::Unexpected("refused")),
            Frame::Message(_) => return Err(ConnectionError::Unexpected("message before hello")),
        };
        if let Err(reason) = admit(&hello) {
            // Best effort: the dialer logs the reason; we close either way.
            let _ = write_frame(stream, &Frame::Refused(reason.clone())).await;
            return Err(ConnectionError::Refused(reason));
        }
        let answer = Hello {
            peer_id: hello.node_id,
            ..me
        };
        write_frame(stream, &Frame::Hello(answer)).await?;
        Ok(hello.node_id)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .map_err(|_| ConnectionError::HandshakeTimeout)?
}
