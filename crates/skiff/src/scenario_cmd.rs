//! `skiff scenario`: runs scenario files and prints one line per file and a
//! summary. The work is in `skiff_sim::scenario`; this module only words it.

use crate::usage;
use anyhow::Context;
use skiff_sim::scenario::{collect_scenario_files, run_file, run_source_timeline, Outcome};
use std::io::Write;
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  skiff scenario tests/scenarios
  skiff scenario --quiet tests/scenarios/follower-vote-req-grant.scn crates/skiff-sim/tests/data

Output, one line per file, then the failing line, its reason, the batch the
machine actually produced and its state:

  ok   tests/scenarios/a.scn
  FAIL tests/scenarios/b.scn
    tests/scenarios/b.scn:7: expect Send(to=2, VoteResp(term=4, granted=true))
    reason: no action of the batch matches Send(to=2, VoteResp(term=4, granted=true))
    batch:
      Alarm(ms=171)
      Send(to=2, VoteResp(term=4, granted=false))
    state: role=follower term=4 voted_for=3 commit=1 last_index=3 last_term=2 leader=none membership=[1,2,3]
  1 passed, 1 failed

The exit status is 1 when any file failed or could not be parsed.
The format is described in docs/scenario-format.md in the Skiff repository.";

/// Arguments of `skiff scenario`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct ScenarioArgs {
    /// Scenario files, or directories searched recursively for `.scn` files.
    #[arg(required = true, value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,
    /// Print only the failures and the summary.
    #[arg(short, long)]
    quiet: bool,
    /// Also draw the scenario (a single file) as an interactive timeline,
    /// one self-contained HTML page: each event one step, the nodes' state
    /// before and after it, the messages delivered, the failed line.
    #[arg(long, value_name = "OUT")]
    html: Option<PathBuf>,
}

/// How many files passed and failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    passed: usize,
    failed: usize,
}

/// Runs every scenario named by `args`, prints the report, and exits with
/// status 1 when any failed.
pub fn run(args: &ScenarioArgs) -> anyhow::Result<()> {
    let files = collect_scenario_files(&args.paths)?;
    if let Some(page) = &args.html {
        let [file] = files.as_slice() else {
            return Err(usage::error(format!(
                "--html draws one scenario; {} files were named",
                files.len()
            )));
        };
        draw(file, page)?;
    }
    let mut out = std::io::stdout().lock();
    let tally = report(&files, args.quiet, &mut out).context("writing the report")?;
    out.flush().context("writing the report")?;
    if tally.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Runs the scenario in `file` recording it, and writes its page to `page`.
fn draw(file: &Path, page: &Path) -> anyhow::Result<()> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    let (_, timeline) = run_source_timeline(&name, &source)?;
    let bytes = skiff::ui::page::write(&timeline, &format!("skiff scenario {name}"), page)?;
    eprintln!(
        "timeline written to {} ({} steps, {} messages, {} bytes)",
        page.display(),
        timeline.step_count(),
        timeline.message_count(),
        bytes
    );
    Ok(())
}

/// Runs `files` in order, writing `ok   path` or `FAIL path` and the
/// failure for each, then `N passed, M failed`.
fn report(files: &[PathBuf], quiet: bool, out: &mut impl Write) -> std::io::Result<Tally> {
    let mut tally = Tally::default();
    for file in files {
        let path = file.display();
        match run_file(file) {
            Ok(Outcome::Passed { .. }) => {
                tally.passed += 1;
                if !quiet {
                    writeln!(out, "ok   {path}")?;
                }
            }
            Ok(Outcome::Failed(failure)) => {
                tally.failed += 1;
                writeln!(out, "FAIL {path}")?;
                write!(out, "{failure}")?;
            }
            Err(error) => {
                tally.failed += 1;
                writeln!(out, "FAIL {path}")?;
                writeln!(out, "  {error}")?;
            }
        }
    }
    writeln!(out, "{} passed, {} failed", tally.passed, tally.failed)?;
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory holding `files`, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str, files: &[(&str, &str)]) -> Scratch {
            let dir = std::env::temp_dir().join(format!("skiff-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for (file, text) in files {
                std::fs::write(dir.join(file), text).unwrap();
            }
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const PASSING: &str =
        "node id=1 peers=1,2,3\ntimeout\nexpect StateStore(term=1, voted_for=1)\n";
    const FAILING: &str = "node id=1 peers=1,2,3\ntimeout\ncheck term=7\n";
    const MALFORMED: &str = "node id=1 peers=1,2,3\nrecv from2 VoteResp(term=1, granted=true)\n";

    fn run_report(scratch: &Scratch, quiet: bool) -> (String, Tally) {
        let files = collect_scenario_files(&[&scratch.0]).unwrap();
        let mut out = Vec::new();
        let tally = report(&files, quiet, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), tally)
    }

    #[test]
    fn the_report_lists_every_file_and_a_summary() {
        let scratch = Scratch::new(
            "report",
            &[("a.scn", PASSING), ("b.scn", FAILING), ("c.scn", MALFORMED)],
        );
        let (text, tally) = run_report(&scratch, false);
        assert_eq!(
            tally,
            Tally {
                passed: 1,
                failed: 2
            }
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("ok   ") && lines[0].ends_with("a.scn"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("FAIL ") && lines[1].ends_with("b.scn"),
            "{text}"
        );
        assert!(
            text.contains("b.scn:3: check term=7\n  reason: term is 1, expected 7\n"),
            "{text}"
        );
        assert!(
            text.contains("    StateStore(term=1, voted_for=1)\n"),
            "{text}"
        );
        assert!(
            text.contains("c.scn:2: expected key=value after 'recv', found 'from2'"),
            "{text}"
        );
        assert_eq!(lines.last(), Some(&"1 passed, 2 failed"));
    }

    #[test]
    fn quiet_prints_only_failures_and_the_summary() {
        let scratch = Scratch::new("quiet", &[("a.scn", PASSING), ("b.scn", FAILING)]);
        let (text, tally) = run_report(&scratch, true);
        assert_eq!(
            tally,
            Tally {
                passed: 1,
                failed: 1
            }
        );
        assert!(!text.contains("ok   "), "{text}");
        assert!(text.starts_with("FAIL "), "{text}");
        assert!(text.ends_with("\n1 passed, 1 failed\n"), "{text}");
    }
}
