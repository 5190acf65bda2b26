//! Many reads at once: on PostgreSQL concurrent HEADs and GETs (and PUTs' bucket lookups)
//! share queries (`meta::postgres::lookups`); each must still get its own answer: its own object,
//! its own segments, its own missing key or missing bucket.

use crate::common::*;
use crate::multipart;
use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;

const BUCKET: &str = "lookups";

/// Bodies that tell each other apart: empty, inline (16 KiB or less), and in files.
fn body(i: usize) -> Vec<u8> {
    let len = match i % 5 {
        0 => 0,
        1 => 1 + i,
        2 => 4096,
        3 => 16 << 10,
        _ => (20 << 10) + i,
    };
    (0..len).map(|n| (n * 7 + i * 13) as u8).collect()
}

#[derive(Clone, Copy, Debug)]
enum Probe {
    Get(usize),
    Head(usize),
    MissingKey(usize),
    MissingBucket(usize),
    Put(usize),
}

async fn probe(c: &aws_sdk_s3::Client, p: Probe, multipart: &[u8]) {
    match p {
        Probe::Get(i) => {
            let (key, want) = if i == 0 {
                ("mp".to_owned(), multipart.to_vec())
            } else {
                (format!("k{i}"), body(i))
            };
            let out = c
                .get_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{p:?}: {e:?}"));
            let got = out.body.collect().await.expect("body").into_bytes();
            assert!(got.as_ref() == want.as_slice(), "{p:?}: wrong body");
        }
        Probe::Head(i) => {
            let out = c
                .head_object()
                .bucket(BUCKET)
                .key(format!("k{i}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{p:?}: {e:?}"));
            assert_eq!(out.content_length, Some(body(i).len() as i64), "{p:?}");
            let etag = format!("\"{}\"", md5_hex(&body(i)));
            assert_eq!(out.e_tag.as_deref(), Some(etag.as_str()), "{p:?}");
        }
        Probe::MissingKey(i) => {
            let e = c
                .get_object()
                .bucket(BUCKET)
                .key(format!("absent{i}"))
                .send()
                .await
                .expect_err("missing key");
            assert_eq!(status(&e), 404, "{p:?}");
            assert!(e.into_service_error().is_no_such_key(), "{p:?}");
        }
        Probe::MissingBucket(i) => {
            let e = c
                .head_object()
                .bucket("no-such-bucket-here")
                .key(format!("k{i}"))
                .send()
                .await
                .expect_err("missing bucket");
            assert_eq!(status(&e), 404, "{p:?}");
            let e = c
                .get_object()
                .bucket("no-such-bucket-here")
                .key(format!("k{i}"))
                .send()
                .await
                .expect_err("missing bucket");
            assert_eq!(status(&e), 404, "{p:?}");
            assert_eq!(code(&e), "NoSuchBucket", "{p:?}");
        }
        Probe::Put(i) => {
            c.put_object()
                .bucket(BUCKET)
                .key(format!("new{i}"))
                .body(ByteStream::from(body(i)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{p:?}: {e:?}"));
        }
    }
}

async fn concurrent_reads_get_their_own_answers(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    const N: usize = 60;
    futures::stream::iter(1..N)
        .for_each_concurrent(16, |i| async move {
            c.put_object()
                .bucket(BUCKET)
                .key(format!("k{i}"))
                .body(ByteStream::from(body(i)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("put k{i}: {e:?}"));
        })
        .await;
    // A multipart object: several segments in one lookup's rows.
    let parts = [vec![1u8; 5 << 20], vec![2u8; 5 << 20], b"tail".to_vec()];
    let id = multipart::create(c, BUCKET, "mp").await;
    let mut etags = Vec::new();
    for (n, p) in (1..).zip(&parts) {
        etags.push((n, multipart::part(c, BUCKET, "mp", &id, n, p).await));
    }
    let listed: Vec<(i32, &str)> = etags.iter().map(|(n, e)| (*n, e.as_str())).collect();
    c.complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(&id)
        .multipart_upload(multipart::done(&listed))
        .send()
        .await
        .expect("complete");
    let multipart = parts.concat();

    let probes: Vec<Probe> = (0..1000)
        .map(|n| {
            let i = n % N;
            match n % 7 {
                0..=2 => Probe::Get(i),
                3..=4 => Probe::Head(i.max(1)),
                5 => Probe::MissingKey(i),
                _ if n % 14 == 6 => Probe::MissingBucket(i),
                _ => Probe::Put(i),
            }
        })
        .collect();
    let multipart = &multipart;
    futures::stream::iter(probes)
        .for_each_concurrent(64, |p| async move { probe(c, p, multipart).await })
        .await;
    for i in 0..N {
        probe(c, Probe::Get(i), multipart).await;
    }
    assert_refcounts(s).await;
}
crate::both_dbs!(concurrent_reads_get_their_own_answers);
