//! `skiff check`: what recovery would find in a stopped node's data
//! directory and what it would do, without changing anything.

use super::hard_state::{self, HardStateFile, StoredState};
use super::header::{intact_owner, Identity};
use super::lock::DirLock;
use super::manifest;
use super::repair::DAMAGED_DIR_PREFIX;
use super::snapshot::{self, SnapshotFault};
use super::snapshot_store;
use super::wal::{self, SEGMENT_HEADER_BYTES};
use super::{log_gap, LogDamage, StorageError};
use skiff_core::{LogIndex, SnapshotMeta};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// What [`check`] found in a data directory.
#[derive(Debug)]
pub struct CheckReport {
    dir: PathBuf,
    /// Whose files these are, read from the first intact one.
    identity: Option<Identity>,
    /// One line per finding, in the order found.
    findings: Vec<String>,
    /// What recovery would do.
    verdict: Verdict,
}

#[derive(Debug)]
enum Verdict {
    /// No file holds anything: the node would start with an empty log.
    Empty,
    /// Start with this many entries, after cutting off a torn tail of
    /// `torn_bytes` bytes (0 when there is none), repairing if the repair
    /// flag is set.
    Start {
        snapshot: SnapshotMeta,
        entries: u64,
        torn_bytes: u64,
        repairing: bool,
    },
    /// The log is damaged: the node would start repairing from the intact
    /// prefix.
    Damaged(LogDamage),
    /// Recovery refuses the directory outright.
    Refused(String),
}

impl CheckReport {
    /// Whether damage was found (the node would start repairing, or refuse
    /// where it cannot repair) or the directory would be refused.
    pub fn needs_repair(&self) -> bool {
        matches!(self.verdict, Verdict::Damaged(_) | Verdict::Refused(_))
    }
}

/// Verifies the data directory `dir` of a stopped node: every record and
/// checksum, segment continuity against the manifest, the sync records and
/// both hard-state copies. It takes the directory's lock for the length of
/// the check, so it refuses a directory a running node holds
/// ([`StorageError::Locked`]). The owner is read from the files themselves.
pub fn check(dir: &Path) -> Result<CheckReport, StorageError> {
    if !dir.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory");
        return Err(StorageError::io(dir)(source));
    }
    let _lock = DirLock::acquire(dir)?;
    let mut report = CheckReport {
        dir: dir.to_path_buf(),
        identity: find_owner(dir)?,
        findings: Vec::new(),
        verdict: Verdict::Empty,
    };
    let Some(identity) = report.identity else {
        return Ok(report);
    };
    let hard_state = HardStateFile::new(dir, identity);
    for (name, copy) in hard_state::FILES.iter().zip(hard_state.load_copies()) {
        report.findings.push(match copy {
            Ok(Some(state)) => format!("{name}: {}", describe(state)),
            Ok(None) => format!("{name}: missing"),
            Err(error) => format!("{name}: unusable: {error}"),
        });
    }
    let (snapshot, corrupt) = check_snapshots(dir, identity, &mut report.findings)?;
    let replay = match wal::replay(dir, identity) {
        Ok(replay) => replay,
        Err(error) => return refused(report, error),
    };
    report.findings.push(match replay.manifest {
        Some(m) => format!("manifest: segments {} to {}", m.first, m.last),
        None => "manifest: missing".to_string(),
    });
    let synced = replay
        .synced_through
        .map_or("none".to_string(), |index| format!("index {index}"));
    report.findings.push(format!(
        "log: {} segments read, {} records, {} entries; last sync record: {synced}",
        replay.segments,
        replay.records,
        replay.entries.len()
    ));
    report.findings.push(match replay.last_slot {
        Some(slot) => format!(
            "sync slot of the last segment read: sync {}, index {}, records end at offset {}",
            slot.counter, slot.last_index, slot.end
        ),
        None => "sync slot of the last segment read: none".to_string(),
    });
    report.findings.extend(replay.slot_faults.iter().cloned());
    if let Some(leftover) = &replay.leftover {
        let line = format!(
            "{}: empty segment left by a rotation cut short",
            leftover.display()
        );
        report.findings.push(line);
    }
    if let Some(torn) = &replay.torn {
        report.findings.push(format!(
            "{} at offset {}: torn tail of {} bytes: {}",
            torn.path.display(),
            torn.offset,
            torn.bytes,
            torn.reason
        ));
    }
    let is_new = replay.manifest.is_none() && replay.damage.is_none();
    let repairing = match hard_state.load() {
        Ok(None) if !is_new => return refused(report, hard_state.both_missing()),
        Err(error) => return refused(report, error),
        Ok(stored) => stored.is_some_and(|s| s.repairing),
    };
    report.findings.push(if repairing {
        "repair flag: set (a repair of a damaged log has not finished)".to_string()
    } else {
        "repair flag: not set".to_string()
    });
    let reaches = replay
        .start
        .is_some_and(|start| start.0 <= snapshot.index.0 + 1);
    if let (Some(corrupt), false) = (corrupt, reaches) {
        let gap = StorageError::SnapshotGap {
            corrupt,
            used: None,
            log_start: replay.start,
        };
        return refused(report, gap);
    }
    let damage = replay
        .damage
        .clone()
        .or_else(|| log_gap(dir, &replay, snapshot));
    report.verdict = match damage {
        Some(damage) => Verdict::Damaged(damage),
        None => Verdict::Start {
            snapshot,
            entries: replay.last_index().0.saturating_sub(snapshot.index.0),
            torn_bytes: replay.torn.map_or(0, |torn| torn.bytes),
            repairing,
        },
    };
    Ok(report)
}

