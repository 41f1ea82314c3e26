//! `skiff check` on real data directories: a clean one, a damaged one, and
//! one it cannot check, told apart by the exit status and the report.

use skiff_core::{Action, Entry, LogIndex, Term};
use skiff_node::storage::{Identity, Storage};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;

/// The tests of this file run one at a time. A child process spawned by
/// one test holds a copy of every descriptor of this process from its
/// fork to its exec, the other test's directory lock included, so a lock
/// just released could still be held for that moment: the other test
/// would then see its own directory as in use.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const ME: Identity = Identity {
    cluster_id: 3,
    node_id: 2,
};

fn check(dir: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["check", "--dir"])
        .arg(dir)
        .output()
        .unwrap()
}

/// A directory holding a log of 20 entries, each synced on its own.
fn written_dir() -> (tempfile::TempDir, PathBuf) {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("node-2");
    let (mut storage, _) = Storage::open(&dir, ME, 1 << 20).unwrap();
    for index in 1..=20 {
        let action = Action::LogStore {
            index: LogIndex(index),
            entries: Entry::new(Term(1), format!("v{index}")).into(),
        };
        storage.persist(&action).unwrap();
        storage.sync().unwrap();
    }
    (parent, dir)
}

#[test]
fn a_clean_directory_passes_and_a_flipped_bit_is_reported_with_its_file_and_offset() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_parent, dir) = written_dir();
    let clean = check(&dir);
    let text = String::from_utf8_lossy(&clean.stdout);
    println!("{text}");
    assert_eq!(clean.status.code(), Some(0), "{text}");
    assert!(text.contains("(cluster 3, node 2)"), "{text}");
    assert!(text.contains("start normally with 20 entries"), "{text}");
    assert!(
        text.contains("sync slot of the last segment read: sync "),
        "{text}"
    );

    let segment = dir.join(format!("{:020}.wal", 1));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[140] ^= 0x20; // inside the first records, well before the last sync
    std::fs::write(&segment, &bytes).unwrap();
    let damaged = check(&dir);
    let text = String::from_utf8_lossy(&damaged.stdout);
    println!("{text}");
    assert_eq!(damaged.status.code(), Some(1), "{text}");
    assert!(text.contains("DAMAGE"), "{text}");
    assert!(
        text.contains(&format!("{} at offset", segment.display())),
        "{text}"
    );
    assert!(text.contains("repair flag: not set"), "{text}");
    assert!(text.contains("recovery would: start repairing"), "{text}");
}

#[test]
fn a_directory_left_repairing_reports_the_flag_and_would_start_repairing() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_parent, dir) = written_dir();
    let segment = dir.join(format!("{:020}.wal", 1));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[100] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    let (mut storage, recovered) = Storage::open(&dir, ME, 1 << 20).unwrap();
    let intact = recovered.log.len();
    storage.repair(&recovered.log).unwrap();
    drop(storage); // stopped before the repair ended

    let output = check(&dir);
    let text = String::from_utf8_lossy(&output.stdout);
    println!("{text}");
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("repair flag: set"), "{text}");
    assert!(text.contains(", repairing"), "{text}");
    let verdict = format!("recovery would: start repairing with {intact} entries");
    assert!(text.contains(&verdict), "{text}");
}

#[test]
fn a_directory_in_use_or_missing_cannot_be_checked() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_parent, dir) = written_dir();
    let held = Storage::open(&dir, ME, 1 << 20).unwrap();
    let locked = check(&dir);
    assert_eq!(locked.status.code(), Some(2));
    let text = String::from_utf8_lossy(&locked.stderr);
    assert!(text.contains("in use by another process"), "{text}");
    drop(held);
    assert_eq!(check(&dir.join("absent")).status.code(), Some(2));
}
