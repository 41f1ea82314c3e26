//! `skiff up --ui ADDRESS`: the timeline page served live for a local
//! cluster. A poller asks every node for its `status` twice a second; a
//! small HTTP responder serves the page at `/` and the latest statuses at
//! `/status.json`, which the page polls, appending a step to a node's lane
//! whenever its role, term, commit index or log changes.
//!
//! The nodes' status says nothing of the messages they exchange (no
//! per-message data and no counters), so the live view shows, for each
//! change, the entries committed and appended since the previous poll as
//! its "recent traffic", not message arrows.
//!
//! The responder is bounded: a few connections at once, a small request
//! read within a deadline, `GET` only, and every connection closed after
//! one answer.

use crate::process_cluster::ProcessCluster;
use crate::status_probe::probe_all_with;
use anyhow::Context;
use skiff_fs::protocol::StatusReport;
use skiff_fs::ClientTls;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How often the nodes are asked for their status.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long one node may take to answer a poll.
const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// Connections served at once; more wait to be accepted.
const CONNECTIONS_MAX: usize = 8;
/// The largest request read; a longer one is refused.
const REQUEST_BYTES_MAX: usize = 8 * 1024;
/// How long a client may take to send its request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// The cluster the view shows: each node's id and client address.
#[derive(Clone, Debug)]
pub struct LiveCluster {
    /// The title shown on the page.
    pub title: String,
    /// `(node id, client address)` for every node, in lane order.
    pub nodes: Vec<(u64, String)>,
    /// TLS for the status probes, when the servers require it.
    pub tls: Option<ClientTls>,
}

impl LiveCluster {
    /// The view of the local cluster `cluster`.
    pub fn of(cluster: &ProcessCluster) -> anyhow::Result<LiveCluster> {
        let nodes = cluster
            .ids()
            .into_iter()
            .zip(cluster.client_addresses())
            .map(|(id, address)| (id.0, address))
            .collect();
        Ok(LiveCluster {
            title: format!("skiff up: {}", cluster.config_path().display()),
            nodes,
            tls: ClientTls::for_cluster(cluster.config())?,
        })
    }
}

/// Binds `address` and serves the view of `cluster` from a task of the
/// current runtime; returns the address bound (`127.0.0.1:0` picks a port).
pub async fn start(address: &str, cluster: LiveCluster) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("the UI cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener, cluster));
    Ok(bound)
}

/// What the page polls: the latest statuses, as JSON.
type Latest = Arc<Mutex<String>>;

/// Serves the view on `listener` until the task is dropped; polls the
/// nodes meanwhile. Errors accepting a connection end the service.
pub async fn serve(listener: TcpListener, cluster: LiveCluster) -> std::io::Result<()> {
    let names: Vec<String> = cluster.nodes.iter().map(|(id, _)| id.to_string()).collect();
    let page = Arc::new(crate::ui::page::render(
        &cluster.title,
        &serde_json::json!({"live": true, "title": cluster.title, "nodes": names, "strings": []})
            .to_string(),
    ));
    let latest: Latest = Arc::new(Mutex::new(status_json(0, &[], &[])));
    let poller = tokio::spawn(poll(cluster, latest.clone()));
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let served = loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break Ok(());
        };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => break Err(error),
        };
        let (page, latest) = (page.clone(), latest.clone());
        tokio::spawn(async move {
            // A client that misbehaves only loses its own connection.
            let _ = answer(stream, &page, &latest).await;
            drop(permit);
        });
    };
    poller.abort();
    served
}

/// Asks the nodes for their status every [`POLL_INTERVAL`].
async fn poll(cluster: LiveCluster, latest: Latest) {
    let started = Instant::now();
    let addresses: Vec<String> = cluster.nodes.iter().map(|(_, a)| a.clone()).collect();
    let mut previous: Vec<Option<StatusReport>> = vec![None; addresses.len()];
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    loop {
        interval.tick().await;
        let reports = probe_all_with(cluster.tls.as_ref(), &addresses, PROBE_TIMEOUT).await;
        let reports: Vec<Option<StatusReport>> = reports.into_iter().map(Result::ok).collect();
        let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let json = status_json(elapsed_us, &reports, &previous);
        *latest.lock().unwrap_or_else(PoisonError::into_inner) = json;
        previous = reports;
    }
}

