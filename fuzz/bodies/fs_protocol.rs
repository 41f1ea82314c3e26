//! Fuzz body `fs_protocol`: the file server's parser
//! (`parse_client_message` with default limits) on a client's arbitrary
//! byte stream, and the client's response parser on the same bytes.
//! Never a panic; `consumed` within the buffer; every request parsed
//! encodes and parses back to itself (a numbered one of a session with its
//! prefix); a request cut short anywhere reads as
//! incomplete, never as an error or as another request; and the parser
//! never asks for more bytes past the bound the server buffers.

use skiff_fs::protocol::{
    parse_client_message, parse_request, parse_response, ClientMessage, Limits, Parsed,
    SessionMessage,
};

/// Runs one input.
pub fn run(data: &[u8]) {
    let limits = Limits::default();
    client_stream(data, &limits);
    server_stream(data, &limits);
}

fn client_stream(data: &[u8], limits: &Limits) {
    let mut buf = data;
    loop {
        let consumed = match parse_client_message(buf, limits) {
            Err(_) => return,
            Ok(Parsed::Incomplete) => {
                assert!(
                    buf.len() < limits.request_bytes_max(),
                    "incomplete at {} bytes",
                    buf.len()
                );
                return;
            }
            Ok(Parsed::Complete { value, consumed }) => {
                assert!(
                    0 < consumed && consumed <= buf.len(),
                    "consumed {consumed} of {}",
                    buf.len()
                );
                every_prefix_is_incomplete(&buf[..consumed], limits);
                if let ClientMessage::File(request) = value {
                    let mut encoded = Vec::new();
                    request.encode(&mut encoded);
                    let reparsed = parse_request(&encoded, limits);
                    assert_eq!(
                        reparsed,
                        Ok(Parsed::Complete {
                            value: request,
                            consumed: encoded.len()
                        })
                    );
                } else if let ClientMessage::Session(SessionMessage::Numbered {
                    session,
                    request,
                }) = &value
                {
                    let mut encoded = Vec::new();
                    session.encode_prefix(&mut encoded);
                    request.encode(&mut encoded);
                    let reparsed = parse_client_message(&encoded, limits);
                    assert_eq!(
                        reparsed,
                        Ok(Parsed::Complete {
                            value: value.clone(),
                            consumed: encoded.len()
                        })
                    );
                }
                consumed
            }
        };
        buf = &buf[consumed..];
    }
}

/// A server reads whatever arrived so far; a complete message cut at any
/// point must ask for more, not fail, or requests split across reads break.
fn every_prefix_is_incomplete(message: &[u8], limits: &Limits) {
    for end in 0..message.len() {
        let parsed = parse_client_message(&message[..end], limits);
        assert_eq!(
            parsed,
            Ok(Parsed::Incomplete),
            "prefix of {end} of {} bytes",
            message.len()
        );
    }
}

fn server_stream(data: &[u8], limits: &Limits) {
    let mut buf = data;
    while let Ok(Parsed::Complete { value, consumed }) = parse_response(buf, limits) {
        assert!(0 < consumed && consumed <= buf.len());
        let mut encoded = Vec::new();
        value.encode(&mut encoded);
        assert_eq!(
            parse_response(&encoded, limits),
            Ok(Parsed::Complete {
                value,
                consumed: encoded.len()
            })
        );
        buf = &buf[consumed..];
    }
}
