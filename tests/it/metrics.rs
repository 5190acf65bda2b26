//! `/metrics` after a known workload, on a fresh real process (the counters are per process):
//! requests by operation and status, histogram counts, bytes each way, blobs and dedup.

use crate::common::*;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use std::collections::HashMap;

/// `name{labels}` → value, from an OpenMetrics exposition; labels in name order (`canon`).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((canon(k), v.parse().ok()?))
        })
        .collect()
}

/// `name{b="1",a="2"}` → `name{a="2",b="1"}` (no label value here holds `",`).
fn canon(key: &str) -> String {
    let Some((name, labels)) = key.split_once('{') else {
        return key.to_owned();
    };
    let labels = labels.trim_end_matches('}');
    let mut parts: Vec<String> = labels
        .split("\",")
        .map(|p| p.trim_end_matches('"').to_owned())
        .collect();
    parts.sort();
    let joined: Vec<String> = parts.into_iter().map(|p| format!("{p}\"")).collect();
    format!("{name}{{{}}}", joined.join(","))
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(&canon(key))
        .unwrap_or_else(|| panic!("no sample {key}; have {:#?}", sorted(m)))
}

fn sorted(m: &HashMap<String, f64>) -> Vec<(&String, &f64)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// A client that sends plain bodies (no aws-chunked framing), so bytes received are exact.
fn plain_client(addr: std::net::SocketAddr) -> Client {
    let c = client(addr, ROOT_KEY, ROOT_SECRET);
    let conf = c
        .config()
        .to_builder()
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .build();
    Client::from_conf(conf)
}

async fn scrape(addr: std::net::SocketAddr) -> (String, HashMap<String, f64>) {
    let r = raw(
        addr,
        b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(r.body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let m = samples(&r.body);
    (r.body, m)
}

async fn counted_after_a_known_workload(db: Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(PgDb::create().await),
    };
    let url = pg.as_ref().map(PgDb::url);
    let p = Proc::spawn_root(&dir.path().join("data"), url.as_deref(), &[]);
    let c = plain_client(p.addr);
    c.create_bucket()
        .bucket("met")
        .send()
        .await
        .expect("create");
    // Five PUTs of 1000 bytes; two share a body, so four distinct blobs (inline: small).
    for i in 0..5u64 {
        let body = bytes(1000, if i == 4 { 0 } else { i });
        c.put_object()
            .bucket("met")
            .key(format!("k{i}"))
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("put");
    }
    for i in 0..3 {
        let got = c
            .get_object()
            .bucket("met")
            .key(format!("k{i}"))
            .send()
            .await
            .expect("get");
        assert_eq!(
            got.body.collect().await.expect("body").into_bytes().len(),
            1000
        );
    }
    c.head_object()
        .bucket("met")
        .key("k0")
        .send()
        .await
        .expect("head");
    for _ in 0..2 {
        let e = c
            .head_object()
            .bucket("met")
            .key("missing")
            .send()
            .await
            .expect_err("404");
        assert_eq!(status(&e), 404);
    }
    // A wrong secret is refused before s3s names the operation.
    let bad = client(p.addr, ROOT_KEY, "not-the-secret");
    let e = bad.list_buckets().send().await.expect_err("403");
    assert_eq!(status(&e), 403);

    // The response body's end, not its head, finishes a request: wait (bounded) for the last.
    let mut m = scrape(p.addr).await.1;
    for _ in 0..100 {
        if m.get("juststorage_requests_in_flight") == Some(&0.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        m = scrape(p.addr).await.1;
    }
    let req = |op: &str, st: u16| {
        format!("juststorage_requests_total{{operation=\"{op}\",status=\"{st}\"}}")
    };
    assert_eq!(get(&m, &req("CreateBucket", 200)), 1.0);
    assert_eq!(get(&m, &req("PutObject", 200)), 5.0);
    assert_eq!(get(&m, &req("GetObject", 200)), 3.0);
    assert_eq!(get(&m, &req("HeadObject", 200)), 1.0);
    assert_eq!(get(&m, &req("HeadObject", 404)), 2.0);
    assert_eq!(get(&m, &req("unknown", 403)), 1.0);
    let total: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("juststorage_requests_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, 13.0, "no other request was counted (probes are not)");

    for (op, n) in [("PutObject", 5.0), ("GetObject", 3.0), ("HeadObject", 3.0)] {
        let count = format!("juststorage_request_duration_seconds_count{{operation=\"{op}\"}}");
        let inf = format!(
            "juststorage_request_duration_seconds_bucket{{le=\"+Inf\",operation=\"{op}\"}}"
        );
        let sum = format!("juststorage_request_duration_seconds_sum{{operation=\"{op}\"}}");
        assert_eq!(get(&m, &count), n, "{op} histogram count");
        assert_eq!(get(&m, &inf), n, "{op} +Inf bucket");
        assert!(get(&m, &sum) > 0.0, "{op} histogram sum");
    }
    assert_eq!(
        get(
            &m,
            "juststorage_bytes_received_total{operation=\"PutObject\"}"
        ),
        5000.0
    );
    assert_eq!(
        get(&m, "juststorage_bytes_sent_total{operation=\"GetObject\"}"),
        3000.0
    );
    assert_eq!(get(&m, "juststorage_requests_in_flight"), 0.0);
    assert_eq!(get(&m, "juststorage_commit_batch_size_sum"), 5.0);
    assert_eq!(
        get(&m, "juststorage_blobs{tier=\"hot\",place=\"inline\"}"),
        4.0
    );
    assert_eq!(
        get(&m, "juststorage_blob_bytes{tier=\"hot\",place=\"inline\"}"),
        4000.0
    );
    assert_eq!(get(&m, "juststorage_gc_backlog_blobs{tier=\"hot\"}"), 0.0);
    assert_eq!(get(&m, "juststorage_dedup_ratio"), 1.25);
    match db {
        Db::Postgres => {
            assert!(get(&m, "juststorage_db_pool_max_connections") >= 1.0);
            get(&m, "juststorage_db_pool_connections{state=\"in_use\"}");
        }
        Db::Sqlite => assert!(!m.contains_key("juststorage_db_pool_max_connections")),
    }
    // Anonymous scrapes name no tenant or bucket.
    let (text, _) = scrape(p.addr).await;
    assert!(!text.contains("tenant=\""), "{text}");
    assert!(p.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_after_a_known_workload_sqlite() {
    counted_after_a_known_workload(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_after_a_known_workload_postgres() {
    counted_after_a_known_workload(Db::Postgres).await;
}
