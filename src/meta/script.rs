//! SQLite write transactions in three hand-offs (used by the group committer, `sql/batch.rs`).
//!
//! sqlx runs every SQLite statement on the connection's worker thread: each statement is a
//! round trip of thread wake-ups, and `begin`/`commit` add an acknowledgement each. A PUT's
//! commit was seven of them on the one writer connection, so under load the writer spent its
//! time waiting to be scheduled rather than in SQLite. A `Script` is several statements sent as
//! one query (sqlx steps through them in order, binding `$N` from one argument list), so a
//! commit is: `BEGIN IMMEDIATE` + its reads, then its writes, then `COMMIT` — the Rust-side
//! checks (conditions, reference-count invariants) run between them, as before.
//!
//! `BEGIN IMMEDIATE` takes the database's write lock up front, across processes too, so what a
//! transaction reads cannot be changed by another writer before it commits (a deferred `BEGIN`
//! would only hold a read snapshot until its first write).

use super::{MetaError, MetaResult};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::{Arguments, Encode, Type};

/// Statements with their arguments, sent to the worker thread as one query.
#[derive(Default)]
pub(super) struct Script {
    sql: String,
    args: SqliteArguments,
    /// An argument that could not be encoded (reported when the script runs).
    error: Option<String>,
}

impl Script {
    /// Appends a statement written with parameters `$1…$k`; bind its `k` values next, in order
    /// (they are renumbered after the arguments already bound).
    pub(super) fn stmt(mut self, sql: &str) -> Script {
        renumber(sql, self.args.len(), &mut self.sql);
        self.sql.push_str(";\n");
        self
    }

    pub(super) fn bind<'q, T: Encode<'q, Sqlite> + Type<Sqlite>>(mut self, v: T) -> Script {
        if let Err(e) = self.args.add(v) {
            self.error.get_or_insert(e.to_string());
        }
        self
    }
}

/// Copies `sql` to `out` with every `$n` replaced by `$(base + n)`. Our statements have no `$`
/// anywhere else (no string literals containing one).
fn renumber(sql: &str, base: usize, out: &mut String) {
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(base + n).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
}

/// A write transaction on a pooled connection. Dropped without `commit` (an error, or the
/// request went away mid-way), it is rolled back before the connection goes back to the pool.
pub(super) struct Tx {
    conn: Option<PoolConnection<Sqlite>>,
}

impl Tx {
    /// `BEGIN IMMEDIATE` and `first` in one hand-off; returns `first`'s rows.
    pub(super) async fn begin(
        pool: &sqlx::SqlitePool,
        first: Script,
    ) -> MetaResult<(Tx, Vec<SqliteRow>)> {
        let mut tx = Tx {
            conn: Some(pool.acquire().await?),
        };
        let script = Script {
            sql: format!("BEGIN IMMEDIATE;\n{}", first.sql),
            ..first
        };
        // A failed BEGIN leaves nothing to roll back; the guard's ROLLBACK is then a no-op.
        let rows = tx.run(script).await?;
        Ok((tx, rows))
    }

    /// Runs a script inside the transaction; returns the rows of all its statements, in order.
    pub(super) async fn run(&mut self, s: Script) -> MetaResult<Vec<SqliteRow>> {
        if let Some(e) = s.error {
            return Err(MetaError::Invariant(format!("unencodable argument: {e}")));
        }
        let conn = self.conn.as_mut().ok_or_else(finished)?;
        Ok(sqlx::query_with(sqlx::AssertSqlSafe(s.sql), s.args)
            .fetch_all(&mut **conn)
            .await?)
    }

    pub(super) async fn commit(mut self) -> MetaResult<()> {
        let mut conn = self.conn.take().ok_or_else(finished)?;
        match sqlx::query("COMMIT").execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.conn = Some(conn);
                Err(e.into())
            }
        }
    }
}

fn finished() -> MetaError {
    MetaError::Invariant("transaction used after commit".into())
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // The worker runs commands in order: this ROLLBACK follows whatever was in flight,
        // and the connection returns to the pool only after it.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            });
        } else {
            // No runtime (shutdown): close the connection; SQLite rolls back on close.
            drop(conn.detach());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Script, Tx, renumber};

    /// A transaction dropped half-way (an error, or a cancelled request) leaves no trace and
    /// the connection usable: the next transaction begins and sees the old state.
    #[tokio::test]
    async fn dropped_transaction_rolls_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .expect("open");
        sqlx::query("CREATE TABLE t (v INTEGER)")
            .execute(&pool)
            .await
            .expect("create");
        let (mut tx, _) = Tx::begin(&pool, Script::default().stmt("SELECT 1"))
            .await
            .expect("begin");
        let w = Script::default()
            .stmt("INSERT INTO t (v) VALUES ($1)")
            .bind(1_i64)
            .stmt("INSERT INTO t (v) VALUES ($1)")
            .bind(2_i64);
        tx.run(w).await.expect("insert");
        drop(tx);
        let read = Script::default().stmt("SELECT count(*) FROM t");
        let (tx, rows) = Tx::begin(&pool, read).await.expect("begin again");
        use sqlx::Row;
        assert_eq!(rows[0].try_get::<i64, _>(0).expect("count"), 0);
        drop(tx);
        // Renumbered parameters bind the right values.
        let (mut tx, _) = Tx::begin(&pool, Script::default().stmt("SELECT 1"))
            .await
            .expect("begin");
        let w = Script::default()
            .stmt("INSERT INTO t (v) VALUES ($1)")
            .bind(7_i64)
            .stmt("INSERT INTO t (v) VALUES ($1 + $2)")
            .bind(8_i64)
            .bind(100_i64)
            .stmt("SELECT sum(v) FROM t");
        let rows = tx.run(w).await.expect("run");
        assert_eq!(rows[0].try_get::<i64, _>(0).expect("sum"), 115);
        tx.commit().await.expect("commit");
    }

    #[test]
    fn renumbers_parameters() {
        let mut out = String::new();
        renumber("UPDATE t SET a = $1 WHERE b = $2 AND c = $12", 3, &mut out);
        assert_eq!(out, "UPDATE t SET a = $4 WHERE b = $5 AND c = $15");
        let mut out = String::new();
        renumber("SELECT 1", 7, &mut out);
        assert_eq!(out, "SELECT 1");
    }
}
