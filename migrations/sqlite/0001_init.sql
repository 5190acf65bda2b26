-- JustStorage schema (SQLite). Times are microseconds since the Unix epoch (BIGINT) so that
-- the SQLite and PostgreSQL schemas share one set of queries. SQLite compares TEXT
-- with memcmp (BINARY collation), so ORDER BY key is S3's byte order.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    secret        TEXT NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    read_only     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    disabled_at   BIGINT
);

CREATE TABLE buckets (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    versioning   TEXT NOT NULL DEFAULT 'Unversioned',
    default_tier TEXT NOT NULL DEFAULT 'hot',
    UNIQUE (tenant_id, name)
);

CREATE TABLE objects (
    id                  TEXT PRIMARY KEY,
    bucket_id           TEXT NOT NULL REFERENCES buckets(id),
    key                 TEXT NOT NULL,
    version_id          TEXT NOT NULL DEFAULT 'null',
    is_latest           BOOLEAN NOT NULL DEFAULT FALSE,
    status              TEXT NOT NULL CHECK (status IN ('WRITING', 'COMMITTED', 'DELETING')),
    delete_marker       BOOLEAN NOT NULL DEFAULT FALSE,
    size                BIGINT NOT NULL DEFAULT 0,
    etag                TEXT,
    content_type        TEXT,
    content_encoding    TEXT,
    content_disposition TEXT,
    content_language    TEXT,
    cache_control       TEXT,
    expires             TEXT,
    user_meta           TEXT,
    storage_class       TEXT NOT NULL DEFAULT 'STANDARD',
    tier                TEXT NOT NULL DEFAULT 'hot',
    created_at          BIGINT NOT NULL,
    deleted_at          BIGINT
);
-- One current version per key; the listing index (key order within a bucket).
CREATE UNIQUE INDEX objects_latest ON objects (bucket_id, key) WHERE is_latest;
CREATE INDEX objects_by_key ON objects (bucket_id, key, created_at DESC);
CREATE INDEX objects_by_status ON objects (status, created_at) WHERE status <> 'COMMITTED';

CREATE TABLE object_segments (
    object_id TEXT NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    tier      TEXT NOT NULL,
    blob_hash TEXT NOT NULL,
    size      BIGINT NOT NULL,
    PRIMARY KEY (object_id, seq)
);

CREATE TABLE blobs (
    tier        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    ref_count   BIGINT NOT NULL CHECK (ref_count >= 0),
    zero_since  BIGINT,
    verified_at BIGINT,
    corrupted   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tier, hash)
);
CREATE INDEX blobs_zero ON blobs (zero_since) WHERE ref_count = 0;
