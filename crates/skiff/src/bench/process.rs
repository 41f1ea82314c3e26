//! Small process chores: free ports, stopping a process group, and reading
//! how much CPU a process has used.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::net::{SocketAddr, TcpListener};
use std::process::Child;
use std::time::{Duration, Instant};

/// How long a stopped process group may take to exit before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 on every
/// Linux architecture the bench runs on).
const CLOCK_TICKS_PER_SECOND: u64 = 100;
/// How often to look whether a stopping process has exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Loopback addresses the kernel just handed out, all distinct. Only for
/// etcd, which binds its addresses itself and cannot adopt inherited
/// listeners: another process may take a port before etcd binds it, and
/// etcd then fails to start. Skiff nodes keep theirs
/// ([`ProcessCluster::create_local`](skiff::process_cluster::ProcessCluster::create_local)).
pub fn free_addresses(count: usize) -> std::io::Result<Vec<SocketAddr>> {
    // Held together until all are chosen, so none is handed out twice.
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners.iter().map(TcpListener::local_addr).collect()
}

/// Sends SIGTERM to `child`'s process group (it must lead one), waits up to
/// `grace` for `child` to exit, then sends SIGKILL to the group.
pub fn stop_group(child: &mut Child, grace: Duration) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    let group = Pid::from_raw(pid);
    // Only while `child` is not reaped can its id not have been reused.
    if matches!(child.try_wait(), Ok(None)) {
        let _ = killpg(group, Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(EXIT_POLL_INTERVAL);
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait();
    }
}

/// The CPU time (user and system, every thread) process `pid` has used,
/// or `None` if it cannot be read.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
        .map(|ticks| Duration::from_millis(ticks.saturating_mul(1000) / CLOCK_TICKS_PER_SECOND))
}

/// `utime + stime` from the text of `/proc/<pid>/stat`. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted
/// from the last `)`: `utime` and `stime` are fields 14 and 15.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// The CPU time of every process in `pids` together; processes that cannot
/// be read count as zero.
pub fn total_cpu_time(pids: &[u32]) -> Duration {
    pids.iter().filter_map(|&pid| cpu_time(pid)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_fields_fourteen_and_fifteen() {
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194304 100 0 0 0 250 37 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(287));
        assert_eq!(parse_cpu_ticks("42 (cut"), None);
        assert!(cpu_time(std::process::id()).is_some());
    }
}
