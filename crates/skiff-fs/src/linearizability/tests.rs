use super::*;
use crate::command::{Command, ProposalId};
use crate::store::Store;
use proptest::prelude::*;
use skiff_core::LogIndex;

fn write_to(name: &str, contents: &'static str) -> Request {
    Request::Write {
        name: name.to_string(),
        contents: Bytes::from_static(contents.as_bytes()),
        exptime_s: 0,
    }
}

fn write(contents: &'static str) -> Request {
    write_to("f", contents)
}

fn cas(version: u64, contents: &'static str) -> Request {
    Request::Cas {
        name: "f".to_string(),
        version: Version(version),
        contents: Bytes::from_static(contents.as_bytes()),
        exptime_s: 0,
    }
}

fn read_of(name: &str) -> Request {
    Request::Read {
        name: name.to_string(),
    }
}

fn read() -> Request {
    read_of("f")
}

fn delete() -> Request {
    Request::Delete {
        name: "f".to_string(),
    }
}

fn written(version: u64) -> Response {
    Response::Written {
        version: Version(version),
    }
}

fn contents(version: u64, contents: &'static str) -> Response {
    Response::Contents {
        version: Version(version),
        contents: Bytes::from_static(contents.as_bytes()),
        exptime_s: 0,
    }
}

fn mismatch(current: u64) -> Response {
    Response::VersionMismatch {
        current: Version(current),
    }
}

/// An operation invoked at `invoked_at` that returned `output` at `returned_at`.
fn op(invoked_at: u64, returned_at: u64, input: Request, output: Response) -> FileOperation {
    Operation {
        invoked_at,
        input,
        outcome: Outcome::Returned {
            at: returned_at,
            output,
        },
    }
}

/// An operation invoked at `invoked_at` whose answer never arrived.
fn lost(invoked_at: u64, input: Request) -> FileOperation {
    Operation {
        invoked_at,
        input,
        outcome: Outcome::Unknown,
    }
}

fn linearizable(history: &[FileOperation]) -> bool {
    match check_file_history(history, Budget::default()) {
        Ok(()) => true,
        Err(FileHistoryError {
            error: CheckError::NotLinearizable { .. },
            ..
        }) => false,
        Err(other) => panic!("the check did not decide: {other}"),
    }
}

#[test]
fn an_empty_history_is_linearizable() {
    assert!(linearizable(&[]));
}

#[test]
fn sequential_operations_that_follow_the_model_are_linearizable() {
    assert!(linearizable(&[
        op(0, 1, read(), Response::FileNotFound),
        op(2, 3, write("a"), written(4)),
        op(4, 5, read(), contents(4, "a")),
        op(6, 7, cas(4, "b"), written(9)),
        op(8, 9, cas(4, "c"), mismatch(9)),
        op(10, 11, delete(), Response::Deleted),
        op(12, 13, delete(), Response::FileNotFound),
        op(14, 15, cas(9, "d"), Response::FileNotFound),
    ]));
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    let before = op(0, 1, write("a"), written(1));
    let overlapping_write = op(2, 10, write("b"), written(2));
    for seen in [contents(1, "a"), contents(2, "b")] {
        let read = op(3, 4, read(), seen);
        assert!(linearizable(&[
            before.clone(),
            overlapping_write.clone(),
            read
        ]));
    }
}

#[test]
fn a_stale_read_after_a_completed_write_is_rejected() {
    assert!(!linearizable(&[
        op(0, 1, write("a"), written(1)),
        op(2, 3, write("b"), written(2)),
        op(4, 5, read(), contents(1, "a")),
    ]));
}

#[test]
fn two_cas_from_the_same_version_cannot_both_succeed() {
    assert!(!linearizable(&[
        op(0, 1, write("a"), written(1)),
        op(2, 6, cas(1, "x"), written(2)),
        op(3, 7, cas(1, "y"), written(3)),
    ]));
    // One winner and one loser that sees the winner's version is fine.
    assert!(linearizable(&[
        op(0, 1, write("a"), written(1)),
        op(2, 6, cas(1, "x"), written(2)),
        op(3, 7, cas(1, "y"), mismatch(2)),
    ]));
}

#[test]
fn a_read_of_a_value_never_written_is_rejected() {
    assert!(!linearizable(&[
        op(0, 1, write("a"), written(1)),
        op(2, 3, read(), contents(1, "z")),
    ]));
    assert!(!linearizable(&[
        op(0, 1, write("a"), written(1)),
        op(2, 3, read(), contents(7, "a")),
    ]));
}

