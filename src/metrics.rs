//! Prometheus metrics: process-wide counters, rendered in the text exposition format on
//! `/metrics`. Counters are plain atomics (no registry, no locks on the request path); the
//! per-bucket usage gauges are read from the database at scrape time.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

const METHODS: [&str; 6] = ["GET", "PUT", "HEAD", "DELETE", "POST", "OTHER"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Requests by method and status class; request time in microseconds by method.
static REQUESTS: [[Counter; 5]; 6] = [const { [const { Counter::new() }; 5] }; 6];
static REQUEST_MICROS: [Counter; 6] = [const { Counter::new() }; 6];

pub static CORRUPTED_READS: Counter = Counter::new();
pub static GC_BLOBS_REMOVED: Counter = Counter::new();
pub static GC_ROWS_PURGED: Counter = Counter::new();
pub static ORPHANS_REMOVED: Counter = Counter::new();
pub static UPLOADS_ABORTED: Counter = Counter::new();
pub static LIFECYCLE_EXPIRED: Counter = Counter::new();
pub static SCRUB_BLOBS_CHECKED: Counter = Counter::new();
pub static SCRUB_BYTES: Counter = Counter::new();
pub static SCRUB_CORRUPTED: Counter = Counter::new();

/// Records one finished request.
pub fn request(method: &http::Method, status: u16, micros: u64) {
    let m = METHODS
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1);
    let c = usize::from(status / 100).clamp(1, 5) - 1;
    REQUESTS[m][c].inc();
    REQUEST_MICROS[m].add(micros);
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

/// Per-tenant figures, shown only to a scrape that presents a token (`server::metrics_text`).
#[derive(Default)]
pub struct TenantFigures {
    /// `(tenant, bucket, objects, bytes)`: current objects and their bytes.
    pub buckets: Vec<(String, String, i64, i64)>,
    /// `(tenant, tier, bytes)`: physical bytes attributed to the tenant.
    pub physical: Vec<(String, String, i64)>,
}

/// The exposition text; per-tenant gauges only from `tenants`.
pub fn render(tenants: &TenantFigures) -> String {
    let usage = &tenants.buckets;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP juststorage_requests_total S3 requests by method and status class.\n# TYPE juststorage_requests_total counter"
    );
    for (mi, m) in METHODS.iter().enumerate() {
        for (ci, c) in CLASSES.iter().enumerate() {
            let v = REQUESTS[mi][ci].get();
            if v > 0 {
                let _ = writeln!(
                    out,
                    "juststorage_requests_total{{method=\"{m}\",status=\"{c}\"}} {v}"
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP juststorage_request_seconds_total Time spent answering requests, by method.\n# TYPE juststorage_request_seconds_total counter"
    );
    for (mi, m) in METHODS.iter().enumerate() {
        let v = REQUEST_MICROS[mi].get();
        if v > 0 {
            let _ = writeln!(
                out,
                "juststorage_request_seconds_total{{method=\"{m}\"}} {}",
                v as f64 / 1e6
            );
        }
    }
    counter(
        &mut out,
        "juststorage_corrupted_reads_total",
        "GETs refused because a blob failed its integrity check.",
        CORRUPTED_READS.get(),
    );
    counter(
        &mut out,
        "juststorage_gc_blobs_removed_total",
        "Blob files removed by the collector.",
        GC_BLOBS_REMOVED.get(),
    );
    counter(
        &mut out,
        "juststorage_gc_rows_purged_total",
        "DELETING object rows removed by the collector.",
        GC_ROWS_PURGED.get(),
    );
    counter(
        &mut out,
        "juststorage_orphans_removed_total",
        "Unfinished uploads (rows and temp files) removed by the sweep.",
        ORPHANS_REMOVED.get(),
    );
    counter(
        &mut out,
        "juststorage_uploads_aborted_total",
        "Incomplete multipart uploads aborted for age or by a lifecycle rule.",
        UPLOADS_ABORTED.get(),
    );
    counter(
        &mut out,
        "juststorage_lifecycle_expired_total",
        "Versions and delete markers removed, or hidden, by lifecycle rules.",
        LIFECYCLE_EXPIRED.get(),
    );
    counter(
        &mut out,
        "juststorage_scrub_blobs_checked_total",
        "Blobs re-hashed by the scrubber.",
        SCRUB_BLOBS_CHECKED.get(),
    );
    counter(
        &mut out,
        "juststorage_scrub_bytes_total",
        "Bytes re-hashed by the scrubber.",
        SCRUB_BYTES.get(),
    );
    counter(
        &mut out,
        "juststorage_scrub_corrupted_total",
        "Blobs the scrubber found corrupted.",
        SCRUB_CORRUPTED.get(),
    );
    let _ = writeln!(
        out,
        "# HELP juststorage_bucket_objects Current objects per bucket.\n# TYPE juststorage_bucket_objects gauge"
    );
    for (t, b, n, _) in usage {
        let _ = writeln!(
            out,
            "juststorage_bucket_objects{{tenant=\"{}\",bucket=\"{}\"}} {n}",
            esc(t),
            esc(b)
        );
    }
    let _ = writeln!(
        out,
        "# HELP juststorage_bucket_bytes Logical bytes of current objects per bucket.\n# TYPE juststorage_bucket_bytes gauge"
    );
    for (t, b, _, n) in usage {
        let _ = writeln!(
            out,
            "juststorage_bucket_bytes{{tenant=\"{}\",bucket=\"{}\"}} {n}",
            esc(t),
            esc(b)
        );
    }
    let _ = writeln!(
        out,
        "# HELP juststorage_tenant_physical_bytes Blob bytes attributed to a tenant (each blob shared among the tenants that reference it).\n# TYPE juststorage_tenant_physical_bytes gauge"
    );
    for (t, tier, n) in &tenants.physical {
        let _ = writeln!(
            out,
            "juststorage_tenant_physical_bytes{{tenant=\"{}\",tier=\"{}\"}} {n}",
            esc(t),
            esc(tier)
        );
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
