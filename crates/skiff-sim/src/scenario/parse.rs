//! Turns scenario text into a [`Script`]: the set-up and the steps, each
//! step with its line. The whole file is parsed before anything runs, so a
//! malformed line is reported even when an earlier expectation would fail.

use super::check::Check;
use super::cursor::{Cursor, Keyed};
use super::lex::{strip_comment, tokenize};
use super::message::{event, EVENT_COMMANDS};
use super::pattern::Pattern;
use skiff_core::{Bytes, Config, Event, HardState, LogIndex, NodeId, Role, StartState, Term};

/// The largest cluster a scenario may ask for.
pub(crate) const CLUSTER_SIZE_MAX: u64 = 100;

const DEFAULT_ELECTION_MS: u64 = 150;
const DEFAULT_HEARTBEAT_MS: u64 = 50;
const DEFAULT_SEED: u64 = 1;

const COMMANDS: &str =
    "node, state, append, timeout, snapshot, stall, recover, read, transfer, change, recv, expect, expect-none, check, \
     cluster, on, deliver, drop, stabilize, crash, restart, check-committed";

/// A parsed scenario.
#[derive(Debug)]
pub(crate) struct Script {
    pub(crate) setup: Setup,
    pub(crate) steps: Vec<Step>,
}

/// How the machines start.
#[derive(Debug)]
pub(crate) enum Setup {
    /// One machine, from `node` and `state`.
    Single {
        config: Config,
        state: StartState,
        /// The line to blame when the machine refuses the state.
        line: usize,
    },
    /// Nodes `1..=size`, fresh followers.
    Cluster {
        size: u64,
        /// The configuration of node 1; node `i` differs in id and seed.
        template: Config,
    },
}

/// One line that does something after set-up.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) line: usize,
    pub(crate) text: String,
    pub(crate) command: Command,
}

/// What a step does. `node` is `None` in single-node mode.
#[derive(Debug)]
pub(crate) enum Command {
    Event {
        node: Option<NodeId>,
        event: Event,
    },
    Expect {
        node: Option<NodeId>,
        pattern: Pattern,
        /// `expect` (some action matches) or `expect-none` (none does).
        present: bool,
    },
    Check {
        node: Option<NodeId>,
        checks: Vec<Check>,
    },
    Deliver {
        filter: Filter,
        count: Option<u64>,
    },
    Drop {
        filter: Filter,
    },
    Stabilize,
    Crash(NodeId),
    /// `restart N [keep=K]`: with `keep`, the node's disk lost its log
    /// after index K (damage its recovery noticed), and it restarts repairing.
    Restart {
        id: NodeId,
        keep: Option<u64>,
    },
    CheckCommitted(Vec<Bytes>),
}

/// Which queued messages `deliver` and `drop` touch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) from: Option<NodeId>,
    pub(crate) to: Option<NodeId>,
}

impl Filter {
    pub(crate) fn admits(&self, from: NodeId, to: NodeId) -> bool {
        let admits = |wanted: Option<NodeId>, id| wanted.is_none() || wanted == Some(id);
        admits(self.from, from) && admits(self.to, to)
    }
}

/// A malformed line: where, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LineError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// Parses a whole scenario.
pub(crate) fn parse(source: &str) -> Result<Script, LineError> {
    let mut parser = Parser::default();
    for (number, line) in source.lines().enumerate() {
        let number = number + 1;
        parser.line(number, line).map_err(|message| LineError {
            line: number,
            message,
        })?;
    }
    parser.finish()
}

/// What the parser knows so far.
#[derive(Default)]
struct Parser {
    node: Option<(Config, usize)>,
    state: Option<(StartState, usize)>,
    cluster: Option<(u64, Config)>,
    steps: Vec<Step>,
    /// Whether an event (or, in cluster mode, anything that causes one) came yet.
    seen_event: bool,
}

