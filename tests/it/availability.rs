//! PostgreSQL going away mid-run: requests get 503 ServiceUnavailable with Retry-After (never a
//! hang or a 500), /ready turns false, and the server recovers by itself when it returns.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy to PostgreSQL that the test can cut and restore.
struct Proxy {
    port: u16,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(port: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("proxy bind");
        let port = listener.local_addr().expect("addr").port();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let t = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let job = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                t.lock().expect("lock").push(job);
            }
        });
        Proxy {
            port,
            tasks,
            accept: Some(accept),
        }
    }

    /// Stops listening and severs every proxied connection.
    fn cut(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        for t in self.tasks.lock().expect("lock").drain(..) {
            t.abort();
        }
    }
}

async fn ready_status(s: &TestServer) -> u16 {
    let req = format!(
        "GET /ready HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        s.addr()
    );
    raw(s.addr(), req.as_bytes()).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_503_then_recovers() {
    let mut proxy = Proxy::start(0).await;
    let opts = Options {
        pg_port: Some(proxy.port),
        ..Options::default()
    };
    let s = TestServer::start_with(Db::Postgres, opts).await;
    let c = &s.client;
    c.create_bucket()
        .bucket("outage")
        .send()
        .await
        .expect("bucket");
    c.put_object()
        .bucket("outage")
        .key("k")
        .body(ByteStream::from_static(b"before"))
        .send()
        .await
        .expect("put");
    assert_eq!(ready_status(&s).await, 200);

    proxy.cut();
    // Give the cut a moment to reach the pooled connections.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    for _ in 0..3 {
        let r = signed_raw(s.addr(), "GET", "/outage/k", &[], b"", &sha256_hex(b"")).await;
        assert_eq!(r.status, 503, "{r:?}");
        assert!(
            r.body.contains("<Code>ServiceUnavailable</Code>"),
            "{}",
            r.body
        );
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "503s come quickly, not after a hang"
    );
    assert_eq!(ready_status(&s).await, 503);

    // PostgreSQL is back on the same address: the server recovers without a restart.
    let _proxy = Proxy::start(proxy.port).await;
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(out) = c.get_object().bucket("outage").key("k").send().await {
            assert_eq!(
                out.body
                    .collect()
                    .await
                    .expect("body")
                    .into_bytes()
                    .as_ref(),
                b"before"
            );
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok, "server recovered within 10 s");
    c.put_object()
        .bucket("outage")
        .key("k2")
        .body(ByteStream::from_static(b"after"))
        .send()
        .await
        .expect("put after");
    assert_eq!(ready_status(&s).await, 200);
    assert_refcounts(&s).await;
    s.stop().await;
}
