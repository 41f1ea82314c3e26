//! Patterns over rendered actions: `*` matches any run of characters, and
//! whitespace around `, ( ) [ ] =` does not count.
//!
//! Both sides are normalized before they are compared: insignificant
//! whitespace goes, other runs of whitespace outside quotes become one space.
//! In a pattern, quoted data without a `*` is also rewritten the way the
//! machine renders data, so `data="abc"` matches the rendering `data=abc`.

use super::lex::{decode_quoted, PUNCTUATION};
use skiff_core::render::DataText;

/// Names a pattern may use before `(`: the actions, the messages, and
/// `NotLeader`. A name outside this list is a typo that would make an
/// `expect-none` pass whatever the machine does.
const CALL_NAMES: &[&str] = &[
    "Send",
    "Commit",
    "Alarm",
    "LogStore",
    "LogTruncate",
    "StateStore",
    "Rejected",
    "LogCompact",
    "SnapshotInstall",
    "SteppedDown",
    "ReadReady",
    "ReadFailed",
    "TransferEnded",
    "AppendEntriesReq",
    "AppendEntriesResp",
    "VoteReq",
    "VoteResp",
    "PreVoteReq",
    "PreVoteResp",
    "InstallSnapshotReq",
    "InstallSnapshotResp",
    "ReadIndexReq",
    "ReadIndexResp",
    "TimeoutNow",
    "NotLeader",
    "TransferInProgress",
    "InProgress",
    "MembershipChangeEnded",
    "add-learner",
    "promote",
    "remove",
];

/// The actions: a pattern must start with one of these (or with `*`).
const ACTION_NAMES: &[&str] = &[
    "Send",
    "Commit",
    "Alarm",
    "LogStore",
    "LogTruncate",
    "StateStore",
    "Rejected",
    "LogCompact",
    "SnapshotInstall",
    "SteppedDown",
    "ReadReady",
    "ReadFailed",
    "TransferEnded",
    "MembershipChangeEnded",
];

/// Names a pattern may use before `=`.
const FIELD_NAMES: &[&str] = &[
    "to",
    "index",
    "data",
    "err",
    "leader",
    "ms",
    "term",
    "voted_for",
    "from",
    "prev_index",
    "prev_term",
    "entries",
    "commit",
    "success",
    "candidate",
    "last_index",
    "last_term",
    "granted",
    "reason",
    "through",
    "round",
    "request",
    "id",
    "transfer",
    "config",
    "epoch",
    "change",
];

/// A pattern from an `expect` or `expect-none` line, ready to match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// As written in the scenario.
    pub(crate) source: String,
    /// Normalized, as compared.
    normalized: String,
}

impl Pattern {
    /// Parses a pattern, refusing names no action rendering contains.
    pub(crate) fn new(source: &str) -> Result<Pattern, String> {
        let normalized = normalize(source, true);
        if normalized.is_empty() {
            return Err("expected a pattern such as 'Alarm(*)'".to_string());
        }
        check_names(&normalized)?;
        Ok(Pattern {
            source: source.trim().to_string(),
            normalized,
        })
    }

    /// Whether `rendering` (an action's `Display` output) matches.
    pub(crate) fn matches(&self, rendering: &str) -> bool {
        glob_match(&self.normalized, &normalize(rendering, false))
    }
}

/// Drops whitespace around punctuation and collapses other whitespace runs
/// outside quotes to one space. With `canonical_data`, quoted data holding
/// no `*` is re-rendered as the machine renders it.
pub(crate) fn normalize(text: &str, canonical_data: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    let mut position = 0;
    while let Some(c) = text[position..].chars().next() {
        if c.is_whitespace() {
            pending_space = true;
            position += c.len_utf8();
            continue;
        }
        let touches_punctuation =
            PUNCTUATION.contains(&c) || out.ends_with(|p: char| PUNCTUATION.contains(&p));
        if pending_space && !out.is_empty() && !touches_punctuation {
            out.push(' ');
        }
        pending_space = false;
        if c == '"' {
            position = push_quoted(text, position, canonical_data, &mut out);
        } else {
            out.push(c);
            position += c.len_utf8();
        }
    }
    out
}

