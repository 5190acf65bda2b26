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
    /// Objects and bytes per tenant and bucket.
    Usage,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create { name: String },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an access key for a tenant; prints the id and secret.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        read_only: bool,
    },
}
