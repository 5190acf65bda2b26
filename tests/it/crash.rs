//! Crash safety of the real binary. The server is aborted at the test crash points
//! (`JUST_STORAGE_FAULT`, see `src/fault.rs`) or killed with SIGKILL while it works; after a
//! restart every acknowledged object reads back byte-identical, nothing unacknowledged is
//! visible, and `just-storage gc` (grace and orphan age 0) leaves no temp file, no unfinished
//! row, exact reference counts and exactly the referenced blob files on disk.
//!
//! Every scenario runs on SQLite and on a fresh PostgreSQL database.

use crate::common::*;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BUCKET: &str = "crash";
const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Harness: one data directory (and PostgreSQL database) shared by successive server processes.
// ---------------------------------------------------------------------------------------------

struct Env {
    db: Db,
    dir: tempfile::TempDir,
    pg: Option<PgDb>,
}

impl Env {
    async fn new(db: Db) -> Env {
        let pg = match db {
            Db::Sqlite => None,
            Db::Postgres => Some(PgDb::create().await),
        };
        Env {
            db,
            dir: tempfile::tempdir().expect("tempdir"),
            pg,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_url(&self) -> Option<String> {
        self.pg.as_ref().map(PgDb::url)
    }

    fn meta_url(&self) -> String {
        self.pg_url()
            .unwrap_or_else(|| format!("sqlite://{}", self.data().join("meta.db").display()))
    }

    /// `just-storage serve` with the preset root key, `fault` armed if given, and extra env.
    fn spawn(&self, fault: Option<&str>, extra: &[(&str, &str)]) -> Proc {
        let mut env = Vec::new();
        if let Some(f) = fault {
            env.push(("JUST_STORAGE_FAULT", f));
        }
        env.extend_from_slice(extra);
        let url = self.pg_url();
        let data = self.data();
        tokio::task::block_in_place(|| Proc::spawn_root(&data, url.as_deref(), &env))
    }

    /// `just-storage gc --gc-grace-secs 0 --orphan-age-secs 0` once; returns its report.
    fn gc(&self) -> String {
        let args = ["gc", "--gc-grace-secs", "0", "--orphan-age-secs", "0"];
        let (ok, stdout) = cli(&self.data(), self.pg_url().as_deref(), &args);
        assert!(ok, "just-storage gc failed: {stdout}");
        eprintln!("{:?}: {stdout}", self.db);
        stdout
    }

    fn temp_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for tier in ["hot", "cold"] {
            if let Ok(rd) = std::fs::read_dir(self.data().join(tier).join("tmp")) {
                out.extend(rd.flatten().map(|e| e.path()));
            }
        }
        out
    }

    fn temp_bytes(&self) -> u64 {
        self.temp_files()
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// `(tier, file name)` of every file in the content-addressed trees.
    fn blob_file_set(&self) -> BTreeMap<(String, String), PathBuf> {
        let mut out = BTreeMap::new();
        for tier in ["hot", "cold"] {
            for p in blob_files(&self.data().join(tier)) {
                let name = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned();
                out.insert((tier.to_owned(), name), p);
            }
        }
        out
    }

    fn blob_path(&self, body: &[u8]) -> PathBuf {
        let h = sha256_hex(body);
        self.data().join("hot").join("sha256").join(&h[..2]).join(h)
    }

    /// The consistency check after `gc`, with every server process stopped: no temp file, no
    /// WRITING/DELETING row, `refcount_mismatches()` empty, the usage figures equal a recount,
    /// every referenced blob has its file or inline bytes (with the right content) and every
    /// blob file and blob row is referenced.
    async fn check_store(&self) {
        let url = self.meta_url();
        let meta = just_storage::meta::open(&url)
            .await
            .expect("open the metadata");
        let mismatches = meta
            .refcount_mismatches()
            .await
            .expect("refcount_mismatches");
        let usage = meta.check_usage(false).await.expect("usage check");
        drop(meta);
        let referenced = db_pairs(&url, REFERENCED_SQL).await;
        let rows = db_pairs(&url, "SELECT tier, hash FROM blobs").await;
        let unfinished = db_pairs(
            &url,
            "SELECT id, status FROM objects WHERE status <> 'COMMITTED'",
        )
        .await;
        let files = self.blob_file_set();
        let temps = self.temp_files();
        // Inline blobs: their bytes are in `blob_data`, no file needed.
        let inline: Vec<(String, String, Vec<u8>)> =
            db_rows(&url, "SELECT tier, hash, data FROM blob_data").await;

        let mut problems = Vec::new();
        for (_, hash, data) in &inline {
            if &sha256_hex(data) != hash {
                problems.push(format!("inline blob {hash} does not hash to its name"));
            }
        }
        let inline: BTreeSet<(String, String)> =
            inline.into_iter().map(|(t, h, _)| (t, h)).collect();
        let missing: Vec<_> = referenced
            .iter()
            .filter(|b| !files.contains_key(*b) && !inline.contains(*b))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "referenced blobs without a file (data loss): {missing:?}"
            ));
        }
        if !mismatches.is_empty() {
            problems.push(format!("refcount_mismatches(): {mismatches:?}"));
        }
        if !usage.is_clean() {
            problems.push(format!("usage figures drifted: {usage:?}"));
        }
        for ((_, hash), path) in &files {
            let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if len <= 64 << 20 {
                let body = std::fs::read(path).expect("read blob file");
                if &sha256_hex(&body) != hash {
                    problems.push(format!(
                        "blob file {} does not hash to its name",
                        path.display()
                    ));
                }
            }
        }
        if !temps.is_empty() {
            problems.push(format!("temp files left after gc: {temps:?}"));
        }
        if !unfinished.is_empty() {
            problems.push(format!(
                "object rows not COMMITTED after gc (id, status): {unfinished:?}"
            ));
        }
        let leaked: Vec<_> = files
            .iter()
            .filter(|(b, _)| !referenced.contains(*b))
            .map(|(_, p)| p.display().to_string())
            .collect();
        if !leaked.is_empty() {
            problems.push(format!(
                "{} blob file(s) on disk but referenced by no committed object or upload part, \
                 not collected by gc (leak): {leaked:?}",
                leaked.len()
            ));
        }
        let stale_rows: Vec<_> = rows.difference(&referenced).collect();
        if !stale_rows.is_empty() {
            problems.push(format!(
                "blob rows referenced by nothing after gc: {stale_rows:?}"
            ));
        }
        eprintln!(
            "{:?}: store after gc: {} referenced blobs, {} blob rows, {} blob files, {} temp files",
            self.db,
            referenced.len(),
            rows.len(),
            files.len(),
            temps.len()
        );
        assert!(
            problems.is_empty(),
            "{:?}: store inconsistent after crash + gc:\n  {}",
            self.db,
            problems.join("\n  ")
        );
    }
}

