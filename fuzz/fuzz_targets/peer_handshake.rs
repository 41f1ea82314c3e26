#![no_main]

#[path = "../bodies/peer_handshake.rs"]
mod body;
#[path = "../bodies/wire_stream.rs"]
mod wire_stream;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
