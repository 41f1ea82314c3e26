use super::*;
use proptest::prelude::*;

const LIMITS: Limits = Limits {
    file_bytes_max: 1000,
    name_bytes_max: 100,
};

/// What a connection made of a byte stream delivered in `chunks`: the requests
/// parsed in order, the error that closed it (if any), and the most bytes it
/// ever held while waiting for more.
#[derive(Debug, PartialEq)]
struct Session {
    requests: Vec<Request>,
    error: Option<ProtocolError>,
    buffered_bytes_max: usize,
}

fn feed(chunks: &[&[u8]], limits: &Limits) -> Session {
    let mut session = Session {
        requests: Vec::new(),
        error: None,
        buffered_bytes_max: 0,
    };
    let mut buffer = Vec::new();
    for chunk in chunks {
        buffer.extend_from_slice(chunk);
        loop {
            match parse_request(&buffer, limits) {
                Ok(Parsed::Complete { value, consumed }) => {
                    assert!(consumed > 0 && consumed <= buffer.len());
                    session.requests.push(value);
                    buffer.drain(..consumed);
                }
                Ok(Parsed::Incomplete) => break,
                Err(error) => {
                    session.error = Some(error);
                    return session;
                }
            }
        }
        session.buffered_bytes_max = session.buffered_bytes_max.max(buffer.len());
    }
    session
}

/// Parses `input` delivered in one piece and expects exactly one outcome.
fn parse_one(input: &[u8]) -> Result<Parsed<Request>, ProtocolError> {
    parse_request(input, &LIMITS)
}

fn complete(request: Request, consumed: usize) -> Result<Parsed<Request>, ProtocolError> {
    Ok(Parsed::Complete {
        value: request,
        consumed,
    })
}

fn write(name: &str, contents: &[u8], exptime_s: u64) -> Request {
    Request::Write {
        name: name.to_string(),
        contents: Bytes::copy_from_slice(contents),
        exptime_s,
    }
}

fn cas(name: &str, version: u64, contents: &[u8], exptime_s: u64) -> Request {
    Request::Cas {
        name: name.to_string(),
        version: Version(version),
        contents: Bytes::copy_from_slice(contents),
        exptime_s,
    }
}

fn read(name: &str) -> Request {
    Request::Read {
        name: name.to_string(),
    }
}

fn delete(name: &str) -> Request {
    Request::Delete {
        name: name.to_string(),
    }
}

#[test]
fn each_command_parses() {
    assert_eq!(parse_one(b"read a.txt\r\n"), complete(read("a.txt"), 12));
    assert_eq!(parse_one(b"delete a\r\n"), complete(delete("a"), 10));
    assert_eq!(
        parse_one(b"write f 3\r\nabc\r\n"),
        complete(write("f", b"abc", 0), 16)
    );
    assert_eq!(
        parse_one(b"write f 3 10\r\nabc\r\n"),
        complete(write("f", b"abc", 10), 19)
    );
    assert_eq!(
        parse_one(b"cas f 7 2\r\nhi\r\n"),
        complete(cas("f", 7, b"hi", 0), 15)
    );
    assert_eq!(
        parse_one(b"cas f 7 2 5\r\nhi\r\n"),
        complete(cas("f", 7, b"hi", 5), 17)
    );
}

#[test]
fn extra_spaces_between_words_are_ignored() {
    assert_eq!(parse_one(b"read  f \r\n"), complete(read("f"), 10));
}

#[test]
fn empty_contents_are_a_file() {
    assert_eq!(
        parse_one(b"write f 0\r\n\r\n"),
        complete(write("f", b"", 0), 13)
    );
}

#[test]
fn contents_are_binary_safe() {
    let contents = b"a\r\nb\0\xff\r\n";
    let mut input = b"write bin 8\r\n".to_vec();
    input.extend_from_slice(contents);
    input.extend_from_slice(b"\r\n");
    assert_eq!(
        parse_one(&input),
        complete(write("bin", contents, 0), input.len())
    );
}

