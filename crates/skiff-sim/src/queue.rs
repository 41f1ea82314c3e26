//! The simulated clock's agenda: events ordered by time, ties broken by the
//! order in which they were scheduled, so that a run never depends on how a
//! heap happens to order equal keys.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Simulated time in microseconds since the start of the run.
pub type Micros = u64;

/// A heap key: small, so that sifting moves little. The payload waits in a
/// slot of its own until its key comes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    time: Micros,
    sequence: u64,
    slot: u32,
}

/// Events of type `T`, popped in (time, scheduling order).
#[derive(Debug)]
pub struct EventQueue<T> {
    heap: BinaryHeap<Reverse<Key>>,
    slots: Vec<Option<T>>,
    free_slots: Vec<u32>,
    next_sequence: u64,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            next_sequence: 0,
        }
    }
}

impl<T> EventQueue<T> {
    /// Schedules `event` at `time`.
    pub fn push(&mut self, time: Micros, event: T) {
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 pending events")
            }
        };
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.heap.push(Reverse(Key {
            time,
            sequence,
            slot,
        }));
    }

    /// The earliest event and its time, if any.
    pub fn pop(&mut self) -> Option<(Micros, T)> {
        let Reverse(key) = self.heap.pop()?;
        let event = self.slots[key.slot as usize]
            .take()
            .expect("a queued key always has its event");
        self.free_slots.push(key.slot);
        Some((key.time, event))
    }

    /// The time of the earliest event, if any.
    pub fn next_time(&self) -> Option<Micros> {
        self.heap.peek().map(|Reverse(key)| key.time)
    }

    /// The number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_scheduling_order() {
        let mut q = EventQueue::default();
        q.push(30, "c");
        q.push(10, "a1");
        q.push(20, "b");
        q.push(10, "a2");
        assert_eq!(q.next_time(), Some(10));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(10, "a1"), (10, "a2"), (20, "b"), (30, "c")]);
        assert!(q.is_empty());
    }

    #[test]
    fn slots_are_reused() {
        let mut q = EventQueue::default();
        for round in 0..100u64 {
            q.push(round, round);
            q.push(round, round + 1000);
            assert_eq!(q.pop(), Some((round, round)));
            assert_eq!(q.pop(), Some((round, round + 1000)));
        }
        assert_eq!(q.slots.len(), 2);
        assert_eq!(q.len(), 0);
    }
}
