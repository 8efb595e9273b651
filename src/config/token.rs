//! The app token as a value: the token text, from a file or the
//! environment, checked and trimmed. Validation reads it this way, and so
//! does every re-read of a rotated token file.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::secret::Secret;

/// Why a token text was refused. Never carries the text itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file: {0}")]
    Unreadable(String),
    #[error("the token is empty")]
    Empty,
    #[error("the token contains spaces, control or non-ASCII characters")]
    NotVisibleAscii,
}

/// Trims surrounding whitespace (a trailing newline) and checks the rest.
pub fn parse_token(text: &str) -> Result<Secret, TokenError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(TokenError::Empty);
    }
    if !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::NotVisibleAscii);
    }
    Ok(Secret::new(trimmed))
}

/// Reads and checks a token file.
pub fn read_token_file(path: &Path) -> Result<Secret, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|e| TokenError::Unreadable(e.to_string()))?;
    parse_token(&text)
}

/// A JWT's claims, decoded without verifying the signature: the gateway
/// does not hold PSU's key, so PSU judges validity; this only reads when a
/// token expires and what it claims. `None` for anything that is not three
/// dot-separated segments with a JSON object payload.
pub fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut segments = token.trim().split('.');
    let (_header, payload, _signature) = (segments.next()?, segments.next()?, segments.next()?);
    if segments.next().is_some() {
        return None;
    }
    // Some encoders pad base64url; the JWT spec does not, so accept both.
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(claims) => Some(claims),
        _ => None,
    }
}

/// The `exp` claim (Unix seconds); a float `exp` is allowed by RFC 7519
/// (NumericDate) and whole seconds suffice.
pub fn jwt_exp(token: &str) -> Option<i64> {
    let claims = jwt_claims(token)?;
    let exp = claims.get("exp")?;
    exp.as_i64()
        .or_else(|| exp.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_text_is_trimmed_and_checked() {
        let cases: &[(&str, Result<&str, TokenError>)] = &[
            ("abc.def.ghi\n", Ok("abc.def.ghi")),
            ("  abc\r\n", Ok("abc")),
            ("", Err(TokenError::Empty)),
            (" \n\t", Err(TokenError::Empty)),
            ("ab c", Err(TokenError::NotVisibleAscii)),
            ("abc\r\nX-Evil: 1", Err(TokenError::NotVisibleAscii)),
            ("ab\u{0}c", Err(TokenError::NotVisibleAscii)),
            ("tök", Err(TokenError::NotVisibleAscii)),
        ];
        for (text, want) in cases {
            let got = parse_token(text);
            match (got, want) {
                (Ok(secret), Ok(want)) => assert_eq!(secret.expose(), *want, "{text:?}"),
                (Err(got), Err(want)) => assert_eq!(&got, want, "{text:?}"),
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
