//! Snapshots and the log: compaction, recovery from a snapshot, a damaged
//! snapshot, an install, and the damage checks a compacted log must not fool.

use super::*;
use skiff_core::{Membership, NodeId, SnapshotMeta};

const SMALL_SEGMENTS: u64 = 256;

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(index),
        term: Term(term),
    }
}

/// A configuration that names the snapshot it is kept with: voters 1 and
/// 2, and the snapshot's index as a learner.
fn membership_of(meta: SnapshotMeta) -> Membership {
    Membership::new(vec![NodeId(1), NodeId(2)], vec![NodeId(meta.index.0)]).unwrap()
}

/// Takes a snapshot `meta` whose application bytes say so, as the node
/// does: written, added, then the log compacted when `compact` (as far as
/// the snapshot kept before it covers: see `Storage::compact`).
fn take_snapshot(storage: &mut Storage, meta: SnapshotMeta, compact: bool) -> StoredSnapshot {
    let identity = storage.identity();
    let taken = write_snapshot(storage.snapshot_dir(), identity, meta, 16, |out| {
        out.write_all(format!("state through {}", meta.index).as_bytes())
    })
    .unwrap();
    assert!(storage
        .add_snapshot(taken.clone(), &membership_of(meta))
        .unwrap());
    if compact {
        storage.compact(meta.index).unwrap();
    }
    taken
}

fn segment_count(dir: &Path) -> usize {
    segment_files(dir).unwrap().len()
}

#[test]
fn compaction_deletes_covered_segments_and_a_restart_replays_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 60, SMALL_SEGMENTS);
    let before = segment_count(dir.path());
    let (mut storage, _) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    take_snapshot(&mut storage, meta(20, 1), true);
    assert_eq!(
        segment_count(dir.path()),
        before,
        "the first snapshot has none before it to fall back to: the log stays whole"
    );
    take_snapshot(&mut storage, meta(40, 1), true);
    let after = segment_count(dir.path());
    assert!(
        after < before * 5 / 6,
        "the segments the snapshot before the current one covers go: {before}, then {after}"
    );
    drop(storage);

    let (mut storage, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    assert_eq!(
        recovered.snapshot.as_ref().map(|s| s.meta),
        Some(meta(40, 1))
    );
    assert_eq!(recovered.membership, Some(membership_of(meta(40, 1))));
    assert_eq!(
        recovered.log.len(),
        20,
        "only the entries after the snapshot"
    );
    assert_eq!(data(&recovered.log)[0], "v41");
    assert_eq!(storage.last_index(), LogIndex(60));
    store(&mut storage, 61, 1, "v61");
    storage.sync().unwrap();
    drop(storage);
    let (_, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    assert_eq!(data(&recovered.log).last().unwrap(), "v61");
    assert_eq!(recovered.damage, None);
}

#[test]
fn a_compaction_cut_short_leaves_segments_recovery_removes() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 60, SMALL_SEGMENTS);
    let all = segment_files(dir.path()).unwrap();
    let saved: Vec<(PathBuf, Vec<u8>)> = all
        .iter()
        .map(|p| (p.clone(), fs::read(p).unwrap()))
        .collect();
    let (mut storage, _) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    take_snapshot(&mut storage, meta(20, 1), true);
    take_snapshot(&mut storage, meta(40, 1), true);
    drop(storage);
    // The manifest was stored; the deletions "did not happen".
    for (path, bytes) in &saved {
        fs::write(path, bytes).unwrap();
    }
    let (_, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    assert_eq!(recovered.damage, None);
    assert_eq!(recovered.log.len(), 20);
    assert!(segment_count(dir.path()) < all.len());
}

