//! Brute-force limits at the token endpoint (issue 5): buckets per
//! (client, address) and per address; 429 with `Retry-After`.

use std::net::SocketAddr;

use crate::support::{Fixture, SECRET, basic, cc};

fn peer(n: u8) -> Option<SocketAddr> {
    Some(SocketAddr::from(([10, 0, 0, n], 40000)))
}

#[actix_web::test]
async fn failures_past_the_burst_get_429_with_retry_after_until_refilled() {
    let f = Fixture::new();
    for _ in 0..20 {
        f.token_from(&cc(""), Some(&basic("svc", "wrong")), peer(1)).await.assert_error(401, "invalid_client");
    }
    let r = f.token_from(&cc(""), Some(&basic("svc", "wrong")), peer(1)).await;
    assert_eq!(r.status.as_u16(), 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    // Throttled before any argon2 work: even the right secret waits.
    assert_eq!(f.token_from(&cc(""), Some(&basic("svc", SECRET)), peer(1)).await.status.as_u16(), 429);
    // The same client from another address is not locked out.
    assert_eq!(f.token_from(&cc(""), Some(&basic("svc", SECRET)), peer(2)).await.status.as_u16(), 200);
    // One failure is forgiven every `refill_every` (3 s).
    f.clock.advance(std::time::Duration::from_secs(3));
    assert_eq!(f.token_from(&cc(""), Some(&basic("svc", SECRET)), peer(1)).await.status.as_u16(), 200);
}

#[actix_web::test]
async fn an_address_failing_for_many_client_ids_is_throttled() {
    let f = Fixture::new();
    for i in 0..100 {
        let r = f.token_from(&cc(""), Some(&basic(&format!("random-{i}"), "x")), peer(7)).await;
        r.assert_error(401, "invalid_client");
    }
    let r = f.token_from(&cc(""), Some(&basic("another", "x")), peer(7)).await;
    assert_eq!(r.status.as_u16(), 429);
    assert_eq!(r.json()["error"], "invalid_request", "RFC 6749 §5.2 code; slow_down is RFC 8628's");
    // A correct client elsewhere is unaffected.
    assert_eq!(f.token_from(&cc(""), Some(&basic("svc", SECRET)), peer(8)).await.status.as_u16(), 200);
}
