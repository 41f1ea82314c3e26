//! `skiff member list | add | promote | remove`: shows the cluster's
//! membership and changes it one server at a time, with the protocol's
//! `member` extension, asking the leader (found by following `not the
//! leader` answers from any server named).

use crate::cluster_args::ServersArgs;
use crate::{duration_arg, usage};
use anyhow::Context;
use skiff::member_client::{change_at_leader, leader_view, ChangeError, View};
use skiff_fs::protocol::{MemberList, MemberRequest, MemberRole};
use skiff_fs::ClientTls;
use skiff_node::{NodeId, Role};
use std::net::SocketAddr;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  skiff member list
  skiff member add 4 10.0.0.4:7100 10.0.0.4:7200
  skiff member promote 4
  skiff member remove 1
  skiff member list --servers 127.0.0.1:7201,127.0.0.1:7202

Replacing a machine (node 1 by a new node 4), without downtime:
  1. give node 4 a [[nodes]] entry with `learner = true` in cluster.toml and
     start it with an empty data directory and `skiff node --id 4 --join
     ADDRESS`, which asks the cluster to add it; or start it and add it by
     hand: `skiff member add 4 PEER_ADDRESS CLIENT_ADDRESS`. It joins as a
     learner: it receives the log (a snapshot first, if the leader's log
     starts after one) but does not vote, so the quorum does not change
     while it catches up;
  2. `skiff member list` shows how far behind the leader it is; once close,
     `skiff member promote 4` makes it a voter;
  3. `skiff member remove 1`, then stop node 1. Removing the leader is fine:
     it steps down once the change commits and the others elect a new one
     (`skiff transfer-leader` first makes that hand-over quicker).
One change runs at a time, and each waits for its commit.

Errors, in the leader's words:
  cannot remove the last voter      a cluster needs a voter; add and promote another first
  another membership change has not committed yet
                                    wait for it (`member list` says a change is pending)
  the node is not a member          no such id in the configuration (`member list`)
  the node is already a member      `add` of an id in use (promote it, or pick another id)

Any server named by --config (default skiff-cluster/cluster.toml) or
--servers will do: the command follows the answers to the leader. TLS is
used when the configuration says [tls] clients = true, or with --tls-ca.

Exit status: 0 when the change committed (or there was nothing to do); 1
when it was refused, or no leader answered within --timeout (it says why);
2 for a bad command line.";

/// A learner further behind the leader than this many entries is not
/// promoted without --force: as a voter it could not acknowledge new
/// entries until it caught up, so the cluster would tolerate one failure
/// fewer meanwhile.
const PROMOTE_BEHIND_MAX: u64 = 1_000;

/// Arguments of `skiff member`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct MemberArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    servers: ServersArgs,
    /// How long to look for the leader and wait for the change to commit,
    /// 1ms to 1h: `10s`, `500ms`.
    #[arg(long, default_value = "10s", global = true,
          value_parser = duration_arg::between(Duration::from_millis(1), Duration::from_secs(3600)))]
    timeout: Duration,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Show every member (voters, then learners) with its addresses, as
    /// the leader sees it, and how far behind the leader each one is.
    List,
    /// Add node N as a learner: it receives the log but does not vote
    /// until promoted.
    Add {
        /// The new node's id, unused in the cluster.
        #[arg(value_name = "N", value_parser = node_id)]
        node: u64,
        /// Where the other nodes reach it (its peer_address).
        #[arg(value_name = "PEER_ADDRESS")]
        peer: SocketAddr,
        /// Where clients reach it (its client_address).
        #[arg(value_name = "CLIENT_ADDRESS")]
        client: SocketAddr,
    },
    /// Make learner N a voter.
    Promote {
        /// The learner's id.
        #[arg(value_name = "N", value_parser = node_id)]
        node: u64,
        /// Promote even when the learner is far behind the leader.
        #[arg(long)]
        force: bool,
    },
    /// Remove node N (voter or learner) from the cluster.
    Remove {
        /// The node's id.
        #[arg(value_name = "N", value_parser = node_id)]
        node: u64,
    },
}

