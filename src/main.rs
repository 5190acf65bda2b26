use anyhow::Context;
use clap::Parser;
use just_storage::cli::{AdminCommand, Cli, Command, KeyCommand, TenantCommand};
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
        Command::Admin { store, command } => admin(store, command).await,
        Command::Scrub(args) => {
            let cfg = Config::from_args(args)?;
            let engine = open_engine(&cfg).await?;
            let report =
                just_storage::workers::scrub_once(&engine, cfg.scrub_mbps, usize::MAX).await?;
            println!("{report:?}");
            if report.corrupted > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Fsck { store, repair } => {
            let cfg = Config::from_args(store)?;
            let engine = open_engine(&cfg).await?;
            let report = just_storage::workers::fsck(&engine, repair, cfg.gc.grace).await?;
            println!("{report:#?}");
            println!(
                "{}",
                if report.is_clean() {
                    "fsck: clean"
                } else {
                    "fsck: PROBLEMS FOUND"
                }
            );
            if !report.is_clean() && !repair {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Gc(args) => {
            let cfg = Config::from_args(args)?;
            let engine = open_engine(&cfg).await?;
            let adopted =
                just_storage::workers::adopt_orphan_files(&engine, cfg.gc.orphan_age).await?;
            println!("orphan blob files adopted: {adopted}");
            let report = just_storage::workers::gc_once(&engine, &cfg.gc).await?;
            println!("{report:?}");
            Ok(())
        }
    }
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

async fn admin(store: ServeArgs, command: AdminCommand) -> anyhow::Result<()> {
    let cfg = Config::from_args(store)?;
    let engine = open_engine(&cfg).await?;
    match command {
        AdminCommand::Tenant {
            command: TenantCommand::Create { name },
        } => {
            engine.create_tenant(&name).await?;
            println!("tenant {name} created");
        }
        AdminCommand::Key {
            command: KeyCommand::Create { tenant, read_only },
        } => {
            let (id, secret) = engine.create_key(&tenant, read_only).await?;
            println!("access key: {id}\nsecret key: {secret}");
        }
        AdminCommand::Usage => {
            println!(
                "{:<20} {:<40} {:>12} {:>16}",
                "TENANT", "BUCKET", "OBJECTS", "BYTES"
            );
            for u in engine.meta().usage().await? {
                println!(
                    "{:<20} {:<40} {:>12} {:>16}",
                    u.tenant, u.bucket, u.objects, u.bytes
                );
            }
        }
    }
    Ok(())
}
