//! Floods and limits on one h2 connection: Rapid Reset, CONTINUATION,
//! SETTINGS and PING floods, and streams beyond the concurrency limit.

use super::*;

/// CVE-2023-44487: HEADERS immediately followed by RST_STREAM, thousands of
/// times on one connection.
#[tokio::test]
async fn rapid_reset_is_cut_off_and_the_gateway_keeps_serving() {
    const STREAMS: u32 = 5_000;
    const BATCH: u32 = 100;
    let stack = Setup::default().start().await;
    let mut conn = H2::open(&stack).await;
    let fields = conn.request("/sim/status/200?case=rapid-reset", &[]);
    let block = hpack(&as_refs(&fields));
    let started = Instant::now();
    let mut sent = 0;
    'attack: for batch in 0..STREAMS / BATCH {
        let mut bytes = Vec::new();
        for i in 0..BATCH {
            let stream = 2 * (batch * BATCH + i) + 1;
            bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &block));
            bytes.extend(rst_stream(stream, CANCEL));
        }
        match tokio::time::timeout(ANSWER, conn.send(&bytes)).await {
            Ok(Ok(())) => sent += BATCH,
            // The gateway closed the connection on us: the point of the test.
            Ok(Err(_)) => break 'attack,
            Err(_) => panic!("writing stalled for {ANSWER:?} after {sent} streams"),
        }
    }
    let end = conn.until_gone().await;
    let elapsed = started.elapsed();
    eprintln!("rapid reset: {sent} streams written, then {end:?} after {elapsed:?}");
    assert!(
        matches!(end, Outcome::GoAway(ENHANCE_YOUR_CALM) | Outcome::Closed(_)),
        "{end:?}"
    );
    sentinel(&stack).await;
    // Bound: the pairs arrive back to back, so h2 reads them in one go and
    // sees the resets before hyper accepts the streams; more than 20 such
    // resets (h2's pending-accept limit) is GOAWAY ENHANCE_YOUR_CALM.
    // Whatever hyper accepted before that was at most one window of
    // h2_max_concurrent_streams (100). Seen in practice: 0.
    let reached = stack.sim.recorder().count("/sim/status/200");
    eprintln!("rapid reset: {reached} requests reached the simulator");
    assert!(reached <= 100, "{reached} reset streams reached PSU");
}

/// HEADERS without END_HEADERS and then CONTINUATION frames that never end
/// the block: the gateway must give up long before memory does.
#[tokio::test]
async fn continuation_flood_closes_the_connection() {
    let stack = Setup::default().start().await;
    for (name, frame_len, frames) in [
        ("16 KiB frames", 16_000usize, 512usize),
        ("1-byte frames", 1, 200_000),
    ] {
        let mut conn = H2::open(&stack).await;
        let fields = conn.request("/sim/status/200?case=continuation", &[]);
        conn.send(&frame(HEADERS, END_STREAM, 1, &hpack(&as_refs(&fields))))
            .await
            .unwrap();
        let payload = if frame_len == 1 {
            // A literal whose bytes trickle in one at a time.
            vec![0x00]
        } else {
            let value = vec![b'a'; frame_len - 16];
            hpack(&[(b"x-flood", &value)])
        };
        let one = frame(CONTINUATION, 0, 1, &payload);
        let per_batch = (64 * 1024 / one.len()).clamp(1, frames);
        let batch = one.repeat(per_batch);
        let started = Instant::now();
        let mut written = 0usize;
        while written < frames {
            match tokio::time::timeout(ANSWER, conn.send(&batch)).await {
                Ok(Ok(())) => written += per_batch,
                Ok(Err(_)) => break,
                // The gateway stopped reading; the verdict comes below.
                Err(_) => break,
            }
        }
        let end = conn.until_gone().await;
        let elapsed = started.elapsed();
        eprintln!(
            "continuation flood ({name}): {} bytes written, {end:?} after {elapsed:?}",
            written * one.len()
        );
        assert!(
            matches!(
                end,
                Outcome::GoAway(ENHANCE_YOUR_CALM | PROTOCOL_ERROR | COMPRESSION_ERROR)
                    | Outcome::Closed(_)
            ),
            "{name}: {end:?}"
        );
        assert!(elapsed < Duration::from_secs(15), "{name}: {elapsed:?}");
    }
    sentinel(&stack).await;
    assert_only_probes_forwarded(&stack);
}

