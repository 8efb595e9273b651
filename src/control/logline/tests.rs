use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::format::{DefaultFields, JsonFields};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::Registry;

use super::*;

/// What a subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Stands in for the wrapped formatter, so a test sees which path wrote.
struct Inner;

impl<S, N> FormatEvent<S, N> for Inner
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        _: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str("inner\n")
    }
}

/// What `emit` logs through a pretty-layout subscriber using `format`.
fn pretty_with<E>(format: E, emit: impl Fn()) -> String
where
    E: FormatEvent<Registry, DefaultFields> + Send + Sync + 'static,
{
    let out = Captured::default();
    let o = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || o.clone())
        .event_format(format)
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    out.text()
}

/// What `emit` logs through a JSON-layout subscriber using `format`.
fn json_with<E>(format: E, emit: impl Fn()) -> String
where
    E: FormatEvent<Registry, JsonFields> + Send + Sync + 'static,
{
    let out = Captured::default();
    let o = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || o.clone())
        .event_format(format)
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    out.text()
}

/// What `emit` logs with tracing-subscriber's own formatter for `layout`,
/// with [`Lines`] wrapping [`Inner`] (so a line written by the wrapped
/// formatter shows), and with [`Lines`] as `main` builds it.
fn three(layout: Layout, emit: impl Fn()) -> [String; 3] {
    match layout {
        Layout::Pretty => [
            pretty_with(Format::default(), &emit),
            pretty_with(Lines::new(Inner, Layout::Pretty), &emit),
            pretty_with(Lines::pretty(), &emit),
        ],
        Layout::Json => [
            json_with(Format::default().json().flatten_event(true), &emit),
            json_with(Lines::new(Inner, Layout::Json), &emit),
            json_with(Lines::json(), &emit),
        ],
    }
}

/// Asserts `ours` is `theirs` but for the timestamps, line by line.
fn same_but_time(layout: Layout, theirs: &str, ours: &str) {
    assert_eq!(
        theirs.lines().count(),
        ours.lines().count(),
        "{theirs}\n{ours}"
    );
    for (t, o) in theirs.lines().zip(ours.lines()) {
        assert_eq!(untimed(layout, t).0, untimed(layout, o).0, "{layout:?}");
    }
}

/// The line with its timestamp cut out, and the timestamp.
fn untimed(layout: Layout, line: &str) -> (String, String) {
    match layout {
        Layout::Pretty => {
            let (stamp, rest) = line.split_once(' ').unwrap();
            (rest.to_owned(), stamp.to_owned())
        }
        Layout::Json => {
            let start = line.find("\"timestamp\":\"").unwrap() + 13;
            let end = start + line[start..].find('"').unwrap();
            (
                format!("{}{}", &line[..start], &line[end..]),
                line[start..end].to_owned(),
            )
        }
    }
}

const HOSTILE: [&str; 12] = [
    "/api/v1/usersession",
    "",
    "quote\"d",
    "back\\slash",
    "new\nline\r\n",
    "tab\tand\0nul",
    "\u{1b}[31mred\u{1b}[0m",
    "del\u{7f}",
    "caf\u{e9} \u{1f600}",
    "zero\u{200b}width",
    "line\u{2028}separator",
    "\u{1}\u{8}\u{c}\u{1f}",
];

/// An access line as `pipeline::record` writes one, with `path` and
/// `identity` as given.
fn access(path: &str, identity: &str, total_ms: f64, upstream_ms: Option<f64>) {
    let peer: std::net::SocketAddr = "127.0.0.1:51234".parse().unwrap();
    let method = http::Method::GET;
    tracing::info!(
        target: "access",
        request_id = "0f3a",
        peer = %peer,
        method = %method,
        path,
        route = "usersession",
        access = "inject",
        identity,
        status = 200u16,
        bytes_in = None::<u64>,
        bytes_out = Some(1234u64),
        total_ms,
        upstream_ms,
        cache = "hit",
        injected = true,
    );
}

