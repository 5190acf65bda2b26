//! PostgreSQL's group commit (one set-based `js_commit` call for many items) against its
//! definition, the same items committed one at a time (a call each): from the same state,
//! random groups of PUTs, DELETEs and permanent deletes of versions on distinct keys, in
//! unversioned, versioned and suspended buckets, must give the same answers and leave the same
//! rows; a group that names a key twice is refused whole (JS002), and the server then
//! commits its items one at a time. Each group runs both ways in a transaction that is rolled
//! back, then for real, so the state the next group starts from has overwrites, shared and
//! released blobs and versions waiting for the collector.

use crate::common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, PgConnection};

const ROUNDS: usize = 80;
const KEYS: usize = 8;
const HASHES: usize = 12;
const ETAGS: [&str; 3] = ["e0", "e1", "e2"];
const NOW: i64 = 1_800_000_000_000_000;

/// A group's items (the PUT columns the function compares or stores).
#[derive(Default, Debug)]
struct Group {
    id: Vec<String>,
    bucket_id: Vec<String>,
    key: Vec<String>,
    size: Vec<i64>,
    etag: Vec<String>,
    content_type: Vec<Option<String>>,
    cond: Vec<i32>,
    cond_etag: Vec<Option<String>>,
    blob_tier: Vec<Option<String>>,
    blob_hash: Vec<Option<String>>,
    blob_size: Vec<Option<i64>>,
    blob_data: Vec<Option<Vec<u8>>>,
    d_tenant: Vec<String>,
    d_bucket: Vec<String>,
    d_key: Vec<String>,
    d_id: Vec<String>,
    x_bucket_id: Vec<String>,
    x_key: Vec<String>,
    x_version: Vec<String>,
}

struct World {
    tenant: String,
    /// (id, name) of the buckets: two unversioned, one versioned, one suspended.
    buckets: Vec<(String, String)>,
    /// (bucket id, key, version id) of the versions there are, in a fixed order.
    versions: Vec<(String, String, String)>,
}

fn random_group(rng: &mut StdRng, w: &World, round: usize) -> Group {
    let mut g = Group::default();
    // (bucket index, key index); distinct in most groups (the set-based path), repeated in
    // some (the one-by-one path).
    let mut slots: Vec<(usize, usize)> = (0..w.buckets.len())
        .flat_map(|b| (0..KEYS).map(move |k| (b, k)))
        .collect();
    slots.shuffle(rng);
    let distinct = rng.random_bool(0.75);
    let mut next = 0;
    let mut slot = |rng: &mut StdRng| {
        if distinct {
            next += 1;
            slots[next - 1]
        } else {
            (rng.random_range(0..w.buckets.len()), rng.random_range(0..3))
        }
    };
    for i in 0..rng.random_range(0..=10) {
        let (b, k) = slot(rng);
        // Now and then a PUT into a bucket that is gone: its foreign key fails the call.
        let bucket_id = if rng.random_bool(0.01) {
            "gone".to_owned()
        } else {
            w.buckets[b].0.clone()
        };
        g.id.push(format!("obj-{round}-{i}"));
        g.bucket_id.push(bucket_id);
        g.key.push(format!("k{k}"));
        g.etag
            .push(ETAGS[rng.random_range(0..ETAGS.len())].to_owned());
        g.content_type
            .push(rng.random_bool(0.5).then(|| "text/plain".to_owned()));
        let cond = rng.random_range(0..6).min(2) * i32::from(rng.random_bool(0.5));
        g.cond.push(cond);
        g.cond_etag.push(
            (cond == 2 && rng.random_bool(0.7))
                .then(|| ETAGS[rng.random_range(0..ETAGS.len())].to_owned()),
        );
        if rng.random_bool(0.1) {
            // An empty object: no blob.
            g.size.push(0);
            g.blob_tier.push(None);
            g.blob_hash.push(None);
            g.blob_size.push(None);
            g.blob_data.push(None);
        } else {
            let h = rng.random_range(0..HASHES);
            let size = 10 + h as i64;
            g.size.push(size);
            g.blob_tier
                .push(Some(if h == 0 { "cold" } else { "hot" }.to_owned()));
            g.blob_hash.push(Some(format!("{h:064x}")));
            g.blob_size.push(Some(size));
            g.blob_data.push(Some(vec![h as u8; size as usize]));
        }
    }
    for _ in 0..rng.random_range(0..=5) {
        let (b, k) = slot(rng);
        let bucket = if rng.random_bool(0.1) {
            "nope".to_owned()
        } else {
            w.buckets[b].1.clone()
        };
        g.d_tenant.push(w.tenant.clone());
        g.d_bucket.push(bucket);
        g.d_key.push(format!("k{k}"));
        g.d_id.push(format!("marker-{round}-{}", g.d_id.len()));
    }
    // Permanent deletes: of a version there is, of a null version, of one there is not.
    for _ in 0..rng.random_range(0..=3) {
        let (b, k, v) = match rng.random_range(0..4) {
            0 if !w.versions.is_empty() => {
                w.versions[rng.random_range(0..w.versions.len())].clone()
            }
            1 => {
                let (b, k) = slot(rng);
                (w.buckets[b].0.clone(), format!("k{k}"), "null".to_owned())
            }
            _ => {
                let (b, k) = slot(rng);
                (
                    w.buckets[b].0.clone(),
                    format!("k{k}"),
                    format!("missing-{round}"),
                )
            }
        };
        g.x_bucket_id.push(b);
        g.x_key.push(k);
        g.x_version.push(v);
    }
    g
}

