//! Diagnosis of the connection to the upstream: can the gateway reach it,
//! and does its TLS certificate verify the way the gateway checks it.

use std::time::Duration;

use crate::config::Upstream;
use crate::doctor::{Finding, Level};

/// What a plain TCP connect to the upstream gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Connected(Duration),
    Refused,
    TimedOut,
    Unresolvable { host: String, error: String },
    Failed(String),
}

/// What a TLS handshake with the gateway's own trust settings gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    Verified,
    /// The certificate chains to a trusted root but names other hosts.
    NameMismatch {
        presented: Vec<String>,
    },
    UnknownIssuer,
    Expired,
    /// The peer answered with something that is not TLS.
    NotTls,
    Failed(String),
}

/// The name the gateway verifies PSU's certificate against, and where it
/// comes from, so the explanation can say which key to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedName {
    pub name: String,
    pub from_server_name: bool,
}

/// `upstream.server_name` when set, else the host of `upstream.url`.
pub fn checked_name(upstream: &Upstream) -> CheckedName {
    match &upstream.server_name {
        Some(name) => CheckedName {
            name: name.clone(),
            from_server_name: true,
        },
        None => CheckedName {
            name: host_of(upstream),
            from_server_name: false,
        },
    }
}

/// The url's host without IPv6 brackets.
pub fn host_of(upstream: &Upstream) -> String {
    let host = upstream.authority.host();
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned()
}

/// A subject name as webpki reports it (`DnsName("psu.internal")`,
/// `IpAddress(10.0.0.5)`) in the form an operator writes it.
pub fn presented_name(reported: &str) -> String {
    let inner = reported
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .or_else(|| {
            reported
                .strip_prefix("IpAddress(")
                .and_then(|r| r.strip_suffix(')'))
        });
    inner.unwrap_or(reported).to_owned()
}

pub fn diagnose_reach(url: &str, connect_timeout: Duration, reach: &Reach) -> Finding {
    match reach {
        Reach::Connected(elapsed) => Finding::ok(format!(
            "upstream reachable ({url}, {} ms)",
            elapsed.as_millis()
        )),
        Reach::Refused => Finding::new(
            Level::Fail,
            format!("upstream unreachable: connection refused ({url})"),
            "Nothing accepts connections at that address and port: PSU (or the IIS site \
             in front of it) is not running, listens on another port, or a firewall \
             rejects the connection.\n\
             Fix: start PSU, or set upstream.url to the address and port PSU listens on \
             (PSU's own Kestrel listener defaults to port 5000).",
        ),
        Reach::TimedOut => Finding::new(
            Level::Fail,
            format!(
                "upstream unreachable: no answer within upstream.connect_timeout ({}) ({url})",
                crate::duration::format_duration(connect_timeout)
            ),
            "The connection attempt got no reply at all: a firewall drops the packets, \
             the host is down, or the address in upstream.url is wrong.\n\
             Fix: check upstream.url and that this host may open connections to PSU's \
             port; raise upstream.connect_timeout only for a network known to be slow.",
        ),
        Reach::Unresolvable { host, error } => Finding::new(
            Level::Fail,
            format!("upstream unreachable: cannot resolve {host} ({url})"),
            format!(
                "The name lookup failed ({error}).\n\
                 Fix: correct the host in upstream.url, or make it resolvable on this \
                 host (DNS or /etc/hosts)."
            ),
        ),
        Reach::Failed(error) => Finding::new(
            Level::Fail,
            format!("upstream unreachable ({url}): {error}"),
            "Fix: check upstream.url and the network between this host and PSU.",
        ),
    }
}

