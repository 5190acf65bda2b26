//! Rows, written once for both databases' drivers: the decoders read sqlx's PostgreSQL rows
//! and rusqlite's SQLite rows by column name, so a decoder works on any statement that selects
//! the columns it names (`OBJECT_COLS`, `SEGMENT_COLS`, …); the encoders give the values both
//! bind.

use crate::blobs::{ChecksumAlgo, Tier};
use crate::meta::{
    AccessKey, AdminTokenRow, BlobId, BlobRow, BlobStats, BucketRow, Checksum, Held, KeyRow,
    ListEntry, Lock, LockMode, MetaError, MetaResult, MeterRow, ObjectHeaders, ObjectPart,
    ObjectRow, PartRow, PhysicalRow, Quota, QuotaState, RefMismatch, SearchEntry, Segment,
    TenantRow, UploadRow, UsageRow, VersionEntry, Versioning,
};
use std::collections::BTreeMap;

/// A column value both drivers decode: `String`, `i64`, `i32`, `bool`, `Vec<u8>` and their
/// `Option`s (NULL).
pub(in crate::meta) trait Col:
    for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + rusqlite::types::FromSql
{
}

impl<T> Col for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + rusqlite::types::FromSql
{
}

/// A result row, read by column name.
pub(in crate::meta) trait Cols {
    fn get<T: Col>(&self, col: &str) -> MetaResult<T>;
}

impl Cols for sqlx::postgres::PgRow {
    fn get<T: Col>(&self, col: &str) -> MetaResult<T> {
        Ok(sqlx::Row::try_get(self, col)?)
    }
}

impl<R: Cols> Cols for &R {
    fn get<T: Col>(&self, col: &str) -> MetaResult<T> {
        (**self).get(col)
    }
}

/// A rusqlite statement's rows, read by name through the statement's column names, taken once
/// per query. rusqlite's own by-name `get` asks SQLite for each column's name until one
/// matches, on every call: ~4% of the server's CPU per HEAD, and quadratic in a listing row's
/// columns.
pub(in crate::meta) struct Named<'stmt> {
    names: Vec<String>,
    rows: rusqlite::Rows<'stmt>,
}

impl<'stmt> Named<'stmt> {
    /// The rows of a statement written with `$1…$n` placeholders, given their values.
    pub fn bound(
        stmt: &'stmt mut rusqlite::Statement<'_>,
        args: &[&dyn rusqlite::types::ToSql],
    ) -> MetaResult<Named<'stmt>> {
        crate::meta::sqlite::bind(stmt, args)?;
        let names = stmt.column_names().into_iter().map(str::to_owned).collect();
        Ok(Named {
            names,
            rows: stmt.raw_query(),
        })
    }
}

/// One row of a `Named` query.
pub(in crate::meta) struct NamedRow<'a, 'stmt> {
    row: &'a rusqlite::Row<'stmt>,
    names: &'a [String],
    /// Where the next name is looked for first: decoders mostly read columns in the order the
    /// statement selects them, so a lookup is then one comparison, not a scan of the names.
    next: std::cell::Cell<usize>,
}

impl NamedRow<'_, '_> {
    /// The column at `i` (from 0).
    pub fn get_index<T: Col>(&self, i: usize) -> MetaResult<T> {
        Ok(self.row.get(i)?)
    }
}

impl Cols for NamedRow<'_, '_> {
    fn get<T: Col>(&self, col: &str) -> MetaResult<T> {
        // SQLite compares column names case-insensitively, and so does rusqlite.
        let hint = self.next.get();
        let found = match self.names.get(hint) {
            Some(n) if n.eq_ignore_ascii_case(col) => Some(hint),
            _ => self.names.iter().position(|n| n.eq_ignore_ascii_case(col)),
        };
        let Some(i) = found else {
            return Err(rusqlite::Error::InvalidColumnName(col.to_owned()).into());
        };
        self.next.set(i + 1);
        Ok(self.row.get(i)?)
    }
}

