//! The per-connection timers, on paused time.

use super::*;

#[tokio::test(start_paused = true)]
async fn idle_connection_expires_after_idle_timeout() {
    let activity = Activity::new(true);
    let started = Instant::now();
    let reason = activity
        .expired(
            Duration::from_secs(10),
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
        .await;
    assert_eq!(reason, Expired::IdleTimeout);
    assert_eq!(started.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_started_head_expires_after_header_timeout() {
    let activity = Activity::new(true);
    activity.on_read();
    let started = Instant::now();
    let reason = activity
        .expired(
            Duration::from_secs(10),
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
        .await;
    assert_eq!(reason, Expired::HeaderTimeout);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn requests_in_flight_keep_the_connection() {
    let activity = Activity::new(true);
    activity.on_read();
    let guard = activity.request_started();
    let watch = activity.clone();
    let expiry = tokio::spawn(async move {
        watch
            .expired(
                Duration::from_secs(10),
                Duration::from_secs(60),
                Duration::from_secs(600),
            )
            .await
    });
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert!(!expiry.is_finished(), "a slow response is not idleness");
    let released = Instant::now();
    drop(guard);
    assert_eq!(expiry.await.unwrap(), Expired::IdleTimeout);
    assert!(released.elapsed() >= Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_request_with_nothing_moving_is_stalled() {
    let activity = Activity::new(true);
    let _guard = activity.request_started();
    let started = Instant::now();
    let reason = activity
        .expired(
            Duration::from_secs(10),
            Duration::from_secs(60),
            Duration::from_secs(90),
        )
        .await;
    assert_eq!(reason, Expired::Stalled);
    assert_eq!(started.elapsed(), Duration::from_secs(90));
}

#[tokio::test(start_paused = true)]
async fn h2_frames_are_not_activity() {
    let activity = Activity::new(false);
    activity.on_read();
    let started = Instant::now();
    let reason = activity
        .expired(
            Duration::from_secs(10),
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
        .await;
    assert_eq!(reason, Expired::IdleTimeout);
    assert_eq!(started.elapsed(), Duration::from_secs(60));
}
