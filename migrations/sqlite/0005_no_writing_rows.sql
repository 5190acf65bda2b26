-- An upload in progress is its temp file alone (named by the new version's id); the commit
-- inserts the version. WRITING rows left by an earlier release's crashed uploads go here; the
-- orphan sweep removes their temp files by age.
DELETE FROM objects WHERE status = 'WRITING';
