//! The `tokenroute` binary: `check` reports every finding with its place (exit 0 ok, 1 refused, 2 usage), `run`
//! refuses what `check` refuses, serves, and drains on SIGTERM.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenroute-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `tokenroute check --config path`.
fn check(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tokenroute"))
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = check(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config.toml"
    )));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_lists_every_bad_key_and_value_and_exits_non_zero() {
    let path = temp_file(
        "bad",
        "[[listener]]\naddress = \"localhost\"\n[upstream]\nconnect_timeout = \"soon\"\n[[upstream.node]]\nname = \"a\"\nurl = \"ftp://x\"\n",
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "listener[0].address = \"localhost\"",
        "upstream.connect_timeout = \"soon\"",
        "upstream.node[0].url = \"ftp://x\"",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
}

#[test]
fn check_names_the_line_of_an_unknown_key() {
    let path = temp_file(
        "typo",
        "[[listener]]\naddress = \"127.0.0.1:0\"\nmax_conections = 5\n",
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":3:1: error: listener[0].max_conections")
            && stderr.contains("max_connections"),
        "{stderr}"
    );
}

/// `check` on `text` (in its own directory): exit code and stderr.
fn check_text(name: &str, text: &str) -> (Option<i32>, String) {
    let out = check(&temp_file(name, text));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config that `check` accepts without a finding; cases add to it.
const GOOD: &str = "[[listener]]\naddress = \"127.0.0.1:0\"\n[admin]\naddress = \"127.0.0.1:0\"\n\
                    [[upstream.node]]\nname = \"a\"\nurl = \"http://127.0.0.1:9001\"\n\
                    [routing]\npresets = [\"oauth2\"]\n";

/// The lines of `stderr` that report a finding at `file:line:column`.
fn finding_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(": error: ") || l.contains(": warning: "))
        .collect()
}

#[test]
fn check_accepts_a_clean_config_silently_with_exit_zero() {
    let (code, stderr) = check_text("clean", GOOD);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
}

#[test]
fn check_reports_several_unknown_keys_in_one_run() {
    let text = format!("{GOOD}[upstream]\npolcy = \"round_robin\"\nconect_timeout = \"2s\"\n[health]\nintervall = \"2s\"\n");
    let (code, stderr) = check_text("unknown-keys", &text);
    assert_eq!(code, Some(1));
    for want in [
        ":11:1: error: upstream.polcy: unknown key; did you mean \"policy\"?",
        ":12:1: error: upstream.conect_timeout: unknown key; did you mean \"connect_timeout\"?",
        ":14:1: error: health.intervall: unknown key; did you mean \"interval\"?",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
}

#[test]
fn check_reports_type_errors_with_value_errors_in_words_not_rust_types() {
    let text = "[[listener]]\naddress = \"localhost\"\nmax_connections = \"many\"\n[upstream]\nconnect_timeout = 30\n\
                [[upstream.node]]\nname = \"a\"\nurl = \"ftp://x\"\nweight = 1.5\n[health]\nenabled = \"yes\"\n";
    let (code, stderr) = check_text("types", text);
    assert_eq!(code, Some(1));
    for want in [
        ":5:19: error: upstream.connect_timeout: expected a duration like \"2s\", found the number 30",
        ":3:19: error: listener[0].max_connections: expected a whole number, 0 or more, found the string \"many\"",
        ":9:10: error: upstream.node[0].weight: expected a whole number from 0 to 4294967295, found the number 1.5",
        ":11:11: error: health.enabled: expected true or false, found the string \"yes\"",
        ":2:11: error: listener[0].address = \"localhost\": expected IP:PORT",
        ":8:7: error: upstream.node[0].url = \"ftp://x\": scheme must be http or https",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    for rust in [
        "u32",
        "usize",
        "invalid type",
        "expected a string",
        "integer `",
    ] {
        assert!(!stderr.contains(rust), "Rust words {rust:?} in:\n{stderr}");
    }
}

#[test]
fn check_gives_file_line_and_column_for_every_finding() {
    let text = "[limits]\nmax_header_bytes = \"1KiB\"\n[upstream]\npolicy = \"random\"\n";
    let path = temp_file("every-line", text);
    let out = check(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = finding_lines(&stderr);
    assert!(lines.len() >= 4, "{stderr}");
    let prefix = format!("{}:", path.display());
    for line in &lines {
        let rest = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("no file in {line:?}"));
        let mut parts = rest.splitn(3, ':');
        let (l, c) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok(),
            "no line:column in {line:?}"
        );
    }
}

#[test]
fn check_refuses_the_admin_api_on_a_listener_address() {
    let text =
        "[[listener]]\naddress = \"0.0.0.0:18080\"\n[admin]\naddress = \"127.0.0.1:18080\"\n\
                [[upstream.node]]\nname = \"a\"\nurl = \"http://127.0.0.1:9001\"\n";
    let (code, stderr) = check_text("admin-clash", text);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(":4:11: error: admin.address = \"127.0.0.1:18080\": listener[0] binds"),
        "{stderr}"
    );
}

