//! Storage round trips, crash recovery and refusals.

use super::wal::SEGMENT_HEADER_BYTES;
use super::*;
use skiff_core::{LogIndex, NodeId, Term};
use std::path::PathBuf;

const ME: Identity = Identity {
    cluster_id: 9,
    node_id: 1,
};
const SEGMENT_BYTES: u64 = 1 << 20;

fn open(dir: &Path, segment_bytes_max: u64) -> Result<(Storage, Recovered), StorageError> {
    Storage::open(dir, ME, segment_bytes_max)
}

fn store(storage: &mut Storage, index: u64, term: u64, data: &str) {
    let entry = Entry::new(Term(term), data.to_string());
    let action = Action::LogStore {
        index: LogIndex(index),
        entries: entry.into(),
    };
    storage.persist(&action).unwrap();
}

fn data(log: &[Entry]) -> Vec<String> {
    log.iter()
        .map(|e| String::from_utf8_lossy(&e.data).into_owned())
        .collect()
}

/// A log of `count` entries "v1", "v2", ... synced in one turn.
fn write_log(dir: &Path, count: u64, segment_bytes_max: u64) {
    let (mut storage, _) = open(dir, segment_bytes_max).unwrap();
    for index in 1..=count {
        store(&mut storage, index, 1, &format!("v{index}"));
    }
    storage.sync().unwrap();
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn log_and_hard_state_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut storage, recovered) = open(dir.path(), SEGMENT_BYTES).unwrap();
        assert_eq!(recovered, Recovered::default());
        let vote = Action::StateStore {
            term: Term(2),
            voted_for: Some(NodeId(3)),
        };
        storage.persist(&vote).unwrap();
        store(&mut storage, 1, 1, "a");
        store(&mut storage, 2, 2, "b");
        store(&mut storage, 3, 2, "c");
        storage
            .persist(&Action::LogTruncate { from: LogIndex(2) })
            .unwrap();
        store(&mut storage, 2, 2, "d");
        storage.sync().unwrap();
        assert_eq!(storage.sync_count(), 1);
    }
    let (_, recovered) = open(dir.path(), SEGMENT_BYTES).unwrap();
    assert_eq!(
        recovered.hard_state,
        HardState {
            term: Term(2),
            voted_for: Some(NodeId(3))
        }
    );
    assert_eq!(data(&recovered.log), ["a", "d"]);
    assert_eq!(recovered.log[1].term, Term(2));
}

#[test]
fn a_log_store_of_several_entries_writes_each_at_its_index() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = open(dir.path(), SEGMENT_BYTES).unwrap();
        store(&mut storage, 1, 1, "a");
        let batch: skiff_core::Entries = ["b", "c", "d"]
            .into_iter()
            .map(|data| Entry::new(Term(2), data))
            .collect();
        let action = Action::LogStore {
            index: LogIndex(2),
            entries: batch,
        };
        storage.persist(&action).unwrap();
        store(&mut storage, 5, 2, "e");
        storage.sync().unwrap();
    }
    let (_, recovered) = open(dir.path(), SEGMENT_BYTES).unwrap();
    assert_eq!(data(&recovered.log), ["a", "b", "c", "d", "e"]);
    assert_eq!(recovered.log[3].term, Term(2));
}

#[test]
fn nothing_is_written_before_sync() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = open(dir.path(), SEGMENT_BYTES).unwrap();
        store(&mut storage, 1, 1, "a");
        // Dropped without a sync, as in a crash before the turn's sync.
    }
    let (_, recovered) = open(dir.path(), SEGMENT_BYTES).unwrap();
    assert!(recovered.log.is_empty());
}

#[test]
fn small_segments_roll_over_and_replay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 50, 128);
    assert!(segments(dir.path()).len() > 5, "{:?}", segments(dir.path()));
    let (mut storage, recovered) = open(dir.path(), 128).unwrap();
    assert_eq!(recovered.log.len(), 50);
    assert_eq!(data(&recovered.log)[49], "v50");
    store(&mut storage, 51, 1, "v51");
    storage.sync().unwrap();
    drop(storage);
    assert_eq!(open(dir.path(), 128).unwrap().1.log.len(), 51);
}

