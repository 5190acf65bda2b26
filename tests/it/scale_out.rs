//! Several gateways on one PostgreSQL database and one data directory, as the production
//! overlay runs them: clients spread over three real processes PUT, GET and DELETE shared
//! content while every process runs its collector with no grace period; one process is killed
//! with SIGKILL mid-run. Afterwards every acknowledged write reads back, deletes stay deleted,
//! reference counts and usage are exact, `fsck` is clean and no temp file survives the sweep.
//! Also: worker leases (one lifecycle pass runner among the gateways), on both databases.
//!
//! PostgreSQL only for the processes: a SQLite database belongs to one process.

use crate::common::*;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Distinct bodies the clients write: few, so gateways keep adding and dropping references to
/// the same blobs while collectors remove the unreferenced ones.
const BODIES: u64 = 6;
const WORKERS: usize = 6;

fn body(n: u64) -> Vec<u8> {
    // Above the inline limit: blob files, shared by every gateway.
    bytes(40 << 10, 1000 + n)
}

/// What a key holds as far as acknowledged requests say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Body(u64),
    Deleted,
    /// A request whose answer never came (its gateway was killed): either outcome is fine.
    Unsure,
}

fn spawn_gateway(data: &std::path::Path, url: &str) -> Proc {
    Proc::spawn_root(
        data,
        Some(url),
        &[
            ("JUST_STORAGE_GC_GRACE_SECS", "0"),
            ("JUST_STORAGE_GC_INTERVAL_SECS", "1"),
            ("JUST_STORAGE_LIFECYCLE_INTERVAL_SECS", "1"),
        ],
    )
}

/// A client that gives up at once: a request to a killed gateway must fail, not be retried.
fn gateway_client(addr: std::net::SocketAddr) -> Client {
    let c = client(addr, ROOT_KEY, ROOT_SECRET);
    let conf = c
        .config()
        .to_builder()
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

struct Shared {
    clients: Vec<Client>,
    /// Set just before the kill: from then on requests to gateway 2 may fail.
    dying: AtomicBool,
    /// Set once it is dead: clients turn to the two others.
    killed: AtomicBool,
    stop: AtomicBool,
    known: Mutex<BTreeMap<String, Known>>,
}

/// Worker `w`: its own keys, content from the shared pool, through gateway `w % 3` (through
/// the two survivors once the third is killed).
async fn work(w: usize, s: Arc<Shared>) -> u64 {
    let mut ops = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut i = 0u64;
    while !s.stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
        let gw = if s.killed.load(Ordering::Relaxed) {
            w % 2
        } else {
            w % 3
        };
        let c = &s.clients[gw];
        let key = format!("w{w}/{}", i % 40);
        let n = (i * 7 + w as u64) % BODIES;
        let set = |k: Known| s.known.lock().expect("lock").insert(key.clone(), k);
        let outcome = if i % 5 == 4 {
            c.delete_object()
                .bucket("shared")
                .key(&key)
                .send()
                .await
                .map(|_| Known::Deleted)
                .map_err(|e| format!("{e:?}"))
        } else {
            c.put_object()
                .bucket("shared")
                .key(&key)
                .body(ByteStream::from(body(n)))
                .send()
                .await
                .map(|_| Known::Body(n))
                .map_err(|e| format!("{e:?}"))
        };
        match outcome {
            Ok(k) => {
                set(k);
            }
            // Only requests to the killed gateway may fail.
            Err(e) if gw == 2 && s.dying.load(Ordering::Relaxed) => {
                let _ = e;
                set(Known::Unsure);
            }
            Err(e) => panic!("worker {w}: {key} through gateway {gw}: {e}"),
        }
        // Read back another key of this worker through another gateway.
        let other = format!("w{w}/{}", (i * 13) % 40);
        let want = s.known.lock().expect("lock").get(&other).copied();
        if let Some(Known::Body(n)) = want {
            let reader = &s.clients[(gw + 1) % 2];
            let got = reader
                .get_object()
                .bucket("shared")
                .key(&other)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {other}: {e:?}"));
            let data = got.body.collect().await.expect("body").into_bytes();
            assert!(data[..] == body(n)[..], "{other}: read back other bytes");
        }
        ops += 1;
        i += 1;
    }
    ops
}

