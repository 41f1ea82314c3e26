//! Who is in the cluster: the voters, whose majorities elect leaders and
//! commit entries, and the learners, which receive the log but count for
//! nothing. A configuration travels in the log as an entry of kind
//! [`EntryKind::Membership`](crate::EntryKind), encoded here, so that every
//! node learns it in log order (`machine/membership.rs`).

use crate::types::NodeId;
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use std::sync::Arc;

/// One cluster configuration.
///
/// Invariants, kept by every constructor: `voters` is non-empty, both lists
/// are sorted and free of duplicates, and no node is both.
///
/// Shared behind one reference count: snapshots, messages and the
/// machine's list of configurations all hold one, and a clone copies no
/// list (nor makes every message that may carry one larger).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Membership {
    inner: Arc<Lists>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Lists {
    voters: Vec<NodeId>,
    learners: Vec<NodeId>,
    context: Bytes,
}

/// One single-server step from one configuration to the next. Each moves
/// at most one voter, so any majority of the old voters and any majority
/// of the new ones share a node (the thesis, 4.1): two leaders of one term
/// cannot both be elected, and nothing commits without both majorities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MembershipChange {
    /// Add a node as a learner: it receives the log and snapshots, and
    /// neither votes nor counts for commit.
    AddLearner(NodeId),
    /// Make a learner a voter.
    Promote(NodeId),
    /// Remove a voter or a learner. A leader that removes itself leads
    /// until the change commits, then steps down.
    Remove(NodeId),
}

impl MembershipChange {
    /// The node the change is about.
    pub fn node(&self) -> NodeId {
        match *self {
            MembershipChange::AddLearner(id)
            | MembershipChange::Promote(id)
            | MembershipChange::Remove(id) => id,
        }
    }
}

/// Why a membership change was refused or did not take effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipError {
    /// Only the leader changes the membership; retry at `leader` when known.
    NotLeader {
        /// The leader this node knows, if any.
        leader: Option<NodeId>,
    },
    /// Another change has not committed yet; one runs at a time.
    ChangeInProgress,
    /// The leader has not yet committed an entry of its own term, so the
    /// configuration it holds may not be the latest one committed (the
    /// single-server change's known pitfall): retry shortly.
    LeaderNotReady,
    /// A leadership transfer is under way; retry after it ends.
    TransferInProgress,
    /// The node is already a member (for `AddLearner`) or already a voter
    /// (for `Promote`).
    AlreadyMember,
    /// The node is not a member.
    UnknownNode,
    /// Removing the last voter would leave nobody to elect a leader.
    LastVoter,
    /// The change's entry was overwritten by another leader's before it
    /// committed: the change did not happen.
    Overwritten,
    /// A snapshot covered the change's entry before this node saw which
    /// entry committed there: it may or may not have happened.
    OutcomeUnknown,
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipError::NotLeader { leader: Some(id) } => {
                write!(f, "not the leader; the leader is node {id}")
            }
            MembershipError::NotLeader { leader: None } => {
                write!(f, "not the leader; no leader is known")
            }
            MembershipError::ChangeInProgress => {
                write!(f, "another membership change has not committed yet")
            }
            MembershipError::LeaderNotReady => write!(
                f,
                "the leader has not committed an entry of its term yet; retry shortly"
            ),
            MembershipError::TransferInProgress => {
                write!(f, "a leadership transfer is under way")
            }
            MembershipError::AlreadyMember => write!(f, "the node is already a member"),
            MembershipError::UnknownNode => write!(f, "the node is not a member"),
            MembershipError::LastVoter => write!(f, "cannot remove the last voter"),
            MembershipError::Overwritten => write!(
                f,
                "the change was overwritten by a new leader before it committed"
            ),
            MembershipError::OutcomeUnknown => write!(
                f,
                "a snapshot covered the change before its outcome was seen"
            ),
        }
    }
}

impl std::error::Error for MembershipError {}

/// Bytes that do not hold a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError;

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an encoded cluster configuration")
    }
}

impl std::error::Error for DecodeError {}

/// The encoding's first byte, so that a later layout can be told apart.
const VERSION: u8 = 1;

