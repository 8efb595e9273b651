//! TLS material: reading PEM files or a PKCS#12 (PFX) file and building
//! the rustls configs.
//!
//! Only forward-secret AEAD suites are offered (rustls offers no others), the
//! minimum version comes from config, ALPN offers `h2` then `http/1.1`.

use std::path::Path;
use std::sync::Arc;

use p12_keystore::{KeyStore, Pkcs12ImportPolicy};

use rustls::crypto::ring;
use rustls::server::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{PfxPassword, Tls, TlsSource, TlsVersion};
use crate::secret::Secret;

/// A certificate chain (leaf first) and its private key.
pub type Material = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Reads the chain and key wherever `source` says they are.
pub fn read_source(source: &TlsSource) -> Result<Material, String> {
    match source {
        TlsSource::Pem { cert, key } => Ok((read_certs(cert)?, read_key(key)?)),
        TlsSource::Pfx { path, password } => read_pfx(path, &pfx_password(password)?),
    }
}

/// The PFX password: none, a file's first line, or an environment variable.
pub fn pfx_password(password: &PfxPassword) -> Result<Secret, String> {
    match password {
        PfxPassword::Empty => Ok(Secret::new("")),
        PfxPassword::File(path) => std::fs::read_to_string(path)
            .map(|text| Secret::new(first_line(&text)))
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        PfxPassword::Env(var) => std::env::var(var)
            .map(Secret::new)
            .map_err(|_| format!("environment variable {var} is not set")),
    }
}

/// A password file's password: its first line, without the line ending
/// (editors and `echo` add one; Notepad may add `\r\n`).
fn first_line(text: &str) -> &str {
    text.split(['\n', '\r']).next().unwrap_or("")
}

/// Reads a PKCS#12 file as IIS and the Windows certificate manager export
/// it: the first private key with its certificate chain, leaf first. The
/// error names the file, never the password.
pub fn read_pfx(path: &Path, password: &Secret) -> Result<Material, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let store = KeyStore::from_pkcs12(&data, password.expose(), Pkcs12ImportPolicy::Strict)
        .map_err(|_| {
            format!(
                "{}: cannot open this PKCS#12 file with its password (wrong password, or not a PFX file)",
                path.display()
            )
        })?;
    let Some((_, chain)) = store.private_key_chain() else {
        return Err(format!(
            "{}: holds no private key with its certificate (export the certificate with its private key)",
            path.display()
        ));
    };
    let certs: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    if certs.is_empty() {
        return Err(format!(
            "{}: the private key has no certificate",
            path.display()
        ));
    }
    let key = PrivateKeyDer::Pkcs8(chain.key().as_der().to_vec().into());
    Ok((certs, key))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_is_read_up_to_its_line_ending() {
        assert_eq!(first_line("s3cret\n"), "s3cret");
        assert_eq!(first_line("s3cret\r\n"), "s3cret");
        assert_eq!(first_line("with spaces \n2nd line"), "with spaces ");
        assert_eq!(first_line(""), "");
        assert_eq!(first_line("\n"), "");
    }

    #[test]
    fn an_unreadable_pfx_names_the_file_and_not_the_password() {
        let dir = std::env::temp_dir().join(format!("pfx-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("garbage.pfx");
        std::fs::write(&path, b"not a PKCS#12 file").unwrap();
        let error = read_pfx(&path, &Secret::new("Hunter2-pfx")).unwrap_err();
        assert!(error.contains("garbage.pfx"), "{error}");
        assert!(!error.contains("Hunter2-pfx"), "{error}");
        let missing = read_pfx(&dir.join("none.pfx"), &Secret::new("x")).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
