//! The real `tokenroute` binary as a child process, for tests that need a process of its own (signals, memory,
//! crashes).
// Memory and the admin address are read only by stand-in tests.
#![cfg_attr(not(feature = "sim"), allow(dead_code))]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running `tokenroute --config path`, killed when dropped.
pub struct RunningBinary {
    pub child: KillOnDrop,
    /// The first proxy listener's address, as it logged it.
    pub addr: String,
    /// The admin API's address, when enabled.
    pub admin: Option<SocketAddr>,
    /// Every line the process wrote to stderr so far (its log).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl RunningBinary {
    /// The log lines written so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends `signal` (`TERM`, `INT`, `USR1`, ...) to the process with `kill`.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal}");
    }

    /// Waits up to `deadline` for the process to exit; its exit status, or `None` if it still runs.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.0.as_mut().expect("still running");
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child.0 = None;
                return Some(status);
            }
            if tokio::time::Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.0.as_ref().expect("still running").id()
    }

    /// Resident memory of the process, from `/proc/<pid>/statm`.
    pub fn resident_bytes(&self) -> u64 {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid())).unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }
}

/// Starts `tokenroute --config path` and waits until it logged its listener (and admin) address.
pub fn spawn_binary(path: &std::path::Path) -> RunningBinary {
    spawn_binary_with_env(path, &[("RUST_LOG", Some("info"))])
}

/// The address a listening line names, and whether it is the admin API's: from a text line
/// (`... addr=1.2.3.4:5 ...`) or a JSON one (`{"addr":"1.2.3.4:5",...}`).
fn listening(line: &str) -> Option<(bool, String)> {
    if line.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(line).ok()?;
        let addr = json["addr"].as_str()?.to_owned();
        let message = json["message"].as_str().unwrap_or_default();
        return if json.get("listener").is_some() {
            Some((false, addr))
        } else {
            message
                .contains("admin API listening")
                .then_some((true, addr))
        };
    }
    let rest = line.split("addr=").nth(1)?;
    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    if line.contains("listener=") {
        Some((false, addr))
    } else if line.contains("admin API listening") {
        Some((true, addr))
    } else {
        None
    }
}

/// [`spawn_binary`] with environment variables set (`Some`) or removed (`None`).
pub fn spawn_binary_with_env(
    path: &std::path::Path,
    env: &[(&str, Option<&str>)],
) -> RunningBinary {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenroute"));
    command.arg("--config").arg(path).stderr(Stdio::piped());
    for (name, value) in env {
        match value {
            Some(v) => command.env(name, v),
            None => command.env_remove(name),
        };
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let guard = KillOnDrop(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(found) = listening(&line) {
                let _ = tx.send(found);
            }
            lines.lock().unwrap().push(line);
        }
    });
    let mut addr = None;
    let mut admin = None;
    // The admin API logs as soon as it runs; the listener line is what the tests wait for.
    while addr.is_none() {
        let (is_admin, value) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the proxy logs its address");
        if is_admin {
            admin = value.parse().ok();
        } else {
            addr = Some(value);
        }
    }
    if admin.is_none() {
        admin = rx
            .recv_timeout(Duration::from_millis(500))
            .ok()
            .filter(|(is_admin, _)| *is_admin)
            .and_then(|(_, v)| v.parse().ok());
    }
    RunningBinary {
        child: guard,
        addr: addr.unwrap(),
        admin,
        log,
    }
}

/// Kills the child if the test fails before it exits on its own.
pub struct KillOnDrop(pub Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
