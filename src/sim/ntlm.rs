//! MS-NLMP (NTLM) messages for the simulator's Windows authentication.
//!
//! The server side parses a client's NEGOTIATE (type 1), builds the
//! CHALLENGE (type 2) and verifies an AUTHENTICATE (type 3) against the
//! password the simulator knows. Only NTLMv2 responses are accepted: an
//! NT response of 24 bytes (NTLMv1, NTLM2 session response) is refused,
//! as hardened Windows servers do. Session security (signing, sealing,
//! the MIC) is not checked: HTTP authentication needs only the proof.
//!
//! The client side ([`client_negotiate`], [`client_authenticate`]) lets
//! Rust tests run the handshake without curl.
//!
//! Every length and offset comes from the wire and is bounds-checked; a
//! malformed message is an [`NtlmError`], never a panic.

mod client;
#[cfg(test)]
mod tests;

use hmac::{Hmac, Mac};
use md4::{Digest, Md4};
use md5::Md5;

pub use client::{client_authenticate, client_negotiate, parse_challenge, Challenge};

/// Every NTLM message starts with these 8 bytes.
pub const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

pub const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
pub const NEGOTIATE_OEM: u32 = 0x0000_0002;
pub const REQUEST_TARGET: u32 = 0x0000_0004;
pub const NEGOTIATE_NTLM: u32 = 0x0000_0200;
pub const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
pub const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
pub const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
pub const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
pub const NEGOTIATE_VERSION: u32 = 0x0200_0000;
pub const NEGOTIATE_128: u32 = 0x2000_0000;
pub const NEGOTIATE_56: u32 = 0x8000_0000;

/// The simulator's NetBIOS domain, also the CHALLENGE's target name.
pub const DOMAIN: &str = "SIM";
/// The simulator's NetBIOS computer name.
pub const COMPUTER: &str = "PSU";

/// Proof (16) plus the fixed part of an NTLMv2 blob (28).
const MIN_NTLMV2_RESPONSE: usize = 16 + 28;
/// Header of a CHALLENGE with its version field; the payload follows.
const CHALLENGE_HEADER: usize = 56;
/// Header of an AUTHENTICATE up to and including its flags.
const AUTHENTICATE_HEADER: usize = 64;
/// Windows 10 build 19041, NTLM revision 15.
const VERSION: [u8; 8] = [10, 0, 0x61, 0x4a, 0, 0, 0, 0x0f];

const AV_EOL: u16 = 0;
const AV_NB_COMPUTER_NAME: u16 = 1;
const AV_NB_DOMAIN_NAME: u16 = 2;
const AV_TIMESTAMP: u16 = 7;

/// Why an NTLM message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    #[error("the message is {len} bytes, shorter than its {needed}-byte header")]
    TooShort { len: usize, needed: usize },
    #[error("the message does not start with the NTLMSSP signature")]
    BadSignature,
    #[error("expected an NTLM type {expected} message, got type {got}")]
    WrongType { expected: u32, got: u32 },
    #[error("the {field} field points outside the message")]
    OutOfBounds { field: &'static str },
    #[error("the {field} field is not valid UTF-16LE")]
    BadString { field: &'static str },
    #[error("the NT response ({len} bytes) is not an NTLMv2 response")]
    NotNtlmV2 { len: usize },
    #[error("the {field} field is too long for an NTLM message")]
    TooLong { field: &'static str },
}

/// A client's NEGOTIATE message; only its flags matter to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiate {
    pub flags: u32,
}

/// A client's AUTHENTICATE message, strings decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Authenticate {
    pub flags: u32,
    pub user: String,
    pub domain: String,
    pub workstation: String,
    /// NTProofStr followed by the client's blob. Offline-crackable, so
    /// `Debug` shows only its length.
    pub nt_response: Vec<u8>,
}

impl std::fmt::Debug for Authenticate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticate")
            .field("flags", &format_args!("{:#010x}", self.flags))
            .field("user", &self.user)
            .field("domain", &self.domain)
            .field("workstation", &self.workstation)
            .field("nt_response_len", &self.nt_response.len())
            .finish()
    }
}

/// The message type after a valid signature, if `msg` has one.
pub fn message_type(msg: &[u8]) -> Option<u32> {
    (msg.get(..8)? == SIGNATURE).then_some(())?;
    u32_at(msg, 8)
}

