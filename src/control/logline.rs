//! The access and audit lines, written without tracing-subscriber's
//! generic formatting.
//!
//! Those two lines are written for every request, and formatting them the
//! generic way was the largest cost the gateway itself added to a cache-hit
//! request: callgrind counted about 36,600 instructions per request for
//! the two lines (pretty) against about 92,500 for everything else outside
//! SHA-256. [`Lines`] writes them straight into the line buffer, byte for
//! byte as tracing-subscriber's `Full` and flattened `Json` formats would
//! (the unit tests compare the two), with the date and time of day worked
//! out once a second per thread. Every other event, and any line that needs
//! colours or span context, goes to the wrapped formatter unchanged.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Json, Writer};
use tracing_subscriber::fmt::time::SystemTime as SystemTimer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub use crate::pipeline::record::{ACCESS, AUDIT};

/// The targets written here; both are events of this crate with fixed,
/// simple fields (`pipeline::record`).
const TARGETS: [&str; 2] = [ACCESS, AUDIT];

/// The two line layouts tracing-subscriber offers through `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `Format<Full>`: `2026-11-29T10:01:02.123456Z  INFO access: a="x" b=1`.
    Pretty,
    /// `Format<Json>` with `flatten_event(true)`.
    Json,
}

/// An event formatter: access and audit lines written here, every other
/// event by `inner`.
#[derive(Debug)]
pub struct Lines<F> {
    inner: F,
    layout: Layout,
}

impl<F> Lines<F> {
    /// `inner` must be the formatter `layout` names, with its default
    /// settings, so both paths print the same line.
    pub fn new(inner: F, layout: Layout) -> Self {
        Self { inner, layout }
    }
}

impl Lines<Format<Full, SystemTimer>> {
    /// For `--log-format pretty`, the subscriber's default fields.
    pub fn pretty() -> Self {
        Self::new(Format::default(), Layout::Pretty)
    }
}

impl Lines<Format<Json, SystemTimer>> {
    /// For `--log-format json`, with `JsonFields` and events flattened.
    pub fn json() -> Self {
        Self::new(Format::default().json().flatten_event(true), Layout::Json)
    }
}

impl<S, N, F> FormatEvent<S, N> for Lines<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let fast = ours(event)
            && !(self.layout == Layout::Pretty && writer.has_ansi_escapes())
            && ctx.event_scope().is_none();
        let since = fast.then(|| ordinary_time(SystemTime::now())).flatten();
        match (since, self.layout) {
            (Some(since), Layout::Pretty) => write_pretty(&mut writer, event, since),
            (Some(since), Layout::Json) => write_json(&mut writer, event, since),
            (None, _) => self.inner.format_event(ctx, writer, event),
        }
    }
}

/// An access or audit event as `pipeline::record` writes them: in the current
/// span context, no message, no field names tracing-subscriber rewrites
/// (`r#` raw identifiers) or hides (`log.` metadata).
fn ours(event: &Event<'_>) -> bool {
    let meta = event.metadata();
    TARGETS.contains(&meta.target())
        && event.is_contextual()
        && meta.fields().iter().all(|field| {
            let name = field.name();
            name != "message" && !name.starts_with("r#") && !name.starts_with("log.")
        })
}

/// The time since the epoch, if it is one written here: from 1970 to the
/// end of year 9999 (tracing-subscriber writes other years differently).
fn ordinary_time(now: SystemTime) -> Option<Duration> {
    const YEAR_10000: u64 = 253_402_300_800;
    now.duration_since(UNIX_EPOCH)
        .ok()
        .filter(|since| since.as_secs() < YEAR_10000)
}

