//! The real `tokenroute` binary as a child process, for tests that need a process of its own (signals, memory,
//! crashes).
// Memory and the admin address are read only by stand-in tests.
#![cfg_attr(not(feature = "sim"), allow(dead_code))]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A running `tokenroute --config path`, killed when dropped.
pub struct RunningBinary {
    pub child: KillOnDrop,
    /// The first proxy listener's address, as it logged it.
    pub addr: String,
    /// The admin API's address, when enabled.
    pub admin: Option<SocketAddr>,
}

impl RunningBinary {
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenroute"))
        .arg("--config")
        .arg(path)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let guard = KillOnDrop(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Some(rest) = line.split("addr=").nth(1) else {
                continue;
            };
            let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
            if line.contains("listener=") {
                let _ = tx.send((false, addr));
            } else if line.contains("admin API listening") {
                let _ = tx.send((true, addr));
            }
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
