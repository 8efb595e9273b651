//! The session cookie on the wire: Set-Cookie values, Cookie parsing and ASP.NET chunking.

use http::header::COOKIE;
use http::HeaderMap;

/// The attributes PSU (ASP.NET Core cookie auth) puts on its session cookie.
const ATTRIBUTES: &str = "path=/; secure; samesite=lax; httponly";
/// How a deleted cookie is written: already expired.
const EXPIRED: &str =
    "expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/; secure; samesite=lax; httponly";
/// The value of the first cookie when the real value is split: `chunks-N`.
const CHUNKS_PREFIX: &str = "chunks-";
/// A chunk count beyond this is garbage, not a session (ASP.NET caps it too).
const MAX_CHUNKS: usize = 256;

/// How the simulator names and splits its session cookie.
#[derive(Clone, Debug)]
pub struct CookieConfig {
    pub name: String,
    /// `Some(n)`: values longer than `n` characters are split into `n`-sized chunks.
    pub chunk_size: Option<usize>,
}

impl CookieConfig {
    /// The `Set-Cookie` values that store `value`: one cookie, or ASP.NET's
    /// `NAME=chunks-N` plus `NAMEC1..NAMECN` when it is longer than a chunk.
    pub fn set_cookies(&self, value: &str) -> Vec<String> {
        let chunks = self.split(value);
        if chunks.len() <= 1 {
            return vec![format!("{}={value}; {ATTRIBUTES}", self.name)];
        }
        let mut cookies = vec![format!(
            "{}={CHUNKS_PREFIX}{}; {ATTRIBUTES}",
            self.name,
            chunks.len()
        )];
        for (index, chunk) in chunks.iter().enumerate() {
            cookies.push(format!("{}C{}={chunk}; {ATTRIBUTES}", self.name, index + 1));
        }
        cookies
    }

    /// `Set-Cookie` values that delete the session cookie and `chunks` chunks.
    pub fn delete_cookies(&self, chunks: usize) -> Vec<String> {
        let mut cookies = vec![format!("{}=; {EXPIRED}", self.name)];
        cookies.extend((1..=chunks).map(|i| format!("{}C{i}=; {EXPIRED}", self.name)));
        cookies
    }

    /// Splits `value` into chunks; the value is ASCII (base64url), so byte
    /// positions are character positions.
    pub fn split(&self, value: &str) -> Vec<String> {
        match self.chunk_size {
            Some(size) if size > 0 && value.len() > size => value
                .as_bytes()
                .chunks(size)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect(),
            _ => vec![value.to_owned()],
        }
    }

    /// The session value the request carries, reassembled from chunks when
    /// the first cookie says `chunks-N`. Every chunk must be present, as in
    /// ASP.NET; an empty or incomplete value is no session.
    pub fn read(&self, headers: &HeaderMap) -> Option<ReadCookie> {
        let pairs = cookie_pairs(headers);
        let first = find(&pairs, &self.name)?;
        let value = match chunk_count(first) {
            None => first.to_owned(),
            Some(count) => {
                let parts: Option<Vec<&str>> = (1..=count)
                    .map(|i| find(&pairs, &format!("{}C{i}", self.name)))
                    .collect();
                parts?.concat()
            }
        };
        if value.is_empty() {
            return None;
        }
        Some(ReadCookie {
            value,
            chunks: chunk_count(first).unwrap_or(0),
        })
    }
}

/// A session cookie value found in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadCookie {
    pub value: String,
    /// How many chunk cookies carried it (0: not chunked).
    pub chunks: usize,
}

/// Every `name=value` pair of every `Cookie` header (HTTP/2 clients may send
/// one header per cookie).
fn cookie_pairs(headers: &HeaderMap) -> Vec<(&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(name, value)| (name.trim(), value.trim()))
        .collect()
}

/// The first cookie with this exact (case-sensitive) name.
fn find<'a>(pairs: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn chunk_count(value: &str) -> Option<usize> {
    let count: usize = value.strip_prefix(CHUNKS_PREFIX)?.parse().ok()?;
    (1..=MAX_CHUNKS).contains(&count).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn config(chunk_size: Option<usize>) -> CookieConfig {
        CookieConfig {
            name: ".AspNetCore.Identity.Application".into(),
            chunk_size,
        }
    }

    /// What a browser sends back for these Set-Cookie values.
    fn echo(set_cookies: &[String]) -> HeaderMap {
        let pairs: Vec<&str> = set_cookies
            .iter()
            .map(|c| c.split(';').next().unwrap())
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("theme=dark; {}", pairs.join("; "))).unwrap(),
        );
        headers
    }

    #[test]
    fn short_values_are_one_cookie() {
        let cookies = config(None).set_cookies("abc");
        assert_eq!(
            cookies,
            [".AspNetCore.Identity.Application=abc; path=/; secure; samesite=lax; httponly"]
        );
        assert_eq!(config(Some(3)).set_cookies("abc").len(), 1);
        assert_eq!(config(Some(0)).split("abc"), ["abc"]);
        let read = config(None).read(&echo(&cookies)).unwrap();
        assert_eq!((read.value.as_str(), read.chunks), ("abc", 0));
    }

    #[test]
    fn long_values_split_and_reassemble() {
        let value = "a".repeat(10) + &"b".repeat(10) + "c";
        let config = config(Some(10));
        let cookies = config.set_cookies(&value);
        let names: Vec<&str> = cookies
            .iter()
            .map(|c| c.split(';').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                ".AspNetCore.Identity.Application=chunks-3",
                ".AspNetCore.Identity.ApplicationC1=aaaaaaaaaa",
                ".AspNetCore.Identity.ApplicationC2=bbbbbbbbbb",
                ".AspNetCore.Identity.ApplicationC3=c",
            ]
        );
        assert!(cookies.iter().all(|c| c.ends_with(ATTRIBUTES)));
        let read = config.read(&echo(&cookies)).unwrap();
        assert_eq!((read.value, read.chunks), (value, 3));
    }

    #[test]
    fn chunks_may_arrive_in_separate_headers_and_any_order() {
        let config = config(Some(2));
        let mut headers = HeaderMap::new();
        for pair in [
            ".AspNetCore.Identity.ApplicationC2=cd",
            ".AspNetCore.Identity.Application=chunks-2",
            ".AspNetCore.Identity.ApplicationC1=ab",
        ] {
            headers.append(COOKIE, HeaderValue::from_static(pair));
        }
        assert_eq!(config.read(&headers).unwrap().value, "abcd");
    }

    #[test]
    fn missing_chunks_or_empty_values_are_no_session() {
        let config = config(Some(10));
        let mut cookies = config.set_cookies(&"x".repeat(25));
        cookies.remove(2);
        assert_eq!(config.read(&echo(&cookies)), None);
        let only_header = [".AspNetCore.Identity.Application=chunks-2".to_owned()];
        assert_eq!(config.read(&echo(&only_header)), None);
        assert_eq!(
            config.read(&echo(&[".AspNetCore.Identity.Application=".to_owned()])),
            None
        );
        assert_eq!(config.read(&echo(&["other=1".to_owned()])), None);
        assert_eq!(config.read(&HeaderMap::new()), None);
    }

    #[test]
    fn delete_covers_every_chunk() {
        let cookies = config(None).delete_cookies(2);
        assert_eq!(cookies.len(), 3);
        assert!(
            cookies[2].starts_with(".AspNetCore.Identity.ApplicationC2=; expires=Thu, 01 Jan 1970")
        );
    }
}
