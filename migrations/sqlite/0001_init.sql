-- JustStorage schema, SQLite. The same tables, columns and indexes as PostgreSQL's
-- (migrations/postgres), so that both run one set of statements: times are BIGINT microseconds
-- since the Unix epoch, and TEXT compares with memcmp (BINARY), so ORDER BY key is S3's byte
-- order. Nothing was released before this file; from the first release on, migrations only add.

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
    -- Set while the key is disabled; a key past `expires_at` is refused too.
    disabled_at   BIGINT,
    expires_at    BIGINT
);

-- Bumped by every change that takes a key's rights away (disable, delete, a tenant's delete):
-- servers poll it and drop their cached keys when it moves.
CREATE TABLE key_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO key_epoch (id, n) VALUES (1, 0);

CREATE TABLE buckets (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

-- A bucket's sub-resources (ACL, public access block, tags, ...): one row per kind, its value
-- as the engine serialises it (JSON). A missing row is the kind's default.
CREATE TABLE bucket_configs (
    bucket_id TEXT NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (bucket_id, kind)
);

-- Object versions. A version is inserted COMMITTED (while its body streams it is a temp file
-- named by its id, not a row) and is current (`is_latest`) until it is replaced or deleted;
-- then it is DELETING, its blob references released, until the collector purges the row.
CREATE TABLE objects (
    id                  TEXT PRIMARY KEY,
    bucket_id           TEXT NOT NULL REFERENCES buckets(id),
    key                 TEXT NOT NULL,
    is_latest           BOOLEAN NOT NULL DEFAULT FALSE,
    status              TEXT NOT NULL CHECK (status IN ('COMMITTED', 'DELETING')),
    size                BIGINT NOT NULL DEFAULT 0,
    etag                TEXT,
    content_type        TEXT,
    content_encoding    TEXT,
    content_disposition TEXT,
    content_language    TEXT,
    cache_control       TEXT,
    expires             TEXT,
    -- JSON objects of name -> value; NULL tags: none.
    user_meta           TEXT,
    tags                TEXT,
    storage_class       TEXT NOT NULL DEFAULT 'STANDARD',
    tier                TEXT NOT NULL DEFAULT 'hot',
    created_at          BIGINT NOT NULL,
    deleted_at          BIGINT,
    -- Parts of a multipart object (NULL for a PUT or a copy of one).
    parts_count         INTEGER,
    -- x-amz-checksum-*: base64 (a composite one ends in -N), algorithm, FULL_OBJECT|COMPOSITE.
    checksum_algo       TEXT,
    checksum_value      TEXT,
    checksum_type       TEXT,
    -- Access control list (JSON, engine::acl); NULL is the canned `private`.
    acl                 TEXT
);
-- One current version per key.
CREATE UNIQUE INDEX objects_latest ON objects (bucket_id, key) WHERE is_latest;
-- Listing pages read every column they use from this index (`is_latest` too, though the WHERE
-- implies it, so that SQLite counts the index as covering).
CREATE INDEX objects_listing
    ON objects (bucket_id, key, size, etag, storage_class, created_at, is_latest)
    WHERE is_latest;
-- Versions waiting for the purge, and a deleted bucket's.
CREATE INDEX objects_by_status ON objects (status, deleted_at) WHERE status <> 'COMMITTED';

-- A version's bytes: whole blobs, in order. Each segment holds one reference on its blob.
CREATE TABLE object_segments (
    object_id TEXT NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    tier      TEXT NOT NULL,
    blob_hash TEXT NOT NULL,
    size      BIGINT NOT NULL,
    PRIMARY KEY (object_id, seq)
);

-- The parts of a completed multipart object: `seq` is the position (1-based, what
-- `?partNumber=` reads), `part_number` the number it was uploaded as.
CREATE TABLE object_parts (
    object_id   TEXT NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    part_number INTEGER NOT NULL,
    size        BIGINT NOT NULL,
    checksum    TEXT,
    PRIMARY KEY (object_id, seq)
);

-- Content-addressed bodies. `ref_count` counts the segments of COMMITTED versions and the
-- upload parts that point here; at zero since `zero_since` (past the grace period) the
-- collector removes the row and its file.
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

-- The bytes of small (inline) blobs, apart from their rows: a row changes at every reference
-- count change, and with the body inside, each change rewrote the body.
CREATE TABLE blob_data (
    tier TEXT NOT NULL,
    hash TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tier, hash),
    FOREIGN KEY (tier, hash) REFERENCES blobs (tier, hash) ON DELETE CASCADE
);

-- Multipart uploads, with the headers and ACL their object gets. A part holds a reference on
-- its blob until the upload completes (the reference moves to the object's segment) or is
-- aborted (released).
CREATE TABLE multipart_uploads (
    upload_id           TEXT PRIMARY KEY,
    bucket_id           TEXT NOT NULL REFERENCES buckets(id),
    key                 TEXT NOT NULL,
    initiated           BIGINT NOT NULL,
    tier                TEXT NOT NULL,
    storage_class       TEXT NOT NULL,
    content_type        TEXT,
    content_encoding    TEXT,
    content_disposition TEXT,
    content_language    TEXT,
    cache_control       TEXT,
    expires             TEXT,
    user_meta           TEXT,
    tags                TEXT,
    checksum_algo       TEXT,
    checksum_type       TEXT,
    acl                 TEXT
);
CREATE INDEX multipart_by_key ON multipart_uploads (bucket_id, key, upload_id);
CREATE INDEX multipart_by_age ON multipart_uploads (initiated);

CREATE TABLE upload_parts (
    upload_id      TEXT NOT NULL REFERENCES multipart_uploads(upload_id) ON DELETE CASCADE,
    part_number    INTEGER NOT NULL,
    tier           TEXT NOT NULL,
    blob_hash      TEXT,
    size           BIGINT NOT NULL,
    etag           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    checksum_value TEXT,
    PRIMARY KEY (upload_id, part_number)
);
