//! `MetaStore` on SQLite: one database file, one driver (rusqlite).
//!
//! - Writes: one read-write connection (`conn::Writer`), one transaction at a time. PUT and
//!   DELETE commits go through the group committer (`committer`); every other write is a
//!   transaction of its own (`SqliteMeta::write`). Either way the version and reference rule is
//!   `rule`'s.
//! - Durability: commits do not fsync; an acknowledged write has passed `WalSync::barrier`.
//! - Reads: read-only connections (`readers`), point reads on the calling thread, scans on the
//!   blocking pool.

mod committer;
mod conn;
mod readers;
mod rule;
mod wal;

pub(in crate::meta) use conn::bind;

use super::plan::{self, check_condition, check_upload, deltas};
use super::rows::{self, Cols, to_i64};
use super::statements::*;
use super::*;
use conn::{Writer, execute, first, rows as all_rows, scalar};
use rule::Script;
use rusqlite::Connection;
use rusqlite::types::ToSql;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct SqliteMeta {
    writer: Arc<Writer>,
    /// Acknowledged writes pass its barrier (`wal`).
    wal: Arc<wal::WalSync>,
    /// PUT and DELETE commits, grouped.
    committer: committer::Committer,
    readers: Arc<readers::Readers>,
}

impl SqliteMeta {
    /// Opens (creating it if needed) the database at `url`: `sqlite://PATH` or `sqlite:PATH`,
    /// query parameters ignored, or a bare path.
    pub async fn connect(url: &str) -> MetaResult<SqliteMeta> {
        let path = path_of(url);
        let file = path.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut c = conn::open_writer(&file)?;
            migrations::sqlite(&mut c)?;
            Ok::<_, MetaError>(c)
        })
        .await
        .map_err(|e| MetaError::Invariant(format!("opening the database panicked: {e}")))??;
        let writer = Writer::new(writer);
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = Arc::new(wal::WalSync::new(Some(PathBuf::from(wal))));
        Ok(SqliteMeta {
            committer: committer::Committer::start(writer.clone(), wal.clone()),
            readers: Arc::new(readers::Readers::open(&path)?),
            writer,
            wal,
        })
    }

    /// `f` in a write transaction of its own; returns once the commit is durable.
    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> MetaResult<R> + Send + 'static,
    ) -> MetaResult<R> {
        let r = self.writer.transaction(f).await?;
        self.wal.barrier().await?;
        Ok(r)
    }

    /// Runs one statement as a transaction; returns the rows it changed.
    async fn write_one(
        &self,
        sql: &'static str,
        args: Vec<Box<dyn ToSql + Send>>,
    ) -> MetaResult<usize> {
        self.write(move |c| {
            let args: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref() as &dyn ToSql).collect();
            execute(c, sql, &args)
        })
        .await
    }
}

/// The file a database URL names.
fn path_of(url: &str) -> PathBuf {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    Path::new(path).to_path_buf()
}

/// Boxes the values of a statement run on the writer's thread.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        vec![$(Box::new($v) as Box<dyn ToSql + Send>),*]
    };
}

/// Whether bucket `id` exists.
fn bucket_exists(c: &Connection, id: &str) -> MetaResult<bool> {
    Ok(scalar::<i64>(c, BUCKET_EXISTS, &[&id])?.is_some())
}

/// A bucket's versioning, if it exists.
/// A bucket's and its tenant's quotas, with what each holds when it has one (`None`: no such
/// bucket).
fn quota_state_on(c: &Connection, bucket_id: &str) -> MetaResult<Option<QuotaState>> {
    let Some(mut q) = first(c, QUOTA_LIMITS, &[&bucket_id], |r| rows::quota_limits_of(r))? else {
        return Ok(None);
    };
    let held = |sql, id: &str| first(c, sql, &[&id], |r| rows::held_of(r));
    if q.bucket.is_set() {
        q.bucket_held = held(BUCKET_HELD, bucket_id)?.unwrap_or_default();
    }
    if q.tenant.is_set() {
        q.tenant_held = held(TENANT_HELD, &q.tenant_id)?.unwrap_or_default();
    }
    Ok(Some(q))
}

fn versioning_of(c: &Connection, id: &str) -> MetaResult<Option<Versioning>> {
    let v: Option<Option<String>> = first(c, BUCKET_VERSIONING, &[&id], |r| r.get_index(0))?;
    v.map(|v| Versioning::from_db(v.as_deref())).transpose()
}

/// A version of a key by version id, with its segments (and inline bytes, with `inline`).
fn version_in(
    c: &Connection,
    bucket_id: &str,
    key: &str,
    version_id: &str,
    inline: bool,
) -> MetaResult<Option<ObjectRow>> {
    let mut stmt = c.prepare_cached(version_sql(version_id))?;
    let args: [&dyn ToSql; 4] = [&bucket_id, &key, &version_id, &inline];
    rows::object_from_rows(&mut rows::Named::bound(&mut stmt, &args)?, inline)
}

