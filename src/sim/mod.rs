//! A PowerShell Universal simulator: the parts of PSU the gateway touches,
//! served over real HTTP, recording every request for tests.
//!
//! Stopping: [`Sim::shutdown`] stops accepting, lets in-flight requests
//! finish (up to a few seconds) and returns when the server task is done.
//! Dropping a [`Sim`] starts the same graceful stop without waiting for it.

mod apptoken;
mod auth;
mod cli;
mod concurrency;
mod cookies;
mod frontdoor;
mod grant_request;
mod grants;
mod handlers;
pub mod ntlm;
mod pages;
mod recorder;
mod server;
mod sessions;
mod state;
mod static_mode;
mod streams;
mod token;
mod users;
mod websocket;
mod windows_auth;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::secret::Secret;
use crate::sim::state::SimState;

pub use cli::{run_cli, MintTokenArgs, SimArgs, SimCliError, SimCommand, WindowsAuth};
pub use concurrency::Concurrency;
pub use grants::{Grant, GrantForm};
pub use recorder::{RecordedRequest, Recorder};
pub use token::{mint_token, mint_token_at, verify_token, MintedToken, TokenClaims, TokenError};
pub use users::UsersFileError;

/// The signing key used when none is configured. Anyone can read it here, so
/// tokens signed with it prove nothing outside a test or demo.
pub const DEV_SIGNING_KEY: &str = "psu-sim-dev-signing-key-change-me-0123456789";
/// ASP.NET Core Identity's application cookie, which PSU uses.
pub const DEFAULT_COOKIE_NAME: &str = ".AspNetCore.Identity.Application";
/// PSU's default session lifetime.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(25 * 60);
/// Lifetime of a self-granted app token: one year, as in PSU's docs example.
pub const DEFAULT_GRANT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// A PSU user who can sign in with a password.
#[derive(Clone, Debug)]
pub struct SimUser {
    pub name: String,
    pub password: Secret,
    pub roles: Vec<String>,
}

impl SimUser {
    pub fn new(name: &str, password: &str, roles: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            password: Secret::new(password),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }
}

/// `admin`/`admin` (Administrator) and `reader`/`reader` (Reader).
pub fn default_users() -> Vec<SimUser> {
    vec![
        SimUser::new("admin", "admin", &["Administrator"]),
        SimUser::new("reader", "reader", &["Reader"]),
    ]
}

/// How a simulator behaves; [`Default`] is a plain PSU with the default users.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub users: Vec<SimUser>,
    /// HS256 key for app tokens, used as the bytes of this text.
    pub signing_key: Secret,
    /// Roles allowed to call `/api/v1/usersession`.
    pub allowed_roles: Vec<String>,
    /// Hash claims of revoked app tokens.
    pub revoked: Vec<String>,
    pub session_ttl: Duration,
    pub cookie_name: String,
    /// Split session cookies longer than this into ASP.NET chunks.
    pub cookie_chunk_size: Option<usize>,
    /// `false`: IIS with Windows auth and no anonymous access answers every
    /// request lacking `Authorization: Negotiate` with a 401 challenge.
    pub iis_anonymous: bool,
    /// `true`: a layer in front of PSU removes `Authorization`.
    pub strip_authorization: bool,
    /// Serve HTTPS with this config (its ALPN list decides h2 vs HTTP/1.1).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// A minimal upstream for load tests (`sim --static`): any session
    /// cookie is valid, answers come from memory, nothing is recorded.
    pub static_upstream: bool,
    /// How long `/api/v1/accessible` takes to answer, as a loaded PSU would.
    pub introspect_delay: Duration,
    /// Lifetime of a token from `GET /api/v1/apptoken/grant`, in whole
    /// seconds (a fraction is dropped, as JWT times are seconds).
    pub grant_ttl: Duration,
    /// Roles that may self-grant (compared ignoring case); empty lets
    /// every signed-in user, as PSU's docs do not say otherwise.
    pub self_grant_roles: Vec<String>,
    /// The first this many grant calls answer 503, as PSU in trouble would.
    pub failing_grants: usize,
    /// `sim --windows-auth ntlm`: every request needs connection-bound
    /// NTLM (or Negotiate carrying raw NTLM); `GET /sim/whoami` names the
    /// connection's user. Ignored in `static_upstream` mode.
    pub windows_auth: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            users: default_users(),
            signing_key: Secret::new(DEV_SIGNING_KEY),
            allowed_roles: vec!["Administrator".to_owned()],
            revoked: Vec::new(),
            session_ttl: DEFAULT_SESSION_TTL,
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            cookie_chunk_size: None,
            iis_anonymous: true,
            strip_authorization: false,
            tls: None,
            static_upstream: false,
            introspect_delay: Duration::ZERO,
            grant_ttl: DEFAULT_GRANT_TTL,
            self_grant_roles: Vec::new(),
            failing_grants: 0,
            windows_auth: false,
        }
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct Sim {
    addr: SocketAddr,
    state: Arc<SimState>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl Sim {
    /// Serves on `listener` in background tasks until shut down or dropped.
    /// Fails only for an unusable listener or an invalid cookie name.
    pub async fn spawn(opts: SimOptions, listener: TcpListener) -> std::io::Result<Sim> {
        check_cookie_name(&opts.cookie_name)?;
        let addr = listener.local_addr()?;
        let tls = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let state = Arc::new(SimState::new(opts, Recorder::new()));
        let (stop, server) = server::start(listener, tls, Arc::clone(&state));
        Ok(Sim {
            addr,
            state,
            stop: Some(stop),
            server: Some(server),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn recorder(&self) -> &Recorder {
        &self.state.recorder
    }

    /// Mints an app token with this simulator's signing key.
    pub fn mint_token(&self, identity: &str, roles: &[&str], ttl: Duration) -> MintedToken {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        mint_token(
            self.state.signing_key.expose().as_bytes(),
            identity,
            &roles,
            ttl,
        )
    }

    /// Revokes the app token with this hash claim from now on.
    pub fn revoke(&self, hash: &str) {
        self.state.revoke(hash);
    }

    /// Every successful `/api/v1/apptoken/grant`, oldest first.
    pub fn grants(&self) -> Vec<Grant> {
        self.state.grants().list()
    }

    /// Expires every live session now, so tests need not sleep.
    pub fn expire_sessions(&self) {
        self.state.sessions().expire_all(std::time::Instant::now());
    }

    /// Stops accepting, drains in-flight requests and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            if let Err(error) = server.await {
                tracing::warn!(%error, "psu-sim server task failed");
            }
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // The server task sees the stop and drains on its own.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A cookie name must be an RFC 6265 token, or every Set-Cookie would be invalid.
fn check_cookie_name(name: &str) -> std::io::Result<()> {
    let separator = |c: char| "()<>@,;:\\\"/[]?={} \t".contains(c);
    if name.is_empty()
        || name
            .chars()
            .any(|c| !c.is_ascii() || c.is_ascii_control() || separator(c))
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid cookie name {name:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_names_must_be_tokens() {
        assert!(check_cookie_name(DEFAULT_COOKIE_NAME).is_ok());
        for bad in ["", "a b", "a=b", "a;b", "é"] {
            assert!(check_cookie_name(bad).is_err(), "{bad:?}");
        }
    }
}