/// A node id: a positive number.
fn node_id(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("node ids start at 1".to_string()),
        Ok(id) => Ok(id),
        Err(_) => Err(format!("{text:?} is not a node id (a positive number)")),
    }
}

/// Runs the subcommand.
pub fn run(args: &MemberArgs) -> anyhow::Result<()> {
    let addresses = args.servers.addresses()?;
    if addresses.is_empty() {
        return Err(usage::error("name at least one server with --servers"));
    }
    let tls = args.servers.client_tls()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let cluster = Cluster {
        tls: tls.as_ref(),
        addresses: &addresses,
        timeout: args.timeout,
        config_named: args.servers.uses_config(),
    };
    runtime.block_on(async {
        match &args.action {
            Action::List => list(&cluster).await,
            Action::Add { node, peer, client } => add(&cluster, *node, *peer, *client).await,
            Action::Promote { node, force } => promote(&cluster, *node, *force).await,
            Action::Remove { node } => remove(&cluster, *node).await,
        }
    })
}

/// Where the cluster is, and how long to wait for it.
struct Cluster<'a> {
    tls: Option<&'a ClientTls>,
    addresses: &'a [String],
    timeout: Duration,
    /// Whether the servers came from a cluster.toml, which then needs
    /// updating after a change.
    config_named: bool,
}

impl Cluster<'_> {
    async fn view(&self) -> anyhow::Result<View> {
        leader_view(self.tls, self.addresses, self.timeout)
            .await
            .with_context(|| format!("no server answered at {}", self.addresses.join(", ")))
    }

    async fn change(&self, change: MemberRequest, what: &str) -> anyhow::Result<u64> {
        match change_at_leader(self.tls, self.addresses, &change, self.timeout).await {
            Ok(changed) => Ok(changed.index.0),
            Err(ChangeError::Refused { address, reason }) => {
                anyhow::bail!("{what}: {reason} (answered by the leader at {address})")
            }
            Err(error) => Err(anyhow::Error::new(error).context(what.to_string())),
        }
    }
}

async fn list(cluster: &Cluster<'_>) -> anyhow::Result<()> {
    let view = cluster.view().await?;
    print!("{}", render_list(&view));
    Ok(())
}

/// The table `member list` prints, and where it comes from.
fn render_list(view: &View) -> String {
    let leader = view.status.leader;
    let mut text = format!(
        "{:<6} {:<8} {:<22} {:<22} {}\n",
        "node", "role", "peer address", "client address", "behind"
    );
    for member in &view.list.members {
        let behind = member.behind.map_or("?".to_string(), |b| b.to_string());
        let leads = if Some(member.id) == leader {
            "  leader"
        } else {
            ""
        };
        text.push_str(&format!(
            "{:<6} {:<8} {:<22} {:<22} {behind}{leads}\n",
            member.id.0,
            member.role.to_string(),
            member.peer.to_string(),
            member.client.to_string()
        ));
    }
    let (voters, learners) = (view.list.voters().len(), view.list.learners().len());
    let state = if view.list.change_pending {
        "a change is pending (the latest configuration has not committed yet)"
    } else {
        "committed"
    };
    let source = match view.status.role {
        Role::Leader => format!("node {}, the leader", view.status.id),
        _ => format!(
            "node {} at {}, which is not the leader: no leader answered",
            view.status.id, view.address
        ),
    };
    text.push_str(&format!(
        "{voters} {}, {learners} {}; {state}; as seen by {source}\n",
        plural(voters, "voter", "voters"),
        plural(learners, "learner", "learners"),
    ));
    text
}

fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 {
        one
    } else {
        many
    }
}

