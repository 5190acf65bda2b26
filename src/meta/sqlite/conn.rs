//! SQLite connections (rusqlite) and the write transaction.
//!
//! One read-write connection (`Writer`) runs every write of this process, on tokio's blocking
//! pool, one transaction at a time: a transaction holds the write token from `BEGIN IMMEDIATE`
//! (SQLite's write lock, also against another process such as `just-storage gc`) to its end,
//! across the awaits between its statements (a blob file's placement, the group committer's
//! planning). Reads use read-only connections of their own (`readers`), which in WAL mode never
//! wait for the writer, nor it for them.

use crate::meta::rows::{NamedRow, RowSource};
use crate::meta::{MetaError, MetaResult};
use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, Statement};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;

/// How long the writer waits for SQLite's write lock while another process holds it (`admin`,
/// `gc` beside `serve`).
const WRITER_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Prepared statements the writer keeps: the group commit's reads and writes (`rule`) and the
/// other transactions' statements.
const WRITER_STATEMENTS: usize = 64;

/// Opens the database file at `path` for writing, creating it if needed.
pub(super) fn open_writer(path: &Path) -> MetaResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, flags)?;
    c.busy_timeout(WRITER_BUSY_TIMEOUT)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL: commits do not fsync; `WalSync::barrier` syncs the WAL for a group of them before
    // any of them is acknowledged, as durable as FULL.
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "foreign_keys", true)?;
    c.set_prepared_statement_cache_capacity(WRITER_STATEMENTS);
    Ok(c)
}

/// Binds `args` to a statement written with `$1…$n` placeholders (as `statements` are), by
/// name: SQLite numbers named parameters in order of first appearance, not by their digits.
pub(in crate::meta) fn bind(stmt: &mut Statement<'_>, args: &[&dyn ToSql]) -> MetaResult<()> {
    for i in 1..=stmt.parameter_count() {
        let n = stmt
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok());
        let Some(v) = n.and_then(|n| args.get(n.wrapping_sub(1))) else {
            return Err(MetaError::Invariant(format!(
                "parameter {i} of {:?} has no value",
                stmt.expanded_sql()
            )));
        };
        stmt.raw_bind_parameter(i, v)?;
    }
    Ok(())
}

/// The rows of `sql` (cached), each decoded by `decode`.
pub(super) fn rows<T>(
    c: &Connection,
    sql: &str,
    args: &[&dyn ToSql],
    decode: impl Fn(&NamedRow<'_, '_>) -> MetaResult<T>,
) -> MetaResult<Vec<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = crate::meta::rows::Named::bound(&mut stmt, args)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next_row()? {
        out.push(decode(&r)?);
    }
    Ok(out)
}

/// The first row of `sql`, decoded.
pub(super) fn first<T>(
    c: &Connection,
    sql: &str,
    args: &[&dyn ToSql],
    decode: impl Fn(&NamedRow<'_, '_>) -> MetaResult<T>,
) -> MetaResult<Option<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = crate::meta::rows::Named::bound(&mut stmt, args)?;
    rows.next_row()?.map(|r| decode(&r)).transpose()
}

/// The first column of the first row of `sql`.
pub(super) fn scalar<T: crate::meta::rows::Col>(
    c: &Connection,
    sql: &str,
    args: &[&dyn ToSql],
) -> MetaResult<Option<T>> {
    first(c, sql, args, |r| r.get_index(0))
}

/// Runs `sql`; returns the number of rows it changed.
pub(super) fn execute(c: &Connection, sql: &str, args: &[&dyn ToSql]) -> MetaResult<usize> {
    let mut stmt = c.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    Ok(stmt.raw_execute()?)
}

/// The one read-write connection of this process.
pub(super) struct Writer {
    conn: Mutex<Connection>,
    /// Held by the open transaction, for its whole length.
    token: Arc<tokio::sync::Mutex<()>>,
}

impl Writer {
    pub fn new(conn: Connection) -> Arc<Writer> {
        Arc::new(Writer {
            conn: Mutex::new(conn),
            token: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE`), once the one before it has ended.
    pub async fn begin(self: &Arc<Self>) -> MetaResult<Tx> {
        let token = self.token.clone().lock_owned().await;
        let mut tx = Tx {
            writer: self.clone(),
            token: Some(token),
        };
        tx.run(|c| {
            // A transaction left open (its task was cancelled at shutdown) ends first.
            rollback(c);
            Ok(c.execute_batch("BEGIN IMMEDIATE")?)
        })
        .await?;
        Ok(tx)
    }

    /// `f` in a transaction of its own, committed if it succeeds (not yet durable: see `WalSync`).
    pub async fn transaction<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> MetaResult<R> + Send + 'static,
    ) -> MetaResult<R> {
        let mut tx = self.begin().await?;
        let r = tx.run(f).await?;
        tx.commit().await?;
        Ok(r)
    }

    /// `f` on the connection, on tokio's blocking pool.
    async fn blocking<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> MetaResult<R> + Send + 'static,
    ) -> MetaResult<R> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me.lock()))
            .await
            .map_err(|e| MetaError::Invariant(format!("a write transaction panicked: {e}")))?
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic cannot leave the connection inside a statement (rusqlite resets statements on
        // drop); an open transaction is rolled back by the next `begin`.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An open write transaction. Dropped without `commit`, it is rolled back.
pub(super) struct Tx {
    writer: Arc<Writer>,
    /// `None` once committed or rolled back.
    token: Option<OwnedMutexGuard<()>>,
}

impl Tx {
    /// `f` on the transaction's connection, on the blocking pool.
    pub async fn run<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Connection) -> MetaResult<R> + Send + 'static,
    ) -> MetaResult<R> {
        assert!(
            self.token.is_some(),
            "a statement after the transaction ended"
        );
        self.writer.blocking(f).await
    }

    pub async fn commit(mut self) -> MetaResult<()> {
        let done = self
            .run(|c| {
                let r = c.execute_batch("COMMIT");
                if r.is_err() {
                    rollback(c);
                }
                Ok(r?)
            })
            .await;
        self.token = None;
        done
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let writer = self.writer.clone();
        let end = move || {
            rollback(&writer.lock());
            drop(token);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(end)),
            Err(_) => end(),
        }
    }
}

/// Ends the open transaction, if any, without its writes. When even the ROLLBACK fails, SQLite
/// has rolled the transaction back already (the only failures it reports for it).
pub(super) fn rollback(c: &Connection) {
    if !c.is_autocommit() {
        let _ = c.execute_batch("ROLLBACK");
    }
}