#[test]
fn a_torn_tail_is_cut_off_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, SEGMENT_BYTES);
    let path = segments(dir.path()).pop().unwrap();
    let length = fs::metadata(&path).unwrap().len();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(length - 3)
        .unwrap();

    let (mut storage, recovered) = open(dir.path(), SEGMENT_BYTES).unwrap();
    assert_eq!(data(&recovered.log), ["v1", "v2"]);
    store(&mut storage, 3, 1, "w3");
    storage.sync().unwrap();
    drop(storage);
    assert_eq!(
        data(&open(dir.path(), SEGMENT_BYTES).unwrap().1.log),
        ["v1", "v2", "w3"]
    );
}

#[test]
fn a_damaged_last_record_or_trailing_zeros_count_as_torn() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, SEGMENT_BYTES);
    let path = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    bytes.extend_from_slice(&[0; 100]);
    fs::write(&path, &bytes).unwrap();
    let (_, recovered) = open(dir.path(), SEGMENT_BYTES).unwrap();
    assert_eq!(data(&recovered.log), ["v1", "v2"]);
}

#[test]
fn mid_log_corruption_names_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, SEGMENT_BYTES);
    let path = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[SEGMENT_HEADER_BYTES + 20] ^= 1; // inside the first record's payload
    fs::write(&path, &bytes).unwrap();
    let err = open(dir.path(), SEGMENT_BYTES).unwrap_err();
    match &err {
        StorageError::CorruptRecord {
            path: bad, offset, ..
        } => {
            assert_eq!(bad, &path);
            assert_eq!(*offset, SEGMENT_HEADER_BYTES as u64);
        }
        other => panic!("expected a corrupt record, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("offset 40"),
        "{text}"
    );
}

#[test]
fn damage_in_a_sealed_segment_is_corruption_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 50, 128);
    let first = segments(dir.path()).remove(0);
    let length = fs::metadata(&first).unwrap().len();
    File::options()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(length - 1)
        .unwrap();
    let err = open(dir.path(), 128).unwrap_err();
    assert!(matches!(err, StorageError::CorruptRecord { .. }), "{err}");
}

#[test]
fn a_missing_segment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 50, 128);
    let second = segments(dir.path()).remove(1);
    fs::remove_file(&second).unwrap();
    let err = open(dir.path(), 128).unwrap_err();
    assert!(
        matches!(&err, StorageError::MissingSegment { path } if *path == second),
        "{err}"
    );
}

#[test]
fn a_log_of_another_node_or_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 1, SEGMENT_BYTES);
    let other = Identity { node_id: 2, ..ME };
    let err = Storage::open(dir.path(), other, SEGMENT_BYTES).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Foreign {
                found_node: 1,
                node: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_torn_segment_header_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 2, SEGMENT_BYTES);
    let torn = dir.path().join(format!("{:020}.wal", 2));
    fs::write(&torn, b"SKIFF").unwrap();
    let (mut storage, recovered) = open(dir.path(), SEGMENT_BYTES).unwrap();
    assert_eq!(recovered.log.len(), 2);
    assert!(!torn.exists());
    store(&mut storage, 3, 1, "v3");
    storage.sync().unwrap();
    drop(storage);
    assert_eq!(open(dir.path(), SEGMENT_BYTES).unwrap().1.log.len(), 3);
}

#[test]
fn the_directory_is_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), SEGMENT_BYTES).unwrap();
    let err = open(dir.path(), SEGMENT_BYTES).unwrap_err();
    assert!(matches!(err, StorageError::Locked { .. }), "{err}");
    drop(first);
    open(dir.path(), SEGMENT_BYTES).unwrap();
}
