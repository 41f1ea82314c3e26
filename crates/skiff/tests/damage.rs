//! Real files, real damage: a three-node file-server cluster under write
//! load has one node killed with SIGKILL (a follower or the leader), its
//! data directory damaged on disk in one of [`DamageKind`]'s ways, and the
//! node restarted; then the leader is killed and restarted too, while the
//! writes go on. At the end every write the cluster acknowledged is read
//! back through the log.
//!
//! Each trial ends in one of three outcomes: the damaged node refused to
//! start and its log names the damaged file and an offset; it started
//! repairing (its log says `repairing`); or it started normally, which is
//! allowed only with every entry it held before the damage. Never allowed:
//! an acknowledged write missing at the end, a panic in any node, a node
//! that starts normally with a shorter log.
//!
//! Trial `seed` damages in the way `KINDS[seed % KINDS.len()]`, and draws
//! everything else from `seed`, so a failing trial is named by its seed:
//! `SKIFF_DAMAGE_FIRST_SEED=<seed> SKIFF_DAMAGE_TRIALS=1` runs it alone
//! (the load's timing still varies from run to run). `SKIFF_DAMAGE_TRIALS`
//! sets the number of trials: by default one per kind.

mod common;

use common::{TestCluster, PATIENCE};
use skiff::process_cluster::ProcessCluster;
use skiff::status_probe::{probe, wait_for_leader};
use skiff_fs::{Client, ClientConfig, ClientError, File};
use skiff_node::NodeId;
use skiff_sim::rng::SimRng;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Small segments, so that a second of load spreads the log over several
/// and the first, a middle and the last segment are distinct files.
const SEGMENT_BYTES: u64 = 4096;
/// Segments the damaged node must hold before it is killed.
const SEGMENTS_MIN: usize = 4;
/// Bytes before a segment's first record: the common header (magic,
/// version, cluster id, node id), sequence, length and CRC (see
/// `skiff-node/src/storage/wal.rs`).
const SEGMENT_HEADER_BYTES: usize = 28 + 8 + 8 + 4;
/// Bytes of the two sync slots between a segment's header and its first
/// record (see `skiff-node/src/storage/sync_slot.rs`).
const SYNC_SLOTS_BYTES: usize = 2 * 32;
/// Bytes of a record's length and checksum fields (see `record.rs`).
const RECORD_HEADER_BYTES: usize = 8;
/// A lost disk block or page.
const BLOCK_BYTES: u64 = 4096;
/// Zeroed blocks start on a sector boundary.
const SECTOR_BYTES: u64 = 512;
const WRITERS: u64 = 3;
/// Each writer writes every file this many times before the next, so that
/// some acknowledged writes are superseded by later ones.
const WRITES_PER_FILE: u64 = 3;
/// Acknowledged writes to wait for after the last restart, so that the
/// cluster is shown to make progress with what recovery left it.
const ACKS_AFTER_RECOVERY: u64 = 30;
/// How long a status probe of a restarting node may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);
const TRIALS_DEFAULT: u64 = KINDS.len() as u64;

/// One way to damage a stopped node's data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum DamageKind {
    /// One to three bits flipped at random offsets of a segment's header
    /// and records.
    BitFlips,
    /// One bit flipped in the length field of a random record.
    LengthField,
    /// One bit flipped in a segment's header.
    SegmentHeader,
    /// A segment cut at a random point.
    Truncation,
    /// A sector-aligned 4 KiB block of a segment overwritten with zeros.
    ZeroedBlock,
    FirstSegmentDeleted,
    MiddleSegmentDeleted,
    LastSegmentDeleted,
    ManifestDeleted,
    /// One bit flipped in the manifest.
    ManifestDamaged,
    /// One bit flipped in one of the two hard-state copies.
    OneHardStateDamaged,
    /// One bit flipped in each hard-state copy.
    BothHardStatesDamaged,
}

const KINDS: [DamageKind; 12] = [
    DamageKind::BitFlips,
    DamageKind::LengthField,
    DamageKind::SegmentHeader,
    DamageKind::Truncation,
    DamageKind::ZeroedBlock,
    DamageKind::FirstSegmentDeleted,
    DamageKind::MiddleSegmentDeleted,
    DamageKind::LastSegmentDeleted,
    DamageKind::ManifestDeleted,
    DamageKind::ManifestDamaged,
    DamageKind::OneHardStateDamaged,
    DamageKind::BothHardStatesDamaged,
];

