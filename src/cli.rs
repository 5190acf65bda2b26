//! Command-line surface: `serve`, `admin`, `gc`, `scrub`, `fsck`. Parsing only; the work is in
//! the library.

use crate::config::ServeArgs;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "just-storage", version, about = "S3-compatible object gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
    /// Objects and bytes per tenant and bucket.
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

#[cfg(test)]
mod tests {
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
