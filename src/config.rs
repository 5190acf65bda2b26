//! The one `Config`: from flags, `JUST_STORAGE_*` environment variables and an optional TOML
//! file (flags and env win over the file). Nothing else reads the environment.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("parsing config file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("invalid listen address {0:?}: {1}")]
    Listen(String, std::net::AddrParseError),
    #[error("--hot-dir and --cold-dir must be given together")]
    Tiers,
    #[error("root access key and secret must be given together")]
    RootKey,
    #[error("unknown fault point {0:?}")]
    Fault(String),
    #[error("inline_max_bytes {0} is over the limit of {limit}", limit = crate::blobs::INLINE_LIMIT)]
    InlineMax(usize),
    #[error("--tls-cert and --tls-key must be given together")]
    Tls,
    #[error("the {0} timeout must be at least 1 second")]
    ZeroTimeout(&'static str),
}

/// `just-storage serve` flags; each also reads its `JUST_STORAGE_*` variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:9000].
    #[arg(long, env = "JUST_STORAGE_LISTEN")]
    pub listen: Option<String>,
    /// Address of the JSON admin API (bearer tokens from `admin token create`); off unless
    /// given.
    #[arg(long, env = "JUST_STORAGE_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// PEM certificate chain for TLS on the S3 listener (with --tls-key); reloaded on SIGHUP.
    #[arg(long, env = "JUST_STORAGE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for --tls-cert.
    #[arg(long, env = "JUST_STORAGE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Data directory; hot and cold tiers are its `hot/` and `cold/` [default: ./data].
    #[arg(long, env = "JUST_STORAGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Hot tier directory (with --cold-dir, instead of --data-dir's subfolders).
    #[arg(long, env = "JUST_STORAGE_HOT_DIR")]
    pub hot_dir: Option<PathBuf>,
    /// Cold tier directory.
    #[arg(long, env = "JUST_STORAGE_COLD_DIR")]
    pub cold_dir: Option<PathBuf>,
    /// `postgres://…` or `sqlite://…` [default: sqlite://<data-dir>/meta.db].
    #[arg(long, env = "JUST_STORAGE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Region reported to clients [default: us-east-1].
    #[arg(long, env = "JUST_STORAGE_REGION")]
    pub region: Option<String>,
    /// Refuse requests signed for another region than --region (default: accept any region,
    /// as clients default to us-east-1).
    #[arg(long, env = "JUST_STORAGE_ENFORCE_REGION")]
    pub enforce_region: bool,
    /// Base domain(s) for virtual-hosted-style requests (`bucket.DOMAIN`), comma-separated.
    #[arg(long, env = "JUST_STORAGE_DOMAIN", value_delimiter = ',')]
    pub domain: Vec<String>,
    /// Seconds a blob stays unreferenced before the collector may remove it [default: 300].
    #[arg(long, env = "JUST_STORAGE_GC_GRACE_SECS")]
    pub gc_grace_secs: Option<u64>,
    /// Seconds between collector runs [default: 30].
    #[arg(long, env = "JUST_STORAGE_GC_INTERVAL_SECS")]
    pub gc_interval_secs: Option<u64>,
    /// Seconds after which an unfinished upload is an orphan [default: 3600].
    #[arg(long, env = "JUST_STORAGE_ORPHAN_AGE_SECS")]
    pub orphan_age_secs: Option<u64>,
    /// Seconds after which an incomplete multipart upload is aborted [default: 604800, 7 days].
    #[arg(long, env = "JUST_STORAGE_UPLOAD_MAX_AGE_SECS")]
    pub upload_max_age_secs: Option<u64>,
    /// Root access key id to create on first start (else one is generated).
    #[arg(long, env = "JUST_STORAGE_ROOT_ACCESS_KEY", hide_env_values = true)]
    pub root_access_key: Option<String>,
    /// Root secret key to create on first start.
    #[arg(long, env = "JUST_STORAGE_ROOT_SECRET_KEY", hide_env_values = true)]
    pub root_secret_key: Option<String>,
    /// PUT bodies up to this many bytes are stored in the database instead of a file
    /// [default: 16384; 0 = always files; at most 65536].
    #[arg(long, env = "JUST_STORAGE_INLINE_MAX_BYTES")]
    pub inline_max_bytes: Option<usize>,
    /// Scrubber read rate in MB/s [default: 50; 0 = unlimited].
    #[arg(long, env = "JUST_STORAGE_SCRUB_MBPS")]
    pub scrub_mbps: Option<u64>,
    /// Seconds between scrubber passes [default: 3600].
    #[arg(long, env = "JUST_STORAGE_SCRUB_INTERVAL_SECS")]
    pub scrub_interval_secs: Option<u64>,
    /// Seconds between lifecycle passes (expirations, noncurrent versions, delete markers,
    /// incomplete uploads) [default: 3600].
    #[arg(long, env = "JUST_STORAGE_LIFECYCLE_INTERVAL_SECS")]
    pub lifecycle_interval_secs: Option<u64>,
    /// Length of a lifecycle "day" in seconds, for testing rules (without it a day is 86400 s
    /// and ends at midnight UTC, as in S3; response headers always show S3's dates).
    #[arg(long, env = "JUST_STORAGE_LIFECYCLE_DAY_SECS", hide = true)]
    pub lifecycle_day_secs: Option<u64>,
    /// Seconds a client has to send a request head, counted from when the connection starts
    /// waiting for it (also ends an HTTP/1.1 keep-alive wait) [default: 30].
    #[arg(long, env = "JUST_STORAGE_HEAD_TIMEOUT_SECS")]
    pub head_timeout_secs: Option<u64>,
    /// Seconds a connection may stay open with no request in progress [default: 60].
    #[arg(long, env = "JUST_STORAGE_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a request body may go without a byte before the request fails with 400
    /// RequestTimeout, as S3 answers [default: 20].
    #[arg(long, env = "JUST_STORAGE_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,
    /// Test-only crash point (see `fault.rs`); never set in production.
    #[arg(long, env = "JUST_STORAGE_FAULT", hide = true)]
    pub fault: Option<String>,
    /// Optional TOML file with the same settings (snake_case names).
    #[arg(long, env = "JUST_STORAGE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The TOML file: the same names as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    admin_listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    hot_dir: Option<PathBuf>,
    cold_dir: Option<PathBuf>,
    database_url: Option<String>,
    region: Option<String>,
    enforce_region: Option<bool>,
    domain: Option<Vec<String>>,
    gc_grace_secs: Option<u64>,
    gc_interval_secs: Option<u64>,
    orphan_age_secs: Option<u64>,
    upload_max_age_secs: Option<u64>,
    scrub_mbps: Option<u64>,
    scrub_interval_secs: Option<u64>,
    lifecycle_interval_secs: Option<u64>,
    inline_max_bytes: Option<usize>,
    head_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
}

