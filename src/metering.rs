//! Per-tenant metering: requests by S3 pricing class, bytes received and sent, per tenant,
//! bucket and hour. A request costs a map update in memory (`Meter::record`); every
//! `FLUSH_EVERY` the figures are added to the database (`metering` rows, which several gateways
//! add to), so a crash loses at most that interval. The bucket's owner is billed, as in S3.

use crate::meta::{MetaStore, MeterRow};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How often the figures in memory go to the database.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// (tenant, bucket) pairs kept between flushes, at most; beyond, a tenant's requests are
/// counted under the bucket `""` (the tenant's figures stay whole).
const MAX_ENTRIES: usize = 100_000;

/// S3's request pricing classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// PUT, COPY, POST and LIST requests.
    PutCopyPostList,
    /// GET, HEAD and every other request that is not a DELETE.
    GetAndOther,
    /// DELETE requests (free in S3's pricing).
    Delete,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::PutCopyPostList, Class::GetAndOther, Class::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::PutCopyPostList => "put_copy_post_list",
            Class::GetAndOther => "get_and_other",
            Class::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The class of an s3s operation name.
    pub fn of_operation(op: &str) -> Class {
        if op.starts_with("Delete") || op == "AbortMultipartUpload" {
            Class::Delete
        } else if op.starts_with("Put")
            || op.starts_with("List")
            || op.starts_with("Copy")
            || matches!(
                op,
                "CreateBucket"
                    | "CreateMultipartUpload"
                    | "UploadPart"
                    | "UploadPartCopy"
                    | "CompleteMultipartUpload"
                    | "PostObject"
                    | "RestoreObject"
                    | "SelectObjectContent"
            )
        {
            Class::PutCopyPostList
        } else {
            Class::GetAndOther
        }
    }
}

/// What one request is billed to, filled in as the request is understood: the access check
/// names the tenant, bucket and class; the request body counts what it received. Requests
/// that never name an existing bucket of a known tenant are not metered.
#[derive(Default)]
pub struct Slot {
    /// The S3 operation (s3s's name), once s3s has routed the request.
    operation: OnceLock<&'static str>,
    who: OnceLock<Billed>,
    received: AtomicU64,
}

/// Whom a request is billed to, and for what.
pub struct Billed {
    pub tenant_id: String,
    /// `""`: none (ListBuckets).
    pub bucket: String,
    /// The S3 operation (s3s's name).
    pub operation: &'static str,
    pub class: Class,
}

impl Slot {
    /// Bills the request (S3 operation `operation`) to `tenant_id`'s bucket `bucket` (`""`:
    /// none, e.g. ListBuckets).
    pub fn bill(&self, tenant_id: &str, bucket: &str, operation: &'static str) {
        let _ = self.who.set(Billed {
            tenant_id: tenant_id.to_owned(),
            bucket: bucket.to_owned(),
            operation,
            class: Class::of_operation(operation),
        });
    }

    /// Names the request's S3 operation (for metrics and the log line), billed or not.
    pub fn identify(&self, operation: &'static str) {
        let _ = self.operation.set(operation);
    }

    /// The S3 operation, once s3s has routed the request.
    pub fn operation(&self) -> Option<&'static str> {
        self.operation.get().copied()
    }

    /// Whom the request was billed to, once the access check knew.
    pub fn billed(&self) -> Option<&Billed> {
        self.who.get()
    }

    /// The request body's bytes read so far.
    pub fn bytes_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }
}

/// Distinct operation names kept, at most: s3s has about a hundred.
const MAX_OPERATIONS: usize = 256;