#[test]
fn access_and_audit_lines_match_tracing_subscribers_byte_for_byte() {
    for layout in [Layout::Pretty, Layout::Json] {
        for (i, value) in HOSTILE.iter().enumerate() {
            let ms = [0.0, 0.1, 1.0, 1e-7, 123_456.789, 1e21, 2.5e-3][i % 7];
            let [theirs, marked, ours] = three(layout, || {
                access(value, value, ms, (i % 2 == 0).then_some(ms * 3.0));
                tracing::info!(
                    target: "audit",
                    request_id = *value,
                    identity = "admin",
                    upstream_status = 200u16,
                    signed = -42i64,
                    lowest = i64::MIN,
                    highest = u64::MAX,
                    zero = 0u64,
                    injected = false,
                    token = "1a2b3c4d",
                );
            });
            assert_eq!(theirs.lines().count(), 2, "{theirs}");
            assert!(!marked.contains("inner"), "{layout:?} {value:?}: {marked}");
            same_but_time(layout, &theirs, &marked);
            same_but_time(layout, &theirs, &ours);
        }
    }
}

#[test]
fn other_events_and_lines_inside_a_span_go_to_the_wrapped_formatter() {
    for layout in [Layout::Pretty, Layout::Json] {
        let emit = || {
            tracing::info!(addr = "127.0.0.1:1", "listening");
            tracing::warn!(target: "access", "a message");
            tracing::info!(target: "access", status = 200u16, log.file = "x.rs");
            let span = tracing::info_span!("conn", id = 1);
            let _entered = span.enter();
            access("/in/a/span", "-", 1.0, None);
            tracing::info!(target: "access", parent: None, path = "/root", status = 200u16);
        };
        let [theirs, marked, ours] = three(layout, emit);
        assert_eq!(marked, "inner\n".repeat(5), "{layout:?}");
        // Lines::pretty() and Lines::json() wrap the formatter they replace.
        same_but_time(layout, &theirs, &ours);
    }
}

#[test]
fn a_terminal_gets_the_coloured_pretty_line_not_this_one() {
    let ours = Captured::default();
    let o = ours.clone();
    let fast = tracing_subscriber::fmt()
        .with_ansi(true)
        .with_writer(move || o.clone())
        .event_format(Lines::new(Inner, Layout::Pretty))
        .finish();
    tracing::subscriber::with_default(fast, || access("/p", "-", 1.0, None));
    assert_eq!(ours.text(), "inner\n");
}

#[test]
fn timestamps_are_utc_with_microseconds() {
    let at = |secs: u64, nanos: u32| {
        let mut s = String::new();
        write_timestamp(&mut s, Duration::new(secs, nanos)).unwrap();
        s
    };
    assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
    assert_eq!(at(951_782_400, 500_000_000), "2000-02-29T00:00:00.500000Z");
    assert_eq!(
        at(1_709_210_096, 999_999_999),
        "2024-02-29T12:34:56.999999Z"
    );
    // The same thread, another second: the cached date is not reused.
    assert_eq!(
        at(1_764_410_462, 123_456_789),
        "2025-11-29T10:01:02.123456Z"
    );
    assert_eq!(at(4_102_444_799, 1_000), "2099-12-31T23:59:59.000001Z");
    assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
}

#[test]
fn years_outside_1970_to_9999_are_left_to_tracing_subscriber() {
    let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    assert!(ordinary_time(last).is_some());
    assert!(ordinary_time(last + Duration::from_secs(1)).is_none());
    assert!(ordinary_time(UNIX_EPOCH).is_some());
    assert!(ordinary_time(UNIX_EPOCH - Duration::from_nanos(1)).is_none());
}

#[test]
fn timestamps_match_tracing_subscribers_clock() {
    // Both read the clock; retried if a second boundary fell in between.
    for _ in 0..5 {
        let mut theirs = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut Writer::new(&mut theirs))
            .unwrap();
        let mut ours = String::new();
        let since = ordinary_time(SystemTime::now()).unwrap();
        write_timestamp(&mut ours, since).unwrap();
        assert_eq!(theirs.len(), ours.len(), "{theirs} {ours}");
        if theirs[..19] == ours[..19] {
            return;
        }
    }
    panic!("the two clocks never agreed on the second");
}
