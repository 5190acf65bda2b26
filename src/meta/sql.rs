//! The SQL implementation of `MetaStore`, instantiated for SQLite and PostgreSQL.
//!
//! GC invariant (DESIGN.md): a blob file is unlinked only by the collector, inside a transaction
//! holding that blob's row lock, when `ref_count = 0` and `zero_since` is older than the grace
//! period. A writer that finds the row re-checks the file under the same lock (`confirm`). So a
//! COMMITTED object never points at a missing file.
//!
//! `LIMIT +$N`, never `LIMIT $N`: SQLite's planner reads a bare bound LIMIT and marks the
//! statement for re-preparation whenever that parameter is bound again — every execution, as
//! sqlx binds them all — which cost a full parse and plan per listing page. Unary plus hides the
//! parameter from it (PostgreSQL reads the same text).
//!
//! Lock order on Postgres: the per-key advisory lock first, then blob rows in `(tier, hash)`
//! order. A group commit (`group`) holds its items' locks together, so it can still meet a single
//! commit in a deadlock; PostgreSQL aborts one of the two and it runs again (`DEADLOCK_TRIES`).
//! SQLite's write transactions never overlap: each holds the one connection of sqlx's write
//! pool (the group committer too, which writes through a connection of its own meanwhile).

use super::*;
use sqlx::Row;
use std::str::FromStr;
use std::time::Duration;

/// Opens the database named by `url` (`sqlite:` or `postgres:`), applying migrations.
pub async fn open(url: &str) -> MetaResult<std::sync::Arc<dyn MetaStore>> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(PgMeta::connect(url).await?))
    } else {
        Ok(std::sync::Arc::new(SqliteMeta::connect(url).await?))
    }
}

/// Rows a SQLite connection's thread may queue for its reader: a whole listing page.
const ROW_BUFFER: usize = 1024;

pub struct SqliteMeta {
    /// The one writer: SQLite serialises writers anyway; one connection avoids SQLITE_BUSY.
    write: sqlx::SqlitePool,
    read: sqlx::SqlitePool,
    /// Group commit: commits do not fsync; acknowledged mutations pass this barrier.
    wal: std::sync::Arc<super::wal::WalSync>,
    /// PUT and DELETE commits, batched (`batch`).
    committer: batch::Committer,
    /// HEAD's, GET's and PUT's point lookups and the listings, on the calling thread (`direct`).
    direct: std::sync::Arc<direct::Readers>,
}

impl SqliteMeta {
    pub async fn connect(url: &str) -> MetaResult<SqliteMeta> {
        use sqlx::sqlite::SqliteSynchronous;
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL: commits do not fsync; `durable()` syncs the WAL for a group of them
            // before any of them is acknowledged (see `wal`), as durable as FULL.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // Rows cross from the connection's thread one message each; a bound below a
            // listing page (1,001 rows) made the thread stop and wait for the reader every 50
            // rows, a pair of context switches each time. The queue only grows as it is used.
            .row_buffer_size(ROW_BUFFER);
        // No ping on acquire: a SQLite connection is a file, it cannot go away, and the ping is
        // a round trip through the connection's thread on every query.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await?;
        migrations::migrator(migrations::SQLITE).run(&write).await?;
        let file = opts.get_filename().to_owned();
        let wal = file.is_file().then(|| {
            let mut name = file.as_os_str().to_owned();
            name.push("-wal");
            std::path::PathBuf::from(name)
        });
        // The colder reads (access keys, uploads, the workers' scans); the hot ones are `direct`.
        let read = SqlitePoolOptions::new()
            .max_connections(READ_POOL)
            .test_before_acquire(false)
            .connect_with(
                opts.read_only(true)
                    .pragma("cache_size", format!("-{READER_CACHE_KIB}")),
            )
            .await?;
        let wal = std::sync::Arc::new(super::wal::WalSync::new(wal));
        Ok(SqliteMeta {
            committer: batch::Committer::start(
                write.clone(),
                batch::Writer::open(&file)?,
                wal.clone(),
            ),
            direct: std::sync::Arc::new(direct::Readers::open(&file)?),
            write,
            read,
            wal,
        })
    }
}

/// Connections of the sqlx read pool.
const READ_POOL: u32 = 4;
/// Page cache of each read connection (the pool's and `direct`'s), in KiB (SQLite's default is
/// 2,000). Their reads are point lookups and range scans whose pages the OS caches anyway;
/// eight default caches held ~16 MiB of the server's memory.
const READER_CACHE_KIB: u32 = 512;

pub struct PgMeta {
    pool: sqlx::PgPool,
    /// HEAD's, GET's and PUT's point lookups, batched under load (`lookup`).
    lookups: lookup::Lookups,
    /// Inline PUT and DELETE commits, grouped under load (`group`).
    group: group::Group,
    /// Connections for the hot statements, outside the pool (`hot`): the above, and listings.
    hot: std::sync::Arc<hot::Hot>,
}

impl SqliteMeta {
    /// Every commit that returned before this call is on stable storage.
    async fn durable(&self) -> MetaResult<()> {
        self.wal.barrier().await
    }
}

impl PgMeta {
    /// Postgres commits are durable when they return (`synchronous_commit = on`).
    async fn durable(&self) -> MetaResult<()> {
        Ok(())
    }
}

impl PgMeta {
    pub async fn connect(url: &str) -> MetaResult<PgMeta> {
        let opts = sqlx::postgres::PgConnectOptions::from_str(url)?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            // A request waits at most this long for the database before answering 503.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(opts.clone())
            .await?;
        migrations::migrator(migrations::POSTGRES)
            .run(&pool)
            .await?;
        // The hot statements are planned once per connection. By default a prepared
        // statement gets a custom plan at every execution while that looks cheaper than the
        // generic one, and for the lookups' `unnest` of parameter arrays it always does: the
        // bind (the planning) cost ~430 us, the execution ~50. Their plans do not depend on
        // the values (index probes and index range scans; the lookups are fenced by OFFSET 0).
        // But a generic plan does depend on the statistics it was made with: from a nearly
        // empty table's (a fresh install's first ANALYZE) it scans the table, and keeps doing
        // so, every lookup reading the whole table, until the next ANALYZE (never, without
        // autovacuum). Every hot statement has an index to probe, so sequential scans are
        // priced out of its plans (`enable_seqscan = off` only adds a penalty to their cost:
        // a table without a usable index would still be scanned).
        let hot_opts = opts.options([
            ("plan_cache_mode", "force_generic_plan"),
            ("enable_seqscan", "off"),
        ]);
        let hot = std::sync::Arc::new(hot::Hot::new(hot_opts));
        Ok(PgMeta {
            lookups: lookup::Lookups::postgres(hot.clone()),
            group: group::Group::start(hot.clone()),
            hot,
            pool,
        })
    }
}

/// An object row's columns (alias `o`: the queries join segments and blobs).
const OBJECT_COLS: &str = "o.id, o.key, o.size, o.etag, o.content_type, o.content_encoding, \
    o.content_disposition, o.content_language, o.cache_control, o.expires, o.user_meta, o.tags, \
    o.storage_class, o.created_at, o.parts_count, o.checksum_algo, o.checksum_value, \
    o.checksum_type";

/// An object's segments (`s`) and whether their blobs (`b`) are marked corrupted.
const SEGMENT_COLS: &str = "s.tier AS seg_tier, s.blob_hash, s.size AS seg_size, \
    COALESCE(b.corrupted, FALSE) AS corrupted";
const SEGMENT_JOIN: &str = "LEFT JOIN object_segments s ON s.object_id = o.id \
    LEFT JOIN blobs b ON b.tier = s.tier AND b.hash = s.blob_hash";

/// A `BlobRow`'s columns, selected `FROM blobs` (unaliased).
const BLOB_ROW_COLS: &str = "tier, hash, size, ref_count, corrupted, EXISTS (SELECT 1 FROM \
    blob_data d WHERE d.tier = blobs.tier AND d.hash = blobs.hash) AS inline";

/// An inline blob's bytes (in `SEGMENT_JOIN`'s `s`), when `$cond` holds.
macro_rules! inline_data_col {
    ($cond:literal) => {
        concat!(
            "CASE WHEN ",
            $cond,
            " THEN (SELECT d.data FROM blob_data d WHERE d.tier = s.tier \
             AND d.hash = s.blob_hash) END AS inline_data"
        )
    };
}

const UPLOAD_COLS: &str = "upload_id, bucket_id, key, initiated, tier, storage_class, \
    content_type, content_encoding, content_disposition, content_language, cache_control, \
    expires, user_meta, tags, checksum_algo, checksum_type";

const PART_COLS: &str = "part_number, tier, blob_hash, size, etag, created_at, checksum_value";

// The statements of a version commit, shared by the statement-at-a-time path and SQLite's
// group committer (`batch.rs`); each `bind_*!` macro binds its statement's parameters in order, on a
// `sqlx::Query` or a `Script` alike.

/// A version with its segments, before its `WHERE`.
const VERSION_SELECT: &str = const_format::concatcp!(
    "SELECT ",
    OBJECT_COLS,
    ", ",
    SEGMENT_COLS,
    " FROM objects o ",
    SEGMENT_JOIN
);

