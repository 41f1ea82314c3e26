use super::*;
use crate::command::ProposalId;
use crate::protocol::Limits;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Applies requests at consecutive indices, each stamped with the harness's
/// clock, which tests move by hand.
struct Log {
    store: Store,
    next_index: u64,
    now_ms: u64,
}

impl Log {
    fn new() -> Log {
        Log {
            store: Store::new(),
            next_index: 1,
            now_ms: 1_000_000,
        }
    }

    fn apply(&mut self, request: Request) -> Response {
        let index = LogIndex(self.next_index);
        self.next_index += 1;
        let command = Command {
            timestamp_ms: self.now_ms,
            proposal: ProposalId::default(),
            session: None,
            request,
        };
        self.store.apply(index, &command)
    }

    fn write(&mut self, name: &str, contents: &'static [u8], exptime_s: u64) -> Response {
        self.apply(Request::Write {
            name: name.to_string(),
            contents: Bytes::from_static(contents),
            exptime_s,
        })
    }

    fn cas(
        &mut self,
        name: &str,
        version: u64,
        contents: &'static [u8],
        exptime_s: u64,
    ) -> Response {
        self.apply(Request::Cas {
            name: name.to_string(),
            version: Version(version),
            contents: Bytes::from_static(contents),
            exptime_s,
        })
    }

    fn read(&mut self, name: &str) -> Response {
        self.apply(Request::Read {
            name: name.to_string(),
        })
    }

    fn delete(&mut self, name: &str) -> Response {
        self.apply(Request::Delete {
            name: name.to_string(),
        })
    }
}

fn written(version: u64) -> Response {
    Response::Written {
        version: Version(version),
    }
}

fn contents(version: u64, bytes: &'static [u8], exptime_s: u64) -> Response {
    Response::Contents {
        version: Version(version),
        contents: Bytes::from_static(bytes),
        exptime_s,
    }
}

#[test]
fn a_write_is_read_back_with_its_index_as_version() {
    let mut log = Log::new();
    assert_eq!(log.write("a", b"hello", 0), written(1));
    assert_eq!(log.read("a"), contents(1, b"hello", 0));
    assert_eq!(log.read("b"), Response::FileNotFound);
}

#[test]
fn versions_increase_with_every_change_of_a_file() {
    let mut log = Log::new();
    assert_eq!(log.write("a", b"1", 0), written(1));
    assert_eq!(log.write("b", b"x", 0), written(2));
    assert_eq!(log.write("a", b"2", 0), written(3));
    assert_eq!(log.cas("a", 3, b"3", 0), written(4));
    assert_eq!(log.read("a"), contents(4, b"3", 0));
}

#[test]
fn cas_needs_the_current_version_of_an_existing_file() {
    let mut log = Log::new();
    assert_eq!(log.cas("a", 1, b"x", 0), Response::FileNotFound);
    assert_eq!(log.write("a", b"1", 0), written(2));
    assert_eq!(
        log.cas("a", 1, b"x", 0),
        Response::VersionMismatch {
            current: Version(2)
        }
    );
    assert_eq!(log.read("a"), contents(2, b"1", 0));
    assert_eq!(log.cas("a", 2, b"x", 0), written(5));
}

#[test]
fn delete_removes_and_a_rewrite_never_reuses_a_version() {
    let mut log = Log::new();
    assert_eq!(log.delete("a"), Response::FileNotFound);
    assert_eq!(log.write("a", b"1", 0), written(2));
    assert_eq!(log.delete("a"), Response::Deleted);
    assert_eq!(log.read("a"), Response::FileNotFound);
    assert_eq!(log.cas("a", 2, b"x", 0), Response::FileNotFound);
    assert_eq!(log.write("a", b"2", 0), written(6));
    // A cas holding the version from before the delete fails.
    assert_eq!(
        log.cas("a", 2, b"x", 0),
        Response::VersionMismatch {
            current: Version(6)
        }
    );
}

#[test]
fn a_file_expires_at_exactly_its_expiry_time() {
    let mut log = Log::new();
    log.write("a", b"x", 10);
    log.now_ms += 9_999;
    assert_eq!(log.read("a"), contents(1, b"x", 1));
    log.now_ms += 1;
    assert_eq!(log.read("a"), Response::FileNotFound);
    assert_eq!(log.store.file_count(), 0);
}

