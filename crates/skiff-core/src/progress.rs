//! A leader's bookkeeping for one follower: what is known to match, what to
//! send next, and what is in flight. Only the leader holds these, inside its
//! role state, so no other role can touch them.

use crate::types::LogIndex;
use std::collections::VecDeque;

/// How the leader talks to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Where the follower's log matches is unknown: send one request, wait for
    /// its answer (or the next heartbeat), and move `next_index` back on rejection.
    Probe {
        /// A probe is outstanding; send nothing more until it is answered.
        paused: bool,
    },
    /// The follower is known to match at `match_index`: stream entries
    /// optimistically, up to the in-flight window.
    Replicate,
    /// The follower needs entries the leader's log no longer holds, so the
    /// snapshot through `index` is on its way (section 7). Only heartbeats
    /// go until the follower answers; after [`SNAPSHOT_PATIENCE`]
    /// heartbeats without an answer the leader probes again, which sends
    /// the snapshot anew if it is still needed.
    Snapshot {
        /// The last index the snapshot covers.
        index: LogIndex,
        /// Heartbeats sent since the snapshot went out.
        heartbeats: u32,
    },
}

/// Heartbeats a leader waits for a follower to answer a snapshot before it
/// probes again. A transfer takes as long as the snapshot's size demands,
/// so the wait is generous; the drivers keep a transfer in progress going
/// when the same snapshot is asked for again, so a probe that ends in a
/// new `InstallSnapshotReq` costs a message, not a new transfer.
pub(crate) const SNAPSHOT_PATIENCE: u32 = 20;

/// Per-follower replication state.
///
/// Invariants: `match_index < next_index`; in-flight indices are ascending
/// and each is below `next_index`.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// The highest index known to be stored on the follower. Only grows.
    pub(crate) match_index: LogIndex,
    /// The next index to send.
    pub(crate) next_index: LogIndex,
    pub(crate) mode: Mode,
    /// The last index of each request with entries still in flight, ascending.
    inflight: VecDeque<LogIndex>,
    /// The first index of the oldest request in flight; requests in flight
    /// are contiguous, so this and `inflight` describe them all.
    inflight_first: LogIndex,
    /// The oldest in-flight index seen at the previous heartbeat; if it is
    /// still the oldest at this heartbeat, its request is taken as lost.
    oldest_inflight_at_tick: Option<LogIndex>,
    /// The highest index any request sent to the follower let it
    /// acknowledge (`prev_index` + entries); a success past it is forged.
    sent_through: LogIndex,
    /// The leader's tick at which it last stepped an answer from the
    /// follower, for CheckQuorum (`machine/check_quorum.rs`).
    pub(crate) heard_tick: u64,
    /// The highest read round the follower's answers echoed
    /// (`machine/read_index.rs`).
    pub(crate) acked_round: u64,
    /// The follower votes: its answers count toward commit, CheckQuorum
    /// and read rounds (`machine/membership.rs`).
    pub(crate) voter: bool,
    /// The progress's epoch, which requests carry and answers echo
    /// (`machine/membership.rs`, rule 5).
    pub(crate) epoch: u64,
}

impl Progress {
    /// A follower's progress when a leader takes office: optimistic, as if
    /// its log matched the leader's to the end.
    pub(crate) fn new(last_index: LogIndex) -> Progress {
        Progress {
            match_index: LogIndex::ZERO,
            next_index: last_index.next(),
            mode: Mode::Replicate,
            inflight: VecDeque::new(),
            inflight_first: LogIndex::ZERO,
            oldest_inflight_at_tick: None,
            sent_through: LogIndex::ZERO,
            heard_tick: 0,
            acked_round: 0,
            voter: true,
            epoch: 0,
        }
    }

    /// Records that a request let the follower acknowledge up to `index`.
    pub(crate) fn note_sent_through(&mut self, index: LogIndex) {
        self.sent_through = self.sent_through.max(index);
    }

    /// The highest index any request sent to the follower let it acknowledge.
    pub(crate) fn sent_through(&self) -> LogIndex {
        self.sent_through
    }

    /// Whether the window has room for another request with entries.
    pub(crate) fn can_send_entries(&self, last_index: LogIndex, inflight_max: usize) -> bool {
        if self.next_index > last_index {
            return false;
        }
        match self.mode {
            Mode::Probe { paused } => !paused,
            Mode::Replicate => self.inflight.len() < inflight_max,
            Mode::Snapshot { .. } => false,
        }
    }

    /// Records that the snapshot through `index` went to the follower:
    /// nothing but heartbeats until it answers, and then entries from
    /// `index + 1` (optimistically, as the follower will hold then).
    pub(crate) fn sent_snapshot(&mut self, index: LogIndex) {
        self.mode = Mode::Snapshot {
            index,
            heartbeats: 0,
        };
        self.inflight.clear();
        self.oldest_inflight_at_tick = None;
        self.next_index = index.next().max(self.match_index.next());
        self.note_sent_through(index);
        self.debug_check();
    }

