//! Configuration: `config.toml` → [`file::FileConfig`] (serde, as written) → [`Config`] (validated, typed).
//!
//! [`load`] reads, parses and validates a whole file. The caller decides what to do with an error: at start
//! the proxy exits with the list; on reload it keeps serving the old value (see `server`).
//!
//! Longer than 600 lines: two thirds of it is the table of config cases its tests run.

pub mod cidr;
mod cross;
mod expiry;
pub mod file;
mod locate;
mod read;
mod report;
pub mod units;
pub mod validate;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use cross::EXPIRY_WARNING_DAYS;
pub use expiry::DEFAULT_SERVER_NAME;
pub use report::{Diagnostic, Severity};
pub use validate::{
    Affinity, CertificateExpiry, Config, ConfigError, Forwarding, Limits, Listener, LogSettings,
    Routing, Runtime,
};

use locate::KeyPath;
use report::{Finding, Listing};

/// Why a config file could not be used.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML; nothing past this point can be read.
    #[error("{path}:{line}:{column}: error: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// Keys or values that are not acceptable: every one found, each with its place in the file, errors first
    /// (warnings found at the same time follow them).
    #[error("{}", Listing { file: path, diagnostics: errors })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every finding: at least one error.
        errors: Vec<Diagnostic>,
    },
}

impl LoadError {
    /// The message with its causes (`cannot read x: No such file or directory`), for a terminal or a log.
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// A config that can be used, and what the administrator should still look at.
#[derive(Debug)]
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// Warnings (certificates expiring soon, refreshing off with the `oslc` preset, ...).
    pub warnings: Vec<Diagnostic>,
}

/// Reads, parses and validates the file at `path`, logging its warnings (start and reload).
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let loaded = check(path)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(loaded.config)
}

/// Reads, parses and validates the file at `path` and returns its warnings instead of logging them.
pub fn check(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    parse_checked(
        &text,
        path,
        base_dir,
        &|name| std::env::var(name).ok(),
        unix_now(),
    )
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
    parse_checked(text, path, base_dir, env, unix_now()).map(|loaded| loaded.config)
}

/// The whole pipeline, every finding collected: TOML → file structs (every unknown key and wrong type) →
/// validated values (every bad value) → checks across keys and against the machine. `now` (Unix seconds)
/// dates certificate expiry.
pub fn parse_checked(
    text: &str,
    path: &Path,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    now: i64,
) -> Result<Loaded, LoadError> {
    if let Err(e) = toml_edit::ImDocument::parse(text) {
        let (line, column) = e
            .span()
            .map_or((1, 1), |span| locate::line_column(text, span.start));
        return Err(LoadError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message: e.message().trim_end().to_owned(),
        });
    }
    let read = read::read(text);
    let mut findings: Vec<(Finding, bool)> = read
        .problems
        .iter()
        .map(|p| {
            (
                Finding::error(p.key.to_string(), None, p.message.clone()),
                p.at_key,
            )
        })
        .collect();
    let mut config = None;
    if let Some(file) = &read.file {
        match validate::validate(file, base_dir, env) {
            Ok(c) => config = Some(c),
            Err(errors) => findings.extend(
                errors
                    .into_iter()
                    .filter(|e| !is_placeholder(&read.placeholders, &e.key))
                    .map(|e| (Finding::error(e.key, Some(e.value), e.message), false)),
            ),
        }
        findings.extend(
            cross::check(file, base_dir, now)
                .into_iter()
                .map(|f| (f, false)),
        );
    }
    let diagnostics = report::locate(findings, text, path);
    match config {
        Some(config) if diagnostics.iter().all(|d| d.severity == Severity::Warning) => Ok(Loaded {
            config,
            warnings: diagnostics,
        }),
        _ => Err(LoadError::Invalid {
            path: path.to_owned(),
            errors: diagnostics,
        }),
    }
}

