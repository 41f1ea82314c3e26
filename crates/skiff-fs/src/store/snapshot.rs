//! The store as a snapshot: a versioned binary format, written and read
//! as a stream, so that neither side ever holds more than one file of it
//! beyond the store itself.
//!
//! # Format 1
//!
//! Every integer is little-endian and of fixed width.
//!
//! ```text
//! magic          8 bytes  "skiff-fs"
//! format         u32      1
//! clock_ms       u64      the store's clock: the largest command timestamp applied
//! applied_index  u64      the last log index applied
//! file_count     u64      how many files follow
//! file_count times, in increasing byte order of their names:
//!   name_len     u32      at most Limits::name_bytes_max
//!   name         name_len bytes, UTF-8, no whitespace or control characters
//!   version      u64      1 ..= applied_index
//!   expires_at   u64      when the file disappears, in ms of the log's clock,
//!                         always past clock_ms; 0 for never
//!   contents_len u32      at most Limits::file_bytes_max
//!   contents     contents_len bytes
//! end            8 bytes  "fs-end\r\n"
//! ```
//!
//! # Format 2
//!
//! Format 1 with the client sessions (see [`crate::protocol::session`])
//! between the last file and the end marker:
//!
//! ```text
//! session_count  u64      how many sessions follow
//! session_count times, in increasing order of id:
//!   id           u64      1 ..= applied_index: the index of the entry that opened it
//!   idle_timeout u64      ms
//!   expires_at   u64      ms of the log's clock, always past clock_ms
//!   last_seq     u64      the last number applied; 0 before the first
//!   answer_len   u32      0 when last_seq is 0; at most LINE_BYTES_MAX + 2
//!   answer       answer_len bytes: that request's answer as the protocol
//!                encodes it, one line (a change's answer, never contents)
//! ```
//!
//! Format 2 is written; format 1 (no sessions) is still read.
//!
//! Only live files are written: the store drops a file as soon as its
//! clock reaches the file's expiry, and a snapshot is of a store between
//! two applies. Expiry is an absolute instant of the log's clock, so a
//! restored store expires each file at the very command the original
//! would have. An expiry of 0 is free to mean "never": a real one is at
//! least 1000 ms past a clock that starts at 0.
//!
//! The leading magic and format number let a later format be told from
//! this one; the trailing marker catches a stream cut at a file boundary.
//! Reading checks every field against the format and against [`Limits`],
//! and answers anything else with a [`SnapshotReadError`], never a panic.
//! It allocates only as bytes arrive: a length announced but not
//! delivered costs nothing beyond the bytes that did arrive.

use super::sessions::Session;
use super::{File, Store};
use crate::protocol::{
    parse_name, parse_response, Limits, Parsed, Response, SessionId, Version, LINE_BYTES_MAX,
};
use bytes::Bytes;
use skiff_core::LogIndex;
use std::io::{self, BufReader, BufWriter, Read, Write};

/// The first bytes of every snapshot of the store.
pub const MAGIC: [u8; 8] = *b"skiff-fs";
/// The format [`Store::write_snapshot`] writes.
pub const FORMAT: u32 = 2;
/// The format from before sessions, still read.
pub const FORMAT_WITHOUT_SESSIONS: u32 = 1;
/// The longest answer a session remembers, with its `\r\n`.
const SESSION_ANSWER_BYTES_MAX: usize = LINE_BYTES_MAX + 2;
/// The last bytes of every snapshot of the store.
pub const END: [u8; 8] = *b"fs-end\r\n";

/// Writes are gathered into blocks this large, whatever `Write` is given.
const BUFFER_BYTES: usize = 64 * 1024;
/// The most allocated for a file's contents before they arrive; larger
/// contents grow their buffer as they are read.
const CONTENTS_PREALLOCATION_MAX: usize = 64 * 1024;

/// Why bytes are not a snapshot of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotReadError {
    /// Reading failed.
    #[error("cannot read the snapshot: {0}")]
    Io(#[source] io::Error),
    /// The bytes end before the snapshot does.
    #[error("the snapshot is truncated")]
    Truncated,
    /// The bytes do not start with [`MAGIC`].
    #[error("not a snapshot of the file store (no {:?} at the start)", String::from_utf8_lossy(&MAGIC))]
    NotASnapshot,
    /// A format this code does not know.
    #[error("unknown snapshot format {0} (this build reads formats 1 and {FORMAT})")]
    UnknownFormat(u32),
    /// A name or contents longer than the limits allow.
    #[error("file {file}: {what} of {length} bytes; the limit is {max}")]
    TooLong {
        /// Which file, counting from 0.
        file: u64,
        /// `name` or `contents`.
        what: &'static str,
        /// The announced length.
        length: u64,
        /// The limit.
        max: usize,
    },
    /// A file's name, version or expiry breaks the format's rules.
    #[error("file {file}: {problem}")]
    BadFile {
        /// Which file, counting from 0.
        file: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// A session's id, expiry or answer breaks the format's rules.
    #[error("session {session}: {problem}")]
    BadSession {
        /// Which session, counting from 0.
        session: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// The files are not followed by [`END`].
    #[error("no end marker after the last file")]
    MissingEnd,
}

impl From<io::Error> for SnapshotReadError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            SnapshotReadError::Truncated
        } else {
            SnapshotReadError::Io(error)
        }
    }
}

