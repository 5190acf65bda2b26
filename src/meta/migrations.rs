//! The schema: one migration per database to start from (`migrations/<db>/0001_init.sql`, the
//! same numbering for both), and PostgreSQL's functions (`migrations/postgres/functions.sql`),
//! applied at every start. Nothing was released before 0001; from the first release on,
//! migrations only add.
//!
//! PostgreSQL's migrations run through sqlx's `Migrator` (its `_sqlx_migrations` table);
//! SQLite's by `PRAGMA user_version`, on the one driver SQLite uses (rusqlite).

use super::{MetaError, MetaResult};
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// `(version, description, text)` of each migration of one database, in order.
type Files = &'static [(i64, &'static str, &'static str)];

macro_rules! embed {
    ($dir:literal: $($version:literal $name:literal),+ $(,)?) => {
        &[$((
            $version,
            $name,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $dir, "/", $name)),
        )),+]
    };
}

const SQLITE: Files = embed!("sqlite":
    1 "0001_init.sql", 2 "0002_versioning.sql", 3 "0003_usage.sql", 4 "0004_leases.sql");
const POSTGRES: Files = embed!("postgres":
    1 "0001_init.sql", 2 "0002_versioning.sql", 3 "0003_usage.sql", 4 "0004_leases.sql");

/// Every PostgreSQL function, `CREATE OR REPLACE`d.
const POSTGRES_FUNCTIONS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/migrations/postgres/functions.sql"
));

/// Brings a SQLite database to the latest schema, in one transaction.
pub(super) fn sqlite(c: &mut rusqlite::Connection) -> MetaResult<()> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let at: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let sqlx_made: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_sqlx_migrations')",
        [],
        |r| r.get(0),
    )?;
    if sqlx_made {
        return Err(MetaError::Invariant(
            "this database was made by a development build before the first release; \
             remove it (and its blob files) to start afresh"
                .into(),
        ));
    }
    for &(version, _, sql) in SQLITE.iter().filter(|m| m.0 > at) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
    }
    tx.commit()?;
    Ok(())
}

/// Brings a PostgreSQL database to the latest schema and (re)defines its functions. Several
/// gateways may start at once: sqlx's migrator locks the database, and the functions are
/// replaced under an advisory lock of their own, in one transaction.
pub(super) async fn postgres(pool: &sqlx::PgPool) -> MetaResult<()> {
    let migrations = POSTGRES
        .iter()
        .map(|&(version, name, sql)| {
            let description = name
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == '_')
                .trim_end_matches(".sql")
                .replace('_', " ");
            Migration::new(
                version,
                description.into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations).run(pool).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('just-storage functions', 0))")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(POSTGRES_FUNCTIONS).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
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
            .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        names.sort();
        names
    }

    /// Every numbered file is embedded, with its number, and both databases have the same.
    #[test]
    fn every_migration_is_embedded_with_its_number() {
        for (dir, files) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let embedded: Vec<String> = files.iter().map(|m| m.1.to_owned()).collect();
            assert_eq!(embedded, on_disk(dir), "migrations/{dir}");
            for &(version, name, _) in files {
                assert_eq!(name[..4].parse::<i64>().ok(), Some(version), "{name}");
            }
        }
        let numbers = |f: Files| f.iter().map(|m| m.0).collect::<Vec<_>>();
        assert_eq!(numbers(SQLITE), numbers(POSTGRES));
    }

    /// Opening twice migrates once; a database made by sqlx's migrator is refused, not mixed.
    #[test]
    fn sqlite_migrates_once_and_refuses_a_pre_release_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = rusqlite::Connection::open(dir.path().join("a.db")).expect("open");
        sqlite(&mut c).expect("migrate");
        sqlite(&mut c).expect("again: nothing to do");
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, SQLITE.last().expect("a migration").0);
        let mut old = rusqlite::Connection::open(dir.path().join("b.db")).expect("open");
        old.execute_batch("CREATE TABLE _sqlx_migrations (version BIGINT)")
            .expect("sqlx's table");
        assert!(matches!(sqlite(&mut old), Err(MetaError::Invariant(_))));
    }
}