#[test]
fn a_buffer_with_several_commands_yields_them_in_order() {
    let input = b"write a 1\r\nx\r\nread a\r\ncas a 3 1\r\ny\r\ndelete a\r\n";
    let session = feed(&[input], &LIMITS);
    assert_eq!(session.error, None);
    assert_eq!(
        session.requests,
        [
            write("a", b"x", 0),
            read("a"),
            cas("a", 3, b"y", 0),
            delete("a")
        ]
    );
}

#[test]
fn a_command_split_at_every_byte_parses_the_same() {
    let input = b"cas file 12 6 30\r\nab\r\ncd\r\n";
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let session = feed(&bytes, &LIMITS);
    assert_eq!(session.error, None);
    assert_eq!(session.requests, [cas("file", 12, b"ab\r\ncd", 30)]);
}

#[test]
fn every_proper_prefix_is_incomplete() {
    let input = b"write f 5 9\r\nhello\r\n";
    for end in 0..input.len() {
        assert_eq!(
            parse_one(&input[..end]),
            Ok(Parsed::Incomplete),
            "prefix {end}"
        );
    }
}

/// A read whose header line (without `\r\n`) is exactly `line_bytes` long.
fn read_line_of(line_bytes: usize) -> Vec<u8> {
    let name = "n".repeat(line_bytes - "read ".len());
    format!("read {name}").into_bytes()
}

#[test]
fn a_line_just_under_the_limit_is_accepted() {
    let limits = Limits {
        name_bytes_max: 1000,
        ..LIMITS
    };
    let mut input = read_line_of(LINE_BYTES_MAX - 1);
    input.extend_from_slice(b"\r\n");
    let parsed = parse_request(&input, &limits);
    assert!(matches!(parsed, Ok(Parsed::Complete { consumed, .. }) if consumed == input.len()));
}

#[test]
fn a_line_of_500_bytes_is_refused_with_or_without_its_end() {
    let line = read_line_of(LINE_BYTES_MAX);
    let mut ended = line.clone();
    ended.extend_from_slice(b"\r\n");
    assert_eq!(parse_one(&ended), Err(ProtocolError::LineTooLong));
    // Refused as soon as the 500th byte arrives, not when the line ends.
    assert_eq!(parse_one(&line), Err(ProtocolError::LineTooLong));
    // 499 bytes and a '\r' may still end in time.
    let mut almost = line[..LINE_BYTES_MAX - 1].to_vec();
    almost.push(b'\r');
    assert_eq!(parse_one(&almost), Ok(Parsed::Incomplete));
    let endless = vec![b'x'; 10_000];
    assert_eq!(parse_one(&endless), Err(ProtocolError::LineTooLong));
}

#[test]
fn malformed_headers_are_refused() {
    let bad_number = |field| Err(ProtocolError::BadNumber { field });
    assert_eq!(parse_one(b"write f abc\r\nabc\r\n"), bad_number("numbytes"));
    assert_eq!(parse_one(b"write f -3\r\n"), bad_number("numbytes"));
    assert_eq!(parse_one(b"write f +3\r\n"), bad_number("numbytes"));
    assert_eq!(parse_one(b"write f 3 soon\r\n"), bad_number("exptime"));
    assert_eq!(parse_one(b"write f 3 -1\r\n"), bad_number("exptime"));
    assert_eq!(parse_one(b"cas f v1 3\r\n"), bad_number("version"));
    assert_eq!(
        parse_one(b"cas f 99999999999999999999 3\r\n"),
        bad_number("version")
    );
    assert_eq!(
        parse_one(b"write f 3 18446744073709551616\r\n"),
        bad_number("exptime")
    );
}

#[test]
fn wrong_argument_counts_are_refused() {
    for input in [
        &b"read\r\n"[..],
        b"read a b\r\n",
        b"delete\r\n",
        b"write f\r\n",
        b"write f 1 2 3\r\n",
        b"cas f 1\r\n",
        b"cas f 1 2 3 4\r\n",
    ] {
        let parsed = parse_one(input);
        assert!(
            matches!(parsed, Err(ProtocolError::ArgumentCount { .. })),
            "{input:?}: {parsed:?}"
        );
    }
}