#[test]
fn check_refuses_two_listeners_with_one_name() {
    let text = format!("{GOOD}[[listener]]\nname = \"listener0\"\naddress = \"127.0.0.1:0\"\n");
    let (code, stderr) = check_text("listener-names", &text);
    assert_eq!(code, Some(1));
    assert!(
        stderr
            .contains(":11:8: error: listener[1].name = \"listener0\": listener[0] has this name"),
        "{stderr}"
    );
}

#[test]
fn check_refuses_two_nodes_with_one_name() {
    let text = format!("{GOOD}[[upstream.node]]\nname = \"a\"\nurl = \"http://127.0.0.1:9002\"\n");
    let (code, stderr) = check_text("node-names", &text);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(":11:8: error: upstream.node[1].name = \"a\": another node has this name"),
        "{stderr}"
    );
}

#[test]
fn check_refuses_a_snapshot_directory_that_does_not_exist() {
    let text = format!("{GOOD}[affinity]\nsnapshot_path = \"missing/affinity.snapshot\"\n");
    let (code, stderr) = check_text("snapshot-dir", &text);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(
            ":11:17: error: affinity.snapshot_path = \"missing/affinity.snapshot\": its directory"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn check_refuses_a_status_code_outside_100_to_599() {
    let text = format!("{GOOD}[health]\nexpect_status = 999\n");
    let (code, stderr) = check_text("status", &text);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(":11:17: error: health.expect_status = 999: not an HTTP status code"),
        "{stderr}"
    );
}

const DAY: Duration = Duration::from_secs(86_400);

/// Writes a self-signed listener certificate valid until `not_after` into `dir`; returns the config.
fn config_with_certificate(dir: &std::path::Path, not_after: std::time::SystemTime) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["lbcq".to_owned()]).unwrap();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let since = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap();
    params.not_before = epoch + since(std::time::SystemTime::now() - DAY * 400);
    params.not_after = epoch + since(not_after);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("lbcq.pem"),
        params.self_signed(&key).unwrap().pem(),
    )
    .unwrap();
    std::fs::write(dir.join("lbcq.key"), key.serialize_pem()).unwrap();
    format!("{GOOD}[[listener]]\naddress = \"127.0.0.1:0\"\n[[listener.tls.certificate]]\ncert = \"lbcq.pem\"\nkey = \"lbcq.key\"\n")
}

#[test]
fn check_refuses_an_expired_listener_certificate() {
    let path = temp_file("expired", "");
    let dir = path.parent().unwrap();
    let text = config_with_certificate(dir, std::time::SystemTime::now() - DAY * 2);
    std::fs::write(&path, text).unwrap();
    let out = check(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(":13:8: error: listener[1].tls.certificate[0].cert = \"lbcq.pem\": the certificate expired on"), "{stderr}");
}

