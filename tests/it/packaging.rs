//! What ships beside the binary: the deployment examples pass `check`, the systemd unit verifies, the container
//! image builds. Tools that are not installed skip their test with a printed reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fresh_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenroute-pkg-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The certificates the examples name (`certs/lbcq.pem`, `certs/lbcq.key`, `certs/ca.pem`), made afresh.
fn write_example_certs(dir: &Path) {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["lbcq".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(certs.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(certs.join("lbcq.pem"), leaf.pem()).unwrap();
    std::fs::write(certs.join("lbcq.key"), leaf_key.serialize_pem()).unwrap();
}

fn check_with_env(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokenroute"))
        .args(["check", "--config"])
        .arg(path)
        .env("TOKENROUTE_ADMIN_TOKEN", "example-admin-token")
        .env("TOKENROUTE_REFRESH_USER", "alice")
        .env("TOKENROUTE_REFRESH_PASSWORD", "alice-pass")
        .output()
        .unwrap()
}

#[test]
fn every_deployment_example_passes_check_without_a_finding() {
    let mut examples: Vec<PathBuf> = std::fs::read_dir(repo().join("examples/deploy"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    examples.sort();
    let names: Vec<String> = examples
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "clearquest-tls.toml",
        "oauth2-server.toml",
        "ha-pair.toml",
        "stand-in.toml",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing {want} in {names:?}"
        );
    }
    let dir = fresh_dir("examples");
    write_example_certs(&dir);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    for example in &examples {
        // The state directory is the service's (/var/lib/tokenroute); here a temporary one stands in for it.
        let text = std::fs::read_to_string(example)
            .unwrap()
            .replace("/var/lib/tokenroute", &state.to_string_lossy());
        let path = dir.join(example.file_name().unwrap());
        std::fs::write(&path, text).unwrap();
        let out = check_with_env(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            (out.status.code(), stderr.as_ref()),
            (Some(0), ""),
            "{}",
            example.display()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: systemd-analyze is not installed");
        return;
    }
    let unit = std::fs::read_to_string(repo().join("contrib/tokenroute.service")).unwrap();
    for want in [
        "ProtectSystem=strict",
        "StateDirectory=tokenroute",
        "DynamicUser=yes",
        "CapabilityBoundingSet=\n",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.contains(want), "the unit lacks {want:?}");
    }
    // Stopping waits longer than the default drain (30s).
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(stop > 30, "TimeoutStopSec={stop}s");
    // verify wants the executable to exist: point the unit at the binary under test.
    let dir = fresh_dir("systemd");
    let path = dir.join("tokenroute.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/tokenroute",
            env!("CARGO_BIN_EXE_tokenroute"),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown or misspelt keys are only warnings (exit 0): any output is a finding.
    assert_eq!((out.status.code(), stderr.as_ref()), (Some(0), ""));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A container engine that answers, if any.
fn container_engine() -> Result<&'static str, String> {
    let mut reasons = Vec::new();
    for engine in ["docker", "podman"] {
        match Command::new(engine).arg("info").output() {
            Ok(out) if out.status.success() => return Ok(engine),
            Ok(out) => reasons.push(format!(
                "{engine} info failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )),
            Err(e) => reasons.push(format!("{engine}: {e}")),
        }
    }
    Err(reasons.join("; "))
}

#[test]
fn container_image_builds_and_runs_as_non_root() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    for want in [
        "cargo build --release --locked",
        "USER tokenroute",
        "VOLUME [\"/var/lib/tokenroute\"]",
        "/etc/tokenroute/config.toml",
    ] {
        assert!(dockerfile.contains(want), "the Dockerfile lacks {want:?}");
    }
    let engine = match container_engine() {
        Ok(engine) => engine,
        Err(reason) => {
            println!("skipped building the image: no container engine ({reason})");
            return;
        }
    };
    let tag = format!("tokenroute-test:{}", std::process::id());
    let built = Command::new(engine)
        .args(["build", "-t", &tag, "."])
        .current_dir(repo())
        .status()
        .unwrap();
    assert!(built.success(), "{engine} build failed");
    let out = Command::new(engine)
        .args([
            "run",
            "--rm",
            "--entrypoint",
            "/usr/local/bin/tokenroute",
            &tag,
            "--version",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let user = Command::new(engine)
        .args(["run", "--rm", "--entrypoint", "/usr/bin/id", &tag, "-u"])
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&user.stdout).trim(), "0");
    let _ = Command::new(engine).args(["rmi", &tag]).status();
}
