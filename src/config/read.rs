//! Reading the TOML text into [`FileConfig`] while collecting *every* unknown key and wrong type.
//!
//! serde stops at the first problem. To report them all in one run, the reader records the problem, takes the
//! offending key out of (a copy of) the document — so its default applies — and deserializes again, until the
//! file structs build. A missing required key is filled with an empty string instead, and every later
//! complaint about that placeholder is dropped. The file structs stay the one schema: nothing here lists keys.
//!
//! serde's messages speak Rust (`invalid type: integer `30`, expected a string`); [`humanize`] turns them into
//! the words of the file (`expected a duration like "2s", found the number 30`).

use toml_edit::{DocumentMut, ImDocument, Item, TableLike, Value};

use super::file::FileConfig;
use super::locate::{path_at, KeyPath, Segment};

/// A problem found while reading, before any value is validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadProblem {
    /// Where: the key path.
    pub(crate) key: KeyPath,
    /// Whether to point at the key itself (an unknown key) rather than its value.
    pub(crate) at_key: bool,
    /// What is wrong, in the file's words.
    pub(crate) message: String,
}

/// What the reader got: the file structs (unless a problem could not be worked around), every problem, and
/// the placeholders it filled in (their validation errors are noise).
#[derive(Debug, Default)]
pub(crate) struct ReadOutcome {
    pub(crate) file: Option<FileConfig>,
    pub(crate) problems: Vec<ReadProblem>,
    pub(crate) placeholders: Vec<KeyPath>,
}

/// Each round fixes one problem; a file with more than this many is reported as far as it got.
const MAX_ROUNDS: usize = 100;

/// Reads `text`, which must already parse as TOML.
pub(crate) fn read(text: &str) -> ReadOutcome {
    let mut out = ReadOutcome::default();
    let mut work = text.to_owned();
    for _ in 0..MAX_ROUNDS {
        let error = match toml::from_str::<FileConfig>(&work) {
            Ok(file) => {
                out.file = Some(file);
                return out;
            }
            Err(e) => e,
        };
        let (Ok(doc), Ok(mut edit)) = (
            ImDocument::parse(work.as_str()),
            work.parse::<DocumentMut>(),
        ) else {
            return out;
        };
        let path = error
            .span()
            .and_then(|span| path_at(&doc, span.start))
            .unwrap_or_default();
        let (problem, fix) = humanize(error.message(), path);
        let repeated = out.problems.contains(&problem);
        out.problems.push(problem);
        let fixed = !repeated
            && match &fix {
                Fix::Remove(path) => remove(&mut edit, path),
                Fix::Fill(path) => {
                    out.placeholders.push(path.clone());
                    fill(&mut edit, path)
                }
                Fix::None => false,
            };
        if !fixed {
            return out;
        }
        work = edit.to_string();
    }
    out
}

/// How to get past a problem.
#[derive(Debug, PartialEq, Eq)]
enum Fix {
    /// Take the key out; its default applies.
    Remove(KeyPath),
    /// Add the missing key with an empty string.
    Fill(KeyPath),
    /// Nothing sensible: stop reading.
    None,
}

/// Turns serde's message about the value at `path` into words about the file, and says how to carry on.
fn humanize(message: &str, path: KeyPath) -> (ReadProblem, Fix) {
    let problem = |key: KeyPath, at_key: bool, message: String| ReadProblem {
        key,
        at_key,
        message,
    };
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, expected) = rest.split_once(", ").unwrap_or((rest, ""));
        let field = field.trim_matches('`');
        let known: Vec<&str> = expected
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|k| !k.is_empty())
            .collect();
        let text = match closest(field, &known) {
            Some(k) => format!("unknown key; did you mean \"{k}\"?"),
            None if known.is_empty() => "unknown key; this table takes no keys".to_owned(),
            None => format!("unknown key; expected one of {}", known.join(", ")),
        };
        return (problem(path.clone(), true, text), Fix::Remove(path));
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let field = rest.trim().trim_matches('`');
        let mut key = path.clone();
        key.0.push(Segment::Key(field.to_owned()));
        let text = "required, but missing".to_owned();
        return (problem(key.clone(), false, text), Fix::Fill(key));
    }
    let wrong = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    if let Some(rest) = wrong {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let text = format!(
            "expected {}, found {}",
            expected_words(&path, expected),
            found_words(found)
        );
        return (problem(path.clone(), false, text), remove_fix(path));
    }
    if path.0.is_empty() {
        return (problem(path, false, message.to_owned()), Fix::None);
    }
    (
        problem(path.clone(), false, message.to_owned()),
        remove_fix(path),
    )
}

/// A wrong element of an inline list is fixed by dropping the whole list (indices must not shift).
fn remove_fix(mut path: KeyPath) -> Fix {
    while matches!(path.0.last(), Some(Segment::Index(_))) {
        path.0.pop();
    }
    if path.0.is_empty() {
        Fix::None
    } else {
        Fix::Remove(path)
    }
}

/// What kind of value a key takes when the file structs hold it as a string to be parsed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Duration,
    Size,
}