fn write_pretty(w: &mut impl fmt::Write, event: &Event<'_>, since: Duration) -> fmt::Result {
    write_timestamp(w, since)?;
    w.write_char(' ')?;
    w.write_str(pretty_level(event.metadata().level()))?;
    w.write_char(' ')?;
    w.write_str(event.metadata().target())?;
    w.write_str(": ")?;
    let mut fields = PrettyFields {
        w: &mut *w,
        first: true,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    w.write_char('\n')
}

fn write_json(w: &mut impl fmt::Write, event: &Event<'_>, since: Duration) -> fmt::Result {
    w.write_str("{\"timestamp\":\"")?;
    write_timestamp(w, since)?;
    w.write_str("\",\"level\":\"")?;
    w.write_str(event.metadata().level().as_str())?;
    w.write_char('"')?;
    let mut fields = JsonFields {
        w: &mut *w,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    w.write_str(",\"target\":")?;
    json_string(w, event.metadata().target())?;
    w.write_str("}\n")
}

/// The level as `Format<Full>` pads it: five columns, right-aligned.
fn pretty_level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// `name=value` pairs separated by spaces, values as `{:?}` prints them:
/// what `DefaultFields` writes without colours. Integers and booleans are
/// written directly (`{:?}` of an integer is its decimal digits); floats
/// reach `record_debug` through `Visit`'s default method, as they do there.
struct PrettyFields<'w, W> {
    w: &'w mut W,
    first: bool,
    result: fmt::Result,
}

impl<W: fmt::Write> PrettyFields<'_, W> {
    /// Writes `name=text`, `text` being the value as `{:?}` prints it.
    fn plain(&mut self, field: &Field, text: &str) {
        if self.key(field) {
            self.result = self.w.write_str(text);
        }
    }

    /// Writes `name=` (after a space unless first); false once failed.
    fn key(&mut self, field: &Field) -> bool {
        if self.result.is_err() {
            return false;
        }
        let sep = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        self.result = self
            .w
            .write_str(sep)
            .and_then(|()| self.w.write_str(field.name()))
            .and_then(|()| self.w.write_char('='));
        self.result.is_ok()
    }
}

impl<W: fmt::Write> Visit for PrettyFields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            self.result = debug_str(self.w, value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.plain(field, itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.plain(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.plain(field, if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            self.result = write!(self.w, "{value:?}");
        }
    }
}

/// `value` as `{:?}` prints a `str`: quoted, with `"`, `\` and anything
/// not printable escaped. Printable ASCII is copied as it is.
fn debug_str(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    let plain = value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        w.write_char('"')?;
        w.write_str(value)?;
        w.write_char('"')
    } else {
        write!(w, "{value:?}")
    }
}

/// `,"name":value` per field, values as serde_json writes them: what
/// tracing-serde's map visitor produces.
struct JsonFields<'w, W> {
    w: &'w mut W,
    result: fmt::Result,
}

impl<W: fmt::Write> JsonFields<'_, W> {
    fn key(&mut self, field: &Field) -> bool {
        if self.result.is_err() {
            return false;
        }
        self.result = self
            .w
            .write_char(',')
            .and_then(|()| json_string(self.w, field.name()))
            .and_then(|()| self.w.write_char(':'));
        self.result.is_ok()
    }

    /// A number, `null` or a boolean, exactly as serde_json writes it.
    fn scalar(&mut self, field: &Field, value: impl serde::Serialize) {
        if self.key(field) {
            self.result = serde_scalar(self.w, &value);
        }
    }
}

impl<W: fmt::Write> Visit for JsonFields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            self.result = json_string(self.w, value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.scalar(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.scalar(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.scalar(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.scalar(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            self.result = self
                .w
                .write_char('"')
                .and_then(|()| write!(JsonEscaped(&mut *self.w), "{value:?}"))
                .and_then(|()| self.w.write_char('"'));
        }
    }
}

/// A scalar serialized by serde_json into a stack buffer: its number
/// formatting without an allocation.
fn serde_scalar(w: &mut impl fmt::Write, value: &impl serde::Serialize) -> fmt::Result {
    let mut buf = [0u8; 40];
    let mut rest = &mut buf[..];
    serde_json::to_writer(&mut rest, value).map_err(|_| fmt::Error)?;
    let used = 40 - rest.len();
    w.write_str(std::str::from_utf8(&buf[..used]).map_err(|_| fmt::Error)?)
}

fn json_string(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    w.write_char('"')?;
    JsonEscaped(&mut *w).write_str(value)?;
    w.write_char('"')
}

/// Escapes what serde_json escapes inside a string: `"`, `\` and the
/// control characters below 0x20 (short forms where JSON has them,
/// otherwise `\u00xx`). Everything else, DEL and non-ASCII included, as is.
struct JsonEscaped<'w, W>(&'w mut W);

impl<W: fmt::Write> fmt::Write for JsonEscaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let short = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if short.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(short)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

thread_local! {
    /// The last second formatted on this thread and its
    /// `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// A time [`ordinary_time`] let through, as tracing-subscriber's
/// `SystemTime` timer writes it: `2026-11-29T10:01:02.123456Z` (UTC,
/// microseconds, truncated).
fn write_timestamp(w: &mut impl fmt::Write, since: Duration) -> fmt::Result {
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            cached.1.clear();
            crate::duration::date_time(&mut cached.1, secs)?;
            cached.0 = secs;
        }
        w.write_str(&cached.1)
    })?;
    write!(w, ".{:06}Z", since.subsec_micros())
}

#[cfg(test)]
mod tests;
