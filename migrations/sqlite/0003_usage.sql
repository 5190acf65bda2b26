-- Usage kept with every commit, quotas, and metering (the same tables as PostgreSQL's 0003;
-- there `js_commit` keeps them).

-- Quotas (NULL: no limit). Bytes count every stored version's size; objects count every
-- stored version (delete markers neither).
ALTER TABLE tenants ADD COLUMN quota_bytes BIGINT;
ALTER TABLE tenants ADD COLUMN quota_objects BIGINT;
ALTER TABLE buckets ADD COLUMN quota_bytes BIGINT;
ALTER TABLE buckets ADD COLUMN quota_objects BIGINT;

-- What a bucket holds per tier, kept by the transaction that changes a version. `shard` spreads one bucket's counters over several rows (PostgreSQL: one
-- per backend, so concurrent commits never wait on one row); the figures are sums over shards.
-- SQLite has one writer and uses shard 0.
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
-- sum over tenants is exactly the referenced blobs' size. Kept by the triggers on
-- `blob_tenants` whenever a blob gains or loses a holder.
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
    sum(is_latest AND NOT delete_marker),
    sum(CASE WHEN is_latest AND NOT delete_marker THEN size ELSE 0 END),
    sum(NOT is_latest AND NOT delete_marker),
    sum(CASE WHEN NOT is_latest AND NOT delete_marker THEN size ELSE 0 END),
    sum(delete_marker)
FROM objects WHERE status = 'COMMITTED' GROUP BY bucket_id, tier;

CREATE TEMP TABLE holders_before AS
SELECT s.tier, s.blob_hash AS hash, b.tenant_id, max(s.size) AS size, count(*) AS refs
    FROM object_segments s JOIN objects o ON o.id = s.object_id AND o.status = 'COMMITTED'
    JOIN buckets b ON b.id = o.bucket_id
    GROUP BY s.tier, s.blob_hash, b.tenant_id;
INSERT INTO tenant_physical (tenant_id, tier, shard, bytes)
SELECT tenant_id, tier, 0, sum(share) FROM (
    SELECT tenant_id, tier, size / count(*) OVER w
        + CASE WHEN tenant_id = min(tenant_id) OVER w THEN size % count(*) OVER w ELSE 0 END
        AS share
    FROM holders_before WINDOW w AS (PARTITION BY tier, hash))
GROUP BY tenant_id, tier;
INSERT INTO blob_tenants (tier, hash, tenant_id, size, refs)
SELECT tier, hash, tenant_id, size, refs FROM holders_before;
DROP TABLE holders_before;

-- From here on, every commit keeps the figures.

-- The figures are kept by the commit itself (`meta::sqlite::rule`): the counters and the
-- holders' references change with every version it inserts, demotes or removes. A holder that
-- comes or goes changes every holder's share of the blob (the triggers below); the usual case,
-- a blob with one holder, takes the short path.
CREATE TRIGGER physical_first_holder AFTER INSERT ON blob_tenants
WHEN NOT EXISTS (SELECT 1 FROM blob_tenants
    WHERE tier = NEW.tier AND hash = NEW.hash AND tenant_id <> NEW.tenant_id)
BEGIN
    INSERT INTO tenant_physical (tenant_id, tier, shard, bytes)
    VALUES (NEW.tenant_id, NEW.tier, 0, NEW.size)
    ON CONFLICT (tenant_id, tier, shard) DO UPDATE SET bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER physical_last_holder_gone AFTER DELETE ON blob_tenants
WHEN NOT EXISTS (SELECT 1 FROM blob_tenants WHERE tier = OLD.tier AND hash = OLD.hash)
BEGIN
    INSERT INTO tenant_physical (tenant_id, tier, shard, bytes)
    VALUES (OLD.tenant_id, OLD.tier, 0, -OLD.size)
    ON CONFLICT (tenant_id, tier, shard) DO UPDATE SET bytes = bytes + excluded.bytes;
END;

-- A holder whose references are all released is no holder.
CREATE TRIGGER holders_drop_empty AFTER UPDATE OF refs ON blob_tenants WHEN NEW.refs = 0
BEGIN
    DELETE FROM blob_tenants
        WHERE tier = NEW.tier AND hash = NEW.hash AND tenant_id = NEW.tenant_id;
END;

-- A blob's holders changed: every holder's share moves from size / n_old to size / n_new
-- (shares of `members`: the holders before, `was`, and after, `now`).
CREATE TRIGGER physical_on_holder AFTER INSERT ON blob_tenants
WHEN EXISTS (SELECT 1 FROM blob_tenants
    WHERE tier = NEW.tier AND hash = NEW.hash AND tenant_id <> NEW.tenant_id)
BEGIN
    INSERT INTO tenant_physical (tenant_id, tier, shard, bytes)
    SELECT m.tenant_id, NEW.tier, 0,
        CASE WHEN m.now THEN NEW.size / k.n + CASE WHEN m.tenant_id = k.min_now
            THEN NEW.size % k.n ELSE 0 END ELSE 0 END
        - CASE WHEN m.was THEN NEW.size / (k.n - 1) + CASE WHEN m.tenant_id = k.min_was
            THEN NEW.size % (k.n - 1) ELSE 0 END ELSE 0 END
    FROM (SELECT tenant_id, tenant_id <> NEW.tenant_id AS was, TRUE AS now
            FROM blob_tenants WHERE tier = NEW.tier AND hash = NEW.hash) m,
        (SELECT count(*) AS n, min(tenant_id) AS min_now,
                min(CASE WHEN tenant_id <> NEW.tenant_id THEN tenant_id END) AS min_was
            FROM blob_tenants WHERE tier = NEW.tier AND hash = NEW.hash) k
    WHERE TRUE
    ON CONFLICT (tenant_id, tier, shard) DO UPDATE SET bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER physical_on_holder_gone AFTER DELETE ON blob_tenants
WHEN EXISTS (SELECT 1 FROM blob_tenants WHERE tier = OLD.tier AND hash = OLD.hash)
BEGIN
    INSERT INTO tenant_physical (tenant_id, tier, shard, bytes)
    SELECT m.tenant_id, OLD.tier, 0,
        CASE WHEN m.now THEN OLD.size / k.n + CASE WHEN m.tenant_id = k.min_now
            THEN OLD.size % k.n ELSE 0 END ELSE 0 END
        - (OLD.size / (k.n + 1) + CASE WHEN m.tenant_id = k.min_was
            THEN OLD.size % (k.n + 1) ELSE 0 END)
    FROM (SELECT tenant_id, TRUE AS now FROM blob_tenants
                WHERE tier = OLD.tier AND hash = OLD.hash
            UNION ALL SELECT OLD.tenant_id, FALSE) m,
        (SELECT count(*) AS n, min(tenant_id) AS min_now,
                CASE WHEN OLD.tenant_id < min(tenant_id)
                    THEN OLD.tenant_id ELSE min(tenant_id) END AS min_was
            FROM blob_tenants WHERE tier = OLD.tier AND hash = OLD.hash) k
    WHERE TRUE
    ON CONFLICT (tenant_id, tier, shard) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
