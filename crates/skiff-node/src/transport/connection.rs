//! Reading and writing frames on a stream, and the handshake both ways.
//! The stream is plain TCP or TLS; neither side here knows which.

use super::wire::{self, Frame, Hello, WireError, LENGTH_BYTES, REFUSAL};
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A connection to a peer, over TCP or TLS.
pub trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerStream for T {}

/// A connection whose kind (TCP or TLS) was chosen at run time.
pub type BoxedStream = Box<dyn PeerStream>;

/// Why a peer connection was closed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The socket failed or closed, or TLS failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a valid frame.
    #[error("{0}")]
    Wire(#[from] WireError),
    /// The handshake (TLS and hello) did not complete in time.
    #[error("handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// The handshake was refused: by us, with the reason we logged; by the
    /// peer, which tells no reason.
    #[error("handshake refused: {0}")]
    Refused(String),
    /// A valid frame arrived where the protocol does not allow it.
    #[error("unexpected {0} frame")]
    Unexpected(&'static str),
}

/// Reads one frame's version and body (without the length prefix), of at
/// most `max` bytes; a longer one is an error before anything is allocated.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Bytes, ConnectionError> {
    let mut prefix = [0; LENGTH_BYTES];
    reader.read_exact(&mut prefix).await?;
    let length = wire::check_length(prefix, max)?;
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

/// What a peer connection carries, as its dialer's first frame says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Raft messages ([`Frame::Hello`]).
    Messages,
    /// One snapshot file ([`Frame::SnapshotHello`]).
    Snapshot,
}

/// The dialer's side: sends `hello` (as a stream of `kind`), expects the
/// listener's `Hello` back from node `hello.peer_id` of the same cluster,
/// in a frame of at most `frame_max` bytes. The caller bounds the time.
pub async fn handshake_as_dialer<S>(
    stream: &mut S,
    hello: Hello,
    kind: StreamKind,
    frame_max: usize,
) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let first = match kind {
        StreamKind::Messages => Frame::Hello(hello),
        StreamKind::Snapshot => Frame::SnapshotHello(hello),
    };
    write_frame(stream, &first).await?;
    let body = read_frame(stream, frame_max).await?;
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
        Frame::Refused(reason) => Err(ConnectionError::Refused(format!(
            "the peer answered {reason:?}; its log says why"
        ))),
        other => Err(ConnectionError::Unexpected(other.kind())),
    }
}

/// The listener's side: reads the dialer's `Hello` or `SnapshotHello` (at
/// most `frame_max` bytes), checks it with `admit`, and answers with `me`
/// or with the generic [`REFUSAL`]. Returns the dialer's hello and what
/// its connection carries, or the reason `admit` gave, for the caller to
/// log. The caller bounds the time.
pub async fn handshake_as_listener<S>(
    stream: &mut S,
    me: Hello,
    frame_max: usize,
    admit: impl FnOnce(&Hello) -> Result<(), String>,
) -> Result<(Hello, StreamKind), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let body = read_frame(stream, frame_max).await?;
    let (hello, kind) = match wire::decode_frame(&body)? {
        Frame::Hello(hello) => (hello, StreamKind::Messages),
        Frame::SnapshotHello(hello) => (hello, StreamKind::Snapshot),
        other => return Err(ConnectionError::Unexpected(other.kind())),
    };
    if let Err(reason) = admit(&hello) {
        // Best effort: we close either way.
        let _ = write_frame(stream, &Frame::Refused(REFUSAL.into())).await;
        return Err(ConnectionError::Refused(reason));
    }
    let answer = Hello {
        peer_id: hello.node_id,
        address: None,
        ..me
    };
    write_frame(stream, &Frame::Hello(answer)).await?;
    Ok((hello, kind))
}
