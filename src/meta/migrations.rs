//! The schema migrations (`migrations/<db>/NNNN_name.sql`), embedded in the binary.
//!
//! Built here rather than by `sqlx::migrate!`: the macro needs sqlx's `macros` feature, which
//! links a second copy of sqlx's drivers and SQLite's C library into a proc-macro (minutes of
//! every cold build). The result is the same `Migrator`: version and description parsed from the
//! file name and the checksum computed from the text exactly as sqlx's own resolver does, so
//! databases migrated by earlier releases are recognised. The test below keeps this list equal to
//! the directories.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// `(file name, text)` of each migration of one database.
type Files = &'static [(&'static str, &'static str)];

macro_rules! embed {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        &[$((
            $file,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $dir, "/", $file)),
        )),+]
    };
}

pub(super) const SQLITE: Files = embed!("sqlite":
    "0001_init.sql",
    "0002_multipart.sql",
    "0003_checksums.sql",
    "0004_tags.sql",
    "0005_no_writing_rows.sql",
    "0006_inline_blobs.sql",
    "0008_drop_objects_by_key.sql",
    "0013_listing_covering_index.sql",
    "0014_blob_data.sql",
    "0016_acl.sql",
    "0017_object_parts.sql",
);

pub(super) const POSTGRES: Files = embed!("postgres":
    "0001_init.sql",
    "0002_multipart.sql",
    "0003_checksums.sql",
    "0004_tags.sql",
    "0005_no_writing_rows.sql",
    "0006_inline_blobs.sql",
    "0007_commit_functions.sql",
    "0008_drop_objects_by_key.sql",
    "0009_delete_by_bucket_name.sql",
    "0010_group_commit.sql",
    "0011_inline_lz4.sql",
    "0012_set_based_group_commit.sql",
    "0014_blob_data.sql",
    "0015_commit_functions_probe_indexes.sql",
    "0016_acl.sql",
    "0017_object_parts.sql",
    "0018_if_none_match_etag.sql",
);

/// The migrator for one database's files.
pub(super) fn migrator(files: Files) -> Migrator {
    let migrations = files
        .iter()
        .map(|&(name, sql)| {
            let (version, description) = parse_name(name);
            // sqlx's resolver: a file starting with this comment runs outside a transaction.
            let no_tx = sql.starts_with("-- no-transaction");
            Migration::new(
                version,
                description.into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                no_tx,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// `0004_tags.sql` → `(4, "tags")`, as sqlx's resolver names it (`_` → space). The names are
/// this module's own constants, checked by the test below, so a bad one is a build defect.
fn parse_name(name: &str) -> (i64, String) {
    let (version, rest) = name
        .split_once('_')
        .expect("migration file name is NNNN_name.sql");
    let version = version.parse().expect("migration version is an integer");
    let description = rest
        .strip_suffix(".sql")
        .expect("migration file ends in .sql")
        .replace('_', " ");
    (version, description)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_disk(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        let mut names: Vec<String> = std::fs::read_dir(path)
            .expect("migrations directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_migration_file_is_embedded() {
        for (dir, files) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let embedded: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
            assert_eq!(embedded, on_disk(dir), "migrations/{dir}");
        }
    }

    #[test]
    fn names_and_checksums_are_sqlx_s() {
        let m = migrator(SQLITE);
        let first = m.iter().next().expect("a migration");
        assert_eq!(first.version, 1);
        assert_eq!(first.description, "init");
        // Versions are shared by the two databases, so either may skip one (SQLite has no 7).
        let versions: Vec<i64> = m.iter().map(|m| m.version).collect();
        let numbered: Vec<i64> = SQLITE
            .iter()
            .map(|(n, _)| n[..4].parse().expect("NNNN_ prefix"))
            .collect();
        assert_eq!(versions, numbered);
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        let tags = m.iter().find(|m| m.version == 4).expect("0004");
        assert_eq!(tags.description, "tags");
        // sqlx's checksum: SHA-384 of the file's text.
        use sha2::Digest;
        let want = sha2::Sha384::digest(SQLITE[3].1);
        assert_eq!(tags.checksum.as_ref(), want.as_slice());
        let two = migrator(POSTGRES);
        assert_eq!(
            two.iter().nth(4).map(|m| m.description.as_ref()),
            Some("no writing rows")
        );
    }

    /// 0014 moves the bytes of inline blobs stored before it into `blob_data`, and keeps every
    /// blob row.
    #[tokio::test]
    async fn inline_bytes_move_to_blob_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
        let at = SQLITE
            .iter()
            .position(|(n, _)| n.starts_with("0014"))
            .expect("0014");
        migrator(&SQLITE[..at])
            .run(&pool)
            .await
            .expect("up to 0013");
        sqlx::query(
            "INSERT INTO blobs (tier, hash, size, ref_count, created_at, data) \
             VALUES ('hot', 'ab', 3, 1, 1, x'616263'), ('hot', 'cd', 9, 0, 1, NULL)",
        )
        .execute(&pool)
        .await
        .expect("blobs before 0014");
        migrator(SQLITE).run(&pool).await.expect("0014 and later");
        let moved: Vec<(String, String, Vec<u8>)> =
            sqlx::query_as("SELECT tier, hash, data FROM blob_data")
                .fetch_all(&pool)
                .await
                .expect("blob_data");
        assert_eq!(moved, vec![("hot".into(), "ab".into(), b"abc".to_vec())]);
        let hashes: Vec<String> = sqlx::query_scalar("SELECT hash FROM blobs ORDER BY hash")
            .fetch_all(&pool)
            .await
            .expect("blobs");
        assert_eq!(hashes, ["ab", "cd"]);
        let gone = sqlx::query("SELECT data FROM blobs").fetch_all(&pool).await;
        assert!(gone.is_err(), "blobs.data is dropped");
    }
}
