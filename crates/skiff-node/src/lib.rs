//! A Raft node (work in progress).
#![forbid(unsafe_code)]
