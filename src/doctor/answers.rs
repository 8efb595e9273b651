//! Diagnosis of what PSU answers: the session check without a cookie, and
//! the app token in the configured header (and, when refused, in the other).

use std::time::Duration;

use http::header::{HeaderName, AUTHORIZATION};
use http::{HeaderValue, StatusCode};

use crate::doctor::{Finding, Level, TOKEN_PROBE_PATH};
use crate::duration::format_duration;

/// One HTTP exchange with the upstream, reduced to what the diagnosis reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Status {
        status: StatusCode,
        /// `WWW-Authenticate: Negotiate` or `NTLM`: IIS Windows
        /// authentication answered, not PSU.
        windows_challenge: bool,
    },
    TimedOut,
    Failed(String),
}

/// Whether `WWW-Authenticate` values are IIS's Windows-authentication
/// challenge rather than PSU's own (PSU sends `Bearer` or nothing).
pub fn is_windows_challenge<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> bool {
    values
        .into_iter()
        .any(|value| crate::rules::windows_auth::offers_connection_scheme(value.as_bytes()))
}

const IIS_FIX: &str = "Fix: in IIS Manager open PSU's site -> Authentication and enable \
    Anonymous Authentication alongside Windows Authentication (PSU documents that app \
    tokens need both), or let PSU listen on loopback without IIS and point upstream.url \
    at it.";

/// GET `introspect_path` with no cookie: PSU must refuse it with 401 (403
/// works too), or the gateway cannot tell a session from no session.
pub fn diagnose_introspection(path: &str, timeout: Duration, answer: &Answer) -> Finding {
    let failing =
        |summary: String, explanation: &str| Finding::new(Level::Fail, summary, explanation);
    let status = match answer {
        Answer::Status {
            status,
            windows_challenge: true,
        } => {
            return failing(
                format!(
                    "session check GET {path} is challenged by IIS Windows authentication ({}, WWW-Authenticate: Negotiate)",
                    status.as_u16()
                ),
                &format!(
                    "IIS answers before PSU sees the request, because Anonymous Authentication \
                     is off. Every session check would be refused, so every user looks signed \
                     out and session routes answer 401.\n{IIS_FIX}"
                ),
            );
        }
        Answer::Status { status, .. } => *status,
        Answer::TimedOut => {
            return failing(
                format!(
                    "session check GET {path}: no answer within session.introspect_timeout ({})",
                    format_duration(timeout)
                ),
                "Session routes would answer 503 while PSU is this slow.\n\
                 Fix: check PSU's health; raise session.introspect_timeout only if PSU is \
                 known to be slow to answer.",
            )
        }
        Answer::Failed(error) => {
            return failing(
                format!("session check GET {path} failed: {error}"),
                "Fix: check upstream.url and upstream.protocol against PSU's listener.",
            )
        }
    };
    match status.as_u16() {
        401 | 403 => Finding::ok(format!(
            "session check GET {path} answers {} without a session cookie",
            status.as_u16()
        )),
        200..=299 => failing(
            format!(
                "session check GET {path} answers {} without any session cookie",
                status.as_u16()
            ),
            "The gateway counts a 2xx as a valid session, so any cookie value would pass \
             as signed in.\n\
             Fix: point session.introspect_path at an endpoint that requires the session: \
             PSU's /api/v1/accessible, or the endpoint of conf/psu/gateway-introspect.ps1.",
        ),
        404 => failing(
            format!("session check GET {path} answers 404: wrong session.introspect_path"),
            "PSU has no endpoint at that path, so every session route would answer 503.\n\
             Fix: set session.introspect_path to /api/v1/accessible (PSU's own), or to the \
             path where you published conf/psu/gateway-introspect.ps1.",
        ),
        300..=399 => failing(
            format!(
                "session check GET {path} answers {} (a redirect)",
                status.as_u16()
            ),
            "The gateway does not follow redirects: it needs 401 for no session and 2xx \
             for a valid one, so every session route would answer 503. A redirect usually \
             means a login page or an http -> https redirect.\n\
             Fix: use PSU's API path (/api/v1/accessible) and the scheme and port PSU \
             serves it on in upstream.url.",
        ),
        code => failing(
            format!("session check GET {path} answers {code}"),
            "The gateway treats anything but 2xx, 401 and 403 as PSU being unavailable, \
             so every session route would answer 503.\n\
             Fix: check PSU's log for this request and session.introspect_path.",
        ),
    }
}

/// What the token check needs to word its finding.
#[derive(Debug, Clone)]
pub struct TokenContext {
    pub header: HeaderName,
    pub other_header: HeaderName,
    pub scheme: String,
    /// The token's fingerprint: the token itself is never printed.
    pub fingerprint: String,
    pub timeout: Duration,
}

