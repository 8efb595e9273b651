//! testssl.sh against the gateway with a production-like certificate:
//! nothing rated MEDIUM or worse.

use std::path::PathBuf;
use std::time::Instant;

use super::*;

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

fn production_like_cert() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let now = std::time::SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(90 * 24 * 3600)).into();
    params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
        uris: vec!["http://crl.invalid/gateway.crl".to_owned()],
    }];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Severities that fail the test. testssl.sh also reports FATAL when a
/// check could not run; that fails too, as a scan that did not happen
/// proves nothing.
const FAILING: [&str; 4] = ["MEDIUM", "HIGH", "CRITICAL", "FATAL"];

#[tokio::test]
async fn testssl_finds_nothing_medium_or_worse() {
    let Some(testssl) = find_on_path("testssl").or_else(|| find_on_path("testssl.sh")) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("testssl.sh is not installed; CI must install it (apt-get install testssl.sh)");
        }
        eprintln!("\n*** SKIPPED: testssl.sh not installed (apt-get install testssl.sh) ***\n");
        return;
    };
    // A certificate shaped like a production one (90 days, a CRL URL), so
    // the scan judges the gateway's TLS and not the dev cert's 2000-year
    // lifetime.
    let (cert, key) = production_like_cert();
    let stack = Setup::default().cert(cert, key).start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, stack.ca()).unwrap();
    let json = dir.path().join("testssl.json");
    let started = Instant::now();
    let mut command = tokio::process::Command::new(&testssl);
    command
        // TLS checks only: protocols, cipher lists, forward secrecy, server
        // preference, certificate, vulnerabilities, client simulation. Not
        // --headers: X-Frame-Options, CSP and the like are PSU's answer
        // passed through (here the simulator's), not the gateway's.
        .args(["-p", "-s", "-f", "-P", "-S", "-U", "-c"])
        .args(["--quiet", "--fast", "--color", "0", "--warnings", "off"])
        .args(["--connect-timeout", "10", "--openssl-timeout", "10"])
        // Loopback only: no DNS look-ups for CAA records or the like.
        .args(["--nodns", "none"])
        .arg("--add-ca")
        .arg(&ca)
        .arg("--jsonfile")
        .arg(&json)
        .arg(format!("127.0.0.1:{}", stack.addr.port()))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(900), command.output())
        .await
        .expect("testssl.sh finished within 15 minutes")
        .expect("testssl.sh runs");
    let elapsed = started.elapsed();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON from testssl.sh ({e}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let findings: Vec<serde_json::Value> = serde_json::from_str(&text).expect("testssl JSON");
    eprintln!("testssl.sh: {} findings in {elapsed:?}", findings.len());
    let mut bad = Vec::new();
    for finding in &findings {
        let severity = finding["severity"].as_str().unwrap_or("");
        let line = format!(
            "{severity:8} {} {}",
            finding["id"].as_str().unwrap_or("?"),
            finding["finding"].as_str().unwrap_or("")
        );
        eprintln!("  {line}");
        if FAILING.contains(&severity) {
            bad.push(line);
        }
    }
    // The scan really happened: it saw the protocols the gateway speaks.
    let ok = |id: &str| {
        findings.iter().any(|f| {
            f["id"] == id
                && f["finding"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("offered"))
        })
    };
    assert!(
        ok("TLS1_2") && ok("TLS1_3"),
        "testssl.sh did not see TLS 1.2 and 1.3"
    );
    assert!(bad.is_empty(), "testssl.sh findings:\n{}", bad.join("\n"));
}
