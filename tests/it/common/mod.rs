//! Test harness: a real server (in-process, port 0) on SQLite or a fresh PostgreSQL database,
//! driven by `aws-sdk-s3`. `both_dbs!(scenario)` runs `async fn scenario(&TestServer)` on both.
#![allow(dead_code)]

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use just_storage::config::{Config, ServeArgs};
use just_storage::server::Running;
use std::path::{Path, PathBuf};

pub const ROOT_KEY: &str = "JSTESTROOTKEY0000000";
pub const ROOT_SECRET: &str = "test-root-secret-0000000000000000000000";
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A PostgreSQL database that exists for one test and is dropped even if the test panics.
pub struct PgDb {
    pub name: String,
}

impl PgDb {
    pub async fn create() -> PgDb {
        use sqlx::Connection;
        let name = format!("js_test_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(PG_ADMIN_URL)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 (start it with pg_ctlcluster)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .expect("create test database");
        PgDb { name }
    }

    pub fn url(&self) -> String {
        self.url_via(5432)
    }

    /// The database's URL through another port (e.g. a test proxy in front of PostgreSQL).
    pub fn url_via(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{}", self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime (or while unwinding); use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                    let q = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(q)).execute(&mut c).await;
                }
            });
        })
        .join();
    }
}

/// Settings a test may change before the server starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub gc_grace_secs: u64,
    /// Long by default: tests run the collector themselves with `gc_once`.
    pub gc_interval_secs: u64,
    pub orphan_age_secs: u64,
    pub upload_max_age_secs: u64,
    /// Reach PostgreSQL through this port instead of 5432.
    pub pg_port: Option<u16>,
    pub enforce_region: bool,
    pub domains: Vec<String>,
    /// `None`: the server's default.
    pub inline_max_bytes: Option<usize>,
    /// Connection timeouts in seconds (`None`: the server's defaults).
    pub head_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub body_timeout_secs: Option<u64>,
    /// Start the admin API (on a port of its own).
    pub admin_api: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            gc_grace_secs: 300,
            gc_interval_secs: 3600,
            orphan_age_secs: 3600,
            upload_max_age_secs: 7 * 86400,
            pg_port: None,
            enforce_region: false,
            domains: Vec::new(),
            inline_max_bytes: None,
            head_timeout_secs: None,
            idle_timeout_secs: None,
            body_timeout_secs: None,
            admin_api: false,
        }
    }
}

pub struct TestServer {
    pub db: Db,
    pub running: Option<Running>,
    pub client: Client,
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub pg: Option<PgDb>,
}

impl TestServer {
    pub async fn start(db: Db) -> TestServer {
        Self::start_with(db, Options::default()).await
    }

