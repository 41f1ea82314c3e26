//! A local etcd cluster for the comparison: `count` members of Debian's
//! `etcd-server` on loopback, each with its own data directory, started and
//! stopped by the bench.
//!
//! Each member runs under a small `sh` wrapper whose standard input is a
//! pipe from this process: when the pipe closes (on drop, or when this
//! process dies without running any destructor) the wrapper kills its etcd,
//! so no member outlives the bench. The wrapper prints etcd's process id
//! first, so the bench can read etcd's CPU time.

use super::http::{post_request, HttpConnection};
use super::process::{free_addresses, stop_group};
use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// How often to ask the members who leads while they start.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Runs etcd with the arguments after the script, its output appended to
/// `$ETCD_LOG`; prints its pid; kills it when standard input closes.
const WRAPPER: &str = r#"etcd "$@" </dev/null >>"$ETCD_LOG" 2>&1 &
pid=$!
echo $pid
read _ignored
kill $pid 2>/dev/null
wait $pid"#;

/// One running member.
struct Member {
    client_address: SocketAddr,
    wrapper: Child,
    etcd_pid: u32,
}

/// Running etcd members; dropping it stops them.
pub struct EtcdCluster {
    members: Vec<Member>,
    dir: PathBuf,
}

/// The flags each member gets: names, addresses, data directory and the
/// initial cluster; everything else is etcd's default.
fn member_arguments(
    name: &str,
    data_dir: &Path,
    client: SocketAddr,
    peer: SocketAddr,
    initial_cluster: &str,
) -> Vec<String> {
    let flags = [
        ("--name", name.to_string()),
        ("--data-dir", data_dir.display().to_string()),
        ("--listen-client-urls", format!("http://{client}")),
        ("--advertise-client-urls", format!("http://{client}")),
        ("--listen-peer-urls", format!("http://{peer}")),
        ("--initial-advertise-peer-urls", format!("http://{peer}")),
        ("--initial-cluster", initial_cluster.to_string()),
        ("--initial-cluster-token", "skiff-bench".to_string()),
        ("--initial-cluster-state", "new".to_string()),
        ("--logger", "zap".to_string()),
        ("--log-level", "warn".to_string()),
    ];
    flags
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
}

impl EtcdCluster {
    /// Starts `count` members with data under `dir`, on free loopback ports.
    pub fn start(count: usize, dir: &Path) -> anyhow::Result<EtcdCluster> {
        let addresses = free_addresses(2 * count)?;
        let (clients, peers) = addresses.split_at(count);
        let names: Vec<String> = (1..=count).map(|i| format!("etcd-{i}")).collect();
        let initial_cluster = names
            .iter()
            .zip(peers)
            .map(|(name, peer)| format!("{name}=http://{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members: Vec::new(),
            dir: dir.to_path_buf(),
        };
        for ((name, &client), &peer) in names.iter().zip(clients).zip(peers) {
            let arguments = member_arguments(name, &dir.join(name), client, peer, &initial_cluster);
            let member = cluster.spawn(name, client, &arguments)?;
            cluster.members.push(member);
        }
        Ok(cluster)
    }

    fn spawn(
        &self,
        name: &str,
        client_address: SocketAddr,
        arguments: &[String],
    ) -> anyhow::Result<Member> {
        let log = self.dir.join(format!("{name}.log"));
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .args(arguments)
            .env("ETCD_LOG", &log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The shell reports the etcd it kills ("Terminated"); etcd's
            // own output goes to its log.
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("cannot run sh to start etcd")?;
        let stdout = wrapper.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let etcd_pid = line
            .trim()
            .parse()
            .with_context(|| format!("the etcd wrapper printed {line:?}, not a pid"))?;
        Ok(Member {
            client_address,
            wrapper,
            etcd_pid,
        })
    }

    /// Every member's process id, for CPU accounting.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().map(|m| m.etcd_pid).collect()
    }

    /// Every member's client address.
    pub fn client_addresses(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.client_address).collect()
    }

    /// The last lines of every member's log, for error messages.
    pub fn log_tails(&self) -> String {
        let mut tails = String::new();
        for i in 1..=self.members.len() {
            let path = self.dir.join(format!("etcd-{i}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(8)..].join("\n");
            tails.push_str(&format!("last lines of {}:\n{tail}\n", path.display()));
        }
        tails
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            // The wrapper kills its etcd when its standard input closes.
            drop(member.wrapper.stdin.take());
        }
        for member in &mut self.members {
            stop_group(&mut member.wrapper, super::process::STOP_GRACE);
        }
    }
}

/// Waits until the members at `addresses` agree on a leader and returns
/// its client address.
pub async fn wait_for_leader(
    addresses: &[SocketAddr],
    patience: Duration,
) -> anyhow::Result<SocketAddr> {
    let deadline = Instant::now() + patience;
    loop {
        let mut last_problem = String::from("no answer yet");
        for &address in addresses {
            match status(address).await {
                Ok((member, leader)) if leader != 0 && member == leader => return Ok(address),
                Ok(_) => last_problem = format!("{address} is not the leader"),
                Err(problem) => last_problem = problem,
            }
        }
        if Instant::now() >= deadline {
            anyhow::bail!("no etcd leader within {patience:?}: {last_problem}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The member's own id and its leader's, from `/v3/maintenance/status`.
async fn status(address: SocketAddr) -> Result<(u64, u64), String> {
    let mut connection = HttpConnection::connect(address).await?;
    let request = post_request(address, "/v3/maintenance/status", b"{}");
    let exchange = connection.exchange(&request);
    let (code, body) = tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .map_err(|_| format!("{address}: no status answer"))??;
    if code != 200 {
        return Err(format!("{address}: status answered {code}"));
    }
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    // etcd's gateway renders 64-bit ids as decimal strings.
    let id = |value: &serde_json::Value| value.as_str().and_then(|s| s.parse::<u64>().ok());
    let member = id(&json["header"]["member_id"]);
    let leader = id(&json["leader"]).unwrap_or(0);
    member
        .map(|member| (member, leader))
        .ok_or_else(|| format!("{address}: a status without a member id"))
}
