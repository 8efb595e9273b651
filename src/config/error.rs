//! Config errors located as `file:line:col: key: what is wrong`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a config file. `Display` is the operator-facing line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    /// Dotted key such as `limits.header_timeout` or `route[1].path`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(
                f,
                "{}:{line}:{col}: {}: {}",
                self.file.display(),
                self.key,
                self.message
            ),
            None => write!(f, "{}: {}: {}", self.file.display(), self.key, self.message),
        }
    }
}

/// Every problem found in one config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// Collects errors against one source text, turning byte spans into positions.
pub(crate) struct ErrorSink<'a> {
    file: &'a Path,
    source: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> ErrorSink<'a> {
    pub(crate) fn new(file: &'a Path, source: &'a str) -> Self {
        Self {
            file,
            source,
            errors: Vec::new(),
        }
    }

    pub(crate) fn at(
        &mut self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let position = span.map(|span| line_col(self.source, span.start));
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            position,
            key: key.into(),
            message: message.into(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    pub(crate) fn finish(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|e| e.position);
        ConfigErrors(self.errors)
    }

    /// Records a TOML syntax or type error. Only toml's bare message is used:
    /// its `Display` quotes the offending source line, which could hold a secret.
    pub(crate) fn toml(&mut self, error: &toml::de::Error) {
        let span = error.span();
        let key = span
            .clone()
            .map(|span| key_at(self.source, span.start))
            .filter(|key| !key.is_empty())
            .or_else(|| missing_field(error.message()))
            .unwrap_or_else(|| "(document)".to_owned());
        self.at(span, key, error.message().trim().to_owned());
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next().map(str::to_owned)
}

/// Best-effort dotted key for an offset: the enclosing `[table]` header plus the
/// key written on that line, so a serde error still names what to fix.
fn key_at(source: &str, offset: usize) -> String {
    let before = source.get(..offset.min(source.len())).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = source[line_start..].lines().next().unwrap_or("");
    let table = before[..line_start]
        .lines()
        .rev()
        .find_map(table_header)
        .unwrap_or_default();
    let key = line
        .split('=')
        .next()
        .filter(|_| line.contains('='))
        .map(|k| k.trim().trim_matches('"').to_owned())
        .unwrap_or_default();
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

fn table_header(line: &str) -> Option<String> {
    let line = line.trim();
    let inner = line
        .strip_prefix("[[")
        .and_then(|l| l.split("]]").next())
        .or_else(|| line.strip_prefix('[').and_then(|l| l.split(']').next()))?;
    Some(inner.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 12), (2, 6));
    }

    #[test]
    fn key_at_names_table_and_key() {
        let src = "[listen]\naddr = 1\n[[route]]\nname = \"x\"\nfoo = 2\n";
        assert_eq!(key_at(src, src.find("addr").unwrap()), "listen.addr");
        assert_eq!(key_at(src, src.find("foo").unwrap()), "route.foo");
        assert_eq!(key_at(src, src.find("1").unwrap()), "listen.addr");
    }

    #[test]
    fn display_is_file_line_col_key_message() {
        let mut sink = ErrorSink::new(Path::new("g.toml"), "x = 1\ny = 2\n");
        sink.at(Some(6..7), "y", "bad");
        assert_eq!(sink.finish().to_string(), "g.toml:2:1: y: bad");
    }
}
