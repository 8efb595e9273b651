//! Per-user mode: does PSU grant a signed-in user their own token the way
//! the config asks? With `--user NAME --password-env VAR` the doctor signs
//! that user in, asks `grant_path` as the gateway will, and reads the
//! granted token's `exp` and roles (decoded, not verified).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

use crate::config::token::jwt_claims;
use crate::config::{Config, Grant, PerUser};
use crate::doctor::{Finding, Level};
use crate::duration::format_duration;
use crate::secret::Secret;
use crate::transport::upstream::UpstreamClient;

/// PSU's role claim in its app tokens.
const ROLE_CLAIM: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";
/// A granted lifetime beyond this much over `token_ttl` is worth a warning.
const LIFETIME_SLACK: Duration = Duration::from_secs(24 * 3600);

/// The test user `--user` and `--password-env` name.
pub struct TestUser {
    pub name: String,
    pub password: Secret,
}

/// What PSU answered the grant call, reduced for the diagnosis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantAnswer {
    /// 2xx; the token string at `token_pointer`, when there is one.
    Granted(Option<String>),
    Status(StatusCode),
    Failed(String),
}

/// The per-user finding, or `None` outside per-user mode.
pub async fn check(
    client: &UpstreamClient,
    config: &Config,
    user: Option<&TestUser>,
) -> Option<Finding> {
    let credential = config.credential.as_ref()?;
    let per_user = credential.per_user()?;
    let Some(user) = user else {
        return Some(Finding::new(
            Level::Skip,
            "per-user token grant not probed",
            "Pass --user NAME --password-env VAR: doctor signs that PSU user in and asks \
             grant_path for their own token, as the gateway will for each user.",
        ));
    };
    let timeout = config.limits.upstream_timeout;
    let cookie = match sign_in(client, user, timeout).await {
        Ok(cookie) => cookie,
        Err(why) => {
            return Some(Finding::new(
                Level::Fail,
                format!("cannot sign in {} to probe the grant", user.name),
                format!(
                "{why}. Check the user name and the password in the variable --password-env names."
            ),
            ))
        }
    };
    let granting = credential
        .token
        .as_ref()
        .map(|t| credential.header_value_for(&t.secret));
    let roles = per_user.grant_roles.clone().unwrap_or_default();
    let answer = ask(
        client, per_user, &cookie, granting, &user.name, &roles, timeout,
    )
    .await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Some(diagnose(per_user, &user.name, &answer, now))
}

async fn sign_in(
    client: &UpstreamClient,
    user: &TestUser,
    timeout: Duration,
) -> Result<String, String> {
    let body = serde_json::json!({"username": user.name, "password": user.password.expose()});
    let uri = client
        .uri("/api/v1/signin", None)
        .ok_or("the sign-in URI is invalid")?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(CONTENT_TYPE, "application/json")
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .map_err(|e| e.to_string())?;
    let response = client
        .send(request, timeout)
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("PSU answered {} to the sign-in", response.status()));
    }
    let cookies: Vec<&str> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .collect();
    if cookies.is_empty() {
        return Err("PSU set no cookie on sign-in".to_owned());
    }
    Ok(cookies.join("; "))
}

async fn ask(
    client: &UpstreamClient,
    per_user: &PerUser,
    cookie: &str,
    granting: Option<HeaderValue>,
    name: &str,
    roles: &[String],
    timeout: Duration,
) -> GrantAnswer {
    let pq = &per_user.grant_path;
    let Some(uri) = client.uri(pq.path(), pq.query()) else {
        return GrantAnswer::Failed("grant_path does not make a valid URI".to_owned());
    };
    let (method, body) = match per_user.grant {
        Grant::Session => (Method::GET, Bytes::new()),
        Grant::Delegated => {
            let expiration = SystemTime::now() + per_user.token_ttl;
            let body = crate::pipeline::grants::delegated_body(name, roles, expiration);
            (Method::POST, Bytes::from(body))
        }
    };
    let mut request = match Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(body).map_err(|never| match never {}).boxed())
    {
        Ok(request) => request,
        Err(e) => return GrantAnswer::Failed(e.to_string()),
    };
    let headers = request.headers_mut();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    match (per_user.grant, granting) {
        (Grant::Delegated, Some(value)) => {
            headers.insert(crate::doctor::X_PSU_AUTHORIZATION, value);
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        _ => {
            if let Ok(mut value) = HeaderValue::from_str(cookie) {
                value.set_sensitive(true);
                headers.insert(COOKIE, value);
            }
        }
    }
    let response = match client.send(request, timeout).await {
        Ok(response) => response,
        Err(e) => return GrantAnswer::Failed(e.to_string()),
    };
    let status = response.status();
    if !status.is_success() {
        return GrantAnswer::Status(status);
    }
    let body = match Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return GrantAnswer::Failed("the grant answer could not be read".to_owned()),
    };
    let token = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| {
            json.pointer(&per_user.token_pointer)?
                .as_str()
                .map(str::to_owned)
        });
    GrantAnswer::Granted(token)
}

