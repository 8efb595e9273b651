//! Request header sanity checks and the strip-then-set rewrites.
//!
//! Every function here is pure over a `HeaderMap` so each rule is tested with
//! hostile input on its own. Order matters: strip everything a client could
//! have forged, then set what the gateway vouches for, so no client header
//! (nor a `Connection` option naming one) can survive into or remove a
//! gateway-set value.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Why a request's headers are refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header names containing '_' are refused (IIS and CGI map '_' to '-')")]
    Underscore,
    #[error("more than one {0} header")]
    Duplicate(HeaderName),
    #[error("Content-Length must be a single value of digits")]
    ContentLength,
    #[error("Transfer-Encoding other than a single \"chunked\" is refused")]
    TransferEncoding,
    #[error("Content-Length and Transfer-Encoding together are refused (request smuggling)")]
    LengthAndEncoding,
    #[error("Upgrade: h2c is refused")]
    H2cUpgrade,
}

/// Headers that describe one hop and never travel through a proxy.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Forwarding metadata only the gateway (or a trusted proxy) may assert.
fn is_forwarding(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "x-forwarded-for"
            | "x-forwarded-proto"
            | "x-forwarded-host"
            | "x-forwarded-port"
            | "x-forwarded-prefix"
            | "forwarded"
            | "x-real-ip"
            | "x-original-url"
            | "x-rewrite-url"
            | "x-request-id"
    )
}

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_PSU_AUTHORIZATION: HeaderName = HeaderName::from_static("x-psu-authorization");

/// Step 6 of the pipeline: refuse header shapes that let two parsers disagree.
pub fn check_sanity(
    headers: &HeaderMap,
    credential: Option<&HeaderName>,
) -> Result<(), HeaderError> {
    if headers.keys().any(|name| name.as_str().contains('_')) {
        return Err(HeaderError::Underscore);
    }
    let singletons = [header::HOST, header::AUTHORIZATION, X_PSU_AUTHORIZATION];
    for name in singletons.iter().chain(credential) {
        if headers.get_all(name).iter().count() > 1 {
            return Err(HeaderError::Duplicate(name.clone()));
        }
    }
    check_framing(headers)?;
    if has_token(headers, header::UPGRADE, "h2c") {
        return Err(HeaderError::H2cUpgrade);
    }
    Ok(())
}

fn check_framing(headers: &HeaderMap) -> Result<(), HeaderError> {
    let lengths: Vec<&HeaderValue> = headers.get_all(header::CONTENT_LENGTH).iter().collect();
    let encodings: Vec<&HeaderValue> = headers.get_all(header::TRANSFER_ENCODING).iter().collect();
    let digits = |v: &&HeaderValue| !v.is_empty() && v.as_bytes().iter().all(u8::is_ascii_digit);
    if lengths.len() > 1 || !lengths.iter().all(digits) {
        return Err(HeaderError::ContentLength);
    }
    let single_chunked =
        matches!(encodings.as_slice(), [v] if v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if !encodings.is_empty() && !single_chunked {
        return Err(HeaderError::TransferEncoding);
    }
    if !lengths.is_empty() && !encodings.is_empty() {
        return Err(HeaderError::LengthAndEncoding);
    }
    Ok(())
}

/// Whether any `name` field lists `token` (ASCII case-insensitive).
pub fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(list_tokens)
        .any(|t| t.eq_ignore_ascii_case(token))
}

/// The request's id: the `X-Request-Id` a trusted proxy sent, when it is
/// printable and short (one id then follows the request end to end), or a
/// new UUIDv4.
///
/// Marked sensitive, so h2 sends it as a never-indexed literal: a value
/// unique to one request gains nothing from HPACK's dynamic table and
/// would evict entries that other headers reuse. The cost is the name
/// spelled out in each h2 response (about 10 bytes). The flag also makes
/// the value's `Debug` print `Sensitive`; logs and problem bodies read it
/// with `to_str`.
pub fn request_id(headers: &HeaderMap, trusted_peer: bool) -> HeaderValue {
    let mut id = headers
        .get(X_REQUEST_ID)
        .filter(|v| trusted_peer && is_request_id(v.as_bytes()))
        .cloned()
        .unwrap_or_else(new_request_id);
    id.set_sensitive(true);
    id
}

