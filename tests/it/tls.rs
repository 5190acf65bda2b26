//! TLS on the S3 listener, with the real binary: the SDK over https against a test CA (its
//! default uploads with trailing checksums, multipart), `aws:SecureTransport` in a bucket policy,
//! and certificate reloads on SIGHUP while clients keep working.

use crate::common::*;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A CA and the files of the server certificate it signed.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "JustStorage test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert");
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// Writes a fresh server certificate (new key) for 127.0.0.1 and localhost to `cert` and
    /// `key`; returns its DER.
    fn issue(&self, cert: &Path, key: &Path, name: &str) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let k = rcgen::KeyPair::generate().expect("server key");
        let c = params.signed_by(&k, &self.issuer).expect("sign");
        // Written beside and renamed, as a certificate manager replaces files.
        write_atomic(cert, c.pem().as_bytes());
        write_atomic(key, k.serialize_pem().as_bytes());
        c.der().to_vec()
    }
}

fn write_atomic(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, data).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn https_client(addr: std::net::SocketAddr, ca_pem: &str) -> Client {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let trust = TrustStore::empty().with_pem_certificate(ca_pem.as_bytes());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .expect("TLS context"),
        )
        .build_https();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("https://{addr}"))
        .credentials_provider(Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "test"))
        .force_path_style(true)
        .http_client(http)
        .build();
    Client::from_conf(conf)
}

/// A new TLS connection to `addr`, its certificate checked against the CA (HTTP/1.1 by ALPN).
async fn tls_connect(
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA pem"))
        .expect("root");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .expect("handshake within 10 s")
        .expect("handshake")
}

/// The certificate a new handshake is shown (DER), checked against the CA.
async fn presented(addr: std::net::SocketAddr, ca_pem: &str) -> Vec<u8> {
    let tls = tls_connect(addr, ca_pem).await;
    tls.get_ref().1.peer_certificates().expect("certificates")[0].to_vec()
}

/// `request` (which must ask to close) over TLS; the whole response.
async fn https_raw(addr: std::net::SocketAddr, ca_pem: &str, request: &str) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_connect(addr, ca_pem).await;
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf)).await;
    // A peer that closes without close_notify still gave us the whole response.
    let _ = read.expect("response within 10 s");
    parse_response(&buf)
}

/// The status of a plain-HTTP `request`, if any answer came (a TLS port may reset instead).
async fn plain_status(addr: std::net::SocketAddr, request: &[u8]) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.ok()?;
    sock.write_all(request).await.ok()?;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut buf)).await;
    read.expect("the server answers or closes within 10 s")
        .ok()?;
    Some(parse_response(&buf).status)
}

struct Files {
    dir: tempfile::TempDir,
    pg: Option<PgDb>,
    cert: PathBuf,
    key: PathBuf,
}

async fn files(db: Db) -> Files {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(PgDb::create().await),
    };
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    Files { dir, pg, cert, key }
}

fn spawn(f: &Files) -> Proc {
    let url = f.pg.as_ref().map(PgDb::url);
    let (cert, key) = (f.cert.to_string_lossy(), f.key.to_string_lossy());
    Proc::spawn_root(
        &f.dir.path().join("data"),
        url.as_deref(),
        &[
            ("JUST_STORAGE_TLS_CERT", &cert),
            ("JUST_STORAGE_TLS_KEY", &key),
            ("JUST_STORAGE_ADMIN_LISTEN", "127.0.0.1:0"),
        ],
    )
}

/// The admin API's address, from the banner.
fn admin_addr(p: &Proc) -> std::net::SocketAddr {
    p.banner
        .iter()
        .find_map(|l| l.strip_prefix("admin API on https://"))
        .expect("the admin API listens over https")
        .trim()
        .parse()
        .expect("address")
}

