use super::*;
use crate::command::{Command, ProposalId, SessionOpen, SessionPolicy};
use crate::protocol::{Request, Response, SessionSeq};
use proptest::prelude::*;

const LIMITS: Limits = Limits {
    file_bytes_max: 1000,
    name_bytes_max: 20,
};

fn command(timestamp_ms: u64, request: Request) -> Command {
    Command {
        timestamp_ms,
        session: None,
        proposal: ProposalId::default(),
        request,
    }
}

fn write(name: &str, contents: &'static [u8], exptime_s: u64) -> Request {
    Request::Write {
        name: name.to_string(),
        contents: Bytes::from_static(contents),
        exptime_s,
    }
}

fn read(name: &str) -> Request {
    Request::Read {
        name: name.to_string(),
    }
}

/// A store with a file that never expires, one that expires at 13_000 ms
/// and one deleted, applied through index 4 at clock 10_000.
fn sample() -> Store {
    let mut store = Store::new();
    store.apply(LogIndex(1), &command(10_000, write("b", b"never", 0)));
    store.apply(LogIndex(2), &command(9_000, write("a", b"3 s\r\n", 3)));
    store.apply(LogIndex(3), &command(10_000, write("gone", b"", 0)));
    let delete = Request::Delete {
        name: "gone".to_string(),
    };
    store.apply(LogIndex(4), &command(10_000, delete));
    store
}

fn snapshot_of(store: &Store) -> Vec<u8> {
    let mut out = Vec::new();
    store.write_snapshot(&mut out).unwrap();
    out
}

#[test]
fn a_restored_store_equals_the_original_and_expires_files_at_the_same_instant() {
    let mut original = sample();
    let mut restored = Store::read_snapshot(&snapshot_of(&original)[..], &LIMITS).unwrap();
    assert_eq!(restored, original);
    assert_eq!(restored.file_count(), 2);
    // Whatever the replica's clock: the log's clock alone decides.
    for (index, now_ms) in [(5, 12_999), (6, 13_000), (7, 13_000)] {
        let command = command(now_ms, read("a"));
        let answer = original.apply(LogIndex(index), &command);
        assert_eq!(restored.apply(LogIndex(index), &command), answer);
        let expected_found = now_ms < 13_000;
        assert_eq!(
            matches!(answer, Response::Contents { .. }),
            expected_found,
            "{now_ms}: {answer:?}"
        );
    }
    assert_eq!(restored, original);
    assert_eq!(restored.file_count(), 1);
}

/// `sample()`'s snapshot in format 1, from before sessions: the bytes of
/// format 2 without the session count.
fn sample_in_format_1() -> Vec<u8> {
    let mut expected = b"skiff-fs".to_vec();
    expected.extend_from_slice(&1u32.to_le_bytes());
    expected.extend_from_slice(&10_000u64.to_le_bytes());
    expected.extend_from_slice(&4u64.to_le_bytes());
    expected.extend_from_slice(&2u64.to_le_bytes());
    // "a", version 2: written at entry 2, stamped 9_000 but with the
    // store's clock already at 10_000, so it expires at 13_000.
    expected.extend_from_slice(&1u32.to_le_bytes());
    expected.extend_from_slice(b"a");
    expected.extend_from_slice(&2u64.to_le_bytes());
    expected.extend_from_slice(&13_000u64.to_le_bytes());
    expected.extend_from_slice(&5u32.to_le_bytes());
    expected.extend_from_slice(b"3 s\r\n");
    // "b", version 1, never expires.
    expected.extend_from_slice(&1u32.to_le_bytes());
    expected.extend_from_slice(b"b");
    expected.extend_from_slice(&1u64.to_le_bytes());
    expected.extend_from_slice(&0u64.to_le_bytes());
    expected.extend_from_slice(&5u32.to_le_bytes());
    expected.extend_from_slice(b"never");
    expected.extend_from_slice(b"fs-end\r\n");
    expected
}

#[test]
fn the_format_is_the_documented_one() {
    let mut expected = sample_in_format_1();
    expected[FORMAT_AT..FORMAT_AT + 4].copy_from_slice(&2u32.to_le_bytes());
    let end_at = expected.len() - END.len();
    // No sessions.
    expected.splice(end_at..end_at, 0u64.to_le_bytes());
    assert_eq!(snapshot_of(&sample()), expected);
}

