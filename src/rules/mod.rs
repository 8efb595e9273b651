//! Pure request rules: each takes untrusted input (a path, a header map, a
//! Cookie header, a request target) and says what it means or why it is
//! refused, with no I/O and no state.
//!
//! They sit below the config because validation checks the operator's
//! route patterns, origins and header names with the same functions that
//! judge requests, so a pattern cannot mean one thing in the file and
//! another on the wire.
//!
//! May use: the shared types ([`crate::secret`], [`crate::rate`]), std and
//! crates.

pub mod cookies;
pub mod csrf;
pub mod headers;
pub mod path;
pub mod routes;
pub mod target;
pub mod windows_auth;