    /// Records a request whose entries end at `last_sent`.
    pub(crate) fn sent(&mut self, last_sent: LogIndex) {
        match &mut self.mode {
            Mode::Probe { paused } => *paused = true,
            Mode::Snapshot { .. } => debug_assert!(false, "entries sent while a snapshot is"),
            Mode::Replicate => {
                debug_assert!(last_sent >= self.next_index);
                if self.inflight.is_empty() {
                    self.inflight_first = self.next_index;
                }
                self.inflight.push_back(last_sent);
                self.next_index = last_sent.next();
            }
        }
    }

    /// The follower stored everything up to `index`. Returns whether
    /// `match_index` moved; a stale answer never moves it back.
    pub(crate) fn on_success(&mut self, index: LogIndex) -> bool {
        let advanced = index > self.match_index;
        if advanced {
            self.match_index = index;
        }
        self.next_index = self.next_index.max(self.match_index.next());
        while let Some(front) = self.inflight.front().copied().filter(|f| *f <= index) {
            self.inflight.pop_front();
            self.inflight_first = front.next();
        }
        // Only the answer to the outstanding probe ends probing; an older
        // success says nothing about where the follower stands now. A
        // snapshot ends once the follower holds what it covers, whether it
        // installed it or a heartbeat found the follower had it already.
        match self.mode {
            Mode::Probe { .. } if index >= self.next_index.prev() => self.mode = Mode::Replicate,
            Mode::Snapshot {
                index: snapshot, ..
            } if index >= snapshot => self.mode = Mode::Replicate,
            _ => {}
        }
        self.debug_check();
        advanced
    }

    /// The follower refused a request; `hint` is the highest index at which
    /// its log may match. Drop back to probing from just after the hint,
    /// never below what is known to match.
    pub(crate) fn on_reject(&mut self, hint: LogIndex) {
        // The answer to an outstanding probe always moves `next_index` back
        // (the probe's prev index is `next_index - 1`, and the hint lies
        // below it). A rejection that does not is from a request sent before
        // the probe; acting on it would put a second probe on the wire.
        if self.mode == (Mode::Probe { paused: true }) && hint.next() >= self.next_index {
            return;
        }
        // While a snapshot is on its way the follower refuses heartbeats
        // (it lacks the snapshot's index); it answers the snapshot itself.
        if matches!(self.mode, Mode::Snapshot { .. }) {
            return;
        }
        let floor = self.match_index.next();
        self.next_index = self.next_index.min(hint.next()).max(floor);
        self.mode = Mode::Probe { paused: false };
        self.inflight.clear();
        self.oldest_inflight_at_tick = None;
        self.debug_check();
    }

    /// Called at each heartbeat. A request that stayed the oldest in flight
    /// for a whole heartbeat interval is taken as lost: probe again from
    /// where it started (a lost request says nothing about where the
    /// follower's log ends, so there is no reason to go back further). A
    /// paused probe is unpaused so it is resent.
    pub(crate) fn on_heartbeat(&mut self) {
        match &mut self.mode {
            Mode::Probe { paused } => *paused = false,
            Mode::Snapshot { heartbeats, .. } => {
                *heartbeats += 1;
                if *heartbeats >= SNAPSHOT_PATIENCE {
                    // Ask again whether the follower holds the snapshot's
                    // index; a refusal leads to sending it anew.
                    self.mode = Mode::Probe { paused: false };
                }
            }
            Mode::Replicate => {
                let oldest = self.inflight.front().copied();
                if oldest.is_some() && oldest == self.oldest_inflight_at_tick {
                    self.next_index = self.inflight_first.max(self.match_index.next());
                    self.mode = Mode::Probe { paused: false };
                    self.inflight.clear();
                    self.oldest_inflight_at_tick = None;
                } else {
                    self.oldest_inflight_at_tick = oldest;
                }
            }
        }
        self.debug_check();
    }

    /// The `prev_index` of a heartbeat: as the paper has it, one before the
    /// next index, unless requests are still in flight. Then only the match
    /// index is sure to be on the follower already; a heartbeat overtaking
    /// those requests must not be refused.
    ///
    /// Never below `snapshot_index`: the leader knows no term before it. A
    /// follower that does not hold that index refuses, and the refusal
    /// leads to the snapshot.
    pub(crate) fn heartbeat_prev_index(&self, snapshot_index: LogIndex) -> LogIndex {
        let prev = if self.inflight.is_empty() {
            self.next_index.prev()
        } else {
            self.match_index
        };
        prev.max(snapshot_index)
    }

