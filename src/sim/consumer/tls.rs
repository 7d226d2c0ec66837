//! TLS for the consumer's clients: trust exactly the CA certificates given (a stand-in deployment has no
//! public CA), read from a PEM file whose errors name it; or, for `--insecure`, any certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

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

/// Builds a rustls client configuration that accepts any server certificate, for any name, expired or not
/// (curl's `--insecure`): the connection is encrypted but the server is not authenticated. The handshake
/// signature is still checked, so the peer must hold the key of the certificate it shows.
pub fn insecure_tls_client_config() -> Result<rustls::ClientConfig, SimError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(SimError::Tls)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    )
}

/// The `--insecure` verifier: every certificate passes, handshake signatures are verified.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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
