//! A recorded random workload for history tests: concurrent clients issue
//! writes, reads, cas and deletes on a few shared files, and every operation
//! is recorded with its invocation and return times on one clock, ready for
//! [`check_file_history`](crate::linearizability::check_file_history).
//!
//! The tests that crash leaders under load (in this crate and in `skiff`)
//! drive their clusters differently but share this workload, so that a
//! change to what clients do, or to how outcomes are recorded, is made once.

use crate::client::{Client, ClientError};
use crate::linearizability::{FileOperation, Operation, Outcome};
use crate::protocol::{Request, Response, Version};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the clients do.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The files every client works on, so that operations interleave.
    pub files: Vec<String>,
    /// Clients with this id or above only read, so that reads answered from
    /// a follower's state would show stale values.
    pub readers_from: u64,
    /// Operations a client issues at most before it stops by itself.
    pub operations_per_client_max: usize,
}

/// The operations every client saw, on one clock.
pub struct Recorder {
    start: Instant,
    history: Mutex<Vec<FileOperation>>,
}

impl Recorder {
    /// An empty history whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            history: Mutex::new(Vec::new()),
        }
    }

    /// Time since the recording started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// A copy of the operations recorded so far.
    pub fn history(&self) -> Vec<FileOperation> {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn record(&self, operation: FileOperation) {
        if let Ok(mut history) = self.history.lock() {
            history.push(operation);
        }
    }
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

/// Each client's generator, so that its choices follow its seed (fastrand's
/// wyrand, drawing bounded numbers without modulo bias). Also drives the
/// clients of `skiff demo`.
pub struct Rng(fastrand::Rng);

impl Rng {
    /// The generator of client `id`: distinct clients, distinct choices.
    pub fn for_client(id: u64) -> Rng {
        Rng(fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15 ^ (id + 1)))
    }

    /// A number drawn uniformly from `0..bound`; `bound` must not be 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0.u64(..bound)
    }
}

impl Workload {
    /// Runs client `id` until `stop` is set (or its operations run out),
    /// recording each operation. An operation that no server accepted
    /// (every attempt redirected or refused) did not happen and is not
    /// recorded; one whose answer was lost is recorded with an unknown
    /// outcome. Any other client error is a test failure: it panics.
    pub async fn run_client(
        &self,
        id: u64,
        mut client: Client,
        recorder: Arc<Recorder>,
        stop: Arc<AtomicBool>,
    ) {
        let mut rng = Rng::for_client(id);
        let mut known: HashMap<String, Version> = HashMap::new();
        for sequence in 0..self.operations_per_client_max {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let request = self.next_request(&mut rng, id, sequence, &known);
            let invoked_at = recorder.now();
            let result = client.call(&request).await;
            let returned_at = recorder.now();
            let outcome = match result {
                Ok(output) => {
                    if let Response::Written { version }
                    | Response::Contents { version, .. }
                    | Response::VersionMismatch { current: version } = &output
                    {
                        known.insert(request.name().to_string(), *version);
                    }
                    Outcome::Returned {
                        at: returned_at,
                        output,
                    }
                }
                Err(error) if error.outcome_unknown() => Outcome::Unknown,
                // Every attempt was redirected or could not connect: nothing
                // was proposed, so the operation did not happen.
                Err(ClientError::Unavailable { .. }) => continue,
                Err(error) => panic!("client {id}: {error}"),
            };
            recorder.record(Operation {
                invoked_at,
                input: request,
                outcome,
            });
        }
    }

    fn next_request(
        &self,
        rng: &mut Rng,
        client: u64,
        sequence: usize,
        known: &HashMap<String, Version>,
    ) -> Request {
        let name = self.files[rng.below(self.files.len() as u64) as usize].clone();
        // Unique contents, so that a read names the change it saw.
        let contents = Bytes::from(format!("c{client}-{sequence}"));
        let kind = if client >= self.readers_from {
            5
        } else {
            rng.below(10)
        };
        match kind {
            0..=3 => Request::Write {
                name,
                contents,
                exptime_s: 0,
            },
            4..=6 => Request::Read { name },
            7..=8 => Request::Cas {
                version: known.get(&name).copied().unwrap_or(Version(1)),
                name,
                contents,
                exptime_s: 0,
            },
            _ => Request::Delete { name },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn a_client_draws_the_same_numbers_from_the_same_seed() {
        let draws = |id| {
            let mut rng = Rng::for_client(id);
            (0..64).map(|_| rng.below(1000)).collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        assert_ne!(draws(3), draws(4), "distinct clients, distinct choices");
    }

    #[test]
    fn draws_are_in_bounds_and_unbiased() {
        // A bound that divides no power of two (where `%` favours the low
        // values): each value must come up within 1% of a third of the time.
        const DRAWS: u64 = 300_000;
        let mut rng = Rng::for_client(0);
        let mut counts = [0u64; 3];
        for _ in 0..DRAWS {
            counts[rng.below(3) as usize] += 1;
        }
        for count in counts {
            let third = DRAWS / 3;
            assert!(count.abs_diff(third) < third / 100, "{counts:?}");
        }
        assert!((0..1000).all(|_| rng.below(1) == 0));
    }
}
