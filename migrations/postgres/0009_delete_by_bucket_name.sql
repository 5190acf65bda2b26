-- DeleteObject in one round trip: the bucket is found by (tenant, name) inside the call instead
-- of by a query before it. Returns 'no_such_bucket', 'deleted' (there was a current version) or
-- 'absent'. A bucket deleted between the two steps leaves nothing to demote: DeleteBucket
-- removes a bucket only when it has no current version.
CREATE FUNCTION js_delete_key(p_tenant_id TEXT, p_bucket TEXT, p_key TEXT, p_now BIGINT)
RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    v_bucket_id TEXT;
BEGIN
    SELECT id INTO v_bucket_id FROM buckets WHERE tenant_id = p_tenant_id AND name = p_bucket;
    IF v_bucket_id IS NULL THEN
        RETURN 'no_such_bucket';
    END IF;
    IF js_delete_latest(v_bucket_id, p_key, p_now) THEN
        RETURN 'deleted';
    END IF;
    RETURN 'absent';
END
$$;