impl Parser {
    fn line(&mut self, number: usize, line: &str) -> Result<(), String> {
        let content = strip_comment(line);
        if content.trim().is_empty() {
            return Ok(());
        }
        let mut cursor = Cursor::new(content, tokenize(content)?);
        let command = match cursor.word("a command", "the start of the line") {
            Ok(command) => command,
            Err(_) => {
                return Err(format!(
                    "expected a command ({COMMANDS}), found {}",
                    cursor.found()
                ))
            }
        };
        let step = match command.as_str() {
            "node" | "state" | "cluster" => return self.setup(&command, cursor, number),
            _ => self.step(&command, cursor)?,
        };
        self.steps.push(Step {
            line: number,
            text: line.trim().to_string(),
            command: step,
        });
        Ok(())
    }

    fn setup(
        &mut self,
        command: &str,
        mut cursor: Cursor<'_>,
        number: usize,
    ) -> Result<(), String> {
        if !self.steps.is_empty() {
            return Err(format!("'{command}' must come before the first event"));
        }
        let args = cursor.arguments(command)?;
        match command {
            "node" => {
                self.refuse_repeat(command, self.node.is_some() || self.cluster.is_some())?;
                self.node = Some((node_config(Keyed::new(command, args, NODE_KEYS)?)?, number));
            }
            "state" => {
                self.refuse_repeat(command, self.state.is_some())?;
                if self.cluster.is_some() {
                    return Err(
                        "'state' is for single-node mode; a cluster starts from fresh followers"
                            .to_string(),
                    );
                }
                let (config, _) = self
                    .node
                    .as_ref()
                    .ok_or_else(|| "'state' must come after the 'node' line".to_string())?;
                let state = start_state(config, Keyed::new(command, args, STATE_KEYS)?)?;
                self.state = Some((state, number));
            }
            _ => {
                self.refuse_repeat(command, self.node.is_some() || self.cluster.is_some())?;
                self.cluster = Some(cluster(Keyed::new(command, args, CLUSTER_KEYS)?)?);
            }
        }
        Ok(())
    }

    fn refuse_repeat(&self, command: &str, repeated: bool) -> Result<(), String> {
        if repeated {
            Err(format!(
                "'{command}' repeats the set-up: a file has one 'node' (and one 'state') or one 'cluster' line"
            ))
        } else {
            Ok(())
        }
    }

    fn step(&mut self, command: &str, mut cursor: Cursor<'_>) -> Result<Command, String> {
        let step = match (&self.cluster, command) {
            (None, _) if self.node.is_none() => {
                return Err(format!(
                    "'{command}' before the set-up: start with a 'node' or a 'cluster' line"
                ))
            }
            (None, _) => self.single_step(command, &mut cursor)?,
            (Some(_), _) => self.cluster_step(command, &mut cursor)?,
        };
        if matches!(
            step,
            Command::Event { .. }
                | Command::Deliver { .. }
                | Command::Stabilize
                | Command::Restart { .. }
        ) {
            self.seen_event = true;
        }
        Ok(step)
    }

    fn single_step(&mut self, command: &str, cursor: &mut Cursor<'_>) -> Result<Command, String> {
        match command {
            _ if EVENT_COMMANDS.contains(&command) => Ok(Command::Event {
                node: None,
                event: event(command, cursor)?,
            }),
            "expect" | "expect-none" => {
                self.refuse_early_expect()?;
                Ok(Command::Expect {
                    node: None,
                    pattern: Pattern::new(cursor.rest())?,
                    present: command == "expect",
                })
            }
            "check" => Ok(Command::Check {
                node: None,
                checks: Check::parse_all(cursor.arguments("check")?)?,
            }),
            _ if CLUSTER_COMMANDS.contains(&command) => Err(format!(
                "'{command}' needs cluster mode: start the file with 'cluster n=N' instead of 'node'"
            )),
            _ => Err(unknown_command(command)),
        }
    }

