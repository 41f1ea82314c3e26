//! A cursor over the tokens of one line, and the `key=value` arguments the
//! commands take. Every error says what was expected and quotes what was
//! found, so that a scenario author can fix the line without reading code.

use super::lex::{Token, TokenKind};
use skiff_core::{Bytes, Entry, LogIndex, Membership, NodeId, Role, SnapshotMeta, Term};
use std::collections::BTreeMap;

/// Walks the tokens of one line.
pub(crate) struct Cursor<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    position: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a str, tokens: Vec<Token>) -> Cursor<'a> {
        Cursor {
            text,
            tokens,
            position: 0,
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.position >= self.tokens.len()
    }

    fn peek_kind(&self, ahead: usize) -> Option<&TokenKind> {
        self.tokens.get(self.position + ahead).map(|t| &t.kind)
    }

    fn advance(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += usize::from(token.is_some());
        token
    }

    /// The next token as written, quoted, or "the end of the line".
    pub(crate) fn found(&self) -> String {
        match self.tokens.get(self.position) {
            Some(token) => format!("'{}'", &self.text[token.start..token.end]),
            None => "the end of the line".to_string(),
        }
    }

    /// Where the next token starts (the line's end when there is none).
    fn next_start(&self) -> usize {
        self.tokens
            .get(self.position)
            .map_or(self.text.len(), |t| t.start)
    }

    /// Where the last consumed token ends.
    fn previous_end(&self) -> usize {
        self.position
            .checked_sub(1)
            .and_then(|p| self.tokens.get(p))
            .map_or(0, |t| t.end)
    }

    /// The rest of the line from the next token on, as written.
    pub(crate) fn rest(&self) -> &'a str {
        &self.text[self.next_start()..]
    }

    /// Fails unless the line is used up.
    pub(crate) fn finish(&self, after: &str) -> Result<(), String> {
        if self.at_end() {
            Ok(())
        } else {
            Err(format!("unexpected {} after '{after}'", self.found()))
        }
    }

    pub(crate) fn punct(&mut self, expected: char, after: &str) -> Result<(), String> {
        if self.peek_kind(0) == Some(&TokenKind::Punct(expected)) {
            self.advance();
            Ok(())
        } else {
            Err(format!(
                "expected '{expected}' after '{after}', found {}",
                self.found()
            ))
        }
    }

    pub(crate) fn is_punct(&self, c: char) -> bool {
        self.peek_kind(0) == Some(&TokenKind::Punct(c))
    }

    /// A bare word, such as a command or message name.
    pub(crate) fn word(&mut self, what: &str, after: &str) -> Result<String, String> {
        if let Some(TokenKind::Word(word)) = self.peek_kind(0) {
            let word = word.clone();
            self.advance();
            Ok(word)
        } else {
            Err(format!(
                "expected {what} after '{after}', found {}",
                self.found()
            ))
        }
    }

    /// A node number, as in `on 2 timeout` or `crash 3`.
    pub(crate) fn node(&mut self, after: &str) -> Result<NodeId, String> {
        let found = self.found();
        let word = self.word("a node number", after)?;
        word.parse()
            .map(NodeId)
            .map_err(|_| format!("expected a node number after '{after}', found {found}"))
    }

    /// `key=` at the cursor: the key, with `=` consumed.
    fn key(&mut self, after: &str) -> Result<(String, usize), String> {
        let start = self.next_start();
        match (self.peek_kind(0), self.peek_kind(1)) {
            (Some(TokenKind::Word(key)), Some(TokenKind::Punct('='))) => {
                let key = key.clone();
                self.advance();
                self.advance();
                Ok((key, start))
            }
            _ => Err(format!(
                "expected key=value after '{after}', found {}",
                self.found()
            )),
        }
    }

    /// One `key=value` argument. With `bare_list`, a value may be a list
    /// without brackets (`peers=1,2,3`); inside a message, commas separate
    /// arguments, so only bracketed lists (`entries=[...]`) are lists.
    pub(crate) fn argument(&mut self, after: &str, bare_list: bool) -> Result<Arg, String> {
        let (key, start) = self.key(after)?;
        let values = self.values(&key, bare_list)?;
        let source = self.text[start..self.previous_end()].to_string();
        Ok(Arg {
            key,
            values,
            source,
        })
    }

    /// Every argument up to the end of the line.
    pub(crate) fn arguments(&mut self, command: &str) -> Result<Vec<Arg>, String> {
        let mut args: Vec<Arg> = Vec::new();
        while !self.at_end() {
            let after = args.last().map_or(command, |a| a.source.as_str());
            let arg = self.argument(after, true)?;
            args.push(arg);
        }
        Ok(args)
    }

    /// A value: empty, one atom, a bracketed list or (with `bare_list`)
    /// atoms separated by commas.
    pub(crate) fn values(&mut self, key: &str, bare_list: bool) -> Result<Vec<Atom>, String> {
        if self.is_punct('[') {
            self.advance();
            return self.bracketed(key);
        }
        let next_is_key = matches!(
            (self.peek_kind(0), self.peek_kind(1)),
            (Some(TokenKind::Word(_)), Some(TokenKind::Punct('=')))
        );
        if self.at_end() || next_is_key {
            return Ok(Vec::new());
        }
        let mut atoms = vec![self.atom(key)?];
        while bare_list && self.is_punct(',') {
            self.advance();
            atoms.push(self.atom(key)?);
        }
        Ok(atoms)
    }

    fn bracketed(&mut self, key: &str) -> Result<Vec<Atom>, String> {
        let mut atoms = Vec::new();
        if self.is_punct(']') {
            self.advance();
            return Ok(atoms);
        }
        loop {
            atoms.push(self.atom(key)?);
            if self.is_punct(']') {
                self.advance();
                return Ok(atoms);
            }
            if self.is_punct(';') {
                // Only a configuration gives it a meaning; other lists
                // refuse the atom when they interpret it.
                let start = self.next_start();
                self.advance();
                atoms.push(Atom {
                    kind: AtomKind::Semicolon,
                    source: self.text[start..self.previous_end()].to_string(),
                });
                continue;
            }
            self.punct(',', atoms.last().map_or("[", |a| a.source.as_str()))?;
        }
    }

    /// Atoms separated by commas, optionally in brackets, up to the end of
    /// the line (the list of `check-committed`).
    pub(crate) fn list(&mut self, what: &str) -> Result<Vec<Atom>, String> {
        let atoms = if self.is_punct('[') {
            self.advance();
            self.bracketed(what)?
        } else if self.at_end() {
            Vec::new()
        } else {
            let mut atoms = vec![self.atom(what)?];
            while self.is_punct(',') {
                self.advance();
                atoms.push(self.atom(what)?);
            }
            atoms
        };
        self.finish(what)?;
        Ok(atoms)
    }

    /// One list element: a word, quoted data, an entry `T:"quoted"`, or a
    /// configuration `config[1,2,3;4]` (`T:config[...]` as an entry).
    pub(crate) fn atom(&mut self, key: &str) -> Result<Atom, String> {
        let start = self.next_start();
        let kind = match self.peek_kind(0).cloned() {
            Some(TokenKind::Word(word))
                if word.ends_with(CONFIG_WORD)
                    && self.peek_kind(1) == Some(&TokenKind::Punct('[')) =>
            {
                self.advance();
                self.advance();
                let members = self.bracketed(key)?;
                let source = &self.text[start..self.previous_end()];
                let term = match &word[..word.len() - CONFIG_WORD.len()] {
                    "" => None,
                    prefix => Some(
                        prefix
                            .strip_suffix(':')
                            .ok_or_else(|| {
                                format!("expected term:config[...] for '{key}', found '{source}'")
                            })?
                            .to_string(),
                    ),
                };
                AtomKind::Config {
                    term,
                    membership: membership(&members, key, source)?,
                }
            }
            Some(TokenKind::Word(word)) => {
                self.advance();
                match (word.strip_suffix(':'), self.peek_kind(0).cloned()) {
                    (Some(term), Some(TokenKind::Quoted(data))) => {
                        self.advance();
                        AtomKind::Entry {
                            term: term.to_string(),
                            data,
                        }
                    }
                    _ => AtomKind::Word(word),
                }
            }
            Some(TokenKind::Quoted(data)) => {
                self.advance();
                AtomKind::Quoted(data)
            }
            _ => {
                return Err(format!(
                    "expected a value for '{key}', found {}",
                    self.found()
                ))
            }
        };
        Ok(Atom {
            kind,
            source: self.text[start..self.previous_end()].to_string(),
        })
    }
}

