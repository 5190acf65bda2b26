//! The workloads. Each step runs against one target's client and returns its measurement; the
//! caller takes the server's CPU and memory readings around it.

use crate::body::{self, GenBody};
use crate::lean::{self, Lean};
use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::{Method, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

pub fn sdk_err<E: std::error::Error>(what: &str, e: E) -> anyhow::Error {
    anyhow!("{what}: {}", DisplayErrorContext(e))
}

/// Sizes and counts of one profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: &'static str,
    pub big: u64,
    pub par_n: usize,
    pub par_size: u64,
    /// Many large bodies at once: memory per request must stay bounded.
    pub wide_n: usize,
    pub wide_size: u64,
    pub mp_total: u64,
    pub mp_part: u64,
    pub mp_inflight: usize,
    pub small_size: usize,
    pub small_conc: usize,
    pub small_puts: usize,
    pub small_reads: usize,
    pub small_cap: Duration,
    pub list_dirs: usize,
    pub list_files: usize,
    pub list_page: i32,
    pub list_passes: usize,
    pub list_reqs: usize,
    pub list_cap: Duration,
    pub dedup_size: u64,
    pub dedup_copies: usize,
}

impl Profile {
    pub fn full() -> Profile {
        Profile {
            name: "full",
            big: GIB,
            par_n: 4,
            par_size: 256 * MIB,
            wide_n: 32,
            wide_size: 32 * MIB,
            mp_total: GIB,
            mp_part: 16 * MIB,
            mp_inflight: 8,
            small_size: 4096,
            small_conc: 32,
            small_puts: 10_000,
            small_reads: 20_000,
            small_cap: Duration::from_secs(60),
            list_dirs: 100,
            list_files: 100,
            list_page: 1000,
            list_passes: 20,
            list_reqs: 200,
            list_cap: Duration::from_secs(20),
            dedup_size: 64 * MIB,
            dedup_copies: 4,
        }
    }

    pub fn smoke() -> Profile {
        Profile {
            name: "smoke",
            big: 8 * MIB,
            par_n: 4,
            par_size: 2 * MIB,
            wide_n: 32,
            wide_size: MIB,
            mp_total: 15 * MIB,
            mp_part: 5 * MIB,
            mp_inflight: 8,
            small_size: 4096,
            small_conc: 32,
            small_puts: 200,
            small_reads: 400,
            small_cap: Duration::from_secs(10),
            list_dirs: 10,
            list_files: 20,
            list_page: 50,
            list_passes: 2,
            list_reqs: 5,
            list_cap: Duration::from_secs(5),
            dedup_size: 4 * MIB,
            dedup_copies: 4,
        }
    }

    pub fn list_keys(&self) -> usize {
        self.list_dirs * self.list_files
    }
}

/// One measured step, in run order. Groups carry their own setup, so `--only` works by group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Put1,
    Get1,
    Put4,
    Get4,
    PutWide,
    GetWide,
    Multipart,
    SmallPut,
    SmallGet,
    SmallHead,
    SmallDelete,
    LeanPut,
    LeanGet,
    LeanHead,
    LeanDelete,
    ListSetup,
    ListFlat,
    ListDelim,
    ListPrefixDelim,
    LeanListFlat,
    LeanListDelim,
    Dedup,
}

pub const ALL_STEPS: [Step; 22] = [
    Step::Put1,
    Step::Get1,
    Step::Put4,
    Step::Get4,
    Step::PutWide,
    Step::GetWide,
    Step::Multipart,
    Step::SmallPut,
    Step::SmallGet,
    Step::SmallHead,
    Step::SmallDelete,
    Step::LeanPut,
    Step::LeanGet,
    Step::LeanHead,
    Step::LeanDelete,
    Step::ListSetup,
    Step::ListFlat,
    Step::ListDelim,
    Step::ListPrefixDelim,
    Step::LeanListFlat,
    Step::LeanListDelim,
    Step::Dedup,
];

pub const GROUPS: [&str; 7] = [
    "stream",
    "parallel",
    "wide",
    "multipart",
    "small",
    "list",
    "dedup",
];

/// What "good" means for a JustStorage result (issue 7's targets; judged on the full profile).
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    AtLeast(f64),
    None,
}

