//! `MetaStore` on PostgreSQL (sqlx).
//!
//! - Version changes (PUT, DELETE, copy, completion) and an upload's parts' references: one
//!   call of `js_commit` each, or one for a group (`commit`). The version and reference rule is
//!   in that function (migrations/postgres/functions.sql); no statement here demotes a version
//!   or counts a reference.
//! - The hot statements (point lookups, group commits, listing pages) run on connections
//!   outside sqlx's pool (`unpooled`), lookups batched under load (`lookups`).
//! - Lock order: an upload's row, then the per-key advisory locks, then blob rows in
//!   `(tier, hash)` order. Rows locked by foreign-key checks can still close a cycle;
//!   PostgreSQL aborts one transaction and `retry_deadlocks` runs it again.

mod batcher;
mod commit;
mod lookups;
mod unpooled;

use super::plan::{self, check_upload};
use super::rows::{self, to_i64};
use super::statements::*;
use super::*;
use commit::{Item, Outcome, Version};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub struct PgMeta {
    pool: sqlx::PgPool,
    /// HEAD's, GET's and PUT's point lookups, batched under load.
    lookups: lookups::Lookups,
    /// PUTs without a file to place, and DELETEs, grouped under load.
    group: commit::Group,
    /// Connections for the hot statements, outside the pool: the above, and listings.
    unpooled: Arc<unpooled::Unpooled>,
}

