//! The clients: the file server's recorded workload
//! ([`skiff_fs::workload`]) run by several concurrent clients from the
//! root namespace for the whole run, and the linearizability check of
//! their history at the end.

use skiff_fs::linearizability::{check_file_history, Budget, FileOperation, Outcome};
use skiff_fs::workload::{Recorder, Workload};
use skiff_fs::{Client, ClientConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Files the clients share: enough that the operations whose outcome is
/// unknown (answers lost to a fault) spread out, since each one multiplies
/// the orders the checker must try on its file.
const FILES: usize = 12;
/// How long a client waits for an answer before counting it lost: above
/// the node's own 5 s wait for a commit, so that an isolated leader's
/// ERR_INTERNAL arrives first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(6);
/// States the checker explores per file before giving up undecided.
const CHECK_STATES_MAX: usize = 5_000_000;

/// Clients running in the background until [`Clients::finish`].
pub struct Clients {
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

/// What the check of the history found.
#[derive(Debug)]
pub struct Verdict {
    /// Operations checked.
    pub operations: usize,
    /// Those whose outcome the client never learned.
    pub unknown: usize,
    /// `None` when linearizable, else why not (or why undecided).
    pub failure: Option<String>,
}

impl Clients {
    /// Starts `count` clients against `servers`; the last one only reads,
    /// so that stale reads would show.
    pub fn start(servers: &[String], count: u64) -> Clients {
        let workload = Arc::new(Workload {
            files: (0..FILES).map(|f| format!("tb-{f}")).collect(),
            readers_from: count.saturating_sub(1).max(1),
            operations_per_client_max: usize::MAX,
        });
        let recorder = Arc::new(Recorder::new());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        for id in 0..count {
            let mut config = ClientConfig::new(servers.iter().cloned());
            config.request_timeout = REQUEST_TIMEOUT;
            let (workload, recorder, stop) = (workload.clone(), recorder.clone(), stop.clone());
            tasks.spawn(async move {
                let client = Client::new(config);
                workload.run_client(id, client, recorder, stop).await;
            });
        }
        Clients {
            recorder,
            stop,
            tasks,
        }
    }

    /// Operations recorded so far.
    pub fn operations(&self) -> usize {
        self.recorder.history().len()
    }

    /// Stops the clients (each finishes its operation in progress) and
    /// checks their history.
    pub async fn finish(mut self) -> Verdict {
        self.stop.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(error) = joined {
                failures.push(format!("a client failed: {error}"));
            }
        }
        let history = self.recorder.history();
        let verdict = check(&history);
        Verdict {
            failure: failures.into_iter().next().or(verdict.failure),
            ..verdict
        }
    }
}

/// Checks `history` with the file server's linearizability checker.
pub fn check(history: &[FileOperation]) -> Verdict {
    let unknown = (history.iter())
        .filter(|op| matches!(op.outcome, Outcome::Unknown))
        .count();
    let budget = Budget {
        states_max: CHECK_STATES_MAX,
    };
    Verdict {
        operations: history.len(),
        unknown,
        failure: check_file_history(history, budget)
            .err()
            .map(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use skiff_fs::linearizability::Operation;
    use skiff_fs::protocol::{Request, Response, Version};

    fn op(invoked_at: u64, at: u64, input: Request, output: Response) -> FileOperation {
        Operation {
            invoked_at,
            input,
            outcome: Outcome::Returned { at, output },
        }
    }

    #[test]
    fn a_stale_read_fails_the_check_and_a_fresh_one_passes() {
        let write = |contents: &'static str, version| {
            let request = Request::Write {
                name: "f".into(),
                contents: Bytes::from(contents),
                exptime_s: 0,
            };
            (
                request,
                Response::Written {
                    version: Version(version),
                },
            )
        };
        let read = |contents: &'static str, version| Response::Contents {
            version: Version(version),
            contents: Bytes::from(contents),
            exptime_s: 0,
        };
        let (w1, r1) = write("a", 1);
        let (w2, r2) = write("b", 2);
        let read_request = Request::Read { name: "f".into() };
        let mut history = vec![op(0, 1, w1, r1), op(2, 3, w2, r2)];
        history.push(op(4, 5, read_request.clone(), read("b", 2)));
        let fresh = check(&history);
        assert_eq!((fresh.operations, fresh.unknown), (3, 0));
        assert!(fresh.failure.is_none(), "{fresh:?}");
        history.push(op(6, 7, read_request, read("a", 1)));
        assert!(check(&history).failure.is_some());
    }
}
