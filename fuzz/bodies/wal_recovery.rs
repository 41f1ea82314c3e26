//! Fuzz body `wal_recovery`: a real data directory, written through
//! `skiff_node::storage` (entries, a truncation, hard states, all synced,
//! over several segments), damaged as the input says (bytes flipped, files
//! truncated, deleted, replaced), then recovered with `storage::check` and
//! `Storage::open`. Never a panic, and never a silent start on damaged
//! data: recovery that reports no damage must give back exactly what was
//! written, and one that reports damage only a prefix of a log the node
//! once had (truncations are records appended after the entries they
//! remove, so damage before one gives back the entries it removed).

use arbitrary::{Result, Unstructured};
use skiff_core::{Action, Entry, HardState, LogIndex, NodeId, Term};
use skiff_node::storage::{self, Identity, Recovered, Storage};
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

const IDENTITY: Identity = Identity {
    cluster_id: 7,
    node_id: 1,
};

/// Small, so that the log spans several segments.
const SEGMENT_BYTES_MAX: u64 = 256;

/// What was written, file by file, and what it means.
struct Pristine {
    files: Vec<(String, Vec<u8>)>,
    hard_state: HardState,
    log: Vec<Entry>,
    /// The log just before each truncation.
    truncated_logs: Vec<Vec<Entry>>,
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let pristine = pristine();
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, bytes) in &pristine.files {
        fs::write(dir.path().join(name), bytes).expect("writing a pristine file");
    }
    // Running out of input ends the damage early; what was done so far stands.
    let _ = damage(dir.path(), &pristine.files, &mut Unstructured::new(data));
    let intact_files_left = pristine
        .files
        .iter()
        .any(|(name, _)| dir.path().join(name).exists());

    let checked = storage::check(dir.path());
    match Storage::open(dir.path(), IDENTITY, SEGMENT_BYTES_MAX) {
        Err(_) => {}
        Ok((_storage, recovered)) if recovered.damage.is_none() => {
            if intact_files_left {
                assert_whole(&recovered, pristine);
                if let Ok(report) = &checked {
                    assert!(
                        !report.needs_repair(),
                        "open found no damage, check did: {report}"
                    );
                }
            } else {
                // Every file gone is a new node, not damage.
                assert_eq!(recovered, Recovered::default());
            }
        }
        Ok((_storage, recovered)) => {
            let damage = recovered.damage.as_ref().expect("matched above");
            assert!(
                std::iter::once(&pristine.log)
                    .chain(&pristine.truncated_logs)
                    .any(|log| log.starts_with(&recovered.log)),
                "recovered a log that was never written, with {damage}"
            );
            assert!(recovered.log.len() as u64 >= damage.intact_through.0);
            assert_eq!(recovered.hard_state, pristine.hard_state);
            if let Ok(report) = &checked {
                assert!(
                    report.needs_repair(),
                    "open found {damage}, check did not: {report}"
                );
            }
        }
    }
}

fn assert_whole(recovered: &Recovered, pristine: &Pristine) {
    assert_eq!(
        recovered.hard_state, pristine.hard_state,
        "silent start, hard state differs"
    );
    assert_eq!(recovered.log, pristine.log, "silent start, log differs");
    assert!(!recovered.repairing);
}

/// Applies the damage the input describes to the files of `dir`.
fn damage(dir: &Path, files: &[(String, Vec<u8>)], input: &mut Unstructured<'_>) -> Result<()> {
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    for _ in 0..input.int_in_range(1..=4)? {
        let path = dir.join(input.choose(&names)?);
        let Ok(mut bytes) = fs::read(&path) else {
            continue;
        };
        match input.int_in_range(0..=4)? {
            0 => {
                if !bytes.is_empty() {
                    let at = input.choose_index(bytes.len())?;
                    bytes[at] ^= input.int_in_range(1..=255)?;
                }
            }
            1 => bytes.truncate(input.choose_index(bytes.len() + 1)?),
            2 => {
                fs::remove_file(&path).expect("removing a file");
                continue;
            }
            3 => bytes = fs::read(dir.join(input.choose(&names)?)).unwrap_or_default(),
            _ => {
                let len = input.int_in_range(0..=64)?;
                bytes = input.bytes(len)?.to_vec();
            }
        }
        fs::write(&path, &bytes).expect("writing a damaged file");
    }
    Ok(())
}

fn pristine() -> &'static Pristine {
    static PRISTINE: OnceLock<Pristine> = OnceLock::new();
    PRISTINE.get_or_init(write_pristine)
}

/// Writes a few synced turns as a node would, then keeps the files' bytes.
fn write_pristine() -> Pristine {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (mut storage, _) =
        Storage::open(dir.path(), IDENTITY, SEGMENT_BYTES_MAX).expect("a new data directory");
    let entry = |term: u64, i: usize| Entry::new(Term(term), format!("entry {i} of term {term}"));
    let mut log: Vec<Entry> = Vec::new();
    let mut truncated_logs = Vec::new();
    let mut turn = |actions: Vec<Action>, log: &mut Vec<Entry>| {
        for action in &actions {
            storage.persist(action).expect("persisting");
            if let Action::LogTruncate { from } = action {
                truncated_logs.push(log.clone());
                log.truncate(from.0 as usize - 1);
            }
            log.extend(action.stored_entries().map(|(_, e)| e.clone()));
        }
        storage.sync().expect("syncing");
    };
    let store = |log: &[Entry], entries: Vec<Entry>| Action::LogStore {
        index: LogIndex(log.len() as u64 + 1),
        entries: entries.into(),
    };
    let state = |term: u64, vote: u64| Action::StateStore {
        term: Term(term),
        voted_for: Some(NodeId(vote)),
    };
    turn(vec![state(1, 2)], &mut log);
    let first = (1..=6).map(|i| entry(1, i)).collect();
    turn(vec![store(&log, first)], &mut log);
    turn(vec![state(2, 1)], &mut log);
    let second = (7..=9).map(|i| entry(2, i)).collect();
    turn(vec![store(&log, second)], &mut log);
    turn(
        vec![state(3, 3), Action::LogTruncate { from: LogIndex(8) }],
        &mut log,
    );
    let third = (8..=12).map(|i| entry(3, i)).collect();
    turn(vec![store(&log, third)], &mut log);
    drop(storage);

    let (_, reopened) = Storage::open(dir.path(), IDENTITY, SEGMENT_BYTES_MAX).expect("reopening");
    assert_eq!(reopened.log, log, "the pristine directory reads back");
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir.path())
        .expect("listing the directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.file_name().is_some_and(|name| name != "lock"))
        // Files only: the directory also holds `snapshots/` (empty here).
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            (name, fs::read(&path).expect("reading a pristine file"))
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "several segments, a manifest, hard states: {files:?}"
    );
    Pristine {
        files,
        hard_state: reopened.hard_state,
        log,
        truncated_logs,
    }
}