pub fn parse_negotiate(msg: &[u8]) -> Result<Negotiate, NtlmError> {
    check_header(msg, 1, 16)?;
    let flags = u32_at(msg, 12).ok_or(NtlmError::TooShort {
        len: msg.len(),
        needed: 16,
    })?;
    Ok(Negotiate { flags })
}

/// The flags a CHALLENGE answers `client_flags` with: Unicode when the
/// client offers it, else OEM when it asks for that, else Unicode.
pub fn server_flags(client_flags: u32) -> u32 {
    let charset = match (
        client_flags & NEGOTIATE_UNICODE,
        client_flags & NEGOTIATE_OEM,
    ) {
        (0, oem) if oem != 0 => NEGOTIATE_OEM,
        _ => NEGOTIATE_UNICODE,
    };
    charset
        | REQUEST_TARGET
        | NEGOTIATE_NTLM
        | NEGOTIATE_ALWAYS_SIGN
        | TARGET_TYPE_DOMAIN
        | NEGOTIATE_EXTENDED_SESSIONSECURITY
        | NEGOTIATE_TARGET_INFO
        | NEGOTIATE_VERSION
        | (client_flags & (NEGOTIATE_128 | NEGOTIATE_56))
}

/// The CHALLENGE for a client that negotiated `client_flags`.
/// `timestamp` is a FILETIME (100 ns ticks since 1601).
pub fn challenge_message(client_flags: u32, server_challenge: [u8; 8], timestamp: u64) -> Vec<u8> {
    let flags = server_flags(client_flags);
    let mut msg = header(2, CHALLENGE_HEADER);
    msg[20..24].copy_from_slice(&flags.to_le_bytes());
    msg[24..32].copy_from_slice(&server_challenge);
    msg[48..56].copy_from_slice(&VERSION);
    let target_name = encode(DOMAIN, flags & NEGOTIATE_UNICODE != 0);
    let fields = [(12, target_name.as_slice()), (40, &target_info(timestamp))];
    append_fields(&mut msg, &fields).expect("the challenge's fields are a few bytes");
    msg
}

/// AV pairs naming the simulator, with the server's time.
fn target_info(timestamp: u64) -> Vec<u8> {
    let mut info = Vec::new();
    av_pair(&mut info, AV_NB_DOMAIN_NAME, &utf16le(DOMAIN));
    av_pair(&mut info, AV_NB_COMPUTER_NAME, &utf16le(COMPUTER));
    av_pair(&mut info, AV_TIMESTAMP, &timestamp.to_le_bytes());
    av_pair(&mut info, AV_EOL, &[]);
    info
}

fn av_pair(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value);
}

pub fn parse_authenticate(msg: &[u8]) -> Result<Authenticate, NtlmError> {
    check_header(msg, 3, AUTHENTICATE_HEADER)?;
    let flags = u32_at(msg, 60).ok_or(NtlmError::TooShort {
        len: msg.len(),
        needed: AUTHENTICATE_HEADER,
    })?;
    let unicode = flags & NEGOTIATE_UNICODE != 0;
    let nt_response = field(msg, 20, "NtChallengeResponse")?.to_vec();
    if nt_response.len() < MIN_NTLMV2_RESPONSE || nt_response[16..18] != [1, 1] {
        return Err(NtlmError::NotNtlmV2 {
            len: nt_response.len(),
        });
    }
    Ok(Authenticate {
        flags,
        domain: decode(field(msg, 28, "DomainName")?, unicode, "DomainName")?,
        user: decode(field(msg, 36, "UserName")?, unicode, "UserName")?,
        workstation: decode(field(msg, 44, "Workstation")?, unicode, "Workstation")?,
        nt_response,
    })
}

/// Whether the AUTHENTICATE proves knowledge of `password` for the
/// CHALLENGE that carried `server_challenge` (compared in constant time).
pub fn verify_ntlmv2(auth: &Authenticate, server_challenge: &[u8; 8], password: &str) -> bool {
    if auth.nt_response.len() < MIN_NTLMV2_RESPONSE {
        return false;
    }
    let (proof, blob) = auth.nt_response.split_at(16);
    let key = ntowf_v2(password, &auth.user, &auth.domain);
    let mut mac = hmac_md5(&key);
    mac.update(server_challenge);
    mac.update(blob);
    mac.verify_slice(proof).is_ok()
}

