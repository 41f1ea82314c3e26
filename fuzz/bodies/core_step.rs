//! Fuzz body `core_step`: one `skiff_core::Machine`, started in a valid
//! state the input picks (with or without a snapshot), fed an arbitrary
//! sequence of appends, timeouts, snapshots taken and messages (snapshots
//! offered and answered included) from any id with any terms and indices,
//! and checked after every step against what Raft promises: term never
//! back, one vote per term, commit never back nor past the log, a batch's
//! persistence before its sends and commits, no truncation at or below the
//! commit index, no compaction past it, committed entries never changed,
//! and the persisted state (snapshot and log after it) equal to the
//! machine's. The core's own debug assertions run too (fuzz builds and
//! tests keep debug assertions on).

use arbitrary::{Result, Unstructured};
use skiff_core::{
    Action, AppendEntriesReq, AppendEntriesResp, Bytes, Config, Entry, Event, HardState,
    InstallSnapshotReq, InstallSnapshotResp, LogIndex, Machine, Membership, Message, NodeId,
    ReadId, ReadIndexReq, ReadIndexResp, Role, SnapshotMeta, StartState, Term, TimeoutNow, VoteReq,
    VoteResp,
};
use std::collections::BTreeMap;

/// Runs one input.
pub fn run(data: &[u8]) {
    // Running out of input just ends the sequence.
    let _ = drive(&mut Unstructured::new(data));
}

fn drive(input: &mut Unstructured<'_>) -> Result<()> {
    let peers = input.int_in_range(1..=5)?;
    let state = start_state(input, peers)?;
    let mut config = Config::new(NodeId(1), (1..=peers).map(NodeId));
    config.inflight_max = 2;
    config.entries_per_message_max = 2;
    config.seed = input.arbitrary()?;
    config.pre_vote = input.arbitrary()?;
    config.check_quorum = input.arbitrary()?;
    let Ok(mut machine) = Machine::with_state(config, state.clone()) else {
        return Ok(());
    };
    let mut promises = Promises::new(&machine, state);
    let mut actions = Vec::new();
    machine.start(&mut actions);
    promises.check(&machine, &actions);
    while !input.is_empty() {
        let event = event(input, &machine, peers)?;
        actions.clear();
        machine.step(event, &mut actions);
        promises.check(&machine, &actions);
    }
    Ok(())
}

/// What the machine has promised so far, and the durable state its actions
/// built.
pub struct Promises {
    term: Term,
    votes: BTreeMap<Term, NodeId>,
    commit: LogIndex,
    /// The term of every committed index seen so far: a committed entry
    /// never changes, whether it stays in the log or a snapshot covers it.
    committed: BTreeMap<LogIndex, Term>,
    durable_snapshot: SnapshotMeta,
    /// The persisted log after `durable_snapshot`.
    durable_log: Vec<Entry>,
    durable_hard_state: HardState,
}

impl Promises {
    /// Promises of a machine just made from `state`.
    pub fn new(machine: &Machine, state: StartState) -> Promises {
        let commit = machine.commit_index();
        let mut promises = Promises {
            term: machine.term(),
            votes: BTreeMap::new(),
            commit,
            committed: BTreeMap::new(),
            durable_snapshot: state.snapshot,
            durable_log: state.log,
            durable_hard_state: state.hard_state,
        };
        promises.record_committed(machine);
        promises
    }

    /// Records (and checks) the terms of the committed entries `machine`
    /// still holds, and of its snapshot.
    fn record_committed(&mut self, machine: &Machine) {
        let snapshot = machine.snapshot();
        let first = snapshot.index.next();
        let held = machine
            .log()
            .take((machine.commit_index().0 + 1).saturating_sub(first.0) as usize);
        let terms = std::iter::once((snapshot.index, snapshot.term))
            .filter(|(index, _)| index.0 > 0)
            .chain(
                held.enumerate()
                    .map(|(offset, e)| (LogIndex(first.0 + offset as u64), e.term)),
            );
        for (index, term) in terms {
            let agreed = *self.committed.entry(index).or_insert(term);
            assert_eq!(agreed, term, "the committed entry at {index} changed");
        }
    }