impl PgMeta {
    pub async fn connect(url: &str) -> MetaResult<PgMeta> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // A request waits at most this long for the database before answering 503.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(opts.clone())
            .await?;
        migrations::postgres(&pool).await?;
        // The hot statements are planned once per connection: by default a prepared statement
        // gets a custom plan at every execution while that looks cheaper than the generic one,
        // and for the lookups' `unnest` of parameter arrays it always does (the planning cost
        // ~8x the execution). Their plans do not depend on the values (index probes and range
        // scans; the lookups are fenced by OFFSET 0). A generic plan made from a nearly empty
        // table's statistics would scan the table, and keep doing so; every hot statement has
        // an index to probe, so sequential scans are priced out of its plans.
        let hot = opts.options([
            ("plan_cache_mode", "force_generic_plan"),
            ("enable_seqscan", "off"),
        ]);
        let unpooled = Arc::new(unpooled::Unpooled::new(hot));
        Ok(PgMeta {
            lookups: lookups::Lookups::start(unpooled.clone()),
            group: commit::Group::start(unpooled.clone()),
            unpooled,
            pool,
        })
    }

    /// One `js_commit` call for a single version, in a transaction: `place` runs after it,
    /// while the transaction holds the new blob's row lock, then it commits.
    async fn commit_version(&self, v: Version, place: PlaceFn<'_>) -> MetaResult<ObjectRow> {
        let row = v.row.clone();
        let items = [Item::Version(Box::new(v))];
        let outcome = retry_deadlocks(|| async {
            let mut tx = self.pool.begin().await?;
            let outcome = one(commit::call(&mut tx, &items).await?)?;
            // The blob's row is locked until the commit: the collector cannot unlink the file
            // now, and one it unlinked earlier is put back.
            place().await.map_err(MetaError::Place)?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await?;
        numbered(row, outcome)
    }

    /// A listing statement's rows, on an unpooled connection (through the pool each page
    /// would cost two pings besides the query).
    async fn page_rows(
        &self,
        q: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> MetaResult<Vec<ListEntry>> {
        let mut conn = self.unpooled.get().await?;
        let rows = q.fetch_all(conn.conn()).await.map_err(MetaError::from);
        conn.done(&rows);
        rows?.iter().map(rows::list_entry_of).collect()
    }
}

/// `list_versions`'s entries: the rest of the start key's versions after `after_seq` (if given),
/// then the keys after it.
async fn version_rows(
    c: &mut sqlx::PgConnection,
    range: KeyRange<'_>,
    after_seq: Option<i64>,
    limit: usize,
) -> MetaResult<Vec<VersionEntry>> {
    let mut out = Vec::new();
    let mut inclusive = range.start_inclusive;
    if let Some(seq) = after_seq {
        let q = sqlx::query(KEY_VERSIONS_BEFORE)
            .bind(range.bucket_id)
            .bind(range.start)
            .bind(to_i64(limit))
            .bind(seq);
        out = q.fetch_all(&mut *c).await?;
        inclusive = false;
    }
    let mut entries = out
        .iter()
        .map(rows::version_entry_of)
        .collect::<MetaResult<Vec<_>>>()?;
    let left = limit.saturating_sub(entries.len());
    if left > 0 {
        let mut arms = Vec::with_capacity(2);
        for current in [true, false] {
            let q = sqlx::query(versions_sql(current, inclusive, range.before.is_some()))
                .bind(range.bucket_id)
                .bind(range.start)
                .bind(to_i64(left));
            let q = match range.before {
                Some(b) => q.bind(b),
                None => q,
            };
            let rows = q.fetch_all(&mut *c).await?;
            arms.push(
                rows.iter()
                    .map(rows::version_entry_of)
                    .collect::<MetaResult<Vec<_>>>()?,
            );
        }
        let noncurrent = arms.pop().unwrap_or_default();
        let current = arms.pop().unwrap_or_default();
        entries.extend(plan::merge_versions(current, noncurrent, left));
    }
    Ok(entries)
}

/// A version `js_commit` wrote, with the id and number it gave it.
fn numbered(mut row: ObjectRow, outcome: Outcome) -> MetaResult<ObjectRow> {
    let Outcome::Written { versioned, seq } = outcome else {
        return Err(MetaError::Invariant("a write answered as a DELETE".into()));
    };
    row.version_id = match versioned {
        true => row.id.clone(),
        false => NULL_VERSION.to_owned(),
    };
    row.version_seq = seq;
    Ok(row)
}

/// The single outcome of a one-item call.
fn one(outcomes: Vec<MetaResult<Outcome>>) -> MetaResult<Outcome> {
    outcomes
        .into_iter()
        .next()
        .ok_or_else(|| MetaError::Invariant("js_commit answered nothing".into()))?
}

/// Reference changes of no version (an upload's parts): one `js_commit` call.
async fn apply_refs(
    tx: &mut sqlx::PgConnection,
    add: Vec<Segment>,
    new_blob: Option<&Segment>,
    release: Vec<Segment>,
) -> MetaResult<()> {
    if add.is_empty() && release.is_empty() {
        return Ok(());
    }
    let item = Item::Refs {
        add,
        new_blob: new_blob.cloned(),
        release,
    };
    one(commit::call(tx, &[item]).await?)?;
    Ok(())
}

/// Locks an upload's row and checks it belongs to `bucket_id` (and `key`).
async fn lock_upload(
    tx: &mut sqlx::PgConnection,
    upload_id: &str,
    bucket_id: Option<&str>,
    key: Option<&str>,
) -> MetaResult<UploadRow> {
    const Q: &str = const_format::concatcp!(
        "SELECT ",
        UPLOAD_COLS,
        " FROM multipart_uploads WHERE upload_id = $1 FOR UPDATE"
    );
    let row = sqlx::query(Q).bind(upload_id).fetch_optional(tx).await?;
    check_upload(
        row.as_ref().map(rows::upload_of).transpose()?,
        bucket_id,
        key,
    )
}

async fn all_parts(tx: &mut sqlx::PgConnection, upload_id: &str) -> MetaResult<Vec<PartRow>> {
    let rows = sqlx::query(ALL_PARTS).bind(upload_id).fetch_all(tx).await?;
    rows.iter().map(rows::part_of).collect()
}

/// Releases a locked upload's parts' references and forgets it.
async fn drop_upload(tx: &mut sqlx::PgConnection, upload_id: &str) -> MetaResult<()> {
    let release: Vec<Segment> = all_parts(&mut *tx, upload_id)
        .await?
        .into_iter()
        .filter_map(|p| p.blob)
        .collect();
    apply_refs(&mut *tx, Vec::new(), None, release).await?;
    sqlx::query(DELETE_UPLOAD)
        .bind(upload_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// A failed `js_commit`: a broken invariant (SQLSTATE JS001, JS002), a bucket
/// deleted meanwhile (a foreign key), or the database's own error.
fn commit_error(e: sqlx::Error) -> MetaError {
    match &e {
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("JS")) => {
            MetaError::Invariant(d.message().to_owned())
        }
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => MetaError::NoSuchBucket,
        _ => MetaError::Db(e),
    }
}

/// Tries of a transaction that PostgreSQL aborted to break a deadlock (40P01). Nothing it did
/// survives, so running it again is safe (a PUT's `place` and the collector's unlink are
/// idempotent by contract).
const DEADLOCK_TRIES: u32 = 3;

/// Runs `commit` again, up to `DEADLOCK_TRIES` in all, while PostgreSQL aborts it to break a
/// deadlock.
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

#[async_trait::async_trait]
impl MetaStore for PgMeta {
    async fn ping(&self) -> MetaResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_tenant(&self, name: &str) -> MetaResult<String> {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(INSERT_TENANT)
            .bind(&id)
            .bind(name)
            .bind(crate::now_micros())
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    async fn tenant_id(&self, name: &str) -> MetaResult<Option<String>> {
        let q = sqlx::query_scalar(TENANT_ID).bind(name);
        Ok(q.fetch_optional(&self.pool).await?)
    }

    async fn tenant_name(&self, id: &str) -> MetaResult<Option<String>> {
        let q = sqlx::query_scalar(TENANT_NAME).bind(id);
        Ok(q.fetch_optional(&self.pool).await?)
    }

    async fn create_access_key(
        &self,
        tenant_id: &str,
        access_key_id: &str,
        secret: &str,
        read_only: bool,
        expires_at: Option<i64>,
    ) -> MetaResult<()> {
        sqlx::query(INSERT_ACCESS_KEY)
            .bind(access_key_id)
            .bind(secret)
            .bind(tenant_id)
            .bind(read_only)
            .bind(crate::now_micros())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn access_key(&self, access_key_id: &str) -> MetaResult<Option<AccessKey>> {
        let q = sqlx::query(ACCESS_KEY).bind(access_key_id);
        let row = q.fetch_optional(&self.pool).await?;
        row.as_ref().map(rows::access_key_of).transpose()
    }

    async fn tenant_has_keys(&self, tenant_id: &str) -> MetaResult<bool> {
        let q = sqlx::query_scalar::<_, i64>(TENANT_HAS_KEYS).bind(tenant_id);
        Ok(q.fetch_optional(&self.pool).await?.is_some())
    }

    async fn tenants(&self) -> MetaResult<Vec<TenantRow>> {
        let rows = sqlx::query(TENANTS).fetch_all(&self.pool).await?;
        rows.iter().map(rows::tenant_of).collect()
    }

    async fn delete_tenant(&self, tenant_id: &str) -> MetaResult<bool> {
        let mut tx = self.pool.begin().await?;
        // Blocks bucket creation for this tenant (the foreign key) until it is gone.
        let q = sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE").bind(tenant_id);
        if q.fetch_optional(&mut *tx).await?.is_none() {
            return Ok(false);
        }
        let owns = sqlx::query_scalar::<_, i64>(TENANT_HAS_BUCKETS).bind(tenant_id);
        if owns.fetch_optional(&mut *tx).await?.is_some() {
            return Err(MetaError::TenantNotEmpty);
        }
        for sql in [DELETE_TENANT_KEYS, DELETE_TENANT] {
            sqlx::query(sql).bind(tenant_id).execute(&mut *tx).await?;
        }
        sqlx::query(BUMP_KEY_EPOCH).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn keys(&self) -> MetaResult<Vec<KeyRow>> {
        let rows = sqlx::query(KEYS).fetch_all(&self.pool).await?;
        rows.iter().map(rows::key_of).collect()
    }

    async fn set_key_disabled(&self, access_key_id: &str, at: Option<i64>) -> MetaResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(BUMP_KEY_EPOCH).execute(&mut *tx).await?;
        let q = sqlx::query(SET_KEY_DISABLED).bind(access_key_id).bind(at);
        let changed = q.execute(&mut *tx).await?.rows_affected() > 0;
        tx.commit().await?;
        Ok(changed)
    }

    async fn delete_access_key(&self, access_key_id: &str) -> MetaResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(BUMP_KEY_EPOCH).execute(&mut *tx).await?;
        let q = sqlx::query(DELETE_ACCESS_KEY).bind(access_key_id);
        let changed = q.execute(&mut *tx).await?.rows_affected() > 0;
        tx.commit().await?;
        Ok(changed)
    }

    async fn key_epoch(&self) -> MetaResult<i64> {
        Ok(sqlx::query_scalar(KEY_EPOCH).fetch_one(&self.pool).await?)
    }

    async fn create_bucket(
        &self,
        tenant_id: &str,
        name: &str,
        object_lock: bool,
    ) -> MetaResult<BucketRow> {
        let row = plan::new_bucket(tenant_id, name, object_lock);
        let done = sqlx::query(INSERT_BUCKET)
            .bind(&row.id)
            .bind(&row.tenant_id)
            .bind(&row.name)
            .bind(row.created_at)
            .bind(row.versioning.as_db())
            .bind(row.object_lock)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(MetaError::BucketExists);
        }
        Ok(row)
    }

    async fn set_versioning(
        &self,
        bucket_id: &str,
        v: Versioning,
        object_lock: bool,
    ) -> MetaResult<bool> {
        let q = sqlx::query(SET_VERSIONING)
            .bind(bucket_id)
            .bind(v.as_db())
            .bind(object_lock);
        Ok(q.execute(&self.pool).await?.rows_affected() > 0)
    }

    async fn bucket(&self, tenant_id: &str, name: &str) -> MetaResult<Option<BucketRow>> {
        Ok(self
            .lookups
            .find(tenant_id, name, None, false)
            .await?
            .bucket)
    }

    async fn list_buckets(&self, tenant_id: &str) -> MetaResult<Vec<BucketRow>> {
        let q = sqlx::query(LIST_BUCKETS).bind(tenant_id);
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(rows::bucket_of).collect()
    }

    async fn buckets_with_config(&self, kind: &str) -> MetaResult<Vec<BucketRow>> {
        let q = sqlx::query(BUCKETS_WITH_CONFIG).bind(kind);
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(rows::bucket_of).collect()
    }

    async fn delete_bucket(&self, bucket_id: &str) -> MetaResult<()> {
        retry_deadlocks(|| async move {
            let mut tx = self.pool.begin().await?;
            // Blocks concurrent commits into this bucket (their inserts' foreign key checks)
            // until it is gone.
            sqlx::query("SELECT id FROM buckets WHERE id = $1 FOR UPDATE")
                .bind(bucket_id)
                .execute(&mut *tx)
                .await?;
            let live = sqlx::query_scalar::<_, i64>(BUCKET_HAS_VERSIONS).bind(bucket_id);
            if live.fetch_optional(&mut *tx).await?.is_some() {
                return Err(MetaError::BucketNotEmpty);
            }
            // S3 deletes a bucket's incomplete uploads with it. Locked first, so a part
            // committing concurrently either landed before (and is released here) or finds
            // its upload gone.
            let uploads: Vec<String> = sqlx::query_scalar(
                "SELECT upload_id FROM multipart_uploads WHERE bucket_id = $1 FOR UPDATE",
            )
            .bind(bucket_id)
            .fetch_all(&mut *tx)
            .await?;
            for upload_id in &uploads {
                drop_upload(&mut tx, upload_id).await?;
            }
            for sql in [DELETE_BUCKET_VERSIONS, DELETE_BUCKET] {
                sqlx::query(sql).bind(bucket_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn bucket_config(&self, bucket_id: &str, kind: &str) -> MetaResult<Option<String>> {
        let q = sqlx::query_scalar(BUCKET_CONFIG).bind(bucket_id).bind(kind);
        Ok(q.fetch_optional(&self.pool).await?)
    }

    async fn set_bucket_config(
        &self,
        bucket_id: &str,
        kind: &str,
        value: Option<&str>,
    ) -> MetaResult<bool> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query_scalar::<_, i64>(BUCKET_EXISTS).bind(bucket_id);
        if exists.fetch_optional(&mut *tx).await?.is_none() {
            return Ok(false);
        }
        let q = match value {
            Some(v) => sqlx::query(SET_BUCKET_CONFIG)
                .bind(bucket_id)
                .bind(kind)
                .bind(v),
            None => sqlx::query(DELETE_BUCKET_CONFIG).bind(bucket_id).bind(kind),
        };
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn acl(&self, of: AclOf<'_>) -> MetaResult<Option<Option<String>>> {
        let (sql, id) = match of {
            AclOf::Object(id) => (OBJECT_ACL, id),
            AclOf::Upload(id) => (UPLOAD_ACL, id),
        };
        Ok(sqlx::query_scalar(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_acl(&self, of: AclOf<'_>, acl: Option<&str>) -> MetaResult<bool> {
        let (sql, id) = match of {
            AclOf::Object(id) => (SET_OBJECT_ACL, id),
            AclOf::Upload(id) => (SET_UPLOAD_ACL, id),
        };
        let done = sqlx::query(sql)
            .bind(id)
            .bind(acl)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn commit_put(&self, c: &PutCommit, place: Option<PlaceFn<'_>>) -> MetaResult<ObjectRow> {
        let v = Version {
            row: plan::put_version(c),
            bucket_id: c.bucket_id.clone(),
            condition: c.condition.clone(),
            new_blob: c.blob.clone(),
            release: Vec::new(),
        };
        if let Some(place) = place {
            return self.commit_version(v, place).await;
        }
        let row = v.row.clone();
        numbered(row, self.group.commit(Item::Version(Box::new(v))).await?)
    }

    async fn commit_copy(&self, c: &CopyCommit) -> MetaResult<ObjectRow> {
        retry_deadlocks(|| async move {
            let mut tx = self.pool.begin().await?;
            let q = match &c.src_version {
                Some(v) => sqlx::query(version_sql(v))
                    .bind(&c.src_bucket_id)
                    .bind(&c.src_key)
                    .bind(v)
                    .bind(false),
                None => sqlx::query(LATEST_IN_SQL)
                    .bind(&c.src_bucket_id)
                    .bind(&c.src_key),
            };
            let rows = q.fetch_all(&mut *tx).await?;
            let src = rows::object_from_rows(&mut rows.iter(), false)?;
            let src = plan::copy_source(src, c.src_version.is_some())?;
            if !c.source_condition.holds(&src) {
                return Err(MetaError::PreconditionFailed);
            }
            let v = Version {
                row: plan::copy_version(c, src),
                bucket_id: c.dst_bucket_id.clone(),
                condition: WriteCondition::None,
                new_blob: None,
                release: Vec::new(),
            };
            let row = v.row.clone();
            let outcome = one(commit::call(&mut tx, &[Item::Version(Box::new(v))]).await?)?;
            tx.commit().await?;
            numbered(row, outcome)
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
        let found = (self.lookups)
            .find(tenant_id, bucket, Some(key), with_inline)
            .await?;
        match found.bucket {
            Some(_) => Ok(found.object),
            None => Err(MetaError::NoSuchBucket),
        }
    }

    async fn delete_key(
        &self,
        tenant_id: &str,
        bucket: &str,
        key: &str,
    ) -> MetaResult<Option<Deleted>> {
        let item = Item::Delete {
            tenant_id: tenant_id.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            marker_id: uuid::Uuid::now_v7().to_string(),
        };
        match self.group.commit(item).await? {
            Outcome::Deleted(d) => Ok(d),
            _ => Err(MetaError::Invariant("DELETE answered as a write".into())),
        }
    }

    async fn version(
        &self,
        bucket_id: &str,
        key: &str,
        version_id: &str,
        with_inline: bool,
    ) -> MetaResult<Option<ObjectRow>> {
        // On an unpooled connection: planned generically, never a scan (see `connect`).
        let q = sqlx::query(version_sql(version_id))
            .bind(bucket_id)
            .bind(key)
            .bind(version_id)
            .bind(with_inline);
        let mut conn = self.unpooled.get().await?;
        let rows = q.fetch_all(conn.conn()).await.map_err(MetaError::from);
        conn.done(&rows);
        rows::object_from_rows(&mut rows?.iter(), with_inline)
    }

    async fn delete_version(
        &self,
        bucket_id: &str,
        key: &str,
        version_id: &str,
        bypass: bool,
    ) -> MetaResult<Option<RemovedVersion>> {
        let item = Item::RemoveVersion {
            bucket_id: bucket_id.to_owned(),
            key: key.to_owned(),
            version_id: version_id.to_owned(),
            bypass,
        };
        match self.group.commit(item).await? {
            Outcome::Removed(r) => Ok(r),
            _ => Err(MetaError::Invariant(
                "version DELETE answered as a write".into(),
            )),
        }
    }

    async fn set_tags(
        &self,
        bucket_id: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> MetaResult<bool> {
        let sql = match version_id {
            None => SET_TAGS,
            Some(NULL_VERSION) => SET_NULL_VERSION_TAGS,
            Some(_) => SET_VERSION_TAGS,
        };
        let q = sqlx::query(sql)
            .bind(bucket_id)
            .bind(key)
            .bind(rows::tags_json(tags));
        let q = match version_id {
            Some(v) => q.bind(v),
            None => q,
        };
        Ok(q.execute(&self.pool).await?.rows_affected() > 0)
    }

    async fn set_lock(
        &self,
        bucket_id: &str,
        key: &str,
        version_id: Option<&str>,
        change: LockChange,
    ) -> MetaResult<Option<Lock>> {
        let mut tx = self.pool.begin().await?;
        let q = match version_id {
            Some(v) => sqlx::query(version_sql(v))
                .bind(bucket_id)
                .bind(key)
                .bind(v)
                .bind(false),
            None => sqlx::query(LATEST_IN_SQL).bind(bucket_id).bind(key),
        };
        let rows = q.fetch_all(&mut *tx).await?;
        let Some(row) =
            rows::object_from_rows(&mut rows.iter(), false)?.filter(|r| !r.delete_marker)
        else {
            return Ok(None);
        };
        // Read again under the row's lock: a concurrent change is checked against this one's
        // result.
        let current: (Option<String>, Option<i64>, bool) = sqlx::query_as(
            "SELECT lock_mode, lock_until, legal_hold FROM objects WHERE id = $1 FOR UPDATE",
        )
        .bind(&row.id)
        .fetch_one(&mut *tx)
        .await?;
        let current = Lock {
            retention: match current {
                (Some(m), Some(u), _) => LockMode::parse(&m).map(|m| (m, u)),
                _ => None,
            },
            legal_hold: current.2,
        };
        let lock = plan::lock_after(current, change, crate::now_micros())?;
        let (mode, until, hold) = rows::lock_cols(&lock);
        sqlx::query(SET_LOCK)
            .bind(&row.id)
            .bind(mode)
            .bind(until)
            .bind(hold)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(lock))
    }

    async fn list_versions(
        &self,
        range: KeyRange<'_>,
        after_seq: Option<i64>,
        limit: usize,
    ) -> MetaResult<Vec<VersionEntry>> {
        let mut conn = self.unpooled.get().await?;
        let entries = version_rows(conn.conn(), range, after_seq, limit).await;
        conn.done(&entries);
        entries
    }

    async fn list_page(&self, range: KeyRange<'_>, limit: usize) -> MetaResult<Vec<ListEntry>> {
        let sql = page_sql(range.start_inclusive, range.before.is_some());
        let mut q = sqlx::query(sql)
            .bind(range.bucket_id)
            .bind(range.start)
            .bind(to_i64(limit));
        if let Some(b) = range.before {
            q = q.bind(b);
        }
        self.page_rows(q).await
    }

    async fn list_walk(
        &self,
        range: KeyRange<'_>,
        roll: Rollup<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ListEntry>> {
        let resume = roll.resume_char();
        let q = sqlx::query(walk_sql(range.before.is_some()))
            .bind(range.bucket_id)
            .bind(range.start)
            .bind(range.start_inclusive)
            .bind(roll.prefix)
            .bind(roll.delimiter)
            .bind(resume.as_deref())
            .bind(to_i64(limit));
        let q = match range.before {
            Some(b) => q.bind(b),
            None => q,
        };
        self.page_rows(q).await
    }

    async fn create_upload(&self, u: &UploadRow) -> MetaResult<()> {
        let h = &u.headers;
        sqlx::query(INSERT_UPLOAD)
            .bind(&u.upload_id)
            .bind(&u.bucket_id)
            .bind(&u.key)
            .bind(u.initiated)
            .bind(u.tier.as_str())
            .bind(&u.storage_class)
            .bind(&h.content_type)
            .bind(&h.content_encoding)
            .bind(&h.content_disposition)
            .bind(&h.content_language)
            .bind(&h.cache_control)
            .bind(&h.expires)
            .bind(rows::user_meta_json(h))
            .bind(u.checksum_algo.map(ChecksumAlgo::as_str))
            .bind(if u.full_object {
                "FULL_OBJECT"
            } else {
                "COMPOSITE"
            })
            .bind(rows::tags_json(&h.tags))
            .bind(u.lock.retention.map(|(m, _)| m.as_str()))
            .bind(u.lock.retention.map(|(_, t)| t))
            .bind(u.lock.legal_hold)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn upload(&self, bucket_id: &str, upload_id: &str) -> MetaResult<Option<UploadRow>> {
        let q = sqlx::query(UPLOAD).bind(upload_id).bind(bucket_id);
        let row = q.fetch_optional(&self.pool).await?;
        row.as_ref().map(rows::upload_of).transpose()
    }

    async fn commit_part(
        &self,
        upload_id: &str,
        part: &PartRow,
        place: Option<PlaceFn<'_>>,
    ) -> MetaResult<()> {
        retry_deadlocks(|| async move {
            let mut tx = self.pool.begin().await?;
            // Serialises writers of this upload's parts (and its completion and abort).
            lock_upload(&mut tx, upload_id, None, None).await?;
            let q = sqlx::query(PART).bind(upload_id).bind(part.part_number);
            let old = q.fetch_optional(&mut *tx).await?;
            let old = old.as_ref().map(rows::part_of).transpose()?;
            let new: Vec<Segment> = part.blob.iter().cloned().collect();
            let old: Vec<Segment> = old.and_then(|p| p.blob).into_iter().collect();
            apply_refs(&mut tx, new, part.blob.as_ref(), old).await?;
            if let Some(place) = place {
                // Under the new blob's row lock (taken by `js_commit`): the collector cannot
                // unlink the file now, and one it unlinked earlier is put back.
                place().await.map_err(MetaError::Place)?;
            }
            let blob = part.blob.as_ref();
            sqlx::query(UPSERT_PART)
                .bind(upload_id)
                .bind(part.part_number)
                .bind(blob.map_or("hot", |b| b.tier.as_str()))
                .bind(blob.map(|b| b.hash.as_str()))
                .bind(to_i64(part.size))
                .bind(&part.etag)
                .bind(part.created_at)
                .bind(&part.checksum)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
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
        let q = sqlx::query(LIST_PARTS)
            .bind(upload_id)
            .bind(after)
            .bind(to_i64(limit));
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(rows::part_of).collect()
    }

    async fn complete_upload(&self, c: &CompleteCommit<'_>) -> MetaResult<ObjectRow> {
        retry_deadlocks(|| async move {
            let mut tx = self.pool.begin().await?;
            let up = lock_upload(&mut tx, &c.upload_id, Some(&c.bucket_id), Some(&c.key)).await?;
            let parts = all_parts(&mut tx, &c.upload_id).await?;
            let a = (c.assemble)(&parts)?;
            // The parts' references move to the object's segments; the unused are released.
            let v = Version {
                row: plan::completed_version(c, &up, &a),
                bucket_id: c.bucket_id.clone(),
                condition: c.condition.clone(),
                new_blob: None,
                release: parts.into_iter().filter_map(|p| p.blob).collect(),
            };
            let row = v.row.clone();
            let outcome = one(commit::call(&mut tx, &[Item::Version(Box::new(v))]).await?)?;
            let row = numbered(row, outcome)?;
            for p in &a.parts {
                sqlx::query(INSERT_OBJECT_PART)
                    .bind(&row.id)
                    .bind(p.seq)
                    .bind(p.part_number)
                    .bind(to_i64(p.size))
                    .bind(p.checksum.as_deref())
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(DELETE_UPLOAD)
                .bind(&c.upload_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
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
        let q = sqlx::query(OBJECT_PARTS)
            .bind(object_id)
            .bind(after)
            .bind(to_i64(limit));
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(rows::object_part_of).collect()
    }

    async fn abort_upload(&self, bucket_id: &str, upload_id: &str) -> MetaResult<bool> {
        retry_deadlocks(|| async move {
            let mut tx = self.pool.begin().await?;
            match lock_upload(&mut tx, upload_id, Some(bucket_id), None).await {
                Err(MetaError::NoSuchUpload) => return Ok(false),
                r => r?,
            };
            drop_upload(&mut tx, upload_id).await?;
            tx.commit().await?;
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
        let rows = sqlx::query(LIST_UPLOADS)
            .bind(bucket_id)
            .bind(prefix)
            .bind(after_key)
            .bind(after_id)
            .bind(to_i64(limit))
            .fetch_all(&self.pool)
            .await?;
        let page = rows
            .iter()
            .map(rows::upload_of)
            .collect::<MetaResult<_>>()?;
        Ok(plan::uploads_under(prefix, page))
    }

    async fn stale_uploads(&self, cutoff: i64, limit: usize) -> MetaResult<Vec<(String, String)>> {
        let q = sqlx::query_as(STALE_UPLOADS)
            .bind(cutoff)
            .bind(to_i64(limit));
        Ok(q.fetch_all(&self.pool).await?)
    }

    async fn purge_deleted(&self, cutoff: i64, limit: usize) -> MetaResult<u64> {
        retry_deadlocks(|| async move {
            let q = sqlx::query(PURGE_DELETED).bind(cutoff).bind(to_i64(limit));
            Ok(q.execute(&self.pool).await?.rows_affected())
        })
        .await
    }

    async fn collectable_blobs(&self, cutoff: i64, limit: usize) -> MetaResult<Vec<BlobId>> {
        let q = sqlx::query(COLLECTABLE_BLOBS)
            .bind(cutoff)
            .bind(to_i64(limit));
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(rows::blob_id_of).collect()
    }

    async fn collect_blob(
        &self,
        blob: &BlobId,
        cutoff: i64,
        unlink: PlaceFn<'_>,
    ) -> MetaResult<bool> {
        retry_deadlocks(|| async move {
            let mut tx = self.pool.begin().await?;
            let row: Option<(i64, Option<i64>)> = sqlx::query_as(
                "SELECT ref_count, zero_since FROM blobs WHERE tier = $1 AND hash = $2 FOR UPDATE",
            )
            .bind(blob.tier.as_str())
            .bind(&blob.hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((refs, zero_since)) = row else {
                return Ok(false);
            };
            if !plan::collectable(blob, refs, zero_since, cutoff)? {
                return Ok(false);
            }
            unlink().await.map_err(MetaError::Place)?;
            let q = sqlx::query(DELETE_BLOB)
                .bind(blob.tier.as_str())
                .bind(&blob.hash);
            q.execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn usage(&self) -> MetaResult<Vec<UsageRow>> {
        let rows = sqlx::query(USAGE).fetch_all(&self.pool).await?;
        rows.iter().map(rows::usage_of).collect()
    }

    async fn physical(&self) -> MetaResult<Vec<PhysicalRow>> {
        let rows = sqlx::query(PHYSICAL).fetch_all(&self.pool).await?;
        rows.iter().map(rows::physical_of).collect()
    }

    async fn take_lease(&self, name: &str, holder: &str, now: i64, until: i64) -> MetaResult<bool> {
        let q = sqlx::query(TAKE_LEASE)
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now);
        Ok(q.execute(&self.pool).await?.rows_affected() > 0)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> MetaResult<()> {
        let q = sqlx::query(RELEASE_LEASE).bind(name).bind(holder);
        q.execute(&self.pool).await?;
        Ok(())
    }

    async fn blob_stats(&self) -> MetaResult<Vec<BlobStats>> {
        let rows = sqlx::query(BLOB_STATS).fetch_all(&self.pool).await?;
        rows.iter().map(rows::blob_stats_of).collect()
    }

    fn pool_state(&self) -> Option<PoolState> {
        Some(PoolState {
            size: i64::from(self.pool.size()),
            idle: i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX),
            max: i64::from(self.pool.options().get_max_connections()),
        })
    }

    async fn check_usage(&self, repair: bool) -> MetaResult<UsageCheck> {
        let mut tx = self.pool.begin().await?;
        // No version changes between the reads (and the rebuild): writers wait for this.
        sqlx::query("LOCK TABLE objects IN SHARE MODE")
            .execute(&mut *tx)
            .await?;
        let all = |sql| sqlx::query(sql);
        let kept = all(USAGE).fetch_all(&mut *tx).await?;
        let recount = all(USAGE_RECOUNT).fetch_all(&mut *tx).await?;
        let physical = all(PHYSICAL).fetch_all(&mut *tx).await?;
        let holders = all(HOLDERS_RECOUNT).fetch_all(&mut *tx).await?;
        let check = plan::usage_check(
            kept.iter().map(rows::usage_of).collect::<MetaResult<_>>()?,
            recount
                .iter()
                .map(rows::usage_of)
                .collect::<MetaResult<_>>()?,
            physical
                .iter()
                .map(rows::physical_of)
                .collect::<MetaResult<_>>()?,
            holders
                .iter()
                .map(rows::holder_of)
                .collect::<MetaResult<_>>()?,
        );
        if repair && !check.is_clean() {
            for sql in REBUILD_USAGE.into_iter().chain([REBUILD_PHYSICAL_PG]) {
                sqlx::query(sql).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(check)
    }

    async fn quota_state(&self, bucket_id: &str) -> MetaResult<Option<QuotaState>> {
        let q = sqlx::query(QUOTA_LIMITS).bind(bucket_id);
        let Some(row) = q.fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        let mut q = rows::quota_limits_of(&row)?;
        if q.bucket.is_set() {
            let row = sqlx::query(BUCKET_HELD).bind(bucket_id);
            q.bucket_held = rows::held_of(&row.fetch_one(&self.pool).await?)?;
        }
        if q.tenant.is_set() {
            let row = sqlx::query(TENANT_HELD).bind(&q.tenant_id);
            q.tenant_held = rows::held_of(&row.fetch_one(&self.pool).await?)?;
        }
        Ok(Some(q))
    }

    async fn set_quota(&self, of: QuotaOf<'_>, q: Quota) -> MetaResult<bool> {
        let (sql, id) = match of {
            QuotaOf::Tenant(id) => (SET_TENANT_QUOTA, id),
            QuotaOf::Bucket(id) => (SET_BUCKET_QUOTA, id),
        };
        let q = sqlx::query(sql).bind(id).bind(q.bytes).bind(q.objects);
        Ok(q.execute(&self.pool).await?.rows_affected() > 0)
    }

    async fn quota(&self, of: QuotaOf<'_>) -> MetaResult<Option<Quota>> {
        let (sql, id) = match of {
            QuotaOf::Tenant(id) => (TENANT_QUOTA, id),
            QuotaOf::Bucket(id) => (BUCKET_QUOTA, id),
        };
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(rows::quota_of).transpose()
    }

    async fn create_admin_token(&self, t: &AdminTokenRow, sha256: &str) -> MetaResult<()> {
        sqlx::query(INSERT_ADMIN_TOKEN)
            .bind(&t.id)
            .bind(&t.name)
            .bind(sha256)
            .bind(&t.scope)
            .bind(t.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn admin_tokens(&self) -> MetaResult<Vec<AdminTokenRow>> {
        let rows = sqlx::query(ADMIN_TOKENS).fetch_all(&self.pool).await?;
        rows.iter().map(rows::admin_token_of).collect()
    }

    async fn admin_token(&self, sha256: &str) -> MetaResult<Option<AdminTokenRow>> {
        let q = sqlx::query(ADMIN_TOKEN).bind(sha256);
        let row = q.fetch_optional(&self.pool).await?;
        row.as_ref().map(rows::admin_token_of).transpose()
    }

    async fn revoke_admin_token(&self, id: &str, at: i64) -> MetaResult<bool> {
        let q = sqlx::query(REVOKE_ADMIN_TOKEN).bind(id).bind(at);
        Ok(q.execute(&self.pool).await?.rows_affected() > 0)
    }

    async fn search_step(&self, s: SearchStep<'_>) -> MetaResult<Vec<SearchEntry>> {
        let rows = sqlx::query(SEARCH_STEP)
            .bind(s.bucket_id)
            .bind(s.from.0)
            .bind(s.from.1)
            .bind(s.after)
            .bind(s.before)
            .bind(to_i64(s.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::search_entry_of).collect()
    }

    async fn add_metering(&self, rows: &[MeterRow]) -> MetaResult<()> {
        let mut tx = self.pool.begin().await?;
        for r in rows {
            sqlx::query(ADD_METERING)
                .bind(&r.tenant_id)
                .bind(&r.bucket)
                .bind(r.hour)
                .bind(&r.class)
                .bind(r.requests)
                .bind(r.bytes_received)
                .bind(r.bytes_sent)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn metering(&self, q: MeterQuery<'_>) -> MetaResult<Vec<MeterRow>> {
        let period: i64 = if q.by_day { 24 } else { 1 };
        let rows = sqlx::query(METERING)
            .bind(q.from_hour)
            .bind(q.to_hour)
            .bind(q.tenant_id)
            .bind(q.bucket)
            .bind(period)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::meter_of).collect()
    }

    async fn refcount_mismatches(&self) -> MetaResult<Vec<RefMismatch>> {
        let rows = sqlx::query(REFCOUNT_MISMATCHES)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::mismatch_of).collect()
    }

    async fn blobs_to_verify(&self, limit: usize) -> MetaResult<Vec<BlobRow>> {
        let q = sqlx::query(BLOBS_TO_VERIFY).bind(to_i64(limit));
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(rows::blob_row_of).collect()
    }

    async fn blob_data(&self, blob: &BlobId) -> MetaResult<Option<Vec<u8>>> {
        let q = sqlx::query_scalar(BLOB_DATA)
            .bind(blob.tier.as_str())
            .bind(&blob.hash);
        Ok(q.fetch_optional(&self.pool).await?)
    }

    async fn mark_verified(&self, blob: &BlobId, intact: bool) -> MetaResult<()> {
        sqlx::query(MARK_VERIFIED)
            .bind(blob.tier.as_str())
            .bind(&blob.hash)
            .bind(crate::now_micros())
            .bind(!intact)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn blob_rows(&self, after: &str, limit: usize) -> MetaResult<Vec<BlobRow>> {
        let q = sqlx::query(BLOB_ROWS).bind(after).bind(to_i64(limit));
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(rows::blob_row_of).collect()
    }

    async fn blob_exists(&self, blob: &BlobId) -> MetaResult<bool> {
        let q = sqlx::query_scalar::<_, i64>(BLOB_EXISTS)
            .bind(blob.tier.as_str())
            .bind(&blob.hash);
        Ok(q.fetch_optional(&self.pool).await?.is_some())
    }

    async fn adopt_blob(&self, blob: &BlobId, size: u64) -> MetaResult<bool> {
        let done = sqlx::query(ADOPT_BLOB)
            .bind(blob.tier.as_str())
            .bind(&blob.hash)
            .bind(to_i64(size))
            .bind(crate::now_micros())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn repair_blob(&self, blob: &BlobId, fix: BlobRepair) -> MetaResult<()> {
        let q = match fix {
            BlobRepair::SetRefCount(n) => sqlx::query(SET_REF_COUNT)
                .bind(blob.tier.as_str())
                .bind(&blob.hash)
                .bind(n)
                .bind(crate::now_micros()),
            BlobRepair::Delete => sqlx::query(DELETE_UNREFERENCED_BLOB)
                .bind(blob.tier.as_str())
                .bind(&blob.hash),
            BlobRepair::MarkCorrupted => sqlx::query(MARK_CORRUPTED)
                .bind(blob.tier.as_str())
                .bind(&blob.hash),
        };
        q.execute(&self.pool).await?;
        Ok(())
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
/// in-process, runs the same seeks as a loop (`sqlite::readers`).
fn walk_sql(bounded: bool) -> &'static str {
    static SQL: [std::sync::OnceLock<String>; 2] = [const { std::sync::OnceLock::new() }; 2];
    SQL[usize::from(bounded)].get_or_init(|| {
        let upper = if bounded { " AND o.key < $8" } else { "" };
        let first = format!(
            "o.bucket_id = $1 AND o.is_latest AND NOT o.delete_marker AND o.key >= $2 \
             AND ($3 OR o.key <> $2){upper}"
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
                 WHERE o.bucket_id = $1 AND o.is_latest AND NOT o.delete_marker \
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
