//! Asking file servers for their view of the cluster with the protocol's
//! `status` extension (`status\r\n` -> `STATUS id=.. role=.. ..\r\n`), and
//! finding the leader they agree on; asking one for a snapshot with the
//! `snapshot` extension (`snapshot\r\n` -> `SNAPSHOT index=.. term=..`);
//! asking the leader to hand over with the `transfer` extension
//! (`transfer N\r\n` -> `TRANSFERRED N`); asking for the membership and
//! changing it with the `member` extension (`member list\r\n` -> `MEMBER
//! ..` lines, `member add|promote|remove ..` -> `MEMBER_OK <index>`).
//!
//! Each function has a `_with` twin that takes the client TLS to use
//! against a cluster with `[tls] clients = true`; the plain ones speak TCP.

use skiff_fs::protocol::{
    parse_member_answer, parse_member_list, parse_snapshot_answer, parse_status_report,
    parse_transfer_answer, MemberAnswer, MemberList, MemberRequest, Parsed, ProtocolError,
    SnapshotAnswer, StatusReport, TransferAnswer, LINE_BYTES_MAX,
};
use skiff_fs::ClientTls;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one probe may take, connection included, by default.
pub const PROBE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(1);
/// How often [`wait_for_leader`] asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Bytes of an answer read before giving up on a line: far above any
/// `STATUS` or `SNAPSHOT` line.
const ANSWER_BYTES_MAX: usize = 1024;
/// Bytes of a `member list` answer read before giving up: its most lines
/// at their longest.
const MEMBER_LIST_BYTES_MAX: usize = (skiff_fs::protocol::member::MEMBERS_MAX + 1) * LINE_BYTES_MAX;

/// Why a server gave no status.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Nothing listens there, or the connection broke.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer is not the extension's line, e.g. from a server without
    /// the extension.
    #[error("not an answer to the extension: {0}")]
    Malformed(ProtocolError),
    /// No leader that the servers agree on appeared in time.
    #[error("no leader within {0:?}")]
    NoLeader(Duration),
}

impl From<ProtocolError> for ProbeError {
    // Not `#[from]`, which would make the protocol error a source too and
    // print it twice in error chains: the message already says it.
    fn from(error: ProtocolError) -> Self {
        ProbeError::Malformed(error)
    }
}

/// Asks the server at `address` for its status, over plain TCP.
pub async fn probe(address: &str, timeout: Duration) -> Result<StatusReport, ProbeError> {
    probe_with(None, address, timeout).await
}

/// Asks the server at `address` for its status, over TLS if `tls`.
pub async fn probe_with(
    tls: Option<&ClientTls>,
    address: &str,
    timeout: Duration,
) -> Result<StatusReport, ProbeError> {
    exchange(tls, address, timeout, b"status\r\n", parse_status_report).await
}

/// Asks the server at `address` to snapshot its store now, over TLS if
/// `tls`, and waits up to `timeout` for the outcome: the snapshot taken, or
/// the server's reason for taking none.
pub async fn request_snapshot_with(
    tls: Option<&ClientTls>,
    address: &str,
    timeout: Duration,
) -> Result<SnapshotAnswer, ProbeError> {
    exchange(
        tls,
        address,
        timeout,
        b"snapshot\r\n",
        parse_snapshot_answer,
    )
    .await
}

/// Asks the server at `address` (which must lead) to hand leadership to
/// node `to`, waiting up to `timeout` for its answer.
pub async fn request_transfer_with(
    tls: Option<&ClientTls>,
    address: &str,
    to: u64,
    timeout: Duration,
) -> Result<TransferAnswer, ProbeError> {
    let request = format!("transfer {to}\r\n");
    exchange(
        tls,
        address,
        timeout,
        request.as_bytes(),
        parse_transfer_answer,
    )
    .await
}

/// Asks the server at `address` for the membership in force on its node
/// (`member list`), waiting up to `timeout`.
pub async fn request_member_list_with(
    tls: Option<&ClientTls>,
    address: &str,
    timeout: Duration,
) -> Result<MemberList, ProbeError> {
    let mut request = Vec::new();
    MemberRequest::List.encode(&mut request);
    let answer = Answer {
        parse: parse_member_list,
        bytes_max: MEMBER_LIST_BYTES_MAX,
    };
    exchange_answer(tls, address, timeout, &request, answer).await
}

