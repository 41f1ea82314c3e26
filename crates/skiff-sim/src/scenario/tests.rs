//! Whole scenarios, written inline so that the runner is tested without
//! depending on the project's `tests/scenarios/`: some must pass, others
//! must fail at a given line for a given reason.

use super::node::Node;
use super::*;
use skiff_core::{Action, Config, Message, NodeId, StartState, Term, VoteResp};

#[track_caller]
fn passes(source: &str) {
    match run_source("inline.scn", source) {
        Ok(Outcome::Passed { .. }) => {}
        Ok(Outcome::Failed(failure)) => panic!("should pass, failed:\n{failure}"),
        Err(error) => panic!("should pass, invalid: {error}"),
    }
}

/// Runs `source`, which must fail at `line` with a reason containing `reason`.
#[track_caller]
fn fails(source: &str, line: usize, reason: &str) -> Failure {
    match run_source("inline.scn", source) {
        Ok(Outcome::Failed(failure)) => {
            assert_eq!(failure.line, line, "failed at another line:\n{failure}");
            assert!(
                failure.reason.contains(reason),
                "failed for another reason (want {reason:?}):\n{failure}"
            );
            *failure
        }
        Ok(passed) => panic!("should fail at line {line}, but {passed:?}"),
        Err(error) => panic!("should fail at line {line}, but invalid: {error}"),
    }
}

/// Parses `source`, which must be refused with `message` at `line`.
#[track_caller]
fn invalid(source: &str, line: usize, message: &str) {
    match run_source("bad.scn", source) {
        Err(error) => {
            let text = error.to_string();
            let prefix = format!("bad.scn:{line}: ");
            assert!(text.starts_with(&prefix), "wrong line: {text}");
            assert!(text.contains(message), "want {message:?}, got: {text}");
        }
        Ok(outcome) => panic!("should be invalid, ran: {outcome:?}"),
    }
}

const SPEC_EXAMPLE: &str = "\
# a follower grants its vote to an up-to-date candidate of a newer term
node id=1 peers=1,2,3
state term=3 log=1:a,1:b,2:c commit=1

recv from=2 VoteReq(term=4, candidate=2, last_index=3, last_term=2)
expect StateStore(term=4, voted_for=2)
expect Send(to=2, VoteResp(term=4, granted=true))
check role=follower term=4 voted_for=2

# a second candidate of the same term is refused
recv from=3 VoteReq(term=4, candidate=3, last_index=3, last_term=2)
expect Send(to=3, VoteResp(term=4, granted=false))
expect-none StateStore(*)
";

#[test]
fn the_spec_example_passes() {
    passes(SPEC_EXAMPLE);
    let Ok(Outcome::Passed { events, checks }) = run_source("spec", SPEC_EXAMPLE) else {
        panic!("the spec example should pass");
    };
    assert_eq!((events, checks), (2, 5));
}

