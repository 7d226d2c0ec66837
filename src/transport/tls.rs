//! TLS on both legs: the server side (PEM loading, certificate choice by SNI, ALPN `h2` / `http/1.1`) and the
//! client side towards nodes (a CA bundle). TLS 1.2 and 1.3 only, with one crypto provider.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate entry that could not be loaded: which one (index in the list), which value, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsConfigError {
    /// Index of the `[[listener.tls.certificate]]` entry.
    pub index: usize,
    /// The offending value (a path or a name).
    pub value: String,
    /// What went wrong.
    pub message: String,
}

/// One certificate entry of a TLS listener, as configured (paths relative to the config file's directory).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CertificateSource<'a> {
    /// PEM certificate chain, leaf first.
    pub cert: &'a str,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: &'a str,
    /// SNI names this certificate answers for; empty means "default only".
    pub server_names: &'a [String],
}

/// The crypto provider used on both sides (ring: small, no C toolchain beyond a compiler).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS listener's server config, and the leaf certificate of each entry (in entry order) as it was loaded,
/// so what is reported about a certificate (its expiry) is what the listener serves.
#[derive(Debug, Clone)]
pub(crate) struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub leaves: Vec<CertificateDer<'static>>,
}

/// Builds a server config from certificate entries; the first entry is the default certificate.
pub(crate) fn server_config(
    certificates: &[CertificateSource<'_>],
    base_dir: &Path,
) -> Result<ServerTls, TlsConfigError> {
    if certificates.is_empty() {
        return Err(TlsConfigError {
            index: 0,
            value: "[]".into(),
            message: "a TLS listener needs at least one certificate".into(),
        });
    }
    let provider = provider();
    let mut by_name = HashMap::new();
    let mut default = None;
    let mut leaves = Vec::with_capacity(certificates.len());
    for (index, entry) in certificates.iter().enumerate() {
        let err = |value: &str, message: String| TlsConfigError {
            index,
            value: format!("{value:?}"),
            message,
        };
        let cert_path = base_dir.join(entry.cert);
        let key_path = base_dir.join(entry.key);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| err(entry.cert, format!("cannot read certificate chain: {e}")))?;
        if chain.is_empty() {
            return Err(err(entry.cert, "no CERTIFICATE block in file".into()));
        }
        leaves.push(chain[0].clone());
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| err(entry.key, format!("cannot read private key: {e}")))?;
        let certified = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| err(entry.key, format!("key does not fit the certificate: {e}")))?;
        let certified = Arc::new(certified);
        for name in entry.server_names {
            by_name.insert(name.to_ascii_lowercase(), certified.clone());
        }
        default.get_or_insert(certified);
    }
    let resolver = SniResolver {
        by_name,
        default: default.expect("at least one certificate was loaded"),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsConfigError {
            index: 0,
            value: String::new(),
            message: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
        leaves,
    })
}

/// Builds the client config for nodes, trusting the CAs in `ca_file` (none: an empty store, fine for http
/// nodes).
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| format!("cannot read CA bundle: {e}"))?;
        if certs.is_empty() {
            return Err("no CERTIFICATE block in CA bundle".into());
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("unusable CA certificate: {e}"))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Picks a certificate by SNI name, falling back to the first configured one.
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|name| self.by_name.get(&name.to_ascii_lowercase()))
            .unwrap_or(&self.default);
        Some(chosen.clone())
    }
}
