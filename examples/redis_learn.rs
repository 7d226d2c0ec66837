//! The cost of a learn with the Redis store on (issue 11): what a learning response adds before it is relayed.
//!
//! Starts its own `redis-server` (Debian package) on a free port, joins it as an instance would
//! ([`RedisStore::start`]), then learns the same N fingerprints three ways, one after another as the response
//! path does (each awaited before the next):
//!
//! - the in-process table alone (the memory store: the baseline),
//! - the table and then Redis ([`RedisStore::learn`]: one `EVALSHA` round trip of the learn script, which also
//!   publishes the change),
//!
//! and prints wall time and this process's CPU time (user + system, from `/proc/self/stat`) per learn. Redis's
//! own CPU is not counted: it is another process, on a machine of its own in a real deployment.
//!
//! ```sh
//! cargo run --release --example redis_learn            # ~5 s; needs redis-server on PATH
//! ```
// Wall-clock time of real work is what this measures: std's clock, not tokio's pausable one.
#![allow(clippy::disallowed_types)]

use std::num::NonZeroUsize;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokenroute::affinity::{unix_now, FingerprintKey, NodeId, RedisSettings, RedisStore, Table};
use tokenroute::oauth::CredentialKind;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const LEARNS: usize = 20_000;
const TTL: Duration = Duration::from_secs(3600);

/// This process's CPU time so far (user + system), from `/proc/self/stat` (clock ticks of 10 ms).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .expect("stat format")
        .1
        .split(' ')
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn main() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = std::env::temp_dir().join(format!("tokenroute-redis-learn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH (apt-get install redis-server)");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let key = FingerprintKey::generate();
        let nodes: Vec<(String, NodeId)> = (0..3)
            .map(|i| (format!("lbcq_{}", i + 1), NodeId::new(i).unwrap()))
            .collect();
        let table = Table::new(4 * LEARNS);
        let settings = RedisSettings {
            url: format!("redis://127.0.0.1:{port}/0"),
            ca_file: None,
            password: None,
            key_prefix: "tokenroute:".into(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            pool_size: NonZeroUsize::new(2).unwrap(),
        };
        let store = RedisStore::new(settings, table.clone(), key.check_value(), nodes).unwrap();
        let (tasks, cancel) = (TaskTracker::new(), CancellationToken::new());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let _ = store.start(&tasks, cancel.clone()).await;
            if store.is_up() || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(store.is_up(), "redis-server did not answer");
        let fps: Vec<_> = (0..LEARNS)
            .map(|i| key.fingerprint(&format!("{i:032x}")))
            .collect();
        let owner = NodeId::new(1).unwrap();
        let now = unix_now();

        let (wall0, cpu0) = (Instant::now(), cpu());
        for fp in &fps {
            table.learn(*fp, CredentialKind::AccessToken, owner, TTL, now);
        }
        let (memory_wall, memory_cpu) = (wall0.elapsed(), cpu() - cpu0);

        let (wall0, cpu0) = (Instant::now(), cpu());
        for fp in &fps {
            table.learn(*fp, CredentialKind::AccessToken, owner, TTL, now);
            store
                .learn(*fp, CredentialKind::AccessToken, owner, TTL, now)
                .await;
        }
        let (redis_wall, redis_cpu) = (wall0.elapsed(), cpu() - cpu0);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / LEARNS as f64;
        println!("{LEARNS} learns, one at a time, each awaited (one current-thread runtime)");
        // The memory store's whole run can be shorter than one 10 ms clock tick: its wall time is its CPU.
        println!(
            "memory store: {:.2} us wall per learn ({} ms CPU in all)",
            per(memory_wall),
            memory_cpu.as_millis()
        );
        println!(
            "redis store:  {:.2} us wall, {:.2} us CPU per learn (this process; Redis's own CPU not counted)",
            per(redis_wall),
            per(redis_cpu)
        );
        cancel.cancel();
        tasks.close();
    });
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
