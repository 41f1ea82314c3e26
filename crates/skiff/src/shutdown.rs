//! Waiting for the user or the system to ask the process to stop.

use tokio::signal::unix::{signal, SignalKind};

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
