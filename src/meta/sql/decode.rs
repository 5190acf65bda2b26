//! Row decoders, written once for every kind of result row: sqlx's (PostgreSQL and SQLite) and
//! rusqlite's (SQLite's direct reads, `direct`). Columns are read by name, so a decoder works
//! on any statement that selects the columns it names (`OBJECT_COLS`, `SEGMENT_COLS`, …).

use super::{algo_of, checksum_of, json_map, tier_of, to_u64};
use crate::meta::{
    BlobId, BlobRow, BucketRow, ListEntry, MetaError, MetaResult, ObjectHeaders, ObjectRow,
    PartRow, Segment, UploadRow,
};

/// A column value every driver decodes: `String`, `i64`, `i32`, `bool`, `Vec<u8>` and their
/// `Option`s (NULL).
pub(in crate::meta) trait Col:
    for<'r> sqlx::Decode<'r, sqlx::Sqlite>
    + sqlx::Type<sqlx::Sqlite>
    + for<'r> sqlx::Decode<'r, sqlx::Postgres>
    + sqlx::Type<sqlx::Postgres>
    + rusqlite::types::FromSql
{
}

impl<T> Col for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + rusqlite::types::FromSql
{
}

/// A result row, read by column name.
pub(in crate::meta) trait Cols {
    fn get<T: Col>(&self, col: &str) -> MetaResult<T>;
}

impl Cols for sqlx::sqlite::SqliteRow {
    fn get<T: Col>(&self, col: &str) -> MetaResult<T> {
        Ok(sqlx::Row::try_get(self, col)?)
    }
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
    pub fn query(
        stmt: &'stmt mut rusqlite::Statement<'_>,
        params: impl rusqlite::Params,
    ) -> MetaResult<Named<'stmt>> {
        let names = stmt.column_names().into_iter().map(str::to_owned).collect();
        Ok(Named {
            names,
            rows: stmt.query(params)?,
        })
    }
}

/// One row of a `Named` query.
pub(in crate::meta) struct NamedRow<'a, 'stmt> {
    row: &'a rusqlite::Row<'stmt>,
    names: &'a [String],
}

impl Cols for NamedRow<'_, '_> {
    fn get<T: Col>(&self, col: &str) -> MetaResult<T> {
        // SQLite compares column names case-insensitively, and so does rusqlite.
        let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(col)) else {
            return Err(rusqlite::Error::InvalidColumnName(col.to_owned()).into());
        };
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
        Ok(self.rows.next()?.map(|row| NamedRow { row, names }))
    }
}

/// A lookup's identity, as the batched and the direct lookups take it (`lookup`).
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
