//! Slow clients cannot pin the issuer (issue 5, "Brute force and abuse":
//! request and header limits, keep-alive and request timeouts set
//! deliberately on the actix server).
//!
//! `crates/issuer/src/serve.rs` sets `client_request_timeout` 5 s (the
//! whole first request head must arrive within 5 s of the connection),
//! `client_disconnect_timeout` 1 s and `keep_alive` 30 s; actix-http
//! refuses a request head over 128 KiB or with more than 96 header lines
//! with 431 (fixed in actix-http 3, not configurable).
//!
//! These tests run in real time (the longest about 13 s): the timeouts are
//! the server's own, in a separate process, so no test clock can move them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use jwks_e2e::{ES_CLIENT, Issuer, IssuerOptions, RS_CLIENT};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::{Auth, jwks, token_response};

/// `client_request_timeout` in `serve.rs`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a slow connection may live: the request timeout, the 1 s
/// disconnect timeout, and slack for a loaded 2-core machine.
const CLOSED_WITHIN: Duration = Duration::from_secs(12);
/// The longest a normal request may take while the slow clients hold on.
const PROMPT: Duration = Duration::from_secs(2);
/// One byte per slow client this often.
const DRIP: Duration = Duration::from_millis(500);

/// What a slow client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slow {
    /// Connects and sends nothing.
    Silent,
    /// A request line and one header, then one byte of a never-ending
    /// header value per [`DRIP`] (slowloris).
    Head,
    /// A complete head of `POST /token` announcing a 16 000-byte form, then
    /// one byte of it per [`DRIP`] (slow POST).
    Body,
}

/// How a slow connection ended.
#[derive(Debug)]
struct Ended {
    kind: Slow,
    /// From connect to EOF or reset; `None` if it was still open at `hold`.
    closed_after: Option<Duration>,
    /// What the server wrote (the start of it).
    reply: String,
}

/// One slow client: connects, drips per `kind` and reads until the server
/// closes the connection or `hold` has passed. `open` counts the slow
/// connections that are still open.
async fn slow_client(issuer: std::net::SocketAddr, kind: Slow, hold: Duration, open: Arc<AtomicUsize>) -> Ended {
    let stream = TcpStream::connect(issuer).await.expect("connect a slow client");
    let start = Instant::now();
    open.fetch_add(1, Ordering::SeqCst);
    let (mut read, mut write) = stream.into_split();
    let first: Vec<u8> = match kind {
        Slow::Silent => Vec::new(),
        Slow::Head => format!("POST /token HTTP/1.1\r\nHost: {issuer}\r\nX-Slow: ").into_bytes(),
        Slow::Body => format!(
            "POST /token HTTP/1.1\r\nHost: {issuer}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 16000\r\n\r\ngrant_type=client_credentials&scope="
        )
        .into_bytes(),
    };
    let drip = tokio::spawn(async move {
        if kind == Slow::Silent || write.write_all(&first).await.is_err() {
            return write;
        }
        loop {
            tokio::time::sleep(DRIP).await;
            if write.write_all(b"a").await.is_err() {
                return write;
            }
        }
    });
    let mut reply = Vec::new();
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(hold.saturating_sub(start.elapsed()), async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n.min(256usize.saturating_sub(reply.len()))]),
            }
        }
    })
    .await;
    let closed_after = closed.is_ok().then(|| start.elapsed());
    open.fetch_sub(1, Ordering::SeqCst);
    drip.abort();
    Ended { kind, closed_after, reply: String::from_utf8_lossy(&reply).into_owned() }
}