    /// Checks `machine` after a step that answered with `batch`.
    pub fn check(&mut self, machine: &Machine, batch: &[Action]) {
        assert!(machine.term() >= self.term, "term went back");
        if machine.storage_stalled() {
            assert_eq!(
                machine.role(),
                Role::Follower,
                "a stalled node leads or stands"
            );
        }
        if machine.hears_leader() && machine.role() != Role::Leader {
            assert!(machine.leader().is_some(), "a lease without a leader");
        }
        if machine.transfer_target().is_some() {
            assert_eq!(
                machine.role(),
                Role::Leader,
                "a transfer outside leadership"
            );
        }
        self.term = machine.term();
        if let Some(vote) = machine.voted_for() {
            let first = *self.votes.entry(self.term).or_insert(vote);
            assert_eq!(first, vote, "two votes in term {}", self.term);
        }

        let mut reported = self.commit;
        let mut seen_io = false;
        for action in batch {
            if action.is_persistence() {
                assert!(!seen_io, "persistence after a send or commit: {batch:?}");
            }
            match action {
                Action::Send { .. } | Action::Commit { .. } => seen_io = true,
                Action::Alarm { .. }
                | Action::Rejected { .. }
                | Action::SteppedDown { .. }
                | Action::ReadReady { .. }
                | Action::ReadFailed { .. }
                | Action::TransferEnded { .. }
                | Action::MembershipChangeEnded { .. } => {}
                Action::LogCompact { through, .. } => {
                    let base = self.durable_snapshot.index;
                    assert!(
                        *through > base,
                        "compaction through {through}, not past {base}"
                    );
                    assert!(
                        *through <= machine.commit_index(),
                        "compaction past the commit"
                    );
                    let kept = (through.0 - base.0) as usize;
                    assert!(kept <= self.durable_log.len(), "compaction past the log");
                    let term = self.durable_log[kept - 1].term;
                    self.durable_log.drain(..kept);
                    self.durable_snapshot = SnapshotMeta {
                        index: *through,
                        term,
                    };
                }
                Action::SnapshotInstall { snapshot, .. } => {
                    assert!(
                        snapshot.index > self.commit,
                        "installed snapshot {snapshot} is not past the commit {}",
                        self.commit
                    );
                    self.durable_snapshot = *snapshot;
                    self.durable_log.clear();
                    reported = snapshot.index;
                }
                Action::StateStore { term, voted_for } => {
                    self.durable_hard_state = HardState {
                        term: *term,
                        voted_for: *voted_for,
                    }
                }
                Action::LogTruncate { from } => {
                    let base = self.durable_snapshot.index.0;
                    assert!(
                        *from > self.commit,
                        "truncation from {from} at or below the commit"
                    );
                    assert!(
                        from.0 - base <= self.durable_log.len() as u64,
                        "truncation past the log"
                    );
                    self.durable_log.truncate((from.0 - base) as usize - 1);
                }
                Action::LogStore { index, .. } => {
                    assert_eq!(
                        index.0,
                        self.durable_snapshot.index.0 + self.durable_log.len() as u64 + 1,
                        "store not at the end"
                    );
                    self.durable_log
                        .extend(action.stored_entries().map(|(_, e)| e.clone()));
                }
            }
            if let Action::Commit {
                result: Ok(index), ..
            } = action
            {
                assert_eq!(*index, reported.next(), "commits reported in order, once");
                reported = *index;
            }
        }

        let commit = machine.commit_index();
        assert!(
            commit >= self.commit,
            "commit went back from {} to {commit}",
            self.commit
        );
        assert!(
            commit <= machine.last_index(),
            "commit {commit} past the log"
        );
        assert_eq!(reported, commit, "every commit reported");
        self.record_committed(machine);
        self.commit = commit;
        assert_eq!(
            self.durable_snapshot,
            machine.snapshot(),
            "the persisted snapshot is not the machine's"
        );
        let log: Vec<Entry> = machine.log().cloned().collect();
        assert_eq!(
            self.durable_log, log,
            "the persisted log is not the machine's"
        );
        assert_eq!(
            self.durable_hard_state,
            machine.hard_state(),
            "persisted hard state"
        );
    }
}

