-- Object tags (JSON object of key → value), per version and per pending upload.
ALTER TABLE objects ADD COLUMN tags TEXT;
ALTER TABLE multipart_uploads ADD COLUMN tags TEXT;
