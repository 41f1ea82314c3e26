//! `skiff fs write|read|cas|delete`: one request to the file server through
//! the `skiff_fs` client, which finds the leader by itself, follows
//! redirects within a bounded time, and sends a change in a session, so
//! that after a broken connection it is resent and still applies once.

use crate::cluster_args::ServersArgs;
use crate::{duration_arg, error_chain};
use anyhow::Context;
use skiff_fs::protocol::Version;
use skiff_fs::{Client, ClientConfig, ClientError};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  skiff fs write notes ./notes.txt            # prints: version 12
  echo hello | skiff fs write greeting --ttl 1m
  skiff fs read notes > copy.txt              # stderr: version 12, never expires
  skiff fs cas notes 12 ./notes-v2.txt        # only if notes is still at version 12
  skiff fs delete notes
  skiff fs read notes --servers 127.0.0.1:7101,127.0.0.1:7103

A change (write, cas, delete) goes in a client session: if the connection
breaks or no answer comes, it is sent again, to the same or another server,
and the cluster applies it once whatever happens (--plain sends it as the
classic protocol does, without a session, and does not resend it). Redirects
are followed, with pauses while no leader is known, for at most 10 s.

The servers come from --servers, --config, or skiff-cluster/cluster.toml (what
`skiff up` writes). TLS is used when that configuration says [tls] clients =
true, or with --tls-ca CA.pem (e.g. beside --servers). Contents are read from FILE, or from standard input when
FILE is - or absent, and are sent as they are (binary is fine).

Exit status:
  0  done
  1  failed: no leader reachable, invalid request, ...; nothing changed
  2  bad command line
  3  file not found
  4  cas: the file's version is not VERSION (the current one is printed)
  5  the change may or may not have happened (with --plain: connection lost,
     timeout, ERR_INTERNAL; with a session: no server answered a resend in
     time, or the session expired meanwhile): read the file to find out";

/// Arguments of `skiff fs`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct FsArgs {
    #[command(subcommand)]
    operation: Operation,
    #[command(flatten)]
    servers: ServersArgs,
    /// Send the classic protocol only: no session, so a change whose outcome
    /// is unknown is not resent (exit status 5 instead).
    #[arg(long, global = true)]
    plain: bool,
}

#[derive(clap::Subcommand, Debug)]
enum Operation {
    /// Create or replace a file; prints its new version.
    Write {
        /// The file name (no spaces or control characters).
        #[arg(value_parser = file_name)]
        name: String,
        /// Where the contents come from; - or absent: standard input.
        #[arg(value_name = "FILE|-")]
        source: Option<PathBuf>,
        /// How long the file lives, in whole seconds: `60s`, `2h`; absent: forever.
        #[arg(long, value_parser = duration_arg::whole_seconds)]
        ttl: Option<Duration>,
    },
    /// Print a file's contents to standard output, its version and expiry
    /// to standard error.
    Read {
        /// The file name.
        #[arg(value_parser = file_name)]
        name: String,
    },
    /// Replace a file only if its version is still VERSION; prints the new one.
    Cas {
        /// The file name.
        #[arg(value_parser = file_name)]
        name: String,
        /// The version the file must have.
        version: u64,
        /// Where the contents come from; - or absent: standard input.
        #[arg(value_name = "FILE|-")]
        source: Option<PathBuf>,
        /// How long the file lives, in whole seconds: `60s`, `2h`; absent: forever.
        #[arg(long, value_parser = duration_arg::whole_seconds)]
        ttl: Option<Duration>,
    },
    /// Remove a file.
    Delete {
        /// The file name.
        #[arg(value_parser = file_name)]
        name: String,
    },
}

/// Exit statuses other than 0, 1 (any other failure) and 2 (clap's usage error).
const EXIT_NOT_FOUND: i32 = 3;
const EXIT_VERSION_MISMATCH: i32 = 4;
const EXIT_OUTCOME_UNKNOWN: i32 = 5;

/// Runs one operation and exits with its status.
pub fn run(args: &FsArgs) -> anyhow::Result<()> {
    let servers = args.servers.addresses()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let tls = args.servers.client_tls()?;
    let plain = tls.is_none();
    let mut client = Client::new(ClientConfig {
        tls,
        sessions: !args.plain,
        ..ClientConfig::new(servers)
    });
    let outcome = runtime.block_on(perform(&mut client, &args.operation));
    drop(runtime);
    match outcome {
        Ok(()) => Ok(()),
        Err(Failure::Client(error)) => {
            eprintln!("skiff fs: {}", describe(&args.operation, &error));
            if plain && matches!(error, ClientError::Unavailable { .. }) {
                // A TLS-only server closes a plain connection unanswered.
                eprintln!(
                    "hint: if the cluster serves clients over TLS only ([tls] clients = true), \
                     pass --config CLUSTER.toml or --tls-ca CA.pem"
                );
            }
            std::process::exit(exit_status(&error));
        }
        Err(Failure::Other(error)) => Err(error),
    }
}