#[test]
fn a_compacted_log_still_tells_missing_segments_and_a_missing_start() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 60, SMALL_SEGMENTS);
    let (mut storage, _) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    let older = take_snapshot(&mut storage, meta(20, 1), true);
    let taken = take_snapshot(&mut storage, meta(40, 1), true);
    drop(storage);
    let first = segment_files(dir.path()).unwrap()[0].clone();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());

    // The first segment the manifest names is gone.
    fs::remove_file(&first).unwrap();
    let (_, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    let damage = recovered.damage.expect("a missing segment is damage");
    assert_eq!(damage.path, first);
    assert!(damage.reason.contains("missing segment"), "{damage}");

    // Without its snapshots, the log starts too late: damage, not compaction.
    for kept in [&older, &taken] {
        let snapshot = copy
            .path()
            .join("snapshots")
            .join(kept.path.file_name().unwrap());
        fs::remove_file(snapshot).unwrap();
    }
    let (_, recovered) = open(copy.path(), SMALL_SEGMENTS).unwrap();
    let damage = recovered
        .damage
        .expect("a log starting after index 1 is damage");
    assert!(damage.reason.contains("entries 1 to"), "{damage}");
    assert_eq!(damage.intact_through, LogIndex(0));
}

fn damage_snapshot(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_newest_snapshot_is_reported_and_the_previous_one_used() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 60, SMALL_SEGMENTS);
    let (mut storage, _) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    take_snapshot(&mut storage, meta(10, 1), true);
    take_snapshot(&mut storage, meta(20, 1), true);
    // Compacted to as the node does: the log still reaches back to 20.
    let newest = take_snapshot(&mut storage, meta(40, 1), true);
    drop(storage);
    damage_snapshot(&newest.path);
    let (storage, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    assert_eq!(recovered.snapshot.map(|s| s.meta), Some(meta(20, 1)));
    assert_eq!(recovered.log.len(), 40);
    assert_eq!(data(&recovered.log)[0], "v21");
    assert_eq!(storage.snapshot(), meta(20, 1));
    assert_eq!(recovered.membership, Some(membership_of(meta(20, 1))));
    assert!(!newest.path.exists(), "moved aside");
}

#[test]
fn a_damaged_configuration_makes_its_snapshot_unusable_and_one_kept_without_any_reads_as_none() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 60, SMALL_SEGMENTS);
    let (mut storage, _) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    let older = take_snapshot(&mut storage, meta(20, 1), true);
    let newest = take_snapshot(&mut storage, meta(40, 1), true);
    drop(storage);
    let config = newest.path.with_extension("config");
    let mut bytes = fs::read(&config).unwrap();
    let last = bytes.len() - 6;
    bytes[last] ^= 1;
    fs::write(&config, bytes).unwrap();
    let (storage, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    assert_eq!(
        storage.snapshot(),
        meta(20, 1),
        "the damaged one is not used"
    );
    assert_eq!(recovered.membership, Some(membership_of(meta(20, 1))));
    drop(storage);
    // A snapshot kept before configurations were: the bootstrap one.
    fs::remove_file(older.path.with_extension("config")).unwrap();
    let (storage, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    assert_eq!(storage.snapshot(), meta(20, 1));
    assert_eq!(recovered.membership, None);
}

#[test]
fn a_damaged_newest_snapshot_the_log_no_longer_covers_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 60, SMALL_SEGMENTS);
    let (mut storage, _) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    let older = take_snapshot(&mut storage, meta(20, 1), true);
    // A leader's snapshot replaces the whole log: it no longer reaches
    // back to the older one.
    let received = receive(&storage, meta(100, 2));
    let newest = storage
        .install_snapshot(meta(100, 2), &received, &membership_of(meta(100, 2)))
        .unwrap();
    storage.sync().unwrap();
    drop(storage);
    damage_snapshot(&newest.path);
    let error = open(dir.path(), SMALL_SEGMENTS).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, StorageError::SnapshotGap { .. }), "{text}");
    assert!(text.contains(&newest.path.display().to_string()), "{text}");
    assert!(text.contains(&older.path.display().to_string()), "{text}");
}