    fn cluster_step(&mut self, command: &str, cursor: &mut Cursor<'_>) -> Result<Command, String> {
        let size = self.cluster_size();
        let node = |cursor: &mut Cursor<'_>, after: &str| {
            let id = cursor.node(after)?;
            in_cluster(id.0, size, &format!("{after} {id}"))
        };
        let step = match command {
            "on" => {
                let id = node(cursor, "on")?;
                let after = format!("on {id}");
                let event_name =
                    cursor.word("an event (append, timeout, snapshot, recv)", &after)?;
                Command::Event {
                    node: Some(id),
                    event: event(&event_name, cursor)?,
                }
            }
            "expect" | "expect-none" => {
                let id = node(cursor, command)?;
                self.refuse_early_expect()?;
                Command::Expect {
                    node: Some(id),
                    pattern: Pattern::new(cursor.rest())?,
                    present: command == "expect",
                }
            }
            "check" => {
                let id = node(cursor, "check")?;
                Command::Check {
                    node: Some(id),
                    checks: Check::parse_all(cursor.arguments(&format!("check {id}"))?)?,
                }
            }
            "deliver" | "drop" => self.traffic(command, cursor, size)?,
            "stabilize" => {
                cursor.finish("stabilize")?;
                Command::Stabilize
            }
            "crash" => {
                let id = node(cursor, command)?;
                cursor.finish(&format!("{command} {id}"))?;
                Command::Crash(id)
            }
            "restart" => {
                let id = node(cursor, command)?;
                let context = format!("restart {id}");
                let args = cursor.arguments(&context)?;
                let mut keyed = Keyed::new(&context, args, RESTART_KEYS)?;
                let keep = keyed.optional("keep").map(|a| a.number()).transpose()?;
                Command::Restart { id, keep }
            }
            "check-committed" => {
                let atoms = cursor.list("check-committed")?;
                let data = atoms
                    .iter()
                    .map(|atom| atom.data("check-committed"))
                    .collect::<Result<Vec<_>, _>>()?;
                Command::CheckCommitted(data)
            }
            _ if EVENT_COMMANDS.contains(&command) => {
                return Err(format!(
                    "in cluster mode an event names its node: 'on N {command} ...'"
                ))
            }
            _ => return Err(unknown_command(command)),
        };
        Ok(step)
    }

    /// `deliver [from=N] [to=M] [count=K]` and `drop [from=N] [to=M]`.
    fn traffic(
        &self,
        command: &str,
        cursor: &mut Cursor<'_>,
        size: u64,
    ) -> Result<Command, String> {
        let allowed: &[&str] = if command == "deliver" {
            &["from", "to", "count"]
        } else {
            &["from", "to"]
        };
        let mut keyed = Keyed::new(command, cursor.arguments(command)?, allowed)?;
        let mut member = |key: &str| -> Result<Option<NodeId>, String> {
            let Some(arg) = keyed.optional(key) else {
                return Ok(None);
            };
            in_cluster(arg.number()?, size, &arg.source).map(Some)
        };
        let filter = Filter {
            from: member("from")?,
            to: member("to")?,
        };
        if command == "drop" {
            return Ok(Command::Drop { filter });
        }
        let count = keyed
            .optional("count")
            .map(|arg| arg.number())
            .transpose()?;
        Ok(Command::Deliver { filter, count })
    }

    fn cluster_size(&self) -> u64 {
        self.cluster.as_ref().map_or(0, |(size, _)| *size)
    }

    fn refuse_early_expect(&self) -> Result<(), String> {
        if self.seen_event {
            Ok(())
        } else {
            Err("expect before any event: set-up produces no batch to look at".to_string())
        }
    }

    fn finish(self) -> Result<Script, LineError> {
        let setup = match (self.node, self.state, self.cluster) {
            (Some((config, node_line)), state, None) => {
                let (state, line) = state.unwrap_or((StartState::default(), node_line));
                Setup::Single {
                    config,
                    state,
                    line,
                }
            }
            (None, _, Some((size, template))) => Setup::Cluster { size, template },
            _ => {
                return Err(LineError {
                    line: 1,
                    message: "empty scenario: no 'node' or 'cluster' line".to_string(),
                })
            }
        };
        Ok(Script {
            setup,
            steps: self.steps,
        })
    }
}

