//! A linearizability checker for histories of the file store.
//!
//! A history is a list of operations, each with the time it was invoked, its
//! input, and either the time it returned with its output or
//! [`Outcome::Unknown`] (the client timed out or crashed: the operation may
//! have taken effect at any time after its invocation, or never). It is
//! linearizable if the operations can be put in one order that respects real
//! time (an operation that returned before another was invoked comes first)
//! and in which every output is what the sequential [`Model`] would answer.
//!
//! # Algorithm
//!
//! Wing and Gong's search with Lowe's memoization, as in porcupine: build the
//! linearization one operation at a time, choosing among the operations that
//! no pending operation must precede, and backtrack on a wrong answer. A set
//! of (operations linearized, model state) pairs already explored prunes the
//! search, which is what makes it practical. Operations with an unknown
//! outcome never return, so they may be linearized anywhere after their
//! invocation, including after everything else, where their effect no longer
//! matters; this is how "took effect or not" is expressed. Models may be
//! nondeterministic (a step may lead to several states), which the file model
//! needs for versions no client saw. The search is bounded by a [`Budget`].
//!
//! Operations on different files are independent, so [`check_file_history`]
//! checks each file's operations on their own (P-compositionality, Horn and
//! Kroening): a history is linearizable if and only if each file's is.
//!
//! No crate fitted: `stateright`'s tester is part of a model checker, has no
//! memoization, no time-stamped histories and no per-key partitioning;
//! `lincheck` drives data structures under loom; porcupine itself is Go.
//!
//! # The file model
//!
//! [`FileModel`] is one file. Versions are log indices, which no client can
//! predict, so the model checks what the protocol promises about them: a
//! change's version is larger than every version seen for the file before it,
//! a read returns the version of the last change, and a cas succeeds exactly
//! when it names that version. The version of a change whose client saw no
//! answer is unknown until a read or a failed cas reveals it. Expiry is not
//! modelled: histories must use exptime 0.

use crate::protocol::{Request, Response, Version};
use bytes::Bytes;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// The state of the object.
    type State: Clone + Eq + Hash + Debug;
    /// An operation's input.
    type Input: Debug;
    /// An operation's output.
    type Output: Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Every state that `state` may move to when `input` runs against it and
    /// answers `output` (`None`: the answer is unknown). Empty when `output` is
    /// not a possible answer.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Vec<Self::State>;
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<O> {
    /// It returned `output` at time `at`.
    Returned {
        /// When the answer arrived, on the clock of the invocation times.
        at: u64,
        /// The answer.
        output: O,
    },
    /// No answer arrived (timeout, crash, lost connection): it may take effect
    /// at any time after its invocation, or never.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// When it was invoked, on any clock shared by all clients.
    pub invoked_at: u64,
    /// What was asked.
    pub input: I,
    /// How it ended.
    pub outcome: Outcome<O>,
}

impl<I, O> Operation<I, O> {
    /// When it returned; `u64::MAX` if it never did.
    fn returned_at(&self) -> u64 {
        match self.outcome {
            Outcome::Returned { at, .. } => at,
            Outcome::Unknown => u64::MAX,
        }
    }

    fn output(&self) -> Option<&O> {
        match &self.outcome {
            Outcome::Returned { output, .. } => Some(output),
            Outcome::Unknown => None,
        }
    }
}

/// A bound on the work of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The most (operations linearized, state) pairs explored per partition.
    pub states_max: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            states_max: 1_000_000,
        }
    }
}

/// Why a history was not found linearizable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// No linearization exists. `longest_prefix` is the longest sequence of
    /// operations (indices into the history) that could be linearized, which
    /// points at where the history went wrong.
    #[error("not linearizable; the longest linearizable prefix has {} operations", longest_prefix.len())]
    NotLinearizable {
        /// Indices of the operations in the longest linearizable prefix.
        longest_prefix: Vec<usize>,
    },
    /// The budget ran out before an answer was found.
    #[error("undecided after exploring {states} states")]
    BudgetExhausted {
        /// How many states were explored.
        states: usize,
    },
    /// An operation returned before it was invoked.
    #[error("operation {index} returns before it is invoked")]
    InvalidOperation {
        /// Its index in the history.
        index: usize,
    },
}

/// Checks that `history` is linearizable with respect to `model`.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: Budget,
) -> Result<(), CheckError> {
    if let Some(index) = history
        .iter()
        .position(|op| op.returned_at() < op.invoked_at)
    {
        return Err(CheckError::InvalidOperation { index });
    }
    Search::new(model, history, budget).run()
}

/// A set of operation indices.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OpSet {
    words: Vec<u64>,
}

impl OpSet {
    fn new(len: usize) -> OpSet {
        OpSet {
            words: vec![0; len.div_ceil(64)],
        }
    }