/// NTOWFv2: HMAC-MD5 keyed with MD4(UTF-16LE(password)) over
/// UTF-16LE(UPPERCASE(user) + domain).
pub(crate) fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash = Md4::digest(utf16le(password));
    let mut mac = hmac_md5(&nt_hash);
    mac.update(&utf16le(&user.to_uppercase()));
    mac.update(&utf16le(domain));
    mac.finalize().into_bytes().into()
}

pub(crate) fn hmac_md5(key: &[u8]) -> Hmac<Md5> {
    <Hmac<Md5> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Now as a FILETIME: 100 ns ticks since 1601-01-01.
pub fn filetime_now() -> u64 {
    const UNIX_EPOCH_AS_FILETIME: u64 = 116_444_736_000_000_000;
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ticks = u64::try_from(since_unix.as_nanos() / 100).unwrap_or(u64::MAX);
    UNIX_EPOCH_AS_FILETIME.saturating_add(ticks)
}

/// Signature, type and zeros up to `len`.
fn header(message_type: u32, len: usize) -> Vec<u8> {
    let mut msg = vec![0; len];
    msg[..8].copy_from_slice(SIGNATURE);
    msg[8..12].copy_from_slice(&message_type.to_le_bytes());
    msg
}

fn check_header(msg: &[u8], expected: u32, needed: usize) -> Result<(), NtlmError> {
    if msg.len() < needed {
        return Err(NtlmError::TooShort {
            len: msg.len(),
            needed,
        });
    }
    match message_type(msg) {
        None => Err(NtlmError::BadSignature),
        Some(got) if got != expected => Err(NtlmError::WrongType { expected, got }),
        Some(_) => Ok(()),
    }
}

/// Appends each field's bytes to the payload and writes its security
/// buffer (length, max length, offset) at the given header position.
fn append_fields(msg: &mut Vec<u8>, fields: &[(usize, &[u8])]) -> Result<(), NtlmError> {
    for (at, data) in fields {
        let too_long = NtlmError::TooLong { field: "payload" };
        let len = u16::try_from(data.len()).map_err(|_| too_long.clone())?;
        let offset = u32::try_from(msg.len()).map_err(|_| too_long.clone())?;
        let slot = msg.get_mut(*at..*at + 8).ok_or(too_long)?;
        slot[..2].copy_from_slice(&len.to_le_bytes());
        slot[2..4].copy_from_slice(&len.to_le_bytes());
        slot[4..].copy_from_slice(&offset.to_le_bytes());
        msg.extend_from_slice(data);
    }
    Ok(())
}

/// The bytes a security buffer at `at` points to. An empty field is
/// empty wherever it points, as some clients leave its offset at 0.
fn field<'a>(msg: &'a [u8], at: usize, name: &'static str) -> Result<&'a [u8], NtlmError> {
    let out_of_bounds = NtlmError::OutOfBounds { field: name };
    let len = usize::from(u16_at(msg, at).ok_or(out_of_bounds.clone())?);
    let offset = u32_at(msg, at + 4).ok_or(out_of_bounds.clone())?;
    if len == 0 {
        return Ok(&[]);
    }
    let start = usize::try_from(offset).map_err(|_| out_of_bounds.clone())?;
    let end = start.checked_add(len).ok_or(out_of_bounds.clone())?;
    msg.get(start..end).ok_or(out_of_bounds)
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    let bytes = msg.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

fn u32_at(msg: &[u8], at: usize) -> Option<u32> {
    let bytes = msg.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

pub(crate) fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// UTF-16LE, or for OEM one byte per character (`?` beyond Latin-1).
pub(crate) fn encode(text: &str, unicode: bool) -> Vec<u8> {
    if unicode {
        return utf16le(text);
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// UTF-16LE, or for OEM each byte as a Latin-1 character.
fn decode(bytes: &[u8], unicode: bool, field: &'static str) -> Result<String, NtlmError> {
    if !unicode {
        return Ok(bytes.iter().map(|b| char::from(*b)).collect());
    }
    if bytes.len() % 2 != 0 {
        return Err(NtlmError::BadString { field });
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| NtlmError::BadString { field })
}