impl Step {
    pub fn id(self) -> &'static str {
        match self {
            Step::Put1 => "put-single",
            Step::Get1 => "get-single",
            Step::Put4 => "put-parallel",
            Step::Get4 => "get-parallel",
            Step::PutWide => "put-wide",
            Step::GetWide => "get-wide",
            Step::Multipart => "multipart",
            Step::SmallPut => "small-put",
            Step::SmallGet => "small-get",
            Step::SmallHead => "small-head",
            Step::SmallDelete => "small-delete",
            Step::ListSetup => "list-setup",
            Step::ListFlat => "list-flat",
            Step::ListDelim => "list-delimiter",
            Step::ListPrefixDelim => "list-prefix-delimiter",
            Step::LeanPut => "lean-put",
            Step::LeanGet => "lean-get",
            Step::LeanHead => "lean-head",
            Step::LeanDelete => "lean-delete",
            Step::LeanListFlat => "lean-list-flat",
            Step::LeanListDelim => "lean-list-delimiter",
            Step::Dedup => "dedup",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            Step::Put1 | Step::Get1 => "stream",
            Step::Put4 | Step::Get4 => "parallel",
            Step::PutWide | Step::GetWide => "wide",
            Step::Multipart => "multipart",
            Step::SmallPut
            | Step::SmallGet
            | Step::SmallHead
            | Step::SmallDelete
            | Step::LeanPut
            | Step::LeanGet
            | Step::LeanHead
            | Step::LeanDelete => "small",
            Step::ListSetup
            | Step::ListFlat
            | Step::ListDelim
            | Step::ListPrefixDelim
            | Step::LeanListFlat
            | Step::LeanListDelim => "list",
            Step::Dedup => "dedup",
        }
    }

    /// The step that stores what this one consumes: a DELETE step run again (`--repeat`) first
    /// gets its objects back from it, outside the measurement.
    pub fn refill(self) -> Option<Step> {
        match self {
            Step::SmallDelete => Some(Step::SmallPut),
            Step::LeanDelete => Some(Step::LeanPut),
            _ => None,
        }
    }

    /// The same workload driven by the SDK client, for a lean-client step.
    pub fn sdk_twin(self) -> Option<Step> {
        match self {
            Step::LeanPut => Some(Step::SmallPut),
            Step::LeanGet => Some(Step::SmallGet),
            Step::LeanHead => Some(Step::SmallHead),
            Step::LeanDelete => Some(Step::SmallDelete),
            Step::LeanListFlat => Some(Step::ListFlat),
            Step::LeanListDelim => Some(Step::ListDelim),
            _ => None,
        }
    }

    pub fn title(self, p: &Profile) -> String {
        if let Some(twin) = self.sdk_twin() {
            return format!("{}, lean client", twin.title(p));
        }
        let sz = |b: u64| human_size(b);
        match self {
            Step::Put1 => format!("PUT 1 x {}", sz(p.big)),
            Step::Get1 => format!("GET 1 x {}", sz(p.big)),
            Step::Put4 => format!("PUT {} x {} parallel", p.par_n, sz(p.par_size)),
            Step::Get4 => format!("GET {} x {} parallel", p.par_n, sz(p.par_size)),
            Step::PutWide => format!("PUT {} x {} c{}", p.wide_n, sz(p.wide_size), p.wide_n),
            Step::GetWide => format!("GET {} x {} c{}", p.wide_n, sz(p.wide_size), p.wide_n),
            Step::Multipart => format!(
                "multipart {} ({} parts, {} in flight)",
                sz(p.mp_total),
                p.mp_total.div_ceil(p.mp_part),
                p.mp_inflight
            ),
            Step::SmallPut => format!("PUT {} c{}", sz(p.small_size as u64), p.small_conc),
            Step::SmallGet => format!("GET {} c{}", sz(p.small_size as u64), p.small_conc),
            Step::SmallHead => format!("HEAD c{}", p.small_conc),
            Step::SmallDelete => format!("DELETE c{}", p.small_conc),
            Step::ListSetup => format!("list setup: PUT {} keys c{}", p.list_keys(), p.small_conc),
            Step::ListFlat => format!("LIST {} keys, {}/page", p.list_keys(), p.list_page),
            Step::ListDelim => format!("LIST delimiter / ({} prefixes)", p.list_dirs),
            Step::ListPrefixDelim => {
                format!("LIST prefix dN/ delimiter / ({} keys)", p.list_files)
            }
            Step::Dedup => format!("dedup {} x {} same body", p.dedup_copies, sz(p.dedup_size)),
            _ => unreachable!("lean steps are titled by their SDK twin"),
        }
    }

    pub fn unit(self) -> &'static str {
        if let Some(twin) = self.sdk_twin() {
            return twin.unit();
        }
        match self {
            Step::Put1
            | Step::Get1
            | Step::Put4
            | Step::Get4
            | Step::PutWide
            | Step::GetWide
            | Step::Multipart => "MB/s",
            Step::SmallPut
            | Step::SmallGet
            | Step::SmallHead
            | Step::SmallDelete
            | Step::ListSetup => "ops/s",
            Step::ListFlat | Step::ListDelim | Step::ListPrefixDelim => "pages/s",
            Step::Dedup => "stored/sent",
            _ => unreachable!("lean steps have their SDK twin's unit"),
        }
    }

    pub fn higher_is_better(self) -> bool {
        !matches!(self, Step::Dedup)
    }

    pub fn goal(self) -> Goal {
        if let Some(twin) = self.sdk_twin() {
            return twin.goal();
        }
        match self {
            Step::Put1 => Goal::AtLeast(450.0),
            Step::Get1 => Goal::AtLeast(1500.0),
            Step::SmallPut => Goal::AtLeast(3000.0),
            Step::SmallGet => Goal::AtLeast(5000.0),
            Step::SmallHead => Goal::AtLeast(8000.0),
            Step::SmallDelete => Goal::AtLeast(5000.0),
            Step::ListFlat => Goal::AtLeast(200.0),
            _ => Goal::None,
        }
    }
}

