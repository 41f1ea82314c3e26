//! The timeline page in headless Chromium: `skiff sim --html` writes a
//! page that draws, reacts to clicks and keys with the right state, and
//! for a 300 s chaos run stays small and quick to become interactive.
//! Skips, saying so, where Chromium or chromedriver is absent.

mod common;
mod webdriver;

use serde_json::{json, Value};
use std::path::Path;
use webdriver::Browser;

const ROLES: [&str; 5] = ["down", "follower", "pre-candidate", "candidate", "leader"];

/// Runs `skiff sim` with `args` plus `--html` into `dir`; returns the page's path.
fn draw(dir: &Path, args: &[&str]) -> std::path::PathBuf {
    let page = dir.join("page.html");
    let mut all = vec!["sim"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--html", page.to_str().expect("a UTF-8 temporary path")]);
    let output = common::skiff(&all).output().expect("skiff runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("timeline written to"), "{stdout}");
    page
}

/// The recording embedded in a page, parsed here independently of the
/// page's script.
fn embedded_data(page: &Path) -> Value {
    let html = std::fs::read_to_string(page).expect("the page reads");
    let start_tag = r#"<script id="timeline-data" type="application/json">"#;
    let start = html.find(start_tag).expect("the data element") + start_tag.len();
    let end = start + html[start..].find("</script>").expect("its end");
    serde_json::from_str(&html[start..end]).expect("the data is JSON")
}

/// A step whose event starts with `prefix` and that changed its node's
/// role, with the roles before and after it, decoded from the data.
fn role_change(data: &Value, prefix: &str) -> Option<(usize, &'static str, &'static str)> {
    let digit = |s: &Value, i: usize| (s.as_str().expect("digits").as_bytes()[i] - b'0') as usize;
    let strings = data["strings"].as_array().expect("strings");
    let steps = &data["steps"];
    let roles = &data["states"]["r"];
    let count = steps["e"].as_array().expect("events").len();
    let nodes = data["nodes"].as_array().expect("nodes").len();
    let mut role_of = vec![0usize; nodes];
    let mut next_state = 0;
    for step in 0..count {
        let node = digit(&steps["n"], step);
        if digit(&steps["c"], step) == 0 {
            continue;
        }
        let before = role_of[node];
        let after = digit(roles, next_state);
        next_state += 1;
        role_of[node] = after;
        let event = strings[steps["e"][step].as_u64().expect("an id") as usize]
            .as_str()
            .expect("a text");
        if event.starts_with(prefix) && before != after && before != 0 {
            return Some((step, ROLES[before], ROLES[after]));
        }
    }
    None
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The role row of the state panel: (before, after).
fn panel_roles(browser: &Browser) -> (String, String) {
    panel_row(browser, "role")
}

/// A row of the state panel, by its name: (before, after).
fn panel_row(browser: &Browser, name: &str) -> (String, String) {
    let cells = browser
        .execute(
            "const row = [...document.querySelectorAll('#state-table tr')]\
               .find(r => r.querySelector('th') && r.querySelector('th').innerText === arguments[0]);\
             return row ? [...row.querySelectorAll('td')].map(td => td.innerText) : [];",
            json!([name]),
        )
        .expect("the state table");
    let text = |i: usize| cells[i].as_str().unwrap_or_default().to_string();
    (text(0), text(1))
}

fn panel_step(browser: &Browser) -> Option<u64> {
    let step = browser
        .execute(
            "return document.getElementById('state').dataset.step || null;",
            json!([]),
        )
        .expect("the panel");
    step.as_str().and_then(|s| s.parse().ok())
}

/// Centres the view on `step`, `span` time units wide.
fn zoom_to(browser: &Browser, step: usize, span: f64) {
    browser
        .execute(
            "const t = arguments[1]; window.__timeline.setView(t - arguments[0] / 2, t + arguments[0] / 2);",
            json!([span, step_time(browser, step)]),
        )
        .expect("setView");
}

fn step_time(browser: &Browser, step: usize) -> f64 {
    // The time column is the running sum of "dt"; the page knows it.
    browser
        .execute(
            "const p = document.getElementById('timeline-data');\
             const dt = JSON.parse(p.textContent).steps.dt; let t = 0;\
             for (let i = 0; i <= arguments[0]; i++) t += dt[i]; return t;",
            json!([step]),
        )
        .expect("a time")
        .as_f64()
        .expect("a number")
}

#[test]
fn a_clicked_event_shows_the_state_before_and_after_it() {
    let Some(browser) = Browser::start().expect("the browser starts") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let page = draw(
        dir.path(),
        &[
            "--seed",
            "3",
            "--nodes",
            "3",
            "--faults",
            "chaos",
            "--duration",
            "5s",
        ],
    );
    let data = embedded_data(&page);
    let (step, before, after) =
        role_change(&data, "timeout").expect("a timeout that changed a node's role");
    browser.goto(&file_url(&page)).expect("the page opens");
    let ready = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             (function wait() { if (window.__timelineReady) done(true); else requestAnimationFrame(wait); })();",
        )
        .expect("the page draws");
    assert_eq!(ready, json!(true));

    // A click on the event's row in the list of events in view.
    zoom_to(&browser, step, 20_000.0);
    browser
        .click(&format!(".ev[data-step=\"{step}\"]"))
        .expect("the event's row");
    assert_eq!(panel_step(&browser), Some(step as u64));
    let event = browser.text("#state-event").expect("the event text");
    assert!(event.starts_with("timeout"), "{event}");
    assert_eq!(
        panel_roles(&browser),
        (before.to_string(), after.to_string())
    );

    // A real mouse click where the canvas draws the event.
    browser.execute("document.getElementById('state').innerHTML = ''; delete document.getElementById('state').dataset.step;", json!([])).expect("clear");
    zoom_to(&browser, step, 200.0);
    let point = browser
        .execute(
            "return window.__timeline.stepPoint(arguments[0]);",
            json!([step]),
        )
        .expect("the step's point");
    let (x, y) = (
        point["x"].as_f64().expect("x"),
        point["y"].as_f64().expect("y"),
    );
    browser.click_at(x, y).expect("a click on the canvas");
    assert_eq!(
        panel_step(&browser),
        Some(step as u64),
        "the click at ({x}, {y}) selects it"
    );
    assert_eq!(
        panel_roles(&browser),
        (before.to_string(), after.to_string())
    );

    // The right arrow steps to the next event, whose "before" on the same
    // node is this one's "after" when it is on the same node.
    browser.press("\u{E014}").expect("the right arrow");
    assert_eq!(panel_step(&browser), Some(step as u64 + 1));
    browser.press("\u{E012}").expect("the left arrow");
    assert_eq!(panel_step(&browser), Some(step as u64));
}

#[test]
fn a_300s_chaos_page_of_5_nodes_is_under_20_mb_and_interactive_within_3_s() {
    let Some(browser) = Browser::start().expect("the browser starts") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let page = draw(
        dir.path(),
        &[
            "--seed",
            "1",
            "--nodes",
            "5",
            "--faults",
            "chaos",
            "--duration",
            "300s",
        ],
    );
    let bytes = std::fs::metadata(&page).expect("the page").len();
    browser.goto(&file_url(&page)).expect("the page opens");
    let ready_ms = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             (function wait() { if (window.__timelineReady) done(window.__timelineReadyMs); else requestAnimationFrame(wait); })();",
        )
        .expect("the page draws")
        .as_f64()
        .expect("milliseconds");
    eprintln!(
        "300 s chaos seed 1, 5 nodes: page {:.1} MB, interactive {ready_ms:.0} ms after navigation",
        bytes as f64 / 1e6
    );
    assert!(bytes < 20_000_000, "{bytes} bytes");
    assert!(ready_ms < 3000.0, "{ready_ms} ms");
    // Interactive means it answers: a click on an event in the list shows its state.
    browser.click(".ev").expect("an event row");
    assert!(browser.text("#state-event").is_ok());
}

#[test]
fn a_scenario_draws_each_event_as_a_step_with_its_messages() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let page = dir.path().join("scenario.html");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/scenarios/cluster-crash-follower-restart-catches-up.scn"
    );
    let output = common::skiff(&[
        "scenario",
        scenario,
        "--html",
        page.to_str().expect("UTF-8"),
    ])
    .output()
    .expect("skiff runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let data = embedded_data(&page);
    assert_eq!(data["unit"], "event");
    assert_eq!(data["nodes"], json!(["1", "2", "3"]));
    let events: Vec<&str> = data["steps"]["e"]
        .as_array()
        .expect("events")
        .iter()
        .map(|id| {
            data["strings"][id.as_u64().expect("an id") as usize]
                .as_str()
                .expect("a text")
        })
        .collect();
    assert_eq!(&events[..4], ["set up", "set up", "set up", "timeout"]);
    assert!(
        events.contains(&"crash") && events.contains(&"restart"),
        "{events:?}"
    );
    assert!(!data["msgs"]["k"].as_array().expect("messages").is_empty());
    assert_eq!(data["violation"], Value::Null, "the scenario passes");
}