/// Distinct blobs referenced by COMMITTED objects and by upload parts (the references
/// `ref_count` counts).
const REFERENCED_SQL: &str = "SELECT s.tier, s.blob_hash FROM object_segments s \
     JOIN objects o ON o.id = s.object_id WHERE o.status = 'COMMITTED' \
     UNION SELECT tier, blob_hash FROM upload_parts WHERE blob_hash IS NOT NULL";

async fn db_pairs(url: &str, sql: &'static str) -> BTreeSet<(String, String)> {
    db_rows(url, sql).await.into_iter().collect()
}

/// Every row of `sql`, on either database.
async fn db_rows<T>(url: &str, sql: &'static str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + FromSqlite + Send + Unpin,
{
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url)
            .await
            .expect("connect PostgreSQL");
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.expect(sql);
        pool.close().await;
        rows
    } else {
        let path = url.trim_start_matches("sqlite://");
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let c = rusqlite::Connection::open_with_flags(path, flags).expect("open SQLite");
        let mut stmt = c.prepare(sql).expect(sql);
        let rows = stmt.query_map([], T::from_sqlite).expect(sql);
        rows.collect::<Result<_, _>>().expect(sql)
    }
}

/// A row of the tuples `db_rows` reads, from SQLite.
trait FromSqlite: Sized {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

impl FromSqlite for (String, String) {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((r.get(0)?, r.get(1)?))
    }
}

impl FromSqlite for (String, String, Vec<u8>) {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    }
}

/// A client without retries (a request that hits a crash fails once, visibly) and with bounded
/// connect and operation times.
fn strict_client(addr: std::net::SocketAddr) -> Client {
    use aws_sdk_s3::config::retry::RetryConfig;
    use aws_sdk_s3::config::timeout::TimeoutConfig;
    let conf = client(addr, ROOT_KEY, ROOT_SECRET)
        .config()
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// The request got no HTTP answer: the connection failed, broke or timed out.
fn is_transport<E, R>(e: &SdkError<E, R>) -> bool {
    matches!(
        e,
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) | SdkError::TimeoutError(_)
    )
}

fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let s = aws_smithy_types::error::display::DisplayErrorContext(e).to_string();
    s.chars().take(400).collect()
}

fn quoted_md5(b: &[u8]) -> String {
    format!("\"{}\"", md5_hex(b))
}

/// Waits (bounded) for the process to exit on its own.
async fn wait_exit(p: &mut Proc, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = p.child.try_wait().expect("try_wait") {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "server still running {within:?} after its crash point should have fired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_aborted(st: ExitStatus, point: &str) {
    assert!(!st.success(), "{point}: the server exited successfully");
    assert_eq!(
        st.signal(),
        Some(libc::SIGABRT),
        "{point}: the server should have died by abort() at the crash point, got {st}"
    );
}

async fn create_bucket(c: &Client) {
    c.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
}

async fn put(c: &Client, key: &str, body: &[u8]) {
    let out = c
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {}", describe(&e)));
    assert_eq!(
        out.e_tag(),
        Some(quoted_md5(body).as_str()),
        "ETag of {key}"
    );
}

async fn get(c: &Client, key: &str) -> Result<Vec<u8>, String> {
    match c.get_object().bucket(BUCKET).key(key).send().await {
        Ok(o) => Ok(o
            .body
            .collect()
            .await
            .unwrap_or_else(|e| panic!("GET {key}: body: {e}"))
            .into_bytes()
            .to_vec()),
        Err(e) => Err(code(&e)),
    }
}

async fn expect_object(c: &Client, key: &str, want: &[u8]) {
    let got = get(c, key)
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e} (it was acknowledged)"));
    assert!(
        got == want,
        "GET {key}: {} bytes, md5 {}; acknowledged {} bytes, md5 {}",
        got.len(),
        md5_hex(&got),
        want.len(),
        md5_hex(want)
    );
}

async fn expect_absent(c: &Client, key: &str) {
    match get(c, key).await {
        Err(code) => assert_eq!(code, "NoSuchKey", "GET {key}"),
        Ok(b) => panic!(
            "GET {key}: {} bytes (md5 {}) although that PUT was never acknowledged",
            b.len(),
            md5_hex(&b)
        ),
    }
}

