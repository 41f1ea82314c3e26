//! Drivers of `skiff-core` that need no real I/O: the scenario runner
//! (`scenario`) and the deterministic cluster simulator.
//!
//! # The simulator
//!
//! [`run_seed`] runs one seeded, single-threaded world ([`world`]) of real
//! `skiff-core` machines through a hostile network ([`network`]) and a fault
//! injector ([`faults`]), with clients ([`client`]) submitting appends and
//! linearizable reads, and checks every action and every batch against the
//! Raft safety rules ([`checker`], one module per rule). [`run_seeds`] runs many seeds across
//! threads. Every run hashes its trace ([`trace`]); the same seed and
//! [`SimOptions`] give the same hash and, with a trace file, the same text.
//!
//! Nodes run a small application ([`app`]): each folds its committed
//! entries into a state, takes snapshots of it as a per-seed policy says
//! (or `--compact-every`), and a leader streams its snapshot in chunks over
//! the same hostile network to followers that need it.
//!
//! A share of the clients' requests ([`SimOptions::read_share`], 30% by
//! default) are reads, stepped into the machine they reach as
//! `Event::Read` with the virtual clock: a leader confirms them with a
//! round of heartbeats (or, with [`SimOptions::lease_read_margin_ms`], from
//! its lease), a follower asks its leader for the read index, and the node
//! answers with its application state once it has applied through the
//! index. Every answer is checked for linearizability against the agreed
//! log ([`checker::linearizable_read`]) as it happens and again over the
//! whole [`history`] at the end, and every read a machine is asked for must
//! be answered exactly once per life of the node
//! ([`checker::read_answered_once`]).
//!
//! Supporting pieces: [`rng`] (the one generator), [`queue`] (the agenda of
//! timed events), [`durable`] (a node's disk and snapshot), [`history`]
//! (what clients were told), [`stats`], [`hash`],
//! [`options`], [`run`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod checker;
pub mod client;
pub mod durable;
pub mod faults;
pub mod hash;
pub mod history;
pub mod network;
pub mod options;
pub mod queue;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod timeline;
pub mod trace;
pub mod world;

pub use checker::{Rule, Violation};
pub use faults::{DiskFaults, FaultProfile, FaultRates};
pub use options::{Limit, MembershipProfile, SimOptions};
pub use run::{
    run_seed, run_seed_timeline, run_seed_traced, run_seeds, SeedsPlan, SeedsSummary, SimReport,
};
pub use stats::SimStats;
