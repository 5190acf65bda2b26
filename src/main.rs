use anyhow::Context;
use clap::Parser;
use just_storage::cli::{
    AdminCommand, BucketCommand, Cli, Command, KeyCommand, LogFormat, Output, Period, QuotaCommand,
    Scope, TenantCommand, TokenCommand,
};
use just_storage::config::{Config, ServeArgs};
use just_storage::engine::{Engine, Limits, TokenScope, rfc3339};

fn main() -> anyhow::Result<()> {
    just_storage::server::tune_malloc();
    let cli = Cli::parse();
    // Kept to the end: dropping it flushes the lines still queued.
    let (writer, _flush) = tracing_appender::non_blocking(std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,s3s=off".into());
    // Colours only for a terminal: a file or a collector gets plain lines.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
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
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    if let Some(at) = running.admin_addr {
        println!("admin API on {scheme}://{at}");
    }
    // Last: what scripts wait for.
    println!("JustStorage listening on {scheme}://{}", running.addr);
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
                text.push_str(&format!(
                    "\n{t:<20} {:<64} {}",
                    b.name,
                    rfc3339(b.created_at)
                ));
            }
            print(output, &json, &text)
        }
        AdminCommand::Usage { tenant, bucket } => {
            let report = engine
                .usage_report(tenant.as_deref(), bucket.as_deref())
                .await?;
            print(output, &report, &usage_text(&report))
        }
        AdminCommand::Quota { command } => quota(&engine, output, command).await,
        AdminCommand::Token { command } => token(&engine, output, command).await,
        AdminCommand::Metering {
            tenant,
            bucket,
            since,
            until,
            by,
        } => {
            let range = just_storage::engine::MeterRange {
                tenant: tenant.as_deref(),
                bucket: bucket.as_deref(),
                from: since,
                to: until.unwrap_or_else(just_storage::now_micros),
                by_day: by == Period::Day,
            };
            let rows = engine.metering(range).await?;
            let mut text = format!(
                "{:<25} {:<20} {:<30} {:<19} {:>10} {:>15} {:>15}",
                "PERIOD", "TENANT", "BUCKET", "CLASS", "REQUESTS", "BYTES_IN", "BYTES_OUT"
            );
            for m in &rows {
                text.push_str(&format!(
                    "\n{:<25} {:<20} {:<30} {:<19} {:>10} {:>15} {:>15}",
                    m.period,
                    m.tenant,
                    m.bucket,
                    m.class,
                    m.requests,
                    m.bytes_received,
                    m.bytes_sent
                ));
            }
            print(output, &rows, &text)
        }
    }
}

/// `admin usage` for people: a line per bucket and tier, then one per tenant.
fn usage_text(r: &just_storage::engine::UsageReport) -> String {
    let mut text = format!(
        "{:<20} {:<40} {:<5} {:>10} {:>15} {:>10} {:>15} {:>8}",
        "TENANT", "BUCKET", "TIER", "OBJECTS", "BYTES", "NONCURRENT", "NONCURRENT_BYTES", "MARKERS"
    );
    for u in &r.buckets {
        text.push_str(&format!(
            "\n{:<20} {:<40} {:<5} {:>10} {:>15} {:>10} {:>15} {:>8}",
            u.tenant,
            u.bucket,
            u.tier,
            u.objects,
            u.bytes,
            u.noncurrent_versions,
            u.noncurrent_bytes,
            u.delete_markers
        ));
    }
    text.push_str(&format!(
        "\n\n{:<20} {:>10} {:>15} {:>15} {:>7} {:>15} {:>10}",
        "TENANT", "OBJECTS", "LOGICAL_BYTES", "PHYSICAL_BYTES", "DEDUP", "QUOTA_BYTES", "QUOTA_OBJ"
    ));
    let limit = |l: Option<i64>| l.map_or_else(|| "-".to_owned(), |v| v.to_string());
    for t in &r.tenants {
        let ratio = t
            .dedup_ratio
            .map_or_else(|| "-".to_owned(), |d| format!("{d:.2}x"));
        text.push_str(&format!(
            "\n{:<20} {:>10} {:>15} {:>15} {:>7} {:>15} {:>10}",
            t.tenant,
            t.objects,
            t.logical_bytes,
            t.physical_bytes,
            ratio,
            limit(t.quota.bytes),
            limit(t.quota.objects)
        ));
    }
    text
}

async fn token(engine: &Engine, output: Output, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { name, scope } => {
            let scope = match scope {
                Scope::Admin => TokenScope::Admin,
                Scope::Metrics => TokenScope::Metrics,
            };
            let (row, token) = engine.create_admin_token(&name, scope).await?;
            let json = serde_json::json!({ "id": row.id, "name": row.name, "scope": row.scope, "token": token });
            let text = format!("token id: {}\ntoken: {token}", row.id);
            print(output, &json, &text)
        }
        TokenCommand::List => {
            let rows = engine.admin_tokens().await?;
            let mut text = format!("{:<36} {:<8} {:<25} {}", "ID", "SCOPE", "CREATED", "NAME");
            for t in &rows {
                let state = t.revoked_at.map(|at| format!(" (revoked {})", rfc3339(at)));
                text.push_str(&format!(
                    "\n{:<36} {:<8} {:<25} {}{}",
                    t.id,
                    t.scope,
                    rfc3339(t.created_at),
                    t.name,
                    state.unwrap_or_default()
                ));
            }
            print(output, &rows, &text)
        }
        TokenCommand::Revoke { id } => {
            engine.revoke_admin_token(&id).await?;
            let json = serde_json::json!({ "id": id, "state": "revoked" });
            print(output, &json, &format!("token {id} revoked"))
        }
    }
}

async fn quota(engine: &Engine, output: Output, command: QuotaCommand) -> anyhow::Result<()> {
    let (tenant, bucket, q) = match command {
        QuotaCommand::Set {
            tenant,
            bucket,
            max_bytes,
            max_objects,
        } => {
            let q = just_storage::meta::Quota {
                bytes: max_bytes,
                objects: max_objects.map(i64::from),
            };
            engine.set_quota(&tenant, bucket.as_deref(), q).await?;
            (tenant, bucket, q)
        }
        QuotaCommand::Show { tenant, bucket } => {
            let q = engine.quota(&tenant, bucket.as_deref()).await?;
            (tenant, bucket, q)
        }
    };
    let json = serde_json::json!({
        "tenant": tenant, "bucket": bucket, "max_bytes": q.bytes, "max_objects": q.objects,
    });
    let limit = |l: Option<i64>| l.map_or_else(|| "none".to_owned(), |v| v.to_string());
    let scope = match &bucket {
        Some(b) => format!("bucket {tenant}:{b}"),
        None => format!("tenant {tenant}"),
    };
    let text = format!(
        "{scope}: max bytes {}, max objects {}",
        limit(q.bytes),
        limit(q.objects)
    );
    print(output, &json, &text)
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
                    rfc3339(t.created_at)
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
                rfc3339(t.created_at),
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
        s.push_str(&format!(", disabled since {}", rfc3339(at)));
    }
    if let Some(at) = k.expires_at {
        s.push_str(&format!(", expires {}", rfc3339(at)));
    }
    s
}