/// The current version of a key with its segments.
const LATEST_IN_SQL: &str = const_format::concatcp!(
    VERSION_SELECT,
    " WHERE o.bucket_id = $1 AND o.key = $2 AND o.is_latest ORDER BY s.seq"
);

const DEMOTE_SQL: &str = "UPDATE objects SET is_latest = FALSE, status = 'DELETING', \
    deleted_at = $2 WHERE id = $1";

/// A version that is COMMITTED and current from the start.
const INSERT_OBJECT_SQL: &str = "INSERT INTO objects (id, bucket_id, key, status, is_latest, \
    size, etag, content_type, content_encoding, content_disposition, content_language, \
    cache_control, expires, user_meta, storage_class, tier, created_at, parts_count, \
    checksum_algo, checksum_value, checksum_type, tags) \
    VALUES ($1, $2, $3, 'COMMITTED', TRUE, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
    $16, $17, $18, $19, $20)";

macro_rules! bind_insert_object {
    ($q:expr, $bucket_id:expr, $tier:expr, $row:expr) => {{
        let row: &ObjectRow = $row;
        $q.bind(row.id.clone())
            .bind($bucket_id.to_owned())
            .bind(row.key.clone())
            .bind(to_i64(row.size))
            .bind(row.etag.clone())
            .bind(row.headers.content_type.clone())
            .bind(row.headers.content_encoding.clone())
            .bind(row.headers.content_disposition.clone())
            .bind(row.headers.content_language.clone())
            .bind(row.headers.cache_control.clone())
            .bind(row.headers.expires.clone())
            .bind(headers_json(&row.headers))
            .bind(row.storage_class.clone())
            .bind($tier.as_str())
            .bind(row.created_at)
            .bind(row.parts_count)
            .bind(row.checksum.as_ref().map(|k| k.algo.as_str()))
            .bind(row.checksum.as_ref().map(|k| k.value.clone()))
            .bind(row.checksum.as_ref().map(Checksum::type_str))
            .bind(tags_json(&row.headers))
    }};
}

/// Releases one reference (`$3`: now, the start of a zero count). Returns the new count.
const RELEASE_SQL: &str = "UPDATE blobs SET ref_count = ref_count - 1, \
    zero_since = CASE WHEN ref_count = 1 THEN $3 ELSE zero_since END \
    WHERE tier = $1 AND hash = $2 RETURNING ref_count";

/// Adds a reference to an existing blob. Returns the new count.
const ADD_REF_SQL: &str = "UPDATE blobs SET ref_count = ref_count + 1, zero_since = NULL \
    WHERE tier = $1 AND hash = $2 RETURNING ref_count";

/// Adds a reference to a newly written blob, creating its row if needed. Returns the new count.
const UPSERT_BLOB_SQL: &str = "INSERT INTO blobs (tier, hash, size, ref_count, zero_since, \
    created_at) VALUES ($1, $2, $3, 1, NULL, $4) \
    ON CONFLICT (tier, hash) DO UPDATE \
    SET ref_count = blobs.ref_count + 1, zero_since = NULL RETURNING ref_count";

/// An inline blob's bytes, after its row (`UPSERT_BLOB_SQL`); also for a blob that has a file
/// (then either copy serves them). Bytes already there stay.
const INSERT_BLOB_DATA_SQL: &str = "INSERT INTO blob_data (tier, hash, data) \
    VALUES ($1, $2, $3) ON CONFLICT (tier, hash) DO NOTHING";

macro_rules! bind_delta {
    ($q:expr, $d:expr, $new_blob:expr, $now:expr) => {{
        let (d, new_blob, now): (&Delta, Option<&Segment>, i64) = ($d, $new_blob, $now);
        let q = $q.bind(d.tier.as_str()).bind(d.hash.clone());
        match d.kind(new_blob) {
            DeltaKind::Release => q.bind(now),
            DeltaKind::AddRef => q,
            DeltaKind::New => q.bind(to_i64(d.size)).bind(now),
        }
    }};
}

/// `INSERT_BLOB_DATA_SQL`'s values for a new blob's inline bytes.
macro_rules! bind_blob_data {
    ($q:expr, $blob:expr, $data:expr) => {{
        let (blob, data): (&Segment, &bytes::Bytes) = ($blob, $data);
        $q.bind(blob.tier.as_str())
            .bind(blob.hash.clone())
            .bind(data.to_vec())
    }};
}

const INSERT_SEGMENT_SQL: &str = "INSERT INTO object_segments (object_id, seq, tier, blob_hash, \
    size) VALUES ($1, $2, $3, $4, $5)";

macro_rules! bind_segment {
    ($q:expr, $object_id:expr, $seq:expr, $seg:expr) => {{
        let s: &Segment = $seg;
        $q.bind($object_id.to_owned())
            .bind(i32::try_from($seq).unwrap_or(i32::MAX))
            .bind(s.tier.as_str())
            .bind(s.hash.clone())
            .bind(to_i64(s.size))
    }};
}

fn headers_json(h: &ObjectHeaders) -> String {
    serde_json::to_string(&h.user_meta).unwrap_or_else(|_| "{}".to_owned())
}

fn tags_json(h: &ObjectHeaders) -> Option<String> {
    (!h.tags.is_empty()).then(|| serde_json::to_string(&h.tags).unwrap_or_else(|_| "{}".to_owned()))
}

fn json_map(v: Option<String>) -> MetaResult<BTreeMap<String, String>> {
    match v {
        Some(s) => serde_json::from_str(&s).map_err(|e| MetaError::Corrupt(e.to_string())),
        None => Ok(BTreeMap::new()),
    }
}

fn to_u64(v: i64, what: &str) -> MetaResult<u64> {
    u64::try_from(v).map_err(|_| MetaError::Corrupt(format!("negative {what}: {v}")))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn algo_of(s: &str) -> MetaResult<ChecksumAlgo> {
    ChecksumAlgo::parse(s).ok_or_else(|| MetaError::Corrupt(format!("unknown checksum {s:?}")))
}

fn checksum_of(
    algo: Option<String>,
    value: Option<String>,
    kind: Option<String>,
) -> MetaResult<Option<Checksum>> {
    let (Some(algo), Some(value)) = (algo, value) else {
        return Ok(None);
    };
    Ok(Some(Checksum {
        algo: algo_of(&algo)?,
        value,
        full_object: kind.as_deref() != Some("COMPOSITE"),
    }))
}

fn tier_of(s: &str) -> MetaResult<Tier> {
    Tier::parse(s).ok_or_else(|| MetaError::Corrupt(format!("unknown tier {s:?}")))
}

/// Conditional writes, checked against the current version inside the commit transaction.
fn check_condition(c: &WriteCondition, current: Option<&ObjectRow>) -> MetaResult<()> {
    match (c, current) {
        (WriteCondition::IfNoneMatchAny, Some(_)) => Err(MetaError::PreconditionFailed),
        (WriteCondition::IfNoneMatch(etag), Some(o)) if *etag == o.etag => {
            Err(MetaError::PreconditionFailed)
        }
        (WriteCondition::IfMatch(_), None) => Err(MetaError::NoSuchKey),
        (WriteCondition::IfMatch(Some(etag)), Some(o)) if *etag != o.etag => {
            Err(MetaError::PreconditionFailed)
        }
        _ => Ok(()),
    }
}

/// A reference-count change on one blob, applied in `(tier, hash)` order (+1 before -1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Delta {
    tier: Tier,
    hash: String,
    release: bool,
    size: u64,
}

enum DeltaKind {
    Release,
    /// A reference to a blob that has a row (copies, completions).
    AddRef,
    /// A reference to the blob a commit just wrote: its row may not exist yet.
    New,
}

impl Delta {
    fn kind(&self, new_blob: Option<&Segment>) -> DeltaKind {
        if self.release {
            DeltaKind::Release
        } else if new_blob.is_some_and(|b| b.tier == self.tier && b.hash == self.hash) {
            DeltaKind::New
        } else {
            DeltaKind::AddRef
        }
    }

    fn sql(&self, new_blob: Option<&Segment>) -> &'static str {
        match self.kind(new_blob) {
            DeltaKind::Release => RELEASE_SQL,
            DeltaKind::AddRef => ADD_REF_SQL,
            DeltaKind::New => UPSERT_BLOB_SQL,
        }
    }
}

/// The count a delta statement returned: `None` (no row) and negative counts break invariants.
fn check_count(d: &Delta, count: Option<i64>) -> MetaResult<()> {
    match count {
        None => Err(MetaError::Invariant(format!(
            "referenced blob {}/{} has no row",
            d.tier.as_str(),
            d.hash
        ))),
        Some(c) if c < 0 => Err(MetaError::Invariant(format!(
            "negative ref_count on {}",
            d.hash
        ))),
        Some(_) => Ok(()),
    }
}

/// An insert's foreign key on `bucket_id` failed: the bucket was deleted meanwhile.
fn no_bucket_on_fk(e: sqlx::Error) -> MetaError {
    match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => MetaError::NoSuchBucket,
        _ => MetaError::Db(e),
    }
}

fn deltas(add: &[Segment], release: &[Segment]) -> Vec<Delta> {
    let mk = |s: &Segment, release| Delta {
        tier: s.tier,
        hash: s.hash.clone(),
        release,
        size: s.size,
    };
    let mut v: Vec<Delta> = add.iter().map(|s| mk(s, false)).collect();
    v.extend(release.iter().map(|s| mk(s, true)));
    v.sort();
    v
}

