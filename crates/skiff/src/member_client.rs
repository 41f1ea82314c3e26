//! Changing a cluster's membership from outside, the way `skiff member`
//! and `skiff node --join` do: ask any server, follow its `not the
//! leader` answers (which name the leader's client address) to the
//! leader, and let the leader make the change; and read the membership
//! as the leader sees it.
//!
//! Both give up at a deadline. A server that cannot be reached or knows
//! no leader (an election is running) sends the search on to the next
//! address known, pausing after each round so that an election can end.

use crate::status_probe::{
    probe_with, request_member_change_with, request_member_list_with, ProbeError,
};
use skiff_fs::protocol::{MemberAnswer, MemberList, MemberRequest, StatusReport};
use skiff_fs::ClientTls;
use skiff_node::{LogIndex, Role};
use std::time::Duration;
use tokio::time::Instant;

/// How long one question to one server may take, besides a change's own
/// wait for its commit.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause after a round in which no server led or named a leader.
const ROUND_PAUSE: Duration = Duration::from_millis(50);

/// A change the leader made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    /// The log index of the change's entry, now committed.
    pub index: LogIndex,
    /// The client address of the server that made it (the leader then).
    pub leader_address: String,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The leader refused it, or could not tell its outcome; the reason is
    /// the server's.
    #[error("{reason}")]
    Refused {
        /// The leader's client address.
        address: String,
        /// Its reason, one line.
        reason: String,
    },
    /// No server led, or none could be reached, before the deadline.
    #[error("no leader answered within {timeout:?}; last: {last}")]
    NoLeader {
        /// The time allowed.
        timeout: Duration,
        /// What the last server asked said, or why it said nothing.
        last: String,
    },
}

/// Asks for `change` at the leader of the cluster whose servers include
/// `addresses` (any one of them suffices), following `not the leader`
/// answers, until the leader answers or `timeout` has passed. The wait
/// for the change's commit counts in `timeout` too.
pub async fn change_at_leader(
    tls: Option<&ClientTls>,
    addresses: &[String],
    change: &MemberRequest,
    timeout: Duration,
) -> Result<Changed, ChangeError> {
    let deadline = Instant::now() + timeout;
    let mut search = Search::new(addresses);
    let mut last = String::from("no server was asked");
    while Instant::now() < deadline {
        let Some(address) = search.next().await else {
            continue;
        };
        let patience = deadline.saturating_duration_since(Instant::now());
        match request_member_change_with(tls, &address, change, patience).await {
            Ok(MemberAnswer::Changed(index)) => {
                return Ok(Changed {
                    index,
                    leader_address: address,
                })
            }
            Ok(MemberAnswer::Refused(reason)) => {
                return Err(ChangeError::Refused { address, reason })
            }
            Ok(MemberAnswer::NotLeader { leader }) => {
                last = format!("{address}: not the leader");
                if let Some(client) = leader.and_then(|hint| hint.client) {
                    search.follow(client.to_string());
                }
            }
            Err(error) => last = format!("{address}: {error}"),
        }
    }
    Err(ChangeError::NoLeader { timeout, last })
}

/// The membership as one server sees it.
#[derive(Clone, Debug)]
pub struct View {
    /// Its configuration.
    pub list: MemberList,
    /// Its status when asked: it leads when `status.role` says so.
    pub status: StatusReport,
    /// Its client address.
    pub address: String,
}

/// The membership as the leader sees it: the cluster's latest. When no
/// leader answers within `timeout`, the view of the first server that
/// answered at all (its `status` says it does not lead); an error when
/// none did.
pub async fn leader_view(
    tls: Option<&ClientTls>,
    addresses: &[String],
    timeout: Duration,
) -> Result<View, ProbeError> {
    let deadline = Instant::now() + timeout;
    let mut search = Search::new(addresses);
    let mut any: Option<View> = None;
    let mut last = ProbeError::NoLeader(timeout);
    while Instant::now() < deadline {
        let Some(address) = search.next().await else {
            continue;
        };
        let asked = async {
            let status = probe_with(tls, &address, ASK_TIMEOUT).await?;
            let list = request_member_list_with(tls, &address, ASK_TIMEOUT).await?;
            Ok::<_, ProbeError>((status, list))
        };
        let (status, list) = match asked.await {
            Ok(answer) => answer,
            Err(error) => {
                last = error;
                continue;
            }
        };
        let leader_address = status
            .leader
            .filter(|leader| *leader != status.id)
            .and_then(|leader| list.member(leader))
            .map(|leader| leader.client.to_string());
        let view = View {
            list,
            status,
            address,
        };
        if view.status.role == Role::Leader {
            return Ok(view);
        }
        if let Some(leader) = leader_address {
            search.follow(leader);
        }
        any.get_or_insert(view);
    }
    any.ok_or(last)
}

/// The order in which servers are asked: the leader named last, else the
/// known addresses in turn, with a pause after each full round.
struct Search {
    known: Vec<String>,
    next_known: usize,
    named: Option<String>,
}

impl Search {
    fn new(addresses: &[String]) -> Search {
        Search {
            known: addresses.to_vec(),
            next_known: 0,
            named: None,
        }
    }

    /// Asks `address` next: a server named it as the leader.
    fn follow(&mut self, address: String) {
        if !self.known.contains(&address) {
            self.known.push(address.clone());
        }
        self.named = Some(address);
    }

    /// The next server to ask; `None` after a pause that ended a round.
    async fn next(&mut self) -> Option<String> {
        if let Some(named) = self.named.take() {
            return Some(named);
        }
        if self.next_known == self.known.len() {
            self.next_known = 0;
            tokio::time::sleep(ROUND_PAUSE).await;
            return None;
        }
        self.next_known += 1;
        self.known.get(self.next_known - 1).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_search_asks_a_named_leader_first_then_goes_round_pausing() {
        let mut search = Search::new(&["a".into(), "b".into()]);
        assert_eq!(search.next().await.as_deref(), Some("a"));
        search.follow("c".into());
        assert_eq!(search.next().await.as_deref(), Some("c"));
        assert_eq!(search.next().await.as_deref(), Some("b"));
        assert_eq!(search.next().await.as_deref(), Some("c"));
        let started = Instant::now();
        assert_eq!(search.next().await, None);
        assert!(started.elapsed() >= ROUND_PAUSE);
        assert_eq!(search.next().await.as_deref(), Some("a"));
        // A leader named again is not added twice.
        search.follow("a".into());
        assert_eq!(search.known.len(), 3);
    }

    #[tokio::test]
    async fn nobody_listening_is_no_leader_by_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let change = MemberRequest::Remove(skiff_node::NodeId(1));
        let refused = change_at_leader(
            None,
            std::slice::from_ref(&address),
            &change,
            Duration::from_millis(200),
        )
        .await;
        match refused {
            Err(ChangeError::NoLeader { last, .. }) => assert!(last.contains(&address), "{last}"),
            other => panic!("{other:?}"),
        }
        assert!(leader_view(None, &[address], Duration::from_millis(200))
            .await
            .is_err());
    }
}