/// One `js_commit` call for the PUTs `puts`, the DELETEs `dels` and the permanent deletes `xs`
/// of `g` (indexes).
async fn call_some(
    c: &mut PgConnection,
    g: &Group,
    (puts, dels, xs): (&[usize], &[usize], &[usize]),
) -> Result<Vec<String>, String> {
    let n = puts.len();
    let none_s = || vec![None::<String>; n];
    // One segment per PUT with a body: the blob the PUT wrote.
    let with_body: Vec<(i32, usize)> = (1..)
        .zip(puts)
        .filter(|&(_, &i)| g.blob_hash[i].is_some())
        .map(|(item, &i)| (item, i))
        .collect();
    let seg = |f: &dyn Fn(usize) -> Option<String>| -> Vec<String> {
        with_body
            .iter()
            .map(|&(_, i)| f(i).expect("a body"))
            .collect()
    };
    sqlx::query_scalar::<_, Vec<String>>(
        "SELECT js_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
         $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, \
         $34, $35, $36, $37, $38, $39, $40, $41, $42, $43, $44)",
    )
    .bind(pick(&g.id, puts))
    .bind(pick(&g.bucket_id, puts))
    .bind(pick(&g.key, puts))
    .bind(pick(&g.size, puts))
    .bind(pick(&g.etag, puts))
    .bind(pick(&g.content_type, puts))
    .bind(none_s())
    .bind(none_s())
    .bind(none_s())
    .bind(none_s())
    .bind(none_s())
    .bind(vec!["{}".to_owned(); n])
    .bind(vec!["STANDARD".to_owned(); n])
    .bind(vec!["hot".to_owned(); n])
    .bind(vec![NOW; n])
    .bind(vec![None::<i32>; n])
    .bind(none_s())
    .bind(none_s())
    .bind(none_s())
    .bind(none_s())
    .bind(pick(&g.cond, puts))
    .bind(pick(&g.cond_etag, puts))
    .bind(none_s())
    .bind(vec![None::<i64>; n])
    .bind(vec![false; n])
    .bind(
        with_body
            .iter()
            .map(|&(item, _)| item)
            .collect::<Vec<i32>>(),
    )
    .bind(vec![0_i32; with_body.len()])
    .bind(seg(&|i| g.blob_tier[i].clone()))
    .bind(seg(&|i| g.blob_hash[i].clone()))
    .bind(
        with_body
            .iter()
            .map(|&(_, i)| g.blob_size[i].expect("a body"))
            .collect::<Vec<i64>>(),
    )
    .bind(vec![true; with_body.len()])
    .bind(
        with_body
            .iter()
            .map(|&(_, i)| g.blob_data[i].clone())
            .collect::<Vec<_>>(),
    )
    .bind(Vec::<i32>::new())
    .bind(Vec::<String>::new())
    .bind(Vec::<String>::new())
    .bind(pick(&g.d_tenant, dels))
    .bind(pick(&g.d_bucket, dels))
    .bind(pick(&g.d_key, dels))
    .bind(pick(&g.d_id, dels))
    .bind(pick(&g.x_bucket_id, xs))
    .bind(pick(&g.x_key, xs))
    .bind(pick(&g.x_version, xs))
    .bind(vec![false; xs.len()])
    .bind(NOW)
    .fetch_one(c)
    .await
    // Both ways fail the same way (a foreign key), with their own message context.
    .map_err(|e| match e.as_database_error() {
        Some(d) => format!("database error {:?}", d.code()),
        None => e.to_string(),
    })
}