/// What PSU's answer means for per-user mode, with the fix.
pub fn diagnose(per_user: &PerUser, user: &str, answer: &GrantAnswer, now: u64) -> Finding {
    let path = per_user.grant_path.as_str();
    match answer {
        GrantAnswer::Granted(Some(token)) => granted(per_user, user, token, now),
        GrantAnswer::Granted(None) => Finding::new(
            Level::Fail,
            format!("{path} answered, but with no token string at credential.token_pointer = {:?}", per_user.token_pointer),
            "Set credential.token_pointer to where the answer holds the token (PSU's grant answer has it at \"/token\").",
        ),
        GrantAnswer::Status(status) if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN => {
            let explanation = match per_user.grant {
                Grant::Session => format!("PSU does not let {user} grant themselves a token, so every inject route answers this user 403. Fix: allow self-granted app tokens in PSU for the roles your users hold, or use grant = \"delegated\" with an Administrator's granting token."),
                Grant::Delegated => "PSU refused the granting token: it must be an Administrator's app token, valid and not revoked. Fix: create one (New-PSUAppToken -Role Administrator) and point credential.token_file at it.".to_owned(),
            };
            Finding::new(Level::Fail, format!("PSU refused the grant ({status}) for {user}"), explanation)
        }
        GrantAnswer::Status(status) if *status == StatusCode::NOT_FOUND || *status == StatusCode::METHOD_NOT_ALLOWED => Finding::new(
            Level::Fail,
            format!("PSU has no grant endpoint at {path} ({status})"),
            "This PSU version may not offer it. Fix: set credential.grant_path to PSU's grant endpoint, or use credential.mode = \"shared\".",
        ),
        GrantAnswer::Status(status) => Finding::new(
            Level::Fail,
            format!("{path} answered {status}"),
            "The gateway would answer every inject route 503 until PSU grants tokens again.",
        ),
        GrantAnswer::Failed(why) => Finding::new(Level::Fail, format!("the grant call to {path} failed: {why}"), ""),
    }
}

fn granted(per_user: &PerUser, user: &str, token: &str, now: u64) -> Finding {
    let claims = jwt_claims(token).unwrap_or_default();
    let roles = match claims.get(ROLE_CLAIM).or_else(|| claims.get("role")) {
        Some(serde_json::Value::String(one)) => one.clone(),
        Some(serde_json::Value::Array(many)) => many
            .iter()
            .filter_map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".to_owned(),
    };
    let Some(exp) = crate::config::token::jwt_exp(token).and_then(|e| u64::try_from(e).ok()) else {
        return Finding::new(
            Level::Warn,
            format!("PSU granted {user} a token (roles: {roles}) with no readable expiry"),
            "The gateway reuses it for token_ttl; how long PSU keeps it valid cannot be told.",
        );
    };
    let life = Duration::from_secs(exp.saturating_sub(now));
    let summary = format!(
        "PSU granted {user} a token (roles: {roles}), valid for {}",
        format_duration(life)
    );
    if per_user.grant == Grant::Session && life > per_user.token_ttl + LIFETIME_SLACK {
        return Finding::new(
            Level::Warn,
            summary,
            format!("PSU picked the lifetime: a token the gateway drops after token_ttl = {} (or on reload) stays valid in PSU for the rest of it. Fix: grant = \"delegated\" with an Administrator's granting token, which asks for Expiration = now + token_ttl; or revoke dropped tokens in PSU.", format_duration(per_user.token_ttl)),
        );
    }
    Finding::ok(summary)
}

#[cfg(test)]
mod tests;