/// One `key=value` argument as written.
#[derive(Clone, Debug)]
pub(crate) struct Arg {
    pub(crate) key: String,
    pub(crate) values: Vec<Atom>,
    /// `key=value` as written, for error messages.
    pub(crate) source: String,
}

/// One element of a value.
#[derive(Clone, Debug)]
pub(crate) struct Atom {
    pub(crate) kind: AtomKind,
    pub(crate) source: String,
}

#[derive(Clone, Debug)]
pub(crate) enum AtomKind {
    Word(String),
    Quoted(Vec<u8>),
    /// A word ending in `:` directly followed by quoted data.
    Entry {
        term: String,
        data: Vec<u8>,
    },
    /// `config[...]`, or `T:config[...]` with its term: the data of a
    /// membership entry.
    Config {
        term: Option<String>,
        membership: Membership,
    },
    /// The `;` between a configuration's voters and its learners.
    Semicolon,
}

/// The word that opens a configuration written as data: `config[1,2,3;4]`.
const CONFIG_WORD: &str = "config";

/// The configuration a bracketed list of node numbers writes: the voters,
/// then, after a `;`, the learners (`[1,2,3;4]`); `source` is the text, for
/// errors.
fn membership(atoms: &[Atom], key: &str, source: &str) -> Result<Membership, String> {
    let expected = || {
        format!("expected a configuration [VOTERS;LEARNERS] such as [1,2,3;4] for '{key}', found '{source}'")
    };
    let mut parts = atoms.split(|atom| matches!(atom.kind, AtomKind::Semicolon));
    let ids = |part: Option<&[Atom]>| -> Result<Vec<NodeId>, String> {
        part.unwrap_or_default()
            .iter()
            .map(|atom| match &atom.kind {
                AtomKind::Word(word) => word.parse().map(NodeId).map_err(|_| expected()),
                _ => Err(expected()),
            })
            .collect()
    };
    let voters = ids(parts.next())?;
    let learners = ids(parts.next())?;
    if parts.next().is_some() {
        return Err(expected());
    }
    Membership::new(voters, learners).ok_or_else(|| {
        format!("'{source}' for '{key}' is no configuration: it needs a voter, and names each node once")
    })
}