async fn add(
    cluster: &Cluster<'_>,
    node: u64,
    peer: SocketAddr,
    client: SocketAddr,
) -> anyhow::Result<()> {
    let change = MemberRequest::Add {
        id: NodeId(node),
        peer,
        client,
    };
    let index = cluster
        .change(change, &format!("cannot add node {node}"))
        .await?;
    println!(
        "node {node} added as a learner (log index {index}); it catches up from the leader \
         (a snapshot, then the log) without voting.\n\
         Once `skiff member list` shows it close behind, make it a voter: skiff member promote \
         {node}"
    );
    if cluster.config_named {
        println!(
            "\nRecord it in cluster.toml (every copy), so that the other commands find it and \
             the nodes' check of their configuration agrees:\n\n\
             [[nodes]]\n\
             id = {node}\n\
             peer_address = \"{peer}\"\n\
             client_address = \"{client}\"\n\
             data_dir = \"node-{node}\"\n\
             learner = true"
        );
    }
    Ok(())
}

async fn promote(cluster: &Cluster<'_>, node: u64, force: bool) -> anyhow::Result<()> {
    let view = cluster.view().await?;
    match promotion_check(&view.list, node, force)? {
        Promotion::AlreadyVoter => {
            println!("node {node} is a voter already; nothing to do");
            return Ok(());
        }
        Promotion::Ask => {}
    }
    let change = MemberRequest::Promote(NodeId(node));
    let index = cluster
        .change(change, &format!("cannot promote node {node}"))
        .await?;
    println!("node {node} is a voter (log index {index})");
    if cluster.config_named {
        println!("In cluster.toml, drop `learner = true` from node {node}'s [[nodes]] entry.");
    }
    Ok(())
}

/// What `promote` does after looking at the leader's list.
#[derive(Debug, PartialEq, Eq)]
enum Promotion {
    /// Nothing: the node votes already.
    AlreadyVoter,
    /// Ask the leader (which refuses a node that is not a learner).
    Ask,
}

/// Whether to ask for node `node`'s promotion, given the leader's `list`:
/// an error when it is a learner further behind than
/// [`PROMOTE_BEHIND_MAX`] and `force` is off.
fn promotion_check(list: &MemberList, node: u64, force: bool) -> anyhow::Result<Promotion> {
    let Some(member) = list.member(NodeId(node)) else {
        return Ok(Promotion::Ask);
    };
    if member.role == MemberRole::Voter {
        return Ok(Promotion::AlreadyVoter);
    }
    if let Some(behind) = member.behind.filter(|b| *b > PROMOTE_BEHIND_MAX && !force) {
        anyhow::bail!(
            "node {node} is {behind} entries behind the leader: as a voter it could not \
             acknowledge new entries until it caught up. Wait until `skiff member list` shows \
             it close behind (at most {PROMOTE_BEHIND_MAX}), or pass --force"
        );
    }
    Ok(Promotion::Ask)
}

async fn remove(cluster: &Cluster<'_>, node: u64) -> anyhow::Result<()> {
    let leader = cluster
        .view()
        .await
        .ok()
        .and_then(|view| view.status.leader);
    let change = MemberRequest::Remove(NodeId(node));
    let index = cluster
        .change(change, &format!("cannot remove node {node}"))
        .await?;
    println!("node {node} removed (log index {index}); it no longer votes or receives the log");
    if leader == Some(NodeId(node)) {
        println!(
            "node {node} was the leader: it stepped down once the change committed, and the \
             remaining voters elect a new leader (`skiff status` shows it)"
        );
    }
    println!("Its process can now be stopped and its data directory deleted.");
    if cluster.config_named {
        println!("Remove its [[nodes]] entry from cluster.toml.");
    }
    Ok(())
}