impl Membership {
    /// A configuration of `voters` (at least one) and `learners`, in any
    /// order; `None` if `voters` is empty or a node is named twice.
    pub fn new(
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> Option<Membership> {
        let mut voters: Vec<NodeId> = voters.into_iter().collect();
        let mut learners: Vec<NodeId> = learners.into_iter().collect();
        voters.sort_unstable();
        learners.sort_unstable();
        let unique = |list: &[NodeId]| list.windows(2).all(|pair| pair[0] != pair[1]);
        let disjoint = !voters.iter().any(|v| learners.binary_search(v).is_ok());
        (!voters.is_empty() && unique(&voters) && unique(&learners) && disjoint).then_some(
            Membership {
                inner: Arc::new(Lists {
                    voters,
                    learners,
                    context: Bytes::new(),
                }),
            },
        )
    }

    /// The same configuration carrying `context`: bytes the machine keeps
    /// with it and never reads, for the driver's own record of the members
    /// (their addresses, say).
    pub fn with_context(mut self, context: Bytes) -> Membership {
        Arc::make_mut(&mut self.inner).context = context;
        self
    }

    /// The voters, in id order.
    pub fn voters(&self) -> &[NodeId] {
        &self.inner.voters
    }

    /// The learners, in id order.
    pub fn learners(&self) -> &[NodeId] {
        &self.inner.learners
    }

    /// The driver's bytes (see [`Membership::with_context`]).
    pub fn context(&self) -> &Bytes {
        &self.inner.context
    }

    /// Whether `id` votes.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.inner.voters.binary_search(&id).is_ok()
    }

    /// Whether `id` is a learner.
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.inner.learners.binary_search(&id).is_ok()
    }

    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Every member, voters first.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.inner
            .voters
            .iter()
            .chain(self.inner.learners.iter())
            .copied()
    }

    /// The number of voters that make a majority.
    pub fn quorum(&self) -> usize {
        self.inner.voters.len() / 2 + 1
    }

    /// The configuration after `change`, or why it cannot be made.
    pub fn apply(&self, change: MembershipChange) -> Result<Membership, MembershipError> {
        let mut next = self.clone();
        match change {
            MembershipChange::AddLearner(id) => {
                if self.contains(id) {
                    return Err(MembershipError::AlreadyMember);
                }
                insert_sorted(&mut Arc::make_mut(&mut next.inner).learners, id);
            }
            MembershipChange::Promote(id) => {
                if self.is_voter(id) {
                    return Err(MembershipError::AlreadyMember);
                }
                if !self.is_learner(id) {
                    return Err(MembershipError::UnknownNode);
                }
                let lists = Arc::make_mut(&mut next.inner);
                lists.learners.retain(|l| *l != id);
                insert_sorted(&mut lists.voters, id);
            }
            MembershipChange::Remove(id) => {
                if self.is_voter(id) {
                    if self.inner.voters.len() == 1 {
                        return Err(MembershipError::LastVoter);
                    }
                    Arc::make_mut(&mut next.inner).voters.retain(|v| *v != id);
                } else if self.is_learner(id) {
                    Arc::make_mut(&mut next.inner).learners.retain(|l| *l != id);
                } else {
                    return Err(MembershipError::UnknownNode);
                }
            }
        }
        Ok(next)
    }

    /// The configuration as a membership entry's data: a version byte,
    /// then the voters, the learners and the context, each a
    /// little-endian `u32` count followed by its items (ids as `u64`).
    pub fn encode(&self) -> Bytes {
        let ids = (self.inner.voters.len() + self.inner.learners.len()) * 8;
        let mut out = BytesMut::with_capacity(1 + 12 + ids + self.inner.context.len());
        out.put_u8(VERSION);
        for list in [&self.inner.voters, &self.inner.learners] {
            out.put_u32_le(list.len() as u32);
            for id in list.iter() {
                out.put_u64_le(id.0);
            }
        }
        out.put_u32_le(self.inner.context.len() as u32);
        out.put_slice(&self.inner.context);
        out.freeze()
    }

    /// Reads what [`Membership::encode`] wrote. Any other bytes (a peer's
    /// garbage included) are an error, never a panic or a large allocation.
    pub fn decode(bytes: &[u8]) -> Result<Membership, DecodeError> {
        let mut reader = Reader(bytes);
        if reader.u8()? != VERSION {
            return Err(DecodeError);
        }
        let voters = reader.ids()?;
        let learners = reader.ids()?;
        let length = reader.u32()? as usize;
        let context = reader.take(length)?;
        if !reader.0.is_empty() {
            return Err(DecodeError);
        }
        let membership =
            Membership::new(voters.iter().copied(), learners.iter().copied()).ok_or(DecodeError)?;
        // Sorted on the wire too: one configuration, one encoding.
        if membership.inner.voters != voters || membership.inner.learners != learners {
            return Err(DecodeError);
        }
        Ok(membership.with_context(Bytes::copy_from_slice(context)))
    }
}