#[test]
fn unknown_commands_are_refused() {
    for input in [&b"get f\r\n"[..], b"READ f\r\n", b"\r\n", b"   \r\n"] {
        let parsed = parse_one(input);
        assert!(
            matches!(parsed, Err(ProtocolError::UnknownCommand(_))),
            "{input:?}: {parsed:?}"
        );
    }
}

#[test]
fn a_bare_line_feed_is_refused() {
    assert_eq!(parse_one(b"read f\n"), Err(ProtocolError::BareLineFeed));
}

#[test]
fn contents_without_their_terminator_are_refused_as_soon_as_seen() {
    let missing = Err(ProtocolError::MissingContentTerminator);
    // One byte more than announced: the terminator's first byte is wrong.
    assert_eq!(parse_one(b"write f 3\r\nabcd"), missing);
    assert_eq!(parse_one(b"write f 3\r\nabc\rx"), missing);
    assert_eq!(parse_one(b"write f 3\r\nabc\n"), missing);
    // Fewer bytes than announced followed by a command: still waiting for contents,
    // then the wrong terminator shows.
    assert_eq!(parse_one(b"write f 5\r\nab\r\n"), Ok(Parsed::Incomplete));
    assert_eq!(parse_one(b"write f 5\r\nab\r\nread f\r\n"), missing);
}

#[test]
fn limits_on_names_and_sizes_are_enforced() {
    let limits = Limits {
        file_bytes_max: 4,
        name_bytes_max: 3,
    };
    assert_eq!(
        parse_request(b"read abcd\r\n", &limits),
        Err(ProtocolError::NameTooLong { bytes: 4, max: 3 })
    );
    assert!(matches!(
        parse_request(b"read abc\r\n", &limits),
        Ok(Parsed::Complete { .. })
    ));
    // Refused at the header, before any content arrives.
    assert_eq!(
        parse_request(b"write f 5\r\n", &limits),
        Err(ProtocolError::FileTooLarge { bytes: 5, max: 4 })
    );
    assert_eq!(
        parse_request(b"cas f 1 18446744073709551615\r\n", &limits),
        Err(ProtocolError::FileTooLarge {
            bytes: u64::MAX,
            max: 4
        })
    );
    assert!(matches!(
        parse_request(b"write f 4\r\nabcd\r\n", &limits),
        Ok(Parsed::Complete { .. })
    ));
}

#[test]
fn names_with_control_characters_or_bad_utf8_are_refused() {
    assert_eq!(parse_one(b"read a\rb\r\n"), Err(ProtocolError::BadName));
    assert_eq!(parse_one(b"read a\tb\r\n"), Err(ProtocolError::BadName));
    assert_eq!(parse_one(b"read \xff\xfe\r\n"), Err(ProtocolError::BadName));
    assert_eq!(
        parse_one("read café\r\n".as_bytes()),
        complete(read("café"), 12)
    );
}

#[test]
fn a_name_split_by_a_space_is_reported_as_a_bad_name() {
    assert_eq!(
        parse_one(b"write my file 1\r\nx\r\n"),
        Err(ProtocolError::BadName)
    );
    assert_eq!(
        parse_one(b"cas my file 3 1\r\nx\r\n"),
        Err(ProtocolError::BadName)
    );
    // A count that is simply not a number is still reported as such.
    for not_a_name_with_a_space in [&b"write f x\r\n"[..], b"write f x y\r\n"] {
        assert_eq!(
            parse_one(not_a_name_with_a_space),
            Err(ProtocolError::BadNumber { field: "numbytes" })
        );
    }
}

