//! Warnings about limits being hit, at most one per interval per kind, so
//! that a flood of abusive clients cannot flood the log too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::time::{Duration, Instant};

/// The shortest time between two warnings of one kind.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Decides whether one kind of warning may be logged now.
#[derive(Debug)]
pub(crate) struct RateLimited {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimited {
    /// At most one warning per `interval`.
    pub(crate) fn new(interval: Duration) -> RateLimited {
        RateLimited {
            interval,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(how many occurrences went unlogged since the last warning)` if
    /// this occurrence is to be logged, `None` if it is to be counted only.
    pub(crate) fn check(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match *last {
            Some(at) if now.duration_since(at) < self.interval => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurrences_within_the_interval_are_counted_not_logged() {
        let warnings = RateLimited::new(Duration::from_secs(3600));
        assert_eq!(warnings.check(), Some(0));
        assert_eq!(warnings.check(), None);
        assert_eq!(warnings.check(), None);
        // The next warning, an interval later, would report the two.
        assert_eq!(warnings.suppressed.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn every_occurrence_is_logged_without_an_interval() {
        let warnings = RateLimited::new(Duration::ZERO);
        assert_eq!(warnings.check(), Some(0));
        assert_eq!(warnings.check(), Some(0));
    }
}
