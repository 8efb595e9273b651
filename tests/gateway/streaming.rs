//! Streaming through the gateway: SSE as produced, large bodies both ways
//! with flat memory, gRPC-style trailers over h2.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, StreamBody};

use crate::support::*;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test]
async fn server_sent_events_arrive_as_produced() {
    let stack = Setup::default().start().await;
    let interval = Duration::from_millis(400);
    let request = Request::get(stack.url("/sim/sse?events=4&interval_ms=400"))
        .body(Default::default())
        .unwrap();
    let started = Instant::now();
    let response = stack.client(Proto::H1).request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut lags = Vec::new();
    let mut events = 0u32;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        let Some(data) = frame.data_ref() else {
            continue;
        };
        for _ in String::from_utf8_lossy(data).matches("data: ") {
            let due = interval * events;
            lags.push(started.elapsed().saturating_sub(due));
            events += 1;
        }
    }
    assert_eq!(events, 4);
    // The first event is there long before the stream's 1.2 s are over.
    assert!(
        lags[0] < Duration::from_millis(300),
        "first event after {:?}",
        lags[0]
    );
    let worst = lags.iter().max().unwrap();
    eprintln!("SSE lag per event through the gateway: {lags:?}");
    assert!(
        *worst < Duration::from_millis(300),
        "events were held back: {lags:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_in_flat_memory() {
    const SIZE: u64 = 1 << 30;
    let stack = Setup::default()
        .edit(
            "[upstream]",
            &format!("[limits]\nmax_body_bytes = {SIZE}\n\n[upstream]"),
        )
        .start()
        .await;
    let client = stack.client(Proto::H1);
    // Warm up: TLS sessions, pools, allocator arenas.
    let warm = Request::get(stack.url("/sim/large?bytes=8388608"))
        .body(Default::default())
        .unwrap();
    client
        .request(warm)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    let before = rss_bytes();

    let started = Instant::now();
    let request = Request::get(stack.url(&format!("/sim/large?bytes={SIZE}")))
        .body(Default::default())
        .unwrap();
    let mut body = client.request(request).await.unwrap().into_body();
    let mut received: u64 = 0;
    let mut peak = before;
    while let Some(frame) = body.frame().await {
        received += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
        if received % (64 << 20) < 65536 {
            peak = peak.max(rss_bytes());
        }
    }
    let download = started.elapsed();
    assert_eq!(received, SIZE);

    let chunk = Bytes::from(vec![b'u'; 64 * 1024]);
    let chunks = SIZE / chunk.len() as u64;
    let stream =
        futures_util::stream::iter((0..chunks).map(move |_| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(chunk.clone()))
        }));
    let upload_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build::<_, StreamBody<_>>(
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(client_tls(&std::fs::read(stack.ca_path()).unwrap()))
                    .https_only()
                    .enable_http1()
                    .build(),
            );
    let started = Instant::now();
    let upload = Request::builder()
        .method(Method::POST)
        .uri(stack.url("/sim/sink"))
        .body(StreamBody::new(stream))
        .unwrap();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..600 {
            peak = peak.max(rss_bytes());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak
    });
    let response = upload_client.request(upload).await.unwrap();
    let uploaded = started.elapsed();
    assert_eq!(response.status(), 200);
    let reply = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(reply, format!("{{\"bytes\":{SIZE}}}"));
    sampler.abort();
    peak = peak.max(rss_bytes());
    let growth = peak.saturating_sub(before);
    eprintln!(
        "1 GiB download {:.1}s, upload {:.1}s; RSS before {} MiB, peak {} MiB, growth {} MiB",
        download.as_secs_f64(),
        uploaded.as_secs_f64(),
        before >> 20,
        peak >> 20,
        growth >> 20
    );
    assert!(growth < 32 << 20, "RSS grew by {} MiB", growth >> 20);
    let seen = stack.upstream_saw("/sim/sink");
    assert!(seen[0].body_complete);
}

#[tokio::test]
async fn grpc_style_trailers_round_trip_over_h2() {
    let stack = Setup::default()
        .edit(
            "url = \"{upstream}\"",
            "url = \"{upstream}\"\nprotocol = \"h2\"",
        )
        .start()
        .await;
    let message = Bytes::from_static(b"\0\0\0\0\x05hello");
    let request = Request::post(stack.url("/sim/grpc"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(message.clone()))
        .unwrap();
    let response = stack.client(Proto::H2).request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers reached the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), message);
    let seen = stack.upstream_saw("/sim/grpc");
    assert_eq!(header(&seen[0], "te"), ["trailers"]);
    assert_eq!(seen[0].version, http::Version::HTTP_2);
}