/// The elements of `v` at `at`.
fn pick<T: Clone>(v: &[T], at: &[usize]) -> Vec<T> {
    at.iter().map(|&i| v[i].clone()).collect()
}

/// The whole group in one call.
async fn call_group(c: &mut PgConnection, g: &Group) -> Result<Vec<String>, String> {
    let puts: Vec<usize> = (0..g.id.len()).collect();
    let dels: Vec<usize> = (0..g.d_key.len()).collect();
    let xs: Vec<usize> = (0..g.x_key.len()).collect();
    call_some(c, g, (&puts, &dels, &xs)).await
}

/// The group's items one call each, PUTs first, then DELETEs (the order of a group's
/// answers).
async fn call_each(c: &mut PgConnection, g: &Group) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for i in 0..g.id.len() {
        out.extend(call_some(c, g, (&[i], &[], &[])).await?);
    }
    for i in 0..g.d_key.len() {
        out.extend(call_some(c, g, (&[], &[i], &[])).await?);
    }
    for i in 0..g.x_key.len() {
        out.extend(call_some(c, g, (&[], &[], &[i])).await?);
    }
    Ok(out)
}

/// Whether the group names a key (of an existing bucket) twice.
fn repeats_a_key(g: &Group, w: &World) -> bool {
    let mut seen = std::collections::HashSet::new();
    let puts = g
        .bucket_id
        .iter()
        .zip(&g.key)
        .map(|(b, k)| (b.clone(), k.clone()));
    let dels = g.d_bucket.iter().zip(&g.d_key).filter_map(|(name, k)| {
        let id = w.buckets.iter().find(|(_, n)| n == name)?.0.clone();
        Some((id, k.clone()))
    });
    let xs = g.x_bucket_id.iter().cloned().zip(g.x_key.iter().cloned());
    puts.chain(dels).chain(xs).any(|slot| !seen.insert(slot))
}

/// Every row the functions write, as text, sorted.
async fn snapshot(c: &mut PgConnection) -> String {
    sqlx::query_scalar::<_, String>(
        "SELECT COALESCE(string_agg(t, E'\\n' ORDER BY t), '') FROM (
            SELECT 'o ' || o::text AS t FROM objects o
            UNION ALL SELECT 's ' || s::text FROM object_segments s
            UNION ALL SELECT format('b %s %s %s %s %s %s', tier, hash, size, ref_count,
                zero_since, created_at) FROM blobs
            UNION ALL SELECT format('d %s %s %s', tier, hash, md5(data)) FROM blob_data) x",
    )
    .fetch_one(c)
    .await
    .expect("snapshot")
}

