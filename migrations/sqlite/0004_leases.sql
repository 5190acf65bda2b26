-- Passes that one gateway at a time should make (lifecycle, scrub) when several share the
-- database: a gateway runs one only while it holds the pass's lease (`holder` until `until`,
-- Unix seconds), which it renews each time and which lapses if it dies.
CREATE TABLE worker_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
