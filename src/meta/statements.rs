//! Statement texts both databases run as they are: `$N` placeholders (SQLite binds them by
//! name), BIGINT microseconds, keys in byte order. What only one database runs is in its own
//! module.
//!
//! `LIMIT +$N`, never `LIMIT $N`: SQLite's planner reads a bare bound LIMIT and marks the
//! statement for re-preparation whenever that parameter is bound again (every execution), a
//! full parse and plan per listing page. Unary plus hides the parameter from it.

/// An object row's columns (alias `o`: the queries join segments and blobs).
pub(super) const OBJECT_COLS: &str = "o.id, o.key, o.size, o.etag, o.content_type, \
    o.content_encoding, o.content_disposition, o.content_language, o.cache_control, o.expires, \
    o.user_meta, o.tags, o.storage_class, o.created_at, o.parts_count, o.checksum_algo, \
    o.checksum_value, o.checksum_type, o.version_id, o.version_seq, o.is_latest, \
    o.delete_marker, o.lock_mode, o.lock_until, o.legal_hold";

/// An object's segments (`s`) and whether their blobs (`b`) are marked corrupted.
pub(super) const SEGMENT_COLS: &str = "s.tier AS seg_tier, s.blob_hash, s.size AS seg_size, \
    COALESCE(b.corrupted, FALSE) AS corrupted";
pub(super) const SEGMENT_JOIN: &str = "LEFT JOIN object_segments s ON s.object_id = o.id \
    LEFT JOIN blobs b ON b.tier = s.tier AND b.hash = s.blob_hash";

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
pub(super) use inline_data_col;

/// The current version of key `$2` in bucket `$1`, with its segments (one row each).
pub(super) const LATEST_IN_SQL: &str = const_format::concatcp!(
    "SELECT ",
    OBJECT_COLS,
    ", ",
    SEGMENT_COLS,
    " FROM objects o ",
    SEGMENT_JOIN,
    " WHERE o.bucket_id = $1 AND o.key = $2 AND o.is_latest ORDER BY s.seq"
);

/// Version `$3` of key `$2` in bucket `$1` (not the null version: its id is the row's).
pub(super) const VERSION_BY_ID_SQL: &str = const_format::concatcp!(
    "SELECT ",
    OBJECT_COLS,
    ", ",
    SEGMENT_COLS,
    ", ",
    inline_data_col!("$4"),
    " FROM objects o ",
    SEGMENT_JOIN,
    " WHERE o.id = $3 AND o.bucket_id = $1 AND o.key = $2 AND o.version_id = $3 \
     AND o.status = 'COMMITTED' ORDER BY s.seq"
);

/// The null version of key `$2` in bucket `$1` (`$3` unused, for the same arguments).
pub(super) const NULL_VERSION_SQL: &str = const_format::concatcp!(
    "SELECT ",
    OBJECT_COLS,
    ", ",
    SEGMENT_COLS,
    ", ",
    inline_data_col!("$4"),
    " FROM objects o ",
    SEGMENT_JOIN,
    " WHERE o.id = (SELECT id FROM objects WHERE bucket_id = $1 AND key = $2 AND is_latest \
       AND version_id = 'null' \
     UNION ALL SELECT id FROM objects WHERE bucket_id = $1 AND key = $2 \
       AND status = 'COMMITTED' AND NOT is_latest AND version_id = 'null' LIMIT 1) \
     AND $3 = 'null' ORDER BY s.seq"
);

/// The statement that finds version `version_id` of a key (`$1` bucket, `$2` key, `$3` the
/// version id, `$4` whether inline bytes are read).
pub(super) fn version_sql(version_id: &str) -> &'static str {
    if version_id == crate::meta::NULL_VERSION {
        NULL_VERSION_SQL
    } else {
        VERSION_BY_ID_SQL
    }
}

/// A version listing row's columns.
const VERSION_COLS: &str =
    "key, version_id, version_seq, is_latest, delete_marker, size, etag, storage_class, created_at";