/// The version a PUT commit inserts.
fn new_version(c: &PutCommit) -> ObjectRow {
    ObjectRow {
        id: c.object_id.clone(),
        key: c.key.clone(),
        size: c.size,
        etag: c.etag.clone(),
        headers: c.headers.clone(),
        storage_class: c.storage_class.clone(),
        created_at: crate::now_micros(),
        segments: c.blob.iter().cloned().collect(),
        parts_count: None,
        checksum: c.checksum.clone(),
        corrupted: false,
    }
}

/// The tier a version's row records (its first segment's; hot for an empty object).
fn tier_of_segments(segments: &[Segment]) -> Tier {
    segments.first().map(|s| s.tier).unwrap_or(Tier::Hot)
}

macro_rules! sql_meta {
    ($store:ident, $db:ty, pg = $pg:expr, write = $write:ident, read = $read:ident) => {
        impl $store {
            const PG: bool = $pg;

            /// `bucket`, through the point lookups (`find`).
            async fn bucket_of(&self, tenant_id: &str, name: &str) -> MetaResult<Option<BucketRow>> {
                Ok(self.find(tenant_id, name, None, false).await?.bucket)
            }

            /// `latest`, through the point lookups (`find`): bucket, version and segments in
            /// one query (HEAD and GET are the hot path).
            async fn latest_of(
                &self,
                tenant_id: &str,
                bucket: &str,
                key: &str,
                with_inline: bool,
            ) -> MetaResult<Option<ObjectRow>> {
                let found = self.find(tenant_id, bucket, Some(key), with_inline).await?;
                match found.bucket {
                    Some(_) => Ok(found.object),
                    None => Err(MetaError::NoSuchBucket),
                }
            }

            /// Locks an upload row (Postgres) and checks it belongs to `bucket_id`.
            async fn lock_upload(
                tx: &mut sqlx::Transaction<'static, $db>,
                bucket_id: Option<&str>,
                upload_id: &str,
            ) -> MetaResult<UploadRow> {
                const Q: &str = if $pg {
                    const_format::concatcp!("SELECT ", UPLOAD_COLS,
                        " FROM multipart_uploads WHERE upload_id = $1 FOR UPDATE")
                } else {
                    const_format::concatcp!("SELECT ", UPLOAD_COLS,
                        " FROM multipart_uploads WHERE upload_id = $1")
                };
                let row = sqlx::query(Q).bind(upload_id).fetch_optional(&mut **tx).await?;
                let up = row.as_ref().map(decode::upload_of).transpose()?;
                match up {
                    Some(u) if bucket_id.is_none_or(|b| b == u.bucket_id) => Ok(u),
                    _ => Err(MetaError::NoSuchUpload),
                }
            }

            /// Aborts every open upload of a bucket (S3 deletes a bucket's incomplete uploads
            /// with it), releasing their parts' blob references as AbortMultipartUpload does.
            /// PostgreSQL: the uploads are locked first, so a part committing concurrently either
            /// landed before (and is released here) or finds its upload gone.
            async fn abort_bucket_uploads(
                tx: &mut sqlx::Transaction<'static, $db>,
                bucket_id: &str,
            ) -> MetaResult<()> {
                const LOCK: &str = if $pg {
                    "SELECT upload_id FROM multipart_uploads WHERE bucket_id = $1 FOR UPDATE"
                } else {
                    "SELECT upload_id FROM multipart_uploads WHERE bucket_id = $1"
                };
                let uploads: Vec<String> = sqlx::query_scalar(LOCK)
                    .bind(bucket_id)
                    .fetch_all(&mut **tx)
                    .await?;
                for upload_id in &uploads {
                    Self::release_parts(tx, upload_id).await?;
                }
                sqlx::query("DELETE FROM multipart_uploads WHERE bucket_id = $1")
                    .bind(bucket_id)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Releases the blob references of an upload's parts (before its rows go).
            async fn release_parts(
                tx: &mut sqlx::Transaction<'static, $db>,
                upload_id: &str,
            ) -> MetaResult<()> {
                let parts = Self::all_parts(tx, upload_id).await?;
                let release: Vec<Segment> = parts.into_iter().filter_map(|p| p.blob).collect();
                Self::apply_deltas(tx, &deltas(&[], &release), None, None).await
            }

            async fn all_parts(
                tx: &mut sqlx::Transaction<'static, $db>,
                upload_id: &str,
            ) -> MetaResult<Vec<PartRow>> {
                const Q: &str = const_format::concatcp!("SELECT ", PART_COLS,
                    " FROM upload_parts WHERE upload_id = $1 ORDER BY part_number");
                let rows = sqlx::query(Q)
                .bind(upload_id)
                .fetch_all(&mut **tx)
                .await?;
                rows.iter().map(decode::part_of).collect()
            }

            /// A write transaction. SQLite: `BEGIN IMMEDIATE`, the database's write lock from
            /// the first statement on, so nothing it reads changes before it commits — also
            /// against another process (`just-storage gc` beside `serve`).
            async fn begin_write(
                pool: &sqlx::Pool<$db>,
            ) -> MetaResult<sqlx::Transaction<'static, $db>> {
                Ok(if Self::PG {
                    pool.begin().await?
                } else {
                    pool.begin_with("BEGIN IMMEDIATE").await?
                })
            }

            /// Serialises writers of one key (Postgres); SQLite's single writer already does.
            async fn lock_key(
                tx: &mut sqlx::Transaction<'static, $db>,
                bucket_id: &str,
                key: &str,
            ) -> MetaResult<()> {
                if Self::PG {
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
                        .bind(bucket_id)
                        .bind(key)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            /// The current version of a key with its segments, in one query.
            async fn latest_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                bucket_id: &str,
                key: &str,
            ) -> MetaResult<Option<ObjectRow>> {
                let rows = sqlx::query(LATEST_IN_SQL)
                    .bind(bucket_id)
                    .bind(key)
                    .fetch_all(&mut *conn)
                    .await?;
                decode::object_from_rows(&mut rows.iter(), false)
            }

            /// Applies reference-count changes in lock order; `place` runs right after the new
            /// blob's row is locked.
            async fn apply_deltas(
                tx: &mut sqlx::Transaction<'static, $db>,
                deltas: &[Delta],
                new_blob: Option<&Segment>,
                place: Option<PlaceFn<'_>>,
            ) -> MetaResult<()> {
                let now = crate::now_micros();
                for d in deltas {
                    let q = sqlx::query_scalar(d.sql(new_blob));
                    let count: Option<i64> =
                        bind_delta!(q, d, new_blob, now).fetch_optional(&mut **tx).await?;
                    check_count(d, count)?;
                    if !matches!(d.kind(new_blob), DeltaKind::New) {
                        continue;
                    }
                    if let Some((blob, data)) =
                        new_blob.and_then(|b| b.inline.as_ref().map(|data| (b, data)))
                    {
                        bind_blob_data!(sqlx::query(INSERT_BLOB_DATA_SQL), blob, data)
                            .execute(&mut **tx)
                            .await?;
                    }
                    if let Some(place) = place {
                        // Under the row lock: the collector cannot unlink this file now, and a
                        // file it unlinked earlier is put back (the row's own re-check).
                        place().await.map_err(MetaError::Place)?;
                    }
                }
                Ok(())
            }

            async fn demote(
                tx: &mut sqlx::Transaction<'static, $db>,
                object_id: &str,
            ) -> MetaResult<()> {
                sqlx::query(DEMOTE_SQL)
                    .bind(object_id)
                    .bind(crate::now_micros())
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Inserts a version that is COMMITTED and current from the start (copy, complete).
            async fn insert_committed(
                tx: &mut sqlx::Transaction<'static, $db>,
                bucket_id: &str,
                tier: Tier,
                row: &ObjectRow,
            ) -> MetaResult<()> {
                bind_insert_object!(sqlx::query(INSERT_OBJECT_SQL), bucket_id, tier, row)
                    .execute(&mut **tx)
                    .await
                    .map_err(no_bucket_on_fk)?;
                Ok(())
            }

            async fn insert_segments(
                tx: &mut sqlx::Transaction<'static, $db>,
                object_id: &str,
                segs: &[Segment],
            ) -> MetaResult<()> {
                for (seq, s) in segs.iter().enumerate() {
                    bind_segment!(sqlx::query(INSERT_SEGMENT_SQL), object_id, seq, s)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl MetaStore for $store {
            async fn ping(&self) -> MetaResult<()> {
                sqlx::query("SELECT 1").execute(&self.$read).await?;
                Ok(())
            }

            async fn create_tenant(&self, name: &str) -> MetaResult<String> {
                let id = uuid::Uuid::now_v7().to_string();
                sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(&id)
                    .bind(name)
                    .bind(crate::now_micros())
                    .execute(&self.$write)
                    .await?;
                self.durable().await?;
                Ok(id)
            }

            async fn tenant_id(&self, name: &str) -> MetaResult<Option<String>> {
                Ok(sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.$write)
                    .await?)
            }

            async fn create_access_key(
                &self,
                tenant_id: &str,
                access_key_id: &str,
                secret: &str,
                read_only: bool,
            ) -> MetaResult<()> {
                sqlx::query(
                    "INSERT INTO access_keys (access_key_id, secret, tenant_id, read_only, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(access_key_id)
                .bind(secret)
                .bind(tenant_id)
                .bind(read_only)
                .bind(crate::now_micros())
                .execute(&self.$write)
                .await?;
                self.durable().await?;
                Ok(())
            }

            async fn access_key(&self, access_key_id: &str) -> MetaResult<Option<AccessKey>> {
                let row = sqlx::query(
                    "SELECT access_key_id, secret, tenant_id, read_only FROM access_keys \
                     WHERE access_key_id = $1 AND disabled_at IS NULL",
                )
                .bind(access_key_id)
                .fetch_optional(&self.$read)
                .await?;
                row.map(|r| {
                    Ok(AccessKey {
                        access_key_id: r.try_get("access_key_id")?,
                        secret: r.try_get("secret")?,
                        tenant_id: r.try_get("tenant_id")?,
                        read_only: r.try_get("read_only")?,
                    })
                })
                .transpose()
            }

            async fn tenant_has_keys(&self, tenant_id: &str) -> MetaResult<bool> {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM access_keys WHERE tenant_id = $1 LIMIT 1",
                )
                .bind(tenant_id)
                .fetch_optional(&self.$write)
                .await?;
                Ok(found.is_some())
            }

            async fn create_bucket(&self, tenant_id: &str, name: &str) -> MetaResult<BucketRow> {
                let row = BucketRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    tenant_id: tenant_id.to_owned(),
                    name: name.to_owned(),
                    created_at: crate::now_micros(),
                };
                let done = sqlx::query(
                    "INSERT INTO buckets (id, tenant_id, name, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id, name) DO NOTHING",
                )
                .bind(&row.id)
                .bind(&row.tenant_id)
                .bind(&row.name)
                .bind(row.created_at)
                .execute(&self.$write)
                .await?;
                self.durable().await?;
                if done.rows_affected() == 0 {
                    return Err(MetaError::BucketExists);
                }
                Ok(row)
            }

            async fn bucket(&self, tenant_id: &str, name: &str) -> MetaResult<Option<BucketRow>> {
                self.bucket_of(tenant_id, name).await
            }

            async fn list_buckets(&self, tenant_id: &str) -> MetaResult<Vec<BucketRow>> {
                let rows = sqlx::query(
                    "SELECT id, tenant_id, name, created_at FROM buckets WHERE tenant_id = $1 ORDER BY name",
                )
                .bind(tenant_id)
                .fetch_all(&self.$read)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(BucketRow {
                            id: r.try_get("id")?,
                            tenant_id: r.try_get("tenant_id")?,
                            name: r.try_get("name")?,
                            created_at: r.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn delete_bucket(&self, bucket_id: &str) -> MetaResult<()> {
                retry_deadlocks(|| async move {
                    let mut tx = Self::begin_write(&self.$write).await?;
                    if Self::PG {
                        // Blocks concurrent commits into this bucket until we are done.
                        sqlx::query("SELECT id FROM buckets WHERE id = $1 FOR UPDATE")
                            .bind(bucket_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let live: Option<i64> = sqlx::query_scalar(
                        "SELECT CAST(1 AS BIGINT) FROM objects WHERE bucket_id = $1 AND is_latest LIMIT 1",
                    )
                    .bind(bucket_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if live.is_some() {
                        return Err(MetaError::BucketNotEmpty);
                    }
                    Self::abort_bucket_uploads(&mut tx, bucket_id).await?;
                    // What is left is DELETING rows, which have released their blobs already (a
                    // demoted version is never COMMITTED); `status <> 'COMMITTED'` lets the partial
                    // index `objects_by_status` find them. A row of any other kind would fail the
                    // bucket's foreign key below instead of being lost.
                    sqlx::query("DELETE FROM objects WHERE status <> 'COMMITTED' AND bucket_id = $1")
                        .bind(bucket_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM buckets WHERE id = $1")
                        .bind(bucket_id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    self.durable().await?;
                    Ok(())
                })
                .await
            }

            async fn commit_put(
                &self,
                c: &PutCommit,
                place: Option<PlaceFn<'_>>,
            ) -> MetaResult<ObjectRow> {
                self.commit_put_tx(c, place).await
            }

            async fn commit_copy(&self, c: &CopyCommit) -> MetaResult<ObjectRow> {
                // A deadlock victim (PostgreSQL, 40P01) runs again (`retry_deadlocks`).
                retry_deadlocks(|| async move {
                    let mut tx = Self::begin_write(&self.$write).await?;
                    Self::lock_key(&mut tx, &c.dst_bucket_id, &c.dst_key).await?;
                    let Some(src) = Self::latest_in(&mut tx, &c.src_bucket_id, &c.src_key).await? else {
                        return Err(MetaError::NoSuchKey);
                    };
                    if !c.source_condition.holds(&src) {
                        return Err(MetaError::PreconditionFailed);
                    }
                    let old = Self::latest_in(&mut tx, &c.dst_bucket_id, &c.dst_key).await?;
                    let old_segs = old.as_ref().map(|o| o.segments.as_slice()).unwrap_or(&[]);
                    let ds = deltas(&src.segments, old_segs);
                    Self::apply_deltas(&mut tx, &ds, None, None).await?;
                    if let Some(o) = &old {
                        Self::demote(&mut tx, &o.id).await?;
                    }
                    let row = ObjectRow {
                        id: c.new_id.clone(),
                        key: c.dst_key.clone(),
                        size: src.size,
                        etag: src.etag.clone(),
                        headers: {
                            let mut h = c.headers.clone().unwrap_or_else(|| src.headers.clone());
                            h.tags = c.tags.clone().unwrap_or(src.headers.tags);
                            h
                        },
                        storage_class: c.storage_class.clone().unwrap_or(src.storage_class),
                        created_at: crate::now_micros(),
                        segments: src.segments,
                        parts_count: src.parts_count,
                        checksum: src.checksum,
                        corrupted: src.corrupted,
                    };
                    let tier = tier_of_segments(&row.segments);
                    Self::insert_committed(&mut tx, &c.dst_bucket_id, tier, &row).await?;
                    Self::insert_segments(&mut tx, &row.id, &row.segments).await?;
                    tx.commit().await?;
                    self.durable().await?;
                    Ok(row)
                })
                .await
            }

            async fn latest(
                &self,
                tenant_id: &str,
                bucket: &str,
                key: &str,
                with_inline: bool,
            ) -> MetaResult<Option<ObjectRow>> {
                self.latest_of(tenant_id, bucket, key, with_inline).await
            }

            async fn delete_key(
                &self,
                tenant_id: &str,
                bucket: &str,
                key: &str,
            ) -> MetaResult<Option<bool>> {
                self.delete_key_tx(tenant_id, bucket, key).await
            }

            async fn set_tags(
                &self,
                bucket_id: &str,
                key: &str,
                tags: &BTreeMap<String, String>,
            ) -> MetaResult<bool> {
                let json = (!tags.is_empty())
                    .then(|| serde_json::to_string(tags).unwrap_or_else(|_| "{}".to_owned()));
                let done = sqlx::query(
                    "UPDATE objects SET tags = $3 WHERE bucket_id = $1 AND key = $2 AND is_latest",
                )
                .bind(bucket_id)
                .bind(key)
                .bind(json)
                .execute(&self.$write)
                .await?;
                self.durable().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn bucket_config(
                &self,
                bucket_id: &str,
                kind: &str,
            ) -> MetaResult<Option<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT value FROM bucket_configs WHERE bucket_id = $1 AND kind = $2",
                )
                .bind(bucket_id)
                .bind(kind)
                .fetch_optional(&self.$read)
                .await?)
            }

            async fn set_bucket_config(
                &self,
                bucket_id: &str,
                kind: &str,
                value: Option<&str>,
            ) -> MetaResult<bool> {
                let mut tx = Self::begin_write(&self.$write).await?;
                let exists: Option<String> =
                    sqlx::query_scalar("SELECT id FROM buckets WHERE id = $1")
                        .bind(bucket_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if exists.is_none() {
                    return Ok(false);
                }
                match value {
                    Some(v) => {
                        sqlx::query(
                            "INSERT INTO bucket_configs (bucket_id, kind, value) VALUES ($1, $2, $3) \
                             ON CONFLICT (bucket_id, kind) DO UPDATE SET value = excluded.value",
                        )
                        .bind(bucket_id)
                        .bind(kind)
                        .bind(v)
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM bucket_configs WHERE bucket_id = $1 AND kind = $2")
                            .bind(bucket_id)
                            .bind(kind)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                self.durable().await?;
                Ok(true)
            }

            async fn acl(&self, of: AclOf<'_>) -> MetaResult<Option<Option<String>>> {
                let (q, id) = match of {
                    AclOf::Object(id) => ("SELECT acl FROM objects WHERE id = $1", id),
                    AclOf::Upload(id) => {
                        ("SELECT acl FROM multipart_uploads WHERE upload_id = $1", id)
                    }
                };
                Ok(sqlx::query_scalar(q).bind(id).fetch_optional(&self.$read).await?)
            }

            async fn set_acl(&self, of: AclOf<'_>, acl: Option<&str>) -> MetaResult<bool> {
                let (q, id) = match of {
                    AclOf::Object(id) => ("UPDATE objects SET acl = $2 WHERE id = $1", id),
                    AclOf::Upload(id) => {
                        ("UPDATE multipart_uploads SET acl = $2 WHERE upload_id = $1", id)
                    }
                };
                let done = sqlx::query(q).bind(id).bind(acl).execute(&self.$write).await?;
                self.durable().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn list_page(
                &self,
                bucket_id: &str,
                start: &str,
                start_inclusive: bool,
                before: Option<&str>,
                limit: usize,
            ) -> MetaResult<Vec<ListEntry>> {
                self.page(bucket_id, start, start_inclusive, before, limit).await
            }

            async fn list_walk(
                &self,
                bucket_id: &str,
                start: &str,
                start_inclusive: bool,
                before: Option<&str>,
                roll: Rollup<'_>,
                limit: usize,
            ) -> MetaResult<Vec<ListEntry>> {
                self.walk(bucket_id, start, start_inclusive, before, roll, limit)
                    .await
            }

            async fn create_upload(&self, u: &UploadRow) -> MetaResult<()> {
                sqlx::query(
                    "INSERT INTO multipart_uploads (upload_id, bucket_id, key, initiated, tier, \
                     storage_class, content_type, content_encoding, content_disposition, \
                     content_language, cache_control, expires, user_meta, checksum_algo, checksum_type, \
                     tags) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(&u.upload_id)
                .bind(&u.bucket_id)
                .bind(&u.key)
                .bind(u.initiated)
                .bind(u.tier.as_str())
                .bind(&u.storage_class)
                .bind(&u.headers.content_type)
                .bind(&u.headers.content_encoding)
                .bind(&u.headers.content_disposition)
                .bind(&u.headers.content_language)
                .bind(&u.headers.cache_control)
                .bind(&u.headers.expires)
                .bind(headers_json(&u.headers))
                .bind(u.checksum_algo.map(ChecksumAlgo::as_str))
                .bind(if u.full_object { "FULL_OBJECT" } else { "COMPOSITE" })
                .bind(tags_json(&u.headers))
                .execute(&self.$write)
                .await?;
                self.durable().await?;
                Ok(())
            }

            async fn upload(&self, bucket_id: &str, upload_id: &str) -> MetaResult<Option<UploadRow>> {
                const Q: &str = const_format::concatcp!("SELECT ", UPLOAD_COLS,
                    " FROM multipart_uploads WHERE upload_id = $1 AND bucket_id = $2");
                let row = sqlx::query(Q)
                    .bind(upload_id)
                    .bind(bucket_id)
                    .fetch_optional(&self.$read)
                    .await?;
                row.as_ref().map(decode::upload_of).transpose()
            }

            async fn commit_part(
                &self,
                upload_id: &str,
                part: &PartRow,
                place: Option<PlaceFn<'_>>,
            ) -> MetaResult<()> {
                retry_deadlocks(|| async move {
                    let mut tx = Self::begin_write(&self.$write).await?;
                    // Serialises writers of this upload's parts (and its complete/abort).
                    Self::lock_upload(&mut tx, None, upload_id).await?;
                    const Q: &str = const_format::concatcp!("SELECT ", PART_COLS,
                        " FROM upload_parts WHERE upload_id = $1 AND part_number = $2");
                    let old = sqlx::query(Q)
                    .bind(upload_id)
                    .bind(part.part_number)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let old = old.as_ref().map(decode::part_of).transpose()?;
                    let new_segs: Vec<Segment> = part.blob.iter().cloned().collect();
                    let old_segs: Vec<Segment> = old.and_then(|p| p.blob).into_iter().collect();
                    let ds = deltas(&new_segs, &old_segs);
                    Self::apply_deltas(&mut tx, &ds, part.blob.as_ref(), place).await?;
                    let tier = part.blob.as_ref().map_or("hot", |b| b.tier.as_str());
                    sqlx::query(
                        "INSERT INTO upload_parts (upload_id, part_number, tier, blob_hash, size, etag, \
                         created_at, checksum_value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (upload_id, part_number) DO UPDATE SET tier = excluded.tier, \
                         blob_hash = excluded.blob_hash, size = excluded.size, etag = excluded.etag, \
                         created_at = excluded.created_at, checksum_value = excluded.checksum_value",
                    )
                    .bind(upload_id)
                    .bind(part.part_number)
                    .bind(tier)
                    .bind(part.blob.as_ref().map(|b| b.hash.as_str()))
                    .bind(to_i64(part.size))
                    .bind(&part.etag)
                    .bind(part.created_at)
                    .bind(&part.checksum)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    self.durable().await?;
                    Ok(())
                })
                .await
            }

            async fn list_parts(
                &self,
                upload_id: &str,
                after: i32,
                limit: usize,
            ) -> MetaResult<Vec<PartRow>> {
                const Q: &str = const_format::concatcp!("SELECT ", PART_COLS,
                    " FROM upload_parts WHERE upload_id = $1 AND part_number > $2 \
                     ORDER BY part_number LIMIT +$3");
                let rows = sqlx::query(Q)
                .bind(upload_id)
                .bind(after)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.$read)
                .await?;
                rows.iter().map(decode::part_of).collect()
            }

            async fn complete_upload(&self, c: &CompleteCommit<'_>) -> MetaResult<ObjectRow> {
                // A deadlock victim (PostgreSQL, 40P01) runs again (`retry_deadlocks`).
                retry_deadlocks(|| async move {
                    let mut tx = Self::begin_write(&self.$write).await?;
                    Self::lock_key(&mut tx, &c.bucket_id, &c.key).await?;
                    let up = Self::lock_upload(&mut tx, Some(&c.bucket_id), &c.upload_id).await?;
                    if up.key != c.key {
                        return Err(MetaError::NoSuchUpload);
                    }
                    let parts = Self::all_parts(&mut tx, &c.upload_id).await?;
                    let a = (c.assemble)(&parts)?;
                    let old = Self::latest_in(&mut tx, &c.bucket_id, &c.key).await?;
                    check_condition(&c.condition, old.as_ref())?;
                    let mut release: Vec<Segment> = a.unused.clone();
                    release.extend(old.iter().flat_map(|o| o.segments.iter().cloned()));
                    Self::apply_deltas(&mut tx, &deltas(&[], &release), None, None).await?;
                    if let Some(o) = &old {
                        Self::demote(&mut tx, &o.id).await?;
                    }
                    let row = ObjectRow {
                        id: c.new_id.clone(),
                        key: c.key.clone(),
                        size: a.size,
                        etag: a.etag.clone(),
                        headers: up.headers.clone(),
                        storage_class: up.storage_class.clone(),
                        created_at: crate::now_micros(),
                        segments: a.segments.clone(),
                        parts_count: Some(a.parts_count),
                        checksum: a.checksum.clone(),
                        corrupted: false,
                    };
                    Self::insert_committed(&mut tx, &c.bucket_id, up.tier, &row).await?;
                    Self::insert_segments(&mut tx, &row.id, &row.segments).await?;
                    for p in &a.parts {
                        sqlx::query(
                            "INSERT INTO object_parts (object_id, seq, part_number, size, checksum) \
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(&row.id)
                        .bind(p.seq)
                        .bind(p.part_number)
                        .bind(i64::try_from(p.size).unwrap_or(i64::MAX))
                        .bind(p.checksum.as_deref())
                        .execute(&mut *tx)
                        .await?;
                    }
                    sqlx::query("DELETE FROM multipart_uploads WHERE upload_id = $1")
                        .bind(&c.upload_id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    self.durable().await?;
                    Ok(row)
                })
                .await
            }

            async fn object_parts(
                &self,
                object_id: &str,
                after: i32,
                limit: usize,
            ) -> MetaResult<Vec<ObjectPart>> {
                let rows = sqlx::query(
                    "SELECT seq, part_number, size, checksum FROM object_parts \
                     WHERE object_id = $1 AND seq > $2 ORDER BY seq LIMIT +$3",
                )
                .bind(object_id)
                .bind(after)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.$read)
                .await?;
                rows.iter()
                    .map(|r| {
                        let size: i64 = r.try_get("size")?;
                        Ok(ObjectPart {
                            seq: r.try_get("seq")?,
                            part_number: r.try_get("part_number")?,
                            size: u64::try_from(size).unwrap_or(0),
                            checksum: r.try_get("checksum")?,
                        })
                    })
                    .collect()
            }

            async fn abort_upload(&self, bucket_id: &str, upload_id: &str) -> MetaResult<bool> {
                retry_deadlocks(|| async move {
                    let mut tx = Self::begin_write(&self.$write).await?;
                    match Self::lock_upload(&mut tx, Some(bucket_id), upload_id).await {
                        Err(MetaError::NoSuchUpload) => return Ok(false),
                        r => r?,
                    };
                    Self::release_parts(&mut tx, upload_id).await?;
                    sqlx::query("DELETE FROM multipart_uploads WHERE upload_id = $1")
                        .bind(upload_id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    self.durable().await?;
                    Ok(true)
                })
                .await
            }

            async fn list_uploads(
                &self,
                bucket_id: &str,
                prefix: &str,
                after_key: &str,
                after_id: &str,
                limit: usize,
            ) -> MetaResult<Vec<UploadRow>> {
                const Q: &str = const_format::concatcp!("SELECT ", UPLOAD_COLS,
                    " FROM multipart_uploads WHERE bucket_id = $1 AND key >= $2 \
                     AND (key > $3 OR (key = $3 AND upload_id > $4)) \
                     ORDER BY key, upload_id LIMIT +$5");
                let rows = sqlx::query(Q)
                    .bind(bucket_id)
                    .bind(prefix)
                    .bind(after_key)
                    .bind(after_id)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.$read)
                    .await?;
                // `key >= prefix` starts the range; rows past the prefix end it.
                let mut out = Vec::new();
                for r in &rows {
                    let u = decode::upload_of(r)?;
                    if !u.key.starts_with(prefix) {
                        break;
                    }
                    out.push(u);
                }
                Ok(out)
            }

            async fn stale_uploads(
                &self,
                cutoff: i64,
                limit: usize,
            ) -> MetaResult<Vec<(String, String)>> {
                let rows = sqlx::query(
                    "SELECT bucket_id, upload_id FROM multipart_uploads WHERE initiated < $1 \
                     ORDER BY initiated LIMIT +$2",
                )
                .bind(cutoff)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.$write)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("bucket_id")?, r.try_get("upload_id")?)))
                    .collect()
            }

            async fn purge_deleted(&self, cutoff: i64, limit: usize) -> MetaResult<u64> {
                retry_deadlocks(|| async move {
                    let done = sqlx::query(
                        "DELETE FROM objects WHERE id IN (SELECT id FROM objects \
                         WHERE status = 'DELETING' AND deleted_at < $1 LIMIT +$2)",
                    )
                    .bind(cutoff)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .execute(&self.$write)
                    .await?;
                    self.durable().await?;
                    Ok(done.rows_affected())
                })
                .await
            }

            async fn collectable_blobs(&self, cutoff: i64, limit: usize) -> MetaResult<Vec<BlobId>> {
                let rows = sqlx::query(
                    "SELECT tier, hash FROM blobs WHERE ref_count = 0 AND zero_since < $1 \
                     ORDER BY zero_since LIMIT +$2",
                )
                .bind(cutoff)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.$write)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(BlobId {
                            tier: tier_of(r.try_get::<&str, _>("tier")?)?,
                            hash: r.try_get("hash")?,
                        })
                    })
                    .collect()
            }

            async fn collect_blob(
                &self,
                blob: &BlobId,
                cutoff: i64,
                unlink: PlaceFn<'_>,
            ) -> MetaResult<bool> {
                retry_deadlocks(|| async move {
                    const Q: &str = if $pg {
                        "SELECT ref_count, zero_since FROM blobs WHERE tier = $1 AND hash = $2 FOR UPDATE"
                    } else {
                        "SELECT ref_count, zero_since FROM blobs WHERE tier = $1 AND hash = $2"
                    };
                    let mut tx = Self::begin_write(&self.$write).await?;
                    let row = sqlx::query(Q)
                        .bind(blob.tier.as_str())
                        .bind(&blob.hash)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(row) = row else { return Ok(false) };
                    let refs: i64 = row.try_get("ref_count")?;
                    let zero_since: Option<i64> = row.try_get("zero_since")?;
                    if refs < 0 {
                        return Err(MetaError::Invariant(format!("negative ref_count on {}", blob.hash)));
                    }
                    // The GC invariant: unlink only at zero references past the grace period, under
                    // this row's lock.
                    if refs != 0 || zero_since.is_none_or(|z| z >= cutoff) {
                        return Ok(false);
                    }
                    unlink().await.map_err(MetaError::Place)?;
                    sqlx::query("DELETE FROM blobs WHERE tier = $1 AND hash = $2")
                        .bind(blob.tier.as_str())
                        .bind(&blob.hash)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    self.durable().await?;
                    Ok(true)
                })
                .await
            }

            async fn refcount_mismatches(&self) -> MetaResult<Vec<RefMismatch>> {
                let rows = sqlx::query(
                    "WITH refs AS ( \
                       SELECT s.tier, s.blob_hash AS hash FROM object_segments s \
                       JOIN objects o ON o.id = s.object_id WHERE o.status = 'COMMITTED' \
                       UNION ALL \
                       SELECT tier, blob_hash AS hash FROM upload_parts WHERE blob_hash IS NOT NULL), \
                     counted AS (SELECT tier, hash, CAST(COUNT(*) AS BIGINT) AS n FROM refs \
                       GROUP BY tier, hash) \
                     SELECT b.tier, b.hash, b.ref_count, CAST(COALESCE(c.n, 0) AS BIGINT) AS actual \
                     FROM blobs b LEFT JOIN counted c ON c.tier = b.tier AND c.hash = b.hash \
                     WHERE b.ref_count <> COALESCE(c.n, 0) \
                     UNION ALL \
                     SELECT c.tier, c.hash, CAST(NULL AS BIGINT), c.n FROM counted c \
                     LEFT JOIN blobs b ON b.tier = c.tier AND b.hash = c.hash WHERE b.hash IS NULL",
                )
                .fetch_all(&self.$write)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(RefMismatch {
                            tier: r.try_get("tier")?,
                            hash: r.try_get("hash")?,
                            ref_count: r.try_get("ref_count")?,
                            actual: r.try_get("actual")?,
                        })
                    })
                    .collect()
            }

            async fn blobs_to_verify(&self, limit: usize) -> MetaResult<Vec<BlobRow>> {
                const Q: &str = const_format::concatcp!(
                    "SELECT ", BLOB_ROW_COLS, " FROM blobs WHERE NOT corrupted \
                     ORDER BY COALESCE(verified_at, 0), hash LIMIT +$1"
                );
                let rows = sqlx::query(Q)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.$read)
                    .await?;
                rows.iter().map(decode::blob_row_of).collect()
            }

            async fn blob_data(&self, blob: &BlobId) -> MetaResult<Option<Vec<u8>>> {
                let data: Option<Option<Vec<u8>>> =
                    sqlx::query_scalar("SELECT data FROM blob_data WHERE tier = $1 AND hash = $2")
                        .bind(blob.tier.as_str())
                        .bind(&blob.hash)
                        .fetch_optional(&self.$read)
                        .await?;
                Ok(data.flatten())
            }

            async fn mark_verified(&self, blob: &BlobId, intact: bool) -> MetaResult<()> {
                sqlx::query(
                    "UPDATE blobs SET verified_at = $3, corrupted = (corrupted OR $4) \
                     WHERE tier = $1 AND hash = $2",
                )
                .bind(blob.tier.as_str())
                .bind(&blob.hash)
                .bind(crate::now_micros())
                .bind(!intact)
                .execute(&self.$write)
                .await?;
                self.durable().await?;
                Ok(())
            }

            async fn blob_rows(&self, after: &str, limit: usize) -> MetaResult<Vec<BlobRow>> {
                const Q: &str = const_format::concatcp!(
                    "SELECT ", BLOB_ROW_COLS, " FROM blobs WHERE hash > $1 ORDER BY hash LIMIT +$2"
                );
                let rows = sqlx::query(Q)
                    .bind(after)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.$read)
                    .await?;
                rows.iter().map(decode::blob_row_of).collect()
            }

            async fn blob_exists(&self, blob: &BlobId) -> MetaResult<bool> {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM blobs WHERE tier = $1 AND hash = $2",
                )
                .bind(blob.tier.as_str())
                .bind(&blob.hash)
                .fetch_optional(&self.$read)
                .await?;
                Ok(found.is_some())
            }

            async fn adopt_blob(&self, blob: &BlobId, size: u64) -> MetaResult<bool> {
                let now = crate::now_micros();
                let done = sqlx::query(
                    "INSERT INTO blobs (tier, hash, size, ref_count, zero_since, created_at) \
                     VALUES ($1, $2, $3, 0, $4, $4) ON CONFLICT (tier, hash) DO NOTHING",
                )
                .bind(blob.tier.as_str())
                .bind(&blob.hash)
                .bind(to_i64(size))
                .bind(now)
                .execute(&self.$write)
                .await?;
                self.durable().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn repair_blob(&self, blob: &BlobId, fix: BlobRepair) -> MetaResult<()> {
                let (tier, hash) = (blob.tier.as_str(), blob.hash.as_str());
                match fix {
                    BlobRepair::SetRefCount(n) => {
                        sqlx::query(
                            "UPDATE blobs SET ref_count = $3, zero_since = CASE WHEN $3 = 0 \
                             THEN COALESCE(zero_since, $4) ELSE NULL END \
                             WHERE tier = $1 AND hash = $2",
                        )
                        .bind(tier)
                        .bind(hash)
                        .bind(n)
                        .bind(crate::now_micros())
                        .execute(&self.$write)
                        .await?
                    }
                    BlobRepair::Delete => {
                        sqlx::query("DELETE FROM blobs WHERE tier = $1 AND hash = $2 AND ref_count = 0")
                            .bind(tier)
                            .bind(hash)
                            .execute(&self.$write)
                            .await?
                    }
                    BlobRepair::MarkCorrupted => {
                        sqlx::query("UPDATE blobs SET corrupted = TRUE WHERE tier = $1 AND hash = $2")
                            .bind(tier)
                            .bind(hash)
                            .execute(&self.$write)
                            .await?
                    }
                };
                self.durable().await?;
                Ok(())
            }

            async fn usage(&self) -> MetaResult<Vec<UsageRow>> {
                let rows = sqlx::query(
                    "SELECT t.name AS tenant, b.name AS bucket, \
                     CAST(COUNT(o.id) AS BIGINT) AS objects, \
                     CAST(COALESCE(SUM(o.size), 0) AS BIGINT) AS bytes \
                     FROM buckets b JOIN tenants t ON t.id = b.tenant_id \
                     LEFT JOIN objects o ON o.bucket_id = b.id AND o.is_latest \
                     GROUP BY t.name, b.name ORDER BY t.name, b.name",
                )
                .fetch_all(&self.$read)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(UsageRow {
                            tenant: r.try_get("tenant")?,
                            bucket: r.try_get("bucket")?,
                            objects: r.try_get("objects")?,
                            bytes: r.try_get("bytes")?,
                        })
                    })
                    .collect()
            }
        }
    };
}

sql_meta!(
    SqliteMeta,
    sqlx::Sqlite,
    pg = false,
    write = write,
    read = read
);
sql_meta!(PgMeta, sqlx::Postgres, pg = true, write = pool, read = pool);

impl SourceCondition {
    /// S3's precedence: If-Match beats If-Unmodified-Since; If-None-Match beats If-Modified-Since.
    pub fn holds(&self, src: &ObjectRow) -> bool {
        let etag_is = |want: &str| want == "*" || want.trim_matches('"') == src.etag;
        // HTTP dates have one-second resolution.
        let secs = |micros: i64| micros.div_euclid(1_000_000);
        let modified = secs(src.created_at);
        let ok_match = match &self.if_match {
            Some(e) => etag_is(e),
            None => self.if_unmodified_since.is_none_or(|t| modified <= secs(t)),
        };
        let ok_none = match &self.if_none_match {
            Some(e) => !etag_is(e),
            None => self.if_modified_since.is_none_or(|t| modified > secs(t)),
        };
        ok_match && ok_none
    }
}

/// PostgreSQL's PUT commit: one call of `js_commit_put` (migration 0007), which takes the
/// per-key lock, checks the condition, demotes the current version, inserts the new one and
/// applies the reference changes in lock order. `$1`-`$20` are `INSERT_OBJECT_SQL`'s.
const PG_COMMIT_PUT_SQL: &str = "SELECT js_commit_put($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
    $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)";

