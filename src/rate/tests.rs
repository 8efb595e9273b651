//! Rate parsing with malformed strings, and the per-client budget.

use super::*;

#[test]
fn rates_parse_and_malformed_ones_are_refused() {
    let ok: &[(&str, u32, u64)] = &[("20/s", 20, 1), ("10/m", 10, 60), ("1/h", 1, 3600)];
    for (text, count, secs) in ok {
        let rate = parse_rate(text).unwrap();
        assert_eq!(rate.count.get(), *count, "{text}");
        assert_eq!(rate.per, Duration::from_secs(*secs), "{text}");
        assert_eq!(rate.to_string(), *text);
    }
    for bad in [
        "",
        "20",
        "/s",
        "0/s",
        "-1/s",
        "+1/s",
        "1.5/s",
        "20/d",
        "20/S",
        "20 /s",
        "20/s ",
        "99999999999/s",
        "20/sec",
        "٣/s",
    ] {
        assert_eq!(parse_rate(bad), Err(RateError::Malformed), "{bad:?}");
    }
}

fn limiter(text: &str, burst: u32) -> ClientLimiter {
    ClientLimiter::new(parse_rate(text).unwrap(), NonZeroU32::new(burst).unwrap())
}

#[test]
fn a_client_gets_its_burst_then_waits() {
    let limiter = limiter("1/m", 3);
    let alice: IpAddr = "192.0.2.1".parse().unwrap();
    for _ in 0..3 {
        assert!(limiter.check(alice).is_ok());
    }
    let refused = limiter.check(alice).unwrap_err();
    assert!(refused.retry_after > Duration::from_secs(1), "{refused:?}");
    assert!(
        refused.retry_after <= Duration::from_secs(60),
        "{refused:?}"
    );
    // Another client has a budget of its own.
    assert!(limiter.check("192.0.2.2".parse().unwrap()).is_ok());
}

#[test]
fn one_ipv6_64_is_one_client_and_mapped_ipv4_is_ipv4() {
    let limiter = limiter("1/m", 2);
    assert!(limiter.check("2001:db8::1".parse().unwrap()).is_ok());
    assert!(limiter
        .check("2001:db8::ffff:1234".parse().unwrap())
        .is_ok());
    assert!(limiter.check("2001:db8::9".parse().unwrap()).is_err());
    assert!(limiter.check("2001:db8:0:1::1".parse().unwrap()).is_ok());

    assert!(limiter.check("198.51.100.7".parse().unwrap()).is_ok());
    assert!(limiter
        .check("::ffff:198.51.100.7".parse().unwrap())
        .is_ok());
    assert!(limiter.check("198.51.100.7".parse().unwrap()).is_err());
}

#[test]
fn a_spray_of_addresses_stays_bounded_and_shares_the_overflow_budget() {
    let limiter = limiter("1/h", 1);
    for i in 0..(MAX_CLIENTS as u32 + 1_000) {
        let _ = limiter.check(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
    }
    assert!(
        limiter.clients() <= MAX_CLIENTS + 1,
        "{}",
        limiter.clients()
    );
    // The overflow bucket was spent by the first address past the cap.
    assert!(limiter.check("203.0.113.9".parse().unwrap()).is_err());
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    assert_eq!(retry_after_secs(Duration::ZERO), 1);
    assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
}