/// Rows read one at a time: a statement's cursor (rusqlite) or a fetched slice (sqlx).
pub(in crate::meta) trait RowSource {
    type Row<'a>: Cols
    where
        Self: 'a;
    fn next_row(&mut self) -> MetaResult<Option<Self::Row<'_>>>;
}

impl<'s, R: Cols> RowSource for std::slice::Iter<'s, R> {
    type Row<'a>
        = &'s R
    where
        Self: 'a;
    fn next_row(&mut self) -> MetaResult<Option<&'s R>> {
        Ok(self.next())
    }
}

impl<'stmt> RowSource for Named<'stmt> {
    type Row<'a>
        = NamedRow<'a, 'stmt>
    where
        Self: 'a;
    fn next_row(&mut self) -> MetaResult<Option<NamedRow<'_, 'stmt>>> {
        let names = &self.names;
        Ok(self.rows.next()?.map(|row| NamedRow {
            row,
            names,
            next: std::cell::Cell::new(0),
        }))
    }
}

/// A point lookup: a tenant's bucket by name and, with a key, that key's current version.
pub(in crate::meta) struct Lookup {
    pub tenant: String,
    pub bucket: String,
    pub key: Option<String>,
    pub inline: bool,
}

/// What a lookup found.
pub(in crate::meta) struct Found {
    pub bucket: Option<BucketRow>,
    /// Always `None` for a lookup without a key, or without a bucket.
    pub object: Option<ObjectRow>,
}

/// A batch of lookups' answers from its rows, which carry the lookup's position (`i`, from 1)
/// and come in that order.
pub(in crate::meta) fn founds_of<R: Cols>(batch: &[Lookup], rows: &[R]) -> MetaResult<Vec<Found>> {
    let mut rest = rows;
    let mut found = Vec::with_capacity(batch.len());
    for (n, l) in (1i64..).zip(batch) {
        let len = rest
            .iter()
            .take_while(|r| r.get::<i64>("i").is_ok_and(|i| i == n))
            .count();
        if len == 0 {
            // Every lookup's row survives the batch query's outer joins.
            return Err(MetaError::Invariant(format!(
                "batched lookup {n} without rows"
            )));
        }
        let (mine, tail) = rest.split_at(len);
        rest = tail;
        found.push(found_of(l, &mut mine.iter())?);
    }
    if !rest.is_empty() {
        return Err(MetaError::Invariant(format!(
            "batched lookup: {} rows beyond the last lookup",
            rest.len()
        )));
    }
    Ok(found)
}

/// A lookup's answer from its rows (`k_id`, `k_created_at`, then as `object_from_rows`): none
/// when there is no such bucket, else at least one (the object's columns NULL when there is no
/// current version).
pub(in crate::meta) fn found_of<S: RowSource>(l: &Lookup, rows: &mut S) -> MetaResult<Found> {
    let none = Found {
        bucket: None,
        object: None,
    };
    let Some(first) = rows.next_row()? else {
        return Ok(none);
    };
    let Some(id) = first.get::<Option<String>>("k_id")? else {
        return Ok(none);
    };
    let bucket = BucketRow {
        id,
        tenant_id: l.tenant.clone(),
        name: l.bucket.clone(),
        created_at: first.get("k_created_at")?,
        versioning: Versioning::from_db(first.get::<Option<String>>("k_versioning")?.as_deref())?,
        object_lock: first.get("k_object_lock")?,
    };
    let object = match first.get::<Option<String>>("id")? {
        Some(_) => Some(object_of(&first, l.inline)?),
        None => None,
    };
    // The first row borrows the cursor, which the rest of the rows need.
    drop(first);
    let object = object
        .map(|o| with_segments(o, rows, l.inline))
        .transpose()?;
    Ok(Found {
        bucket: Some(bucket),
        object,
    })
}

