//! TLS for every transport (rustls on ring): a certificate from PEM files (`--tls-cert FILE
//! --tls-key FILE`) or a self-signed one made at start (`--tls-self-signed`, rcgen, for
//! `localhost`, `127.0.0.1` and `::1`). ALPN offers `h2` then `http/1.1` (RFC 7301), so a
//! browser takes HTTP/2 and WebSocket clients that ask for `http/1.1` get wss.
//!
//! A client pins the certificate by the SHA-256 of its SubjectPublicKeyInfo, in base64 (what
//! Chromium's `--ignore-certificate-errors-spki-list` and curl's `--pinnedpubkey sha256//`
//! take). The server prints it once on stderr and answers it at `GET /tls`:
//!
//! ```text
//! tls: self-signed certificate, spki sha256 q4b0Ry1Ot0uZ0f9p...=
//! GET /tls  ->  {"spki_sha256":"q4b0Ry1O...=","self_signed":true,"cert_pem":"-----BEGIN..."}
//! ```
//!
//! With TLS on, the same port still serves cleartext HTTP/1.1 and h2c with prior knowledge:
//! a connection whose first byte is a TLS handshake record (0x16, RFC 8446 §5.1) is TLS, any
//! other is cleartext. No HTTP/1.x method and not the HTTP/2 preface (RFC 9113 §3.4) starts
//! with that byte, so the lab can measure both on one server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN protocol ids the server offers, most preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The first byte of a TLS handshake record (ContentType handshake, RFC 8446 §5.1).
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// A ready TLS setup: the rustls server config and what a client needs to pin it.
#[derive(Clone)]
pub struct TlsSettings {
    /// rustls settings: the certificate chain and key, ALPN `h2`, `http/1.1`.
    pub server_config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate's SubjectPublicKeyInfo (DER), standard base64.
    pub spki_sha256: String,
    /// The leaf certificate, DER.
    pub cert_der: Vec<u8>,
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// Made at start by `--tls-self-signed` (else read from `--tls-cert`).
    pub self_signed: bool,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("spki_sha256", &self.spki_sha256)
            .field("self_signed", &self.self_signed)
            .finish_non_exhaustive()
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Pem { path: PathBuf, why: String },
    #[error("making a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsSettings {
    /// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`, made now (ECDSA P-256).
    ///
    /// # Errors
    /// [`TlsError::Generate`] if rcgen fails (it does not with these names).
    pub fn self_signed() -> Result<Self, TlsError> {
        let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        let made = rcgen::generate_simple_self_signed(names)?;
        let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        Self::new(vec![made.cert.der().clone()], key, true)
    }

    /// The chain in `cert` (PEM, leaf first) and the private key in `key` (PEM: PKCS#8,
    /// PKCS#1 or SEC1).
    ///
    /// # Errors
    /// A file that cannot be read, holds no certificate or no key, or a key that does not fit.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.into(),
                source,
            })
        };
        let pem_err = |path: &Path, why: String| TlsError::Pem {
            path: path.into(),
            why,
        };
        let chain = CertificateDer::pem_slice_iter(&read(cert)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem_err(cert, "no CERTIFICATE section".into()));
        }
        let key_der =
            PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| pem_err(key, e.to_string()))?;
        Self::new(chain, key_der, false)
    }

    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        self_signed: bool,
    ) -> Result<Self, TlsError> {
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)?;
        let spki = signing
            .public_key()
            .ok_or_else(|| rustls::Error::General("the key's public half is unknown".into()))?;
        let spki_sha256 = base64::engine::general_purpose::STANDARD
            .encode(ring::digest::digest(&ring::digest::SHA256, spki.as_ref()));
        let cert_der = chain[0].to_vec();
        let cert_pem = pem("CERTIFICATE", &cert_der);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(TlsSettings {
            server_config: Arc::new(config),
            spki_sha256,
            cert_der,
            cert_pem,
            self_signed,
        })
    }

    /// The one line the server prints on stderr at start.
    pub fn banner(&self) -> String {
        let what = if self.self_signed {
            "self-signed certificate"
        } else {
            "certificate"
        };
        format!("tls: {what}, spki sha256 {}", self.spki_sha256)
    }

    /// `GET /tls`: `{"spki_sha256":..,"self_signed":..,"cert_pem":..}`.
    pub fn json(&self) -> String {
        serde_json::json!({
            "spki_sha256": self.spki_sha256,
            "self_signed": self.self_signed,
            "cert_pem": self.cert_pem,
        })
        .to_string()
    }
}

/// `der` as a PEM section with 64-character lines (RFC 7468).
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_round_trips_through_pem_files() {
        let made = TlsSettings::self_signed().unwrap();
        assert!(made.self_signed);
        assert_eq!(made.spki_sha256.len(), 44, "{}", made.spki_sha256);
        assert!(made
            .banner()
            .starts_with("tls: self-signed certificate, spki sha256 "));
        let dir = std::env::temp_dir().join(format!("pushlab-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &made.cert_pem).unwrap();
        let again = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&key, again.signing_key.serialize_pem()).unwrap();
        // A key that is not the certificate's is refused by rustls.
        assert!(TlsSettings::from_pem_files(&cert, &key).is_err());
        std::fs::write(&cert, again.cert.pem()).unwrap();
        let loaded = TlsSettings::from_pem_files(&cert, &key).unwrap();
        assert!(!loaded.self_signed);
        assert_eq!(loaded.cert_der, again.cert.der().to_vec());
        assert_eq!(
            CertificateDer::from_pem_slice(loaded.cert_pem.as_bytes())
                .unwrap()
                .to_vec(),
            loaded.cert_der
        );
        std::fs::write(&cert, "not pem").unwrap();
        let why = TlsSettings::from_pem_files(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(why.contains("no CERTIFICATE"), "{why}");
        let missing = TlsSettings::from_pem_files(&dir.join("nope"), &key).unwrap_err();
        assert!(missing.to_string().starts_with("reading "), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
