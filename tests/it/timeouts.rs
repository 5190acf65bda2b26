//! Connection timeouts: a request head trickled a byte at a time, a connection that sends
//! nothing, a keep-alive connection left idle, and a request body that goes silent (S3's 400
//! RequestTimeout, nothing stored) are all ended by the server, within bounded waits.

use crate::common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn short(head: u64, idle: u64, body: u64) -> Options {
    Options {
        head_timeout_secs: Some(head),
        idle_timeout_secs: Some(idle),
        body_timeout_secs: Some(body),
        ..Default::default()
    }
}

/// Whether the server closed `sock` (EOF or reset) within `within`; anything it sent first is
/// read and discarded.
async fn closed_within(sock: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads everything until the server closes (bounded).
async fn read_all(sock: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut buf))
        .await
        .expect("the server answers and closes within 10 s")
        .expect("read");
    parse_response(&buf)
}

/// A head sent a byte every 200 ms is cut at the head timeout (1 s), not served forever.
async fn trickled_head_is_cut(s: &TestServer) {
    let mut sock = TcpStream::connect(s.addr()).await.expect("connect");
    let started = Instant::now();
    sock.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .expect("write");
    let mut closed = false;
    // Bounded: 50 bytes, 10 s at most.
    for _ in 0..50 {
        if sock.write_all(b"a").await.is_err()
            || closed_within(&mut sock, Duration::from_millis(200)).await
        {
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "a trickled head held its connection for {took:?}");
    assert!(took < Duration::from_secs(4), "cut after {took:?}");
}
both_dbs!(trickled_head_is_cut, short(1, 60, 20));

/// A connection that never sends a byte (still in protocol detection, before hyper's header
/// timer exists) and a keep-alive connection after its response both close at the idle
/// timeout.
async fn idle_connections_close(s: &TestServer) {
    let mut silent = TcpStream::connect(s.addr()).await.expect("connect");
    let started = Instant::now();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "a silent connection stayed open"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));

    let mut kept = TcpStream::connect(s.addr()).await.expect("connect");
    kept.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), kept.read(&mut buf))
        .await
        .expect("answer")
        .expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    assert!(
        closed_within(&mut kept, Duration::from_secs(5)).await,
        "an idle keep-alive connection stayed open"
    );
}
both_dbs!(idle_connections_close, short(30, 1, 20));

/// A PUT that declares 33 bytes, sends 23 and goes silent is answered 400 RequestTimeout
/// after the body timeout, stores nothing and leaves no temp file; a body that pauses for
/// less than the timeout between pieces is stored whole.
async fn silent_body_is_request_timeout(s: &TestServer) {
    s.client
        .create_bucket()
        .bucket("slow")
        .send()
        .await
        .expect("bucket");
    let head = signed_head(s.addr(), "PUT", "/slow/k", &[], "33", "UNSIGNED-PAYLOAD");
    let mut sock = TcpStream::connect(s.addr()).await.expect("connect");
    sock.write_all(head.as_bytes()).await.expect("head");
    sock.write_all(&[b'x'; 23]).await.expect("23 bytes");
    let started = Instant::now();
    let r = read_all(&mut sock).await;
    let took = started.elapsed();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("<Code>RequestTimeout</Code>"), "{}", r.body);
    assert!(
        r.body
            .contains("not read from or written to within the timeout period"),
        "{}",
        r.body
    );
    assert!(r.body.contains("<RequestId>"), "{}", r.body);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
    let e = s
        .client
        .head_object()
        .bucket("slow")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404, "nothing stored");
    let tmp = s.data_dir().join("hot").join("tmp");
    let left = std::fs::read_dir(&tmp).map_or(0, |d| d.count());
    assert_eq!(left, 0, "temp files left in {tmp:?}");

    // Pauses shorter than the timeout: each piece restarts the wait.
    let head = signed_head(
        s.addr(),
        "PUT",
        "/slow/k",
        &[("connection", "close")],
        "33",
        "UNSIGNED-PAYLOAD",
    );
    let mut sock = TcpStream::connect(s.addr()).await.expect("connect");
    sock.write_all(head.as_bytes()).await.expect("head");
    for piece in [&[b'a'; 11], &[b'b'; 11], &[b'c'; 11]] {
        sock.write_all(piece).await.expect("piece");
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let r = read_all(&mut sock).await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = s
        .client
        .get_object()
        .bucket("slow")
        .key("k")
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(got.len(), 33);
}
both_dbs!(silent_body_is_request_timeout, short(30, 60, 1));
