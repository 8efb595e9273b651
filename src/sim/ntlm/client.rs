//! The client's legs of NTLM, for tests: a NEGOTIATE, and an NTLMv2
//! AUTHENTICATE answering a server's CHALLENGE.

use hmac::Mac;
use rand::RngCore as _;

use super::{
    append_fields, check_header, encode, field, filetime_now, header, hmac_md5, ntowf_v2, u32_at,
    NtlmError, NEGOTIATE_128, NEGOTIATE_56, NEGOTIATE_ALWAYS_SIGN,
    NEGOTIATE_EXTENDED_SESSIONSECURITY, NEGOTIATE_NTLM, NEGOTIATE_OEM, NEGOTIATE_UNICODE,
    REQUEST_TARGET,
};

/// The workstation name the test client reports.
const WORKSTATION: &str = "SIMTEST";

/// A server's CHALLENGE, as the client needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub flags: u32,
    pub server_challenge: [u8; 8],
    pub target_info: Vec<u8>,
}

/// A NEGOTIATE (type 1) offering Unicode and OEM, NTLM with extended
/// session security, no domain or workstation.
pub fn client_negotiate() -> Vec<u8> {
    let flags = NEGOTIATE_UNICODE
        | NEGOTIATE_OEM
        | REQUEST_TARGET
        | NEGOTIATE_NTLM
        | NEGOTIATE_ALWAYS_SIGN
        | NEGOTIATE_EXTENDED_SESSIONSECURITY
        | NEGOTIATE_128
        | NEGOTIATE_56;
    let mut msg = header(1, 32);
    msg[12..16].copy_from_slice(&flags.to_le_bytes());
    // Empty domain and workstation fields pointing at the end.
    for at in [16, 24] {
        msg[at + 4..at + 8].copy_from_slice(&32u32.to_le_bytes());
    }
    msg
}

/// Parses a CHALLENGE (type 2), bounds-checked like everything from a peer.
pub fn parse_challenge(msg: &[u8]) -> Result<Challenge, NtlmError> {
    check_header(msg, 2, 48)?;
    let flags = u32_at(msg, 20).ok_or(NtlmError::TooShort {
        len: msg.len(),
        needed: 48,
    })?;
    let mut server_challenge = [0; 8];
    server_challenge.copy_from_slice(&msg[24..32]);
    let target_info = field(msg, 40, "TargetInfo")?.to_vec();
    Ok(Challenge {
        flags,
        server_challenge,
        target_info,
    })
}

/// An NTLMv2 AUTHENTICATE (type 3) for `user` in `domain` (may be empty)
/// answering the CHALLENGE `type2`, with a fresh client challenge.
pub fn client_authenticate(
    type2: &[u8],
    user: &str,
    domain: &str,
    password: &str,
) -> Result<Vec<u8>, NtlmError> {
    let mut client_challenge = [0; 8];
    rand::rng().fill_bytes(&mut client_challenge);
    let challenge = parse_challenge(type2)?;
    authenticate_with(
        &challenge,
        Identity {
            user,
            domain,
            password,
        },
        client_challenge,
        filetime_now(),
    )
}

/// Who the client claims to be.
#[derive(Clone, Copy)]
pub(crate) struct Identity<'a> {
    pub user: &'a str,
    pub domain: &'a str,
    pub password: &'a str,
}

/// [`client_authenticate`] with the random and time inputs given.
pub(crate) fn authenticate_with(
    challenge: &Challenge,
    who: Identity<'_>,
    client_challenge: [u8; 8],
    timestamp: u64,
) -> Result<Vec<u8>, NtlmError> {
    let key = ntowf_v2(who.password, who.user, who.domain);
    let blob = blob(timestamp, client_challenge, &challenge.target_info);
    let mut nt_response = proof(&key, &challenge.server_challenge, &blob).to_vec();
    nt_response.extend_from_slice(&blob);
    let mut lm_response = proof(&key, &challenge.server_challenge, &client_challenge).to_vec();
    lm_response.extend_from_slice(&client_challenge);

    let unicode = challenge.flags & NEGOTIATE_UNICODE != 0;
    let (domain, user) = (encode(who.domain, unicode), encode(who.user, unicode));
    let workstation = encode(WORKSTATION, unicode);
    let mut msg = header(3, 64);
    msg[60..64].copy_from_slice(&challenge.flags.to_le_bytes());
    let fields = [
        (28, domain.as_slice()),
        (36, user.as_slice()),
        (44, workstation.as_slice()),
        (12, lm_response.as_slice()),
        (20, nt_response.as_slice()),
        (52, &[][..]),
    ];
    append_fields(&mut msg, &fields)?;
    Ok(msg)
}

/// HMAC-MD5(key, server_challenge || data): the NTProofStr for a blob,
/// or the LMv2 response for a client challenge.
fn proof(key: &[u8; 16], server_challenge: &[u8; 8], data: &[u8]) -> [u8; 16] {
    let mut mac = hmac_md5(key);
    mac.update(server_challenge);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The NTLMv2 client blob: version 1.1, time, client challenge, the
/// server's AV pairs, then 4 zero bytes.
fn blob(timestamp: u64, client_challenge: [u8; 8], target_info: &[u8]) -> Vec<u8> {
    let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
    blob.extend_from_slice(&timestamp.to_le_bytes());
    blob.extend_from_slice(&client_challenge);
    blob.extend_from_slice(&[0; 4]);
    blob.extend_from_slice(target_info);
    blob.extend_from_slice(&[0; 4]);
    blob
}