pub fn human_size(b: u64) -> String {
    if b >= GIB && b.is_multiple_of(GIB) {
        format!("{} GiB", b / GIB)
    } else if b >= MIB && b.is_multiple_of(MIB) {
        format!("{} MiB", b / MIB)
    } else if b >= 1024 && b.is_multiple_of(1024) {
        format!("{} KiB", b / 1024)
    } else {
        format!("{b} B")
    }
}

/// The result of one step on one target.
#[derive(Debug, Default, Clone)]
pub struct Measured {
    pub value: Option<f64>,
    pub seconds: f64,
    pub ops: u64,
    pub bytes: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Per-target state carried from a step to the next of its group.
#[derive(Debug, Default)]
pub struct State {
    pub small_keys: usize,
    /// Runs of the dedup step so far: each run (`--repeat`) sends a body of its own, which
    /// the server has not stored yet.
    pub dedup_runs: u64,
}

pub struct Ctx<'a> {
    pub client: &'a Client,
    pub lean: &'a Arc<Lean>,
    pub bucket: &'a str,
    pub list_bucket: &'a str,
    pub data_dir: Option<&'a std::path::Path>,
    pub profile: &'a Profile,
    pub state: &'a mut State,
}

impl Ctx<'_> {
    /// The client a step is driven by.
    fn via(&self, step: Step) -> Via {
        if step.sdk_twin().is_some() {
            Via::Lean(self.lean.clone())
        } else {
            Via::Sdk(self.client.clone())
        }
    }
}