impl fmt::Display for DamageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DamageKind::BitFlips => "bit flips",
            DamageKind::LengthField => "length field",
            DamageKind::SegmentHeader => "segment header",
            DamageKind::Truncation => "truncation",
            DamageKind::ZeroedBlock => "zeroed 4 KiB block",
            DamageKind::FirstSegmentDeleted => "first segment deleted",
            DamageKind::MiddleSegmentDeleted => "middle segment deleted",
            DamageKind::LastSegmentDeleted => "last segment deleted",
            DamageKind::ManifestDeleted => "manifest deleted",
            DamageKind::ManifestDamaged => "manifest damaged",
            DamageKind::OneHardStateDamaged => "one hard state damaged",
            DamageKind::BothHardStatesDamaged => "both hard states damaged",
        };
        f.pad(name)
    }
}

/// The segment files of `dir`, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    skiff_node::storage::segment_files(dir).unwrap()
}

/// The offsets of the records of a segment's bytes, and where they end:
/// a segment is preallocated with zeros, and a zero length ends the log.
fn record_offsets(bytes: &[u8]) -> (Vec<usize>, usize) {
    let mut offsets = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES + SYNC_SLOTS_BYTES;
    while let Some(length) = bytes.get(at..at + 4) {
        let length = u32::from_le_bytes(length.try_into().unwrap()) as usize;
        let end = at + RECORD_HEADER_BYTES + length;
        if length == 0 || end > bytes.len() {
            break;
        }
        offsets.push(at);
        at = end;
    }
    (offsets, at.min(bytes.len()))
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Flips one random bit of the byte at `offset` of `path`.
fn flip_bit(path: &Path, offset: u64, rng: &mut SimRng) -> String {
    let mut bytes = std::fs::read(path).unwrap();
    let bit = rng.below(8);
    bytes[offset as usize] ^= 1 << bit;
    std::fs::write(path, &bytes).unwrap();
    format!("bit {bit} at offset {offset} of {}", file_name(path))
}

/// A random segment of `dir` with at least one record, and its bytes.
fn segment_with_records(dir: &Path, rng: &mut SimRng) -> (PathBuf, Vec<u8>) {
    let all = segments(dir);
    let with_records: Vec<&PathBuf> = all
        .iter()
        .filter(|path| !record_offsets(&std::fs::read(path).unwrap()).0.is_empty())
        .collect();
    let path = with_records[rng.below(with_records.len() as u64) as usize].clone();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// Damages the stopped node's data directory `dir` in the way `kind`;
/// returns what was done.
fn damage(dir: &Path, kind: DamageKind, rng: &mut SimRng) -> String {
    let segments = segments(dir);
    let pick_hard_state =
        |rng: &mut SimRng| dir.join(["hardstate.a", "hardstate.b"][rng.below(2) as usize]);
    let flip_anywhere = |path: &Path, rng: &mut SimRng| {
        let length = std::fs::metadata(path).unwrap().len();
        flip_bit(path, rng.below(length), rng)
    };
    match kind {
        DamageKind::BitFlips => {
            let (path, bytes) = segment_with_records(dir, rng);
            let (_, end) = record_offsets(&bytes);
            let flips = 1 + rng.below(3);
            let done: Vec<String> = (0..flips)
                .map(|_| flip_bit(&path, rng.below(end as u64), rng))
                .collect();
            done.join(", ")
        }
        DamageKind::LengthField => {
            let (path, bytes) = segment_with_records(dir, rng);
            let (offsets, _) = record_offsets(&bytes);
            let record = offsets[rng.below(offsets.len() as u64) as usize];
            let at = record as u64 + rng.below(4);
            let last = if record == *offsets.last().unwrap() {
                ", its last record"
            } else {
                ""
            };
            format!("{}{last}", flip_bit(&path, at, rng))
        }
        DamageKind::SegmentHeader => {
            let path = &segments[rng.below(segments.len() as u64) as usize];
            flip_bit(path, rng.below(SEGMENT_HEADER_BYTES as u64), rng)
        }
        DamageKind::Truncation => {
            let path = &segments[rng.below(segments.len() as u64) as usize];
            let length = std::fs::metadata(path).unwrap().len();
            let cut = rng.below(length);
            let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            file.set_len(cut).unwrap();
            format!("{} cut from {length} to {cut} bytes", file_name(path))
        }
        DamageKind::ZeroedBlock => {
            let (path, mut bytes) = segment_with_records(dir, rng);
            let (_, end) = record_offsets(&bytes);
            let start = rng.below(end.div_ceil(SECTOR_BYTES as usize) as u64) * SECTOR_BYTES;
            let stop = (start + BLOCK_BYTES).min(bytes.len() as u64);
            bytes[start as usize..stop as usize].fill(0);
            std::fs::write(&path, &bytes).unwrap();
            format!(
                "bytes {start}..{stop} of {} zeroed (records end at {end})",
                file_name(&path)
            )
        }
        DamageKind::FirstSegmentDeleted
        | DamageKind::MiddleSegmentDeleted
        | DamageKind::LastSegmentDeleted => {
            let index = match kind {
                DamageKind::FirstSegmentDeleted => 0,
                DamageKind::MiddleSegmentDeleted => {
                    1 + rng.below(segments.len() as u64 - 2) as usize
                }
                _ => segments.len() - 1,
            };
            std::fs::remove_file(&segments[index]).unwrap();
            format!(
                "{} of {} segments deleted",
                file_name(&segments[index]),
                segments.len()
            )
        }
        DamageKind::ManifestDeleted => {
            std::fs::remove_file(dir.join("manifest")).unwrap();
            "manifest deleted".to_string()
        }
        DamageKind::ManifestDamaged => flip_anywhere(&dir.join("manifest"), rng),
        DamageKind::OneHardStateDamaged => flip_anywhere(&pick_hard_state(rng), rng),
        DamageKind::BothHardStatesDamaged => {
            let a = flip_anywhere(&dir.join("hardstate.a"), rng);
            let b = flip_anywhere(&dir.join("hardstate.b"), rng);
            format!("{a}, {b}")
        }
    }
}

/// What `skiff check` says recovery of an undamaged directory would keep:
/// the number of entries.
fn entries_before_damage(dir: &Path) -> u64 {
    let output = common::skiff(&["check", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "a directory only killed, not yet damaged, checks as damaged:\n{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdict = report.lines().last().unwrap_or_default();
    let count = verdict
        .split_once(" with ")
        .and_then(|(_, rest)| rest.strip_suffix(" entries"));
    count
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entry count in: {report}"))
}

/// The entry count in a node's `recovered ... entries=N` log line.
fn recovered_entries(log: &str) -> Option<u64> {
    let line = log.lines().rev().find(|line| line.contains(" recovered"))?;
    let field = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("entries="))?;
    field.parse().ok()
}

/// How the damaged node came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// It exited at start, its log naming the file and an offset.
    Refused,
    /// It started with every entry it held before the damage.
    StartedNormally,
    /// It started repairing.
    Repaired,
}

/// The writes the clients sent, by file, and the ones acknowledged.
#[derive(Default)]
struct Writes {
    /// Every write sent to each file, in the order sent (one writer per file).
    sent: HashMap<String, Vec<String>>,
    /// Each acknowledged write: file, version, contents.
    acknowledged: Vec<(String, u64, String)>,
}

/// The write load: `WRITERS` clients writing until stopped.
struct Load {
    writes: Arc<Mutex<Writes>>,
    /// The number of acknowledged writes, for waiting on progress.
    acknowledged: watch::Receiver<u64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn client(addresses: &[String]) -> Client {
    Client::new(ClientConfig {
        attempts_max: 100,
        backoff: Duration::from_millis(20),
        request_timeout: Duration::from_secs(3),
        ..ClientConfig::new(addresses.to_vec())
    })
}

impl Load {
    fn start(addresses: &[String]) -> Load {
        let writes = Arc::new(Mutex::new(Writes::default()));
        let (counter, acknowledged) = watch::channel(0u64);
        let counter = Arc::new(counter);
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..WRITERS)
            .map(|writer| {
                let mut servers = addresses.to_vec();
                servers.rotate_left(writer as usize % addresses.len());
                let mut client = client(&servers);
                let (writes, counter, stop) = (writes.clone(), counter.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut sequence = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let name = format!("w{writer}-{}", sequence / WRITES_PER_FILE);
                        let contents = format!("w{writer}-{sequence}");
                        sequence += 1;
                        (writes.lock().unwrap().sent)
                            .entry(name.clone())
                            .or_default()
                            .push(contents.clone());
                        match client.write(&name, contents.clone(), 0).await {
                            Ok(version) => {
                                writes
                                    .lock()
                                    .unwrap()
                                    .acknowledged
                                    .push((name, version.0, contents));
                                counter.send_modify(|n| *n += 1);
                            }
                            // Its outcome is unknown, or no leader took it:
                            // either way it was sent, and is not relied on.
                            Err(error) if error.outcome_unknown() => {}
                            Err(ClientError::Unavailable { .. }) => {}
                            Err(error) => panic!("writer {writer}: {error}"),
                        }
                    }
                })
            })
            .collect();
        Load {
            writes,
            acknowledged,
            stop,
            tasks,
        }
    }

    /// Waits until `more` writes beyond those acknowledged so far are.
    async fn acknowledge(&mut self, more: u64) -> Result<(), String> {
        let target = *self.acknowledged.borrow() + more;
        tokio::time::timeout(PATIENCE, self.acknowledged.wait_for(|n| *n >= target))
            .await
            .map_err(|_| format!("fewer than {more} writes acknowledged in {PATIENCE:?}"))?
            .map_err(|_| "every writer stopped".to_string())?;
        Ok(())
    }

    async fn stop(self) -> Writes {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(self.writes)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

/// Reads `name`; `None` when it does not exist. A read changes nothing,
/// so one whose answer was lost (a server that stopped, or a held listener
/// of a node that refused to start) is sent again: the client has moved on
/// to the next server.
async fn read_retrying(reader: &mut Client, name: &str) -> Result<Option<File>, ClientError> {
    const ATTEMPTS: usize = 5;
    let mut attempt = 1;
    loop {
        match reader.read(name).await {
            Ok(file) => return Ok(Some(file)),
            Err(ClientError::NotFound) => return Ok(None),
            Err(error) if error.outcome_unknown() && attempt < ATTEMPTS => attempt += 1,
            Err(error) => return Err(error),
        }
    }
}

/// Reads every file with an acknowledged write back through the cluster;
/// returns the acknowledged writes it does not find, with why.
async fn lost_writes(addresses: &[String], writes: &Writes) -> Result<Vec<String>, String> {
    let mut by_file: BTreeMap<&str, Vec<(u64, &str)>> = BTreeMap::new();
    for (name, version, contents) in &writes.acknowledged {
        by_file.entry(name).or_default().push((*version, contents));
    }
    let mut reader = client(addresses);
    let mut lost = Vec::new();
    for (name, acknowledged) in by_file {
        let (found_version, found) = match read_retrying(&mut reader, name).await {
            Ok(Some(file)) => (
                file.version.0,
                String::from_utf8_lossy(&file.contents).into_owned(),
            ),
            Ok(None) => (0, String::new()),
            Err(error) => return Err(format!("cannot read {name}: {error}")),
        };
        for (version, contents) in &acknowledged {
            if *version > found_version {
                lost.push(format!(
                    "{name} = {contents} at version {version}, read {found:?} at {found_version}"
                ));
            }
        }
        let (last_version, last) = *acknowledged.iter().max().unwrap();
        let sent = &writes.sent[name];
        // Only a write sent after the last acknowledged one may replace it.
        let later = sent.iter().skip_while(|c| *c != last).skip(1);
        let explained = if found_version == last_version {
            found == last
        } else {
            found_version < last_version || later.clone().any(|c| *c == found)
        };
        if !explained {
            lost.push(format!(
                "{name} = {last} at version {last_version}, read {found:?} at {found_version}"
            ));
        }
    }
    Ok(lost)
}

/// What one trial saw.
struct Trial {
    seed: u64,
    kind: DamageKind,
    outcome: Option<Outcome>,
    acknowledged: usize,
    lost: Vec<String>,
    panics: Vec<NodeId>,
    /// Anything else that must not happen, with the evidence.
    failures: Vec<String>,
}

/// The part of node `id`'s log written since `from` bytes.
fn log_since(cluster: &ProcessCluster, id: NodeId, from: u64) -> String {
    let text = std::fs::read(cluster.log_path(id)).unwrap_or_default();
    String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default()).into_owned()
}

fn log_length(cluster: &ProcessCluster, id: NodeId) -> u64 {
    std::fs::metadata(cluster.log_path(id)).map_or(0, |m| m.len())
}

/// Starts node `id` and waits until it answers `status` (`Ok(true)`) or
/// exits (`Ok(false)`).
async fn start_and_watch(cluster: &mut ProcessCluster, id: NodeId) -> Result<bool, String> {
    cluster.start(id).map_err(|e| e.to_string())?;
    let address = cluster.client_address(id).unwrap().to_string();
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if cluster
            .reap_exited()
            .iter()
            .any(|(exited, _)| *exited == id)
        {
            return Ok(false);
        }
        // Its client listener is held for it, so the probe connects at once
        // and times out until the node answers.
        if probe(&address, PROBE_TIMEOUT).await.is_ok() {
            return Ok(true);
        }
    }
    Err(format!(
        "node {id} neither answered nor exited in {PATIENCE:?}"
    ))
}