fn start_state(input: &mut Unstructured<'_>, peers: u64) -> Result<StartState> {
    let mut terms: Vec<u64> = (0..input.int_in_range(0..=5)?)
        .map(|_| input.int_in_range(1..=3))
        .collect::<Result<_>>()?;
    terms.sort_unstable();
    let log: Vec<Entry> = terms.iter().map(|&t| Entry::new(Term(t), "s")).collect();
    // Sometimes the first entries are covered by a snapshot.
    let covered = input.int_in_range(0..=terms.len())?;
    let snapshot = match covered {
        0 => SnapshotMeta::default(),
        _ => SnapshotMeta {
            index: LogIndex(covered as u64),
            term: Term(terms[covered - 1]),
        },
    };
    let role = *input.choose(&[
        Role::Follower,
        Role::Candidate,
        Role::Leader,
        Role::PreCandidate,
    ])?;
    let leading = matches!(role, Role::Candidate | Role::Leader);
    let term = terms.last().copied().unwrap_or(0) + input.int_in_range(0..=2)? + u64::from(leading);
    let voted_for = if leading {
        Some(NodeId(1))
    } else {
        input
            .arbitrary::<bool>()?
            .then_some(NodeId(input.int_in_range(1..=peers)?))
    };
    Ok(StartState {
        role: Some(role),
        hard_state: HardState {
            term: Term(term),
            voted_for,
        },
        commit_index: LogIndex(input.int_in_range(covered as u64..=log.len() as u64)?),
        snapshot,
        log: log[covered..].to_vec(),
        membership: None,
        damaged: input.ratio(1, 8)?,
    })
}

fn event(input: &mut Unstructured<'_>, machine: &Machine, peers: u64) -> Result<Event> {
    Ok(match input.int_in_range(0..=11)? {
        0 => Event::Timeout,
        11 => {
            let node = NodeId(input.int_in_range(0..=peers + 1)?);
            let change = match input.int_in_range(0..=2)? {
                0 => skiff_core::MembershipChange::AddLearner(node),
                1 => skiff_core::MembershipChange::Promote(node),
                _ => skiff_core::MembershipChange::Remove(node),
            };
            Event::ChangeMembership {
                change,
                context: None,
            }
        }
        10 => Event::TransferLeadership {
            to: NodeId(input.int_in_range(0..=peers + 1)?),
        },
        9 => Event::Read {
            id: ReadId(input.int_in_range(0..=3)?),
            now_ms: input.arbitrary()?,
        },
        7 => Event::StorageStalled,
        8 => Event::StorageRecovered,
        6 => Event::SnapshotTaken {
            index: index_near(input, machine.commit_index())?,
        },
        1 => {
            let len = input.int_in_range(0..=3)?;
            Event::Append(Bytes::copy_from_slice(input.bytes(len)?))
        }
        _ => Event::Receive {
            // Ids 0 and peers + 1 are strangers; 1 is the machine itself.
            from: NodeId(input.int_in_range(0..=peers + 1)?),
            message: message(input, machine, peers)?,
        },
    })
}

