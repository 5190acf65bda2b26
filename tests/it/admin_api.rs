//! The JSON admin API: every route refuses a missing, wrong or revoked token (401) and a
//! metrics-only token (403); an operator's round trip (tenant, key, quota, usage, metering)
//! works as the CLI's does; the object search pages through 20,000 objects with each filter,
//! at a bounded cost per page; `/metrics` names tenants only to a token holder.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use just_storage::admin::ROUTES;
use just_storage::engine::TokenScope;
use serde_json::{Value, json};

fn opts() -> Options {
    Options {
        admin_api: true,
        ..Options::default()
    }
}

async fn token(s: &TestServer, scope: TokenScope) -> (String, String) {
    let (row, token) = s
        .engine()
        .create_admin_token("test", scope)
        .await
        .expect("token");
    (row.id, token)
}

/// A concrete path for a route pattern.
fn path_of(pattern: &str) -> String {
    pattern
        .replace("{tenant}", "root")
        .replace("{bucket}", "nothing-here")
        .replace("{key}", "JSNOSUCHKEY000000000")
}

async fn every_route_needs_a_valid_token(s: &TestServer) {
    let (admin_id, admin) = token(s, TokenScope::Admin).await;
    let (_, metrics) = token(s, TokenScope::Metrics).await;
    let (revoked_id, revoked) = token(s, TokenScope::Admin).await;
    s.engine()
        .revoke_admin_token(&revoked_id)
        .await
        .expect("revoke");
    let wrong = format!("{admin}x");
    for (method, pattern) in ROUTES {
        let path = path_of(pattern);
        for bad in [None, Some(wrong.as_str()), Some(revoked.as_str()), Some("")] {
            let (status, body, r) = admin_call(s, method, &path, bad, None).await;
            assert_eq!(status, 401, "{method} {path} with {bad:?}: {body}");
            assert_eq!(body["error"]["code"], "Unauthorized", "{method} {path}");
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|h| h.starts_with("Bearer"))
            );
        }
        let (status, body, _) = admin_call(s, method, &path, Some(&metrics), None).await;
        let want = if *pattern == "/metrics" { 200 } else { 403 };
        assert_eq!(status, want, "{method} {path} with a metrics token: {body}");
    }
    // The admin token reaches the handlers (a missing tenant is 404, not 401).
    let (status, _, _) = admin_call(s, "GET", "/v1/tenants", Some(&admin), None).await;
    assert_eq!(status, 200);
    let (status, body, _) = admin_call(s, "GET", "/v1/tenants/nobody", Some(&admin), None).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("NotFound")));
    let (status, _, _) = admin_call(s, "PATCH", "/v1/tenants", Some(&admin), None).await;
    assert_eq!(status, 405);
    let (status, _, _) = admin_call(s, "GET", "/v2/whatever", Some(&admin), None).await;
    assert_eq!(status, 404);
    // Revoking takes effect at once.
    s.engine()
        .revoke_admin_token(&admin_id)
        .await
        .expect("revoke");
    let (status, _, _) = admin_call(s, "GET", "/v1/tenants", Some(&admin), None).await;
    assert_eq!(status, 401);
}
both_dbs!(every_route_needs_a_valid_token, opts());

