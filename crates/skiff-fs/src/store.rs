//! The versioned file store: a deterministic function of the committed log.
//!
//! [`Store::apply`] takes the committed entries in index order and answers
//! each with the [`Response`] its client gets. Nothing else changes the store,
//! and nothing in it depends on the replica it runs on, so every replica that
//! applies the same log holds the same files and gives the same answers.
//!
//! # Versions
//!
//! A file's version is the log index of the change that produced it. Log
//! indices are positive, unique and increasing, so versions are positive and
//! grow with every change of a file without any counter of their own; they are
//! the same on every replica and survive leader changes; and a file that is
//! deleted and written again gets a version larger than any it had before, so
//! a cas holding a version from before the delete cannot succeed by accident.
//! Versions of one file are not consecutive, which the protocol does not ask.
//!
//! # Time and expiry
//!
//! The store's clock is the largest command timestamp applied so far (the
//! leader's wall clock when it proposed, see [`Command`]). Taking the largest
//! rather than the latest keeps time from running backwards when a new leader's
//! clock is behind the old one's, so an expired file never comes back. A file
//! written at time `t` with exptime `e > 0` seconds expires at `t + 1000 e` ms
//! and is gone for every command whose clock is at or past that instant.
//! [`Store::read_at`] answers a read at a caller's `now` without the log.
//!
//! # Memory
//!
//! Expired files are dropped as soon as the clock passes them (an ordered
//! index of expiry times finds them), so the store holds live files only. Each
//! file is bounded by [`Limits`](crate::protocol::Limits) (size and name
//! length); the number of files is not bounded, so the total is the sum of the
//! live files that clients chose to keep.
//!
//! # Sessions
//!
//! The store keeps the client sessions of the protocol's `session`
//! extension ([`sessions`]): a numbered change is applied once, and a
//! resend of it is answered with the first answer, whichever replica and
//! leader it reaches. Sessions are part of the store's state, so they are
//! in its snapshots and expire by the same log clock as files.
//!
//! # Snapshots
//!
//! The maps are persistent ([`imbl`]): a clone shares every node with the
//! original and copies only what either side changes afterwards, so
//! [`Store::clone`] is a frozen copy taken in constant time, which a
//! background thread writes out ([`snapshot`]) while the original goes on
//! applying. A store read back from a snapshot holds the same files, clock
//! and applied index, so it answers every later command as the original
//! would: expiry times are absolute instants of the log's clock, never of
//! the replica's.

use crate::command::{Command, DecodeError, Entry, SessionOpen};
use crate::protocol::{Request, Response, SessionId, Version};
use bytes::Bytes;
use imbl::{OrdMap, OrdSet};
use sessions::{Admission, Sessions};
use skiff_core::LogIndex;

pub mod audit;
mod sessions;
pub mod snapshot;

pub use snapshot::SnapshotReadError;

const MS_PER_S: u64 = 1000;

/// The files, as of the last applied log index. Cloning is cheap and
/// gives a frozen copy (see [Snapshots](self#snapshots)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    /// Ordered by name, so that a snapshot lists them in one order on
    /// every replica.
    files: OrdMap<String, File>,
    /// Every file that expires, ordered by when: `(expires_at_ms, name)`.
    expiries: OrdSet<(u64, String)>,
    /// The largest command timestamp applied so far, in ms.
    clock_ms: u64,
    applied_index: LogIndex,
    sessions: Sessions,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct File {
    version: Version,
    contents: Bytes,
    /// When the file disappears; `None` for never.
    expires_at_ms: Option<u64>,
}

impl Store {
    /// An empty store that has applied nothing.
    pub fn new() -> Store {
        Store::default()
    }

    /// The index of the last entry applied.
    pub fn applied_index(&self) -> LogIndex {
        self.applied_index
    }

    /// The store's clock: the largest command timestamp applied, in ms.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// How many live files the store holds.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// How many client sessions the store keeps.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The version of `name` as of the last entry applied, live or not yet
    /// dropped; `None` when there is no such file.
    pub fn version_of(&self, name: &str) -> Option<Version> {
        self.files.get(name).map(|file| file.version)
    }

    /// Applies raw log data committed at `index` and returns the entry it
    /// held with its answer: `Ok(None)` for the leader's empty no-op entry, an
    /// error for data that is not a command. Either way the entry counts as
    /// applied, so that the next index is accepted.
    ///
    /// # Panics
    ///
    /// If `index` is not past [`Store::applied_index`]: the driver must apply
    /// each committed entry once, in order.
    ///
    /// The store keeps a file's contents as a slice of `data`, sharing the
    /// log entry's buffer instead of copying it.
    pub fn apply_data(
        &mut self,
        index: LogIndex,
        data: &Bytes,
    ) -> Result<Option<(Entry, Response)>, DecodeError> {
        match Entry::decode_shared(data) {
            Ok(Some(entry)) => {
                let response = self.apply_entry(index, &entry);
                Ok(Some((entry, response)))
            }
            Ok(None) => {
                self.advance_to(index);
                Ok(None)
            }
            Err(error) => {
                self.advance_to(index);
                Err(error)
            }
        }
    }

