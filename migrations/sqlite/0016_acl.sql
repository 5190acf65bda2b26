-- A bucket's sub-resources (ACL, public access block, tags, ...): one row per kind, its value
-- as the engine serialises it (JSON). A missing row is the kind's default.
CREATE TABLE bucket_configs (
    bucket_id TEXT NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (bucket_id, kind)
);

-- Access control lists (JSON, see engine::acl) per object version and per pending upload
-- (applied to the object it completes). NULL is the canned `private`: only the owner has access.
ALTER TABLE objects ADD COLUMN acl TEXT;
ALTER TABLE multipart_uploads ADD COLUMN acl TEXT;