/// An object assembled from rows of `OBJECT_COLS` + `SEGMENT_COLS`, one per segment (one row
/// with NULL segment columns for an empty object). With `inline`, the rows also carry
/// `inline_data` (the bytes of inline blobs).
pub(in crate::meta) fn object_from_rows<S: RowSource>(
    rows: &mut S,
    inline: bool,
) -> MetaResult<Option<ObjectRow>> {
    let Some(first) = rows.next_row()? else {
        return Ok(None);
    };
    let object = object_of(&first, inline)?;
    drop(first);
    with_segments(object, rows, inline).map(Some)
}

/// An object row (`OBJECT_COLS`) with the segment of its row (`SEGMENT_COLS`).
fn object_of<R: Cols>(r: &R, inline: bool) -> MetaResult<ObjectRow> {
    let mut object = ObjectRow {
        id: r.get("id")?,
        key: r.get("key")?,
        size: to_u64(r.get("size")?, "size")?,
        etag: r.get::<Option<String>>("etag")?.unwrap_or_default(),
        headers: headers_of(r)?,
        storage_class: r.get("storage_class")?,
        created_at: r.get("created_at")?,
        segments: Vec::with_capacity(1),
        parts_count: r.get("parts_count")?,
        checksum: checksum_of(
            r.get("checksum_algo")?,
            r.get("checksum_value")?,
            r.get("checksum_type")?,
        )?,
        corrupted: false,
        version_id: r.get("version_id")?,
        version_seq: r.get("version_seq")?,
        is_latest: r.get("is_latest")?,
        delete_marker: r.get("delete_marker")?,
        lock: lock_of(r)?,
    };
    add_segment(&mut object, r, inline)?;
    Ok(object)
}

/// `object` with the segments of the rest of its rows.
fn with_segments<S: RowSource>(
    mut object: ObjectRow,
    rows: &mut S,
    inline: bool,
) -> MetaResult<ObjectRow> {
    while let Some(r) = rows.next_row()? {
        add_segment(&mut object, &r, inline)?;
    }
    Ok(object)
}

/// Adds the segment of a row (`SEGMENT_COLS`, `inline_data` with `inline`), if it has one.
fn add_segment<R: Cols>(object: &mut ObjectRow, r: &R, inline: bool) -> MetaResult<()> {
    let Some(tier) = r.get::<Option<String>>("seg_tier")? else {
        return Ok(());
    };
    object.corrupted |= r.get::<bool>("corrupted")?;
    let data: Option<Vec<u8>> = if inline { r.get("inline_data")? } else { None };
    object.segments.push(Segment {
        tier: tier_of(&tier)?,
        hash: r.get("blob_hash")?,
        size: to_u64(r.get("seg_size")?, "segment size")?,
        inline: data.map(bytes::Bytes::from),
    });
    Ok(())
}

/// The Object Lock columns (`lock_mode`, `lock_until`, `legal_hold`) of an object or upload.
pub(in crate::meta) fn lock_of<R: Cols>(r: &R) -> MetaResult<Lock> {
    let mode: Option<String> = r.get("lock_mode")?;
    let until: Option<i64> = r.get("lock_until")?;
    let retention = match (mode, until) {
        (Some(m), Some(u)) => {
            let mode = LockMode::parse(&m)
                .ok_or_else(|| MetaError::Corrupt(format!("lock mode {m:?}")))?;
            Some((mode, u))
        }
        _ => None,
    };
    Ok(Lock {
        retention,
        legal_hold: r.get("legal_hold")?,
    })
}

/// The Object Lock columns' values: mode, date, legal hold.
pub(in crate::meta) fn lock_cols(l: &Lock) -> (Option<&'static str>, Option<i64>, bool) {
    (
        l.retention.map(|(m, _)| m.as_str()),
        l.retention.map(|(_, u)| u),
        l.legal_hold,
    )
}

