//! Checks across keys and against the machine, run on the file structs after reading: things each value
//! alone cannot show, and that would otherwise fail at start or quietly misbehave.
//!
//! Errors: two listeners with one name, the admin API and a listener on one address (or a wildcard
//! covering it), a snapshot directory that does not exist, status codes outside 100..=599, a listener
//! certificate that has expired. Warnings: a listener certificate expiring within [`EXPIRY_WARNING_DAYS`],
//! refreshing off while the `oslc` preset routes consumer keys.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::expiry;
use super::file::FileConfig;
use super::report::{Finding, Severity};

/// A listener certificate expiring sooner than this is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Every cross-key finding for `file`; relative paths resolve against `base_dir`; `now` in Unix seconds.
pub(crate) fn check(file: &FileConfig, base_dir: &Path, now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    listener_names(file, &mut out);
    addresses(file, &mut out);
    snapshot_directory(file, base_dir, &mut out);
    statuses(file, &mut out);
    certificates(file, base_dir, now, &mut out);
    refresh_off_with_oslc(file, &mut out);
    out
}

fn listener_names(file: &FileConfig, out: &mut Vec<Finding>) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, l) in file.listeners.iter().enumerate() {
        let name = l.name.clone().unwrap_or_else(|| format!("listener{i}"));
        if let Some(first) = seen.get(&name) {
            out.push(Finding::error(
                format!("listener[{i}].name"),
                Some(format!("{name:?}")),
                format!("listener[{first}] has this name already; names must differ (logs and metrics use them)"),
            ));
        } else {
            seen.insert(name, i);
        }
    }
}

/// Whether binding both would fail: same port (not 0) and the same IP, or a wildcard that covers the other.
/// On Linux `[::]` also takes the IPv4 port (dual stack); `0.0.0.0` covers IPv4 only.
pub(crate) fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || a.port() != b.port() {
        return false;
    }
    let covers = |w: SocketAddr, other: SocketAddr| {
        w.ip().is_unspecified() && (w.is_ipv6() || other.is_ipv4())
    };
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}

fn addresses(file: &FileConfig, out: &mut Vec<Finding>) {
    let listeners: Vec<(usize, SocketAddr)> = file
        .listeners
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.address.parse().ok().map(|a| (i, a)))
        .collect();
    for (n, &(j, b)) in listeners.iter().enumerate() {
        // Identical addresses are refused by validation already; here the wildcard overlaps.
        if let Some(&(i, _)) = listeners[..n].iter().find(|(_, a)| *a != b && clash(*a, b)) {
            out.push(Finding::error(
                format!("listener[{j}].address"),
                Some(format!("{:?}", file.listeners[j].address)),
                format!(
                    "overlaps listener[{i}] ({:?}): both cannot bind",
                    file.listeners[i].address
                ),
            ));
        }
    }
    if !file.admin.enabled {
        return;
    }
    let Ok(admin) = file.admin.address.parse::<SocketAddr>() else {
        return;
    };
    for &(i, a) in &listeners {
        if clash(a, admin) {
            out.push(Finding::error(
                "admin.address",
                Some(format!("{:?}", file.admin.address)),
                format!(
                    "listener[{i}] binds {:?} too; give the admin API its own port",
                    file.listeners[i].address
                ),
            ));
        }
    }
}

fn snapshot_directory(file: &FileConfig, base_dir: &Path, out: &mut Vec<Finding>) {
    let Some(snapshot) = &file.affinity.snapshot_path else {
        return;
    };
    let path = base_dir.join(snapshot);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        let what = if dir.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        out.push(Finding::error(
            "affinity.snapshot_path",
            Some(format!("{snapshot:?}")),
            format!(
                "its directory {} {what}; create it (the snapshot and its key are written there)",
                dir.display()
            ),
        ));
    }
}

/// Status codes a server can send: 100..=599 (the `http` crate accepts up to 999).
fn status_problem(code: u16) -> Option<&'static str> {
    (!(100..=599).contains(&code)).then_some("not an HTTP status code; expected 100 to 599")
}