/// Asks the server at `address` (which must lead) for a membership
/// change, waiting up to `timeout` for its answer: the change committed,
/// or the reason it did not.
pub async fn request_member_change_with(
    tls: Option<&ClientTls>,
    address: &str,
    change: &MemberRequest,
    timeout: Duration,
) -> Result<MemberAnswer, ProbeError> {
    let mut request = Vec::new();
    change.encode(&mut request);
    exchange(tls, address, timeout, &request, parse_member_answer).await
}

/// What parses one answer line of an extension.
type ParseLine<T> = fn(&[u8]) -> Result<Parsed<T>, ProtocolError>;

/// How to read an answer: its parser and the most bytes it may take.
struct Answer<T> {
    parse: ParseLine<T>,
    bytes_max: usize,
}

/// Sends `request` to the server at `address` and reads its one-line
/// answer, all within `timeout`.
async fn exchange<T>(
    tls: Option<&ClientTls>,
    address: &str,
    timeout: Duration,
    request: &[u8],
    parse: ParseLine<T>,
) -> Result<T, ProbeError> {
    let answer = Answer {
        parse,
        bytes_max: ANSWER_BYTES_MAX,
    };
    exchange_answer(tls, address, timeout, request, answer).await
}

/// Sends `request` to the server at `address` and reads its answer, all
/// within `timeout`.
async fn exchange_answer<T>(
    tls: Option<&ClientTls>,
    address: &str,
    timeout: Duration,
    request: &[u8],
    answer: Answer<T>,
) -> Result<T, ProbeError> {
    let exchange = async {
        let stream = TcpStream::connect(address).await?;
        match tls {
            Some(tls) => ask(tls.connect(address, stream).await?, request, answer).await,
            None => ask(stream, request, answer).await,
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ProbeError::Timeout(timeout))?
}

async fn ask<T>(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    request: &[u8],
    expected: Answer<T>,
) -> Result<T, ProbeError> {
    stream.write_all(request).await?;
    // TLS may hold written bytes until flushed.
    stream.flush().await?;
    let mut answer = Vec::new();
    loop {
        if let Parsed::Complete { value, .. } = (expected.parse)(&answer)? {
            return Ok(value);
        }
        if answer.len() >= expected.bytes_max {
            return Err(std::io::Error::other("answer too long").into());
        }
        let mut chunk = [0u8; 1024];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        answer.extend_from_slice(&chunk[..read]);
    }
}

/// Asks every server at once over plain TCP; answers in the order of
/// `addresses`.
pub async fn probe_all(
    addresses: &[String],
    timeout: Duration,
) -> Vec<Result<StatusReport, ProbeError>> {
    probe_all_with(None, addresses, timeout).await
}

/// Asks every server at once, over TLS if `tls`; answers in the order of
/// `addresses`.
pub async fn probe_all_with(
    tls: Option<&ClientTls>,
    addresses: &[String],
    timeout: Duration,
) -> Vec<Result<StatusReport, ProbeError>> {
    let probes = addresses.iter().map(|address| {
        let (address, tls) = (address.clone(), tls.cloned());
        tokio::spawn(async move { probe_with(tls.as_ref(), &address, timeout).await })
    });
    let mut reports = Vec::with_capacity(addresses.len());
    for probe in probes.collect::<Vec<_>>() {
        reports.push(match probe.await {
            Ok(report) => report,
            Err(join_error) => Err(std::io::Error::other(join_error.to_string()).into()),
        });
    }
    reports
}

/// The leader of a cluster of `cluster_size` nodes, as far as `reports`
/// show: a server that says it leads, in a term in which a majority of the
/// cluster (itself included) reports it as leader. A deposed leader that has
/// not heard of the new term yet is thereby not taken for the leader.
pub fn agreed_leader(
    reports: &[Result<StatusReport, ProbeError>],
    cluster_size: usize,
) -> Option<StatusReport> {
    let answered: Vec<&StatusReport> = reports.iter().flatten().collect();
    answered.iter().copied().copied().find(|candidate| {
        candidate.role == skiff_node::Role::Leader
            && answered
                .iter()
                .filter(|r| r.term == candidate.term && r.leader == Some(candidate.id))
                .count()
                > cluster_size / 2
    })
}

/// Waits up to `patience` for [`agreed_leader`] among `addresses`, which
/// must be every server of the cluster, over plain TCP.
pub async fn wait_for_leader(
    addresses: &[String],
    patience: Duration,
) -> Result<StatusReport, ProbeError> {
    wait_for_leader_with(None, addresses, patience).await
}

/// Like [`wait_for_leader`], over TLS if `tls`.
pub async fn wait_for_leader_with(
    tls: Option<&ClientTls>,
    addresses: &[String],
    patience: Duration,
) -> Result<StatusReport, ProbeError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let reports = probe_all_with(tls, addresses, PROBE_TIMEOUT_DEFAULT).await;
        if let Some(leader) = agreed_leader(&reports, addresses.len()) {
            return Ok(leader);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProbeError::NoLeader(patience));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits up to `patience` for the server at `address` to answer `status`
/// (a node just started answers once it has bound its client address),
/// over plain TCP.
pub async fn wait_until_answering(
    address: &str,
    patience: Duration,
) -> Result<StatusReport, ProbeError> {
    wait_until_answering_with(None, address, patience).await
}

/// Like [`wait_until_answering`], over TLS if `tls`.
pub async fn wait_until_answering_with(
    tls: Option<&ClientTls>,
    address: &str,
    patience: Duration,
) -> Result<StatusReport, ProbeError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match probe_with(tls, address, PROBE_TIMEOUT_DEFAULT).await {
            Ok(report) => return Ok(report),
            Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_node::{LogIndex, NodeId, Role, Term};

    fn report(id: u64, role: Role, term: u64, leader: Option<u64>) -> StatusReport {
        StatusReport {
            id: NodeId(id),
            role,
            term: Term(term),
            leader: leader.map(NodeId),
            commit_index: LogIndex(0),
            last_index: LogIndex(0),
            repairing: false,
            log: None,
            applied: None,
            leader_change: None,
        }
    }

    fn down() -> Result<StatusReport, ProbeError> {
        Err(ProbeError::Timeout(Duration::ZERO))
    }

    #[test]
    fn a_leader_needs_a_majority_reporting_it_in_its_term() {
        use Role::{Candidate, Follower, Leader};
        let leader = report(1, Leader, 3, Some(1));
        let agreed = [Ok(leader), Ok(report(2, Follower, 3, Some(1))), down()];
        assert_eq!(agreed_leader(&agreed, 3), Some(leader));
        // Alone in its term: not yet known to lead.
        let alone = [Ok(leader), Ok(report(2, Follower, 3, None)), down()];
        assert_eq!(agreed_leader(&alone, 3), None);
        // A deposed leader still in its old term, beside the new majority.
        let deposed = [
            Ok(report(1, Leader, 3, Some(1))),
            Ok(report(2, Leader, 4, Some(2))),
            Ok(report(3, Follower, 4, Some(2))),
        ];
        assert_eq!(agreed_leader(&deposed, 3).map(|r| r.id), Some(NodeId(2)));
        let electing = [
            Ok(report(1, Candidate, 5, None)),
            Ok(report(2, Follower, 5, None)),
            down(),
        ];
        assert_eq!(agreed_leader(&electing, 3), None);
        assert_eq!(agreed_leader(&[down(), down(), down()], 3), None);
    }

    #[tokio::test]
    async fn a_server_without_the_extension_is_malformed_and_nobody_is_down() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 8];
            stream.read_exact(&mut request).await.unwrap();
            stream.write_all(b"ERR_CMD_ERR\r\n").await.unwrap();
        });
        let answer = probe(&address, Duration::from_secs(5)).await;
        assert!(
            matches!(answer, Err(ProbeError::Malformed(_))),
            "{answer:?}"
        );
        // The listener is gone now: nothing answers.
        server.await.unwrap();
        let answer = probe(&address, Duration::from_secs(5)).await;
        assert!(matches!(answer, Err(ProbeError::Io(_))), "{answer:?}");
    }
}
