//! Every checker fires on a hand-made history that breaks its rule, and
//! stays quiet on the same history without the fault: a checker that cannot
//! fail checks nothing.

use skiff_core::{
    Action, AppendEntriesReq, AppendEntriesResp, Bytes, CommitError, Entry, HardState, LogIndex,
    Message, NodeId, Role, SnapshotMeta, Term, VoteReq, VoteResp,
};
use skiff_sim::app::{AppState, Snapshot};
use skiff_sim::checker::{snapshot_state, Checkers, Failure, Leadership, NodeView, Rule};
use skiff_sim::durable::Durable;

/// A hand-driven cluster: disks, and each node's role as the history says.
struct History {
    checkers: Checkers,
    disks: Vec<Durable>,
    roles: Vec<Role>,
    /// The nodes hold leaders' leases (`History::leading`).
    leases: bool,
}

impl History {
    fn new(nodes: usize) -> History {
        History {
            checkers: Checkers::new(nodes),
            disks: vec![Durable::default(); nodes],
            roles: vec![Role::Follower; nodes],
            leases: false,
        }
    }

    /// The view of node `id` as its disk and role say (a faithful machine).
    fn view(&self, id: u64) -> NodeView {
        let disk = &self.disks[id as usize - 1];
        NodeView {
            role: self.roles[id as usize - 1],
            term: disk.hard_state().term,
            hard_state: disk.hard_state(),
            last_index: disk.last_index(),
            last_term: disk.last_term(),
            snapshot: disk.snapshot(),
            // A follower of a history with leases heard its leader.
            hears_leader: self.leases && self.roles[id as usize - 1] == Role::Follower,
        }
    }

    /// Node `id` performs `actions` as one batch, then plays `role`.
    fn batch(&mut self, id: u64, actions: &[Action], role: Role) -> Result<(), Failure> {
        self.batch_received(id, None, actions, role)
    }

    fn batch_received(
        &mut self,
        id: u64,
        received: Option<Term>,
        actions: &[Action],
        role: Role,
    ) -> Result<(), Failure> {
        self.batch_stepping(id, received, None, actions, role)
    }

    /// A history whose nodes, all at `term`, run PreVote and CheckQuorum,
    /// with an election timeout of 150 ms and heartbeats every 50 ms.
    fn leading(nodes: usize, term: u64) -> History {
        let mut history = History::new(nodes);
        for id in 1..=nodes as u64 {
            history.fill(id, term, &[]);
        }
        history.checkers = Checkers::new(nodes).with_leadership(Leadership {
            pre_vote: true,
            check_quorum: true,
            election_timeout_us: 150_000,
            heartbeat_us: 50_000,
        });
        history.leases = true;
        history
    }

    /// Node `id` steps `input` at `now_ms`, performs `actions`, then plays `role`.
    fn step(
        &mut self,
        id: u64,
        now_ms: u64,
        input: Stepped,
        actions: &[Action],
        role: Role,
    ) -> Result<(), Failure> {
        self.checkers.set_now(now_ms * 1000);
        self.batch_stepping(id, None, Some(input), actions, role)
    }

    fn batch_stepping(
        &mut self,
        id: u64,
        received: Option<Term>,
        input: Option<Stepped>,
        actions: &[Action],
        role: Role,
    ) -> Result<(), Failure> {
        let node = NodeId(id);
        let before = self.view(id);
        self.checkers.begin_batch(node, before, received);
        match input {
            Some(Stepped::Timeout) => self.checkers.timing_out(),
            Some(Stepped::Receive(from, message)) => {
                self.checkers.receiving(NodeId(from), &message)
            }
            None => {}
        }
        for action in actions {
            self.checkers
                .action(node, action, &self.disks[id as usize - 1])?;
            self.disks[id as usize - 1]
                .apply(action)
                .expect("the checkers pass only writes the disk can perform");
        }
        self.roles[id as usize - 1] = role;
        let after = self.view(id);
        self.checkers
            .end_batch(node, after, &self.disks[id as usize - 1])
    }