#[test]
fn read_reports_the_seconds_left_rounded_up() {
    let mut log = Log::new();
    log.write("a", b"x", 10);
    assert_eq!(log.read("a"), contents(1, b"x", 10));
    log.now_ms += 1;
    assert_eq!(log.read("a"), contents(1, b"x", 10));
    log.now_ms += 999;
    assert_eq!(log.read("a"), contents(1, b"x", 9));
}

#[test]
fn a_later_write_or_cas_replaces_the_expiry() {
    let mut log = Log::new();
    log.write("a", b"x", 5);
    assert_eq!(log.write("a", b"y", 0), written(2));
    log.now_ms += 10_000;
    assert_eq!(log.read("a"), contents(2, b"y", 0));
    assert_eq!(log.cas("a", 2, b"z", 3), written(4));
    log.now_ms += 2_000;
    assert_eq!(log.read("a"), contents(4, b"z", 1));
    log.now_ms += 1_000;
    assert_eq!(log.read("a"), Response::FileNotFound);
}

#[test]
fn expired_files_are_gone_for_cas_and_delete_too() {
    let mut log = Log::new();
    log.write("a", b"x", 1);
    log.write("b", b"x", 1);
    log.now_ms += 1_000;
    assert_eq!(log.cas("a", 1, b"y", 0), Response::FileNotFound);
    assert_eq!(log.delete("b"), Response::FileNotFound);
    assert_eq!(log.write("a", b"new", 0), written(5));
}

#[test]
fn time_never_runs_backwards_so_expired_files_stay_gone() {
    let mut log = Log::new();
    log.write("a", b"x", 1);
    log.now_ms += 5_000;
    assert_eq!(log.read("a"), Response::FileNotFound);
    // A new leader whose clock is behind proposes the next command.
    log.now_ms -= 4_500;
    assert_eq!(log.read("a"), Response::FileNotFound);
    assert_eq!(log.store.clock_ms(), 1_005_000);
}

#[test]
fn huge_exptimes_saturate_instead_of_overflowing() {
    let mut log = Log::new();
    log.write("a", b"x", u64::MAX);
    assert!(matches!(log.read("a"), Response::Contents { exptime_s, .. } if exptime_s > 0));
}

#[test]
fn read_at_answers_at_the_given_time_but_never_before_the_clock() {
    let mut log = Log::new();
    log.write("a", b"x", 10);
    let written_at = log.now_ms;
    assert_eq!(
        log.store.read_at("a", written_at + 4_000),
        contents(1, b"x", 6)
    );
    assert_eq!(
        log.store.read_at("a", written_at + 10_000),
        Response::FileNotFound
    );
    assert_eq!(log.store.read_at("a", 0), contents(1, b"x", 10));
}

#[test]
fn raw_data_is_decoded_and_no_ops_are_skipped() {
    let mut store = Store::new();
    assert_eq!(store.apply_data(LogIndex(1), &Bytes::new()), Ok(None));
    let command = Command {
        timestamp_ms: 7,
        proposal: ProposalId::default(),
        session: None,
        request: Request::Write {
            name: "a".to_string(),
            contents: Bytes::from_static(b"x"),
            exptime_s: 0,
        },
    };
    assert_eq!(
        store.apply_data(LogIndex(2), &command.encode()),
        Ok(Some((Entry::Command(command), written(2))))
    );
    assert!(store
        .apply_data(LogIndex(3), &Bytes::from_static(b"\xffjunk"))
        .is_err());
    assert_eq!(store.applied_index(), LogIndex(3));
    assert_eq!(store.read_at("a", 0), contents(2, b"x", 0));
}

/// The obvious store: every file ever written with its expiry, checked on
/// each access instead of dropped from an index.
#[derive(Default)]
struct NaiveStore {
    files: BTreeMap<String, (u64, Bytes, u64)>,
    clock_ms: u64,
}

impl NaiveStore {
    fn live(&self, name: &str) -> Option<&(u64, Bytes, u64)> {
        self.files
            .get(name)
            .filter(|(_, _, at)| *at == 0 || *at > self.clock_ms)
    }

