use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::time::FormatTime;

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

/// Runs `emit` under tracing-subscriber's own formatter for `layout` and
/// under [`Lines`] wrapping [`Inner`]; returns both outputs.
fn both(layout: Layout, emit: impl Fn()) -> (String, String) {
    let theirs = Captured::default();
    let ours = Captured::default();
    let (t, o) = (theirs.clone(), ours.clone());
    match layout {
        Layout::Pretty => {
            let reference = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || t.clone())
                .finish();
            tracing::subscriber::with_default(reference, &emit);
            let fast = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || o.clone())
                .event_format(Lines::new(Inner, Layout::Pretty))
                .finish();
            tracing::subscriber::with_default(fast, &emit);
        }
        Layout::Json => {
            let reference = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_writer(move || t.clone())
                .finish();
            tracing::subscriber::with_default(reference, &emit);
            let fast = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_writer(move || o.clone())
                .event_format(Lines::new(Inner, Layout::Json))
                .finish();
            tracing::subscriber::with_default(fast, &emit);
        }
    }
    (theirs.text(), ours.text())
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

/// An access line as `proxy::record` writes one, with `path` and
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
            let (theirs, ours) = both(layout, || {
                access(value, value, ms, (i % 2 == 0).then_some(ms * 3.0));
                tracing::info!(
                    target: "audit",
                    request_id = *value,
                    identity = "admin",
                    upstream_status = 200u16,
                    signed = -42i64,
                    token = "1a2b3c4d",
                );
            });
            assert_eq!(theirs.lines().count(), 2, "{theirs}");
            for (t, o) in theirs.lines().zip(ours.lines()) {
                assert_ne!(o, "inner", "{layout:?} {value:?} was not written here");
                assert_eq!(untimed(layout, t).0, untimed(layout, o).0, "{layout:?}");
            }
            assert_eq!(ours.lines().count(), 2);
        }
    }
}

#[test]
fn other_events_and_lines_inside_a_span_go_to_the_wrapped_formatter() {
    for layout in [Layout::Pretty, Layout::Json] {
        let (_, ours) = both(layout, || {
            tracing::info!(addr = "127.0.0.1:1", "listening");
            tracing::warn!(target: "access", "a message");
            let span = tracing::info_span!("conn", id = 1);
            let _entered = span.enter();
            access("/in/a/span", "-", 1.0, None);
        });
        assert_eq!(ours, "inner\ninner\ninner\n", "{layout:?}");
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
        write_timestamp(&mut s, UNIX_EPOCH + Duration::new(secs, nanos)).unwrap();
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
    let mut before = String::new();
    write_timestamp(&mut before, UNIX_EPOCH - Duration::from_secs(1)).unwrap();
    assert_eq!(before, "<unknown time>");
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
        write_timestamp(&mut ours, SystemTime::now()).unwrap();
        assert_eq!(theirs.len(), ours.len(), "{theirs} {ours}");
        if theirs[..19] == ours[..19] {
            return;
        }
    }
    panic!("the two clocks never agreed on the second");
}
