//! The client sessions the store keeps, so that a resent change is answered
//! instead of applied again (see [`crate::protocol::session`]).
//!
//! Everything here is a function of the log: a session's id is the index
//! of the entry that opened it, its idle timeout and the bound on sessions
//! come from that entry, and expiry is decided by the store's clock (the
//! largest command timestamp applied). A session expires once the clock
//! reaches its last use plus its idle timeout; opening a session when the
//! bound is reached first forgets the session closest to expiring, which,
//! as all sessions get the same timeout from one configuration, is the
//! least recently used. Ties go to the smaller id. So every replica keeps
//! and forgets the same sessions at the same entries.
//!
//! Memory: a session holds its last answer only for changes (an `OK`, an
//! `ERR_VERSION`, ...), never file contents, so each costs a few dozen
//! bytes, and there are at most as many as the largest `sessions_max` an
//! open entry carried.

use crate::command::SessionPolicy;
use crate::protocol::{Response, SessionId, SessionSeq};
use imbl::{OrdMap, OrdSet};

/// The sessions, ordered by id, with an index of when each expires.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Sessions {
    pub(super) by_id: OrdMap<SessionId, Session>,
    /// `(expires_at_ms, id)` of every session.
    expiries: OrdSet<(u64, SessionId)>,
}

/// One client session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Session {
    /// How long it may stay unused, in ms of the log's clock.
    pub(super) idle_timeout_ms: u64,
    /// When it is forgotten unless used again.
    pub(super) expires_at_ms: u64,
    /// The last number applied and its answer; `None` before the first.
    pub(super) last: Option<(u64, Response)>,
}

/// What the store does with a numbered request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Apply it (then [`Sessions::record`] it).
    Apply,
    /// Answer this without applying it.
    Answer(Response),
}

impl Sessions {
    /// How many sessions are kept.
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Opens session `id` at `now_ms` under `policy`, first forgetting the
    /// sessions closest to expiring until there is room for it.
    pub(super) fn open(&mut self, id: SessionId, now_ms: u64, policy: SessionPolicy) {
        let sessions_max = usize::try_from(policy.sessions_max.max(1)).unwrap_or(usize::MAX);
        while self.by_id.len() >= sessions_max {
            let Some((_, evicted)) = self.expiries.remove_min() else {
                break;
            };
            self.by_id.remove(&evicted);
        }
        let session = Session {
            idle_timeout_ms: policy.idle_timeout_ms,
            expires_at_ms: now_ms.saturating_add(policy.idle_timeout_ms),
            last: None,
        };
        self.insert(id, session);
    }

    /// Forgets every session whose expiry is at or before `now_ms`.
    pub(super) fn drop_expired(&mut self, now_ms: u64) {
        while let Some((at, _)) = self.expiries.get_min() {
            if *at > now_ms {
                break;
            }
            let (_, id) = self.expiries.remove_min().expect("get_min() was Some");
            self.by_id.remove(&id);
        }
    }

    /// Whether to apply a request numbered `session`; `read` says whether
    /// it changes nothing, which is applied whatever its number.
    pub(super) fn admit(&self, session: SessionSeq, read: bool) -> Admission {
        let Some(known) = self.by_id.get(&session.id) else {
            return Admission::Answer(Response::SessionExpired);
        };
        match &known.last {
            _ if read => Admission::Apply,
            Some((last, answer)) if *last == session.seq => Admission::Answer(answer.clone()),
            Some((last, _)) if *last > session.seq => {
                Admission::Answer(Response::SessionStale { last: *last })
            }
            // Numbers start at 1.
            None if session.seq == 0 => Admission::Answer(Response::SessionStale { last: 0 }),
            _ => Admission::Apply,
        }
    }

    /// Records the use of an admitted request at `now_ms`, and remembers
    /// its answer if it is a change (`answer` is `None` for a read).
    pub(super) fn record(&mut self, session: SessionSeq, now_ms: u64, answer: Option<&Response>) {
        let Some(mut known) = self.by_id.get(&session.id).cloned() else {
            return;
        };
        known.expires_at_ms = now_ms.saturating_add(known.idle_timeout_ms);
        if let Some(answer) = answer {
            known.last = Some((session.seq, answer.clone()));
        }
        self.insert(session.id, known);
    }

    /// Adds or replaces session `id`, keeping the expiry index in step.
    pub(super) fn insert(&mut self, id: SessionId, session: Session) {
        if let Some(old) = self.by_id.get(&id) {
            self.expiries.remove(&(old.expires_at_ms, id));
        }
        self.expiries.insert((session.expires_at_ms, id));
        self.by_id.insert(id, session);
    }
}
