//! CORS on the wire: Put/Get/DeleteBucketCors, preflights (`OPTIONS`, answered here, never
//! signed), and the `Access-Control-*` headers of requests that carry an `Origin`.
//!
//! The bucket a browser request means is found as `access` finds it (its credential's tenant,
//! else the root tenant, or `tenant:bucket`), from the path or the virtual host, before s3s
//! runs; only requests with an `Origin` header pay for that lookup (the bucket cache's).

use super::{Gateway, to_s3_error};
use crate::engine::cors::{Cors, CorsRule};
use crate::engine::{BucketAccess, Engine, ROOT_TENANT};
use http::header::{HeaderName, HeaderValue};
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};
use std::sync::Arc;

pub async fn put(
    g: &Gateway,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let caller = g.caller(&req).await?;
    let input = req.input;
    let rules = input.cors_configuration.cors_rules;
    let cors = Cors {
        rules: rules
            .into_iter()
            .map(|r| CorsRule {
                id: r.id,
                allowed_methods: r.allowed_methods,
                allowed_origins: r.allowed_origins,
                allowed_headers: r.allowed_headers.unwrap_or_default(),
                expose_headers: r.expose_headers.unwrap_or_default(),
                max_age_seconds: r.max_age_seconds,
            })
            .collect(),
    };
    g.engine
        .set_cors(&caller, &input.bucket, Some(&cors))
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutBucketCorsOutput {}))
}

pub async fn get(
    g: &Gateway,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let caller = g.caller(&req).await?;
    let b = (g.engine.bucket(&caller, &req.input.bucket).await).map_err(to_s3_error)?;
    let cors = g.engine.cors(&b.id).await.map_err(to_s3_error)?;
    let cors = cors.ok_or_else(|| {
        s3_error!(
            NoSuchCORSConfiguration,
            "The CORS configuration does not exist"
        )
    })?;
    let some = |v: Vec<String>| (!v.is_empty()).then_some(v);
    Ok(S3Response::new(GetBucketCorsOutput {
        cors_rules: Some(
            cors.rules
                .into_iter()
                .map(|r| CORSRule {
                    id: r.id,
                    allowed_methods: r.allowed_methods,
                    allowed_origins: r.allowed_origins,
                    allowed_headers: some(r.allowed_headers),
                    expose_headers: some(r.expose_headers),
                    max_age_seconds: r.max_age_seconds,
                })
                .collect(),
        ),
    }))
}

pub async fn delete(
    g: &Gateway,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    let caller = g.caller(&req).await?;
    g.engine
        .set_cors(&caller, &req.input.bucket, None)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteBucketCorsOutput {}))
}

fn header<'a, B>(req: &'a http::Request<B>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The access key a request names (signed or presigned, either version), unverified: it only
/// says whose bucket a browser means.
fn access_key<B>(req: &http::Request<B>) -> Option<String> {
    if let Some(a) = header(req, "authorization") {
        if let Some(rest) = a.strip_prefix("AWS4-HMAC-SHA256 ") {
            let cred = rest
                .split(',')
                .find_map(|p| p.trim().strip_prefix("Credential="))?;
            return cred.split('/').next().map(str::to_owned);
        }
        return a.strip_prefix("AWS ")?.split(':').next().map(str::to_owned);
    }
    let query = req.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| match k.as_ref() {
        "X-Amz-Credential" => v.split('/').next().map(str::to_owned),
        "AWSAccessKeyId" => Some(v.into_owned()),
        _ => None,
    })
}

/// The bucket name of a request: the virtual host's, else the path's first segment.
fn bucket_name<B>(req: &http::Request<B>, domains: &[String]) -> Option<String> {
    if let Some(b) = header(req, "host").and_then(|h| super::host::bucket_of(domains, h)) {
        return Some(b.to_ascii_lowercase());
    }
    let first = req.uri().path().trim_start_matches('/').split('/').next()?;
    let name = percent_encoding::percent_decode_str(first)
        .decode_utf8()
        .ok()?;
    (!name.is_empty()).then(|| name.into_owned())
}

