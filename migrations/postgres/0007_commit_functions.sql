-- The PUT and DELETE commits as server-side functions: one round trip each instead of one per
-- statement (BEGIN, key lock, read, demote, insert, blob rows, segment, COMMIT). They are the
-- statement-at-a-time transaction of `meta/sql.rs` (and SQLite's batch scripts) moved into the
-- server; the integration tests run the same scenarios on both databases to keep them equal.
--
-- Lock order, as everywhere: the per-key advisory lock, then blob rows in (tier, hash) order
-- (hot before cold, hashes as bytes, +1 before -1 on the same blob).

-- Inline bodies (at most 64 KiB, 16 KiB by default) stay in the blob's heap row up to a page
-- (~8 KB) instead of going to the TOAST table past 2 KB: a PUT writes one row, not three (row,
-- TOAST row, TOAST index), and a GET reads one. PostgreSQL still tries compression first.
ALTER TABLE blobs ALTER COLUMN data SET STORAGE MAIN;

-- A version commit: the new row's columns first, in INSERT_OBJECT_SQL's order (`meta/sql.rs`
-- binds them with the same macro), then p_cond: 0 none, 1 If-None-Match: * (only if absent), 2 If-Match
-- (p_cond_etag NULL: '*', exists at all). p_blob_*: the new body's blob (NULL hash: an empty
-- object); p_blob_data its bytes when inline. Returns 'ok', 'precondition_failed' or
-- 'no_such_key' (nothing written then). A bucket deleted meanwhile fails the insert's foreign
-- key (23503). A released blob without a row raises JS001 (a broken invariant).
CREATE FUNCTION js_commit_put(
    p_id TEXT, p_bucket_id TEXT, p_key TEXT, p_size BIGINT, p_etag TEXT, p_content_type TEXT,
    p_content_encoding TEXT, p_content_disposition TEXT, p_content_language TEXT,
    p_cache_control TEXT, p_expires TEXT, p_user_meta TEXT, p_storage_class TEXT, p_tier TEXT,
    p_created_at BIGINT, p_parts_count INTEGER, p_checksum_algo TEXT, p_checksum_value TEXT,
    p_checksum_type TEXT, p_tags TEXT,
    p_cond INTEGER, p_cond_etag TEXT,
    p_blob_tier TEXT, p_blob_hash TEXT, p_blob_size BIGINT, p_blob_data BYTEA, p_now BIGINT)
RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    v_old_id TEXT;
    v_old_etag TEXT;
    d RECORD;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_bucket_id || '/' || p_key, 0));
    SELECT id, etag INTO v_old_id, v_old_etag
        FROM objects WHERE bucket_id = p_bucket_id AND key = p_key AND is_latest;
    IF p_cond = 1 AND v_old_id IS NOT NULL THEN
        RETURN 'precondition_failed';
    ELSIF p_cond = 2 AND v_old_id IS NULL THEN
        RETURN 'no_such_key';
    ELSIF p_cond = 2 AND p_cond_etag IS NOT NULL AND p_cond_etag <> COALESCE(v_old_etag, '') THEN
        RETURN 'precondition_failed';
    END IF;
    IF v_old_id IS NOT NULL THEN
        UPDATE objects SET is_latest = FALSE, status = 'DELETING', deleted_at = p_now
            WHERE id = v_old_id;
    END IF;
    INSERT INTO objects (id, bucket_id, key, status, is_latest, size, etag, content_type,
        content_encoding, content_disposition, content_language, cache_control, expires,
        user_meta, storage_class, tier, created_at, parts_count, checksum_algo, checksum_value,
        checksum_type, tags)
    VALUES (p_id, p_bucket_id, p_key, 'COMMITTED', TRUE, p_size, p_etag, p_content_type,
        p_content_encoding, p_content_disposition, p_content_language, p_cache_control,
        p_expires, p_user_meta, p_storage_class, p_tier, p_created_at, p_parts_count, p_checksum_algo,
        p_checksum_value, p_checksum_type, p_tags);
    FOR d IN
        SELECT x.tier, x.hash, x.release FROM (
            SELECT p_blob_tier AS tier, p_blob_hash AS hash, FALSE AS release
                WHERE p_blob_hash IS NOT NULL
            UNION ALL
            SELECT s.tier, s.blob_hash, TRUE FROM object_segments s WHERE s.object_id = v_old_id
        ) x
        ORDER BY x.tier <> 'hot', x.hash COLLATE "C", x.release
    LOOP
        IF d.release THEN
            UPDATE blobs SET ref_count = ref_count - 1,
                zero_since = CASE WHEN ref_count = 1 THEN p_now ELSE zero_since END
                WHERE tier = d.tier AND hash = d.hash;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'referenced blob %/% has no row', d.tier, d.hash
                    USING ERRCODE = 'JS001';
            END IF;
        ELSE
            INSERT INTO blobs (tier, hash, size, ref_count, zero_since, created_at, data)
                VALUES (d.tier, d.hash, p_blob_size, 1, NULL, p_now, p_blob_data)
                ON CONFLICT (tier, hash) DO UPDATE
                SET ref_count = blobs.ref_count + 1, zero_since = NULL,
                    data = COALESCE(blobs.data, excluded.data);
        END IF;
    END LOOP;
    IF p_blob_hash IS NOT NULL THEN
        INSERT INTO object_segments (object_id, seq, tier, blob_hash, size)
            VALUES (p_id, 0, p_blob_tier, p_blob_hash, p_blob_size);
    END IF;
    RETURN 'ok';
END
$$;

-- DELETE of a key's current version: releases its blobs and demotes it. Returns whether there
-- was one.
CREATE FUNCTION js_delete_latest(p_bucket_id TEXT, p_key TEXT, p_now BIGINT)
RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    v_old_id TEXT;
    d RECORD;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_bucket_id || '/' || p_key, 0));
    SELECT id INTO v_old_id
        FROM objects WHERE bucket_id = p_bucket_id AND key = p_key AND is_latest;
    IF v_old_id IS NULL THEN
        RETURN FALSE;
    END IF;
    FOR d IN
        SELECT s.tier, s.blob_hash AS hash FROM object_segments s WHERE s.object_id = v_old_id
        ORDER BY s.tier <> 'hot', s.blob_hash COLLATE "C"
    LOOP
        UPDATE blobs SET ref_count = ref_count - 1,
            zero_since = CASE WHEN ref_count = 1 THEN p_now ELSE zero_since END
            WHERE tier = d.tier AND hash = d.hash;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'referenced blob %/% has no row', d.tier, d.hash
                USING ERRCODE = 'JS001';
        END IF;
    END LOOP;
    UPDATE objects SET is_latest = FALSE, status = 'DELETING', deleted_at = p_now
        WHERE id = v_old_id;
    RETURN TRUE;
END
$$;