    fn contains(&self, op: usize) -> bool {
        self.words[op / 64] & (1 << (op % 64)) != 0
    }

    fn insert(&mut self, op: usize) {
        self.words[op / 64] |= 1 << (op % 64);
    }

    fn remove(&mut self, op: usize) {
        self.words[op / 64] &= !(1 << (op % 64));
    }
}

/// One level of the depth-first search: the state reached by linearizing `op`
/// and the choices for the next operation not yet tried.
struct Frame<S> {
    op: Option<usize>,
    choices: Vec<(usize, S)>,
    next_choice: usize,
}

struct Search<'a, M: Model> {
    model: &'a M,
    history: &'a [Operation<M::Input, M::Output>],
    budget: Budget,
    /// Operation indices sorted by invocation time.
    by_invocation: Vec<usize>,
    linearized: OpSet,
    /// Every (linearized set, state) pair explored so far.
    seen: HashSet<(OpSet, M::State)>,
    stack: Vec<Frame<M::State>>,
    longest_prefix: Vec<usize>,
}

impl<'a, M: Model> Search<'a, M> {
    fn new(model: &'a M, history: &'a [Operation<M::Input, M::Output>], budget: Budget) -> Self {
        let mut by_invocation: Vec<usize> = (0..history.len()).collect();
        by_invocation.sort_by_key(|&op| history[op].invoked_at);
        Search {
            model,
            history,
            budget,
            by_invocation,
            linearized: OpSet::new(history.len()),
            seen: HashSet::new(),
            stack: Vec::new(),
            longest_prefix: Vec::new(),
        }
    }

    fn run(mut self) -> Result<(), CheckError> {
        if self.history.is_empty() {
            return Ok(());
        }
        let init = self.model.init();
        let choices = self.choices(&init);
        self.stack.push(Frame {
            op: None,
            choices,
            next_choice: 0,
        });
        while let Some(frame) = self.stack.last_mut() {
            let Some((op, state)) = frame.choices.get(frame.next_choice).cloned() else {
                let exhausted = self.stack.pop().expect("the loop saw a frame");
                if let Some(op) = exhausted.op {
                    self.linearized.remove(op);
                }
                continue;
            };
            frame.next_choice += 1;
            self.linearized.insert(op);
            if self.stack.len() == self.history.len() {
                return Ok(());
            }
            if !self.seen.insert((self.linearized.clone(), state.clone())) {
                self.linearized.remove(op);
                continue;
            }
            if self.seen.len() > self.budget.states_max {
                return Err(CheckError::BudgetExhausted {
                    states: self.seen.len(),
                });
            }
            let choices = self.choices(&state);
            self.stack.push(Frame {
                op: Some(op),
                choices,
                next_choice: 0,
            });
            self.note_prefix();
        }
        Err(CheckError::NotLinearizable {
            longest_prefix: self.longest_prefix,
        })
    }

    /// The operations that may be linearized next from `state`, each with the
    /// states it leads to. An operation may go next when no other pending
    /// operation returned before it was invoked.
    fn choices(&self, state: &M::State) -> Vec<(usize, M::State)> {
        let pending = || {
            self.by_invocation
                .iter()
                .copied()
                .filter(|&op| !self.linearized.contains(op))
        };
        let first_return = pending()
            .map(|op| self.history[op].returned_at())
            .min()
            .unwrap_or(u64::MAX);
        let mut choices = Vec::new();
        for op in pending().take_while(|&op| self.history[op].invoked_at <= first_return) {
            let operation = &self.history[op];
            for next in self.model.step(state, &operation.input, operation.output()) {
                choices.push((op, next));
            }
        }
        choices
    }

    fn note_prefix(&mut self) {
        if self.stack.len() - 1 > self.longest_prefix.len() {
            self.longest_prefix = self.stack.iter().filter_map(|frame| frame.op).collect();
        }
    }
}

/// One operation on the file store, as a client saw it.
pub type FileOperation = Operation<Request, Response>;

/// What one file may look like to the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileState {
    /// Every later change has a version above this: the largest seen so far.
    floor: u64,
    /// The file, if it exists: its version (`None` until some client sees it)
    /// and contents.
    file: Option<(Option<u64>, Bytes)>,
}

/// The sequential specification of one file of the store (exptime 0).
#[derive(Clone, Copy, Debug, Default)]
pub struct FileModel;

impl FileModel {
    fn step_write(
        state: &FileState,
        contents: &Bytes,
        output: Option<&Response>,
    ) -> Vec<FileState> {
        let next = match output {
            Some(Response::Written { version }) => {
                (version.0 > state.floor).then(|| Self::changed(state, Some(version.0), contents))
            }
            Some(_) => None,
            None => Some(Self::changed(state, None, contents)),
        };
        next.into_iter().collect()
    }

