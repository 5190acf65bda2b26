//! The real binary: bounded memory on a 1 GiB round trip, credentials kept across restarts,
//! graceful exit on SIGTERM.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use std::io::Write;

const GIB: u64 = 1 << 30;
const RSS_LIMIT: u64 = 100 << 20;

/// Writes `len` pseudo-random bytes to `path`, returning their MD5.
fn write_file(path: &std::path::Path, len: u64) -> String {
    use md5::Digest;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut md5 = md5::Md5::new();
    let chunk = 8 << 20;
    let mut written = 0u64;
    let mut seed = 1;
    while written < len {
        let n = chunk.min((len - written) as usize);
        let b = bytes(n, seed);
        md5.update(&b);
        f.write_all(&b).expect("write");
        written += n as u64;
        seed += 1;
    }
    f.flush().expect("flush");
    hex::encode(md5.finalize())
}

async fn gib_round_trip(db: Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(PgDb::create().await),
    };
    let url = pg.as_ref().map(PgDb::url);
    let proc = Proc::spawn(
        &dir.path().join("data"),
        url.as_deref(),
        &[
            ("JUST_STORAGE_ROOT_ACCESS_KEY", ROOT_KEY),
            ("JUST_STORAGE_ROOT_SECRET_KEY", ROOT_SECRET),
        ],
    );
    let file = dir.path().join("gib.bin");
    let md5 = write_file(&file, GIB);
    let c = client(proc.addr, ROOT_KEY, ROOT_SECRET);
    c.create_bucket()
        .bucket("big")
        .send()
        .await
        .expect("create");
    let put = c
        .put_object()
        .bucket("big")
        .key("one-gib")
        .body(ByteStream::from_path(&file).await.expect("file body"))
        .send()
        .await
        .expect("put 1 GiB");
    assert_eq!(put.e_tag(), Some(format!("\"{md5}\"").as_str()));
    std::fs::remove_file(&file).expect("rm");

    let mut out = c
        .get_object()
        .bucket("big")
        .key("one-gib")
        .send()
        .await
        .expect("get");
    assert_eq!(out.content_length(), Some(GIB as i64));
    let mut h = <md5::Md5 as md5::Digest>::new();
    let mut n = 0u64;
    while let Some(chunk) = out.body.next().await {
        let chunk = chunk.expect("chunk");
        n += chunk.len() as u64;
        md5::Digest::update(&mut h, &chunk);
    }
    assert_eq!(n, GIB);
    assert_eq!(hex::encode(md5::Digest::finalize(h)), md5);
    let rss = proc.peak_rss();
    eprintln!("{db:?}: peak RSS after 1 GiB PUT + GET: {} MiB", rss >> 20);
    assert!(rss < RSS_LIMIT, "peak RSS {} MiB", rss >> 20);
    assert!(proc.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gib_round_trip_bounded_memory_sqlite() {
    gib_round_trip(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gib_round_trip_bounded_memory_postgres() {
    gib_round_trip(Db::Postgres).await;
}

async fn restart_keeps_credentials_and_data(db: Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let pg = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(PgDb::create().await),
    };
    let url = pg.as_ref().map(PgDb::url);
    let first = Proc::spawn(&data, url.as_deref(), &[]);
    let (key, secret) = printed_root(&first.banner).expect("first start prints the root key");
    let c = client(first.addr, &key, &secret);
    c.create_bucket()
        .bucket("keep")
        .send()
        .await
        .expect("create");
    c.put_object()
        .bucket("keep")
        .key("k")
        .body(ByteStream::from_static(b"persisted"))
        .send()
        .await
        .expect("put");
    assert!(first.terminate().success(), "clean exit on SIGTERM");

    let second = Proc::spawn(&data, url.as_deref(), &[]);
    assert_eq!(
        printed_root(&second.banner),
        None,
        "credentials are printed only once"
    );
    let c = client(second.addr, &key, &secret);
    let got = c
        .get_object()
        .bucket("keep")
        .key("k")
        .send()
        .await
        .expect("get after restart");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"persisted"
    );
    assert!(second.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_credentials_and_data_sqlite() {
    restart_keeps_credentials_and_data(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_credentials_and_data_postgres() {
    restart_keeps_credentials_and_data(Db::Postgres).await;
}
