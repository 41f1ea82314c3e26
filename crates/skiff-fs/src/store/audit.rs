//! Counting, from a committed log, the changes of client sessions that were
//! applied more than once.
//!
//! [`DuplicateAudit`] replays log entries through a fresh [`Store`] and, for
//! every numbered change (write, cas, delete of a session), looks at the
//! store itself to see whether the entry took effect, rather than trusting
//! the store's own bookkeeping of sessions: a write or cas took effect when
//! the file's version is now the entry's index (versions are the index of
//! the change that made them), a delete when the file was there before the
//! entry and is gone after it. A `(session, seq)` pair that took effect more
//! than once is a duplicate applied. (A delete whose file expires at the
//! very entry that resends it would be miscounted; clients that audit their
//! runs do not give files an expiry.)

use super::Store;
use crate::command::{DecodeError, Entry};
use crate::protocol::{Request, SessionSeq, Version};
use bytes::Bytes;
use skiff_core::LogIndex;
use std::collections::HashMap;

/// What a replay found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Entries replayed, no-ops included.
    pub entries: u64,
    /// Entries that opened a session.
    pub sessions_opened: u64,
    /// Entries holding a numbered change of a session.
    pub numbered_changes: u64,
    /// Numbered changes whose `(session, seq)` an earlier entry had too:
    /// resends that reached the log.
    pub resent_entries: u64,
    /// `(session, seq)` pairs that took effect more than once; 0 is right.
    pub duplicates_applied: u64,
}

/// How often one `(session, seq)` reached the log, and took effect.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    entries: u32,
    applications: u32,
}

/// A replay of a log that counts duplicates (see the module's
/// documentation).
#[derive(Debug, Default)]
pub struct DuplicateAudit {
    store: Store,
    /// For every numbered change seen: how many entries held it, and how
    /// many of those took effect.
    seen: HashMap<SessionSeq, Seen>,
    report: AuditReport,
}

impl DuplicateAudit {
    /// An audit of a log from its first entry.
    pub fn new() -> DuplicateAudit {
        DuplicateAudit::default()
    }

    /// An audit of the log after a snapshot of `store`. A change applied
    /// before the snapshot and again after it is not seen: only what the
    /// replayed entries hold is counted.
    pub fn after_snapshot(store: Store) -> DuplicateAudit {
        DuplicateAudit {
            store,
            ..DuplicateAudit::default()
        }
    }

    /// Replays the entry committed at `index`, which must follow the last.
    /// Data that is not an entry is skipped, as the servers skip it.
    ///
    /// # Panics
    ///
    /// If `index` is not past the last index replayed.
    pub fn replay(&mut self, index: LogIndex, data: &Bytes) -> Result<(), DecodeError> {
        self.report.entries += 1;
        let entry = match Entry::decode_shared(data) {
            Ok(Some(entry)) => entry,
            other => {
                self.store.advance_to(index);
                return other.map(|_| ());
            }
        };
        let numbered = match &entry {
            Entry::Command(command) => command
                .session
                .filter(|_| !matches!(command.request, Request::Read { .. }))
                .map(|session| (session, command.request.name().to_string())),
            Entry::OpenSession(_) => {
                self.report.sessions_opened += 1;
                None
            }
        };
        let Some((session, name)) = numbered else {
            self.store.apply_entry(index, &entry);
            return Ok(());
        };
        let before = self.store.version_of(&name);
        self.store.apply_entry(index, &entry);
        let after = self.store.version_of(&name);
        let took_effect = after == Some(Version(index.0)) || (before.is_some() && after.is_none());
        self.report.numbered_changes += 1;
        let seen = self.seen.entry(session).or_default();
        seen.entries += 1;
        if seen.entries > 1 {
            self.report.resent_entries += 1;
        }
        if took_effect {
            seen.applications += 1;
            if seen.applications == 2 {
                self.report.duplicates_applied += 1;
            }
        }
        Ok(())
    }

    /// What the replay found so far.
    pub fn report(&self) -> &AuditReport {
        &self.report
    }

    /// The store as the replay left it.
    pub fn store(&self) -> &Store {
        &self.store
    }
}
