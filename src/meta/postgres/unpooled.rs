//! PostgreSQL connections for the hot statements (the batched lookups, the group commits,
//! listing pages), kept outside sqlx's pool.
//!
//! Why: sqlx's pool pings every connection returned to it (a Sync and its ReadyForQuery: a
//! round trip and a wake-up of the backend after every query, as costly to the backend as a
//! small statement). A statement here runs on a connection taken from `Unpooled` and put back
//! as it is. Only single statements outside a transaction run here, so a connection put back
//! never holds a transaction; one whose statement was cancelled half-way, or failed other than
//! with a database error, is closed rather than put back.

use crate::meta::{MetaError, MetaResult};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Connections held at most (besides the pool's).
const UNPOOLED_CONNECTIONS: usize = 8;
/// A statement waits at most this long for a connection (then 503, as with the pool).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection idle this long is pinged before it is used again (the server may have
/// restarted meanwhile; the pool pings before every use).
const PING_IDLE: Duration = Duration::from_secs(5);
/// A connection this old is closed rather than put back (as the pool's are, sqlx's default):
/// a backend's cached plans and memory do not live for ever.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

struct Idle {
    conn: PgConnection,
    opened: Instant,
    used: Instant,
}

pub(super) struct Unpooled {
    opts: PgConnectOptions,
    /// Idle connections with when they were opened and when they were last used.
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
}

/// A connection in use. Put back by `done`; dropped without it (a cancelled statement), it is
/// closed.
pub(super) struct UnpooledConn<'a> {
    owner: &'a Unpooled,
    conn: Option<PgConnection>,
    opened: Instant,
    _permit: SemaphorePermit<'a>,
}

impl Unpooled {
    pub fn new(opts: PgConnectOptions) -> Unpooled {
        Unpooled {
            opts,
            idle: Mutex::new(Vec::with_capacity(UNPOOLED_CONNECTIONS)),
            permits: Semaphore::new(UNPOOLED_CONNECTIONS),
        }
    }

    pub async fn get(&self) -> Result<UnpooledConn<'_>, sqlx::Error> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        let (conn, opened) = match idle {
            Some(mut i) if i.used.elapsed() >= PING_IDLE => {
                // Bounded: a connection to a vanished host can wait for an answer for ever.
                match tokio::time::timeout(ACQUIRE_TIMEOUT, i.conn.ping()).await {
                    Ok(Ok(())) => (i.conn, i.opened),
                    _ => {
                        tracing::info!("idle PostgreSQL connection did not answer; reconnecting");
                        (self.connect().await?, Instant::now())
                    }
                }
            }
            Some(i) => (i.conn, i.opened),
            None => (self.connect().await?, Instant::now()),
        };
        Ok(UnpooledConn {
            owner: self,
            conn: Some(conn),
            opened,
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<PgConnection, sqlx::Error> {
        tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&self.opts))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }
}

impl UnpooledConn<'_> {
    pub fn conn(&mut self) -> &mut PgConnection {
        // Present from `get` until `done` consumes the handle.
        self.conn.as_mut().expect("UnpooledConn used after done")
    }

    /// Puts the connection back, unless `outcome` says it may be broken. Then the idle ones,
    /// to the same server, are likely broken too (it restarted, or the network failed): they
    /// are closed, so that each does not fail one more request once the server is back.
    pub fn done<T>(mut self, outcome: &MetaResult<T>) {
        // A database error came with ReadyForQuery: the connection is in sync; so did an error
        // of ours decoding what it answered.
        let reusable = !matches!(outcome,
            Err(MetaError::Db(e)) if !matches!(e, sqlx::Error::Database(_)));
        let Ok(mut idle) = self.owner.idle.lock() else {
            return;
        };
        match self.conn.take() {
            Some(conn) if reusable => {
                if self.opened.elapsed() < MAX_LIFETIME {
                    idle.push(Idle {
                        conn,
                        opened: self.opened,
                        used: Instant::now(),
                    });
                }
            }
            _ => idle.clear(),
        }
    }
}
