#![no_main]

#[path = "../bodies/fs_protocol.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
