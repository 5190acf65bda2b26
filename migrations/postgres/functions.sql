-- JustStorage's PostgreSQL functions: the version and reference rule, written once for this
-- database. Applied at every start after the migrations (every `js_` function dropped and
-- created again), so this file is always the functions' one definition (a change here needs
-- no migration).
--
-- Lock order: the per-key advisory locks first (in hash order), then blob rows in
-- (tier <> 'hot', hash) order. A deadlock can still happen (rows locked by foreign-key checks);
-- PostgreSQL aborts one transaction and the caller runs it again.
--
-- A broken invariant raises SQLSTATE JS001 (a referenced blob without its row); keys repeated
-- within one call raise JS002 (the caller then commits the items one at a time).

-- Every function is dropped first, so that a changed signature leaves no stale overload.
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.proname LIKE 'js\_%' AND p.pronamespace = current_schema()::regnamespace LOOP
        EXECUTE 'DROP FUNCTION ' || f;
    END LOOP;
END
$$;

-- Commits versions and blob references: every PUT, copy and CompleteMultipartUpload (a new
-- current version of its key, `p_*`, one element per item), every DELETE without a version
-- id (`d_*`: its bucket found by tenant and name), every permanent delete of one version
-- (`x_*`), and the references of upload parts. Per item, under its key's lock, by its bucket's
-- versioning (as `plan::replaced` in Rust):
-- - a new version (`p_*`, or a DELETE's delete marker `d_id` in a versioned or suspended
--   bucket): unversioned, the current version goes; Enabled, it stays, no longer current;
--   Suspended, the key's null version goes and the current one, if another, stays. The new
--   version is current, numbered after the current one (`version_seq`), with the version id
--   `null` unless versioning is Enabled. An unversioned DELETE inserts nothing.
-- - a permanent delete: the version goes, unless Object Lock holds it (`x_bypass` lifts
--   GOVERNANCE retention); if it was current, the newest remaining version becomes current.
-- A version that goes is DELETING, its references released; a locked one never goes.
--
-- `s_*`: references added, one per segment: `s_item` is the item's position in `p_id` (its
-- segment number `s_seq`), or 0 for a reference of no version (an upload part's). A blob
-- `s_new` was just written: its row may not exist yet and is created (with its inline bytes
-- `s_data`); every other referenced blob must have its row (else JS001). `r_*`: references
-- released, with the item that writes (a completed upload's parts) or, item 0, regardless.
--
-- Returns one outcome per item, the PUTs' first, then the DELETEs', then the permanent
-- deletes': for a new version 'ok:N' (its version id is its row id) or 'null:N' (its version
-- id is null), N its `version_seq`, or 'precondition_failed', 'no_such_key', 'locked',
-- 'no_such_bucket'; for a DELETE 'deleted', 'absent', 'marker' (version id `d_id`),
-- 'null_marker', 'locked' or 'no_such_bucket'; for a permanent delete 'removed',
-- 'removed_marker' (a delete marker went), 'absent' or 'locked'. A new version that would
-- take its bucket or tenant over a quota (bytes or versions, every version counted) is
-- 'quota_exceeded'.
--
-- Conditions (`p_cond`, against the current version unless it is a delete marker): 0 none;
-- 1 If-None-Match `*` (no current version); 2 If-Match (`p_cond_etag`, or any version when
-- NULL); 3 If-None-Match with an ETag.
CREATE FUNCTION js_commit(
    p_id TEXT[], p_bucket_id TEXT[], p_key TEXT[], p_size BIGINT[], p_etag TEXT[],
    p_content_type TEXT[], p_content_encoding TEXT[], p_content_disposition TEXT[],
    p_content_language TEXT[], p_cache_control TEXT[], p_expires TEXT[], p_user_meta TEXT[],
    p_storage_class TEXT[], p_tier TEXT[], p_created_at BIGINT[], p_parts_count INTEGER[],
    p_checksum_algo TEXT[], p_checksum_value TEXT[], p_checksum_type TEXT[], p_tags TEXT[],
    p_cond INTEGER[], p_cond_etag TEXT[],
    p_lock_mode TEXT[], p_lock_until BIGINT[], p_legal_hold BOOLEAN[],
    s_item INTEGER[], s_seq INTEGER[], s_tier TEXT[], s_hash TEXT[], s_size BIGINT[],
    s_new BOOLEAN[], s_data BYTEA[],
    r_item INTEGER[], r_tier TEXT[], r_hash TEXT[],
    d_tenant_id TEXT[], d_bucket TEXT[], d_key TEXT[], d_id TEXT[],
    x_bucket_id TEXT[], x_key TEXT[], x_version TEXT[], x_bypass BOOLEAN[],
    p_now BIGINT)
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
    n_rm INTEGER := COALESCE(array_length(x_key, 1), 0);
    -- Per item, the PUTs' then the DELETEs' then the permanent deletes': its bucket id (NULL:
    -- no such bucket) and versioning, its key, the version id it names (permanent deletes).
    v_bucket TEXT[];
    v_ver TEXT[];
    -- Per item, its bucket's tenant and the quotas of both (NULL: no limit).
    v_tenant TEXT[];
    v_qb_bytes BIGINT[];
    v_qb_objects BIGINT[];
    v_qt_bytes BIGINT[];
    v_qt_objects BIGINT[];
    -- Quota scopes ('b:' bucket id, 't:' tenant id) PUTs write to: what they hold so far in
    -- this call.
    q_scope TEXT[] := '{}';
    q_bytes BIGINT[] := '{}';
    q_objects BIGINT[] := '{}';
    qt INTEGER;
    sc TEXT;
    -- Per version that goes: whether it was current, its tenant (usage, holders).
    v_gone_latest BOOLEAN[] := '{}';
    v_gone_tenant TEXT[] := '{}';
    c_tier TEXT[];
    n_tier TEXT[] := '{}';
    n_latest BOOLEAN[] := '{}';
    -- Usage events: a version of a bucket and tier, of a size, marker or not, entering (+1) or
    -- leaving (-1) the current (latest) or noncurrent counters.
    e_bucket TEXT[] := '{}';
    e_tier TEXT[] := '{}';
    e_size BIGINT[] := '{}';
    e_marker BOOLEAN[] := '{}';
    e_latest BOOLEAN[] := '{}';
    e_sign INTEGER[] := '{}';
    pb TEXT;
    pt TEXT;
    ps BIGINT;
    pm BOOLEAN;
    v_key TEXT[];
    v_vid TEXT[];
    -- The current version (for a permanent delete: the version named), and the null version
    -- where the item's rule needs it.
    c_id TEXT[];
    c_etag TEXT[];
    c_seq BIGINT[];
    c_size BIGINT[];
    c_vid TEXT[];
    c_marker BOOLEAN[];
    c_latest BOOLEAN[];
    c_locked BOOLEAN[];
    n_id TEXT[] := '{}';
    n_locked BOOLEAN[] := '{}';
    n_size BIGINT[] := '{}';
    n_marker BOOLEAN[] := '{}';
    d_objects BIGINT;
    d_bytes BIGINT;
    -- Per item: whether it writes, its outcome, the version that goes and the one that is
    -- no longer current.
    v_act BOOLEAN[] := '{}';
    v_out TEXT[] := '{}';
    v_gone TEXT[] := '{}';
    v_kept TEXT[] := '{}';
    -- Permanent deletes of a current version: the keys whose newest version becomes current.
    v_promote INTEGER[] := '{}';
    v_locks BIGINT[];
    v_lost BIGINT;
    j INTEGER;
    gone_id TEXT;
    kept_id TEXT;
    marker BOOLEAN;
    latest BOOLEAN;
    o TEXT;