/// Arguments by key, after checking that every key is allowed and given once.
pub(crate) struct Keyed {
    command: String,
    args: BTreeMap<String, Arg>,
}

impl Keyed {
    pub(crate) fn new(command: &str, args: Vec<Arg>, allowed: &[&str]) -> Result<Keyed, String> {
        let mut map = BTreeMap::new();
        for arg in args {
            if !allowed.contains(&arg.key.as_str()) {
                return Err(unknown_key(command, &arg.key, allowed));
            }
            if map.contains_key(&arg.key) {
                return Err(format!("key '{}' given twice in '{command}'", arg.key));
            }
            map.insert(arg.key.clone(), arg);
        }
        Ok(Keyed {
            command: command.to_string(),
            args: map,
        })
    }

    pub(crate) fn optional(&mut self, key: &str) -> Option<Arg> {
        self.args.remove(key)
    }

    pub(crate) fn required(&mut self, key: &str) -> Result<Arg, String> {
        self.args
            .remove(key)
            .ok_or_else(|| format!("'{}' needs {key}=...", self.command))
    }
}

pub(crate) fn unknown_key(command: &str, key: &str, allowed: &[&str]) -> String {
    format!(
        "unknown key '{key}' for '{command}' (expected one of {})",
        allowed.join(", ")
    )
}

// Interpretation of values.
impl Arg {
    fn single(&self, what: &str) -> Result<&Atom, String> {
        match self.values.as_slice() {
            [atom] => Ok(atom),
            [] => Err(format!("expected {what} for '{}', found nothing", self.key)),
            _ => Err(format!(
                "expected {what} for '{}', found a list in '{}'",
                self.key, self.source
            )),
        }
    }

    fn word(&self, what: &str) -> Result<&str, String> {
        let atom = self.single(what)?;
        match &atom.kind {
            AtomKind::Word(word) => Ok(word),
            _ => Err(format!(
                "expected {what} for '{}', found '{}'",
                self.key, atom.source
            )),
        }
    }