#[test]
fn versions_must_grow_with_every_change() {
    assert!(!linearizable(&[
        op(0, 1, write("a"), written(5)),
        op(2, 3, write("b"), written(3)),
    ]));
}

#[test]
fn a_read_that_returned_before_a_write_began_cannot_see_it() {
    assert!(!linearizable(&[
        op(0, 1, read(), contents(1, "a")),
        op(2, 3, write("a"), written(1)),
    ]));
}

#[test]
fn a_lost_write_may_take_effect_late_or_never() {
    let lost_write = lost(0, write("a"));
    // Never seen.
    assert!(linearizable(&[
        lost_write.clone(),
        op(5, 6, read(), Response::FileNotFound),
    ]));
    // Seen long after its client gave up, with a version nobody was told.
    assert!(linearizable(&[
        lost_write.clone(),
        op(5, 6, read(), Response::FileNotFound),
        op(7, 8, read(), contents(3, "a")),
        op(9, 10, cas(3, "b"), written(8)),
    ]));
    // But once seen, it cannot vanish without a change.
    assert!(!linearizable(&[
        lost_write,
        op(5, 6, read(), contents(3, "a")),
        op(7, 8, read(), Response::FileNotFound),
    ]));
}

#[test]
fn a_lost_cas_on_a_file_of_unknown_version_may_or_may_not_match() {
    let setup = [op(0, 1, write("a"), written(1)), lost(2, write("b"))];
    let lost_cas = lost(3, cas(5, "c"));
    for later in [contents(5, "b"), contents(7, "c")] {
        let mut history = setup.to_vec();
        history.push(lost_cas.clone());
        history.push(op(10, 11, read(), later));
        assert!(linearizable(&history));
    }
}

#[test]
fn files_are_checked_independently() {
    let history = [
        op(0, 10, write_to("a", "1"), written(1)),
        op(0, 10, write_to("b", "1"), written(2)),
        op(11, 12, read_of("a"), contents(1, "1")),
        op(11, 12, read_of("b"), contents(1, "1")),
    ];
    let error = check_file_history(&history, Budget::default()).unwrap_err();
    assert_eq!(error.name, "b");
    assert_eq!(
        error.error,
        CheckError::NotLinearizable {
            longest_prefix: vec![1]
        }
    );
}

#[test]
fn an_operation_returning_before_its_invocation_is_refused() {
    let error = check_file_history(
        &[op(5, 4, read(), Response::FileNotFound)],
        Budget::default(),
    );
    assert_eq!(
        error.unwrap_err().error,
        CheckError::InvalidOperation { index: 0 }
    );
}

#[test]
fn the_budget_bounds_the_search() {
    // Many concurrent writes and a final read of the first: every order must
    // be explored before the checker can say no.
    let mut history: Vec<FileOperation> = (1..=12)
        .map(|i| lost(0, write(["a", "b", "c"][i % 3])))
        .collect();
    history.push(op(1, 2, read(), contents(1, "zzz")));
    let error = check_file_history(&history, Budget { states_max: 100 }).unwrap_err();
    assert!(matches!(error.error, CheckError::BudgetExhausted { .. }));
}

#[test]
fn many_concurrent_writes_with_versions_check_quickly() {
    // 500 overlapping writers to one file, then a read: versions order them.
    let mut history: Vec<FileOperation> = (1..=500)
        .map(|v| op(0, 1000, write(["a", "b"][v as usize % 2]), written(v)))
        .collect();
    history.push(op(1001, 1002, read(), contents(500, "a")));
    assert!(check_file_history(
        &history,
        Budget {
            states_max: 100_000
        }
    )
    .is_ok());
}

/// The obvious checker: try every order that respects real time.
fn brute_force(history: &[FileOperation]) -> bool {
    fn extend(history: &[FileOperation], placed: &mut Vec<usize>, states: Vec<FileState>) -> bool {
        if states.is_empty() {
            return false;
        }
        if placed.len() == history.len() {
            return true;
        }
        for next in 0..history.len() {
            if placed.contains(&next) {
                continue;
            }
            // Every op not yet placed must not have returned before `next` began.
            let blocked = (0..history.len()).any(|other| {
                other != next
                    && !placed.contains(&other)
                    && history[other].returned_at() < history[next].invoked_at
            });
            if blocked {
                continue;
            }
            let op = &history[next];
            let after: Vec<FileState> = states
                .iter()
                .flat_map(|s| FileModel.step(s, &op.input, op.output()))
                .collect();
            placed.push(next);
            let found = extend(history, placed, after);
            placed.pop();
            if found {
                return true;
            }
        }
        false
    }
    extend(history, &mut Vec::new(), vec![FileModel.init()])
}