/// Whether `key` is (inside) a value the reader made up for a missing key: complaints about it are noise.
fn is_placeholder(placeholders: &[KeyPath], key: &str) -> bool {
    let key = KeyPath::parse(key);
    placeholders.iter().any(|p| key.0.starts_with(&p.0))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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
            Err(LoadError::Invalid { errors, .. }) => errors
                .into_iter()
                .filter(|e| e.severity == Severity::Error)
                .map(|e| e.key)
                .collect(),
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
    fn unknown_key_is_reported_with_its_line() {
        let text = format!("{MINIMAL}\n[upstream]\npolcy = \"round_robin\"\n");
        match parse_str(&text) {
            Err(LoadError::Invalid { errors, .. }) => {
                assert_eq!(errors[0].key, "upstream.polcy");
                assert_eq!((errors[0].line, errors[0].column), (10, 1));
                assert!(errors[1..].iter().all(|e| e.severity == Severity::Warning));
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
max_request_target = "100"

[forwarding]
strip_from_untrusted = ["x real ip"]

[upstream]
policy = "random"

[[upstream.node]]
name = "a"
url = "ftp://x"

[[upstream.node]]
name = "a"
url = "http://127.0.0.1:1/path"
weight = 0

[[upstream.node]]
name = "c"
url = "http://127.0.0.1:2"
weight = 257

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
            "upstream.node[2].weight",
            "limits.max_request_target",
            "forwarding.strip_from_untrusted[0]",
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
    fn oauth2_error_names_must_be_rfc_6749_error_names() {
        let text = format!(
            "{MINIMAL}[repair]\noauth2_errors = [\"invalid_client\", \"\", 'say \"no\"']\n"
        );
        let Err(LoadError::Invalid { errors, .. }) = parse_str(&text) else {
            panic!("bad names are refused");
        };
        let found: Vec<(&str, &str)> = errors
            .iter()
            .filter(|e| e.severity == Severity::Error)
            .map(|e| (e.key.as_str(), e.value.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(
            found,
            [
                ("repair.oauth2_errors[1]", r#""""#),
                ("repair.oauth2_errors[2]", r#""say \"no\"""#)
            ]
        );
        let defaults = parse_str(MINIMAL).unwrap().repair.oauth2_errors;
        assert_eq!(
            defaults,
            ["invalid_client", "invalid_grant", "invalid_token"]
        );
    }

    #[test]
    fn a_redis_store_is_checked_key_by_key() {
        let bad = format!(
            "{MINIMAL}[affinity]\nstore = \"redis\"\n[affinity.redis]\nurl = \"redis://:pw@127.0.0.1:6379/0\"\npassword_env = \"TOKENROUTE_TEST_NO_SUCH_VARIABLE\"\nkey_prefix = \"\"\npool_size = 0\ncommand_timeout = \"0s\"\n"
        );
        let keys = invalid_keys(&bad);
        for want in [
            "affinity.fingerprint_key_file",
            "affinity.redis.url",
            "affinity.redis.password_env",
            "affinity.redis.key_prefix",
            "affinity.redis.pool_size",
            "affinity.redis.command_timeout",
        ] {
            assert!(keys.iter().any(|k| k == want), "missing {want} in {keys:?}");
        }
        let unknown = format!("{MINIMAL}[affinity]\nstore = \"etcd\"\n");
        assert_eq!(invalid_keys(&unknown), ["affinity.store"]);
        let other_scheme = format!("{MINIMAL}[affinity]\nstore = \"redis\"\nfingerprint_key_file = \"k\"\n[affinity.redis]\nurl = \"http://x\"\n");
        assert_eq!(invalid_keys(&other_scheme), ["affinity.redis.url"]);
        let good =
            format!("{MINIMAL}[affinity]\nstore = \"redis\"\nfingerprint_key_file = \"k\"\n");
        let config = parse_str(&good).unwrap();
        let redis = config.affinity.redis.unwrap();
        assert_eq!(redis.url, "redis://127.0.0.1:6379/0");
        assert_eq!(redis.key_prefix, "tokenroute:");
        assert!(parse_str(MINIMAL).unwrap().affinity.redis.is_none());
    }

    #[test]
    fn clone_ids_are_optional_checked_and_unique() {
        let node = |name: &str, clone: &str| {
            format!("[[upstream.node]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:1\"\nclone_id = {clone}\n")
        };
        let ok = format!(
            "{MINIMAL}{}{}",
            node("b", "\"v544d0o0\""),
            node("c", "\"c-2.x\"")
        );
        let c = parse_str(&ok).unwrap();
        let ids: Vec<Option<&str>> = c
            .upstream
            .nodes
            .iter()
            .map(|n| n.clone_id.as_deref())
            .collect();
        assert_eq!(ids, [None, Some("v544d0o0"), Some("c-2.x")]);

        let bad = format!(
            "{MINIMAL}{}{}{}{}",
            node("b", "\"\""),
            node("c", "\"a:b\""),
            node("d", "\"same\""),
            node("e", "\"same\""),
        );
        assert_eq!(
            invalid_keys(&bad),
            [
                "upstream.node[1].clone_id",
                "upstream.node[2].clone_id",
                "upstream.node[4].clone_id"
            ]
        );
    }

    #[test]
    fn an_unknown_endpoint_role_lists_every_role() {
        let text =
            format!("{MINIMAL}[[routing.endpoint]]\npath_suffix = \"/x\"\nrole = \"magic\"\n");
        let err = parse_str(&text).unwrap_err().to_string();
        for role in crate::oauth::EndpointRole::ALL {
            assert!(err.contains(role.as_str()), "{err}");
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
    fn a_weight_over_256_is_refused_not_clamped() {
        let text = MINIMAL.replace("name = \"a\"", "name = \"a\"\nweight = 257");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(
            err.contains("upstream.node[0].weight = 257: must be between 1 and 256"),
            "{err}"
        );
        let text = MINIMAL.replace("name = \"a\"", "name = \"a\"\nweight = 256");
        assert_eq!(
            parse_str(&text).unwrap().upstream.nodes[0].weight.get(),
            256
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
        let text = std::fs::read_to_string(&path).unwrap();
        let no_env = |_: &str| None;
        let shipped =
            parse_with_env(&text, &path, Path::new("."), &no_env).unwrap_or_else(|e| panic!("{e}"));
        let defaults =
            parse_with_env(MINIMAL, Path::new("m.toml"), Path::new("."), &no_env).unwrap();
        // The file shows every default as a value (examples are commented out); if a default changes, the
        // file must change with it.
        let same =
            |what: &str, a: String, b: String| assert_eq!(a, b, "config.toml differs on {what}");
        same(
            "[runtime]",
            format!("{:?}", shipped.runtime),
            format!("{:?}", defaults.runtime),
        );
        same(
            "[limits]",
            format!("{:?}", shipped.limits),
            format!("{:?}", defaults.limits),
        );
        same(
            "[forwarding]",
            format!("{:?}", shipped.forwarding),
            format!("{:?}", defaults.forwarding),
        );
        same(
            "[health]",
            format!("{:?}", shipped.health),
            format!("{:?}", defaults.health),
        );
        same(
            "[refresh]",
            format!("{:?}", shipped.refresh),
            format!("{:?}", defaults.refresh),
        );
        same(
            "[repair]",
            format!("{:?}", shipped.repair),
            format!("{:?}", defaults.repair),
        );
        same(
            "[affinity]",
            format!("{:?}", shipped.affinity),
            format!("{:?}", defaults.affinity),
        );
        same(
            "[admin]",
            format!("{:?}", shipped.admin),
            format!("{:?}", defaults.admin),
        );
        same(
            "[log]",
            format!("{:?}", shipped.log),
            format!("{:?}", defaults.log),
        );
        same(
            "[routing]",
            format!(
                "{:?}",
                (
                    shipped.routing.token_aware,
                    shipped.routing.session_affinity
                )
            ),
            format!(
                "{:?}",
                (
                    defaults.routing.token_aware,
                    defaults.routing.session_affinity
                )
            ),
        );
        assert_eq!(shipped.routing.rules, defaults.routing.rules);
        let (s, d) = (&shipped.upstream, &defaults.upstream);
        same(
            "[upstream]",
            format!(
                "{:?}",
                (
                    s.policy,
                    s.connect_timeout,
                    s.pool_idle_timeout,
                    s.pool_max_idle_per_node
                )
            ),
            format!(
                "{:?}",
                (
                    d.policy,
                    d.connect_timeout,
                    d.pool_idle_timeout,
                    d.pool_max_idle_per_node
                )
            ),
        );
        assert_eq!(s.nodes[0].weight, d.nodes[0].weight);
        let (s, d) = (&shipped.listeners[0], &defaults.listeners[0]);
        same(
            "[[listener]]",
            format!("{:?}", (&s.name, s.max_connections, s.proxy_protocol)),
            format!("{:?}", (&d.name, d.max_connections, d.proxy_protocol)),
        );
        assert_eq!(shipped.upstream.nodes.len(), 3);
    }

    fn findings(text: &str) -> Vec<Diagnostic> {
        match parse_checked(text, Path::new("t.toml"), Path::new("."), &|_| None, 0) {
            Ok(loaded) => loaded.warnings,
            Err(LoadError::Invalid { errors, .. }) => errors,
            Err(other) => panic!("{other}"),
        }
    }

    fn find<'a>(all: &'a [Diagnostic], key: &str) -> &'a Diagnostic {
        all.iter()
            .find(|d| d.key == key)
            .unwrap_or_else(|| panic!("no finding for {key} in {all:#?}"))
    }

    #[test]
    fn type_errors_and_value_errors_come_together_each_with_its_line() {
        let text =
            "[upstream]\nconnect_timeout = 30\npolcy = 1\n[[listener]]\naddress = \"localhost\"\n\
                    [[upstream.node]]\nname = \"a\"\nurl = \"ftp://x\"\n";
        let all = findings(text);
        let timeout = find(&all, "upstream.connect_timeout");
        assert_eq!((timeout.line, timeout.column), (2, 19));
        assert_eq!(
            timeout.to_string(),
            "t.toml:2:19: error: upstream.connect_timeout: expected a duration like \"2s\", found the number 30"
        );
        assert_eq!(find(&all, "upstream.polcy").line, 3);
        assert_eq!(find(&all, "listener[0].address").line, 5);
        let url = find(&all, "upstream.node[0].url");
        assert_eq!((url.line, url.column), (8, 7));
        assert!(
            url.to_string()
                .contains("upstream.node[0].url = \"ftp://x\": scheme"),
            "{url}"
        );
    }

    #[test]
    fn shipped_config_toml_states_a_ttl_for_every_credential_kind() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let file: file::FileConfig = toml::from_str(&text).unwrap();
        for kind in crate::oauth::CredentialKind::ALL {
            assert!(
                file.routing.ttl.contains_key(kind.as_str()),
                "config.toml lacks routing.ttl.{}",
                kind.as_str()
            );
        }
    }

    #[test]
    fn a_missing_required_key_is_one_error_not_a_cascade() {
        let all =
            findings("[[listener]]\naddress = \"127.0.0.1:0\"\n[[upstream.node]]\nname = \"a\"\n");
        let errors: Vec<_> = all
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].key, "upstream.node[0].url");
        assert_eq!(errors[0].line, 3);
    }

    #[test]
    fn the_admin_api_on_a_listener_s_address_is_refused() {
        let text = MINIMAL.replace("127.0.0.1:0", "0.0.0.0:8080")
            + "[admin]\naddress = \"127.0.0.1:8080\"\n";
        let d = find(&findings(&text), "admin.address").clone();
        assert_eq!((d.severity, d.line), (Severity::Error, 9));
    }

    #[test]
    fn two_listeners_with_one_name_are_refused() {
        let text =
            format!("{MINIMAL}[[listener]]\nname = \"listener0\"\naddress = \"127.0.0.1:0\"\n");
        let d = find(&findings(&text), "listener[1].name").clone();
        assert_eq!((d.severity, d.line), (Severity::Error, 9));
    }

    #[test]
    fn proxy_protocol_without_trusted_proxies_is_refused_on_its_listener() {
        let text = MINIMAL.replace(
            "address = \"127.0.0.1:0\"",
            "address = \"127.0.0.1:0\"\nproxy_protocol = true",
        );
        let d = find(&findings(&text), "listener[0].proxy_protocol").clone();
        assert_eq!(d.severity, Severity::Error);
        assert!(d.message.contains("forwarding.trusted_proxies"), "{d:?}");
        let trusted = format!("{text}[forwarding]\ntrusted_proxies = [\"127.0.0.1\"]\n");
        assert!(findings(&trusted)
            .iter()
            .all(|d| d.severity != Severity::Error));
    }

    #[test]
    fn two_nodes_with_one_name_are_refused() {
        let text =
            format!("{MINIMAL}[[upstream.node]]\nname = \"a\"\nurl = \"http://127.0.0.1:9002\"\n");
        assert_eq!(find(&findings(&text), "upstream.node[1].name").line, 9);
    }

    #[test]
    fn a_snapshot_in_a_missing_directory_is_refused() {
        let text = format!("{MINIMAL}[affinity]\nsnapshot_path = \"no/such/dir/table.snapshot\"\n");
        let d = find(&findings(&text), "affinity.snapshot_path").clone();
        assert!(d.message.contains("does not exist"), "{d}");
        let fine = format!("{MINIMAL}[affinity]\nsnapshot_path = \"table.snapshot\"\n");
        assert!(findings(&fine)
            .iter()
            .all(|d| d.key != "affinity.snapshot_path"));
    }

    #[test]
    fn status_codes_outside_the_http_range_are_refused() {
        let text = format!(
            "{MINIMAL}[health]\nexpect_status = 999\n[[refresh.exchange]]\npath = \"/login\"\nexpect_status = [200, 42]\n"
        );
        let all = findings(&text);
        assert_eq!(find(&all, "health.expect_status").line, 9);
        assert_eq!(find(&all, "refresh.exchange[0].expect_status[1]").line, 12);
    }

    #[test]
    fn refreshing_off_with_the_oslc_preset_is_a_warning() {
        let d = find(&findings(MINIMAL), "refresh.exchange").clone();
        assert_eq!(d.severity, Severity::Warning);
        let oauth2 = format!("{MINIMAL}[routing]\npresets = [\"oauth2\"]\n");
        assert!(findings(&oauth2).is_empty());
    }

    #[test]
    fn listener_certificates_are_dated_expired_is_an_error_soon_a_warning() {
        let dir = std::env::temp_dir().join(format!("tokenroute-expiry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["lbcq".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 2);
        std::fs::write(dir.join("c.pem"), params.self_signed(&key).unwrap().pem()).unwrap();
        std::fs::write(dir.join("c.key"), key.serialize_pem()).unwrap();
        let text = MINIMAL.replace(
            "address = \"127.0.0.1:0\"",
            "address = \"127.0.0.1:0\"\n[[listener.tls.certificate]]\ncert = \"c.pem\"\nkey = \"c.key\"",
        );
        let at = |now: i64| {
            let r = parse_checked(&text, Path::new("t.toml"), &dir, &|_| None, now);
            let all = match r {
                Ok(l) => l.warnings,
                Err(LoadError::Invalid { errors, .. }) => errors,
                Err(e) => panic!("{e}"),
            };
            all.into_iter()
                .find(|d| d.key == "listener[0].tls.certificate[0].cert")
                .map(|d| (d.severity, d.line))
        };
        let not_after = 1_893_542_400;
        assert_eq!(at(not_after + 1), Some((Severity::Error, 5)));
        assert_eq!(at(not_after - 10 * 86_400), Some((Severity::Warning, 5)));
        assert_eq!(at(not_after - 60 * 86_400), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_names_its_cause_once() {
        let err = load(Path::new("/nonexistent/tokenroute.toml")).unwrap_err();
        let report = err.report();
        assert_eq!(report.matches("No such file").count(), 1, "{report}");
        assert!(
            report.starts_with("cannot read /nonexistent/tokenroute.toml: "),
            "{report}"
        );
    }
}
