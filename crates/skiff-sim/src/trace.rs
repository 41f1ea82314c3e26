//! A run's trace: every event and action, in order.
//!
//! The hash is always kept; it is fed a fixed binary encoding of each event
//! and action rather than their text, so that a run that writes no trace
//! formats no strings. The text, in the scenario rendering (an event line
//! `t=12.345 on 2 recv from=1 AppendEntriesReq(...)` followed by its actions
//! indented), is produced only when asked for: written out, or kept as a
//! tail of the last lines for a violation report.

use crate::hash::StableHasher;
use crate::queue::Micros;
use skiff_core::{Action, CommitError, Entry, LogIndex, Message, NodeId, VoteReq, VoteResp};
use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// Where the text of a trace goes.
pub enum TraceOutput {
    /// Nowhere: only the hash is kept.
    None,
    /// Every line, to a writer (a file).
    Writer(Box<dyn Write + Send>),
    /// The last lines, kept in a [`Tail`] for a report.
    Tail(Tail),
}

/// The last lines of a trace, shared with whoever reads them, so that they
/// survive even a run that ends in a panic.
#[derive(Clone, Debug)]
pub struct Tail {
    inner: Arc<Mutex<(VecDeque<String>, usize)>>,
}

impl Tail {
    /// Keeps the last `capacity` lines.
    pub fn new(capacity: usize) -> Tail {
        Tail {
            inner: Arc::new(Mutex::new((VecDeque::new(), capacity))),
        }
    }

    fn push(&self, line: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (lines, capacity) = &mut *inner;
        if *capacity == 0 {
            return;
        }
        if lines.len() == *capacity {
            lines.pop_front();
        }
        lines.push_back(line.to_string());
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.0.iter().cloned().collect()
    }
}

enum Text {
    None,
    Writer {
        out: Box<dyn Write + Send>,
        error: Option<std::io::Error>,
    },
    Tail(Tail),
}

/// The trace of one run.
pub struct Trace {
    hasher: StableHasher,
    text: Text,
    /// Text is held back (the hash is not) until the world unmutes it.
    muted: bool,
    line: String,
}

impl Trace {
    /// A trace whose text goes to `output`.
    pub fn new(output: TraceOutput) -> Trace {
        let text = match output {
            TraceOutput::None => Text::None,
            TraceOutput::Writer(out) => Text::Writer { out, error: None },
            TraceOutput::Tail(tail) => Text::Tail(tail),
        };
        Trace {
            hasher: StableHasher::default(),
            text,
            muted: false,
            line: String::new(),
        }
    }

    /// Whether text lines are wanted; callers skip formatting when not.
    #[inline]
    pub fn wants_text(&self) -> bool {
        !self.muted && !matches!(self.text, Text::None)
    }

    /// Holds text back, or lets it through again. A replay that only needs
    /// the last lines before a known step stays muted until shortly before
    /// it, so it formats almost nothing.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Appends one text line.
    pub fn line(&mut self, args: fmt::Arguments<'_>) {
        use std::fmt::Write as _;
        if self.muted {
            return;
        }
        self.line.clear();
        let _ = self.line.write_fmt(args);
        match &mut self.text {
            Text::None => {}
            Text::Writer { out, error } => {
                if error.is_none() {
                    if let Err(e) = writeln!(out, "{}", self.line) {
                        *error = Some(e);
                    }
                }
            }
            Text::Tail(tail) => tail.push(&self.line),
        }
    }

    /// The hasher, for the `hash_*` encoders.
    #[inline]
    pub fn hasher(&mut self) -> &mut StableHasher {
        &mut self.hasher
    }

    /// The hash of everything traced so far.
    pub fn hash(&self) -> u64 {
        self.hasher.value()
    }

    /// Ends the trace: flushes a writer, or returns its first write error.
    pub fn finish(self) -> Result<(), std::io::Error> {
        match self.text {
            Text::None | Text::Tail(_) => Ok(()),
            Text::Writer { mut out, error } => match error {
                Some(e) => Err(e),
                None => out.flush(),
            },
        }
    }
}

/// Renders a simulated time as milliseconds with microseconds: `t=12.345`.
pub struct Time(pub Micros);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// Mixes a message into the hash.
pub fn hash_message(h: &mut StableHasher, message: &Message) {
    match message {
        Message::AppendEntriesReq(m) => {
            h.word(1);
            h.word(m.term.0);
            h.word(m.leader.0);
            h.word(m.prev_index.0);
            h.word(m.prev_term.0);
            h.word(m.commit.0);
            hash_read_round(h, m.read_round);
            h.word(m.entries.len() as u64);
            for entry in &m.entries {
                hash_entry(h, entry);
            }
        }
        Message::AppendEntriesResp(m) => {
            h.word(2);
            h.word(m.term.0);
            h.word(u64::from(m.success));
            h.word(m.index.0);
            hash_read_round(h, m.read_round);
        }
        Message::VoteReq(m) => hash_vote_req(h, 3, m),
        Message::VoteResp(m) => hash_vote_resp(h, 4, m),
        Message::InstallSnapshotReq(m) => {
            h.word(5);
            h.word(m.term.0);
            h.word(m.leader.0);
            h.word(m.snapshot.index.0);
            h.word(m.snapshot.term.0);
        }
        Message::InstallSnapshotResp(m) => {
            h.word(6);
            h.word(m.term.0);
            h.word(m.index.0);
        }
        Message::PreVoteReq(m) => hash_vote_req(h, 7, m),
        Message::PreVoteResp(m) => hash_vote_resp(h, 8, m),
        Message::ReadIndexReq(m) => {
            h.word(9);
            h.word(m.term.0);
            h.word(m.request);
        }
        Message::ReadIndexResp(m) => {
            h.word(10);
            h.word(m.term.0);
            h.word(m.request);
            h.word(u64::from(m.success));
            h.word(m.index.0);
        }
        Message::TimeoutNow(m) => {
            h.word(23);
            h.word(m.term.0);
        }
    }
}

