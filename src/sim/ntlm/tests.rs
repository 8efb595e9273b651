//! NTLM round trips, the MS-NLMP test vectors, and malformed messages.

use super::client::{authenticate_with, Identity};
use super::*;

const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn type2(client_flags: u32) -> Vec<u8> {
    challenge_message(client_flags, SERVER_CHALLENGE, filetime_now())
}

fn type3(type2: &[u8], user: &str, domain: &str, password: &str) -> Authenticate {
    let msg = client_authenticate(type2, user, domain, password).unwrap();
    parse_authenticate(&msg).unwrap()
}

#[test]
fn ms_nlmp_ntlmv2_vectors() {
    // MS-NLMP 4.2.4: User/Domain/Password, time 0, client challenge 0xaa..
    let key = ntowf_v2("Password", "User", "Domain");
    assert_eq!(hex(&key), "0c868a403bfd7a93a3001ef22ef02e3f");
    let mut target_info = Vec::new();
    av_pair(&mut target_info, AV_NB_DOMAIN_NAME, &utf16le("Domain"));
    av_pair(&mut target_info, AV_NB_COMPUTER_NAME, &utf16le("Server"));
    av_pair(&mut target_info, AV_EOL, &[]);
    let challenge = Challenge {
        flags: NEGOTIATE_UNICODE,
        server_challenge: SERVER_CHALLENGE,
        target_info,
    };
    let who = Identity {
        user: "User",
        domain: "Domain",
        password: "Password",
    };
    let msg = authenticate_with(&challenge, who, [0xaa; 8], 0).unwrap();
    let auth = parse_authenticate(&msg).unwrap();
    assert_eq!(
        hex(&auth.nt_response[..16]),
        "68cd0ab851e51c96aabc927bebef6a1c"
    );
    let lm = field(&msg, 12, "LmChallengeResponse").unwrap();
    assert_eq!(hex(lm), "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa");
    assert_eq!(
        (auth.user.as_str(), auth.domain.as_str()),
        ("User", "Domain")
    );
    assert!(verify_ntlmv2(&auth, &SERVER_CHALLENGE, "Password"));
}

#[test]
fn round_trip_verifies_the_password_only() {
    let negotiate = parse_negotiate(&client_negotiate()).unwrap();
    let challenge = type2(negotiate.flags);
    let parsed = parse_challenge(&challenge).unwrap();
    assert_eq!(parsed.server_challenge, SERVER_CHALLENGE);
    assert!(parsed.flags & NEGOTIATE_UNICODE != 0);
    assert!(parsed.flags & NEGOTIATE_TARGET_INFO != 0);

    let auth = type3(&challenge, "alice", "", "s3cret");
    assert_eq!(auth.user, "alice");
    assert_eq!(auth.workstation, "SIMTEST");
    assert!(verify_ntlmv2(&auth, &SERVER_CHALLENGE, "s3cret"));
    assert!(!verify_ntlmv2(&auth, &SERVER_CHALLENGE, "s3cret "));
    assert!(!verify_ntlmv2(&auth, &SERVER_CHALLENGE, ""));
}

#[test]
fn user_name_case_does_not_matter_but_domain_is_hashed() {
    let challenge = type2(NEGOTIATE_UNICODE);
    let auth = type3(&challenge, "ALICE", "CORP", "pw");
    assert_eq!(
        (auth.user.as_str(), auth.domain.as_str()),
        ("ALICE", "CORP")
    );
    assert!(verify_ntlmv2(&auth, &SERVER_CHALLENGE, "pw"));
    let mut lied = auth.clone();
    lied.domain = "OTHER".to_owned();
    assert!(!verify_ntlmv2(&lied, &SERVER_CHALLENGE, "pw"));
}

#[test]
fn oem_clients_get_oem_strings() {
    let challenge = type2(NEGOTIATE_OEM);
    let parsed = parse_challenge(&challenge).unwrap();
    assert_eq!(
        parsed.flags & (NEGOTIATE_UNICODE | NEGOTIATE_OEM),
        NEGOTIATE_OEM
    );
    assert_eq!(field(&challenge, 12, "TargetName").unwrap(), b"SIM");
    let auth = type3(&challenge, "bob", "", "pw");
    assert_eq!(auth.user, "bob");
    assert!(verify_ntlmv2(&auth, &SERVER_CHALLENGE, "pw"));
}

#[test]
fn a_response_for_one_challenge_fails_another() {
    let challenge = type2(NEGOTIATE_UNICODE);
    let auth = type3(&challenge, "alice", "", "pw");
    assert!(!verify_ntlmv2(&auth, &[0x42; 8], "pw"));
}

#[test]
fn debug_hides_the_nt_response() {
    let auth = type3(&type2(NEGOTIATE_UNICODE), "alice", "", "pw");
    let shown = format!("{auth:?}");
    assert!(shown.contains("nt_response_len"), "{shown}");
    assert!(
        !shown.contains(&format!("{:?}", &auth.nt_response[..4])),
        "{shown}"
    );
}

