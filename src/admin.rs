//! The JSON admin API, on a listener of its own (`--admin-listen`, off by default): the admin
//! CLI's operations and the object search, for an operator's tools. Every call presents a
//! bearer token made by `admin token create` (stored as its SHA-256); a `metrics` token may
//! only read `/metrics`. `openapi.json` (beside this file, served at `/v1/openapi.json`)
//! describes every route of `ROUTES`; a test keeps the two equal.
//!
//! Routing is a table and one `match`, not a web framework: twenty routes, JSON in and out,
//! on the hyper server the S3 port already runs (a framework would add its dependency tree to
//! every build for what `route` does in a few lines).

use crate::engine::{Engine, Error as EngineError, MeterRange, SearchQuery, TokenScope};
use crate::meta::Quota;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

type Body = crate::s3::Body;

/// The API's description, served as is.
pub const OPENAPI: &str = include_str!("admin/openapi.json");
/// A request body (JSON) of at most this many bytes.
const MAX_BODY: usize = 64 << 10;
/// A request's head and body must arrive within this.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 256;

/// Every route: method and path pattern (`{name}` is one segment).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/tenants"),
    ("POST", "/v1/tenants"),
    ("GET", "/v1/tenants/{tenant}"),
    ("DELETE", "/v1/tenants/{tenant}"),
    ("GET", "/v1/tenants/{tenant}/quota"),
    ("PUT", "/v1/tenants/{tenant}/quota"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("POST", "/v1/keys/{key}/disable"),
    ("POST", "/v1/keys/{key}/enable"),
    ("DELETE", "/v1/keys/{key}"),
    ("GET", "/v1/buckets"),
    ("GET", "/v1/buckets/{tenant}/{bucket}/quota"),
    ("PUT", "/v1/buckets/{tenant}/{bucket}/quota"),
    ("GET", "/v1/usage"),
    ("GET", "/v1/metering"),
    ("GET", "/v1/objects"),
    ("POST", "/v1/gc"),
    ("POST", "/v1/scrub"),
    ("POST", "/v1/fsck"),
    ("GET", "/metrics"),
];

/// What the maintenance calls need besides the engine.
#[derive(Clone)]
pub struct Maintenance {
    pub gc: crate::config::GcConfig,
    pub scrub_mbps: u64,
}

#[derive(Clone)]
struct Api {
    engine: Engine,
    maintenance: Maintenance,
}

/// An answer that is not a success: status, error code, message.
struct Fail(StatusCode, &'static str, String);

impl From<EngineError> for Fail {
    fn from(e: EngineError) -> Fail {
        let msg = e.to_string();
        match e {
            EngineError::InvalidArgument(_) if msg.starts_with("no ") => {
                Fail(StatusCode::NOT_FOUND, "NotFound", msg)
            }
            EngineError::InvalidArgument(_) => {
                Fail(StatusCode::BAD_REQUEST, "InvalidArgument", msg)
            }
            EngineError::NoSuchBucket => Fail(StatusCode::NOT_FOUND, "NoSuchBucket", msg),
            // A forced tenant delete that meets a version under Object Lock.
            EngineError::AccessDenied => Fail(
                StatusCode::CONFLICT,
                "Locked",
                "a version is under Object Lock and cannot be deleted yet".into(),
            ),
            EngineError::Unavailable(_) => {
                Fail(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", msg)
            }
            _ => {
                tracing::error!(error = %msg, "admin call failed");
                Fail(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", msg)
            }
        }
    }
}

impl From<crate::meta::MetaError> for Fail {
    fn from(e: crate::meta::MetaError) -> Fail {
        EngineError::from(e).into()
    }
}

fn bad(msg: impl Into<String>) -> Fail {
    Fail(StatusCode::BAD_REQUEST, "InvalidArgument", msg.into())
}

/// Serves the admin API on `listener` until `stop`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    engine: Engine,
    maintenance: Maintenance,
    mut stop: watch::Receiver<bool>,
) {
    let api = Api {
        engine,
        maintenance,
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let (sock, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let api = api.clone();
        let svc = hyper::service::service_fn(move |req| {
            let api = api.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(api, req).await) }
        });
        let (builder, tls) = (builder.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => {
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                        .await;
                }
                // The handshake is bounded like a request head.
                Some(tls) => match tokio::time::timeout(READ_TIMEOUT, tls.accept(sock)).await {
                    Ok(Ok(s)) => {
                        let io = hyper_util::rt::TokioIo::new(s);
                        let _ = builder.serve_connection(io, svc).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "admin TLS handshake failed"),
                    Err(_) => tracing::debug!("admin TLS handshake timed out"),
                },
            }
            drop(permit);
        });
    }
}

