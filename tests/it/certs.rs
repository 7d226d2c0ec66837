//! The certificate recipe in `certs/README.md` works with tokenroute's TLS stack (rustls): run as written, its
//! leaves verify as server certificates (no `CaUsedAsEndEntity`) for their DNS and IP names, and `check`
//! accepts a config serving them.

use std::process::Command;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// The first `sh` block of certs/README.md.
fn recipe() -> String {
    let readme = include_str!("../../certs/README.md");
    let start = readme.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = start + readme[start..].find("```").expect("its end");
    readme[start..end].to_owned()
}

#[test]
fn certs_readme_recipe_makes_certificates_rustls_accepts() {
    if Command::new("openssl").arg("version").output().is_err() {
        println!("skipped: openssl is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tokenroute-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(recipe())
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the recipe failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    for (leaf, names) in [
        ("lbcq", ["lbcq", "lbcq.example.com", "127.0.0.1"]),
        ("lbcq-1", ["lbcq-1", "lbcq-1.example.com", "127.0.0.1"]),
        ("lbcq-3", ["lbcq-3", "lbcq-3.example.com", "127.0.0.1"]),
    ] {
        let cert = CertificateDer::from_pem_file(dir.join(format!("{leaf}.pem"))).unwrap();
        for name in names {
            let server_name = ServerName::try_from(name.to_owned()).unwrap();
            verifier
                .verify_server_cert(&cert, &[], &server_name, &[], UnixTime::now())
                .unwrap_or_else(|e| panic!("{leaf} as {name}: {e}"));
        }
        let wrong = ServerName::try_from("other.example.com").unwrap();
        assert!(verifier
            .verify_server_cert(&cert, &[], &wrong, &[], UnixTime::now())
            .is_err());
    }
    // The CA itself is refused as a server certificate: the mistake the recipe avoids.
    let ca = CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap();
    let name = ServerName::try_from("lbcq").unwrap();
    assert!(verifier
        .verify_server_cert(&ca, &[], &name, &[], UnixTime::now())
        .is_err());

    let config = "[[listener]]\naddress = \"127.0.0.1:0\"\n[[listener.tls.certificate]]\ncert = \"lbcq.pem\"\n\
                  key = \"lbcq.key\"\nserver_names = [\"lbcq\"]\n[admin]\naddress = \"127.0.0.1:0\"\n\
                  [upstream]\nca_file = \"ca.pem\"\n[[upstream.node]]\nname = \"lbcq_1\"\n\
                  url = \"https://127.0.0.1:9443\"\nsni = \"lbcq-1.example.com\"\n[routing]\npresets = [\"oauth2\"]\n";
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokenroute"))
        .args(["check", "--config"])
        .arg(dir.join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(0), "")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
