//! Helpers for tests that run the `skiff` binary and its nodes as processes.
#![allow(dead_code)] // each test file uses a different part

use skiff::process_cluster::{Ports, ProcessCluster};
use skiff::status_probe::{wait_for_leader, wait_until_answering};
use skiff_fs::protocol::StatusReport;
use skiff_node::ClusterConfig;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The longest a test waits for a process, a leader or an answer.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The `skiff` binary Cargo built for these tests.
pub fn skiff_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_skiff"))
}

/// A command running the `skiff` binary with `args`.
pub fn skiff(args: &[&str]) -> Command {
    let mut command = Command::new(skiff_binary());
    command.args(args);
    // Error messages without backtraces, whatever the caller's environment.
    command
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    command
}

/// A cluster of `count` node processes on free loopback ports, in a
/// temporary directory, with a leader elected. The cluster is declared
/// first, so that its nodes stop before the directory is removed.
pub struct TestCluster {
    pub cluster: ProcessCluster,
    pub dir: tempfile::TempDir,
}

impl TestCluster {
    pub async fn start(count: u64) -> TestCluster {
        TestCluster::start_configured(count, |_| {}).await
    }

    /// [`TestCluster::start`], with `configure` applied to the generated
    /// configuration before it is written (a small segment size, say).
    pub async fn start_configured(
        count: u64,
        configure: impl FnOnce(&mut ClusterConfig),
    ) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = ProcessCluster::create_local_configured(
            skiff_binary(),
            dir.path(),
            count,
            Ports::Free,
            configure,
        )
        .unwrap();
        cluster.start_all().unwrap();
        for address in cluster.client_addresses() {
            wait_until_answering(&address, PATIENCE)
                .await
                .unwrap_or_else(|e| panic!("{address}: {e}"));
        }
        let cluster = TestCluster { cluster, dir };
        cluster.leader().await;
        cluster
    }

    /// Waits for a leader that a majority agrees on.
    pub async fn leader(&self) -> StatusReport {
        wait_for_leader(&self.cluster.client_addresses(), PATIENCE)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tails()))
    }

    /// The last lines of every node's log, for error messages.
    pub fn log_tails(&self) -> String {
        let tails: Vec<String> = (self.cluster.ids().into_iter())
            .map(|id| self.cluster.log_tail(id))
            .collect();
        tails.join("\n")
    }

    pub fn address(&self, id: skiff_node::NodeId) -> String {
        self.cluster.client_address(id).unwrap().to_string()
    }
}

/// Whether process `pid` exists (a zombie counts as gone: it has exited).
pub fn process_exists(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until process `pid` is gone; panics after [`PATIENCE`].
pub fn wait_until_gone(pid: u32) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while process_exists(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
