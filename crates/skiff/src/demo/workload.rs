//! The demo's clients and what they know.
//!
//! # Why every loss can be seen
//!
//! Each client writes only its own files (`c03-f1` belongs to client 3), and
//! every change carries contents no other change carries. So each client
//! knows exactly which change of each file was acknowledged last, and a read
//! names the change it shows. The one uncertainty is a change whose answer
//! was lost (the connection broke when the leader died, a timeout,
//! `ERR_INTERNAL`): it may take effect at any time later, or never. A
//! [`FileKnowledge`] therefore holds the latest known state and the set of
//! such changes, and accepts a read that shows the latest known state, or a
//! later version made by one of those changes. Anything else is a stale read
//! during the run, or a lost write at the end.

use crate::error_chain;
use bytes::Bytes;
use hdrhistogram::Histogram;
use skiff_fs::protocol::Version;
use skiff_fs::workload::Rng;
use skiff_fs::{Client, ClientConfig, ClientError, ClientTls, File};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Files each client owns.
pub const FILES_PER_CLIENT: usize = 3;
/// Bytes of contents per change.
const CONTENTS_BYTES: usize = 128;
/// Latencies are recorded in microseconds up to this bound (a minute).
const LATENCY_US_MAX: u64 = 60_000_000;

/// What a client knows of one of its files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileKnowledge {
    /// The latest state known: a version and, when known, its contents. The
    /// contents are unknown after a cas found a version no answer gave.
    latest: Option<(Version, Option<Bytes>)>,
    /// Contents of changes whose outcome is unknown.
    uncertain: Vec<Bytes>,
    /// Changes acknowledged (write or cas answered `OK <version>`).
    acknowledged: u64,
}

/// How a read compares with what the client knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Possible in a linearizable store.
    Consistent,
    /// Not possible: the read missed an acknowledged change or went back.
    Inconsistent(String),
}

impl FileKnowledge {
    /// Records an acknowledged change; versions must increase.
    pub fn acknowledge(&mut self, version: Version, contents: Bytes) -> Verdict {
        let verdict = match &self.latest {
            Some((known, _)) if version <= *known => Verdict::Inconsistent(format!(
                "acknowledged version {version} is not above the known {known}"
            )),
            _ => Verdict::Consistent,
        };
        self.latest = Some((version, Some(contents)));
        self.acknowledged += 1;
        verdict
    }

    /// Records a change whose outcome is unknown.
    pub fn uncertain(&mut self, contents: Bytes) {
        self.uncertain.push(contents);
    }

    /// Checks a read (`None`: not found) and learns from it.
    pub fn observe(&mut self, read: Option<&File>) -> Verdict {
        let verdict = self.judge(read);
        if let (Verdict::Consistent, Some(file)) = (&verdict, read) {
            self.latest = Some((file.version, Some(file.contents.clone())));
        }
        verdict
    }

    /// Checks a read without learning from it.
    pub fn judge(&self, read: Option<&File>) -> Verdict {
        let made_by_uncertain = |file: &File| self.uncertain.contains(&file.contents);
        let consistent = match (&self.latest, read) {
            (None, None) => true,
            (None, Some(file)) => made_by_uncertain(file),
            (Some(_), None) => false,
            (Some((version, contents)), Some(file)) => {
                let same = file.version == *version
                    && match contents {
                        Some(contents) => *contents == file.contents,
                        None => made_by_uncertain(file),
                    };
                same || (file.version > *version && made_by_uncertain(file))
            }
        };
        if consistent {
            return Verdict::Consistent;
        }
        Verdict::Inconsistent(format!(
            "read {} but the latest known is {}",
            describe_read(read),
            self.describe_latest()
        ))
    }

    /// A cas found `current` instead of the version it named: an uncertain
    /// change took effect, unless the version went back.
    pub fn version_mismatch(&mut self, current: Version) -> Verdict {
        match &self.latest {
            Some((known, _)) if current > *known && !self.uncertain.is_empty() => {
                self.latest = Some((current, None));
                Verdict::Consistent
            }
            _ => Verdict::Inconsistent(format!(
                "cas found version {current} but the latest known is {}",
                self.describe_latest()
            )),
        }
    }

    /// The version to name in a cas, if the file is known to exist.
    pub fn latest_version(&self) -> Option<Version> {
        self.latest.as_ref().map(|(version, _)| *version)
    }

    /// How many changes were acknowledged.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged
    }

    fn describe_latest(&self) -> String {
        match &self.latest {
            None => "that it does not exist".to_string(),
            Some((version, Some(contents))) => {
                format!("version {version} {:?}", contents_label(contents))
            }
            Some((version, None)) => format!("version {version}"),
        }
    }
}

fn describe_read(read: Option<&File>) -> String {
    match read {
        None => "not found".to_string(),
        Some(file) => format!(
            "version {} {:?}",
            file.version,
            contents_label(&file.contents)
        ),
    }
}

/// The label at the start of demo contents (they are padded after it).
fn contents_label(contents: &Bytes) -> String {
    let text = String::from_utf8_lossy(contents);
    text.trim_end_matches('.').to_string()
}

