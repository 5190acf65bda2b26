-- Multipart uploads. A part holds a reference on its blob until the upload completes (the
-- reference moves to the object's segment) or is aborted (released).
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
    user_meta           TEXT
);
CREATE INDEX multipart_by_key ON multipart_uploads (bucket_id, key, upload_id);
CREATE INDEX multipart_by_age ON multipart_uploads (initiated);

CREATE TABLE upload_parts (
    upload_id   TEXT NOT NULL REFERENCES multipart_uploads(upload_id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    tier        TEXT NOT NULL,
    blob_hash   TEXT,
    size        BIGINT NOT NULL,
    etag        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

-- Number of parts of a multipart object (NULL for a plain PUT): partNumber reads and
-- x-amz-mp-parts-count.
ALTER TABLE objects ADD COLUMN parts_count INTEGER;
