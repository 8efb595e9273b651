//! Step 10 of the pipeline: the request head PSU receives. Strip everything
//! a client could have forged, then set what the gateway vouches for, the
//! app token last and only on inject routes.
//!
//! Pure over a `HeaderMap`, so the pipeline, the tests and the benches run
//! the same code.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE, HOST};

use crate::rules::cookies::strip_session_cookies;
use crate::rules::headers::{self, ForwardedFor};
use crate::rules::routes::{Access, ClientCredentials, Route};

/// What the rewrite of one request depends on.
pub struct HeadRewrite<'a> {
    pub route: &'a Route,
    /// h2 clients may keep `TE: trailers`.
    pub keep_te_trailers: bool,
    /// The client is in `forwarding.trusted_proxies`: its X-Forwarded-For
    /// chain is extended rather than replaced.
    pub trusted_peer: bool,
    /// The configured session cookie names.
    pub session_cookies: &'a [String],
    /// The configured credential header: stripped from clients along with
    /// the two standard ones, and the header the token goes in.
    pub credential_header: Option<&'a HeaderName>,
    pub peer: IpAddr,
    /// The request's validated Host, for X-Forwarded-Host.
    pub host: &'a str,
    /// The Host PSU sees (`upstream.preserve_host`).
    pub upstream_host: HeaderValue,
    pub request_id: &'a HeaderValue,
    /// The app token's header value; set only when the route injects.
    pub token: Option<&'a HeaderValue>,
}

/// Rewrites `headers` for the upstream. `cookie` is the request's `Cookie`
/// fields joined into one (`None` when there were none or they were not
/// text).
pub fn rewrite_head(headers: &mut HeaderMap, cookie: Option<String>, plan: HeadRewrite<'_>) {
    let access = plan.route.access;
    headers::strip_hop_by_hop(headers, plan.keep_te_trailers);
    let earlier = headers::strip_forwarding(headers, plan.trusted_peer);
    let cookie = match access {
        Access::Inject => cookie.and_then(|c| strip_session_cookies(&c, plan.session_cookies)),
        Access::Public | Access::Session | Access::Deny => cookie,
    };
    set_cookie(headers, cookie);
    if access == Access::Inject || plan.route.client_credentials == ClientCredentials::Strip {
        headers::strip_client_credentials(headers, plan.credential_header);
    }
    // Set: only now, after every strip.
    headers::set_forwarding(
        headers,
        &ForwardedFor {
            peer: plan.peer,
            host: plan.host,
            request_id: plan.request_id,
            earlier: earlier.for_chain.as_deref(),
        },
    );
    headers.insert(HOST, plan.upstream_host);
    if let (Access::Inject, Some(name), Some(value)) = (access, plan.credential_header, plan.token)
    {
        headers.insert(name.clone(), value.clone());
    }
}