/// Reports the snapshot files, newest first, down to the first that
/// verifies, which recovery would start from. Returns it (0:0 for none)
/// and the newest damaged one, which recovery would move aside.
fn check_snapshots(
    dir: &Path,
    identity: Identity,
    findings: &mut Vec<String>,
) -> Result<(SnapshotMeta, Option<PathBuf>), StorageError> {
    let snapshots = snapshot_store::dir(dir);
    if !snapshots.is_dir() {
        findings.push("snapshots: none".to_string());
        return Ok((SnapshotMeta::default(), None));
    }
    let mut corrupt = None;
    for candidate in snapshot::list(&snapshots)? {
        let path = candidate.path.display();
        match snapshot_store::check(&candidate, identity.cluster_id) {
            Ok(()) => {
                findings.push(format!(
                    "snapshot {path}: index {}, term {}, intact",
                    candidate.meta.index, candidate.meta.term
                ));
                return Ok((candidate.meta, corrupt));
            }
            Err(SnapshotFault::Io { path, source }) => {
                return Err(StorageError::Io { path, source })
            }
            Err(fault) => {
                findings.push(format!("snapshot DAMAGED: {fault} (recovery would move it aside and use the one before)"));
                corrupt.get_or_insert(candidate.path);
            }
        }
    }
    findings.push("snapshots: none intact".to_string());
    Ok((SnapshotMeta::default(), corrupt))
}

fn refused(mut report: CheckReport, error: StorageError) -> Result<CheckReport, StorageError> {
    match error {
        StorageError::Io { .. } | StorageError::Locked { .. } => Err(error),
        refusal => {
            report.verdict = Verdict::Refused(refusal.to_string());
            Ok(report)
        }
    }
}

fn describe(stored: StoredState) -> String {
    let StoredState { state, repairing } = stored;
    let vote = match state.voted_for {
        Some(vote) => format!("voted for {vote}"),
        None => "no vote".to_string(),
    };
    let repair = if repairing { ", repairing" } else { "" };
    format!("term {}, {vote}{repair}", state.term)
}

/// The owner named by the first intact file: the manifest, a hard-state
/// copy, or a segment header.
fn find_owner(dir: &Path) -> Result<Option<Identity>, StorageError> {
    let mut candidates = vec![(manifest::path(dir), manifest::FILE_BYTES)];
    for name in hard_state::FILES {
        candidates.push((dir.join(name), hard_state::FILE_BYTES));
    }
    for sequence in wal::list_segments(dir)? {
        candidates.push((wal::segment_path(dir, sequence), SEGMENT_HEADER_BYTES));
    }
    for (path, length) in candidates {
        match fs::read(&path) {
            Ok(bytes) => {
                if let Some(owner) = intact_owner(&bytes, length) {
                    return Ok(Some(owner));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(&path)(e)),
        }
    }
    Ok(None)
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "data directory {}", self.dir.display())?;
        match self.identity {
            Some(owner) => writeln!(f, " (cluster {}, node {})", owner.cluster_id, owner.node_id)?,
            None => writeln!(f)?,
        }
        for finding in &self.findings {
            writeln!(f, "  {finding}")?;
        }
        match &self.verdict {
            Verdict::Empty => write!(f, "recovery would: start a new, empty node (no intact file found)"),
            Verdict::Start {
                snapshot,
                entries,
                torn_bytes,
                repairing,
            } => {
                write!(f, "recovery would: ")?;
                if *torn_bytes > 0 {
                    write!(f, "cut a torn tail of {torn_bytes} bytes and ")?;
                }
                if *repairing {
                    write!(f, "start repairing with {entries} entries, catching up from the other nodes")?;
                } else {
                    write!(f, "start normally with {entries} entries")?;
                }
                if snapshot.index > LogIndex(0) {
                    write!(f, " after the snapshot through index {}", snapshot.index)?;
                }
                Ok(())
            }
            Verdict::Damaged(damage) => write!(
                f,
                "DAMAGE: {damage}\nrecovery would: start repairing: move the log's files aside into \
                 a {DAMAGED_DIR_PREFIX}N subdirectory, keep the {} intact entries and catch up from \
                 the other nodes (a single-node cluster refuses to start: it has no other copy)",
                damage.intact_through
            ),
            Verdict::Refused(reason) => write!(f, "recovery would: refuse to start: {reason}"),
        }
    }
}