impl fmt::Display for Membership {
    /// `voters=[1,2,3] learners=[4]`, as scenarios and logs write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ids: &[NodeId]| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(
            f,
            "voters=[{}] learners=[{}]",
            list(&self.inner.voters),
            list(&self.inner.learners)
        )
    }
}

fn insert_sorted(list: &mut Vec<NodeId>, id: NodeId) {
    if let Err(position) = list.binary_search(&id) {
        list.insert(position, id);
    }
}

/// A cursor over encoded bytes whose every read checks the length first.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes(
            bytes.try_into().map_err(|_| DecodeError)?,
        ))
    }

    fn ids(&mut self) -> Result<Vec<NodeId>, DecodeError> {
        let count = self.u32()? as usize;
        // The count is checked against the bytes present before anything
        // is allocated for it.
        let bytes = self.take(count.checked_mul(8).ok_or(DecodeError)?)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|chunk| {
                let mut id = [0u8; 8];
                id.copy_from_slice(chunk);
                NodeId(u64::from_le_bytes(id))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u64]) -> Vec<NodeId> {
        list.iter().copied().map(NodeId).collect()
    }

    fn config(voters: &[u64], learners: &[u64]) -> Membership {
        Membership::new(ids(voters), ids(learners)).unwrap()
    }

    #[test]
    fn encoding_round_trips() {
        let m = config(&[3, 1, 2], &[9]).with_context(Bytes::from_static(b"addresses"));
        assert_eq!(m.voters(), ids(&[1, 2, 3]).as_slice());
        assert_eq!(Membership::decode(&m.encode()), Ok(m.clone()));
        assert_eq!(m.to_string(), "voters=[1,2,3] learners=[9]");
    }

    #[test]
    fn garbage_does_not_decode() {
        let good = config(&[1, 2], &[3]).encode();
        for cut in 0..good.len() {
            assert_eq!(Membership::decode(&good[..cut]), Err(DecodeError), "{cut}");
        }
        let mut extra = good.to_vec();
        extra.push(0);
        assert_eq!(Membership::decode(&extra), Err(DecodeError));
        // A huge count with no bytes behind it allocates nothing.
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Membership::decode(&huge), Err(DecodeError));
        // Unsorted, duplicated, overlapping or voterless lists are refused.
        for (voters, learners) in [
            (&[2u64, 1][..], &[][..]),
            (&[1, 1], &[]),
            (&[1], &[1]),
            (&[], &[1]),
        ] {
            let mut bytes = vec![VERSION];
            for list in [voters, learners] {
                bytes.extend_from_slice(&(list.len() as u32).to_le_bytes());
                for id in list {
                    bytes.extend_from_slice(&id.to_le_bytes());
                }
            }
            bytes.extend_from_slice(&0u32.to_le_bytes());
            assert_eq!(
                Membership::decode(&bytes),
                Err(DecodeError),
                "{voters:?} {learners:?}"
            );
        }
    }

    #[test]
    fn changes_move_one_node() {
        let m = config(&[1, 2, 3], &[]);
        let added = m.apply(MembershipChange::AddLearner(NodeId(4))).unwrap();
        assert_eq!(added, config(&[1, 2, 3], &[4]));
        let promoted = added.apply(MembershipChange::Promote(NodeId(4))).unwrap();
        assert_eq!(promoted, config(&[1, 2, 3, 4], &[]));
        let removed = promoted.apply(MembershipChange::Remove(NodeId(1))).unwrap();
        assert_eq!(removed, config(&[2, 3, 4], &[]));
        assert_eq!(removed.quorum(), 2);
    }

    #[test]
    fn bad_changes_are_named() {
        let m = config(&[1], &[2]);
        use MembershipChange::*;
        assert_eq!(
            m.apply(AddLearner(NodeId(1))),
            Err(MembershipError::AlreadyMember)
        );
        assert_eq!(
            m.apply(AddLearner(NodeId(2))),
            Err(MembershipError::AlreadyMember)
        );
        assert_eq!(
            m.apply(Promote(NodeId(1))),
            Err(MembershipError::AlreadyMember)
        );
        assert_eq!(
            m.apply(Promote(NodeId(3))),
            Err(MembershipError::UnknownNode)
        );
        assert_eq!(m.apply(Remove(NodeId(1))), Err(MembershipError::LastVoter));
        assert_eq!(
            m.apply(Remove(NodeId(3))),
            Err(MembershipError::UnknownNode)
        );
        assert_eq!(m.apply(Remove(NodeId(2))), Ok(config(&[1], &[])));
    }
}