/// Waits until node `id` answers `status` that it is no longer repairing.
async fn wait_until_repaired(cluster: &ProcessCluster, id: NodeId) -> Result<(), String> {
    let address = cluster.client_address(id).unwrap().to_string();
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if probe(&address, PROBE_TIMEOUT)
            .await
            .is_ok_and(|status| !status.repairing)
        {
            return Ok(());
        }
    }
    Err(format!(
        "node {id} did not finish repairing in {PATIENCE:?}"
    ))
}

async fn leader(cluster: &ProcessCluster) -> Result<NodeId, String> {
    let report = wait_for_leader(&cluster.client_addresses(), PATIENCE).await;
    report.map(|r| r.id).map_err(|e| format!("no leader: {e}"))
}

async fn run_trial(seed: u64) -> Trial {
    let kind = KINDS[(seed % KINDS.len() as u64) as usize];
    let mut trial = Trial {
        seed,
        kind,
        outcome: None,
        acknowledged: 0,
        lost: Vec::new(),
        panics: Vec::new(),
        failures: Vec::new(),
    };
    let mut test = TestCluster::start_configured(3, |c| c.segment_bytes_max = SEGMENT_BYTES).await;
    let addresses = test.cluster.client_addresses();
    let mut load = Load::start(&addresses);
    if let Err(failure) = damage_and_recover(&mut test.cluster, &mut load, &mut trial).await {
        trial.failures.push(failure);
    }
    let writes = load.stop().await;
    trial.acknowledged = writes.acknowledged.len();
    match lost_writes(&addresses, &writes).await {
        Ok(lost) => trial.lost = lost,
        Err(failure) => trial.failures.push(failure),
    }
    for id in test.cluster.ids() {
        if log_since(&test.cluster, id, 0).contains("panicked") {
            trial.panics.push(id);
        }
    }
    if !(trial.failures.is_empty() && trial.lost.is_empty() && trial.panics.is_empty()) {
        trial.failures.push(test.log_tails());
    }
    trial
}