/// A version listing page's two ranges (merged by `plan::merge_versions`): the current
/// versions (`current`, `objects_latest`) or the noncurrent ones (`objects_noncurrent`) of
/// bucket `$1` with keys from `$2` (inclusive or not), below `$4` when `bounded`, newest first,
/// at most `$3`.
pub(super) fn versions_sql(current: bool, start_inclusive: bool, bounded: bool) -> &'static str {
    macro_rules! versions_sql {
        ($which:literal, $cond:literal) => {
            concat!(
                "SELECT key, version_id, version_seq, is_latest, delete_marker, size, etag, \
                 storage_class, created_at FROM objects WHERE bucket_id = $1 AND ",
                $which,
                " AND ",
                $cond,
                " ORDER BY key, version_seq DESC LIMIT +$3"
            )
        };
    }
    macro_rules! both {
        ($cond:literal) => {
            match current {
                true => versions_sql!("is_latest", $cond),
                false => versions_sql!("status = 'COMMITTED' AND NOT is_latest", $cond),
            }
        };
    }
    match (start_inclusive, bounded) {
        (false, false) => both!("key > $2"),
        (true, false) => both!("key >= $2"),
        (false, true) => both!("key > $2 AND key < $4"),
        (true, true) => both!("key >= $2 AND key < $4"),
    }
}

/// The versions of key `$2` in bucket `$1` older than `$4` (`version_seq`), newest first, at
/// most `$3`: noncurrent ones (the current version is the newest).
pub(super) const KEY_VERSIONS_BEFORE: &str = const_format::concatcp!(
    "SELECT ",
    VERSION_COLS,
    " FROM objects WHERE bucket_id = $1 AND key = $2 AND status = 'COMMITTED' \
     AND NOT is_latest AND version_seq < $4 ORDER BY version_seq DESC LIMIT +$3"
);

/// A `BlobRow`'s columns, selected `FROM blobs` (unaliased).
const BLOB_ROW_COLS: &str = "tier, hash, size, ref_count, corrupted, EXISTS (SELECT 1 FROM \
    blob_data d WHERE d.tier = blobs.tier AND d.hash = blobs.hash) AS inline";

pub(super) const UPLOAD_COLS: &str = "upload_id, bucket_id, key, initiated, tier, \
    storage_class, content_type, content_encoding, content_disposition, content_language, \
    cache_control, expires, user_meta, tags, checksum_algo, checksum_type, lock_mode, \
    lock_until, legal_hold";

const PART_COLS: &str = "part_number, tier, blob_hash, size, etag, created_at, checksum_value";

