//! Connection-bound authentication in headers: whether a request carries
//! NTLM or Negotiate, whether a 401 offers them, and stripping them when
//! `upstream.windows_auth = "off"`.
//!
//! A scheme is the first token of a credential or challenge, compared
//! ignoring case (RFC 9110 11.1), after any leading whitespace: a value a
//! lenient parser upstream would read as NTLM counts as NTLM here, so
//! "off" strips it and "pin" pins it.

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::HeaderMap;

/// The schemes that authenticate the TCP connection rather than the request.
const CONNECTION_SCHEMES: [&[u8]; 2] = [b"NTLM", b"Negotiate"];

fn is_connection_scheme(token: &[u8]) -> bool {
    CONNECTION_SCHEMES
        .iter()
        .any(|scheme| token.eq_ignore_ascii_case(scheme))
}

fn trim_start(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(value.len());
    &value[start..]
}

/// The leading token of `value`: up to whitespace, `=` or `,`.
fn first_token(value: &[u8]) -> (&[u8], &[u8]) {
    let value = trim_start(value);
    let end = value
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'=' | b','))
        .unwrap_or(value.len());
    value.split_at(end)
}

/// An `Authorization` value in the NTLM or Negotiate scheme.
pub fn is_connection_credential(value: &[u8]) -> bool {
    let (scheme, rest) = first_token(value);
    // `NTLM=...` is a parameter-shaped token, not the scheme.
    !rest.starts_with(b"=") && is_connection_scheme(scheme)
}

/// The request carries NTLM or Negotiate credentials.
pub fn carries_connection_auth(headers: &HeaderMap) -> bool {
    headers
        .get_all(AUTHORIZATION)
        .iter()
        .any(|v| is_connection_credential(v.as_bytes()))
}

/// Removes `Authorization` fields in the NTLM or Negotiate scheme and
/// keeps any other.
pub fn strip_connection_auth(headers: &mut HeaderMap) {
    if !carries_connection_auth(headers) {
        return;
    }
    let kept: Vec<_> = headers
        .get_all(AUTHORIZATION)
        .iter()
        .filter(|v| !is_connection_credential(v.as_bytes()))
        .cloned()
        .collect();
    headers.remove(AUTHORIZATION);
    for value in kept {
        headers.append(AUTHORIZATION, value);
    }
}

/// A `WWW-Authenticate` value (possibly a comma-separated list of
/// challenges) offers NTLM or Negotiate. Commas inside quoted strings do not
/// split, so `Basic realm="NTLM, Negotiate"` offers neither.
pub fn offers_connection_scheme(value: &[u8]) -> bool {
    elements(value).any(|element| {
        let (token, rest) = first_token(element);
        // A token followed by `=` is an auth-param of the challenge before.
        !trim_start(rest).starts_with(b"=") && is_connection_scheme(token)
    })
}

/// The response is a challenge for NTLM or Negotiate.
pub fn challenges_connection_auth(status: http::StatusCode, headers: &HeaderMap) -> bool {
    status == http::StatusCode::UNAUTHORIZED
        && headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .any(|v| offers_connection_scheme(v.as_bytes()))
}

/// The comma-separated elements of a header value, outside quoted strings.
fn elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let value = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, &b) in value.iter().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    rest = Some(&value[i + 1..]);
                    return Some(&value[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(value)
    })
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, StatusCode};

    use super::*;

    #[test]
    fn credentials_in_either_scheme_any_case_are_connection_bound() {
        for value in [
            "NTLM TlRMTVNTUAABAAAA",
            "ntlm TlRMTVNTUAABAAAA",
            "Negotiate YIIGhgYGKwYBBQUCoIIGejCC",
            "NEGOTIATE abc",
            "NTLM",
            " \tNTLM abc",
            "Negotiate\tabc",
        ] {
            assert!(is_connection_credential(value.as_bytes()), "{value:?}");
        }
    }

    #[test]
    fn look_alike_schemes_are_not() {
        for value in [
            "Bearer NTLM",
            "NTLMx abc",
            "NegotiateX abc",
            "NTL abc",
            "Basic TlRMTQ==",
            "NTLM=abc",
            "",
            "   ",
            "Negotiat",
        ] {
            assert!(!is_connection_credential(value.as_bytes()), "{value:?}");
        }
    }

    #[test]
    fn challenges_are_found_in_lists_but_not_in_quoted_params() {
        for value in [
            "NTLM",
            "Negotiate",
            "Basic realm=\"psu\", NTLM",
            "Bearer, negotiate",
            "Basic realm=\"a\\\"b\", Negotiate",
            "Negotiate oYG3MIG0oAMKAQGhCwYJKoZIgvcSAQICooGf",
        ] {
            assert!(offers_connection_scheme(value.as_bytes()), "{value:?}");
        }
        for value in [
            "Basic realm=\"NTLM, Negotiate\"",
            "Bearer error=\"invalid_token\", error_description=\"NTLM\"",
            "Bearer realm=psu, NTLM=1",
            "Basic realm=\"x\\\", NTLM\"",
            "NTLMv2",
            "",
        ] {
            assert!(!offers_connection_scheme(value.as_bytes()), "{value:?}");
        }
    }

    #[test]
    fn only_a_401_is_a_challenge() {
        let mut headers = HeaderMap::new();
        headers.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
        assert!(challenges_connection_auth(
            StatusCode::UNAUTHORIZED,
            &headers
        ));
        assert!(!challenges_connection_auth(StatusCode::OK, &headers));
        assert!(!challenges_connection_auth(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            &headers
        ));
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        assert!(!challenges_connection_auth(
            StatusCode::UNAUTHORIZED,
            &headers
        ));
    }

    #[test]
    fn stripping_removes_only_connection_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static(" ntlm TlRM"));
        strip_connection_auth(&mut headers);
        assert!(headers.get(AUTHORIZATION).is_none());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        strip_connection_auth(&mut headers);
        assert_eq!(headers[AUTHORIZATION], "Bearer abc");
        headers.append(AUTHORIZATION, HeaderValue::from_static("Negotiate YII"));
        strip_connection_auth(&mut headers);
        let left: Vec<_> = headers.get_all(AUTHORIZATION).iter().collect();
        assert_eq!(left, ["Bearer abc"]);
    }
}
