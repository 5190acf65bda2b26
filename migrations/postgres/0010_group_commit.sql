-- Group commit: PUTs of inline bodies and DELETEs that queue up together are one call, so one
-- round trip, one transaction and one WAL flush, instead of one of each per request. Each item
-- runs as its single-item function does, in order: the PUTs, then the DELETEs. Returns one
-- outcome per item, in that order (js_commit_put's, then js_delete_key's). An item that raises
-- aborts the call; the caller then runs every item alone.
CREATE FUNCTION js_commit_many(
    p_id TEXT[], p_bucket_id TEXT[], p_key TEXT[], p_size BIGINT[], p_etag TEXT[],
    p_content_type TEXT[], p_content_encoding TEXT[], p_content_disposition TEXT[],
    p_content_language TEXT[], p_cache_control TEXT[], p_expires TEXT[], p_user_meta TEXT[],
    p_storage_class TEXT[], p_tier TEXT[], p_created_at BIGINT[], p_parts_count INTEGER[],
    p_checksum_algo TEXT[], p_checksum_value TEXT[], p_checksum_type TEXT[], p_tags TEXT[],
    p_cond INTEGER[], p_cond_etag TEXT[],
    p_blob_tier TEXT[], p_blob_hash TEXT[], p_blob_size BIGINT[], p_blob_data BYTEA[],
    d_tenant_id TEXT[], d_bucket TEXT[], d_key TEXT[], p_now BIGINT)
RETURNS TEXT[] LANGUAGE plpgsql AS $$
DECLARE
    v_out TEXT[] := '{}';
BEGIN
    FOR i IN 1 .. COALESCE(array_length(p_id, 1), 0) LOOP
        v_out := v_out || js_commit_put(p_id[i], p_bucket_id[i], p_key[i], p_size[i], p_etag[i],
            p_content_type[i], p_content_encoding[i], p_content_disposition[i],
            p_content_language[i], p_cache_control[i], p_expires[i], p_user_meta[i],
            p_storage_class[i], p_tier[i], p_created_at[i], p_parts_count[i],
            p_checksum_algo[i], p_checksum_value[i], p_checksum_type[i], p_tags[i],
            p_cond[i], p_cond_etag[i],
            p_blob_tier[i], p_blob_hash[i], p_blob_size[i], p_blob_data[i], p_now);
    END LOOP;
    FOR i IN 1 .. COALESCE(array_length(d_key, 1), 0) LOOP
        v_out := v_out || js_delete_key(d_tenant_id[i], d_bucket[i], d_key[i], p_now);
    END LOOP;
    RETURN v_out;
END
$$;
