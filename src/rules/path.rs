//! Turns an untrusted request path into the one canonical string that is both route-matched and forwarded.
//!
//! The gateway injects a credential on allowlisted routes only. If the string the
//! allowlist sees and the string PSU resolves could differ (`/public/../admin`,
//! `/public%2F..%2Fadmin`, `/public\..\admin`, overlong UTF-8 dots ...), an attacker
//! gets the credential on a route that was never allowed. So every form that some
//! parser might resolve differently is refused, and what is accepted is rewritten
//! into a single canonical spelling:
//!
//! 1. decode: walk the bytes, turning `%XX` into a byte (malformed escapes refused);
//! 2. validate: forbidden bytes, UTF-8 per segment, empty and dot segments;
//! 3. re-encode: unreserved characters raw, every other escape or unsafe byte as
//!    `%XX` with upper-case hex.
//!
//! The output is idempotent (`normalize(normalize(x)) == normalize(x)`) and
//! percent-decodes to exactly the same bytes as the input.

use thiserror::Error;

/// Why a path was refused. Messages never echo the path: it is attacker input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("request path does not start with '/'")]
    NotAbsolute,
    #[error("request path contains a percent-encoded '/', '\\', '%' or NUL")]
    EncodedDelimiter,
    #[error("request path contains a backslash")]
    Backslash,
    #[error("request path contains a control character")]
    ControlCharacter,
    #[error("request path contains a raw '#' (fragment)")]
    Fragment,
    #[error("request path contains a '.' or '..' segment")]
    DotSegment,
    #[error("request path contains an empty segment ('//')")]
    EmptySegment,
    #[error("request path is not valid UTF-8 once percent-decoded")]
    InvalidUtf8,
    #[error("request path contains a malformed percent-escape")]
    MalformedEscape,
    #[error(
        "request path contains a letter whose case mapping is ASCII (such as U+017F or U+212A)"
    )]
    AmbiguousCase,
}

/// Normalizes the path of an origin-form request target (no query).
///
/// Returns the canonical path, or why it is refused. See the module docs.
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut out = String::with_capacity(raw.len());
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        // `/a//b` is `/a/b` to some servers and not to others; only a single
        // trailing `/` (`/api/`, or `/` itself) is unambiguous.
        if segment.is_empty() && segments.peek().is_some() {
            return Err(PathError::EmptySegment);
        }
        out.push('/');
        let start = out.len();
        normalize_segment(segment.as_bytes(), &mut out)?;
        if is_dot_segment(&out[start..]) {
            return Err(PathError::DotSegment);
        }
    }
    Ok(out)
}

