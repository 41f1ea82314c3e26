//! The bytes received from one client and not yet parsed.
//!
//! The buffer costs nothing while it is empty: it is released whenever it
//! holds no partial request, so an idle connection pins no buffer at all.
//! Up to [`UNBUDGETED_BYTES`] of it are the connection's own, enough for
//! every small request in one read; beyond that it grows (doubling, up to one
//! maximal request) only with bytes taken from the shared
//! [`PendingBudget`], and gives them back when it shrinks.

use super::budget::{Held, OverBudget, PendingBudget};

/// The part of a connection's buffer that does not count against the
/// budget, and the most read from a client at a time into an empty buffer.
pub(crate) const UNBUDGETED_BYTES: usize = 16 * 1024;

/// One connection's unparsed bytes and the budget it holds for them.
#[derive(Debug)]
pub(crate) struct RequestBuffer {
    bytes: Vec<u8>,
    held: Held,
    /// The buffer never needs to be larger: the parser decides every buffer
    /// of a maximal request's size.
    capacity_max: usize,
}

impl RequestBuffer {
    /// An empty buffer for requests of up to `request_bytes_max` bytes.
    pub(crate) fn new(budget: &PendingBudget, request_bytes_max: usize) -> RequestBuffer {
        RequestBuffer {
            bytes: Vec::new(),
            held: Held::none(budget),
            capacity_max: request_bytes_max.max(UNBUDGETED_BYTES),
        }
    }

    /// The bytes received and not yet consumed.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether no bytes of a request are waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Drops the first `consumed` bytes, then releases the buffer if nothing
    /// is left, or shrinks it to what is left (the start of the next
    /// request), giving back the budget it no longer needs.
    pub(crate) fn consume(&mut self, consumed: usize) {
        self.bytes.drain(..consumed.min(self.bytes.len()));
        if self.bytes.is_empty() {
            self.bytes = Vec::new();
        } else {
            self.bytes.shrink_to(self.bytes.len().max(UNBUDGETED_BYTES));
        }
        self.held.shrink_to(budgeted(self.bytes.capacity()));
    }

    /// Makes room for at least one more byte, waiting for the budget if
    /// the buffer must grow past [`UNBUDGETED_BYTES`]. Call it only while
    /// the parser finds the buffer incomplete. Cancelling it takes nothing
    /// from the budget.
    pub(crate) async fn make_room(&mut self) -> Result<(), OverBudget> {
        let capacity = self.bytes.capacity();
        if self.bytes.len() < capacity {
            return Ok(());
        }
        let target = if capacity == 0 {
            UNBUDGETED_BYTES
        } else {
            capacity.saturating_mul(2).min(self.capacity_max)
        };
        // Past `capacity_max` the parser would have decided; asking the
        // budget for more than it holds refuses instead of growing.
        let target = target.max(capacity + 1);
        self.held.grow_to(budgeted(target)).await?;
        self.bytes.reserve_exact(target - self.bytes.len());
        Ok(())
    }

    /// The buffer to read into; it has room once [`make_room`] succeeded.
    ///
    /// [`make_room`]: RequestBuffer::make_room
    pub(crate) fn unfilled(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

/// The part of a buffer of `capacity` bytes that counts against the budget.
fn budgeted(capacity: usize) -> usize {
    capacity.saturating_sub(UNBUDGETED_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST_MAX: usize = 100_000;

    fn fill(buffer: &mut RequestBuffer) {
        let room = buffer.bytes.capacity() - buffer.bytes.len();
        buffer.unfilled().extend(std::iter::repeat_n(b'x', room));
    }

    #[tokio::test]
    async fn small_requests_take_nothing_from_the_budget() {
        let budget = PendingBudget::new(0);
        let mut buffer = RequestBuffer::new(&budget, REQUEST_MAX);
        buffer.make_room().await.unwrap();
        assert_eq!(buffer.bytes.capacity(), UNBUDGETED_BYTES);
        fill(&mut buffer);
        assert!(
            buffer.make_room().await.is_err(),
            "a budget of 0 refuses growth"
        );
    }

    #[tokio::test]
    async fn growth_takes_from_the_budget_and_consuming_gives_it_back() {
        let budget = PendingBudget::new(1 << 20);
        let mut buffer = RequestBuffer::new(&budget, REQUEST_MAX);
        while buffer.bytes.capacity() < REQUEST_MAX {
            buffer.make_room().await.unwrap();
            fill(&mut buffer);
        }
        assert_eq!(
            buffer.bytes.capacity(),
            REQUEST_MAX,
            "never beyond a request"
        );
        assert_eq!(buffer.held_bytes(), REQUEST_MAX - UNBUDGETED_BYTES);
        assert_eq!(budget.available(), (1 << 20) - buffer.held_bytes());
        buffer.consume(REQUEST_MAX - 10);
        assert_eq!(buffer.bytes(), b"xxxxxxxxxx");
        assert_eq!(
            buffer.held_bytes(),
            0,
            "a short remainder fits the unbudgeted part"
        );
        buffer.consume(10);
        assert_eq!(buffer.bytes.capacity(), 0, "an empty buffer is released");
    }

    impl RequestBuffer {
        fn held_bytes(&self) -> usize {
            self.held.bytes()
        }
    }
}