/// How long a client may keep a connection without making progress (`server`, `s3::linger`).
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// A request head must be complete this long after the connection starts waiting for it.
    pub head: Duration,
    /// A connection with no request in progress is closed after this long.
    pub idle: Duration,
    /// A request body that delivers no byte for this long fails (400 RequestTimeout).
    pub body: Duration,
}

#[derive(Debug, Clone)]
pub struct GcConfig {
    pub grace: Duration,
    pub interval: Duration,
    pub orphan_age: Duration,
    /// AbortIncompleteMultipartUpload: uploads older than this are aborted.
    pub upload_max_age: Duration,
}

/// The lifecycle worker's pace.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    pub interval: Duration,
    /// Seconds in a lifecycle day (`engine::lifecycle::DAY_SECS` unless testing).
    pub day_secs: i64,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The admin API's listener (`None`: off).
    pub admin_listen: Option<SocketAddr>,
    /// TLS on the S3 listener (`None`: plain HTTP).
    pub tls: Option<crate::server::TlsFiles>,
    pub hot_dir: PathBuf,
    pub cold_dir: PathBuf,
    pub database_url: String,
    pub region: String,
    pub enforce_region: bool,
    pub domains: Vec<String>,
    pub gc: GcConfig,
    pub root_key: Option<(String, String)>,
    pub fault: Option<crate::fault::Fault>,
    pub scrub_mbps: u64,
    pub scrub_interval: Duration,
    pub lifecycle: LifecycleConfig,
    /// Largest PUT body kept inline in its blob row (`engine::Limits::inline_max`).
    pub inline_max: usize,
    pub timeouts: Timeouts,
}

