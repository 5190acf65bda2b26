use anyhow::Context;
use clap::Parser;
use just_storage::cli::{
    AdminCommand, BucketCommand, Cli, Command, KeyCommand, Output, TenantCommand,
};
use just_storage::config::{Config, ServeArgs};
use just_storage::engine::{Engine, Limits};

fn main() -> anyhow::Result<()> {
    just_storage::server::tune_malloc();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,s3s=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Admin {
            store,
            out,
            command,
        } => admin(store, out.output, command).await,
        Command::Scrub { store, out } => {
            let cfg = Config::from_args(store)?;
            let engine = open_engine(&cfg).await?;
            let report =
                just_storage::workers::scrub_once(&engine, cfg.scrub_mbps, usize::MAX).await?;
            print(out.output, &report, &report)?;
            if report.corrupted > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Fsck { store, out, repair } => {
            let cfg = Config::from_args(store)?;
            let engine = open_engine(&cfg).await?;
            let report = just_storage::workers::fsck(&engine, repair, cfg.gc.grace).await?;
            print(out.output, &report, &report)?;
            if !report.is_clean() && !repair {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Gc { store, out } => {
            let cfg = Config::from_args(store)?;
            let engine = open_engine(&cfg).await?;
            let adopted =
                just_storage::workers::adopt_orphan_files(&engine, cfg.gc.orphan_age).await?;
            let report = just_storage::workers::gc_once(&engine, &cfg.gc).await?;
            let text = format!("gc: {adopted} orphan blob files adopted\n{report}");
            let json = GcRun {
                orphan_files_adopted: adopted,
                run: report,
            };
            print(out.output, &json, &text)
        }
    }
}

/// `gc`'s JSON: the adoption before the run, and the run.
#[derive(serde::Serialize)]
struct GcRun {
    orphan_files_adopted: u64,
    #[serde(flatten)]
    run: just_storage::workers::GcReport,
}

/// Prints a command's result: `text` for people, or `json` as one JSON document.
fn print(
    output: Output,
    json: &impl serde::Serialize,
    text: &impl std::fmt::Display,
) -> anyhow::Result<()> {
    match output {
        Output::Text => println!("{text}"),
        Output::Json => println!("{}", serde_json::to_string_pretty(json)?),
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = Config::from_args(args)?;
    let running = just_storage::server::start(&cfg)
        .await
        .context("starting the server")?;
    if let Some((id, secret)) = &running.created_root {
        // Printed once, on the start that created them; they are kept in the database.
        println!("root access key: {id}");
        println!("root secret key: {secret}");
    }
    println!("JustStorage listening on http://{}", running.addr);
    let stop = running.stopper();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    running.wait().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn open_engine(cfg: &Config) -> anyhow::Result<Engine> {
    if let Some(dir) = cfg.sqlite_dir() {
        std::fs::create_dir_all(dir)?;
    }
    let blobs = just_storage::blobs::BlobStore::open(&cfg.hot_dir, &cfg.cold_dir)?;
    let meta = just_storage::meta::open(&cfg.database_url).await?;
    Ok(Engine::new(
        meta,
        blobs,
        Limits {
            inline_max: cfg.inline_max,
            ..Limits::default()
        },
    ))
}

async fn admin(store: ServeArgs, output: Output, command: AdminCommand) -> anyhow::Result<()> {
    let cfg = Config::from_args(store)?;
    let engine = open_engine(&cfg).await?;
    match command {
        AdminCommand::Tenant { command } => tenant(&engine, output, command).await,
        AdminCommand::Key { command } => key(&engine, output, command).await,
        AdminCommand::Bucket {
            command: BucketCommand::List { tenant },
        } => {
            let rows = engine.all_buckets(tenant.as_deref()).await?;
            let json: Vec<_> = rows
                .iter()
                .map(|(t, b)| serde_json::json!({ "tenant": t, "bucket": b.name, "created_at": b.created_at }))
                .collect();
            let mut text = format!("{:<20} {:<64} {}", "TENANT", "BUCKET", "CREATED");
            for (t, b) in &rows {
                text.push_str(&format!("\n{t:<20} {:<64} {}", b.name, when(b.created_at)));
            }
            print(output, &json, &text)
        }
        AdminCommand::Usage { tenant, bucket } => {
            let rows: Vec<_> = (engine.meta().usage().await?)
                .into_iter()
                .filter(|u| tenant.as_ref().is_none_or(|t| *t == u.tenant))
                .filter(|u| bucket.as_ref().is_none_or(|b| *b == u.bucket))
                .collect();
            let mut text = format!(
                "{:<20} {:<40} {:>12} {:>16} {:>12} {:>16} {:>12}",
                "TENANT", "BUCKET", "OBJECTS", "BYTES", "NONCURRENT", "NONCURRENT_BYTES", "MARKERS"
            );
            for u in &rows {
                let line = format!(
                    "\n{:<20} {:<40} {:>12} {:>16} {:>12} {:>16} {:>12}",
                    u.tenant,
                    u.bucket,
                    u.objects,
                    u.bytes,
                    u.noncurrent_versions,
                    u.noncurrent_bytes,
                    u.delete_markers
                );
                text.push_str(&line);
            }
            print(output, &rows, &text)
        }
    }
}

async fn tenant(engine: &Engine, output: Output, command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { name } => {
            engine.create_tenant(&name).await?;
            let json = serde_json::json!({ "tenant": name });
            print(output, &json, &format!("tenant {name} created"))
        }
        TenantCommand::List => {
            let rows = engine.tenants().await?;
            let mut text = format!("{:<20} {:<36} {}", "TENANT", "ID", "CREATED");
            for t in &rows {
                text.push_str(&format!(
                    "\n{:<20} {:<36} {}",
                    t.name,
                    t.id,
                    when(t.created_at)
                ));
            }
            print(output, &rows, &text)
        }
        TenantCommand::Show { name } => {
            let t = engine.tenant(&name).await?;
            let keys = engine.keys(Some(&name)).await?;
            let buckets: Vec<String> = (engine.all_buckets(Some(&name)).await?)
                .into_iter()
                .map(|(_, b)| b.name)
                .collect();
            let json = serde_json::json!({ "tenant": t, "keys": keys, "buckets": buckets });
            let mut text = format!(
                "tenant {} ({}), created {}\nkeys: {}\nbuckets: {}",
                t.name,
                t.id,
                when(t.created_at),
                keys.len(),
                buckets.len()
            );
            for k in &keys {
                text.push_str(&format!("\n  key {} {}", k.access_key_id, key_state(k)));
            }
            for b in &buckets {
                text.push_str(&format!("\n  bucket {b}"));
            }
            print(output, &json, &text)
        }
        TenantCommand::Delete { name, force } => {
            let objects = engine.delete_tenant(&name, force).await?;
            let json =
                serde_json::json!({ "tenant": name, "deleted": true, "objects_deleted": objects });
            let text = format!("tenant {name} deleted ({objects} objects deleted with it)");
            print(output, &json, &text)
        }
    }
}

async fn key(engine: &Engine, output: Output, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            tenant,
            read_only,
            expires,
        } => {
            let (id, secret) = engine.create_key(&tenant, read_only, expires).await?;
            let json = serde_json::json!({
                "tenant": tenant,
                "access_key_id": id,
                "secret_key": secret,
                "read_only": read_only,
                "expires_at": expires,
            });
            print(
                output,
                &json,
                &format!("access key: {id}\nsecret key: {secret}"),
            )
        }
        KeyCommand::List { tenant } => {
            let rows = engine.keys(tenant.as_deref()).await?;
            let mut text = format!("{:<20} {:<22} {}", "TENANT", "ACCESS KEY", "STATE");
            for k in &rows {
                let line = format!(
                    "\n{:<20} {:<22} {}",
                    k.tenant,
                    k.access_key_id,
                    key_state(k)
                );
                text.push_str(&line);
            }
            print(output, &rows, &text)
        }
        KeyCommand::Disable { id } => {
            engine.set_key_enabled(&id, false).await?;
            key_done(output, &id, "disabled")
        }
        KeyCommand::Enable { id } => {
            engine.set_key_enabled(&id, true).await?;
            key_done(output, &id, "enabled")
        }
        KeyCommand::Delete { id } => {
            engine.delete_key(&id).await?;
            key_done(output, &id, "deleted")
        }
    }
}

fn key_done(output: Output, id: &str, state: &str) -> anyhow::Result<()> {
    let json = serde_json::json!({ "access_key_id": id, "state": state });
    print(output, &json, &format!("access key {id} {state}"))
}

/// A key's state for people: read-only, disabled, expiry.
fn key_state(k: &just_storage::meta::KeyRow) -> String {
    let mut s = String::from(if k.read_only {
        "read-only"
    } else {
        "read-write"
    });
    if let Some(at) = k.disabled_at {
        s.push_str(&format!(", disabled since {}", when(at)));
    }
    if let Some(at) = k.expires_at {
        s.push_str(&format!(", expires {}", when(at)));
    }
    s
}

/// A stored time (microseconds) as RFC 3339.
fn when(micros: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000);
    t.ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| micros.to_string())
}
