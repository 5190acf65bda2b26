-- The commit functions' statements are planned once per connection and the plans kept
-- (PL/pgSQL caches them, and so do the foreign-key checks their INSERTs fire). Made from a
-- nearly empty table's statistics (a fresh install's first ANALYZE), such a plan scans
-- `objects` instead of probing its index, and keeps doing so until the next ANALYZE: never,
-- where autovacuum is off. Every statement of these functions has an index to probe, so
-- sequential scans are priced out of their plans. The hot connections that call most of them
-- run with the same setting; this covers the pool's calls (a PUT whose body is a file).
ALTER FUNCTION js_commit_put SET enable_seqscan = off;
ALTER FUNCTION js_commit_many SET enable_seqscan = off;
ALTER FUNCTION js_delete_key SET enable_seqscan = off;
ALTER FUNCTION js_delete_latest SET enable_seqscan = off;