/// A read round, mixed in only when set, so that the hashes of runs
/// without reads stay what they were before rounds existed.
fn hash_read_round(h: &mut StableHasher, round: u64) {
    if round != 0 {
        h.word(round);
    }
}

/// A VoteReq or PreVoteReq (`kind` tells which).
fn hash_vote_req(h: &mut StableHasher, kind: u64, m: &VoteReq) {
    h.word(kind);
    h.word(m.term.0);
    h.word(m.candidate.0);
    h.word(m.last_index.0);
    h.word(m.last_term.0);
    // Mixed in only when set, so that runs without transfers hash as before.
    if m.transfer {
        h.word(1);
    }
}

/// A VoteResp or PreVoteResp (`kind` tells which).
fn hash_vote_resp(h: &mut StableHasher, kind: u64, m: &VoteResp) {
    h.word(kind);
    h.word(m.term.0);
    h.word(u64::from(m.granted));
}

fn hash_entry(h: &mut StableHasher, entry: &Entry) {
    h.word(entry.term.0);
    h.bytes(&entry.data);
}

fn hash_node(h: &mut StableHasher, node: Option<NodeId>) {
    h.word(node.map_or(u64::MAX, |n| n.0));
}

/// Mixes an action into the hash.
pub fn hash_action(h: &mut StableHasher, action: &Action) {
    match action {
        Action::Send { to, message } => {
            h.word(11);
            h.word(to.0);
            hash_message(h, message);
        }
        Action::Commit { data, result } => {
            h.word(12);
            h.bytes(data);
            match result {
                Ok(index) => h.word(index.0),
                Err(CommitError::NotLeader { leader }) => {
                    h.word(u64::MAX);
                    hash_node(h, *leader);
                }
                Err(CommitError::Overwritten { index, .. }) => {
                    h.word(u64::MAX - 1);
                    h.word(index.0);
                }
                Err(other) => {
                    h.word(u64::MAX - 2);
                    h.bytes(other.to_string().as_bytes());
                }
            }
        }
        Action::Alarm { ms } => {
            h.word(13);
            h.word(*ms);
        }
        Action::LogStore { .. } => {
            // Entry by entry, so the hash does not depend on how entries
            // are grouped into actions.
            for (index, entry) in action.stored_entries() {
                h.word(14);
                h.word(index.0);
                hash_entry(h, entry);
            }
        }
        Action::LogTruncate { from } => {
            h.word(15);
            h.word(from.0);
        }
        Action::StateStore { term, voted_for } => {
            h.word(16);
            h.word(term.0);
            hash_node(h, *voted_for);
        }
        Action::Rejected { from, reason } => {
            h.word(17);
            h.word(from.0);
            h.bytes(reason.name().as_bytes());
        }
        Action::LogCompact { through, .. } => {
            h.word(18);
            h.word(through.0);
        }
        Action::SnapshotInstall { snapshot, .. } => {
            h.word(19);
            h.word(snapshot.index.0);
            h.word(snapshot.term.0);
        }
        Action::SteppedDown { reason } => {
            h.word(20);
            h.bytes(reason.name().as_bytes());
        }
        Action::ReadReady { id, index } => {
            h.word(21);
            h.word(id.0);
            h.word(index.0);
        }
        Action::ReadFailed { id, error } => {
            h.word(22);
            h.word(id.0);
            h.bytes(error.to_string().as_bytes());
        }
        Action::TransferEnded { to, result } => {
            h.word(24);
            h.word(to.0);
            h.bytes(action.to_string().as_bytes());
            let _ = result;
        }
        Action::MembershipChangeEnded { .. } => {
            h.word(25);
            h.bytes(action.to_string().as_bytes());
        }
    }
}

/// Mixes a world event's header (what happened, when, where) into the hash.
pub fn hash_event(h: &mut StableHasher, kind: u64, time: Micros, node: usize, detail: u64) {
    h.word(kind);
    h.word(time);
    h.word(node as u64);
    h.word(detail);
}

/// Mixes an index into the hash (client acknowledgements and the like).
pub fn hash_index(h: &mut StableHasher, index: LogIndex) {
    h.word(index.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::{Term, VoteResp};

    #[test]
    fn tail_keeps_the_last_lines() {
        let tail = Tail::new(2);
        let mut trace = Trace::new(TraceOutput::Tail(tail.clone()));
        for i in 0..5 {
            trace.line(format_args!("line {i}"));
        }
        trace.finish().expect("no io");
        assert_eq!(tail.lines(), vec!["line 3", "line 4"]);
    }

    #[test]
    fn hash_depends_on_content_not_text() {
        let vote = |granted| {
            Message::VoteResp(VoteResp {
                term: Term(3),
                granted,
            })
        };
        let mut a = Trace::new(TraceOutput::None);
        let mut b = Trace::new(TraceOutput::Tail(Tail::new(10)));
        hash_message(a.hasher(), &vote(true));
        hash_message(b.hasher(), &vote(true));
        b.line(format_args!("text does not change the hash"));
        assert_eq!(a.hash(), b.hash());
        hash_message(a.hasher(), &vote(true));
        hash_message(b.hasher(), &vote(false));
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn time_renders_in_milliseconds() {
        assert_eq!(Time(12_345).to_string(), "t=12.345");
        assert_eq!(Time(7).to_string(), "t=0.007");
    }
}
