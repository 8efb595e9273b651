//! Parses Cookie headers and extracts, keys and strips the configured session cookies (with ASP.NET chunks).
//!
//! The gateway authenticates the session cookies it extracts here, then forwards the
//! header to PSU (ASP.NET Core). Both must see the *same* session, or an attacker who
//! plants a second cookie (cookie tossing from a sibling subdomain) gets a request
//! authorized for one session and executed as another. ASP.NET Core reads cookie
//! names case-insensitively, splits on `,` as well as `;`, lets the last duplicate
//! win, and after a malformed item retries one character later. So duplicates are
//! looked for both in the plain `;` view and in every name such a parser could read.

use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// ASP.NET's `ChunkingCookieManager` marks a chunked cookie with this value prefix.
const CHUNKS_PREFIX: &str = "chunks-";
/// Most chunks a session cookie may have; more is refused as malformed (and bounds work).
const MAX_CHUNKS: u32 = 64;
/// Domain separation for [`SessionCookies::cache_key`].
const CACHE_KEY_DOMAIN: &[u8] = b"psu-gateway session cookies v1\0";

/// Why a Cookie header is refused. Never carries a cookie value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CookieError {
    /// A session cookie (or one of its chunks) is present more than once.
    #[error("session cookie {name:?} is sent more than once (cookie tossing)")]
    Tossing { name: String },
    /// A Cookie field holds bytes other than visible ASCII, space and tab.
    #[error("Cookie header is not visible ASCII text")]
    NotText,
}

/// Joins several Cookie field values with `"; "` (HTTP/2 sends one field per
/// cookie). Blank fields are skipped; `Ok(None)` when nothing is left.
/// A field that is not visible ASCII text is refused: non-ASCII bytes decode
/// differently in different stacks.
pub fn join_cookie_fields<'a>(
    values: impl IntoIterator<Item = &'a http::HeaderValue>,
) -> Result<Option<String>, CookieError> {
    let mut joined: Option<String> = None;
    for value in values {
        let text = trim_ows(value.to_str().map_err(|_| CookieError::NotText)?);
        if text.is_empty() {
            continue;
        }
        match &mut joined {
            Some(joined) => {
                joined.push_str("; ");
                joined.push_str(text);
            }
            None => joined = Some(text.to_owned()),
        }
    }
    Ok(joined)
}

/// The `name=value` pairs of a Cookie header, leniently (RFC 6265 §5.4): split on
/// `;`, trim spaces and tabs (only those: a name behind U+00A0 is another name),
/// skip items without `=` or with an empty name. Values are opaque: quotes stay.
pub fn cookie_pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(parse_pair)
}

fn parse_pair(item: &str) -> Option<(&str, &str)> {
    let (name, value) = item.split_once('=')?;
    let name = trim_ows(name);
    (!name.is_empty()).then(|| (name, trim_ows(value)))
}

fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// The session cookies of one request, sorted by name. Values are [`Secret`], so
/// `Debug` shows names only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookies {
    pairs: Vec<(String, Secret)>,
}

impl SessionCookies {
    fn new(mut pairs: Vec<(String, Secret)>) -> Self {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        // Overlapping configured names (`A` and `AC1`) can yield a pair twice.
        pairs.dedup_by(|a, b| a.0 == b.0);
        Self { pairs }
    }

    /// Whether every session cookie carries an ASP.NET Core Data Protection
    /// payload ([`is_data_protection_payload`]), a chunked one's chunks
    /// joined in order first (what ASP.NET decrypts).
    pub fn all_data_protection_payloads(&self) -> bool {
        self.pairs.iter().all(|(name, value)| {
            let value = value.expose();
            match value.strip_prefix(CHUNKS_PREFIX).and_then(chunk_count) {
                Some(count) => is_data_protection_payload(&self.joined_chunks(name, count)),
                None => self.is_chunk(name) || is_data_protection_payload(value),
            }
        })
    }

    /// `NAMEC1`..`NAMECn`'s values, in order (extraction checked they exist).
    fn joined_chunks(&self, name: &str, count: u32) -> String {
        (1..=count)
            .filter_map(|index| {
                let chunk = format!("{name}C{index}");
                self.pairs
                    .iter()
                    .find(|(cookie, _)| *cookie == chunk)
                    .map(|(_, value)| value.expose())
            })
            .collect()
    }

    /// Whether `cookie` is a chunk of another cookie here that says `chunks-N`.
    fn is_chunk(&self, cookie: &str) -> bool {
        self.pairs.iter().any(|(name, value)| {
            value.expose().starts_with(CHUNKS_PREFIX) && chunk_digits(cookie, name).is_some()
        })
    }

