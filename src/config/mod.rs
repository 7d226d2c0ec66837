//! Configuration: `config.toml` → [`file::FileConfig`] (serde, as written) → [`Config`] (validated, typed).
//!
//! [`load`] reads, parses and validates a whole file. The caller decides what to do with an error: at start
//! the proxy exits with the list; on reload it keeps serving the old value (see `server`).

pub mod cidr;
pub mod file;
pub mod units;
pub mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use validate::{
    Affinity, Config, ConfigError, Forwarding, Health, Limits, Listener, NodeSpec, Routing,
    Runtime, Upstream,
};

/// Why a config file could not be used.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema (unknown key, wrong type).
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message (it names the key and what it expected).
        message: String,
    },
    /// Values that parse but are not acceptable.
    #[error("{path}: {}", Invalid(.errors))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every refused value.
        errors: Vec<ConfigError>,
    },
}

struct Invalid<'a>(&'a [ConfigError]);

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} invalid value(s)", self.0.len())?;
        for e in self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Reads, parses and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, path, base_dir)
}

/// Parses and validates config text; `path` is only used in error messages. `${VAR}` in refresh exchanges
/// is read from the process environment.
pub fn parse(text: &str, path: &Path, base_dir: &Path) -> Result<Config, LoadError> {
    parse_with_env(text, path, base_dir, &|name| std::env::var(name).ok())
}

/// [`parse`] with the environment supplied by the caller (tests, the demo).
pub fn parse_with_env(
    text: &str,
    path: &Path,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, LoadError> {
    let file: file::FileConfig = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or((1, 1));
        LoadError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message: e.message().to_string(),
        }
    })?;
    validate::validate(&file, base_dir, env).map_err(|errors| LoadError::Invalid {
        path: path.to_owned(),
        errors,
    })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[listener]]
address = "127.0.0.1:0"

[[upstream.node]]
name = "a"
url = "http://127.0.0.1:9001"
"#;

    fn parse_str(text: &str) -> Result<Config, LoadError> {
        parse(text, Path::new("test.toml"), Path::new("."))
    }

    fn invalid_keys(text: &str) -> Vec<String> {
        match parse_str(text) {
            Err(LoadError::Invalid { errors, .. }) => errors.into_iter().map(|e| e.key).collect(),
            other => panic!("expected invalid values, got {other:?}"),
        }
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = parse_str(MINIMAL).unwrap();
        assert_eq!(c.limits.max_header_bytes, 64 * 1024);
        assert_eq!(c.upstream.nodes[0].authority.as_str(), "127.0.0.1:9001");
        assert_eq!(c.health.as_ref().unwrap().fall.get(), 3);
        assert!(c.runtime.worker_threads.is_none());
    }

    #[test]
    fn unknown_key_is_a_syntax_error_with_its_line() {
        let text = format!("{MINIMAL}\n[upstream]\npolcy = \"round_robin\"\n");
        match parse_str(&text) {
            Err(LoadError::Syntax { line, message, .. }) => {
                assert!(message.contains("polcy"), "{message}");
                assert!(line >= 9, "line {line}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_bad_value_is_reported_with_its_key() {
        let text = r#"
[limits]
header_read_timeout = "ten seconds"
max_header_bytes = "1KiB"

[upstream]
policy = "random"

[[upstream.node]]
name = "a"
url = "ftp://x"

[[upstream.node]]
name = "a"
url = "http://127.0.0.1:1/path"
weight = 0

[health]
rise = 0

[routing]
presets = ["saml"]
max_body = "lots"
session_cookies = ["bad cookie"]
ttl = { request_token = "1h", bogus = "1h", access_token = "0s" }
[[routing.endpoint]]
path_suffix = "no-slash"
role = "request_token"
[[routing.endpoint]]
path_suffix = "/x"
role = "magic"

[affinity]
max_entries = 0
journal_fsync = "sometimes"
journal_fsync_interval = "0s"
"#;
        let keys = invalid_keys(text);
        for want in [
            "listener",
            "limits.header_read_timeout",
            "limits.max_header_bytes",
            "upstream.policy",
            "upstream.node[0].url",
            "upstream.node[1].name",
            "upstream.node[1].url",
            "upstream.node[1].weight",
            "health.rise",
            "routing.presets[0]",
            "routing.max_body",
            "routing.session_cookies",
            "routing.ttl.bogus",
            "routing.ttl.access_token",
            "routing.endpoint[0].path_suffix",
            "routing.endpoint[1].role",
            "affinity.max_entries",
            "affinity.journal_fsync",
            "affinity.journal_fsync_interval",
        ] {
            assert!(keys.iter().any(|k| k == want), "missing {want} in {keys:?}");
        }
    }

    #[test]
    fn error_message_names_key_and_value() {
        let text = MINIMAL.replace("http://127.0.0.1:9001", "gopher://x");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(
            err.contains("upstream.node[0].url = \"gopher://x\""),
            "{err}"
        );
    }

    #[test]
    fn https_nodes_require_a_ca_bundle() {
        let text = MINIMAL.replace("http://", "https://");
        assert_eq!(invalid_keys(&text), vec!["upstream.ca_file"]);
    }

    #[test]
    fn shipped_config_toml_parses_and_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let shipped = load(&path).unwrap_or_else(|e| panic!("{e}"));
        let defaults = parse_str(MINIMAL).unwrap();
        // The file states every default; if a default changes, the file must change with it.
        assert_eq!(
            format!("{:?}", shipped.limits),
            format!("{:?}", defaults.limits)
        );
        assert_eq!(
            format!("{:?}", shipped.health),
            format!("{:?}", {
                let mut h = defaults.health.clone().unwrap();
                h.path = "/cqweb/health".into();
                Some(h)
            })
        );
        assert_eq!(shipped.upstream.policy, defaults.upstream.policy);
        assert_eq!(
            shipped.upstream.connect_timeout,
            defaults.upstream.connect_timeout
        );
        assert_eq!(
            shipped.runtime.drain_timeout,
            defaults.runtime.drain_timeout
        );
        assert_eq!(shipped.upstream.nodes.len(), 3);
        assert_eq!(shipped.routing.rules, defaults.routing.rules);
        assert_eq!(shipped.routing.token_aware, defaults.routing.token_aware);
        assert_eq!(shipped.affinity.max_entries, defaults.affinity.max_entries);
        assert_eq!(
            shipped.affinity.sweep_interval,
            defaults.affinity.sweep_interval
        );
        assert_eq!(
            shipped.affinity.journal_fsync,
            defaults.affinity.journal_fsync
        );
        assert_eq!(
            defaults.affinity.journal_fsync,
            crate::affinity::journal::Fsync::DEFAULT
        );
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }
}
