//! The pure pieces of per-user grants: JWT expiry, reuse windows, the
//! delegated body, the cache key, and what a grant answer must hold.

use super::*;
use crate::config::token::jwt_exp;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

fn jwt(claims: &str) -> String {
    format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
        URL_SAFE_NO_PAD.encode(claims)
    )
}

#[test]
fn exp_is_read_without_verifying_and_garbage_has_none() {
    assert_eq!(
        jwt_exp(&jwt(r#"{"exp":1790000000,"sub":"a"}"#)),
        Some(1_790_000_000i64)
    );
    for bad in [
        String::new(),
        "opaque-token".to_owned(),
        "a.b.c".to_owned(),
        jwt(r#"{"sub":"a"}"#),
        jwt(r#"{"exp":"soon"}"#),
        jwt("not json"),
    ] {
        assert_eq!(jwt_exp(&bad), None, "{bad:?}");
    }
}

#[test]
fn reuse_stops_at_the_ttl_or_30_s_before_exp() {
    let now = Instant::now();
    let wall = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let ttl = Duration::from_secs(900);
    assert_eq!(reuse_until(now, wall, ttl, None), now + ttl);
    // exp a year away: the ttl decides.
    assert_eq!(
        reuse_until(now, wall, ttl, Some(1_000_000 + 31_536_000)),
        now + ttl
    );
    // exp in 2 minutes: 90 s of reuse.
    assert_eq!(
        reuse_until(now, wall, ttl, Some(1_000_120)),
        now + Duration::from_secs(90)
    );
    // exp in 20 s or already past: no reuse at all.
    assert_eq!(reuse_until(now, wall, ttl, Some(1_000_020)), now);
    assert_eq!(reuse_until(now, wall, ttl, Some(999_000)), now);
}

#[test]
fn the_delegated_body_names_the_user_roles_and_expiration() {
    let at = UNIX_EPOCH + Duration::from_secs(1_764_698_400);
    let body: serde_json::Value = serde_json::from_str(&delegated_body(
        "bob",
        &["Operator".to_owned(), "Reader".to_owned()],
        at,
    ))
    .unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "Identity": {"Name": "bob"},
            "Role": "Operator,Reader",
            "Expiration": "2025-12-02T18:00:00Z",
        })
    );
    // A name is data, never JSON structure.
    let tricky = delegated_body("a\",\"Role\":\"Administrator", &["Reader".to_owned()], at);
    let parsed: serde_json::Value = serde_json::from_str(&tricky).unwrap();
    assert_eq!(parsed["Role"], "Reader");
}

#[test]
fn one_key_per_identity_and_role_set() {
    let roles = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let admin = crate::pipeline::session::identity_key("admin", &roles(&["Administrator"]));
    assert_eq!(
        admin,
        crate::pipeline::session::identity_key("ADMIN", &roles(&["administrator"]))
    );
    assert_ne!(
        admin,
        crate::pipeline::session::identity_key("admin", &roles(&["Administrator", "Reader"]))
    );
    assert_ne!(
        admin,
        crate::pipeline::session::identity_key("bob", &roles(&["Administrator"]))
    );
    // Length prefixes: no identity/role split spells another.
    assert_ne!(
        crate::pipeline::session::identity_key("ab", &roles(&["c"])),
        crate::pipeline::session::identity_key("a", &roles(&["bc"]))
    );
}

#[test]
fn a_grant_answer_needs_a_clean_token_at_the_pointer() {
    let ok = br#"{"id":3,"token":"eyJ.x.y","identity":{"name":"admin"}}"#;
    assert_eq!(
        token_from_body(ok, "/token").ok().unwrap().expose(),
        "eyJ.x.y"
    );
    for (body, pointer) in [
        (&b"not json"[..], "/token"),
        (br#"{"token":3}"#, "/token"),
        (br#"{"other":"x"}"#, "/token"),
        (br#"{"token":"two words"}"#, "/token"),
        (br#"{"token":"a\r\nX-Evil: 1"}"#, "/token"),
        (br#"{"token":""}"#, "/token"),
    ] {
        assert!(
            token_from_body(body, pointer).is_err(),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}
