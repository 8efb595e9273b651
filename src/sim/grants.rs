//! App tokens granted over REST: the record of each grant, the identities
//! PSU keeps for them, and PSU's JSON answer for a grant.

use std::collections::HashMap;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::sim::sessions::rfc3339;
use crate::sim::SimUser;

/// How a token was granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantForm {
    /// `GET /api/v1/apptoken/grant`: a signed-in user's own token.
    Session,
    /// `POST /api/v1/apptoken/grant`: an administrator's token for any identity.
    Delegated,
}

/// One successful grant, as a test sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The `id` of the answer (PSU's token record id).
    pub id: u64,
    pub form: GrantForm,
    pub identity: String,
    /// Exactly the roles baked into the token.
    pub roles: Vec<String>,
    /// Issue time, whole seconds (the token's `nbf`).
    pub created: SystemTime,
    /// The token's `exp`, whole seconds.
    pub expires: SystemTime,
    /// The token's hash claim: what [`crate::sim::Sim::revoke`] takes.
    pub hash: String,
}

/// A token just minted, to be recorded and answered.
#[derive(Clone, Copy, Debug)]
pub struct Issued<'a> {
    pub form: GrantForm,
    pub identity: &'a str,
    pub roles: &'a [String],
    pub token: &'a str,
    pub hash: &'a str,
    pub created: SystemTime,
    pub expires: SystemTime,
}

/// Every grant so far, plus PSU's identity records: configured users have
/// one from the start, and a delegated grant creates an unknown identity,
/// as PSU does.
#[derive(Debug)]
pub struct GrantLog {
    grants: Vec<Grant>,
    identities: HashMap<String, u64>,
    next_identity: u64,
}

impl GrantLog {
    /// Users get identity ids 1, 2, ... in configured order.
    pub fn new(users: &[SimUser]) -> Self {
        let mut log = Self {
            grants: Vec::new(),
            identities: HashMap::new(),
            next_identity: 1,
        };
        for user in users {
            log.identity_id(&user.name);
        }
        log
    }

    /// Records a grant and returns PSU's answer for it.
    pub fn record(&mut self, issued: Issued<'_>) -> Value {
        let identity_id = self.identity_id(issued.identity);
        // Token ids count from 1 per simulator, like a fresh database.
        let id = self.grants.len() as u64 + 1;
        let grant = Grant {
            id,
            form: issued.form,
            identity: issued.identity.to_owned(),
            roles: issued.roles.to_vec(),
            created: issued.created,
            expires: issued.expires,
            hash: issued.hash.to_owned(),
        };
        let answer = grant_json(&grant, identity_id, issued.token);
        self.grants.push(grant);
        answer
    }

    /// Every grant, oldest first.
    pub fn list(&self) -> Vec<Grant> {
        self.grants.clone()
    }

    /// The identity's id, creating the identity when PSU has none by that name.
    fn identity_id(&mut self, name: &str) -> u64 {
        if let Some(id) = self.identities.get(name) {
            return *id;
        }
        let id = self.next_identity;
        self.next_identity += 1;
        self.identities.insert(name.to_owned(), id);
        id
    }
}

/// PSU's answer to a grant (universal-docs, app tokens). `identity.role`
/// and `revokedDate` are null for a fresh token; `source` 0 is a local
/// identity.
pub fn grant_json(grant: &Grant, identity_id: u64, token: &str) -> Value {
    json!({
        "id": grant.id,
        "token": token,
        "identity": {"id": identity_id, "name": grant.identity, "source": 0, "role": null},
        "revoked": false,
        "role": grant.roles.join(", "),
        "created": rfc3339(grant.created),
        "expiration": rfc3339(grant.expires),
        "revokedDate": null,
    })
}

/// PSU's `Role` text is a comma-separated list: parts are trimmed and
/// empty ones dropped, so `"Reader, ,Operator"` is two roles.
pub fn split_roles(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|role| !role.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn issued<'a>(identity: &'a str, roles: &'a [String]) -> Issued<'a> {
        Issued {
            form: GrantForm::Delegated,
            identity,
            roles,
            token: "eyJ.x.y",
            hash: "h",
            created: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            expires: UNIX_EPOCH + Duration::from_secs(1_700_003_600),
        }
    }

    #[test]
    fn roles_split_on_commas_trimmed_without_empty_parts() {
        assert_eq!(
            split_roles("Reader, Operator"),
            ["Reader".to_owned(), "Operator".to_owned()]
        );
        assert_eq!(
            split_roles(" Administrator ,, ,Reader,"),
            ["Administrator", "Reader"]
        );
        assert!(split_roles("").is_empty());
        assert!(split_roles(" , ").is_empty());
        assert_eq!(
            split_roles("Power User"),
            ["Power User"],
            "spaces inside stay"
        );
    }

    #[test]
    fn answers_have_psu_shape() {
        let mut log = GrantLog::new(&crate::sim::default_users());
        let roles = split_roles("Administrator, Operator, Reader");
        let answer = log.record(Issued {
            form: GrantForm::Session,
            ..issued("admin", &roles)
        });
        assert_eq!(
            answer,
            json!({
                "id": 1, "token": "eyJ.x.y",
                "identity": {"id": 1, "name": "admin", "source": 0, "role": null},
                "revoked": false, "role": "Administrator, Operator, Reader",
                "created": "2023-11-14T22:13:20Z", "expiration": "2023-11-14T23:13:20Z",
                "revokedDate": null,
            })
        );
        assert_eq!(log.list()[0].form, GrantForm::Session);
        assert_eq!(log.list()[0].roles, roles);
    }

    #[test]
    fn unknown_identities_are_created_once() {
        let mut log = GrantLog::new(&crate::sim::default_users());
        let none: Vec<String> = Vec::new();
        let reader = log.record(issued("reader", &none));
        let bob = log.record(issued("bob", &none));
        let bob_again = log.record(issued("bob", &none));
        assert_eq!(reader["identity"]["id"], 2, "configured users come first");
        assert_eq!(bob["identity"]["id"], 3);
        assert_eq!(bob_again["identity"]["id"], 3);
        assert_eq!(
            (bob["id"].as_u64(), bob_again["id"].as_u64()),
            (Some(2), Some(3))
        );
        assert_eq!(bob["role"], "");
        assert_eq!(log.list().len(), 3);
    }
}