fn message(input: &mut Unstructured<'_>, machine: &Machine, peers: u64) -> Result<Message> {
    let term = term_near(input, machine.term())?;
    let sender = NodeId(input.int_in_range(0..=peers + 1)?);
    Ok(match input.int_in_range(0..=10)? {
        10 => Message::TimeoutNow(TimeoutNow { term }),
        8 => Message::ReadIndexReq(ReadIndexReq {
            term,
            request: input.int_in_range(0..=3)?,
        }),
        9 => Message::ReadIndexResp(ReadIndexResp {
            term,
            request: input.int_in_range(0..=3)?,
            success: input.arbitrary()?,
            index: index_near(input, machine.commit_index())?,
        }),
        6 => Message::PreVoteReq(VoteReq {
            term,
            candidate: sender,
            last_index: index_near(input, machine.last_index())?,
            last_term: term_near(input, machine.last_term())?,
            transfer: input.arbitrary()?,
        }),
        7 => Message::PreVoteResp(VoteResp {
            term,
            granted: input.arbitrary()?,
        }),
        4 => Message::InstallSnapshotReq(InstallSnapshotReq {
            term,
            leader: sender,
            snapshot: SnapshotMeta {
                index: index_near(input, machine.last_index())?,
                term: term_near(input, machine.last_term())?,
            },
            membership: membership(input)?,
            epoch: input.int_in_range(0..=3)?,
        }),
        5 => Message::InstallSnapshotResp(InstallSnapshotResp {
            term,
            index: index_near(input, machine.snapshot().index)?,
            epoch: input.int_in_range(0..=3)?,
        }),
        0 => {
            let entries = (0..input.int_in_range(0..=3)?)
                .map(|_| {
                    let term = term_near(input, term)?;
                    Ok(match input.int_in_range(0..=7)? {
                        // A configuration, or bytes that claim to be one.
                        0 => Entry::membership(term, &membership(input)?),
                        1 => {
                            let len = input.int_in_range(0..=12)?;
                            Entry {
                                term,
                                kind: skiff_core::EntryKind::Membership,
                                data: Bytes::copy_from_slice(input.bytes(len)?),
                            }
                        }
                        _ => Entry::new(term, "e"),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Message::AppendEntriesReq(AppendEntriesReq {
                term,
                leader: sender,
                prev_index: index_near(input, machine.last_index())?,
                prev_term: term_near(input, machine.last_term())?,
                entries: entries.into(),
                commit: index_near(input, machine.commit_index())?,
                read_round: input.int_in_range(0..=3)?,
                epoch: input.int_in_range(0..=3)?,
            })
        }
        1 => Message::AppendEntriesResp(AppendEntriesResp {
            term,
            success: input.arbitrary()?,
            index: index_near(input, machine.last_index())?,
            read_round: input.int_in_range(0..=3)?,
            epoch: input.int_in_range(0..=3)?,
        }),
        2 => Message::VoteReq(VoteReq {
            term,
            candidate: sender,
            last_index: index_near(input, machine.last_index())?,
            last_term: term_near(input, machine.last_term())?,
            transfer: input.arbitrary()?,
        }),
        _ => Message::VoteResp(VoteResp {
            term,
            granted: input.arbitrary()?,
        }),
    })
}

/// A configuration of nodes 1 to 4 (the machine under test is node 1).
fn membership(input: &mut Unstructured<'_>) -> Result<Membership> {
    let mut voters = Vec::new();
    let mut learners = Vec::new();
    for id in 1..=4 {
        match input.int_in_range(0..=2)? {
            0 => voters.push(NodeId(id)),
            1 => learners.push(NodeId(id)),
            _ => {}
        }
    }
    if voters.is_empty() {
        voters.push(NodeId(2));
        learners.retain(|l| *l != NodeId(2));
    }
    Ok(Membership::new(voters, learners).expect("distinct ids, a voter"))
}

/// Mostly a term close to `near`, where the interesting cases are;
/// sometimes any term at all.
fn term_near(input: &mut Unstructured<'_>, near: Term) -> Result<Term> {
    Ok(Term(number_near(input, near.0)?))
}

fn index_near(input: &mut Unstructured<'_>, near: LogIndex) -> Result<LogIndex> {
    Ok(LogIndex(number_near(input, near.0)?))
}

fn number_near(input: &mut Unstructured<'_>, near: u64) -> Result<u64> {
    Ok(match input.int_in_range(0..=7)? {
        0 => input.arbitrary()?,
        offset => near.saturating_add(offset).saturating_sub(3),
    })
}
