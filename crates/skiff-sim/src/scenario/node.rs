//! One machine as a scenario drives it: the machine (absent while crashed),
//! what it persisted, the batch of its latest event, what it committed, and
//! its application (the simulator's folded state), which its snapshots
//! capture. Both runners use it, so the checks on every batch are the same
//! in both modes.

use super::check::{check_durable_agrees, check_persistence_first};
use super::report::StateSummary;
use crate::app::{AppState, Snapshot};
use crate::durable::Durable;
use crate::timeline::{label, NodeState, Timeline};
use skiff_core::render::EntryDataText;
use skiff_core::{
    Action, Bytes, Config, Event, LogIndex, Machine, SnapshotMeta, StartState, StateError,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

/// A machine and the driver state around it.
pub(crate) struct Node {
    config: Config,
    machine: Option<Machine>,
    durable: Durable,
    /// The actions of the most recent event (or restart); `None` before the
    /// first one and while crashed.
    batch: Option<Vec<Action>>,
    /// Data committed at each index, over all lifetimes of the node.
    committed: BTreeMap<u64, Bytes>,
    /// The last index committed in this lifetime: the next commit must be
    /// the one after it, since a machine reports each entry once, in order.
    lifetime_commit: LogIndex,
    /// The application: the committed data folded in order, and its state
    /// after each index applied (what a snapshot through that index holds).
    app: AppState,
    app_history: BTreeMap<LogIndex, AppState>,
    /// Where its steps are recorded for a page, and its position there.
    timeline: Option<(SharedTimeline, usize)>,
}

/// A recording the nodes of one scenario share.
pub(crate) type SharedTimeline = Rc<RefCell<Timeline>>;

impl Node {
    /// A node in `state`, which counts as already persisted.
    pub(crate) fn with_state(config: Config, state: StartState) -> Result<Node, StateError> {
        // A snapshot given in the set-up has no application state to go
        // with it: nothing before it was applied here.
        let durable =
            Durable::with_snapshot(state.hard_state, state.snapshot, None, state.log.clone());
        let machine = Machine::with_state(config.clone(), state)?;
        let lifetime_commit = machine.commit_index();
        Ok(Node {
            config,
            machine: Some(machine),
            durable,
            batch: None,
            committed: BTreeMap::new(),
            lifetime_commit,
            app: AppState::default(),
            app_history: BTreeMap::new(),
            timeline: None,
        })
    }

    /// Records this node's steps, crashes and restarts into `timeline` as
    /// node index `index`, each step one unit of time.
    pub(crate) fn record_into(&mut self, timeline: SharedTimeline, index: usize) {
        timeline
            .borrow_mut()
            .name_node(index, &self.config.id.to_string());
        self.timeline = Some((timeline, index));
    }

    /// Records a step that handled `event` (its batch is the latest one).
    fn record(&self, event: &str) {
        let Some((timeline, index)) = &self.timeline else {
            return;
        };
        let mut timeline = timeline.borrow_mut();
        let time = timeline.step_count() as u64;
        let actions = self
            .batch
            .as_deref()
            .map(label::actions)
            .unwrap_or_default();
        let after = self.machine.as_ref().map(NodeState::of);
        timeline.step(time, *index, event, &actions, after);
    }

    pub(crate) fn machine(&self) -> Option<&Machine> {
        self.machine.as_ref()
    }

    pub(crate) fn batch(&self) -> Option<&[Action]> {
        self.batch.as_deref()
    }

    pub(crate) fn state(&self) -> Option<StateSummary> {
        self.machine.as_ref().map(StateSummary::of)
    }

    /// Calls `start` on the machine. The actions are performed but, at
    /// set-up, are not a batch that expectations look at.
    pub(crate) fn start(&mut self, as_batch: bool) -> Result<(), String> {
        let Some(machine) = self.machine.as_mut() else {
            return Err("the node is crashed".to_string());
        };
        let mut actions = Vec::new();
        let outcome = catch_unwind(AssertUnwindSafe(|| machine.start(&mut actions)));
        let result = self.perform(actions, outcome.map_err(panic_message), as_batch);
        self.record(if as_batch { "restart" } else { "set up" });
        result
    }

    /// The snapshot this node would send a follower: its current one, with
    /// the application state it holds, if it has one.
    pub(crate) fn current_snapshot(&self) -> Option<Snapshot> {
        self.durable.current_snapshot()
    }

    /// A peer's snapshot arrived whole and durable, ahead of the
    /// `InstallSnapshotReq` that names it.
    pub(crate) fn receive_snapshot(&mut self, snapshot: Snapshot) {
        self.durable.receive_snapshot(snapshot);
    }

    /// Hands `event` to the machine and performs the batch it answers with.
    /// Before a `SnapshotTaken`, the application captures its state through
    /// that index in a durable snapshot, as a driver does, when it can (an
    /// index it never applied, or one the disk cannot name, is left to the
    /// machine to ignore).
    pub(crate) fn step(&mut self, event: Event) -> Result<(), String> {
        if let Event::SnapshotTaken { index } = event {
            self.capture(index);
        }
        let Some(machine) = self.machine.as_mut() else {
            return Err("the node is crashed".to_string());
        };
        let text = self.timeline.as_ref().map(|_| label::event(&event));
        let mut actions = Vec::new();
        let outcome = catch_unwind(AssertUnwindSafe(|| machine.step(event, &mut actions)));
        let result = self.perform(actions, outcome.map_err(panic_message), true);
        if let Some(text) = text {
            self.record(&text);
        }
        result
    }

    fn capture(&mut self, index: LogIndex) {
        let (Some(state), Some(term)) = (self.app_history.get(&index), self.durable.term_at(index))
        else {
            return;
        };
        let snapshot = Snapshot {
            meta: SnapshotMeta { index, term },
            state: *state,
        };
        // Refused only for a snapshot that is not past the current one,
        // which the machine ignores as well.
        let _ = self.durable.store_snapshot(snapshot);
    }

    /// Loses the machine and the last batch; keeps what was persisted.
    pub(crate) fn crash(&mut self) {
        self.machine = None;
        self.durable.crash();
        self.batch = None;
        self.record("crash");
    }

    /// Rebuilds the machine from what it persisted and starts it; the
    /// start's actions are the node's batch. With `keep`, the disk lost
    /// every entry after index `keep` and the machine restarts damaged.
    pub(crate) fn restart(&mut self, keep: Option<u64>) -> Result<(), String> {
        let config = self.config.clone();
        let restored = match keep {
            None => self.durable.restore(config),
            Some(keep) => {
                self.durable.lose_log_after(LogIndex(keep));
                self.durable.restore_damaged(config)
            }
        };
        let machine =
            restored.map_err(|e| format!("the machine refuses its persisted state: {e}"))?;
        // A machine restored from a snapshot reports commits after it; the
        // application restarts from the snapshot's state.
        self.lifetime_commit = machine.commit_index();
        self.app = self
            .durable
            .current_snapshot()
            .map_or_else(AppState::default, |snapshot| snapshot.state);
        self.app_history
            .retain(|index, _| *index <= self.app.applied);
        self.machine = Some(machine);
        self.start(true)
    }

    /// The non-empty data committed from index 1 on, as far as it is known
    /// without a gap.
    pub(crate) fn committed_data(&self) -> Vec<Bytes> {
        (1..)
            .map_while(|index| self.committed.get(&index))
            .filter(|data| !data.is_empty())
            .cloned()
            .collect()
    }

    /// Performs a batch made up by a test, as if the machine had emitted it.
    #[cfg(test)]
    pub(crate) fn perform_for_test(&mut self, actions: Vec<Action>) -> Result<(), String> {
        self.perform(actions, Ok(()), true)
    }

    /// Records the batch, then checks it the way every batch is checked:
    /// persistence first, a durable state the machine agrees with, and
    /// commits in order, never contradicting an earlier one.
    fn perform(
        &mut self,
        actions: Vec<Action>,
        outcome: Result<(), String>,
        as_batch: bool,
    ) -> Result<(), String> {
        let actions = if as_batch {
            &**self.batch.insert(actions)
        } else {
            self.batch = None;
            &actions
        };
        outcome?;
        if as_batch {
            check_persistence_first(actions)?;
        }
        for action in actions {
            self.durable
                .apply(action)
                .map_err(|refused| format!("{action} {refused}"))?;
            match action {
                Action::Commit {
                    data,
                    result: Ok(index),
                } => {
                    record_commit(&mut self.committed, &mut self.lifetime_commit, *index, data)?;
                    self.app.apply(data);
                    self.app_history.insert(*index, self.app);
                }
                // The entries an installed snapshot covers are committed
                // without a report; the next report follows the snapshot,
                // and the application takes the snapshot's state.
                Action::SnapshotInstall { snapshot, .. } => {
                    self.lifetime_commit = snapshot.index;
                    self.app = self.durable.current_snapshot().map_or(
                        AppState {
                            applied: snapshot.index,
                            ..AppState::default()
                        },
                        |installed| installed.state,
                    );
                    self.app_history.insert(snapshot.index, self.app);
                }
                _ => {}
            }
        }
        // A received snapshot the batch did not install is deleted.
        self.durable.discard_received();
        // A scenario's driver syncs each batch before the next event, so a
        // crash (always between events) loses none of it.
        self.durable.sync();
        match &self.machine {
            Some(machine) => check_durable_agrees(&self.durable, machine),
            None => Ok(()),
        }
    }
}

fn record_commit(
    committed: &mut BTreeMap<u64, Bytes>,
    lifetime_commit: &mut LogIndex,
    index: LogIndex,
    data: &Bytes,
) -> Result<(), String> {
    if index != lifetime_commit.next() {
        return Err(format!(
            "Commit(index={index}) out of order: the last commit reported since the machine started is index {lifetime_commit}"
        ));
    }
    *lifetime_commit = index;
    match committed.get(&index.0) {
        Some(earlier) if earlier != data => Err(format!(
            "Commit(index={index}, data={}) contradicts the earlier commit of {} at index {index}",
            EntryDataText(data),
            EntryDataText(earlier)
        )),
        Some(_) => Ok(()),
        None => {
            committed.insert(index.0, data.clone());
            Ok(())
        }
    }
}

/// The text of a panic caught from the machine.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    format!("the machine panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_must_come_in_order_and_agree() {
        let mut committed = BTreeMap::new();
        let mut last = LogIndex::ZERO;
        let a = Bytes::from("a");
        let b = Bytes::from("b");
        record_commit(&mut committed, &mut last, LogIndex(1), &a).unwrap();
        assert!(record_commit(&mut committed, &mut last, LogIndex(1), &a)
            .unwrap_err()
            .contains("out of order"));
        assert!(record_commit(&mut committed, &mut last, LogIndex(3), &a).is_err());
        // A restarted machine reports again from index 1; it must agree.
        let mut restarted = LogIndex::ZERO;
        record_commit(&mut committed, &mut restarted, LogIndex(1), &a).unwrap();
        assert!(record_commit(&mut committed, &mut restarted, LogIndex(2), &b).is_ok());
        let mut again = LogIndex::ZERO;
        assert!(record_commit(&mut committed, &mut again, LogIndex(1), &b)
            .unwrap_err()
            .contains("contradicts the earlier commit of a"));
    }
}