    fn apply(&mut self, index: u64, command: &Command) -> Response {
        self.clock_ms = self.clock_ms.max(command.timestamp_ms);
        let expiry = |exptime_s: u64| match exptime_s {
            0 => 0,
            s => self.clock_ms.saturating_add(s.saturating_mul(1000)),
        };
        match &command.request {
            Request::Write {
                name,
                contents,
                exptime_s,
            } => {
                let at = expiry(*exptime_s);
                self.files
                    .insert(name.clone(), (index, contents.clone(), at));
                written(index)
            }
            Request::Cas {
                name,
                version,
                contents,
                exptime_s,
            } => match self.live(name) {
                None => Response::FileNotFound,
                Some((current, _, _)) if *current != version.0 => Response::VersionMismatch {
                    current: Version(*current),
                },
                Some(_) => {
                    let at = expiry(*exptime_s);
                    self.files
                        .insert(name.clone(), (index, contents.clone(), at));
                    written(index)
                }
            },
            Request::Delete { name } => match self.live(name) {
                None => Response::FileNotFound,
                Some(_) => {
                    self.files.remove(name);
                    Response::Deleted
                }
            },
            Request::Read { name } => match self.live(name) {
                None => Response::FileNotFound,
                Some((version, contents, at)) => Response::Contents {
                    version: Version(*version),
                    contents: contents.clone(),
                    exptime_s: if *at == 0 {
                        0
                    } else {
                        (at - self.clock_ms).div_ceil(1000)
                    },
                },
            },
        }
    }
}

fn command_strategy() -> impl Strategy<Value = (i64, Request)> {
    let name = prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(str::to_string);
    let contents = prop_oneof![Just(&b"x"[..]), Just(&b"yy"[..])].prop_map(Bytes::from_static);
    let exptime = prop_oneof![Just(0u64), 1u64..4];
    let request = prop_oneof![
        (name.clone(), contents.clone(), exptime.clone()).prop_map(
            |(name, contents, exptime_s)| {
                Request::Write {
                    name,
                    contents,
                    exptime_s,
                }
            }
        ),
        (name.clone(), 0u64..12, contents, exptime).prop_map(
            |(name, version, contents, exptime_s)| Request::Cas {
                name,
                version: Version(version),
                contents,
                exptime_s,
            }
        ),
        name.clone().prop_map(|name| Request::Delete { name }),
        name.prop_map(|name| Request::Read { name }),
    ];
    // Clock steps mostly forward, sometimes back (a leader with a slow clock).
    (-1500i64..2500, request)
}

proptest! {
    #[test]
    fn the_store_agrees_with_the_naive_store(
        commands in proptest::collection::vec(command_strategy(), 1..60),
    ) {
        let mut store = Store::new();
        let mut naive = NaiveStore::default();
        let mut now_ms: u64 = 10_000;
        for (index, (step_ms, request)) in (1u64..).zip(commands) {
            now_ms = now_ms.saturating_add_signed(step_ms);
            let command = Command { timestamp_ms: now_ms, proposal: ProposalId::default(), session: None, request };
            let expected = naive.apply(index, &command);
            prop_assert_eq!(store.apply(LogIndex(index), &command), expected);
            let live = naive.files.keys().filter(|name| naive.live(name).is_some()).count();
            prop_assert_eq!(store.file_count(), live);
        }
    }

    #[test]
    fn a_replica_applying_log_bytes_agrees_with_the_proposer(
        commands in proptest::collection::vec(command_strategy(), 1..40),
    ) {
        // The proposer applies its commands as built; a follower decodes them
        // from the bytes in its log, with the leader's no-op entry in between.
        let mut proposer = Store::new();
        let mut follower = Store::new();
        prop_assert_eq!(follower.apply_data(LogIndex(1), &Bytes::new()), Ok(None));
        let mut now_ms: u64 = 50_000;
        for (index, (step_ms, request)) in (2u64..).zip(commands) {
            now_ms = now_ms.saturating_add_signed(step_ms);
            let command = Command { timestamp_ms: now_ms, proposal: ProposalId::default(), session: None, request };
            let expected = proposer.apply(LogIndex(index), &command);
            let answer = follower.apply_data(LogIndex(index), &command.encode());
            prop_assert_eq!(answer, Ok(Some((Entry::Command(command), expected))));
        }
        prop_assert_eq!(&proposer.files, &follower.files);
        prop_assert_eq!(proposer.clock_ms, follower.clock_ms);
    }

    #[test]
    fn a_store_restored_from_a_snapshot_goes_on_as_the_original(
        commands in proptest::collection::vec(command_strategy(), 1..60),
        cut in any::<prop::sample::Index>(),
    ) {
        // One store applies everything; the other applies a prefix, is
        // written to a snapshot and read back, then applies the rest.
        let cut = cut.index(commands.len() + 1);
        let mut now_ms: u64 = 10_000;
        let log: Vec<(LogIndex, Command)> = (1u64..)
            .zip(commands)
            .map(|(index, (step_ms, request))| {
                now_ms = now_ms.saturating_add_signed(step_ms);
                let command = Command { timestamp_ms: now_ms, proposal: ProposalId::default(), session: None, request };
                (LogIndex(index), command)
            })
            .collect();
        let mut whole = Store::new();
        let answers: Vec<Response> = log.iter().map(|(index, command)| whole.apply(*index, command)).collect();
        let mut prefix = Store::new();
        for (index, command) in &log[..cut] {
            prefix.apply(*index, command);
        }
        let mut snapshot = Vec::new();
        prefix.write_snapshot(&mut snapshot).unwrap();
        let mut restored = Store::read_snapshot(&snapshot[..], &Limits::default()).unwrap();
        prop_assert_eq!(&restored, &prefix);
        for ((index, command), answer) in log[cut..].iter().zip(&answers[cut..]) {
            prop_assert_eq!(&restored.apply(*index, command), answer);
        }
        prop_assert_eq!(&restored, &whole);
    }
}

