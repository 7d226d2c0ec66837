//! What `check`, the start and every reload say about a config file: diagnostics with `file:line:column`.

use std::fmt;
use std::path::{Path, PathBuf};

use toml_edit::ImDocument;

use super::locate::{line_column, span_of, KeyPath};

/// How bad a finding is: an error refuses the file, a warning is printed and the file is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The file is refused.
    Error,
    /// The file is used; the administrator should look.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A finding before it is placed in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) severity: Severity,
    /// Key path: `upstream.node[1].url`.
    pub(crate) key: String,
    /// The value as written, when the message is about it.
    pub(crate) value: Option<String>,
    pub(crate) message: String,
}

impl Finding {
    pub(crate) fn error(
        key: impl Into<String>,
        value: Option<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            severity: Severity::Error,
            key: key.into(),
            value,
            message: message.into(),
        }
    }
}

/// One finding placed in the file: `config.toml:14:19: error: upstream.connect_timeout: expected ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Key path, with array indices: `upstream.node[1].url`.
    pub key: String,
    /// The value as written (quoted for strings), when the message is about it.
    pub value: Option<String>,
    /// What is wrong and, where possible, what would be right.
    pub message: String,
    /// The file.
    pub file: PathBuf,
    /// 1-based line of the value (or of the nearest enclosing table when the key is not written).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.severity,
            self.key
        )?;
        if let Some(value) = &self.value {
            write!(f, " = {value}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Places findings in `text` (the file at `file`), errors first, each group in file order.
pub(crate) fn locate(findings: Vec<(Finding, bool)>, text: &str, file: &Path) -> Vec<Diagnostic> {
    let doc = ImDocument::parse(text).ok();
    let mut out: Vec<Diagnostic> = findings
        .into_iter()
        .map(|(finding, at_key)| {
            let path = KeyPath::parse(&finding.key);
            let span = doc.as_ref().and_then(|d| span_of(d, &path, at_key));
            let (line, column) = span.map_or((1, 1), |s| line_column(text, s.start));
            Diagnostic {
                severity: finding.severity,
                key: finding.key,
                value: finding.value,
                message: finding.message,
                file: file.to_owned(),
                line,
                column,
            }
        })
        .collect();
    out.sort_by_key(|d| (d.severity, d.line, d.column));
    out
}

/// `config.toml: 2 errors, 1 warning` followed by one line per diagnostic.
pub(crate) struct Listing<'a> {
    pub(crate) file: &'a Path,
    pub(crate) diagnostics: &'a [Diagnostic],
}

impl fmt::Display for Listing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |s| self.diagnostics.iter().filter(|d| d.severity == s).count();
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        write!(
            f,
            "{}: {}",
            self.file.display(),
            plural(count(Severity::Error), "error")
        )?;
        let warnings = count(Severity::Warning);
        if warnings > 0 {
            write!(f, ", {}", plural(warnings, "warning"))?;
        }
        for d in self.diagnostics {
            write!(f, "\n{d}")?;
        }
        Ok(())
    }
}
