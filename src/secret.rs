//! Wrapper for values that must never reach a log line: tokens, cookie values.

use std::fmt;

/// A secret string. `Debug` prints a fixed placeholder; the value is only
/// reachable through [`Secret::expose`], so every use is greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first 8 hex digits of the value's SHA-256: enough to tell two
    /// tokens apart in a log, useless to replay.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.0.as_bytes());
        digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let secret = Secret::new("eyJhbGciOiJIUzI1NiJ9.top-secret");
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("top-secret"), "{shown}");
        assert_eq!(secret.expose(), "eyJhbGciOiJIUzI1NiJ9.top-secret");
        assert_eq!(Secret::new("abc").fingerprint(), "ba7816bf");
    }
}
