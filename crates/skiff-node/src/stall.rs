//! Noticing a stalled disk.
//!
//! The event loop waits for each sync: in place, blocking its thread, or
//! on the blocking pool (`sync_elsewhere`), where it can wait for a time
//! limit beside the sync. While a sync blocks the loop's thread nothing on
//! that thread can notice how long it takes, so a watchdog thread does:
//! the loop marks when each sync begins and ends ([`SyncClock`], two
//! atomic stores per sync, nothing else), and the watchdog looks every
//! [`tick`] whether the sync outstanding has passed the limit. The first
//! to notice (the watchdog, or the loop waiting beside the sync) logs one
//! warning for that sync; the watchdog also marks the published status
//! stalled, since the loop cannot publish until the sync returns.
//!
//! The machine hears of the stall from the loop only
//! (`Event::StorageStalled`, then `Event::StorageRecovered`): the watchdog
//! reports, it never steps the machine.

use crate::api::Status;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// When the syncs of one node began and ended, shared by its event loop
/// and its watchdog. Dropping it stops the watchdog.
#[derive(Debug)]
pub struct SyncClock {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The node, for the log.
    id: skiff_core::NodeId,
    /// The limit past which a sync counts as stalled.
    limit: Duration,
    /// What the times below count from.
    base: Instant,
    /// When the outstanding sync began, in ms since `base` plus one; 0
    /// while none is outstanding. A sync that stalls lasts at least the
    /// limit, so no other sync begins in its millisecond: this names it.
    outstanding_since: AtomicU64,
    /// `outstanding_since` of the last sync whose stall was reported.
    reported_since: AtomicU64,
    /// Set when the loop is gone.
    stop: AtomicBool,
}

/// How often the watchdog looks: a tenth of the limit, from 1 ms to 50 ms,
/// so that a stall is reported at most a tenth late and an idle node's
/// watchdog wakes 20 times a second.
pub fn tick(limit: Duration) -> Duration {
    (limit / 10).clamp(Duration::from_millis(1), Duration::from_millis(50))
}

impl SyncClock {
    /// A clock for syncs that stall after `limit`, and its watchdog thread,
    /// which marks `status` stalled.
    pub fn start(
        limit: Duration,
        status: Arc<watch::Sender<Status>>,
    ) -> std::io::Result<SyncClock> {
        let id = status.borrow().id;
        let shared = Arc::new(Shared {
            id,
            limit,
            base: Instant::now(),
            outstanding_since: AtomicU64::new(0),
            reported_since: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let watched = shared.clone();
        std::thread::Builder::new()
            .name(format!("skiff-stall-{id}"))
            .spawn(move || watch_syncs(&watched, &status))?;
        Ok(SyncClock { shared })
    }

    /// The limit past which a sync counts as stalled.
    pub fn limit(&self) -> Duration {
        self.shared.limit
    }

    /// Marks the start of a sync; returns when it began.
    pub fn begin(&self) -> Instant {
        let now = Instant::now();
        let since = millis_since(self.shared.base, now) + 1;
        self.shared
            .outstanding_since
            .store(since, Ordering::Release);
        now
    }

    /// Marks the end of the sync begun last.
    pub fn end(&self) {
        self.shared.outstanding_since.store(0, Ordering::Release);
    }

    /// Logs the stall of the outstanding sync, unless someone did already;
    /// `role` is the node's role as the stall began.
    pub fn report(&self, role: skiff_core::Role) {
        self.shared.report(role);
    }
}

impl Drop for SyncClock {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

impl Shared {
    /// How long the outstanding sync has been outstanding, if one is.
    fn outstanding(&self) -> Option<(u64, Duration)> {
        let since = self.outstanding_since.load(Ordering::Acquire);
        let began = self.base + Duration::from_millis(since.checked_sub(1)?);
        Some((since, began.elapsed()))
    }

    /// Logs the outstanding sync's stall once; returns whether this call did.
    fn report(&self, role: skiff_core::Role) -> bool {
        let Some((since, elapsed)) = self.outstanding() else {
            return false;
        };
        let previous = self.reported_since.swap(since, Ordering::AcqRel);
        if previous == since {
            return false;
        }
        let elapsed_ms = elapsed.as_millis() as u64;
        if role == skiff_core::Role::Leader {
            tracing::warn!(
                event = "storage_stalled",
                id = %self.id,
                elapsed_ms,
                "storage stalled: sync outstanding for {elapsed_ms} ms; stepping down"
            );
        } else {
            tracing::warn!(
                event = "storage_stalled",
                id = %self.id,
                elapsed_ms,
                "storage stalled: sync outstanding for {elapsed_ms} ms; \
                 standing for no election and granting no vote until it returns"
            );
        }
        true
    }
}

fn millis_since(base: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(base).as_millis() as u64
}

/// The watchdog: until the loop is gone, reports a sync outstanding past
/// the limit and marks the status stalled.
fn watch_syncs(shared: &Shared, status: &watch::Sender<Status>) {
    let tick = tick(shared.limit);
    while !shared.stop.load(Ordering::Acquire) {
        std::thread::sleep(tick);
        let Some((_, elapsed)) = shared.outstanding() else {
            continue;
        };
        if elapsed < shared.limit {
            continue;
        }
        let role = status.borrow().role;
        shared.report(role);
        status.send_if_modified(|current| !std::mem::replace(&mut current.storage_stalled, true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::{LogIndex, NodeId, Role, SnapshotMeta, Term};

    fn status() -> Status {
        Status {
            id: NodeId(1),
            role: Role::Leader,
            term: Term(2),
            leader: Some(NodeId(1)),
            voted_for: Some(NodeId(1)),
            commit_index: LogIndex(0),
            last_index: LogIndex(0),
            repairing: false,
            storage_stalled: false,
            snapshot: SnapshotMeta::default(),
            applied_index: LogIndex(0),
            last_leader_change: None,
        }
    }

    #[test]
    fn a_sync_past_the_limit_marks_the_status_stalled_and_is_reported_once() {
        let (sender, mut receiver) = watch::channel(status());
        let clock = SyncClock::start(Duration::from_millis(20), Arc::new(sender)).unwrap();
        clock.begin();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(receiver.wait_for(|s| s.storage_stalled))
            .unwrap();
        assert!(
            !clock.shared.report(Role::Leader),
            "the watchdog reported it already"
        );
        clock.end();
        assert!(!clock.shared.report(Role::Leader), "no sync outstanding");
    }

    #[test]
    fn a_short_sync_is_not_outstanding_after_it_ends() {
        let (sender, _receiver) = watch::channel(status());
        let clock = SyncClock::start(Duration::from_secs(60), Arc::new(sender)).unwrap();
        clock.begin();
        assert!(clock.shared.outstanding().is_some());
        clock.end();
        assert_eq!(clock.shared.outstanding(), None);
        assert_eq!(tick(Duration::from_secs(1)), Duration::from_millis(50));
        assert_eq!(tick(Duration::from_millis(5)), Duration::from_millis(1));
    }
}