#[test]
fn an_election_won_in_single_node_mode() {
    passes(
        "node id=1 peers=1,2,3 election=100 heartbeat=20 seed=9
         check role=follower term=0 leader=none
         timeout
         expect StateStore(term=1, voted_for=1)
         expect Alarm(ms=*)
         expect Send(to=2, VoteReq(term=1, candidate=1, last_index=0, last_term=0))
         expect Send(to=3, VoteReq(term=1, *))
         check role=candidate term=1 voted_for=1
         recv from = 2 VoteResp ( term = 1 , granted = true )
         expect LogStore(index=1, term=1, data=\"\")
         expect Send(to=2, AppendEntriesReq(term=1, leader=1, prev_index=0, prev_term=0, entries=[1:\"\"], commit=0))
         expect-none Commit(*)
         check role=leader leader=1 last_index=1 last_term=1 log=1:\"\" commit=0
         append \"hello world\"
         expect LogStore(index=2, term=1, data=\"hello world\")
         recv from=3 AppendEntriesResp(term=1, success=true, index=2)
         expect Commit(index=1, data=\"\")
         expect Commit(index=2, data=\"hello world\")
         check commit=2",
    );
}

#[test]
fn a_leader_set_up_by_state_votes_for_itself() {
    passes(
        "node id=2 peers=1,2,3
         state role=leader term=3 log=1:a,3:b commit=1
         check role=leader voted_for=2 leader=2 commit=1
         append c
         expect LogStore(index=3, term=3, data=c)
         expect Send(to=1, AppendEntriesReq(term=3, leader=2, prev_index=2, prev_term=3, entries=[3:c], commit=1))",
    );
}

#[test]
fn quoted_data_round_trips_through_escapes() {
    passes(
        "node id=1 peers=1
         timeout
         append \"say \\\"hi\\\" \\\\ \\x00\"
         expect Commit(index=2, data=\"say \\\"hi\\\" \\\\ \\x00\")
         expect Commit(index=*, data=\"say *\")",
    );
}

#[test]
fn a_wrong_expect_fails_with_the_batch_and_state() {
    let failure = fails(
        "node id=1 peers=1,2,3\ntimeout\nexpect Send(to=2, VoteReq(term=2, *))\n",
        3,
        "no action of the batch matches Send(to=2, VoteReq(term=2, *))",
    );
    assert_eq!(failure.text, "expect Send(to=2, VoteReq(term=2, *))");
    let batch = failure.batch.expect("a batch");
    assert_eq!(batch[0], "StateStore(term=1, voted_for=1)");
    assert!(batch.contains(
        &"Send(to=2, VoteReq(term=1, candidate=1, last_index=0, last_term=0))".to_string()
    ));
    let state = failure.state.expect("a state");
    assert_eq!(state.term, Term(1));
    assert!(state
        .to_string()
        .starts_with("role=candidate term=1 voted_for=1"));
}

#[test]
fn an_expect_none_that_matches_fails() {
    fails(
        "node id=1 peers=1,2,3\ntimeout\nexpect-none StateStore(*)\n",
        3,
        "StateStore(term=1, voted_for=1) matches StateStore(*), and expect-none wants no match",
    );
}

#[test]
fn a_wrong_check_names_every_difference() {
    fails(
        "node id=1 peers=1,2,3\ntimeout\ncheck role=candidate term=5 voted_for=none\n",
        3,
        "term is 1, expected 5; voted_for is 1, expected none",
    );
}

#[test]
fn the_first_failing_line_stops_the_run() {
    fails(
        "node id=1 peers=1,2,3\ntimeout\ncheck term=2\ncheck term=3\n",
        3,
        "term is 1, expected 2",
    );
}

#[test]
fn a_batch_that_persists_after_sending_is_refused() {
    // The real machine never does this, so hand the runner such a batch.
    let config = Config::new(NodeId(1), [NodeId(1), NodeId(2)]);
    let mut node = Node::with_state(config, StartState::default()).unwrap();
    let send = Action::Send {
        to: NodeId(2),
        message: Message::VoteResp(VoteResp {
            term: Term(0),
            granted: false,
        }),
    };
    let store = Action::StateStore {
        term: Term(0),
        voted_for: None,
    };
    let error = node.perform_for_test(vec![send, store]).unwrap_err();
    assert!(
        error.contains("action 2 (StateStore(term=0, voted_for=none)) persists state after action 1 (Send(to=2,"),
        "{error}"
    );
    assert_eq!(
        node.batch().map(<[Action]>::len),
        Some(2),
        "the batch is kept for the report"
    );
}

#[test]
fn malformed_lines_name_the_file_the_line_and_what_was_expected() {
    invalid(
        "node id=1 peers=1,2,3\n\ntimeout\nrecv from2 VoteResp(term=1, granted=true)\n",
        4,
        "expected key=value after 'recv', found 'from2'",
    );
    invalid(
        "node id=1 peers=1,2,3 heartbeat=150\n",
        1,
        "invalid node: heartbeat interval (150 ms) must be below the election timeout (150 ms)",
    );
    invalid(
        "node id=1 peers=1,2,3\ncheck term=x\n",
        2,
        "expected a number for 'term', found 'x'",
    );
    invalid(
        "node id=1 peers=1,2,3\nexpect Alarm(*)\n",
        2,
        "expect before any event",
    );
    invalid(
        "node id=1 peers=1,2,3\ntimeout\nexpect Alarms(*)\n",
        3,
        "unknown action 'Alarms'",
    );
    invalid(
        "node id=1 peers=1,2,3\nappend \"open\n",
        2,
        "unterminated quoted data",
    );
}

#[test]
fn a_state_the_machine_refuses_names_the_state_line() {
    invalid(
        "node id=1 peers=1,2,3\n# comment\nstate role=leader term=2 voted_for=2\n",
        3,
        "the machine refuses this set-up: a candidate or leader must have voted for itself",
    );
    invalid(
        "node id=1 peers=1,2,3\nstate log=1:a\n",
        2,
        "log holds an entry of term 1, after the current term 0",
    );
    invalid(
        "node id=1 peers=1,2,3\nstate term=1 log=1:a commit=2\n",
        2,
        "commit index 2 is past the log's last index 1",
    );
}

const ELECT_AND_REPLICATE: &str = "\
cluster n=3
on 1 timeout
expect 1 Send(to=2, VoteReq(term=1, *))
deliver from=1 to=2
expect 2 Send(to=1, VoteResp(term=1, granted=true))
check 2 voted_for=1 term=1
stabilize
check 1 role=leader term=1 commit=1
# followers learn the commit index from the leader's next message
check 2 role=follower leader=1 commit=0
check 3 leader=1 log=1:\"\" commit=0
on 1 append a
on 1 append b
stabilize
check-committed a,b
on 1 timeout
stabilize
check 3 commit=3 log=1:\"\",1:a,1:b
";

#[test]
fn a_cluster_elects_a_leader_and_replicates() {
    passes(ELECT_AND_REPLICATE);
}

#[test]
fn a_restarted_node_keeps_what_it_persisted_and_commits_again() {
    passes(&format!(
        "{ELECT_AND_REPLICATE}\
         crash 3
         check-committed a,b
         on 1 append c
         stabilize
         check 1 commit=4
         restart 3
         expect 3 Alarm(*)
         check 3 role=follower term=1 voted_for=1 commit=0 log=1:\"\",1:a,1:b
         # the request carrying c was lost; the leader resends it once it
         # has stayed unanswered for a whole heartbeat interval
         on 1 timeout
         stabilize
         on 1 timeout
         stabilize
         check 3 commit=4 log=1:\"\",1:a,1:b,1:c
         check-committed a,b,c
"
    ));
}

#[test]
fn deliver_takes_only_what_was_queued_and_honours_count() {
    passes(
        "cluster n=3
         check 2 log= term=0
         on 1 timeout
         deliver to=3 count=1
         expect 3 Send(to=1, VoteResp(term=1, granted=true))
         check 2 term=0
         deliver to=2
         check 2 term=1
         # the answers are queued, not yet delivered
         check 1 role=candidate
         deliver from=3
         check 1 role=leader
         # what these deliveries cause stays queued
         deliver count=5
         check 2 last_index=1
         check 1 commit=0
         stabilize
         check 1 commit=1
         on 1 append x
         drop to=2
         stabilize
         check 1 commit=2
         check 2 last_index=1
         check 3 last_index=2",
    );
}

#[test]
fn a_crashed_node_loses_queued_messages() {
    passes(
        "cluster n=3
         on 1 timeout
         crash 1
         stabilize
         check 2 term=0
         restart 1
         check 1 term=1 voted_for=1 role=follower",
    );
}

#[test]
fn cluster_failures_name_the_node_and_its_batch() {
    let failure = fails(
        &format!("{ELECT_AND_REPLICATE}check-committed a,c\n"),
        19,
        "node 1 committed [a,b], which is not a prefix of [a,c]",
    );
    assert_eq!(failure.batch, None);
    fails(
        &format!("{ELECT_AND_REPLICATE}check-committed a,b,c\n"),
        19,
        "no node has committed all of [a,b,c]: node 1 has [a,b]",
    );
    let failure = fails(
        &format!("{ELECT_AND_REPLICATE}expect 2 Commit(index=3, data=c)\n"),
        19,
        "no action of the batch matches",
    );
    assert_eq!(failure.node, Some(NodeId(2)));
    assert!(failure.batch.is_some() && failure.state.is_some());
    fails(
        "cluster n=3\non 1 timeout\nexpect 2 Alarm(*)\n",
        3,
        "expect before any event at node 2",
    );
    fails(
        "cluster n=3\non 1 timeout\ncrash 2\ncheck 2 term=0\n",
        4,
        "node 2 is crashed",
    );
    fails("cluster n=3\ncrash 2\ncrash 2\n", 3, "already crashed");
    fails("cluster n=3\nrestart 2\n", 2, "node 2 is running");
    fails(
        "cluster n=3\ncrash 2\non 2 timeout\n",
        3,
        "node 2 is crashed",
    );
}

#[test]
fn a_check_in_cluster_mode_shows_that_nodes_batch() {
    let failure = fails(
        "cluster n=3\non 1 timeout\nstabilize\ncheck 2 term=9\n",
        4,
        "term is 1, expected 9",
    );
    assert_eq!(failure.node, Some(NodeId(2)));
    assert!(failure.to_string().contains("batch of node 2:"));
}

#[test]
fn stabilize_gives_up_past_its_bound() {
    // Each heartbeat round of a 9-node leader is 8 requests and 8 answers:
    // 700 rounds queue more than 10,000 deliveries.
    let mut source = String::from("cluster n=9\non 1 timeout\nstabilize\n");
    for _ in 0..700 {
        source.push_str("on 1 timeout\n");
    }
    source.push_str("stabilize\n");
    let failure = fails(
        &source,
        704,
        "the network did not settle within 10000 deliveries",
    );
    assert_eq!(failure.node, None);
}
