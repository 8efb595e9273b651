//! `psu-gateway doctor`: probes the configured upstream and explains, with
//! the fix, each deployment pitfall it finds.
//!
//! The probes (`probe`) reduce each network exchange to a plain outcome;
//! the diagnoses ([`connection`], [`answers`], [`expiry`]) are pure
//! functions from outcomes to [`Finding`]s, so every explanation is
//! unit-tested without a network.

pub mod answers;
pub mod connection;
pub mod expiry;
pub mod grant;
mod probe;
pub mod windows;

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderName, AUTHORIZATION};
use http::uri::{PathAndQuery, Scheme};

use crate::config::{Config, Credential, Session};
use crate::secret::Secret;
use crate::transport::upstream::UpstreamClient;

/// PSU's endpoint that requires an app token: a 200 there proves the token
/// reaches PSU and is accepted.
pub const TOKEN_PROBE_PATH: &str = "/api/v1/usersession";
/// The header PSU documents for reverse proxies.
pub const X_PSU_AUTHORIZATION: HeaderName = HeaderName::from_static("x-psu-authorization");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
    /// Not checked: a prerequisite failed or the config has no such part.
    Skip,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
            Level::Skip => "skip",
        }
    }
}

/// One line of the report, with what it means and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub summary: String,
    /// Plain words, `\n` between paragraphs; empty for a clean `ok`.
    pub explanation: String,
}

impl Finding {
    pub fn ok(summary: impl Into<String>) -> Self {
        Self::new(Level::Ok, summary, "")
    }

    pub fn new(level: Level, summary: impl Into<String>, explanation: impl Into<String>) -> Self {
        Self {
            level,
            summary: summary.into(),
            explanation: explanation.into(),
        }
    }
}

/// Runs every check against the upstream `config` names; `user` signs in
/// to probe per-user grants.
pub async fn examine(config: &Config, user: Option<&grant::TestUser>) -> Vec<Finding> {
    let upstream = &config.upstream;
    let url = format!("{}://{}", upstream.scheme, upstream.authority);
    let routes = config.routes.routes().len();
    let mut findings = vec![Finding::ok(format!(
        "config {} is valid ({routes} route{})",
        config.source.display(),
        if routes == 1 { "" } else { "s" }
    ))];

    let reach = probe::reach(upstream).await;
    let mut blocked = match reach {
        connection::Reach::Connected(_) => None,
        _ => Some("upstream unreachable"),
    };
    findings.push(connection::diagnose_reach(
        &url,
        upstream.connect_timeout,
        &reach,
    ));

    if upstream.scheme == Scheme::HTTPS {
        let finding = match blocked {
            Some(why) => skipped("upstream TLS certificate", why),
            None => {
                let checked = connection::checked_name(upstream);
                let handshake = probe::handshake(upstream, &checked.name).await;
                connection::diagnose_tls(&checked, upstream.ca.is_empty(), &handshake)
            }
        };
        if finding.level == Level::Fail {
            blocked = Some("upstream TLS failed");
        }
        findings.push(finding);
    }

    let client = match blocked {
        Some(_) => None,
        None => match UpstreamClient::new(upstream, Default::default()) {
            Ok(client) => Some(client),
            Err(e) => {
                findings.push(Finding::new(
                    Level::Fail,
                    format!("cannot build the upstream client: {e}"),
                    "",
                ));
                blocked = Some("no upstream client");
                None
            }
        },
    };

    if let Some(client) = &client {
        findings.extend(grant::check(client, config, user).await);
    }
    findings.push(match (&config.session, &client) {
        (None, _) => skipped("session check", "no [session] in the config"),
        (Some(_), None) => skipped("session check", blocked.unwrap_or_default()),
        (Some(session), Some(client)) => check_introspection(client, session).await,
    });

    findings.push(match &client {
        None => skipped("Windows authentication", blocked.unwrap_or_default()),
        Some(client) => check_windows_auth(client, config).await,
    });

    match &config.credential {
        None => findings.push(skipped("app token", "no [credential] in the config")),
        Some(credential) => match &credential.token {
            None => findings.push(skipped(
                "app token",
                "credential.mode = \"per-user\" with grant = \"session\": the gateway holds no token; PSU grants each user's own",
            )),
            Some(token) => {
                findings.push(match &client {
                    None => skipped("app token", blocked.unwrap_or_default()),
                    Some(client) => check_token(client, credential, &token.secret, config).await,
                });
                findings.push(expiry::diagnose_expiry(
                    expiry::token_expiry(token.secret.expose()),
                    unix_now(),
                ));
            }
        },
    }
    findings
}

async fn check_windows_auth(client: &UpstreamClient, config: &Config) -> Finding {
    let path = PathAndQuery::from_static(windows::PROBE_PATH);
    let answer = probe::get(client, &path, None, config.limits.upstream_timeout).await;
    let forwarding: Vec<&str> = config
        .routes
        .routes()
        .iter()
        .filter(|r| r.forwards_client_credentials())
        .map(|r| r.name.as_str())
        .collect();
    let setting = windows::Setting {
        windows_auth: config.upstream.windows_auth,
        max_pinned: config.upstream.max_pinned,
        forwarding_routes: &forwarding,
    };
    windows::diagnose(&answer, &setting)
}

