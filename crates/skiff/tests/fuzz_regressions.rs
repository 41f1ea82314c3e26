//! The fuzz targets' corpora and crash reproducers as regression tests on
//! stable: every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` through the same body the libFuzzer target
//! runs (`fuzz/bodies/<target>.rs`, with the helpers they share as their
//! siblings). See `fuzz/README.md`.

#[path = "../../../fuzz/bodies/core_cluster.rs"]
mod core_cluster;
#[path = "../../../fuzz/bodies/core_step.rs"]
mod core_step;
#[path = "../../../fuzz/bodies/fs_protocol.rs"]
mod fs_protocol;
#[path = "../../../fuzz/bodies/peer_frames.rs"]
mod peer_frames;
#[path = "../../../fuzz/bodies/peer_handshake.rs"]
mod peer_handshake;
#[path = "../../../fuzz/bodies/wal_recovery.rs"]
mod wal_recovery;
#[path = "../../../fuzz/bodies/wire_stream.rs"]
mod wire_stream;

use std::fs;
use std::path::{Path, PathBuf};

/// Runs every stored input of `target` through `body`; a failure names the
/// file in the test's output.
fn replay(target: &str, body: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .map(|kind| fuzz.join(kind).join(target))
        .filter(|dir| dir.is_dir())
        .flat_map(|dir| fs::read_dir(dir).expect("listing a corpus"))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    inputs.sort();
    assert!(
        !inputs.is_empty(),
        "no corpus for {target} under {}",
        fuzz.display()
    );
    for input in &inputs {
        eprintln!("{target}: {}", input.display());
        body(&fs::read(input).expect("reading an input"));
    }
    eprintln!("{target}: {} inputs passed", inputs.len());
}

#[test]
fn peer_handshake_inputs_pass() {
    replay("peer_handshake", peer_handshake::run);
}

#[test]
fn peer_frames_inputs_pass() {
    replay("peer_frames", peer_frames::run);
}

#[test]
fn fs_protocol_inputs_pass() {
    replay("fs_protocol", fs_protocol::run);
}

#[test]
fn wal_recovery_inputs_pass() {
    replay("wal_recovery", wal_recovery::run);
}

#[test]
fn core_step_inputs_pass() {
    replay("core_step", core_step::run);
}

#[test]
fn core_cluster_inputs_pass() {
    replay("core_cluster", core_cluster::run);
}