impl From<SnapshotReadError> for io::Error {
    fn from(error: SnapshotReadError) -> Self {
        match error {
            SnapshotReadError::Io(error) => error,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

impl Store {
    /// Writes the store to `out` in [format 2](self#format-2), in blocks of
    /// 64 KiB whatever `out` is.
    pub fn write_snapshot(&self, out: impl Write) -> io::Result<()> {
        let mut out = BufWriter::with_capacity(BUFFER_BYTES, out);
        out.write_all(&MAGIC)?;
        out.write_all(&FORMAT.to_le_bytes())?;
        out.write_all(&self.clock_ms.to_le_bytes())?;
        out.write_all(&self.applied_index.0.to_le_bytes())?;
        out.write_all(&(self.files.len() as u64).to_le_bytes())?;
        for (name, file) in &self.files {
            write_length(&mut out, name.len())?;
            out.write_all(name.as_bytes())?;
            out.write_all(&file.version.0.to_le_bytes())?;
            out.write_all(&file.expires_at_ms.unwrap_or(0).to_le_bytes())?;
            write_length(&mut out, file.contents.len())?;
            out.write_all(&file.contents)?;
        }
        write_sessions(&mut out, self)?;
        out.write_all(&END)?;
        out.flush()
    }

    /// Reads a store that [`Store::write_snapshot`] wrote, refusing names
    /// and contents beyond `limits`. Bytes after the end marker are left
    /// alone, though `input` may have been read past it (reads are
    /// buffered).
    pub fn read_snapshot(input: impl Read, limits: &Limits) -> Result<Store, SnapshotReadError> {
        let mut input = BufReader::with_capacity(BUFFER_BYTES, input);
        if read_array(&mut input)? != MAGIC {
            return Err(SnapshotReadError::NotASnapshot);
        }
        let format = u32::from_le_bytes(read_array(&mut input)?);
        if format != FORMAT && format != FORMAT_WITHOUT_SESSIONS {
            return Err(SnapshotReadError::UnknownFormat(format));
        }
        let mut store = Store {
            clock_ms: read_u64(&mut input)?,
            applied_index: LogIndex(read_u64(&mut input)?),
            ..Store::default()
        };
        let file_count = read_u64(&mut input)?;
        // Not a capacity: the count is only believed as files arrive.
        let mut previous: Option<String> = None;
        for index in 0..file_count {
            let (name, file) = read_file(&mut input, index, &store, limits)?;
            if previous.as_ref().is_some_and(|previous| *previous >= name) {
                return Err(SnapshotReadError::BadFile {
                    file: index,
                    problem: format!("{name:?} is out of order or repeated"),
                });
            }
            if let Some(at) = file.expires_at_ms {
                store.expiries.insert((at, name.clone()));
            }
            store.files.insert(name.clone(), file);
            previous = Some(name);
        }
        if format == FORMAT {
            read_sessions(&mut input, &mut store)?;
        }
        if read_array(&mut input).map_err(|_| SnapshotReadError::MissingEnd)? != END {
            return Err(SnapshotReadError::MissingEnd);
        }
        Ok(store)
    }
}

/// Reads file number `index` of a snapshot of `store` (whose clock and
/// applied index are read already).
fn read_file(
    input: &mut impl Read,
    index: u64,
    store: &Store,
    limits: &Limits,
) -> Result<(String, File), SnapshotReadError> {
    let bad = |problem: String| SnapshotReadError::BadFile {
        file: index,
        problem,
    };
    let name_len = read_length(input, index, "name", limits.name_bytes_max)?;
    let name = read_bytes(input, name_len)?;
    let name = parse_name(&name, limits).map_err(|error| bad(error.to_string()))?;
    if name.is_empty() {
        return Err(bad("an empty name".to_string()));
    }
    let version = read_u64(input)?;
    if !(1..=store.applied_index.0).contains(&version) {
        return Err(bad(format!(
            "version {version} is not in 1..={}, the entries applied",
            store.applied_index
        )));
    }
    let expires_at_ms = match read_u64(input)? {
        0 => None,
        at if at > store.clock_ms => Some(at),
        at => {
            return Err(bad(format!(
                "expired at {at} ms, not after the clock's {} ms",
                store.clock_ms
            )))
        }
    };
    let contents_len = read_length(input, index, "contents", limits.file_bytes_max)?;
    let contents = Bytes::from(read_bytes(input, contents_len)?);
    let file = File {
        version: Version(version),
        contents,
        expires_at_ms,
    };
    Ok((name, file))
}

fn write_sessions(out: &mut impl Write, store: &Store) -> io::Result<()> {
    out.write_all(&(store.sessions.len() as u64).to_le_bytes())?;
    let mut answer = Vec::new();
    for (id, session) in &store.sessions.by_id {
        out.write_all(&id.0.to_le_bytes())?;
        out.write_all(&session.idle_timeout_ms.to_le_bytes())?;
        out.write_all(&session.expires_at_ms.to_le_bytes())?;
        answer.clear();
        let last_seq = match &session.last {
            Some((seq, response)) => {
                response.encode(&mut answer);
                *seq
            }
            None => 0,
        };
        out.write_all(&last_seq.to_le_bytes())?;
        write_length(out, answer.len())?;
        out.write_all(&answer)?;
    }
    Ok(())
}

/// Reads the sessions of a format-2 snapshot into `store`, whose clock,
/// applied index and files are read already.
fn read_sessions(input: &mut impl Read, store: &mut Store) -> Result<(), SnapshotReadError> {
    let session_count = read_u64(input)?;
    let mut previous = SessionId(0);
    for index in 0..session_count {
        let bad = |problem: String| SnapshotReadError::BadSession {
            session: index,
            problem,
        };
        let id = SessionId(read_u64(input)?);
        if id <= previous || id.0 > store.applied_index.0 {
            return Err(bad(format!(
                "id {id} is out of order, repeated, or past the entries applied"
            )));
        }
        let idle_timeout_ms = read_u64(input)?;
        let expires_at_ms = read_u64(input)?;
        if expires_at_ms <= store.clock_ms {
            return Err(bad(format!(
                "expired at {expires_at_ms} ms, not after the clock's {} ms",
                store.clock_ms
            )));
        }
        let last_seq = read_u64(input)?;
        let answer_len = u32::from_le_bytes(read_array(input)?);
        let answer_len = usize::try_from(answer_len)
            .ok()
            .filter(|length| *length <= SESSION_ANSWER_BYTES_MAX)
            .ok_or_else(|| bad(format!("an answer of {answer_len} bytes")))?;
        let answer = read_bytes(input, answer_len)?;
        let last = match (last_seq, answer_len) {
            (0, 0) => None,
            (0, _) | (_, 0) => {
                return Err(bad("an answer without a number, or the other way".into()))
            }
            (seq, _) => Some((seq, parse_session_answer(&answer).map_err(bad)?)),
        };
        let session = Session {
            idle_timeout_ms,
            expires_at_ms,
            last,
        };
        store.sessions.insert(id, session);
        previous = id;
    }
    Ok(())
}

/// The answer a session remembers: exactly one answer line, not contents.
fn parse_session_answer(answer: &[u8]) -> Result<Response, String> {
    let no_contents = Limits {
        file_bytes_max: 0,
        ..Limits::default()
    };
    match parse_response(answer, &no_contents) {
        Ok(Parsed::Complete { value, consumed }) if consumed == answer.len() => match value {
            Response::Contents { .. } => Err("a read's answer is never remembered".into()),
            value => Ok(value),
        },
        Ok(_) => Err("the answer is not one whole line".into()),
        Err(error) => Err(format!("the answer is malformed: {error}")),
    }
}

fn write_length(out: &mut impl Write, length: usize) -> io::Result<()> {
    let length = u32::try_from(length).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a length of {length} bytes does not fit the snapshot format"),
        )
    })?;
    out.write_all(&length.to_le_bytes())
}

/// Reads a `u32` length and checks it against `max` before anything of
/// what it counts is read.
fn read_length(
    input: &mut impl Read,
    file: u64,
    what: &'static str,
    max: usize,
) -> Result<usize, SnapshotReadError> {
    let length = u32::from_le_bytes(read_array(input)?);
    match usize::try_from(length) {
        Ok(length) if length <= max => Ok(length),
        _ => Err(SnapshotReadError::TooLong {
            file,
            what,
            length: length.into(),
            max,
        }),
    }
}

/// Reads exactly `length` bytes, growing the buffer only as they arrive.
fn read_bytes(input: &mut impl Read, length: usize) -> Result<Vec<u8>, SnapshotReadError> {
    let mut bytes = Vec::with_capacity(length.min(CONTENTS_PREALLOCATION_MAX));
    input.take(length as u64).read_to_end(&mut bytes)?;
    if bytes.len() < length {
        return Err(SnapshotReadError::Truncated);
    }
    Ok(bytes)
}

fn read_array<const N: usize>(input: &mut impl Read) -> Result<[u8; N], SnapshotReadError> {
    let mut bytes = [0u8; N];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn read_u64(input: &mut impl Read) -> Result<u64, SnapshotReadError> {
    read_array(input).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests;
