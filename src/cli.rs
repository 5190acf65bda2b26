//! Command-line surface: `serve`, `admin`, `gc`, `scrub`, `fsck`. Parsing only; the work is in
//! the library.

use crate::config::ServeArgs;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "just-storage", version, about = "S3-compatible object gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as `text` for people or one JSON object per line (`json`), on stderr. `serve`
    /// writes one line per S3 request (target `access`).
    #[arg(long, value_enum, global = true, env = "JUST_STORAGE_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the S3 server (and its background workers).
    Serve(ServeArgs),
    /// Manage tenants and access keys; report usage.
    Admin {
        #[command(flatten)]
        store: ServeArgs,
        #[command(flatten)]
        out: OutputArgs,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Run the orphan sweep and the collector once, then exit.
    Gc {
        #[command(flatten)]
        store: ServeArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Re-hash blobs once (at --scrub-mbps), marking mismatches corrupted; exit 1 if any.
    Scrub {
        #[command(flatten)]
        store: ServeArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Check blob files, blob rows and reference counts against each other; exit 1 if unclean.
    Fsck {
        #[command(flatten)]
        store: ServeArgs,
        #[command(flatten)]
        out: OutputArgs,
        /// Apply the safe repairs: counts set to the references that exist, rows of vanished
        /// unreferenced blobs dropped, referenced blobs without bytes marked corrupted.
        #[arg(long)]
        repair: bool,
    },
}

/// A metering period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Period {
    Hour,
    Day,
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Lines and tables for people.
    Text,
    /// One JSON document, for programs.
    Json,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// `text` for people, `json` for programs (also after an `admin` subcommand).
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Access keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Buckets.
    Bucket {
        #[command(subcommand)]
        command: BucketCommand,
    },
    /// Requests (by S3 pricing class) and bytes received and sent, per tenant, bucket and
    /// hour or day, as gateways metered them (they add theirs every 10 s).
    Metering {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        bucket: Option<String>,
        /// From: a time (RFC 3339) or a duration back from now (`24h`, `7d`) [default: 24h].
        #[arg(long, value_parser = parse_since, default_value = "24h")]
        since: i64,
        /// To: a time (RFC 3339) [default: now].
        #[arg(long, value_parser = parse_since)]
        until: Option<i64>,
        /// Sum per `hour` or per (UTC) `day`.
        #[arg(long, value_enum, default_value_t = Period::Hour)]
        by: Period,
    },
    /// Quotas of tenants and buckets.
    Quota {
        #[command(subcommand)]
        command: QuotaCommand,
    },
    /// Bearer tokens of the admin API (`--admin-listen`) and of `/metrics`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Objects and bytes per bucket and tier; per tenant, logical bytes against the physical
    /// bytes attributed to it, and their ratio (deduplication).
    Usage {
        /// Only this tenant's buckets.
        #[arg(long)]
        tenant: Option<String>,
        /// Only buckets of this name.
        #[arg(long)]
        bucket: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create { name: String },
    /// List the tenants.
    List,
    /// A tenant with its keys and buckets.
    Show { name: String },
    /// Delete a tenant and its keys. A tenant that owns buckets is refused, unless `--force`,
    /// which first deletes every object, upload and bucket of it.
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an access key for a tenant; prints the id and the secret (shown this once).
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        read_only: bool,
        /// Refuse the key from then on: a duration (`90s`, `45m`, `12h`, `30d`) or an RFC 3339
        /// time (`2027-01-31T00:00:00Z`).
        #[arg(long, value_parser = parse_expiry)]
        expires: Option<i64>,
    },
    /// List access keys (never their secrets).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Refuse a key until it is enabled again (running servers notice within 0.1 s).
    Disable { id: String },
    /// Accept a disabled key again.
    Enable { id: String },
    /// Delete a key for good.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Creates a token; prints it this once (only its SHA-256 is kept).
    Create {
        /// What the token is for (shown by `list`).
        #[arg(long)]
        name: String,
        /// `admin`: every admin API call; `metrics`: `/metrics` with per-tenant figures only.
        #[arg(long, value_enum, default_value_t = Scope::Admin)]
        scope: Scope,
    },
    /// Lists tokens (never the tokens themselves).
    List,
    /// Revokes a token for good (by its id).
    Revoke { id: String },
}

/// An admin token's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    Admin,
    Metrics,
}

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Sets a tenant's quota, or with `--bucket` one of its buckets'. Both limits are set at
    /// once: one not given is removed. Takes effect at once, on running servers too.
    Set {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        bucket: Option<String>,
        /// Bytes of every stored version: a number with an optional unit (K, M, G, T, P:
        /// powers of 1024; `KB`…`PB`: powers of 1000).
        #[arg(long, value_parser = parse_size)]
        max_bytes: Option<i64>,
        /// Stored versions (delete markers do not count).
        #[arg(long)]
        max_objects: Option<u32>,
    },
    /// Shows a tenant's quota, or with `--bucket` one of its buckets'.
    Show {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        bucket: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// List buckets, of every tenant or of one.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `--expires`: a time in microseconds since the epoch, from a duration after now or an RFC 3339
/// time.
fn parse_expiry(s: &str) -> Result<i64, String> {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos() / 1000).map_err(|e| e.to_string());
    }
    let bad = || format!("{s:?}: a positive duration (30d, 12h, 45m, 90s) or an RFC 3339 time");
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let secs = match unit {
        's' => Some(n),
        'm' => n.checked_mul(60),
        'h' => n.checked_mul(3600),
        'd' => n.checked_mul(86_400),
        _ => None,
    };
    secs.filter(|s| *s > 0)
        .and_then(|s| s.checked_mul(1_000_000))
        .and_then(|d| crate::now_micros().checked_add(d))
        .ok_or_else(bad)
}

