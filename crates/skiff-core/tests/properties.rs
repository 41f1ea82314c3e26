//! Property tests: random event sequences thrown at one machine.
//!
//! Whatever a peer or client sends, the machine must not panic (debug
//! builds also check its internal invariants after every step), and what it
//! tells the world must stay consistent:
//! term and commit never go backwards, a vote never changes within a term,
//! commit never passes the log, commits come in order and once, persistence
//! comes before sends and commits, and the durable state built from the
//! actions alone equals the machine's own state.

use proptest::prelude::*;
use skiff_core::{
    Action, AppendEntriesReq, AppendEntriesResp, Config, Entry, Event, HardState, LogIndex,
    Machine, Message, NodeId, Role, StartState, Term, TimeoutNow, VoteReq, VoteResp,
};
// What a driver would have on disk after performing the actions so far: the
// simulator's disk model, shared so that every driver of the machine in this
// workspace is checked against the same one.
use skiff_sim::durable::Durable;

fn term() -> impl Strategy<Value = Term> {
    prop_oneof![9 => (0u64..6).prop_map(Term), 1 => Just(Term(u64::MAX))]
}

fn index() -> impl Strategy<Value = LogIndex> {
    prop_oneof![9 => (0u64..8).prop_map(LogIndex), 1 => Just(LogIndex(u64::MAX))]
}

/// Node 1 is the machine under test; 2 and 3 are peers; 0 and 9 are not members.
fn sender() -> impl Strategy<Value = NodeId> {
    prop_oneof![8 => (2u64..4).prop_map(NodeId), 1 => Just(NodeId(1)), 1 => prop_oneof![Just(NodeId(0)), Just(NodeId(9))]]
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec(
        (0u64..6, "[a-c]{0,2}").prop_map(|(t, d)| Entry::new(Term(t), d)),
        0..4,
    )
    .prop_map(|mut entries| {
        // Mostly well-formed (terms not decreasing); the rest stays random.
        if entries.len() % 2 == 0 {
            entries.sort_by_key(|e| e.term);
        }
        entries
    })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (term(), sender(), index(), term(), entries(), index()).prop_map(
            |(term, leader, prev_index, prev_term, entries, commit)| {
                Message::AppendEntriesReq(AppendEntriesReq {
                    term,
                    leader,
                    prev_index,
                    prev_term,
                    entries: entries.into(),
                    commit,
                    read_round: 0,
                    epoch: 0,
                })
            }
        ),
        (term(), any::<bool>(), index()).prop_map(|(term, success, index)| {
            Message::AppendEntriesResp(AppendEntriesResp {
                term,
                success,
                index,
                read_round: 0,
                epoch: 0,
            })
        }),
        (term(), sender(), index(), term(), any::<bool>()).prop_map(
            |(term, candidate, last_index, last_term, transfer)| {
                Message::VoteReq(VoteReq {
                    term,
                    candidate,
                    last_index,
                    last_term,
                    transfer,
                })
            }
        ),
        term().prop_map(|term| Message::TimeoutNow(TimeoutNow { term })),
        (term(), any::<bool>())
            .prop_map(|(term, granted)| Message::VoteResp(VoteResp { term, granted })),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        1 => "[x-z]{1,2}".prop_map(|d| Event::Append(d.into())),
        2 => Just(Event::Timeout),
        1 => sender().prop_map(|to| Event::TransferLeadership { to }),
        6 => (sender(), message()).prop_map(|(from, message)| Event::Receive { from, message }),
    ]
}

fn start_state() -> impl Strategy<Value = StartState> {
    let log = prop::collection::vec(1u64..4, 0..5).prop_map(|mut terms| {
        terms.sort_unstable();
        terms
            .into_iter()
            .map(|t| Entry::new(Term(t), "s"))
            .collect::<Vec<_>>()
    });
    (
        log,
        0u64..3,
        prop_oneof![
            Just(Role::Follower),
            Just(Role::Candidate),
            Just(Role::Leader)
        ],
        any::<prop::sample::Index>(),
    )
        .prop_map(|(log, extra_term, role, commit_pick)| {
            let last_term = log.last().map_or(0, |e: &Entry| e.term.0);
            let term = Term(last_term + extra_term + u64::from(role != Role::Follower));
            let commit_index = LogIndex(commit_pick.index(log.len() + 1) as u64);
            let voted_for = (role != Role::Follower).then_some(NodeId(1));
            StartState {
                role: Some(role),
                hard_state: HardState { term, voted_for },
                log,
                commit_index,
                ..StartState::default()
            }
        })
}

