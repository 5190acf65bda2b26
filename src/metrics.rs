//! Prometheus metrics through `prometheus-client`, exposed as OpenMetrics text on `/metrics`.
//! Process-wide families and counters are updated by the request path (`server`), the commit
//! paths and the workers; figures that live in the database (usage, blobs, the collector's
//! backlog) are read at scrape time and given to `render` as a `Scraped`.

use prometheus_client::encoding::{EncodeLabelSet, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

/// The operation label of a request refused before s3s named its operation (a bad signature,
/// a malformed request, a check in front of s3s).
pub const UNIDENTIFIED: &str = "unknown";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    operation: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request latency buckets: 0.5 ms to ~75 s, ×2.5 each.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.5, 14))
}

/// Commit batch sizes: 1 to 512 versions, ×2 each (the group commits' bounds are below that).
fn batch_sizes() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 10))
}

struct Requests {
    total: Family<RequestLabels, Counter>,
    duration: Histograms<OpLabels>,
    received: Family<OpLabels, Counter>,
    sent: Family<OpLabels, Counter>,
    in_flight: Gauge,
}

static REQUESTS: LazyLock<Requests> = LazyLock::new(|| Requests {
    total: Family::default(),
    duration: Family::new_with_constructor(latency),
    received: Family::default(),
    sent: Family::default(),
    in_flight: Gauge::default(),
});

static COMMIT_BATCH: LazyLock<Histogram> = LazyLock::new(batch_sizes);

pub static CORRUPTED_READS: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static GC_BLOBS_REMOVED: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static GC_ROWS_PURGED: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static ORPHANS_REMOVED: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static UPLOADS_ABORTED: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static LIFECYCLE_EXPIRED: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static SCRUB_BLOBS_CHECKED: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static SCRUB_BYTES: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static SCRUB_CORRUPTED: LazyLock<Counter> = LazyLock::new(Counter::default);
/// Worker passes, by worker and outcome.
static WORKER_RUNS: LazyLock<Family<WorkerLabels, Counter>> = LazyLock::new(Family::default);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: &'static str,
    outcome: &'static str,
}

/// The registry of the process-wide metrics; names get the `juststorage_` prefix, and
/// counters the `_total` suffix, from the encoder.
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut r = Registry::with_prefix("juststorage");
    let q = &*REQUESTS;
    r.register(
        "requests",
        "S3 requests by operation and status code.",
        q.total.clone(),
    );
    r.register(
        "request_duration_seconds",
        "Time from a request's arrival to the end of its response body, by operation.",
        q.duration.clone(),
    );
    r.register(
        "bytes_received",
        "Request body bytes received, by operation.",
        q.received.clone(),
    );
    r.register(
        "bytes_sent",
        "Response body bytes sent, by operation.",
        q.sent.clone(),
    );
    r.register(
        "requests_in_flight",
        "S3 requests being answered.",
        q.in_flight.clone(),
    );
    r.register(
        "commit_batch_size",
        "Versions committed per metadata transaction (group commit).",
        COMMIT_BATCH.clone(),
    );
    let counters: [(&str, &str, &Counter); 9] = [
        (
            "corrupted_reads",
            "GETs refused because a blob failed its integrity check.",
            &CORRUPTED_READS,
        ),
        (
            "gc_blobs_removed",
            "Blob files removed by the collector.",
            &GC_BLOBS_REMOVED,
        ),
        (
            "gc_rows_purged",
            "DELETING object rows removed by the collector.",
            &GC_ROWS_PURGED,
        ),
        (
            "orphans_removed",
            "Unfinished uploads (rows and temp files) removed by the sweep.",
            &ORPHANS_REMOVED,
        ),
        (
            "uploads_aborted",
            "Incomplete multipart uploads aborted for age or by a lifecycle rule.",
            &UPLOADS_ABORTED,
        ),
        (
            "lifecycle_expired",
            "Versions and delete markers removed, or hidden, by lifecycle rules.",
            &LIFECYCLE_EXPIRED,
        ),
        (
            "scrub_blobs_checked",
            "Blobs re-hashed by the scrubber.",
            &SCRUB_BLOBS_CHECKED,
        ),
        (
            "scrub_bytes",
            "Bytes re-hashed by the scrubber.",
            &SCRUB_BYTES,
        ),
        (
            "scrub_corrupted",
            "Blobs the scrubber found corrupted.",
            &SCRUB_CORRUPTED,
        ),
    ];
    for (name, help, c) in counters {
        r.register(name, help, (*c).clone());
    }
    r.register(
        "worker_runs",
        "Passes of the background workers (gc, scrub, lifecycle), by outcome.",
        WORKER_RUNS.clone(),
    );
    r
});

/// Counts one S3 request as in flight until dropped.
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        REQUESTS.in_flight.inc();
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        REQUESTS.in_flight.dec();
    }
}

/// One finished S3 request: its operation, status, time and body bytes each way.
pub fn request(operation: &'static str, status: u16, seconds: f64, received: u64, sent: u64) {
    let q = &*REQUESTS;
    q.total
        .get_or_create(&RequestLabels { operation, status })
        .inc();
    let op = OpLabels { operation };
    q.duration.get_or_create(&op).observe(seconds);
    if received > 0 {
        q.received.get_or_create(&op).inc_by(received);
    }
    if sent > 0 {
        q.sent.get_or_create(&op).inc_by(sent);
    }
}

