//! The file server's client requests in the node's metrics registry:
//! `skiff_client_requests_total{command,outcome}` and
//! `skiff_client_requests_duration_seconds{command}`, every series made at
//! start, so that counting a request is an atomic add and one histogram
//! observation.

use super::members::MemberReply;
use crate::protocol::{
    ClientMessage, MemberAnswer, Request, Response, SessionMessage, SnapshotAnswer, TransferAnswer,
};
use skiff_node::metrics::{Metrics, RequestMetrics};
use std::time::Duration;

/// The `command` label's values.
const COMMANDS: &[&str] = &[
    "write",
    "read",
    "cas",
    "delete",
    "status",
    "snapshot",
    "session_open",
    "transfer",
    "member",
];

/// The `outcome` label's values.
const OUTCOMES: &[&str] = &[
    "ok",
    "not_found",
    "version_mismatch",
    "redirect",
    "internal",
    "command_error",
    "session_expired",
    "session_stale",
    "refused",
];

/// Where the server counts its requests.
#[derive(Clone, Debug)]
pub(super) struct ClientRequestMetrics(RequestMetrics);

impl ClientRequestMetrics {
    /// Registers the families in `metrics`.
    pub fn register(metrics: &Metrics) -> ClientRequestMetrics {
        ClientRequestMetrics(metrics.register_requests(
            "client_requests",
            "Client requests answered, by command and outcome",
            COMMANDS,
            OUTCOMES,
        ))
    }

    /// Counts a request of `command` answered `response` after `took`.
    pub fn record(&self, command: usize, response: &Response, took: Duration) {
        self.0.record(command, response_outcome(response), took);
    }

    /// Counts a `snapshot` request answered `answer` after `took`.
    pub fn record_snapshot(&self, answer: &SnapshotAnswer, took: Duration) {
        let outcome = match answer {
            SnapshotAnswer::Taken(_) => 0,
            SnapshotAnswer::Refused(_) => 8,
        };
        self.0.record(5, outcome, took);
    }

    /// Counts a `transfer` request.
    pub fn record_transfer(&self, answer: &TransferAnswer, took: Duration) {
        let outcome = match answer {
            TransferAnswer::Transferred(_) => 0,
            TransferAnswer::Refused(_) => 8,
        };
        self.0.record(7, outcome, took);
    }

    /// Counts a `member` request: a list or a change made is `ok`, a
    /// change asked of a server that does not lead `redirect`, any other
    /// refusal `refused`.
    pub fn record_member(&self, reply: &MemberReply, took: Duration) {
        let outcome = match reply {
            MemberReply::List(_) | MemberReply::Change(MemberAnswer::Changed(_)) => 0,
            MemberReply::Change(MemberAnswer::NotLeader { .. }) => 3,
            MemberReply::Change(MemberAnswer::Refused(_)) => 8,
        };
        self.0.record(8, outcome, took);
    }

    /// Counts a `status` request.
    pub fn record_status(&self, took: Duration) {
        self.0.record(4, 0, took);
    }
}

/// The index in [`COMMANDS`] of `message`.
pub(super) fn command_of(message: &ClientMessage) -> usize {
    match message {
        ClientMessage::File(request) => request_command(request),
        ClientMessage::Status => 4,
        ClientMessage::Snapshot => 5,
        ClientMessage::Session(SessionMessage::Open) => 6,
        ClientMessage::Transfer(_) => 7,
        ClientMessage::Member(_) => 8,
        // A numbered request counts as the request it carries.
        ClientMessage::Session(SessionMessage::Numbered { request, .. }) => {
            request_command(request)
        }
    }
}

fn request_command(request: &Request) -> usize {
    match request {
        Request::Write { .. } => 0,
        Request::Read { .. } => 1,
        Request::Cas { .. } => 2,
        Request::Delete { .. } => 3,
    }
}

/// The index in [`OUTCOMES`] of `response`.
fn response_outcome(response: &Response) -> usize {
    match response {
        Response::Written { .. }
        | Response::Deleted
        | Response::Contents { .. }
        | Response::SessionOpened { .. } => 0,
        Response::FileNotFound => 1,
        Response::VersionMismatch { .. } => 2,
        Response::Redirect { .. } => 3,
        Response::Internal => 4,
        Response::CommandError => 5,
        Response::SessionExpired => 6,
        Response::SessionStale { .. } => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_names_a_label() {
        assert_eq!(OUTCOMES[response_outcome(&Response::Internal)], "internal");
        assert_eq!(OUTCOMES[8], "refused");
        assert_eq!(COMMANDS[command_of(&ClientMessage::Snapshot)], "snapshot");
        assert_eq!(COMMANDS[command_of(&ClientMessage::Status)], "status");
        let open = ClientMessage::Session(SessionMessage::Open);
        assert_eq!(COMMANDS[command_of(&open)], "session_open");
        let list = ClientMessage::Member(crate::protocol::MemberRequest::List);
        assert_eq!(COMMANDS[command_of(&list)], "member");
        let metrics = Metrics::enabled();
        let requests = ClientRequestMetrics::register(&metrics);
        requests.record(0, &Response::Deleted, Duration::from_millis(1));
        let text = metrics.encode();
        assert!(
            text.contains("skiff_client_requests_total{command=\"write\",outcome=\"ok\"} 1"),
            "{text}"
        );
    }
}