    /// SHA-256 over the sorted pairs, each name and value prefixed by its length
    /// (u64 big-endian). Length prefixes rather than `"; "` joining, so no pair
    /// set can be spelled as another (`a=b; c=d` vs one value `b; c=d`).
    pub fn cache_key(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(CACHE_KEY_DOMAIN);
        for (name, value) in &self.pairs {
            for part in [name.as_str(), value.expose()] {
                hasher.update((part.len() as u64).to_be_bytes());
                hasher.update(part.as_bytes());
            }
        }
        hasher.finalize().into()
    }

    /// `n1=v1; n2=v2` of only the session cookies, for the introspection request.
    pub fn cookie_header(&self) -> String {
        let mut header = String::new();
        for (name, value) in &self.pairs {
            if !header.is_empty() {
                header.push_str("; ");
            }
            header.push_str(name);
            header.push('=');
            header.push_str(value.expose());
        }
        header
    }

    /// Cookie names, sorted (main cookies and their chunks).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(name, _)| name.as_str())
    }
}

/// What [`extract_session`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionLookup {
    /// No configured session cookie (or only empty ones).
    Absent,
    /// A chunked cookie whose chunks are missing, empty, or whose `chunks-N` is malformed.
    Incomplete,
    Present(SessionCookies),
}

/// Extracts the configured session cookies (exact, case-sensitive names) and their
/// chunks from a joined Cookie header.
///
/// Refused with [`CookieError::Tossing`]: a configured name or chunk name
/// (`NAMEC1`..`NAMEC64`) present twice, compared ASCII-case-insensitively and
/// counting every name a resynchronizing parser could read (see module docs).
/// `NAME=chunks-N` (N in 1..=64, ASP.NET's digits-only count) needs non-empty
/// `NAMEC1`..`NAMECN`, else `Incomplete`. If any configured name is incomplete the
/// whole lookup is: the gateway never vouches for part of what PSU would read.
pub fn extract_session(header: &str, names: &[String]) -> Result<SessionLookup, CookieError> {
    let related = related_pairs(header, names)?;
    refuse_shadow_duplicates(header, names)?;
    let mut pairs = Vec::new();
    for name in names {
        match lookup_one(&related, name) {
            Found::Absent => {}
            Found::Incomplete => return Ok(SessionLookup::Incomplete),
            Found::Present(found) => pairs.extend(found),
        }
    }
    Ok(if pairs.is_empty() {
        SessionLookup::Absent
    } else {
        SessionLookup::Present(SessionCookies::new(pairs))
    })
}

/// The first bytes of every ASP.NET Core Data Protection payload, base64url:
/// the magic header 0x09F0C9F0 and the start of the key id.
const DATA_PROTECTION_PREFIX: &str = "CfDJ8";
/// Shorter than this cannot hold Data Protection's header, key id, IV and
/// MAC, let alone a ticket.
pub const MIN_DATA_PROTECTION_CHARS: usize = 64;

/// Whether `value` has the shape of an ASP.NET Core Data Protection payload
/// (what PSU's identity cookie is): base64url without padding, `CfDJ8`
/// first, at least [`MIN_DATA_PROTECTION_CHARS`] characters. Anything else
/// cannot be a PSU session, so PSU is not asked about it.
pub fn is_data_protection_payload(value: &str) -> bool {
    value.len() >= MIN_DATA_PROTECTION_CHARS
        && value.starts_with(DATA_PROTECTION_PREFIX)
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The Cookie header without any configured session cookie or chunk cookie
/// (`NAME`, `NAMEC<digits>`, ASCII-case-insensitive); `None` when nothing is left.
/// Other items keep their text (trimmed) and order. An item that hides a session
/// name (`a=1, NAME=x`, `a="x"NAME=y`) is dropped whole: PSU would read it.
pub fn strip_session_cookies(header: &str, names: &[String]) -> Option<String> {
    let mut kept = String::with_capacity(header.len());
    for item in header.split(';').map(trim_ows) {
        if item.is_empty() || hides_session_cookie(item, names) {
            continue;
        }
        if !kept.is_empty() {
            kept.push_str("; ");
        }
        kept.push_str(item);
    }
    (!kept.is_empty()).then_some(kept)
}

fn hides_session_cookie(item: &str, names: &[String]) -> bool {
    let plain = parse_pair(item).map(|(name, _)| name);
    plain
        .into_iter()
        .chain(shadow_names(item))
        .any(|cookie| names.iter().any(|name| is_session_like(cookie, name)))
}

/// A cookie name's place in one configured session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Main,
    Chunk(u32),
}

/// `NAME` is the main cookie, `NAMEC<k>` chunk k (k in 1..=64 without leading
/// zeros: ASP.NET only ever reads `C1`, never `C01`). ASCII-case-insensitive,
/// because ASP.NET Core's cookie collection is.
fn part_of(cookie: &str, name: &str) -> Option<Part> {
    if cookie.eq_ignore_ascii_case(name) {
        return Some(Part::Main);
    }
    let digits = chunk_digits(cookie, name)?;
    let index = digits
        .parse()
        .ok()
        .filter(|k| (1..=MAX_CHUNKS).contains(k))?;
    (!digits.starts_with('0')).then_some(Part::Chunk(index))
}

