//! The replicated versioned file server: a file store whose every change,
//! and every read, goes through the Raft log of an embedded `skiff-node`, so
//! that any minority of servers can crash without losing a file.
//!
//! Clients speak the classic line protocol (see [`protocol`]):
//!
//! ```text
//! write <name> <numbytes> [<exptime>]\r\n<bytes>\r\n            -> OK <version>
//! read <name>\r\n                                               -> CONTENTS <version> <numbytes> <exptime>\r\n<bytes>
//! cas <name> <version> <numbytes> [<exptime>]\r\n<bytes>\r\n    -> OK <version> | ERR_VERSION <v> | ERR_FILE_NOT_FOUND
//! delete <name>\r\n                                             -> OK | ERR_FILE_NOT_FOUND
//! status\r\n                                                    -> STATUS id=.. role=.. term=.. leader=.. commit=.. last=.. repairing=.. snapshot=.. log=..
//! snapshot\r\n                                                  -> SNAPSHOT index=.. term=.. | ERR_SNAPSHOT <reason>
//! session open\r\n                                              -> SESSION <id>
//! session <id> <seq> <request>                                  -> the request's answer | ERR_SESSION_EXPIRED | ERR_SESSION_STALE <last>
//! ```
//!
//! `status` and `snapshot` are our extensions, answered by each server
//! for its own node without the log: `status` for monitoring (see
//! [`protocol::status`]), `snapshot` for an administrator who wants the
//! log released now (see [`protocol::snapshot`]). `session`, our third,
//! makes a client's changes exactly-once across resends (see
//! [`protocol::session`]).
//!
//! Everything but [`server`] and [`client`] is deterministic and does no
//! I/O: the parser is a function of a byte buffer, the store a function of
//! the committed log, the checker a function of a history.
//!
//! # Layout
//!
//! * [`protocol`]: the line protocol as pure, incremental parsers and
//!   encoders of requests and responses, with bounded memory.
//! * [`command`]: a request as a log entry (with the leader's timestamp, a
//!   proposal id and its session, if any) and its stable binary encoding.
//! * [`store`]: the versioned files and the client sessions as a
//!   deterministic function of the log; versions are log indices, expiry is
//!   decided by log timestamps; the store's snapshot format; an audit that
//!   counts changes a log applied twice.
//! * [`server`]: the node, the store as its state machine, and the client
//!   connections.
//! * [`client`]: an async client with leader discovery and sessions, which
//!   resends a change whose outcome is unknown.
//! * [`linearizability`]: a Wing-Gong checker for histories of the store,
//!   used by the tests that crash leaders under load.
//! * [`workload`]: the recorded random workload those tests run.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod command;
pub mod linearizability;
pub mod protocol;
pub mod server;
pub mod store;
pub mod workload;

pub use client::{Client, ClientConfig, ClientError, ClientTls, File};
pub use protocol::{Limits, Request, Response, Version};
pub use server::{run, Clock, Server, ServerConfig, ServerError, ServerStatus};
