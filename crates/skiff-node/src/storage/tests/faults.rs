//! Single storage faults on a real data directory written through
//! [`Storage`], trial by trial from a seed: for every trial, recovery
//! either returns every entry that was synced, with its term and data, or
//! reports damage naming the file (and offset), or refuses to start naming
//! the file. Never a silently shorter log, never a panic.

use super::super::wal::RECORDS_START;
use super::*;
use std::collections::BTreeMap;

const SEGMENT_BYTES: u64 = 8 << 10;
const BLOCK: usize = 4 << 10;

/// A small deterministic generator (xorshift64*), so a failing trial is
/// reproduced by its number.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// What the template directory must recover.
struct Written {
    log: Vec<Entry>,
    /// The log just before its one truncation: damage before the truncate
    /// record leaves a prefix of this one.
    before_truncation: Vec<Entry>,
    hard_state: HardState,
}

/// Writes batches of entries of varied sizes, each synced (acknowledged),
/// with a vote and a truncation along the way, over several segments.
fn write_template(dir: &Path) -> Written {
    let mut rng = Rng(0x5eed);
    let (mut storage, _) = open(dir, SEGMENT_BYTES).unwrap();
    let mut log: Vec<Entry> = Vec::new();
    let mut before_truncation = Vec::new();
    let mut term = 1;
    for batch in 0..120 {
        if batch == 40 {
            term = 2;
            let vote = Action::StateStore {
                term: Term(term),
                voted_for: Some(NodeId(2)),
            };
            storage.persist(&vote).unwrap();
            before_truncation = log.clone();
            let from = LogIndex(log.len() as u64 - 2);
            storage.persist(&Action::LogTruncate { from }).unwrap();
            log.truncate(from.0 as usize - 1);
        }
        for _ in 0..1 + rng.below(4) {
            let index = log.len() as u64 + 1;
            let text = format!("{index}:{}", "x".repeat(rng.below(200)));
            store(&mut storage, index, term, &text);
            log.push(Entry::new(Term(term), text));
        }
        storage.sync().unwrap();
    }
    let hard_state = HardState {
        term: Term(term),
        voted_for: Some(NodeId(2)),
    };
    Written {
        log,
        before_truncation,
        hard_state,
    }
}

/// One fault, described for the failure message.
struct Fault {
    what: String,
    /// Both hard-state copies are damaged: a refusal is the only answer.
    hard_state_lost: bool,
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n != "lock")
        .collect();
    names.sort();
    names
}