    fn step_read(state: &FileState, output: Option<&Response>) -> Vec<FileState> {
        let next = match output {
            Some(Response::Contents {
                version, contents, ..
            }) => Self::reveal(state, version.0)
                .filter(|s| s.file.as_ref().is_some_and(|(_, c)| c == contents)),
            Some(Response::FileNotFound) => state.file.is_none().then(|| state.clone()),
            Some(_) => None,
            // A read whose answer nobody saw changes nothing.
            None => Some(state.clone()),
        };
        next.into_iter().collect()
    }

    fn step_delete(state: &FileState, output: Option<&Response>) -> Vec<FileState> {
        let deleted = FileState {
            floor: state.floor,
            file: None,
        };
        let next = match output {
            Some(Response::Deleted) => state.file.is_some().then_some(deleted),
            Some(Response::FileNotFound) => state.file.is_none().then(|| state.clone()),
            Some(_) => None,
            None => Some(deleted),
        };
        next.into_iter().collect()
    }
    /// The state after a change to `contents` whose version is `version`.
    fn changed(state: &FileState, version: Option<u64>, contents: &Bytes) -> FileState {
        FileState {
            floor: version.map_or(state.floor, |v| v.max(state.floor)),
            file: Some((version, contents.clone())),
        }
    }

    /// The state in which the existing file turns out to have version `seen`,
    /// if that is possible.
    fn reveal(state: &FileState, seen: u64) -> Option<FileState> {
        let (version, contents) = state.file.as_ref()?;
        let possible = match version {
            Some(v) => *v == seen,
            None => seen > state.floor,
        };
        possible.then(|| Self::changed(state, Some(seen), contents))
    }

    fn step_cas(
        state: &FileState,
        expected: Version,
        contents: &Bytes,
        output: Option<&Response>,
    ) -> Vec<FileState> {
        let expected = expected.0;
        match output {
            Some(Response::Written { version }) if version.0 > expected => {
                let matched = Self::reveal(state, expected);
                matched
                    .filter(|s| version.0 > s.floor)
                    .map(|s| Self::changed(&s, Some(version.0), contents))
                    .into_iter()
                    .collect()
            }
            Some(Response::VersionMismatch { current }) if current.0 != expected => {
                Self::reveal(state, current.0).into_iter().collect()
            }
            Some(Response::FileNotFound) if state.file.is_none() => vec![state.clone()],
            Some(_) => Vec::new(),
            None => match &state.file {
                None => vec![state.clone()],
                Some((Some(v), _)) if *v != expected => vec![state.clone()],
                Some((Some(_), _)) => vec![Self::changed(state, None, contents)],
                // Unknown version: the cas may or may not have matched it.
                Some((None, _)) if expected > state.floor => {
                    vec![state.clone(), Self::changed(state, None, contents)]
                }
                Some((None, _)) => vec![state.clone()],
            },
        }
    }
}

impl Model for FileModel {
    type State = FileState;
    type Input = Request;
    type Output = Response;

    fn init(&self) -> FileState {
        FileState {
            floor: 0,
            file: None,
        }
    }

    fn step(
        &self,
        state: &FileState,
        input: &Request,
        output: Option<&Response>,
    ) -> Vec<FileState> {
        match input {
            Request::Write { contents, .. } => Self::step_write(state, contents, output),
            Request::Cas {
                version, contents, ..
            } => Self::step_cas(state, *version, contents, output),
            Request::Read { .. } => Self::step_read(state, output),
            Request::Delete { .. } => Self::step_delete(state, output),
        }
    }
}

/// Why a history of the file store was not found linearizable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("operations on file {name:?}: {error}")]
pub struct FileHistoryError {
    /// The file whose operations failed the check.
    pub name: String,
    /// What the check found; operation indices are into the whole history.
    pub error: CheckError,
}

/// Checks a history of the file store one file at a time.
pub fn check_file_history(
    history: &[FileOperation],
    budget: Budget,
) -> Result<(), FileHistoryError> {
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, op) in history.iter().enumerate() {
        by_name.entry(op.input.name()).or_default().push(index);
    }
    for (name, indices) in by_name {
        let part: Vec<FileOperation> = indices.iter().map(|&i| history[i].clone()).collect();
        check(&FileModel, &part, budget).map_err(|error| FileHistoryError {
            name: name.to_string(),
            error: reindex(error, &indices),
        })?;
    }
    Ok(())
}

/// Maps operation indices of one file's part back to the whole history.
fn reindex(error: CheckError, indices: &[usize]) -> CheckError {
    match error {
        CheckError::NotLinearizable { longest_prefix } => CheckError::NotLinearizable {
            longest_prefix: longest_prefix.iter().map(|&i| indices[i]).collect(),
        },
        CheckError::InvalidOperation { index } => CheckError::InvalidOperation {
            index: indices[index],
        },
        other => other,
    }
}

#[cfg(test)]
mod tests;