/// A row of a version listing (`statements::VERSION_COLS`).
pub(in crate::meta) fn version_entry_of<R: Cols>(r: &R) -> MetaResult<VersionEntry> {
    Ok(VersionEntry {
        key: r.get("key")?,
        version_id: r.get("version_id")?,
        version_seq: r.get("version_seq")?,
        is_latest: r.get("is_latest")?,
        delete_marker: r.get("delete_marker")?,
        size: to_u64(r.get("size")?, "size")?,
        etag: r.get::<Option<String>>("etag")?.unwrap_or_default(),
        storage_class: r.get("storage_class")?,
        created_at: r.get("created_at")?,
    })
}

/// A listing row (`key`, `size`, `etag`, `storage_class`, `created_at`).
pub(in crate::meta) fn list_entry_of<R: Cols>(r: &R) -> MetaResult<ListEntry> {
    Ok(ListEntry {
        key: r.get("key")?,
        size: to_u64(r.get("size")?, "size")?,
        etag: r.get::<Option<String>>("etag")?.unwrap_or_default(),
        storage_class: r.get("storage_class")?,
        created_at: r.get("created_at")?,
    })
}

/// The header columns of an object or upload row (`content_*`, …, `user_meta`, `tags`).
pub(in crate::meta) fn headers_of<R: Cols>(r: &R) -> MetaResult<ObjectHeaders> {
    Ok(ObjectHeaders {
        content_type: r.get("content_type")?,
        content_encoding: r.get("content_encoding")?,
        content_disposition: r.get("content_disposition")?,
        content_language: r.get("content_language")?,
        cache_control: r.get("cache_control")?,
        expires: r.get("expires")?,
        user_meta: json_map(r.get("user_meta")?)?,
        tags: json_map(r.get("tags")?)?,
    })
}

/// An upload row (`UPLOAD_COLS`).
pub(in crate::meta) fn upload_of<R: Cols>(r: &R) -> MetaResult<UploadRow> {
    Ok(UploadRow {
        upload_id: r.get("upload_id")?,
        bucket_id: r.get("bucket_id")?,
        key: r.get("key")?,
        initiated: r.get("initiated")?,
        tier: tier_of(&r.get::<String>("tier")?)?,
        storage_class: r.get("storage_class")?,
        headers: headers_of(r)?,
        checksum_algo: r
            .get::<Option<String>>("checksum_algo")?
            .as_deref()
            .map(algo_of)
            .transpose()?,
        full_object: r.get::<Option<String>>("checksum_type")?.as_deref() != Some("COMPOSITE"),
        lock: lock_of(r)?,
    })
}

/// A part row (`PART_COLS`).
pub(in crate::meta) fn part_of<R: Cols>(r: &R) -> MetaResult<PartRow> {
    let tier = tier_of(&r.get::<String>("tier")?)?;
    let size = to_u64(r.get("size")?, "part size")?;
    let hash: Option<String> = r.get("blob_hash")?;
    Ok(PartRow {
        part_number: r.get("part_number")?,
        size,
        etag: r.get("etag")?,
        created_at: r.get("created_at")?,
        blob: hash.map(|hash| Segment {
            tier,
            hash,
            size,
            inline: None,
        }),
        checksum: r.get("checksum_value")?,
    })
}

/// A blob row (`BLOB_ROW_COLS`).
pub(in crate::meta) fn blob_row_of<R: Cols>(r: &R) -> MetaResult<BlobRow> {
    Ok(BlobRow {
        blob: BlobId {
            tier: tier_of(&r.get::<String>("tier")?)?,
            hash: r.get("hash")?,
        },
        size: to_u64(r.get("size")?, "blob size")?,
        ref_count: r.get("ref_count")?,
        corrupted: r.get("corrupted")?,
        inline: r.get("inline")?,
    })
}

