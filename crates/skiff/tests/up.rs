//! `skiff up` as a user runs it, with `skiff fs` and `skiff status` against
//! it from other processes; and its nodes never outliving it.

mod common;

use common::{process_exists, skiff, wait_until_gone};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Output, Stdio};

/// A running `skiff up` and what it printed before it was ready.
struct Up {
    child: Child,
    stdout: BufReader<ChildStdout>,
    pids: Vec<u32>,
    config: String,
}

impl Up {
    fn start(dir: &Path) -> Up {
        Up::start_with(dir, &[])
    }

    /// `skiff up` with `extra` flags after the usual ones.
    fn start_with(dir: &Path, extra: &[&str]) -> Up {
        let mut args = vec!["up", "--dir", dir.to_str().unwrap(), "--base-port", "0"];
        args.extend_from_slice(extra);
        let mut child = skiff(&args).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut pids, mut config, mut printed) = (Vec::new(), None, String::new());
        loop {
            let mut line = String::new();
            let read = stdout.read_line(&mut line).unwrap();
            assert!(read > 0, "skiff up ended before it was ready:\n{printed}");
            printed.push_str(&line);
            if let Some(rest) = line.strip_prefix("cluster of 3 nodes, configuration ") {
                config = Some(rest.trim().to_string());
            }
            if let Some((_, rest)) = line.split_once(" pid ") {
                pids.push(rest.split_whitespace().next().unwrap().parse().unwrap());
            }
            if line.starts_with("ready") {
                break;
            }
        }
        assert_eq!(pids.len(), 3, "{printed}");
        Up {
            child,
            stdout,
            pids,
            config: config.unwrap_or_else(|| panic!("no configuration path in:\n{printed}")),
        }
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Runs `skiff fs ARGS --config ..` with `input` on its standard input.
    fn fs(&self, args: &[&str], input: &[u8]) -> Output {
        let mut all = vec!["fs"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", &self.config]);
        let mut child = skiff(&all)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Up {
    /// A failed test must not leave the cluster running: stop `skiff up`,
    /// which stops its nodes.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// The version in `version N\n`.
fn version_of(output: &Output) -> u64 {
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.trim().strip_prefix("version ");
    version
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in {output:?}"))
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn files_round_trip_through_a_cluster_started_with_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(&dir.path().join("cluster"));
    let contents = b"binary \r\n\0\xff contents\r\n";
    let written = up.fs(&["write", "notes", "-"], contents);
    assert!(written.status.success(), "{written:?}");
    let version = version_of(&written);

    let read = up.fs(&["read", "notes"], b"");
    assert!(read.status.success(), "{read:?}");
    assert_eq!(read.stdout, contents);
    assert_eq!(
        stderr_of(&read),
        format!(
            "version {version}, {} bytes, never expires\n",
            contents.len()
        )
    );

    let stale = up.fs(&["cas", "notes", &(version + 1000).to_string()], b"x");
    assert_eq!(stale.status.code(), Some(4), "{stale:?}");
    assert!(stderr_of(&stale).contains(&format!("the current version is {version}")));

    let swapped = up.fs(&["cas", "notes", &version.to_string(), "-"], b"v2");
    assert!(swapped.status.success(), "{swapped:?}");
    assert!(version_of(&swapped) > version);
    assert_eq!(up.fs(&["read", "notes"], b"").stdout, b"v2");

    // The classic protocol, without a session, works alike.
    let plain = up.fs(&["write", "notes", "-", "--plain"], b"v3");
    assert!(plain.status.success(), "{plain:?}");
    assert!(version_of(&plain) > version);
    assert_eq!(up.fs(&["read", "notes", "--plain"], b"").stdout, b"v3");

    let deleted = up.fs(&["delete", "notes"], b"");
    assert!(deleted.status.success(), "{deleted:?}");
    let missing = up.fs(&["read", "notes"], b"");
    assert_eq!(missing.status.code(), Some(3), "{missing:?}");
    assert_eq!(stderr_of(&missing), "skiff fs: notes: file not found\n");

    let status = skiff(&["status", "--config", &up.config]).output().unwrap();
    assert!(status.status.success(), "{status:?}");
    let table = String::from_utf8_lossy(&status.stdout);
    let mut roles: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().nth(2).unwrap_or(""))
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["follower", "follower", "leader"], "{table}");

    up.signal(Signal::SIGTERM);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut up.stdout, &mut rest).unwrap();
    assert!(up.child.wait().unwrap().success(), "{rest}");
    assert_eq!(
        rest.matches("stopped (exit status: 0)").count(),
        3,
        "{rest}"
    );
    for pid in &up.pids {
        assert!(!process_exists(*pid), "node pid {pid} outlived skiff up");
    }
}

#[test]
fn a_cluster_started_with_tls_serves_tls_clients_only() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start_with(&dir.path().join("cluster"), &["--tls", "--client-tls"]);
    // `skiff fs --config` finds [tls] in the configuration and uses it.
    let written = up.fs(&["write", "secret", "-"], b"over tls");
    assert!(written.status.success(), "{written:?}");
    let read = up.fs(&["read", "secret"], b"");
    assert!(read.status.success(), "{read:?}");
    assert_eq!(read.stdout, b"over tls");

    let config = skiff_node::ClusterConfig::load(Path::new(&up.config)).unwrap();
    let tls = config.tls.as_ref().expect("up --tls writes [tls]");
    assert!(tls.clients, "up --client-tls sets clients = true");
    let key = skiff_node::tls::path_for_node(&tls.key, skiff_node::NodeId(1));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", key.display());

    // A plain client is answered by no one, and told why that may be.
    let address = config.nodes[0].client_address.to_string();
    let plain = skiff(&["fs", "read", "secret", "--servers", &address])
        .output()
        .unwrap();
    assert!(!plain.status.success(), "{plain:?}");
    assert!(
        stderr_of(&plain).contains("serves clients over TLS only"),
        "{}",
        stderr_of(&plain)
    );
    // With the CA alone, the same address answers.
    let ca = tls.ca.to_str().unwrap();
    let trusted = skiff(&[
        "fs",
        "read",
        "secret",
        "--servers",
        &address,
        "--tls-ca",
        ca,
    ])
    .output()
    .unwrap();
    assert!(trusted.status.success(), "{trusted:?}");
    assert_eq!(trusted.stdout, b"over tls");
}

#[test]
fn nodes_stop_by_themselves_when_up_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(&dir.path().join("cluster"));
    up.signal(Signal::SIGKILL);
    up.child.wait().unwrap();
    // No destructor ran in `skiff up`: the nodes see their standard input
    // close and stop on their own.
    for pid in &up.pids {
        wait_until_gone(*pid);
    }
    let status = skiff(&["status", "--config", &up.config]).output().unwrap();
    assert_eq!(status.status.code(), Some(1), "{status:?}");
    let table = String::from_utf8_lossy(&status.stdout);
    let roles: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().nth(2).unwrap_or(""))
        .collect();
    assert_eq!(roles, ["down", "down", "down"], "{table}");
}

#[test]
fn an_existing_configuration_is_not_overridden() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    skiff::process_cluster::write_local_config(&cluster, 3, skiff::process_cluster::Ports::Free)
        .unwrap();
    let refused = skiff(&["up", "--dir", cluster.to_str().unwrap(), "--nodes", "5"])
        .output()
        .unwrap();
    // A bad command line, found after parsing: clap's status and usage.
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = stderr_of(&refused);
    assert!(stderr.contains("cluster.toml exists"), "{stderr}");
    assert!(stderr.contains("Usage: skiff up"), "{stderr}");
}
