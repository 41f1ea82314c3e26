#![no_main]

#[path = "../bodies/wal_recovery.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