impl Config {
    pub fn from_args(a: ServeArgs) -> Result<Config, ConfigError> {
        let f = match &a.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let listen = a
            .listen
            .or(f.listen)
            .unwrap_or_else(|| "127.0.0.1:9000".to_owned());
        let listen = listen
            .parse()
            .map_err(|e| ConfigError::Listen(listen.clone(), e))?;
        let admin_listen = match a.admin_listen.or(f.admin_listen) {
            Some(s) => Some(s.parse().map_err(|e| ConfigError::Listen(s.clone(), e))?),
            None => None,
        };
        let tls = match (a.tls_cert.or(f.tls_cert), a.tls_key.or(f.tls_key)) {
            (Some(cert), Some(key)) => Some(crate::server::TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(ConfigError::Tls),
        };
        let data_dir = a
            .data_dir
            .or(f.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let (hot_dir, cold_dir) = match (a.hot_dir.or(f.hot_dir), a.cold_dir.or(f.cold_dir)) {
            (Some(h), Some(c)) => (h, c),
            (None, None) => (data_dir.join("hot"), data_dir.join("cold")),
            _ => return Err(ConfigError::Tiers),
        };
        let database_url = a
            .database_url
            .or(f.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("meta.db").display()));
        let root_key = match (a.root_access_key, a.root_secret_key) {
            (Some(k), Some(s)) => Some((k, s)),
            (None, None) => None,
            _ => return Err(ConfigError::RootKey),
        };
        let secs = |v: Option<u64>, d: u64| Duration::from_secs(v.unwrap_or(d));
        Ok(Config {
            listen,
            admin_listen,
            tls,
            hot_dir,
            cold_dir,
            database_url,
            region: a
                .region
                .or(f.region)
                .unwrap_or_else(|| "us-east-1".to_owned()),
            enforce_region: a.enforce_region || f.enforce_region.unwrap_or(false),
            domains: if a.domain.is_empty() {
                f.domain.unwrap_or_default()
            } else {
                a.domain
            },
            gc: GcConfig {
                grace: secs(a.gc_grace_secs.or(f.gc_grace_secs), 300),
                interval: secs(a.gc_interval_secs.or(f.gc_interval_secs), 30),
                orphan_age: secs(a.orphan_age_secs.or(f.orphan_age_secs), 3600),
                upload_max_age: secs(a.upload_max_age_secs.or(f.upload_max_age_secs), 7 * 86400),
            },
            root_key,
            scrub_mbps: a.scrub_mbps.or(f.scrub_mbps).unwrap_or(50),
            scrub_interval: secs(a.scrub_interval_secs.or(f.scrub_interval_secs), 3600),
            lifecycle: LifecycleConfig {
                interval: positive(
                    a.lifecycle_interval_secs.or(f.lifecycle_interval_secs),
                    3600,
                    "lifecycle interval",
                )?,
                day_secs: match a.lifecycle_day_secs {
                    None => crate::engine::lifecycle::DAY_SECS,
                    Some(d) => positive(Some(d), d, "lifecycle day")?
                        .as_secs()
                        .try_into()
                        .unwrap_or(crate::engine::lifecycle::DAY_SECS),
                },
            },
            timeouts: Timeouts {
                head: positive(a.head_timeout_secs.or(f.head_timeout_secs), 30, "head")?,
                idle: positive(a.idle_timeout_secs.or(f.idle_timeout_secs), 60, "idle")?,
                body: positive(a.body_timeout_secs.or(f.body_timeout_secs), 20, "body")?,
            },
            inline_max: match a.inline_max_bytes.or(f.inline_max_bytes) {
                Some(n) if n > crate::blobs::INLINE_LIMIT => return Err(ConfigError::InlineMax(n)),
                Some(n) => n,
                None => crate::engine::Limits::default().inline_max,
            },
            fault: match a.fault {
                Some(f) => Some(crate::fault::Fault::parse(&f).ok_or(ConfigError::Fault(f))?),
                None => None,
            },
        })
    }

    /// Where the SQLite database file lives, if that is the backend (its folder must exist).
    pub fn sqlite_dir(&self) -> Option<PathBuf> {
        let path = self.database_url.strip_prefix("sqlite://")?;
        let path = path.split('?').next()?;
        Path::new(path).parent().map(Path::to_path_buf)
    }
}

/// A timeout in seconds; 0 would close every connection at once, so it is refused.
fn positive(v: Option<u64>, default: u64, name: &'static str) -> Result<Duration, ConfigError> {
    match v.unwrap_or(default) {
        0 => Err(ConfigError::ZeroTimeout(name)),
        n => Ok(Duration::from_secs(n)),
    }
}

fn read_file(p: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read(p.to_owned(), e))?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse(p.to_owned(), e))
}
