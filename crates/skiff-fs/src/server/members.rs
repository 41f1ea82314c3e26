//! Answering the `member` extension (see [`crate::protocol::member`]):
//! `member list` from this server's own node, and the changes through the
//! node, which must lead.
//!
//! A change the leader cannot take yet but will shortly (it has not
//! committed an entry of its term since it took office, or a leadership
//! transfer runs) is asked again until the request timeout, like a write
//! during a transfer: the administrator sees the change done rather than
//! a refusal to retry by hand. A change that does not commit within the
//! request timeout (no quorum) is answered as such; it may still commit
//! later, which `member list` shows.

use super::Shared;
use crate::protocol::{LeaderHint, Member, MemberAnswer, MemberList, MemberRequest, MemberRole};
use skiff_core::{MembershipChange, MembershipError};
use skiff_node::{ChangeMembershipError, MemberAddresses, NodeId, Role};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::{sleep_until, timeout_at, Instant};

/// How long a change refused for a moment (leader not ready, transfer
/// under way) waits before it is asked again.
const CHANGE_RETRY_INTERVAL: Duration = Duration::from_millis(10);

/// A server's answer to a `member` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum MemberReply {
    /// To `member list`.
    List(MemberList),
    /// To `member add | promote | remove`.
    Change(MemberAnswer),
}

impl MemberReply {
    /// Appends the wire form to `out`.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            MemberReply::List(list) => list.encode(out),
            MemberReply::Change(answer) => answer.encode(out),
        }
    }
}

impl Shared {
    /// The answer to `request`.
    pub(super) async fn member_reply(&self, request: MemberRequest) -> MemberReply {
        let (change, addresses) = match request {
            MemberRequest::List => return MemberReply::List(self.member_list()),
            MemberRequest::Add { id, peer, client } => (
                MembershipChange::AddLearner(id),
                Some(MemberAddresses { peer, client }),
            ),
            MemberRequest::Promote(id) => (MembershipChange::Promote(id), None),
            MemberRequest::Remove(id) => (MembershipChange::Remove(id), None),
        };
        MemberReply::Change(self.change_members(change, addresses).await)
    }

    /// This node's configuration, with every member's addresses, and
    /// when it leads how far behind each member is (itself: 0).
    fn member_list(&self) -> MemberList {
        let view = self.node.membership();
        let status = self.node.status();
        let leads = status.role == Role::Leader;
        let behind = |id: NodeId| {
            let own = (leads && id == status.id).then_some(0);
            view.lag_of(id).or(own)
        };
        let line = |role: MemberRole| {
            move |(id, addresses): &(NodeId, MemberAddresses)| Member {
                id: *id,
                role,
                peer: addresses.peer,
                client: addresses.client,
                behind: behind(*id),
            }
        };
        let voters = view.voters.iter().map(line(MemberRole::Voter));
        let learners = view.learners.iter().map(line(MemberRole::Learner));
        MemberList {
            members: voters.chain(learners).collect(),
            change_pending: view.change_pending,
        }
    }

    /// Asks the node to make `change`, again while it is refused only for
    /// a moment, and waits for its outcome until the request timeout.
    async fn change_members(
        &self,
        change: MembershipChange,
        addresses: Option<MemberAddresses>,
    ) -> MemberAnswer {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let changed = timeout_at(deadline, self.node.change_membership(change, addresses));
            let refusal = match changed.await {
                Ok(Ok(index)) => {
                    tracing::info!(%change, %index, "membership changed on a client's request");
                    return MemberAnswer::Changed(index);
                }
                Ok(Err(ChangeMembershipError::Refused(refusal))) => refusal,
                Ok(Err(error)) => return MemberAnswer::refused(error),
                Err(_) => {
                    return MemberAnswer::refused(format!(
                        "the change did not commit within {:?} (is a majority of voters up?); \
                         it may still commit: `member list` shows the configuration",
                        self.request_timeout
                    ))
                }
            };
            match refusal {
                MembershipError::LeaderNotReady | MembershipError::TransferInProgress
                    if Instant::now() + CHANGE_RETRY_INTERVAL < deadline =>
                {
                    sleep_until(Instant::now() + CHANGE_RETRY_INTERVAL).await;
                }
                MembershipError::NotLeader { leader } => {
                    let leader = leader.map(|id| LeaderHint {
                        id,
                        client: self.client_address_of(id),
                    });
                    return MemberAnswer::NotLeader { leader };
                }
                refusal => return MemberAnswer::refused(refusal),
            }
        }
    }

    /// Node `id`'s client address: from the configuration in force (whose
    /// members may have joined after this server started), else from the
    /// cluster configuration file's nodes.
    pub(super) fn client_address_of(&self, id: NodeId) -> Option<SocketAddr> {
        let view = self.node.membership();
        let mut members = view.voters.iter().chain(&view.learners);
        let known = members.find(|(member, _)| *member == id);
        known
            .map(|(_, addresses)| addresses.client)
            .or_else(|| self.cluster.node(id).ok().map(|node| node.client_address))
    }
}
