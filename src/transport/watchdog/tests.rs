//! The per-connection timers, on paused time.

use super::*;

const HEADER: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(60);

/// Waits for `activity` to expire with a 10 s header and a 60 s idle
/// timeout and `stall`: why it expired, and after how long.
async fn expiry(activity: &Activity, stall: Duration) -> (Expired, Duration) {
    let started = Instant::now();
    let reason = activity.expired(HEADER, IDLE, stall).await;
    (reason, started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn idle_connection_expires_after_idle_timeout() {
    let activity = Activity::new(true);
    let found = expiry(&activity, Duration::from_secs(600)).await;
    assert_eq!(found, (Expired::IdleTimeout, IDLE));
}

#[tokio::test(start_paused = true)]
async fn a_started_head_expires_after_header_timeout() {
    let activity = Activity::new(true);
    activity.on_read();
    let found = expiry(&activity, Duration::from_secs(600)).await;
    assert_eq!(found, (Expired::HeaderTimeout, HEADER));
}

#[tokio::test(start_paused = true)]
async fn requests_in_flight_keep_the_connection() {
    let activity = Activity::new(true);
    activity.on_read();
    let guard = activity.request_started();
    let watch = activity.clone();
    let expiry =
        tokio::spawn(async move { watch.expired(HEADER, IDLE, Duration::from_secs(600)).await });
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert!(!expiry.is_finished(), "a slow response is not idleness");
    let released = Instant::now();
    drop(guard);
    assert_eq!(expiry.await.unwrap(), Expired::IdleTimeout);
    assert!(released.elapsed() >= IDLE);
}

#[tokio::test(start_paused = true)]
async fn a_request_with_nothing_moving_is_stalled() {
    let activity = Activity::new(true);
    let _guard = activity.request_started();
    let stall = Duration::from_secs(90);
    let found = expiry(&activity, stall).await;
    assert_eq!(found, (Expired::Stalled, stall));
}

#[tokio::test(start_paused = true)]
async fn h2_frames_are_not_activity() {
    let activity = Activity::new(false);
    activity.on_read();
    let found = expiry(&activity, Duration::from_secs(600)).await;
    assert_eq!(found, (Expired::IdleTimeout, IDLE));
}