/// The current version of a key with its segments.
fn latest_in(c: &Connection, bucket_id: &str, key: &str) -> MetaResult<Option<ObjectRow>> {
    let mut stmt = c.prepare_cached(LATEST_IN_SQL)?;
    let args: [&dyn ToSql; 2] = [&bucket_id, &key];
    rows::object_from_rows(&mut rows::Named::bound(&mut stmt, &args)?, false)
}

fn all_parts(c: &Connection, upload_id: &str) -> MetaResult<Vec<PartRow>> {
    all_rows(c, ALL_PARTS, &[&upload_id], |r| rows::part_of(r))
}

fn upload_by_id(c: &Connection, upload_id: &str) -> MetaResult<Option<UploadRow>> {
    const Q: &str = const_format::concatcp!(
        "SELECT ",
        UPLOAD_COLS,
        " FROM multipart_uploads WHERE upload_id = $1"
    );
    first(c, Q, &[&upload_id], |r| rows::upload_of(r))
}

/// Releases an upload's parts' references and forgets it.
fn drop_upload(c: &Connection, upload_id: &str) -> MetaResult<()> {
    let release: Vec<Segment> = all_parts(c, upload_id)?
        .into_iter()
        .filter_map(|p| p.blob)
        .collect();
    let mut w = Script::default();
    rule::refs(&mut w, &deltas(&[], &release), None, crate::now_micros());
    w.run(c)?;
    execute(c, DELETE_UPLOAD, &[&upload_id])?;
    Ok(())
}

#[async_trait::async_trait]
impl MetaStore for SqliteMeta {
    async fn ping(&self) -> MetaResult<()> {
        self.readers.point(|c| Ok(c.execute_batch("SELECT 1")?))
    }

    async fn create_tenant(&self, name: &str) -> MetaResult<String> {
        let id = uuid::Uuid::now_v7().to_string();
        let args = args![id.clone(), name.to_owned(), crate::now_micros()];
        self.write_one(INSERT_TENANT, args).await?;
        Ok(id)
    }

    async fn tenant_id(&self, name: &str) -> MetaResult<Option<String>> {
        self.readers.point(|c| scalar(c, TENANT_ID, &[&name]))
    }

    async fn tenant_name(&self, id: &str) -> MetaResult<Option<String>> {
        self.readers.point(|c| scalar(c, TENANT_NAME, &[&id]))
    }

    async fn create_access_key(
        &self,
        tenant_id: &str,
        access_key_id: &str,
        secret: &str,
        read_only: bool,
        expires_at: Option<i64>,
    ) -> MetaResult<()> {
        let args = args![
            access_key_id.to_owned(),
            secret.to_owned(),
            tenant_id.to_owned(),
            read_only,
            crate::now_micros(),
            expires_at,
        ];
        self.write_one(INSERT_ACCESS_KEY, args).await?;
        Ok(())
    }

    async fn access_key(&self, access_key_id: &str) -> MetaResult<Option<AccessKey>> {
        (self.readers)
            .point(|c| first(c, ACCESS_KEY, &[&access_key_id], |r| rows::access_key_of(r)))
    }

    async fn tenant_has_keys(&self, tenant_id: &str) -> MetaResult<bool> {
        let found = (self.readers).point(|c| scalar::<i64>(c, TENANT_HAS_KEYS, &[&tenant_id]))?;
        Ok(found.is_some())
    }

    async fn tenants(&self) -> MetaResult<Vec<TenantRow>> {
        (self.readers)
            .scan(|c| all_rows(c, TENANTS, &[], |r| rows::tenant_of(r)))
            .await
    }

    async fn delete_tenant(&self, tenant_id: &str) -> MetaResult<bool> {
        let tenant_id = tenant_id.to_owned();
        self.write(move |c| {
            let id: &dyn ToSql = &tenant_id;
            if scalar::<i64>(c, TENANT_HAS_BUCKETS, &[id])?.is_some() {
                return Err(MetaError::TenantNotEmpty);
            }
            execute(c, DELETE_TENANT_KEYS, &[id])?;
            execute(c, BUMP_KEY_EPOCH, &[])?;
            Ok(execute(c, DELETE_TENANT, &[id])? > 0)
        })
        .await
    }

    async fn keys(&self) -> MetaResult<Vec<KeyRow>> {
        (self.readers)
            .scan(|c| all_rows(c, KEYS, &[], |r| rows::key_of(r)))
            .await
    }

    async fn set_key_disabled(&self, access_key_id: &str, at: Option<i64>) -> MetaResult<bool> {
        let id = access_key_id.to_owned();
        self.write(move |c| {
            execute(c, BUMP_KEY_EPOCH, &[])?;
            Ok(execute(c, SET_KEY_DISABLED, &[&id, &at])? > 0)
        })
        .await
    }

    async fn delete_access_key(&self, access_key_id: &str) -> MetaResult<bool> {
        let id = access_key_id.to_owned();
        self.write(move |c| {
            execute(c, BUMP_KEY_EPOCH, &[])?;
            Ok(execute(c, DELETE_ACCESS_KEY, &[&id])? > 0)
        })
        .await
    }