/// The bucket (with its CORS rules) a browser request means, if it exists.
async fn bucket_of<B>(
    engine: &Engine,
    req: &http::Request<B>,
    domains: &[String],
) -> Option<Arc<BucketAccess>> {
    let name = bucket_name(req, domains)?;
    let tenant_of = |t: String| async move { engine.meta().tenant_id(&t).await.ok().flatten() };
    if let Some((tenant, bare)) = name.split_once(':') {
        let t = if tenant.is_empty() {
            ROOT_TENANT
        } else {
            tenant
        };
        let id = tenant_of(t.to_owned()).await?;
        return engine.bucket_access(&id, bare).await.ok().flatten();
    }
    if let Some(k) = access_key(req)
        && let Ok(Some(key)) = engine.access_key(&k).await
        && let Ok(Some(b)) = engine.bucket_access(&key.tenant_id, &name).await
    {
        return Some(b);
    }
    let root = tenant_of(ROOT_TENANT.to_owned()).await?;
    engine.bucket_access(&root, &name).await.ok().flatten()
}

fn forbidden(msg: &'static str) -> S3Error {
    let mut e = S3Error::with_message(s3s::S3ErrorCode::Custom("AccessForbidden".into()), msg);
    e.set_status_code(http::StatusCode::FORBIDDEN);
    e
}

/// The headers a matching rule adds to an answer for `origin`.
fn allow_headers(rule: &CorsRule, origin: &str) -> Vec<(HeaderName, String)> {
    let allow = rule.allow_origin(origin);
    let mut h = vec![
        (http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allow.to_owned()),
        (
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            rule.allowed_methods.join(", "),
        ),
        (
            http::header::VARY,
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method".to_owned(),
        ),
    ];
    if allow != "*" {
        h.push((
            http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            "true".to_owned(),
        ));
    }
    if !rule.expose_headers.is_empty() {
        h.push((
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            rule.expose_headers.join(", "),
        ));
    }
    if let Some(age) = rule.max_age_seconds {
        h.push((http::header::ACCESS_CONTROL_MAX_AGE, age.to_string()));
    }
    h
}

/// S3's answer to a preflight: 200 with the rule's headers, else 400 (not a preflight) or 403.
pub async fn preflight<B>(
    engine: &Engine,
    req: &http::Request<B>,
    domains: &[String],
) -> Result<http::Response<super::Body>, S3Error> {
    let Some(origin) = header(req, "origin") else {
        return Err(s3_error!(
            InvalidRequest,
            "Insufficient information. Origin request header needed."
        ));
    };
    let Some(method) = header(req, "access-control-request-method") else {
        return Err(s3_error!(
            InvalidRequest,
            "Invalid Access-Control-Request-Method: null"
        ));
    };
    let cors = bucket_of(engine, req, domains)
        .await
        .and_then(|b| b.cors.clone());
    let Some(cors) = cors else {
        return Err(forbidden(
            "CORSResponse: CORS is not enabled for this bucket.",
        ));
    };
    let asked: Vec<String> = header(req, "access-control-request-headers")
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let Some(rule) = cors.find(origin, method, &asked) else {
        return Err(forbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the \
             evalution of Origin, request method / Access-Control-Request-Method or \
             Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        ));
    };
    let mut resp = http::Response::new(super::Body::empty());
    let mut h = allow_headers(rule, origin);
    if !asked.is_empty() {
        h.push((http::header::ACCESS_CONTROL_ALLOW_HEADERS, asked.join(", ")));
    }
    set(&mut resp, h);
    Ok(resp)
}

/// The CORS headers for the answer to a request with an `Origin` (`None` without one, or when
/// no rule allows it). The method is `Access-Control-Request-Method` if sent, as S3 takes it.
pub async fn actual<B>(
    engine: &Engine,
    req: &http::Request<B>,
    domains: &[String],
) -> Option<Vec<(HeaderName, String)>> {
    let origin = header(req, "origin")?;
    let method = header(req, "access-control-request-method").unwrap_or(req.method().as_str());
    let b = bucket_of(engine, req, domains).await?;
    let rule = b.cors.as_ref()?.find(origin, method, &[])?;
    Some(allow_headers(rule, origin))
}

pub fn set<B>(resp: &mut http::Response<B>, headers: Vec<(HeaderName, String)>) {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
}