async fn handle(api: Api, req: Request<Incoming>) -> Response<Body> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let span =
        tracing::info_span!("admin", id = %id, method = %req.method(), path = %req.uri().path());
    let _enter = span.enter();
    let answer = match tokio::time::timeout(READ_TIMEOUT * 4, route(&api, req)).await {
        Ok(a) => a,
        Err(_) => Err(Fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "Timeout",
            "the call took too long".into(),
        )),
    };
    let (status, body, content_type) = match answer {
        Ok(Answer::Json(status, v)) => (status, v.to_string(), "application/json"),
        Ok(Answer::Text(body)) => (StatusCode::OK, body, crate::metrics::CONTENT_TYPE),
        Err(Fail(status, code, message)) => {
            let v = json!({ "error": { "code": code, "message": message, "request_id": id } });
            (status, v.to_string(), "application/json")
        }
    };
    let mut r = Response::new(Body::from(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    if status == StatusCode::UNAUTHORIZED {
        h.insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"just-storage admin\""),
        );
    }
    r
}

enum Answer {
    Json(StatusCode, Value),
    /// The Prometheus exposition.
    Text(String),
}

fn ok(v: impl serde::Serialize) -> Result<Answer, Fail> {
    let v = serde_json::to_value(v).map_err(|e| bad(e.to_string()))?;
    Ok(Answer::Json(StatusCode::OK, v))
}

/// The route `path` matches, with its `{…}` segments.
fn matched<'p>(method: &Method, path: &'p str) -> Option<(&'static str, Vec<&'p str>)> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    ROUTES.iter().find_map(|(m, pattern)| {
        if *m != method.as_str() {
            return None;
        }
        let pat: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
        if pat.len() != segs.len() {
            return None;
        }
        let mut vars = Vec::new();
        for (p, s) in pat.iter().zip(&segs) {
            match p.starts_with('{') {
                true if !s.is_empty() => vars.push(*s),
                true => return None,
                false if p == s => {}
                false => return None,
            }
        }
        Some((*pattern, vars))
    })
}

