//! Serving the `session` extension (see [`crate::protocol::session`]): a
//! session's opening and numbered changes go through the log like any
//! change, carrying the session in their entry, and the store decides from
//! it whether to apply or to answer from what it remembers.
//!
//! A numbered read is served as a plain read: reads change nothing, so
//! there is nothing to deduplicate, and it takes whatever path
//! [`Shared::execute`] gives reads.

use super::Shared;
use crate::command::{Command, ProposalId, SessionOpen};
use crate::protocol::{Request, Response, SessionMessage};
use bytes::Bytes;
use skiff_node::SubmitError;
use std::sync::atomic::Ordering;

impl Shared {
    /// Answers a message of the session extension.
    pub(super) async fn execute_session(&self, message: SessionMessage) -> Response {
        match message {
            SessionMessage::Open => {
                let policy = self.session_policy;
                self.propose(|timestamp_ms, proposal| {
                    SessionOpen {
                        timestamp_ms,
                        proposal,
                        policy,
                    }
                    .encode()
                })
                .await
            }
            SessionMessage::Numbered {
                request: request @ Request::Read { .. },
                ..
            } => self.execute(request).await,
            SessionMessage::Numbered { session, request } => {
                self.propose(|timestamp_ms, proposal| {
                    Command {
                        timestamp_ms,
                        proposal,
                        session: Some(session),
                        request,
                    }
                    .encode()
                })
                .await
            }
        }
    }

    /// Proposes the entry `encode` makes from a timestamp and a proposal
    /// id, and waits for the store's answer to it, as
    /// [`Shared::execute`] does for a plain request.
    async fn propose(&self, encode: impl FnOnce(u64, ProposalId) -> Bytes) -> Response {
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let answered = self.replies.wait_for(sequence);
        let proposal = ProposalId {
            server: self.replies.server_id,
            sequence,
        };
        let timestamp_ms = self.clock.now_ms().max(self.replies.clock_ms());
        let entry = encode(timestamp_ms, proposal);
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let submitted = tokio::time::timeout_at(deadline, self.node.submit(entry)).await;
        let response = match submitted {
            Ok(Ok(index)) => {
                self.replies.committed_at(sequence, index);
                match tokio::time::timeout_at(deadline, answered).await {
                    Ok(Ok(response)) => response,
                    _ => Response::Internal,
                }
            }
            Ok(Err(SubmitError::NotLeader { leader })) => self.redirect(leader),
            Ok(Err(SubmitError::Overwritten { .. })) => self.redirect(self.node.status().leader),
            Ok(Err(error)) => {
                tracing::warn!(%error, "proposal refused");
                Response::Internal
            }
            Err(_) => Response::Internal,
        };
        self.replies.forget(sequence);
        response
    }
}
