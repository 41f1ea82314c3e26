//! The budget of bytes held, over every client connection, for requests
//! received in part ([`LimitsConfig::client_pending_bytes_max`]).
//!
//! A connection takes from the budget before it grows its buffer for an
//! incomplete request and gives back when the buffer shrinks or the
//! connection ends, so that however many clients send large requests
//! slowly, the bytes they pin together stay under one bound.
//!
//! [`LimitsConfig::client_pending_bytes_max`]: skiff_node::LimitsConfig::client_pending_bytes_max

use std::sync::Arc;
use tokio::sync::Semaphore;

/// The shared budget: one semaphore permit per byte.
#[derive(Clone, Debug)]
pub(crate) struct PendingBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// A share of the budget asked for that the whole budget could never give.
#[derive(Debug, thiserror::Error)]
#[error("{wanted} bytes of requests in progress exceed the budget of {total}")]
pub(crate) struct OverBudget {
    wanted: usize,
    total: usize,
}

impl PendingBudget {
    /// A budget of `total` bytes (at most [`Semaphore::MAX_PERMITS`]).
    pub(crate) fn new(total: usize) -> PendingBudget {
        let total = total.min(Semaphore::MAX_PERMITS);
        PendingBudget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The whole budget, in bytes.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Bytes held now.
    pub(crate) fn held(&self) -> usize {
        self.total.saturating_sub(self.available())
    }

    /// Bytes nobody holds now.
    pub(crate) fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

/// What one connection holds of the budget; given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    budget: PendingBudget,
    bytes: usize,
}

impl Held {
    /// Nothing held yet.
    pub(crate) fn none(budget: &PendingBudget) -> Held {
        Held {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    /// Waits until this holds `bytes` in all. Cancelling the wait takes
    /// nothing; a total the budget could never hold fails at once.
    pub(crate) async fn grow_to(&mut self, bytes: usize) -> Result<(), OverBudget> {
        let Some(more) = bytes.checked_sub(self.bytes).filter(|&more| more > 0) else {
            return Ok(());
        };
        let over = OverBudget {
            wanted: bytes,
            total: self.budget.total,
        };
        if bytes > self.budget.total {
            return Err(over);
        }
        let more_permits = u32::try_from(more).map_err(|_| over)?;
        let permits = self
            .budget
            .bytes
            .acquire_many(more_permits)
            .await
            .expect("the budget's semaphore is never closed");
        // Kept as a count in `self.bytes` and given back by `shrink_to`.
        permits.forget();
        self.bytes = bytes;
        Ok(())
    }

    /// The bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Gives back all but `bytes`.
    pub(crate) fn shrink_to(&mut self, bytes: usize) {
        if let Some(less) = self.bytes.checked_sub(bytes).filter(|&less| less > 0) {
            self.budget.bytes.add_permits(less);
            self.bytes = bytes;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    /// Whether `future` is still waiting after one poll.
    fn is_pending(future: impl Future) -> bool {
        let future = std::pin::pin!(future);
        let mut context = Context::from_waker(Waker::noop());
        matches!(future.poll(&mut context), Poll::Pending)
    }

    #[tokio::test]
    async fn held_bytes_return_to_the_budget_when_shrunk_or_dropped() {
        let budget = PendingBudget::new(100);
        let mut held = Held::none(&budget);
        held.grow_to(60).await.unwrap();
        assert_eq!(budget.available(), 40);
        held.shrink_to(10);
        assert_eq!(budget.available(), 90);
        drop(held);
        assert_eq!(budget.available(), 100);
    }

    #[tokio::test]
    async fn growth_waits_for_bytes_another_holder_gives_back() {
        let budget = PendingBudget::new(100);
        let mut first = Held::none(&budget);
        first.grow_to(80).await.unwrap();
        let mut second = Held::none(&budget);
        assert!(is_pending(second.grow_to(50)), "only 20 bytes are free");
        assert_eq!(budget.available(), 20, "a cancelled wait takes nothing");
        first.shrink_to(30);
        second.grow_to(50).await.unwrap();
        assert_eq!(budget.available(), 20);
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_fails_at_once() {
        let budget = PendingBudget::new(100);
        let mut held = Held::none(&budget);
        assert!(held.grow_to(101).await.is_err());
        assert_eq!(budget.available(), 100);
    }
}
