//! Waiting for the user or the system to ask the process to stop.

use std::future::Future;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Runs `work` on `runtime` until it finishes, or until a stop is
/// [`requested`] (then an error naming the signal, and `work` is dropped,
/// which stops whatever it owns), and then gives the runtime's other tasks
/// a second to finish.
pub fn run_until_requested<T>(
    runtime: tokio::runtime::Runtime,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let outcome = runtime.block_on(async {
        tokio::select! {
            signal = requested() => Err(anyhow::anyhow!("interrupted by {signal}")),
            outcome = work => outcome,
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    outcome
}

/// Resolves with the signal's name at the first SIGINT (Ctrl-C) or SIGTERM.
///
/// Both handlers are installed when this is first polled, so create the
/// future before the work it guards. If a handler cannot be installed (which
/// only happens when the runtime lacks signal support, a bug of ours), the
/// future never resolves for that signal rather than stopping at once.
pub async fn requested() -> &'static str {
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    tokio::select! {
        Some(()) = recv(&mut interrupt) => "SIGINT",
        Some(()) = recv(&mut terminate) => "SIGTERM",
        else => std::future::pending().await,
    }
}

async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}
