//! TLS material: reading PEM files and building the rustls configs.
//!
//! Only forward-secret AEAD suites are offered (rustls offers no others), the
//! minimum version comes from config, ALPN offers `h2` then `http/1.1`.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring;
use rustls::server::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Tls, TlsVersion};

/// Reads every certificate of a PEM file, leaf first.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, &e))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE block found", path.display()));
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, &e))
}

fn pem_error(path: &Path, error: &rustls_pki_types::pem::Error) -> String {
    match error {
        rustls_pki_types::pem::Error::Io(io) => format!("cannot read {}: {io}", path.display()),
        rustls_pki_types::pem::Error::NoItemsFound => {
            format!(
                "{}: no PEM block of the expected kind found",
                path.display()
            )
        }
        other => format!("{}: not valid PEM: {other}", path.display()),
    }
}

static TLS12_AND_UP: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];
static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

fn protocol_versions(min: TlsVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match min {
        TlsVersion::V1_2 => &TLS12_AND_UP,
        TlsVersion::V1_3 => &TLS13_ONLY,
    }
}

/// The listener's rustls config. Fails when the key does not fit the certificate.
pub fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(protocol_versions(tls.min_version))?
        .with_no_client_auth()
        .with_single_cert(tls.certs.clone(), tls.key.clone_key())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's suite order decides (AES-256-GCM first), not whatever a
    // client lists first; TLS scanners report a client-chosen order as HIGH.
    config.ignore_client_order = true;
    // 0-RTT data is replayable; a credential-injecting proxy must never act on it.
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}
