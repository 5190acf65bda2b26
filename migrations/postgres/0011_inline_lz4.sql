-- Inline bodies (blobs.data, up to 16 KiB, STORAGE MAIN since 0007) are compressed with lz4
-- instead of pglz: PostgreSQL tries to compress every value over ~2 KiB it stores, and pglz
-- trying (and, for incompressible bytes, failing) was 3% of the backend's time in a 4 KiB PUT
-- benchmark. Applies to values written from now on; a server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE blobs ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available in this server: blobs.data keeps pglz';
END
$$;
