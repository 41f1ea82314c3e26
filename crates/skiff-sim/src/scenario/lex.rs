//! Splits one scenario line into tokens: bare words, quoted data and the
//! punctuation `, ( ) [ ] = ;` (`;` parts a configuration's voters from
//! its learners, `[1,2,3;4]`). Whitespace only separates words, so whitespace
//! around punctuation is insignificant, as the format says.

/// The characters that are tokens of their own.
pub(crate) const PUNCTUATION: &[char] = &[',', '(', ')', '[', ']', '=', ';'];

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A run of characters that are neither whitespace, punctuation nor `"`.
    Word(String),
    /// Double-quoted data, escapes decoded.
    Quoted(Vec<u8>),
    /// One of [`PUNCTUATION`].
    Punct(char),
}

/// One token and where it sits in its line (byte offsets), so that errors can
/// quote the text as written and patterns can take the rest of the line.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// The line without its comment: `#` outside quotes starts a comment.
pub(crate) fn strip_comment(line: &str) -> &str {
    let mut in_quotes = false;
    let mut escaped = false;
    for (position, c) in line.char_indices() {
        if in_quotes {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_quotes = false,
                _ => {}
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == '#' {
            return &line[..position];
        }
    }
    line
}

/// Splits `line` (already without its comment) into tokens.
pub(crate) fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if PUNCTUATION.contains(&c) {
            chars.next();
            tokens.push(Token {
                kind: TokenKind::Punct(c),
                start,
                end: start + c.len_utf8(),
            });
        } else if c == '"' {
            let (data, end) = decode_quoted(line, start)?;
            while chars.peek().is_some_and(|(position, _)| *position < end) {
                chars.next();
            }
            tokens.push(Token {
                kind: TokenKind::Quoted(data),
                start,
                end,
            });
        } else {
            let mut end = start;
            while let Some(&(position, c)) = chars.peek() {
                if c.is_whitespace() || c == '"' || PUNCTUATION.contains(&c) {
                    break;
                }
                end = position + c.len_utf8();
                chars.next();
            }
            tokens.push(Token {
                kind: TokenKind::Word(line[start..end].to_string()),
                start,
                end,
            });
        }
    }
    Ok(tokens)
}

/// Decodes the quoted string that opens at byte `start` of `text` (which
/// holds `"`). Returns the bytes and the offset just past the closing quote.
///
/// Escapes: `\"`, `\\` (what the format requires), `\xNN` (what
/// `skiff_core::render::DataText` writes for other bytes), and `\n`, `\r`,
/// `\t` for convenience.
pub(crate) fn decode_quoted(text: &str, start: usize) -> Result<(Vec<u8>, usize), String> {
    debug_assert_eq!(text.as_bytes().get(start), Some(&b'"'));
    let bytes = text.as_bytes();
    let mut data = Vec::new();
    let mut position = start + 1;
    while let Some(&byte) = bytes.get(position) {
        match byte {
            b'"' => return Ok((data, position + 1)),
            b'\\' => {
                let (decoded, length) = decode_escape(&bytes[position..])?;
                data.push(decoded);
                position += length;
            }
            _ => {
                data.push(byte);
                position += 1;
            }
        }
    }
    Err(format!(
        "unterminated quoted data {} (missing the closing '\"')",
        &text[start..]
    ))
}

/// Decodes the escape at the start of `bytes` (which holds `\`), returning
/// the byte and how many input bytes the escape took.
fn decode_escape(bytes: &[u8]) -> Result<(u8, usize), String> {
    match bytes.get(1) {
        Some(b'"') => Ok((b'"', 2)),
        Some(b'\\') => Ok((b'\\', 2)),
        Some(b'n') => Ok((b'\n', 2)),
        Some(b'r') => Ok((b'\r', 2)),
        Some(b't') => Ok((b'\t', 2)),
        Some(b'x') => {
            let digits = bytes.get(2..4).and_then(|d| std::str::from_utf8(d).ok());
            match digits.and_then(|d| u8::from_str_radix(d, 16).ok()) {
                Some(value) => Ok((value, 4)),
                None => Err("expected two hex digits after '\\x' in quoted data".to_string()),
            }
        }
        Some(other) => Err(format!(
            "unknown escape '\\{}' in quoted data (use \\\", \\\\ or \\xNN)",
            char::from(*other)
        )),
        None => Err("quoted data ends with a lone '\\'".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(line: &str) -> Vec<TokenKind> {
        tokenize(line)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn word(text: &str) -> TokenKind {
        TokenKind::Word(text.to_string())
    }

    #[test]
    fn comments_end_at_hash_outside_quotes() {
        assert_eq!(strip_comment("append x # note"), "append x ");
        assert_eq!(strip_comment("append \"a#b\" # c"), "append \"a#b\" ");
        assert_eq!(strip_comment("append \"a\\\"#\" #"), "append \"a\\\"#\" ");
        assert_eq!(strip_comment("# all comment"), "");
    }

    #[test]
    fn whitespace_around_punctuation_does_not_matter() {
        let tight = kinds("recv from=2 VoteResp(term=4,granted=true)");
        let loose = kinds("recv from = 2 VoteResp ( term = 4 , granted = true ) ");
        assert_eq!(tight, loose);
        assert_eq!(tight[0], word("recv"));
        assert_eq!(tight[2], TokenKind::Punct('='));
    }

    #[test]
    fn quoted_data_decodes_escapes() {
        assert_eq!(
            kinds(r#"append "a \"b\" \\ \x0a\xFF""#),
            vec![
                word("append"),
                TokenKind::Quoted(b"a \"b\" \\ \n\xff".to_vec())
            ]
        );
        assert_eq!(
            kinds(r#"log=1:"x y",2:z"#),
            vec![
                word("log"),
                TokenKind::Punct('='),
                word("1:"),
                TokenKind::Quoted(b"x y".to_vec()),
                TokenKind::Punct(','),
                word("2:z"),
            ]
        );
    }

    #[test]
    fn bad_quotes_are_errors() {
        assert!(tokenize("append \"abc")
            .unwrap_err()
            .contains("unterminated"));
        assert!(tokenize(r#"append "\q""#)
            .unwrap_err()
            .contains("unknown escape '\\q'"));
        assert!(tokenize(r#"append "\x4""#)
            .unwrap_err()
            .contains("hex digits"));
        assert!(tokenize(r#"append "\"#).is_err());
    }

    #[test]
    fn tokens_know_where_they_are() {
        let line = "expect 2 Alarm(*)";
        let tokens = tokenize(line).unwrap();
        assert_eq!(&line[tokens[1].start..tokens[1].end], "2");
        assert_eq!(&line[tokens[2].start..], "Alarm(*)");
    }
}