/// s3s's operation name as a `&'static str` (metric labels, bills): each distinct name is
/// leaked once, and there are at most `MAX_OPERATIONS` of them.
pub fn operation_name(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{LazyLock, RwLock};
    static NAMES: LazyLock<RwLock<HashSet<&'static str>>> = LazyLock::new(RwLock::default);
    // A poisoned lock holds a whole set (inserts cannot half-happen).
    if let Some(n) = NAMES.read().unwrap_or_else(|p| p.into_inner()).get(name) {
        return n;
    }
    let mut names = NAMES.write().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.get(name) {
        return n;
    }
    if names.len() >= MAX_OPERATIONS {
        return "other";
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    requests: u64,
    received: u64,
    sent: u64,
}

/// Hour → tenant → bucket → class → counts.
type Table = HashMap<i64, HashMap<String, HashMap<String, [Counts; 3]>>>;

/// The figures gathered since the last flush.
#[derive(Default)]
pub struct Meter {
    table: Mutex<(Table, usize)>,
}

impl Meter {
    /// Records a finished request (`sent`: response body bytes).
    pub fn record(&self, slot: &Slot, sent: u64) {
        let Some(Billed {
            tenant_id: tenant,
            bucket,
            class,
            ..
        }) = slot.who.get()
        else {
            return;
        };
        let hour = crate::now_micros().div_euclid(3_600_000_000);
        let received = slot.received.load(Ordering::Relaxed);
        let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let (table, entries) = &mut *guard;
        let tenants = table.entry(hour).or_default();
        let buckets = match tenants.get_mut(tenant.as_str()) {
            Some(b) => b,
            None => tenants.entry(tenant.clone()).or_default(),
        };
        let bucket = match buckets.contains_key(bucket.as_str()) || *entries < MAX_ENTRIES {
            true => bucket.as_str(),
            false => "",
        };
        let counts = match buckets.get_mut(bucket) {
            Some(c) => c,
            None => {
                *entries += 1;
                buckets.entry(bucket.to_owned()).or_default()
            }
        };
        let c = &mut counts[*class as usize];
        c.requests += 1;
        c.received += received;
        c.sent += sent;
    }

    /// Takes everything gathered so far, as rows to add.
    fn take(&self) -> Vec<MeterRow> {
        let table = {
            let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *guard).0
        };
        let mut rows = Vec::new();
        for (hour, tenants) in table {
            for (tenant_id, buckets) in tenants {
                for (bucket, counts) in buckets {
                    for class in Class::ALL {
                        let c = counts[class as usize];
                        if c == Counts::default() {
                            continue;
                        }
                        rows.push(MeterRow {
                            tenant_id: tenant_id.clone(),
                            bucket: bucket.clone(),
                            hour,
                            class: class.as_str().to_owned(),
                            requests: to_i64(c.requests),
                            bytes_received: to_i64(c.received),
                            bytes_sent: to_i64(c.sent),
                        });
                    }
                }
            }
        }
        rows
    }

    /// Adds what was gathered to the database. Figures that fail to go are put back and go
    /// with the next flush.
    pub async fn flush(&self, meta: &dyn MetaStore) {
        let rows = self.take();
        if rows.is_empty() {
            return;
        }
        if let Err(e) = meta.add_metering(&rows).await {
            tracing::warn!(error = %e, rows = rows.len(), "metering flush failed; kept for the next");
            self.put_back(rows);
        }
    }

    fn put_back(&self, rows: Vec<MeterRow>) {
        let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let (table, entries) = &mut *guard;
        for r in rows {
            let Some(class) = Class::parse(&r.class) else {
                continue;
            };
            let buckets = table
                .entry(r.hour)
                .or_default()
                .entry(r.tenant_id)
                .or_default();
            if !buckets.contains_key(&r.bucket) {
                *entries += 1;
            }
            let c = &mut buckets.entry(r.bucket).or_default()[class as usize];
            c.requests += u64::try_from(r.requests).unwrap_or(0);
            c.received += u64::try_from(r.bytes_received).unwrap_or(0);
            c.sent += u64::try_from(r.bytes_sent).unwrap_or(0);
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Flushes `meter` every `FLUSH_EVERY` until `stop`, then once more.
pub async fn flush_loop(
    meter: Arc<Meter>,
    meta: Arc<dyn MetaStore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => meter.flush(meta.as_ref()).await,
            _ = stop.changed() => break,
        }
    }
    meter.flush(meta.as_ref()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_fall_in_s3_pricing_classes() {
        for (op, class) in [
            ("PutObject", Class::PutCopyPostList),
            ("CopyObject", Class::PutCopyPostList),
            ("ListObjectsV2", Class::PutCopyPostList),
            ("ListBuckets", Class::PutCopyPostList),
            ("UploadPart", Class::PutCopyPostList),
            ("CompleteMultipartUpload", Class::PutCopyPostList),
            ("GetObject", Class::GetAndOther),
            ("HeadObject", Class::GetAndOther),
            ("GetBucketAcl", Class::GetAndOther),
            ("DeleteObject", Class::Delete),
            ("DeleteObjects", Class::Delete),
            ("AbortMultipartUpload", Class::Delete),
        ] {
            assert_eq!(Class::of_operation(op), class, "{op}");
        }
    }

    #[test]
    fn records_add_up_per_bucket_and_class_and_are_bounded() {
        let m = Meter::default();
        let slot = Slot::default();
        slot.bill("t1", "b1", "PutObject");
        slot.received(100);
        m.record(&slot, 5);
        m.record(&slot, 5);
        m.record(&Slot::default(), 7); // unbilled: not metered
        let rows = m.take();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.requests, r.bytes_received, r.bytes_sent), (2, 200, 10));
        assert!(m.take().is_empty(), "taken once");
        m.put_back(rows);
        assert_eq!(m.take().len(), 1, "put back after a failed flush");
        for i in 0..MAX_ENTRIES + 10 {
            let s = Slot::default();
            s.bill("t2", &format!("b{i}"), "GetObject");
            m.record(&s, 1);
        }
        let rows = m.take();
        assert_eq!(rows.len(), MAX_ENTRIES + 1, "the rest under bucket \"\"");
        let rest = rows
            .iter()
            .find(|r| r.bucket.is_empty())
            .expect("overflow row");
        assert_eq!(rest.requests, 10);
    }
}