/// A client, owned so that workers can be spawned with it.
#[derive(Clone)]
enum Via {
    Sdk(Client),
    Lean(Arc<Lean>),
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

pub async fn run(step: Step, cx: Ctx<'_>) -> Result<Measured> {
    let p = cx.profile;
    match step {
        Step::Put1 => put_many(cx.client, cx.bucket, "stream/one", 1, p.big, 1).await,
        Step::Get1 => get_many(cx.client, cx.bucket, "stream/one", 1, p.big).await,
        Step::Put4 => put_many(cx.client, cx.bucket, "par/obj", p.par_n, p.par_size, 100).await,
        Step::Get4 => get_many(cx.client, cx.bucket, "par/obj", p.par_n, p.par_size).await,
        Step::PutWide => {
            put_many(cx.client, cx.bucket, "wide/obj", p.wide_n, p.wide_size, 200).await
        }
        Step::GetWide => get_many(cx.client, cx.bucket, "wide/obj", p.wide_n, p.wide_size).await,
        Step::Multipart => multipart(cx.client, cx.bucket, p).await,
        Step::SmallPut | Step::LeanPut => {
            let m = small(cx.via(step), cx.bucket, step, p, p.small_puts, 0).await?;
            cx.state.small_keys = m.ops as usize;
            Ok(m)
        }
        Step::SmallGet | Step::SmallHead | Step::LeanGet | Step::LeanHead => {
            let keys = cx.state.small_keys;
            small(cx.via(step), cx.bucket, step, p, p.small_reads, keys).await
        }
        Step::SmallDelete | Step::LeanDelete => {
            let keys = cx.state.small_keys;
            let m = small(cx.via(step), cx.bucket, step, p, keys, keys).await?;
            cx.state.small_keys = 0;
            Ok(m)
        }
        Step::ListSetup => {
            let via = cx.via(step);
            small(via, cx.list_bucket, step, p, p.list_keys(), 0).await
        }
        Step::ListFlat
        | Step::ListDelim
        | Step::ListPrefixDelim
        | Step::LeanListFlat
        | Step::LeanListDelim => list(&cx.via(step), cx.list_bucket, step, p).await,
        Step::Dedup => {
            cx.state.dedup_runs += 1;
            let seed = 777 + cx.state.dedup_runs;
            dedup(cx.client, cx.bucket, cx.data_dir, p, seed).await
        }
    }
}

async fn put_one(c: &Client, bucket: &str, key: &str, seed: u64, len: u64) -> Result<()> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .content_length(len as i64)
        .body(ByteStream::from_body_1_x(GenBody::new(seed, len)))
        .send()
        .await
        .map_err(|e| sdk_err(&format!("PUT {key}"), e))?;
    Ok(())
}

async fn get_one(c: &Client, bucket: &str, key: &str, len: u64) -> Result<()> {
    let mut out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| sdk_err(&format!("GET {key}"), e))?;
    let mut n = 0u64;
    while let Some(chunk) = out.body.next().await {
        n += chunk
            .map_err(|e| sdk_err(&format!("GET {key} body"), e))?
            .len() as u64;
    }
    if n != len {
        bail!("GET {key}: {n} bytes, expected {len}");
    }
    Ok(())
}

/// `n` objects `<prefix>-<i>` of `len` bytes each, all in flight at once.
async fn put_many(
    c: &Client,
    bucket: &str,
    prefix: &str,
    n: usize,
    len: u64,
    seed0: u64,
) -> Result<Measured> {
    let t = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (c, bucket) = (c.clone(), bucket.to_owned());
            let key = format!("{prefix}-{i}");
            tokio::spawn(async move { put_one(&c, &bucket, &key, seed0 + i as u64, len).await })
        })
        .collect();
    for h in tasks {
        h.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    let bytes = n as u64 * len;
    Ok(Measured {
        value: Some(mbps(bytes, secs)),
        seconds: secs,
        ops: n as u64,
        bytes,
        ..Default::default()
    })
}

async fn get_many(c: &Client, bucket: &str, prefix: &str, n: usize, len: u64) -> Result<Measured> {
    let t = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (c, bucket) = (c.clone(), bucket.to_owned());
            let key = format!("{prefix}-{i}");
            tokio::spawn(async move { get_one(&c, &bucket, &key, len).await })
        })
        .collect();
    for h in tasks {
        h.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    let bytes = n as u64 * len;
    Ok(Measured {
        value: Some(mbps(bytes, secs)),
        seconds: secs,
        ops: n as u64,
        bytes,
        ..Default::default()
    })
}