async fn operator_round_trip(s: &TestServer) {
    let (_, t) = token(s, TokenScope::Admin).await;
    let call = |m: &'static str, p: String, b: Option<Value>| {
        let t = t.clone();
        async move {
            let (status, v, _) = admin_call(s, m, &p, Some(&t), b.as_ref()).await;
            (status, v)
        }
    };
    let (st, v) = call("POST", "/v1/tenants".into(), Some(json!({"name": "acme"}))).await;
    assert_eq!((st, &v["name"]), (201, &json!("acme")), "{v}");
    let (st, _) = call("POST", "/v1/tenants".into(), Some(json!({"name": "acme"}))).await;
    assert_eq!(st, 400, "a second tenant of one name");
    let (st, _) = call("POST", "/v1/tenants".into(), Some(json!({"nom": 1}))).await;
    assert_eq!(st, 400);
    let body = json!({"tenant": "acme", "read_only": false});
    let (st, key) = call("POST", "/v1/keys".into(), Some(body)).await;
    assert_eq!(st, 201, "{key}");
    let (id, secret) = (
        key["access_key_id"].as_str().expect("id").to_owned(),
        key["secret_key"].as_str().expect("secret").to_owned(),
    );
    let (_, keys) = call("GET", "/v1/keys?tenant=acme".into(), None).await;
    assert_eq!(keys.as_array().map(Vec::len), Some(1));
    assert!(
        !keys.to_string().contains(&secret),
        "keys are listed without secrets"
    );

    let c = s.client_for(&id, &secret);
    c.create_bucket()
        .bucket("models")
        .send()
        .await
        .expect("bucket");
    let quota = json!({"max_bytes": 1000, "max_objects": null});
    let (st, q) = call("PUT", "/v1/buckets/acme/models/quota".into(), Some(quota)).await;
    assert_eq!((st, &q["bytes"]), (200, &json!(1000)), "{q}");
    let put = |key: &'static str, n: usize| {
        let c = c.clone();
        async move {
            c.put_object()
                .bucket("models")
                .key(key)
                .body(ByteStream::from(bytes(n, 1)))
                .send()
                .await
                .map_err(|e| code(&e))
        }
    };
    put("a", 1000).await.expect("at the limit");
    assert_eq!(put("b", 1).await.err().as_deref(), Some("QuotaExceeded"));
    let bad = json!({"max_bytes": -1});
    let (st, _) = call("PUT", "/v1/tenants/acme/quota".into(), Some(bad)).await;
    assert_eq!(st, 400);
    let (_, usage) = call("GET", "/v1/usage?tenant=acme".into(), None).await;
    assert_eq!(usage["tenants"][0]["logical_bytes"], 1000, "{usage}");
    assert_eq!(usage["buckets"][0]["objects"], 1, "{usage}");

    let (st, _) = call("POST", format!("/v1/keys/{id}/disable"), None).await;
    assert_eq!(st, 200);
    // Disabled keys are refused within the key cache's poll (0.1 s).
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if let Err(e) = c.list_objects_v2().bucket("models").send().await {
            assert_eq!(status(&e), 403);
            refused = true;
            break;
        }
    }
    assert!(refused, "a disabled key still works");
    let (st, _) = call("POST", format!("/v1/keys/{id}/enable"), None).await;
    assert_eq!(st, 200);

    let (st, _) = call("DELETE", "/v1/tenants/acme".into(), None).await;
    assert_eq!(st, 400, "a tenant with buckets needs force");
    let (st, gone) = call("DELETE", "/v1/tenants/acme?force=true".into(), None).await;
    assert_eq!((st, &gone["objects_deleted"]), (200, &json!(1)), "{gone}");
    let (st, fsck) = call("POST", "/v1/fsck".into(), None).await;
    assert_eq!(st, 200);
    assert_eq!(fsck["refcount_mismatches"], json!([]), "{fsck}");
    let (st, spec) = call("GET", "/v1/openapi.json".into(), None).await;
    assert_eq!(st, 200);
    assert!(spec["paths"]["/v1/objects"]["get"].is_object());
}
both_dbs!(operator_round_trip, opts());

const OBJECTS: usize = 20_000;
/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000_000;