#[test]
fn check_warns_about_a_listener_certificate_expiring_within_thirty_days_and_exits_zero() {
    let path = temp_file("expiring", "");
    let dir = path.parent().unwrap();
    let text = config_with_certificate(dir, std::time::SystemTime::now() + DAY * 10);
    std::fs::write(&path, text).unwrap();
    let out = check(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(":13:8: warning: listener[1].tls.certificate[0].cert = \"lbcq.pem\": the certificate expires on"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 warning(s)"));
}

#[test]
fn check_warns_when_refreshing_is_off_with_the_oslc_preset_and_exits_zero() {
    let text = GOOD.replace("[\"oauth2\"]", "[\"oslc\"]");
    let (code, stderr) = check_text("oslc-no-refresh", &text);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(": warning: refresh.exchange: refreshing is off"),
        "{stderr}"
    );
}

#[test]
fn check_prints_a_missing_file_once_and_exits_one() {
    let out = check(std::path::Path::new("/nonexistent/tokenroute/config.toml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn check_exits_two_on_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_tokenroute"))
        .args(["check", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn run_refuses_a_config_with_the_messages_check_prints() {
    let text = format!("{GOOD}[health]\nexpect_status = 999\n[upstream]\nconnect_timeout = 30\n");
    let path = temp_file("run-refused", &text);
    let checked = String::from_utf8_lossy(&check(&path).stderr).into_owned();
    let run = Command::new(env!("CARGO_BIN_EXE_tokenroute"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let ran = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{ran}");
    let findings = finding_lines(&checked);
    assert_eq!(findings.len(), 2, "{checked}");
    for line in findings {
        assert!(ran.contains(line), "run did not say {line:?}:\n{ran}");
    }
}

#[tokio::test]
async fn reload_refuses_a_config_with_the_messages_check_prints() {
    let origin = Origin::start("n1").await;
    let good = config_text(&[("n1", origin.url())], "");
    let proxy = spawn_proxy(&good).await;
    let path = temp_file(
        "reload-refused",
        &format!("{good}[health]\nexpect_status = 999\n[upstream]\nconect_timeout = \"2s\"\n"),
    );
    let checked = String::from_utf8_lossy(&check(&path).stderr).into_owned();
    let refused = tokenroute::server::reload::reload_from_file(&proxy.proxy, &path)
        .unwrap_err()
        .report();
    let errors = finding_lines(&checked)
        .into_iter()
        .filter(|l| l.contains(": error: "))
        .count();
    assert_eq!(errors, 2, "{checked}");
    assert_eq!(finding_lines(&refused), finding_lines(&checked));
    let (status, served_by, _) = get(&format!("{}/x", proxy.url())).await;
    assert_eq!((status.as_u16(), served_by.as_str()), (200, "n1"));
}

#[tokio::test]
async fn run_serves_requests_and_exits_zero_on_sigterm() {
    let origin = Origin::start("n1").await;
    let path = temp_file("run", &config_text(&[("n1", origin.url())], ""));
    let running = spawn_binary(&path);
    let (mut guard, addr) = (running.child, running.addr);
    let (status, served_by, _) = get(&format!("http://{addr}/x")).await;
    assert_eq!((status.as_u16(), served_by.as_str()), (200, "n1"));
    let mut child = guard.0.take().unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn sighup_applies_an_edited_config_without_a_restart() {
    let a = Origin::start("a").await;
    let b = Origin::start("b").await;
    let path = temp_file("hup", &config_text(&[("a", a.url())], ""));
    let running = spawn_binary(&path);
    let (guard, addr) = (running.child, running.addr);
    assert_eq!(get(&format!("http://{addr}/x")).await.1, "a");
    // Only the listener keeps its address; the admin API stays on a port of its own.
    let edited = config_text(&[("b", b.url())], "").replacen("127.0.0.1:0", &addr, 1);
    std::fs::write(&path, edited).unwrap();
    let pid = guard.0.as_ref().unwrap().id();
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let url = format!("http://{addr}/x");
    eventually(
        "the edited config serves",
        Duration::from_secs(10),
        async || get(&url).await.1 == "b",
    )
    .await;
}
