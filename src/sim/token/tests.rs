//! Minting and verifying PSU-format app tokens, forged ones included.

use super::*;

const KEY: &[u8] = b"unit-test-key-0123456789abcdef";
const HOUR: Duration = Duration::from_secs(3600);

fn roles(list: &[&str]) -> Vec<String> {
    list.iter().map(|r| (*r).to_owned()).collect()
}

fn claims_at(now: u64) -> Value {
    json!({
        NAME_CLAIM: "ops", HASH_CLAIM: "0b6b2c1e-0000-4000-8000-000000000001", "sub": AUDIENCE,
        ROLE_CLAIM: "Administrator", "nbf": now, "exp": now + 60, "iss": ISSUER, "aud": AUDIENCE,
    })
}

fn forge(claims: Value) -> String {
    sign(KEY, &json!({"alg": "HS256", "typ": "JWT"}), &claims)
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

#[test]
fn roundtrip_keeps_identity_roles_and_hash() {
    let minted = mint_token(KEY, "ops", &roles(&["Administrator", "Operator"]), HOUR);
    let claims = verify_token(KEY, minted.token.expose(), SystemTime::now()).unwrap();
    assert_eq!(claims.identity, "ops");
    assert_eq!(claims.roles, roles(&["Administrator", "Operator"]));
    assert_eq!(claims.hash, minted.hash);
    assert!(uuid::Uuid::parse_str(&claims.hash).is_ok());
    assert_eq!(claims.expires - claims.not_before.unwrap(), 3600);
}

#[test]
fn one_role_is_a_string_and_several_an_array() {
    let payload = |token: &str| -> Value {
        let segment = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    };
    let one = mint_token(KEY, "ops", &roles(&["Administrator"]), HOUR);
    assert_eq!(payload(one.token.expose())[ROLE_CLAIM], "Administrator");
    let two = mint_token(KEY, "ops", &roles(&["A", "B"]), HOUR);
    assert_eq!(payload(two.token.expose())[ROLE_CLAIM], json!(["A", "B"]));
    let claims = verify_token(KEY, one.token.expose(), SystemTime::now()).unwrap();
    assert!(claims.has_any_role(&roles(&["Reader", "Administrator"])));
    assert!(!claims.has_any_role(&roles(&["administrator"])));
}

#[test]
fn tampered_signature_or_wrong_key_is_refused() {
    let token = mint_token(KEY, "ops", &roles(&["Administrator"]), HOUR)
        .token
        .expose()
        .to_owned();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{input}.{flipped}{}", &signature[1..]);
    assert_eq!(
        verify_token(KEY, &tampered, SystemTime::now()),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        verify_token(b"other-key", &token, SystemTime::now()),
        Err(TokenError::BadSignature)
    );
    let other_payload = forge(with(
        claims_at(unix_seconds(SystemTime::now())),
        NAME_CLAIM,
        json!("root"),
    ));
    let spliced = format!(
        "{}.{}",
        other_payload.rsplit_once('.').unwrap().0,
        signature
    );
    assert_eq!(
        verify_token(KEY, &spliced, SystemTime::now()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn alg_none_and_other_algorithms_are_refused() {
    let claims = claims_at(unix_seconds(SystemTime::now()));
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    for alg in ["none", "None", "HS512", "RS256"] {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg}).to_string());
        for signature in ["", "AAAA"] {
            let token = format!("{header}.{payload}.{signature}");
            assert_eq!(
                verify_token(KEY, &token, SystemTime::now()),
                Err(TokenError::UnsupportedAlgorithm(alg.into())),
                "{alg}"
            );
        }
    }
    let signed_as_none = sign(KEY, &json!({"alg": "none"}), &claims);
    assert!(matches!(
        verify_token(KEY, &signed_as_none, SystemTime::now()),
        Err(TokenError::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn malformed_tokens_are_refused() {
    for token in ["", "a", "a.b", "a.b.c.d", "!!.??.##", "e30.e30"] {
        assert_eq!(
            verify_token(KEY, token, SystemTime::now()),
            Err(TokenError::Malformed),
            "{token:?}"
        );
    }
}

#[test]
fn lifetime_is_checked_at_the_given_time() {
    let now = 1_700_000_000;
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    let token = forge(claims_at(now));
    assert!(verify_token(KEY, &token, at(now)).is_ok());
    assert_eq!(
        verify_token(KEY, &token, at(now + 60)),
        Err(TokenError::Expired)
    );
    assert_eq!(
        verify_token(KEY, &token, at(now - 1)),
        Err(TokenError::NotYetValid)
    );
    let expired = mint_token_at(
        KEY,
        "ops",
        &[],
        SystemTime::now() - HOUR,
        Duration::from_secs(60),
    );
    assert_eq!(
        verify_token(KEY, expired.token.expose(), SystemTime::now()),
        Err(TokenError::Expired)
    );
    let future = mint_token_at(KEY, "ops", &[], SystemTime::now() + HOUR, HOUR);
    assert_eq!(
        verify_token(KEY, future.token.expose(), SystemTime::now()),
        Err(TokenError::NotYetValid)
    );
    let mut no_exp = claims_at(now);
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        verify_token(KEY, &forge(no_exp), at(now)),
        Err(TokenError::MissingClaim("exp"))
    );
}

#[test]
fn issuer_and_audience_must_be_psu() {
    let now = 1_700_000_000;
    let at = UNIX_EPOCH + Duration::from_secs(now);
    let cases = [
        ("iss", json!("Someone"), TokenError::WrongIssuer),
        ("iss", Value::Null, TokenError::WrongIssuer),
        ("aud", json!("Other"), TokenError::WrongAudience),
        ("aud", json!(["Other"]), TokenError::WrongAudience),
    ];
    for (claim, value, error) in cases {
        assert_eq!(
            verify_token(KEY, &forge(with(claims_at(now), claim, value)), at),
            Err(error),
            "{claim}"
        );
    }
    let listed = forge(with(claims_at(now), "aud", json!(["Other", AUDIENCE])));
    assert!(verify_token(KEY, &listed, at).is_ok());
}

#[test]
fn role_claim_may_be_string_array_or_absent() {
    let now = 1_700_000_000;
    let at = UNIX_EPOCH + Duration::from_secs(now);
    let read =
        |value: Value| verify_token(KEY, &forge(with(claims_at(now), ROLE_CLAIM, value)), at);
    assert_eq!(read(json!("Reader")).unwrap().roles, roles(&["Reader"]));
    assert_eq!(
        read(json!(["Reader", "Administrator"])).unwrap().roles,
        roles(&["Reader", "Administrator"])
    );
    assert_eq!(read(json!(7)), Err(TokenError::MissingClaim("role")));
    let mut absent = claims_at(now);
    absent.as_object_mut().unwrap().remove(ROLE_CLAIM);
    assert!(verify_token(KEY, &forge(absent), at)
        .unwrap()
        .roles
        .is_empty());
}