    pub async fn start_with(db: Db, opts: Options) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let pg = match db {
            Db::Sqlite => None,
            Db::Postgres => Some(PgDb::create().await),
        };
        let args = ServeArgs {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().join("data")),
            database_url: pg.as_ref().map(|p| p.url_via(opts.pg_port.unwrap_or(5432))),
            gc_grace_secs: Some(opts.gc_grace_secs),
            gc_interval_secs: Some(opts.gc_interval_secs),
            orphan_age_secs: Some(opts.orphan_age_secs),
            upload_max_age_secs: Some(opts.upload_max_age_secs),
            enforce_region: opts.enforce_region,
            domain: opts.domains.clone(),
            inline_max_bytes: opts.inline_max_bytes,
            head_timeout_secs: opts.head_timeout_secs,
            idle_timeout_secs: opts.idle_timeout_secs,
            body_timeout_secs: opts.body_timeout_secs,
            admin_listen: opts.admin_api.then(|| "127.0.0.1:0".to_owned()),
            root_access_key: Some(ROOT_KEY.into()),
            root_secret_key: Some(ROOT_SECRET.into()),
            ..Default::default()
        };
        let config = Config::from_args(args).expect("config");
        let running = just_storage::server::start(&config)
            .await
            .expect("server starts");
        let client = client(running.addr, ROOT_KEY, ROOT_SECRET);
        TestServer {
            db,
            running: Some(running),
            client,
            dir,
            config,
            pg,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("server running")
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.running().addr
    }

    pub fn engine(&self) -> &just_storage::engine::Engine {
        &self.running().engine
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A root client with a given request checksum behaviour.
    pub fn client_with_checksums(
        &self,
        mode: aws_sdk_s3::config::RequestChecksumCalculation,
    ) -> Client {
        let conf = self
            .client
            .config()
            .to_builder()
            .request_checksum_calculation(mode)
            .build();
        Client::from_conf(conf)
    }

    /// A client for another key of this server.
    pub fn client_for(&self, key: &str, secret: &str) -> Client {
        client(self.addr(), key, secret)
    }

    /// A new tenant with one key; returns its client.
    pub async fn tenant_client(&self, tenant: &str, read_only: bool) -> Client {
        let e = self.engine();
        if e.meta()
            .tenant_id(tenant)
            .await
            .expect("tenant lookup")
            .is_none()
        {
            e.create_tenant(tenant).await.expect("create tenant");
        }
        let (k, s) = e
            .create_key(tenant, read_only, None)
            .await
            .expect("create key");
        self.client_for(&k, &s)
    }

    /// Runs the orphan sweep and collector once with the given grace (seconds).
    pub async fn gc(&self, grace_secs: u64) -> just_storage::workers::GcReport {
        let mut cfg = self.config.gc.clone();
        cfg.grace = std::time::Duration::from_secs(grace_secs);
        just_storage::workers::gc_once(self.engine(), &cfg)
            .await
            .expect("gc run")
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

pub fn client(addr: std::net::SocketAddr, key: &str, secret: &str) -> Client {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(Credentials::new(key, secret, None, None, "test"))
        .force_path_style(true)
        .http_client(http)
        .build();
    Client::from_conf(conf)
}

/// A multipart upload of `parts` (in order) to `bucket/key`, completed; each step must succeed.
pub async fn multipart_put(c: &Client, bucket: &str, key: &str, parts: &[Vec<u8>]) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let up = (c.create_multipart_upload().bucket(bucket).key(key).send())
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id");
    let mut done = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let n = i32::try_from(i + 1).expect("part number");
        let r = c
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(aws_sdk_s3::primitives::ByteStream::from(body.clone()))
            .send()
            .await
            .expect("upload part");
        let etag = r.e_tag().expect("part etag");
        done.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
    }
    let all = CompletedMultipartUpload::builder()
        .set_parts(Some(done))
        .build();
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(all)
        .send()
        .await
        .expect("complete upload");
}

/// Total bytes of regular files under `p`.
pub fn du(p: &Path) -> u64 {
    let mut total = 0;
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            total += du(&e.path());
        } else {
            total += m.len();
        }
    }
    total
}

/// Blob files under a tier's `sha256/` tree.
pub fn blob_files(tier_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(tier_dir.join("sha256")) else {
        return out;
    };
    for fan in rd.flatten() {
        if let Ok(files) = std::fs::read_dir(fan.path()) {
            out.extend(files.flatten().map(|f| f.path()));
        }
    }
    out
}

/// Deterministic pseudo-random bytes (xorshift), so bodies differ per seed.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(b))
}

/// The S3 error code of an SDK error (e.g. "NoSuchKey").
pub fn code<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!("not a service error: {e:?}")
                .chars()
                .take(300)
                .collect()
        })
}

