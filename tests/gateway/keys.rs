//! `[tls] key` in each PEM form operators have: PKCS#8, PKCS#1 (RSA) and
//! SEC1 (EC). The non-PKCS#8 keys are made with the openssl command line.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn openssl_available() -> bool {
    tool_available("openssl", "version", "apt-get install openssl")
}

#[tokio::test]
async fn pkcs1_rsa_and_sec1_ec_keys_serve_tls() {
    if !openssl_available() {
        return;
    }
    for (label, keygen) in [
        (
            "RSA PRIVATE KEY",
            &["genrsa", "-traditional", "-out", "gateway.key", "2048"][..],
        ),
        (
            "EC PRIVATE KEY",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "gateway.key",
            ][..],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        assert!(openssl(dir.path(), keygen), "openssl {keygen:?}");
        let key = std::fs::read_to_string(dir.path().join("gateway.key")).unwrap();
        assert!(
            key.contains(&format!("BEGIN {label}")),
            "{label}: {key:.40}"
        );
        assert!(openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "gateway.key",
                "-out",
                "gateway.crt",
                "-days",
                "30",
                "-subj",
                "/CN=localhost",
                "-extensions",
                "v3_req",
                "-addext",
                "subjectAltName=DNS:localhost"
            ]
        ));
        let stack = Setup::default()
            .edit(
                "cert = \"gateway.crt\"\nkey = \"gateway.key\"",
                &format!(
                    "cert = \"{}\"\nkey = \"{}\"",
                    dir.path().join("gateway.crt").display(),
                    dir.path().join("gateway.key").display()
                ),
            )
            .with_ca(std::fs::read(dir.path().join("gateway.crt")).unwrap())
            .start()
            .await;
        assert_eq!(
            stack.get("/sim/status/204", &[]).await.status,
            204,
            "{label}"
        );
    }
}
