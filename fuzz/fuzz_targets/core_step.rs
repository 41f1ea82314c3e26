#![no_main]

#[path = "../bodies/core_step.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