/// Runs `g` as one call or a call each, in a transaction that is rolled back: its answers and
/// the rows then.
async fn trial(
    c: &mut PgConnection,
    grouped: bool,
    g: &Group,
) -> (Result<Vec<String>, String>, String) {
    let mut tx = c.begin().await.expect("begin");
    let out = if grouped {
        call_group(&mut tx, g).await
    } else {
        call_each(&mut tx, g).await
    };
    let rows = if out.is_ok() {
        snapshot(&mut tx).await
    } else {
        String::new()
    };
    tx.rollback().await.expect("rollback");
    (out, rows)
}

#[tokio::test]
async fn set_based_groups_equal_one_by_one() {
    use aws_sdk_s3::types::{BucketVersioningStatus as V, VersioningConfiguration};
    let s = TestServer::start(Db::Postgres).await;
    for b in ["bucket-a", "bucket-b", "bucket-c", "bucket-d"] {
        s.client
            .create_bucket()
            .bucket(b)
            .send()
            .await
            .expect("bucket");
    }
    for (b, status) in [
        ("bucket-c", V::Enabled),
        ("bucket-d", V::Enabled),
        ("bucket-d", V::Suspended),
    ] {
        let conf = VersioningConfiguration::builder().status(status).build();
        let put = s
            .client
            .put_bucket_versioning()
            .bucket(b)
            .versioning_configuration(conf);
        put.send().await.expect("versioning");
    }
    let url = s.pg.as_ref().expect("postgres").url();
    let mut c = PgConnection::connect(&url).await.expect("connect");
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, tenant_id, name FROM buckets ORDER BY name")
            .fetch_all(&mut c)
            .await
            .expect("buckets");
    let mut w = World {
        tenant: rows[0].1.clone(),
        buckets: rows
            .iter()
            .map(|(id, _, n)| (id.clone(), n.clone()))
            .collect(),
        versions: Vec::new(),
    };
    let mut rng = StdRng::seed_from_u64(0x5e7_ba5ed);
    let mut seen: Vec<String> = Vec::new();
    let (mut failed, mut repeated, mut released) = (0, 0, 0);
    for round in 0..ROUNDS {
        w.versions = sqlx::query_as(
            "SELECT bucket_id, key, version_id FROM objects WHERE status = 'COMMITTED' \
             ORDER BY bucket_id, key, version_seq",
        )
        .fetch_all(&mut c)
        .await
        .expect("versions");
        let g = random_group(&mut rng, &w, round);
        let group = trial(&mut c, true, &g).await;
        let real = if repeats_a_key(&g, &w) {
            let refused = Err(r#"database error Some("JS002")"#.to_owned());
            assert_eq!(group.0, refused, "a repeated key, round {round}: {g:?}");
            repeated += 1;
            call_each(&mut c, &g).await
        } else {
            let each = trial(&mut c, false, &g).await;
            assert_eq!(group.0, each.0, "answers of round {round}: {g:?}");
            assert_eq!(group.1, each.1, "rows after round {round}: {g:?}");
            call_group(&mut c, &g).await
        };
        match real {
            Ok(out) => seen.extend(out),
            Err(_) => failed += 1,
        }
        let zero: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM blobs WHERE ref_count = 0 AND zero_since IS NOT NULL",
        )
        .fetch_one(&mut c)
        .await
        .expect("count");
        released = released.max(zero);
    }
    assert!(repeated > 0, "no group repeated a key");
    // The groups covered what they are for (the seed is fixed: this is a check on the test).
    for answer in [
        "ok:",
        "null:",
        "precondition_failed",
        "no_such_key",
        "deleted",
        "absent",
        "marker",
        "null_marker",
        "removed",
        "removed_marker",
        "no_such_bucket",
    ] {
        assert!(
            seen.iter()
                .any(|a| a == answer || (answer.ends_with(':') && a.starts_with(answer))),
            "no item answered {answer} in {ROUNDS} groups"
        );
    }
    assert_eq!(failed, 0, "an item's refusal never fails its group");
    assert!(released > 0, "no blob was ever released to zero");
    assert_refcounts(&s).await;
}

