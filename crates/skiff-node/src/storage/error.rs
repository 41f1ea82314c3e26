//! Why the storage refused to open or failed to write.

use super::damage::LogDamage;
use std::io;
use std::path::PathBuf;

/// A storage failure. Every variant names the file involved; damage also
/// names the byte offset, so an operator can look at it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system call on `path` failed; what the system said is
    /// the source, not repeated here.
    #[error("{path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Another process holds the data directory.
    #[error("data directory {dir} is in use by another process (lock file {lock})")]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The lock file inside it.
        lock: PathBuf,
    },
    /// A file header is damaged or of an unknown format.
    #[error("{path} at offset {offset}: bad header: {reason}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// Where the bad field starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A file belongs to another node or cluster.
    #[error(
        "{path}: belongs to cluster {found_cluster} node {found_node}, \
         but this is cluster {cluster} node {node}"
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// The cluster id in the file.
        found_cluster: u64,
        /// The node id in the file.
        found_node: u64,
        /// The configured cluster id.
        cluster: u64,
        /// The configured node id.
        node: u64,
    },
    /// Neither copy of the hard state can be read, so the node cannot know
    /// its term and vote; starting anyway could vote twice in one term.
    #[error("both copies of the hard state are unusable: {first}; {second}")]
    HardStateLost {
        /// Why the first copy cannot be used (it names the file).
        first: Box<StorageError>,
        /// Why the second copy cannot be used (it names the file).
        second: Box<StorageError>,
    },
    /// The newest snapshot is damaged, and the log no longer reaches back to
    /// the older snapshot that would replace it: what lies between is in
    /// no intact file.
    #[error(
        "the newest snapshot is damaged ({corrupt}), and the log, which starts at {}, \
         does not reach back to the snapshot before it ({}): the state in between is lost; \
         restore the node's data directory from a peer",
        .log_start.map_or("no index (it is empty)".to_string(), |i| format!("index {i}")),
        .used.as_ref().map_or("none left".to_string(), |p| p.display().to_string())
    )]
    SnapshotGap {
        /// Where the damaged snapshot file was moved.
        corrupt: PathBuf,
        /// The older snapshot file recovery would have used, if any.
        used: Option<PathBuf>,
        /// The first index the log holds, if it holds any.
        log_start: Option<skiff_core::LogIndex>,
    },
    /// The log is damaged; it is not written to until
    /// [`Storage::repair`](super::Storage::repair).
    #[error("{0}; the data directory needs repair")]
    NeedsRepair(LogDamage),
}

impl StorageError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io { path, source }
    }
}
