//! What a driver feeds into the machine.

use crate::membership::MembershipChange;
use crate::message::Message;
use crate::types::{LogIndex, NodeId, ReadId};
use bytes::Bytes;

/// An input to [`Machine::step`](crate::Machine::step).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The layer above asks to replicate `data`. Answered by a
    /// [`Action::Commit`](crate::Action::Commit) once it commits, or at once
    /// with an error when this node is not the leader.
    Append(Bytes),
    /// The alarm last requested by [`Action::Alarm`](crate::Action::Alarm) fired.
    Timeout,
    /// The application's state through `index` is captured in a durable
    /// snapshot (section 7): the machine drops its log through `index`,
    /// keeping the term at `index` for the consistency check, and answers
    /// with [`Action::LogCompact`](crate::Action::LogCompact). Ignored when
    /// `index` is past the commit index (a snapshot holds committed state
    /// only) or not past the current snapshot.
    SnapshotTaken {
        /// The last index the snapshot covers.
        index: LogIndex,
    },
    /// The driver's persistence (a write or sync it was asked for) has not
    /// completed for longer than it allows: the disk may hang. A leader
    /// steps down ([`Action::SteppedDown`](crate::Action::SteppedDown)) so
    /// that its heartbeats stop and another node takes over; until
    /// [`Event::StorageRecovered`], the node stands for no election and
    /// grants no (pre-)vote, which it could not make durable.
    StorageStalled,
    /// The persistence that stalled has completed: the node is an ordinary
    /// follower again.
    StorageRecovered,
    /// The layer above asks for a linearizable read (the thesis, 6.4).
    /// Answered exactly once, possibly many steps later: by
    /// [`Action::ReadReady`](crate::Action::ReadReady) with the index
    /// through which the application must have applied the log before it
    /// answers, or by [`Action::ReadFailed`](crate::Action::ReadFailed).
    /// A leader confirms with a round of heartbeats that it still leads
    /// (one round serves every read that arrived before it began); a
    /// follower asks its leader for the index.
    Read {
        /// The driver's name for this read.
        id: ReadId,
        /// The driver's monotonic clock in ms. Only lease reads
        /// ([`Config::lease_read_margin_ms`](crate::Config)) use it; it
        /// must never go backwards.
        now_ms: u64,
    },
    /// The layer above asks the leader to hand its office to peer `to`
    /// (the thesis, 3.10). Answered exactly once by
    /// [`Action::TransferEnded`](crate::Action::TransferEnded). The leader
    /// refuses appends meanwhile, brings `to`'s log up to date, then sends
    /// it [`TimeoutNow`](crate::message::TimeoutNow); it gives up after an
    /// election timeout if `to` has not taken office by then.
    TransferLeadership {
        /// The peer to hand leadership to.
        to: NodeId,
    },
    /// The layer above asks the leader to change the cluster's membership
    /// by one node (`machine/membership.rs`). Answered exactly once by
    /// [`Action::MembershipChangeEnded`](crate::Action::MembershipChangeEnded):
    /// at once when refused, otherwise when the change's entry commits or
    /// is lost.
    ChangeMembership {
        /// The change.
        change: MembershipChange,
        /// The new configuration's context
        /// ([`Membership::with_context`](crate::Membership::with_context));
        /// `None` keeps the current one.
        context: Option<Bytes>,
    },
    /// A message arrived from peer `from`.
    Receive {
        /// The peer that sent the message.
        from: NodeId,
        /// The message itself.
        message: Message,
    },
}