/// Keys whose values are durations or sizes, indices left out (`upstream.node.weight`), `*` for any name.
/// `unit_keys_match_the_shipped_config` keeps this list and `config.toml` in step.
const UNIT_KEYS: &[(&str, Unit)] = &[
    ("runtime.drain_timeout", Unit::Duration),
    ("limits.header_read_timeout", Unit::Duration),
    ("limits.body_idle_timeout", Unit::Duration),
    ("limits.response_header_timeout", Unit::Duration),
    ("limits.tunnel_idle_timeout", Unit::Duration),
    ("limits.max_header_bytes", Unit::Size),
    ("limits.max_request_target", Unit::Size),
    ("upstream.connect_timeout", Unit::Duration),
    ("upstream.pool_idle_timeout", Unit::Duration),
    ("health.interval", Unit::Duration),
    ("health.timeout", Unit::Duration),
    ("routing.max_body", Unit::Size),
    ("routing.ttl.*", Unit::Duration),
    ("affinity.snapshot_interval", Unit::Duration),
    ("affinity.sweep_interval", Unit::Duration),
    ("affinity.journal_fsync_interval", Unit::Duration),
    ("affinity.redis.connect_timeout", Unit::Duration),
    ("affinity.redis.command_timeout", Unit::Duration),
    ("refresh.timeout", Unit::Duration),
    ("refresh.fanout_deadline", Unit::Duration),
    ("refresh.backoff", Unit::Duration),
    ("refresh.interval", Unit::Duration),
];

/// The unit of the key at `path`, if it takes one.
pub(crate) fn unit_of(path: &KeyPath) -> Option<Unit> {
    let names: Vec<&str> = path
        .0
        .iter()
        .filter_map(|s| match s {
            Segment::Key(k) => Some(k.as_str()),
            Segment::Index(_) => None,
        })
        .collect();
    let plain = names.join(".");
    UNIT_KEYS.iter().find_map(|(pattern, unit)| {
        let hit = match pattern.strip_suffix(".*") {
            Some(prefix) => names.len() > 1 && names[..names.len() - 1].join(".") == prefix,
            None => plain == *pattern,
        };
        hit.then_some(*unit)
    })
}

fn expected_words(path: &KeyPath, expected: &str) -> String {
    match unit_of(path) {
        Some(Unit::Duration) => return "a duration like \"2s\"".into(),
        Some(Unit::Size) => return "a size like \"64KiB\"".into(),
        None => {}
    }
    let whole = |max: &str| format!("a whole number from 0 to {max}");
    match expected {
        "a string" => "a string in quotes".into(),
        "a boolean" => "true or false".into(),
        "u8" => whole("255"),
        "u16" => whole("65535"),
        "u32" => whole("4294967295"),
        "u64" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "a list like [\"a\", \"b\"]".into(),
        "a map" => "a table".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other if other.starts_with("a sequence") => "a list".into(),
        other => other.to_owned(),
    }
}

fn found_words(found: &str) -> String {
    let between = |s: &str| s.trim_matches('`').to_owned();
    if let Some(n) = found.strip_prefix("integer ") {
        return format!("the number {}", between(n));
    }
    if let Some(n) = found.strip_prefix("floating point ") {
        return format!("the number {}", between(n));
    }
    if let Some(b) = found.strip_prefix("boolean ") {
        return between(b);
    }
    if let Some(s) = found.strip_prefix("string ") {
        return format!("the string {s}");
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a table".into(),
        other => other.to_owned(),
    }
}