/// The statuses as the page reads them (`timeline.js`, `poll`): role
/// codes as in the recorded timelines, and the entries committed and
/// appended since the previous poll.
fn status_json(
    t_us: u64,
    reports: &[Option<StatusReport>],
    previous: &[Option<StatusReport>],
) -> String {
    let nodes: Vec<serde_json::Value> = reports
        .iter()
        .enumerate()
        .map(|(position, report)| match report {
            None => serde_json::json!({"up": false}),
            Some(report) => {
                let before = previous.get(position).and_then(Option::as_ref);
                let mut traffic = String::new();
                if let Some(before) = before {
                    let committed = report.commit_index.0.saturating_sub(before.commit_index.0);
                    let appended = report.last_index.0.saturating_sub(before.last_index.0);
                    let _ = write!(
                        traffic,
                        "since the previous poll: {committed} entries committed, {appended} appended"
                    );
                }
                serde_json::json!({
                    "up": true,
                    "role": role_code(report.role),
                    "term": report.term.0,
                    "leader": report.leader.map_or(0, |l| l.0),
                    "commit": report.commit_index.0,
                    "last_index": report.last_index.0,
                    "messages": traffic,
                })
            }
        })
        .collect();
    serde_json::json!({
        "t": t_us,
        "nodes": nodes,
        "note": "live: polled every 500 ms; the nodes report no per-message data, so each change lists the entries committed and appended since the previous poll",
    })
    .to_string()
}

fn role_code(role: skiff_core::Role) -> u8 {
    match role {
        skiff_core::Role::Follower => 1,
        skiff_core::Role::PreCandidate => 2,
        skiff_core::Role::Candidate => 3,
        skiff_core::Role::Leader => 4,
        // A role added later draws as a follower.
        _ => 1,
    }
}

/// Reads one request and answers it: the page, the statuses, or an error.
async fn answer(mut stream: TcpStream, page: &str, latest: &Latest) -> std::io::Result<()> {
    let request = tokio::time::timeout(REQUEST_DEADLINE, read_request(&mut stream)).await;
    let (status, kind, body) = match request {
        Ok(Ok(Some(path))) => match path.split('?').next().unwrap_or_default() {
            "/" | "/index.html" => ("200 OK", "text/html; charset=utf-8", page.to_string()),
            "/status.json" => {
                let json = latest
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                ("200 OK", "application/json", json)
            }
            _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
        },
        Ok(Ok(None)) => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
        Ok(Err(error)) => return Err(error),
        Err(_) => (
            "408 Request Timeout",
            "text/plain",
            "too slow\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// The path of a `GET` request, or `None` for anything else (another
/// method, a malformed or oversized request).
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buffer) {
            Ok(httparse::Status::Complete(_)) => {
                return Ok((request.method == Some("GET"))
                    .then(|| request.path.map(str::to_string))
                    .flatten());
            }
            Ok(httparse::Status::Partial) if buffer.len() < REQUEST_BYTES_MAX => continue,
            _ => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(address: std::net::SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(address).await.expect("connects");
        stream.write_all(request.as_bytes()).await.expect("sends");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("reads");
        answer
    }

    #[tokio::test]
    async fn serves_the_page_and_the_statuses_and_refuses_the_rest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let address = listener.local_addr().expect("an address");
        // A node nobody listens on: it is reported down.
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let nowhere = closed.local_addr().expect("an address").to_string();
        drop(closed);
        let cluster = LiveCluster {
            title: "test cluster".to_string(),
            nodes: vec![(1, nowhere)],
            tls: None,
        };
        let server = tokio::spawn(serve(listener, cluster));
        let page = get(address, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
        assert!(page.contains("\"live\":true") && page.contains("test cluster"));
        let status = get(address, "GET /status.json HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(status.starts_with("HTTP/1.1 200 OK"), "{status}");
        assert!(status.contains("\"nodes\":["), "{status}");
        let missing = get(address, "GET /other HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(address, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 400"), "{post}");
        let huge = format!("GET /{} HTTP/1.1\r\n", "a".repeat(REQUEST_BYTES_MAX + 10));
        assert!(get(address, &huge).await.starts_with("HTTP/1.1 400"));
        server.abort();
    }

    #[test]
    fn a_status_lists_progress_since_the_previous_poll() {
        let report = |commit: u64, last: u64| StatusReport {
            id: skiff_core::NodeId(1),
            role: skiff_core::Role::Leader,
            term: skiff_core::Term(3),
            leader: Some(skiff_core::NodeId(1)),
            commit_index: skiff_core::LogIndex(commit),
            last_index: skiff_core::LogIndex(last),
            repairing: false,
            log: None,
            applied: None,
            leader_change: None,
        };
        let json = status_json(7, &[Some(report(5, 6)), None], &[Some(report(2, 2)), None]);
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(value["t"], 7);
        assert_eq!(value["nodes"][0]["role"], 4);
        assert_eq!(value["nodes"][0]["commit"], 5);
        assert_eq!(
            value["nodes"][0]["messages"],
            "since the previous poll: 3 entries committed, 4 appended"
        );
        assert_eq!(value["nodes"][1]["up"], false);
    }
}
