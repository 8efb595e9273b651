//! `tls.pfx`: the gateway serves a PKCS#12 certificate as IIS and the
//! Windows certificate manager export it, with its password from a file or
//! the environment, and picks up a replaced file like cert + key.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use p12_keystore::{KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
use psu_gateway::cli::devcert;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use crate::support::*;

const PEM_LINES: &str = "cert = \"gateway.crt\"\nkey = \"gateway.key\"";

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// A PFX as modern Windows exports it (AES-256, HMAC-SHA-256), written in
/// pure Rust.
fn pfx(cert: &devcert::DevCert, password: &str) -> Vec<u8> {
    pfx_from_pem(&cert.cert_pem, &cert.key_pem, password)
}

/// The same from a PEM certificate and key.
pub(crate) fn pfx_from_pem(cert_pem: &str, key_pem: &str, password: &str) -> Vec<u8> {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let key = PrivateKey::from_der(key.secret_der()).unwrap();
    let leaf = p12_keystore::Certificate::from_der(&der(cert_pem)).unwrap();
    let chain = PrivateKeyChain::new(b"gateway".to_vec(), key, [leaf]);
    let mut store = KeyStore::new();
    store.add_entry("gateway", KeyStoreEntry::PrivateKeyChain(chain));
    store.writer(password).write().unwrap()
}

/// The leaf a new TLS connection is served.
async fn served_leaf(addr: std::net::SocketAddr, trusted: &[u8]) -> Vec<u8> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(trusted)));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let conn = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake with a trusted certificate");
    conn.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn names() -> Vec<String> {
    vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
}

/// A gateway on `pfx_lines` (absolute paths into `dir`), trusting `cert`.
async fn start(dir: &Path, cert: &devcert::DevCert, pfx_lines: &str) -> Stack {
    let lines = pfx_lines.replace("{dir}", &dir.display().to_string());
    Setup::default()
        .edit(PEM_LINES, &lines)
        .with_ca(cert.cert_pem.clone().into_bytes())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pfx_with_a_password_file_is_served_and_a_replaced_one_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let first = devcert::generate(&names()).unwrap();
    std::fs::write(dir.path().join("gateway.pfx"), pfx(&first, "S3cret pfx")).unwrap();
    // As Notepad saves it: the password, then CRLF.
    std::fs::write(dir.path().join("pfx-password"), "S3cret pfx\r\n").unwrap();
    let lines = "pfx = \"{dir}/gateway.pfx\"\npfx_password_file = \"{dir}/pfx-password\"";
    let stack = start(dir.path(), &first, lines).await;
    assert_eq!(
        served_leaf(stack.addr, stack.ca()).await,
        der(&first.cert_pem)
    );
    // The whole job on it: sign in, usersession with the injected token.
    let cookie = stack.sign_in("admin", "admin").await;
    let reply = stack
        .get("/api/v1/usersession", &[("cookie", &cookie)])
        .await;
    assert_eq!(reply.status, 200);

    let next = devcert::generate(&names()).unwrap();
    let both = format!("{}{}", first.cert_pem, next.cert_pem);
    std::fs::write(dir.path().join("pfx.new"), pfx(&next, "S3cret pfx")).unwrap();
    std::fs::rename(dir.path().join("pfx.new"), dir.path().join("gateway.pfx")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_leaf(stack.addr, both.as_bytes()).await != der(&next.cert_pem) {
        assert!(
            Instant::now() < deadline,
            "the new PFX was not served within 10s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_pfx_password_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let cert = devcert::generate(&names()).unwrap();
    std::fs::write(dir.path().join("gateway.pfx"), pfx(&cert, "from-env")).unwrap();
    // Unique to this test: the variable is read while the config loads.
    std::env::set_var("PSU_GATEWAY_TEST_PFX_PASSWORD", "from-env");
    let lines = "pfx = \"{dir}/gateway.pfx\"\npfx_password_env = \"PSU_GATEWAY_TEST_PFX_PASSWORD\"";
    let stack = start(dir.path(), &cert, lines).await;
    assert_eq!(
        served_leaf(stack.addr, stack.ca()).await,
        der(&cert.cert_pem)
    );
}

/// What Windows' certificate export writes by default (TripleDES-SHA1),
/// made by openssl.
#[tokio::test]
async fn a_legacy_triple_des_pfx_from_openssl_is_served() {
    if !tool_available("openssl", "version", "apt-get install openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cert = devcert::generate(&names()).unwrap();
    std::fs::write(dir.path().join("c.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("k.pem"), &cert.key_pem).unwrap();
    let out = Command::new("openssl")
        .args([
            "pkcs12",
            "-export",
            "-in",
            "c.pem",
            "-inkey",
            "k.pem",
            "-out",
            "gateway.pfx",
        ])
        .args([
            "-keypbe",
            "PBE-SHA1-3DES",
            "-certpbe",
            "PBE-SHA1-3DES",
            "-macalg",
            "sha1",
        ])
        .args(["-passout", "pass:legacy"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.path().join("pw"), "legacy\n").unwrap();
    let lines = "pfx = \"{dir}/gateway.pfx\"\npfx_password_file = \"{dir}/pw\"";
    let stack = start(dir.path(), &cert, lines).await;
    assert_eq!(
        served_leaf(stack.addr, stack.ca()).await,
        der(&cert.cert_pem)
    );
}

#[test]
fn a_wrong_pfx_password_is_a_config_error_that_never_prints_it() {
    let dir = crate::cli::workdir();
    let cert = devcert::generate(&names()).unwrap();
    std::fs::write(dir.path().join("gateway.pfx"), pfx(&cert, "right-password")).unwrap();
    std::fs::write(dir.path().join("pw"), "Wrong-Password-42\n").unwrap();
    let config = crate::cli::valid_config().replace(
        PEM_LINES,
        "pfx = \"gateway.pfx\"\npfx_password_file = \"pw\"",
    );
    let out = crate::cli::check(dir.path(), &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("gateway.toml:6:7: tls.pfx: "), "{stderr}");
    assert!(
        stderr.contains("cannot open this PKCS#12 file with its password"),
        "{stderr}"
    );
    assert!(!stderr.contains("Wrong-Password-42"), "{stderr}");
}
