//! TLS for subscribers (`--tls on`): rustls (ring) client settings that trust exactly the
//! target's certificate, by its SPKI hash (`--tls-spki`, what `pushlab-server
//! --tls-self-signed` prints), by a certificate or CA file (`--tls-ca`, PEM), or by the
//! certificate itself (tests and `compare` hand over the embedded server's).
//!
//! ```text
//! pushlab-server --tls-self-signed   ->  tls: self-signed certificate, spki sha256 q4b0Ry1O...=
//! pushlab-loadgen run --tls on --http 2 --tls-spki q4b0Ry1O...= --target http://127.0.0.1:8443
//! ```
//!
//! A pin checks the leaf's key only (as Chromium's `--ignore-certificate-errors-spki-list`
//! and curl's `--pinnedpubkey` do): names and dates are not checked; the handshake signature
//! is, so the server must hold the pinned key.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::error::ConfigError;

/// What a subscriber trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsTrust {
    /// SHA-256 of the leaf certificate's SubjectPublicKeyInfo (DER), standard base64.
    SpkiSha256(String),
    /// Certificates (PEM) to trust as roots: the server's own, or its CA.
    CaFile(PathBuf),
    /// One certificate (DER) to trust as a root.
    CertDer(Vec<u8>),
}

impl TlsTrust {
    /// How the result file names it (never the certificate itself).
    pub fn describe(&self) -> String {
        match self {
            TlsTrust::SpkiSha256(p) => format!("spki sha256 {p}"),
            TlsTrust::CaFile(f) => format!("ca file {}", f.display()),
            TlsTrust::CertDer(d) => format!("certificate ({} B DER)", d.len()),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// rustls client settings offering the ALPN ids `alpn` (`h2`, `http/1.1`).
///
/// # Errors
/// A pin that is not 32 bytes of base64, a CA file that cannot be read or holds no
/// certificate.
pub fn client_config(trust: &TlsTrust, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, ConfigError> {
    let bad = |why: String| ConfigError::Invalid {
        flag: "--tls-spki/--tls-ca",
        why,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut config = match trust {
        TlsTrust::SpkiSha256(pin) => {
            let sha256 = base64::engine::general_purpose::STANDARD
                .decode(pin.trim())
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| bad(format!("{pin:?} is not a base64 SHA-256 hash")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SpkiPin {
                    sha256,
                    algorithms: provider().signature_verification_algorithms,
                }))
                .with_no_client_auth()
        }
        TlsTrust::CaFile(path) => {
            let pem = std::fs::read(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
            let mut found = 0;
            for cert in rustls_pemfile_certs(&pem) {
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("{}: {e}", path.display())))?;
                found += 1;
            }
            if found == 0 {
                return Err(bad(format!("{}: no CERTIFICATE in it", path.display())));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsTrust::CertDer(der) => {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| bad(e.to_string()))?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The CERTIFICATE blocks of a PEM file, decoded.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// The name the TLS client sends (SNI) and checks against a CA-signed certificate.
pub fn server_name(host_header: &str) -> ServerName<'static> {
    let host = host_header
        .rsplit_once(':')
        .map_or(host_header, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
}

/// Accepts the leaf certificate whose SPKI hashes to the pin; checks handshake signatures.
#[derive(Debug)]
struct SpkiPin {
    sha256: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SpkiPin {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| rustls::Error::General(format!("certificate: {e}")))?;
        let spki = cert.subject_public_key_info();
        let got = ring::digest::digest(&ring::digest::SHA256, spki.as_ref());
        if got.as_ref() == self.sha256.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate's spki sha256 {} is not the pinned one",
                base64::engine::general_purpose::STANDARD.encode(got.as_ref())
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pins_and_files_are_clear_errors() {
        for pin in ["", "not base64!", "AAAA"] {
            let e = client_config(&TlsTrust::SpkiSha256(pin.into()), &[b"h2"]).unwrap_err();
            assert!(e.to_string().contains("SHA-256"), "{e}");
        }
        let e = client_config(&TlsTrust::CaFile("/nonexistent.pem".into()), &[]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent.pem"), "{e}");
        let ok = client_config(
            &TlsTrust::SpkiSha256(base64::engine::general_purpose::STANDARD.encode([7u8; 32])),
            &[b"h2"],
        )
        .unwrap();
        assert_eq!(ok.alpn_protocols, vec![b"h2".to_vec()]);
        assert!(matches!(
            server_name("127.0.0.1:8443"),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("localhost:8443"),
            ServerName::DnsName(_)
        ));
    }
}