async fn multipart(c: &Client, bucket: &str, p: &Profile) -> Result<Measured> {
    let key = "mpu/object";
    let t = Instant::now();
    let up = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| sdk_err("CreateMultipartUpload", e))?;
    let id = up
        .upload_id()
        .ok_or_else(|| anyhow!("CreateMultipartUpload: no upload id"))?
        .to_owned();
    let parts = p.mp_total.div_ceil(p.mp_part);
    let uploaded: Result<Vec<CompletedPart>> = futures::stream::iter(1..=parts)
        .map(|n| {
            let (c, bucket, id) = (c.clone(), bucket.to_owned(), id.clone());
            let len = p.mp_part.min(p.mp_total - (n - 1) * p.mp_part);
            tokio::spawn(async move {
                let r = c
                    .upload_part()
                    .bucket(&bucket)
                    .key(key)
                    .upload_id(&id)
                    .part_number(n as i32)
                    .content_length(len as i64)
                    .body(ByteStream::from_body_1_x(GenBody::new(1000 + n, len)))
                    .send()
                    .await
                    .map_err(|e| sdk_err(&format!("UploadPart {n}"), e))?;
                Ok::<_, anyhow::Error>(
                    CompletedPart::builder()
                        .part_number(n as i32)
                        .set_e_tag(r.e_tag().map(str::to_owned))
                        .build(),
                )
            })
        })
        .buffer_unordered(p.mp_inflight)
        .map(|j| j.map_err(anyhow::Error::from).and_then(|r| r))
        .try_collect()
        .await;
    let mut uploaded = match uploaded {
        Ok(v) => v,
        Err(e) => {
            let _ = c
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&id)
                .send()
                .await;
            return Err(e);
        }
    };
    uploaded.sort_by_key(|p| p.part_number());
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(uploaded))
                .build(),
        )
        .send()
        .await
        .map_err(|e| sdk_err("CompleteMultipartUpload", e))?;
    let secs = t.elapsed().as_secs_f64();
    let head = c
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| sdk_err("HEAD multipart object", e))?;
    if head.content_length() != Some(p.mp_total as i64) {
        bail!(
            "multipart object is {:?} bytes, expected {}",
            head.content_length(),
            p.mp_total
        );
    }
    let mut extra = serde_json::Map::new();
    extra.insert("parts".into(), parts.into());
    Ok(Measured {
        value: Some(mbps(p.mp_total, secs)),
        seconds: secs,
        ops: parts,
        bytes: p.mp_total,
        extra,
        ..Default::default()
    })
}

fn percentile(sorted_us: &[u32], pct: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = ((sorted_us.len() as f64 * pct / 100.0).ceil() as usize).clamp(1, sorted_us.len());
    Some(sorted_us[rank - 1] as f64 / 1000.0)
}

fn small_key(i: usize) -> String {
    format!("small/{i:07}")
}

fn list_key(p: &Profile, i: usize) -> String {
    format!("d{}/f{}", i / p.list_files, i % p.list_files)
}