/// One generated operation: what it asks, when it is linearized relative to
/// the others, how far its invocation and return lie from that point, and
/// whether its answer is lost (and if so whether it took effect).
#[derive(Clone, Debug)]
struct Planned {
    input: Request,
    lead: u64,
    lag: u64,
    lost: bool,
    took_effect: bool,
}

fn planned_strategy() -> impl Strategy<Value = Planned> {
    let contents = prop_oneof![Just("a"), Just("b")];
    let input = prop_oneof![
        contents.clone().prop_map(write),
        (1u64..8, contents).prop_map(|(v, c)| cas(v, c)),
        Just(read()),
        Just(delete()),
    ];
    (
        input,
        0u64..25,
        0u64..25,
        prop::bool::weighted(0.2),
        any::<bool>(),
    )
        .prop_map(|(input, lead, lag, lost, took_effect)| Planned {
            input,
            lead,
            lag,
            lost,
            took_effect,
        })
}

/// Runs the planned operations through the real store in the order `ranks`
/// gives them, ten time units apart, and records what clients would see.
fn execute(plan: &[Planned], ranks: &[usize]) -> Vec<FileOperation> {
    let mut order: Vec<usize> = (0..plan.len()).collect();
    order.sort_by_key(|&i| ranks[i]);
    let mut store = Store::new();
    let mut outputs = vec![None; plan.len()];
    for (position, &i) in order.iter().enumerate() {
        if plan[i].lost && !plan[i].took_effect {
            continue;
        }
        let command = Command {
            timestamp_ms: 0,
            proposal: ProposalId::default(),
            session: None,
            request: plan[i].input.clone(),
        };
        outputs[i] = Some(store.apply(LogIndex(position as u64 + 1), &command));
    }
    plan.iter()
        .zip(ranks)
        .zip(outputs)
        .map(|((planned, &rank), output)| {
            let point = 100 + 10 * rank as u64;
            let invoked_at = point - planned.lead;
            match output {
                Some(output) if !planned.lost => op(
                    invoked_at,
                    point + planned.lag,
                    planned.input.clone(),
                    output,
                ),
                _ => lost(invoked_at, planned.input.clone()),
            }
        })
        .collect()
}

fn perturbed_output_strategy() -> impl Strategy<Value = Response> {
    prop_oneof![
        (1u64..8).prop_map(written),
        (1u64..8, prop_oneof![Just("a"), Just("b")]).prop_map(|(v, c)| contents(v, c)),
        (1u64..8).prop_map(mismatch),
        Just(Response::FileNotFound),
        Just(Response::Deleted),
    ]
}

fn history_strategy() -> impl Strategy<Value = (Vec<FileOperation>, Option<(usize, Response)>)> {
    proptest::collection::vec(planned_strategy(), 1..=6)
        .prop_flat_map(|plan| {
            let n = plan.len();
            let ranks = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
            let perturbation = proptest::option::weighted(0.5, (0..n, perturbed_output_strategy()));
            (Just(plan), ranks, perturbation)
        })
        .prop_map(|(plan, ranks, perturbation)| (execute(&plan, &ranks), perturbation))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn histories_of_the_real_store_are_linearizable((history, _) in history_strategy()) {
        prop_assert!(brute_force(&history));
        prop_assert!(linearizable(&history));
    }

    #[test]
    fn the_checker_agrees_with_brute_force((mut history, perturbation) in history_strategy()) {
        if let Some((index, output)) = perturbation {
            if let Outcome::Returned { output: seen, .. } = &mut history[index].outcome {
                *seen = output;
            }
        }
        prop_assert_eq!(linearizable(&history), brute_force(&history), "{:#?}", history);
    }
}

#[test]
fn a_version_revealed_late_is_still_above_every_earlier_one() {
    let history = |revealed| {
        [
            op(0, 1, write("a"), written(5)),
            lost(2, write("b")),
            op(3, 4, read(), contents(revealed, "b")),
        ]
    };
    assert!(linearizable(&history(6)));
    assert!(!linearizable(&history(3)));
    assert!(!linearizable(&history(5)));
}