/// 20,000 current versions in bucket `big` (two per second, so times repeat), 40 in `small`
/// interleaved in time (half a second off): rows written directly, as a bulk import would.
async fn bulk(s: &TestServer, big: &str, small: &str) {
    let sql = match s.pg {
        Some(_) => format!(
            "INSERT INTO objects (id, bucket_id, key, status, is_latest, size, etag, content_type, \
             created_at) SELECT 'bulk-' || lpad(i::text, 6, '0'), '{big}', \
             'models/' || lpad(i::text, 5, '0') || '.bin', 'COMMITTED', TRUE, i % 1000, 'e', \
             CASE WHEN i % 3 = 0 THEN 'image/png' ELSE 'application/octet-stream' END, \
             {T0} + (i::bigint / 2) * 1000000 FROM generate_series(1, {OBJECTS}) AS i; \
             INSERT INTO objects (id, bucket_id, key, status, is_latest, size, etag, content_type, \
             created_at) SELECT 'small-' || lpad(i::text, 6, '0'), '{small}', \
             'logs/' || i || '.txt', 'COMMITTED', TRUE, 5, 'e', 'text/plain', \
             {T0} + i::bigint * 250000000 + 500000 FROM generate_series(1, 40) AS i;"
        ),
        None => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {OBJECTS}) \
             INSERT INTO objects (id, bucket_id, key, status, is_latest, size, etag, content_type, \
             created_at) SELECT printf('bulk-%06d', i), '{big}', printf('models/%05d.bin', i), \
             'COMMITTED', TRUE, i % 1000, 'e', \
             CASE WHEN i % 3 = 0 THEN 'image/png' ELSE 'application/octet-stream' END, \
             {T0} + (i / 2) * 1000000 FROM n; \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40) \
             INSERT INTO objects (id, bucket_id, key, status, is_latest, size, etag, content_type, \
             created_at) SELECT printf('small-%06d', i), '{small}', 'logs/' || i || '.txt', \
             'COMMITTED', TRUE, 5, 'e', 'text/plain', {T0} + i * 250000000 + 500000 FROM n;"
        ),
    };
    exec_sql(s, &sql).await;
}

fn rfc3339(micros: i64) -> String {
    just_storage::engine::rfc3339(micros)
}