/// GET `/api/v1/usersession` with the token in the configured header, and
/// `other` the same with the other header when the first was refused.
pub fn diagnose_token(ctx: &TokenContext, configured: &Answer, other: Option<&Answer>) -> Finding {
    let header = display_header(&ctx.header);
    let other_header = display_header(&ctx.other_header);
    let token = format!("token {}", ctx.fingerprint);
    let probe = format!("GET {TOKEN_PROBE_PATH}");
    let status = match configured {
        Answer::Status {
            status,
            windows_challenge: true,
        } => {
            return Finding::new(
                Level::Fail,
                format!("app token refused by IIS Windows authentication ({probe} -> {}, WWW-Authenticate: Negotiate)", status.as_u16()),
                format!(
                    "IIS answers every request without a Windows login before PSU sees it: \
                     Anonymous Authentication is off, so no app token can work.\n{IIS_FIX}"
                ),
            );
        }
        Answer::Status { status, .. } => *status,
        Answer::TimedOut => {
            return Finding::new(
                Level::Fail,
                format!(
                    "app token check {probe}: no answer within limits.upstream_timeout ({})",
                    format_duration(ctx.timeout)
                ),
                "Inject routes would answer 504 while PSU is this slow.\nFix: check PSU's health.",
            )
        }
        Answer::Failed(error) => {
            return Finding::new(
                Level::Fail,
                format!("app token check {probe} failed: {error}"),
                "Fix: check upstream.url and upstream.protocol against PSU's listener.",
            )
        }
    };
    let accepted_by_other = matches!(other, Some(Answer::Status { status, .. })
        if status.is_success() || *status == StatusCode::FORBIDDEN);
    match status.as_u16() {
        200..=299 => Finding::ok(format!("app token accepted in {header} ({probe} -> {}, {token})", status.as_u16())),
        401 if accepted_by_other && ctx.header == AUTHORIZATION => Finding::new(
            Level::Fail,
            format!("Authorization is stripped in front of PSU: the app token works in {other_header} but not in Authorization ({token})"),
            "A layer between the gateway and PSU (IIS Windows authentication, another \
             proxy) removes or consumes the Authorization header, so PSU never sees the \
             token and every inject route answers 401.\n\
             Fix: set credential.header = \"X-PSU-Authorization\", the header PSU \
             documents for reverse proxies.",
        ),
        401 if accepted_by_other => Finding::new(
            Level::Fail,
            format!("the app token works in {other_header} but not in {header} ({token})"),
            format!(
                "PSU never sees the token in {header}: PSU does not read that header, or \
                 a layer in front of PSU removes it.\n\
                 Fix: set credential.header = \"{other_header}\"."
            ),
        ),
        401 => {
            let scheme_hint = if ctx.scheme.eq_ignore_ascii_case("bearer") {
                String::new()
            } else {
                format!(
                    " credential.scheme is \"{}\", but PSU expects \"Bearer <token>\": set \
                     credential.scheme = \"Bearer\".",
                    ctx.scheme
                )
            };
            Finding::new(
                Level::Fail,
                format!("app token rejected: {probe} -> 401 in {header} and in {other_header} ({token})"),
                format!(
                    "PSU does not accept this token: it has expired (see the expiry line), \
                     was revoked, was issued by another PSU instance, or the file holds \
                     something else.{scheme_hint}\n\
                     Fix: create a new app token in PSU (Security -> App Tokens, or \
                     New-PSUAppToken), write it to credential.token_file (a running gateway \
                     picks the new file up by itself; credential.token_env needs a restart)."
                ),
            )
        }
        403 => Finding::new(
            Level::Warn,
            format!("app token known to PSU but not allowed {probe} (403, {token})"),
            "PSU accepted the token, but its role may not read this endpoint (PSU \
             documents Administrator for it). That is expected for a least-privilege \
             token whose inject routes do not include it.\n\
             Fix, if an inject route needs it: give the token's identity a role that may \
             read it and issue a new token.",
        ),
        code => Finding::new(
            Level::Warn,
            format!("app token not checked: {probe} answers {code} ({token})"),
            "The doctor cannot tell whether PSU accepts the token. A 404 suggests \
             upstream.url does not point at PowerShell Universal; 5xx, PSU failing.\n\
             Fix: check upstream.url and PSU's log.",
        ),
    }
}

/// Header names as operators write them in config and IIS.
fn display_header(name: &HeaderName) -> String {
    match name.as_str() {
        "authorization" => "Authorization".to_owned(),
        "x-psu-authorization" => "X-PSU-Authorization".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests;
