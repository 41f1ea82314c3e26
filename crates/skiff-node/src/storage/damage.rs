//! What recovery found wrong with a log that it cannot explain as a crash:
//! where, what, and how much of the log is still provably intact.

use skiff_core::LogIndex;
use std::fmt;
use std::path::PathBuf;

/// Damage to the log where it may have held acknowledged entries: a bad
/// record (or zeros) before the end of the records its segment's sync slot
/// names, or before an intact sync marker, a missing segment, damaged sync
/// slots, a damaged or missing manifest. A torn tail (a write after the last completed sync,
/// cut short by a crash) is not damage: it was never acknowledged.
///
/// The log recovered with it is the prefix up to the damage, which holds
/// every entry through [`LogDamage::intact_through`] and possibly fewer
/// than the node acknowledged: a node must not vote or acknowledge from it
/// as if it were whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogDamage {
    /// The damaged or missing file.
    pub path: PathBuf,
    /// Where in it the damage starts (0 for a missing file).
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// The last index of the log that is provably intact.
    pub intact_through: LogIndex,
    /// The last index recorded by the segment's latest sync slot, or by an
    /// intact sync marker after the damage, when one was found: entries up
    /// to it may have been acknowledged.
    pub synced_through: Option<LogIndex>,
}

impl fmt::Display for LogDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at offset {}: {}; the log is intact through index {}",
            self.path.display(),
            self.offset,
            self.reason,
            self.intact_through
        )?;
        if let Some(synced) = self.synced_through {
            write!(f, ", entries through index {synced} were synced")?;
        }
        Ok(())
    }
}