fn statuses(file: &FileConfig, out: &mut Vec<Finding>) {
    if let Some(m) = status_problem(file.health.expect_status) {
        out.push(Finding::error(
            "health.expect_status",
            Some(file.health.expect_status.to_string()),
            m,
        ));
    }
    for (i, e) in file.refresh.exchanges.iter().enumerate() {
        for (j, &code) in e.expect_status.iter().enumerate() {
            if let Some(m) = status_problem(code) {
                out.push(Finding::error(
                    format!("refresh.exchange[{i}].expect_status[{j}]"),
                    Some(code.to_string()),
                    m,
                ));
            }
        }
    }
}

/// Expired: error; expiring within [`EXPIRY_WARNING_DAYS`]: warning. Unreadable files are validation's
/// business (it loads them) and are skipped here.
pub(crate) fn expiry_finding(
    key: String,
    value: &str,
    not_after: i64,
    now: i64,
) -> Option<Finding> {
    let date = expiry::date(not_after);
    let value = Some(format!("{value:?}"));
    if not_after <= now {
        return Some(Finding::error(
            key,
            value,
            format!("the certificate expired on {date}; clients refuse it"),
        ));
    }
    let days = (not_after - now) / 86_400;
    (days < EXPIRY_WARNING_DAYS).then(|| Finding {
        severity: Severity::Warning,
        key,
        value,
        message: format!("the certificate expires on {date}, in {days} day(s); renew it"),
    })
}

fn certificates(file: &FileConfig, base_dir: &Path, now: i64, out: &mut Vec<Finding>) {
    for (i, l) in file.listeners.iter().enumerate() {
        let Some(tls) = &l.tls else { continue };
        for (j, c) in tls.certificates.iter().enumerate() {
            let leaf = CertificateDer::pem_file_iter(base_dir.join(&c.cert))
                .ok()
                .and_then(|mut it| it.next())
                .and_then(Result::ok);
            let Some(not_after) = leaf.as_deref().and_then(expiry::not_after) else {
                continue;
            };
            let key = format!("listener[{i}].tls.certificate[{j}].cert");
            out.extend(expiry_finding(key, &c.cert, not_after, now));
        }
    }
}

fn refresh_off_with_oslc(file: &FileConfig, out: &mut Vec<Finding>) {
    let oslc = file.routing.presets.iter().any(|p| p == "oslc");
    if file.routing.token_aware && oslc && file.refresh.exchanges.is_empty() {
        out.push(Finding {
            severity: Severity::Warning,
            key: "refresh.exchange".into(),
            value: None,
            message: "refreshing is off (no [[refresh.exchange]]) while the \"oslc\" preset is on: a consumer key \
                      stays on the node that registered it, a stale node is never refreshed, and admin refresh \
                      requests fail; add the ClearQuest Web login shown in config.toml"
                .into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn clash_covers_same_address_and_wildcards() {
        let cases = [
            ("127.0.0.1:80", "127.0.0.1:80", true),
            ("0.0.0.0:80", "127.0.0.1:80", true),
            ("127.0.0.1:80", "0.0.0.0:80", true),
            ("[::]:80", "127.0.0.1:80", true),
            ("0.0.0.0:80", "[::1]:80", false),
            ("127.0.0.1:80", "127.0.0.2:80", false),
            ("127.0.0.1:80", "127.0.0.1:81", false),
            ("127.0.0.1:0", "127.0.0.1:0", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(clash(addr(a), addr(b)), want, "{a} {b}");
        }
    }

    #[test]
    fn statuses_outside_100_to_599_are_refused() {
        for (code, bad) in [
            (99, true),
            (100, false),
            (599, false),
            (600, true),
            (999, true),
        ] {
            assert_eq!(status_problem(code).is_some(), bad, "{code}");
        }
    }

    #[test]
    fn expiry_is_an_error_when_past_and_a_warning_within_thirty_days() {
        let now = 1_893_542_400;
        let day = 86_400;
        let sev =
            |not_after| expiry_finding("k".into(), "c.pem", not_after, now).map(|f| f.severity);
        assert_eq!(sev(now - day), Some(Severity::Error));
        assert_eq!(sev(now), Some(Severity::Error));
        assert_eq!(sev(now + 29 * day), Some(Severity::Warning));
        assert_eq!(sev(now + 31 * day), None);
    }
}