#[test]
fn requests_encode_to_the_wire_form() {
    let encoded = |request: Request| {
        let mut out = Vec::new();
        request.encode(&mut out);
        out
    };
    assert_eq!(encoded(write("f", b"abc", 0)), b"write f 3\r\nabc\r\n");
    assert_eq!(encoded(write("f", b"abc", 9)), b"write f 3 9\r\nabc\r\n");
    assert_eq!(encoded(cas("f", 4, b"", 0)), b"cas f 4 0\r\n\r\n");
    assert_eq!(encoded(read("f")), b"read f\r\n");
    assert_eq!(encoded(delete("f")), b"delete f\r\n");
}

fn encoded_response(response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    response.encode(&mut out);
    out
}

#[test]
fn responses_encode_to_the_wire_form() {
    let cases: [(Response, &[u8]); 12] = [
        (
            Response::Written {
                version: Version(3),
            },
            b"OK 3\r\n",
        ),
        (Response::Deleted, b"OK\r\n"),
        (
            Response::Contents {
                version: Version(3),
                contents: Bytes::from_static(b"a\r\nb"),
                exptime_s: 7,
            },
            b"CONTENTS 3 4 7\r\na\r\nb\r\n",
        ),
        (Response::FileNotFound, b"ERR_FILE_NOT_FOUND\r\n"),
        (
            Response::VersionMismatch {
                current: Version(12),
            },
            b"ERR_VERSION 12\r\n",
        ),
        (Response::CommandError, b"ERR_CMD_ERR\r\n"),
        (Response::Internal, b"ERR_INTERNAL\r\n"),
        (
            Response::Redirect {
                leader: Some("127.0.0.1:9001".to_string()),
            },
            b"ERR_REDIRECT 127.0.0.1:9001\r\n",
        ),
        (Response::Redirect { leader: None }, b"ERR_REDIRECT _\r\n"),
        (
            Response::SessionOpened { id: SessionId(17) },
            b"SESSION 17\r\n",
        ),
        (Response::SessionExpired, b"ERR_SESSION_EXPIRED\r\n"),
        (
            Response::SessionStale { last: 4 },
            b"ERR_SESSION_STALE 4\r\n",
        ),
    ];
    for (response, wire) in cases {
        let out = encoded_response(&response);
        assert_eq!(out, wire, "{response:?}");
        assert_eq!(
            parse_response(&out, &LIMITS),
            Ok(Parsed::Complete {
                value: response,
                consumed: wire.len()
            })
        );
    }
}

#[test]
fn malformed_responses_are_refused() {
    assert!(parse_response(b"OK x\r\n", &LIMITS).is_err());
    assert!(parse_response(b"HELLO\r\n", &LIMITS).is_err());
    assert!(parse_response(b"CONTENTS 1 3\r\nabc\r\n", &LIMITS).is_err());
    assert_eq!(
        parse_response(b"CONTENTS 1 3 0\r\nab", &LIMITS),
        Ok(Parsed::Incomplete)
    );
    assert_eq!(
        parse_response(b"CONTENTS 1 2000 0\r\n", &LIMITS),
        Err(ProtocolError::FileTooLarge {
            bytes: 2000,
            max: 1000
        })
    );
}

fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._-]{1,20}",
        "[\\p{L}\\p{N}]{1,10}".prop_filter("within name limit", |n| n.len() <= 100),
    ]
}

fn contents_strategy() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..20),
    ]
    .prop_map(Bytes::from)
}

fn request_strategy() -> impl Strategy<Value = Request> {
    prop_oneof![
        (name_strategy(), contents_strategy(), any::<u64>()).prop_map(
            |(name, contents, exptime_s)| {
                Request::Write {
                    name,
                    contents,
                    exptime_s,
                }
            }
        ),
        (
            name_strategy(),
            any::<u64>(),
            contents_strategy(),
            any::<u64>()
        )
            .prop_map(|(name, version, contents, exptime_s)| Request::Cas {
                name,
                version: Version(version),
                contents,
                exptime_s,
            }),
        name_strategy().prop_map(|name| Request::Read { name }),
        name_strategy().prop_map(|name| Request::Delete { name }),
    ]
}

