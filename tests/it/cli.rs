//! The `tokenroute` binary: `check` reports every bad key, `run` serves and drains on SIGTERM.

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
    assert_eq!(out.status.code(), Some(2));
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
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":3:") && stderr.contains("max_conections"),
        "{stderr}"
    );
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
