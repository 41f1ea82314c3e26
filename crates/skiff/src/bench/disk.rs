//! What a run did to the disks of the cluster the bench started: the
//! largest size each node's data directory reached (sampled while the load
//! runs) and the bytes the node processes wrote to storage. With snapshots
//! and log compaction the first stays bounded however long the run; without
//! them it grows with every write.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the data directories are measured.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// The disk figures of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DiskReport {
    /// The largest size any data directory reached, in bytes on disk.
    pub largest_dir_bytes: u64,
    /// The node whose directory it was.
    pub largest_dir_node: u64,
    /// Each node's data directory size at the end of the run, in bytes.
    pub final_dir_bytes: Vec<(u64, u64)>,
    /// Bytes the node processes caused to be written to storage over the
    /// run (`write_bytes` of `/proc/<pid>/io`), when readable.
    pub bytes_written: Option<u64>,
}

/// Samples the data directories of the nodes until stopped.
pub struct DiskWatch {
    largest: Arc<Mutex<(u64, u64)>>,
    dirs: Vec<(u64, PathBuf)>,
    pids: Vec<u32>,
    written_at_start: Option<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl DiskWatch {
    /// Starts sampling `dirs` (node id, data directory), and notes what the
    /// processes `pids` have written so far.
    pub fn start(dirs: Vec<(u64, PathBuf)>, pids: Vec<u32>) -> DiskWatch {
        let largest = Arc::new(Mutex::new((0, 0)));
        let sampled = dirs.clone();
        let record = largest.clone();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
            loop {
                interval.tick().await;
                let sizes = tokio::task::spawn_blocking({
                    let dirs = sampled.clone();
                    move || dirs.iter().map(|(id, dir)| (*id, dir_bytes(dir))).collect()
                })
                .await
                .unwrap_or_else(|_| Vec::new());
                note_largest(&record, &sizes);
            }
        });
        DiskWatch {
            largest,
            written_at_start: total_written(&pids),
            dirs,
            pids,
            task,
        }
    }

    /// Stops sampling (after one last sample) and reports.
    pub fn finish(self) -> DiskReport {
        self.task.abort();
        let final_dir_bytes: Vec<(u64, u64)> = self
            .dirs
            .iter()
            .map(|(id, dir)| (*id, dir_bytes(dir)))
            .collect();
        note_largest(&self.largest, &final_dir_bytes);
        let (largest_dir_bytes, largest_dir_node) = *lock(&self.largest);
        let bytes_written = match (self.written_at_start, total_written(&self.pids)) {
            (Some(start), Some(end)) => Some(end.saturating_sub(start)),
            _ => None,
        };
        DiskReport {
            largest_dir_bytes,
            largest_dir_node,
            final_dir_bytes,
            bytes_written,
        }
    }
}

fn lock(largest: &Mutex<(u64, u64)>) -> std::sync::MutexGuard<'_, (u64, u64)> {
    largest
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn note_largest(largest: &Mutex<(u64, u64)>, sizes: &[(u64, u64)]) {
    let mut largest = lock(largest);
    for &(id, bytes) in sizes {
        if bytes > largest.0 {
            *largest = (bytes, id);
        }
    }
}

/// The bytes the files under `dir` take on disk (allocated blocks, as `du`
/// counts them: a log segment is created at its full length but sparse, and
/// takes only what was written). Files that vanish while it is walked (a
/// segment deleted by compaction) count as nothing.
pub fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// What the processes `pids` have caused to be written to storage, or
/// `None` when any of them cannot be read.
fn total_written(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|&pid| written(pid)).sum()
}

fn written(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    parse_write_bytes(&io)
}

/// `write_bytes` from the text of `/proc/<pid>/io`.
fn parse_write_bytes(io: &str) -> Option<u64> {
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_bytes_is_read_from_proc_io() {
        let io = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 0\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_write_bytes(io), Some(4096));
        assert_eq!(parse_write_bytes("wchar: 20\n"), None);
    }

    #[test]
    fn a_directory_is_measured_with_its_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [1u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("b"), [1u8; 64 << 10]).unwrap();
        let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(64 << 20).unwrap();
        let measured = dir_bytes(dir.path());
        assert!(measured >= (64 << 10) + 100, "{measured}");
        assert!(
            measured < 1 << 20,
            "a sparse file counts what it holds: {measured}"
        );
        assert_eq!(dir_bytes(&dir.path().join("missing")), 0);
    }

    #[test]
    fn the_largest_sample_is_kept_with_its_node() {
        let largest = Mutex::new((0, 0));
        note_largest(&largest, &[(1, 10), (2, 30), (3, 20)]);
        note_largest(&largest, &[(1, 25), (2, 5)]);
        assert_eq!(*lock(&largest), (30, 2));
    }
}