    pub(crate) fn number(&self) -> Result<u64, String> {
        let word = self.word("a number")?;
        word.parse()
            .map_err(|_| format!("expected a number for '{}', found '{word}'", self.key))
    }

    /// A node id or `none`.
    pub(crate) fn optional_node(&self) -> Result<Option<NodeId>, String> {
        let word = self.word("a node number or none")?;
        if word == "none" {
            return Ok(None);
        }
        word.parse().map(|id| Some(NodeId(id))).map_err(|_| {
            format!(
                "expected a node number or none for '{}', found '{word}'",
                self.key
            )
        })
    }

    /// A snapshot written `INDEX:TERM`, as `state` and `check` take it.
    pub(crate) fn snapshot(&self) -> Result<SnapshotMeta, String> {
        let atom = self.single("INDEX:TERM")?;
        let text = match &atom.kind {
            AtomKind::Word(word) => Some(word.as_str()),
            _ => None,
        };
        let parsed = text
            .and_then(|word| word.split_once(':'))
            .and_then(|(index, term)| Some((index.parse().ok()?, term.parse().ok()?)));
        match parsed {
            Some((index, term)) => Ok(SnapshotMeta {
                index: LogIndex(index),
                term: Term(term),
            }),
            None => Err(format!(
                "expected INDEX:TERM for '{}', found '{}'",
                self.key, atom.source
            )),
        }
    }

    pub(crate) fn boolean(&self) -> Result<bool, String> {
        match self.word("true or false")? {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!(
                "expected true or false for '{}', found '{other}'",
                self.key
            )),
        }
    }

    pub(crate) fn role(&self) -> Result<Role, String> {
        match self.word("a role")? {
            "follower" => Ok(Role::Follower),
            "pre-candidate" => Ok(Role::PreCandidate),
            "candidate" => Ok(Role::Candidate),
            "leader" => Ok(Role::Leader),
            other => Err(format!(
                "expected follower, pre-candidate, candidate or leader for '{}', found '{other}'",
                self.key
            )),
        }
    }

    pub(crate) fn on_off(&self) -> Result<bool, String> {
        match self.word("on or off")? {
            "on" => Ok(true),
            "off" => Ok(false),
            other => Err(format!(
                "expected on or off for '{}', found '{other}'",
                self.key
            )),
        }
    }

    pub(crate) fn nodes(&self) -> Result<Vec<NodeId>, String> {
        self.values
            .iter()
            .map(|atom| {
                match &atom.kind {
                    AtomKind::Word(word) => word.parse().map(NodeId).ok(),
                    _ => None,
                }
                .ok_or_else(|| {
                    format!(
                        "expected node numbers for '{}', found '{}'",
                        self.key, atom.source
                    )
                })
            })
            .collect()
    }

    /// A configuration, `[1,2,3]` or `[1,2,3;4]` (learners after `;`).
    pub(crate) fn membership(&self) -> Result<Membership, String> {
        membership(&self.values, &self.key, &self.source)
    }

    pub(crate) fn entries(&self) -> Result<Vec<Entry>, String> {
        self.values
            .iter()
            .map(|atom| atom.entry(&self.key))
            .collect()
    }
}

impl Atom {
    /// Entry data: a bare word or quoted data.
    pub(crate) fn data(&self, after: &str) -> Result<Bytes, String> {
        match &self.kind {
            AtomKind::Word(word) => Ok(Bytes::from(word.clone().into_bytes())),
            AtomKind::Quoted(data) => Ok(Bytes::from(data.clone())),
            AtomKind::Config {
                term: None,
                membership,
            } => Ok(membership.encode()),
            AtomKind::Entry { .. } | AtomKind::Config { .. } | AtomKind::Semicolon => Err(format!(
                "expected data after '{after}', found '{}' (quote data that holds a '\"')",
                self.source
            )),
        }
    }

