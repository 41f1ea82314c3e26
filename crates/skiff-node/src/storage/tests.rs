//! Storage round trips, crash recovery and refusals.

use super::wal::{RECORDS_START, SEGMENT_HEADER_BYTES};
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

fn copy_dir(from: &Path, to: &Path) {
    for item in fs::read_dir(from).unwrap() {
        let path = item.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            fs::create_dir_all(&target).unwrap();
            copy_dir(&path, &target);
        } else if path.file_name().unwrap() != "lock" {
            fs::copy(&path, target).unwrap();
        }
    }
}

/// Where each record of a segment's bytes starts, then where the last ends.
fn record_bounds(segment: &[u8]) -> Vec<usize> {
    let bytes = bytes::Bytes::copy_from_slice(segment);
    let mut bounds = vec![RECORDS_START];
    let mut offset = RECORDS_START;
    while let record::Decoded::Record { bytes: size, .. } = record::decode(&bytes.slice(offset..)) {
        offset += size;
        bounds.push(offset);
    }
    bounds
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    super::segment_files(dir).unwrap()
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

/// Where the records of segment `path` end.
fn records_end(path: &Path) -> usize {
    *record_bounds(&fs::read(path).unwrap()).last().unwrap()
}

#[test]
fn a_torn_last_batch_cut_at_any_point_recovers_the_synced_log() {
    // Small segments: every cut copies and recovers the whole directory.
    const SMALL_SEGMENT_BYTES: u64 = 4096;
    let template = tempfile::tempdir().unwrap();
    write_log(template.path(), 2, SMALL_SEGMENT_BYTES);
    let path = segments(template.path()).pop().unwrap();
    let synced_end = records_end(&path);
    let synced_slots = fs::read(&path).unwrap()[SEGMENT_HEADER_BYTES..RECORDS_START].to_vec();
    {
        let (mut storage, _) = open(template.path(), SMALL_SEGMENT_BYTES).unwrap();
        store(&mut storage, 3, 1, "v3");
        store(&mut storage, 4, 1, "v4");
        storage.sync().unwrap();
    }
    let full = fs::read(&path).unwrap();
    let batch_end = records_end(&path);
    for cut in synced_end..=batch_end {
        // A crash during the write of the last batch leaves any prefix of
        // it, and zeros where the rest would be; its sync slot is written
        // after the records, so the slots are still those of the sync
        // before.
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        let mut torn = full.clone();
        torn[cut..].fill(0);
        torn[SEGMENT_HEADER_BYTES..RECORDS_START].copy_from_slice(&synced_slots);
        fs::write(dir.path().join(path.file_name().unwrap()), &torn).unwrap();
        let (mut storage, recovered) = open(dir.path(), SMALL_SEGMENT_BYTES).unwrap();
        assert_eq!(recovered.damage, None, "cut at {cut}");
        let log = data(&recovered.log);
        assert!(
            log.starts_with(&["v1".into(), "v2".into()]),
            "cut at {cut}: {log:?}"
        );
        let next = recovered.log.len() as u64 + 1;
        store(&mut storage, next, 1, "w");
        storage.sync().unwrap();
        drop(storage);
        let (_, reopened) = open(dir.path(), SMALL_SEGMENT_BYTES).unwrap();
        assert_eq!(reopened.damage, None, "cut at {cut}");
        assert_eq!(data(&reopened.log).last().unwrap(), "w", "cut at {cut}");
    }
}

#[test]
fn a_flipped_length_in_the_last_segment_is_damage_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 300, SEGMENT_BYTES);
    let path = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let fourth = record_bounds(&bytes)[3];
    bytes[fourth + 1] ^= 0x04; // the length of the fourth record
    fs::write(&path, &bytes).unwrap();
    let (mut storage, recovered) = open(dir.path(), SEGMENT_BYTES).unwrap();
    let damage = recovered.damage.expect("damage");
    assert_eq!(
        (damage.path.as_path(), damage.offset),
        (path.as_path(), fourth as u64)
    );
    assert_eq!(damage.intact_through, LogIndex(3));
    assert_eq!(damage.synced_through, Some(LogIndex(300)));
    assert_eq!(data(&recovered.log), ["v1", "v2", "v3"]);
    assert!(
        damage.to_string().contains("intact through index 3"),
        "{damage}"
    );
    let err = storage
        .persist(&Action::LogTruncate { from: LogIndex(2) })
        .unwrap_err();
    assert!(matches!(err, StorageError::NeedsRepair(_)), "{err}");
    drop(storage);
    assert_eq!(fs::read(&path).unwrap(), bytes, "damage is left as found");
}