#[test]
fn a_format_1_snapshot_is_still_read() {
    let store = Store::read_snapshot(&sample_in_format_1()[..], &LIMITS).unwrap();
    assert_eq!(store, sample());
}

/// `sample()` with two sessions opened at entries 5 and 6 (at clock
/// 10_000, an idle timeout of 5_000 ms), the second of which applied a
/// delete as its number 3 at entry 7.
fn sample_with_sessions() -> Store {
    let mut store = sample();
    let policy = SessionPolicy {
        idle_timeout_ms: 5_000,
        sessions_max: 10,
    };
    for index in [5, 6] {
        let open = SessionOpen {
            timestamp_ms: 10_000,
            proposal: ProposalId::default(),
            policy,
        };
        store.open_session(LogIndex(index), &open);
    }
    let delete = Command {
        session: Some(SessionSeq {
            id: SessionId(6),
            seq: 3,
        }),
        ..command(10_000, Request::Delete { name: "b".into() })
    };
    assert_eq!(store.apply(LogIndex(7), &delete), Response::Deleted);
    store
}

#[test]
fn sessions_are_in_the_documented_format_and_round_trip() {
    let store = sample_with_sessions();
    let bytes = snapshot_of(&store);
    let mut expected = 2u64.to_le_bytes().to_vec();
    for (id, last_seq, answer) in [(5u64, 0u64, &b""[..]), (6, 3, b"OK\r\n")] {
        expected.extend_from_slice(&id.to_le_bytes());
        expected.extend_from_slice(&5_000u64.to_le_bytes());
        expected.extend_from_slice(&15_000u64.to_le_bytes());
        expected.extend_from_slice(&last_seq.to_le_bytes());
        expected.extend_from_slice(&(answer.len() as u32).to_le_bytes());
        expected.extend_from_slice(answer);
    }
    expected.extend_from_slice(&END);
    assert!(bytes.ends_with(&expected), "{bytes:?}");
    let mut restored = Store::read_snapshot(&bytes[..], &LIMITS).unwrap();
    assert_eq!(restored, store);
    // The restored store answers a resend from what it remembers.
    let resend = Command {
        session: Some(SessionSeq {
            id: SessionId(6),
            seq: 3,
        }),
        ..command(11_000, write("b", b"x", 0))
    };
    assert_eq!(restored.apply(LogIndex(8), &resend), Response::Deleted);
    assert_eq!(restored.read_at("b", 0), Response::FileNotFound);
}

#[test]
fn sessions_that_break_the_format_are_refused() {
    let bytes = snapshot_of(&sample_with_sessions());
    let sessions_at = bytes.len() - END.len() - (8 + 2 * (8 * 4 + 4) + 4);
    let first_id_at = sessions_at + 8;
    let second_id_at = first_id_at + 8 * 4 + 4;
    let second_expiry_at = second_id_at + 16;
    let second_answer_len_at = second_id_at + 32;
    let patched = |at: usize, value: &[u8]| {
        let mut bytes = bytes.clone();
        bytes[at..at + value.len()].copy_from_slice(value);
        bytes
    };
    for (what, bad) in [
        ("repeated id", patched(second_id_at, &5u64.to_le_bytes())),
        (
            "id past applied",
            patched(first_id_at, &99u64.to_le_bytes()),
        ),
        (
            "expired",
            patched(second_expiry_at, &10_000u64.to_le_bytes()),
        ),
        (
            "answer over",
            patched(second_answer_len_at, &900u32.to_le_bytes()),
        ),
        ("not an answer", patched(second_answer_len_at + 4, b"XX")),
        (
            "no number",
            patched(second_answer_len_at - 8, &0u64.to_le_bytes()),
        ),
    ] {
        let read = Store::read_snapshot(&bad[..], &LIMITS);
        assert!(
            matches!(read, Err(SnapshotReadError::BadSession { .. })),
            "{what}: {read:?}"
        );
    }
}