#[test]
fn the_challenge_is_laid_out_as_ms_nlmp_says() {
    let msg = type2(NEGOTIATE_UNICODE);
    assert_eq!(message_type(&msg), Some(2));
    assert_eq!(&msg[24..32], &SERVER_CHALLENGE);
    assert_eq!(field(&msg, 12, "TargetName").unwrap(), utf16le("SIM"));
    assert_eq!(
        u32_at(&msg, 16),
        Some(56),
        "target name right after the header"
    );
    let info = field(&msg, 40, "TargetInfo").unwrap();
    assert_eq!(&info[..4], &[2, 0, 6, 0], "NbDomainName first");
    assert_eq!(&info[info.len() - 4..], &[0; 4], "ends with MsvAvEOL");
}

#[test]
fn short_or_foreign_messages_are_refused() {
    let negotiate = client_negotiate();
    let challenge = type2(NEGOTIATE_UNICODE);
    let authenticate = client_authenticate(&challenge, "a", "", "p").unwrap();
    for msg in [&negotiate, &challenge, &authenticate] {
        for cut in 0..msg.len().min(70) {
            let _ = parse_negotiate(&msg[..cut]);
            let _ = parse_challenge(&msg[..cut]);
            let _ = parse_authenticate(&msg[..cut]);
        }
    }
    assert!(matches!(
        parse_negotiate(b"NTLMSSP\0"),
        Err(NtlmError::TooShort { .. })
    ));
    assert_eq!(parse_negotiate(&[0; 16]), Err(NtlmError::BadSignature));
    assert_eq!(
        parse_negotiate(&challenge).unwrap_err(),
        NtlmError::WrongType {
            expected: 1,
            got: 2
        }
    );
    assert!(parse_authenticate(&negotiate).is_err());
    assert!(parse_authenticate(&authenticate[..63]).is_err());
    assert!(parse_authenticate(
        b"garbage garbage garbage garbage garbage garbage garbage garbage!"
    )
    .is_err());
    assert_eq!(message_type(b"NTLMSSP"), None);
}

/// Sets the security buffer at `at` to (len, offset).
fn with_field(msg: &[u8], at: usize, len: u16, offset: u32) -> Vec<u8> {
    let mut msg = msg.to_vec();
    msg[at..at + 2].copy_from_slice(&len.to_le_bytes());
    msg[at + 2..at + 4].copy_from_slice(&len.to_le_bytes());
    msg[at + 4..at + 8].copy_from_slice(&offset.to_le_bytes());
    msg
}

#[test]
fn every_field_pointing_outside_fails_without_panic() {
    let challenge = type2(NEGOTIATE_UNICODE);
    let good = client_authenticate(&challenge, "alice", "CORP", "pw").unwrap();
    let end = u32::try_from(good.len()).unwrap();
    let attacks = [
        (u16::MAX, 0),
        (1, end),
        (8, end - 4),
        (u16::MAX, u32::MAX),
        (2, u32::MAX),
    ];
    for at in [12, 20, 28, 36, 44] {
        for (len, offset) in attacks {
            let bad = with_field(&good, at, len, offset);
            if at == 12 {
                // The LM response is ignored, so a bad one is harmless.
                assert!(parse_authenticate(&bad).is_ok());
                continue;
            }
            assert!(
                parse_authenticate(&bad).is_err(),
                "field {at}: {len}@{offset}"
            );
        }
    }
    for (len, offset) in attacks {
        assert!(parse_challenge(&with_field(&challenge, 40, len, offset)).is_err());
    }
}

#[test]
fn ntlmv1_and_odd_strings_are_refused() {
    let challenge = type2(NEGOTIATE_UNICODE);
    let good = client_authenticate(&challenge, "alice", "", "pw").unwrap();
    let nt_at = u32_at(&good, 24).unwrap();
    let v1 = with_field(&good, 20, 24, nt_at);
    assert_eq!(
        parse_authenticate(&v1),
        Err(NtlmError::NotNtlmV2 { len: 24 })
    );
    let user_at = u32_at(&good, 40).unwrap();
    let odd = with_field(&good, 36, 3, user_at);
    assert_eq!(
        parse_authenticate(&odd),
        Err(NtlmError::BadString { field: "UserName" })
    );
    let mut lone_surrogate = good.clone();
    let start = usize::try_from(user_at).unwrap();
    lone_surrogate[start..start + 2].copy_from_slice(&0xd800u16.to_le_bytes());
    assert!(matches!(
        parse_authenticate(&lone_surrogate),
        Err(NtlmError::BadString { .. })
    ));
}

#[test]
fn empty_fields_may_point_anywhere() {
    let challenge = type2(NEGOTIATE_UNICODE);
    let good = client_authenticate(&challenge, "alice", "", "pw").unwrap();
    let bad = with_field(&good, 28, 0, u32::MAX);
    assert_eq!(parse_authenticate(&bad).unwrap().domain, "");
}

#[test]
fn a_tampered_blob_fails() {
    let challenge = type2(NEGOTIATE_UNICODE);
    let mut auth = type3(&challenge, "alice", "", "pw");
    let last = auth.nt_response.len() - 5;
    auth.nt_response[last] ^= 1;
    assert!(!verify_ntlmv2(&auth, &SERVER_CHALLENGE, "pw"));
}
