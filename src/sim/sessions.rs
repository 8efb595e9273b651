//! Signed-in browser sessions: opaque cookie values mapped to users, with a TTL.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::{json, Value};

/// A real identity cookie is an ASP.NET Core Data Protection payload: the
/// magic header 0x09F0C9F0, then the key id, the IV, the encrypted ticket
/// and the MAC, base64url without padding, so every value starts `CfDJ8`.
const DATA_PROTECTION_HEADER: [u8; 4] = [0x09, 0xF0, 0xC9, 0xF0];
/// Random bytes after the header: 4 + 200 bytes encode to 272 characters,
/// the size of a small real ticket.
const COOKIE_BYTES: usize = 200;

/// One sign-in.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub identity: String,
    pub roles: Vec<String>,
    pub started: SystemTime,
    pub expires: Instant,
    pub user_agent: Option<String>,
    pub remote_ip: IpAddr,
}

impl Session {
    /// The shape `/api/v1/usersession` lists.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "identity": self.identity,
            "timestamp": rfc3339(self.started),
            "source": "Web",
            "userAgent": self.user_agent,
            "remoteIpAddress": self.remote_ip.to_string(),
        })
    }
}

/// Who is signing in, from where.
#[derive(Clone, Debug)]
pub struct NewSession<'a> {
    pub identity: &'a str,
    pub roles: &'a [String],
    pub user_agent: Option<String>,
    pub remote_ip: IpAddr,
}

/// Live sessions by cookie value. Expiry is absolute from sign-in.
#[derive(Debug)]
pub struct SessionStore {
    ttl: Duration,
    by_cookie: HashMap<String, Session>,
}

impl SessionStore {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            by_cookie: HashMap::new(),
        }
    }

    /// Starts a session and returns its cookie value.
    pub fn start(&mut self, who: NewSession<'_>, now: Instant) -> String {
        // Dropping dead sessions here keeps memory bounded without a timer task.
        self.by_cookie.retain(|_, s| now < s.expires);
        let value = random_cookie_value();
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            identity: who.identity.to_owned(),
            roles: who.roles.to_vec(),
            started: SystemTime::now(),
            expires: now + self.ttl,
            user_agent: who.user_agent,
            remote_ip: who.remote_ip,
        };
        self.by_cookie.insert(value.clone(), session);
        value
    }

    /// The live session for this cookie value.
    pub fn lookup(&self, value: &str, now: Instant) -> Option<&Session> {
        self.by_cookie.get(value).filter(|s| now < s.expires)
    }

    /// Ends the session; `false` when there was none.
    pub fn end(&mut self, value: &str) -> bool {
        self.by_cookie.remove(value).is_some()
    }

    /// Marks every session expired as of `now`.
    pub fn expire_all(&mut self, now: Instant) {
        for session in self.by_cookie.values_mut() {
            session.expires = session.expires.min(now);
        }
    }

    /// Live sessions, oldest first.
    pub fn live(&self, now: Instant) -> Vec<&Session> {
        let mut live: Vec<&Session> = self
            .by_cookie
            .values()
            .filter(|s| now < s.expires)
            .collect();
        live.sort_by(|a, b| a.started.cmp(&b.started).then_with(|| a.id.cmp(&b.id)));
        live
    }
}

fn random_cookie_value() -> String {
    let mut bytes = [0u8; DATA_PROTECTION_HEADER.len() + COOKIE_BYTES];
    bytes[..4].copy_from_slice(&DATA_PROTECTION_HEADER);
    rand::rng().fill_bytes(&mut bytes[4..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub use crate::duration::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::UNIX_EPOCH;

    const ROLES: &[String] = &[];

    fn who(identity: &str) -> NewSession<'_> {
        NewSession {
            identity,
            roles: ROLES,
            user_agent: Some("curl/8".into()),
            remote_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    #[test]
    fn sessions_live_until_ttl_signout_or_expire_all() {
        let now = Instant::now();
        let mut store = SessionStore::new(Duration::from_secs(60));
        let a = store.start(who("a"), now);
        let b = store.start(who("b"), now);
        assert_eq!(a.len(), 272);
        assert!(a.starts_with("CfDJ8"), "{a}");
        assert!(crate::rules::cookies::is_data_protection_payload(&a));
        assert_ne!(a, b);
        assert_eq!(store.lookup(&a, now).unwrap().identity, "a");
        assert!(
            store.lookup(&a, now + Duration::from_secs(60)).is_none(),
            "expired at ttl"
        );
        assert!(store.end(&b));
        assert!(!store.end(&b));
        assert_eq!(store.live(now).len(), 1);
        store.expire_all(now);
        assert!(store.lookup(&a, now).is_none());
        assert!(store.live(now).is_empty());
    }

    #[test]
    fn session_json_has_psu_fields() {
        let mut store = SessionStore::new(Duration::from_secs(60));
        let now = Instant::now();
        store.start(who("admin"), now);
        let json = store.live(now)[0].to_json();
        for field in [
            "id",
            "identity",
            "timestamp",
            "source",
            "userAgent",
            "remoteIpAddress",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert_eq!(json["remoteIpAddress"], "127.0.0.1");
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
    }
}