/// A client without the SDK's retries, which would hide a failed first try (a 500).
fn no_retries(s: &TestServer) -> aws_sdk_s3::Client {
    let conf = s
        .client
        .config()
        .to_builder()
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// The lock a transaction takes before its blob rows, which closes a cycle.
#[derive(Clone, Copy)]
enum First<'a> {
    /// The per-key advisory lock (PUT, copy, completion).
    Key(&'a str),
    /// A multipart upload's row (a part's commit, an abort).
    Upload(&'a str),
}

/// Runs `op` inside a deadlock. Another transaction takes the blob row of `blob_of`'s body;
/// `op`'s commit takes its `first` lock, then waits for that row; the other transaction then
/// asks for `first`: a cycle. PostgreSQL aborts `op`'s commit, which had waited longer, and the
/// other transaction commits. Returns `op`'s outcome.
async fn in_a_deadlock<T: Send + 'static>(
    s: &TestServer,
    blob_of: &str,
    first: First<'_>,
    op: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let url = s.pg.as_ref().expect("postgres").url();
    let mut other = PgConnection::connect(&url).await.expect("connect");
    let mut watch = PgConnection::connect(&url).await.expect("connect");
    let (bucket_id, tier, hash): (String, String, String) = sqlx::query_as(
        "SELECT o.bucket_id, s.tier, s.blob_hash FROM objects o \
         JOIN object_segments s ON s.object_id = o.id WHERE o.key = $1 AND o.is_latest",
    )
    .bind(blob_of)
    .fetch_one(&mut watch)
    .await
    .expect("the object's blob");
    let mut tx = other.begin().await.expect("begin");
    sqlx::query("SET LOCAL statement_timeout = '20s'")
        .execute(&mut *tx)
        .await
        .expect("timeout");
    // The backend whose deadlock check fires first is the victim. The commit waits first, with
    // the default 1 s; on a loaded machine this one's check could still fire first, so it waits
    // 10 s before checking: the commit is always the one aborted.
    sqlx::query("SET LOCAL deadlock_timeout = '10s'")
        .execute(&mut *tx)
        .await
        .expect("deadlock_timeout");
    sqlx::query("SELECT 1 FROM blobs WHERE tier = $1 AND hash = $2 FOR UPDATE")
        .bind(&tier)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .expect("blob row lock");
    let op = tokio::spawn(op);
    // Wait (bounded) until the commit waits for the blob row.
    let mut waiting = false;
    for _ in 0..400 {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'",
        )
        .fetch_one(&mut watch)
        .await
        .expect("pg_locks");
        if n > 0 {
            waiting = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(waiting, "the commit never waited for the blob row");
    // Close the cycle: PostgreSQL aborts the other commit, and this gets its first lock.
    let close = match first {
        First::Key(key) => {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
                .bind(&bucket_id)
                .bind(key)
        }
        First::Upload(id) => {
            sqlx::query("SELECT 1 FROM multipart_uploads WHERE upload_id = $1 FOR UPDATE").bind(id)
        }
    };
    close
        .execute(&mut *tx)
        .await
        .expect("the first lock once the commit is aborted");
    tx.commit().await.expect("commit");
    op.await.expect("join")
}

async fn body_of(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    c.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// PUT, copy, multipart completion, part and abort commits that PostgreSQL aborts to break a
/// deadlock (40P01) run again and succeed.
#[tokio::test]
async fn commits_aborted_by_a_deadlock_run_again() {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let s = TestServer::start(Db::Postgres).await;
    let c = no_retries(&s);
    let b = "deadlock";
    c.create_bucket().bucket(b).send().await.expect("bucket");
    // Past the inline limit: a PUT's commit is the single-transaction one (a file to place).
    let body = bytes(256 * 1024, 7);
    let put = |key: &'static str| {
        c.put_object()
            .bucket(b)
            .key(key)
            .body(ByteStream::from(body.clone()))
            .send()
    };
    put("first").await.expect("first put");

    // A PUT whose commit waits for the blob row it shares with `first`.
    in_a_deadlock(&s, "first", First::Key("second"), put("second"))
        .await
        .expect("the PUT succeeds on its second try");
    assert!(body_of(&c, b, "second").await == body, "second's body");

    // A copy of `first`: its commit takes a reference on the same blob row.
    let copy = c
        .copy_object()
        .bucket(b)
        .key("copied")
        .copy_source(format!("{b}/first"))
        .send();
    in_a_deadlock(&s, "first", First::Key("copied"), copy)
        .await
        .expect("the copy succeeds on its second try");
    assert!(body_of(&c, b, "copied").await == body, "the copy's body");

    // A multipart upload over `second`: its completion releases second's blob row.
    let up = c
        .create_multipart_upload()
        .bucket(b)
        .key("second")
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("upload id").to_owned();
    let part_body = bytes(64 * 1024, 9);
    let part = c
        .upload_part()
        .bucket(b)
        .key("second")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(part_body.clone()))
        .send()
        .await
        .expect("part");
    let done = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().expect("etag"))
                .build(),
        )
        .build();
    let complete = c
        .complete_multipart_upload()
        .bucket(b)
        .key("second")
        .upload_id(&id)
        .multipart_upload(done)
        .send();
    in_a_deadlock(&s, "second", First::Key("second"), complete)
        .await
        .expect("the completion succeeds on its second try");
    assert!(
        body_of(&c, b, "second").await == part_body,
        "the completed body"
    );
    assert!(body_of(&c, b, "first").await == body, "first's body");

    // A part with first's body: its commit holds the upload's row, then takes a reference on
    // first's blob row. Then the abort: it holds the upload's row and releases that reference.
    let up = c
        .create_multipart_upload()
        .bucket(b)
        .key("parted")
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("upload id").to_owned();
    let part = c
        .upload_part()
        .bucket(b)
        .key("parted")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(body.clone()))
        .send();
    in_a_deadlock(&s, "first", First::Upload(&id), part)
        .await
        .expect("the part's commit succeeds on its second try");
    let parts = c
        .list_parts()
        .bucket(b)
        .key("parted")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    assert_eq!(parts.parts().len(), 1, "the part is recorded");
    let abort = c
        .abort_multipart_upload()
        .bucket(b)
        .key("parted")
        .upload_id(&id)
        .send();
    in_a_deadlock(&s, "first", First::Upload(&id), abort)
        .await
        .expect("the abort succeeds on its second try");
    let gone = c
        .list_parts()
        .bucket(b)
        .key("parted")
        .upload_id(&id)
        .send()
        .await;
    assert!(gone.is_err(), "the aborted upload still lists parts");
    assert!(body_of(&c, b, "first").await == body, "first's body");
    assert_refcounts(&s).await;
    // Each of the five was a deadlock's victim and then succeeded. No count is read from
    // `pg_stat_database`: its `deadlocks` lagged the backends' flushes (CI runs saw 3 after 30 s)
    // and once counted 6. The proof is in `in_a_deadlock`: its transaction gets the lock the
    // commit holds only once the commit's transaction has ended, and that transaction was
    // waiting for the blob row the test held, so it was aborted; the operation still succeeded,
    // so it ran again.
}

/// The safety net behind the request checks: text PostgreSQL cannot hold (U+0000) that still
/// reaches a statement is the client's error (400 InvalidArgument), not a 500.
#[tokio::test]
async fn unstorable_text_is_the_clients_error() {
    let db = PgDb::create().await;
    let meta = just_storage::meta::open(&db.url()).await.expect("open");
    let range = just_storage::meta::KeyRange {
        bucket_id: "no-such-bucket",
        start: "a\0b",
        start_inclusive: true,
        before: None,
    };
    let e = meta
        .list_page(range, 10)
        .await
        .expect_err("a NUL in a text parameter");
    assert!(e.is_unstorable_text(), "{e:?}");
    let e = just_storage::engine::Error::from(e);
    assert!(
        matches!(e, just_storage::engine::Error::InvalidArgument(_)),
        "{e:?}"
    );
}
