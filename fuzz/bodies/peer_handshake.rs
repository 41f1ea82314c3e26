//! Fuzz body `peer_handshake`: the first frame a stranger sends to the peer
//! port, before any handshake: the length check and `decode_frame` on
//! arbitrary bytes. Never a panic; nothing is allocated for a length the
//! prefix announces but the stream does not hold (libFuzzer's
//! `-malloc_limit_mb` catches an allocation sized by the prefix alone).

use super::wire_stream;
use skiff_node::config::PEER_HANDSHAKE_FRAME_BYTES_MAX_DEFAULT;
use skiff_node::wire;

/// Runs one input.
pub fn run(data: &[u8]) {
    // Before the handshake the transport accepts only small frames.
    let max = PEER_HANDSHAKE_FRAME_BYTES_MAX_DEFAULT as usize;
    let Some((frame, _rest)) = wire_stream::next_frame(data, max) else {
        return;
    };
    let Ok(decoded) = wire::decode_frame(&frame) else {
        return;
    };
    // Whatever a stranger can make the decoder accept must mean the same
    // thing once encoded again: the listener's answer relies on it.
    let again = wire_stream::reencode(&decoded);
    assert_eq!(wire::decode_frame(&again).as_ref(), Ok(&decoded));
}