#[test]
fn zeros_over_the_end_of_the_last_segment_and_all_its_sync_records_are_damage() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, SEGMENT_BYTES);
    {
        let (mut storage, _) = open(dir.path(), SEGMENT_BYTES).unwrap();
        for (first, last) in [(4, 10), (11, 20)] {
            for index in first..=last {
                store(&mut storage, index, 1, &format!("v{index}"));
            }
            storage.sync().unwrap();
        }
    }
    let path = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let bounds = record_bounds(&bytes);
    // From the third entry on: every sync record of the segment is gone,
    // and what is left looks like a log of two entries, unsynced.
    let third = bounds[2];
    bytes[third..*bounds.last().unwrap()].fill(0);
    fs::write(&path, &bytes).unwrap();
    let (_, recovered) = open(dir.path(), SEGMENT_BYTES).unwrap();
    let damage = recovered.damage.expect("damage, not a torn tail");
    assert_eq!(
        (damage.path.as_path(), damage.offset),
        (path.as_path(), third as u64)
    );
    assert_eq!(damage.intact_through, LogIndex(2));
    assert_eq!(damage.synced_through, Some(LogIndex(20)));
    assert_eq!(data(&recovered.log), ["v1", "v2"]);
    assert_eq!(fs::read(&path).unwrap(), bytes, "damage is left as found");
}

#[test]
fn a_damaged_sync_slot_is_noted_and_the_other_bounds_the_synced_log() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, SEGMENT_BYTES);
    {
        let (mut storage, _) = open(dir.path(), SEGMENT_BYTES).unwrap();
        store(&mut storage, 4, 1, "v4");
        storage.sync().unwrap();
    }
    let path = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    // The second sync went to slot B, right after slot A.
    bytes[RECORDS_START - 3] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let replay = wal::replay(dir.path(), ME).unwrap();
    assert!(replay.damage.is_none(), "{:?}", replay.damage);
    assert_eq!(replay.entries.len(), 4);
    assert_eq!(replay.last_slot.map(|slot| slot.counter), Some(1));
    assert_eq!(replay.slot_faults.len(), 1, "{:?}", replay.slot_faults);
    assert!(replay.slot_faults[0].contains("sync slot B is damaged"));
    // Both slots damaged, with records in the segment: damage.
    bytes[SEGMENT_HEADER_BYTES + 3] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let damage = wal::replay(dir.path(), ME).unwrap().damage.expect("damage");
    assert!(damage.reason.contains("both sync slots"), "{damage}");
    assert_eq!(damage.intact_through, LogIndex(0));
}

#[test]
fn mid_log_corruption_names_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, SEGMENT_BYTES);
    let path = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[RECORDS_START + 20] ^= 1; // inside the first record's payload
    fs::write(&path, &bytes).unwrap();
    let damage = open(dir.path(), SEGMENT_BYTES).unwrap().1.damage.unwrap();
    assert_eq!(damage.path, path);
    assert_eq!(damage.offset, RECORDS_START as u64);
    assert_eq!(damage.intact_through, LogIndex(0));
}

#[test]
fn a_sealed_segment_cut_short_is_damage() {
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
    let damage = open(dir.path(), 128).unwrap().1.damage.unwrap();
    assert_eq!(damage.path, first);
}

#[test]
fn missing_segments_are_named_first_middle_last_or_all() {
    let template = tempfile::tempdir().unwrap();
    write_log(template.path(), 50, 128);
    let names: Vec<_> = segments(template.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    let middle = names.len() / 2;
    for removed in [
        vec![0],
        vec![middle],
        vec![names.len() - 1],
        (0..names.len()).collect(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        for &i in &removed {
            fs::remove_file(dir.path().join(&names[i])).unwrap();
        }
        let damage = open(dir.path(), 128).unwrap().1.damage.unwrap();
        assert_eq!(damage.path, dir.path().join(&names[removed[0]]), "{damage}");
        assert!(damage.reason.contains("missing segment"), "{damage}");
    }
}

#[test]
fn a_missing_manifest_is_damage_where_segments_exist() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, SEGMENT_BYTES);
    fs::remove_file(dir.path().join("manifest")).unwrap();
    let (_, recovered) = open(dir.path(), SEGMENT_BYTES).unwrap();
    let damage = recovered.damage.unwrap();
    assert_eq!(damage.path, dir.path().join("manifest"));
    assert_eq!(data(&recovered.log), ["v1", "v2", "v3"]);
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
fn an_empty_segment_past_the_manifest_is_removed() {
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
fn a_new_directory_holds_both_hard_state_copies_and_losing_both_later_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, SEGMENT_BYTES);
    fs::remove_file(dir.path().join("hardstate.a")).unwrap();
    let (_, recovered) = open(dir.path(), SEGMENT_BYTES).unwrap();
    assert_eq!(recovered.log.len(), 3);
    fs::remove_file(dir.path().join("hardstate.b")).unwrap();
    let err = open(dir.path(), SEGMENT_BYTES).unwrap_err();
    assert!(matches!(err, StorageError::HardStateLost { .. }), "{err}");
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

mod faults;
mod repair;
mod snapshots;