/// `ops` requests from `small_conc` workers (stops early after `small_cap`); latencies per op.
/// Key `i` of a read is `i % keys`.
async fn small(
    via: Via,
    bucket: &str,
    step: Step,
    p: &Profile,
    ops: usize,
    keys: usize,
) -> Result<Measured> {
    let reads = !matches!(step, Step::SmallPut | Step::LeanPut | Step::ListSetup);
    if reads && keys == 0 {
        bail!("no objects to read (the put step stored none)");
    }
    let next = Arc::new(AtomicUsize::new(0));
    // The listing fixture must be complete; measured steps stop after `small_cap`.
    let cap = if step == Step::ListSetup {
        Duration::from_secs(900)
    } else {
        p.small_cap
    };
    let deadline = Instant::now() + cap;
    let t = Instant::now();
    let workers: Vec<_> = (0..p.small_conc)
        .map(|_| {
            let (via, bucket, next, p) = (via.clone(), bucket.to_owned(), next.clone(), p.clone());
            tokio::spawn(async move {
                let mut lat: Vec<u32> = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops || Instant::now() >= deadline {
                        break;
                    }
                    let t0 = Instant::now();
                    small_op(&via, &bucket, step, &p, i, keys).await?;
                    lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
                Ok::<_, anyhow::Error>(lat)
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(ops);
    for w in workers {
        lat.extend(w.await??);
    }
    let secs = t.elapsed().as_secs_f64();
    if step == Step::ListSetup && lat.len() < ops {
        bail!(
            "list setup stored only {} of {ops} keys within {cap:?}",
            lat.len()
        );
    }
    lat.sort_unstable();
    let n = lat.len() as u64;
    let mut extra = serde_json::Map::new();
    if (n as usize) < ops {
        extra.insert(
            "stopped_early".into(),
            format!("{n} of {ops} ops within {cap:?}").into(),
        );
    }
    let bytes = match step {
        Step::SmallPut | Step::SmallGet | Step::LeanPut | Step::LeanGet => n * p.small_size as u64,
        _ => 0,
    };
    Ok(Measured {
        value: Some(n as f64 / secs.max(1e-9)),
        seconds: secs,
        ops: n,
        bytes,
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        extra,
    })
}

/// Request `i` of a small-object step (key `i % keys` for reads).
async fn small_op(
    via: &Via,
    bucket: &str,
    step: Step,
    p: &Profile,
    i: usize,
    keys: usize,
) -> Result<()> {
    let len = p.small_size;
    match (via, step) {
        (Via::Sdk(c), Step::SmallPut) => {
            c.put_object()
                .bucket(bucket)
                .key(small_key(i))
                .body(ByteStream::from(body::small(5_000_000 + i as u64, len)))
                .send()
                .await
                .map_err(|e| sdk_err(&format!("PUT {}", small_key(i)), e))?;
        }
        (Via::Sdk(c), Step::ListSetup) => {
            c.put_object()
                .bucket(bucket)
                .key(list_key(p, i))
                .body(ByteStream::from(body::small(9_000_000 + i as u64, 64)))
                .send()
                .await
                .map_err(|e| sdk_err(&format!("PUT {}", list_key(p, i)), e))?;
        }
        (Via::Sdk(c), Step::SmallGet) => {
            get_one(c, bucket, &small_key(i % keys), len as u64).await?;
        }
        (Via::Sdk(c), Step::SmallHead) => {
            let key = small_key(i % keys);
            let h = c
                .head_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| sdk_err(&format!("HEAD {key}"), e))?;
            if h.content_length() != Some(len as i64) {
                bail!("HEAD {key}: length {:?}", h.content_length());
            }
        }
        (Via::Sdk(c), Step::SmallDelete) => {
            let key = small_key(i % keys);
            c.delete_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| sdk_err(&format!("DELETE {key}"), e))?;
        }
        (Via::Lean(c), Step::LeanPut) => {
            let path = format!("/{bucket}/{}", small_key(i));
            let body = body::small(5_000_000 + i as u64, len);
            c.send(Method::PUT, &path, &[], body, StatusCode::OK)
                .await?;
        }
        (Via::Lean(c), Step::LeanGet) => {
            let path = format!("/{bucket}/{}", small_key(i % keys));
            let r = c
                .send(Method::GET, &path, &[], Bytes::new(), StatusCode::OK)
                .await?;
            if r.body.len() != len {
                bail!("GET {path}: {} bytes, expected {len}", r.body.len());
            }
        }
        (Via::Lean(c), Step::LeanHead) => {
            let path = format!("/{bucket}/{}", small_key(i % keys));
            let r = c
                .send(Method::HEAD, &path, &[], Bytes::new(), StatusCode::OK)
                .await?;
            let got = r.headers.get(http::header::CONTENT_LENGTH);
            if got.and_then(|v| v.to_str().ok()) != Some(len.to_string().as_str()) {
                bail!("HEAD {path}: length {got:?}");
            }
        }
        (Via::Lean(c), Step::LeanDelete) => {
            let path = format!("/{bucket}/{}", small_key(i % keys));
            c.send(
                Method::DELETE,
                &path,
                &[],
                Bytes::new(),
                StatusCode::NO_CONTENT,
            )
            .await?;
        }
        _ => unreachable!("{} is not a small-object step of this client", step.id()),
    }
    Ok(())
}

/// What one listing page held.
struct Page {
    keys: usize,
    prefixes: usize,
    /// The continuation token of a truncated page.
    next: Option<String>,
}

/// One ListObjectsV2 page.
async fn list_page(
    via: &Via,
    bucket: &str,
    max_keys: i32,
    prefix: Option<&str>,
    delimiter: Option<&str>,
    token: Option<String>,
) -> Result<Page> {
    let (keys, prefixes, truncated, next) = match via {
        Via::Sdk(c) => {
            let out = c
                .list_objects_v2()
                .bucket(bucket)
                .max_keys(max_keys)
                .set_prefix(prefix.map(str::to_owned))
                .set_delimiter(delimiter.map(str::to_owned))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| sdk_err("ListObjectsV2", e))?;
            (
                out.contents().len(),
                out.common_prefixes().len(),
                out.is_truncated() == Some(true),
                out.next_continuation_token().map(str::to_owned),
            )
        }
        Via::Lean(c) => {
            let max = max_keys.to_string();
            let mut q = vec![("list-type", "2"), ("max-keys", max.as_str())];
            q.extend(prefix.map(|v| ("prefix", v)));
            q.extend(delimiter.map(|v| ("delimiter", v)));
            q.extend(token.as_deref().map(|v| ("continuation-token", v)));
            let r = c
                .send(
                    Method::GET,
                    &format!("/{bucket}"),
                    &q,
                    Bytes::new(),
                    StatusCode::OK,
                )
                .await?;
            let xml = std::str::from_utf8(&r.body).context("ListObjectsV2: not UTF-8")?;
            (
                xml.matches("<Contents>").count(),
                xml.matches("<CommonPrefixes>").count(),
                lean::elements(xml, "IsTruncated").next().as_deref() == Some("true"),
                lean::elements(xml, "NextContinuationToken").next(),
            )
        }
    };
    if truncated && next.is_none() {
        bail!("ListObjectsV2: truncated page without a continuation token");
    }
    Ok(Page {
        keys,
        prefixes,
        next: next.filter(|_| truncated),
    })
}

/// Sequential ListObjectsV2 pages: full paginated passes (flat), the root with delimiter, or
/// one `dN/` directory with delimiter; each answer is checked.
async fn list(via: &Via, bucket: &str, step: Step, p: &Profile) -> Result<Measured> {
    let step = step.sdk_twin().unwrap_or(step);
    let t = Instant::now();
    let deadline = t + p.list_cap;
    let mut pages = 0u64;
    let mut keys = 0u64;
    let mut lat: Vec<u32> = Vec::new();
    let rounds = if step == Step::ListFlat {
        p.list_passes
    } else {
        p.list_reqs
    };
    for round in 0..rounds {
        if round > 0 && Instant::now() >= deadline {
            break;
        }
        let (prefix, delimiter) = match step {
            Step::ListFlat => (None, None),
            Step::ListDelim => (None, Some("/")),
            _ => (Some(format!("d{}/", round % p.list_dirs)), Some("/")),
        };
        let mut token: Option<String> = None;
        let (mut got_keys, mut got_prefixes) = (0usize, 0usize);
        loop {
            let t0 = Instant::now();
            let page = list_page(
                via,
                bucket,
                p.list_page,
                prefix.as_deref(),
                delimiter,
                token.take(),
            )
            .await?;
            lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
            pages += 1;
            got_keys += page.keys;
            got_prefixes += page.prefixes;
            token = page.next;
            if token.is_none() {
                break;
            }
        }
        let (want_keys, want_prefixes) = match step {
            Step::ListFlat => (p.list_keys(), 0),
            Step::ListDelim => (0, p.list_dirs),
            _ => (p.list_files, 0),
        };
        if got_keys != want_keys || got_prefixes != want_prefixes {
            bail!(
                "ListObjectsV2 {prefix:?} {delimiter:?}: {got_keys} keys and {got_prefixes} \
                 prefixes, expected {want_keys} and {want_prefixes}"
            );
        }
        keys += (got_keys + got_prefixes) as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    lat.sort_unstable();
    let mut extra = serde_json::Map::new();
    extra.insert(
        "entries_per_s".into(),
        (keys as f64 / secs.max(1e-9)).into(),
    );
    Ok(Measured {
        value: Some(pages as f64 / secs.max(1e-9)),
        seconds: secs,
        ops: pages,
        bytes: 0,
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        extra,
    })
}

/// The same body (`seed`) under `dedup_copies` new keys, one after another: growth of the data
/// directory divided by the bytes sent (1.0 = no dedup, 1/copies = perfect).
async fn dedup(
    c: &Client,
    bucket: &str,
    data_dir: Option<&std::path::Path>,
    p: &Profile,
    seed: u64,
) -> Result<Measured> {
    let before = data_dir.map(crate::servers::disk_usage);
    let t = Instant::now();
    for i in 0..p.dedup_copies {
        // Keys of this run's own: a run that overwrote the last run's keys measured a server
        // without dedup as growing by nothing (a body replaced by one of the same size).
        let key = format!("dedup/{seed}/copy-{i}");
        put_one(c, bucket, &key, seed, p.dedup_size).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    let sent = p.dedup_size * p.dedup_copies as u64;
    let after = data_dir.map(crate::servers::disk_usage);
    let mut extra = serde_json::Map::new();
    extra.insert("throughput_mb_s".into(), mbps(sent, secs).into());
    let value = match (before, after) {
        (Some(b), Some(a)) => {
            let growth = a.saturating_sub(b);
            extra.insert("data_dir_growth_bytes".into(), growth.into());
            Some(growth as f64 / sent as f64)
        }
        _ => None,
    };
    Ok(Measured {
        value,
        seconds: secs,
        ops: p.dedup_copies as u64,
        bytes: sent,
        extra,
        ..Default::default()
    })
}