/// Why an operation failed: the server said no, or something around it.
enum Failure {
    Client(ClientError),
    Other(anyhow::Error),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Failure::Client(error)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Other(error)
    }
}

async fn perform(client: &mut Client, operation: &Operation) -> Result<(), Failure> {
    match operation {
        Operation::Write { name, source, ttl } => {
            let contents = read_source(source.as_ref())?;
            let version = client.write(name, contents, exptime_s(*ttl)).await?;
            print_stdout(format!("version {version}\n").as_bytes())?;
        }
        Operation::Read { name } => {
            let file = client.read(name).await?;
            print_stdout(&file.contents)?;
            let expiry = match file.exptime_s {
                0 => "never expires".to_string(),
                s => format!("expires in {s} s"),
            };
            eprintln!(
                "version {}, {} bytes, {expiry}",
                file.version,
                file.contents.len()
            );
        }
        Operation::Cas {
            name,
            version,
            source,
            ttl,
        } => {
            let contents = read_source(source.as_ref())?;
            let version = client
                .cas(name, Version(*version), contents, exptime_s(*ttl))
                .await?;
            print_stdout(format!("version {version}\n").as_bytes())?;
        }
        Operation::Delete { name } => client.delete(name).await?,
    }
    Ok(())
}

/// The protocol's exptime: seconds to live, 0 for forever.
fn exptime_s(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| ttl.as_secs())
}

/// Parses a file name the protocol can carry: it is one word of the
/// request line, so a space would split it (and the server would read the
/// rest as the next field).
fn file_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("a file name cannot be empty".into());
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("file names cannot contain spaces or control characters".into());
    }
    Ok(text.to_string())
}

/// The contents of `source`, or of standard input for `-` or none.
fn read_source(source: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    match source {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        _ => {
            let mut contents = Vec::new();
            std::io::stdin()
                .read_to_end(&mut contents)
                .context("cannot read standard input")?;
            Ok(contents)
        }
    }
}

fn print_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("cannot write to standard output")
}

fn name_of(operation: &Operation) -> &str {
    match operation {
        Operation::Write { name, .. }
        | Operation::Read { name }
        | Operation::Cas { name, .. }
        | Operation::Delete { name } => name,
    }
}

fn describe(operation: &Operation, error: &ClientError) -> String {
    let name = name_of(operation);
    match error {
        ClientError::NotFound => format!("{name}: file not found"),
        ClientError::VersionMismatch { current } => {
            format!("{name}: version mismatch; the current version is {current}")
        }
        error if error.outcome_unknown() => format!(
            "{name}: {}; the change may or may not have happened (read the file to find out)",
            error_chain::render(error)
        ),
        error => format!("{name}: {}", error_chain::render(error)),
    }
}

fn exit_status(error: &ClientError) -> i32 {
    match error {
        ClientError::NotFound => EXIT_NOT_FOUND,
        ClientError::VersionMismatch { .. } => EXIT_VERSION_MISMATCH,
        error if error.outcome_unknown() => EXIT_OUTCOME_UNKNOWN,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_protocol_cannot_carry_are_refused() {
        assert_eq!(file_name("notes.txt"), Ok("notes.txt".to_string()));
        assert_eq!(file_name("café"), Ok("café".to_string()));
        for bad in ["my file", "tab\there", "line\n", ""] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
        assert!(file_name("my file").unwrap_err().contains("spaces"));
    }

    #[test]
    fn absent_ttl_means_forever() {
        assert_eq!(exptime_s(None), 0);
        assert_eq!(exptime_s(Some(Duration::from_secs(90))), 90);
    }

    #[test]
    fn each_kind_of_failure_has_its_exit_status() {
        let lost = ClientError::Timeout {
            address: "a".into(),
            timeout: Duration::from_secs(1),
        };
        let unavailable = ClientError::Unavailable {
            attempts: 3,
            tried: vec!["a".into()],
            last: "x".into(),
        };
        assert_eq!(exit_status(&ClientError::NotFound), EXIT_NOT_FOUND);
        assert_eq!(
            exit_status(&ClientError::VersionMismatch {
                current: Version(7)
            }),
            EXIT_VERSION_MISMATCH
        );
        assert_eq!(exit_status(&lost), EXIT_OUTCOME_UNKNOWN);
        assert_eq!(exit_status(&ClientError::Internal), EXIT_OUTCOME_UNKNOWN);
        assert_eq!(exit_status(&ClientError::SessionLost), EXIT_OUTCOME_UNKNOWN);
        assert_eq!(exit_status(&unavailable), 1);
    }
}
