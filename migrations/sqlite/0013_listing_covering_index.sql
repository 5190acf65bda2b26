-- Listing pages (and the delimiter walk's seeks) read every column they use from this index:
-- with only `objects_latest` (bucket_id, key), each of a 1,000-key page's rows cost a seek into
-- the table by rowid (7% of a listing's server CPU) and the table's pages besides the index's.
-- `is_latest` is a column too, though implied by the WHERE, so that SQLite counts the index as
-- covering (3.40 did not without it). `objects_latest` stays: it is the one-current-version-per-key
-- constraint, which a wider unique index would not enforce.
CREATE INDEX objects_listing
    ON objects (bucket_id, key, size, etag, storage_class, created_at, is_latest)
    WHERE is_latest;
