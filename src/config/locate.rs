//! Key paths ↔ places in the TOML text.
//!
//! Validation names a refused value by its key path (`upstream.node[1].url`); the parser names a problem by a
//! byte span. An administrator wants `file:line:column` for both, so this module maps a key path to the span
//! of its value in the document (or of its nearest written ancestor, when the key is absent and a default was
//! refused), and a span back to the key path that holds it.

use std::fmt;
use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// `name` in `a.name`.
    Key(String),
    /// `1` in `a[1]`.
    Index(usize),
}

/// A key path as validation writes it: `upstream.node[1].url`, `routing.ttl.bogus`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub(crate) Vec<Segment>);

impl KeyPath {
    /// Parses `a.b[2].c`. Keys are taken as written between dots (config keys hold no dots or brackets).
    pub(crate) fn parse(text: &str) -> KeyPath {
        let mut segments = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
            if !name.is_empty() {
                segments.push(Segment::Key(name.to_owned()));
            }
            while let Some((index, after)) = rest.split_once(']') {
                match index.parse() {
                    Ok(i) => segments.push(Segment::Index(i)),
                    Err(_) => segments.push(Segment::Key(index.to_owned())),
                }
                rest = after.strip_prefix('[').unwrap_or(after);
            }
        }
        KeyPath(segments)
    }

    fn child(&self, segment: Segment) -> KeyPath {
        let mut path = self.clone();
        path.0.push(segment);
        path
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// What a path leads to in a parsed document.
#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a Table),
    Item(&'a Item),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn of_item(item: &'a Item) -> Node<'a> {
        match item {
            Item::Table(t) => Node::Table(t),
            Item::Value(v) => Node::Value(v),
            other => Node::Item(other),
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Table(t) => t.span(),
            Node::Item(Item::ArrayOfTables(_)) => None,
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
        }
    }

    /// The child at `segment` and the span of its key, if it is written.
    fn child(self, segment: &Segment) -> Option<(Node<'a>, Option<Range<usize>>)> {
        match (self, segment) {
            (Node::Table(t), Segment::Key(k)) => t
                .get_key_value(k)
                .map(|(key, item)| (Node::of_item(item), key.span())),
            (Node::Value(Value::InlineTable(t)), Segment::Key(k)) => t
                .get_key_value(k)
                .map(|(key, item)| (Node::of_item(item), key.span())),
            (Node::Item(Item::ArrayOfTables(a)), Segment::Index(i)) => {
                a.get(*i).map(|t| (Node::Table(t), None))
            }
            (Node::Value(Value::Array(a)), Segment::Index(i)) => {
                a.get(*i).map(|v| (Node::Value(v), None))
            }
            _ => None,
        }
    }
}

/// The span of the value at `path` (the key's span when the value has none, e.g. a dotted table); when the
/// path is not written in the file, the span of its nearest written ancestor. `None`: nothing of it is written.
/// With `at_key`, the span of the key itself when it is written (an unknown key is the problem, not its value).
pub(crate) fn span_of(
    doc: &ImDocument<&str>,
    path: &KeyPath,
    at_key: bool,
) -> Option<Range<usize>> {
    let mut node = Node::Table(doc.as_table());
    let mut best = None;
    for segment in &path.0 {
        let Some((next, key_span)) = node.child(segment) else {
            return best;
        };
        best = match at_key {
            true => key_span.clone().or(next.span()),
            false => next.span().or(key_span.clone()),
        }
        .or(best);
        node = next;
    }
    best
}

/// The key path of the innermost key or value whose span holds `offset`.
pub(crate) fn path_at(doc: &ImDocument<&str>, offset: usize) -> Option<KeyPath> {
    let mut found = None;
    walk_table(doc.as_table(), &KeyPath::default(), offset, &mut found);
    found
}

fn holds(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn walk_table(table: &Table, path: &KeyPath, offset: usize, found: &mut Option<KeyPath>) {
    if holds(table.span(), offset) {
        *found = Some(path.clone());
    }
    for (name, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        let here = path.child(Segment::Key(name.to_owned()));
        if holds(key.span(), offset) {
            *found = Some(here.clone());
        }
        match item {
            Item::Table(t) => walk_table(t, &here, offset, found),
            Item::ArrayOfTables(a) => {
                for (i, t) in a.iter().enumerate() {
                    walk_table(t, &here.child(Segment::Index(i)), offset, found);
                }
            }
            Item::Value(v) => walk_value(v, &here, offset, found),
            Item::None => {}
        }
    }
}

fn walk_value(value: &Value, path: &KeyPath, offset: usize, found: &mut Option<KeyPath>) {
    if !holds(value.span(), offset) {
        return;
    }
    *found = Some(path.clone());
    match value {
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                walk_value(v, &path.child(Segment::Index(i)), offset, found);
            }
        }
        Value::InlineTable(t) => {
            for (name, _) in t.iter() {
                if let Some((key, item)) = t.get_key_value(name) {
                    let here = path.child(Segment::Key(name.to_owned()));
                    if holds(key.span(), offset) {
                        *found = Some(here.clone());
                    }
                    if let Item::Value(v) = item {
                        walk_value(v, &here, offset, found);
                    }
                }
            }
        }
        _ => {}
    }
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[upstream]\nconnect_timeout = \"soon\"\n\n[[upstream.node]]\nname = \"a\"\n\n[[upstream.node]]\nname = \"b\"\nurl = \"ftp://x\"\n\n[routing]\npresets = [\"oslc\", \"saml\"]\nttl = { bogus = \"1h\" }\n";

    fn place(key: &str, at_key: bool) -> Option<(usize, usize)> {
        let doc = ImDocument::parse(TEXT).unwrap();
        span_of(&doc, &KeyPath::parse(key), at_key).map(|s| line_column(TEXT, s.start))
    }

    #[test]
    fn key_paths_parse_and_print_back() {
        for text in [
            "upstream.node[1].url",
            "routing.ttl.bogus",
            "listener[0].tls.certificate[2]",
            "a[1][2]",
        ] {
            assert_eq!(KeyPath::parse(text).to_string(), text);
        }
    }

    #[test]
    fn span_of_finds_values_in_tables_arrays_of_tables_lists_and_inline_tables() {
        assert_eq!(place("upstream.connect_timeout", false), Some((2, 19)));
        assert_eq!(place("upstream.connect_timeout", true), Some((2, 1)));
        assert_eq!(place("upstream.node[1].url", false), Some((9, 7)));
        assert_eq!(place("routing.presets[1]", false), Some((12, 20)));
        assert_eq!(place("routing.ttl.bogus", true), Some((13, 9)));
    }

    #[test]
    fn span_of_an_unwritten_key_is_its_nearest_written_table() {
        assert_eq!(place("upstream.node[0].url", false), Some((4, 1)));
        assert_eq!(place("health.path", false), None);
    }

    #[test]
    fn path_at_names_the_innermost_key() {
        let doc = ImDocument::parse(TEXT).unwrap();
        let offset = TEXT.find("ftp").unwrap();
        assert_eq!(
            path_at(&doc, offset).unwrap().to_string(),
            "upstream.node[1].url"
        );
        let offset = TEXT.find("bogus").unwrap();
        assert_eq!(
            path_at(&doc, offset).unwrap().to_string(),
            "routing.ttl.bogus"
        );
        let offset = TEXT.find("saml").unwrap();
        assert_eq!(
            path_at(&doc, offset).unwrap().to_string(),
            "routing.presets[1]"
        );
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }
}
