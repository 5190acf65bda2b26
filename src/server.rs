//! The HTTP server: listener, connection settings, request ids,
//! `/health` and `/ready`, workers, graceful shutdown. It knows nothing of S3 semantics.

mod idle;
mod metered;
mod tls;
mod too_large;

pub use tls::{TlsError, TlsFiles};

use crate::blobs::BlobStore;
use crate::config::{Config, Timeouts};
use crate::engine::{Engine, Limits};
use crate::meta::MetaStore;
use crate::s3::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

/// Open connections beyond this wait in the accept queue (a bound on memory and fds).
const MAX_CONNECTIONS: usize = 4096;
/// Time granted to in-flight requests on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Sets glibc malloc's policy for this server's buffer churn. Call it first thing in `main`,
/// before any other thread exists.
///
/// By default glibc serves blocks of 128 KiB and more with a fresh `mmap` each (a threshold it
/// then moves as it goes), trims a heap's top whenever 128 KiB of it is free, and keeps up to
/// eight arenas per core. hyper's read buffers (`s3::READ_BUFFER`) and a GET's chunks
/// (`blobs::CHUNK`) are that size and are freed at the rate bodies stream, so most of them came
/// back as fresh pages the kernel had to zero: ~25,000-35,000 page faults per 1 GiB PUT, each a
/// kernel entry and, in a VM that reports free pages to its host, possibly the host's fault
/// too. Measured with the bench (`/proc/<pid>/stat`): two 1 GiB PUTs took ~850 faults instead
/// of 51,198. Their CPU time moved less than this host's run-to-run spread. Peak RSS at c32
/// stayed under 70 MiB with one arena per core (with glibc's sixteen, idle memory kept per
/// arena took a 32 MiB × 32 GET to 68 MiB where it had been 55).
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use crate::{blobs::CHUNK, s3::READ_BUFFER};
        /// Blocks below this come from the heap; twice the largest buffer we churn.
        const MMAP_THRESHOLD: usize = 2 * if READ_BUFFER > CHUNK {
            READ_BUFFER
        } else {
            CHUNK
        };
        /// Free memory at a heap's top kept for reuse: a few requests' worth of buffers.
        const TRIM_THRESHOLD: usize = 2 << 20;
        let arenas = std::thread::available_parallelism().map_or(2, |n| n.get());
        let to_int = |v: usize| libc::c_int::try_from(v).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets allocator parameters, and no other thread exists yet. A
        // value it rejects (it returns 0) leaves glibc's default, which is correct, only slower.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, to_int(MMAP_THRESHOLD));
            libc::mallopt(libc::M_TRIM_THRESHOLD, to_int(TRIM_THRESHOLD));
            libc::mallopt(libc::M_ARENA_MAX, to_int(arenas));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata store: {0}")]
    Meta(#[from] crate::meta::MetaError),
    #[error("bootstrap: {0}")]
    Engine(#[from] crate::engine::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    /// The admin API's address, when it listens.
    pub admin_addr: Option<SocketAddr>,
    /// Root credentials, when this start created them (print once).
    pub created_root: Option<(String, String)>,
    pub engine: Engine,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (bounded), stops the workers.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops by itself (it does not, unless shut down).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Opens storage and metadata, bootstraps the root key, binds, and serves in the background.
pub async fn start(cfg: &Config) -> Result<Running, StartError> {
    if let Some(f) = cfg.fault {
        crate::fault::arm(f);
    }
    if let Some(dir) = cfg.sqlite_dir() {
        std::fs::create_dir_all(dir)?;
    }
    let blobs = BlobStore::open(&cfg.hot_dir, &cfg.cold_dir)?;
    let meta = crate::meta::open(&cfg.database_url).await?;
    let engine = Engine::new(
        meta.clone(),
        blobs,
        Limits {
            inline_max: cfg.inline_max,
            ..Limits::default()
        },
    );
    let created_root = engine.ensure_root(cfg.root_key.clone()).await?;
    let certs = cfg.tls.clone().map(tls::Certs::load).transpose()?;
    // The S3 listener speaks HTTP/2 and HTTP/1.1; the admin API HTTP/1.1 only. Both present
    // the same certificate and follow its reloads.
    let acceptor = |alpn: &[&[u8]]| -> Result<_, StartError> {
        match &certs {
            Some(c) => Ok(Some(tokio_rustls::TlsAcceptor::from(
                c.server_config(alpn)?,
            ))),
            None => Ok(None),
        }
    };
    let (acceptor, admin_acceptor) = (acceptor(&[b"h2", b"http/1.1"])?, acceptor(&[b"http/1.1"])?);
    let listener = TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(tls::reload_on_hangup(certs, stop_rx.clone()));
    let app = App {
        s3: crate::s3::Protocol::new(
            engine.clone(),
            crate::s3::Settings {
                region: cfg.region.clone(),
                enforce_region: cfg.enforce_region,
                domains: cfg.domains.clone(),
                body_timeout: cfg.timeouts.body,
            },
        )
        .map_err(StartError::Protocol)?,
        meta: meta.clone(),
        engine: engine.clone(),
        meter: Arc::new(crate::metering::Meter::default()),
    };
    let metering = tokio::spawn(crate::metering::flush_loop(
        app.meter.clone(),
        meta,
        stop_rx.clone(),
    ));
    // Crash recovery for blob files placed by a transaction that never committed.
    let (e, age) = (engine.clone(), cfg.gc.orphan_age);
    tokio::spawn(async move {
        match crate::workers::adopt_orphan_files(&e, age).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(n, "adopted orphan blob files for collection"),
            Err(err) => tracing::warn!(error = %err, "orphan blob file scan failed"),
        }
    });
    let gc = tokio::spawn(crate::workers::gc_loop(
        engine.clone(),
        cfg.gc.clone(),
        stop_rx.clone(),
    ));
    let scrub = tokio::spawn(crate::workers::scrub_loop(
        engine.clone(),
        cfg.scrub_interval,
        cfg.scrub_mbps,
        stop_rx.clone(),
    ));
    let lifecycle = tokio::spawn(crate::workers::lifecycle_loop(
        engine.clone(),
        cfg.lifecycle.clone(),
        stop_rx.clone(),
    ));
    let admin_addr = match cfg.admin_listen {
        Some(at) => {
            let l = TcpListener::bind(at).await?;
            let addr = l.local_addr()?;
            let maintenance = crate::admin::Maintenance {
                gc: cfg.gc.clone(),
                scrub_mbps: cfg.scrub_mbps,
            };
            let serving = crate::admin::serve(
                l,
                admin_acceptor,
                engine.clone(),
                maintenance,
                stop_rx.clone(),
            );
            tokio::spawn(serving);
            tracing::info!(%addr, "admin API listening");
            Some(addr)
        }
        None => None,
    };
    let (e, keys_stop) = (engine.clone(), stop_rx.clone());
    let keys = tokio::spawn(async move { e.watch_keys(keys_stop).await });
    let timeouts = cfg.timeouts.clone();
    let task = tokio::spawn(async move {
        serve(listener, app, timeouts, acceptor, stop_rx).await;
        let _ = gc.await;
        let _ = scrub.await;
        let _ = lifecycle.await;
        let _ = keys.await;
        let _ = metering.await;
    });
    tracing::info!(%addr, tls = cfg.tls.is_some(), "listening");
    Ok(Running {
        addr,
        admin_addr,
        created_root,
        engine,
        stop,
        task,
    })
}

#[derive(Clone)]
struct App {
    s3: crate::s3::Protocol,
    meta: Arc<dyn MetaStore>,
    engine: Engine,
    meter: Arc<crate::metering::Meter>,
}

async fn serve(
    listener: TcpListener,
    app: App,
    timeouts: Timeouts,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    // hyper's read buffer bounds both a request head (431 beyond) and each body read. A body
    // streams in reads of up to this size: 64 KiB reads cost a 1 GiB PUT 16k recv calls, each
    // sending a window update, about 10% of the server's CPU.
    // The header timer runs from when the connection starts waiting for a head (a keep-alive
    // wait included) to the head's end, so a head trickled a byte at a time cannot hold a
    // connection slot; it needs a timer, without which hyper silently has none.
    builder
        .http1()
        .max_buf_size(crate::s3::READ_BUFFER)
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.head);
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        // Small requests and responses must not wait for Nagle's algorithm.
        let _ = sock.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            peer: crate::s3::Peer {
                ip: peer.ip(),
                tls: tls.is_some(),
            },
            builder: builder.clone(),
            graceful: graceful.watcher(),
            idle: timeouts.idle,
            _permit: permit,
        };
        match &tls {
            None => {
                tokio::spawn(conn.run(sock));
            }
            Some(acceptor) => {
                // The handshake runs in the connection's task, bounded like a request head.
                let handshake = acceptor.accept(sock);
                let limit = timeouts.head;
                tokio::spawn(async move {
                    match tokio::time::timeout(limit, handshake).await {
                        Ok(Ok(s)) => conn.run(s).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("shutdown grace elapsed; dropping connections"),
    }
}

/// One accepted connection, served over a plain or a TLS stream.
struct Connection {
    app: App,
    peer: crate::s3::Peer,
    builder: Arc<ConnBuilder<TokioExecutor>>,
    graceful: hyper_util::server::graceful::Watcher,
    idle: Duration,
    /// Holds one of `MAX_CONNECTIONS` slots until the connection ends.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Connection {
    async fn run<I>(self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let act = idle::Activity::new();
        let svc_act = act.clone();
        let (app, peer) = (self.app, self.peer);
        let svc = hyper::service::service_fn(move |req| {
            let app = app.clone();
            let handling = svc_act.handling();
            let act = svc_act.clone();
            async move {
                let mut req = req;
                req.extensions_mut().insert(peer);
                let head = req.method() == http::Method::HEAD;
                let mut resp = handle(app, req).await;
                if head {
                    // HTTP/1.1 drops a HEAD response's body by itself; HTTP/2 would send it
                    // as DATA, which clients reject (an error's XML on a 404, say).
                    *resp.body_mut() = Body::empty();
                }
                let resp = resp.map(|b| idle::Sending::new(b, act.streaming()));
                drop(handling);
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let io = idle::Watched::new(io, act.clone());
        let io = TokioIo::new(too_large::HeadTooLarge::new(io));
        let conn = self.builder.serve_connection(io, svc).into_owned();
        let conn = self.graceful.watch(conn);
        tokio::select! {
            r = conn => if let Err(e) = r {
                tracing::debug!(peer = %peer.ip, error = %e, "connection ended with error");
            },
            () = act.expired(self.idle) => tracing::debug!(peer = %peer.ip, "closing an idle connection"),
        }
    }
}

/// Unsigned GET/HEAD of `/health`, `/ready` or `/metrics` are probes (`/metrics` may carry a
/// bearer token); a signed one is S3 (a bucket may be called `health`).
fn probe(req: &Request<Incoming>) -> Option<&'static str> {
    let auth = req.headers().get(http::header::AUTHORIZATION);
    let bearer = auth.is_some_and(|v| v.as_bytes().starts_with(b"Bearer "));
    let signed =
        (auth.is_some() && !bearer) || req.uri().query().is_some_and(|q| q.contains("Signature"));
    if signed || !(req.method() == http::Method::GET || req.method() == http::Method::HEAD) {
        return None;
    }
    match req.uri().path() {
        "/health" => Some("health"),
        "/ready" => Some("ready"),
        "/metrics" => Some("metrics"),
        _ => None,
    }
}

async fn handle(app: App, req: Request<Incoming>) -> Response<Body> {
    let request_id = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let span = tracing::info_span!("request", id = %request_id, method = %req.method(), path = %req.uri().path());
    let started = std::time::Instant::now();
    let method = req.method().clone();
    async move {
        let probe = probe(&req);
        let mut resp = match probe {
            Some("ready") => match app.meta.ping().await {
                Ok(()) => text(StatusCode::OK, "ready\n"),
                Err(e) => {
                    tracing::warn!(error = %e, "not ready");
                    text(StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
                }
            },
            Some("metrics") => metrics(&app, &req).await,
            Some(_) => text(StatusCode::OK, "ok\n"),
            None => {
                let in_flight = crate::metrics::InFlight::start();
                let slot = Arc::new(crate::metering::Slot::default());
                let mut req = req;
                req.extensions_mut().insert(slot.clone());
                let resp = app.s3.call(req, &request_id).await;
                let done = metered::Finished {
                    request_id: request_id.clone(),
                    method: method.clone(),
                    status: resp.status().as_u16(),
                    started,
                    _in_flight: in_flight,
                };
                let meter = app.meter.clone();
                resp.map(|b| Body::http_body_unsync(metered::Metered::new(b, meter, slot, done)))
            }
        };
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-amz-request-id", v);
        }
        tracing::debug!(status = resp.status().as_u16(), "done");
        resp
    }
    .instrument(span)
    .await
}

/// `/metrics` on the S3 port: per-tenant figures only for a scrape that presents an admin or
/// metrics token (`Authorization: Bearer …`); anyone else sees the process-wide counters, and
/// no tenant or bucket name.
async fn metrics(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let token = (req.headers().get(http::header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let full = match token {
        None => false,
        Some(t) => match app.engine.admin_scope(t.trim()).await {
            Ok(scope) => scope.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: token lookup failed");
                false
            }
        },
    };
    if token.is_some() && !full {
        return text(StatusCode::UNAUTHORIZED, "unknown or revoked token\n");
    }
    let mut r = Response::new(Body::from(metrics_text(&app.engine, full).await));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    r
}

/// The Prometheus exposition; with `tenants`, the per-tenant and per-bucket gauges. A failed
/// database read leaves its gauges out (and is logged); the process's own metrics are always
/// served.
pub async fn metrics_text(engine: &Engine, tenants: bool) -> String {
    let meta = engine.meta();
    let mut scraped = crate::metrics::Scraped {
        pool: meta.pool_state(),
        ..Default::default()
    };
    match engine.store_figures().await {
        Ok(f) => {
            scraped.blobs = f.blobs;
            scraped.dedup_ratio = f.dedup_ratio;
        }
        Err(e) => tracing::warn!(error = %e, "metrics: store figures query failed"),
    }
    if !tenants {
        return crate::metrics::render(&scraped);
    }
    match meta.usage().await {
        Ok(rows) => {
            let mut per_bucket: std::collections::BTreeMap<(String, String), (i64, i64)> =
                Default::default();
            for u in rows {
                let e = per_bucket.entry((u.tenant, u.bucket)).or_default();
                e.0 += u.objects;
                e.1 += u.bytes;
            }
            scraped.buckets = per_bucket
                .into_iter()
                .map(|((t, b), (n, bytes))| (t, b, n, bytes))
                .collect();
        }
        Err(e) => tracing::warn!(error = %e, "metrics: usage query failed"),
    }
    match meta.physical().await {
        Ok(rows) => {
            scraped.physical = rows
                .into_iter()
                .map(|p| (p.tenant, p.tier, p.bytes))
                .collect()
        }
        Err(e) => tracing::warn!(error = %e, "metrics: physical query failed"),
    }
    crate::metrics::render(&scraped)
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}