const NODE_KEYS: &[&str] = &[
    "id",
    "peers",
    "election",
    "heartbeat",
    "seed",
    "term_lead_max",
    "prevote",
    "check_quorum",
    "lease_read",
    "join",
];
const STATE_KEYS: &[&str] = &[
    "config",
    "role",
    "term",
    "voted_for",
    "snapshot",
    "log",
    "commit",
    "damaged",
];
const RESTART_KEYS: &[&str] = &["keep"];
const CLUSTER_KEYS: &[&str] = &[
    "n",
    "election",
    "heartbeat",
    "seed",
    "term_lead_max",
    "prevote",
    "check_quorum",
    "lease_read",
    "join",
];
const CLUSTER_COMMANDS: &[&str] = &[
    "on",
    "deliver",
    "drop",
    "stabilize",
    "crash",
    "restart",
    "check-committed",
];

/// Node `id` if the cluster of `size` has it; `context` is the text naming it.
fn in_cluster(id: u64, size: u64, context: &str) -> Result<NodeId, String> {
    if id == 0 || id > size {
        return Err(format!(
            "node {id} in '{context}' is not in the cluster (nodes 1 to {size})"
        ));
    }
    Ok(NodeId(id))
}

fn unknown_command(command: &str) -> String {
    format!("unknown command '{command}' (expected one of {COMMANDS})")
}

/// `node id=1 peers=1,2,3 [election=150] [heartbeat=50] [seed=1] [term_lead_max=N]
/// [prevote=on|off] [check_quorum=on|off] [lease_read=MARGIN_MS] [join=true|false]`.
/// With `join=true` the node joins a running cluster whose first voters are
/// `peers`, itself not among them.
fn node_config(mut keyed: Keyed) -> Result<Config, String> {
    let id = NodeId(keyed.required("id")?.number()?);
    let peers = keyed.required("peers")?.nodes()?;
    let mut config = Config::new(id, peers);
    config.join = keyed
        .optional("join")
        .map(|a| a.boolean())
        .transpose()?
        .unwrap_or(false);
    timing(&mut keyed, &mut config)?;
    term_lead(&mut keyed, &mut config)?;
    leadership(&mut keyed, &mut config)?;
    config
        .validate()
        .map_err(|e| format!("invalid node: {e}"))?;
    Ok(config)
}

/// Sets `election`, `heartbeat` and `seed` on `config`. When only the
/// election timeout is given, the heartbeat defaults to a third of it if
/// the usual 50 ms would not fit below it; an explicit heartbeat is kept
/// as written, so a bad pair is reported.
fn timing(keyed: &mut Keyed, config: &mut Config) -> Result<(), String> {
    let election = keyed.optional("election").map(|a| a.number()).transpose()?;
    let heartbeat = keyed
        .optional("heartbeat")
        .map(|a| a.number())
        .transpose()?;
    let seed = keyed.optional("seed").map(|a| a.number()).transpose()?;
    config.election_timeout_ms = election.unwrap_or(DEFAULT_ELECTION_MS);
    config.heartbeat_interval_ms = heartbeat.unwrap_or_else(|| {
        if config.election_timeout_ms > DEFAULT_HEARTBEAT_MS {
            DEFAULT_HEARTBEAT_MS
        } else {
            (config.election_timeout_ms / 3).max(1)
        }
    });
    config.seed = seed.unwrap_or(DEFAULT_SEED);
    Ok(())
}

/// Sets `term_lead_max`. A scenario that does not name it runs without the
/// bound, as every scenario written before the bound existed did, so that
/// they keep their meaning (an absurd term is adopted, as the paper says).
fn term_lead(keyed: &mut Keyed, config: &mut Config) -> Result<(), String> {
    config.term_lead_max = keyed
        .optional("term_lead_max")
        .map(|a| a.number())
        .transpose()?;
    Ok(())
}