/// The known key nearest to `field`, if it is a likely typo (edit distance at most 2, or a case slip).
fn closest<'a>(field: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(&field.to_ascii_lowercase(), k), *k))
        .filter(|(d, k)| *d <= 2.min(k.len() / 2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Runs `f` on the table-like node at `path` in the document.
fn in_item(
    item: &mut Item,
    path: &[Segment],
    f: &mut dyn FnMut(&mut dyn TableLike) -> bool,
) -> bool {
    match (item, path.split_first()) {
        (Item::ArrayOfTables(a), Some((Segment::Index(n), rest))) => {
            a.get_mut(*n).is_some_and(|t| in_table(t, rest, f))
        }
        (Item::Value(Value::Array(a)), Some((Segment::Index(n), rest))) => a
            .get_mut(*n)
            .and_then(Value::as_inline_table_mut)
            .is_some_and(|t| in_table(t, rest, f)),
        (item, _) => item
            .as_table_like_mut()
            .is_some_and(|t| in_table(t, path, f)),
    }
}

fn in_table(
    table: &mut dyn TableLike,
    path: &[Segment],
    f: &mut dyn FnMut(&mut dyn TableLike) -> bool,
) -> bool {
    match path.split_first() {
        None => f(table),
        Some((Segment::Key(k), rest)) => table.get_mut(k).is_some_and(|i| in_item(i, rest, f)),
        Some((Segment::Index(_), _)) => false,
    }
}

fn split_last_key(path: &KeyPath) -> Option<(&[Segment], &str)> {
    match path.0.split_last() {
        Some((Segment::Key(k), parent)) => Some((parent, k.as_str())),
        _ => None,
    }
}

fn remove(doc: &mut DocumentMut, path: &KeyPath) -> bool {
    let Some((parent, key)) = split_last_key(path) else {
        return false;
    };
    in_item(doc.as_item_mut(), parent, &mut |t| t.remove(key).is_some())
}

fn fill(doc: &mut DocumentMut, path: &KeyPath) -> bool {
    let Some((parent, key)) = split_last_key(path) else {
        return false;
    };
    in_item(doc.as_item_mut(), parent, &mut |t| {
        t.insert(key, toml_edit::value("")).is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        read(text)
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn several_unknown_keys_are_all_reported() {
        let got = messages(
            "[upstream]\npolcy = \"x\"\nfoo = 1\n[[listener]]\naddress = \"127.0.0.1:0\"\nmax_conections = 5\n",
        );
        for want in [
            "upstream.polcy: unknown key; did you mean \"policy\"?",
            "upstream.foo: unknown key; expected one of policy, connect_timeout, pool_idle_timeout, \
             pool_max_idle_per_node, ca_file, node",
            "listener[0].max_conections: unknown key; did you mean \"max_connections\"?",
        ] {
            assert!(got.iter().any(|g| g == want), "missing {want:?} in {got:#?}");
        }
        assert_eq!(got.len(), 3, "{got:#?}");
    }

    #[test]
    fn a_number_for_a_duration_is_named_in_the_file_s_words() {
        let got = messages("[upstream]\nconnect_timeout = 30\n");
        assert_eq!(
            got,
            ["upstream.connect_timeout: expected a duration like \"2s\", found the number 30"]
        );
    }

    #[test]
    fn type_errors_name_no_rust_types() {
        let got = messages(
            "[health]\nrise = \"two\"\nenabled = 1\n[[upstream.node]]\nname = \"a\"\nurl = \"http://a:1\"\nweight = -1\n[routing]\npresets = \"oslc\"\nmax_body = 64\n",
        );
        let all = got.join("\n");
        for want in [
            "health.rise: expected a whole number from 0 to 4294967295, found the string \"two\"",
            "health.enabled: expected true or false, found the number 1",
            "upstream.node[0].weight: expected a whole number from 0 to 4294967295, found the number -1",
            "routing.presets: expected a list like [\"a\", \"b\"], found the string \"oslc\"",
            "routing.max_body: expected a size like \"64KiB\", found the number 64",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
        for rust in ["u32", "u16", "usize", "invalid type", "sequence", "struct"] {
            assert!(!all.contains(rust), "{rust:?} in\n{all}");
        }
    }

    #[test]
    fn a_missing_required_key_is_reported_and_reading_goes_on() {
        let out = read("[[upstream.node]]\nname = \"a\"\n[upstream]\npolicy = 3\n");
        let got: Vec<String> = out
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect();
        assert!(
            got.contains(&"upstream.node[0].url: required, but missing".to_owned()),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|m| m.starts_with("upstream.policy: expected a string")),
            "{got:?}"
        );
        assert!(out.file.is_some());
        assert_eq!(
            out.placeholders,
            vec![KeyPath::parse("upstream.node[0].url")]
        );
    }

    #[test]
    fn a_good_file_reads_without_problems() {
        let out = read("[[listener]]\naddress = \"127.0.0.1:0\"\n");
        assert!(out.problems.is_empty());
        assert!(out.file.is_some());
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("polcy", "policy"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(closest("zzz", &["policy"]), None);
    }

    #[test]
    fn unit_keys_match_the_shipped_config() {
        // Every duration- or size-valued key of the shipped file is known as one, and every listed key exists.
        let text = include_str!("../../config.toml");
        let doc = ImDocument::parse(text).unwrap();
        let mut seen = Vec::new();
        collect_strings(doc.as_table(), &KeyPath::default(), &mut seen);
        for (path, value) in &seen {
            let unit = if super::super::units::parse_duration(value).is_ok() {
                Some(Unit::Duration)
            } else if value.ends_with("iB") && super::super::units::parse_size(value).is_ok() {
                Some(Unit::Size)
            } else {
                None
            };
            assert_eq!(unit_of(path), unit, "{path} = {value:?}");
        }
        for (pattern, _) in UNIT_KEYS {
            let prefix = pattern.trim_end_matches(".*");
            assert!(
                seen.iter().any(|(p, _)| p.to_string().starts_with(prefix)),
                "{pattern} is not in config.toml"
            );
        }
    }

    fn collect_strings(table: &toml_edit::Table, path: &KeyPath, out: &mut Vec<(KeyPath, String)>) {
        for (name, item) in table.iter() {
            let mut here = path.clone();
            here.0.push(Segment::Key(name.to_owned()));
            match item {
                Item::Table(t) => collect_strings(t, &here, out),
                Item::ArrayOfTables(a) => {
                    for t in a.iter() {
                        collect_strings(t, &here, out);
                    }
                }
                Item::Value(Value::String(s)) => out.push((here, s.value().clone())),
                _ => {}
            }
        }
    }
}