    /// An entry written `T:DATA`.
    fn entry(&self, key: &str) -> Result<Entry, String> {
        let (term, data) = match &self.kind {
            AtomKind::Entry { term, data } => (term.as_str(), data.clone()),
            AtomKind::Word(word) => match word.split_once(':') {
                Some((_, "")) => {
                    return Err(format!(
                        "expected term:data for '{key}', found '{}' (write \"\" for empty data)",
                        self.source
                    ))
                }
                Some((term, data)) => (term, data.as_bytes().to_vec()),
                None => return Err(self.not_an_entry(key)),
            },
            AtomKind::Config {
                term: Some(term),
                membership,
            } => {
                let term = term.parse().map_err(|_| self.not_an_entry(key))?;
                return Ok(Entry::membership(Term(term), membership));
            }
            AtomKind::Quoted(_) | AtomKind::Config { term: None, .. } | AtomKind::Semicolon => {
                return Err(self.not_an_entry(key))
            }
        };
        let term = term.parse().map_err(|_| self.not_an_entry(key))?;
        Ok(Entry::new(Term(term), data))
    }

    fn not_an_entry(&self, key: &str) -> String {
        format!("expected term:data for '{key}', found '{}'", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::lex::tokenize;

    fn arguments(line: &str) -> Result<Vec<Arg>, String> {
        let tokens = tokenize(line)?;
        Cursor::new(line, tokens).arguments("cmd")
    }

    #[test]
    fn arguments_take_lists_entries_and_empty_values() {
        let args = arguments("peers=1, 2,3 log=1:a,2:\"b c\" commit= x=[]").unwrap();
        let keys: Vec<&str> = args.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["peers", "log", "commit", "x"]);
        assert_eq!(args[0].nodes().unwrap(), [NodeId(1), NodeId(2), NodeId(3)]);
        assert_eq!(
            args[1].entries().unwrap(),
            [Entry::new(Term(1), "a"), Entry::new(Term(2), "b c")]
        );
        assert!(args[2].values.is_empty());
        assert!(args[3].values.is_empty());
        assert_eq!(args[1].source, "log=1:a,2:\"b c\"");
    }

    #[test]
    fn configurations_are_lists_or_data() {
        let args = arguments("config=[1, 2 ;3] log=1:a,2:config[1,2;3] data=config[2]").unwrap();
        let config = Membership::new([NodeId(1), NodeId(2)], [NodeId(3)]).unwrap();
        assert_eq!(args[0].membership().unwrap(), config);
        assert_eq!(
            args[1].entries().unwrap(),
            [
                Entry::new(Term(1), "a"),
                Entry::membership(Term(2), &config)
            ]
        );
        assert_eq!(args[1].source, "log=1:a,2:config[1,2;3]");
        let voter = Membership::new([NodeId(2)], []).unwrap();
        assert_eq!(args[2].values[0].data("data").unwrap(), voter.encode());
        assert!(arguments("peers=[1;2]").unwrap()[0]
            .nodes()
            .unwrap_err()
            .contains("found ';'"));
    }

    #[test]
    fn errors_quote_what_was_found() {
        assert_eq!(
            arguments("id=1 peers").unwrap_err(),
            "expected key=value after 'id=1', found 'peers'"
        );
        let args = arguments("term=x peers=1,a log=1 voted=[1").unwrap_err();
        assert_eq!(args, "expected ',' after '1', found the end of the line");
        let args = arguments("term=x peers=1,a log=1,2: role=boss").unwrap();
        assert_eq!(
            args[0].number().unwrap_err(),
            "expected a number for 'term', found 'x'"
        );
        assert_eq!(
            args[1].nodes().unwrap_err(),
            "expected node numbers for 'peers', found 'a'"
        );
        assert_eq!(
            args[2].entries().unwrap_err(),
            "expected term:data for 'log', found '1'"
        );
        assert!(arguments("log=1,2:").unwrap()[0].entries().is_err());
        assert!(args[3].role().unwrap_err().contains("found 'boss'"));
    }

    #[test]
    fn keys_are_checked() {
        let args = arguments("id=1 id=2").unwrap();
        assert_eq!(
            Keyed::new("node", args, &["id"]).err().unwrap(),
            "key 'id' given twice in 'node'"
        );
        let args = arguments("idd=1").unwrap();
        assert!(Keyed::new("node", args, &["id", "peers"])
            .err()
            .unwrap()
            .contains("unknown key 'idd' for 'node' (expected one of id, peers)"));
        let mut keyed = Keyed::new("node", Vec::new(), &["id"]).unwrap();
        assert_eq!(keyed.required("id").unwrap_err(), "'node' needs id=...");
    }
}