/// `--since`, `--until`: an RFC 3339 time, or a duration (`90s`, `45m`, `12h`, `30d`) back from
/// now; microseconds since the epoch.
fn parse_since(s: &str) -> Result<i64, String> {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos() / 1000).map_err(|e| e.to_string());
    }
    let ahead = parse_expiry(s)?;
    Ok(2 * crate::now_micros() - ahead)
}

/// `--max-bytes`: `1500`, `10G` (GiB), `10GB` (10^9), up to petabytes.
pub fn parse_size(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?}: a byte count with an optional unit (10G, 500MB, 1T)");
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: i64 = t[..digits].parse().map_err(|_| bad())?;
    let unit = t[digits..].trim().to_ascii_uppercase();
    let (base, unit) = match unit.strip_suffix("IB").or_else(|| unit.strip_suffix('B')) {
        Some(u) if !unit.ends_with("IB") && !u.is_empty() => (1000_i64, u.to_owned()),
        Some(u) => (1024, u.to_owned()),
        None => (1024, unit.clone()),
    };
    let power = match unit.as_str() {
        "" => 0,
        "K" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        "P" => 5,
        _ => return Err(bad()),
    };
    (0..power)
        .try_fold(n, |v, _| v.checked_mul(base))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_take_units() {
        let p = super::parse_size;
        assert_eq!(p("1500"), Ok(1500));
        assert_eq!(p("0"), Ok(0));
        assert_eq!(p("10K"), Ok(10 * 1024));
        assert_eq!(p("10KiB"), Ok(10 * 1024));
        assert_eq!(p("10KB"), Ok(10_000));
        assert_eq!(p("2g"), Ok(2 << 30));
        assert_eq!(p("1TB"), Ok(1_000_000_000_000));
        assert_eq!(p("3B"), Ok(3));
        for bad in ["", "G", "-5", "1.5G", "10X", "99999999999P"] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn expiries_are_durations_or_times() {
        let now = crate::now_micros();
        let day = super::parse_expiry("1d").expect("1d");
        assert!(
            (day - now - 86_400_000_000).abs() < 60_000_000,
            "{day} vs {now}"
        );
        assert_eq!(
            super::parse_expiry("2027-01-31T00:00:00Z"),
            Ok(1_801_353_600_000_000)
        );
        for bad in ["", "d", "0s", "-5m", "3w", "tomorrow"] {
            assert!(super::parse_expiry(bad).is_err(), "{bad:?}");
        }
    }
}