async fn check_introspection(client: &UpstreamClient, session: &Session) -> Finding {
    let answer = probe::get(
        client,
        &session.introspect_path,
        None,
        session.introspect_timeout,
    )
    .await;
    answers::diagnose_introspection(
        session.introspect_path.as_str(),
        session.introspect_timeout,
        &answer,
    )
}

async fn check_token(
    client: &UpstreamClient,
    credential: &Credential,
    token: &Secret,
    config: &Config,
) -> Finding {
    let path = PathAndQuery::from_static(TOKEN_PROBE_PATH);
    let timeout = config.limits.upstream_timeout;
    let value = credential.header_value_for(token);
    let configured = probe::get(
        client,
        &path,
        Some((credential.header.clone(), value.clone())),
        timeout,
    )
    .await;
    let other_header = other_header(&credential.header);
    // The other header is only tried when the configured one was refused
    // by PSU itself, to tell a stripped header from a bad token.
    let other = match configured {
        answers::Answer::Status {
            status,
            windows_challenge: false,
        } if status == http::StatusCode::UNAUTHORIZED => {
            Some(probe::get(client, &path, Some((other_header.clone(), value)), timeout).await)
        }
        _ => None,
    };
    let context = answers::TokenContext {
        header: credential.header.clone(),
        other_header,
        scheme: credential.scheme.clone(),
        fingerprint: token.fingerprint(),
        timeout,
    };
    answers::diagnose_token(&context, &configured, other.as_ref())
}

/// The header to compare against: `Authorization` for PSU's proxy header,
/// PSU's proxy header for anything else.
pub fn other_header(configured: &HeaderName) -> HeaderName {
    if *configured == X_PSU_AUTHORIZATION {
        AUTHORIZATION
    } else {
        X_PSU_AUTHORIZATION
    }
}

fn skipped(what: &str, why: &str) -> Finding {
    Finding::new(Level::Skip, format!("{what} ({why})"), "")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// 0 without a failure, 1 with any (a runtime finding, not a config error).
pub fn exit_status(findings: &[Finding]) -> u8 {
    u8::from(findings.iter().any(|f| f.level == Level::Fail))
}

/// The report: one line per check, explanations indented and wrapped, and
/// a closing count.
pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for finding in findings {
        let _ = writeln!(out, "{:<5}{}", finding.level.label(), finding.summary);
        for paragraph in finding.explanation.lines() {
            for line in wrap(paragraph, WRAP_WIDTH) {
                let _ = writeln!(out, "     {line}");
            }
        }
    }
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    let _ = writeln!(
        out,
        "{} ok, {} warn, {} FAIL, {} skipped",
        count(Level::Ok),
        count(Level::Warn),
        count(Level::Fail),
        count(Level::Skip)
    );
    out
}

/// Explanation text width, after the 5-column indent.
const WRAP_WIDTH: usize = 74;

/// Greedy word wrap; a word longer than `width` gets a line of its own
/// rather than being cut (paths and header values must stay copyable).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_whole() {
        let cases: &[(&str, usize, &[&str])] = &[
            ("", 10, &[]),
            ("   ", 10, &[]),
            ("one two three", 7, &["one two", "three"]),
            ("one two three", 13, &["one two three"]),
            (
                "a /very/long/path/that/exceeds b",
                8,
                &["a", "/very/long/path/that/exceeds", "b"],
            ),
            ("tabs\tand\nnewlines", 40, &["tabs and newlines"]),
        ];
        for (text, width, want) in cases {
            assert_eq!(wrap(text, *width), *want, "{text:?} at {width}");
        }
    }

    #[test]
    fn render_prints_one_line_per_check_then_explanations() {
        let findings = [
            Finding::ok("upstream reachable (http://127.0.0.1:5000, 3 ms)"),
            Finding::new(
                Level::Fail,
                "app token expired",
                "First paragraph.\nFix: second.",
            ),
            Finding::new(Level::Warn, "w", ""),
            Finding::new(Level::Skip, "s", ""),
        ];
        let text = render(&findings);
        assert_eq!(
            text,
            "ok   upstream reachable (http://127.0.0.1:5000, 3 ms)\n\
             FAIL app token expired\n     First paragraph.\n     Fix: second.\n\
             warn w\nskip s\n1 ok, 1 warn, 1 FAIL, 1 skipped\n"
        );
        assert_eq!(exit_status(&findings), 1);
        assert_eq!(exit_status(&findings[2..]), 0, "warn and skip do not fail");
    }

    #[test]
    fn the_other_header_is_never_the_configured_one() {
        assert_eq!(other_header(&X_PSU_AUTHORIZATION), AUTHORIZATION);
        assert_eq!(other_header(&AUTHORIZATION), X_PSU_AUTHORIZATION);
        assert_eq!(
            other_header(&HeaderName::from_static("x-custom-token")),
            X_PSU_AUTHORIZATION
        );
    }
}