/// Contents no other change carries: the client, file and sequence number,
/// padded to [`CONTENTS_BYTES`].
pub fn unique_contents(client: usize, file: usize, sequence: u64) -> Bytes {
    let mut text = format!("client {client} file {file} change {sequence}");
    text.extend(std::iter::repeat_n(
        '.',
        CONTENTS_BYTES.saturating_sub(text.len()),
    ));
    Bytes::from(text)
}

/// The name of file `file` of client `client`.
pub fn file_name(client: usize, file: usize) -> String {
    format!("c{client:02}-f{file}")
}

/// Counters every client adds to, read by the progress display.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Operations answered.
    pub operations: AtomicU64,
}

/// What one client did.
#[derive(Debug)]
pub struct ClientReport {
    /// Per file, what the client knows at the end.
    pub files: Vec<FileKnowledge>,
    /// Latency of every answered operation, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Answered operations by kind.
    pub writes: u64,
    /// Reads answered.
    pub reads: u64,
    /// Cas answered (success or version mismatch).
    pub cas: u64,
    /// Operations whose outcome is unknown.
    pub uncertain: u64,
    /// Operations that found no leader within the client's attempts.
    pub unavailable: u64,
    /// Reads and answers no linearizable store could give, with why.
    pub anomalies: Vec<String>,
    /// Errors no operation should meet (malformed answers and the like).
    pub errors: Vec<String>,
}

/// An empty latency histogram: microseconds, three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("the bounds are valid")
}

