//! TLS for the consumer's clients: trust exactly the CA certificates given (a stand-in deployment has no
//! public CA), read from a PEM file whose errors name it.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::super::SimError;
#[cfg(doc)]
use super::FlowOptions;

/// Builds the rustls client configuration, trusting the CA certificates in `ca_pem` (none: `https` fails).
pub fn tls_client_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, SimError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots
                .add(cert.map_err(SimError::CaPem)?)
                .map_err(SimError::Tls)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(SimError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Reads a PEM CA bundle for [`FlowOptions::ca_pem`]; the error names the file.
pub async fn read_ca_file(path: &std::path::Path) -> Result<Vec<u8>, SimError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| SimError::CaFile {
            path: path.display().to_string(),
            source,
        })
}