/// A bucket row (`statements::BUCKET_COLS`).
pub(in crate::meta) fn bucket_of<R: Cols>(r: &R) -> MetaResult<BucketRow> {
    Ok(BucketRow {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        name: r.get("name")?,
        created_at: r.get("created_at")?,
        versioning: Versioning::from_db(r.get::<Option<String>>("versioning")?.as_deref())?,
        object_lock: r.get("object_lock")?,
    })
}

/// An access key row (`statements::ACCESS_KEY`).
pub(in crate::meta) fn access_key_of<R: Cols>(r: &R) -> MetaResult<AccessKey> {
    Ok(AccessKey {
        access_key_id: r.get("access_key_id")?,
        secret: r.get("secret")?,
        tenant_id: r.get("tenant_id")?,
        read_only: r.get("read_only")?,
        expires_at: r.get("expires_at")?,
    })
}

/// A tenant row (`statements::TENANTS`).
pub(in crate::meta) fn tenant_of<R: Cols>(r: &R) -> MetaResult<TenantRow> {
    Ok(TenantRow {
        id: r.get("id")?,
        name: r.get("name")?,
        created_at: r.get("created_at")?,
    })
}

/// A key row (`statements::KEYS`).
pub(in crate::meta) fn key_of<R: Cols>(r: &R) -> MetaResult<KeyRow> {
    Ok(KeyRow {
        access_key_id: r.get("access_key_id")?,
        tenant_id: r.get("tenant_id")?,
        tenant: r.get("tenant")?,
        read_only: r.get("read_only")?,
        created_at: r.get("created_at")?,
        disabled_at: r.get("disabled_at")?,
        expires_at: r.get("expires_at")?,
    })
}

/// An object part row (`statements::OBJECT_PARTS`).
pub(in crate::meta) fn object_part_of<R: Cols>(r: &R) -> MetaResult<ObjectPart> {
    Ok(ObjectPart {
        seq: r.get("seq")?,
        part_number: r.get("part_number")?,
        size: to_u64(r.get("size")?, "part size")?,
        checksum: r.get("checksum")?,
    })
}

/// A blob's identity (`tier`, `hash`).
pub(in crate::meta) fn blob_id_of<R: Cols>(r: &R) -> MetaResult<BlobId> {
    Ok(BlobId {
        tier: tier_of(&r.get::<String>("tier")?)?,
        hash: r.get("hash")?,
    })
}

/// A row of `statements::REFCOUNT_MISMATCHES`.
pub(in crate::meta) fn mismatch_of<R: Cols>(r: &R) -> MetaResult<RefMismatch> {
    Ok(RefMismatch {
        tier: r.get("tier")?,
        hash: r.get("hash")?,
        ref_count: r.get("ref_count")?,
        actual: r.get("actual")?,
    })
}

/// A row of `statements::QUOTA_LIMITS` (nothing held yet).
pub(in crate::meta) fn quota_limits_of<R: Cols>(r: &R) -> MetaResult<QuotaState> {
    Ok(QuotaState {
        bucket_id: r.get("bucket_id")?,
        tenant_id: r.get("tenant_id")?,
        bucket: Quota {
            bytes: r.get("bucket_bytes")?,
            objects: r.get("bucket_objects")?,
        },
        tenant: Quota {
            bytes: r.get("tenant_bytes")?,
            objects: r.get("tenant_objects")?,
        },
        ..QuotaState::default()
    })
}

/// A row of `statements::BUCKET_HELD` or `TENANT_HELD`.
pub(in crate::meta) fn held_of<R: Cols>(r: &R) -> MetaResult<Held> {
    Ok(Held {
        bytes: r.get("bytes")?,
        objects: r.get("objects")?,
    })
}

/// A row of `statements::TENANT_QUOTA` or `BUCKET_QUOTA`.
pub(in crate::meta) fn quota_of<R: Cols>(r: &R) -> MetaResult<Quota> {
    Ok(Quota {
        bytes: r.get("bytes")?,
        objects: r.get("objects")?,
    })
}