/// A leader's snapshot, received whole into the incoming directory.
fn receive(storage: &Storage, meta: SnapshotMeta) -> PathBuf {
    let incoming = storage.snapshot_dir().join("incoming");
    fs::create_dir_all(&incoming).unwrap();
    let leader = Identity { node_id: 3, ..ME };
    write_snapshot(&incoming, leader, meta, 16, |out| {
        out.write_all(b"leader state")
    })
    .unwrap()
    .path
}

#[test]
fn an_install_discards_the_log_durably_and_it_continues_after_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 30, SMALL_SEGMENTS);
    let (mut storage, _) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    let received = receive(&storage, meta(100, 4));
    // The turn: a new term, an entry the install discards, the install.
    storage
        .persist(&Action::StateStore {
            term: Term(4),
            voted_for: None,
        })
        .unwrap();
    store(&mut storage, 31, 1, "discarded");
    let installed = storage
        .install_snapshot(meta(100, 4), &received, &membership_of(meta(100, 4)))
        .unwrap();
    assert_eq!(storage.last_index(), LogIndex(100));
    store(&mut storage, 101, 4, "after");
    storage.sync().unwrap();
    drop(storage);
    assert_eq!(segment_count(dir.path()), 1);

    let (storage, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    assert_eq!(recovered.snapshot, Some(installed));
    assert_eq!(recovered.membership, Some(membership_of(meta(100, 4))));
    assert_eq!(data(&recovered.log), ["after"]);
    assert_eq!(recovered.hard_state.term, Term(4));
    assert_eq!(storage.last_index(), LogIndex(101));
    let (meta_read, mut reader) =
        open_snapshot(&storage.snapshot_path(meta(100, 4)).unwrap(), 9).unwrap();
    assert_eq!(meta_read, meta(100, 4));
    let mut state = String::new();
    std::io::Read::read_to_string(&mut reader, &mut state).unwrap();
    assert_eq!(state, "leader state");
}

#[test]
fn an_install_cut_short_before_the_log_was_discarded_is_finished_at_recovery() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 30, SMALL_SEGMENTS);
    // The snapshot adopted (index 20, term 2), the log (term 1 at 20) not
    // yet discarded: the crash falls between the two.
    let (storage, _) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    let received = receive(&storage, meta(20, 2));
    let adopted = storage.snapshot_dir().join(received.file_name().unwrap());
    fs::rename(&received, adopted).unwrap();
    drop(storage);
    let (mut storage, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    assert_eq!(recovered.snapshot.map(|s| s.meta), Some(meta(20, 2)));
    assert!(recovered.log.is_empty(), "{:?}", data(&recovered.log));
    assert_eq!(storage.last_index(), LogIndex(20));
    store(&mut storage, 21, 2, "new");
    storage.sync().unwrap();
    drop(storage);
    let (_, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    assert_eq!(data(&recovered.log), ["new"]);
}

#[test]
fn check_reports_the_snapshot_and_judges_the_log_after_it() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 60, SMALL_SEGMENTS);
    let (mut storage, _) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    take_snapshot(&mut storage, meta(20, 1), true);
    let taken = take_snapshot(&mut storage, meta(40, 1), true);
    drop(storage);
    let report = check(dir.path()).unwrap();
    let text = report.to_string();
    assert!(!report.needs_repair(), "{text}");
    assert!(text.contains("index 40, term 1, intact"), "{text}");
    assert!(
        text.contains("start normally with 20 entries after the snapshot through index 40"),
        "{text}"
    );
    damage_snapshot(&taken.path);
    let report = check(dir.path()).unwrap();
    let text = report.to_string();
    assert!(text.contains("snapshot DAMAGED"), "{text}");
    assert!(text.contains("use the one before"), "{text}");
    assert!(
        !text.contains("refuse to start"),
        "the log reaches back to the one before: {text}"
    );
    assert!(taken.path.exists(), "check changes nothing");
}
