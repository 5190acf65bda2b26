-- The parts of a completed multipart object, for GetObjectAttributes' ObjectParts and for a GET
-- of one part: `seq` is the part's position (1-based, what `?partNumber=` reads), `part_number`
-- the number it was uploaded as; `checksum` its base64 checksum in the upload's algorithm.
CREATE TABLE object_parts (
    object_id   TEXT NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    part_number INTEGER NOT NULL,
    size        BIGINT NOT NULL,
    checksum    TEXT,
    PRIMARY KEY (object_id, seq)
);