/// Floods one connection with `count` copies of `one`, reading everything
/// the gateway sends meanwhile. Afterwards the connection is either gone
/// (GOAWAY/close) or still answers a request; a fresh one always does.
async fn flood(one: Vec<u8>, count: usize, name: &str) {
    let stack = Setup::default().start().await;
    let mut conn = H2::open(&stack).await;
    let batch = one.repeat(1_000);
    let started = Instant::now();
    let mut written = 0;
    let mut write_failed = false;
    while written < count {
        match tokio::time::timeout(ANSWER, conn.send(&batch)).await {
            Ok(Ok(())) => written += 1_000,
            Ok(Err(_)) => {
                write_failed = true;
                break;
            }
            Err(_) => panic!("{name}: writing stalled after {written} frames"),
        }
    }
    eprintln!(
        "{name}: {written} frames written in {:?}",
        started.elapsed()
    );
    let alive = if write_failed {
        false
    } else {
        let fields = conn.request("/sim/status/204?after-flood", &[]);
        let stream = 1;
        match conn.send(&get(stream, &as_refs(&fields))).await {
            Ok(()) => {
                let kind = one[3];
                let mut acks = 0;
                let outcome = loop {
                    match conn.next().await {
                        Event::Frame(f) if f.kind == kind && f.flags & ACK != 0 => acks += 1,
                        Event::Frame(f) if f.kind == HEADERS && f.stream == stream => {
                            break Outcome::Response(status_of(&f))
                        }
                        Event::Frame(f) if f.kind == GOAWAY => {
                            break Outcome::GoAway(f.error_code())
                        }
                        Event::Frame(_) => {}
                        Event::Closed(why) => break Outcome::Closed(why),
                    }
                };
                eprintln!("{name}: {acks} ACKs, then the request after the flood: {outcome:?}");
                match outcome {
                    Outcome::Response(status) => {
                        assert_eq!(status, 204, "{name}");
                        true
                    }
                    Outcome::GoAway(_) | Outcome::Closed(_) => false,
                    other => panic!("{name}: {other:?}"),
                }
            }
            Err(_) => false,
        }
    };
    if !alive {
        let end = conn.until_gone().await;
        eprintln!("{name}: connection ended: {end:?}");
    }
    sentinel(&stack).await;
}

#[tokio::test]
async fn settings_flood_leaves_the_gateway_serving() {
    let mut setting = SETTINGS_ENABLE_PUSH.to_be_bytes().to_vec();
    setting.extend(0u32.to_be_bytes());
    flood(frame(SETTINGS, 0, 0, &setting), 30_000, "SETTINGS flood").await;
}

#[tokio::test]
async fn ping_flood_leaves_the_gateway_serving() {
    flood(frame(PING, 0, 0, b"pingpong"), 50_000, "PING flood").await;
}

#[tokio::test]
async fn streams_beyond_max_concurrent_streams_are_refused() {
    let stack = Setup::default()
        .edit(
            "[upstream]",
            "[limits]\nh2_max_concurrent_streams = 4\n\n[upstream]",
        )
        .start()
        .await;
    let mut conn = H2::open(&stack).await;
    assert!(
        conn.server_settings
            .contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 4)),
        "announced {:?}",
        conn.server_settings
    );
    // Eight slow requests at once, in one write, ignoring the announced limit.
    let mut bytes = Vec::new();
    for i in 0..8u32 {
        let fields = conn.request(&format!("/sim/status/200?delay_ms=2000&n={i}"), &[]);
        bytes.extend(get(2 * i + 1, &as_refs(&fields)));
    }
    conn.send(&bytes).await.unwrap();
    let mut refused = Vec::new();
    let mut answered = Vec::new();
    let mut in_flight_at_first_answer = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while refused.len() + answered.len() < 8 {
        assert!(
            Instant::now() < deadline,
            "refused {refused:?}, answered {answered:?}"
        );
        match conn.next().await {
            Event::Frame(f) if f.kind == RST_STREAM => {
                assert_eq!(f.error_code(), REFUSED_STREAM, "stream {}", f.stream);
                refused.push(f.stream);
            }
            Event::Frame(f) if f.kind == HEADERS => {
                assert_eq!(status_of(&f), 200);
                in_flight_at_first_answer
                    .get_or_insert_with(|| stack.sim.recorder().count("/sim/status/200"));
                answered.push(f.stream);
            }
            Event::Frame(f) if f.kind == GOAWAY => panic!("GOAWAY {:x}", f.error_code()),
            Event::Frame(_) => {}
            Event::Closed(why) => panic!("closed: {why}"),
        }
    }
    refused.sort_unstable();
    answered.sort_unstable();
    assert_eq!(refused, [9, 11, 13, 15]);
    assert_eq!(answered, [1, 3, 5, 7]);
    // All eight were sent before the first 2-second answer could exist.
    assert_eq!(in_flight_at_first_answer, Some(4));
    assert_eq!(stack.sim.recorder().count("/sim/status/200"), 4);
}
