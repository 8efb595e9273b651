//! The app token as a value: the token text, from a file or the
//! environment, checked and trimmed. Validation reads it this way, and so
//! does every re-read of a rotated token file.

use std::path::Path;

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