/// The membership check `skiff transfer-leader` makes before it asks:
/// only a voter can lead.
pub fn check_can_lead(list: &MemberList, node: u64) -> anyhow::Result<()> {
    match list.member(NodeId(node)).map(|m| m.role) {
        Some(MemberRole::Voter) => Ok(()),
        Some(MemberRole::Learner) => anyhow::bail!(
            "node {node} is a learner: it does not vote and cannot lead. Promote it first: \
             skiff member promote {node}"
        ),
        None => {
            let voters: Vec<String> = list.voters().iter().map(|id| id.to_string()).collect();
            anyhow::bail!(
                "node {node} is not a member of the cluster (its voters: {})",
                voters.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_fs::protocol::{Member, StatusReport};
    use skiff_node::{LogIndex, Term};

    fn view(role: Role) -> View {
        let member = |id: u64, role, behind| Member {
            id: NodeId(id),
            role,
            peer: format!("127.0.0.1:710{id}").parse().unwrap(),
            client: format!("127.0.0.1:720{id}").parse().unwrap(),
            behind,
        };
        View {
            list: MemberList {
                members: vec![
                    member(1, MemberRole::Voter, Some(0)),
                    member(2, MemberRole::Voter, Some(1)),
                    member(4, MemberRole::Learner, Some(2000)),
                ],
                change_pending: true,
            },
            status: StatusReport {
                id: NodeId(1),
                role,
                term: Term(3),
                leader: (role == Role::Leader).then_some(NodeId(1)),
                commit_index: LogIndex(9),
                last_index: LogIndex(9),
                repairing: false,
                log: None,
                applied: None,
                leader_change: None,
            },
            address: "127.0.0.1:7201".into(),
        }
    }

    #[test]
    fn the_list_shows_roles_addresses_progress_and_whose_view_it_is() {
        let text = render_list(&view(Role::Leader));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            lines[1].starts_with("1      voter    127.0.0.1:7101"),
            "{text}"
        );
        assert!(lines[1].ends_with("0  leader"), "{text}");
        assert!(
            lines[3].contains("learner") && lines[3].ends_with("2000"),
            "{text}"
        );
        assert!(
            lines[4].starts_with("2 voters, 1 learner; a change is pending"),
            "{text}"
        );
        assert!(
            lines[4].ends_with("as seen by node 1, the leader"),
            "{text}"
        );
        let follower = render_list(&view(Role::Follower));
        assert!(follower.contains("which is not the leader"), "{follower}");
    }

    #[test]
    fn only_a_voter_may_be_handed_leadership() {
        let list = view(Role::Leader).list;
        assert!(check_can_lead(&list, 2).is_ok());
        let learner = check_can_lead(&list, 4).unwrap_err().to_string();
        assert!(learner.contains("is a learner"), "{learner}");
        assert!(learner.contains("skiff member promote 4"), "{learner}");
        let stranger = check_can_lead(&list, 9).unwrap_err().to_string();
        assert!(stranger.contains("its voters: 1, 2"), "{stranger}");
    }

    #[test]
    fn a_learner_far_behind_is_promoted_only_with_force() {
        let list = view(Role::Leader).list;
        let refused = promotion_check(&list, 4, false).unwrap_err().to_string();
        assert!(
            refused.contains("node 4 is 2000 entries behind"),
            "{refused}"
        );
        assert!(refused.contains("--force"), "{refused}");
        assert_eq!(promotion_check(&list, 4, true).unwrap(), Promotion::Ask);
        assert_eq!(
            promotion_check(&list, 2, false).unwrap(),
            Promotion::AlreadyVoter
        );
        // The leader answers for a node it does not list.
        assert_eq!(promotion_check(&list, 9, false).unwrap(), Promotion::Ask);
        let mut close = list;
        close.members[2].behind = Some(PROMOTE_BEHIND_MAX);
        assert_eq!(promotion_check(&close, 4, false).unwrap(), Promotion::Ask);
    }

    #[test]
    fn node_ids_are_positive_numbers() {
        assert_eq!(node_id("4"), Ok(4));
        assert!(node_id("0").is_err());
        assert!(node_id("four").is_err());
    }
}