/// `skiff up --ui`'s view of a real cluster: the page, served live, draws a
/// step per node from the nodes' statuses, and a click shows a node's
/// role and term as the leader reports them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_of_a_cluster_shows_each_node_s_state() {
    let Some(browser) = Browser::start().expect("the browser starts") else {
        return;
    };
    let cluster = common::TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let live = skiff::ui::live::LiveCluster::of(&cluster.cluster).expect("the cluster's view");
    let address = skiff::ui::live::start("127.0.0.1:0", live)
        .await
        .expect("the UI listens");
    // The browser's calls block: they run off the runtime's threads, which
    // serve the page and poll the nodes meanwhile.
    let (leader_id, term) = (leader.id.0, leader.term.0);
    tokio::task::spawn_blocking(move || {
        browser
            .goto(&format!("http://{address}/"))
            .expect("the page opens");
        // Waits, frame by frame, for a step from every node.
        let steps = browser
            .execute_async(
                "const done = arguments[arguments.length - 1];\
                 (function wait() { if (window.__timeline && window.__timeline.steps() >= 3) done(window.__timeline.steps()); else requestAnimationFrame(wait); })();",
            )
            .expect("the statuses arrive");
        assert!(steps.as_u64().unwrap_or(0) >= 3, "{steps}");
        // The first poll adds one step per node, in lane order.
        let row = format!(".ev[data-step=\"{}\"]", leader_id - 1);
        browser.click(&row).expect("the leader's row");
        let event = browser.text("#state-event").expect("the event");
        assert_eq!(event, "status changed");
        assert_eq!(panel_roles(&browser).1, "leader");
        assert_eq!(panel_row(&browser, "term").1, term.to_string());
    })
    .await
    .expect("the browser's checks");
}

#[test]
fn a_failed_scenario_line_is_the_page_s_violation() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let scenario = dir.path().join("fails.scn");
    std::fs::write(&scenario, "node id=1 peers=1,2,3\ntimeout\ncheck term=7\n").expect("writes");
    let page = dir.path().join("fails.html");
    let output = common::skiff(&[
        "scenario",
        scenario.to_str().expect("UTF-8"),
        "--html",
        page.to_str().expect("UTF-8"),
    ])
    .output()
    .expect("skiff runs");
    assert!(!output.status.success(), "the scenario fails");
    let data = embedded_data(&page);
    let violation = data["violation"]["text"].as_str().expect("a violation");
    assert!(violation.starts_with("line 3: check term=7"), "{violation}");
    assert_eq!(data["nodes"], json!(["1"]));
}
