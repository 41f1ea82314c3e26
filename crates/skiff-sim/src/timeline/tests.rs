use super::*;

fn state(role: u8, term: u64, commit: u64) -> Option<NodeState> {
    Some(NodeState {
        role,
        term,
        commit,
        ..NodeState::default()
    })
}

#[test]
fn states_are_stored_only_when_they_change() {
    let mut timeline = Timeline::new("t", 2, "us");
    timeline.step(10, 0, "start", "Alarm", state(1, 0, 0));
    timeline.step(20, 0, "timeout", "Alarm", state(1, 0, 0));
    timeline.step(30, 1, "start", "Alarm", state(1, 0, 0));
    timeline.step(40, 0, "timeout", "StateStore", state(3, 1, 0));
    assert_eq!(timeline.step_count(), 4);
    assert_eq!(
        timeline.states.len(),
        3,
        "node 1's unchanged second step stores nothing"
    );
    let json = timeline.to_json();
    assert!(json.contains("\"dt\":[10,10,10,10]"), "{json}");
    assert!(json.contains("\"n\":\"0010\""), "{json}");
    assert!(json.contains("\"c\":\"1011\""), "{json}");
    assert!(
        json.contains("\"strings\":[\"start\",\"Alarm\",\"timeout\",\"StateStore\"]"),
        "{json}"
    );
}

#[test]
fn a_crash_opens_a_down_span_that_the_restart_closes() {
    let mut timeline = Timeline::new("t", 1, "us");
    timeline.step(10, 0, "start", "", state(1, 1, 0));
    timeline.step(50, 0, "crash", "", None);
    timeline.step(90, 0, "start", "", state(1, 1, 0));
    timeline.finish(100);
    let json = timeline.to_json();
    assert!(json.contains("\"spans\":[[0,0,50,90,"), "{json}");
}

#[test]
fn messages_refer_to_their_sending_step_and_keep_their_fate() {
    let mut timeline = Timeline::new("t", 2, "us");
    timeline.sent(1, "VoteReq", Delivery::At(1_500));
    timeline.sent(1, "VoteReq", Delivery::Lost);
    timeline.step(1_000, 0, "timeout", "Send", state(3, 1, 0));
    timeline.sent(0, "VoteResp", Delivery::Blocked);
    timeline.step(1_500, 1, "recv", "Send", state(1, 1, 0));
    let json = timeline.to_json();
    assert!(
        json.contains("\"msgs\":{\"s\":[0,0,1],\"to\":\"110\""),
        "{json}"
    );
    assert!(json.contains("\"d\":[500,-1,-2]"), "{json}");
}

#[test]
fn texts_are_escaped_for_json() {
    let mut timeline = Timeline::new("a \"quoted\" </script> title", 1, "us");
    timeline.violation(5, "line one\nline two");
    let json = timeline.to_json();
    assert!(
        json.contains(r#""title":"a \"quoted\" </script> title""#),
        "{json}"
    );
    assert!(json.contains(r#""text":"line one\nline two""#), "{json}");
}

#[test]
fn recording_a_run_leaves_it_as_it_was_and_records_every_node() {
    let mut options = crate::SimOptions::new(7).with_profile(crate::FaultProfile::Chaos);
    options.nodes = 3;
    options.limit = crate::Limit::Time { ms: 3_000 };
    let plain = crate::run_seed(&options);
    let (drawn, timeline) = crate::run_seed_timeline(&options);
    assert_eq!(
        drawn.trace_hash, plain.trace_hash,
        "recording changes nothing"
    );
    assert_eq!(drawn.stats.steps, plain.stats.steps);
    assert!(timeline.step_count() > 100, "{}", timeline.step_count());
    assert!(
        timeline.message_count() > 100,
        "{}",
        timeline.message_count()
    );
    for node in 0..3 {
        assert!(
            timeline.steps.iter().any(|s| s.node == node),
            "node index {node} has steps"
        );
    }
    assert!(
        timeline.current.iter().all(|s| s.role != 0),
        "all up after the quiet period"
    );
}