/// The string routes are matched on: a normalized path fully percent-decoded
/// (Kestrel decodes every escape but `%2F` before routing, and `%2F` never
/// gets this far), case-folded (PSU's router ignores case), without one
/// trailing `/`. Letters whose case mapping is ASCII (`ſ`, `ı`, `K`, `İ`)
/// are refused: .NET may fold them onto an ASCII route this key misses.
pub fn route_key(normalized: &str) -> Result<String, PathError> {
    let trimmed = match normalized.strip_suffix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => normalized,
    };
    if !trimmed.contains('%') {
        return Ok(trimmed.to_ascii_lowercase());
    }
    let mut bytes = Vec::with_capacity(trimmed.len());
    let mut i = 0;
    while i < trimmed.len() {
        if trimmed.as_bytes()[i] == b'%' {
            bytes.push(decode_escape(trimmed.as_bytes().get(i + 1..i + 3))?);
            i += 3;
        } else {
            bytes.push(trimmed.as_bytes()[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(bytes).map_err(|_| PathError::InvalidUtf8)?;
    let mut key = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            key.push(c.to_ascii_lowercase());
        } else if c
            .to_lowercase()
            .chain(c.to_uppercase())
            .any(|m| m.is_ascii())
        {
            return Err(PathError::AmbiguousCase);
        } else {
            key.extend(c.to_lowercase());
        }
    }
    Ok(key)
}

/// Decodes, validates and re-encodes one segment (the bytes between two `/`),
/// appending the canonical form to `out`.
fn normalize_segment(segment: &[u8], out: &mut String) -> Result<(), PathError> {
    let mut utf8 = Utf8Validator::default();
    let mut i = 0;
    while i < segment.len() {
        let (byte, escaped) = if segment[i] == b'%' {
            i += 3;
            (decode_escape(segment.get(i - 2..i))?, true)
        } else {
            i += 1;
            (segment[i - 1], false)
        };
        check_byte(byte, escaped)?;
        utf8.push(byte)?;
        if is_unreserved(byte) || (!escaped && is_safe_raw(byte)) {
            out.push(char::from(byte));
        } else {
            push_escape(byte, out);
        }
    }
    // A multi-byte sequence may not run into `/` or the end of the path.
    utf8.finish()
}

/// The byte encoded by the two hex digits after a `%`. `%4`, `%zz`, a trailing
/// `%` and `%+1` are refused: servers disagree on what such escapes mean.
fn decode_escape(hex: Option<&[u8]>) -> Result<u8, PathError> {
    match hex {
        Some(&[high, low]) => match (hex_value(high), hex_value(low)) {
            (Some(high), Some(low)) => Ok(high << 4 | low),
            _ => Err(PathError::MalformedEscape),
        },
        _ => Err(PathError::MalformedEscape),
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Refuses bytes that some parser treats as structure.
fn check_byte(byte: u8, escaped: bool) -> Result<(), PathError> {
    match (byte, escaped) {
        // `%2F`/`%5C` become separators after a later decode (`/public%2F..%2Fadmin`),
        // `%25` is double encoding (`%252e` -> `%2e` -> `.`), `%00` truncates C strings.
        (b'/' | b'\\' | b'%' | 0, true) => Err(PathError::EncodedDelimiter),
        // CR/LF/TAB injection into logs and upstream request lines, NUL truncation.
        (0x00..=0x1F | 0x7F, _) => Err(PathError::ControlCharacter),
        // Windows (and IIS/Kestrel on it) treat `\` as `/`: `/public\..\admin`.
        (b'\\', false) => Err(PathError::Backslash),
        // A fragment is never sent; a raw `#` here means a confused client or a smuggling attempt.
        (b'#', false) => Err(PathError::Fragment),
        _ => Ok(()),
    }
}

/// RFC 3986 unreserved: safe to decode, since every server treats `%41` and `A` alike.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Other raw pchar bytes (sub-delims, `:`, `@`) kept raw. Their escaped form is
/// kept escaped: `%3B` and `;` may mean different things to the upstream.
/// Raw bytes outside pchar (`"`, `{`, space, `?`, non-ASCII ...) get escaped, so
/// the forwarded request line is always a valid URI.
fn is_safe_raw(byte: u8) -> bool {
    matches!(
        byte,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@'
    )
}

fn push_escape(byte: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0x0F)]));
}

/// Canonical spellings that count as a dot: `.` itself, plus the Unicode dot
/// look-alikes that NFKC or "best fit" mappings on some Windows stacks fold into
/// `.` (U+2024 one dot leader, U+2025 two dot leader, U+FE52 small full stop,
/// U+FF0E fullwidth full stop).
const DOTS: [&str; 5] = [".", "%E2%80%A4", "%E2%80%A5", "%EF%B9%92", "%EF%BC%8E"];

/// Whether a canonical segment is `.` or `..` in disguise: made only of dots and
/// spaces, with at least one dot, before any `;`. Win32 path handling strips
/// trailing dots and spaces (`..%20`, `...`), and Tomcat-style servers drop
/// `;params` (`..;x`), so all of these are treated as `..`.
fn is_dot_segment(segment: &str) -> bool {
    let name = segment.split(';').next().unwrap_or_default();
    let mut rest = name;
    let mut dots = 0;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("%20") {
            rest = after;
        } else if let Some(after) = DOTS.iter().find_map(|dot| rest.strip_prefix(dot)) {
            rest = after;
            dots += 1;
        } else {
            return false;
        }
    }
    dots > 0
}

/// Incremental UTF-8 check over decoded bytes (RFC 3629 table 3-7): refuses
/// overlong forms (`%C0%AE` is an overlong `.`, `%E0%80%AE` too), surrogates
/// (`%ED%A0%80`), lone continuation bytes and code points above U+10FFFF.
/// Decoders that accept these turn them into `.` or `/` after we checked.
#[derive(Default)]
struct Utf8Validator {
    /// Continuation bytes still expected.
    pending: u8,
    /// Allowed range of the next continuation byte.
    low: u8,
    high: u8,
}

impl Utf8Validator {
    fn push(&mut self, byte: u8) -> Result<(), PathError> {
        if self.pending > 0 {
            if !(self.low..=self.high).contains(&byte) {
                return Err(PathError::InvalidUtf8);
            }
            self.pending -= 1;
            (self.low, self.high) = (0x80, 0xBF);
            return Ok(());
        }
        (self.pending, self.low, self.high) = match byte {
            0x00..=0x7F => (0, 0x80, 0xBF),
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return Err(PathError::InvalidUtf8),
        };
        Ok(())
    }

    fn finish(&self) -> Result<(), PathError> {
        if self.pending == 0 {
            Ok(())
        } else {
            Err(PathError::InvalidUtf8)
        }
    }
}

#[cfg(test)]
mod tests;
