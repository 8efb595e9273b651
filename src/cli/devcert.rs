//! Self-signed development certificates (rcgen, ECDSA P-256).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    #[error("cannot generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The files a dev certificate is written to.
#[derive(Debug, Clone)]
pub struct DevCertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl DevCertPaths {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            cert: dir.join("gateway.crt"),
            key: dir.join("gateway.key"),
        }
    }
}

/// A certificate and its PKCS#8 key, both PEM.
pub struct DevCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// How long a dev certificate is valid: rcgen's default runs to the year
/// 4096, which TLS scanners rightly flag; 397 days is the longest validity
/// browsers accept for a server certificate.
const VALIDITY: time::Duration = time::Duration::days(397);

pub fn generate(names: &[String]) -> Result<DevCert, DevCertError> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + VALIDITY;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(DevCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes a new certificate for `names` into `dir` (key mode 0600).
pub fn write(dir: &Path, names: &[String]) -> Result<DevCertPaths, DevCertError> {
    let paths = DevCertPaths::in_dir(dir);
    let cert = generate(names)?;
    fs::create_dir_all(dir).map_err(|source| DevCertError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_private(&paths.key, cert.key_pem.as_bytes())?;
    fs::write(&paths.cert, cert.cert_pem).map_err(|source| DevCertError::Write {
        path: paths.cert.clone(),
        source,
    })?;
    Ok(paths)
}

/// Creates (or truncates) a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), DevCertError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = options.open(path).and_then(|mut file| {
        // `mode` only applies when the file is created; tighten an old one too.
        #[cfg(unix)]
        fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(contents)
    });
    result.map_err(|source| DevCertError::Write {
        path: path.to_path_buf(),
        source,
    })
}
