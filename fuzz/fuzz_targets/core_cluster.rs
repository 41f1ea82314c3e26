#![no_main]

#[path = "../bodies/core_cluster.rs"]
mod body;
#[path = "../bodies/core_step.rs"]
#[allow(dead_code)] // its `run` is the other target's
mod core_step;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
