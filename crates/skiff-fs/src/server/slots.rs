//! The client connections a server keeps, at most
//! [`LimitsConfig::clients_max`], and which one gives way when a new client
//! arrives while every slot is taken.
//!
//! A connection is idle while it has no request in progress (nothing
//! buffered, nothing being answered). When the slots are full, a new client
//! is admitted and the connection idle the longest is told to close; when
//! none is idle, the new client is refused. Either way the new client hears
//! at once, instead of waiting in the listen backlog behind connections
//! that may never send anything.
//!
//! [`LimitsConfig::clients_max`]: skiff_node::LimitsConfig::clients_max

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Every admitted connection, by a number of its own.
#[derive(Debug)]
pub(crate) struct Slots {
    max: usize,
    taken: Mutex<Taken>,
}

#[derive(Debug, Default)]
struct Taken {
    next_id: u64,
    connections: HashMap<u64, Occupant>,
}

#[derive(Debug)]
struct Occupant {
    /// Since when the connection has had no request in progress, if so.
    idle_since: Option<Instant>,
    /// Dropped to tell the connection it was evicted.
    _evict: oneshot::Sender<()>,
}

/// How a new connection was admitted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A slot was free.
    Free,
    /// The longest-idle connection was evicted to make room.
    Evicted,
}

/// A connection's slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    id: u64,
}

/// Resolves when the connection has been evicted (or its slot is gone).
pub(crate) type Eviction = oneshot::Receiver<()>;

impl Slots {
    /// Room for `max` connections.
    pub(crate) fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            taken: Mutex::new(Taken::default()),
        })
    }

    /// A slot for a new connection, idle from now, evicting the longest-idle
    /// connection if every slot is taken; `None` if all are busy.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<(Slot, Eviction, Admission)> {
        let mut taken = self.lock();
        let mut admission = Admission::Free;
        if taken.connections.len() >= self.max {
            let longest_idle = taken
                .connections
                .iter()
                .filter_map(|(&id, occupant)| occupant.idle_since.map(|since| (since, id)))
                .min()?;
            // Dropping its sender wakes the connection's `Eviction`.
            taken.connections.remove(&longest_idle.1);
            admission = Admission::Evicted;
        }
        let id = taken.next_id;
        taken.next_id += 1;
        let (evict, eviction) = oneshot::channel();
        let occupant = Occupant {
            idle_since: Some(Instant::now()),
            _evict: evict,
        };
        taken.connections.insert(id, occupant);
        let slot = Slot {
            slots: self.clone(),
            id,
        };
        Some((slot, eviction, admission))
    }

    fn lock(&self) -> MutexGuard<'_, Taken> {
        // No code panics while holding the lock; the map stays usable anyway.
        self.taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Slot {
    /// Marks the connection idle from now: it may be evicted.
    pub(crate) fn set_idle(&self) {
        if let Some(occupant) = self.slots.lock().connections.get_mut(&self.id) {
            occupant.idle_since = Some(Instant::now());
        }
    }

    /// Marks the connection busy, so that it is not evicted; false if it
    /// was evicted already (while idle) and must close.
    pub(crate) fn set_busy(&self) -> bool {
        match self.slots.lock().connections.get_mut(&self.id) {
            Some(occupant) => {
                occupant.idle_since = None;
                true
            }
            None => false,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().connections.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_house_evicts_the_longest_idle_connection() {
        let slots = Slots::new(3);
        let (oldest, mut oldest_evicted, _) = slots.admit().unwrap();
        let (busy, mut busy_evicted, _) = slots.admit().unwrap();
        let (newer, mut newer_evicted, _) = slots.admit().unwrap();
        assert!(busy.set_busy());
        // Busy connections keep their place even if they were idle longest.
        let (_new, _, admission) = slots.admit().unwrap();
        assert_eq!(admission, Admission::Evicted);
        assert_eq!(
            oldest_evicted.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        );
        assert!(!oldest.set_busy(), "an evicted connection learns it");
        assert_eq!(
            busy_evicted.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        );
        assert_eq!(
            newer_evicted.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        );
        drop(newer);
    }

    #[test]
    fn a_house_of_busy_connections_refuses_the_new_one() {
        let slots = Slots::new(2);
        let (first, _first_evicted, admission) = slots.admit().unwrap();
        assert_eq!(admission, Admission::Free);
        let (second, _second_evicted, _) = slots.admit().unwrap();
        assert!(first.set_busy() && second.set_busy());
        assert!(slots.admit().is_none());
        second.set_idle();
        assert!(slots.admit().is_some(), "an idle connection gives way");
    }

    #[test]
    fn a_closed_connection_frees_its_slot() {
        let slots = Slots::new(1);
        let (only, _evicted, _) = slots.admit().unwrap();
        assert!(only.set_busy());
        drop(only);
        let (_next, _, admission) = slots.admit().unwrap();
        assert_eq!(admission, Admission::Free);
    }
}