/// `list_page`'s statement, from `$2` (inclusive or not) up to `$4` if bounded. Parameters:
/// `$1` bucket, `$2` start, `$3` most rows. On SQLite every column comes from the covering index
/// `objects_listing`.
fn page_sql(start_inclusive: bool, bounded: bool) -> &'static str {
    macro_rules! page_sql {
        ($cond:literal) => {
            concat!(
                "SELECT key, size, etag, storage_class, created_at FROM objects \
                 WHERE bucket_id = $1 AND is_latest AND ",
                $cond,
                " ORDER BY key LIMIT +$3"
            )
        };
    }
    match (start_inclusive, bounded) {
        (false, false) => page_sql!("key > $2"),
        (true, false) => page_sql!("key >= $2"),
        (false, true) => page_sql!("key > $2 AND key < $4"),
        (true, true) => page_sql!("key >= $2 AND key < $4"),
    }
}

/// `list_walk`'s statement for PostgreSQL, with or without an upper bound (`$8`).
/// Parameters: `$1` bucket, `$2` start, `$3` start inclusive, `$4` prefix, `$5` delimiter,
/// `$6` the resume character (`Rollup::resume_char`), `$7` most items.
///
/// A recursive CTE: the first step is one `objects_latest` seek from `$2`; while the last key
/// found rolls up into a common prefix, the next step seeks from that prefix with its last
/// character replaced by `$6` (the first string past every key under it). The upper bound is in
/// the seek itself, not a filter: a filtered seek past the last key of a prefix would scan the
/// rest of the bucket. Character functions count code points (UTF-8 text), and comparisons are
/// byte order (`COLLATE "C"` keys). One statement, because each would be a round trip; SQLite,
/// in-process, runs the same seeks as a loop (`direct::walk`).
fn walk_sql(bounded: bool) -> &'static str {
    static SQL: [std::sync::OnceLock<String>; 2] = [const { std::sync::OnceLock::new() }; 2];
    SQL[usize::from(bounded)].get_or_init(|| {
        let upper = if bounded { " AND o.key < $8" } else { "" };
        let first = format!(
            "o.bucket_id = $1 AND o.is_latest AND o.key >= $2 AND ($3 OR o.key <> $2){upper}"
        );
        let cp = |k: &str| {
            format!(
                "CASE WHEN strpos(substr({k}, length($4) + 1), $5) > 0 THEN left({k}, \
                 length($4) + strpos(substr({k}, length($4) + 1), $5) + length($5) - 1) END"
            )
        };
        format!(
            "WITH RECURSIVE walk(n, key, size, etag, storage_class, created_at, cp) AS ( \
               (SELECT 1, o.key, o.size, o.etag, o.storage_class, o.created_at, {cp_o} \
                FROM objects o WHERE {first} ORDER BY o.key LIMIT 1) \
             UNION ALL \
               SELECT w.n + 1, x.key, x.size, x.etag, x.storage_class, x.created_at, {cp_x} \
               FROM walk w CROSS JOIN LATERAL ( \
                 SELECT o.key, o.size, o.etag, o.storage_class, o.created_at FROM objects o \
                 WHERE o.bucket_id = $1 AND o.is_latest \
                   AND o.key >= left(w.cp, -1) || $6{upper} \
                 ORDER BY o.key LIMIT 1) x \
               WHERE w.n < $7 AND w.cp IS NOT NULL AND $6 IS NOT NULL) \
             SELECT COALESCE(cp, key) AS key, size, etag, storage_class, created_at \
             FROM walk ORDER BY n",
            cp_o = cp("o.key"),
            cp_x = cp("x.key"),
        )
    })
}

