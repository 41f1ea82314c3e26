//! Cutting frames out of a peer's byte stream the way the transport reads
//! them: a length prefix, checked before anything is read or allocated,
//! then exactly that many bytes.

use bytes::Bytes;
use skiff_node::wire::{self, FRAME_BYTES_MAX, LENGTH_BYTES};

/// The next frame's version and body, and the rest of the stream; `None`
/// when the stream ends or its length prefix is refused (longer than `max`:
/// the transport closes the connection then).
pub fn next_frame(stream: &[u8], max: usize) -> Option<(Bytes, &[u8])> {
    let (prefix, rest) = stream.split_first_chunk::<LENGTH_BYTES>()?;
    let length = wire::check_length(*prefix, max).ok()?;
    assert!(
        (1..=max.min(FRAME_BYTES_MAX)).contains(&length),
        "check_length let {length} through a limit of {max}"
    );
    // A stream shorter than its prefix says is a connection closed mid-frame:
    // nothing was allocated for the missing bytes, and nothing is decoded.
    if rest.len() < length {
        return None;
    }
    let (frame, rest) = rest.split_at(length);
    Some((Bytes::copy_from_slice(frame), rest))
}

/// `frame` encoded and cut out again, as its receiver would see it.
pub fn reencode(frame: &wire::Frame<'_>) -> Bytes {
    let mut out = Vec::new();
    wire::encode_frame(frame, &mut out).expect("a decoded frame re-encodes");
    let (body, rest) =
        next_frame(&out, FRAME_BYTES_MAX).expect("an encoded frame has a valid prefix");
    assert!(
        rest.is_empty(),
        "encode_frame wrote {} extra bytes",
        rest.len()
    );
    body
}