/// `NAME` or `NAMEC<any digits>`: everything strip removes.
fn is_session_like(cookie: &str, name: &str) -> bool {
    cookie.eq_ignore_ascii_case(name) || chunk_digits(cookie, name).is_some()
}

/// The digits of `NAMEC<digits>` (ASCII-case-insensitive), if `cookie` has that shape.
fn chunk_digits<'a>(cookie: &'a str, name: &str) -> Option<&'a str> {
    let head = cookie.as_bytes().get(..name.len())?;
    if !head.eq_ignore_ascii_case(name.as_bytes()) {
        return None;
    }
    let digits = cookie.get(name.len()..)?.strip_prefix(['C', 'c'])?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Session parts seen so far, to refuse the second of any.
#[derive(Default)]
struct Seen(Vec<(usize, Part)>);

impl Seen {
    /// Records `cookie`; true if it is a session part. Bounded: at most 65 parts per
    /// configured name fit before a duplicate is refused.
    fn note(&mut self, cookie: &str, names: &[String]) -> Result<bool, CookieError> {
        let mut related = false;
        for (index, name) in names.iter().enumerate() {
            let Some(part) = part_of(cookie, name) else {
                continue;
            };
            if self.0.contains(&(index, part)) {
                return Err(CookieError::Tossing {
                    name: cookie.to_owned(),
                });
            }
            self.0.push((index, part));
            related = true;
        }
        Ok(related)
    }
}

/// The `;`-view pairs that are session parts, refusing duplicates.
fn related_pairs<'h>(
    header: &'h str,
    names: &[String],
) -> Result<Vec<(&'h str, &'h str)>, CookieError> {
    let mut seen = Seen::default();
    let mut related = Vec::new();
    for (cookie, value) in cookie_pairs(header) {
        if seen.note(cookie, names)? {
            related.push((cookie, value));
        }
    }
    Ok(related)
}

/// Refuses a session part that a resynchronizing parser would read twice, such as
/// `a=1, NAME=evil; NAME=real` or `a="x"NAME=evil; NAME=real`.
fn refuse_shadow_duplicates(header: &str, names: &[String]) -> Result<(), CookieError> {
    let mut seen = Seen::default();
    for cookie in shadow_names(header) {
        seen.note(cookie, names)?;
    }
    Ok(())
}

/// Every name some parser could read: each maximal run of RFC 7230 token bytes
/// directly followed by `=`. ASP.NET Core only ever starts a name after a
/// non-token byte, and needs `=` right after it, so this is a superset of its view.
///
/// Found from each `=` backwards rather than by walking every byte: a session
/// value is hundreds of token bytes with no `=` after them, and this runs on
/// every request. Each byte is still read at most twice (the `=` search and
/// one backward walk, since a walk stops at the previous non-token byte).
fn shadow_names(header: &str) -> impl Iterator<Item = &str> {
    let bytes = header.as_bytes();
    header.match_indices('=').filter_map(move |(end, _)| {
        let start = bytes[..end]
            .iter()
            .rposition(|&b| !is_tchar(b))
            .map_or(0, |i| i + 1);
        // A token run is ASCII, so both ends are char boundaries.
        header.get(start..end).filter(|run| !run.is_empty())
    })
}

/// RFC 7230 `tchar`, as a table: the backward walk tests it per byte.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

fn is_tchar(byte: u8) -> bool {
    TCHAR[usize::from(byte)]
}

/// One configured name's cookies.
enum Found {
    Absent,
    Incomplete,
    Present(Vec<(String, Secret)>),
}

fn lookup_one(related: &[(&str, &str)], name: &str) -> Found {
    let value = match exact(related, name) {
        None | Some("") => return Found::Absent,
        Some(value) => value,
    };
    let mut found = vec![(name.to_owned(), Secret::new(value))];
    let Some(count) = value.strip_prefix(CHUNKS_PREFIX) else {
        return Found::Present(found);
    };
    let Some(count) = chunk_count(count) else {
        return Found::Incomplete;
    };
    for index in 1..=count {
        let chunk = format!("{name}C{index}");
        match exact(related, &chunk) {
            Some(value) if !value.is_empty() => found.push((chunk, Secret::new(value))),
            _ => return Found::Incomplete,
        }
    }
    Found::Present(found)
}

/// The value of the cookie named exactly `name` (duplicates were refused before).
fn exact<'h>(related: &[(&str, &'h str)], name: &str) -> Option<&'h str> {
    related
        .iter()
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| *value)
}

/// N of `chunks-N`: ASCII digits only (leading zeros allowed, as ASP.NET's
/// `NumberStyles.None` parse), 1..=64.
fn chunk_count(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| (1..=MAX_CHUNKS).contains(n))
}

#[cfg(test)]
mod tests;