#[test]
fn an_empty_store_round_trips() {
    let empty = Store::new();
    let bytes = snapshot_of(&empty);
    assert_eq!(bytes.len(), 8 + 4 + 8 + 8 + 8 + 8 + 8);
    assert_eq!(Store::read_snapshot(&bytes[..], &LIMITS).unwrap(), empty);
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = snapshot_of(&sample());
    for cut in 0..bytes.len() {
        let read = Store::read_snapshot(&bytes[..cut], &LIMITS);
        assert!(
            matches!(
                read,
                Err(SnapshotReadError::Truncated | SnapshotReadError::MissingEnd)
            ),
            "cut at {cut}: {read:?}"
        );
    }
}

/// `sample()`'s snapshot with the bytes at `at` replaced by `value`.
fn patched(at: usize, value: &[u8]) -> Vec<u8> {
    let mut bytes = snapshot_of(&sample());
    bytes[at..at + value.len()].copy_from_slice(value);
    bytes
}

/// Offsets in `sample()`'s snapshot.
const FORMAT_AT: usize = 8;
const FIRST_NAME_LEN_AT: usize = 36;
const FIRST_VERSION_AT: usize = FIRST_NAME_LEN_AT + 4 + 1;
const FIRST_EXPIRY_AT: usize = FIRST_VERSION_AT + 8;
const FIRST_CONTENTS_LEN_AT: usize = FIRST_EXPIRY_AT + 8;
const SECOND_NAME_AT: usize = FIRST_CONTENTS_LEN_AT + 4 + 5 + 4;

#[test]
fn the_offsets_of_these_tests_are_right() {
    let bytes = snapshot_of(&sample());
    assert_eq!(&bytes[FIRST_NAME_LEN_AT + 4..FIRST_VERSION_AT], b"a");
    assert_eq!(&bytes[SECOND_NAME_AT..SECOND_NAME_AT + 1], b"b");
}

#[test]
fn a_wrong_magic_format_or_end_is_refused() {
    let mut bytes = snapshot_of(&sample());
    bytes[0] = b'S';
    assert!(matches!(
        Store::read_snapshot(&bytes[..], &LIMITS),
        Err(SnapshotReadError::NotASnapshot)
    ));
    assert!(matches!(
        Store::read_snapshot(&patched(FORMAT_AT, &3u32.to_le_bytes())[..], &LIMITS),
        Err(SnapshotReadError::UnknownFormat(3))
    ));
    let mut bytes = snapshot_of(&sample());
    let last = bytes.len() - 1;
    bytes[last] = b'x';
    assert!(matches!(
        Store::read_snapshot(&bytes[..], &LIMITS),
        Err(SnapshotReadError::MissingEnd)
    ));
    // A count of one file too few leaves a file where the end belongs
    // (format 1), or where the sessions do.
    let mut bytes = sample_in_format_1();
    bytes[28..36].copy_from_slice(&1u64.to_le_bytes());
    assert!(matches!(
        Store::read_snapshot(&bytes[..], &LIMITS),
        Err(SnapshotReadError::MissingEnd)
    ));
    assert!(Store::read_snapshot(&patched(28, &1u64.to_le_bytes())[..], &LIMITS).is_err());
}

#[test]
fn lengths_over_the_limits_are_refused_before_reading_what_they_count() {
    let read = Store::read_snapshot(
        &patched(FIRST_NAME_LEN_AT, &u32::MAX.to_le_bytes())[..],
        &LIMITS,
    );
    assert!(
        matches!(
            read,
            Err(SnapshotReadError::TooLong {
                file: 0,
                what: "name",
                length: 4_294_967_295,
                max: 20
            })
        ),
        "{read:?}"
    );
    let read = Store::read_snapshot(
        &patched(FIRST_CONTENTS_LEN_AT, &1001u32.to_le_bytes())[..],
        &LIMITS,
    );
    assert!(
        matches!(
            read,
            Err(SnapshotReadError::TooLong {
                what: "contents",
                ..
            })
        ),
        "{read:?}"
    );
    // Within the limit but never delivered: truncated, not a panic.
    let mut bytes = patched(FIRST_CONTENTS_LEN_AT, &1000u32.to_le_bytes());
    bytes.truncate(FIRST_CONTENTS_LEN_AT + 4 + 10);
    assert!(matches!(
        Store::read_snapshot(&bytes[..], &LIMITS),
        Err(SnapshotReadError::Truncated)
    ));
}

