-- Inline bodies move out of their blob rows into `blob_data`. A blob row changes at every
-- reference count change (each PUT, overwrite, copy and DELETE of an object with that body),
-- and with a 4 KiB body inside it each such change rewrote the body too: an UPDATE reads every
-- column of the row, and a record that changes size (`zero_since` set) is rewritten whole, its
-- overflow pages into the WAL. `blob_data` is written when an inline body is first stored and
-- deleted with its blob row (the foreign key cascades); nothing else writes it.
CREATE TABLE blob_data (
    tier TEXT NOT NULL,
    hash TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tier, hash),
    FOREIGN KEY (tier, hash) REFERENCES blobs (tier, hash) ON DELETE CASCADE
);
INSERT INTO blob_data (tier, hash, data) SELECT tier, hash, data FROM blobs WHERE data IS NOT NULL;
ALTER TABLE blobs DROP COLUMN data;