async fn gateways_share_one_database_and_one_volume() {
    let pg = PgDb::create().await;
    let url = pg.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // Started at once, as a Deployment starts its pods: migrations and the root key race.
    let starts: Vec<_> = (0..3)
        .map(|_| {
            let (data, url) = (data.clone(), url.clone());
            std::thread::spawn(move || spawn_gateway(&data, &url))
        })
        .collect();
    let mut gws: Vec<Proc> = starts
        .into_iter()
        .map(|t| t.join().expect("gateway start"))
        .collect();
    let clients: Vec<Client> = gws.iter().map(|g| gateway_client(g.addr)).collect();
    clients[0]
        .create_bucket()
        .bucket("shared")
        .send()
        .await
        .expect("create");
    let shared = Arc::new(Shared {
        clients,
        dying: AtomicBool::new(false),
        killed: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        known: Mutex::new(BTreeMap::new()),
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(work(w, shared.clone())))
        .collect();

    tokio::time::sleep(Duration::from_secs(6)).await;
    // Exactly one gateway has made lifecycle passes: the lease's holder.
    let mut runners = 0;
    for g in &gws {
        let m = raw(
            g.addr,
            b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        if m.body.lines().any(|l| {
            l.starts_with("juststorage_worker_runs_total{worker=\"lifecycle\",outcome=\"ok\"}")
        }) {
            runners += 1;
        }
    }
    assert_eq!(runners, 1, "gateways that ran lifecycle passes");
    // An upload into gateway 2 that is half sent when it dies: its temp file is left behind.
    let head = signed_head(
        gws[2].addr,
        "PUT",
        "/shared/cut-off",
        &[],
        &(4u32 << 20).to_string(),
        "UNSIGNED-PAYLOAD",
    );
    let mut cut = tokio::net::TcpStream::connect(gws[2].addr)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut cut, head.as_bytes())
        .await
        .expect("head");
    // More than a body kept in memory (`blobs::write::SMALL`): it goes to a temp file.
    tokio::io::AsyncWriteExt::write_all(&mut cut, &bytes(1 << 20, 9))
        .await
        .expect("part of the body");
    let temp_files = || {
        ["hot", "cold"]
            .iter()
            .flat_map(|t| {
                std::fs::read_dir(data.join(t).join("tmp"))
                    .into_iter()
                    .flatten()
            })
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect::<Vec<_>>()
    };
    // Its temp file is the one past 512 KiB (the clients' bodies are 40 KiB). Bounded: a
    // loaded machine may take a while to hand the bytes to the server.
    let mut waited = 0;
    let cut_file = loop {
        let big = temp_files()
            .into_iter()
            .find(|f| std::fs::metadata(f).is_ok_and(|m| m.len() >= 512 << 10));
        if let Some(f) = big {
            break f;
        }
        waited += 1;
        assert!(
            waited < 1500,
            "the upload into gateway 2 made no temp file in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // SIGKILL: no shutdown, uploads cut off mid-body, a collector possibly mid-pass.
    shared.dying.store(true, Ordering::Relaxed);
    gws[2].child.kill().expect("kill -9");
    let _ = gws[2].child.wait();
    shared.killed.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    shared.stop.store(true, Ordering::Relaxed);
    let mut ops = 0;
    for w in workers {
        ops += w.await.expect("a worker failed");
    }
    // Let the survivors' collectors run (1 s interval, no grace) before the reads below.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let known = shared.known.lock().expect("lock").clone();
    let (mut present, mut unsure) = (BTreeSet::new(), 0);
    for (i, (key, k)) in known.iter().enumerate() {
        let c = &shared.clients[i % 2];
        let got = c.get_object().bucket("shared").key(key).send().await;
        match (k, got) {
            (Known::Body(n), Ok(o)) => {
                let data = o.body.collect().await.expect("body").into_bytes();
                assert!(
                    data[..] == body(*n)[..],
                    "{key}: acknowledged PUT reads back"
                );
                present.insert(key.clone());
            }
            (Known::Body(_), Err(e)) => panic!("{key}: acknowledged PUT lost: {e:?}"),
            (Known::Deleted, Ok(_)) => panic!("{key}: acknowledged DELETE undone"),
            (Known::Deleted, Err(e)) => assert_eq!(status(&e), 404, "{key}"),
            (Known::Unsure, Ok(_)) => {
                unsure += 1;
                present.insert(key.clone());
            }
            (Known::Unsure, Err(e)) => {
                unsure += 1;
                assert_eq!(status(&e), 404, "{key}");
            }
        }
    }
    let listed: BTreeSet<String> = shared.clients[1]
        .list_objects_v2()
        .bucket("shared")
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flat_map(|p| p.expect("list").contents.unwrap_or_default())
        .filter_map(|o| o.key)
        .collect();
    assert_eq!(
        listed, present,
        "the listing shows exactly the keys that exist"
    );

    for g in gws.drain(..2) {
        assert!(g.terminate().success());
    }
    drop(cut);
    assert!(cut_file.exists(), "the cut-off upload left its temp file");
    // The killed gateway's unfinished uploads: swept (orphan age 0 is safe now, all stopped).
    let zero = ["gc", "--gc-grace-secs", "0", "--orphan-age-secs", "0"];
    let (ok, out) = cli(&data, Some(&url), &zero);
    assert!(ok, "gc: {out}");
    let (ok, out) = cli(&data, Some(&url), &["fsck", "--output", "json"]);
    assert!(ok, "fsck is clean after the run: {out}");
    let meta = just_storage::meta::open(&url).await.expect("open");
    let bad = meta.refcount_mismatches().await.expect("refcounts");
    assert!(bad.is_empty(), "{bad:?}");
    assert!(meta.check_usage(false).await.expect("usage").is_clean());
    let left = temp_files();
    assert!(left.is_empty(), "temp files survived the sweep: {left:?}");
    eprintln!(
        "scale-out: {ops} operations over 3 gateways (one killed), {} keys checked ({unsure} unsure)",
        known.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_share_one_database_and_one_volume_postgres() {
    gateways_share_one_database_and_one_volume().await;
}

/// A lease has one holder until it lapses; its holder renews it.
async fn leases_have_one_holder(s: &TestServer) {
    let m = s.engine().meta();
    assert!(m.take_lease("pass", "a", 100, 160).await.expect("take"));
    assert!(
        !m.take_lease("pass", "b", 120, 180)
            .await
            .expect("held by a")
    );
    assert!(m.take_lease("pass", "a", 150, 210).await.expect("renew"));
    assert!(
        !m.take_lease("pass", "b", 209, 269)
            .await
            .expect("still a's")
    );
    assert!(m.take_lease("pass", "b", 210, 270).await.expect("lapsed"));
    assert!(!m.take_lease("pass", "a", 211, 271).await.expect("now b's"));
    assert!(
        m.take_lease("other", "a", 211, 271)
            .await
            .expect("another name")
    );
    // Released by its holder only; then anyone may take it at once.
    m.release_lease("pass", "a").await.expect("release");
    assert!(
        !m.take_lease("pass", "a", 212, 272)
            .await
            .expect("still b's")
    );
    m.release_lease("pass", "b").await.expect("release");
    assert!(m.take_lease("pass", "a", 213, 273).await.expect("released"));
}
both_dbs!(leases_have_one_holder);