    /// Node `id` stores `entries` (term, data) from index 1 in term `term`.
    fn fill(&mut self, id: u64, term: u64, entries: &[(u64, &'static str)]) {
        let mut actions = vec![state(term, None)];
        actions.extend(
            entries
                .iter()
                .enumerate()
                .map(|(i, (t, d))| store(i as u64 + 1, *t, d)),
        );
        self.batch(id, &actions, Role::Follower)
            .expect("a faithful fill");
    }
}

/// What a node steps, in [`History::step`].
enum Stepped {
    Timeout,
    Receive(u64, Message),
}

fn heartbeat(term: u64, leader: u64) -> Stepped {
    Stepped::Receive(
        leader,
        Message::AppendEntriesReq(AppendEntriesReq {
            term: Term(term),
            leader: NodeId(leader),
            prev_index: LogIndex(0),
            prev_term: Term(0),
            entries: Default::default(),
            commit: LogIndex(0),
            read_round: 0,
            epoch: 0,
        }),
    )
}

fn vote_req(term: u64, candidate: u64) -> Stepped {
    Stepped::Receive(
        candidate,
        Message::VoteReq(VoteReq {
            term: Term(term),
            candidate: NodeId(candidate),
            last_index: LogIndex(0),
            last_term: Term(0),
            transfer: false,
        }),
    )
}

fn vote(term: u64, granted: bool) -> Message {
    Message::VoteResp(VoteResp {
        term: Term(term),
        granted,
    })
}

fn pre_vote(term: u64, granted: bool) -> Message {
    Message::PreVoteResp(VoteResp {
        term: Term(term),
        granted,
    })
}

fn state(term: u64, vote: Option<u64>) -> Action {
    Action::StateStore {
        term: Term(term),
        voted_for: vote.map(NodeId),
    }
}

fn store(index: u64, term: u64, data: &'static str) -> Action {
    Action::LogStore {
        index: LogIndex(index),
        entries: Entry::new(Term(term), data).into(),
    }
}

fn commit(index: u64, data: &'static str) -> Action {
    Action::Commit {
        data: Bytes::from(data),
        result: Ok(LogIndex(index)),
    }
}

fn overwritten(index: u64, data: &'static str) -> Action {
    Action::Commit {
        data: Bytes::from(data),
        result: Err(CommitError::Overwritten {
            index: LogIndex(index),
            term: skiff_core::Term(1),
        }),
    }
}

fn send(to: u64, message: Message) -> Action {
    Action::Send {
        to: NodeId(to),
        message,
    }
}

fn rule(result: Result<(), Failure>) -> Option<Rule> {
    result.err().map(|failure| failure.rule)
}

#[test]
fn election_safety_fires_on_two_leaders_of_one_term() {
    let mut h = History::new(3);
    h.fill(1, 2, &[]);
    h.fill(2, 2, &[]);
    assert_eq!(rule(h.batch(1, &[], Role::Leader)), None);
    let second = h.batch(2, &[], Role::Leader).unwrap_err();
    assert_eq!(second.rule, Rule::ElectionSafety);
    assert_eq!(second.nodes, vec![NodeId(1), NodeId(2)]);
}

#[test]
fn election_safety_allows_one_leader_per_term() {
    let mut h = History::new(3);
    h.fill(1, 2, &[]);
    h.fill(2, 3, &[]);
    assert_eq!(rule(h.batch(1, &[], Role::Leader)), None);
    assert_eq!(rule(h.batch(2, &[], Role::Leader)), None);
}

#[test]
fn leader_append_only_fires_when_a_leader_truncates() {
    let mut h = History::new(3);
    h.fill(1, 2, &[(1, "a"), (2, "b")]);
    assert_eq!(rule(h.batch(1, &[], Role::Leader)), None);
    let truncate = Action::LogTruncate { from: LogIndex(2) };
    assert_eq!(
        rule(h.batch(1, &[truncate], Role::Leader)),
        Some(Rule::LeaderAppendOnly)
    );
}

#[test]
fn leader_append_only_allows_appends_and_stepping_down() {
    let mut h = History::new(3);
    h.fill(1, 2, &[(1, "a"), (2, "b")]);
    assert_eq!(rule(h.batch(1, &[], Role::Leader)), None);
    assert_eq!(rule(h.batch(1, &[store(3, 2, "c")], Role::Leader)), None);
    // Stepping down in the same batch makes a truncation legitimate.
    let down = [state(3, None), Action::LogTruncate { from: LogIndex(3) }];
    assert_eq!(rule(h.batch(1, &down, Role::Follower)), None);
}

#[test]
fn log_matching_fires_on_different_data_at_the_same_index_and_term() {
    let mut h = History::new(3);
    h.fill(1, 1, &[(1, "a")]);
    let result = h.batch(2, &[state(1, None), store(1, 1, "b")], Role::Follower);
    assert_eq!(rule(result), Some(Rule::LogMatching));
}

#[test]
fn log_matching_fires_on_different_prefixes_under_the_same_entry() {
    let mut h = History::new(3);
    h.fill(1, 2, &[(1, "a"), (2, "b")]);
    let result = h.batch(
        2,
        &[state(2, None), store(1, 2, "x"), store(2, 2, "b")],
        Role::Follower,
    );
    assert_eq!(rule(result), Some(Rule::LogMatching));
}

#[test]
fn log_matching_allows_the_same_entry_everywhere() {
    let mut h = History::new(3);
    h.fill(1, 2, &[(1, "a"), (2, "b")]);
    h.fill(2, 2, &[(1, "a"), (2, "b")]);
    h.fill(3, 2, &[(1, "a")]);
}

#[test]
fn leader_completeness_fires_on_a_leader_without_a_committed_entry() {
    let mut h = History::new(3);
    h.fill(1, 1, &[(1, "a")]);
    h.batch(1, &[commit(1, "a")], Role::Follower).unwrap();
    h.fill(2, 2, &[]);
    assert_eq!(
        rule(h.batch(2, &[], Role::Leader)),
        Some(Rule::LeaderCompleteness)
    );
}

#[test]
fn leader_completeness_allows_a_leader_with_every_committed_entry() {
    let mut h = History::new(3);
    h.fill(1, 1, &[(1, "a")]);
    h.batch(1, &[commit(1, "a")], Role::Follower).unwrap();
    h.fill(2, 2, &[(1, "a")]);
    assert_eq!(rule(h.batch(2, &[], Role::Leader)), None);
}

#[test]
fn leader_completeness_spares_a_late_leader_of_an_older_term() {
    // Node 1 commits an entry in term 5; node 2 wins term 4 late, with
    // votes that were slow to arrive. Raft promises nothing to term 4.
    let mut h = History::new(3);
    h.fill(1, 5, &[(5, "a")]);
    h.batch(1, &[commit(1, "a")], Role::Follower).unwrap();
    h.fill(2, 4, &[]);
    assert_eq!(rule(h.batch(2, &[], Role::Leader)), None);
    h.fill(3, 6, &[]);
    assert_eq!(
        rule(h.batch(3, &[], Role::Leader)),
        Some(Rule::LeaderCompleteness)
    );
}

#[test]
fn state_machine_safety_fires_on_two_commits_at_one_index() {
    let mut h = History::new(3);
    h.fill(1, 1, &[(1, "a")]);
    h.fill(2, 2, &[(2, "b")]);
    h.batch(1, &[commit(1, "a")], Role::Follower).unwrap();
    let result = h.batch(2, &[commit(1, "b")], Role::Follower);
    assert_eq!(rule(result), Some(Rule::StateMachineSafety));
}

#[test]
fn state_machine_safety_fires_on_a_stream_with_a_gap() {
    let mut h = History::new(3);
    h.fill(1, 1, &[(1, "a"), (1, "b")]);
    let result = h.batch(1, &[commit(2, "b")], Role::Follower);
    assert_eq!(rule(result), Some(Rule::StateMachineSafety));
}

#[test]
fn state_machine_safety_allows_agreeing_streams_and_restarts() {
    let mut h = History::new(3);
    h.fill(1, 1, &[(1, "a"), (1, "b")]);
    h.fill(2, 1, &[(1, "a")]);
    h.batch(1, &[commit(1, "a"), commit(2, "b")], Role::Follower)
        .unwrap();
    h.batch(2, &[commit(1, "a")], Role::Follower).unwrap();
    h.checkers
        .restarted(NodeId(1), SnapshotMeta::default(), None)
        .unwrap();
    assert_eq!(rule(h.batch(1, &[commit(1, "a")], Role::Follower)), None);
}

#[test]
fn current_term_commit_fires_on_a_leader_committing_an_old_entry_alone() {
    let mut h = History::new(3);
    h.fill(1, 3, &[(1, "a"), (3, "")]);
    h.batch(1, &[], Role::Leader).unwrap();
    let result = h.batch(1, &[commit(1, "a")], Role::Leader);
    assert_eq!(rule(result), Some(Rule::CurrentTermCommit));
}

#[test]
fn current_term_commit_allows_old_entries_with_one_of_the_current_term() {
    let mut h = History::new(3);
    h.fill(1, 3, &[(1, "a"), (3, "")]);
    h.fill(2, 3, &[(1, "a")]);
    h.batch(1, &[], Role::Leader).unwrap();
    let both = [commit(1, "a"), commit(2, "")];
    assert_eq!(rule(h.batch(1, &both, Role::Leader)), None);
    // A follower commits old entries as its leader says.
    assert_eq!(rule(h.batch(2, &[commit(1, "a")], Role::Follower)), None);
}

#[test]
fn commit_durable_fires_on_a_commit_past_the_disk() {
    let mut h = History::new(1);
    h.fill(1, 1, &[(1, "a")]);
    let result = h.batch(1, &[commit(1, "a"), commit(2, "b")], Role::Follower);
    assert_eq!(rule(result), Some(Rule::CommitDurable));
}

#[test]
fn committed_kept_fires_on_truncating_a_committed_entry() {
    let mut h = History::new(3);
    h.fill(1, 1, &[(1, "a")]);
    h.fill(2, 1, &[(1, "a")]);
    h.batch(1, &[commit(1, "a")], Role::Follower).unwrap();
    let truncate = Action::LogTruncate { from: LogIndex(1) };
    assert_eq!(
        rule(h.batch(2, &[truncate], Role::Follower)),
        Some(Rule::CommittedKept)
    );
}

#[test]
fn committed_kept_spares_a_stale_follower_of_an_older_term() {
    // The entry commits in term 5; a follower still in term 4 may lose it
    // to its stale leader (and get it back from the leader of term 5).
    let mut h = History::new(3);
    h.fill(1, 5, &[(3, "a")]);
    h.fill(2, 4, &[(3, "a")]);
    h.fill(3, 5, &[(3, "a")]);
    h.batch(1, &[commit(1, "a")], Role::Follower).unwrap();
    let truncate = Action::LogTruncate { from: LogIndex(1) };
    assert_eq!(
        rule(h.batch(2, std::slice::from_ref(&truncate), Role::Follower)),
        None
    );
    assert_eq!(
        rule(h.batch(3, &[truncate], Role::Follower)),
        Some(Rule::CommittedKept)
    );
}

#[test]
fn committed_kept_allows_truncating_an_uncommitted_conflict() {
    let mut h = History::new(3);
    h.fill(1, 2, &[(2, "a")]);
    h.fill(2, 1, &[(1, "z")]);
    h.batch(1, &[commit(1, "a")], Role::Follower).unwrap();
    let replace = [
        state(2, None),
        Action::LogTruncate { from: LogIndex(1) },
        store(1, 2, "a"),
    ];
    assert_eq!(rule(h.batch(2, &replace, Role::Follower)), None);
}

#[test]
fn appended_once_fires_on_an_ack_at_the_wrong_index() {
    let mut h = History::new(1);
    h.fill(1, 1, &[(1, "a"), (1, "b")]);
    h.batch(1, &[commit(1, "a"), commit(2, "b")], Role::Follower)
        .unwrap();
    assert_eq!(h.checkers.client_ack(NodeId(1), b"b", LogIndex(2)), Ok(()));
    let wrong = h.checkers.client_ack(NodeId(1), b"b", LogIndex(1));
    assert_eq!(rule(wrong), Some(Rule::AppendedOnce));
    let uncommitted = h.checkers.client_ack(NodeId(1), b"c", LogIndex(3));
    assert_eq!(rule(uncommitted), Some(Rule::AppendedOnce));
}

#[test]
fn appended_once_fires_on_data_committed_twice() {
    let mut h = History::new(1);
    h.fill(1, 1, &[(1, "a"), (1, "a")]);
    let result = h.batch(1, &[commit(1, "a"), commit(2, "a")], Role::Follower);
    assert_eq!(rule(result), Some(Rule::AppendedOnce));
}

#[test]
fn overwritten_never_commits_fires_when_the_commit_comes_later() {
    let mut h = History::new(2);
    h.fill(1, 1, &[(1, "a")]);
    h.fill(2, 1, &[(1, "a")]);
    h.batch(1, &[overwritten(1, "a")], Role::Follower).unwrap();
    let result = h.batch(2, &[commit(1, "a")], Role::Follower);
    assert_eq!(rule(result), Some(Rule::OverwrittenNeverCommits));
}

#[test]
fn overwritten_never_commits_fires_when_the_report_comes_later() {
    let mut h = History::new(2);
    h.fill(1, 1, &[(1, "a")]);
    h.batch(1, &[commit(1, "a")], Role::Follower).unwrap();
    let result = h.batch(2, &[overwritten(1, "a")], Role::Follower);
    assert_eq!(rule(result), Some(Rule::OverwrittenNeverCommits));
}

#[test]
fn overwritten_allows_a_report_for_data_that_never_commits() {
    let mut h = History::new(2);
    h.fill(1, 2, &[(2, "b")]);
    h.batch(2, &[overwritten(1, "a")], Role::Follower).unwrap();
    assert_eq!(rule(h.batch(1, &[commit(1, "b")], Role::Follower)), None);
}

#[test]
fn persistence_order_fires_on_a_store_after_a_send() {
    let mut h = History::new(2);
    let resp = Message::AppendEntriesResp(AppendEntriesResp {
        term: Term(1),
        success: true,
        index: LogIndex(0),
        read_round: 0,
        epoch: 0,
    });
    let result = h.batch(1, &[send(2, resp.clone()), state(1, None)], Role::Follower);
    assert_eq!(rule(result), Some(Rule::PersistenceOrder));
    assert_eq!(
        rule(h.batch(2, &[state(1, None), send(1, resp)], Role::Follower)),
        None
    );
}

#[test]
fn durable_state_fires_on_a_store_past_the_end_and_an_unpersisted_term() {
    let mut h = History::new(1);
    h.fill(1, 1, &[]);
    let gap = h.batch(1, &[store(2, 1, "a")], Role::Follower);
    assert_eq!(rule(gap), Some(Rule::DurableState));
    let mut h = History::new(1);
    h.fill(1, 1, &[]);
    let early = h.batch(1, &[store(1, 2, "a")], Role::Follower);
    assert_eq!(rule(early), Some(Rule::DurableState));
}

#[test]
fn durable_state_fires_when_the_machine_holds_more_than_its_disk() {
    let mut checkers = Checkers::new(1);
    let disk = Durable::default();
    let node = NodeId(1);
    let view = |term: u64, vote: Option<u64>| NodeView {
        role: Role::Follower,
        term: Term(term),
        hard_state: HardState {
            term: Term(term),
            voted_for: vote.map(NodeId),
        },
        last_index: LogIndex(0),
        last_term: Term(0),
        snapshot: SnapshotMeta::default(),
        hears_leader: false,
    };
    checkers.begin_batch(node, view(0, None), None);
    assert_eq!(checkers.end_batch(node, view(0, None), &disk), Ok(()));
    // The machine voted, but no StateStore reached the disk.
    checkers.begin_batch(node, view(0, None), None);
    let forgot = checkers.end_batch(node, view(0, Some(1)), &disk);
    assert_eq!(rule(forgot), Some(Rule::DurableState));
}

#[test]
fn term_adoption_fires_on_a_leader_that_ignores_a_higher_term() {
    let mut h = History::new(2);
    h.fill(1, 3, &[]);
    h.batch(1, &[], Role::Leader).unwrap();
    let ignored = h.batch_received(1, Some(Term(5)), &[], Role::Leader);
    assert_eq!(rule(ignored), Some(Rule::TermAdoption));
    let adopted = h.batch_received(1, Some(Term(5)), &[state(5, None)], Role::Follower);
    assert_eq!(rule(adopted), None);
}

#[test]
fn vote_once_fires_on_two_candidates_granted_in_one_term() {
    let mut h = History::new(3);
    let granted = Message::VoteResp(VoteResp {
        term: Term(2),
        granted: true,
    });
    let vote_2 = [state(2, Some(2)), send(2, granted.clone())];
    assert_eq!(rule(h.batch(1, &vote_2, Role::Follower)), None);
    assert_eq!(
        rule(h.batch(1, &[send(2, granted.clone())], Role::Follower)),
        None
    );
    // A crash lost the vote; the node votes again in the same term.
    let disk = &h.disks[0];
    let forgot_vote = HardState {
        voted_for: None,
        ..disk.hard_state()
    };
    h.disks[0] = Durable::new(forgot_vote, disk.log().to_vec());
    let vote_3 = [state(2, Some(3)), send(3, granted)];
    assert_eq!(
        rule(h.batch(1, &vote_3, Role::Follower)),
        Some(Rule::VoteOnce)
    );
}

#[test]
fn liveness_fires_when_no_new_append_commits_in_time() {
    let mut checkers = Checkers::new(3);
    let liveness = checkers.liveness();
    liveness.start_quiet(1_000, 10_000);
    assert_eq!(liveness.check(10_999, "none"), Ok(()));
    liveness.observe_ack(999, 5_000); // submitted before faults stopped: not new
    let late = liveness.check(11_000, "none");
    assert_eq!(rule(late), Some(Rule::Liveness));
    liveness.observe_ack(1_000, 6_000);
    assert_eq!(liveness.check(11_000, "none"), Ok(()));
    assert_eq!(liveness.recovered_at(), Some(6_000));
}

fn ack(to: u64, term: u64, index: u64) -> Action {
    send(
        to,
        Message::AppendEntriesResp(AppendEntriesResp {
            term: Term(term),
            success: true,
            index: LogIndex(index),
            read_round: 0,
            epoch: 0,
        }),
    )
}

fn grant(to: u64, term: u64) -> Action {
    send(
        to,
        Message::VoteResp(VoteResp {
            term: Term(term),
            granted: true,
        }),
    )
}

/// Node 2 acknowledges entries 1 and 2, both commit (node 1 reports them),
/// then a disk fault cuts node 2's log after `keep`.
fn acknowledged_then_cut(keep: u64) -> History {
    let mut h = History::new(3);
    let entries = [(1, "a"), (1, "b")];
    h.fill(1, 1, &entries);
    h.fill(2, 1, &entries);
    h.batch(2, &[ack(1, 1, 2)], Role::Follower).unwrap();
    h.batch(1, &[commit(1, "a"), commit(2, "b")], Role::Leader)
        .unwrap();
    h.checkers.log_cut(NodeId(2), &h.disks[1], LogIndex(keep));
    h.disks[1].lose_log_after(LogIndex(keep));
    h
}

#[test]
fn repair_before_vote_fires_on_a_vote_from_a_log_that_lost_an_acknowledged_commit() {
    let mut h = acknowledged_then_cut(1);
    let vote = h.batch(2, &[state(2, Some(3)), grant(3, 2)], Role::Follower);
    assert_eq!(rule(vote), Some(Rule::RepairBeforeVote));
}

#[test]
fn repair_before_vote_fires_on_standing_for_election() {
    let mut h = acknowledged_then_cut(0);
    let stand = h.batch(2, &[state(2, Some(2))], Role::Candidate);
    assert_eq!(rule(stand), Some(Rule::RepairBeforeVote));
}

#[test]
fn repair_before_vote_allows_a_vote_once_the_entries_are_back_or_never_acknowledged() {
    let mut h = acknowledged_then_cut(1);
    h.batch(2, &[store(2, 1, "b")], Role::Follower).unwrap();
    let vote = h.batch(2, &[state(2, Some(3)), grant(3, 2)], Role::Follower);
    assert_eq!(rule(vote), None);
    // A cut of entries never acknowledged (a torn tail) takes nothing.
    let mut h = History::new(3);
    h.fill(2, 1, &[(1, "a"), (1, "b")]);
    h.batch(1, &[commit(1, "a")], Role::Leader).ok();
    h.checkers.log_cut(NodeId(2), &h.disks[1], LogIndex(0));
    h.disks[1].lose_log_after(LogIndex(0));
    let vote = h.batch(2, &[state(2, Some(3)), grant(3, 2)], Role::Follower);
    assert_eq!(rule(vote), None);
}

#[test]
fn damage_noticed_fires_on_a_normal_restart_after_damage() {
    use skiff_sim::checker::damage_noticed::check_restart;
    assert_eq!(
        rule(check_restart(NodeId(1), true, false)),
        Some(Rule::DamageNoticed)
    );
    assert_eq!(rule(check_restart(NodeId(1), true, true)), None);
    assert_eq!(rule(check_restart(NodeId(1), false, false)), None);
}

#[test]
fn no_false_rejection_fires_on_any_rejected_message() {
    let mut h = History::new(3);
    let rejected = Action::Rejected {
        from: NodeId(2),
        reason: skiff_core::Rejection::SecondLeader { known: NodeId(3) },
    };
    let result = h.batch(1, &[rejected], Role::Follower);
    assert_eq!(rule(result), Some(Rule::NoFalseRejection));
    assert_eq!(h.batch(1, &[state(1, None)], Role::Follower), Ok(()));
}

/// The application state of the data `data` applied from index 1.
fn folded(data: &[&str]) -> AppState {
    let mut state = AppState::default();
    for datum in data {
        state.apply(datum.as_bytes());
    }
    state
}

fn snapshot_of(index: u64, state: AppState) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(index),
            term: Term(1),
        },
        state,
    }
}