fn damage(dir: &Path, trial: usize, rng: &mut Rng) -> Fault {
    let files = names(dir);
    let wals: Vec<&String> = files.iter().filter(|n| n.ends_with(".wal")).collect();
    let pick = |rng: &mut Rng, from: &[String]| from[rng.below(from.len())].clone();
    let mut fault = Fault {
        what: String::new(),
        hard_state_lost: false,
    };
    let rewrite = |name: &str, edit: &mut dyn FnMut(&mut Vec<u8>)| {
        let path = dir.join(name);
        let mut bytes = fs::read(&path).unwrap();
        edit(&mut bytes);
        fs::write(&path, bytes).unwrap();
    };
    match trial % 10 {
        // A flipped bit anywhere in any file.
        0..=2 => {
            let name = pick(rng, &files);
            rewrite(&name, &mut |bytes| {
                let bit = rng.below(bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
                fault.what = format!("bit {bit} of {name} flipped");
            });
        }
        // A flipped bit in a record's length field, or a segment's header
        // or sync slots.
        3 | 4 => {
            let name = wals[rng.below(wals.len())].clone();
            rewrite(&name, &mut |bytes| {
                let bounds = record_bounds(bytes);
                let at = if rng.below(4) == 0 {
                    rng.below(RECORDS_START)
                } else {
                    bounds[rng.below(bounds.len() - 1)] + rng.below(4)
                };
                bytes[at] ^= 1 << rng.below(8);
                fault.what = format!("byte {at} of {name} flipped");
            });
        }
        // Truncation at a random point of a segment or the manifest.
        5 => {
            let mut candidates: Vec<String> = wals.iter().map(|n| n.to_string()).collect();
            candidates.push("manifest".into());
            let name = pick(rng, &candidates);
            rewrite(&name, &mut |bytes| {
                let keep = rng.below(bytes.len());
                bytes.truncate(keep);
                fault.what = format!("{name} cut to {keep} bytes");
            });
        }
        // A zeroed 4 KiB block of a segment.
        6 => {
            let name = wals[rng.below(wals.len())].clone();
            rewrite(&name, &mut |bytes| {
                let start = rng.below(bytes.len().div_ceil(BLOCK)) * BLOCK;
                let end = (start + BLOCK).min(bytes.len());
                bytes[start..end].fill(0);
                fault.what = format!("bytes {start}..{end} of {name} zeroed");
            });
        }
        // Deleted segments: first, middle, last or all; or the manifest.
        7 => {
            let doomed: Vec<String> = match trial / 10 % 5 {
                0 => vec![wals[0].clone()],
                1 => vec![wals[wals.len() / 2].clone()],
                2 => vec![wals[wals.len() - 1].clone()],
                3 => wals.iter().map(|n| n.to_string()).collect(),
                _ => vec!["manifest".into()],
            };
            for name in &doomed {
                fs::remove_file(dir.join(name)).unwrap();
            }
            fault.what = format!("deleted {doomed:?}");
        }
        // One hard-state copy damaged (flipped, cut or deleted), or both.
        _ => {
            let both = trial / 10 % 3 == 0;
            let copies: &[&str] = if both {
                &["hardstate.a", "hardstate.b"]
            } else if rng.below(2) == 0 {
                &["hardstate.a"]
            } else {
                &["hardstate.b"]
            };
            for name in copies {
                match rng.below(3) {
                    0 => fs::remove_file(dir.join(name)).unwrap(),
                    1 => rewrite(name, &mut |bytes| bytes.truncate(rng.below(bytes.len()))),
                    _ => rewrite(name, &mut |bytes| {
                        let bit = rng.below(bytes.len() * 8);
                        bytes[bit / 8] ^= 1 << (bit % 8);
                    }),
                }
            }
            fault.hard_state_lost = both;
            fault.what = format!("hard state damaged: {copies:?}");
        }
    }
    fault
}

#[test]
fn no_single_fault_silently_loses_a_synced_entry() {
    let template = tempfile::tempdir().unwrap();
    let written = write_template(template.path());
    assert!(
        names(template.path()).len() >= 8,
        "{:?}",
        names(template.path())
    );
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rng = Rng(0x0dd_ba11);
    for trial in 0..600 {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        let fault = damage(dir.path(), trial, &mut rng);
        let context = format!("trial {trial}: {}", fault.what);
        // The storage is dropped at once, so that its lock is free again.
        let opened = open(dir.path(), SEGMENT_BYTES).map(|(_, recovered)| recovered);
        let outcome = match opened {
            Err(error) => {
                let text = error.to_string();
                assert!(
                    text.contains(&dir.path().display().to_string()),
                    "{context}: the refusal names no file: {text}"
                );
                assert!(
                    !matches!(error, StorageError::Locked { .. }),
                    "{context}: {text}"
                );
                "refused"
            }
            Ok(recovered) => {
                assert!(
                    !fault.hard_state_lost,
                    "{context}: started without a hard state"
                );
                assert_eq!(recovered.hard_state, written.hard_state, "{context}");
                let log = &recovered.log;
                let is_prefix_of =
                    |of: &[Entry]| log.len() <= of.len() && of[..log.len()] == log[..];
                assert!(
                    is_prefix_of(&written.log)
                        || (recovered.damage.is_some() && is_prefix_of(&written.before_truncation)),
                    "{context}: the recovered log is not a prefix of the written one"
                );
                if let Some(damage) = &recovered.damage {
                    assert!(damage.path.starts_with(dir.path()), "{context}: {damage}");
                    assert_eq!(damage.intact_through.0, log.len() as u64, "{context}");
                    "damage reported"
                } else {
                    assert_eq!(
                        log.len(),
                        written.log.len(),
                        "{context}: entries lost without a report"
                    );
                    let (_, again) = open(dir.path(), SEGMENT_BYTES).unwrap();
                    assert_eq!(again.log, written.log, "{context}: second recovery");
                    "recovered whole"
                }
            }
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    println!("outcomes of 600 trials: {outcomes:?}");
    assert!(
        outcomes.get("damage reported").copied().unwrap_or(0) > 100,
        "{outcomes:?}"
    );
}
