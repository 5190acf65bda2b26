-- x-amz-checksum-*: the object's checksum (base64; composite ones end in -N), its algorithm and
-- type (FULL_OBJECT | COMPOSITE); per-part checksums of multipart uploads.
ALTER TABLE objects ADD COLUMN checksum_algo TEXT;
ALTER TABLE objects ADD COLUMN checksum_value TEXT;
ALTER TABLE objects ADD COLUMN checksum_type TEXT;
ALTER TABLE multipart_uploads ADD COLUMN checksum_algo TEXT;
ALTER TABLE multipart_uploads ADD COLUMN checksum_type TEXT;
ALTER TABLE upload_parts ADD COLUMN checksum_value TEXT;