/// Every page of a search: the keys in order, and the largest `scanned` of a page.
async fn all_pages(s: &TestServer, token: &str, query: &str, limit: usize) -> (Vec<String>, u64) {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    let mut worst = 0;
    for _ in 0..(OBJECTS * 4 / limit + 10) {
        let mut path = format!("/v1/objects?tenant=root&limit={limit}{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (st, page, _) = admin_call(s, "GET", &path, Some(token), None).await;
        assert_eq!(st, 200, "{path}: {page}");
        worst = worst.max(page["scanned"].as_u64().expect("scanned"));
        for item in page["items"].as_array().expect("items") {
            let key = item["key"].as_str().expect("key");
            keys.push(format!(
                "{}/{key}",
                item["bucket"].as_str().expect("bucket")
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (keys, worst),
        }
    }
    panic!("the search did not end");
}

async fn search_pages_through_twenty_thousand(s: &TestServer) {
    let (_, t) = token(s, TokenScope::Admin).await;
    for b in ["big", "small"] {
        s.client
            .create_bucket()
            .bucket(b)
            .send()
            .await
            .expect("bucket");
    }
    let meta = s.engine().meta();
    let root = meta.tenant_id("root").await.expect("tenant").expect("root");
    let id = |b: &'static str| {
        let root = root.clone();
        async move { meta.bucket(&root, b).await.expect("b").expect("bucket").id }
    };
    bulk(s, &id("big").await, &id("small").await).await;

    // Everything, newest first, each object once, across both buckets.
    let limit = 500;
    let (keys, worst) = all_pages(s, &t, "", limit).await;
    assert_eq!(keys.len(), OBJECTS + 40);
    let unique: std::collections::HashSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "no object twice");
    assert_eq!(keys[0], "small/logs/40.txt");
    assert_eq!(keys[1], "big/models/20000.bin");
    assert!(
        worst as usize <= 2 * 4 * limit,
        "a page read {worst} entries"
    );

    // Each filter, on its own, against what the rows hold.
    let after = rfc3339(T0 + 9_000 * 1_000_000);
    let (keys, _) = all_pages(s, &t, &format!("&bucket=big&created_after={after}"), limit).await;
    assert_eq!(keys.len(), OBJECTS - 18_001, "i/2 > 9000");
    let before = rfc3339(T0 + 100 * 1_000_000);
    let (keys, _) = all_pages(s, &t, &format!("&bucket=big&created_before={before}"), 50).await;
    assert_eq!(keys.len(), 199, "i/2 < 100");
    let (keys, worst) = all_pages(s, &t, "&content_type=image/*", limit).await;
    assert_eq!(keys.len(), OBJECTS / 3, "every third");
    assert!(worst as usize <= 2 * 4 * limit);
    let (keys, _) = all_pages(s, &t, "&min_size=990&max_size=999", limit).await;
    assert_eq!(keys.len(), 200);
    let (keys, _) = all_pages(s, &t, "&prefix=logs/", limit).await;
    assert_eq!(keys.len(), 40);
    assert!(keys.iter().all(|k| k.starts_with("small/logs/")));
    let (keys, _) = all_pages(s, &t, "&bucket=small&content_type=text/plain", 7).await;
    assert_eq!(keys.len(), 40);

    // Bad input.
    for bad in [
        "/v1/objects",
        "/v1/objects?tenant=root&limit=0",
        "/v1/objects?tenant=root&limit=1001",
        "/v1/objects?tenant=root&cursor=forged",
        "/v1/objects?tenant=root&created_after=yesterday",
        "/v1/objects?tenant=root&min_size=-1",
    ] {
        let (st, v, _) = admin_call(s, "GET", bad, Some(&t), None).await;
        assert_eq!(st, 400, "{bad}: {v}");
    }
    let (st, _, _) = admin_call(
        s,
        "GET",
        "/v1/objects?tenant=root&bucket=none",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(st, 404);

    // The walk is an index range scan, whatever the table holds.
    let big = id("big").await;
    let plan = match s.pg {
        Some(_) => {
            query_text(s, "ANALYZE objects").await;
            query_text(
                s,
                &format!(
                    "EXPLAIN SELECT id, key, size, etag, content_type, created_at FROM objects \
                     WHERE bucket_id = '{big}' AND is_latest AND NOT delete_marker \
                     AND (created_at, id) < ({}, 'bulk-010000') AND created_at > 0 \
                     AND created_at < 9223372036854775807 \
                     ORDER BY created_at DESC, id DESC LIMIT 2000",
                    T0 + 5000 * 1_000_000
                ),
            )
            .await
        }
        None => {
            query_text(
                s,
                &format!(
                    "EXPLAIN QUERY PLAN SELECT id, key, size, etag, content_type, created_at \
                     FROM objects WHERE bucket_id = '{big}' AND is_latest AND NOT delete_marker \
                     AND (created_at, id) < ({}, 'bulk-010000') AND created_at > 0 \
                     AND created_at < 9223372036854775807 \
                     ORDER BY created_at DESC, id DESC LIMIT 2000",
                    T0 + 5000 * 1_000_000
                ),
            )
            .await
        }
    };
    let plan = plan.join("\n");
    assert!(plan.contains("objects_created"), "{plan}");
    assert!(
        !plan.contains("Sort") && !plan.contains("TEMP B-TREE"),
        "{plan}"
    );
}
both_dbs!(search_pages_through_twenty_thousand, opts());

async fn metrics_name_tenants_only_to_token_holders(s: &TestServer) {
    let (_, metrics) = token(s, TokenScope::Metrics).await;
    s.client
        .create_bucket()
        .bucket("secret-project")
        .send()
        .await
        .expect("bucket");
    put_bytes(&s.client, "secret-project", "plan", b"the plan").await;
    let r = anon(s, "GET", "/metrics", b"").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("juststorage_requests_total"));
    assert!(
        !r.body.contains("secret-project") && !r.body.contains("tenant="),
        "{}",
        r.body
    );
    let req = format!(
        "GET /metrics HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {metrics}\r\nconnection: close\r\n\r\n",
        s.addr()
    );
    let r = raw(s.addr(), req.as_bytes()).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("bucket=\"secret-project\""), "{}", r.body);
    let req = format!(
        "GET /metrics HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer nope\r\nconnection: close\r\n\r\n",
        s.addr()
    );
    assert_eq!(raw(s.addr(), req.as_bytes()).await.status, 401);
    let (st, _, r) = admin_call(s, "GET", "/metrics", Some(&metrics), None).await;
    assert_eq!(st, 200);
    assert!(
        r.body
            .contains("juststorage_tenant_physical_bytes{tenant=\"root\",tier=\"hot\"} 8"),
        "{}",
        r.body
    );
}
both_dbs!(metrics_name_tenants_only_to_token_holders, opts());
