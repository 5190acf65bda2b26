-- JustStorage's PostgreSQL functions: the version and reference rule, written once for this
-- database. Applied at every start with CREATE OR REPLACE, after the migrations, so this file
-- is always the functions' one definition (a change here needs no migration).
--
-- Lock order: the per-key advisory locks first (in hash order), then blob rows in
-- (tier <> 'hot', hash) order. A deadlock can still happen (rows locked by foreign-key checks);
-- PostgreSQL aborts one transaction and the caller runs it again.
--
-- A broken invariant raises SQLSTATE JS001 (a referenced blob without its row); keys repeated
-- within one call raise JS002 (the caller then commits the items one at a time).

-- Commits versions and blob references: every PUT, copy and CompleteMultipartUpload (a new
-- current version of its key, `p_*`, one element per item), every DELETE (`d_*`: the key's
-- current version goes, its bucket found by tenant and name), and the references of upload
-- parts. Per item, under its key's lock: its condition is checked against the current version;
-- if it holds, that version is demoted (DELETING, its references released), and a new version
-- is inserted with its segments and their references.
--
-- `s_*`: references added, one per segment: `s_item` is the item's position in `p_id` (its
-- segment number `s_seq`), or 0 for a reference of no version (an upload part's). A blob
-- `s_new` was just written: its row may not exist yet and is created (with its inline bytes
-- `s_data`); every other referenced blob must have its row (else JS001). `r_*`: references
-- released, with the item that writes (a completed upload's parts) or, item 0, regardless.
--
-- Returns one outcome per item, the PUTs' first: 'ok', 'precondition_failed' or 'no_such_key'
-- for a new version; 'deleted', 'absent' or 'no_such_bucket' for a DELETE.
--
-- Conditions (`p_cond`): 0 none; 1 If-None-Match `*` (no current version); 2 If-Match
-- (`p_cond_etag`, or any version when NULL); 3 If-None-Match with an ETag.
CREATE OR REPLACE FUNCTION js_commit(
    p_id TEXT[], p_bucket_id TEXT[], p_key TEXT[], p_size BIGINT[], p_etag TEXT[],
    p_content_type TEXT[], p_content_encoding TEXT[], p_content_disposition TEXT[],
    p_content_language TEXT[], p_cache_control TEXT[], p_expires TEXT[], p_user_meta TEXT[],
    p_storage_class TEXT[], p_tier TEXT[], p_created_at BIGINT[], p_parts_count INTEGER[],
    p_checksum_algo TEXT[], p_checksum_value TEXT[], p_checksum_type TEXT[], p_tags TEXT[],
    p_cond INTEGER[], p_cond_etag TEXT[],
    s_item INTEGER[], s_seq INTEGER[], s_tier TEXT[], s_hash TEXT[], s_size BIGINT[],
    s_new BOOLEAN[], s_data BYTEA[],
    r_item INTEGER[], r_tier TEXT[], r_hash TEXT[],
    d_tenant_id TEXT[], d_bucket TEXT[], d_key TEXT[], p_now BIGINT)
RETURNS TEXT[] LANGUAGE plpgsql
-- Planned once per connection (a custom plan per call was the planner's work on every commit),
-- and every statement has an index to probe: from a young table's statistics a generic plan
-- would scan it, and keep doing so.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    n_put INTEGER := COALESCE(array_length(p_id, 1), 0);
    n_del INTEGER := COALESCE(array_length(d_key, 1), 0);
    -- Per item, the PUTs' then the DELETEs': its bucket id (NULL: a DELETE's bucket does not
    -- exist), its key, its current version's id and ETag, whether it writes, and its outcome.
    v_bucket TEXT[];
    v_key TEXT[];
    v_old_id TEXT[];
    v_old_etag TEXT[];
    v_act BOOLEAN[] := '{}';
    v_out TEXT[] := '{}';
    -- The current versions the call replaces or deletes.
    v_gone TEXT[] := '{}';
    v_locks BIGINT[];
    v_lost BIGINT;
    o TEXT;
BEGIN
    SELECT COALESCE(array_agg(b.id ORDER BY u.ord), '{}') INTO v_bucket
        FROM unnest(d_tenant_id, d_bucket) WITH ORDINALITY AS u(tenant_id, name, ord)
        LEFT JOIN buckets b ON b.tenant_id = u.tenant_id AND b.name = u.name;
    v_bucket := COALESCE(p_bucket_id, '{}') || v_bucket;
    v_key := COALESCE(p_key, '{}') || COALESCE(d_key, '{}');

    IF (SELECT count(*) <> count(DISTINCT (b, k))
            FROM unnest(v_bucket, v_key) AS u(b, k) WHERE b IS NOT NULL) THEN
        RAISE EXCEPTION 'a key is written twice in one call' USING ERRCODE = 'JS002';
    END IF;

    -- The key locks, in one order for every call. A statement of its own: the read below must
    -- take its snapshot after them (READ COMMITTED), to see what their holders committed.
    SELECT array_agg(h ORDER BY h) INTO v_locks FROM (
        SELECT DISTINCT hashtextextended(b || '/' || k, 0) AS h
            FROM unnest(v_bucket, v_key) AS u(b, k) WHERE b IS NOT NULL) l;
    FOR i IN 1 .. COALESCE(array_length(v_locks, 1), 0) LOOP
        PERFORM pg_advisory_xact_lock(v_locks[i]);
    END LOOP;

    -- Current versions. OFFSET 0 keeps each lookup an index probe whatever the statistics say.
    SELECT array_agg(c.id ORDER BY u.ord), array_agg(c.etag ORDER BY u.ord)
        INTO v_old_id, v_old_etag
        FROM unnest(v_bucket, v_key) WITH ORDINALITY AS u(b, k, ord)
        LEFT JOIN LATERAL (
            SELECT id, etag FROM objects WHERE bucket_id = u.b AND key = u.k AND is_latest
            OFFSET 0) c ON TRUE;

    FOR i IN 1 .. n_put LOOP
        IF p_cond[i] = 1 AND v_old_id[i] IS NOT NULL THEN
            o := 'precondition_failed';
        ELSIF p_cond[i] = 2 AND v_old_id[i] IS NULL THEN
            o := 'no_such_key';
        ELSIF p_cond[i] = 2 AND p_cond_etag[i] IS NOT NULL
                AND p_cond_etag[i] <> COALESCE(v_old_etag[i], '') THEN
            o := 'precondition_failed';
        ELSIF p_cond[i] = 3 AND v_old_id[i] IS NOT NULL AND p_cond_etag[i] = v_old_etag[i] THEN
            o := 'precondition_failed';
        ELSE
            o := 'ok';
        END IF;
        v_out := v_out || o;
        v_act := v_act || (o = 'ok');
    END LOOP;
    FOR i IN n_put + 1 .. n_put + n_del LOOP
        IF v_bucket[i] IS NULL THEN
            o := 'no_such_bucket';
        ELSIF v_old_id[i] IS NULL THEN
            o := 'absent';
        ELSE
            o := 'deleted';
        END IF;
        v_out := v_out || o;
        v_act := v_act || (o = 'deleted');
    END LOOP;
    FOR i IN 1 .. n_put + n_del LOOP
        IF v_act[i] AND v_old_id[i] IS NOT NULL THEN
            v_gone := v_gone || v_old_id[i];
        END IF;
    END LOOP;

    -- Demoted before the new versions go in: one current version per key (objects_latest).
    IF cardinality(v_gone) > 0 THEN
        UPDATE objects SET is_latest = FALSE, status = 'DELETING', deleted_at = p_now
            WHERE id = ANY (v_gone);
    END IF;

    IF n_put > 0 THEN
        INSERT INTO objects (id, bucket_id, key, status, is_latest, size, etag, content_type,
            content_encoding, content_disposition, content_language, cache_control, expires,
            user_meta, storage_class, tier, created_at, parts_count, checksum_algo,
            checksum_value, checksum_type, tags)
        SELECT u.id, u.bucket_id, u.key, 'COMMITTED', TRUE, u.size, u.etag, u.content_type,
            u.content_encoding, u.content_disposition, u.content_language, u.cache_control,
            u.expires, u.user_meta, u.storage_class, u.tier, u.created_at, u.parts_count,
            u.checksum_algo, u.checksum_value, u.checksum_type, u.tags
        FROM unnest(p_id, p_bucket_id, p_key, p_size, p_etag, p_content_type,
            p_content_encoding, p_content_disposition, p_content_language, p_cache_control,
            p_expires, p_user_meta, p_storage_class, p_tier, p_created_at, p_parts_count,
            p_checksum_algo, p_checksum_value, p_checksum_type, p_tags, v_act[1:n_put])
            AS u(id, bucket_id, key, size, etag, content_type, content_encoding,
                content_disposition, content_language, cache_control, expires, user_meta,
                storage_class, tier, created_at, parts_count, checksum_algo, checksum_value,
                checksum_type, tags, act)
        WHERE u.act;
    END IF;

    -- Each blob's net change: +1 per reference added, -1 per segment of a version gone and per
    -- release. A blob that gains (net >= 0) is upserted, in lock order; one that only loses is
    -- decremented and must have its row; a blob that is released, or was not just written, must
    -- not be created here.
    WITH x AS (
        SELECT s.tier, s.hash, 1 AS delta, s.size, s.is_new
            FROM unnest(s_item, s_tier, s_hash, s_size, s_new)
                AS s(item, tier, hash, size, is_new)
            WHERE s.item = 0 OR v_act[s.item]
        UNION ALL
        SELECT g.tier, g.blob_hash, -1, g.size, FALSE
            FROM object_segments g WHERE g.object_id = ANY (v_gone)
        UNION ALL
        SELECT r.tier, r.hash, -1, NULL, FALSE
            FROM unnest(r_item, r_tier, r_hash) AS r(item, tier, hash)
            WHERE r.item = 0 OR v_act[r.item]
    ), d AS (
        SELECT x.tier, x.hash, sum(x.delta) AS net, bool_or(x.delta > 0) AS gains,
            bool_or(x.delta < 0) AS releases, bool_or(x.is_new) AS is_new, max(x.size) AS size
        FROM x GROUP BY x.tier, x.hash
    ), up AS (
        INSERT INTO blobs (tier, hash, size, ref_count, zero_since, created_at)
        SELECT d.tier, d.hash, d.size, d.net, CASE WHEN d.net = 0 THEN p_now END, p_now
            FROM d WHERE d.gains AND d.net >= 0
            ORDER BY d.tier <> 'hot', d.hash COLLATE "C"
        ON CONFLICT (tier, hash) DO UPDATE
            SET ref_count = blobs.ref_count + excluded.ref_count, zero_since = NULL
        RETURNING blobs.tier, blobs.hash, (xmax = 0) AS created
    ), down AS (
        UPDATE blobs b SET ref_count = b.ref_count + d.net,
                zero_since = CASE WHEN b.ref_count + d.net = 0 THEN p_now ELSE b.zero_since END
            FROM d WHERE d.net < 0 AND b.tier = d.tier AND b.hash = d.hash
            RETURNING 1
    )
    SELECT (SELECT count(*) FROM d WHERE d.net < 0) - (SELECT count(*) FROM down)
        + (SELECT count(*) FROM up JOIN d USING (tier, hash)
            WHERE up.created AND (d.releases OR NOT d.is_new))
        INTO v_lost;
    IF v_lost <> 0 THEN
        RAISE EXCEPTION '% referenced blob(s) have no row', v_lost USING ERRCODE = 'JS001';
    END IF;
    -- Inline bytes, once their blob rows exist (the foreign key); bytes already there stay.
    INSERT INTO blob_data (tier, hash, data)
    SELECT u.tier, u.hash, u.data
        FROM unnest(s_item, s_tier, s_hash, s_data) AS u(item, tier, hash, data)
        WHERE u.data IS NOT NULL AND (u.item = 0 OR v_act[u.item])
        ORDER BY u.tier <> 'hot', u.hash COLLATE "C"
    ON CONFLICT (tier, hash) DO NOTHING;

    -- The new versions' segments.
    INSERT INTO object_segments (object_id, seq, tier, blob_hash, size)
    SELECT p_id[s.item], s.seq, s.tier, s.hash, s.size
        FROM unnest(s_item, s_seq, s_tier, s_hash, s_size) AS s(item, seq, tier, hash, size)
        WHERE s.item > 0 AND v_act[s.item];
    RETURN v_out;
END
$$;
