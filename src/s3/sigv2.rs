//! botocore (`signature_version='s3'`) signs a path-style bucket request's SigV2 resource as
//! `/bucket/` while its request line says `/bucket` (its `auth_path`); S3 accepts that. s3s
//! 0.14.1 signs the raw request path and no s3s hook can change it. So when, and only when, the
//! signature verifies over `/bucket/`, the request path becomes `/bucket/`: s3s routes that to
//! the same bucket and verifies the signature again itself, so this never grants anything s3s
//! would not. Requests signed as sent do not verify over `/bucket/` and are left alone (an
//! unconditional rewrite breaks them). The string to sign is s3s's (sig_v2/methods.rs).

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// s3s 0.14.1 `sig_v2::methods::INCLUDED_QUERY`, in its (sorted) order.
const SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// A SigV2-signed, path-style request addressed to a bucket as `/bucket`.
pub struct Candidate {
    pub access_key: String,
    signature: Vec<u8>,
    presigned: bool,
    /// Decoded query pairs, stable-sorted by name (as s3s's `OrderedQs`).
    query: Vec<(String, String)>,
}

/// The one value of `name` if it occurs exactly once (s3s's `get_unique`).
fn unique<'a, V: AsRef<str>>(pairs: &'a [(V, V)], name: &str) -> Option<&'a str> {
    let mut it = pairs
        .iter()
        .filter(|(k, _)| AsRef::<str>::as_ref(k) == name);
    match (it.next(), it.next()) {
        (Some((_, v)), None) => Some(v.as_ref()),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` pairs, as serde_urlencoded decodes them.
pub(super) fn parse_query(q: &str) -> Vec<(String, String)> {
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut v: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The request if it is SigV2 (header or presigned, s3s's order), path style and on a bare
/// `/bucket` path; `domains` are the virtual-host base domains.
pub fn candidate<B>(req: &http::Request<B>, domains: &[String]) -> Option<Candidate> {
    let name = req.uri().path().strip_prefix('/')?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    // A browser POST form is checked by its policy signature, not this one.
    if req.method() == http::Method::POST && super::form::is_form(req) {
        return None;
    }
    // Virtual-hosted (s3s asks the host only when it is not an IP address): `/x` is a key.
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if let Some(h) = host
        && super::host::bucket_of(domains, h).is_some()
    {
        return None;
    }
    let query = parse_query(req.uri().query().unwrap_or(""));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
    if query.iter().any(|(k, _)| k == "Signature") {
        return Some(Candidate {
            access_key: unique(&query, "AWSAccessKeyId")?.to_owned(),
            signature: b64(unique(&query, "Signature")?)?,
            presigned: true,
            query,
        });
    }
    let mut auth = req.headers().get_all(http::header::AUTHORIZATION).iter();
    let (Some(auth), None) = (auth.next(), auth.next()) else {
        return None;
    };
    let (access_key, sig) = auth.to_str().ok()?.strip_prefix("AWS ")?.split_once(':')?;
    Some(Candidate {
        access_key: access_key.to_owned(),
        signature: b64(sig)?,
        presigned: false,
        query,
    })
}

/// s3s 0.14.1 `sig_v2::create_string_to_sign` for a path-style request, over `resource`.
fn string_to_sign<B>(req: &http::Request<B>, c: &Candidate, resource: &str) -> String {
    let mut hs: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), std::str::from_utf8(v.as_bytes()).ok()?)))
        .collect();
    hs.sort_by(|a, b| a.0.cmp(b.0));
    let mut s = String::with_capacity(256);
    for line in [
        req.method().as_str(),
        unique(&hs, "content-md5").unwrap_or(""),
        unique(&hs, "content-type").unwrap_or(""),
    ] {
        s.push_str(line);
        s.push('\n');
    }
    if c.presigned {
        s.push_str(unique(&c.query, "Expires").unwrap_or(""));
    } else if unique(&hs, "x-amz-date").is_none() {
        s.push_str(unique(&hs, "date").unwrap_or(""));
    }
    s.push('\n');
    let mut last = "";
    for &(name, _) in &hs {
        if !name.starts_with("x-amz-") || name == last {
            continue;
        }
        last = name;
        let values: Vec<&str> = hs
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.trim())
            .collect();
        s.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    s.push_str(resource);
    let mut sep = '?';
    for q in SUBRESOURCES {
        if let Some(v) = unique(&c.query, q) {
            s.push(sep);
            sep = '&';
            s.push_str(q);
            if !v.is_empty() {
                s.push('=');
                s.push_str(v);
            }
        }
    }
    s
}

/// Whether the signature verifies over `<path>/` (constant-time comparison).
pub fn signed_with_slash<B>(req: &http::Request<B>, c: &Candidate, secret: &str) -> bool {
    let Ok(mut mac) = <Hmac<Sha1>>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    let resource = format!("{}/", req.uri().path());
    mac.update(string_to_sign(req, c, &resource).as_bytes());
    mac.verify_slice(&c.signature).is_ok()
}

/// `/bucket?q` becomes `/bucket/?q` (scheme and authority kept).
pub fn add_slash<B>(req: &mut http::Request<B>) {
    let pq = match req.uri().query() {
        Some(q) => format!("{}/?{q}", req.uri().path()),
        None => format!("{}/", req.uri().path()),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}
