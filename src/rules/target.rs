//! Request-target form and Host validation (pipeline steps 3 and 4).
//!
//! Only origin-form targets are routed: an absolute-form URL or a second
//! authority is a second opinion about where the request goes, and a proxy
//! that lets two opinions coexist can be steered around its own allowlist.

use http::header::{HeaderMap, HOST};
use http::uri::Authority;
use http::{Method, Uri, Version};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("only origin-form request targets (/path?query) are accepted")]
    NotOriginForm,
    #[error("CONNECT is not supported")]
    Connect,
    #[error("TRACE is not allowed")]
    Trace,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the request has no Host")]
    Missing,
    #[error("the request has more than one Host")]
    Multiple,
    #[error("the Host header is not a valid host[:port]")]
    Malformed,
    #[error("Host and :authority disagree")]
    Mismatch,
    #[error("this gateway does not serve that host name")]
    NotServed,
}

/// Step 3: origin-form only; `CONNECT` and `OPTIONS *` refused; `TRACE` 405.
pub fn check_target(method: &Method, uri: &Uri, version: Version) -> Result<(), TargetError> {
    if method == Method::CONNECT {
        return Err(TargetError::Connect);
    }
    if method == Method::TRACE {
        return Err(TargetError::Trace);
    }
    // HTTP/2 always carries scheme and authority as pseudo-headers; over
    // HTTP/1 their presence in the URI means the client sent absolute-form.
    let http1_absolute =
        version < Version::HTTP_2 && (uri.scheme().is_some() || uri.authority().is_some());
    if http1_absolute || !uri.path().starts_with('/') {
        return Err(TargetError::NotOriginForm);
    }
    Ok(())
}

/// Step 4: the single validated host, lower-cased, port kept (it is part of
/// the origin for CSRF checks and of X-Forwarded-Host).
pub fn validated_host(
    uri: &Uri,
    headers: &HeaderMap,
    version: Version,
    hostnames: &[String],
) -> Result<String, HostError> {
    let mut fields = headers.get_all(HOST).iter();
    let header = fields.next();
    if fields.next().is_some() {
        return Err(HostError::Multiple);
    }
    let header = header
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(parse_host)
                .ok_or(HostError::Malformed)
        })
        .transpose()?;
    let pseudo = if version >= Version::HTTP_2 {
        uri.authority()
            .map(|a| parse_host(a.as_str()).ok_or(HostError::Malformed))
            .transpose()?
    } else {
        None
    };
    let host = match (header, pseudo) {
        (Some(h), Some(a)) if h != a => return Err(HostError::Mismatch),
        (Some(h), _) => h,
        (None, Some(a)) => a,
        (None, None) => return Err(HostError::Missing),
    };
    let name = host_name(&host);
    if !hostnames.is_empty() && !hostnames.iter().any(|h| h == name) {
        return Err(HostError::NotServed);
    }
    Ok(host)
}

fn parse_host(text: &str) -> Option<String> {
    if text.is_empty() || text.contains(['@', '/', '?', '#', '\\']) {
        return None;
    }
    let authority: Authority = text.parse().ok()?;
    Some(authority.as_str().to_ascii_lowercase())
}

/// The host without its port (IPv6 brackets kept).
fn host_name(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn hosts(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(HOST, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn targets() {
        let h1 = Version::HTTP_11;
        let ok = |m: Method, u: &str, v| check_target(&m, &u.parse().unwrap(), v);
        assert_eq!(ok(Method::GET, "/api?x", h1), Ok(()));
        assert_eq!(
            ok(Method::GET, "http://psu/api/v1/usersession", h1),
            Err(TargetError::NotOriginForm)
        );
        assert_eq!(
            ok(Method::OPTIONS, "*", h1),
            Err(TargetError::NotOriginForm)
        );
        assert_eq!(
            ok(Method::CONNECT, "psu:443", h1),
            Err(TargetError::Connect)
        );
        assert_eq!(ok(Method::TRACE, "/", h1), Err(TargetError::Trace));
        assert_eq!(ok(Method::GET, "https://psu/api", Version::HTTP_2), Ok(()));
    }

    #[test]
    fn host_rules() {
        let none: &[String] = &[];
        let h1 = Version::HTTP_11;
        let origin: Uri = "/".parse().unwrap();
        assert_eq!(
            validated_host(&origin, &hosts(&["PSU.example.com:8443"]), h1, none),
            Ok("psu.example.com:8443".into())
        );
        assert_eq!(
            validated_host(&origin, &hosts(&[]), h1, none),
            Err(HostError::Missing)
        );
        assert_eq!(
            validated_host(&origin, &hosts(&["a", "a"]), h1, none),
            Err(HostError::Multiple)
        );
        for bad in ["", "a@b", "a/b", "a b", "a:b:c", "a\\b"] {
            let mut map = HeaderMap::new();
            map.insert(HOST, HeaderValue::from_str(bad).unwrap());
            assert_eq!(
                validated_host(&origin, &map, h1, none),
                Err(HostError::Malformed),
                "{bad:?}"
            );
        }
        let h2: Uri = "https://psu.example.com/x".parse().unwrap();
        let v2 = Version::HTTP_2;
        assert_eq!(
            validated_host(&h2, &hosts(&[]), v2, none),
            Ok("psu.example.com".into())
        );
        assert_eq!(
            validated_host(&h2, &hosts(&["PSU.example.com"]), v2, none),
            Ok("psu.example.com".into())
        );
        assert_eq!(
            validated_host(&h2, &hosts(&["other"]), v2, none),
            Err(HostError::Mismatch)
        );
    }

    #[test]
    fn hostnames_ignore_port() {
        let names = vec!["psu.example.com".to_owned(), "[::1]".to_owned()];
        let uri: Uri = "/".parse().unwrap();
        let h1 = Version::HTTP_11;
        assert!(validated_host(&uri, &hosts(&["psu.example.com:8443"]), h1, &names).is_ok());
        assert!(validated_host(&uri, &hosts(&["[::1]:8443"]), h1, &names).is_ok());
        assert_eq!(
            validated_host(&uri, &hosts(&["evil.example.com"]), h1, &names),
            Err(HostError::NotServed)
        );
        assert_eq!(
            validated_host(&uri, &hosts(&["psu.example.com.evil"]), h1, &names),
            Err(HostError::NotServed)
        );
    }
}