    /// Applies the entry committed at `index` and returns its answer.
    ///
    /// # Panics
    ///
    /// If `index` is not past [`Store::applied_index`].
    pub fn apply_entry(&mut self, index: LogIndex, entry: &Entry) -> Response {
        match entry {
            Entry::Command(command) => self.apply(index, command),
            Entry::OpenSession(open) => self.open_session(index, open),
        }
    }

    /// Applies the command committed at `index` and returns its answer. A
    /// numbered command of a session is applied at most once (see
    /// [Sessions](self#sessions)).
    ///
    /// # Panics
    ///
    /// If `index` is not past [`Store::applied_index`].
    pub fn apply(&mut self, index: LogIndex, command: &Command) -> Response {
        self.advance(index, command.timestamp_ms);
        let Some(session) = command.session else {
            return self.apply_request(index, &command.request);
        };
        let read = matches!(command.request, Request::Read { .. });
        match self.sessions.admit(session, read) {
            Admission::Answer(response) => response,
            Admission::Apply => {
                let response = self.apply_request(index, &command.request);
                let remembered = (!read).then_some(&response);
                self.sessions.record(session, self.clock_ms, remembered);
                response
            }
        }
    }

    /// Opens the session the entry at `index` registers; its id is `index`.
    ///
    /// # Panics
    ///
    /// If `index` is not past [`Store::applied_index`].
    pub fn open_session(&mut self, index: LogIndex, open: &SessionOpen) -> Response {
        self.advance(index, open.timestamp_ms);
        let id = SessionId(index.0);
        self.sessions.open(id, self.clock_ms, open.policy);
        Response::SessionOpened { id }
    }

    /// Moves to entry `index`, at time `timestamp_ms` or later, and drops
    /// what expired by then.
    fn advance(&mut self, index: LogIndex, timestamp_ms: u64) {
        self.advance_to(index);
        self.clock_ms = self.clock_ms.max(timestamp_ms);
        self.drop_expired();
        self.sessions.drop_expired(self.clock_ms);
    }

    fn apply_request(&mut self, index: LogIndex, request: &Request) -> Response {
        match request {
            Request::Write {
                name,
                contents,
                exptime_s,
            } => self.put(name, Version(index.0), contents, *exptime_s),
            Request::Cas {
                name,
                version,
                contents,
                exptime_s,
            } => match self.files.get(name) {
                None => Response::FileNotFound,
                Some(file) if file.version != *version => Response::VersionMismatch {
                    current: file.version,
                },
                Some(_) => self.put(name, Version(index.0), contents, *exptime_s),
            },
            Request::Delete { name } => match self.remove(name) {
                Some(_) => Response::Deleted,
                None => Response::FileNotFound,
            },
            Request::Read { name } => self.read_at(name, self.clock_ms),
        }
    }

    /// Answers a read of `name` at time `now_ms` from the applied state, for a
    /// server that confirms its leadership instead of logging reads. The time
    /// used is never earlier than the store's clock.
    pub fn read_at(&self, name: &str, now_ms: u64) -> Response {
        let now_ms = now_ms.max(self.clock_ms);
        match self.files.get(name) {
            Some(file) if file.expires_at_ms.is_none_or(|at| at > now_ms) => Response::Contents {
                version: file.version,
                contents: file.contents.clone(),
                exptime_s: file
                    .expires_at_ms
                    .map_or(0, |at| (at - now_ms).div_ceil(MS_PER_S)),
            },
            _ => Response::FileNotFound,
        }
    }

    fn advance_to(&mut self, index: LogIndex) {
        assert!(
            index > self.applied_index,
            "entry {index} applied after entry {}",
            self.applied_index
        );
        self.applied_index = index;
    }

    fn put(&mut self, name: &str, version: Version, contents: &Bytes, exptime_s: u64) -> Response {
        let expires_at_ms = (exptime_s > 0).then(|| {
            self.clock_ms
                .saturating_add(exptime_s.saturating_mul(MS_PER_S))
        });
        let file = File {
            version,
            contents: contents.clone(),
            expires_at_ms,
        };
        // A file replaced in place keeps its key: no new name is allocated.
        let replaced = match self.files.get_mut(name) {
            Some(old) => std::mem::replace(old, file).expires_at_ms,
            None => {
                self.files.insert(name.to_string(), file);
                None
            }
        };
        if replaced != expires_at_ms {
            if let Some(at) = replaced {
                self.expiries.remove(&(at, name.to_string()));
            }
            if let Some(at) = expires_at_ms {
                self.expiries.insert((at, name.to_string()));
            }
        }
        Response::Written { version }
    }

    fn remove(&mut self, name: &str) -> Option<File> {
        let file = self.files.remove(name)?;
        if let Some(at) = file.expires_at_ms {
            self.expiries.remove(&(at, name.to_string()));
        }
        Some(file)
    }

    /// Drops every file whose expiry is at or before the clock.
    fn drop_expired(&mut self) {
        while let Some((at, _)) = self.expiries.get_min() {
            if *at > self.clock_ms {
                break;
            }
            let (_, name) = self.expiries.remove_min().expect("get_min() was Some");
            self.files.remove(&name);
        }
    }
}

#[cfg(test)]
mod tests;