/// One group commit of `n` versions.
pub fn commit_batch(n: usize) {
    COMMIT_BATCH.observe(n as f64);
}

/// One pass of a background worker.
pub fn worker_run(worker: &'static str, ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    WORKER_RUNS
        .get_or_create(&WorkerLabels { worker, outcome })
        .inc();
}

/// Figures read from the database at scrape time.
#[derive(Default)]
pub struct Scraped {
    /// `(tenant, bucket, objects, bytes)`: current objects and their bytes; shown only to a
    /// scrape that presents a token (`server::metrics_text`).
    pub buckets: Vec<(String, String, i64, i64)>,
    /// `(tenant, tier, bytes)`: physical bytes attributed to a tenant; token holders only.
    pub physical: Vec<(String, String, i64)>,
    /// Per tier: blobs kept as files and inline, their bytes, and blobs nobody references.
    pub blobs: Vec<crate::meta::BlobStats>,
    /// Logical bytes (current and noncurrent versions) over physical bytes, when both known.
    pub dedup_ratio: Option<f64>,
    /// The metadata database's connection pool, where it has one.
    pub pool: Option<crate::meta::PoolState>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabels {
    tenant: String,
    bucket: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantTier {
    tenant: String,
    tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierPlace {
    tier: String,
    place: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

/// The scrape-time gauges, in a registry of their own built for one scrape.
fn scraped_registry(s: &Scraped) -> Registry {
    let mut r = Registry::with_prefix("juststorage");
    let objects = Family::<BucketLabels, Gauge>::default();
    let bytes = Family::<BucketLabels, Gauge>::default();
    for (tenant, bucket, n, b) in &s.buckets {
        let l = BucketLabels {
            tenant: tenant.clone(),
            bucket: bucket.clone(),
        };
        objects.get_or_create(&l).set(*n);
        bytes.get_or_create(&l).set(*b);
    }
    r.register("bucket_objects", "Current objects per bucket.", objects);
    r.register(
        "bucket_bytes",
        "Logical bytes of current objects per bucket.",
        bytes,
    );
    let physical = Family::<TenantTier, Gauge>::default();
    for (tenant, tier, b) in &s.physical {
        let l = TenantTier {
            tenant: tenant.clone(),
            tier: tier.clone(),
        };
        physical.get_or_create(&l).set(*b);
    }
    r.register(
        "tenant_physical_bytes",
        "Blob bytes attributed to a tenant (each blob shared among the tenants that reference it).",
        physical,
    );
    let blobs = Family::<TierPlace, Gauge>::default();
    let blob_bytes = Family::<TierPlace, Gauge>::default();
    let backlog = Family::<TierLabels, Gauge>::default();
    for t in &s.blobs {
        for (place, n, b) in [
            ("file", t.files, t.file_bytes),
            ("inline", t.inline, t.inline_bytes),
        ] {
            let l = TierPlace {
                tier: t.tier.clone(),
                place,
            };
            blobs.get_or_create(&l).set(n);
            blob_bytes.get_or_create(&l).set(b);
        }
        backlog
            .get_or_create(&TierLabels {
                tier: t.tier.clone(),
            })
            .set(t.unreferenced);
    }
    r.register(
        "blobs",
        "Distinct bodies stored, per tier, as files or inline in the database.",
        blobs,
    );
    r.register(
        "blob_bytes",
        "Bytes of the distinct bodies stored, per tier, as files or inline.",
        blob_bytes,
    );
    r.register(
        "gc_backlog_blobs",
        "Blobs no version references, waiting for the collector's grace period.",
        backlog,
    );
    if let Some(ratio) = s.dedup_ratio {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(ratio);
        r.register(
            "dedup_ratio",
            "Logical bytes of all versions over the physical bytes they reference.",
            g,
        );
    }
    if let Some(p) = &s.pool {
        let conns = Family::<PoolLabels, Gauge>::default();
        conns
            .get_or_create(&PoolLabels { state: "idle" })
            .set(p.idle);
        conns
            .get_or_create(&PoolLabels { state: "in_use" })
            .set(p.size - p.idle);
        r.register(
            "db_pool_connections",
            "Connections of the metadata database's pool, by state.",
            conns,
        );
        let max = Gauge::<i64>::default();
        max.set(p.max);
        r.register(
            "db_pool_max_connections",
            "Connections the metadata database's pool may open.",
            max,
        );
    }
    r
}

/// The OpenMetrics exposition text: the process-wide metrics, then `scraped`.
pub fn render(scraped: &Scraped) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; an encoder error would be a bug in a metric's name.
    let written = text::encode_registry(&mut out, &REGISTRY)
        .and_then(|()| text::encode_registry(&mut out, &scraped_registry(scraped)))
        .and_then(|()| text::encode_eof(&mut out));
    debug_assert!(written.is_ok(), "metrics encode");
    out
}

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