/// A UUIDv4 from rand's thread-local generator (seeded once from the OS):
/// `Uuid::new_v4` would make a getrandom syscall on every request.
/// Formatted on the stack, no String.
fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = [0u8; uuid::fmt::Simple::LENGTH];
    HeaderValue::from_bytes(id.simple().encode_lower(&mut text).as_bytes())
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Comma-separated tokens of a list header, trimmed, empties skipped.
fn list_tokens(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers and every header a `Connection` option names,
/// except the ones the routing and session decisions were made on: dropping
/// `Host` or `Cookie` would forward a different request than the one checked.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    let te_trailers = keep_te_trailers && has_token(headers, header::TE, "trailers");
    remove_hop_by_hop(headers, &[header::HOST, header::COOKIE]);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Removes client-asserted forwarding metadata. From a trusted proxy the
/// existing `X-Forwarded-For` chain is returned so it can be extended (its
/// `X-Request-Id` is read earlier, by [`request_id`]); everything
/// else is always replaced.
pub fn strip_forwarding(headers: &mut HeaderMap, trusted_peer: bool) -> Forwarded {
    let kept = Forwarded {
        for_chain: trusted_peer
            .then(|| joined(headers, &X_FORWARDED_FOR))
            .flatten(),
    };
    remove_listed(headers, is_forwarding);
    kept
}

/// Removes the hop-by-hop fields and those a `Connection` field names,
/// except the `spared` ones.
fn remove_hop_by_hop(headers: &mut HeaderMap, spared: &[HeaderName]) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(list_tokens)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .filter(|n| !is_hop_by_hop(n) && !spared.contains(n))
        .collect();
    remove_listed(headers, |name| named.contains(name) || is_hop_by_hop(name));
}

/// Removes every field whose name `listed` picks. A scan of the names
/// present (a dozen, usually one or two of them listed) per removal: no
/// hash lookup per listed name and no allocation.
fn remove_listed(headers: &mut HeaderMap, listed: impl Fn(&HeaderName) -> bool) {
    while let Some(name) = headers.keys().find(|name| listed(name)).cloned() {
        headers.remove(name);
    }
}

/// What a trusted proxy told us about earlier hops.
#[derive(Debug, Default, Clone)]
pub struct Forwarded {
    pub for_chain: Option<String>,
}

fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let parts: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn is_request_id(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// Removes every credential header a client could send, whatever its case
/// (header names are already case-folded by the HTTP stack).
pub fn strip_client_credentials(headers: &mut HeaderMap, credential: Option<&HeaderName>) {
    headers.remove(header::AUTHORIZATION);
    headers.remove(X_PSU_AUTHORIZATION);
    if let Some(name) = credential {
        headers.remove(name);
    }
}

/// The values the gateway vouches for on the forwarded request.
pub struct ForwardedFor<'a> {
    pub peer: IpAddr,
    pub host: &'a str,
    pub request_id: &'a HeaderValue,
    pub earlier: Option<&'a str>,
}

pub fn set_forwarding(headers: &mut HeaderMap, f: &ForwardedFor<'_>) {
    // Sized once and handed over without a copy: this runs per request.
    let earlier = f.earlier.map_or(0, |e| e.len() + 2);
    let mut chain = String::with_capacity(earlier + MAX_IP_TEXT);
    if let Some(earlier) = f.earlier {
        chain.push_str(earlier);
        chain.push_str(", ");
    }
    push_ip(&mut chain, f.peer);
    if let Ok(value) = HeaderValue::try_from(chain) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    if let Ok(value) = HeaderValue::from_str(f.host) {
        headers.insert(X_FORWARDED_HOST, value);
    }
    headers.insert(X_REQUEST_ID, f.request_id.clone());
}

/// The longest text of an IP address (an IPv6 address with an embedded
/// IPv4 one).
const MAX_IP_TEXT: usize = 45;

/// Appends `ip` as its `Display` writes it; IPv4 without the formatting
/// machinery.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(_) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{ip}");
        }
    }
}

/// Strips hop-by-hop headers from an upstream response (and those its
/// `Connection` names).
pub fn strip_response_hop_by_hop(headers: &mut HeaderMap) {
    remove_hop_by_hop(headers, &[]);
}

/// Responses on authenticated routes carry per-user data: keep them out of
/// shared caches unless the upstream said otherwise.
pub fn mark_private(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.append(header::VARY, HeaderValue::from_static("Cookie"));
}

#[cfg(test)]
mod tests;
