//! The servers under test: JustStorage (SQLite or PostgreSQL metadata) and the s3s-fs reference,
//! started as child processes on 127.0.0.1 port 0, or an endpoint that is already running.
//! Also the `/proc` readings taken around every measurement.

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "JSBENCHROOTKEY000000";
pub const SECRET_KEY: &str = "bench-root-secret-000000000000000000000000";

/// What a target is, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    JustStorageSqlite,
    JustStoragePostgres,
    Reference,
    External,
}

impl Kind {
    pub fn is_juststorage(self) -> bool {
        matches!(self, Kind::JustStorageSqlite | Kind::JustStoragePostgres)
    }
}

/// A child server process, stopped (SIGTERM, then SIGKILL after 15 s) when dropped.
pub struct Proc {
    child: Child,
    pub pid: u32,
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` (stdout piped, stderr to `log`) and waits for a line of its stdout that
    /// contains `http://ADDR`; every stdout line is also appended to `log`.
    fn spawn(mut cmd: Command, log: &Path, what: &str) -> Result<(Proc, String)> {
        let err_log = std::fs::File::create(log).with_context(|| format!("create {log:?}"))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err_log.try_clone()?));
        // The server must not outlive the benchmark, even if it is killed.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn().with_context(|| format!("start {what}"))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let mut out_log = err_log;
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(out_log, "[stdout] {line}");
                if let Some(i) = line.find("http://") {
                    let addr: String = line[i + 7..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    if let Some(t) = tx.take() {
                        let _ = t.send(addr);
                    }
                }
            }
        });
        let proc = Proc {
            child,
            pid,
            log: log.to_owned(),
        };
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(addr) => Ok((proc, addr)),
            Err(_) => {
                let tail = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "{what} did not print its address within 90 s; log {log:?}:\n{}",
                    tail.join("\n")
                )
            }
        }
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A scratch PostgreSQL database, dropped (`WITH (FORCE)`) when this value is dropped.
pub struct PgDb {
    pub name: String,
    pub base: PgBase,
    /// The server runs with autovacuum off, so the bench vacuums between steps (`settle`).
    pub vacuums: bool,
}

#[derive(Debug, Clone)]
pub struct PgBase {
    pub host: String,
    pub port: u16,
    pub user: String,
}