/// Sets `prevote`, `check_quorum` and `lease_read` (the lease reads'
/// clock-drift margin in ms). A scenario that does not name them runs
/// without them, as every scenario written before them did, so that they
/// keep their meaning.
fn leadership(keyed: &mut Keyed, config: &mut Config) -> Result<(), String> {
    let on = |keyed: &mut Keyed, key: &str| -> Result<bool, String> {
        Ok(keyed
            .optional(key)
            .map(|a| a.on_off())
            .transpose()?
            .unwrap_or(false))
    };
    config.pre_vote = on(keyed, "prevote")?;
    config.check_quorum = on(keyed, "check_quorum")?;
    config.lease_read_margin_ms = keyed
        .optional("lease_read")
        .map(|a| a.number())
        .transpose()?;
    Ok(())
}

/// `state [role=] [term=] [voted_for=] [snapshot=I:T] [config=[V;L]] [log=]
/// [commit=]`. A candidate or leader has voted for itself unless
/// `voted_for` says otherwise; `config` is the configuration in force at
/// the snapshot (the peers as voters when absent); `log` lists the entries
/// after the snapshot.
fn start_state(config: &Config, mut keyed: Keyed) -> Result<StartState, String> {
    let role = keyed.optional("role").map(|a| a.role()).transpose()?;
    let term = keyed.optional("term").map(|a| a.number()).transpose()?;
    let voted_for = keyed
        .optional("voted_for")
        .map(|a| a.optional_node())
        .transpose()?;
    let snapshot = keyed
        .optional("snapshot")
        .map(|a| a.snapshot())
        .transpose()?;
    let membership = keyed
        .optional("config")
        .map(|a| a.membership())
        .transpose()?;
    let log = keyed.optional("log").map(|a| a.entries()).transpose()?;
    let commit = keyed.optional("commit").map(|a| a.number()).transpose()?;
    let damaged = keyed.optional("damaged").map(|a| a.boolean()).transpose()?;
    let self_vote = match role {
        Some(Role::Candidate | Role::Leader) => Some(config.id),
        _ => None,
    };
    Ok(StartState {
        role,
        hard_state: HardState {
            term: Term(term.unwrap_or(0)),
            voted_for: voted_for.unwrap_or(self_vote),
        },
        snapshot: snapshot.unwrap_or_default(),
        log: log.unwrap_or_default(),
        commit_index: LogIndex(commit.unwrap_or(0)),
        membership,
        damaged: damaged.unwrap_or(false),
    })
}