mod sessions {
    use super::*;
    use crate::command::{SessionOpen, SessionPolicy};
    use crate::protocol::{SessionId, SessionSeq};
    use crate::store::audit::DuplicateAudit;

    const POLICY: SessionPolicy = SessionPolicy {
        idle_timeout_ms: 10_000,
        sessions_max: 2,
    };

    impl Log {
        fn open(&mut self) -> SessionId {
            let index = LogIndex(self.next_index);
            self.next_index += 1;
            let open = SessionOpen {
                timestamp_ms: self.now_ms,
                proposal: ProposalId::default(),
                policy: POLICY,
            };
            match self.store.open_session(index, &open) {
                Response::SessionOpened { id } => id,
                other => panic!("not opened: {other:?}"),
            }
        }

        fn numbered(&mut self, id: SessionId, seq: u64, request: Request) -> Response {
            let index = LogIndex(self.next_index);
            self.next_index += 1;
            let command = Command {
                timestamp_ms: self.now_ms,
                proposal: ProposalId::default(),
                session: Some(SessionSeq { id, seq }),
                request,
            };
            self.store.apply(index, &command)
        }
    }

    fn write_of(name: &str, contents: &'static [u8]) -> Request {
        Request::Write {
            name: name.to_string(),
            contents: Bytes::from_static(contents),
            exptime_s: 0,
        }
    }

    #[test]
    fn a_session_id_is_the_index_of_its_opening() {
        let mut log = Log::new();
        log.write("a", b"x", 0);
        assert_eq!(log.open(), SessionId(2));
        assert_eq!(log.store.session_count(), 1);
    }

    #[test]
    fn a_resend_is_answered_from_what_the_session_remembers() {
        let mut log = Log::new();
        let id = log.open();
        assert_eq!(log.numbered(id, 1, write_of("a", b"1")), written(2));
        // Another client changes the file; the resend must not undo that.
        assert_eq!(log.write("a", b"other", 0), written(3));
        assert_eq!(log.numbered(id, 1, write_of("a", b"1")), written(2));
        assert_eq!(log.read("a"), contents(3, b"other", 0));
        // A cas's refusal is remembered too, and the next number applies.
        let cas = Request::Cas {
            name: "a".into(),
            version: Version(2),
            contents: Bytes::from_static(b"c"),
            exptime_s: 0,
        };
        let refused = Response::VersionMismatch {
            current: Version(3),
        };
        assert_eq!(log.numbered(id, 2, cas.clone()), refused);
        assert_eq!(log.numbered(id, 2, cas), refused);
        let delete = Request::Delete { name: "a".into() };
        assert_eq!(log.numbered(id, 3, delete.clone()), Response::Deleted);
        assert_eq!(log.numbered(id, 3, delete), Response::Deleted);
    }

