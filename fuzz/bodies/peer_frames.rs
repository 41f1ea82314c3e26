//! Fuzz body `peer_frames`: a handshaken peer's stream of frames: split,
//! decoded, turned into Raft messages with `into_message`, and each one
//! encoded and decoded again to the same message.

use super::wire_stream;
use skiff_node::wire::{self, Frame, WireMessage, FRAME_BYTES_MAX};

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut stream = data;
    while let Some((frame, rest)) = wire_stream::next_frame(stream, FRAME_BYTES_MAX) {
        stream = rest;
        let Ok(decoded) = wire::decode_frame(&frame) else {
            // The transport drops the connection at the first bad frame.
            return;
        };
        let Frame::Message(wire_message) = decoded else {
            let again = wire_stream::reencode(&decoded);
            assert_eq!(wire::decode_frame(&again), Ok(decoded));
            continue;
        };
        let message = wire_message.into_message(&frame);
        let again = wire_stream::reencode(&Frame::Message(WireMessage::from_message(&message)));
        let Ok(Frame::Message(round_tripped)) = wire::decode_frame(&again) else {
            panic!("{message:?} did not decode as a message after encoding");
        };
        assert_eq!(round_tripped.into_message(&again), message);
    }
}
