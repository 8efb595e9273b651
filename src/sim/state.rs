//! The simulator's shared state: users, key, sessions, revocations, grants, recorder.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::secret::Secret;
use crate::sim::cookies::CookieConfig;
use crate::sim::grants::GrantLog;
use crate::sim::recorder::Recorder;
use crate::sim::sessions::SessionStore;
use crate::sim::static_mode::StaticStats;
use crate::sim::token::{verify_token, TokenClaims, TokenError};
use crate::sim::{SimOptions, SimUser};

/// Everything the handlers share. Locks are held only inside sync helpers,
/// never across an `.await`.
#[derive(Debug)]
pub struct SimState {
    pub users: Vec<SimUser>,
    pub signing_key: Secret,
    pub allowed_roles: Vec<String>,
    pub cookie: CookieConfig,
    pub iis_anonymous: bool,
    pub strip_authorization: bool,
    /// Connection-bound NTLM/Negotiate in front of every request.
    pub windows_auth: bool,
    pub recorder: Recorder,
    pub introspect_delay: std::time::Duration,
    /// Lifetime of a token from `GET /api/v1/apptoken/grant`.
    pub grant_ttl: std::time::Duration,
    /// Roles allowed to self-grant; empty lets everyone.
    pub self_grant_roles: Vec<String>,
    /// Set in `--static` mode, which answers from memory and records nothing.
    pub static_stats: Option<StaticStats>,
    sessions: Mutex<SessionStore>,
    revoked: Mutex<HashSet<String>>,
    grants: Mutex<GrantLog>,
    /// Grant calls still to fail with 503 (a PSU outage a test can end).
    failing_grants: std::sync::atomic::AtomicUsize,
}

impl SimState {
    /// Whether this grant call is one of the failing ones; each call uses one up.
    pub fn grant_outage(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.failing_grants
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    pub fn new(opts: SimOptions, recorder: Recorder) -> Self {
        let revoked = opts.revoked.iter().map(|h| normalize_hash(h)).collect();
        let grants = GrantLog::new(&opts.users);
        let failing_grants = std::sync::atomic::AtomicUsize::new(opts.failing_grants);
        Self {
            failing_grants,
            users: opts.users,
            signing_key: opts.signing_key,
            allowed_roles: opts.allowed_roles,
            cookie: CookieConfig {
                name: opts.cookie_name,
                chunk_size: opts.cookie_chunk_size,
            },
            iis_anonymous: opts.iis_anonymous,
            strip_authorization: opts.strip_authorization,
            windows_auth: opts.windows_auth,
            recorder,
            introspect_delay: opts.introspect_delay,
            grant_ttl: opts.grant_ttl,
            self_grant_roles: opts.self_grant_roles,
            static_stats: opts.static_upstream.then(StaticStats::default),
            sessions: Mutex::new(SessionStore::new(opts.session_ttl)),
            revoked: Mutex::new(revoked),
            grants: Mutex::new(grants),
        }
    }

    /// The user with this name and password. Passwords are compared as
    /// SHA-256 digests so the comparison time says nothing about the secret.
    pub fn authenticate(&self, name: &str, password: &str) -> Option<&SimUser> {
        let offered = Sha256::digest(password.as_bytes());
        self.users
            .iter()
            .find(|u| u.name == name && Sha256::digest(u.password.expose().as_bytes()) == offered)
    }

    /// A token PSU would accept: valid signature and claims, not revoked.
    pub fn check_token(&self, token: &str, now: SystemTime) -> Result<TokenClaims, TokenError> {
        let claims = verify_token(self.signing_key.expose().as_bytes(), token, now)?;
        if lock(&self.revoked).contains(&normalize_hash(&claims.hash)) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    pub fn revoke(&self, hash: &str) {
        lock(&self.revoked).insert(normalize_hash(hash));
    }

    pub fn sessions(&self) -> MutexGuard<'_, SessionStore> {
        lock(&self.sessions)
    }

    pub fn grants(&self) -> MutexGuard<'_, GrantLog> {
        lock(&self.grants)
    }
}

/// Hashes are GUIDs; their case carries no meaning.
fn normalize_hash(hash: &str) -> String {
    hash.trim().to_ascii_lowercase()
}

/// A poisoned lock only means a handler panicked mid-update of plain data;
/// the simulator keeps serving rather than failing every later request.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::token::mint_token;
    use std::time::Duration;

    fn state(revoked: Vec<String>) -> SimState {
        SimState::new(
            SimOptions {
                revoked,
                ..SimOptions::default()
            },
            Recorder::new(),
        )
    }

    fn mint(state: &SimState) -> crate::sim::MintedToken {
        let key = state.signing_key.expose().as_bytes();
        mint_token(
            key,
            "ops",
            &["Administrator".to_owned()],
            Duration::from_secs(60),
        )
    }

    #[test]
    fn revoked_hashes_are_refused_at_runtime_and_from_options() {
        let state = state(Vec::new());
        let minted = mint(&state);
        let token = minted.token.expose();
        assert!(state.check_token(token, SystemTime::now()).is_ok());
        state.revoke(&minted.hash.to_uppercase());
        assert_eq!(
            state.check_token(token, SystemTime::now()),
            Err(TokenError::Revoked)
        );
        let other = mint(&state);
        assert!(
            state
                .check_token(other.token.expose(), SystemTime::now())
                .is_ok(),
            "only that token"
        );

        let preset = self::state(vec![other.hash.clone()]);
        assert_eq!(
            preset.check_token(other.token.expose(), SystemTime::now()),
            Err(TokenError::Revoked)
        );
    }

    #[test]
    fn default_users_authenticate_with_their_passwords_only() {
        let state = state(Vec::new());
        assert_eq!(
            state.authenticate("admin", "admin").unwrap().roles,
            ["Administrator"]
        );
        assert_eq!(
            state.authenticate("reader", "reader").unwrap().roles,
            ["Reader"]
        );
        assert!(state.authenticate("admin", "reader").is_none());
        assert!(state.authenticate("nobody", "admin").is_none());
    }
}