fn response_strategy() -> impl Strategy<Value = Response> {
    prop_oneof![
        any::<u64>().prop_map(|v| Response::Written {
            version: Version(v)
        }),
        Just(Response::Deleted),
        (any::<u64>(), contents_strategy(), any::<u64>()).prop_map(|(v, contents, exptime_s)| {
            Response::Contents {
                version: Version(v),
                contents,
                exptime_s,
            }
        }),
        Just(Response::FileNotFound),
        any::<u64>().prop_map(|v| Response::VersionMismatch {
            current: Version(v)
        }),
        Just(Response::CommandError),
        Just(Response::Internal),
        proptest::option::of("[a-z0-9.]{1,15}:[0-9]{1,5}")
            .prop_map(|leader| Response::Redirect { leader }),
        any::<u64>().prop_map(|id| Response::SessionOpened { id: SessionId(id) }),
        Just(Response::SessionExpired),
        any::<u64>().prop_map(|last| Response::SessionStale { last }),
    ]
}

/// Cuts `bytes` at the given points (taken modulo its length).
fn split_at_points<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

proptest! {
    #[test]
    fn requests_survive_encoding_and_any_split(
        requests in proptest::collection::vec(request_strategy(), 1..6),
        points in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        for request in &requests {
            request.encode(&mut wire);
        }
        let session = feed(&split_at_points(&wire, &points), &LIMITS);
        prop_assert_eq!(session.error, None);
        prop_assert_eq!(session.requests, requests);
    }

    #[test]
    fn responses_survive_encoding_and_any_split(
        responses in proptest::collection::vec(response_strategy(), 1..6),
        points in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        for response in &responses {
            response.encode(&mut wire);
        }
        let mut parsed = Vec::new();
        let mut buffer = Vec::new();
        for chunk in split_at_points(&wire, &points) {
            buffer.extend_from_slice(chunk);
            while let Parsed::Complete { value, consumed } = parse_response(&buffer, &LIMITS).unwrap() {
                parsed.push(value);
                buffer.drain(..consumed);
            }
        }
        prop_assert!(buffer.is_empty());
        prop_assert_eq!(parsed, responses);
    }

    #[test]
    fn garbage_never_panics_and_never_buffers_past_the_bound(
        prefix in prop_oneof![
            Just(Vec::new()),
            Just(b"write f 900\r\n".to_vec()),
            Just(b"cas f 1 3 ".to_vec()),
            Just(b"read ".to_vec()),
        ],
        garbage in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'7'), any::<u8>()],
            0..3000,
        ),
        points in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut input = prefix;
        input.extend_from_slice(&garbage);
        let session = feed(&split_at_points(&input, &points), &LIMITS);
        prop_assert!(session.buffered_bytes_max < LIMITS.request_bytes_max());
        let _ = parse_response(&input, &LIMITS);
    }

    #[test]
    fn incomplete_is_never_answered_at_the_bound(
        garbage in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        let limits = Limits { file_bytes_max: 600, name_bytes_max: 50 };
        let mut input = b"write f 600\r\n".to_vec();
        input.extend_from_slice(&garbage);
        input.resize(limits.request_bytes_max(), b'x');
        prop_assert_ne!(parse_request(&input, &limits), Ok(Parsed::Incomplete));
    }
}

#[test]
fn the_largest_request_fits_the_bound_exactly() {
    let limits = Limits {
        file_bytes_max: 10,
        name_bytes_max: 1000,
    };
    let header = format!(
        "write {} 10",
        "n".repeat(LINE_BYTES_MAX - 1 - "write  10".len())
    );
    assert_eq!(header.len(), LINE_BYTES_MAX - 1);
    let mut input = header.into_bytes();
    input.extend_from_slice(b"\r\n0123456789\r\n");
    assert_eq!(input.len(), limits.request_bytes_max());
    assert!(matches!(
        parse_request(&input, &limits),
        Ok(Parsed::Complete { consumed, .. }) if consumed == input.len()
    ));
}
