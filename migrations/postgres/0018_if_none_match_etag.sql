-- If-None-Match with an ETag on PUT and CompleteMultipartUpload: `p_cond` 3 refuses the write
-- ('precondition_failed') when the key's current version has the ETag `p_cond_etag`; an absent
-- key, or one whose current version has another ETag, is written. js_commit_put and
-- js_commit_many as in 0014, but for that one branch each (js_commit_each, 0012, calls
-- js_commit_put and so has it too).

CREATE OR REPLACE FUNCTION js_commit_put(
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
    ELSIF p_cond = 3 AND v_old_id IS NOT NULL AND p_cond_etag = v_old_etag THEN
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
    IF v_old_id IS NULL THEN
        -- A new key (the common case) has one blob row to touch: no lock order to keep, and no
        -- UNION and sort to plan and run (a fifth of the function's cost in pgbench).
        IF p_blob_hash IS NOT NULL THEN
            INSERT INTO blobs (tier, hash, size, ref_count, zero_since, created_at)
                VALUES (p_blob_tier, p_blob_hash, p_blob_size, 1, NULL, p_now)
                ON CONFLICT (tier, hash) DO UPDATE
                SET ref_count = blobs.ref_count + 1, zero_since = NULL;
        END IF;
    ELSE
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
                INSERT INTO blobs (tier, hash, size, ref_count, zero_since, created_at)
                    VALUES (d.tier, d.hash, p_blob_size, 1, NULL, p_now)
                    ON CONFLICT (tier, hash) DO UPDATE
                    SET ref_count = blobs.ref_count + 1, zero_since = NULL;
            END IF;
        END LOOP;
    END IF;
    IF p_blob_data IS NOT NULL THEN
        INSERT INTO blob_data (tier, hash, data) VALUES (p_blob_tier, p_blob_hash, p_blob_data)
            ON CONFLICT (tier, hash) DO NOTHING;
    END IF;
    IF p_blob_hash IS NOT NULL THEN
        INSERT INTO object_segments (object_id, seq, tier, blob_hash, size)
            VALUES (p_id, 0, p_blob_tier, p_blob_hash, p_blob_size);
    END IF;
    RETURN 'ok';
END
$$;

CREATE OR REPLACE FUNCTION js_commit_many(
    p_id TEXT[], p_bucket_id TEXT[], p_key TEXT[], p_size BIGINT[], p_etag TEXT[],
    p_content_type TEXT[], p_content_encoding TEXT[], p_content_disposition TEXT[],
    p_content_language TEXT[], p_cache_control TEXT[], p_expires TEXT[], p_user_meta TEXT[],
    p_storage_class TEXT[], p_tier TEXT[], p_created_at BIGINT[], p_parts_count INTEGER[],
    p_checksum_algo TEXT[], p_checksum_value TEXT[], p_checksum_type TEXT[], p_tags TEXT[],
    p_cond INTEGER[], p_cond_etag TEXT[],
    p_blob_tier TEXT[], p_blob_hash TEXT[], p_blob_size BIGINT[], p_blob_data BYTEA[],
    d_tenant_id TEXT[], d_bucket TEXT[], d_key TEXT[], p_now BIGINT)
RETURNS TEXT[] LANGUAGE plpgsql
-- The statements below are planned once per connection: a custom plan per call (the default
-- while it looks cheaper than the generic one) was the planner's work on every group.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    n_put INTEGER := COALESCE(array_length(p_id, 1), 0);
    n_del INTEGER := COALESCE(array_length(d_key, 1), 0);
    -- Per item, the PUTs' then the DELETEs': its bucket id (NULL: a DELETE's bucket does not
    -- exist), its key, its current version's id and ETag, whether it writes, and its answer.
    v_bucket TEXT[];
    v_key TEXT[];
    v_old_id TEXT[];
    v_old_etag TEXT[];
    v_act BOOLEAN[] := '{}';
    v_out TEXT[] := '{}';
    -- The current versions the group replaces or deletes.
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
        RETURN js_commit_each(p_id, p_bucket_id, p_key, p_size, p_etag, p_content_type,
            p_content_encoding, p_content_disposition, p_content_language, p_cache_control,
            p_expires, p_user_meta, p_storage_class, p_tier, p_created_at, p_parts_count,
            p_checksum_algo, p_checksum_value, p_checksum_type, p_tags, p_cond, p_cond_etag,
            p_blob_tier, p_blob_hash, p_blob_size, p_blob_data, d_tenant_id, d_bucket, d_key,
            p_now);
    END IF;

    -- The key locks, in one order for every group. A statement of its own: the read below
    -- must take its snapshot after them (READ COMMITTED), to see what their holders committed.
    SELECT array_agg(h ORDER BY h) INTO v_locks FROM (
        SELECT DISTINCT hashtextextended(b || '/' || k, 0) AS h
            FROM unnest(v_bucket, v_key) AS u(b, k) WHERE b IS NOT NULL) l;
    FOR i IN 1 .. COALESCE(array_length(v_locks, 1), 0) LOOP
        PERFORM pg_advisory_xact_lock(v_locks[i]);
    END LOOP;

    -- Current versions. OFFSET 0 keeps each lookup an index probe whatever the statistics say
    -- (as in meta::sql::lookup).
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

    -- Each blob's net change: +1 per new version's body, -1 per segment of a version gone.
    -- A blob that gains (net >= 0) is upserted; one that only loses is decremented, and must
    -- have its row; a blob released by a version gone must not be created here.
    WITH d AS (
        SELECT x.tier, x.hash, sum(x.delta) AS net, bool_or(x.delta > 0) AS gains,
            bool_or(x.delta < 0) AS releases, max(x.size) AS size
        FROM (
            SELECT u.tier, u.hash, 1 AS delta, u.size
                FROM unnest(p_blob_tier, p_blob_hash, p_blob_size, v_act[1:n_put])
                    AS u(tier, hash, size, act)
                WHERE u.act AND u.hash IS NOT NULL
            UNION ALL
            SELECT s.tier, s.blob_hash, -1, s.size
                FROM object_segments s WHERE s.object_id = ANY (v_gone)
        ) x
        GROUP BY x.tier, x.hash
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
        + (SELECT count(*) FROM up JOIN d USING (tier, hash) WHERE up.created AND d.releases)
        INTO v_lost;
    IF v_lost <> 0 THEN
        RAISE EXCEPTION '% referenced blob(s) of replaced versions have no row', v_lost
            USING ERRCODE = 'JS001';
    END IF;

    IF n_put > 0 THEN
        -- The bytes of inline bodies, once their blob rows exist (the foreign key).
        INSERT INTO blob_data (tier, hash, data)
        SELECT u.tier, u.hash, u.data
            FROM unnest(p_blob_tier, p_blob_hash, p_blob_data, v_act[1:n_put])
                AS u(tier, hash, data, act)
            WHERE u.act AND u.data IS NOT NULL
            ORDER BY u.tier <> 'hot', u.hash COLLATE "C"
        ON CONFLICT (tier, hash) DO NOTHING;
        INSERT INTO object_segments (object_id, seq, tier, blob_hash, size)
        SELECT u.id, 0, u.tier, u.hash, u.size
            FROM unnest(p_id, p_blob_tier, p_blob_hash, p_blob_size, v_act[1:n_put])
                AS u(id, tier, hash, size, act)
            WHERE u.act AND u.hash IS NOT NULL;
    END IF;
    RETURN v_out;
END
$$;

-- CREATE OR REPLACE resets the settings 0015 attached to the two functions: set them again.
ALTER FUNCTION js_commit_put SET enable_seqscan = off;
ALTER FUNCTION js_commit_many SET enable_seqscan = off;