async fn list_keys(c: &Client) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut token: Option<String> = None;
    for _ in 0..1000 {
        let r = c
            .list_objects_v2()
            .bucket(BUCKET)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("list objects");
        out.extend(
            r.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        match r.next_continuation_token() {
            Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_owned()),
            _ => return out,
        }
    }
    panic!("listing did not end after 1000 pages");
}

/// Every acknowledged object reads back byte-identical and the listing holds exactly them.
async fn verify_acked(c: &Client, acked: &BTreeMap<String, Vec<u8>>) {
    for (k, v) in acked {
        expect_object(c, k, v).await;
    }
    let listed = list_keys(c).await;
    let want: BTreeSet<String> = acked.keys().cloned().collect();
    assert_eq!(listed, want, "listing after restart");
}

// ---------------------------------------------------------------------------------------------
// 1. Crash points of the PUT path.
// ---------------------------------------------------------------------------------------------

/// Acknowledged objects of the first (fault-free) run.
async fn seed(c: &Client) -> BTreeMap<String, Vec<u8>> {
    create_bucket(c).await;
    let mut acked = BTreeMap::new();
    for (k, v) in [
        ("a", bytes(100 << 10, 1)),
        ("b", bytes(MIB + 5, 2)),
        ("c", bytes(3 * MIB, 3)),
        ("empty", Vec::new()),
        ("dir/key with space", bytes(10, 4)),
    ] {
        put(c, k, &v).await;
        acked.insert(k.to_owned(), v);
    }
    // A copy shares "a"'s blob (ref_count 2).
    c.copy_object()
        .bucket(BUCKET)
        .key("a-copy")
        .copy_source(format!("{BUCKET}/a"))
        .send()
        .await
        .expect("copy a");
    acked.insert("a-copy".into(), acked["a"].clone());
    acked
}

