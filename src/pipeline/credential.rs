//! The credential step's token: the app token in use, swappable while
//! requests run. The token file is re-read when it changes, and the next
//! injected request uses the new one.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::config::token::{read_token_file, TokenError};
use crate::config::{AppToken, Credential, TokenSource};
use crate::secret::Secret;

/// One token, ready to inject.
#[derive(Debug)]
pub struct ActiveToken {
    secret: Secret,
    /// `<scheme> <token>`, marked sensitive.
    pub header_value: HeaderValue,
    /// First 8 hex of SHA-256: names the token in logs.
    pub fingerprint: String,
    pub loaded_at: SystemTime,
}

impl ActiveToken {
    /// `secret` as `credential` injects it.
    pub fn new(credential: &Credential, secret: Secret) -> Self {
        Self {
            header_value: credential.header_value_for(&secret),
            fingerprint: secret.fingerprint(),
            secret,
            loaded_at: SystemTime::now(),
        }
    }
}

/// The token injected on inject routes; readers never block the swap.
#[derive(Debug)]
pub struct TokenStore {
    credential: Credential,
    source: TokenSource,
    current: ArcSwap<ActiveToken>,
}

/// What a re-read did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    Unchanged,
    /// A new token is in use: its fingerprint, and the one it replaced.
    Rotated {
        old: String,
        new: String,
    },
}

impl TokenStore {
    /// The store for `token`, the operator's token `credential` names.
    pub fn new(credential: &Credential, token: &AppToken) -> Self {
        let active = ActiveToken::new(credential, token.secret.clone());
        Self {
            credential: credential.clone(),
            source: token.source.clone(),
            current: ArcSwap::from_pointee(active),
        }
    }

    pub fn current(&self) -> Arc<ActiveToken> {
        self.current.load_full()
    }

    /// The token file, when the token comes from one (an environment
    /// variable cannot change under a running process).
    pub fn file(&self) -> Option<&Path> {
        match &self.source {
            TokenSource::File(path) => Some(path),
            TokenSource::Env(_) => None,
        }
    }

    /// Re-reads the token file. On any failure the token in use stays.
    pub fn refresh(&self) -> Result<Refresh, TokenError> {
        let Some(path) = self.file() else {
            return Ok(Refresh::Unchanged);
        };
        let secret = read_token_file(path)?;
        let current = self.current.load();
        if current.secret == secret {
            return Ok(Refresh::Unchanged);
        }
        let next = ActiveToken::new(&self.credential, secret);
        let change = Refresh::Rotated {
            old: current.fingerprint.clone(),
            new: next.fingerprint.clone(),
        };
        self.current.store(Arc::new(next));
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_refresh_keeps_the_token_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first\n").unwrap();
        let token = AppToken {
            source: TokenSource::File(file.clone()),
            secret: Secret::new("first"),
        };
        let credential = Credential {
            header: http::HeaderName::from_static("x-psu-authorization"),
            scheme: "Bearer".to_owned(),
            token: Some(token.clone()),
            mode: crate::config::CredentialMode::Shared,
        };
        let store = TokenStore::new(&credential, &token);
        assert_eq!(store.refresh(), Ok(Refresh::Unchanged));

        std::fs::write(&file, "second").unwrap();
        let Ok(Refresh::Rotated { old, new }) = store.refresh() else {
            panic!("expected a rotation");
        };
        assert_eq!(old, Secret::new("first").fingerprint());
        assert_eq!(new, Secret::new("second").fingerprint());
        assert_eq!(store.current().header_value, "Bearer second");

        for broken in ["", "\n", "two words"] {
            std::fs::write(&file, broken).unwrap();
            assert!(store.refresh().is_err(), "{broken:?}");
            assert_eq!(store.current().header_value, "Bearer second");
        }
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(store.refresh(), Err(TokenError::Unreadable(_))));
        assert_eq!(store.current().header_value, "Bearer second");
    }
}
