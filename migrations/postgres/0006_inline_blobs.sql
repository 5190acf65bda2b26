-- Small bodies live in their blob row instead of a file (see ARCHITECTURE.md, "Inline
-- blobs"): a blob row has its bytes in `data` or in its file under the tier (or both).
ALTER TABLE blobs ADD COLUMN data BYTEA;