/// A broken invariant raised by the commit functions (`RAISE … USING ERRCODE = 'JS001'`).
fn pg_commit_error(e: sqlx::Error) -> MetaError {
    match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("JS001") => {
            MetaError::Invariant(d.message().to_owned())
        }
        _ => no_bucket_on_fk(e),
    }
}

/// Tries of a PostgreSQL transaction that PostgreSQL aborted to break a deadlock (40P01).
/// Every write transaction that takes more than one lock runs under `retry_deadlocks`: the PUT,
/// copy and completion commits, a group commit (`group`, whose locks are its items' together),
/// a part's commit, an abort, the collector's unlink, a bucket's deletion and the purge of old
/// versions. Lock order makes cycles rare, not impossible (a group's set-based statements, rows
/// locked by foreign-key checks); one of the two is aborted after `deadlock_timeout`, and
/// nothing it did survives, so running it again is safe (a PUT's `place` and the collector's
/// unlink are idempotent by contract). On SQLite (one writer) it never happens.
const DEADLOCK_TRIES: u32 = 3;

/// Runs `commit` again, up to `DEADLOCK_TRIES` in all, while PostgreSQL aborts it to break a
/// deadlock. On SQLite (one writer) that never happens.
async fn retry_deadlocks<T, F, Fut>(mut commit: F) -> MetaResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = MetaResult<T>>,
{
    let mut attempt = 1;
    loop {
        match commit().await {
            Err(MetaError::Db(sqlx::Error::Database(d)))
                if d.code().as_deref() == Some("40P01") && attempt < DEADLOCK_TRIES =>
            {
                tracing::debug!(attempt, "commit was a deadlock's victim; again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

impl PgMeta {
    /// `commit_put`. Without a file blob to confirm, through the group commit (`group`: one
    /// `js_commit_many` call for the PUTs and DELETEs queued together). With one, a call of
    /// `js_commit_put` in a transaction, and `place` runs after it, while the transaction still
    /// holds the blob's row lock, then commits: three round trips.
    async fn commit_put_tx(
        &self,
        c: &PutCommit,
        place: Option<PlaceFn<'_>>,
    ) -> MetaResult<ObjectRow> {
        let row = new_version(c);
        let (cond, cond_etag) = match &c.condition {
            WriteCondition::None => (0, None),
            WriteCondition::IfNoneMatchAny => (1, None),
            WriteCondition::IfMatch(etag) => (2, etag.clone()),
            WriteCondition::IfNoneMatch(etag) => (3, Some(etag.clone())),
        };
        let tier = tier_of_segments(&row.segments);
        let status = match place {
            None => {
                let put = group::Put {
                    row: row.clone(),
                    bucket_id: c.bucket_id.clone(),
                    tier,
                    cond,
                    cond_etag,
                    blob: c.blob.clone(),
                };
                self.group.commit(group::Item::Put(Box::new(put))).await?
            }
            Some(place) => {
                retry_deadlocks(|| {
                    self.commit_put_place(c, &row, tier, cond, cond_etag.clone(), place)
                })
                .await?
            }
        };
        match status.as_str() {
            "ok" => Ok(row),
            "precondition_failed" => Err(MetaError::PreconditionFailed),
            "no_such_key" => Err(MetaError::NoSuchKey),
            other => Err(MetaError::Invariant(format!(
                "js_commit_put answered {other:?}"
            ))),
        }
    }

    /// One try of a PUT commit with a file blob: a call of `js_commit_put` in a transaction;
    /// `place` runs after it, while the transaction still holds the blob's row lock, then it
    /// commits.
    async fn commit_put_place(
        &self,
        c: &PutCommit,
        row: &ObjectRow,
        tier: Tier,
        cond: i32,
        cond_etag: Option<String>,
        place: PlaceFn<'_>,
    ) -> MetaResult<String> {
        let blob = c.blob.as_ref();
        let q = sqlx::query_scalar::<_, String>(PG_COMMIT_PUT_SQL);
        let q = bind_insert_object!(q, &c.bucket_id, tier, row)
            .bind(cond)
            .bind(cond_etag)
            .bind(blob.map(|b| b.tier.as_str()))
            .bind(blob.map(|b| b.hash.clone()))
            .bind(blob.map(|b| to_i64(b.size)))
            .bind(blob.and_then(|b| b.inline.as_ref().map(|v| v.to_vec())))
            .bind(crate::now_micros());
        let mut tx = self.pool.begin().await?;
        let status = q.fetch_one(&mut *tx).await.map_err(pg_commit_error)?;
        if status == "ok" {
            // The blob's row is locked until the commit: the collector cannot unlink the file
            // now, and one it unlinked earlier is put back.
            place().await.map_err(MetaError::Place)?;
            tx.commit().await?;
        }
        Ok(status)
    }

    /// `delete_key` through the group commit (`js_delete_key`: bucket lookup and
    /// `js_delete_latest`, for each DELETE of the group).
    async fn delete_key_tx(
        &self,
        tenant_id: &str,
        bucket: &str,
        key: &str,
    ) -> MetaResult<Option<bool>> {
        let item = group::Item::Delete {
            tenant_id: tenant_id.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        };
        let outcome = self.group.commit(item).await?;
        match outcome.as_str() {
            "no_such_bucket" => Ok(None),
            "deleted" => Ok(Some(true)),
            "absent" => Ok(Some(false)),
            other => Err(MetaError::Invariant(format!(
                "js_delete_key returned {other:?}"
            ))),
        }
    }
}

impl PgMeta {
    /// A point lookup, batched with those that arrive with it (`lookup`).
    async fn find(
        &self,
        tenant: &str,
        bucket: &str,
        key: Option<&str>,
        inline: bool,
    ) -> MetaResult<decode::Found> {
        self.lookups.find(tenant, bucket, key, inline).await
    }

    /// `list_page`, on a hot connection: a listing makes one statement per page, and through
    /// the pool each cost two pings besides the query.
    async fn page(
        &self,
        bucket_id: &str,
        start: &str,
        start_inclusive: bool,
        before: Option<&str>,
        limit: usize,
    ) -> MetaResult<Vec<ListEntry>> {
        let sql = page_sql(start_inclusive, before.is_some());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut query = sqlx::query(sql).bind(bucket_id).bind(start).bind(limit);
        if let Some(b) = before {
            query = query.bind(b);
        }
        self.page_rows(query).await
    }

    /// `list_walk`, on a hot connection.
    async fn walk(
        &self,
        bucket_id: &str,
        start: &str,
        start_inclusive: bool,
        before: Option<&str>,
        roll: Rollup<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ListEntry>> {
        let resume = roll.resume_char();
        let query = sqlx::query(walk_sql(before.is_some()))
            .bind(bucket_id)
            .bind(start)
            .bind(start_inclusive)
            .bind(roll.prefix)
            .bind(roll.delimiter)
            .bind(resume.as_deref())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let query = match before {
            Some(b) => query.bind(b),
            None => query,
        };
        self.page_rows(query).await
    }

    async fn page_rows(
        &self,
        q: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> MetaResult<Vec<ListEntry>> {
        let mut conn = self.hot.get().await?;
        let rows = q.fetch_all(conn.conn()).await;
        conn.done(&rows);
        rows?.iter().map(decode::list_entry_of).collect()
    }
}

impl SqliteMeta {
    /// A point lookup, on this thread (`direct`).
    async fn find(
        &self,
        tenant: &str,
        bucket: &str,
        key: Option<&str>,
        inline: bool,
    ) -> MetaResult<decode::Found> {
        self.direct.find(&decode::Lookup {
            tenant: tenant.to_owned(),
            bucket: bucket.to_owned(),
            key: key.map(str::to_owned),
            inline,
        })
    }

    async fn page(
        &self,
        bucket_id: &str,
        start: &str,
        start_inclusive: bool,
        before: Option<&str>,
        limit: usize,
    ) -> MetaResult<Vec<ListEntry>> {
        (self.direct)
            .list_page(bucket_id, start, start_inclusive, before, limit)
            .await
    }

    async fn walk(
        &self,
        bucket_id: &str,
        start: &str,
        start_inclusive: bool,
        before: Option<&str>,
        roll: Rollup<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ListEntry>> {
        (self.direct)
            .list_walk(bucket_id, start, start_inclusive, before, roll, limit)
            .await
    }
}

impl SqliteMeta {
    /// `commit_put` through the group committer (`batch`): two hand-offs to its connection per
    /// batch, the single writer standing in for the per-key lock.
    async fn commit_put_tx(
        &self,
        c: &PutCommit,
        place: Option<PlaceFn<'_>>,
    ) -> MetaResult<ObjectRow> {
        let op = batch::Op::Put {
            commit: Box::new(c.clone()),
            place: place.map(|p| p()),
        };
        match self.committer.commit(op).await? {
            batch::Done::Put(row) => Ok(*row),
            batch::Done::Delete(_) => Err(MetaError::Invariant("PUT answered as DELETE".into())),
        }
    }

    /// `delete_key` through the group committer, whose read resolves the bucket (no lookup of
    /// its own: one hand-off fewer per DELETE).
    async fn delete_key_tx(
        &self,
        tenant_id: &str,
        bucket: &str,
        key: &str,
    ) -> MetaResult<Option<bool>> {
        let op = batch::Op::Delete {
            tenant_id: tenant_id.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        };
        match self.committer.commit(op).await {
            Ok(batch::Done::Delete(existed)) => Ok(Some(existed)),
            Err(MetaError::NoSuchBucket) => Ok(None),
            Ok(batch::Done::Put(_)) => Err(MetaError::Invariant("DELETE answered as PUT".into())),
            Err(e) => Err(e),
        }
    }
}

/// The counts a script's delta statements returned (`None`: no row), one per delta, in order.
fn check_counts(ds: &[Delta], counts: &[Option<i64>]) -> MetaResult<()> {
    if counts.len() != ds.len() {
        return Err(MetaError::Invariant(format!(
            "{} delta statements ran for {} deltas",
            counts.len(),
            ds.len()
        )));
    }
    for (d, &c) in ds.iter().zip(counts) {
        check_count(d, c)?;
    }
    Ok(())
}

mod batch;
mod batcher;
mod decode;
mod direct;
mod group;
mod hot;
mod lookup;

/// A fresh SQLite metadata store in a temporary directory (kept as long as the directory).
#[cfg(test)]
async fn test_sqlite() -> (tempfile::TempDir, SqliteMeta) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    let meta = SqliteMeta::connect(&url).await.expect("open");
    (dir, meta)
}

/// A PUT commit of `key` for the tests of this module's parts: `blob` (none: an empty object),
/// under `condition`.
#[cfg(test)]
fn test_put(
    bucket_id: &str,
    key: &str,
    blob: Option<Segment>,
    condition: WriteCondition,
) -> PutCommit {
    PutCommit {
        object_id: uuid::Uuid::now_v7().to_string(),
        bucket_id: bucket_id.to_owned(),
        key: key.to_owned(),
        size: blob.as_ref().map_or(0, |s| s.size),
        etag: format!("etag-{key}"),
        headers: Default::default(),
        storage_class: "STANDARD".into(),
        blob,
        condition,
        checksum: None,
    }
}

#[cfg(test)]
mod tests {
    /// Every SQLite listing statement (flat pages, and the delimiter walk's one-row seeks)
    /// reads the objects from the covering index alone, never from the table row by row.
    #[tokio::test]
    async fn sqlite_listings_read_only_the_covering_index() {
        let (_dir, meta) = super::test_sqlite().await;
        let mut statements = Vec::new();
        for (inclusive, bounded) in [(false, false), (true, false), (false, true), (true, true)] {
            statements.push((
                super::page_sql(inclusive, bounded),
                3 + usize::from(bounded),
            ));
        }
        for (sql, params) in statements {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(explain));
            for _ in 0..params {
                q = q.bind("x");
            }
            let plan = q.fetch_all(&meta.read).await.expect("plan");
            let reads: Vec<&str> = plan
                .iter()
                .map(|(.., detail)| detail.as_str())
                .filter(|d| d.contains(" objects ") || d.contains(" o "))
                .collect();
            assert!(!reads.is_empty(), "{sql}: {plan:?}");
            for d in reads {
                assert!(
                    d.contains("USING COVERING INDEX objects_listing"),
                    "{sql}: {d}"
                );
            }
        }
    }
}