/// `ca_is_system_only`: no `upstream.ca` is configured.
pub fn diagnose_tls(
    checked: &CheckedName,
    ca_is_system_only: bool,
    handshake: &Handshake,
) -> Finding {
    let name = &checked.name;
    match handshake {
        Handshake::Verified => Finding::ok(format!("upstream TLS certificate valid for {name}")),
        Handshake::NameMismatch { presented } => {
            let holds = if presented.is_empty() {
                "a certificate that names no host".to_owned()
            } else {
                format!("a certificate for {}", presented.join(", "))
            };
            let (source, fix) = if checked.from_server_name {
                (
                    "upstream.server_name",
                    format!(
                        "Fix: set upstream.server_name to a name the certificate holds, \
                         or reissue PSU's certificate to include {name}."
                    ),
                )
            } else {
                let example = presented
                    .iter()
                    .find(|n| !n.starts_with('*'))
                    .map_or_else(String::new, |n| format!(" (e.g. server_name = \"{n}\")"));
                (
                    "the host in upstream.url",
                    format!(
                        "Fix: set upstream.server_name to a name the certificate holds{example}, \
                         keeping upstream.url as the address to connect to; or reissue \
                         PSU's certificate to include {name}."
                    ),
                )
            };
            Finding::new(
                Level::Fail,
                format!("upstream TLS name mismatch: the certificate is not valid for {name}"),
                format!(
                    "PSU presents {holds}, but the gateway verifies the name {name} \
                     ({source}), so every request to PSU fails with 502.\n{fix}"
                ),
            )
        }
        Handshake::UnknownIssuer => {
            let situation = if ca_is_system_only {
                "upstream.ca is not set and the system trust store does not hold the CA \
                 that issued PSU's certificate (typical for an internal CA or a \
                 self-signed certificate)."
            } else {
                "Neither upstream.ca nor the system trust store holds the CA that issued \
                 PSU's certificate."
            };
            Finding::new(
                Level::Fail,
                "upstream TLS certificate is signed by an unknown CA",
                format!(
                    "{situation} Every request to PSU fails with 502.\n\
                     Fix: set upstream.ca to a PEM file holding that CA certificate (for a \
                     self-signed certificate, the certificate itself); it is added to the \
                     system trust store, not used instead of it."
                ),
            )
        }
        Handshake::Expired => Finding::new(
            Level::Fail,
            "upstream TLS certificate has expired (or is not valid yet)",
            "Every request to PSU fails with 502.\n\
             Fix: renew PSU's certificate, and check the clocks of both hosts.",
        ),
        Handshake::NotTls => Finding::new(
            Level::Fail,
            "upstream does not speak TLS on that port",
            "upstream.url says https, but the server answered with something that is \
             not TLS, most likely plain HTTP.\n\
             Fix: use http:// in upstream.url for a loopback PSU, or the port of PSU's \
             HTTPS listener.",
        ),
        Handshake::Failed(error) => Finding::new(
            Level::Fail,
            format!("upstream TLS handshake failed: {error}"),
            "Fix: compare upstream.url, upstream.server_name and upstream.ca with PSU's \
             HTTPS binding.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:5000";

    #[test]
    fn presented_names_lose_their_wrapping() {
        let cases = [
            ("DnsName(\"psu.internal\")", "psu.internal"),
            ("DnsName(\"*.corp.example\")", "*.corp.example"),
            ("IpAddress(10.0.0.5)", "10.0.0.5"),
            ("IpAddress(::1)", "::1"),
            ("DirectoryName", "DirectoryName"),
            ("DnsName(\"unterminated", "DnsName(\"unterminated"),
            ("", ""),
        ];
        for (reported, want) in cases {
            assert_eq!(presented_name(reported), want, "{reported}");
        }
    }

    #[test]
    fn reach_findings_say_what_and_how_to_fix() {
        let timeout = Duration::from_secs(3);
        let cases: &[(Reach, Level, &str, &str)] = &[
            (
                Reach::Connected(Duration::from_millis(3)),
                Level::Ok,
                "upstream reachable (http://127.0.0.1:5000, 3 ms)",
                "",
            ),
            (
                Reach::Refused,
                Level::Fail,
                "connection refused",
                "Fix: start PSU",
            ),
            (
                Reach::TimedOut,
                Level::Fail,
                "no answer within upstream.connect_timeout (3s)",
                "firewall drops",
            ),
            (
                Reach::Unresolvable {
                    host: "psu.invalid".into(),
                    error: "no such host".into(),
                },
                Level::Fail,
                "cannot resolve psu.invalid",
                "/etc/hosts",
            ),
            (Reach::Failed("boom".into()), Level::Fail, "boom", "Fix:"),
        ];
        for (reach, level, summary, explanation) in cases {
            let finding = diagnose_reach(URL, timeout, reach);
            assert_eq!(finding.level, *level, "{reach:?}");
            assert!(
                finding.summary.contains(summary),
                "{reach:?}: {}",
                finding.summary
            );
            assert!(
                finding.explanation.contains(explanation),
                "{reach:?}: {}",
                finding.explanation
            );
        }
    }

    fn url_name(name: &str) -> CheckedName {
        CheckedName {
            name: name.into(),
            from_server_name: false,
        }
    }

    #[test]
    fn name_mismatch_points_at_server_name_with_a_name_from_the_certificate() {
        let finding = diagnose_tls(
            &url_name("127.0.0.1"),
            false,
            &Handshake::NameMismatch {
                presented: vec!["*.corp.example".into(), "psu.internal".into()],
            },
        );
        assert_eq!(finding.level, Level::Fail);
        assert!(
            finding.summary.contains("not valid for 127.0.0.1"),
            "{}",
            finding.summary
        );
        for words in [
            "a certificate for *.corp.example, psu.internal",
            "the host in upstream.url",
            "server_name = \"psu.internal\"",
            "reissue PSU's certificate to include 127.0.0.1",
        ] {
            assert!(
                finding.explanation.contains(words),
                "{words}: {}",
                finding.explanation
            );
        }

        let from_key = CheckedName {
            name: "psu.wrong".into(),
            from_server_name: true,
        };
        let finding = diagnose_tls(
            &from_key,
            false,
            &Handshake::NameMismatch { presented: vec![] },
        );
        assert!(
            finding.explanation.contains("(upstream.server_name)"),
            "{}",
            finding.explanation
        );
        assert!(
            finding.explanation.contains("names no host"),
            "{}",
            finding.explanation
        );
    }

    #[test]
    fn every_tls_outcome_has_its_fix() {
        let cases: &[(Handshake, bool, Level, &str)] = &[
            (Handshake::Verified, true, Level::Ok, ""),
            (
                Handshake::UnknownIssuer,
                true,
                Level::Fail,
                "upstream.ca is not set",
            ),
            (
                Handshake::UnknownIssuer,
                false,
                Level::Fail,
                "Neither upstream.ca",
            ),
            (Handshake::Expired, true, Level::Fail, "renew"),
            (Handshake::NotTls, true, Level::Fail, "http://"),
            (
                Handshake::Failed("alert".into()),
                true,
                Level::Fail,
                "upstream.server_name",
            ),
        ];
        for (handshake, system_only, level, words) in cases {
            let finding = diagnose_tls(&url_name("psu.internal"), *system_only, handshake);
            assert_eq!(finding.level, *level, "{handshake:?}");
            assert!(
                finding.explanation.contains(words),
                "{handshake:?}: {}",
                finding.explanation
            );
        }
        assert!(
            diagnose_tls(&url_name("psu.internal"), true, &Handshake::UnknownIssuer)
                .explanation
                .contains("set upstream.ca")
        );
    }
}