/// `cluster n=N [election=] [heartbeat=] [seed=] [term_lead_max=] [prevote=]
/// [check_quorum=] [lease_read=] [join=N,...]`: the size and node 1's
/// configuration, every node's validated. The nodes named by `join` start
/// outside the cluster, joining it; the others are its first voters.
fn cluster(mut keyed: Keyed) -> Result<(u64, Config), String> {
    let size = keyed.required("n")?.number()?;
    if size == 0 || size > CLUSTER_SIZE_MAX {
        return Err(format!(
            "a cluster has 1 to {CLUSTER_SIZE_MAX} nodes, not {size}"
        ));
    }
    let joining = match keyed.optional("join") {
        Some(arg) => arg
            .nodes()?
            .into_iter()
            .map(|id| in_cluster(id.0, size, &arg.source))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let voters = (1..=size).map(NodeId).filter(|id| !joining.contains(id));
    let mut template = Config::new(NodeId(1), voters);
    timing(&mut keyed, &mut template)?;
    term_lead(&mut keyed, &mut template)?;
    leadership(&mut keyed, &mut template)?;
    if template.peers.is_empty() {
        return Err("a cluster needs a node that does not join: its first voter".to_string());
    }
    for id in 1..=size {
        cluster_config(&template, NodeId(id))
            .validate()
            .map_err(|e| format!("invalid cluster: {e}"))?;
    }
    Ok((size, template))
}

/// The configuration of node `id` of a cluster: the template with that id
/// and seed `seed + id`, so that the nodes draw different election timeouts
/// and do not all time out alike. A node outside the template's peers
/// joins the cluster.
pub(crate) fn cluster_config(template: &Config, id: NodeId) -> Config {
    let mut config = template.clone();
    config.id = id;
    config.seed = template.seed.wrapping_add(id.0);
    config.join = !template.peers.contains(&id);
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::Membership;

    fn error(source: &str) -> LineError {
        parse(source).expect_err("should not parse")
    }

    #[test]
    fn a_single_node_script_parses() {
        let script = parse(
            "# comment\n\nnode id=1 peers=1,2,3 seed=7\nstate role=candidate term=2 log=1:a\n\ntimeout\nexpect Alarm(*)  # trailing\ncheck role=candidate\n",
        )
        .unwrap();
        let Setup::Single {
            config,
            state,
            line,
        } = &script.setup
        else {
            panic!("not single");
        };
        assert_eq!(config.seed, 7);
        assert_eq!(*line, 4);
        assert_eq!(state.hard_state.voted_for, Some(NodeId(1)));
        assert_eq!(script.steps.len(), 3);
        assert_eq!(script.steps[1].line, 7);
        assert_eq!(script.steps[1].text, "expect Alarm(*)  # trailing");
    }

    #[test]
    fn cluster_nodes_get_their_own_seed() {
        let script = parse("cluster n=3 seed=10\non 1 timeout\nstabilize\n").unwrap();
        let Setup::Cluster { size, template } = &script.setup else {
            panic!("not cluster");
        };
        assert_eq!(*size, 3);
        assert_eq!(cluster_config(template, NodeId(2)).seed, 12);
        assert_eq!(cluster_config(template, NodeId(2)).id, NodeId(2));
    }

    #[test]
    fn election_alone_keeps_a_heartbeat_below_it() {
        let script = parse("node id=1 peers=1 election=30\n").unwrap();
        let Setup::Single { config, .. } = &script.setup else {
            panic!("not single");
        };
        assert_eq!(config.heartbeat_interval_ms, 10);
    }

    #[test]
    fn misplaced_and_malformed_lines_are_named() {
        let cases = [
            ("node id=1 peers=1,2 heartbeat=200 election=100\n", 1, "invalid node: heartbeat interval (200 ms) must be below the election timeout (100 ms)"),
            ("node id=4 peers=1,2\n", 1, "invalid node: node id 4 is not among the peers [1,2]"),
            ("node peers=1,2\n", 1, "'node' needs id=..."),
            ("node id=1 peers=1 colour=red\n", 1, "unknown key 'colour' for 'node'"),
            ("timeout\n", 1, "'timeout' before the set-up"),
            ("node id=1 peers=1\nstate term=1\nstate term=2\n", 3, "repeats the set-up"),
            ("state term=1\n", 1, "'state' must come after the 'node' line"),
            ("node id=1 peers=1\ntimeout\nstate term=1\n", 3, "'state' must come before the first event"),
            ("node id=1 peers=1\nexpect Alarm(*)\n", 2, "expect before any event"),
            ("node id=1 peers=1\ntimeout\nexpect Alrm(*)\n", 3, "unknown action 'Alrm'"),
            ("node id=1 peers=1\nfrobnicate\n", 2, "unknown command 'frobnicate'"),
            ("node id=1 peers=1\nstabilize\n", 2, "'stabilize' needs cluster mode"),
            ("node id=1 peers=1\n(\n", 2, "expected a command"),
            ("node id=1 peers=1\ncheck role=boss\n", 2, "expected follower, pre-candidate, candidate or leader for 'role', found 'boss'"),
            ("node id=1 peers=1\ncheck size=3\n", 2, "unknown key 'size' for 'check'"),
            ("cluster n=3\ntimeout\n", 2, "'on N timeout ...'"),
            ("cluster n=3\non 4 timeout\n", 2, "node 4 in 'on 4' is not in the cluster (nodes 1 to 3)"),
            ("cluster n=3\non x timeout\n", 2, "expected a node number after 'on', found 'x'"),
            ("cluster n=3\non 1 sleep\n", 2, "expected an event (append, timeout, snapshot, stall, recover, read, transfer, change, recv), found 'sleep'"),
            ("node id=1 peers=1\nstate snapshot=3\n", 2, "expected INDEX:TERM for 'snapshot', found '3'"),
            ("node id=1 peers=1\ncheck snapshot=a:b\n", 2, "expected INDEX:TERM for 'snapshot', found 'a:b'"),
            ("cluster n=3\ndeliver to=9\n", 2, "node 9 in 'to=9' is not in the cluster"),
            ("cluster n=3\ndrop count=1\n", 2, "unknown key 'count' for 'drop'"),
            ("cluster n=3\nexpect 1 Alarm(*)\n", 2, "expect before any event"),
            ("cluster n=3\non 1 timeout\nexpect Alarm(*)\n", 3, "expected a node number after 'expect', found 'Alarm'"),
            ("cluster n=0\n", 1, "a cluster has 1 to 100 nodes, not 0"),
            ("cluster n=3 heartbeat=150\n", 1, "invalid cluster: heartbeat interval"),
            ("cluster n=3\nnode id=1 peers=1\n", 2, "'node' repeats the set-up"),
            ("cluster n=3\ncrash 1 2\n", 2, "unexpected '2' after 'crash 1'"),
            ("node id=4 peers=1,2,3 join=maybe\n", 1, "expected true or false for 'join', found 'maybe'"),
            ("node id=1 peers=1,2\nstate config=[1,2;2]\n", 2, "'config=[1,2;2]' for 'config' is no configuration"),
            ("cluster n=3 join=4\n", 1, "node 4 in 'join=4' is not in the cluster (nodes 1 to 3)"),
            ("cluster n=2 join=1,2\n", 1, "a cluster needs a node that does not join"),
            ("# nothing\n", 1, "empty scenario"),
        ];
        for (source, line, message) in cases {
            let error = error(source);
            assert_eq!(error.line, line, "{source}: {}", error.message);
            assert!(
                error.message.contains(message),
                "{source}\n  got: {}\n  want: {message}",
                error.message
            );
        }
    }

    #[test]
    fn membership_set_up_keys_parse() {
        let script =
            parse("node id=4 peers=1,2,3 join=true\nstate snapshot=5:2 config=[1,2,3;4]\n")
                .unwrap();
        let Setup::Single { config, state, .. } = &script.setup else {
            panic!("not single");
        };
        assert!(config.join);
        assert_eq!(
            state.membership,
            Membership::new([1, 2, 3].map(NodeId), [NodeId(4)])
        );
        let script = parse("cluster n=5 join=4,5\n").unwrap();
        let Setup::Cluster { template, .. } = &script.setup else {
            panic!("not cluster");
        };
        assert_eq!(template.peers, [1, 2, 3].map(NodeId));
        assert!(!cluster_config(template, NodeId(3)).join);
        assert!(cluster_config(template, NodeId(4)).join);
    }

    #[test]
    fn check_committed_takes_a_list() {
        let script =
            parse("cluster n=1\non 1 timeout\ncheck-committed a,\"b c\"\ncheck-committed\n")
                .unwrap();
        let Command::CheckCommitted(data) = &script.steps[1].command else {
            panic!("not check-committed");
        };
        assert_eq!(data, &[Bytes::from("a"), Bytes::from("b c")]);
        assert!(matches!(&script.steps[2].command, Command::CheckCommitted(d) if d.is_empty()));
    }
}
