//! The README's list of the protocol's limits and rules says what the parser
//! does: each number is the parser's own, and each rule holds at its edge.

use skiff_fs::protocol::{parse_request, Parsed, LINE_BYTES_MAX};
use skiff_fs::Limits;
use std::path::Path;

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `1000000` as the README writes it: `1,000,000`.
fn with_commas(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn accepted(request: &[u8]) -> bool {
    matches!(
        parse_request(request, &Limits::default()),
        Ok(Parsed::Complete { .. })
    )
}

#[test]
fn the_readme_states_the_parsers_numbers() {
    let text = readme();
    let limits = Limits::default();
    for stated in [
        format!("under **{LINE_BYTES_MAX} bytes**"),
        format!("1 to **{} bytes**", limits.name_bytes_max),
        format!("0 to **{} bytes**", with_commas(limits.file_bytes_max)),
    ] {
        assert!(text.contains(&stated), "README does not say {stated:?}");
    }
}

#[test]
fn each_rule_holds_at_its_edge() {
    let limits = Limits::default();
    let longest = "n".repeat(limits.name_bytes_max);
    let too_long = "n".repeat(limits.name_bytes_max + 1);
    assert!(accepted(format!("write {longest} 1\r\na\r\n").as_bytes()));
    assert!(!accepted(format!("write {too_long} 1\r\na\r\n").as_bytes()));

    assert!(accepted(b"write f 1 5\r\na\r\n"));
    assert!(
        accepted(b"write  f   1 5\r\na\r\n"),
        "runs of spaces count as one"
    );
    assert!(!accepted(b"write f 1 -5\r\na\r\n"), "negative exptime");
    assert!(!accepted(b"write f 1\na\r\n"), "bare line feed");
    assert!(!accepted(b"write f 2\r\na\r\n\r\n"), "numbytes must match");

    let contents = vec![b'x'; limits.file_bytes_max];
    let mut largest = format!("write f {}\r\n", contents.len()).into_bytes();
    largest.extend_from_slice(&contents);
    largest.extend_from_slice(b"\r\n");
    assert!(accepted(&largest));
    let over = format!("write f {}\r\n", limits.file_bytes_max + 1);
    assert!(parse_request(over.as_bytes(), &limits).is_err());

    let padding = " ".repeat(LINE_BYTES_MAX);
    assert!(parse_request(format!("read f{padding}\r\n").as_bytes(), &limits).is_err());
}

#[test]
fn the_readme_gives_each_client_limit_with_its_default() {
    let readme = readme();
    let defaults = [
        (
            "clients_max",
            skiff_node::config::CLIENTS_MAX_DEFAULT as u64,
        ),
        (
            "client_idle_timeout_ms",
            skiff_node::config::CLIENT_IDLE_TIMEOUT_MS_DEFAULT,
        ),
        (
            "client_read_timeout_ms",
            skiff_node::config::CLIENT_READ_TIMEOUT_MS_DEFAULT,
        ),
        (
            "client_pending_bytes_max",
            skiff_node::config::CLIENT_PENDING_BYTES_MAX_DEFAULT as u64,
        ),
    ];
    for (key, default) in defaults {
        let entry = format!("`{key}` (default **{}**", with_commas(default as usize));
        assert!(readme.contains(&entry), "the README lacks {entry}");
    }
}