/// Several `Cookie` fields (h2 splits them) travel as one joined field; a
/// field that is not text is forwarded as sent (it cannot hold a session).
fn set_cookie(headers: &mut HeaderMap, cookie: Option<String>) {
    let Some(joined) = cookie else {
        if headers.get_all(COOKIE).iter().all(|v| v.to_str().is_ok()) {
            headers.remove(COOKIE);
        }
        return;
    };
    if let Ok(mut value) = HeaderValue::from_str(&joined) {
        value.set_sensitive(true);
        headers.insert(COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use http::header::AUTHORIZATION;

    use super::*;
    use crate::rules::cookies::join_cookie_fields;
    use crate::rules::headers::X_PSU_AUTHORIZATION;
    use crate::rules::routes::PathPattern;

    const SESSION: &str = ".AspNetCore.Identity.Application";

    fn route(access: Access, client_credentials: ClientCredentials) -> Route {
        Route {
            name: "r".into(),
            pattern: PathPattern::Exact("/api/v1/usersession".into()),
            methods: None,
            access,
            roles: vec![],
            client_credentials,
            rate_limit: None,
        }
    }

    /// Rewrites `sent` (name, value pairs) for `route`, with the token
    /// `Bearer server` on offer.
    fn rewrite(route: &Route, sent: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in sent {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let cookie = join_cookie_fields(headers.get_all(COOKIE)).unwrap();
        let names = [SESSION.to_owned()];
        let token = HeaderValue::from_static("Bearer server");
        let request_id = HeaderValue::from_static("id-1");
        let plan = HeadRewrite {
            route,
            keep_te_trailers: false,
            trusted_peer: false,
            session_cookies: &names,
            credential_header: Some(&X_PSU_AUTHORIZATION),
            peer: "203.0.113.7".parse().unwrap(),
            host: "psu.example.com",
            upstream_host: HeaderValue::from_static("psu.internal"),
            request_id: &request_id,
            token: Some(&token),
        };
        rewrite_head(&mut headers, cookie, plan);
        headers
    }

    fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn an_inject_route_swaps_the_clients_credentials_for_the_token() {
        let route = route(Access::Inject, ClientCredentials::Strip);
        let h = rewrite(
            &route,
            &[
                ("authorization", "Bearer client"),
                ("x-psu-authorization", "Bearer forged"),
                ("cookie", &format!("theme=dark; {SESSION}=secret")),
                ("cookie", "lang=en"),
                ("host", "psu.example.com"),
            ],
        );
        assert_eq!(values(&h, "x-psu-authorization"), ["Bearer server"]);
        assert!(h.get(AUTHORIZATION).is_none());
        assert_eq!(values(&h, "cookie"), ["theme=dark; lang=en"]);
        assert!(h.get(COOKIE).unwrap().is_sensitive());
        assert_eq!(values(&h, "host"), ["psu.internal"]);
        assert_eq!(values(&h, "x-forwarded-host"), ["psu.example.com"]);
        assert_eq!(values(&h, "x-forwarded-for"), ["203.0.113.7"]);
        assert_eq!(values(&h, "x-request-id"), ["id-1"]);
    }

    #[test]
    fn only_inject_routes_get_the_token() {
        for access in [Access::Public, Access::Session, Access::Deny] {
            let route = route(access, ClientCredentials::Strip);
            let cookie = format!("{SESSION}=secret");
            let h = rewrite(&route, &[("cookie", &cookie)]);
            assert!(h.get(X_PSU_AUTHORIZATION).is_none(), "{access:?}");
            assert_eq!(values(&h, "cookie"), [cookie.as_str()], "{access:?}");
        }
    }

    #[test]
    fn passed_credentials_survive_only_where_the_route_says() {
        let sent = [("authorization", "Bearer own")];
        let session = route(Access::Session, ClientCredentials::Forward);
        let h = rewrite(&session, &sent);
        assert_eq!(values(&h, "authorization"), ["Bearer own"]);
        let inject = route(Access::Inject, ClientCredentials::Forward);
        let h = rewrite(&inject, &sent);
        assert!(h.get(AUTHORIZATION).is_none(), "inject always strips");
    }

    #[test]
    fn a_connection_option_cannot_remove_or_smuggle_what_the_gateway_set() {
        let route = route(Access::Inject, ClientCredentials::Strip);
        let h = rewrite(
            &route,
            &[
                (
                    "connection",
                    "x-psu-authorization, x-forwarded-for, x-request-id, host, cookie",
                ),
                ("x-forwarded-for", "10.6.6.6"),
                ("x-request-id", "forged"),
                ("cookie", &format!("{SESSION}=secret; keep=1")),
                ("host", "psu.example.com"),
            ],
        );
        assert_eq!(values(&h, "x-psu-authorization"), ["Bearer server"]);
        assert_eq!(values(&h, "x-forwarded-for"), ["203.0.113.7"]);
        assert_eq!(values(&h, "x-request-id"), ["id-1"]);
        assert_eq!(values(&h, "cookie"), ["keep=1"]);
        assert!(h.get("connection").is_none());
    }

    #[test]
    fn a_session_cookie_alone_leaves_no_cookie_field_on_inject_routes() {
        let route = route(Access::Inject, ClientCredentials::Strip);
        let h = rewrite(&route, &[("cookie", &format!(" {SESSION}=a ; ; "))]);
        assert!(h.get(COOKIE).is_none());
    }
}
