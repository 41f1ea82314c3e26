//! Snapshot files streamed to peers, each transfer on a connection of its
//! own (the protocol is in `wire`, "Snapshot streams").
//!
//! Why this shape:
//!
//! * **A connection per transfer.** The message connection is a queue: a
//!   file streamed on it would put every heartbeat behind it. A separate
//!   connection (same TCP or TLS stack, same handshake and limits, a
//!   `SnapshotHello` saying what it carries) lets TCP's own flow control
//!   pace the file while heartbeats and appends keep their connections.
//! * **Bounded memory.** The sender holds one chunk of the file at a time
//!   (plus its encoded frame), reading the file as it goes; the receiver
//!   holds one frame at a time and writes it out before reading the next.
//!   Neither ever holds the whole file.
//! * **Resumable.** The receiver keeps what it got in one temporary file
//!   per peer (`from-<id>-<index>-<term>-<length>.partial`) and answers an
//!   offer with how much of it it holds and that prefix's crc32c; the
//!   sender resumes there when its own prefix has the same crc32c, and
//!   starts over otherwise (another leader's file of the same snapshot, or
//!   a partial file damaged by a crash).
//! * **Checksummed end to end.** Each chunk carries the crc32c of its data
//!   (a bad one is never written), the end the crc32c of the whole file
//!   (a mismatch deletes the temporary file). Only then is the file
//!   synced, renamed to [`received_snapshot_path`], its directory synced,
//!   the sender acknowledged, and the `InstallSnapshotReq` delivered.
//! * **Bounded for a hostile or buggy peer.** Only an authenticated peer
//!   gets here, with one stream at a time (a new one replaces the old) and
//!   one temporary file (another snapshot's is deleted); the length is
//!   checked against [`PeerLimits::snapshot_bytes_max`](super::PeerLimits)
//!   and the free space, chunks against the receiver's chunk size, and a
//!   stream that stalls for [`PeerLimits::snapshot_stall_timeout`](super::PeerLimits)
//!   is closed.
//! * **Retries.** A sender whose connection fails dials again with
//!   backoff and resumes; after [`ATTEMPTS_WITHOUT_PROGRESS_MAX`] failures
//!   in a row that moved nothing, it gives up (the leader asks again about
//!   every 20 heartbeats). A file that vanished ends the transfer quietly.

use super::connection::{read_frame, write_frame, BoxedStream, ConnectionError, StreamKind};
use super::wire::{
    self, Frame, SnapshotChunk, SnapshotEnd, SnapshotOffer, SnapshotResume, WireError,
    FRAME_BYTES_MAX, SNAPSHOT_CHUNK_OVERHEAD_MAX,
};
use super::{
    log_closed, received_snapshot_path, Dialer, Inbound, TransportConfig, BACKOFF_MAX, BACKOFF_MIN,
};
use skiff_core::{InstallSnapshotReq, LogIndex, Message, NodeId, SnapshotMeta, Term};
use std::future::Future;
use std::io::{ErrorKind, Read, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The smallest chunk sent, whatever the configuration says.
pub const SNAPSHOT_CHUNK_BYTES_MIN: usize = 4 << 10;
/// The largest chunk sent or accepted, whatever the configuration says.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 4 << 20;
const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX + SNAPSHOT_CHUNK_OVERHEAD_MAX <= FRAME_BYTES_MAX);

/// Failed attempts in a row, none moving the receiver forward, before a
/// sender gives up.
pub const ATTEMPTS_WITHOUT_PROGRESS_MAX: u32 = 10;

/// The largest offer, resume, end or done frame (each a few varints).
const CONTROL_FRAME_BYTES_MAX: usize = 256;

/// The chunk size to use for `configured` bytes, within the bounds.
pub(super) fn chunk_bytes(configured: u32) -> usize {
    (configured as usize).clamp(SNAPSHOT_CHUNK_BYTES_MIN, SNAPSHOT_CHUNK_BYTES_MAX)
}