/// The trial proper: kill, damage, restart, kill the leader, restart it.
async fn damage_and_recover(
    cluster: &mut ProcessCluster,
    load: &mut Load,
    trial: &mut Trial,
) -> Result<(), String> {
    let mut rng = SimRng::new(trial.seed);
    let leader_id = leader(cluster).await?;
    let victim = if rng.below(3) == 0 {
        leader_id
    } else {
        let followers: Vec<NodeId> = cluster
            .ids()
            .into_iter()
            .filter(|id| *id != leader_id)
            .collect();
        followers[rng.below(followers.len() as u64) as usize]
    };
    let dir = cluster.config().node(victim).unwrap().data_dir.clone();
    while segments(&dir).len() < SEGMENTS_MIN {
        load.acknowledge(20).await?;
    }
    cluster.kill(victim).map_err(|e| e.to_string())?;
    let before = entries_before_damage(&dir);
    let what = damage(&dir, trial.kind, &mut rng);
    let role = if victim == leader_id {
        "leader"
    } else {
        "follower"
    };
    eprintln!(
        "seed {}: {} {victim} killed with {before} entries; damage: {what}",
        trial.seed, role
    );

    let log_start = log_length(cluster, victim);
    let running = start_and_watch(cluster, victim).await?;
    let log = log_since(cluster, victim, log_start);
    let outcome = if !running {
        let names_file_and_offset =
            log.contains(&*dir.to_string_lossy()) && log.contains(" offset ");
        if !names_file_and_offset {
            return Err(format!(
                "node {victim} refused to start without naming a file and offset:\n{log}"
            ));
        }
        Outcome::Refused
    } else if log.to_lowercase().contains("repairing") {
        Outcome::Repaired
    } else {
        match recovered_entries(&log) {
            Some(after) if after >= before => Outcome::StartedNormally,
            after => {
                return Err(format!(
                    "node {victim} started normally with {after:?} of the {before} entries it held (damage: {what}):\n{log}"
                ))
            }
        }
    };
    trial.outcome = Some(outcome);
    if outcome == Outcome::Repaired {
        // A repairing node grants no vote: with the leader killed before
        // the repair ends, one voter of three is left and no successor can
        // be elected (the availability cost of a repair, not a fault).
        wait_until_repaired(cluster, victim).await?;
    }

    // The leader dies too: the damaged node, if it runs, now takes part in
    // choosing the next one.
    let second = leader(cluster).await?;
    cluster.kill(second).map_err(|e| e.to_string())?;
    if running {
        // A leader counts only if it answers that it leads, so this is a
        // successor, elected with the damaged node's vote or over it.
        leader(cluster).await?;
    }
    if !start_and_watch(cluster, second).await? {
        return Err(format!(
            "undamaged node {second} did not restart:\n{}",
            cluster.log_tail(second)
        ));
    }
    leader(cluster).await?;
    load.acknowledge(ACKS_AFTER_RECOVERY).await
}