BEGIN
    -- Buckets by id (versions, permanent deletes) or by tenant and name (DELETEs).
    SELECT COALESCE(array_agg(COALESCE(b.id, n.id) ORDER BY u.ord), '{}'),
            COALESCE(array_agg(COALESCE(b.versioning, n.versioning) ORDER BY u.ord), '{}'),
            COALESCE(array_agg(t.id ORDER BY u.ord), '{}'),
            COALESCE(array_agg(COALESCE(b.quota_bytes, n.quota_bytes) ORDER BY u.ord), '{}'),
            COALESCE(array_agg(COALESCE(b.quota_objects, n.quota_objects) ORDER BY u.ord), '{}'),
            COALESCE(array_agg(t.quota_bytes ORDER BY u.ord), '{}'),
            COALESCE(array_agg(t.quota_objects ORDER BY u.ord), '{}')
        INTO v_bucket, v_ver, v_tenant, v_qb_bytes, v_qb_objects, v_qt_bytes, v_qt_objects
        FROM unnest(COALESCE(p_bucket_id, '{}') || array_fill(NULL::TEXT, ARRAY[n_del])
                || COALESCE(x_bucket_id, '{}'),
            array_fill(NULL::TEXT, ARRAY[n_put]) || COALESCE(d_tenant_id, '{}'),
            array_fill(NULL::TEXT, ARRAY[n_put]) || COALESCE(d_bucket, '{}'))
            WITH ORDINALITY AS u(bucket_id, tenant_id, name, ord)
        LEFT JOIN buckets b ON b.id = u.bucket_id
        LEFT JOIN buckets n ON n.tenant_id = u.tenant_id AND n.name = u.name
        LEFT JOIN tenants t ON t.id = COALESCE(b.tenant_id, n.tenant_id);
    v_key := COALESCE(p_key, '{}') || COALESCE(d_key, '{}') || COALESCE(x_key, '{}');
    v_vid := array_fill(NULL::TEXT, ARRAY[n_put + n_del]) || COALESCE(x_version, '{}');

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

    -- Quotas of the PUTs' buckets and tenants: their rows locked (writers racing for the last
    -- bytes of one take turns here, and each sees what the one before committed), then what
    -- each scope holds, every version counted.
    IF n_put > 0 AND EXISTS (SELECT 1 FROM unnest(v_qb_bytes[1:n_put], v_qb_objects[1:n_put],
            v_qt_bytes[1:n_put], v_qt_objects[1:n_put]) AS x(a, b, c, d)
            WHERE COALESCE(x.a, x.b, x.c, x.d) IS NOT NULL) THEN
        PERFORM 1 FROM buckets WHERE id IN (SELECT u.b FROM unnest(v_bucket[1:n_put],
                v_qb_bytes[1:n_put], v_qb_objects[1:n_put]) AS u(b, x, y)
                WHERE COALESCE(u.x, u.y) IS NOT NULL)
            ORDER BY id FOR NO KEY UPDATE;
        PERFORM 1 FROM tenants WHERE id IN (SELECT u.t FROM unnest(v_tenant[1:n_put],
                v_qt_bytes[1:n_put], v_qt_objects[1:n_put]) AS u(t, x, y)
                WHERE COALESCE(u.x, u.y) IS NOT NULL)
            ORDER BY id FOR NO KEY UPDATE;
        SELECT COALESCE(array_agg(s.scope), '{}'), COALESCE(array_agg(s.bytes), '{}'),
                COALESCE(array_agg(s.objects), '{}')
            INTO q_scope, q_bytes, q_objects
            FROM (
                SELECT 'b:' || c.bucket_id AS scope,
                        CAST(COALESCE(sum(c.bytes + c.noncurrent_bytes), 0) AS BIGINT) AS bytes,
                        CAST(COALESCE(sum(c.objects + c.noncurrent_versions), 0) AS BIGINT)
                            AS objects
                    FROM usage_counters c
                    WHERE c.bucket_id IN (SELECT DISTINCT u.b FROM unnest(v_bucket[1:n_put],
                        v_qb_bytes[1:n_put], v_qb_objects[1:n_put]) AS u(b, x, y)
                        WHERE COALESCE(u.x, u.y) IS NOT NULL)
                    GROUP BY c.bucket_id
                UNION ALL
                SELECT 't:' || k.tenant_id,
                        CAST(COALESCE(sum(c.bytes + c.noncurrent_bytes), 0) AS BIGINT),
                        CAST(COALESCE(sum(c.objects + c.noncurrent_versions), 0) AS BIGINT)
                    FROM buckets k JOIN usage_counters c ON c.bucket_id = k.id
                    WHERE k.tenant_id IN (SELECT DISTINCT u.t FROM unnest(v_tenant[1:n_put],
                        v_qt_bytes[1:n_put], v_qt_objects[1:n_put]) AS u(t, x, y)
                        WHERE COALESCE(u.x, u.y) IS NOT NULL)
                    GROUP BY k.tenant_id) s;
    END IF;

    -- The versions each item's rule reads: the current version of a new version's or a
    -- DELETE's key; the version a permanent delete names (by id: its row id; `null`: below);
    -- the null version, where a suspended bucket's rule or a permanent delete needs it. OFFSET 0
    -- keeps each lookup an index probe whatever the statistics say. The last two run only when
    -- an item needs them: most calls are PUTs and DELETEs in unversioned or versioned buckets.
    SELECT array_agg(c.id ORDER BY u.ord), array_agg(c.etag ORDER BY u.ord),
            array_agg(c.version_seq ORDER BY u.ord), array_agg(c.version_id ORDER BY u.ord),
            array_agg(c.delete_marker ORDER BY u.ord), array_agg(c.locked ORDER BY u.ord),
            array_agg(c.size ORDER BY u.ord), array_agg(c.tier ORDER BY u.ord)
        INTO c_id, c_etag, c_seq, c_vid, c_marker, c_locked, c_size, c_tier
        FROM unnest(v_bucket[1:n_put + n_del], v_key[1:n_put + n_del])
            WITH ORDINALITY AS u(b, k, ord)
        LEFT JOIN LATERAL (
            SELECT id, etag, version_seq, version_id, delete_marker, size, tier,
                    legal_hold OR lock_until > p_now AS locked
                FROM objects WHERE bucket_id = u.b AND key = u.k AND is_latest
            OFFSET 0) c ON TRUE;
    c_latest := array_fill(TRUE, ARRAY[n_put + n_del]);
    IF n_rm > 0 THEN
        SELECT c_id || array_agg(c.id ORDER BY u.ord), c_etag || array_agg(c.etag ORDER BY u.ord),
                c_seq || array_agg(c.version_seq ORDER BY u.ord),
                c_vid || array_agg(c.version_id ORDER BY u.ord),
                c_marker || array_agg(c.delete_marker ORDER BY u.ord),
                c_latest || array_agg(c.is_latest ORDER BY u.ord),
                c_locked || array_agg(c.locked ORDER BY u.ord),
                c_size || array_agg(c.size ORDER BY u.ord),
                c_tier || array_agg(c.tier ORDER BY u.ord)
            INTO c_id, c_etag, c_seq, c_vid, c_marker, c_latest, c_locked, c_size, c_tier
            FROM unnest(x_bucket_id, x_key, x_version, x_bypass)
                WITH ORDINALITY AS u(b, k, vid, bypass, ord)
            LEFT JOIN LATERAL (
                SELECT id, etag, version_seq, version_id, delete_marker, is_latest, size, tier,
                        legal_hold OR (lock_until > p_now
                            AND (lock_mode = 'COMPLIANCE' OR NOT u.bypass)) AS locked
                    FROM objects
                    WHERE u.vid <> 'null' AND id = u.vid AND bucket_id = u.b AND key = u.k
                        AND version_id = u.vid AND status = 'COMMITTED'
                OFFSET 0) c ON TRUE;
    END IF;
    IF 'Suspended' = ANY (v_ver) OR 'null' = ANY (x_version) THEN
        SELECT array_agg(n.id ORDER BY u.ord), array_agg(n.locked ORDER BY u.ord),
                array_agg(n.size ORDER BY u.ord), array_agg(n.delete_marker ORDER BY u.ord),
                array_agg(n.tier ORDER BY u.ord), array_agg(n.latest ORDER BY u.ord)
            INTO n_id, n_locked, n_size, n_marker, n_tier, n_latest
            FROM unnest(v_bucket, v_key, v_vid, v_ver,
                    array_fill(FALSE, ARRAY[n_put + n_del]) || COALESCE(x_bypass, '{}'))
                WITH ORDINALITY AS u(b, k, vid, ver, bypass, ord)
            LEFT JOIN LATERAL (
                SELECT id, legal_hold OR (lock_until > p_now
                            AND (lock_mode = 'COMPLIANCE' OR NOT u.bypass)) AS locked,
                        size, delete_marker, tier, TRUE AS latest
                    FROM objects
                    WHERE (u.vid = 'null' OR (u.vid IS NULL AND u.ver = 'Suspended'))
                        AND bucket_id = u.b AND key = u.k AND is_latest AND version_id = 'null'
                UNION ALL
                SELECT id, legal_hold OR (lock_until > p_now
                            AND (lock_mode = 'COMPLIANCE' OR NOT u.bypass)) AS locked,
                        size, delete_marker, tier, FALSE
                    FROM objects
                    WHERE (u.vid = 'null' OR (u.vid IS NULL AND u.ver = 'Suspended'))
                        AND bucket_id = u.b AND key = u.k AND status = 'COMMITTED'
                        AND NOT is_latest AND version_id = 'null'
                LIMIT 1) n ON TRUE;
    END IF;

    FOR i IN 1 .. n_put + n_del + n_rm LOOP
        gone_id := NULL;
        kept_id := NULL;
        IF v_bucket[i] IS NULL THEN
            o := CASE WHEN i > n_put + n_del THEN 'absent' ELSE 'no_such_bucket' END;
        ELSIF i > n_put + n_del THEN
            -- A permanent delete: the version named (by id, or the null version).
            gone_id := COALESCE(c_id[i], n_id[i]);
            IF gone_id IS NULL THEN
                o := 'absent';
            ELSIF COALESCE(c_locked[i], n_locked[i]) THEN
                o := 'locked';
            ELSE
                marker := c_marker[i];
                latest := c_latest[i];
                IF c_id[i] IS NULL THEN
                    -- The null version: its flags were not read with it.
                    SELECT delete_marker, is_latest INTO marker, latest
                        FROM objects WHERE id = gone_id;
                END IF;
                o := CASE WHEN marker THEN 'removed_marker' ELSE 'removed' END;
                IF latest THEN
                    v_promote := v_promote || i;
                END IF;
            END IF;
        ELSE
            IF i <= n_put THEN
                IF p_cond[i] = 1 AND c_id[i] IS NOT NULL AND NOT c_marker[i] THEN
                    o := 'precondition_failed';
                ELSIF p_cond[i] = 2 AND (c_id[i] IS NULL OR c_marker[i]) THEN
                    o := 'no_such_key';
                ELSIF p_cond[i] = 2 AND p_cond_etag[i] IS NOT NULL
                        AND p_cond_etag[i] <> COALESCE(c_etag[i], '') THEN
                    o := 'precondition_failed';
                ELSIF p_cond[i] = 3 AND c_id[i] IS NOT NULL AND NOT c_marker[i]
                        AND p_cond_etag[i] = c_etag[i] THEN
                    o := 'precondition_failed';
                ELSE
                    o := CASE WHEN v_ver[i] = 'Enabled' THEN 'ok' ELSE 'null' END
                        || ':' || (COALESCE(c_seq[i], 0) + 1);
                END IF;
            ELSIF v_ver[i] IS NULL THEN
                o := CASE WHEN c_id[i] IS NULL THEN 'absent' ELSE 'deleted' END;
            ELSE
                o := CASE WHEN v_ver[i] = 'Enabled' THEN 'marker' ELSE 'null_marker' END;
            END IF;
            -- What the write replaces (plan::replaced).
            IF v_ver[i] IS NULL THEN
                gone_id := c_id[i];
            ELSIF v_ver[i] = 'Enabled' THEN
                kept_id := c_id[i];
            ELSE
                gone_id := n_id[i];
                kept_id := CASE WHEN c_id[i] IS DISTINCT FROM n_id[i] THEN c_id[i] END;
            END IF;
            IF o NOT IN ('precondition_failed', 'no_such_key') AND gone_id IS NOT NULL
                    AND COALESCE(CASE WHEN gone_id = c_id[i] THEN c_locked[i] END, n_locked[i],
                        FALSE) THEN
                o := 'locked';
            END IF;
            -- A PUT within its quotas: what it adds less what it replaces.
            IF i <= n_put AND (o LIKE 'ok:%' OR o LIKE 'null:%')
                    AND COALESCE(v_qb_bytes[i], v_qb_objects[i], v_qt_bytes[i],
                        v_qt_objects[i]) IS NOT NULL THEN
                d_objects := 1;
                d_bytes := p_size[i];
                IF gone_id IS NOT NULL AND gone_id = c_id[i] AND NOT c_marker[i] THEN
                    d_objects := 0;
                    d_bytes := d_bytes - c_size[i];
                ELSIF gone_id IS NOT NULL AND gone_id = n_id[i] AND NOT n_marker[i] THEN
                    d_objects := 0;
                    d_bytes := d_bytes - n_size[i];
                END IF;
                FOREACH sc IN ARRAY ARRAY['b:' || v_bucket[i], 't:' || v_tenant[i]] LOOP
                    IF array_position(q_scope, sc) IS NULL THEN
                        q_scope := q_scope || sc;
                        q_bytes := q_bytes || 0::BIGINT;
                        q_objects := q_objects || 0::BIGINT;
                    END IF;
                END LOOP;
                j := array_position(q_scope, 'b:' || v_bucket[i]);
                qt := array_position(q_scope, 't:' || v_tenant[i]);
                -- A write that takes nothing more (an overwrite by a smaller body) passes.
                IF (d_bytes > 0 AND (q_bytes[j] + d_bytes > v_qb_bytes[i]
                            OR q_bytes[qt] + d_bytes > v_qt_bytes[i]))
                        OR (d_objects > 0 AND (q_objects[j] + d_objects > v_qb_objects[i]
                            OR q_objects[qt] + d_objects > v_qt_objects[i])) THEN
                    o := 'quota_exceeded';
                ELSE
                    q_bytes[j] := q_bytes[j] + d_bytes;
                    q_objects[j] := q_objects[j] + d_objects;
                    q_bytes[qt] := q_bytes[qt] + d_bytes;
                    q_objects[qt] := q_objects[qt] + d_objects;
                END IF;
            END IF;
        END IF;
        v_out := v_out || o;
        v_act := v_act || (o LIKE 'ok:%' OR o LIKE 'null:%' OR o IN ('deleted', 'marker',
            'null_marker', 'removed', 'removed_marker'));
        IF v_act[i] AND gone_id IS NOT NULL THEN
            v_gone := v_gone || gone_id;
            v_gone_latest := v_gone_latest
                || CASE WHEN gone_id = c_id[i] THEN c_latest[i] ELSE n_latest[i] END;
            v_gone_tenant := v_gone_tenant || v_tenant[i];
        END IF;
        IF v_act[i] AND kept_id IS NOT NULL THEN
            v_kept := v_kept || kept_id;
        END IF;
    END LOOP;

    -- No longer current before the new versions go in: one current version per key
    -- (objects_latest).
    -- Each leaves its counters: a version that goes, its state; one kept, the current ones for
    -- the noncurrent ones.
    IF cardinality(v_gone) > 0 THEN
        WITH g AS (
            UPDATE objects SET is_latest = FALSE, status = 'DELETING', deleted_at = p_now
                WHERE id = ANY (v_gone)
                RETURNING id, bucket_id, tier, size, delete_marker
        )
        SELECT e_bucket || array_agg(g.bucket_id), e_tier || array_agg(g.tier),
                e_size || array_agg(g.size), e_marker || array_agg(g.delete_marker),
                e_latest || array_agg(w.latest), e_sign || array_agg(-1)
            INTO e_bucket, e_tier, e_size, e_marker, e_latest, e_sign
            FROM g JOIN unnest(v_gone, v_gone_latest) AS w(id, latest) ON w.id = g.id;
    END IF;
    IF cardinality(v_kept) > 0 THEN
        WITH k AS (
            UPDATE objects SET is_latest = FALSE WHERE id = ANY (v_kept)
                RETURNING bucket_id, tier, size, delete_marker
        ), x AS (
            SELECT k.*, s.latest, s.sign FROM k,
                (VALUES (TRUE, -1), (FALSE, 1)) AS s(latest, sign)
        )
        SELECT e_bucket || array_agg(x.bucket_id), e_tier || array_agg(x.tier),
                e_size || array_agg(x.size), e_marker || array_agg(x.delete_marker),
                e_latest || array_agg(x.latest), e_sign || array_agg(x.sign)
            INTO e_bucket, e_tier, e_size, e_marker, e_latest, e_sign
            FROM x;
    END IF;

    IF n_put > 0 THEN
        INSERT INTO objects (id, bucket_id, key, status, is_latest, size, etag, content_type,
            content_encoding, content_disposition, content_language, cache_control, expires,
            user_meta, storage_class, tier, created_at, parts_count, checksum_algo,
            checksum_value, checksum_type, tags, version_id, version_seq, lock_mode,
            lock_until, legal_hold)
        SELECT u.id, u.bucket_id, u.key, 'COMMITTED', TRUE, u.size, u.etag, u.content_type,
            u.content_encoding, u.content_disposition, u.content_language, u.cache_control,
            u.expires, u.user_meta, u.storage_class, u.tier, u.created_at, u.parts_count,
            u.checksum_algo, u.checksum_value, u.checksum_type, u.tags,
            CASE WHEN u.ver = 'Enabled' THEN u.id ELSE 'null' END, COALESCE(u.seq, 0) + 1,
            u.lock_mode, u.lock_until, u.legal_hold
        FROM unnest(p_id, p_bucket_id, p_key, p_size, p_etag, p_content_type,
            p_content_encoding, p_content_disposition, p_content_language, p_cache_control,
            p_expires, p_user_meta, p_storage_class, p_tier, p_created_at, p_parts_count,
            p_checksum_algo, p_checksum_value, p_checksum_type, p_tags, p_lock_mode,
            p_lock_until, p_legal_hold, v_act[1:n_put], v_ver[1:n_put], c_seq[1:n_put])
            AS u(id, bucket_id, key, size, etag, content_type, content_encoding,
                content_disposition, content_language, cache_control, expires, user_meta,
                storage_class, tier, created_at, parts_count, checksum_algo, checksum_value,
                checksum_type, tags, lock_mode, lock_until, legal_hold, act, ver, seq)
        WHERE u.act;
    END IF;
    IF n_del > 0 AND ('marker' = ANY (v_out) OR 'null_marker' = ANY (v_out)) THEN
        INSERT INTO objects (id, bucket_id, key, status, is_latest, size, storage_class, tier,
            created_at, version_id, version_seq, delete_marker)
        SELECT u.id, u.b, u.key, 'COMMITTED', TRUE, 0, 'STANDARD', 'hot', p_now,
            CASE WHEN u.ver = 'Enabled' THEN u.id ELSE 'null' END, COALESCE(u.seq, 0) + 1, TRUE
        FROM unnest(d_id, d_key, v_bucket[n_put + 1:n_put + n_del],
                v_ver[n_put + 1:n_put + n_del], c_seq[n_put + 1:n_put + n_del],
                v_act[n_put + 1:n_put + n_del])
            AS u(id, key, b, ver, seq, act)
        WHERE u.act AND u.ver IS NOT NULL;
    END IF;
    -- After a permanent delete of the current version, the newest remaining one is current.
    FOREACH j IN ARRAY v_promote LOOP
        UPDATE objects SET is_latest = TRUE WHERE id = (SELECT id FROM objects
            WHERE bucket_id = v_bucket[j] AND key = v_key[j] AND status = 'COMMITTED'
                AND NOT is_latest
            ORDER BY version_seq DESC LIMIT 1)
            RETURNING bucket_id, tier, size, delete_marker INTO pb, pt, ps, pm;
        IF FOUND THEN
            e_bucket := e_bucket || pb || pb;
            e_tier := e_tier || pt || pt;
            e_size := e_size || ps || ps;
            e_marker := e_marker || pm || pm;
            e_latest := e_latest || FALSE || TRUE;
            e_sign := e_sign || -1 || 1;
        END IF;
    END LOOP;

    -- The buckets' counters, once per bucket and tier: the events above, the new versions and
    -- the delete markers inserted.
    IF TRUE = ANY (v_act) THEN
        INSERT INTO usage_counters AS u (bucket_id, tier, shard, objects, bytes,
            noncurrent_versions, noncurrent_bytes, delete_markers)
        SELECT e.b, e.t, pg_backend_pid() % 16,
            COALESCE(sum(e.sg) FILTER (WHERE NOT e.mk AND e.lt), 0),
            COALESCE(sum(e.sg * e.sz) FILTER (WHERE NOT e.mk AND e.lt), 0),
            COALESCE(sum(e.sg) FILTER (WHERE NOT e.mk AND NOT e.lt), 0),
            COALESCE(sum(e.sg * e.sz) FILTER (WHERE NOT e.mk AND NOT e.lt), 0),
            COALESCE(sum(e.sg) FILTER (WHERE e.mk), 0)
        FROM (
            SELECT x.b, x.t, x.sz, x.mk, x.lt, x.sg
                FROM unnest(e_bucket, e_tier, e_size, e_marker, e_latest, e_sign)
                    AS x(b, t, sz, mk, lt, sg)
            UNION ALL
            SELECT p.b, p.t, p.sz, FALSE, TRUE, 1
                FROM unnest(p_bucket_id, p_tier, p_size, v_act[1:n_put]) AS p(b, t, sz, act)
                WHERE p.act
            UNION ALL
            SELECT d.b, 'hot', 0, TRUE, TRUE, 1
                FROM unnest(v_bucket[n_put + 1:n_put + n_del], v_ver[n_put + 1:n_put + n_del],
                    v_act[n_put + 1:n_put + n_del]) AS d(b, ver, act)
                WHERE d.act AND d.ver IS NOT NULL
        ) e
        GROUP BY e.b, e.t ORDER BY e.b, e.t
        ON CONFLICT (bucket_id, tier, shard) DO UPDATE SET
            objects = u.objects + excluded.objects, bytes = u.bytes + excluded.bytes,
            noncurrent_versions = u.noncurrent_versions + excluded.noncurrent_versions,
            noncurrent_bytes = u.noncurrent_bytes + excluded.noncurrent_bytes,
            delete_markers = u.delete_markers + excluded.delete_markers;
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
    -- Holders: each tenant's references on blobs, +1 per segment of a new version, -1 per
    -- segment of one gone (upload parts are not held), and the shares of the blobs that gained
    -- or lost a holder, in one statement. Its reads see the holders as they were (`m.was`):
    -- no other commit changes them meanwhile, as each holds the blob's row lock (taken above).
    -- Every holder's share moves from size / n_was to size / n_now, the remainder to the
    -- smallest tenant id; shares are per backend rows (`shard`), summed when read.
    IF TRUE = ANY (v_act) THEN
        WITH h AS (
            SELECT s.tier, s.hash, v_tenant[s.item] AS tenant_id, s.size, 1 AS n
                FROM unnest(s_item, s_tier, s_hash, s_size) AS s(item, tier, hash, size)
                WHERE s.item > 0 AND v_act[s.item]
            UNION ALL
            SELECT g.tier, g.blob_hash, w.tenant_id, g.size, -1
                FROM unnest(v_gone, v_gone_tenant) AS w(id, tenant_id)
                JOIN object_segments g ON g.object_id = w.id
        ), d AS (
            SELECT h.tier, h.hash, h.tenant_id, max(h.size) AS size, sum(h.n) AS net
                FROM h GROUP BY h.tier, h.hash, h.tenant_id HAVING sum(h.n) <> 0
        ), m AS (
            -- Every holder of a changed blob, before and after.
            SELECT COALESCE(t.tier, d.tier) AS tier, COALESCE(t.hash, d.hash) AS hash,
                    COALESCE(t.tenant_id, d.tenant_id) AS tenant_id,
                    COALESCE(t.size, d.size) AS size, COALESCE(t.refs, 0) > 0 AS was,
                    COALESCE(t.refs, 0) + COALESCE(d.net, 0) > 0 AS now
                FROM (SELECT t.* FROM blob_tenants t
                        WHERE (t.tier, t.hash) IN (SELECT d.tier, d.hash FROM d)) t
                FULL JOIN d ON d.tier = t.tier AND d.hash = t.hash
                    AND d.tenant_id = t.tenant_id
        ), k AS (
            SELECT m.tier, m.hash, count(*) FILTER (WHERE m.was) AS n_was,
                    count(*) FILTER (WHERE m.now) AS n_now,
                    min(m.tenant_id COLLATE "C") FILTER (WHERE m.was) AS min_was,
                    min(m.tenant_id COLLATE "C") FILTER (WHERE m.now) AS min_now
                FROM m GROUP BY m.tier, m.hash HAVING bool_or(m.was <> m.now)
        ), shares AS (
            INSERT INTO tenant_physical AS p (tenant_id, tier, shard, bytes)
            SELECT m.tenant_id, m.tier, pg_backend_pid() % 16, sum(
                    CASE WHEN m.now THEN m.size / NULLIF(k.n_now, 0)
                        + CASE WHEN m.tenant_id = k.min_now
                            THEN m.size % NULLIF(k.n_now, 0) ELSE 0 END
                    ELSE 0 END
                    - CASE WHEN m.was THEN m.size / NULLIF(k.n_was, 0)
                        + CASE WHEN m.tenant_id = k.min_was
                            THEN m.size % NULLIF(k.n_was, 0) ELSE 0 END
                    ELSE 0 END)
                FROM m JOIN k ON k.tier = m.tier AND k.hash = m.hash
                GROUP BY m.tenant_id, m.tier ORDER BY m.tenant_id, m.tier
            ON CONFLICT (tenant_id, tier, shard) DO UPDATE SET bytes = p.bytes + excluded.bytes
        ), up AS (
            INSERT INTO blob_tenants AS t (tier, hash, tenant_id, size, refs)
            SELECT d.tier, d.hash, d.tenant_id, d.size, d.net FROM d WHERE d.net > 0
                ORDER BY d.tier, d.hash, d.tenant_id
            ON CONFLICT (tier, hash, tenant_id) DO UPDATE SET refs = t.refs + excluded.refs
        ), down AS (
            UPDATE blob_tenants t SET refs = t.refs + d.net FROM d
                WHERE d.net < 0 AND t.tier = d.tier AND t.hash = d.hash
                    AND t.tenant_id = d.tenant_id AND t.refs + d.net > 0
        )
        DELETE FROM blob_tenants t USING d
            WHERE d.net < 0 AND t.tier = d.tier AND t.hash = d.hash
                AND t.tenant_id = d.tenant_id AND t.refs + d.net <= 0;
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