#[test]
fn files_that_the_store_could_not_hold_are_refused() {
    let bad = |bytes: Vec<u8>| match Store::read_snapshot(&bytes[..], &LIMITS) {
        Err(SnapshotReadError::BadFile { problem, .. }) => problem,
        other => panic!("{other:?}"),
    };
    // A version past the entries applied, or 0.
    assert!(bad(patched(FIRST_VERSION_AT, &5u64.to_le_bytes())).contains("version 5"));
    assert!(bad(patched(FIRST_VERSION_AT, &0u64.to_le_bytes())).contains("version 0"));
    // A file that expired at or before the clock.
    assert!(bad(patched(FIRST_EXPIRY_AT, &10_000u64.to_le_bytes())).contains("expired"));
    // Names out of order or repeated.
    let mut bytes = snapshot_of(&sample());
    bytes[SECOND_NAME_AT] = b'a';
    assert!(bad(bytes).contains("out of order"));
    // A name the protocol could not carry.
    let mut bytes = snapshot_of(&sample());
    bytes[SECOND_NAME_AT] = b' ';
    assert!(bad(bytes).contains("file name"));
    let mut bytes = snapshot_of(&sample());
    bytes[SECOND_NAME_AT] = 0xff;
    assert!(bad(bytes).contains("UTF-8"));
    // An empty name: drop the first name's byte and say so in its length.
    let mut bytes = patched(FIRST_NAME_LEN_AT, &0u32.to_le_bytes());
    bytes.remove(FIRST_NAME_LEN_AT + 4);
    assert!(bad(bytes).contains("empty"));
}

#[test]
fn a_read_error_other_than_the_end_is_reported_as_such() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    let error = Store::read_snapshot(Failing, &LIMITS).unwrap_err();
    assert!(matches!(error, SnapshotReadError::Io(_)), "{error:?}");
    let error = io::Error::from(error);
    assert_eq!(error.to_string(), "disk on fire");
    let invalid = io::Error::from(SnapshotReadError::MissingEnd);
    assert_eq!(invalid.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn a_frozen_copy_shares_the_files_and_stays_as_it_was() {
    const FILES: u64 = 100_000;
    let mut store = Store::new();
    for index in 1..=FILES {
        let request = write(&format!("file-{index}"), b"contents", index % 3);
        store.apply(LogIndex(index), &command(1_000, request));
    }
    let started = std::time::Instant::now();
    let frozen = store.clone();
    let took = started.elapsed();
    // Sharing, not copying: the cost does not grow with the files.
    assert!(frozen.files.ptr_eq(&store.files));
    assert!(frozen.expiries.ptr_eq(&store.expiries));
    eprintln!("froze a store of {FILES} files in {took:?}");
    let before = snapshot_of(&frozen);
    store.apply(
        LogIndex(FILES + 1),
        &command(5_000, write("file-1", b"new", 0)),
    );
    assert_eq!(store.file_count() as u64, FILES / 3 + 1);
    assert_eq!(snapshot_of(&frozen), before);
    assert_eq!(frozen.file_count() as u64, FILES);
}

proptest! {
    #[test]
    fn reading_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Store::read_snapshot(&bytes[..], &LIMITS);
        let mut prefixed = MAGIC.to_vec();
        prefixed.extend_from_slice(&FORMAT.to_le_bytes());
        prefixed.extend_from_slice(&bytes);
        let _ = Store::read_snapshot(&prefixed[..], &LIMITS);
    }

    #[test]
    fn a_damaged_snapshot_is_refused_or_read_without_panicking(
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = snapshot_of(&sample());
        let at = at.index(bytes.len());
        bytes[at] = byte;
        if let Ok(store) = Store::read_snapshot(&bytes[..], &LIMITS) {
            // Only a field the format cannot check changed: it reads back.
            prop_assert_eq!(snapshot_of(&store), bytes);
        }
    }
}
