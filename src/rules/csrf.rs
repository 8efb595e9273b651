//! Cross-site request checks for routes that act with the user's session.
//!
//! Browsers attach the session cookie to cross-site requests; without this
//! step a foreign page could make the gateway inject the app token for it.

use http::header::{HeaderMap, HeaderName, ORIGIN};

use crate::rules::headers::has_token;

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    #[error("cross-site requests are refused on this route (Sec-Fetch-Site: cross-site)")]
    CrossSite,
    #[error("the request's Origin is not allowed on this route")]
    ForeignOrigin,
}

/// `scheme://host[:port]` lower-cased, default port dropped; `None` for
/// anything that is not an http(s) origin (paths, userinfo, `null`).
pub fn normalize_origin(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let authority: http::uri::Authority = rest.parse().ok()?;
    if rest.is_empty() || rest.contains(['@', '/', '?', '#']) {
        return None;
    }
    let lower = authority.as_str().to_ascii_lowercase();
    let host = lower.strip_suffix(default_port).unwrap_or(&lower);
    Some(format!("{scheme}://{host}"))
}

/// Step 8: refuse cross-site use of a session. `host` is the validated
/// Host of the request; `allowed` is `csrf.allowed_origins`.
pub fn check(headers: &HeaderMap, host: &str, allowed: Option<&[String]>) -> Result<(), CsrfError> {
    if has_token(headers, SEC_FETCH_SITE, "cross-site") {
        return Err(CsrfError::CrossSite);
    }
    let same_site = has_token(headers, SEC_FETCH_SITE, "same-site");
    let mut origins = headers.get_all(ORIGIN).iter();
    let Some(origin) = origins.next() else {
        // A sibling subdomain's <img> or link sends the cookie with
        // `same-site` and no Origin: that is not the app itself.
        return if same_site {
            Err(CsrfError::ForeignOrigin)
        } else {
            Ok(())
        };
    };
    if origins.next().is_some() {
        return Err(CsrfError::ForeignOrigin);
    }
    let origin = origin
        .to_str()
        .ok()
        .and_then(normalize_origin)
        .ok_or(CsrfError::ForeignOrigin)?;
    let permitted = match allowed {
        Some(list) => list.contains(&origin),
        None => normalize_origin(&format!("https://{host}")).is_some_and(|own| own == origin),
    };
    if permitted {
        Ok(())
    } else {
        Err(CsrfError::ForeignOrigin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn origins_normalize() {
        let cases = [
            ("https://PSU.example.com", Some("https://psu.example.com")),
            (
                "https://psu.example.com:443",
                Some("https://psu.example.com"),
            ),
            (
                "https://psu.example.com:8443",
                Some("https://psu.example.com:8443"),
            ),
            ("http://x:80", Some("http://x")),
            ("https://[::1]:8443", Some("https://[::1]:8443")),
            ("null", None),
            ("https://", None),
            ("https://a/b", None),
            ("https://u@a", None),
            ("ftp://a", None),
            ("psu.example.com", None),
        ];
        for (text, want) in cases {
            assert_eq!(normalize_origin(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn same_origin_default() {
        let host = "psu.example.com:8443";
        let pass: &[&[(&str, &str)]] = &[
            &[],
            &[("origin", "https://psu.example.com:8443")],
            &[
                ("origin", "https://PSU.example.com:8443"),
                ("sec-fetch-site", "same-origin"),
            ],
            &[("sec-fetch-site", "none")],
            &[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://psu.example.com:8443"),
            ],
        ];
        for h in pass {
            assert_eq!(check(&headers(h), host, None), Ok(()), "{h:?}");
        }
        let refuse: &[(&[(&str, &str)], CsrfError)] = &[
            (&[("sec-fetch-site", "cross-site")], CsrfError::CrossSite),
            (&[("sec-fetch-site", "same-site")], CsrfError::ForeignOrigin),
            (
                &[
                    ("sec-fetch-site", "Cross-Site"),
                    ("origin", "https://psu.example.com:8443"),
                ],
                CsrfError::CrossSite,
            ),
            (&[("origin", "null")], CsrfError::ForeignOrigin),
            (
                &[("origin", "https://evil.example")],
                CsrfError::ForeignOrigin,
            ),
            (
                &[("origin", "http://psu.example.com:8443")],
                CsrfError::ForeignOrigin,
            ),
            (
                &[("origin", "https://psu.example.com")],
                CsrfError::ForeignOrigin,
            ),
            (
                &[("origin", "https://psu.example.com:8443.evil")],
                CsrfError::ForeignOrigin,
            ),
            (
                &[
                    ("origin", "https://psu.example.com:8443"),
                    ("origin", "https://evil"),
                ],
                CsrfError::ForeignOrigin,
            ),
        ];
        for (h, want) in refuse {
            assert_eq!(check(&headers(h), host, None), Err(want.clone()), "{h:?}");
        }
    }

    #[test]
    fn configured_list_replaces_same_origin() {
        let allowed = vec!["https://app.example.com".to_owned()];
        let ok = headers(&[("origin", "https://app.example.com")]);
        assert_eq!(check(&ok, "psu.example.com", Some(&allowed)), Ok(()));
        let own = headers(&[("origin", "https://psu.example.com")]);
        assert_eq!(
            check(&own, "psu.example.com", Some(&allowed)),
            Err(CsrfError::ForeignOrigin)
        );
    }
}
