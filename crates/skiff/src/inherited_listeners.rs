//! Handing bound listening sockets to a child process, so that a port the
//! parent holds is never free between two runs of a node.
//!
//! The parent duplicates each listener, clears close-on-exec on the
//! duplicate and names its descriptor number in [`PEER_LISTEN_FD_FLAG`] and
//! [`CLIENT_LISTEN_FD_FLAG`]; `skiff node` adopts them instead of binding.

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;

/// The `skiff node` flag naming the inherited peer listener's descriptor.
pub const PEER_LISTEN_FD_FLAG: &str = "--peer-listen-fd";
/// The `skiff node` flag naming the inherited client listener's descriptor.
pub const CLIENT_LISTEN_FD_FLAG: &str = "--client-listen-fd";
/// The `skiff node` flag naming the inherited metrics listener's descriptor.
pub const METRICS_LISTEN_FD_FLAG: &str = "--metrics-listen-fd";

/// A node's peer and client listeners as descriptors that the next spawned
/// child inherits. Keep this until the child is spawned, then drop it:
/// while it lives, every child spawned by this process inherits them.
#[derive(Debug)]
pub struct InheritedListeners {
    peer: OwnedFd,
    client: OwnedFd,
    metrics: Option<OwnedFd>,
}

impl InheritedListeners {
    /// Takes `peer` and `client` (handles of their own, e.g. from
    /// [`TcpListener::try_clone`]) and makes them inheritable.
    pub fn new(peer: TcpListener, client: TcpListener) -> std::io::Result<Self> {
        Ok(InheritedListeners {
            peer: inheritable(peer)?,
            client: inheritable(client)?,
            metrics: None,
        })
    }

    /// Also hands over `metrics` (a handle of its own), where the node
    /// serves its metrics.
    pub fn with_metrics(mut self, metrics: TcpListener) -> std::io::Result<Self> {
        self.metrics = Some(inheritable(metrics)?);
        Ok(self)
    }

    /// Adds the flags that tell `skiff node` which descriptors to adopt.
    pub fn add_flags(&self, command: &mut Command) {
        command
            .arg(PEER_LISTEN_FD_FLAG)
            .arg(self.peer.as_raw_fd().to_string())
            .arg(CLIENT_LISTEN_FD_FLAG)
            .arg(self.client.as_raw_fd().to_string());
        if let Some(metrics) = &self.metrics {
            command
                .arg(METRICS_LISTEN_FD_FLAG)
                .arg(metrics.as_raw_fd().to_string());
        }
    }
}

/// `listener` as a descriptor that survives `exec`.
fn inheritable(listener: TcpListener) -> std::io::Result<OwnedFd> {
    let fd = OwnedFd::from(listener);
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_lose_close_on_exec_and_are_named_in_the_flags() {
        let peer = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpListener::bind("127.0.0.1:0").unwrap();
        let inherited =
            InheritedListeners::new(peer.try_clone().unwrap(), client.try_clone().unwrap())
                .unwrap();
        for fd in [&inherited.peer, &inherited.client] {
            let flags = fcntl(fd, FcntlArg::F_GETFD).unwrap();
            assert!(!FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC));
        }
        // The originals keep close-on-exec: only the duplicates are passed on.
        let flags = fcntl(&peer, FcntlArg::F_GETFD).unwrap();
        assert!(FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC));
        let mut command = Command::new("skiff");
        inherited.add_flags(&mut command);
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                PEER_LISTEN_FD_FLAG.to_string(),
                inherited.peer.as_raw_fd().to_string(),
                CLIENT_LISTEN_FD_FLAG.to_string(),
                inherited.client.as_raw_fd().to_string(),
            ]
        );
    }
}