/// A row of `statements::HOLDERS_RECOUNT`.
pub(in crate::meta) fn holder_of<R: Cols>(r: &R) -> MetaResult<crate::meta::plan::Holder> {
    Ok(crate::meta::plan::Holder {
        tier: r.get("tier")?,
        hash: r.get("hash")?,
        tenant: r.get("tenant")?,
        tenant_id: r.get("tenant_id")?,
        size: r.get("size")?,
    })
}

/// A row of `statements::ADMIN_TOKENS` or `ADMIN_TOKEN`.
pub(in crate::meta) fn admin_token_of<R: Cols>(r: &R) -> MetaResult<AdminTokenRow> {
    Ok(AdminTokenRow {
        id: r.get("id")?,
        name: r.get("name")?,
        scope: r.get("scope")?,
        created_at: r.get("created_at")?,
        revoked_at: r.get("revoked_at")?,
    })
}

/// A row of `statements::SEARCH_STEP`.
pub(in crate::meta) fn search_entry_of<R: Cols>(r: &R) -> MetaResult<SearchEntry> {
    Ok(SearchEntry {
        id: r.get("id")?,
        key: r.get("key")?,
        size: r.get("size")?,
        etag: r.get::<Option<String>>("etag")?.unwrap_or_default(),
        content_type: r.get("content_type")?,
        created_at: r.get("created_at")?,
    })
}

/// A row of `statements::METERING`.
pub(in crate::meta) fn meter_of<R: Cols>(r: &R) -> MetaResult<MeterRow> {
    Ok(MeterRow {
        tenant_id: r.get("tenant_id")?,
        bucket: r.get("bucket")?,
        hour: r.get("hour")?,
        class: r.get("class")?,
        requests: r.get("requests")?,
        bytes_received: r.get("bytes_received")?,
        bytes_sent: r.get("bytes_sent")?,
    })
}

/// A row of `statements::PHYSICAL`.
pub(in crate::meta) fn physical_of<R: Cols>(r: &R) -> MetaResult<PhysicalRow> {
    Ok(PhysicalRow {
        tenant: r.get("tenant")?,
        tier: r.get("tier")?,
        bytes: r.get("bytes")?,
    })
}

/// A row of `statements::BLOB_STATS`.
pub(in crate::meta) fn blob_stats_of<R: Cols>(r: &R) -> MetaResult<BlobStats> {
    Ok(BlobStats {
        tier: r.get("tier")?,
        files: r.get("files")?,
        file_bytes: r.get("file_bytes")?,
        inline: r.get("inline")?,
        inline_bytes: r.get("inline_bytes")?,
        unreferenced: r.get("unreferenced")?,
    })
}

/// A row of `statements::USAGE` or `USAGE_RECOUNT`.
pub(in crate::meta) fn usage_of<R: Cols>(r: &R) -> MetaResult<UsageRow> {
    Ok(UsageRow {
        tenant: r.get("tenant")?,
        bucket: r.get("bucket")?,
        tier: r.get("tier")?,
        objects: r.get("objects")?,
        bytes: r.get("bytes")?,
        noncurrent_versions: r.get("noncurrent_versions")?,
        noncurrent_bytes: r.get("noncurrent_bytes")?,
        delete_markers: r.get("delete_markers")?,
    })
}

/// `user_meta` as stored (a JSON object).
pub(in crate::meta) fn user_meta_json(h: &ObjectHeaders) -> String {
    serde_json::to_string(&h.user_meta).unwrap_or_else(|_| "{}".to_owned())
}

/// Tags as stored: a JSON object, NULL for none.
pub(in crate::meta) fn tags_json(tags: &BTreeMap<String, String>) -> Option<String> {
    (!tags.is_empty()).then(|| serde_json::to_string(tags).unwrap_or_else(|_| "{}".to_owned()))
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

/// A size or count as the databases store it (BIGINT).
pub(in crate::meta) fn to_i64<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
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
