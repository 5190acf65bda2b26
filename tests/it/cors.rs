//! CORS: configurations as S3 validates and returns them, preflights, and the headers of
//! requests that carry an `Origin`, for root-tenant and other tenants' buckets.

use crate::common::*;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketCannedAcl, CorsConfiguration, CorsRule};
use std::time::Duration;

/// An unsigned request with extra headers.
async fn browser(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> RawResponse {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\n{extra}connection: close\r\n\r\n",
        s.addr()
    );
    raw(s.addr(), req.as_bytes()).await
}

fn rule(origins: &[&str], methods: &[&str]) -> aws_sdk_s3::types::builders::CorsRuleBuilder {
    let mut r = CorsRule::builder();
    for o in origins {
        r = r.allowed_origins(*o);
    }
    for m in methods {
        r = r.allowed_methods(*m);
    }
    r
}

async fn set(c: &aws_sdk_s3::Client, bucket: &str, rules: Vec<CorsRule>) {
    let conf = CorsConfiguration::builder()
        .set_cors_rules(Some(rules))
        .build()
        .expect("conf");
    c.put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(conf)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put cors: {e:?}"));
}

async fn cors_rules(s: &TestServer) {
    let c = &s.client;
    c.create_bucket()
        .bucket("web")
        .send()
        .await
        .expect("bucket");
    c.put_bucket_acl()
        .bucket("web")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .expect("public-read");
    let e = c.get_bucket_cors().bucket("web").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchCORSConfiguration");
    // Without a configuration a preflight is refused.
    let pre = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "GET"),
    ];
    let r = browser(s, "OPTIONS", "/web/k", &pre).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("AccessForbidden"), "{r:?}");

    // S3's validation.
    for (bad, want) in [
        (
            rule(&["*"], &["PATCH"]).build().expect("rule"),
            "InvalidRequest",
        ),
        (
            rule(&["*.*.example"], &["GET"]).build().expect("rule"),
            "InvalidRequest",
        ),
    ] {
        let conf = CorsConfiguration::builder()
            .cors_rules(bad)
            .build()
            .expect("conf");
        let e = c
            .put_bucket_cors()
            .bucket("web")
            .cors_configuration(conf)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), want);
    }

    set(
        c,
        "web",
        vec![
            rule(&["https://*.example"], &["GET", "HEAD"])
                .allowed_headers("x-amz-*")
                .expose_headers("ETag")
                .max_age_seconds(600)
                .build()
                .expect("rule"),
            rule(&["*"], &["PUT"]).build().expect("rule"),
        ],
    )
    .await;
    let got = c.get_bucket_cors().bucket("web").send().await.expect("get");
    assert_eq!(got.cors_rules().len(), 2);
    assert_eq!(got.cors_rules()[0].allowed_methods(), ["GET", "HEAD"]);
    assert_eq!(got.cors_rules()[0].max_age_seconds(), Some(600));

    // Preflights: 400 without Origin or method, 200 with the rule's headers, 403 otherwise.
    assert_eq!(browser(s, "OPTIONS", "/web/k", &[]).await.status, 400);
    let r = browser(s, "OPTIONS", "/web/k", &pre[..1]).await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = browser(
        s,
        "OPTIONS",
        "/web/k",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "X-Amz-Date, x-amz-meta-a"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, HEAD"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("x-amz-date, x-amz-meta-a")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-expose-headers"), Some("ETag"));
    for (origin, method, headers) in [
        ("https://app.other", "GET", ""),
        ("https://app.example", "DELETE", ""),
        ("https://app.example", "GET", "authorization"),
    ] {
        let r = browser(
            s,
            "OPTIONS",
            "/web/k",
            &[
                ("origin", origin),
                ("access-control-request-method", method),
                ("access-control-request-headers", headers),
            ],
        )
        .await;
        assert_eq!(r.status, 403, "{origin} {method} {headers}: {r:?}");
        assert_eq!(r.header("access-control-allow-origin"), None);
    }
    let r = browser(
        s,
        "OPTIONS",
        "/web/k",
        &[
            ("origin", "https://x"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{r:?}");
    assert_eq!(r.header("access-control-allow-credentials"), None);

    // Actual requests: the headers of the matching rule, on errors too; none for others.
    c.put_object()
        .bucket("web")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    let r = browser(
        s,
        "GET",
        "/web?list-type=2",
        &[("origin", "https://app.example")],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("ETag"));
    let r = browser(s, "GET", "/web/k", &[("origin", "https://app.example")]).await;
    assert_eq!(r.status, 403, "private object: {r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = browser(s, "GET", "/web/k", &[("origin", "https://evil.test")]).await;
    assert_eq!(r.header("access-control-allow-origin"), None, "{r:?}");
    let r = browser(s, "GET", "/web/k", &[]).await;
    assert_eq!(r.header("access-control-allow-origin"), None, "{r:?}");

    c.delete_bucket_cors()
        .bucket("web")
        .send()
        .await
        .expect("delete");
    let e = c.get_bucket_cors().bucket("web").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchCORSConfiguration");
    let r = browser(s, "OPTIONS", "/web/k", &pre).await;
    assert_eq!(r.status, 403, "{r:?}");
}
both_dbs!(cors_rules);

/// A presigned URL names its tenant: a preflight for it reads that tenant's bucket's rules.
async fn other_tenants_buckets(s: &TestServer) {
    let other = s.tenant_client("cors-other", false).await;
    other
        .create_bucket()
        .bucket("app")
        .send()
        .await
        .expect("bucket");
    set(
        &other,
        "app",
        vec![
            rule(&["https://app.example"], &["PUT"])
                .build()
                .expect("rule"),
        ],
    )
    .await;
    let url = other
        .put_object()
        .bucket("app")
        .key("upload")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("config"))
        .await
        .expect("presign")
        .uri()
        .to_owned();
    let path = url
        .split_once(&s.addr().to_string())
        .map(|(_, p)| p)
        .expect("path");
    let r = browser(
        s,
        "OPTIONS",
        path,
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("access-control-allow-methods"), Some("PUT"));
    // `tenant:bucket` names it too; the root tenant has no such bucket.
    let r = browser(
        s,
        "OPTIONS",
        "/cors-other:app/upload",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = browser(
        s,
        "OPTIONS",
        "/app/upload",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
}
both_dbs!(other_tenants_buckets);
