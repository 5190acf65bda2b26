//! The real binary: bounded memory on a 1 GiB round trip, credentials kept across restarts,
//! graceful exit on SIGTERM, the reports of `admin`, `gc`, `scrub` and `fsck` (text and JSON).

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
    let proc = Proc::spawn_root(&dir.path().join("data"), url.as_deref(), &[]);
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

/// A data directory (and, for PostgreSQL, a scratch database) for the CLI tests.
struct Store {
    dir: tempfile::TempDir,
    pg: Option<PgDb>,
}

impl Store {
    async fn new(db: Db) -> Store {
        let pg = match db {
            Db::Sqlite => None,
            Db::Postgres => Some(PgDb::create().await),
        };
        Store {
            dir: tempfile::tempdir().expect("tempdir"),
            pg,
        }
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> Option<String> {
        self.pg.as_ref().map(PgDb::url)
    }

    /// `just-storage <args> --output json`: its exit status and output.
    fn run(&self, args: &[&str]) -> (bool, String) {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        cli(&self.data(), self.url().as_deref(), &all)
    }

    /// `run`, which must succeed, its output parsed.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let (ok, out) = self.run(args);
        assert!(ok, "{args:?}: {out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed {out:?}: {e}"))
    }
}

/// `admin`, `gc`, `scrub` and `fsck` print a readable report by default and one JSON document
/// with `--output json`, whose figures are what the store holds.
async fn reports_for_people_and_programs(db: Db) {
    let store = Store::new(db).await;
    let (data, url) = (store.data(), store.url());
    let url = url.as_deref();
    let json = |args: &[&str]| store.json(args);
    assert_eq!(
        json(&["admin", "tenant", "create", "acme"])["tenant"],
        "acme"
    );
    let key = json(&["admin", "key", "create", "--tenant", "acme"]);
    assert_eq!(key["read_only"], false);
    let (id, secret) = (
        key["access_key_id"].as_str().expect("key id"),
        key["secret_key"].as_str().expect("secret"),
    );

    let server = Proc::spawn(&data, url, &[]);
    let c = client(server.addr, id, secret);
    c.create_bucket()
        .bucket("reports")
        .send()
        .await
        .expect("bucket");
    let body = bytes(100_000, 7);
    c.put_object()
        .bucket("reports")
        .key("k")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put");
    let got = c.get_object().bucket("reports").key("k").send().await;
    let got = got.expect("get").body.collect().await.expect("body");
    assert_eq!(got.into_bytes().len(), body.len());
    c.delete_object()
        .bucket("reports")
        .key("gone")
        .send()
        .await
        .expect("delete");
    // A clean stop flushes the metering.
    assert!(server.terminate().success());

    // What the tenant did, by S3 pricing class: CreateBucket and PUT; GET; DELETE.
    let m = json(&["admin", "metering", "--tenant", "acme", "--by", "day"]);
    let rows = m.as_array().expect("metering rows");
    let class = |c: &str| {
        rows.iter()
            .find(|r| r["class"] == c)
            .unwrap_or_else(|| panic!("{c}: {m}"))
    };
    let put = class("put_copy_post_list");
    assert_eq!(
        (put["bucket"].as_str(), put["requests"].as_i64()),
        (Some("reports"), Some(2))
    );
    let received = put["bytes_received"].as_u64().expect("bytes");
    // The body, with aws-chunked framing and its trailing checksum.
    assert!((100_000..101_000).contains(&received), "{put}");
    let get = class("get_and_other");
    assert_eq!(get["requests"].as_i64(), Some(1));
    assert_eq!(get["bytes_sent"].as_u64(), Some(body.len() as u64));
    assert_eq!(class("delete")["requests"].as_i64(), Some(1));
    let (ok, text) = cli(&data, url, &["admin", "metering", "--tenant", "acme"]);
    assert!(ok && text.contains("put_copy_post_list"), "{text}");

    let usage = json(&["admin", "usage"]);
    let acme: Vec<&serde_json::Value> = (usage["buckets"].as_array().expect("rows").iter())
        .filter(|r| r["tenant"] == "acme")
        .collect();
    assert_eq!(acme.len(), 1, "{usage}");
    assert_eq!(
        (acme[0]["bucket"].as_str(), acme[0]["objects"].as_i64()),
        (Some("reports"), Some(1))
    );
    assert_eq!(acme[0]["bytes"].as_u64(), Some(body.len() as u64));
    let tenants = usage["tenants"].as_array().expect("tenant rows");
    let t = tenants
        .iter()
        .find(|t| t["tenant"] == "acme")
        .expect("acme");
    assert_eq!(t["physical_bytes"].as_u64(), Some(body.len() as u64), "{t}");
    assert_eq!(t["dedup_ratio"].as_f64(), Some(1.0), "{t}");

    let fsck = json(&["fsck"]);
    assert_eq!(
        (fsck["blob_rows"].as_u64(), fsck["blob_files"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        fsck["refcount_mismatches"].as_array().map(Vec::len),
        Some(0)
    );
    let scrub = json(&["scrub"]);
    assert_eq!(
        (scrub["checked"].as_u64(), scrub["corrupted"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(scrub["bytes"].as_u64(), Some(body.len() as u64));
    let gc = json(&["gc"]);
    assert_eq!(gc["orphan_files_adopted"].as_u64(), Some(0), "{gc}");
    assert_eq!(gc["blobs_removed"].as_u64(), Some(0), "{gc}");

    let (ok, text) = cli(&data, url, &["fsck"]);
    assert!(ok && text.trim_end().ends_with("fsck: clean"), "{text}");
    assert!(text.contains("blob rows: 1, blob files: 1"), "{text}");
    let (ok, text) = cli(&data, url, &["scrub"]);
    assert!(ok && text.contains("1 blobs checked"), "{text}");
    let (ok, text) = cli(&data, url, &["admin", "usage"]);
    assert!(ok && text.lines().any(|l| l.starts_with("acme ")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_for_people_and_programs_sqlite() {
    reports_for_people_and_programs(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_for_people_and_programs_postgres() {
    reports_for_people_and_programs(Db::Postgres).await;
}

/// What a key may do now: `Ok` if it may list the bucket, else the status and error code.
async fn key_works(
    addr: std::net::SocketAddr,
    id: &str,
    secret: &str,
    bucket: &str,
) -> Result<(), String> {
    let c = client(addr, id, secret);
    match c.list_objects_v2().bucket(bucket).max_keys(1).send().await {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{} {}", status(&e), code(&e))),
    }
}

/// Polls `key_works` every 50 ms until it answers `want`, at most 1 s (a server drops cached
/// keys within 0.1 s of a key losing its rights); panics otherwise.
async fn key_turns(addr: std::net::SocketAddr, id: &str, secret: &str, bucket: &str, want: bool) {
    for _ in 0..20 {
        if key_works(addr, id, secret, bucket).await.is_ok() == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("key {id} did not turn {want} within 1 s");
}

/// The tenant and key lifecycle through the CLI while `serve` runs: keys listed without secrets,
/// disabled and enabled, an expiring key refused from its expiry on, a tenant shown, its delete
/// refused while it owns buckets and done by `--force` through the normal deletes (fsck clean
/// after), and the root tenant kept.
async fn tenants_and_keys_from_the_cli(db: Db) {
    let store = Store::new(db).await;
    let (data, url) = (store.data(), store.url());
    let url = url.as_deref();
    let run = |args: &[&str]| store.run(args);
    let json = |args: &[&str]| store.json(args);
    let server = Proc::spawn(&data, url, &[]);
    json(&["admin", "tenant", "create", "acme"]);
    let rw = json(&["admin", "key", "create", "--tenant", "acme"]);
    let expiring = json(&[
        "admin",
        "key",
        "create",
        "--tenant",
        "acme",
        "--read-only",
        "--expires",
        "4s",
    ]);
    let id = |k: &serde_json::Value| k["access_key_id"].as_str().expect("id").to_owned();
    let secret = |k: &serde_json::Value| k["secret_key"].as_str().expect("secret").to_owned();
    let (rw_id, rw_secret) = (id(&rw), secret(&rw));
    let (ro_id, ro_secret) = (id(&expiring), secret(&expiring));
    let expires_at = expiring["expires_at"].as_i64().expect("expires_at");

    let c = client(server.addr, &rw_id, &rw_secret);
    c.create_bucket()
        .bucket("acme-data")
        .send()
        .await
        .expect("bucket");
    for key in ["a", "b"] {
        let body = ByteStream::from_static(b"tenant data");
        c.put_object()
            .bucket("acme-data")
            .key(key)
            .body(body)
            .send()
            .await
            .expect("put");
    }
    assert_eq!(
        key_works(server.addr, &ro_id, &ro_secret, "acme-data").await,
        Ok(())
    );

    let (ok, listed) = run(&["admin", "key", "list", "--tenant", "acme"]);
    assert!(
        ok && !listed.contains(&rw_secret) && !listed.contains("secret"),
        "{listed}"
    );
    let keys: Vec<serde_json::Value> = serde_json::from_str(&listed).expect("key list");
    assert_eq!(keys.len(), 2, "{listed}");
    let ro = keys
        .iter()
        .find(|k| k["access_key_id"] == ro_id.as_str())
        .expect("ro key");
    assert_eq!(
        (ro["read_only"].as_bool(), ro["expires_at"].as_i64()),
        (Some(true), Some(expires_at))
    );

    json(&["admin", "key", "disable", &rw_id]);
    key_turns(server.addr, &rw_id, &rw_secret, "acme-data", false).await;
    assert_eq!(
        key_works(server.addr, &rw_id, &rw_secret, "acme-data").await,
        Err("403 InvalidAccessKeyId".to_owned())
    );
    json(&["admin", "key", "enable", &rw_id]);
    key_turns(server.addr, &rw_id, &rw_secret, "acme-data", true).await;

    // Expiry is checked on every use: refused from the first request after it.
    let wait = expires_at - just_storage::now_micros();
    tokio::time::sleep(std::time::Duration::from_micros(
        wait.max(0) as u64 + 50_000,
    ))
    .await;
    assert_eq!(
        key_works(server.addr, &ro_id, &ro_secret, "acme-data").await,
        Err("403 InvalidAccessKeyId".to_owned())
    );

    let shown = json(&["admin", "tenant", "show", "acme"]);
    assert_eq!(
        shown["buckets"],
        serde_json::json!(["acme-data"]),
        "{shown}"
    );
    assert_eq!(shown["keys"].as_array().map(Vec::len), Some(2), "{shown}");
    let buckets = json(&["admin", "bucket", "list", "--tenant", "acme"]);
    assert_eq!(buckets.as_array().map(Vec::len), Some(1), "{buckets}");
    let usage = json(&["admin", "usage", "--tenant", "acme"]);
    assert_eq!(usage["buckets"][0]["objects"].as_i64(), Some(2), "{usage}");
    // The same 11 bytes twice: stored once.
    assert_eq!(
        usage["tenants"][0]["dedup_ratio"].as_f64(),
        Some(2.0),
        "{usage}"
    );

    let (ok, refused) = run(&["admin", "tenant", "delete", "acme"]);
    assert!(!ok, "a tenant with buckets is not deleted: {refused}");
    assert_eq!(
        key_works(server.addr, &rw_id, &rw_secret, "acme-data").await,
        Ok(())
    );
    let gone = json(&["admin", "tenant", "delete", "acme", "--force"]);
    assert_eq!(gone["objects_deleted"].as_u64(), Some(2), "{gone}");
    let tenants = json(&["admin", "tenant", "list"]);
    let names: Vec<&str> = tenants
        .as_array()
        .expect("tenants")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["root"], "{tenants}");
    key_turns(server.addr, &rw_id, &rw_secret, "acme-data", false).await;
    let (ok, root) = run(&["admin", "tenant", "delete", "root", "--force"]);
    assert!(!ok, "the root tenant stays: {root}");
    // Names that match nothing, and an expiry already past, are refused, and change nothing.
    for bad in [
        &["admin", "key", "disable", "JSNOSUCHKEY0000000000"][..],
        &["admin", "key", "delete", "JSNOSUCHKEY0000000000"],
        &["admin", "tenant", "show", "acme"],
        &["admin", "tenant", "delete", "acme"],
        &["admin", "key", "create", "--tenant", "acme"],
        &[
            "admin",
            "key",
            "create",
            "--tenant",
            "root",
            "--expires",
            "2020-01-01T00:00:00Z",
        ],
        &[
            "admin",
            "key",
            "create",
            "--tenant",
            "root",
            "--expires",
            "-5m",
        ],
    ] {
        let (ok, out) = run(bad);
        assert!(!ok, "{bad:?} succeeded: {out}");
    }
    assert_eq!(
        json(&["admin", "key", "list", "--tenant", "root"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert!(server.terminate().success());
    let fsck = json(&["fsck"]);
    assert_eq!(
        fsck["refcount_mismatches"].as_array().map(Vec::len),
        Some(0),
        "{fsck}"
    );
    assert_eq!(
        fsck["files_without_row"].as_array().map(Vec::len),
        Some(0),
        "{fsck}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_keys_from_the_cli_sqlite() {
    tenants_and_keys_from_the_cli(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_keys_from_the_cli_postgres() {
    tenants_and_keys_from_the_cli(Db::Postgres).await;
}

/// `--log-format json`: one line per S3 request with its id, tenant, operation, bucket,
/// status, bytes and duration, matching what the client saw; no key, signature or secret.
async fn one_json_line_per_request(db: Db) {
    let store = Store::new(db).await;
    let (data, url) = (store.data(), store.url());
    let log = store.dir.path().join("server.log");
    let file = std::fs::File::create(&log).expect("log file");
    let env = [
        ("RUST_LOG", "info"),
        ("JUST_STORAGE_LOG_FORMAT", "json"),
        ("JUST_STORAGE_ROOT_ACCESS_KEY", "JSLOGTESTKEY00000000"),
        (
            "JUST_STORAGE_ROOT_SECRET_KEY",
            "logtestsecretlogtestsecretlogtestsecret0",
        ),
    ];
    let server = Proc::spawn_logging(&data, url.as_deref(), &env, file.into());
    let c = client(server.addr, env[2].1, env[3].1);
    c.create_bucket()
        .bucket("logged")
        .send()
        .await
        .expect("bucket");
    let put = c
        .put_object()
        .bucket("logged")
        .key("k")
        .body(ByteStream::from(bytes(5000, 1)))
        .send()
        .await
        .expect("put");
    let get = c
        .get_object()
        .bucket("logged")
        .key("k")
        .send()
        .await
        .expect("get");
    let got = get.body.collect().await.expect("body").into_bytes();
    assert_eq!(got.len(), 5000);
    let missing = c.get_object().bucket("logged").key("nope").send().await;
    assert_eq!(missing.err().map(|e| status(&e)), Some(404));
    let presigned = c
        .get_object()
        .bucket("logged")
        .key("k")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                60,
            ))
            .expect("presign"),
        )
        .await
        .expect("presigned");
    assert_eq!(fetch(server.addr, presigned.uri()).await.status, 200);
    assert!(server.terminate().success());
    drop(put);

    let text = std::fs::read_to_string(&log).expect("read log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let access: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["target"] == "access").collect();
    assert_eq!(access.len(), 5, "{text}");
    let f = |i: usize, k: &str| access[i]["fields"][k].clone();
    let ops: Vec<String> = (0..5)
        .map(|i| f(i, "operation").as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        ops,
        [
            "CreateBucket",
            "PutObject",
            "GetObject",
            "GetObject",
            "GetObject"
        ]
    );
    let statuses: Vec<u64> = (0..5)
        .map(|i| f(i, "status").as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [200, 200, 200, 404, 200]);
    assert_eq!(f(1, "bucket"), "logged");
    assert!(f(1, "bytes_in").as_u64().expect("bytes_in") >= 5000);
    assert_eq!(f(2, "bytes_out").as_u64(), Some(5000));
    assert!(f(2, "duration_ms").as_f64().is_some());
    assert_eq!(f(0, "request_id").as_str().map(str::len), Some(32));
    assert!(!f(0, "tenant").as_str().unwrap_or("").is_empty());
    // Never the key, its secret, or a signature.
    for secret in [env[2].1, env[3].1, "Signature", "X-Amz-Credential"] {
        assert!(!text.contains(secret), "{secret} in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_json_line_per_request_sqlite() {
    one_json_line_per_request(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_json_line_per_request_postgres() {
    one_json_line_per_request(Db::Postgres).await;
}
