//! The JSON the page reads. Columns rather than objects, so that a million
//! steps cost a few bytes each:
//!
//! ```text
//! { "title", "unit": "us" | "event", "nodes": [names], "end": time,
//!   "strings": [texts],                    // everything below refers by position
//!   "steps":  { "dt": [time - previous step's time],
//!               "n": node indices,         // a digit string when under 11 nodes
//!               "e": [event text], "a": [actions text],
//!               "c": "0"/"1" per step },   // 1: the next "states" row is its state after
//!   "states": { "r": role digits (0 down, 1 follower, 2 pre-candidate,
//!               3 candidate, 4 leader), "v": [vote], "l": [leader],
//!               "t", "c", "i", "lt": [each minus the previous row's] },  // term, commit, last index, last term
//!   "msgs":   { "s": [sending step - previous message's], "to": node indices,
//!               "k": [kind text], "d": [delivery - send time, -1 lost, -2 blocked] },
//!   "spans":  [[0 down | 1 partition, node or -1, start, end, text]],
//!   "notes":  { "t": [time - previous note's], "n": [node or -1], "x": [text] },
//!   "reqs":   { "c": [client], "n": [node], "s": [start], "e": [end - start], "o": [outcome] },
//!   "violation": null | { "t": time, "text": text } }
//! ```

use super::{Delivery, NodeState, SpanKind, Timeline};
use std::fmt::Write as _;

/// One numeric field of a state row.
type StateColumn = fn(&NodeState) -> u64;

pub(super) fn write(timeline: &Timeline) -> String {
    let mut out = String::with_capacity(16 * timeline.steps.len() + 1024);
    let digits = timeline.node_names.len() <= 10;
    out.push('{');
    field(&mut out, "title", &quote(&timeline.title));
    out.push(',');
    field(&mut out, "unit", &quote(timeline.unit));
    out.push(',');
    let names: Vec<String> = timeline.node_names.iter().map(|n| quote(n)).collect();
    field(&mut out, "nodes", &format!("[{}]", names.join(",")));
    out.push(',');
    field(&mut out, "end", &timeline.end.to_string());
    out.push_str(",\"strings\":[");
    for (position, text) in timeline.strings.texts.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        out.push_str(&quote(text));
    }
    out.push_str("],\"steps\":{");
    let steps = &timeline.steps;
    deltas(&mut out, "dt", steps.iter().map(|s| s.time));
    out.push(',');
    nodes(&mut out, "n", steps.iter().map(|s| s.node), digits);
    out.push(',');
    numbers(&mut out, "e", steps.iter().map(|s| i64::from(s.event)));
    out.push(',');
    numbers(&mut out, "a", steps.iter().map(|s| i64::from(s.actions)));
    out.push(',');
    nodes(
        &mut out,
        "c",
        steps.iter().map(|s| u32::from(s.changed)),
        true,
    );
    out.push_str("},\"states\":{");
    let states = &timeline.states;
    nodes(
        &mut out,
        "r",
        states.iter().map(|s| u32::from(s.role)),
        true,
    );
    out.push(',');
    numbers(&mut out, "v", states.iter().map(|s| s.vote as i64));
    out.push(',');
    numbers(&mut out, "l", states.iter().map(|s| s.leader as i64));
    let columns: [(&str, StateColumn); 4] = [
        ("t", |s| s.term),
        ("c", |s| s.commit),
        ("i", |s| s.last_index),
        ("lt", |s| s.last_term),
    ];
    for (name, column) in columns {
        out.push(',');
        deltas(&mut out, name, states.iter().map(column));
    }
    out.push_str("},\"msgs\":{");
    let sent = &timeline.sent;
    deltas(&mut out, "s", sent.iter().map(|m| u64::from(m.step)));
    out.push(',');
    nodes(&mut out, "to", sent.iter().map(|m| m.to), digits);
    out.push(',');
    numbers(&mut out, "k", sent.iter().map(|m| i64::from(m.kind)));
    out.push(',');
    let send_time = |step: u32| steps.get(step as usize).map_or(timeline.end, |s| s.time);
    numbers(
        &mut out,
        "d",
        sent.iter().map(|m| match m.delivery {
            Delivery::At(at) => at.saturating_sub(send_time(m.step)) as i64,
            Delivery::Lost => -1,
            Delivery::Blocked => -2,
        }),
    );
    out.push_str("},\"spans\":[");
    for (position, span) in timeline.spans.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        let kind = match span.kind {
            SpanKind::Down => 0,
            SpanKind::Partition => 1,
        };
        let node = span.node.map_or(-1, i64::from);
        let end = span.end.unwrap_or(timeline.end);
        let _ = write!(out, "[{kind},{node},{},{end},{}]", span.start, span.text);
    }
    out.push_str("],\"notes\":{");
    let notes = &timeline.notes;
    deltas(&mut out, "t", notes.iter().map(|n| n.time));
    out.push(',');
    numbers(
        &mut out,
        "n",
        notes.iter().map(|n| n.node.map_or(-1, i64::from)),
    );
    out.push(',');
    numbers(&mut out, "x", notes.iter().map(|n| i64::from(n.text)));
    out.push_str("},\"reqs\":{");
    let requests = &timeline.requests;
    numbers(&mut out, "c", requests.iter().map(|r| i64::from(r.client)));
    out.push(',');
    numbers(&mut out, "n", requests.iter().map(|r| i64::from(r.node)));
    out.push(',');
    numbers(&mut out, "s", requests.iter().map(|r| r.start as i64));
    out.push(',');
    numbers(
        &mut out,
        "e",
        requests.iter().map(|r| (r.end - r.start) as i64),
    );
    out.push(',');
    numbers(&mut out, "o", requests.iter().map(|r| i64::from(r.outcome)));
    out.push_str("},\"violation\":");
    match &timeline.violation {
        None => out.push_str("null"),
        Some((time, text)) => {
            let _ = write!(out, "{{\"t\":{time},\"text\":{}}}", quote(text));
        }
    }
    out.push('}');
    out
}

fn quote(text: &str) -> String {
    // A string always serializes; the fallback is never taken.
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

fn field(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, "\"{name}\":{value}");
}

fn numbers(out: &mut String, name: &str, values: impl Iterator<Item = i64>) {
    let _ = write!(out, "\"{name}\":[");
    for (position, value) in values.enumerate() {
        if position > 0 {
            out.push(',');
        }
        let _ = write!(out, "{value}");
    }
    out.push(']');
}

/// Each value minus the one before (the first minus zero), signed.
fn deltas(out: &mut String, name: &str, values: impl Iterator<Item = u64>) {
    let mut previous = 0i64;
    numbers(
        out,
        name,
        values.map(|value| {
            let value = value as i64;
            let delta = value.wrapping_sub(previous);
            previous = value;
            delta
        }),
    );
}

/// Small numbers (node indices, flags): one digit each in a string when
/// `digits` (every value below 10), an array otherwise.
fn nodes(out: &mut String, name: &str, values: impl Iterator<Item = u32>, digits: bool) {
    if !digits {
        return numbers(out, name, values.map(i64::from));
    }
    let _ = write!(out, "\"{name}\":\"");
    for value in values {
        out.push(char::from_digit(value.min(9), 10).unwrap_or('9'));
    }
    out.push('"');
}
