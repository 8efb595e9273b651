//! Streaming routes: Server-Sent Events, large downloads, a byte-counting
//! upload sink and a gRPC-style answer with trailers. None buffers a body.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;

use crate::sim::handlers::{full, Body};
use crate::sim::recorder::RecordedRequest;
use crate::sim::state::SimState;

const CHUNK: usize = 64 * 1024;

fn param(query: Option<&str>, name: &str) -> Option<u64> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| value.parse().ok())
}

fn streaming(
    frames: impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync + 'static,
) -> Body {
    StreamBody::new(frames).boxed()
}

/// `GET /sim/sse?events=N&interval_ms=M`: N events, the first at once, then
/// one every M milliseconds, each flushed as produced.
pub fn sse(query: Option<&str>) -> Response<Body> {
    let events = param(query, "events").unwrap_or(5).min(10_000);
    let interval = Duration::from_millis(param(query, "interval_ms").unwrap_or(100).min(60_000));
    let frames = futures_util::stream::unfold(0u64, move |i| async move {
        if i >= events {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(interval).await;
        }
        let event = format!("id: {i}\ndata: event {i}\n\n");
        Some((Ok(Frame::data(Bytes::from(event))), i + 1))
    });
    let mut response = Response::new(streaming(frames));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /sim/large?bytes=N`: N bytes of `x`, generated 64 KiB at a time.
pub fn large(query: Option<&str>) -> Response<Body> {
    let total = param(query, "bytes").unwrap_or(1 << 20);
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let frames = futures_util::stream::unfold(total, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let take = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            Some((Ok(Frame::data(chunk.slice(..take))), left - take as u64))
        }
    });
    let mut response = Response::new(streaming(frames));
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(total));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// `POST /sim/grpc`: echoes the body as one message and ends with
/// `grpc-status: 0` in the trailers, as a gRPC server does.
pub fn grpc(body: &Bytes) -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("grpc-message", HeaderValue::from_static("ok"));
    let frames =
        futures_util::stream::iter([Ok(Frame::data(body.clone())), Ok(Frame::trailers(trailers))]);
    let mut response = Response::new(streaming(frames));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// `POST /sim/sink`: counts the body frame by frame and answers
/// `{"bytes": N}`; recorded without its body.
pub async fn sink(state: &SimState, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let (bytes, complete) = count_body(body).await;
    state.recorder.record(RecordedRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        version: parts.version,
        headers: parts.headers,
        body: Bytes::new(),
        body_complete: complete,
        trailers: None,
    });
    sink_answer(bytes, complete)
}

/// Reads a body to its end without keeping it: its length, and whether it
/// ended cleanly.
pub async fn count_body(mut body: Incoming) -> (u64, bool) {
    let mut bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => bytes += frame.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => return (bytes, false),
        }
    }
    (bytes, true)
}

/// `{"bytes": N}`, 200 for a complete body, 400 for a broken one.
pub fn sink_answer(bytes: u64, complete: bool) -> Response<Body> {
    let status = if complete {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut response = Response::new(full(format!("{{\"bytes\":{bytes}}}")));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
