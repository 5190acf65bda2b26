-- Versioning and Object Lock (the same columns and indexes as PostgreSQL's 0002).

-- NULL: versioning was never enabled; else 'Enabled' or 'Suspended' (it cannot go back).
ALTER TABLE buckets ADD COLUMN versioning TEXT CHECK (versioning IN ('Enabled', 'Suspended'));
-- Created with Object Lock: versioning is Enabled for good.
ALTER TABLE buckets ADD COLUMN object_lock BOOLEAN NOT NULL DEFAULT FALSE;

-- A version's id as S3 shows it: 'null' for a version written while versioning was not
-- enabled (at most one per key), else the row's id.
ALTER TABLE objects ADD COLUMN version_id TEXT NOT NULL DEFAULT 'null';
-- Order of a key's versions: each new one is the current one's + 1, so the current version
-- is the COMMITTED one with the highest number.
ALTER TABLE objects ADD COLUMN version_seq BIGINT NOT NULL DEFAULT 1;
-- A delete marker: a version without a body, current while no later one is written.
ALTER TABLE objects ADD COLUMN delete_marker BOOLEAN NOT NULL DEFAULT FALSE;
-- Object Lock: retention (mode and date) and legal hold of a version.
ALTER TABLE objects ADD COLUMN lock_mode TEXT CHECK (lock_mode IN ('GOVERNANCE', 'COMPLIANCE'));
ALTER TABLE objects ADD COLUMN lock_until BIGINT;
ALTER TABLE objects ADD COLUMN legal_hold BOOLEAN NOT NULL DEFAULT FALSE;

-- What CreateMultipartUpload asked for the object.
ALTER TABLE multipart_uploads ADD COLUMN lock_mode TEXT;
ALTER TABLE multipart_uploads ADD COLUMN lock_until BIGINT;
ALTER TABLE multipart_uploads ADD COLUMN legal_hold BOOLEAN NOT NULL DEFAULT FALSE;

-- Listings show current versions that are not delete markers.
DROP INDEX objects_listing;
CREATE INDEX objects_listing
    ON objects (bucket_id, key, size, etag, storage_class, created_at, is_latest, delete_marker)
    WHERE is_latest AND NOT delete_marker;
-- A key's noncurrent versions, newest first (ListObjectVersions with `objects_latest`, the
-- version a permanent delete makes current, the null version). Current versions are found by
-- `objects_latest`, so writes in unversioned buckets, which leave no noncurrent version,
-- maintain no index for versioning.
CREATE INDEX objects_noncurrent
    ON objects (bucket_id, key, version_seq DESC) WHERE status = 'COMMITTED' AND NOT is_latest;