    fn debug_check(&self) {
        debug_assert!(self.match_index < self.next_index, "match < next: {self:?}");
        debug_assert!(
            self.inflight.iter().all(|i| *i < self.next_index),
            "in-flight below next: {self:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicate_fills_the_window_then_stops() {
        let mut p = Progress::new(LogIndex(0));
        for i in 1..=2 {
            assert!(p.can_send_entries(LogIndex(10), 2));
            p.sent(LogIndex(i));
        }
        assert!(!p.can_send_entries(LogIndex(10), 2));
        assert!(p.on_success(LogIndex(1)));
        assert!(p.can_send_entries(LogIndex(10), 2));
        assert_eq!(p.next_index, LogIndex(3));
    }

    #[test]
    fn stale_success_never_moves_match_back() {
        let mut p = Progress::new(LogIndex(0));
        p.sent(LogIndex(5));
        assert!(p.on_success(LogIndex(5)));
        assert!(!p.on_success(LogIndex(3)));
        assert_eq!(p.match_index, LogIndex(5));
        assert_eq!(p.next_index, LogIndex(6));
    }

    #[test]
    fn rejection_probes_from_the_hint_but_not_below_match() {
        let mut p = Progress::new(LogIndex(10));
        p.on_reject(LogIndex(4));
        assert_eq!(p.next_index, LogIndex(5));
        assert_eq!(p.mode, Mode::Probe { paused: false });
        p.sent(LogIndex(10));
        assert!(!p.can_send_entries(LogIndex(10), 8), "one probe at a time");
        p.on_success(LogIndex(10));
        assert_eq!(p.mode, Mode::Replicate);

        p.on_reject(LogIndex(0));
        assert_eq!(p.next_index, LogIndex(11), "never below match + 1");
    }

    #[test]
    fn rejections_of_requests_sent_before_a_probe_do_not_resend_it() {
        let mut p = Progress::new(LogIndex(4));
        p.on_reject(LogIndex(1));
        p.sent(LogIndex(4));
        assert_eq!(p.mode, Mode::Probe { paused: true });
        p.on_reject(LogIndex(1));
        assert_eq!(
            p.mode,
            Mode::Probe { paused: true },
            "stale rejection ignored"
        );
        assert_eq!(p.next_index, LogIndex(2));
        p.on_reject(LogIndex(0));
        assert_eq!(
            p.mode,
            Mode::Probe { paused: false },
            "the probe's own answer acts"
        );
        assert_eq!(p.next_index, LogIndex(1));
    }

    #[test]
    fn a_request_outstanding_for_a_whole_heartbeat_is_resent() {
        let mut p = Progress::new(LogIndex(0));
        p.sent(LogIndex(3));
        p.on_heartbeat();
        assert_eq!(p.mode, Mode::Replicate);
        p.on_heartbeat();
        assert_eq!(p.mode, Mode::Probe { paused: false });
        assert_eq!(p.next_index, LogIndex(1));
    }

    #[test]
    fn a_lost_request_is_resent_from_where_it_started_not_from_match() {
        // A new leader with a long log knows no match index yet.
        let mut p = Progress::new(LogIndex(6000));
        p.sent(LogIndex(6001));
        p.sent(LogIndex(6002));
        p.on_heartbeat();
        p.on_heartbeat();
        assert_eq!(p.mode, Mode::Probe { paused: false });
        assert_eq!(p.next_index, LogIndex(6001));
    }
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;

    #[test]
    fn a_snapshot_waits_for_its_answer_then_replicates_after_it() {
        let mut p = Progress::new(LogIndex(50));
        p.on_reject(LogIndex(3));
        assert_eq!(p.next_index, LogIndex(4));
        p.sent_snapshot(LogIndex(40));
        assert_eq!(p.sent_through(), LogIndex(40));
        assert!(
            !p.can_send_entries(LogIndex(50), 8),
            "nothing but heartbeats"
        );
        assert_eq!(p.heartbeat_prev_index(LogIndex(40)), LogIndex(40));
        p.on_reject(LogIndex(3));
        assert!(
            matches!(p.mode, Mode::Snapshot { .. }),
            "a refused heartbeat changes nothing"
        );
        assert!(!p.on_success(LogIndex(3)) || p.match_index == LogIndex(3));
        assert!(
            matches!(p.mode, Mode::Snapshot { .. }),
            "an older success does not end it"
        );
        assert!(p.on_success(LogIndex(40)));
        assert_eq!(p.mode, Mode::Replicate);
        assert_eq!(p.next_index, LogIndex(41));
        assert!(p.can_send_entries(LogIndex(50), 8));
    }

    #[test]
    fn an_unanswered_snapshot_is_probed_after_the_patience_runs_out() {
        let mut p = Progress::new(LogIndex(50));
        p.sent_snapshot(LogIndex(40));
        for _ in 1..SNAPSHOT_PATIENCE {
            p.on_heartbeat();
            assert!(matches!(p.mode, Mode::Snapshot { .. }));
        }
        p.on_heartbeat();
        assert_eq!(p.mode, Mode::Probe { paused: false });
        assert_eq!(
            p.next_index,
            LogIndex(41),
            "the probe asks for the snapshot's index"
        );
    }

    #[test]
    fn heartbeats_never_name_an_index_the_snapshot_covers() {
        let mut p = Progress::new(LogIndex(10));
        p.sent(LogIndex(12));
        assert_eq!(
            p.heartbeat_prev_index(LogIndex(0)),
            LogIndex(0),
            "match index"
        );
        assert_eq!(p.heartbeat_prev_index(LogIndex(8)), LogIndex(8));
    }
}
