//! Fuzz body `core_step`: one `skiff_core::Machine`, started in a valid
//! state the input picks, fed an arbitrary sequence of appends, timeouts
//! and messages from any id with any terms and indices, and checked after
//! every step against what Raft promises: term never back, one vote per
//! term, commit never back nor past the log, a batch's persistence before
//! its sends and commits, no truncation at or below the commit index,
//! committed entries never changed, and the persisted state equal to the
//! machine's. The core's own debug assertions run too (fuzz builds and
//! tests keep debug assertions on).

use arbitrary::{Result, Unstructured};
use skiff_core::{
    Action, AppendEntriesReq, AppendEntriesResp, Bytes, Config, Entry, Event, HardState, LogIndex,
    Machine, Message, NodeId, Role, StartState, Term, VoteReq, VoteResp,
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
    committed: Vec<Entry>,
    durable_log: Vec<Entry>,
    durable_hard_state: HardState,
}

impl Promises {
    /// Promises of a machine just made from `state`.
    pub fn new(machine: &Machine, state: StartState) -> Promises {
        let commit = state.commit_index;
        Promises {
            term: machine.term(),
            votes: BTreeMap::new(),
            commit,
            committed: state.log[..commit.0 as usize].to_vec(),
            durable_log: state.log,
            durable_hard_state: state.hard_state,
        }
    }

    /// Checks `machine` after a step that answered with `batch`.
    pub fn check(&mut self, machine: &Machine, batch: &[Action]) {
        assert!(machine.term() >= self.term, "term went back");
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
                Action::Alarm { .. } | Action::Rejected { .. } => {}
                Action::LogCompact { .. } | Action::SnapshotInstall { .. } => {
                    panic!("no snapshot event was fed, yet the machine acted on one: {action}")
                }
                Action::StateStore { term, voted_for } => {
                    self.durable_hard_state = HardState {
                        term: *term,
                        voted_for: *voted_for,
                    }
                }
                Action::LogTruncate { from } => {
                    assert!(
                        *from > self.commit,
                        "truncation from {from} at or below the commit"
                    );
                    assert!(
                        from.0 as usize <= self.durable_log.len(),
                        "truncation past the log"
                    );
                    self.durable_log.truncate(from.0 as usize - 1);
                }
                Action::LogStore { index, .. } => {
                    assert_eq!(
                        index.0,
                        self.durable_log.len() as u64 + 1,
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
        let log: Vec<Entry> = machine.log().cloned().collect();
        assert!(
            log.starts_with(&self.committed),
            "a committed entry changed"
        );
        self.committed = log[..commit.0 as usize].to_vec();
        self.commit = commit;
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
    let role = *input.choose(&[Role::Follower, Role::Candidate, Role::Leader])?;
    let leading = role != Role::Follower;
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
        commit_index: LogIndex(input.int_in_range(0..=log.len() as u64)?),
        snapshot: Default::default(),
        log,
        damaged: input.ratio(1, 8)?,
    })
}

fn event(input: &mut Unstructured<'_>, machine: &Machine, peers: u64) -> Result<Event> {
    Ok(match input.int_in_range(0..=5)? {
        0 => Event::Timeout,
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
    Ok(match input.int_in_range(0..=3)? {
        0 => {
            let entries = (0..input.int_in_range(0..=3)?)
                .map(|_| Ok(Entry::new(term_near(input, term)?, "e")))
                .collect::<Result<Vec<_>>>()?;
            Message::AppendEntriesReq(AppendEntriesReq {
                term,
                leader: sender,
                prev_index: index_near(input, machine.last_index())?,
                prev_term: term_near(input, machine.last_term())?,
                entries: entries.into(),
                commit: index_near(input, machine.commit_index())?,
            })
        }
        1 => Message::AppendEntriesResp(AppendEntriesResp {
            term,
            success: input.arbitrary()?,
            index: index_near(input, machine.last_index())?,
        }),
        2 => Message::VoteReq(VoteReq {
            term,
            candidate: sender,
            last_index: index_near(input, machine.last_index())?,
            last_term: term_near(input, machine.last_term())?,
        }),
        _ => Message::VoteResp(VoteResp {
            term,
            granted: input.arbitrary()?,
        }),
    })
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