fn machine(peers: u64, state: StartState) -> Machine {
    let mut config = Config::new(NodeId(1), (1..=peers).map(NodeId));
    config.inflight_max = 2;
    config.entries_per_message_max = 2;
    Machine::with_state(config, state).expect("generated states are valid")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_events_keep_every_promise(
        peers in 1u64..5,
        state in start_state(),
        events in prop::collection::vec(event(), 1..60),
    ) {
        let mut durable = Durable::new(state.hard_state, state.log.clone());
        let mut machine = machine(peers, state);
        let mut actions = Vec::new();
        machine.start(&mut actions);
        let mut committed = machine.commit_index();
        for event in events {
            let term_before = machine.term();
            let vote_before = machine.voted_for();
            // A node answers any sender but itself: a member it has not
            // heard of yet may lead or stand already.
            let sender = match &event {
                Event::Receive { from, .. } => Some(*from),
                _ => None,
            };
            actions.clear();
            machine.step(event, &mut actions);

            prop_assert!(machine.term() >= term_before, "term went backwards");
            if machine.term() == term_before && vote_before.is_some() {
                prop_assert_eq!(machine.voted_for(), vote_before, "vote changed within a term");
            }
            prop_assert!(machine.commit_index() >= committed, "commit went backwards");
            prop_assert!(machine.commit_index() <= machine.last_index(), "commit past the log");

            let mut seen_io = false;
            for action in &actions {
                if action.is_persistence() {
                    prop_assert!(!seen_io, "persistence after Send or Commit: {:?}", actions);
                } else if matches!(action, Action::Send { .. } | Action::Commit { .. }) {
                    seen_io = true;
                }
                let written = durable.apply(action);
                prop_assert!(written.is_ok(), "{}: {:?}", action, written);
                if let Action::Commit { result: Ok(index), .. } = action {
                    prop_assert_eq!(*index, committed.next(), "commits in order, once");
                    committed = *index;
                }
                if let Action::Send { to, .. } = action {
                    let member = to.0 >= 2 && to.0 <= peers;
                    prop_assert!(
                        to.0 != 1 && (member || Some(*to) == sender),
                        "sends only to other members, or answers its sender"
                    );
                }
            }
            prop_assert_eq!(committed, machine.commit_index(), "every commit reported");
            prop_assert_eq!(durable.hard_state(), machine.hard_state(), "durable hard state");
            prop_assert_eq!(durable.log(), &log_of(&machine)[..], "durable log");
        }
    }

    /// Restoring from what the actions persisted gives a machine with the
    /// same term, vote and log: nothing a driver persisted is lost.
    #[test]
    fn restore_from_durable_state_round_trips(
        state in start_state(),
        events in prop::collection::vec(event(), 1..40),
    ) {
        let mut durable = Durable::new(state.hard_state, state.log.clone());
        let mut machine = machine(3, state);
        let mut actions = Vec::new();
        for event in events {
            actions.clear();
            machine.step(event, &mut actions);
            for action in &actions {
                let written = durable.apply(action);
                prop_assert!(written.is_ok(), "{}: {:?}", action, written);
            }
        }
        let restored = durable.restore(machine.config().clone());
        prop_assert!(restored.is_ok(), "restore refused: {:?}", restored.err());
        let restored = restored.unwrap();
        prop_assert_eq!(restored.hard_state(), machine.hard_state());
        prop_assert_eq!(log_of(&restored), log_of(&machine));
        prop_assert_eq!(restored.role(), Role::Follower);
        prop_assert_eq!(restored.commit_index(), LogIndex(0));
    }
}

fn log_of(machine: &Machine) -> Vec<Entry> {
    machine.log().cloned().collect()
}
