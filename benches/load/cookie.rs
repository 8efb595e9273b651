//! The Cookie header each request carries: none, one session, or a session
//! never seen before on every request. Every session value has the shape
//! of PSU's (an ASP.NET Core Data Protection payload: `CfDJ8`, then
//! base64url, at least 64 characters), so the gateway's
//! `session.cookie_shape = "aspnet"` check lets it through to the cache
//! and to introspection, as it would a real one.

use std::sync::atomic::{AtomicU64, Ordering};

use http::header::HeaderValue;
use psu_gateway::rules::cookies::is_data_protection_payload;
use rand::Rng;

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const DATA_PROTECTION_PREFIX: &str = "CfDJ8";

pub enum Cookie {
    None,
    Fixed(HeaderValue),
    /// `NAME=<base><counter in hex>`: a new session every request, cheap
    /// to make (the cache-miss scenario measures the gateway, not this).
    Unique {
        prefix: String,
        counter: AtomicU64,
    },
    /// `NAME=CfDJ8<random base64url>`, `len` characters of value: a new,
    /// unguessable session every request, as a flood of forged cookies
    /// would send.
    Random {
        name: &'static str,
        len: usize,
    },
}

impl Cookie {
    /// `NAME=value` with one session value, which must have PSU's shape.
    pub fn fixed(name: &str, value: &str) -> Result<Self, String> {
        check_shape(value)?;
        HeaderValue::from_str(&format!("{name}={value}"))
            .map(Cookie::Fixed)
            .map_err(|e| e.to_string())
    }

    /// A counter appended to `base`, a value of PSU's shape; the hex digits
    /// keep it one.
    pub fn unique(name: &str, base: &str) -> Result<Self, String> {
        check_shape(base)?;
        Ok(Cookie::Unique {
            prefix: format!("{name}={base}"),
            counter: AtomicU64::new(0),
        })
    }

    /// A random value of PSU's shape, `len` characters (at least 64).
    pub fn random(name: &'static str, len: usize) -> Result<Self, String> {
        check_shape(&random_value(len))?;
        Ok(Cookie::Random { name, len })
    }

    /// This request's Cookie header, if any.
    pub fn header(&self) -> Option<HeaderValue> {
        let text = match self {
            Cookie::None => return None,
            Cookie::Fixed(value) => return Some(value.clone()),
            Cookie::Unique { prefix, counter } => {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                format!("{prefix}{n:016x}")
            }
            Cookie::Random { name, len } => format!("{name}={}", random_value(*len)),
        };
        Some(HeaderValue::from_str(&text).expect("an ASCII cookie"))
    }
}

/// `CfDJ8` and `len - 5` random base64url characters.
pub fn random_value(len: usize) -> String {
    let mut bytes = vec![0u8; len.saturating_sub(DATA_PROTECTION_PREFIX.len())];
    rand::rng().fill(&mut bytes[..]);
    let mut value = String::with_capacity(len);
    value.push_str(DATA_PROTECTION_PREFIX);
    value.extend(
        bytes
            .iter()
            .map(|b| char::from(BASE64URL[usize::from(b & 63)])),
    );
    value
}

fn check_shape(value: &str) -> Result<(), String> {
    if is_data_protection_payload(value) {
        Ok(())
    } else {
        Err(format!(
            "a bench session value of {} characters does not have PSU's shape (CfDJ8, base64url, at least 64 characters): the gateway would answer 401 without asking PSU",
            value.len()
        ))
    }
}
