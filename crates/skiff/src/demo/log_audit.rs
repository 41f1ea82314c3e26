//! Counting, after the run, the changes the cluster applied more than once,
//! from the stopped nodes' logs rather than from what the clients saw.
//!
//! Each node's data directory is opened as the node would open it at
//! restart. The log audited is that of the node whose log reaches back
//! furthest (the longest of those), through the last entry another node
//! holds in the same term at the same index: by Raft's log matching, the
//! two logs agree up to there, so those entries are on a majority of the
//! three nodes, which in the demo's calm end is what was committed. A log
//! that starts after a snapshot is replayed on top of the store that
//! snapshot holds; the report says which entries were audited.

use anyhow::Context;
use skiff_core::{Entry, LogIndex};
use skiff_fs::store::audit::{AuditReport, DuplicateAudit};
use skiff_fs::store::Store;
use skiff_fs::Limits;
use skiff_node::storage::{open_snapshot, Identity, Storage, StoredSnapshot};
use skiff_node::{ClusterConfig, NodeId, ENTRY_BYTES_MAX};

/// What the audit of the committed log found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogAudit {
    /// Whose log was replayed.
    pub node: NodeId,
    /// The first and last index replayed.
    pub entries: (LogIndex, LogIndex),
    /// The counts.
    pub report: AuditReport,
}

/// One stopped node's log: where it starts, and its entries.
struct NodeLog {
    id: NodeId,
    snapshot: Option<StoredSnapshot>,
    /// The index of `entries[0]`.
    first: u64,
    entries: Vec<Entry>,
}

impl NodeLog {
    fn last(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }

    fn term_at(&self, index: u64) -> Option<skiff_core::Term> {
        let at = index.checked_sub(self.first)?;
        self.entries.get(usize::try_from(at).ok()?).map(|e| e.term)
    }
}

/// Audits the committed log of the stopped cluster `config` describes.
pub fn audit_committed_log(config: &ClusterConfig) -> anyhow::Result<LogAudit> {
    let logs = config
        .nodes
        .iter()
        .map(|node| read_log(config, node.id, &node.data_dir))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let chosen = logs
        .iter()
        .min_by_key(|log| (log.first, std::cmp::Reverse(log.entries.len())))
        .context("the cluster has no nodes")?;
    let through = logs
        .iter()
        .filter(|other| other.id != chosen.id)
        .filter_map(|other| {
            let mut index = chosen.last().min(other.last());
            while index >= chosen.first.max(other.first) {
                if chosen.term_at(index) == other.term_at(index) {
                    return Some(index);
                }
                index -= 1;
            }
            None
        })
        .max()
        .with_context(|| format!("no other node's log agrees with node {}'s", chosen.id))?;
    let mut audit = match &chosen.snapshot {
        None => DuplicateAudit::new(),
        Some(snapshot) => DuplicateAudit::after_snapshot(read_store(config, snapshot)?),
    };
    for (index, entry) in (chosen.first..=through).zip(&chosen.entries) {
        // Data that is not a command is skipped here as the servers skip it.
        let _ = audit.replay(LogIndex(index), &entry.data);
    }
    Ok(LogAudit {
        node: NodeId(chosen.id.0),
        entries: (LogIndex(chosen.first), LogIndex(through)),
        report: audit.report().clone(),
    })
}

fn read_log(config: &ClusterConfig, id: u64, dir: &std::path::Path) -> anyhow::Result<NodeLog> {
    let identity = Identity {
        cluster_id: config.cluster_id,
        node_id: id,
    };
    let (_storage, recovered) = Storage::open(dir, identity, config.segment_bytes_max)
        .with_context(|| format!("cannot open node {id}'s data in {}", dir.display()))?;
    let first = recovered.snapshot.as_ref().map_or(0, |s| s.meta.index.0) + 1;
    Ok(NodeLog {
        id: NodeId(id),
        snapshot: recovered.snapshot,
        first,
        entries: recovered.log,
    })
}

/// The store a node's snapshot holds.
fn read_store(config: &ClusterConfig, snapshot: &StoredSnapshot) -> anyhow::Result<Store> {
    let (_, reader) = open_snapshot(&snapshot.path, config.cluster_id)
        .with_context(|| format!("cannot open {}", snapshot.path.display()))?;
    let limits = Limits {
        file_bytes_max: ENTRY_BYTES_MAX,
        name_bytes_max: skiff_fs::protocol::LINE_BYTES_MAX,
    };
    Store::read_snapshot(reader, &limits)
        .with_context(|| format!("cannot read the store in {}", snapshot.path.display()))
}