/// Node 1 commits "a", "b", "c" at indices 1 to 3.
fn three_committed() -> History {
    let mut h = History::new(3);
    h.fill(1, 1, &[(1, "a"), (1, "b"), (1, "c")]);
    let commits = [commit(1, "a"), commit(2, "b"), commit(3, "c")];
    h.batch(1, &commits, Role::Follower).unwrap();
    h
}

#[test]
fn snapshot_state_fires_on_a_snapshot_that_lost_or_changed_an_entry() {
    let mut h = three_committed();
    let node = NodeId(1);
    let good = snapshot_of(2, folded(&["a", "b"]));
    assert_eq!(h.checkers.snapshot(node, &good, "took"), Ok(()));
    let changed = snapshot_of(2, folded(&["a", "x"]));
    let lost = snapshot_of(
        2,
        AppState {
            applied: LogIndex(2),
            ..folded(&["a"])
        },
    );
    let misnamed = snapshot_of(3, folded(&["a", "b"]));
    let beyond = snapshot_of(4, folded(&["a", "b", "c", "d"]));
    for bad in [changed, lost, misnamed, beyond] {
        assert_eq!(
            rule(h.checkers.snapshot(node, &bad, "took")),
            Some(Rule::SnapshotState),
            "{bad:?}"
        );
    }
    let sent = snapshot_state::check_sent(node, good.meta, Some(&good));
    assert_eq!(sent, Ok(()));
    let stale = snapshot_state::check_sent(node, misnamed.meta, Some(&good));
    assert_eq!(rule(stale), Some(Rule::SnapshotState));
    assert_eq!(
        rule(snapshot_state::check_sent(node, good.meta, None)),
        Some(Rule::SnapshotState)
    );
}