fn hangup(p: &Proc) {
    let st = std::process::Command::new("kill")
        .args(["-HUP", &p.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

/// Polls (bounded) until new handshakes are shown `want`.
async fn await_certificate(addr: std::net::SocketAddr, ca: &str, want: &[u8]) {
    for _ in 0..100 {
        if presented(addr, ca).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the reloaded certificate was not presented within 5 s");
}

async fn https_round_trips(db: Db) {
    let ca = TestCa::new();
    let f = files(db).await;
    let first = ca.issue(&f.cert, &f.key, "first");
    let p = spawn(&f);
    assert_eq!(presented(p.addr, &ca.pem).await, first);
    let c = https_client(p.addr, &ca.pem);
    c.create_bucket()
        .bucket("tls")
        .send()
        .await
        .expect("create");

    // The SDK's default PUT over https: an unsigned aws-chunked body with a trailing checksum.
    let body = bytes(3 << 20, 7);
    let put = c
        .put_object()
        .bucket("tls")
        .key("big")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put over https");
    assert_eq!(
        put.e_tag(),
        Some(format!("\"{}\"", md5_hex(&body)).as_str())
    );
    let got = c
        .get_object()
        .bucket("tls")
        .key("big")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("get");
    let data = got.body.collect().await.expect("body").into_bytes();
    assert!(data[..] == body[..], "GET over https returns the body");

    // Multipart over https.
    multipart_put(&c, "tls", "mp", &[bytes(5 << 20, 1), bytes(5 << 20, 2)]).await;
    let head = c
        .head_object()
        .bucket("tls")
        .key("mp")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(10 << 20));

    // The usual "TLS only" policy: denies anything that is not over TLS. Over https it must
    // let the owner's requests through (`aws:SecureTransport` is true here).
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::tls","arn:aws:s3:::tls/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
    c.put_bucket_policy()
        .bucket("tls")
        .policy(policy)
        .send()
        .await
        .expect("put policy");
    c.get_object()
        .bucket("tls")
        .key("big")
        .send()
        .await
        .expect("GET over https under a TLS-only policy");
    // Its opposite denies every request made over TLS.
    let deny_tls = policy.replace("\"false\"", "\"true\"");
    c.put_bucket_policy()
        .bucket("tls")
        .policy(deny_tls)
        .send()
        .await
        .expect("put policy");
    let e = c
        .get_object()
        .bucket("tls")
        .key("big")
        .send()
        .await
        .expect_err("denied over TLS");
    assert_eq!(code(&e), "AccessDenied");

    // The admin API presents the same certificate; its bearer token never crosses in clear.
    let admin = admin_addr(&p);
    let url = f.pg.as_ref().map(PgDb::url);
    let data = f.dir.path().join("data");
    let args = [
        "admin", "token", "create", "--name", "ops", "--output", "json",
    ];
    let (ok, out) = cli(&data, url.as_deref(), &args);
    assert!(ok, "{out}");
    let token: serde_json::Value = serde_json::from_str(&out).expect("json");
    let token = token["token"].as_str().expect("token");
    let call = format!(
        "GET /v1/tenants HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    let r = https_raw(admin, &ca.pem, &call).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("root"), "{}", r.body);
    assert_ne!(
        plain_status(admin, call.as_bytes()).await,
        Some(200),
        "plain HTTP is not served on the admin port"
    );

    // Plain HTTP to the TLS port gets no S3 answer.
    assert_ne!(
        plain_status(
            p.addr,
            b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .await,
        Some(200),
        "plain HTTP is not served on the TLS port"
    );
    assert!(p.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_round_trips_sqlite() {
    https_round_trips(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_round_trips_postgres() {
    https_round_trips(Db::Postgres).await;
}

/// Clients PUT and GET without pause (some over kept connections, one with a new connection
/// per request) while the certificate is replaced twice and once broken; no request fails.
async fn reload_under_load(db: Db) {
    let ca = TestCa::new();
    let f = files(db).await;
    let first = ca.issue(&f.cert, &f.key, "first");
    let p = spawn(&f);
    let c = https_client(p.addr, &ca.pem);
    c.create_bucket()
        .bucket("load")
        .send()
        .await
        .expect("create");

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let (stop, done, addr, ca_pem) = (stop.clone(), done.clone(), p.addr, ca.pem.clone());
        let kept = c.clone();
        workers.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
                // Worker 0 makes a new client, so a new connection and handshake, each time.
                let c = if w == 0 {
                    https_client(addr, &ca_pem)
                } else {
                    kept.clone()
                };
                let key = format!("w{w}/{i}");
                let body = bytes(64 << 10, w * 1_000_000 + i);
                c.put_object()
                    .bucket("load")
                    .key(&key)
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("PUT {key} during reload: {e:?}"));
                let got = c
                    .get_object()
                    .bucket("load")
                    .key(&key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("GET {key} during reload: {e:?}"));
                let data = got.body.collect().await.expect("body").into_bytes();
                assert!(data[..] == body[..], "{key} read back");
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let wait_progress = |n: u64| {
        let done = done.clone();
        async move {
            for _ in 0..600 {
                if done.load(Ordering::Relaxed) >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("clients made no progress");
        }
    };
    wait_progress(20).await;
    assert_eq!(presented(p.addr, &ca.pem).await, first);

    let second = ca.issue(&f.cert, &f.key, "second");
    hangup(&p);
    await_certificate(p.addr, &ca.pem, &second).await;
    wait_progress(done.load(Ordering::Relaxed) + 20).await;

    // A broken file: the reload fails and the certificate in use stays.
    std::fs::write(&f.cert, b"not a certificate").expect("write");
    hangup(&p);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(presented(p.addr, &ca.pem).await, second);
    wait_progress(done.load(Ordering::Relaxed) + 20).await;

    let third = ca.issue(&f.cert, &f.key, "third");
    hangup(&p);
    await_certificate(p.addr, &ca.pem, &third).await;
    wait_progress(done.load(Ordering::Relaxed) + 20).await;

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("a worker failed");
    }
    eprintln!(
        "{db:?}: {} PUT+GET pairs over https across three certificate reloads",
        done.load(Ordering::Relaxed)
    );
    assert!(p.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_sqlite() {
    reload_under_load(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_postgres() {
    reload_under_load(Db::Postgres).await;
}