/// The bearer token's scope; 401 without a valid one.
async fn authenticate(api: &Api, req: &Request<Incoming>) -> Result<TokenScope, Fail> {
    let unauthorized = |m: &str| Fail(StatusCode::UNAUTHORIZED, "Unauthorized", m.to_owned());
    let Some(value) = req.headers().get(http::header::AUTHORIZATION) else {
        return Err(unauthorized("a bearer token is required"));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or_else(|| unauthorized("the Authorization header is not a bearer token"))?;
    match api.engine.admin_scope(token).await? {
        Some(scope) => Ok(scope),
        None => Err(unauthorized("the token is unknown or revoked")),
    }
}

async fn route(api: &Api, req: Request<Incoming>) -> Result<Answer, Fail> {
    let path = req.uri().path().to_owned();
    let Some((pattern, vars)) = matched(req.method(), &path) else {
        let known = ROUTES.iter().any(|(_, p)| matched_any(p, &path));
        return Err(match known {
            true => Fail(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{} is not allowed on {path}", req.method()),
            ),
            false => Fail(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no route {path}"),
            ),
        });
    };
    let scope = authenticate(api, &req).await?;
    if pattern == "/metrics" {
        return Ok(Answer::Text(
            crate::server::metrics_text(&api.engine, true).await,
        ));
    }
    if scope != TokenScope::Admin {
        return Err(Fail(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "this token may only read /metrics".into(),
        ));
    }
    let query = query_of(&req);
    let method = req.method().clone();
    let body = read_body(req).await?;
    let e = &api.engine;
    let var = |i: usize| percent_encoding::percent_decode_str(vars[i]).decode_utf8_lossy();
    match (method.as_str(), pattern) {
        ("GET", "/v1/openapi.json") => {
            let v: Value = serde_json::from_str(OPENAPI).map_err(|e| bad(e.to_string()))?;
            ok(v)
        }
        ("GET", "/v1/tenants") => ok(e.tenants().await?),
        ("POST", "/v1/tenants") => {
            let name = string_field(&body, "name")?;
            e.create_tenant(&name).await?;
            Ok(Answer::Json(
                StatusCode::CREATED,
                serde_json::to_value(e.tenant(&name).await?).map_err(|e| bad(e.to_string()))?,
            ))
        }
        ("GET", "/v1/tenants/{tenant}") => {
            let name = var(0);
            let t = e.tenant(&name).await?;
            let keys = e.keys(Some(&name)).await?;
            let buckets: Vec<String> = (e.all_buckets(Some(&name)).await?)
                .into_iter()
                .map(|(_, b)| b.name)
                .collect();
            let quota = e.quota(&name, None).await?;
            ok(json!({ "tenant": t, "keys": keys, "buckets": buckets, "quota": quota }))
        }
        ("DELETE", "/v1/tenants/{tenant}") => {
            let force = flag(&query, "force")?;
            let deleted = e.delete_tenant(&var(0), force).await?;
            ok(json!({ "tenant": var(0), "deleted": true, "objects_deleted": deleted }))
        }
        ("GET", "/v1/tenants/{tenant}/quota") => ok(e.quota(&var(0), None).await?),
        ("PUT", "/v1/tenants/{tenant}/quota") => {
            let q = quota_of(&body)?;
            e.set_quota(&var(0), None, q).await?;
            ok(q)
        }
        ("GET", "/v1/buckets/{tenant}/{bucket}/quota") => {
            ok(e.quota(&var(0), Some(&var(1))).await?)
        }
        ("PUT", "/v1/buckets/{tenant}/{bucket}/quota") => {
            let q = quota_of(&body)?;
            e.set_quota(&var(0), Some(&var(1)), q).await?;
            ok(q)
        }
        ("GET", "/v1/keys") => ok(e.keys(query.get("tenant").map(String::as_str)).await?),
        ("POST", "/v1/keys") => {
            let tenant = string_field(&body, "tenant")?;
            let read_only = match body.get("read_only") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(bad("read_only is true or false")),
            };
            let expires = match body.get("expires_at") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(time_of(s)?),
                Some(_) => return Err(bad("expires_at is an RFC 3339 time")),
            };
            let (id, secret) = e.create_key(&tenant, read_only, expires).await?;
            Ok(Answer::Json(
                StatusCode::CREATED,
                json!({ "tenant": tenant, "access_key_id": id, "secret_key": secret,
                        "read_only": read_only, "expires_at": expires }),
            ))
        }
        ("POST", "/v1/keys/{key}/disable") => {
            e.set_key_enabled(&var(0), false).await?;
            ok(json!({ "access_key_id": var(0), "state": "disabled" }))
        }
        ("POST", "/v1/keys/{key}/enable") => {
            e.set_key_enabled(&var(0), true).await?;
            ok(json!({ "access_key_id": var(0), "state": "enabled" }))
        }
        ("DELETE", "/v1/keys/{key}") => {
            e.delete_key(&var(0)).await?;
            ok(json!({ "access_key_id": var(0), "state": "deleted" }))
        }
        ("GET", "/v1/buckets") => {
            let rows = e
                .all_buckets(query.get("tenant").map(String::as_str))
                .await?;
            let v: Vec<Value> = rows
                .iter()
                .map(|(t, b)| json!({ "tenant": t, "bucket": b.name, "created_at": b.created_at }))
                .collect();
            ok(v)
        }
        ("GET", "/v1/usage") => {
            let (t, b) = (query.get("tenant"), query.get("bucket"));
            ok(e.usage_report(t.map(String::as_str), b.map(String::as_str))
                .await?)
        }
        ("GET", "/v1/metering") => {
            let now = crate::now_micros();
            let range = MeterRange {
                tenant: query.get("tenant").map(String::as_str),
                bucket: query.get("bucket").map(String::as_str),
                from: opt_time(&query, "from")?.unwrap_or(now - 86_400_000_000),
                to: opt_time(&query, "to")?.unwrap_or(now),
                by_day: match query.get("by").map(String::as_str) {
                    None | Some("hour") => false,
                    Some("day") => true,
                    Some(_) => return Err(bad("by is hour or day")),
                },
            };
            ok(e.metering(range).await?)
        }
        ("GET", "/v1/objects") => ok(e.search_objects(&search_of(&query)?).await?),
        ("POST", "/v1/gc") => {
            let m = &api.maintenance;
            let adopted = crate::workers::adopt_orphan_files(e, m.gc.orphan_age).await?;
            let run = crate::workers::gc_once(e, &m.gc).await?;
            ok(json!({ "orphan_files_adopted": adopted, "run": run }))
        }
        ("POST", "/v1/scrub") => {
            let mbps = api.maintenance.scrub_mbps;
            ok(crate::workers::scrub_once(e, mbps, usize::MAX).await?)
        }
        ("POST", "/v1/fsck") => {
            let repair = flag(&query, "repair")?;
            let grace = api.maintenance.gc.grace;
            ok(crate::workers::fsck(e, repair, grace).await?)
        }
        _ => Err(Fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("route {pattern} has no handler"),
        )),
    }
}

