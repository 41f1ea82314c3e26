//! Serving the `session` extension (see [`crate::protocol::session`]): a
//! session's opening and numbered changes go through the log like any
//! change, carrying the session in their entry, and the store decides from
//! it whether to apply or to answer from what it remembers.
//!
//! A numbered read is served as a plain read: reads change nothing, so
//! there is nothing to deduplicate, and it takes whatever path
//! [`Shared::execute`] gives reads.

use super::Shared;
use crate::command::{Command, SessionOpen};
use crate::protocol::{Request, Response, SessionMessage};

impl Shared {
    /// Answers a message of the session extension.
    pub(super) async fn execute_session(&self, message: SessionMessage) -> Response {
        match message {
            SessionMessage::Open => {
                let policy = self.session_policy;
                self.propose_entry(|timestamp_ms, proposal| {
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
                self.propose_entry(|timestamp_ms, proposal| {
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
}