/// Copies the quoted string opening at `start` into `out` and returns the
/// offset after it. An unterminated or undecodable string is copied as is:
/// it then simply fails to match.
fn push_quoted(text: &str, start: usize, canonical_data: bool, out: &mut String) -> usize {
    match decode_quoted(text, start) {
        Ok((data, end)) => {
            let raw = &text[start..end];
            if canonical_data && !raw.contains('*') {
                out.push_str(&DataText(&data).to_string());
            } else {
                out.push_str(raw);
            }
            end
        }
        Err(_) => {
            out.push_str(&text[start..]);
            text.len()
        }
    }
}

/// Whether `pattern` matches all of `text`, `*` matching any run of
/// characters (the empty run too). Linear backtracking: on a mismatch, the
/// last `*` takes one more character.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was and the text position it currently absorbs up to.
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        if pattern.get(p) == Some(&b'*') {
            last_star = Some((p, t));
            p += 1;
        } else if pattern.get(p) == Some(&text[t]) {
            p += 1;
            t += 1;
        } else if let Some((star, absorbed)) = last_star {
            last_star = Some((star, absorbed + 1));
            p = star + 1;
            t = absorbed + 1;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

/// Refuses a pattern that does not start with an action name or `*`, and
/// names before `(` or `=` (outside quotes) that no rendering contains.
fn check_names(normalized: &str) -> Result<(), String> {
    let head: String = normalized
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let head_touches_star = normalized[head.len()..].starts_with('*');
    if !head.is_empty() && !head_touches_star && !ACTION_NAMES.contains(&head.as_str()) {
        return Err(format!(
            "unknown action '{head}' in pattern (expected one of {})",
            ACTION_NAMES.join(", ")
        ));
    }
    for (name, next) in names_outside_quotes(normalized) {
        let (known, what) = if next == '(' {
            (CALL_NAMES, "name")
        } else {
            (FIELD_NAMES, "field")
        };
        if !known.contains(&name) {
            return Err(format!(
                "unknown {what} '{name}' in pattern (expected one of {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

/// Every identifier outside quotes that is directly followed by `(` or `=`
/// and does not touch a `*`, with the character that follows it.
fn names_outside_quotes(text: &str) -> Vec<(&str, char)> {
    let bytes = text.as_bytes();
    let mut names = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let byte = bytes[position];
        if byte == b'"' {
            position = decode_quoted(text, position).map_or(bytes.len(), |(_, end)| end);
            continue;
        }
        if !is_identifier_byte(byte) {
            position += 1;
            continue;
        }
        let start = position;
        while position < bytes.len() && is_identifier_byte(bytes[position]) {
            position += 1;
        }
        let after_star = start > 0 && bytes[start - 1] == b'*';
        match bytes.get(position) {
            Some(&next @ (b'(' | b'=')) if !after_star => {
                names.push((&text[start..position], char::from(next)));
            }
            _ => {}
        }
    }
    names
}

/// Letters, digits, `_`, and `-` for the changes' names (`add-learner(4)`).
fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious exponential matcher, to hold the clever one to account.
    fn naive_match(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len()).any(|skip| naive_match(rest, &text[skip..])),
            Some((byte, rest)) => text.first() == Some(byte) && naive_match(rest, &text[1..]),
        }
    }

    #[test]
    fn glob_table() {
        let cases = [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything", true),
            ("a*", "a", true),
            ("a*", "ba", false),
            ("*a", "ba", true),
            ("*a", "ab", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "abcabc", true),
            ("a*b*c", "acb", false),
            ("**", "x", true),
            ("Alarm(*)", "Alarm(ms=150)", true),
            ("Alarm(*)", "Alarm(ms=150)x", false),
            (
                "Send(to=*,VoteReq(term=2,*))",
                "Send(to=3,VoteReq(term=2,candidate=1,last_index=0,last_term=0))",
                true,
            ),
            (
                "Send(to=*,VoteReq(term=2,*))",
                "Send(to=3,VoteReq(term=3,candidate=1,last_index=0,last_term=0))",
                false,
            ),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                glob_match(pattern, text),
                expected,
                "{pattern:?} vs {text:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_naive(pattern in "[ab*]{0,8}", text in "[ab]{0,10}") {
            prop_assert_eq!(
                glob_match(&pattern, &text),
                naive_match(pattern.as_bytes(), text.as_bytes())
            );
        }

        #[test]
        fn a_text_matches_itself_and_star(text in "[a-z(),=\\[\\]]{0,20}") {
            prop_assert!(glob_match(&text, &text));
            prop_assert!(glob_match("*", &text));
        }
    }

    #[test]
    fn normalizing_removes_only_insignificant_whitespace() {
        assert_eq!(
            normalize(
                " Send ( to = 2 , VoteResp( term=4,  granted=true ) ) ",
                false
            ),
            "Send(to=2,VoteResp(term=4,granted=true))"
        );
        assert_eq!(normalize("Alarm(ms=1  50)", false), "Alarm(ms=1 50)");
        assert_eq!(
            normalize("Commit(index=1, data=\"a  b\")", false),
            "Commit(index=1,data=\"a  b\")"
        );
    }

    #[test]
    fn quoted_pattern_data_is_rendered_like_the_machine() {
        assert_eq!(normalize("data=\"abc\"", true), "data=abc");
        assert_eq!(normalize("data=\"\\x41 \\n\"", true), "data=\"A \\x0a\"");
        assert_eq!(normalize("data=\"a *\"", true), "data=\"a *\"");
        assert_eq!(normalize("data=\"abc\"", false), "data=\"abc\"");
    }

    #[test]
    fn patterns_match_renderings() {
        let pattern = Pattern::new("Send(to=*, VoteReq(term=2, *))").unwrap();
        assert!(
            pattern.matches("Send(to=3, VoteReq(term=2, candidate=1, last_index=0, last_term=0))")
        );
        assert!(!pattern.matches("Send(to=3, VoteResp(term=2, granted=true))"));
        let quoted = Pattern::new("Commit(index=2, data=\"x\")").unwrap();
        assert!(quoted.matches("Commit(index=2, data=x)"));
        let empty = Pattern::new("LogStore(index=1, term=2, data=\"\")").unwrap();
        assert!(empty.matches("LogStore(index=1, term=2, data=\"\")"));
        assert!(!empty.matches("LogStore(index=1, term=2, data=x)"));
        let config = Pattern::new("LogStore(index=4, term=2, data=config[1,2 ; 3])").unwrap();
        assert!(config.matches("LogStore(index=4, term=2, data=config[1,2;3])"));
        assert!(!config.matches("LogStore(index=4, term=2, data=config[1,2,3])"));
    }

    #[test]
    fn typos_in_patterns_are_refused() {
        let refused = [
            ("Sned(to=2, *)", "unknown action 'Sned'"),
            ("StateStore(trem=2, *)", "unknown field 'trem'"),
            ("Send(to=2, VoteRsp(*))", "unknown name 'VoteRsp'"),
            ("alarm", "unknown action 'alarm'"),
            (
                "MembershipChangeEnded(change=demote(4), *)",
                "unknown name 'demote'",
            ),
            ("LogCompact(through=3, cnfig=[1])", "unknown field 'cnfig'"),
            ("   ", "expected a pattern"),
        ];
        for (source, reason) in refused {
            let error = Pattern::new(source).unwrap_err();
            assert!(error.contains(reason), "{source}: {error}");
        }
        for accepted in [
            "*",
            "*Store(*)",
            "Send(to=2, *Req(*))",
            "Commit(index=none, data=\"a=b(\", err=NotLeader(leader=none))",
            "Log*(index=3, *)",
            "MembershipChangeEnded(change=add-learner(4), index=5)",
            "MembershipChangeEnded(change=remove(1), err=NotLeader(leader=2))",
            "MembershipChangeEnded(change=promote(4), *)",
            "Send(to=2, AppendEntriesReq(*, epoch=5))",
            "LogCompact(through=3, config=[1,2;3])",
            "Commit(index=4, data=config[1,2;3])",
        ] {
            assert!(Pattern::new(accepted).is_ok(), "{accepted}");
        }
    }
}
