//! The route table: which access rule applies to a normalized path and method.
//!
//! Matching is ASCII case-insensitive (PSU's router is) and ignores one
//! trailing `/`; an exact `path` beats any `prefix`, a longer prefix beats a
//! shorter one, and prefixes only match on segment boundaries so that an
//! allowlisted `/api` never covers `/apix`.

use std::collections::HashMap;
use std::fmt;

use http::Method;

use crate::rules::path::route_key;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Session,
    Inject,
    Deny,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Session => "session",
            Access::Inject => "inject",
            Access::Deny => "deny",
        }
    }

    /// Whether the route needs a valid session cookie.
    pub fn needs_session(self) -> bool {
        matches!(self, Access::Session | Access::Inject)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCredentials {
    Strip,
    Forward,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Exact(String),
    Prefix(String),
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathPattern::Exact(p) => write!(f, "path   {p}"),
            PathPattern::Prefix(p) => write!(f, "prefix {p}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub pattern: PathPattern,
    /// `None` matches any method.
    pub methods: Option<Vec<Method>>,
    pub access: Access,
    /// Lower-case role names; empty means any authenticated user.
    pub roles: Vec<String>,
    pub client_credentials: ClientCredentials,
    /// Requests per client address on this route (burst: the count).
    pub rate_limit: Option<crate::rate::Rate>,
}

impl Route {
    /// The client's own `Authorization` reaches PSU on this route (public
    /// routes by default, or `client_credentials = "forward"`; never an
    /// inject or deny route).
    pub fn forwards_client_credentials(&self) -> bool {
        self.client_credentials == ClientCredentials::Forward
            && matches!(self.access, Access::Public | Access::Session)
    }

    fn allows(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }

    fn overlaps(&self, other: &Route) -> bool {
        match (&self.methods, &other.methods) {
            (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
            _ => true,
        }
    }
}

/// Two routes that could both be the most specific match for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConflict {
    pub first: usize,
    pub second: usize,
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
    exact: HashMap<String, Vec<usize>>,
    /// (match key, route index), longest key first.
    prefixes: Vec<(String, usize)>,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Result<Self, Vec<RouteConflict>> {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut prefixes = Vec::new();
        for (index, route) in routes.iter().enumerate() {
            match &route.pattern {
                PathPattern::Exact(p) => exact.entry(match_key(p)).or_default().push(index),
                PathPattern::Prefix(p) => prefixes.push((match_key(p), index)),
            }
        }
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let table = Self {
            routes,
            exact,
            prefixes,
        };
        let conflicts = table.conflicts();
        if conflicts.is_empty() {
            Ok(table)
        } else {
            Err(conflicts)
        }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The most specific route for a request, by its [`route_key`] and method.
    pub fn find(&self, key: &str, method: &Method) -> Option<&Route> {
        let exact = self
            .exact
            .get(key)
            .into_iter()
            .flatten()
            .map(|&i| &self.routes[i])
            .find(|r| r.allows(method));
        exact.or_else(|| {
            self.prefixes
                .iter()
                .filter(|(prefix, _)| prefix_matches(prefix, key))
                .map(|&(_, i)| &self.routes[i])
                .find(|r| r.allows(method))
        })
    }

    fn conflicts(&self) -> Vec<RouteConflict> {
        let groups = self.exact.values().cloned().chain(self.prefix_groups());
        let mut found = Vec::new();
        for group in groups {
            for (n, &a) in group.iter().enumerate() {
                for &b in &group[n + 1..] {
                    if self.routes[a].overlaps(&self.routes[b]) {
                        found.push(RouteConflict {
                            first: a.min(b),
                            second: a.max(b),
                        });
                    }
                }
            }
        }
        found.sort_by_key(|c| (c.second, c.first));
        found
    }

    fn prefix_groups(&self) -> Vec<Vec<usize>> {
        let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
        for (key, index) in &self.prefixes {
            groups.entry(key).or_default().push(*index);
        }
        groups.into_values().collect()
    }
}

/// Config paths were validated as normalized; a key that cannot be built
/// here was already reported by the validator.
fn match_key(path: &str) -> String {
    route_key(path).unwrap_or_else(|_| path.to_ascii_lowercase())
}

fn prefix_matches(prefix: &str, key: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, pattern: PathPattern, methods: Option<&[&str]>) -> Route {
        Route {
            name: name.to_owned(),
            pattern,
            methods: methods.map(|m| {
                m.iter()
                    .map(|s| Method::from_bytes(s.as_bytes()).unwrap())
                    .collect()
            }),
            access: Access::Public,
            roles: Vec::new(),
            client_credentials: ClientCredentials::Forward,
            rate_limit: None,
        }
    }

    fn exact(p: &str) -> PathPattern {
        PathPattern::Exact(p.to_owned())
    }

    fn prefix(p: &str) -> PathPattern {
        PathPattern::Prefix(p.to_owned())
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            route("root", prefix("/"), None),
            route("api", prefix("/api"), None),
            route("v1", prefix("/api/v1/"), Some(&["GET"])),
            route("us-get", exact("/api/v1/usersession"), Some(&["GET"])),
            route("us-del", exact("/api/v1/usersession"), Some(&["DELETE"])),
            route("colon", exact("/api/v1/a:b"), None),
        ])
        .unwrap()
    }

    #[test]
    fn picks_the_most_specific_route() {
        let t = table();
        let cases = [
            ("/api/v1/usersession", "GET", "us-get"),
            ("/api/v1/usersession/", "GET", "us-get"),
            ("/API/V1/UserSession", "GET", "us-get"),
            ("/api/v1/usersession", "DELETE", "us-del"),
            ("/api/v1/usersession", "POST", "api"),
            ("/api/v1/usersession/1", "GET", "v1"),
            ("/api/v1/usersessionx", "GET", "v1"),
            ("/api/v1", "GET", "v1"),
            ("/api/v1x", "GET", "api"),
            ("/api", "PUT", "api"),
            ("/apix", "GET", "root"),
            ("/", "GET", "root"),
            ("/api/v1/usersession;x", "GET", "v1"),
            // Matched decoded, as Kestrel routes: an escaped ':' is a ':'.
            ("/api/v1/a%3Ab", "GET", "colon"),
            ("/API/V1/A:B/", "GET", "colon"),
        ];
        for (path, method, want) in cases {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(
                t.find(&route_key(path).unwrap(), &m)
                    .map(|r| r.name.as_str()),
                Some(want),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn no_catch_all_without_a_root_route() {
        let t = RouteTable::new(vec![route("us", exact("/api/v1/usersession"), None)]).unwrap();
        for path in [
            "/",
            "/api",
            "/api/v1/usersession/x",
            "/api/v1/usersessio",
            "/xapi/v1/usersession",
        ] {
            assert!(
                t.find(&route_key(path).unwrap(), &Method::GET).is_none(),
                "{path}"
            );
        }
    }

    #[test]
    fn overlapping_ties_are_conflicts() {
        let clash = RouteTable::new(vec![
            route("a", exact("/x"), Some(&["GET", "POST"])),
            route("b", exact("/X/"), Some(&["POST"])),
            route("c", prefix("/p"), None),
            route("d", prefix("/P/"), Some(&["GET"])),
        ])
        .unwrap_err();
        assert_eq!(
            clash,
            vec![
                RouteConflict {
                    first: 0,
                    second: 1
                },
                RouteConflict {
                    first: 2,
                    second: 3
                }
            ]
        );
        let disjoint = RouteTable::new(vec![
            route("a", exact("/x"), Some(&["GET"])),
            route("b", exact("/x"), Some(&["POST"])),
            route("c", prefix("/x"), None),
        ]);
        assert!(disjoint.is_ok());
    }
}