/// 200 slow connections (100 slowloris heads, 50 silent, 50 slow bodies)
/// while normal clients ask for tokens and the JWKS: every normal request
/// is answered within [`PROMPT`], and every slow head (and silent
/// connection) is answered 408 and closed by the server's request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_does_not_delay_tokens_and_slow_heads_are_cut_off() {
    let issuer = Issuer::start(&IssuerOptions::default());
    let addr = issuer.addr();
    let open = Arc::new(AtomicUsize::new(0));
    let kinds = std::iter::repeat_n(Slow::Head, 100)
        .chain(std::iter::repeat_n(Slow::Silent, 50))
        .chain(std::iter::repeat_n(Slow::Body, 50));
    let opened = Instant::now();
    let slow: Vec<_> = kinds
        .map(|k| tokio::spawn(slow_client(addr, k, CLOSED_WITHIN + Duration::from_secs(1), open.clone())))
        .collect();
    let total = slow.len();
    while open.load(Ordering::SeqCst) < total {
        assert!(opened.elapsed() < Duration::from_secs(3), "the issuer accepts {total} connections within 3 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_open = opened.elapsed();

    // Normal clients, each request on a new connection (no pooling), for
    // as long as every slow client holds on (until 4 s, before the 5 s
    // request timeout frees the heads).
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .expect("reqwest client");
    let mut latencies = Vec::new();
    while opened.elapsed() < REQUEST_TIMEOUT - Duration::from_secs(1) {
        for (client, auth) in [(ES_CLIENT, Auth::Basic), (RS_CLIENT, Auth::Post)] {
            let t = Instant::now();
            let body = token_response(&http, &issuer, client, auth).await;
            assert!(body["access_token"].is_string(), "{body}");
            latencies.push(("token", t.elapsed()));
        }
        let t = Instant::now();
        assert_eq!(jwks(&http, &issuer).await.keys.len(), 2);
        latencies.push(("jwks", t.elapsed()));
    }
    let still_open = open.load(Ordering::SeqCst);
    let slowest = |what: &str| latencies.iter().filter(|(w, _)| *w == what).map(|(_, d)| *d).max();
    eprintln!(
        "slow_clients: {total} slow connections open after {all_open:?}; then {} normal requests in {:?}, the slowest token in {:?}, the slowest JWKS in {:?}; {still_open} slow connections still open after them",
        latencies.len(),
        opened.elapsed() - all_open,
        slowest("token"),
        slowest("jwks"),
    );
    for (what, took) in &latencies {
        assert!(
            *took < PROMPT,
            "a {what} request took {took:?} with {total} slow clients connected (limit {PROMPT:?})"
        );
    }
    assert!(latencies.len() >= 3, "at least one full round while the slow clients hold on: {latencies:?}");
    assert_eq!(still_open, total, "every slow client still held its connection during the normal requests");

    let mut ended = Vec::new();
    for s in slow {
        ended.push(s.await.expect("slow client task"));
    }
    for kind in [Slow::Head, Slow::Silent] {
        let mine: Vec<&Ended> = ended.iter().filter(|e| e.kind == kind).collect();
        let closed: Vec<Duration> = mine.iter().filter_map(|e| e.closed_after).collect();
        let (first, last) = (closed.iter().min(), closed.iter().max());
        eprintln!(
            "slow_clients: {kind:?}: {} of {} closed by the server, from {first:?} to {last:?}",
            closed.len(),
            mine.len()
        );
        for e in &mine {
            let after = e.closed_after.unwrap_or_else(|| panic!("a {kind:?} connection outlived {CLOSED_WITHIN:?}"));
            assert!(
                after >= REQUEST_TIMEOUT - Duration::from_millis(500),
                "a {kind:?} connection was closed after {after:?}, before the request timeout: {:?}",
                e.reply
            );
            assert!(e.reply.starts_with("HTTP/1.1 408 "), "a {kind:?} connection is answered 408: {:?}", e.reply);
        }
    }
    // actix-http has no deadline for a request body once its head is in:
    // the handler's body read is what would bound it. Measured, not
    // asserted here (see `slow_request_bodies_are_cut_off`).
    let bodies: Vec<&Ended> = ended.iter().filter(|e| e.kind == Slow::Body).collect();
    let cut = bodies.iter().filter(|e| e.closed_after.is_some()).count();
    eprintln!(
        "slow_clients: Body: {cut} of {} slow bodies closed by the server within {CLOSED_WITHIN:?}",
        bodies.len()
    );
}

/// A client that sends a `POST /token` head at once and then its body one
/// byte per [`DRIP`] is answered and disconnected within
/// [`CLOSED_WITHIN`], like a slow head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_bodies_are_cut_off() {
    let issuer = Issuer::start(&IssuerOptions::default());
    let open = Arc::new(AtomicUsize::new(0));
    let ended = slow_client(issuer.addr(), Slow::Body, CLOSED_WITHIN, open).await;
    let after = ended.closed_after.unwrap_or_else(|| panic!("a slow body outlived {CLOSED_WITHIN:?}"));
    assert!(
        ended.reply.starts_with("HTTP/1.1 408 ") || ended.reply.starts_with("HTTP/1.1 400 "),
        "a slow body is refused after {after:?}: {:?}",
        ended.reply
    );
}

/// Sends `head` (a whole request head) on a new connection while reading
/// the answer; the status code, or `None` if the server closed the
/// connection without one.
async fn status_of_head(addr: std::net::SocketAddr, head: Vec<u8>) -> Option<u16> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let send = tokio::spawn(async move {
        // The server may stop reading (and reset) before all of it is sent.
        let _ = write.write_all(&head).await;
        write
    });
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut reply)).await;
    send.abort();
    let text = String::from_utf8_lossy(&reply);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Oversized request heads: a head over actix-http's 128 KiB and one with
/// more than 96 header lines are refused with 431; a 64 KiB header (under
/// that limit) is handled by the endpoint as usual, never with a 5xx; the
/// issuer keeps serving afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_are_431_never_5xx() {
    let issuer = Issuer::start(&IssuerOptions::default());
    let addr = issuer.addr();
    let head = |path: &str, extra: &str| -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n").into_bytes()
    };
    let pad = |len: usize| format!("X-Pad: {}\r\n", "a".repeat(len));
    let many = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect::<String>();
    let basic_64k = format!("Authorization: Basic {}\r\n", "QUFB".repeat(64 * 1024 / 4));
    let token_64k = format!(
        "POST /token HTTP/1.1\r\nHost: {addr}\r\n{basic_64k}Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 29\r\nConnection: close\r\n\r\ngrant_type=client_credentials"
    )
    .into_bytes();

    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("a 200 KiB header", head("/.well-known/jwks.json", &pad(200 * 1024)), &[431]),
        ("a 129 KiB header", head("/.well-known/jwks.json", &pad(129 * 1024)), &[431]),
        ("100 header lines", head("/.well-known/jwks.json", &many), &[431]),
        ("a 64 KiB header on GET /jwks", head("/.well-known/jwks.json", &pad(64 * 1024)), &[200, 400, 431]),
        ("a 64 KiB Basic header on POST /token", token_64k, &[400, 401, 431]),
    ];
    for (what, bytes, expected) in cases {
        let status = status_of_head(addr, bytes).await;
        eprintln!("slow_clients: {what}: {status:?}");
        let status = status.unwrap_or_else(|| panic!("{what}: the server closed without a status"));
        assert!(expected.contains(&status), "{what}: {status}, expected one of {expected:?}");
    }
    let http = crate::common::http();
    token_response(&http, &issuer, ES_CLIENT, Auth::Basic).await;
    assert!(issuer.full_log().lines().all(|l| !l.contains("panicked")), "no panic in the issuer's log");
}