async fn crash_during_put(db: Db, point: &str) {
    let env = Env::new(db).await;
    let first = env.spawn(None, &[]);
    let acked = seed(&strict_client(first.addr)).await;
    assert!(first.terminate().success(), "clean exit on SIGTERM");

    // Each request runs against its own armed process: a new key, an overwrite of an
    // acknowledged key, and a new key whose body already exists (the dedup branch of `place`).
    let mut cases = vec![
        ("new-key", bytes(512 << 10, 10)),
        ("a", bytes(700 << 10, 11)),
        ("dup-of-b", acked["b"].clone()),
    ];
    if point == "after-temp-write" {
        // An inline body (no temp file, never placed) passes this point too.
        cases.push(("small-new", bytes(3000, 12)));
    }
    for (key, body) in cases {
        let mut p = env.spawn(Some(point), &[]);
        let c = strict_client(p.addr);
        let r = c
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await;
        match r {
            Ok(o) => panic!("{point}: PUT {key} was acknowledged ({:?})", o.e_tag()),
            Err(e) => assert!(
                is_transport(&e),
                "{point}: PUT {key} should fail with a connection error, got {}",
                describe(&e)
            ),
        }
        assert_aborted(wait_exit(&mut p, Duration::from_secs(20)).await, point);
    }
    eprintln!(
        "{db:?} {point}: after the crashes: {} temp files, {} blob files",
        env.temp_files().len(),
        env.blob_file_set().len()
    );

    let p = env.spawn(None, &[]);
    let c = strict_client(p.addr);
    verify_acked(&c, &acked).await;
    expect_absent(&c, "new-key").await;
    expect_absent(&c, "dup-of-b").await;
    expect_absent(&c, "small-new").await;
    env.gc();
    verify_acked(&c, &acked).await;
    assert!(p.terminate().success(), "clean exit on SIGTERM");
    env.check_store().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_temp_write_sqlite() {
    crash_during_put(Db::Sqlite, "after-temp-write").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_temp_write_postgres() {
    crash_during_put(Db::Postgres, "after-temp-write").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_place_sqlite() {
    crash_during_put(Db::Sqlite, "after-place").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_place_postgres() {
    crash_during_put(Db::Postgres, "after-place").await;
}

// ---------------------------------------------------------------------------------------------
// 2. SIGKILL while a large body streams.
// ---------------------------------------------------------------------------------------------

/// A body of `left` bytes sent in `chunk`-sized frames, one every `every`: the upload is still
/// streaming when the test kills the server.
struct Paced {
    left: u64,
    chunk: bytes::Bytes,
    every: Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Paced {
    fn new(total: u64, chunk: usize, every: Duration) -> Paced {
        Paced {
            left: total,
            chunk: bytes::Bytes::from(bytes(chunk, 77)),
            every,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }
}

impl http_body::Body for Paced {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        use std::future::Future as _;
        use std::task::Poll;
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        if this.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let next = tokio::time::Instant::now() + this.every;
        this.sleep.as_mut().reset(next);
        let n = this.left.min(this.chunk.len() as u64);
        this.left -= n;
        Poll::Ready(Some(Ok(http_body::Frame::data(
            this.chunk.slice(..n as usize),
        ))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

async fn kill_during_large_put(db: Db) {
    let env = Env::new(db).await;
    let mut p = env.spawn(None, &[]);
    let c = strict_client(p.addr);
    create_bucket(&c).await;
    let mut acked = BTreeMap::new();
    for (k, v) in [("small", bytes(64 << 10, 1)), ("medium", bytes(2 * MIB, 2))] {
        put(&c, k, &v).await;
        acked.insert(k.to_owned(), v);
    }

    // 200 MiB at about 50 MiB/s: still streaming when the server is killed after ~1 s.
    let total: u64 = 200 << 20;
    let body = ByteStream::from_body_1_x(Paced::new(total, MIB, Duration::from_millis(20)));
    let c2 = c.clone();
    let upload = tokio::spawn(async move {
        c2.put_object()
            .bucket(BUCKET)
            .key("partial")
            .body(body)
            .send()
            .await
    });
    let start = Instant::now();
    loop {
        let streamed = env.temp_bytes();
        if start.elapsed() >= Duration::from_secs(1) && streamed >= 8 << 20 {
            eprintln!(
                "{db:?}: killing the server after {:?}, {} MiB of the body in its temp file",
                start.elapsed(),
                streamed >> 20
            );
            break;
        }
        assert!(
            !upload.is_finished(),
            "the 200 MiB PUT ended before the kill: {:?}",
            upload.await
        );
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the body did not start streaming within 30 s ({streamed} bytes in temp files)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.child.kill().expect("kill -9");
    p.child.wait().expect("wait");
    let r = tokio::time::timeout(Duration::from_secs(60), upload)
        .await
        .expect("the PUT returns after the kill")
        .expect("join");
    match r {
        Ok(o) => panic!("the interrupted PUT was acknowledged: {:?}", o.e_tag()),
        Err(e) => assert!(is_transport(&e), "connection error: {}", describe(&e)),
    }
    drop(p);
    eprintln!(
        "{db:?}: after kill -9: {} temp files ({} MiB)",
        env.temp_files().len(),
        env.temp_bytes() >> 20
    );

    let p = env.spawn(None, &[]);
    let c = strict_client(p.addr);
    verify_acked(&c, &acked).await;
    expect_absent(&c, "partial").await;
    env.gc();
    assert!(
        env.temp_files().is_empty(),
        "gc with orphan age 0 leaves temp files: {:?}",
        env.temp_files()
    );
    verify_acked(&c, &acked).await;
    assert!(p.terminate().success(), "clean exit on SIGTERM");
    env.check_store().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_large_put_sqlite() {
    kill_during_large_put(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_large_put_postgres() {
    kill_during_large_put(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// 2b. SIGKILL while clients write and delete versions in a versioned bucket.
// ---------------------------------------------------------------------------------------------

/// A versioned bucket's acknowledged versions, delete markers and permanent deletes survive a
/// kill -9 in the middle of them: every acknowledged version reads back by id, every
/// acknowledged permanent delete stays gone, and gc leaves exact counts.
async fn kill_during_versioned_writes(db: Db) {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let env = Env::new(db).await;
    let p = env.spawn(None, &[]);
    let c = strict_client(p.addr);
    create_bucket(&c).await;
    let enabled = VersioningConfiguration::builder()
        .status(BucketVersioningStatus::Enabled)
        .build();
    let v = c
        .put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(enabled);
    v.send().await.expect("enable versioning");
    // (key, version id) → body (`None`: a delete marker); and what was removed for good.
    type Acked = (
        BTreeMap<(String, String), Option<Vec<u8>>>,
        Vec<(String, String)>,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (c, stop) = (c.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let (mut kept, mut removed): Acked = Default::default();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 10_000 {
                i += 1;
                let key = format!("k{}", i % 3);
                // Inline bodies and file bodies, some shared between versions.
                let body = bytes(if i.is_multiple_of(2) { 1000 } else { 40_000 }, i % 5);
                let r = match i % 7 {
                    3 => match c.delete_object().bucket(BUCKET).key(&key).send().await {
                        Ok(d) => Some((d.version_id().map(str::to_owned), None)),
                        Err(e) if is_transport(&e) => break,
                        Err(e) => panic!("DELETE: {}", describe(&e)),
                    },
                    5 => {
                        let mine = kept.keys().rev().find(|(k, _)| *k == key).cloned();
                        let Some((k, id)) = mine else { continue };
                        let d = c.delete_object().bucket(BUCKET).key(&k).version_id(&id);
                        match d.send().await {
                            Ok(_) => {
                                kept.remove(&(k.clone(), id.clone()));
                                removed.push((k, id));
                                None
                            }
                            // Unanswered: it may have gone or not.
                            Err(e) if is_transport(&e) => {
                                kept.remove(&(k, id));
                                break;
                            }
                            Err(e) => panic!("DELETE version: {}", describe(&e)),
                        }
                    }
                    _ => {
                        let put = c.put_object().bucket(BUCKET).key(&key);
                        match put.body(ByteStream::from(body.clone())).send().await {
                            Ok(o) => Some((o.version_id().map(str::to_owned), Some(body))),
                            Err(e) if is_transport(&e) => break,
                            Err(e) => panic!("PUT: {}", describe(&e)),
                        }
                    }
                };
                if let Some((id, body)) = r {
                    kept.insert((key, id.expect("a version id")), body);
                }
            }
            (kept, removed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut p = p;
    p.child.kill().expect("kill -9");
    p.child.wait().expect("wait");
    stop.store(true, Ordering::Relaxed);
    let (mut kept, mut removed): Acked = Default::default();
    for w in workers {
        let (k, r) = tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("the workers stop after the kill")
            .expect("join");
        kept.extend(k);
        removed.extend(r);
    }
    drop(p);
    assert!(
        kept.len() > 20,
        "{db:?}: too few acknowledged versions: {}",
        kept.len()
    );
    eprintln!(
        "{db:?}: {} versions kept, {} removed before the kill",
        kept.len(),
        removed.len()
    );

    let p = env.spawn(None, &[]);
    let c = strict_client(p.addr);
    let check = |c: Client, kept: BTreeMap<(String, String), Option<Vec<u8>>>| async move {
        for ((key, id), body) in &kept {
            let got = c
                .get_object()
                .bucket(BUCKET)
                .key(key)
                .version_id(id)
                .send()
                .await;
            match (body, got) {
                (Some(want), Ok(o)) => {
                    let b = o.body.collect().await.expect("body").into_bytes();
                    assert!(b.as_ref() == want.as_slice(), "{key} {id}: different bytes");
                }
                (None, Err(e)) => assert_eq!(status(&e), 405, "{key} {id}: a delete marker"),
                (Some(_), Err(e)) => panic!("acknowledged version {key} {id} lost: {}", code(&e)),
                (None, Ok(_)) => panic!("delete marker {key} {id} answers a body"),
            }
        }
    };
    check(c.clone(), kept.clone()).await;
    for (key, id) in &removed {
        let got = c
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .version_id(id)
            .send()
            .await;
        let e = got.expect_err("a permanent delete stays");
        assert_eq!(code(&e), "NoSuchVersion", "{key} {id}");
    }
    env.gc();
    check(c, kept).await;
    assert!(p.terminate().success(), "clean exit on SIGTERM");
    env.check_store().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_versioned_writes_sqlite() {
    kill_during_versioned_writes(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_versioned_writes_postgres() {
    kill_during_versioned_writes(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Crash inside CompleteMultipartUpload.
// ---------------------------------------------------------------------------------------------

async fn crash_mid_complete(db: Db) {
    let env = Env::new(db).await;
    let mut p = env.spawn(Some("mid-complete"), &[]);
    let c = strict_client(p.addr);
    create_bucket(&c).await;
    let keep = bytes(300 << 10, 5);
    put(&c, "keep", &keep).await;
    let parts = [bytes(5 * MIB, 21), bytes(MIB + 3, 22)];
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .send()
        .await
        .expect("create upload");
    let upload_id = up.upload_id().expect("upload id").to_owned();
    let mut done = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let r = c
            .upload_part()
            .bucket(BUCKET)
            .key("mp")
            .upload_id(&upload_id)
            .part_number(n)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .expect("upload part");
        assert_eq!(r.e_tag(), Some(quoted_md5(part).as_str()));
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().expect("part etag"))
                .build(),
        );
    }
    let list = CompletedMultipartUpload::builder()
        .set_parts(Some(done))
        .build();
    let r = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(&upload_id)
        .multipart_upload(list.clone())
        .send()
        .await;
    match r {
        Ok(o) => panic!(
            "complete was acknowledged under mid-complete: {:?}",
            o.e_tag()
        ),
        Err(e) => assert!(is_transport(&e), "connection error: {}", describe(&e)),
    }
    assert_aborted(
        wait_exit(&mut p, Duration::from_secs(20)).await,
        "mid-complete",
    );
    drop(p);

    let p = env.spawn(None, &[]);
    let c = strict_client(p.addr);
    expect_object(&c, "keep", &keep).await;
    expect_absent(&c, "mp").await;
    let uploads = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list uploads");
    let listed: Vec<_> = uploads
        .uploads()
        .iter()
        .map(|u| {
            (
                u.key().unwrap_or_default(),
                u.upload_id().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![("mp", upload_id.as_str())],
        "the interrupted upload is still listed"
    );
    let lp = c
        .list_parts()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(&upload_id)
        .send()
        .await
        .expect("list parts");
    let sizes: Vec<_> = lp.parts().iter().map(|p| p.size()).collect();
    assert_eq!(
        sizes,
        vec![Some(parts[0].len() as i64), Some(parts[1].len() as i64)]
    );
    let done = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(&upload_id)
        .multipart_upload(list)
        .send()
        .await
        .unwrap_or_else(|e| panic!("complete after restart: {}", describe(&e)));
    assert!(
        done.e_tag().is_some_and(|t| t.ends_with("-2\"")),
        "multipart ETag: {:?}",
        done.e_tag()
    );
    let whole = [parts[0].as_slice(), parts[1].as_slice()].concat();
    expect_object(&c, "mp", &whole).await;
    let uploads = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list uploads");
    assert!(
        uploads.uploads().is_empty(),
        "completed upload still listed"
    );
    env.gc();
    expect_object(&c, "mp", &whole).await;
    expect_object(&c, "keep", &keep).await;
    assert!(p.terminate().success(), "clean exit on SIGTERM");
    env.check_store().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_complete_sqlite() {
    crash_mid_complete(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_complete_postgres() {
    crash_mid_complete(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// 4. Crash in the collector after the unlink, before the row delete commits.
// ---------------------------------------------------------------------------------------------

async fn crash_after_unlink(db: Db) {
    let env = Env::new(db).await;
    let mut p = env.spawn(
        Some("after-unlink"),
        &[
            ("JUST_STORAGE_GC_GRACE_SECS", "0"),
            ("JUST_STORAGE_GC_INTERVAL_SECS", "1"),
        ],
    );
    let c = strict_client(p.addr);
    create_bucket(&c).await;
    let victim = bytes(200 << 10, 31);
    let other = bytes(100 << 10, 32);
    put(&c, "victim", &victim).await;
    put(&c, "other", &other).await;
    c.delete_object()
        .bucket(BUCKET)
        .key("victim")
        .send()
        .await
        .expect("delete");
    assert_aborted(
        wait_exit(&mut p, Duration::from_secs(20)).await,
        "after-unlink",
    );
    drop(p);
    assert!(
        !env.blob_path(&victim).exists(),
        "the collector crashed after unlinking the victim's blob"
    );
    assert!(env.blob_path(&other).exists());

    let p = env.spawn(None, &[]);
    let c = strict_client(p.addr);
    expect_object(&c, "other", &other).await;
    expect_absent(&c, "victim").await;
    // Same content again: the writer finds the (uncollected) blob row and must re-place the file.
    put(&c, "again", &victim).await;
    assert!(env.blob_path(&victim).exists(), "blob re-placed");
    expect_object(&c, "again", &victim).await;
    env.gc();
    expect_object(&c, "again", &victim).await;
    expect_object(&c, "other", &other).await;
    assert_eq!(
        list_keys(&c).await,
        BTreeSet::from(["again".to_owned(), "other".to_owned()])
    );
    assert!(p.terminate().success(), "clean exit on SIGTERM");
    env.check_store().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_unlink_sqlite() {
    crash_after_unlink(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_unlink_postgres() {
    crash_after_unlink(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// 5. ENOSPC: a clean 507, nothing committed, no temp file, the server stays up.
// ---------------------------------------------------------------------------------------------

async fn enospc(db: Db) {
    let env = Env::new(db).await;
    let first = env.spawn(None, &[]);
    let c = strict_client(first.addr);
    create_bucket(&c).await;
    let old = bytes(2 * MIB, 41);
    put(&c, "k", &old).await;
    assert!(first.terminate().success(), "clean exit on SIGTERM");

    let mut p = env.spawn(Some("enospc"), &[]);
    let c = strict_client(p.addr);
    for (key, body) in [("k", bytes(3 * MIB, 42)), ("fresh", bytes(100 << 10, 43))] {
        let e = c
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect_err("PUT on a full disk");
        assert_eq!(status(&e), 507, "PUT {key}: {}", describe(&e));
        assert_eq!(code(&e), "InsufficientStorage", "PUT {key}");
        assert!(
            env.temp_files().is_empty(),
            "temp file left after a failed PUT: {:?}",
            env.temp_files()
        );
    }
    expect_object(&c, "k", &old).await;
    expect_absent(&c, "fresh").await;
    assert_eq!(list_keys(&c).await, BTreeSet::from(["k".to_owned()]));
    assert!(
        p.child.try_wait().expect("try_wait").is_none(),
        "the server is still running"
    );
    let health = raw(
        p.addr,
        b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(health.status, 200, "/health: {health:?}");
    expect_object(&c, "k", &old).await;
    env.gc();
    assert!(p.terminate().success(), "clean exit on SIGTERM");
    env.check_store().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_sqlite() {
    enospc(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_postgres() {
    enospc(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// 6. Soak: concurrent clients, the server killed and restarted three times.
// ---------------------------------------------------------------------------------------------

const SOAK_KEYS: usize = 8;
const SOAK_WORKERS: usize = 4;
const SOAK_KILLS: usize = 3;

/// Possible states of one key: `None` is absent, `Some(i)` is body `i` of the pool. One element
/// when known; more after an operation whose outcome is unknown (in flight at a kill).
type KeyState = BTreeSet<Option<usize>>;

#[derive(Default, Clone)]
struct Stats {
    ops: u64,
    acknowledged: u64,
    unknown: u64,
    transport_errors_while_up: u64,
    reads_verified: u64,
    anomalies: Vec<String>,
}

struct Soak {
    bodies: Vec<Vec<u8>>,
    md5s: Vec<String>,
    keys: Vec<tokio::sync::Mutex<KeyState>>,
    stats: std::sync::Mutex<Stats>,
    stopping: AtomicBool,
}

fn soak_key(k: usize) -> String {
    format!("soak/k{k}")
}

impl Soak {
    fn new() -> Soak {
        let sizes = [0, 1, 777, 4096, 65_549, 300_000, MIB, 2 * MIB + 1];
        let bodies: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| bytes(n, 100 + i as u64))
            .collect();
        let md5s = bodies.iter().map(|b| md5_hex(b)).collect();
        Soak {
            bodies,
            md5s,
            keys: (0..SOAK_KEYS)
                .map(|_| tokio::sync::Mutex::new(BTreeSet::from([None])))
                .collect(),
            stats: Default::default(),
            stopping: AtomicBool::new(false),
        }
    }

    fn anomaly(&self, msg: String) {
        eprintln!("soak anomaly: {msg}");
        self.stats.lock().unwrap().anomalies.push(msg);
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap());
    }

    /// A failure without an HTTP answer: the outcome is unknown.
    fn unknown(&self) {
        let up = !self.stopping.load(Ordering::SeqCst);
        self.count(|s| {
            s.unknown += 1;
            if up {
                s.transport_errors_while_up += 1;
            }
        });
    }

    fn body_index(&self, body: &[u8]) -> Option<usize> {
        let m = md5_hex(body);
        self.md5s
            .iter()
            .position(|x| *x == m)
            .filter(|&i| self.bodies[i] == body)
    }

    fn etag_index(&self, etag: Option<&str>) -> Option<usize> {
        let etag = etag?.trim_matches('"');
        self.md5s.iter().position(|x| x == etag)
    }

    async fn put(&self, c: &Client, k: usize, v: usize) {
        let mut st = self.keys[k].lock().await;
        let r = c
            .put_object()
            .bucket(BUCKET)
            .key(soak_key(k))
            .body(ByteStream::from(self.bodies[v].clone()))
            .send()
            .await;
        match r {
            Ok(o) => {
                if self.etag_index(o.e_tag()) != Some(v) {
                    self.anomaly(format!(
                        "PUT {}: ETag {:?}, want {}",
                        soak_key(k),
                        o.e_tag(),
                        self.md5s[v]
                    ));
                }
                *st = BTreeSet::from([Some(v)]);
                self.count(|s| s.acknowledged += 1);
            }
            Err(e) => {
                if is_transport(&e) {
                    self.unknown();
                } else {
                    self.anomaly(format!("PUT {}: {}", soak_key(k), describe(&e)));
                }
                st.insert(Some(v));
            }
        }
    }

    /// GET and compare with the model; collapses the key's state to what was read.
    async fn get(&self, c: &Client, k: usize) {
        let mut st = self.keys[k].lock().await;
        self.get_locked(c, k, &mut st).await;
    }

    async fn get_locked(&self, c: &Client, k: usize, st: &mut KeyState) -> bool {
        let key = soak_key(k);
        match c.get_object().bucket(BUCKET).key(&key).send().await {
            Ok(o) => match o.body.collect().await {
                Ok(b) => {
                    let b = b.into_bytes();
                    match self.body_index(&b) {
                        Some(i) if st.contains(&Some(i)) => {
                            *st = BTreeSet::from([Some(i)]);
                            self.count(|s| {
                                s.acknowledged += 1;
                                s.reads_verified += 1;
                            });
                            true
                        }
                        _ => {
                            self.anomaly(format!(
                                "GET {key}: {} bytes, md5 {} (body {:?}); possible: {}",
                                b.len(),
                                md5_hex(&b),
                                self.body_index(&b),
                                self.show(st)
                            ));
                            false
                        }
                    }
                }
                Err(_) => {
                    self.unknown();
                    false
                }
            },
            Err(e) if !is_transport(&e) && code(&e) == "NoSuchKey" => {
                if st.contains(&None) {
                    *st = BTreeSet::from([None]);
                    self.count(|s| {
                        s.acknowledged += 1;
                        s.reads_verified += 1;
                    });
                    true
                } else {
                    self.anomaly(format!("GET {key}: NoSuchKey; possible: {}", self.show(st)));
                    false
                }
            }
            Err(e) if is_transport(&e) => {
                self.unknown();
                false
            }
            Err(e) => {
                self.anomaly(format!("GET {key}: {}", describe(&e)));
                false
            }
        }
    }

    async fn delete(&self, c: &Client, k: usize) {
        let mut st = self.keys[k].lock().await;
        match c
            .delete_object()
            .bucket(BUCKET)
            .key(soak_key(k))
            .send()
            .await
        {
            Ok(_) => {
                *st = BTreeSet::from([None]);
                self.count(|s| s.acknowledged += 1);
            }
            Err(e) => {
                if is_transport(&e) {
                    self.unknown();
                } else {
                    self.anomaly(format!("DELETE {}: {}", soak_key(k), describe(&e)));
                }
                st.insert(None);
            }
        }
    }

    async fn copy(&self, c: &Client, src: usize, dst: usize) {
        // Per-key locks in index order.
        let (lo, hi) = (src.min(dst), src.max(dst));
        let mut a = self.keys[lo].lock().await;
        let mut b = self.keys[hi].lock().await;
        let (s, d) = if src < dst {
            (&mut *a, &mut *b)
        } else {
            (&mut *b, &mut *a)
        };
        let r = c
            .copy_object()
            .bucket(BUCKET)
            .key(soak_key(dst))
            .copy_source(format!("{BUCKET}/{}", soak_key(src)))
            .send()
            .await;
        match r {
            Ok(o) => {
                let etag = o.copy_object_result().and_then(|r| r.e_tag());
                match self.etag_index(etag) {
                    Some(i) if s.contains(&Some(i)) => {
                        *s = BTreeSet::from([Some(i)]);
                        *d = BTreeSet::from([Some(i)]);
                        self.count(|s| s.acknowledged += 1);
                    }
                    _ => {
                        self.anomaly(format!(
                            "COPY {} -> {}: ETag {etag:?}; source possible: {}",
                            soak_key(src),
                            soak_key(dst),
                            self.show(s)
                        ));
                        let from: Vec<_> = s.iter().filter(|v| v.is_some()).copied().collect();
                        d.extend(from);
                    }
                }
            }
            Err(e) if !is_transport(&e) && code(&e) == "NoSuchKey" => {
                if s.contains(&None) {
                    *s = BTreeSet::from([None]);
                    self.count(|s| s.acknowledged += 1);
                } else {
                    self.anomaly(format!(
                        "COPY {} -> {}: NoSuchKey; source possible: {}",
                        soak_key(src),
                        soak_key(dst),
                        self.show(s)
                    ));
                }
            }
            Err(e) => {
                if is_transport(&e) {
                    self.unknown();
                } else {
                    self.anomaly(format!(
                        "COPY {} -> {}: {}",
                        soak_key(src),
                        soak_key(dst),
                        describe(&e)
                    ));
                }
                let from: Vec<_> = s.iter().filter(|v| v.is_some()).copied().collect();
                d.extend(from);
            }
        }
    }

    fn show(&self, st: &KeyState) -> String {
        let v: Vec<String> = st
            .iter()
            .map(|x| match x {
                None => "absent".to_owned(),
                Some(i) => format!("body {i} ({} bytes)", self.bodies[*i].len()),
            })
            .collect();
        v.join(" | ")
    }
}

async fn soak_worker(s: Arc<Soak>, c: Client, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let hard_stop = Instant::now() + Duration::from_secs(600);
    while !s.stopping.load(Ordering::SeqCst) && Instant::now() < hard_stop {
        let k = rng.random_range(0..SOAK_KEYS);
        match rng.random_range(0..100) {
            0..40 => {
                let v = rng.random_range(0..s.bodies.len());
                s.put(&c, k, v).await;
            }
            40..70 => s.get(&c, k).await,
            70..85 => s.delete(&c, k).await,
            _ => {
                let dst = (k + rng.random_range(1..SOAK_KEYS)) % SOAK_KEYS;
                s.copy(&c, k, dst).await;
            }
        }
        s.count(|st| st.ops += 1);
    }
}

async fn soak(db: Db) {
    use rand::{Rng, SeedableRng};
    let total = std::env::var("JS_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(20)
        .max(4);
    let seed = std::env::var("JS_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{db:?}: soak for {total} s, seed {seed} (JS_SOAK_SECS, JS_SOAK_SEED)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let phase = Duration::from_secs(total) / (SOAK_KILLS as u32 + 1);
    let env = Env::new(db).await;
    let s = Arc::new(Soak::new());
    // The collector runs every second with no grace, racing the writers for shared bodies.
    let server_env = [
        ("JUST_STORAGE_GC_GRACE_SECS", "0"),
        ("JUST_STORAGE_GC_INTERVAL_SECS", "1"),
    ];
    let mut kills = 0;
    let mut p = env.spawn(None, &server_env);
    create_bucket(&strict_client(p.addr)).await;
    for round in 0..=SOAK_KILLS {
        let c = strict_client(p.addr);
        s.stopping.store(false, Ordering::SeqCst);
        let workers: Vec<_> = (0..SOAK_WORKERS)
            .map(|w| {
                tokio::spawn(soak_worker(
                    s.clone(),
                    c.clone(),
                    seed ^ ((round * SOAK_WORKERS + w) as u64 + 1).wrapping_mul(0x9E37_79B9),
                ))
            })
            .collect();
        let last = round == SOAK_KILLS;
        let run = if last {
            phase
        } else {
            phase.mul_f64(rng.random_range(0.5..1.0))
        };
        tokio::time::sleep(run).await;
        if let Some(st) = p.child.try_wait().expect("try_wait") {
            s.anomaly(format!("round {round}: the server exited on its own: {st}"));
        }
        s.stopping.store(true, Ordering::SeqCst);
        if !last {
            p.child.kill().expect("kill -9");
            p.child.wait().expect("wait");
            kills += 1;
        }
        for w in workers {
            tokio::time::timeout(Duration::from_secs(120), w)
                .await
                .expect("soak worker stops within 120 s")
                .expect("soak worker");
        }
        {
            let st = s.stats.lock().unwrap();
            eprintln!(
                "{db:?}: soak round {round}: {:?}, {} ops so far, {} unknown outcomes",
                run, st.ops, st.unknown
            );
        }
        if !last {
            drop(p);
            p = env.spawn(None, &server_env);
        }
    }

    // Final check, server up: every key against the model, then gc, then again.
    let c = strict_client(p.addr);
    let mut present = BTreeSet::new();
    let mut verified = 0;
    for pass in ["before gc", "after gc"] {
        if pass == "after gc" {
            env.gc();
        }
        present.clear();
        for k in 0..SOAK_KEYS {
            let mut st = s.keys[k].lock().await;
            s.count(|st| st.ops += 1);
            if s.get_locked(&c, k, &mut st).await {
                verified += 1;
            } else {
                s.anomaly(format!("final GET {} ({pass}) failed", soak_key(k)));
            }
            if st.iter().any(Option::is_some) {
                present.insert(soak_key(k));
            }
        }
        let listed = list_keys(&c).await;
        if listed != present {
            s.anomaly(format!("listing {pass}: {listed:?}, model: {present:?}"));
        }
    }
    if let Some(st) = p.child.try_wait().expect("try_wait") {
        s.anomaly(format!("the server exited on its own: {st}"));
    }
    assert!(p.terminate().success(), "clean exit on SIGTERM");
    let st = s.stats.lock().unwrap().clone();
    eprintln!(
        "{db:?}: soak: {} operations ({} acknowledged, {} unknown outcome, {} transport errors \
         while up), {} reads verified, {kills} kills, {verified} final objects verified \
         ({} present), {} anomalies",
        st.ops,
        st.acknowledged,
        st.unknown,
        st.transport_errors_while_up,
        st.reads_verified,
        present.len(),
        st.anomalies.len()
    );
    assert_eq!(kills, SOAK_KILLS);
    assert!(st.ops >= 20, "the soak did too little: {} ops", st.ops);
    assert!(
        st.anomalies.is_empty(),
        "{} anomalies:\n  {}",
        st.anomalies.len(),
        st.anomalies.join("\n  ")
    );
    env.check_store().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_kill_restart_sqlite() {
    soak(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_kill_restart_postgres() {
    soak(Db::Postgres).await;
}