fn trials() -> (u64, u64) {
    let number = |name: &str, default: u64| {
        std::env::var(name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
    };
    (
        number("SKIFF_DAMAGE_FIRST_SEED", 0),
        number("SKIFF_DAMAGE_TRIALS", TRIALS_DEFAULT),
    )
}

/// Outcomes and losses of the trials of one damage kind.
#[derive(Default)]
struct Row {
    trials: u64,
    refused: u64,
    started: u64,
    repaired: u64,
    failed: u64,
    acknowledged: usize,
    lost: usize,
    panics: usize,
}

fn print_table(results: &[Trial]) {
    let mut rows: BTreeMap<DamageKind, Row> = BTreeMap::new();
    for trial in results {
        let row = rows.entry(trial.kind).or_default();
        row.trials += 1;
        match trial.outcome {
            Some(Outcome::Refused) => row.refused += 1,
            Some(Outcome::StartedNormally) => row.started += 1,
            Some(Outcome::Repaired) => row.repaired += 1,
            None => {}
        }
        row.failed += u64::from(!trial.failures.is_empty());
        row.acknowledged += trial.acknowledged;
        row.lost += trial.lost.len();
        row.panics += trial.panics.len();
    }
    let mut total = Row::default();
    eprintln!(
        "{:<26} {:>6} {:>7} {:>7} {:>8} {:>6} {:>8} {:>5} {:>6}",
        "damage", "trials", "refused", "started", "repaired", "failed", "acked", "lost", "panics"
    );
    let line = |name: &dyn fmt::Display, row: &Row| {
        eprintln!(
            "{:<26} {:>6} {:>7} {:>7} {:>8} {:>6} {:>8} {:>5} {:>6}",
            name,
            row.trials,
            row.refused,
            row.started,
            row.repaired,
            row.failed,
            row.acknowledged,
            row.lost,
            row.panics
        );
    };
    for (kind, row) in &rows {
        line(kind, row);
        total.trials += row.trials;
        total.refused += row.refused;
        total.started += row.started;
        total.repaired += row.repaired;
        total.failed += row.failed;
        total.acknowledged += row.acknowledged;
        total.lost += row.lost;
        total.panics += row.panics;
    }
    line(&"total", &total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_to_one_damaged_data_directory() {
    let (first, count) = trials();
    let started = Instant::now();
    let mut results = Vec::new();
    for seed in first..first + count {
        let trial = run_trial(seed).await;
        for lost in &trial.lost {
            eprintln!("seed {seed} ({}): LOST {lost}", trial.kind);
        }
        for failure in &trial.failures {
            eprintln!("seed {seed} ({}): FAILED {failure}", trial.kind);
        }
        results.push(trial);
    }
    print_table(&results);
    eprintln!("{count} trials in {:.1?}", started.elapsed());
    let lost: usize = results.iter().map(|t| t.lost.len()).sum();
    let panics: usize = results.iter().map(|t| t.panics.len()).sum();
    let failed: Vec<u64> = results
        .iter()
        .filter(|t| !t.failures.is_empty())
        .map(|t| t.seed)
        .collect();
    assert_eq!(lost, 0, "acknowledged writes lost");
    assert_eq!(panics, 0, "nodes panicked");
    assert!(failed.is_empty(), "trials failed (seeds {failed:?})");
}
