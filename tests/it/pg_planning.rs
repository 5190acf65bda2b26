//! PostgreSQL only: the object statements (versioned ones too) keep using their indexes while a
//! table outgrows the statistics their plans were made with, on the hot connections and in the commit functions
//! (`js_commit` in a transaction of sqlx's pool, for a body in a file).
//!
//! The hot connections plan each statement once (`force_generic_plan`). On a fresh install the
//! first ANALYZE (autovacuum's, a minute in) sees a handful of rows, and a plan made from such
//! statistics scans the table instead of probing an index; it stays cached until the next
//! ANALYZE, which never comes where autovacuum is off. Every lookup then reads the whole table:
//! the benchmark saw 4 KiB PUTs fall from ~5,000/s to ~900/s, with the database at 13 CPU-s.

use crate::common::{Db, TestServer};
use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use sqlx::Connection;

/// Objects written after the ANALYZE: enough that plans scanning `objects` run many sequential
/// scans (3,229 measured with every body inline, before either fix; 39-45 with half the bodies
/// in files and only the hot connections fixed), where probing its index runs none.
const KEYS: usize = 300;
/// Sequential scans allowed: those before the ANALYZE, on nearly empty tables (8 measured).
const MAX_SCANS: i64 = 20;
const CONCURRENCY: usize = 16;

async fn each_key<F, Fut>(f: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    futures::stream::iter((0..KEYS).map(|i| f(format!("k/{i:04}"))))
        .buffer_unordered(CONCURRENCY)
        .collect::<()>()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_statements_probe_indexes_whatever_the_statistics_say() {
    let s = TestServer::start(Db::Postgres).await;
    let c = s.client.clone();
    let pg = s.pg.as_ref().expect("postgres").url();
    c.create_bucket().bucket("plans").send().await.unwrap();
    for i in 0..3 {
        let k = format!("seed/{i}");
        c.put_object()
            .bucket("plans")
            .key(k)
            .body(ByteStream::from_static(b"seed"))
            .send()
            .await
            .unwrap();
    }
    // What autovacuum does on a fresh install: statistics from a nearly empty table.
    let mut admin = sqlx::PgConnection::connect(&pg).await.unwrap();
    sqlx::query("ANALYZE").execute(&mut admin).await.unwrap();

    each_key(|k| {
        let c = c.clone();
        async move {
            let body = ByteStream::from(vec![7u8; body_len(&k)]);
            let put = c.put_object().bucket("plans").key(&k).body(body);
            put.send().await.unwrap();
        }
    })
    .await;
    each_key(|k| {
        let c = c.clone();
        async move {
            c.head_object()
                .bucket("plans")
                .key(&k)
                .send()
                .await
                .unwrap();
            let got = c.get_object().bucket("plans").key(&k).send().await.unwrap();
            let len = got.body.collect().await.unwrap().into_bytes().len();
            assert_eq!(len, body_len(&k));
        }
    })
    .await;
    // Versioned from here on: versions by id, permanent deletes, version listings, and
    // DELETEs that add markers.
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    let v = c.put_bucket_versioning().bucket("plans");
    v.versioning_configuration(enabled).send().await.unwrap();
    each_key(|k| {
        let c = c.clone();
        async move {
            let body = ByteStream::from(vec![8u8; body_len(&k)]);
            let put = c.put_object().bucket("plans").key(&k).body(body);
            let id = put.send().await.unwrap().version_id().unwrap().to_owned();
            let got = c.get_object().bucket("plans").key(&k).version_id(&id);
            got.send().await.unwrap();
            let listed = c.list_object_versions().bucket("plans").prefix(&k);
            assert_eq!(listed.send().await.unwrap().versions().len(), 2);
            let d = c.delete_object().bucket("plans").key(&k).version_id(&id);
            d.send().await.unwrap();
        }
    })
    .await;
    each_key(|k| {
        let c = c.clone();
        async move {
            c.delete_object()
                .bucket("plans")
                .key(&k)
                .send()
                .await
                .unwrap();
        }
    })
    .await;

    // A backend publishes its table statistics when it goes idle (at most once a second) or
    // exits: end the server's backends and wait for them to go.
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(ended.iter().all(|e| *e), "server backends did not exit");
    let scans = seq_scans(&mut admin).await;
    assert!(
        scans <= MAX_SCANS,
        "{scans} sequential scans of objects/object_segments/blobs for {KEYS} keys \
         written, read and deleted"
    );
    drop(admin);
    s.stop().await;
}

/// Every other key's body is held in the database (committed on a hot connection), the rest
/// in a file (committed through sqlx's pool, where the file is placed).
fn body_len(key: &str) -> usize {
    if key.ends_with(['0', '2', '4', '6', '8']) {
        1024
    } else {
        32 * 1024
    }
}

/// Sequential scans of the tables every object operation touches, as published so far (the
/// few before the ANALYZE included).
async fn seq_scans(c: &mut sqlx::PgConnection) -> i64 {
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *c)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT COALESCE(sum(seq_scan), 0)::bigint FROM pg_stat_user_tables \
         WHERE relname IN ('objects', 'object_segments', 'blobs')",
    )
    .fetch_one(c)
    .await
    .unwrap()
}
