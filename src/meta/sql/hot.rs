//! PostgreSQL connections for the hot statements (the batched lookups, the one-call PUT and
//! DELETE commits), kept outside sqlx's pool.
//!
//! Why: sqlx's pool pings every connection returned to it (a Sync and its ReadyForQuery: a
//! round trip and a wake-up of the backend after every query, as costly to the backend as a
//! small statement). A statement here runs on a connection taken from `Hot` and put back
//! as it is. Only single statements outside a transaction run here, so a connection put back
//! never holds a transaction; one whose statement was cancelled half-way, or failed other than
//! with a database error, is closed rather than put back.

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Connections held at most (besides the pool's).
pub(super) const HOT_CONNECTIONS: usize = 8;
/// A statement waits at most this long for a connection (then 503, as with the pool).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection idle this long is pinged before it is used again (the server may have
/// restarted meanwhile; the pool pings before every use).
const PING_IDLE: Duration = Duration::from_secs(5);

pub(super) struct Hot {
    opts: PgConnectOptions,
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    permits: Semaphore,
}

/// A connection in use. Put back by `done`; dropped without it (a cancelled statement), it is
/// closed.
pub(super) struct HotConn<'a> {
    hot: &'a Hot,
    conn: Option<PgConnection>,
    _permit: SemaphorePermit<'a>,
}

impl Hot {
    pub fn new(opts: PgConnectOptions) -> Hot {
        Hot {
            opts,
            idle: Mutex::new(Vec::with_capacity(HOT_CONNECTIONS)),
            permits: Semaphore::new(HOT_CONNECTIONS),
        }
    }

    pub async fn get(&self) -> Result<HotConn<'_>, sqlx::Error> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        let conn = match idle {
            Some((mut conn, since)) if since.elapsed() >= PING_IDLE => match conn.ping().await {
                Ok(()) => conn,
                Err(e) => {
                    tracing::info!(error = %e, "idle PostgreSQL connection is gone; reconnecting");
                    self.connect().await?
                }
            },
            Some((conn, _)) => conn,
            None => self.connect().await?,
        };
        Ok(HotConn {
            hot: self,
            conn: Some(conn),
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<PgConnection, sqlx::Error> {
        tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&self.opts))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }
}

impl HotConn<'_> {
    pub fn conn(&mut self) -> &mut PgConnection {
        // Present from `get` until `done` consumes the handle.
        self.conn.as_mut().expect("HotConn used after done")
    }

    /// Puts the connection back, unless `outcome` says it may be broken. Then the idle ones,
    /// to the same server, are likely broken too (it restarted, or the network failed): they
    /// are closed, so that each does not fail one more request once the server is back.
    pub fn done<T>(mut self, outcome: &Result<T, sqlx::Error>) {
        // A database error came with ReadyForQuery: the connection is in sync.
        let reusable = matches!(outcome, Ok(_) | Err(sqlx::Error::Database(_)));
        let Ok(mut idle) = self.hot.idle.lock() else {
            return;
        };
        match self.conn.take() {
            Some(conn) if reusable => idle.push((conn, Instant::now())),
            _ => idle.clear(),
        }
    }
}
