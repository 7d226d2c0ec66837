//! The shape of the source tree, checked on the source: a module uses only modules below it (no import circles,
//! the tree reads bottom-up), and a long file says why it is one file.

use std::collections::BTreeSet;
use std::path::Path;

/// Bottom to top; modules in one row are peers that must not use each other.
const LAYERS: &[&[&str]] = &[
    &["secret", "logging", "time"],
    &["oauth", "transport"],
    &["affinity"],
    &["metrics"],
    &["upstream"],
    &["refresh", "admin"],
    &["config"],
    &["proxy"],
    &["server"],
    &["app", "fuzzing"],
    &["sim"],
    &["demo"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

/// The top-level modules a source text uses through `crate::`, outside test modules.
fn uses(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut violations = Vec::new();
    for path in all {
        let relative = path.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let own =
            layer_of(&top).unwrap_or_else(|| panic!("src/{top} is in no layer: add it to LAYERS"));
        for used in uses(&std::fs::read_to_string(&path).unwrap()) {
            if used == top {
                continue;
            }
            match layer_of(&used) {
                Some(layer) if layer < own => {}
                _ => violations.push(format!("{} uses crate::{used}", relative.display())),
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}

/// Lines past which a source file must say in its module doc why it is one file.
const LONG_FILE: usize = 600;

#[test]
fn a_long_source_file_says_why_it_is_one_file() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let unexplained: Vec<String> = all
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let lines = text.lines().count();
            let explained = text
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .any(|l| l.contains(&format!("Longer than {LONG_FILE} lines:")));
            (lines > LONG_FILE && !explained).then(|| {
                format!(
                    "{} ({lines} lines)",
                    path.strip_prefix(&src).unwrap().display()
                )
            })
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "split these files by role, or say in the module doc why each is one file \
         (\"Longer than {LONG_FILE} lines: ...\"):\n{}",
        unexplained.join("\n")
    );
}