impl ClientReport {
    fn new() -> ClientReport {
        ClientReport {
            files: vec![FileKnowledge::default(); FILES_PER_CLIENT],
            latency_us: latency_histogram(),
            writes: 0,
            reads: 0,
            cas: 0,
            uncertain: 0,
            unavailable: 0,
            anomalies: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// A client's settings: patient enough to ride out an election; TLS if
/// `tls` (the cluster's clients must use it).
pub fn client_config(servers: Vec<String>, tls: Option<ClientTls>) -> ClientConfig {
    ClientConfig {
        tls,
        attempts_max: 100,
        backoff: Duration::from_millis(50),
        request_timeout: Duration::from_secs(3),
        ..ClientConfig::new(servers)
    }
}

/// Runs client `id` against `servers` (over `tls`, if any) until `until`: writes, reads and cas
/// on its own files, checking every answer against what it knows.
pub async fn run_client(
    id: usize,
    servers: Vec<String>,
    tls: Option<ClientTls>,
    until: Instant,
    counters: Arc<LiveCounters>,
) -> ClientReport {
    let mut client = Client::new(client_config(servers, tls));
    let mut report = ClientReport::new();
    let mut rng = Rng::for_client(id as u64);
    let mut sequence = 0u64;
    while Instant::now() < until {
        let file = rng.below(FILES_PER_CLIENT as u64) as usize;
        let choice = rng.below(100);
        sequence += 1;
        let started = Instant::now();
        let answered = match (choice, report.files[file].latest_version()) {
            (0..=49, version) => {
                let contents = unique_contents(id, file, sequence);
                match version {
                    Some(version) if choice < 25 => {
                        cas(&mut client, id, file, version, contents, &mut report).await
                    }
                    _ => write(&mut client, id, file, contents, &mut report).await,
                }
            }
            _ => read(&mut client, id, file, &mut report).await,
        };
        if answered {
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            report.latency_us.saturating_record(micros.max(1));
            counters.operations.fetch_add(1, Ordering::Relaxed);
        }
    }
    report
}

/// Writes; returns whether the server answered.
async fn write(
    client: &mut Client,
    id: usize,
    file: usize,
    contents: Bytes,
    report: &mut ClientReport,
) -> bool {
    let name = file_name(id, file);
    match client.write(&name, contents.clone(), 0).await {
        Ok(version) => {
            report.writes += 1;
            let verdict = report.files[file].acknowledge(version, contents);
            note(report, &name, verdict);
            true
        }
        Err(error) => failed(report, file, &name, contents, error),
    }
}

async fn cas(
    client: &mut Client,
    id: usize,
    file: usize,
    version: Version,
    contents: Bytes,
    report: &mut ClientReport,
) -> bool {
    let name = file_name(id, file);
    let verdict = match client.cas(&name, version, contents.clone(), 0).await {
        Ok(new_version) => report.files[file].acknowledge(new_version, contents),
        Err(ClientError::VersionMismatch { current }) => {
            report.files[file].version_mismatch(current)
        }
        Err(ClientError::NotFound) => report.files[file].observe(None),
        Err(error) => return failed(report, file, &name, contents, error),
    };
    report.cas += 1;
    note(report, &name, verdict);
    true
}

async fn read(client: &mut Client, id: usize, file: usize, report: &mut ClientReport) -> bool {
    let name = file_name(id, file);
    let read = match client.read(&name).await {
        Ok(found) => Some(found),
        Err(ClientError::NotFound) => None,
        Err(error) => return failed(report, file, &name, Bytes::new(), error),
    };
    report.reads += 1;
    let verdict = report.files[file].observe(read.as_ref());
    note(report, &name, verdict);
    true
}

/// Records a failed operation; `contents` is what a change would have
/// written (empty for a read). Returns false: no answer to time.
fn failed(
    report: &mut ClientReport,
    file: usize,
    name: &str,
    contents: Bytes,
    error: ClientError,
) -> bool {
    if error.outcome_unknown() {
        report.uncertain += 1;
        if !contents.is_empty() {
            report.files[file].uncertain(contents);
        }
    } else if matches!(error, ClientError::Unavailable { .. }) {
        report.unavailable += 1;
    } else {
        report
            .errors
            .push(format!("{name}: {}", error_chain::render(&error)));
    }
    false
}

fn note(report: &mut ClientReport, name: &str, verdict: Verdict) {
    if let Verdict::Inconsistent(why) = verdict {
        report.anomalies.push(format!("{name}: {why}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(version: u64, contents: &Bytes) -> File {
        File {
            version: Version(version),
            contents: contents.clone(),
            exptime_s: 0,
        }
    }

    #[test]
    fn contents_are_unique_and_padded() {
        let a = unique_contents(3, 1, 7);
        assert_eq!(a.len(), CONTENTS_BYTES);
        assert_ne!(a, unique_contents(3, 1, 8));
        assert_ne!(a, unique_contents(13, 1, 7));
        assert_eq!(contents_label(&a), "client 3 file 1 change 7");
        assert_eq!(file_name(3, 1), "c03-f1");
    }

    #[test]
    fn a_read_must_show_the_last_acknowledged_change() {
        let (a, b) = (unique_contents(0, 0, 1), unique_contents(0, 0, 2));
        let mut known = FileKnowledge::default();
        assert_eq!(known.observe(None), Verdict::Consistent);
        assert_eq!(
            known.acknowledge(Version(5), a.clone()),
            Verdict::Consistent
        );
        assert_eq!(
            known.acknowledge(Version(9), b.clone()),
            Verdict::Consistent
        );
        assert_eq!(known.judge(Some(&file(9, &b))), Verdict::Consistent);
        // The previous change, an unknown one, or nothing: a lost write.
        assert!(matches!(
            known.judge(Some(&file(5, &a))),
            Verdict::Inconsistent(_)
        ));
        assert!(matches!(
            known.judge(Some(&file(12, &a))),
            Verdict::Inconsistent(_)
        ));
        assert!(matches!(
            known.judge(Some(&file(9, &a))),
            Verdict::Inconsistent(_)
        ));
        assert!(matches!(known.judge(None), Verdict::Inconsistent(_)));
        assert_eq!(known.acknowledged(), 2);
    }

    #[test]
    fn an_uncertain_change_may_show_later_or_never() {
        let (a, b, c) = (
            unique_contents(0, 0, 1),
            unique_contents(0, 0, 2),
            unique_contents(0, 0, 3),
        );
        let mut known = FileKnowledge::default();
        known.acknowledge(Version(5), a.clone());
        known.uncertain(b.clone());
        assert_eq!(known.judge(Some(&file(5, &a))), Verdict::Consistent);
        assert_eq!(known.observe(Some(&file(8, &b))), Verdict::Consistent);
        // Having seen it, going back to the older state is stale.
        assert!(matches!(
            known.judge(Some(&file(5, &a))),
            Verdict::Inconsistent(_)
        ));
        // Never written with those contents: not explained by any change.
        assert!(matches!(
            known.judge(Some(&file(11, &c))),
            Verdict::Inconsistent(_)
        ));
        // An uncertain change to a file that never existed.
        let mut fresh = FileKnowledge::default();
        fresh.uncertain(c.clone());
        assert_eq!(fresh.judge(None), Verdict::Consistent);
        assert_eq!(fresh.judge(Some(&file(3, &c))), Verdict::Consistent);
    }

    #[test]
    fn versions_must_increase() {
        let mut known = FileKnowledge::default();
        known.acknowledge(Version(5), unique_contents(0, 0, 1));
        assert!(matches!(
            known.acknowledge(Version(5), unique_contents(0, 0, 2)),
            Verdict::Inconsistent(_)
        ));
    }

    #[test]
    fn a_version_mismatch_needs_an_uncertain_change_to_explain_it() {
        let mut known = FileKnowledge::default();
        known.acknowledge(Version(5), unique_contents(0, 0, 1));
        assert!(matches!(
            known.version_mismatch(Version(7)),
            Verdict::Inconsistent(_)
        ));
        let b = unique_contents(0, 0, 2);
        known.uncertain(b.clone());
        assert_eq!(known.version_mismatch(Version(7)), Verdict::Consistent);
        assert_eq!(known.latest_version(), Some(Version(7)));
        // Its contents are unknown but must be the uncertain change's.
        assert_eq!(known.judge(Some(&file(7, &b))), Verdict::Consistent);
        assert!(matches!(
            known.judge(Some(&file(7, &unique_contents(0, 0, 1)))),
            Verdict::Inconsistent(_)
        ));
        assert!(matches!(
            known.version_mismatch(Version(6)),
            Verdict::Inconsistent(_)
        ));
    }
}