#[test]
fn applied_state_fires_on_a_state_off_the_fold_and_on_an_install_that_goes_back() {
    let mut h = three_committed();
    let node = NodeId(2);
    assert_eq!(h.checkers.applied(node, &folded(&["a", "b"])), Ok(()));
    assert_eq!(
        rule(h.checkers.applied(node, &folded(&["a", "c"]))),
        Some(Rule::AppliedState)
    );
    // Forward: accepted, and the commit stream continues after it.
    let at_one = folded(&["a"]);
    let two = snapshot_of(2, folded(&["a", "b"]));
    assert_eq!(h.checkers.installed(node, &at_one, &two), Ok(()));
    let next = h.batch(2, &[commit(3, "c")], Role::Follower);
    assert_eq!(rule(next), Some(Rule::CommitDurable), "its disk is empty");
    // Back, or in place: refused.
    let at_three = folded(&["a", "b", "c"]);
    for applied in [at_three, folded(&["a", "b"])] {
        assert_eq!(
            rule(h.checkers.installed(node, &applied, &two)),
            Some(Rule::AppliedState)
        );
    }
}

#[test]
fn state_machine_safety_continues_after_a_snapshot_and_refuses_a_gap_past_the_agreed_log() {
    let mut h = three_committed();
    // Node 2 restarts from a snapshot through 2 and commits 3.
    h.fill(2, 1, &[(1, "a"), (1, "b"), (1, "c")]);
    let meta = snapshot_of(2, folded(&["a", "b"])).meta;
    let state = folded(&["a", "b"]);
    h.checkers.restarted(NodeId(2), meta, Some(&state)).unwrap();
    assert_eq!(h.batch(2, &[commit(3, "c")], Role::Follower), Ok(()));
    // Node 3 claims a snapshot through 4, past what ever committed.
    h.fill(3, 1, &[(1, "a"), (1, "b"), (1, "c"), (1, "d"), (1, "e")]);
    let meta = snapshot_of(4, folded(&["a", "b", "c", "d"])).meta;
    h.checkers.restarted(NodeId(3), meta, None).unwrap();
    assert_eq!(
        rule(h.batch(3, &[commit(5, "e")], Role::Follower)),
        Some(Rule::StateMachineSafety)
    );
}

