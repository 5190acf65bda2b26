//! JustStorage: an S3-compatible object gateway.
//!
//! Layers (see ARCHITECTURE.md): `server` (HTTP) → `s3` (wire protocol, the only user of s3s)
//! → `engine` (object semantics) → `meta` (SQL) + `blobs` (content-addressed files).
//! `workers` run background maintenance through the engine.

pub mod admin;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod engine;
pub mod fault;
pub mod meta;
pub mod metering;
pub mod metrics;
pub mod s3;
pub mod server;
pub mod workers;

/// Microseconds since the Unix epoch: the one time unit stored in the database.
pub fn now_micros() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
