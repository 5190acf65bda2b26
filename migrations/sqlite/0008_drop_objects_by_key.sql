-- `objects_by_key` was written by every PUT, overwrite and DELETE and read by no query: the
-- current version is found through `objects_latest`, and DeleteBucket removes the remaining
-- (DELETING) rows through `objects_by_status`. (Version 7 is PostgreSQL's commit functions.)
DROP INDEX objects_by_key;
