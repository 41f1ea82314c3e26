#![no_main]

#[path = "../bodies/core_cluster.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