#[test]
fn lease_respected_fires_on_a_vote_granted_while_the_leader_is_heard() {
    let mut h = History::leading(3, 2);
    h.step(1, 1_000, heartbeat(2, 2), &[], Role::Follower)
        .unwrap();
    // A vote of the leader's own term deposes nobody.
    let to_leader = [state(2, Some(2)), send(2, vote(2, true))];
    let late_request = h.step(1, 1_001, vote_req(2, 2), &to_leader, Role::Follower);
    assert_eq!(rule(late_request), None);
    let newer = [state(3, Some(3)), send(3, vote(3, true))];
    let early = h.step(1, 1_100, vote_req(3, 3), &newer, Role::Follower);
    assert_eq!(rule(early), Some(Rule::LeaseRespected));
    let pre = h.step(
        1,
        1_149,
        vote_req(3, 3),
        &[send(3, pre_vote(3, true))],
        Role::Follower,
    );
    assert_eq!(rule(pre), Some(Rule::LeaseRespected));
    // Once an election timeout has passed since the leader's request, it may.
    let late = h.step(1, 1_150, vote_req(3, 3), &newer, Role::Follower);
    assert_eq!(rule(late), None);
}

#[test]
fn prevote_first_fires_on_a_pre_candidacy_that_raises_the_real_term() {
    let mut h = History::leading(3, 2);
    let raised = h.step(
        1,
        10,
        Stepped::Timeout,
        &[state(3, None)],
        Role::PreCandidate,
    );
    assert_eq!(rule(raised), Some(Rule::PreVoteFirst));
    // Faithful: the term stays while it asks; a majority's grant stands it.
    let mut h = History::leading(3, 2);
    let asks = h.step(1, 20, Stepped::Timeout, &[], Role::PreCandidate);
    assert_eq!(rule(asks), None);
    let refused = Stepped::Receive(2, pre_vote(2, false));
    let alone = [state(3, Some(1))];
    let stood_alone = h.step(1, 25, refused, &alone, Role::Candidate);
    assert_eq!(rule(stood_alone), Some(Rule::PreVoteFirst));
    let mut h = History::leading(3, 2);
    h.step(1, 20, Stepped::Timeout, &[], Role::PreCandidate)
        .unwrap();
    let granted = Stepped::Receive(2, pre_vote(3, true));
    assert_eq!(rule(h.step(1, 30, granted, &alone, Role::Candidate)), None);
}

#[test]
fn check_quorum_fires_on_a_leader_that_hears_no_majority() {
    let mut h = History::leading(3, 2);
    h.step(1, 1_000, Stepped::Timeout, &[], Role::Leader)
        .unwrap();
    let answer = Stepped::Receive(2, vote(1, false));
    h.step(1, 1_010, answer, &[], Role::Leader).unwrap();
    assert_eq!(
        rule(h.step(1, 1_050, Stepped::Timeout, &[], Role::Leader)),
        None
    );
    // Heard at 1010: within an election timeout and two heartbeats until 1260.
    assert_eq!(
        rule(h.step(1, 1_260, Stepped::Timeout, &[], Role::Leader)),
        None
    );
    let stayed = h.step(1, 1_300, Stepped::Timeout, &[], Role::Leader);
    assert_eq!(rule(stayed), Some(Rule::CheckQuorum));
    let stepped_down = h.step(1, 1_300, Stepped::Timeout, &[], Role::Follower);
    assert_eq!(rule(stepped_down), None);
}