    #[test]
    fn an_older_number_is_stale_and_not_applied() {
        let mut log = Log::new();
        let id = log.open();
        assert_eq!(
            log.numbered(id, 0, write_of("a", b"0")),
            Response::SessionStale { last: 0 }
        );
        log.numbered(id, 5, write_of("a", b"5"));
        assert_eq!(
            log.numbered(id, 4, write_of("a", b"4")),
            Response::SessionStale { last: 5 }
        );
        assert_eq!(log.read("a"), contents(3, b"5", 0));
    }

    #[test]
    fn reads_in_a_session_are_answered_fresh_and_not_remembered() {
        let mut log = Log::new();
        let id = log.open();
        log.numbered(id, 1, write_of("a", b"1"));
        let read = Request::Read { name: "a".into() };
        assert_eq!(log.numbered(id, 1, read.clone()), contents(2, b"1", 0));
        log.write("a", b"2", 0);
        assert_eq!(log.numbered(id, 1, read), contents(4, b"2", 0));
        // The write's answer is still the one remembered.
        assert_eq!(log.numbered(id, 1, write_of("a", b"1")), written(2));
    }

    #[test]
    fn an_unknown_session_is_refused_and_nothing_applied() {
        let mut log = Log::new();
        assert_eq!(
            log.numbered(SessionId(1), 1, write_of("a", b"1")),
            Response::SessionExpired
        );
        assert_eq!(log.read("a"), Response::FileNotFound);
    }

    #[test]
    fn a_session_expires_after_its_idle_time_by_the_log_clock() {
        let mut log = Log::new();
        let id = log.open();
        log.now_ms += 9_999;
        assert_eq!(log.numbered(id, 1, write_of("a", b"1")), written(2));
        // Used at +9_999: it now lives until +19_999.
        log.now_ms += 9_999;
        assert_eq!(log.numbered(id, 1, write_of("a", b"1")), written(2));
        log.now_ms += 10_000;
        log.write("b", b"tick", 0);
        assert_eq!(log.store.session_count(), 0);
        assert_eq!(
            log.numbered(id, 1, write_of("a", b"1")),
            Response::SessionExpired
        );
        assert_eq!(log.read("a"), contents(2, b"1", 0));
    }

    #[test]
    fn opening_past_the_bound_evicts_the_least_recently_used() {
        let mut log = Log::new();
        let first = log.open();
        log.now_ms += 1;
        let second = log.open();
        log.now_ms += 1;
        // The first is used again, so the second is now the oldest.
        log.numbered(first, 1, write_of("a", b"1"));
        log.now_ms += 1;
        let third = log.open();
        assert_eq!(log.store.session_count(), 2);
        assert_eq!(
            log.numbered(second, 1, write_of("b", b"1")),
            Response::SessionExpired
        );
        assert_eq!(log.numbered(first, 1, write_of("a", b"1")), written(3));
        assert!(matches!(
            log.numbered(third, 1, write_of("c", b"1")),
            Response::Written { .. }
        ));
    }

    #[test]
    fn the_audit_counts_duplicates_from_the_log_alone() {
        let open = SessionOpen {
            timestamp_ms: 1,
            proposal: ProposalId::default(),
            policy: POLICY,
        };
        let numbered = |seq, contents| Command {
            timestamp_ms: 1,
            proposal: ProposalId::default(),
            session: Some(SessionSeq {
                id: SessionId(1),
                seq,
            }),
            request: write_of("a", contents),
        };
        let log = [
            open.encode(),
            numbered(1, b"x").encode(),
            numbered(1, b"x").encode(),
            Bytes::new(),
            numbered(2, b"y").encode(),
            numbered(1, b"x").encode(),
        ];
        let mut audit = DuplicateAudit::new();
        for (index, data) in (1..).zip(&log) {
            audit.replay(LogIndex(index), data).unwrap();
        }
        let report = audit.report();
        assert_eq!(report.entries, 6);
        assert_eq!(report.sessions_opened, 1);
        assert_eq!(report.numbered_changes, 4);
        assert_eq!(report.resent_entries, 2);
        assert_eq!(report.duplicates_applied, 0);
        assert_eq!(audit.store().version_of("a"), Some(Version(5)));
    }
}