    async fn key_epoch(&self) -> MetaResult<i64> {
        let n = self.readers.point(|c| scalar(c, KEY_EPOCH, &[]))?;
        n.ok_or_else(|| MetaError::Corrupt("key_epoch has no row".into()))
    }

    async fn create_bucket(
        &self,
        tenant_id: &str,
        name: &str,
        object_lock: bool,
    ) -> MetaResult<BucketRow> {
        let row = plan::new_bucket(tenant_id, name, object_lock);
        let args = args![
            row.id.clone(),
            row.tenant_id.clone(),
            row.name.clone(),
            row.created_at,
            row.versioning.as_db(),
            row.object_lock,
        ];
        if self.write_one(INSERT_BUCKET, args).await? == 0 {
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
        let args = args![bucket_id.to_owned(), v.as_db(), object_lock];
        Ok(self.write_one(SET_VERSIONING, args).await? > 0)
    }

    async fn bucket(&self, tenant_id: &str, name: &str) -> MetaResult<Option<BucketRow>> {
        let lookup = rows::Lookup {
            tenant: tenant_id.to_owned(),
            bucket: name.to_owned(),
            key: None,
            inline: false,
        };
        Ok(self.readers.find(&lookup)?.bucket)
    }

    async fn list_buckets(&self, tenant_id: &str) -> MetaResult<Vec<BucketRow>> {
        let tenant_id = tenant_id.to_owned();
        (self.readers)
            .scan(move |c| all_rows(c, LIST_BUCKETS, &[&tenant_id], |r| rows::bucket_of(r)))
            .await
    }

    async fn buckets_with_config(&self, kind: &str) -> MetaResult<Vec<BucketRow>> {
        let kind = kind.to_owned();
        (self.readers)
            .scan(move |c| all_rows(c, BUCKETS_WITH_CONFIG, &[&kind], |r| rows::bucket_of(r)))
            .await
    }

    async fn delete_bucket(&self, bucket_id: &str) -> MetaResult<()> {
        let bucket_id = bucket_id.to_owned();
        self.write(move |c| {
            let id: &dyn ToSql = &bucket_id;
            if scalar::<i64>(c, BUCKET_HAS_VERSIONS, &[id])?.is_some() {
                return Err(MetaError::BucketNotEmpty);
            }
            // S3 deletes a bucket's incomplete uploads with it.
            let uploads: Vec<String> = all_rows(
                c,
                "SELECT upload_id FROM multipart_uploads WHERE bucket_id = $1",
                &[id],
                |r| r.get_index(0),
            )?;
            for upload_id in &uploads {
                drop_upload(c, upload_id)?;
            }
            execute(c, DELETE_BUCKET_VERSIONS, &[id])?;
            execute(c, DELETE_BUCKET, &[id])?;
            Ok(())
        })
        .await
    }

    async fn bucket_config(&self, bucket_id: &str, kind: &str) -> MetaResult<Option<String>> {
        (self.readers).point(|c| scalar(c, BUCKET_CONFIG, &[&bucket_id, &kind]))
    }

    async fn set_bucket_config(
        &self,
        bucket_id: &str,
        kind: &str,
        value: Option<&str>,
    ) -> MetaResult<bool> {
        let (bucket_id, kind) = (bucket_id.to_owned(), kind.to_owned());
        let value = value.map(str::to_owned);
        self.write(move |c| {
            if !bucket_exists(c, &bucket_id)? {
                return Ok(false);
            }
            match &value {
                Some(v) => execute(c, SET_BUCKET_CONFIG, &[&bucket_id, &kind, v])?,
                None => execute(c, DELETE_BUCKET_CONFIG, &[&bucket_id, &kind])?,
            };
            Ok(true)
        })
        .await
    }

    async fn acl(&self, of: AclOf<'_>) -> MetaResult<Option<Option<String>>> {
        let (sql, id) = match of {
            AclOf::Object(id) => (OBJECT_ACL, id),
            AclOf::Upload(id) => (UPLOAD_ACL, id),
        };
        (self.readers).point(|c| first(c, sql, &[&id], |r| r.get_index(0)))
    }

    async fn set_acl(&self, of: AclOf<'_>, acl: Option<&str>) -> MetaResult<bool> {
        let (sql, id) = match of {
            AclOf::Object(id) => (SET_OBJECT_ACL, id),
            AclOf::Upload(id) => (SET_UPLOAD_ACL, id),
        };
        let args = args![id.to_owned(), acl.map(str::to_owned)];
        Ok(self.write_one(sql, args).await? > 0)
    }

    async fn commit_put(&self, c: &PutCommit, place: Option<PlaceFn<'_>>) -> MetaResult<ObjectRow> {
        let op = committer::Op::Put {
            commit: Box::new(c.clone()),
            place: place.map(|p| p()),
        };
        match self.committer.commit(op).await? {
            committer::Done::Put(row) => Ok(*row),
            _ => Err(MetaError::Invariant("PUT answered as DELETE".into())),
        }
    }

    async fn commit_copy(&self, c: &CopyCommit) -> MetaResult<ObjectRow> {
        let c = c.clone();
        self.write(move |tx| {
            let seen = committer::key_state(tx, &c.dst_bucket_id, &c.dst_key)?;
            if seen.bucket.is_none() {
                return Err(MetaError::NoSuchBucket);
            }
            let src = match &c.src_version {
                Some(v) => version_in(tx, &c.src_bucket_id, &c.src_key, v, false)?,
                None => latest_in(tx, &c.src_bucket_id, &c.src_key)?,
            };
            let src = plan::copy_source(src, c.src_version.is_some())?;
            if !c.source_condition.holds(&src) {
                return Err(MetaError::PreconditionFailed);
            }
            let mut row = plan::copy_version(&c, src);
            let mut w = Script::default();
            let now = crate::now_micros();
            let mut ledger = plan::Ledger::default();
            committer::new_version(&mut w, &seen, &mut row, (None, &[]), &mut ledger, now)?;
            w.run(tx)?;
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
        let found = self.readers.find(&rows::Lookup {
            tenant: tenant_id.to_owned(),
            bucket: bucket.to_owned(),
            key: Some(key.to_owned()),
            inline: with_inline,
        })?;
        match found.bucket {
            Some(_) => Ok(found.object),
            None => Err(MetaError::NoSuchBucket),
        }
    }

    async fn version(
        &self,
        bucket_id: &str,
        key: &str,
        version_id: &str,
        with_inline: bool,
    ) -> MetaResult<Option<ObjectRow>> {
        (self.readers).point(|c| version_in(c, bucket_id, key, version_id, with_inline))
    }

    async fn delete_key(
        &self,
        tenant_id: &str,
        bucket: &str,
        key: &str,
    ) -> MetaResult<Option<Deleted>> {
        let op = committer::Op::Delete {
            tenant_id: tenant_id.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        };
        match self.committer.commit(op).await {
            Ok(committer::Done::Delete(d)) => Ok(Some(d)),
            Err(MetaError::NoSuchBucket) => Ok(None),
            Ok(_) => Err(MetaError::Invariant("DELETE answered as PUT".into())),
            Err(e) => Err(e),
        }
    }

    async fn delete_version(
        &self,
        bucket_id: &str,
        key: &str,
        version_id: &str,
        bypass: bool,
    ) -> MetaResult<Option<RemovedVersion>> {
        let op = committer::Op::DeleteVersion {
            bucket_id: bucket_id.to_owned(),
            key: key.to_owned(),
            version_id: version_id.to_owned(),
            bypass,
        };
        match self.committer.commit(op).await? {
            committer::Done::Version(v) => Ok(v),
            _ => Err(MetaError::Invariant(
                "version DELETE answered as PUT".into(),
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
        let (sql, version) = match version_id {
            None => (SET_TAGS, None),
            Some(NULL_VERSION) => (SET_NULL_VERSION_TAGS, Some(NULL_VERSION.to_owned())),
            Some(v) => (SET_VERSION_TAGS, Some(v.to_owned())),
        };
        let args = args![
            bucket_id.to_owned(),
            key.to_owned(),
            rows::tags_json(tags),
            version
        ];
        Ok(self.write_one(sql, args).await? > 0)
    }

    async fn set_lock(
        &self,
        bucket_id: &str,
        key: &str,
        version_id: Option<&str>,
        change: LockChange,
    ) -> MetaResult<Option<Lock>> {
        let (bucket_id, key) = (bucket_id.to_owned(), key.to_owned());
        let version_id = version_id.map(str::to_owned);
        self.write(move |c| {
            let row = match &version_id {
                Some(v) => version_in(c, &bucket_id, &key, v, false)?,
                None => latest_in(c, &bucket_id, &key)?,
            };
            let Some(row) = row.filter(|r| !r.delete_marker) else {
                return Ok(None);
            };
            let lock = plan::lock_after(row.lock, change, crate::now_micros())?;
            let (mode, until, hold) = rows::lock_cols(&lock);
            execute(c, SET_LOCK, &[&row.id, &mode, &until, &hold])?;
            Ok(Some(lock))
        })
        .await
    }

    async fn list_versions(
        &self,
        range: KeyRange<'_>,
        after_seq: Option<i64>,
        limit: usize,
    ) -> MetaResult<Vec<VersionEntry>> {
        let (bucket_id, start) = (range.bucket_id.to_owned(), range.start.to_owned());
        let before = range.before.map(str::to_owned);
        let inclusive = range.start_inclusive;
        let limit = to_i64(limit);
        (self.readers)
            .scan(move |c| {
                let mut out = Vec::new();
                let mut inclusive = inclusive;
                if let Some(seq) = after_seq {
                    let args: [&dyn ToSql; 4] = [&bucket_id, &start, &limit, &seq];
                    out = all_rows(c, KEY_VERSIONS_BEFORE, &args, |r| rows::version_entry_of(r))?;
                    inclusive = false;
                }
                let left = limit - to_i64(out.len());
                if left > 0 {
                    let args: [&dyn ToSql; 4] = [&bucket_id, &start, &left, &before];
                    let range = |current| {
                        let sql = versions_sql(current, inclusive, before.is_some());
                        all_rows(c, sql, &args, |r| rows::version_entry_of(r))
                    };
                    let page = plan::merge_versions(
                        range(true)?,
                        range(false)?,
                        usize::try_from(left).unwrap_or(0),
                    );
                    out.extend(page);
                }
                Ok(out)
            })
            .await
    }

    async fn list_page(&self, range: KeyRange<'_>, limit: usize) -> MetaResult<Vec<ListEntry>> {
        self.readers.list_page(range, limit).await
    }

    async fn list_walk(
        &self,
        range: KeyRange<'_>,
        roll: Rollup<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ListEntry>> {
        self.readers.list_walk(range, roll, limit).await
    }

    async fn create_upload(&self, u: &UploadRow) -> MetaResult<()> {
        let h = &u.headers;
        let args = args![
            u.upload_id.clone(),
            u.bucket_id.clone(),
            u.key.clone(),
            u.initiated,
            u.tier.as_str(),
            u.storage_class.clone(),
            h.content_type.clone(),
            h.content_encoding.clone(),
            h.content_disposition.clone(),
            h.content_language.clone(),
            h.cache_control.clone(),
            h.expires.clone(),
            rows::user_meta_json(h),
            u.checksum_algo.map(ChecksumAlgo::as_str),
            if u.full_object {
                "FULL_OBJECT"
            } else {
                "COMPOSITE"
            },
            rows::tags_json(&h.tags),
            u.lock.retention.map(|(m, _)| m.as_str()),
            u.lock.retention.map(|(_, t)| t),
            u.lock.legal_hold,
        ];
        self.write_one(INSERT_UPLOAD, args).await?;
        Ok(())
    }

    async fn upload(&self, bucket_id: &str, upload_id: &str) -> MetaResult<Option<UploadRow>> {
        (self.readers)
            .point(|c| first(c, UPLOAD, &[&upload_id, &bucket_id], |r| rows::upload_of(r)))
    }

    async fn commit_part(
        &self,
        upload_id: &str,
        part: &PartRow,
        place: Option<PlaceFn<'_>>,
    ) -> MetaResult<()> {
        let mut tx = self.writer.begin().await?;
        let (id, number) = (upload_id.to_owned(), part.part_number);
        let old = tx
            .run(move |c| {
                check_upload(upload_by_id(c, &id)?, None, None)?;
                first(c, PART, &[&id, &number], |r| rows::part_of(r))
            })
            .await?;
        if let Some(place) = place {
            // Under the write lock: the collector cannot unlink the file until this commits.
            place().await.map_err(MetaError::Place)?;
        }
        let (id, part) = (upload_id.to_owned(), part.clone());
        tx.run(move |c| {
            let new: Vec<Segment> = part.blob.iter().cloned().collect();
            let old: Vec<Segment> = old.and_then(|p| p.blob).into_iter().collect();
            let mut w = Script::default();
            rule::refs(
                &mut w,
                &deltas(&new, &old),
                part.blob.as_ref(),
                crate::now_micros(),
            );
            w.run(c)?;
            let tier = part.blob.as_ref().map_or("hot", |b| b.tier.as_str());
            let hash = part.blob.as_ref().map(|b| b.hash.as_str());
            let args: [&dyn ToSql; 8] = [
                &id,
                &part.part_number,
                &tier,
                &hash,
                &to_i64(part.size),
                &part.etag,
                &part.created_at,
                &part.checksum,
            ];
            execute(c, UPSERT_PART, &args)?;
            Ok(())
        })
        .await?;
        tx.commit().await?;
        self.wal.barrier().await
    }

    async fn list_parts(
        &self,
        upload_id: &str,
        after: i32,
        limit: usize,
    ) -> MetaResult<Vec<PartRow>> {
        let upload_id = upload_id.to_owned();
        let limit = to_i64(limit);
        (self.readers)
            .scan(move |c| {
                all_rows(c, LIST_PARTS, &[&upload_id, &after, &limit], |r| {
                    rows::part_of(r)
                })
            })
            .await
    }

    async fn complete_upload(&self, c: &CompleteCommit<'_>) -> MetaResult<ObjectRow> {
        let mut tx = self.writer.begin().await?;
        let (bucket_id, upload_id, key) = (c.bucket_id.clone(), c.upload_id.clone(), c.key.clone());
        let (up, parts, seen) = tx
            .run(move |t| {
                let up = check_upload(upload_by_id(t, &upload_id)?, Some(&bucket_id), Some(&key))?;
                let parts = all_parts(t, &upload_id)?;
                Ok((up, parts, committer::key_state(t, &bucket_id, &key)?))
            })
            .await?;
        let a = (c.assemble)(&parts)?;
        check_condition(&c.condition, seen.current.as_ref())?;
        let mut row = plan::completed_version(c, &up, &a);
        let released: Vec<Segment> = parts.into_iter().filter_map(|p| p.blob).collect();
        let mut w = Script::default();
        let now = crate::now_micros();
        let mut ledger = plan::Ledger::default();
        let parts = (None, released.as_slice());
        committer::new_version(&mut w, &seen, &mut row, parts, &mut ledger, now)?;
        let (upload_id, done) = (c.upload_id.clone(), row.clone());
        tx.run(move |t| {
            w.run(t)?;
            for p in &a.parts {
                let args: [&dyn ToSql; 5] = [
                    &done.id,
                    &p.seq,
                    &p.part_number,
                    &to_i64(p.size),
                    &p.checksum,
                ];
                execute(t, INSERT_OBJECT_PART, &args)?;
            }
            execute(t, DELETE_UPLOAD, &[&upload_id])?;
            Ok(())
        })
        .await?;
        tx.commit().await?;
        self.wal.barrier().await?;
        Ok(row)
    }

    async fn object_parts(
        &self,
        object_id: &str,
        after: i32,
        limit: usize,
    ) -> MetaResult<Vec<ObjectPart>> {
        let object_id = object_id.to_owned();
        let limit = to_i64(limit);
        (self.readers)
            .scan(move |c| {
                all_rows(c, OBJECT_PARTS, &[&object_id, &after, &limit], |r| {
                    rows::object_part_of(r)
                })
            })
            .await
    }

    async fn abort_upload(&self, bucket_id: &str, upload_id: &str) -> MetaResult<bool> {
        let (bucket_id, upload_id) = (bucket_id.to_owned(), upload_id.to_owned());
        self.write(move |c| {
            match check_upload(upload_by_id(c, &upload_id)?, Some(&bucket_id), None) {
                Err(MetaError::NoSuchUpload) => return Ok(false),
                r => r?,
            };
            drop_upload(c, &upload_id)?;
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
        let own = |s: &str| s.to_owned();
        let (bucket_id, prefix) = (own(bucket_id), own(prefix));
        let (after_key, after_id, limit) = (own(after_key), own(after_id), to_i64(limit));
        let page = (self.readers)
            .scan(move |c| {
                let args: [&dyn ToSql; 5] = [&bucket_id, &prefix, &after_key, &after_id, &limit];
                let page = all_rows(c, LIST_UPLOADS, &args, |r| rows::upload_of(r))?;
                Ok((prefix, page))
            })
            .await?;
        Ok(plan::uploads_under(&page.0, page.1))
    }

    async fn stale_uploads(&self, cutoff: i64, limit: usize) -> MetaResult<Vec<(String, String)>> {
        let limit = to_i64(limit);
        (self.readers)
            .scan(move |c| {
                all_rows(c, STALE_UPLOADS, &[&cutoff, &limit], |r| {
                    Ok((r.get("bucket_id")?, r.get("upload_id")?))
                })
            })
            .await
    }

    async fn purge_deleted(&self, cutoff: i64, limit: usize) -> MetaResult<u64> {
        let n = self
            .write_one(PURGE_DELETED, args![cutoff, to_i64(limit)])
            .await?;
        Ok(n as u64)
    }

    async fn collectable_blobs(&self, cutoff: i64, limit: usize) -> MetaResult<Vec<BlobId>> {
        let limit = to_i64(limit);
        (self.readers)
            .scan(move |c| {
                all_rows(c, COLLECTABLE_BLOBS, &[&cutoff, &limit], |r| {
                    rows::blob_id_of(r)
                })
            })
            .await
    }

    async fn collect_blob(
        &self,
        blob: &BlobId,
        cutoff: i64,
        unlink: PlaceFn<'_>,
    ) -> MetaResult<bool> {
        let mut tx = self.writer.begin().await?;
        let (tier, hash) = (blob.tier.as_str(), blob.hash.clone());
        let row = tx
            .run(move |c| {
                const Q: &str =
                    "SELECT ref_count, zero_since FROM blobs WHERE tier = $1 AND hash = $2";
                first(c, Q, &[&tier, &hash], |r| {
                    Ok((
                        r.get::<i64>("ref_count")?,
                        r.get::<Option<i64>>("zero_since")?,
                    ))
                })
            })
            .await?;
        let Some((refs, zero_since)) = row else {
            return Ok(false);
        };
        if !plan::collectable(blob, refs, zero_since, cutoff)? {
            return Ok(false);
        }
        unlink().await.map_err(MetaError::Place)?;
        let hash = blob.hash.clone();
        tx.run(move |c| execute(c, DELETE_BLOB, &[&tier, &hash]))
            .await?;
        tx.commit().await?;
        self.wal.barrier().await?;
        Ok(true)
    }

    async fn usage(&self) -> MetaResult<Vec<UsageRow>> {
        (self.readers)
            .scan(|c| all_rows(c, USAGE, &[], |r| rows::usage_of(r)))
            .await
    }

    async fn physical(&self) -> MetaResult<Vec<PhysicalRow>> {
        (self.readers)
            .scan(|c| all_rows(c, PHYSICAL, &[], |r| rows::physical_of(r)))
            .await
    }

    async fn take_lease(&self, name: &str, holder: &str, now: i64, until: i64) -> MetaResult<bool> {
        let args = args![name.to_owned(), holder.to_owned(), until, now];
        Ok(self.write_one(TAKE_LEASE, args).await? > 0)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> MetaResult<()> {
        let args = args![name.to_owned(), holder.to_owned()];
        self.write_one(RELEASE_LEASE, args).await?;
        Ok(())
    }

    async fn blob_stats(&self) -> MetaResult<Vec<BlobStats>> {
        (self.readers)
            .scan(|c| all_rows(c, BLOB_STATS, &[], |r| rows::blob_stats_of(r)))
            .await
    }

    async fn check_usage(&self, repair: bool) -> MetaResult<UsageCheck> {
        // In the write transaction: no commit moves the figures between the two reads.
        self.write(move |c| {
            let kept = all_rows(c, USAGE, &[], |r| rows::usage_of(r))?;
            let recount = all_rows(c, USAGE_RECOUNT, &[], |r| rows::usage_of(r))?;
            let physical = all_rows(c, PHYSICAL, &[], |r| rows::physical_of(r))?;
            let holders = all_rows(c, HOLDERS_RECOUNT, &[], |r| rows::holder_of(r))?;
            let check = plan::usage_check(kept, recount, physical, holders);
            if repair && !check.is_clean() {
                for sql in REBUILD_USAGE {
                    execute(c, sql, &[])?;
                }
            }
            Ok(check)
        })
        .await
    }

    async fn quota_state(&self, bucket_id: &str) -> MetaResult<Option<QuotaState>> {
        self.readers.point(|c| quota_state_on(c, bucket_id))
    }

    async fn set_quota(&self, of: QuotaOf<'_>, q: Quota) -> MetaResult<bool> {
        let (sql, id) = match of {
            QuotaOf::Tenant(id) => (SET_TENANT_QUOTA, id),
            QuotaOf::Bucket(id) => (SET_BUCKET_QUOTA, id),
        };
        let args = args![id.to_owned(), q.bytes, q.objects];
        Ok(self.write_one(sql, args).await? > 0)
    }

    async fn quota(&self, of: QuotaOf<'_>) -> MetaResult<Option<Quota>> {
        let (sql, id) = match of {
            QuotaOf::Tenant(id) => (TENANT_QUOTA, id),
            QuotaOf::Bucket(id) => (BUCKET_QUOTA, id),
        };
        self.readers
            .point(|c| first(c, sql, &[&id], |r| rows::quota_of(r)))
    }

    async fn create_admin_token(&self, t: &AdminTokenRow, sha256: &str) -> MetaResult<()> {
        let args = args![
            t.id.clone(),
            t.name.clone(),
            sha256.to_owned(),
            t.scope.clone(),
            t.created_at
        ];
        self.write_one(INSERT_ADMIN_TOKEN, args).await?;
        Ok(())
    }

    async fn admin_tokens(&self) -> MetaResult<Vec<AdminTokenRow>> {
        (self.readers)
            .scan(|c| all_rows(c, ADMIN_TOKENS, &[], |r| rows::admin_token_of(r)))
            .await
    }

    async fn admin_token(&self, sha256: &str) -> MetaResult<Option<AdminTokenRow>> {
        (self.readers).point(|c| first(c, ADMIN_TOKEN, &[&sha256], |r| rows::admin_token_of(r)))
    }

    async fn revoke_admin_token(&self, id: &str, at: i64) -> MetaResult<bool> {
        let args = args![id.to_owned(), at];
        Ok(self.write_one(REVOKE_ADMIN_TOKEN, args).await? > 0)
    }

    async fn search_step(&self, s: SearchStep<'_>) -> MetaResult<Vec<SearchEntry>> {
        let (bucket, from_id) = (s.bucket_id.to_owned(), s.from.1.to_owned());
        let (from_at, after, before, limit) = (s.from.0, s.after, s.before, to_i64(s.limit));
        (self.readers)
            .scan(move |c| {
                let args: [&dyn ToSql; 6] = [&bucket, &from_at, &from_id, &after, &before, &limit];
                all_rows(c, SEARCH_STEP, &args, |r| rows::search_entry_of(r))
            })
            .await
    }

    async fn add_metering(&self, rows: &[MeterRow]) -> MetaResult<()> {
        let rows = rows.to_vec();
        self.write(move |c| {
            for r in &rows {
                let args: [&dyn ToSql; 7] = [
                    &r.tenant_id,
                    &r.bucket,
                    &r.hour,
                    &r.class,
                    &r.requests,
                    &r.bytes_received,
                    &r.bytes_sent,
                ];
                execute(c, ADD_METERING, &args)?;
            }
            Ok(())
        })
        .await
    }

    async fn metering(&self, q: MeterQuery<'_>) -> MetaResult<Vec<MeterRow>> {
        let (tenant, bucket) = (q.tenant_id.map(str::to_owned), q.bucket.map(str::to_owned));
        let period: i64 = if q.by_day { 24 } else { 1 };
        let (from, to) = (q.from_hour, q.to_hour);
        (self.readers)
            .scan(move |c| {
                let args: [&dyn ToSql; 5] = [&from, &to, &tenant, &bucket, &period];
                all_rows(c, METERING, &args, |r| rows::meter_of(r))
            })
            .await
    }

    async fn refcount_mismatches(&self) -> MetaResult<Vec<RefMismatch>> {
        (self.readers)
            .scan(|c| all_rows(c, REFCOUNT_MISMATCHES, &[], |r| rows::mismatch_of(r)))
            .await
    }

    async fn blobs_to_verify(&self, limit: usize) -> MetaResult<Vec<BlobRow>> {
        let limit = to_i64(limit);
        (self.readers)
            .scan(move |c| all_rows(c, BLOBS_TO_VERIFY, &[&limit], |r| rows::blob_row_of(r)))
            .await
    }

    async fn blob_data(&self, blob: &BlobId) -> MetaResult<Option<Vec<u8>>> {
        let tier = blob.tier.as_str();
        (self.readers).point(|c| scalar(c, BLOB_DATA, &[&tier, &blob.hash]))
    }

    async fn mark_verified(&self, blob: &BlobId, intact: bool) -> MetaResult<()> {
        let args = args![
            blob.tier.as_str(),
            blob.hash.clone(),
            crate::now_micros(),
            !intact
        ];
        self.write_one(MARK_VERIFIED, args).await?;
        Ok(())
    }

    async fn blob_rows(&self, after: &str, limit: usize) -> MetaResult<Vec<BlobRow>> {
        let (after, limit) = (after.to_owned(), to_i64(limit));
        (self.readers)
            .scan(move |c| all_rows(c, BLOB_ROWS, &[&after, &limit], |r| rows::blob_row_of(r)))
            .await
    }

    async fn blob_exists(&self, blob: &BlobId) -> MetaResult<bool> {
        let tier = blob.tier.as_str();
        let found =
            (self.readers).point(|c| scalar::<i64>(c, BLOB_EXISTS, &[&tier, &blob.hash]))?;
        Ok(found.is_some())
    }

    async fn adopt_blob(&self, blob: &BlobId, size: u64) -> MetaResult<bool> {
        let args = args![
            blob.tier.as_str(),
            blob.hash.clone(),
            to_i64(size),
            crate::now_micros()
        ];
        Ok(self.write_one(ADOPT_BLOB, args).await? > 0)
    }

    async fn repair_blob(&self, blob: &BlobId, fix: BlobRepair) -> MetaResult<()> {
        let (tier, hash) = (blob.tier.as_str(), blob.hash.clone());
        let (sql, args) = match fix {
            BlobRepair::SetRefCount(n) => {
                (SET_REF_COUNT, args![tier, hash, n, crate::now_micros()])
            }
            BlobRepair::Delete => (DELETE_UNREFERENCED_BLOB, args![tier, hash]),
            BlobRepair::MarkCorrupted => (MARK_CORRUPTED, args![tier, hash]),
        };
        self.write_one(sql, args).await?;
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A fresh SQLite metadata store in a temporary directory (kept as long as the directory).
    pub async fn open() -> (tempfile::TempDir, SqliteMeta) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("meta.db").display());
        let meta = SqliteMeta::connect(&url).await.expect("open");
        (dir, meta)
    }

    /// A PUT commit of `key`: `blob` (none: an empty object), under `condition`.
    pub fn put(
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
            lock: Default::default(),
        }
    }

    /// SQLite's query plan of `sql` (four `$N` parameters), one line per step.
    fn plan_of(meta: &SqliteMeta, sql: &str) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let x = "x".to_owned();
        meta.readers
            .point(|c| all_rows(c, &explain, &[&x, &x, &x, &x], |r| r.get("detail")))
            .expect("plan")
    }

    /// Version listings seek `objects_latest` (current versions) and `objects_noncurrent`: a
    /// page reads its own rows.
    #[tokio::test]
    async fn version_listings_seek_their_index() {
        let (_dir, meta) = open().await;
        let mut sqls: Vec<(&str, &str)> = vec![(KEY_VERSIONS_BEFORE, "objects_noncurrent")];
        for (inclusive, bounded) in [(false, false), (true, false), (false, true), (true, true)] {
            sqls.push((versions_sql(true, inclusive, bounded), "objects_latest"));
            sqls.push((
                versions_sql(false, inclusive, bounded),
                "objects_noncurrent",
            ));
        }
        for (sql, index) in sqls {
            let plan = plan_of(&meta, sql);
            assert!(
                plan.iter()
                    .any(|d| d.contains(&format!("USING INDEX {index}"))),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|d| d.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
        }
    }

    /// Every listing statement (flat pages, and the delimiter walk's one-row seeks) reads the
    /// objects from the covering index alone, never from the table row by row.
    #[tokio::test]
    async fn listings_read_only_the_covering_index() {
        let (_dir, meta) = open().await;
        for (inclusive, bounded) in [(false, false), (true, false), (false, true), (true, true)] {
            let sql = page_sql(inclusive, bounded);
            let plan = plan_of(&meta, sql);
            let reads: Vec<&String> = plan
                .iter()
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