/// HTTP status of an SDK error.
pub fn status<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> u16 {
    e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Runs `async fn $name(&TestServer)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both_dbs {
    ($name:ident) => {
        $crate::both_dbs!($name, $crate::common::Options::default());
    };
    ($name:ident, $opts:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let s =
                    $crate::common::TestServer::start_with($crate::common::Db::Sqlite, $opts).await;
                super::$name(&s).await;
                s.stop().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let s = $crate::common::TestServer::start_with($crate::common::Db::Postgres, $opts)
                    .await;
                super::$name(&s).await;
                s.stop().await;
            }
        }
    };
}

/// A raw HTTP/1.1 response: status, headers (lower-case names) and body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends a SigV4-signed request over a plain socket, declaring `payload_hash` as the body's
/// `x-amz-content-sha256` (so tests can lie about it). The server closes after answering.
pub async fn signed_raw(
    addr: std::net::SocketAddr,
    method: &str,
    path_and_query: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    payload_hash: &str,
) -> RawResponse {
    let mut extra = extra_headers.to_vec();
    extra.push(("connection", "close"));
    let len = body.len().to_string();
    let mut bytes =
        signed_head(addr, method, path_and_query, &extra, &len, payload_hash).into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes).await
}

/// The SigV4-signed head of a request (up to and including the blank line), declaring
/// `content_length` and `payload_hash`; `connection` and `expect` headers are sent unsigned.
pub fn signed_head(
    addr: std::net::SocketAddr,
    method: &str,
    path_and_query: &str,
    extra_headers: &[(&str, &str)],
    content_length: &str,
    payload_hash: &str,
) -> String {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let unsigned = |k: &str| k == "connection" || k == "expect";
    let host = addr.to_string();
    // A `host` in `extra_headers` replaces the socket address (virtual-hosted style).
    let host = extra_headers
        .iter()
        .find(|(k, _)| *k == "host")
        .map_or(host, |(_, v)| (*v).to_owned());
    let url = format!("http://{host}{path_and_query}");
    let mut headers: Vec<(&str, &str)> = vec![
        ("host", host.as_str()),
        ("content-length", content_length),
        ("x-amz-content-sha256", payload_hash),
    ];
    headers.extend(
        extra_headers
            .iter()
            .filter(|(k, _)| *k != "host" && !unsigned(k)),
    );
    let identity =
        aws_credential_types::Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "t").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        method,
        url.as_str(),
        headers.iter().copied(),
        SignableBody::Precomputed(payload_hash.to_owned()),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut req = http::Request::builder().method(method).uri(&url);
    for (k, v) in &headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(()).expect("request");
    instructions.apply_to_request_http1x(&mut req);

    let mut text = format!("{method} {path_and_query} HTTP/1.1\r\n");
    for (k, v) in req.headers() {
        text.push_str(&format!("{}: {}\r\n", k, v.to_str().expect("ascii header")));
    }
    for (k, v) in extra_headers.iter().filter(|(k, _)| unsigned(k)) {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    text
}

/// Writes `request` as is and reads the whole response (the request must ask to close).
/// An unsigned request (no Authorization, no query signature) with a body.
pub async fn anon(s: &TestServer, method: &str, path: &str, body: &[u8]) -> RawResponse {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        s.addr(),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw(s.addr(), &req).await
}

/// PutObject of `body`; the version id (`null` when the bucket is not versioned).
pub async fn put_bytes(c: &Client, bucket: &str, key: &str, body: &'static [u8]) -> String {
    let out = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(body))
        .send()
        .await
        .expect("put");
    out.version_id().unwrap_or("null").to_owned()
}

/// An unsigned GET of a (presigned) URL on this server.
pub async fn fetch(addr: std::net::SocketAddr, url: &str) -> RawResponse {
    let path = url
        .split_once(&addr.to_string())
        .map(|(_, p)| p)
        .expect("url on server");
    let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    raw(addr, req.as_bytes()).await
}

pub async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    sock.write_all(request).await.expect("write request");
    let mut buf = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        sock.read_to_end(&mut buf),
    )
    .await
    .expect("response within 30 s")
    .expect("read");
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// The real binary in its own process (for RSS, restarts and signals).
pub struct Proc {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    /// stdout lines printed before "listening".
    pub banner: Vec<String>,
}

impl Proc {
    /// Starts `just-storage serve` on `127.0.0.1:0`; `env` are extra environment variables.
    pub fn spawn(data_dir: &Path, database_url: Option<&str>, env: &[(&str, &str)]) -> Proc {
        Self::spawn_logging(data_dir, database_url, env, std::process::Stdio::inherit())
    }

    /// `spawn` with the test root key (`ROOT_KEY`, `ROOT_SECRET`) and the `extra` variables.
    pub fn spawn_root(data_dir: &Path, database_url: Option<&str>, extra: &[(&str, &str)]) -> Proc {
        let mut env = vec![
            ("JUST_STORAGE_ROOT_ACCESS_KEY", ROOT_KEY),
            ("JUST_STORAGE_ROOT_SECRET_KEY", ROOT_SECRET),
        ];
        env.extend_from_slice(extra);
        Self::spawn(data_dir, database_url, &env)
    }

    /// `spawn`, its log lines (stderr) going to `stderr`.
    // The child is reaped by `Drop` (kill + wait) or `terminate`.
    #[allow(clippy::zombie_processes)]
    pub fn spawn_logging(
        data_dir: &Path,
        database_url: Option<&str>,
        env: &[(&str, &str)],
        stderr: std::process::Stdio,
    ) -> Proc {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_just-storage"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .env_remove("JUST_STORAGE_ROOT_ACCESS_KEY")
            .env_remove("JUST_STORAGE_ROOT_SECRET_KEY")
            .stdout(std::process::Stdio::piped())
            .stderr(stderr);
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn just-storage");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        loop {
            let line = rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("server printed its address within 30 s");
            let listening = line
                .strip_prefix("JustStorage listening on http://")
                .or_else(|| line.strip_prefix("JustStorage listening on https://"));
            if let Some(addr) = listening {
                let addr = addr.trim().parse().expect("address");
                return Proc {
                    child,
                    addr,
                    banner,
                };
            }
            banner.push(line);
        }
    }

    /// Peak resident set size (VmHWM) in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmHWM");
        kb * 1024
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        for _ in 0..300 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("server did not exit within 15 s of SIGTERM");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The root credentials a first start printed.
pub fn printed_root(banner: &[String]) -> Option<(String, String)> {
    let find = |p: &str| {
        banner
            .iter()
            .find_map(|l| l.strip_prefix(p).map(|s| s.trim().to_owned()))
    };
    Some((find("root access key:")?, find("root secret key:")?))
}

/// fsck-style check: every blob's ref_count equals the references to it, and the usage
/// figures kept with every commit equal a recount.
pub async fn assert_refcounts(s: &TestServer) {
    let meta = s.engine().meta();
    let bad = meta.refcount_mismatches().await.expect("refcount query");
    assert!(bad.is_empty(), "ref_count mismatches: {bad:?}");
    let usage = meta.check_usage(false).await.expect("usage check");
    assert!(usage.is_clean(), "usage drifted: {usage:?}");
}

/// Runs a command to completion, killing it (and failing) after `limit`.
pub fn run_bounded(
    mut cmd: std::process::Command,
    limit: std::time::Duration,
) -> std::process::Output {
    use std::process::Stdio;
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn command");
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("command output"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
            panic!("command did not finish within {limit:?}: {cmd:?}");
        }
    }
}

/// `just-storage <command> <store flags> <rest>` on the store in `data_dir` (and PostgreSQL at
/// `database_url`), to completion within 60 s: its exit status and standard output.
pub fn cli(data_dir: &Path, database_url: Option<&str>, args: &[&str]) -> (bool, String) {
    let (command, rest) = args.split_first().expect("a command");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_just-storage"));
    cmd.arg(command)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .env_remove("JUST_STORAGE_FAULT")
        .env_remove("JUST_STORAGE_DATABASE_URL")
        .env_remove("JUST_STORAGE_CONFIG");
    if let Some(url) = database_url {
        cmd.arg("--database-url").arg(url);
    }
    cmd.args(rest);
    let out = tokio::task::block_in_place(|| run_bounded(cmd, std::time::Duration::from_secs(60)));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), stdout)
}

/// Runs `sql` on the server's database directly (to damage what a test then checks is found).
pub async fn exec_sql(s: &TestServer, sql: &str) {
    match &s.pg {
        Some(pg) => {
            let pool = sqlx::PgPool::connect(&pg.url()).await.expect("connect");
            let owned = sql.to_owned();
            sqlx::raw_sql(sqlx::AssertSqlSafe(owned))
                .execute(&pool)
                .await
                .expect("exec");
            pool.close().await;
        }
        None => {
            let path = s.data_dir().join("meta.db");
            let c = rusqlite::Connection::open(path).expect("open SQLite");
            c.busy_timeout(std::time::Duration::from_secs(10))
                .expect("busy timeout");
            c.execute_batch(sql).expect(sql);
        }
    }
}

/// The first column of every row of `sql` on the server's database, as text (for EXPLAIN).
pub async fn query_text(s: &TestServer, sql: &str) -> Vec<String> {
    match &s.pg {
        Some(pg) => {
            let pool = sqlx::PgPool::connect(&pg.url()).await.expect("connect");
            let owned = sql.to_owned();
            let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(owned))
                .fetch_all(&pool)
                .await
                .expect("query");
            pool.close().await;
            rows.into_iter().map(|r| r.0).collect()
        }
        None => {
            let path = s.data_dir().join("meta.db");
            let c = rusqlite::Connection::open(path).expect("open SQLite");
            let mut stmt = c.prepare(sql).expect("prepare");
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    let cols: Vec<String> = (0..n)
                        .map(|i| match r.get_ref(i) {
                            Ok(rusqlite::types::ValueRef::Text(t)) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                            Ok(rusqlite::types::ValueRef::Integer(v)) => v.to_string(),
                            _ => String::new(),
                        })
                        .collect();
                    Ok(cols.join(" "))
                })
                .expect("query");
            rows.map(|r| r.expect("row")).collect()
        }
    }
}

/// A call of the admin API: status, JSON body (`Null` if none or not JSON), headers.
pub async fn admin_call(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value, RawResponse) {
    let addr = s.running().admin_addr.expect("admin API started");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw(addr, req.as_bytes()).await;
    let v = serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, v, r)
}