/// Whether `path` matches `pattern` under any method.
fn matched_any(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    pat.len() == segs.len()
        && pat
            .iter()
            .zip(&segs)
            .all(|(p, s)| (p.starts_with('{') && !s.is_empty()) || p == s)
}

fn query_of(req: &Request<Incoming>) -> HashMap<String, String> {
    let q = req.uri().query().unwrap_or("");
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

/// The request's JSON body (`Null` when empty), at most `MAX_BODY` bytes.
async fn read_body(req: Request<Incoming>) -> Result<Value, Fail> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    let collected = tokio::time::timeout(READ_TIMEOUT, limited.collect()).await;
    let bytes = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(_)) => return Err(bad(format!("the body is over {MAX_BODY} bytes or broken"))),
        Err(_) => return Err(bad("the body did not arrive in time")),
    };
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("the body is not JSON: {e}")))
}

fn string_field(body: &Value, name: &str) -> Result<String, Fail> {
    body.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| bad(format!("{name} (a string) is required")))
}

/// `{"max_bytes": n|null, "max_objects": n|null}`: both limits at once; one left out is none.
fn quota_of(body: &Value) -> Result<Quota, Fail> {
    let limit = |name: &str| match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| bad(format!("{name} is a count of at least 0, or null"))),
    };
    if !body.is_object() {
        return Err(bad(
            "the body is a JSON object with max_bytes and max_objects",
        ));
    }
    Ok(Quota {
        bytes: limit("max_bytes")?,
        objects: limit("max_objects")?,
    })
}

fn flag(query: &HashMap<String, String>, name: &str) -> Result<bool, Fail> {
    match query.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(_) => Err(bad(format!("{name} is true or false"))),
    }
}

/// An RFC 3339 time as microseconds since the epoch.
fn time_of(s: &str) -> Result<i64, Fail> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad(format!("{s:?} is not an RFC 3339 time")))?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).map_err(|_| bad("time out of range"))
}

fn opt_time(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Fail> {
    query.get(name).map(|s| time_of(s)).transpose()
}

fn opt_num<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, Fail> {
    q.get(name)
        .map(|s| s.parse().map_err(|_| bad(format!("{name} is a number"))))
        .transpose()
}

fn search_of(q: &HashMap<String, String>) -> Result<SearchQuery, Fail> {
    let tenant = q
        .get("tenant")
        .cloned()
        .ok_or_else(|| bad("tenant is required"))?;
    Ok(SearchQuery {
        tenant,
        bucket: q.get("bucket").cloned(),
        prefix: q.get("prefix").cloned(),
        created_after: opt_time(q, "created_after")?,
        created_before: opt_time(q, "created_before")?,
        min_size: opt_num(q, "min_size")?,
        max_size: opt_num(q, "max_size")?,
        content_type: q.get("content_type").cloned(),
        limit: opt_num(q, "limit")?,
        cursor: q.get("cursor").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_by_method_and_segments() {
        let m = |method: Method, path| matched(&method, path).map(|(p, v)| (p, v.join(",")));
        assert_eq!(
            m(Method::GET, "/v1/tenants"),
            Some(("/v1/tenants", String::new()))
        );
        assert_eq!(
            m(Method::PUT, "/v1/buckets/acme/data/quota"),
            Some(("/v1/buckets/{tenant}/{bucket}/quota", "acme,data".into()))
        );
        assert_eq!(m(Method::GET, "/v1/tenants/"), None);
        assert_eq!(m(Method::PATCH, "/v1/tenants"), None);
        assert!(matched_any("/v1/tenants", "/v1/tenants"));
    }

    /// Every route is described in openapi.json with its method, and nothing else is.
    #[test]
    fn openapi_describes_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let mut described = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    described.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        routes.sort();
        described.sort();
        assert_eq!(routes, described);
    }
}