/// Why a transfer (one attempt, either side) stopped.
#[derive(Debug, thiserror::Error)]
enum TransferError {
    #[error("{0}")]
    Connection(#[from] ConnectionError),
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the snapshot file is gone")]
    Vanished,
    #[error("nothing moved for {0:?}")]
    Stalled(Duration),
    #[error("a snapshot of {length} bytes exceeds the limit of {max}")]
    TooLarge { length: u64, max: u64 },
    #[error("{needed} more bytes needed, {available} available")]
    NoSpace { needed: u64, available: u64 },
    #[error("the chunk at offset {offset} fails its checksum")]
    BadChunk { offset: u64 },
    #[error("a chunk at offset {offset} where {expected} was expected")]
    OutOfPlace { offset: u64, expected: u64 },
    #[error("data past the announced length {length}")]
    TooLong { length: u64 },
    #[error("the stream ended at {held} of {length} bytes")]
    Short { held: u64, length: u64 },
    #[error("the whole file fails its checksum")]
    BadChecksum,
}

impl From<WireError> for TransferError {
    fn from(e: WireError) -> TransferError {
        TransferError::Connection(e.into())
    }
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::File {
        path: path.to_owned(),
        source,
    }
}

/// Runs `work`, or fails as stalled once `limit` has passed.
async fn within<T, E: Into<TransferError>>(
    limit: Duration,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, TransferError> {
    match tokio::time::timeout(limit, work).await {
        Ok(outcome) => outcome.map_err(Into::into),
        Err(_) => Err(TransferError::Stalled(limit)),
    }
}

/// Reads one small frame and keeps it if `pick` says it is the one expected.
async fn read_control<T>(
    stream: &mut BoxedStream,
    stall: Duration,
    pick: impl FnOnce(Frame<'_>) -> Result<T, &'static str>,
) -> Result<T, TransferError> {
    let body = within(stall, read_frame(stream, CONTROL_FRAME_BYTES_MAX)).await?;
    let frame = wire::decode_frame(&body)?;
    pick(frame).map_err(|kind| ConnectionError::Unexpected(kind).into())
}

/// A transfer to one peer, running or done.
#[derive(Debug)]
pub(super) struct Outgoing {
    snapshot: SnapshotMeta,
    /// What the receiver will deliver, the latest the leader asked for.
    req: Arc<Mutex<InstallSnapshotReq>>,
    task: JoinHandle<()>,
}

impl Outgoing {
    /// Starts sending `file` through `dialer`'s peer.
    pub(super) fn spawn(
        runtime: &tokio::runtime::Handle,
        dialer: Arc<Dialer>,
        req: InstallSnapshotReq,
        file: PathBuf,
        chunk_bytes: usize,
    ) -> Outgoing {
        let snapshot = req.snapshot;
        let req_shared = Arc::new(Mutex::new(req));
        let sender = Sender {
            dialer,
            req: req_shared.clone(),
            file,
            chunk_bytes,
        };
        Outgoing {
            snapshot,
            req: req_shared,
            task: runtime.spawn(sender.run()),
        }
    }

    /// Whether this transfer is still sending `snapshot`.
    pub(super) fn carries(&self, snapshot: SnapshotMeta) -> bool {
        self.snapshot == snapshot && !self.task.is_finished()
    }

    /// Delivers `req` instead of the request given so far.
    pub(super) fn update(&self, req: InstallSnapshotReq) {
        *self.req.lock().unwrap_or_else(PoisonError::into_inner) = req;
    }

    /// Stops the transfer where it is; the receiver keeps what it got.
    pub(super) fn stop(self) {
        self.task.abort();
    }
}

/// The sending side of one transfer, across its attempts.
struct Sender {
    dialer: Arc<Dialer>,
    req: Arc<Mutex<InstallSnapshotReq>>,
    file: PathBuf,
    chunk_bytes: usize,
}

impl Sender {
    fn req(&self) -> InstallSnapshotReq {
        self.req
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn run(self) {
        let peer = self.dialer.hello.peer_id;
        let snapshot = self.req().snapshot;
        let mut backoff = BACKOFF_MIN;
        let mut failures = 0;
        // The most the receiver has said it holds: when it grows, the
        // attempt before made progress.
        let mut receiver_held = 0;
        loop {
            let held_before = receiver_held;
            let outcome = self.attempt(&mut receiver_held).await;
            if receiver_held > held_before {
                failures = 0;
                backoff = BACKOFF_MIN;
            }
            match outcome {
                Ok(length) => {
                    tracing::info!(peer, %snapshot, length, "snapshot sent");
                    return;
                }
                Err(TransferError::Vanished) => {
                    tracing::debug!(peer, %snapshot, file = %self.file.display(), "snapshot file gone; transfer ended");
                    return;
                }
                Err(e) => {
                    failures += 1;
                    if failures >= ATTEMPTS_WITHOUT_PROGRESS_MAX {
                        tracing::warn!(peer, %snapshot, reason = %e, failures, "snapshot transfer given up; the leader will ask again");
                        return;
                    }
                    tracing::info!(peer, %snapshot, reason = %e, "snapshot transfer interrupted; retrying");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection's worth: offer, resume, chunks, end, done. Records
    /// where the receiver said it stood in `receiver_held`. Returns the
    /// file's length.
    async fn attempt(&self, receiver_held: &mut u64) -> Result<u64, TransferError> {
        let path = &self.file;
        let mut file = match tokio::fs::File::open(path).await {
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(TransferError::Vanished),
            opened => opened.map_err(file_error(path))?,
        };
        let length = file.metadata().await.map_err(file_error(path))?.len();
        let stall = self.dialer.limits.snapshot_stall_timeout;
        let mut stream = self.dialer.dial(StreamKind::Snapshot).await?;
        let snapshot = self.req().snapshot;
        let offer = SnapshotOffer {
            index: snapshot.index.0,
            term: snapshot.term.0,
            length,
        };
        within(
            stall,
            write_frame(&mut stream, &Frame::SnapshotOffer(offer)),
        )
        .await?;
        let resume = read_control(&mut stream, stall, |frame| match frame {
            Frame::SnapshotResume(resume) => Ok(resume),
            other => Err(other.kind()),
        })
        .await?;
        *receiver_held = (*receiver_held).max(resume.offset);
        let chunk_bytes = self.chunk_bytes.min(resume.chunk_bytes_max as usize).max(1);
        let mut buffer = vec![0; chunk_bytes];
        let (mut offset, mut crc) = (0, 0);
        if resume.offset > 0 && resume.offset <= length {
            let prefix_crc = crc_of_prefix(&mut file, resume.offset, &mut buffer)
                .await
                .map_err(file_error(path))?;
            if prefix_crc == resume.crc32c {
                (offset, crc) = (resume.offset, prefix_crc);
            } else {
                tracing::debug!(peer = self.dialer.hello.peer_id, %snapshot, "the peer's partial file differs from ours; starting over");
                file.seek(SeekFrom::Start(0))
                    .await
                    .map_err(file_error(path))?;
            }
        }
        let mut frame = Vec::with_capacity(chunk_bytes + SNAPSHOT_CHUNK_OVERHEAD_MAX);
        while offset < length {
            let size = (length - offset).min(chunk_bytes as u64) as usize;
            let data = &mut buffer[..size];
            // A file that shrank under us fails here with UnexpectedEof.
            file.read_exact(data).await.map_err(file_error(path))?;
            let chunk = SnapshotChunk {
                offset,
                crc32c: crc32c::crc32c(data),
                data,
            };
            crc = crc32c::crc32c_combine(crc, chunk.crc32c, size);
            frame.clear();
            wire::encode_frame(&Frame::SnapshotChunk(chunk), &mut frame)?;
            let write = async {
                stream.write_all(&frame).await?;
                stream.flush().await.map_err(ConnectionError::from)
            };
            within(stall, write).await?;
            offset += size as u64;
        }
        let req = self.req();
        let end = SnapshotEnd {
            length,
            crc32c: crc,
            term: req.term.0,
            leader: req.leader.0,
            epoch: req.epoch,
            membership: wire::WireMembership(req.membership),
        };
        within(stall, write_frame(&mut stream, &Frame::SnapshotEnd(end))).await?;
        read_control(&mut stream, stall, |frame| match frame {
            Frame::SnapshotDone => Ok(()),
            other => Err(other.kind()),
        })
        .await?;
        Ok(length)
    }
}

/// The crc32c of the first `length` bytes of `file`, read from where it
/// stands through `buffer`.
async fn crc_of_prefix(
    file: &mut tokio::fs::File,
    length: u64,
    buffer: &mut [u8],
) -> std::io::Result<u32> {
    let mut crc = 0;
    let mut left = length;
    while left > 0 {
        let size = left.min(buffer.len() as u64) as usize;
        file.read_exact(&mut buffer[..size]).await?;
        crc = crc32c::crc32c_append(crc, &buffer[..size]);
        left -= size as u64;
    }
    Ok(crc)
}

/// An authenticated snapshot stream from a peer.
pub(super) struct Incoming {
    /// The peer.
    pub from: NodeId,
    /// Its address, for the log.
    pub address: SocketAddr,
    /// This node's transport configuration.
    pub config: Arc<TransportConfig>,
}

/// Receives one snapshot on `stream` and delivers its request to `inbound`,
/// or logs why not.
pub(super) async fn receive(
    incoming: Incoming,
    mut stream: BoxedStream,
    inbound: mpsc::Sender<Inbound>,
) {
    let (from, address) = (incoming.from, incoming.address);
    match incoming.run(&mut stream, inbound).await {
        Ok(()) => {}
        Err(TransferError::Connection(e)) => log_closed(address, &e),
        Err(e) => tracing::warn!(%from, %address, reason = %e, "snapshot stream closed"),
    }
}

impl Incoming {
    async fn run(
        &self,
        stream: &mut BoxedStream,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<(), TransferError> {
        let limits = &self.config.limits;
        let stall = limits.snapshot_stall_timeout;
        let offer = read_control(stream, stall, |frame| match frame {
            Frame::SnapshotOffer(offer) => Ok(offer),
            other => Err(other.kind()),
        })
        .await?;
        if offer.length > limits.snapshot_bytes_max {
            return Err(TransferError::TooLarge {
                length: offer.length,
                max: limits.snapshot_bytes_max,
            });
        }
        let snapshot = SnapshotMeta {
            index: LogIndex(offer.index),
            term: Term(offer.term),
        };
        let dir = &self.config.snapshot_incoming_dir;
        let mut partial = PartialFile::open(dir, self.from, offer).await?;
        let chunk_bytes_max = chunk_bytes(self.config.snapshot_chunk_bytes);
        let resume = SnapshotResume {
            offset: partial.held,
            crc32c: partial.crc,
            chunk_bytes_max: chunk_bytes_max as u32,
        };
        within(stall, write_frame(stream, &Frame::SnapshotResume(resume))).await?;
        let frame_max = chunk_bytes_max + SNAPSHOT_CHUNK_OVERHEAD_MAX;
        let end = loop {
            let body = within(stall, read_frame(stream, frame_max)).await?;
            match wire::decode_frame(&body)? {
                Frame::SnapshotChunk(chunk) => partial.write(chunk).await?,
                Frame::SnapshotEnd(end) => break end,
                other => return Err(ConnectionError::Unexpected(other.kind()).into()),
            }
        };
        let received = received_snapshot_path(dir, self.from, snapshot);
        partial.finish(&end, &received).await?;
        within(stall, write_frame(stream, &Frame::SnapshotDone)).await?;
        tracing::info!(from = %self.from, %snapshot, length = offer.length, path = %received.display(), "snapshot received");
        let req = InstallSnapshotReq {
            term: Term(end.term),
            leader: NodeId(end.leader),
            snapshot,
            membership: end.membership.0,
            epoch: end.epoch,
        };
        // An error means the node is stopping: nobody to tell.
        let _ = inbound
            .send((self.from, Message::InstallSnapshotReq(req)))
            .await;
        Ok(())
    }
}

/// The temporary file a snapshot from one peer is received into.
struct PartialFile {
    path: PathBuf,
    file: tokio::fs::File,
    /// The announced length of the whole file.
    length: u64,
    /// Bytes written and verified so far.
    held: u64,
    /// The crc32c of those bytes.
    crc: u32,
}

impl PartialFile {
    /// Opens the temporary file for `offer` from `from` in `dir`, keeping
    /// what an earlier stream of the same file left there and deleting the
    /// peer's temporary files of any other snapshot.
    async fn open(
        dir: &Path,
        from: NodeId,
        offer: SnapshotOffer,
    ) -> Result<PartialFile, TransferError> {
        let name = format!(
            "from-{from}-{}-{}-{}.partial",
            offer.index, offer.term, offer.length
        );
        let path = dir.join(name);
        let (dir_owned, path_owned) = (dir.to_owned(), path.clone());
        let (held, crc) = tokio::task::spawn_blocking(move || {
            prepare_partial(&dir_owned, from, &path_owned, offer.length)
        })
        .await
        .map_err(|e| file_error(&path)(std::io::Error::other(e)))??;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .await
            .map_err(file_error(&path))?;
        file.set_len(held).await.map_err(file_error(&path))?;
        file.seek(SeekFrom::Start(held))
            .await
            .map_err(file_error(&path))?;
        Ok(PartialFile {
            path,
            file,
            length: offer.length,
            held,
            crc,
        })
    }

    /// Appends `chunk` if it is intact and in its place; a chunk at offset
    /// 0 starts the file over.
    async fn write(&mut self, chunk: SnapshotChunk<'_>) -> Result<(), TransferError> {
        if crc32c::crc32c(chunk.data) != chunk.crc32c {
            return Err(TransferError::BadChunk {
                offset: chunk.offset,
            });
        }
        if chunk.offset == 0 && self.held > 0 {
            self.file.set_len(0).await.map_err(file_error(&self.path))?;
            self.file
                .seek(SeekFrom::Start(0))
                .await
                .map_err(file_error(&self.path))?;
            (self.held, self.crc) = (0, 0);
        }
        if chunk.offset != self.held {
            return Err(TransferError::OutOfPlace {
                offset: chunk.offset,
                expected: self.held,
            });
        }
        let size = chunk.data.len() as u64;
        if size > self.length - self.held {
            return Err(TransferError::TooLong {
                length: self.length,
            });
        }
        self.file
            .write_all(chunk.data)
            .await
            .map_err(file_error(&self.path))?;
        self.held += size;
        self.crc = crc32c::crc32c_combine(self.crc, chunk.crc32c, chunk.data.len());
        Ok(())
    }

    /// Checks the whole file against `end`, makes it durable as `received`
    /// and syncs its directory. A file that fails its checksum is deleted.
    async fn finish(mut self, end: &SnapshotEnd, received: &Path) -> Result<(), TransferError> {
        if end.length != self.length || self.held != self.length {
            return Err(TransferError::Short {
                held: self.held,
                length: self.length,
            });
        }
        if end.crc32c != self.crc {
            drop(self.file);
            tokio::fs::remove_file(&self.path)
                .await
                .map_err(file_error(&self.path))?;
            return Err(TransferError::BadChecksum);
        }
        let path = &self.path;
        self.file.flush().await.map_err(file_error(path))?;
        self.file.sync_all().await.map_err(file_error(path))?;
        drop(self.file);
        tokio::fs::rename(path, received)
            .await
            .map_err(file_error(received))?;
        let dir = received.parent().unwrap_or(Path::new(".")).to_owned();
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(file_error(&dir))
        })
        .await
        .map_err(|e| file_error(received)(std::io::Error::other(e)))?
    }
}

/// Creates `dir` if needed, deletes `from`'s temporary files other than
/// `path`, and returns how much of `path` (a file of `length` bytes) is
/// already there and its crc32c, after checking that the rest fits on the
/// disk. Blocking.
fn prepare_partial(
    dir: &Path,
    from: NodeId,
    path: &Path,
    length: u64,
) -> Result<(u64, u32), TransferError> {
    std::fs::create_dir_all(dir).map_err(file_error(dir))?;
    let prefix = format!("from-{from}-");
    for entry in std::fs::read_dir(dir).map_err(file_error(dir))? {
        let other = entry.map_err(file_error(dir))?.path();
        let name = other.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(&prefix) && name.ends_with(".partial") && other != path {
            std::fs::remove_file(&other).map_err(file_error(&other))?;
            tracing::debug!(%from, path = %other.display(), "deleted the peer's partial snapshot of another snapshot");
        }
    }
    let (held, crc) = match std::fs::File::open(path) {
        Ok(file) => held_prefix(file, length).map_err(file_error(path))?,
        Err(e) if e.kind() == ErrorKind::NotFound => (0, 0),
        Err(e) => return Err(file_error(path)(e)),
    };
    let needed = length - held;
    let available = fs4::available_space(dir).map_err(file_error(dir))?;
    if needed > available {
        return Err(TransferError::NoSpace { needed, available });
    }
    Ok((held, crc))
}

/// The length and crc32c of what `file` holds, or nothing when it holds
/// more than `length` bytes (not a prefix of that file, then).
fn held_prefix(mut file: std::fs::File, length: u64) -> std::io::Result<(u64, u32)> {
    let mut buffer = vec![0; 1 << 16];
    let (mut held, mut crc) = (0u64, 0);
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok((held, crc));
        }
        held += read as u64;
        if held > length {
            return Ok((0, 0));
        }
        crc = crc32c::crc32c_append(crc, &buffer[..read]);
    }
}
