//! Repair of a damaged directory, and a crash after each of its steps: the
//! directory always restarts repairing (never as healthy with a shorter
//! log), from a prefix of the intact log, and no damaged file is deleted.

use super::super::repair::DAMAGED_DIR_PREFIX;
use super::super::wal::{Replay, Wal};
use super::*;
use std::collections::BTreeMap;

const SMALL_SEGMENTS: u64 = 128;

/// A directory of 50 entries over many small segments, its third segment
/// damaged mid-log; returns the names of its log files (manifest and
/// segments) and the intact prefix recovery finds.
fn damaged_template(dir: &Path) -> (Vec<String>, Vec<Entry>) {
    write_log(dir, 50, SMALL_SEGMENTS);
    let third = segments(dir).remove(2);
    let mut bytes = fs::read(&third).unwrap();
    bytes[RECORDS_START + 20] ^= 1;
    fs::write(&third, &bytes).unwrap();
    let (_, recovered) = open(dir, SMALL_SEGMENTS).unwrap();
    let damage = recovered.damage.expect("the flipped bit is damage");
    assert_eq!(damage.path, third);
    assert!(!recovered.log.is_empty() && recovered.log.len() < 50);
    let mut names: Vec<String> = segments(dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.push("manifest".into());
    (names, recovered.log)
}

/// Every file under the `damaged-*` subdirectories of `dir`, by name, with
/// its bytes.
fn kept_aside(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut kept = BTreeMap::new();
    for item in fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(DAMAGED_DIR_PREFIX) {
            for file in fs::read_dir(&path).unwrap() {
                let file = file.unwrap().path();
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                assert!(kept.insert(name, fs::read(&file).unwrap()).is_none());
            }
        }
    }
    kept
}

fn assert_every_file_kept(template: &Path, dir: &Path, names: &[String]) {
    let kept = kept_aside(dir);
    for name in names {
        let original = fs::read(template.join(name)).unwrap();
        assert_eq!(kept.get(name), Some(&original), "{name} kept as it was");
    }
}

#[test]
fn a_repaired_directory_keeps_the_damaged_files_and_restarts_repairing_until_finished() {
    let template = tempfile::tempdir().unwrap();
    let (names, intact) = damaged_template(template.path());
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template.path(), dir.path());
    {
        let (mut storage, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
        assert!(!recovered.repairing && !storage.repairing());
        let moved_to = storage.repair(&recovered.log).unwrap();
        assert_eq!(moved_to, dir.path().join("damaged-1"));
        assert!(storage.repairing());
        // The log is writable again, after the intact prefix.
        store(&mut storage, intact.len() as u64 + 1, 1, "new");
        storage.sync().unwrap();
    }
    assert_every_file_kept(template.path(), dir.path(), &names);
    let mut expected = intact.clone();
    expected.push(Entry::new(Term(1), "new"));
    {
        let (mut storage, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
        assert_eq!(recovered.damage, None);
        assert!(recovered.repairing, "the flag survives a restart");
        assert_eq!(recovered.log, expected);
        storage.finish_repair().unwrap();
        assert!(!storage.repairing());
    }
    let (_, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
    assert!(!recovered.repairing, "the flag was cleared durably");
    assert_eq!((recovered.damage, recovered.log), (None, expected));
}

/// Where the simulated crash stops a repair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CrashAfter {
    Nothing,
    Flag,
    /// Step 2 cut short: the manifest moved, the segments not.
    ManifestMoved,
    MovedAside,
    /// Step 3 cut short: the fresh log's segment and manifest exist, its
    /// entries were not written.
    FreshLogStarted,
    Rewritten,
}

#[test]
fn a_crash_after_any_repair_step_restarts_repairing_from_a_prefix_of_the_intact_log() {
    let template = tempfile::tempdir().unwrap();
    let (names, intact) = damaged_template(template.path());
    for crash in [
        CrashAfter::Nothing,
        CrashAfter::Flag,
        CrashAfter::ManifestMoved,
        CrashAfter::MovedAside,
        CrashAfter::FreshLogStarted,
        CrashAfter::Rewritten,
    ] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        {
            let (mut storage, _) = open(dir.path(), SMALL_SEGMENTS).unwrap();
            if crash >= CrashAfter::Flag {
                storage.flag_repairing().unwrap();
            }
            if crash == CrashAfter::ManifestMoved {
                let aside = dir.path().join("damaged-1");
                fs::create_dir(&aside).unwrap();
                fs::rename(dir.path().join("manifest"), aside.join("manifest")).unwrap();
            }
            if crash >= CrashAfter::MovedAside {
                storage.move_log_aside().unwrap();
            }
            if crash == CrashAfter::FreshLogStarted {
                Wal::open(
                    dir.path(),
                    ME,
                    SMALL_SEGMENTS,
                    &Replay::default(),
                    LogIndex(0),
                )
                .unwrap();
            }
            if crash == CrashAfter::Rewritten {
                storage.write_fresh_log(&intact).unwrap();
            }
            // Dropped here: the process stops.
        }
        let (mut storage, recovered) = open(dir.path(), SMALL_SEGMENTS).unwrap();
        let log = &recovered.log;
        assert!(
            log.len() <= intact.len() && log[..] == intact[..log.len()],
            "{crash:?}: not a prefix of the intact log"
        );
        if crash == CrashAfter::Nothing {
            assert!(recovered.damage.is_some() && !recovered.repairing);
        } else {
            assert!(recovered.repairing, "{crash:?}: restarted as healthy");
        }
        let expected_damage = matches!(
            crash,
            CrashAfter::Nothing | CrashAfter::Flag | CrashAfter::ManifestMoved
        );
        assert_eq!(recovered.damage.is_some(), expected_damage, "{crash:?}");
        if crash == CrashAfter::Rewritten {
            assert_eq!(recovered.log, intact);
        }
        // The restarted node repairs again where it must, and nothing of
        // the damaged log is lost on the way.
        if let Some(damage) = &recovered.damage {
            let moved_to = storage.repair(&recovered.log).unwrap();
            assert!(moved_to.starts_with(dir.path()), "{damage}");
        }
        drop(storage);
        let (_, again) = open(dir.path(), SMALL_SEGMENTS).unwrap();
        assert!(again.repairing && again.damage.is_none(), "{crash:?}");
        assert_every_file_kept(template.path(), dir.path(), &names);
    }
}