/// A listing page: current versions of bucket `$1` from `$2` (inclusive or not), below `$4`
/// when `bounded`, at most `$3`. The columns are `rows::list_entry_of`'s.
pub(super) fn page_sql(start_inclusive: bool, bounded: bool) -> &'static str {
    macro_rules! page_sql {
        ($cond:literal) => {
            concat!(
                "SELECT key, size, etag, storage_class, created_at FROM objects \
                 WHERE bucket_id = $1 AND is_latest AND NOT delete_marker AND ",
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

pub(super) const INSERT_TENANT: &str =
    "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)";
pub(super) const TENANT_ID: &str = "SELECT id FROM tenants WHERE name = $1";
pub(super) const TENANT_NAME: &str = "SELECT name FROM tenants WHERE id = $1";
pub(super) const INSERT_ACCESS_KEY: &str = "INSERT INTO access_keys (access_key_id, secret, \
    tenant_id, read_only, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";
/// An enabled key (`expires_at` is checked by the caller, which may cache the key).
pub(super) const ACCESS_KEY: &str = "SELECT access_key_id, secret, tenant_id, read_only, \
    expires_at FROM access_keys WHERE access_key_id = $1 AND disabled_at IS NULL";
pub(super) const TENANTS: &str = "SELECT id, name, created_at FROM tenants ORDER BY name";
/// Every key (never its secret), with its tenant's name.
pub(super) const KEYS: &str = "SELECT k.access_key_id, k.tenant_id, t.name AS tenant, \
    k.read_only, k.created_at, k.disabled_at, k.expires_at FROM access_keys k \
    JOIN tenants t ON t.id = k.tenant_id ORDER BY t.name, k.access_key_id";
/// `$2`: when the key was disabled; NULL enables it.
pub(super) const SET_KEY_DISABLED: &str =
    "UPDATE access_keys SET disabled_at = $2 WHERE access_key_id = $1";
pub(super) const DELETE_ACCESS_KEY: &str = "DELETE FROM access_keys WHERE access_key_id = $1";
pub(super) const TENANT_HAS_BUCKETS: &str =
    "SELECT CAST(1 AS BIGINT) FROM buckets WHERE tenant_id = $1 LIMIT 1";
pub(super) const DELETE_TENANT_KEYS: &str = "DELETE FROM access_keys WHERE tenant_id = $1";
pub(super) const DELETE_TENANT: &str = "DELETE FROM tenants WHERE id = $1";
pub(super) const KEY_EPOCH: &str = "SELECT n FROM key_epoch WHERE id = 1";
pub(super) const BUMP_KEY_EPOCH: &str = "UPDATE key_epoch SET n = n + 1 WHERE id = 1";
pub(super) const TENANT_HAS_KEYS: &str =
    "SELECT CAST(1 AS BIGINT) FROM access_keys WHERE tenant_id = $1 LIMIT 1";

/// A bucket's columns (`rows::bucket_of`).
pub(super) const BUCKET_COLS: &str = "id, tenant_id, name, created_at, versioning, object_lock";
pub(super) const INSERT_BUCKET: &str = "INSERT INTO buckets (id, tenant_id, name, created_at, \
    versioning, object_lock) VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (tenant_id, name) DO NOTHING";
pub(super) const BUCKET_VERSIONING: &str = "SELECT versioning FROM buckets WHERE id = $1";

/// A bucket's tenant and the quotas of both (`rows::quota_limits_of`).
pub(super) const QUOTA_LIMITS: &str = "SELECT b.id AS bucket_id, b.tenant_id, \
    b.quota_bytes AS bucket_bytes, b.quota_objects AS bucket_objects, \
    t.quota_bytes AS tenant_bytes, t.quota_objects AS tenant_objects \
    FROM buckets b JOIN tenants t ON t.id = b.tenant_id WHERE b.id = $1";

/// What a bucket holds against its quota: every version but delete markers.
pub(super) const BUCKET_HELD: &str = "SELECT \
    CAST(COALESCE(SUM(bytes + noncurrent_bytes), 0) AS BIGINT) AS bytes, \
    CAST(COALESCE(SUM(objects + noncurrent_versions), 0) AS BIGINT) AS objects \
    FROM usage_counters WHERE bucket_id = $1";

/// What a tenant holds against its quota.
pub(super) const TENANT_HELD: &str = "SELECT \
    CAST(COALESCE(SUM(u.bytes + u.noncurrent_bytes), 0) AS BIGINT) AS bytes, \
    CAST(COALESCE(SUM(u.objects + u.noncurrent_versions), 0) AS BIGINT) AS objects \
    FROM buckets b JOIN usage_counters u ON u.bucket_id = b.id WHERE b.tenant_id = $1";

/// The attributed bytes from the holders, for PostgreSQL (ids compared bytewise, as SQLite's).
pub(super) const REBUILD_PHYSICAL_PG: &str = "INSERT INTO tenant_physical (tenant_id, tier, \
    shard, bytes) SELECT tenant_id, tier, 0, sum(share) FROM ( \
    SELECT tenant_id, tier, size / count(*) OVER w \
        + CASE WHEN tenant_id = min(tenant_id COLLATE \"C\") OVER w \
            THEN size % count(*) OVER w ELSE 0 END AS share \
    FROM blob_tenants WINDOW w AS (PARTITION BY tier, hash)) s GROUP BY tenant_id, tier";

pub(super) const ADD_METERING: &str = "INSERT INTO metering (tenant_id, bucket, hour, class, \
    requests, bytes_received, bytes_sent) VALUES ($1, $2, $3, $4, $5, $6, $7) \
    ON CONFLICT (tenant_id, hour, bucket, class) DO UPDATE SET \
    requests = metering.requests + excluded.requests, \
    bytes_received = metering.bytes_received + excluded.bytes_received, \
    bytes_sent = metering.bytes_sent + excluded.bytes_sent";
/// `$5`: hours per period (1 or 24).
pub(super) const METERING: &str = "SELECT tenant_id, bucket, (hour / $5) * $5 AS hour, class, \
    CAST(SUM(requests) AS BIGINT) AS requests, \
    CAST(SUM(bytes_received) AS BIGINT) AS bytes_received, \
    CAST(SUM(bytes_sent) AS BIGINT) AS bytes_sent \
    FROM metering WHERE hour >= $1 AND hour < $2 \
    AND (CAST($3 AS TEXT) IS NULL OR tenant_id = $3) \
    AND (CAST($4 AS TEXT) IS NULL OR bucket = $4) \
    GROUP BY tenant_id, bucket, (hour / $5) * $5, class \
    ORDER BY 3, tenant_id, bucket, class";

pub(super) const INSERT_ADMIN_TOKEN: &str = "INSERT INTO admin_tokens (id, name, sha256, scope, \
    created_at) VALUES ($1, $2, $3, $4, $5)";
pub(super) const ADMIN_TOKENS: &str =
    "SELECT id, name, scope, created_at, revoked_at FROM admin_tokens ORDER BY created_at, id";
pub(super) const ADMIN_TOKEN: &str =
    "SELECT id, name, scope, created_at, revoked_at FROM admin_tokens WHERE sha256 = $1";
pub(super) const REVOKE_ADMIN_TOKEN: &str =
    "UPDATE admin_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
/// An admin search's step in one bucket: a backward walk of `objects_created` from a position.
pub(super) const SEARCH_STEP: &str = "SELECT id, key, size, etag, content_type, created_at \
    FROM objects WHERE bucket_id = $1 AND is_latest AND NOT delete_marker \
    AND (created_at, id) < ($2, $3) AND created_at > $4 AND created_at < $5 \
    ORDER BY created_at DESC, id DESC LIMIT $6";

pub(super) const SET_TENANT_QUOTA: &str =
    "UPDATE tenants SET quota_bytes = $2, quota_objects = $3 WHERE id = $1";
pub(super) const SET_BUCKET_QUOTA: &str =
    "UPDATE buckets SET quota_bytes = $2, quota_objects = $3 WHERE id = $1";
pub(super) const TENANT_QUOTA: &str =
    "SELECT quota_bytes AS bytes, quota_objects AS objects FROM tenants WHERE id = $1";
pub(super) const BUCKET_QUOTA: &str =
    "SELECT quota_bytes AS bytes, quota_objects AS objects FROM buckets WHERE id = $1";
pub(super) const SET_VERSIONING: &str =
    "UPDATE buckets SET versioning = $2, object_lock = $3 WHERE id = $1";
pub(super) const LIST_BUCKETS: &str = const_format::concatcp!(
    "SELECT ",
    BUCKET_COLS,
    " FROM buckets WHERE tenant_id = $1 ORDER BY name"
);
/// Buckets with a sub-resource of one kind (a worker's scan; `bucket_configs` is small).
pub(super) const BUCKETS_WITH_CONFIG: &str = "SELECT b.id, b.tenant_id, b.name, b.created_at, b.versioning, b.object_lock \
     FROM buckets b JOIN bucket_configs c ON c.bucket_id = b.id WHERE c.kind = $1 ORDER BY b.id";
pub(super) const BUCKET_EXISTS: &str = "SELECT CAST(1 AS BIGINT) FROM buckets WHERE id = $1";
/// A key with any version has a current one (perhaps a delete marker).
pub(super) const BUCKET_HAS_VERSIONS: &str =
    "SELECT CAST(1 AS BIGINT) FROM objects WHERE bucket_id = $1 AND is_latest LIMIT 1";
/// A bucket's remaining rows are DELETING versions, which released their blobs when they were
/// demoted; `status <> 'COMMITTED'` lets the partial index `objects_by_status` find them. A row
/// of any other kind fails the bucket's foreign key instead of being lost.
pub(super) const DELETE_BUCKET_VERSIONS: &str =
    "DELETE FROM objects WHERE status <> 'COMMITTED' AND bucket_id = $1";
pub(super) const DELETE_BUCKET: &str = "DELETE FROM buckets WHERE id = $1";

pub(super) const BUCKET_CONFIG: &str =
    "SELECT value FROM bucket_configs WHERE bucket_id = $1 AND kind = $2";
pub(super) const SET_BUCKET_CONFIG: &str = "INSERT INTO bucket_configs (bucket_id, kind, value) \
    VALUES ($1, $2, $3) ON CONFLICT (bucket_id, kind) DO UPDATE SET value = excluded.value";
pub(super) const DELETE_BUCKET_CONFIG: &str =
    "DELETE FROM bucket_configs WHERE bucket_id = $1 AND kind = $2";

pub(super) const OBJECT_ACL: &str = "SELECT acl FROM objects WHERE id = $1";
pub(super) const UPLOAD_ACL: &str = "SELECT acl FROM multipart_uploads WHERE upload_id = $1";
pub(super) const SET_OBJECT_ACL: &str = "UPDATE objects SET acl = $2 WHERE id = $1";
pub(super) const SET_UPLOAD_ACL: &str =
    "UPDATE multipart_uploads SET acl = $2 WHERE upload_id = $1";
pub(super) const SET_TAGS: &str = "UPDATE objects SET tags = $3 \
    WHERE bucket_id = $1 AND key = $2 AND is_latest AND NOT delete_marker";
/// Tags of version `$4` (not the null version: its id is the row's).
pub(super) const SET_VERSION_TAGS: &str = "UPDATE objects SET tags = $3 WHERE id = $4 \
    AND bucket_id = $1 AND key = $2 AND version_id = $4 AND status = 'COMMITTED' \
    AND NOT delete_marker";
pub(super) const SET_NULL_VERSION_TAGS: &str = "UPDATE objects SET tags = $3 \
    WHERE bucket_id = $1 AND key = $2 AND version_id = 'null' AND $4 = 'null' \
    AND status = 'COMMITTED' AND NOT delete_marker";
/// A version's Object Lock state, by row id.
pub(super) const SET_LOCK: &str =
    "UPDATE objects SET lock_mode = $2, lock_until = $3, legal_hold = $4 WHERE id = $1";

pub(super) const INSERT_UPLOAD: &str = "INSERT INTO multipart_uploads (upload_id, bucket_id, \
    key, initiated, tier, storage_class, content_type, content_encoding, content_disposition, \
    content_language, cache_control, expires, user_meta, checksum_algo, checksum_type, tags, \
    lock_mode, lock_until, legal_hold) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";
pub(super) const UPLOAD: &str = const_format::concatcp!(
    "SELECT ",
    UPLOAD_COLS,
    " FROM multipart_uploads WHERE upload_id = $1 AND bucket_id = $2"
);
pub(super) const LIST_UPLOADS: &str = const_format::concatcp!(
    "SELECT ",
    UPLOAD_COLS,
    " FROM multipart_uploads WHERE bucket_id = $1 AND key >= $2 \
     AND (key > $3 OR (key = $3 AND upload_id > $4)) ORDER BY key, upload_id LIMIT +$5"
);
pub(super) const STALE_UPLOADS: &str = "SELECT bucket_id, upload_id FROM multipart_uploads \
    WHERE initiated < $1 ORDER BY initiated LIMIT +$2";
pub(super) const DELETE_UPLOAD: &str = "DELETE FROM multipart_uploads WHERE upload_id = $1";

pub(super) const PART: &str = const_format::concatcp!(
    "SELECT ",
    PART_COLS,
    " FROM upload_parts WHERE upload_id = $1 AND part_number = $2"
);
pub(super) const ALL_PARTS: &str = const_format::concatcp!(
    "SELECT ",
    PART_COLS,
    " FROM upload_parts WHERE upload_id = $1 ORDER BY part_number"
);
pub(super) const LIST_PARTS: &str = const_format::concatcp!(
    "SELECT ",
    PART_COLS,
    " FROM upload_parts WHERE upload_id = $1 AND part_number > $2 ORDER BY part_number LIMIT +$3"
);
pub(super) const UPSERT_PART: &str = "INSERT INTO upload_parts (upload_id, part_number, tier, \
    blob_hash, size, etag, created_at, checksum_value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
    ON CONFLICT (upload_id, part_number) DO UPDATE SET tier = excluded.tier, \
    blob_hash = excluded.blob_hash, size = excluded.size, etag = excluded.etag, \
    created_at = excluded.created_at, checksum_value = excluded.checksum_value";
pub(super) const INSERT_OBJECT_PART: &str = "INSERT INTO object_parts (object_id, seq, \
    part_number, size, checksum) VALUES ($1, $2, $3, $4, $5)";
pub(super) const OBJECT_PARTS: &str = "SELECT seq, part_number, size, checksum FROM object_parts \
    WHERE object_id = $1 AND seq > $2 ORDER BY seq LIMIT +$3";

pub(super) const PURGE_DELETED: &str = "DELETE FROM objects WHERE id IN (SELECT id FROM objects \
    WHERE status = 'DELETING' AND deleted_at < $1 LIMIT +$2)";
pub(super) const COLLECTABLE_BLOBS: &str = "SELECT tier, hash FROM blobs \
    WHERE ref_count = 0 AND zero_since < $1 ORDER BY zero_since LIMIT +$2";
pub(super) const DELETE_BLOB: &str = "DELETE FROM blobs WHERE tier = $1 AND hash = $2";
pub(super) const REFCOUNT_MISMATCHES: &str = "WITH refs AS ( \
       SELECT s.tier, s.blob_hash AS hash FROM object_segments s \
       JOIN objects o ON o.id = s.object_id WHERE o.status = 'COMMITTED' \
       UNION ALL \
       SELECT tier, blob_hash AS hash FROM upload_parts WHERE blob_hash IS NOT NULL), \
     counted AS (SELECT tier, hash, CAST(COUNT(*) AS BIGINT) AS n FROM refs GROUP BY tier, hash) \
     SELECT b.tier, b.hash, b.ref_count, CAST(COALESCE(c.n, 0) AS BIGINT) AS actual \
     FROM blobs b LEFT JOIN counted c ON c.tier = b.tier AND c.hash = b.hash \
     WHERE b.ref_count <> COALESCE(c.n, 0) \
     UNION ALL \
     SELECT c.tier, c.hash, CAST(NULL AS BIGINT), c.n FROM counted c \
     LEFT JOIN blobs b ON b.tier = c.tier AND b.hash = c.hash WHERE b.hash IS NULL";
pub(super) const BLOBS_TO_VERIFY: &str = const_format::concatcp!(
    "SELECT ",
    BLOB_ROW_COLS,
    " FROM blobs WHERE NOT corrupted ORDER BY COALESCE(verified_at, 0), hash LIMIT +$1"
);
pub(super) const BLOB_DATA: &str = "SELECT data FROM blob_data WHERE tier = $1 AND hash = $2";
pub(super) const MARK_VERIFIED: &str = "UPDATE blobs SET verified_at = $3, \
    corrupted = (corrupted OR $4) WHERE tier = $1 AND hash = $2";
pub(super) const BLOB_ROWS: &str = const_format::concatcp!(
    "SELECT ",
    BLOB_ROW_COLS,
    " FROM blobs WHERE hash > $1 ORDER BY hash LIMIT +$2"
);
pub(super) const BLOB_EXISTS: &str =
    "SELECT CAST(1 AS BIGINT) FROM blobs WHERE tier = $1 AND hash = $2";
pub(super) const ADOPT_BLOB: &str = "INSERT INTO blobs (tier, hash, size, ref_count, zero_since, \
    created_at) VALUES ($1, $2, $3, 0, $4, $4) ON CONFLICT (tier, hash) DO NOTHING";
pub(super) const SET_REF_COUNT: &str = "UPDATE blobs SET ref_count = $3, zero_since = CASE \
    WHEN $3 = 0 THEN COALESCE(zero_since, $4) ELSE NULL END WHERE tier = $1 AND hash = $2";
pub(super) const DELETE_UNREFERENCED_BLOB: &str =
    "DELETE FROM blobs WHERE tier = $1 AND hash = $2 AND ref_count = 0";
pub(super) const MARK_CORRUPTED: &str =
    "UPDATE blobs SET corrupted = TRUE WHERE tier = $1 AND hash = $2";
/// Per bucket and tier, from the counters (`usage_counters`, summed over shards): current
/// objects, noncurrent versions and delete markers. An empty bucket has one row of zeros.
pub(super) const USAGE: &str = "SELECT t.name AS tenant, b.name AS bucket, \
    COALESCE(u.tier, 'hot') AS tier, \
    CAST(COALESCE(SUM(u.objects), 0) AS BIGINT) AS objects, \
    CAST(COALESCE(SUM(u.bytes), 0) AS BIGINT) AS bytes, \
    CAST(COALESCE(SUM(u.noncurrent_versions), 0) AS BIGINT) AS noncurrent_versions, \
    CAST(COALESCE(SUM(u.noncurrent_bytes), 0) AS BIGINT) AS noncurrent_bytes, \
    CAST(COALESCE(SUM(u.delete_markers), 0) AS BIGINT) AS delete_markers \
    FROM buckets b JOIN tenants t ON t.id = b.tenant_id \
    LEFT JOIN usage_counters u ON u.bucket_id = b.id \
    GROUP BY t.name, b.name, u.tier ORDER BY t.name, b.name, u.tier";

/// `USAGE` recounted from the version rows (a scan: fsck only).
pub(super) const USAGE_RECOUNT: &str = "SELECT t.name AS tenant, b.name AS bucket, \
    o.tier AS tier, \
    CAST(COUNT(CASE WHEN o.is_latest AND NOT o.delete_marker THEN 1 END) AS BIGINT) AS objects, \
    CAST(COALESCE(SUM(CASE WHEN o.is_latest AND NOT o.delete_marker THEN o.size END), 0) \
        AS BIGINT) AS bytes, \
    CAST(COUNT(CASE WHEN NOT o.is_latest AND NOT o.delete_marker THEN 1 END) AS BIGINT) \
        AS noncurrent_versions, \
    CAST(COALESCE(SUM(CASE WHEN NOT o.is_latest AND NOT o.delete_marker THEN o.size END), 0) \
        AS BIGINT) AS noncurrent_bytes, \
    CAST(COUNT(CASE WHEN o.delete_marker THEN 1 END) AS BIGINT) AS delete_markers \
    FROM objects o JOIN buckets b ON b.id = o.bucket_id JOIN tenants t ON t.id = b.tenant_id \
    WHERE o.status = 'COMMITTED' GROUP BY t.name, b.name, o.tier";

/// Physical bytes attributed per tenant and tier (`tenant_physical`, summed over shards).
pub(super) const PHYSICAL: &str = "SELECT t.name AS tenant, p.tier AS tier, \
    CAST(SUM(p.bytes) AS BIGINT) AS bytes \
    FROM tenant_physical p JOIN tenants t ON t.id = p.tenant_id \
    GROUP BY t.name, p.tier ORDER BY t.name, p.tier";

/// Blobs per tier: kept as files or inline, their bytes, and those nobody references (a scan
/// of `blobs`: `/metrics` reads it at most once a minute).
pub(super) const BLOB_STATS: &str = "SELECT b.tier AS tier, \
    CAST(COUNT(CASE WHEN d.hash IS NULL THEN 1 END) AS BIGINT) AS files, \
    CAST(COALESCE(SUM(CASE WHEN d.hash IS NULL THEN b.size END), 0) AS BIGINT) AS file_bytes, \
    CAST(COUNT(d.hash) AS BIGINT) AS inline, \
    CAST(COALESCE(SUM(CASE WHEN d.hash IS NOT NULL THEN b.size END), 0) AS BIGINT) \
        AS inline_bytes, \
    CAST(COUNT(CASE WHEN b.ref_count = 0 THEN 1 END) AS BIGINT) AS unreferenced \
    FROM blobs b LEFT JOIN blob_data d ON d.tier = b.tier AND d.hash = b.hash \
    GROUP BY b.tier ORDER BY b.tier";

/// Which tenants' COMMITTED versions reference each blob, and how often (a scan: fsck only).
pub(super) const HOLDERS_RECOUNT: &str = "SELECT s.tier AS tier, s.blob_hash AS hash, \
    t.name AS tenant, CAST(MAX(s.size) AS BIGINT) AS size, CAST(COUNT(*) AS BIGINT) AS refs, \
    b.tenant_id AS tenant_id \
    FROM object_segments s JOIN objects o ON o.id = s.object_id AND o.status = 'COMMITTED' \
    JOIN buckets b ON b.id = o.bucket_id JOIN tenants t ON t.id = b.tenant_id \
    GROUP BY s.tier, s.blob_hash, b.tenant_id, t.name";

/// fsck --repair: the kept usage figures replaced by a recount. On SQLite, deleting and
/// inserting the holders runs the share triggers, which rebuild `tenant_physical` from
/// nothing; PostgreSQL's commit shares explicitly, and its repair then runs
/// `REBUILD_PHYSICAL_PG`.
pub(super) const REBUILD_USAGE: [&str; 5] = [
    "DELETE FROM usage_counters",
    "INSERT INTO usage_counters (bucket_id, tier, shard, objects, bytes, noncurrent_versions, \
        noncurrent_bytes, delete_markers) \
    SELECT bucket_id, tier, 0, \
        COUNT(CASE WHEN is_latest AND NOT delete_marker THEN 1 END), \
        COALESCE(SUM(CASE WHEN is_latest AND NOT delete_marker THEN size END), 0), \
        COUNT(CASE WHEN NOT is_latest AND NOT delete_marker THEN 1 END), \
        COALESCE(SUM(CASE WHEN NOT is_latest AND NOT delete_marker THEN size END), 0), \
        COUNT(CASE WHEN delete_marker THEN 1 END) \
    FROM objects WHERE status = 'COMMITTED' GROUP BY bucket_id, tier",
    "DELETE FROM blob_tenants",
    "DELETE FROM tenant_physical",
    "INSERT INTO blob_tenants (tier, hash, tenant_id, size, refs) \
    SELECT s.tier, s.blob_hash, b.tenant_id, MAX(s.size), COUNT(*) \
    FROM object_segments s JOIN objects o ON o.id = s.object_id AND o.status = 'COMMITTED' \
    JOIN buckets b ON b.id = o.bucket_id GROUP BY s.tier, s.blob_hash, b.tenant_id",
];

/// Takes or renews lease `$1` for holder `$2` until `$3`, if it is free, lapsed (its end at or
/// before `$4`, now) or already `$2`'s: one row affected when taken, none when another holds it.
pub(super) const TAKE_LEASE: &str = "INSERT INTO worker_leases (name, holder, until) \
    VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
    until = excluded.until WHERE worker_leases.until <= $4 OR worker_leases.holder = $2";

/// Gives up lease `$1` if holder `$2` has it.
pub(super) const RELEASE_LEASE: &str = "DELETE FROM worker_leases WHERE name = $1 AND holder = $2";