impl PgBase {
    /// Runs `sql` in database `db`; returns what it printed (unaligned, tuples only).
    fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = Command::new("psql")
            .args([
                "-h",
                &self.host,
                "-p",
                &self.port.to_string(),
                "-U",
                &self.user,
            ])
            .args([
                "-d",
                db,
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .context("run psql (is the PostgreSQL client installed?)")?;
        if !out.status.success() {
            bail!(
                "psql -c {sql:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl PgDb {
    pub fn create(base: &PgBase, run_id: &str) -> Result<PgDb> {
        let name = format!("js_bench_{run_id}");
        base.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        let vacuums = base.psql("postgres", "SHOW autovacuum")? == "off";
        Ok(PgDb {
            name,
            base: base.clone(),
            vacuums,
        })
    }

    /// Before a step (untimed): what autovacuum would have done after the earlier steps, by its
    /// default thresholds (50 rows plus 20% of the table dead, or 50 plus 10% changed since the
    /// last ANALYZE). With autovacuum off (as on the machines this was written on) the dead row
    /// versions of every earlier step would stay in tables and indexes, and the planner would
    /// never get statistics; a deployment runs autovacuum. An empty table is not analyzed
    /// (neither would autovacuum).
    pub fn settle(&self) -> Result<()> {
        if !self.vacuums {
            return Ok(());
        }
        let due = self.base.psql(
            &self.name,
            "SELECT string_agg(quote_ident(s.relname), ', ') FROM pg_stat_user_tables s \
             JOIN pg_class c ON c.oid = s.relid \
             WHERE s.n_dead_tup > 50 + 0.2 * GREATEST(c.reltuples, 0) \
                OR s.n_mod_since_analyze > 50 + 0.1 * GREATEST(c.reltuples, 0)",
        )?;
        if !due.is_empty() {
            self.base
                .psql(&self.name, &format!("VACUUM (ANALYZE) {due}"))?;
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.base.user, self.base.host, self.base.port, self.name
        )
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Err(e) = self.base.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!(
                "bench: could not drop scratch database {}: {e:#}",
                self.name
            );
        }
    }
}

/// One endpoint under test. Field order is drop order: the server stops before its database
/// is dropped and its directory removed.
pub struct Target {
    pub proc: Option<Proc>,
    pub pg: Option<PgDb>,
    pub _dir: Option<tempfile::TempDir>,
    pub name: String,
    pub kind: Kind,
    pub endpoint: String,
    pub pid: Option<u32>,
    /// The directory whose growth the dedup scenario measures (blob files; for PostgreSQL the
    /// metadata lives elsewhere).
    pub data_dir: Option<PathBuf>,
    pub access_key: String,
    pub secret_key: String,
    pub version: String,
}

fn version_of(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

impl Target {
    /// Starts JustStorage with a fresh data directory under `tmp`; PostgreSQL metadata when
    /// `pg` is given (a scratch database is created and later dropped).
    pub fn juststorage(
        bin: &Path,
        tmp: &Path,
        pg: Option<(&PgBase, &str)>,
        extra_args: &[String],
    ) -> Result<Target> {
        if !bin.is_file() {
            bail!(
                "JustStorage binary {bin:?} not found: build it with \
                 `cargo build --release --bin just-storage` or pass --js-bin"
            );
        }
        let (kind, name) = match pg {
            None => (Kind::JustStorageSqlite, "js-sqlite"),
            Some(_) => (Kind::JustStoragePostgres, "js-pg"),
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("bench-{name}-"))
            .tempdir_in(tmp)
            .context("create data directory")?;
        let data = dir.path().join("data");
        let pg = match pg {
            Some((base, run_id)) => Some(PgDb::create(base, run_id)?),
            None => None,
        };
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data);
        if let Some(db) = &pg {
            cmd.arg("--database-url").arg(db.url());
        }
        cmd.args(extra_args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("JUST_STORAGE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("JUST_STORAGE_ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("JUST_STORAGE_ROOT_SECRET_KEY", SECRET_KEY);
        let log = dir.path().join("server.log");
        let (proc, addr) = Proc::spawn(cmd, &log, &format!("{name} ({})", bin.display()))?;
        Ok(Target {
            pid: Some(proc.pid),
            proc: Some(proc),
            pg,
            _dir: Some(dir),
            name: name.into(),
            kind,
            endpoint: format!("http://{addr}"),
            data_dir: Some(data),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            version: version_of(bin),
        })
    }

    /// Starts `s3s-fs --host 127.0.0.1 --port 0 --access-key K --secret-key S <root>`.
    pub fn reference(bin: &Path, tmp: &Path) -> Result<Target> {
        let dir = tempfile::Builder::new()
            .prefix("bench-s3s-fs-")
            .tempdir_in(tmp)
            .context("create reference root directory")?;
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root)?;
        let mut cmd = Command::new(bin);
        cmd.args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            // Only the startup line ("server is running at http://…"); s3s-fs logs requests at
            // debug level, so this adds no per-request cost.
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        let log = dir.path().join("server.log");
        let (proc, addr) = Proc::spawn(cmd, &log, &format!("s3s-fs ({})", bin.display()))?;
        Ok(Target {
            pid: Some(proc.pid),
            proc: Some(proc),
            pg: None,
            _dir: Some(dir),
            name: "s3s-fs".into(),
            kind: Kind::Reference,
            endpoint: format!("http://{addr}"),
            data_dir: Some(root),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            version: version_of(bin),
        })
    }

    /// An endpoint that is already running (not started or stopped by the benchmark).
    pub fn external(
        endpoint: &str,
        key: &str,
        secret: &str,
        pid: Option<u32>,
        data_dir: Option<PathBuf>,
    ) -> Target {
        Target {
            proc: None,
            pg: None,
            _dir: None,
            name: "external".into(),
            kind: Kind::External,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            pid,
            data_dir,
            access_key: key.into(),
            secret_key: secret.into(),
            version: String::new(),
        }
    }

    pub fn client(&self, sdk_checksums: bool) -> Client {
        use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut conf = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(
                &self.access_key,
                &self.secret_key,
                None,
                None,
                "bench",
            ))
            .force_path_style(true)
            .http_client(http)
            // A failed request fails the benchmark instead of being hidden by a retry.
            .retry_config(RetryConfig::disabled());
        if !sdk_checksums {
            conf = conf
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Client::from_conf(conf.build())
    }

    /// Fails if a server the benchmark started has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(p) = &mut self.proc
            && !p.alive()
        {
            return Err(anyhow!(
                "{} (pid {}) exited; see its log {:?}",
                self.name,
                p.pid,
                p.log
            ));
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------- /proc

pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Vm*:` line of /proc/<pid>/status, in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Writes every dirty page of the machine to disk and waits for it (`sync(2)`), so that a step
/// starts with an idle disk and no kernel writeback running beside it: s3s-fs does not fsync
/// what it stores, so its step would otherwise hand its writeback to the next server's, and a
/// build just before the run leaves hundreds of MB dirty (the first PUT 1 GiB of a full run
/// measured 272-303 MB/s for s3s-fs there, 435-447 in runs started on a quiet disk).
pub fn flush_dirty() {
    // SAFETY: sync has no preconditions and touches no memory of ours.
    unsafe { libc::sync() };
}

/// Resets the peak RSS (VmHWM) to the current RSS; false if the kernel refused.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// CPU ticks of the PostgreSQL backends serving database `db` (those alive now; the
/// server's pool keeps its connections, so few exit between two readings).
pub fn pg_backend_ticks(db: &str) -> u64 {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let mut words = cmd.split_whitespace();
        if words.next() != Some("postgres:") {
            continue;
        }
        if words.any(|w| w == db) {
            total += cpu_ticks(pid).unwrap_or(0);
        }
    }
    total
}

/// Busy and total ticks of the whole machine (all CPUs), from /proc/stat.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// CPU seconds used by this process (the benchmark client) so far.
pub fn self_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Compiler and linker processes running right now (a concurrent build skews the numbers).
pub fn build_processes() -> usize {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|s| s.parse::<u32>().is_ok())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|c| {
            matches!(
                c.trim(),
                "rustc"
                    | "clippy-driver"
                    | "rustdoc"
                    | "cc1"
                    | "cc1plus"
                    | "ld"
                    | "ld.lld"
                    | "mold"
            )
        })
        .count()
}

/// Allocated bytes (st_blocks × 512) of every file under `p`.
pub fn disk_usage(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    let mut total = 0;
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            total += disk_usage(&e.path());
        } else {
            total += m.blocks() * 512;
        }
    }
    total
}

/// `name` on PATH, else in ~/.cargo/bin.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .chain(std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin").join(name)))
        .find(|p| p.is_file())
}
