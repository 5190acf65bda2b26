-- Usage kept with every commit, quotas, metering and admin tokens (the same tables as
-- SQLite's 0003). `js_commit` (functions.sql) keeps the usage tables.

-- Quotas (NULL: no limit). Bytes count every stored version's size; objects count every
-- stored version (delete markers neither).
ALTER TABLE tenants ADD COLUMN quota_bytes BIGINT;
ALTER TABLE tenants ADD COLUMN quota_objects BIGINT;
ALTER TABLE buckets ADD COLUMN quota_bytes BIGINT;
ALTER TABLE buckets ADD COLUMN quota_objects BIGINT;

-- What a bucket holds per tier, kept by the transaction that changes a version. `shard` spreads one bucket's counters over several rows (PostgreSQL: one
-- per backend, so concurrent commits never wait on one row); the figures are sums over shards.
CREATE TABLE usage_counters (
    bucket_id           TEXT NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    tier                TEXT NOT NULL,
    shard               INTEGER NOT NULL,
    objects             BIGINT NOT NULL DEFAULT 0,
    bytes               BIGINT NOT NULL DEFAULT 0,
    noncurrent_versions BIGINT NOT NULL DEFAULT 0,
    noncurrent_bytes    BIGINT NOT NULL DEFAULT 0,
    delete_markers      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket_id, tier, shard)
);

-- Which tenants hold a blob: segments of their COMMITTED versions that point at it.
CREATE TABLE blob_tenants (
    tier      TEXT NOT NULL,
    hash      TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    size      BIGINT NOT NULL,
    refs      BIGINT NOT NULL CHECK (refs >= 0),
    PRIMARY KEY (tier, hash, tenant_id)
);

-- Physical bytes attributed to a tenant per tier: each referenced blob's size shared among the
-- tenants that hold it (size / n each, the remainder to the smallest tenant id), so that the
-- sum over tenants is exactly the referenced blobs' size, changed whenever a blob gains or
-- loses a holder.
CREATE TABLE tenant_physical (
    tenant_id TEXT NOT NULL,
    tier      TEXT NOT NULL,
    shard     INTEGER NOT NULL,
    bytes     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, tier, shard)
);

-- Requests and bytes per tenant, bucket, hour and S3 pricing class, flushed from memory by
-- each gateway (several rows of one hour add up).
CREATE TABLE metering (
    tenant_id      TEXT NOT NULL,
    bucket         TEXT NOT NULL,
    hour           BIGINT NOT NULL,
    class          TEXT NOT NULL,
    requests       BIGINT NOT NULL DEFAULT 0,
    bytes_received BIGINT NOT NULL DEFAULT 0,
    bytes_sent     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, hour, bucket, class)
);

-- Bearer tokens of the admin API: their SHA-256 only.
CREATE TABLE admin_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL UNIQUE,
    scope      TEXT NOT NULL CHECK (scope IN ('admin', 'metrics')),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- The admin API's search: a bucket's versions by creation time.
CREATE INDEX objects_created ON objects (bucket_id, created_at, id) WHERE is_latest AND NOT delete_marker;

-- What was stored before this migration.
INSERT INTO usage_counters (bucket_id, tier, shard, objects, bytes, noncurrent_versions,
    noncurrent_bytes, delete_markers)
SELECT bucket_id, tier, 0,
    count(*) FILTER (WHERE is_latest AND NOT delete_marker),
    COALESCE(sum(size) FILTER (WHERE is_latest AND NOT delete_marker), 0),
    count(*) FILTER (WHERE NOT is_latest AND NOT delete_marker),
    COALESCE(sum(size) FILTER (WHERE NOT is_latest AND NOT delete_marker), 0),
    count(*) FILTER (WHERE delete_marker)
FROM objects WHERE status = 'COMMITTED' GROUP BY bucket_id, tier;

INSERT INTO blob_tenants (tier, hash, tenant_id, size, refs)
SELECT s.tier, s.blob_hash, b.tenant_id, max(s.size), count(*)
    FROM object_segments s JOIN objects o ON o.id = s.object_id AND o.status = 'COMMITTED'
    JOIN buckets b ON b.id = o.bucket_id
    GROUP BY s.tier, s.blob_hash, b.tenant_id;

INSERT INTO tenant_physical (tenant_id, tier, shard, bytes)
SELECT tenant_id, tier, 0, sum(share) FROM (
    SELECT tenant_id, tier, size / count(*) OVER w
        + CASE WHEN tenant_id = min(tenant_id COLLATE "C") OVER w
            THEN size % count(*) OVER w ELSE 0 END AS share
    FROM blob_tenants WINDOW w AS (PARTITION BY tier, hash)) s
GROUP BY tenant_id, tier;
