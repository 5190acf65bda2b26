//! JustStorage benchmark: drives S3 endpoints with `aws-sdk-s3` and prints a table (and JSON)
//! with, per scenario, the value for each server and the JustStorage / reference ratio.
//!
//! By default it starts the servers itself, each on 127.0.0.1 port 0 with a fresh data
//! directory: JustStorage on SQLite (`target/release/just-storage`, or `--js-bin`), on PostgreSQL
//! as well with `--pg` (a scratch database, dropped at the end), and the reference `s3s-fs`
//! (`--reference auto|on|off`). Every step runs on each server in turn before the next step, so a
//! change in machine load hits all of them alike. Before every measurement it flushes the
//! machine's dirty pages (`sync`), so no step pays for an earlier one's writeback. Around every
//! measurement it reads the server's CPU time (`/proc/<pid>/stat`) and peak RSS (`VmHWM`, reset
//! through `clear_refs` first).
//!
//! ```text
//! cargo build --release --bin just-storage
//! cargo run --release --example bench -- --pg --json bench.json
//! cargo run --example bench -- --profile smoke --js-bin target/debug/just-storage
//! ```

mod body;
mod disk;
mod lean;
mod report;
mod scenarios;
mod servers;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use scenarios::{ALL_STEPS, GROUPS, Profile, State, Step};
use servers::{PgBase, Target};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProfileName {
    Smoke,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RefMode {
    /// Run s3s-fs if it is found, else say it was skipped.
    Auto,
    /// s3s-fs is required.
    On,
    Off,
}

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Benchmark JustStorage against a reference S3 server"
)]
struct Args {
    /// `smoke` is tiny (seconds); `full` is the real benchmark (1 GiB objects, 10,000 keys).
    #[arg(long, value_enum, default_value = "full")]
    profile: ProfileName,
    /// JustStorage binary to start.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/just-storage"))]
    js_bin: PathBuf,
    /// Also measure JustStorage on PostgreSQL (a scratch database on --pg-host).
    #[arg(long)]
    pg: bool,
    /// Do not start JustStorage on SQLite.
    #[arg(long)]
    no_sqlite: bool,
    #[arg(long, default_value = "127.0.0.1")]
    pg_host: String,
    #[arg(long, default_value_t = 5432)]
    pg_port: u16,
    #[arg(long, default_value = "postgres")]
    pg_user: String,
    /// Extra argument for `just-storage serve` (repeatable), e.g. --js-arg=--gc-interval-secs=600.
    #[arg(long = "js-arg", allow_hyphen_values = true)]
    js_args: Vec<String>,
    /// Whether to measure the reference server s3s-fs.
    #[arg(long, value_enum, default_value = "auto")]
    reference: RefMode,
    /// s3s-fs binary (default: `s3s-fs` on PATH or in ~/.cargo/bin).
    #[arg(long)]
    ref_bin: Option<PathBuf>,
    /// Measure an S3 endpoint that is already running (as target "external").
    #[arg(long, requires_all = ["access_key", "secret_key"])]
    endpoint: Option<String>,
    #[arg(long)]
    access_key: Option<String>,
    #[arg(long)]
    secret_key: Option<String>,
    /// Pid of the --endpoint server, for its CPU time and peak RSS.
    #[arg(long)]
    endpoint_pid: Option<u32>,
    /// Data directory of the --endpoint server, for the dedup scenario.
    #[arg(long)]
    endpoint_data_dir: Option<PathBuf>,
    /// Run only these scenario groups or steps (comma-separated): stream, parallel, multipart,
    /// small, list, dedup, or a step's id such as lean-put (a step that reads what an earlier
    /// step wrote needs that step too).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Runs of each step per server; the median run is reported.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Let the SDK add its default checksums (CRC32 on uploads, validation on downloads).
    /// Without it only required checksums are sent and none are validated.
    #[arg(long)]
    sdk_checksums: bool,
    /// Write the JSON report here; `-` writes it to stdout (and the table to stderr).
    #[arg(long)]
    json: Option<String>,
    /// Where the servers' data directories go (default: the system temp dir).
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let profile = match args.profile {
        ProfileName::Smoke => Profile::smoke(),
        ProfileName::Full => Profile::full(),
    };
    for g in &args.only {
        if !GROUPS.contains(&g.as_str()) && !ALL_STEPS.iter().any(|s| s.id() == g) {
            bail!(
                "unknown group or step {g:?}; groups: {}; steps: {}",
                GROUPS.join(", "),
                ALL_STEPS
                    .iter()
                    .map(|s| s.id())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let steps: Vec<Step> = ALL_STEPS
        .iter()
        .copied()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|g| g == s.group() || g == s.id()))
        .collect();
    let tmp = args.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let run_id = format!("{:08x}", rand::random::<u32>());

    // Servers are started from the main thread: their parent-death signal follows this thread.
    let mut targets: Vec<Target> = Vec::new();
    if let Some(ep) = &args.endpoint {
        targets.push(Target::external(
            ep,
            args.access_key.as_deref().unwrap_or_default(),
            args.secret_key.as_deref().unwrap_or_default(),
            args.endpoint_pid,
            args.endpoint_data_dir.clone(),
        ));
    }
    if !args.no_sqlite && args.endpoint.is_none() {
        eprintln!(
            "bench: starting JustStorage (SQLite) from {}",
            args.js_bin.display()
        );
        targets.push(Target::juststorage(
            &args.js_bin,
            &tmp,
            None,
            &args.js_args,
        )?);
    }
    if args.pg {
        let base = PgBase {
            host: args.pg_host.clone(),
            port: args.pg_port,
            user: args.pg_user.clone(),
        };
        eprintln!("bench: starting JustStorage (PostgreSQL, scratch database js_bench_{run_id})");
        targets.push(Target::juststorage(
            &args.js_bin,
            &tmp,
            Some((&base, &run_id)),
            &args.js_args,
        )?);
    }
    let mut reference_note = None;
    if args.reference != RefMode::Off {
        let bin = args
            .ref_bin
            .clone()
            .or_else(|| servers::find_on_path("s3s-fs"));
        match bin {
            Some(bin) => {
                eprintln!("bench: starting reference s3s-fs from {}", bin.display());
                targets.push(Target::reference(&bin, &tmp)?);
            }
            None if args.reference == RefMode::On => bail!(
                "s3s-fs not found; install it with \
                 `cargo install s3s-fs --version =0.14.1 --features binary --locked`"
            ),
            None => {
                let note = "reference s3s-fs not found on PATH or in ~/.cargo/bin: skipped \
                            (cargo install s3s-fs --version =0.14.1 --features binary --locked)";
                eprintln!("bench: {note}");
                reference_note = Some(note.to_owned());
            }
        }
    } else {
        reference_note = Some("reference disabled (--reference off)".to_owned());
    }
    if targets.is_empty() {
        bail!("nothing to measure");
    }
    for t in &targets {
        eprintln!("bench: {} at {} (pid {:?})", t.name, t.endpoint, t.pid);
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let started = std::time::SystemTime::now();
    let load_start = servers::loadavg();
    let probe = match steps.contains(&Step::Get1) {
        // Context for one row, not a measurement: a temp dir without O_DIRECT only loses it.
        true => disk::Probe::create(&tmp, &run_id, profile.big)
            .inspect_err(|e| eprintln!("bench: no disk probe: {e:#}"))
            .ok(),
        false => None,
    };
    let results = rt.block_on(bench(
        &mut targets,
        &steps,
        &profile,
        &args,
        &run_id,
        probe.as_ref(),
    ))?;
    drop(probe);
    let load_end = servers::loadavg();

    let meta = report::Meta {
        profile: profile.clone(),
        started,
        load_start,
        load_end,
        repeat: args.repeat,
        sdk_checksums: args.sdk_checksums,
        reference_note,
    };
    let table = report::table(&meta, &targets, &results);
    let json = report::json(&meta, &targets, &results);
    let json_text = serde_json::to_string_pretty(&json)? + "\n";
    match args.json.as_deref() {
        Some("-") => {
            eprint!("{table}");
            print!("{json_text}");
        }
        Some(path) => {
            print!("{table}");
            std::fs::write(path, json_text).with_context(|| format!("write {path}"))?;
            eprintln!("bench: JSON report written to {path}");
        }
        None => print!("{table}"),
    }
    drop(rt);
    drop(targets);
    Ok(())
}

async fn bench(
    targets: &mut [Target],
    steps: &[Step],
    profile: &Profile,
    args: &Args,
    run_id: &str,
    probe: Option<&disk::Probe>,
) -> Result<Vec<report::StepResult>> {
    let bucket = format!("bench-{run_id}");
    let list_bucket = format!("bench-list-{run_id}");
    let clients: Vec<_> = targets
        .iter()
        .map(|t| t.client(args.sdk_checksums))
        .collect();
    let leans = targets
        .iter()
        .map(|t| lean::Lean::new(&t.endpoint, &t.access_key, &t.secret_key).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    for (t, c) in targets.iter().zip(&clients) {
        for b in [&bucket, &list_bucket] {
            c.create_bucket()
                .bucket(b)
                .send()
                .await
                .map_err(|e| scenarios::sdk_err(&format!("{}: CreateBucket {b}", t.name), e))?;
        }
    }
    let ticks = servers::clock_ticks();
    let mut states: Vec<State> = targets.iter().map(|_| State::default()).collect();
    let n = targets.len();
    let mut results = Vec::new();
    for (si, &step) in steps.iter().enumerate() {
        let mut samples: Vec<Vec<report::Sample>> = vec![Vec::new(); n];
        for r in 0..args.repeat {
            for k in 0..n {
                // Rotate who goes first, so no server always runs right after another's step.
                let ti = (k + si + r) % n;
                let t = &mut targets[ti];
                t.check_alive()?;
                macro_rules! ctx {
                    () => {
                        scenarios::Ctx {
                            client: &clients[ti],
                            lean: &leans[ti],
                            bucket: &bucket,
                            list_bucket: &list_bucket,
                            data_dir: t.data_dir.as_deref(),
                            profile,
                            state: &mut states[ti],
                        }
                    };
                }
                if r > 0
                    && let Some(setup) = step.refill()
                {
                    scenarios::run(setup, ctx!())
                        .await
                        .with_context(|| format!("{} (refill) on {}", setup.id(), t.name))?;
                }
                if let Some(db) = &t.pg {
                    db.settle()?;
                }
                servers::flush_dirty();
                let pid = t.pid;
                let pg_db = t.pg.as_ref().map(|d| d.name.clone());
                let build_procs = servers::build_processes();
                let load = servers::loadavg();
                let rss_reset = pid.is_some_and(servers::reset_peak_rss);
                let cpu0 = pid.and_then(servers::cpu_ticks);
                let db0 = pg_db.as_deref().map(servers::pg_backend_ticks);
                let client0 = servers::self_cpu_secs();
                let mach0 = servers::machine_ticks();
                let t0 = Instant::now();
                let cx = ctx!();
                let mut measured = scenarios::run(step, cx)
                    .await
                    .with_context(|| format!("{} on {}", step.id(), t.name))?;
                let wall = t0.elapsed().as_secs_f64();
                let cpu1 = pid.and_then(servers::cpu_ticks);
                let db1 = pg_db.as_deref().map(servers::pg_backend_ticks);
                let client_cpu_s = servers::self_cpu_secs() - client0;
                let mach1 = servers::machine_ticks();
                let server_cpu_s = match (cpu0, cpu1) {
                    (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / ticks),
                    _ => None,
                };
                let db_cpu_s = match (db0, db1) {
                    (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / ticks),
                    _ => None,
                };
                let machine_busy_s = match (mach0, mach1) {
                    (Some(a), Some(b)) => Some(b.0.saturating_sub(a.0) as f64 / ticks),
                    _ => None,
                };
                let other_cpu_s = machine_busy_s.map(|m| {
                    (m - server_cpu_s.unwrap_or(0.0) - db_cpu_s.unwrap_or(0.0) - client_cpu_s)
                        .max(0.0)
                });
                let peak_rss = pid.and_then(|p| servers::status_bytes(p, "VmHWM:"));
                let build_procs = build_procs.max(servers::build_processes());
                if step == Step::Get1
                    && let Some(probe) = probe
                {
                    // After the readings above: the probe's reads are nobody's step.
                    let mbps = probe.read_mbps()?;
                    measured.extra.insert("disk_read_mbps".into(), mbps.into());
                }
                let sample = report::Sample {
                    measured,
                    wall_s: wall,
                    server_cpu_s,
                    db_cpu_s,
                    peak_rss,
                    rss_reset,
                    client_cpu_s,
                    other_cpu_s,
                    load,
                    build_procs,
                };
                eprintln!(
                    "bench: {:<22} {:<9} {}",
                    step.id(),
                    t.name,
                    report::progress_line(step, &sample)
                );
                samples[ti].push(sample);
            }
        }
        results.push(report::StepResult::new(step, samples));
    }
    Ok(results)
}
