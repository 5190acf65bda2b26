//! A `Range` header S3 cannot use is ignored: S3 answers GET/HEAD 200 with the whole object for
//! `bytes=5-2`, `bytes=abc` or several ranges (`bytes=0-1,3-4`). s3s refuses such a header with
//! 400 InvalidArgument while it deserializes the request, after checking the signature, which
//! covers the header: it can be dropped neither before s3s (the signature would no longer
//! match) nor by any hook after the check (they see the headers read-only).
//!
//! So such a request is taken by this route, which s3s matches after the signature check: the
//! header is removed, and so is the now-spent signature (the `Authorization` header and the
//! presigned query parameters), and the request goes through a second s3s service that has no
//! authentication, carrying the verified access key and region in an extension (`Verified`),
//! which `Gateway::caller` takes in place of s3s's credentials. Only this route reaches that
//! service; an extension cannot come from the wire.

use s3s::route::S3Route;
use s3s::service::S3Service;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

/// Credentials s3s verified on the original request (see the module doc).
#[derive(Clone, Debug)]
pub struct Verified {
    pub access_key: String,
    pub region: Option<String>,
}

/// Query parameters that carry a presigned URL's signature (SigV4, SigV2).
const SIGNATURE_PARAMS: [&str; 10] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    "Expires",
];

/// Whether s3s would refuse this request's `Range` (several headers count as unusable too).
fn unusable(headers: &http::HeaderMap) -> bool {
    let mut all = headers.get_all(http::header::RANGE).iter();
    let Some(first) = all.next() else {
        return false;
    };
    let parsed = first
        .to_str()
        .ok()
        .and_then(|v| s3s::dto::Range::parse(v).ok());
    parsed.is_none() || all.next().is_some()
}

/// `uri` without the presigned-signature parameters.
fn unsigned_uri(uri: &http::Uri) -> Result<http::Uri, http::Error> {
    let Some(query) = uri.query() else {
        return Ok(uri.clone());
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            let name = p.split_once('=').map_or(*p, |(k, _)| k);
            !SIGNATURE_PARAMS.contains(&name)
        })
        .collect();
    let path = match kept.is_empty() {
        true => uri.path().to_owned(),
        false => format!("{}?{}", uri.path(), kept.join("&")),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path.parse()?);
    Ok(http::Uri::from_parts(parts)?)
}

pub struct IgnoreBadRange {
    /// The service without authentication (see the module doc).
    pub trusted: S3Service,
}

#[async_trait::async_trait]
impl S3Route for IgnoreBadRange {
    fn is_match(
        &self,
        method: &http::Method,
        _uri: &http::Uri,
        headers: &http::HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> bool {
        (method == http::Method::GET || method == http::Method::HEAD) && unusable(headers)
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let Some(cred) = req.credentials else {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        };
        let mut headers = req.headers;
        headers.remove(http::header::RANGE);
        headers.remove(http::header::AUTHORIZATION);
        let uri = unsigned_uri(&req.uri).map_err(|e| s3_error!(e, InvalidURI))?;
        let mut inner = http::Request::new(req.input);
        *inner.method_mut() = req.method;
        *inner.uri_mut() = uri;
        *inner.headers_mut() = headers;
        *inner.extensions_mut() = req.extensions;
        inner.extensions_mut().insert(Verified {
            access_key: cred.access_key,
            region: req.region.map(|r| r.as_str().to_owned()),
        });
        let resp = self.trusted.call(inner).await.map_err(|e| {
            tracing::error!(error = ?e, "s3 protocol error (range route)");
            s3_error!(
                InternalError,
                "We encountered an internal error. Please try again."
            )
        })?;
        let (parts, body) = resp.into_parts();
        let mut out = S3Response::new(body);
        out.status = Some(parts.status);
        out.headers = parts.headers;
        out.extensions = parts.extensions;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_ranges() {
        let h = |vals: &[&str]| {
            let mut m = http::HeaderMap::new();
            for v in vals {
                m.append(http::header::RANGE, v.parse().unwrap());
            }
            unusable(&m)
        };
        assert!(!h(&[]));
        for ok in ["bytes=0-0", "bytes=5-", "bytes=-3", "bytes=40-50"] {
            assert!(!h(&[ok]), "{ok}");
        }
        for bad in [
            "bytes=5-2",
            "bytes=abc",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=",
        ] {
            assert!(h(&[bad]), "{bad}");
        }
        assert!(h(&["bytes=0-1", "bytes=2-3"]));
        let uri: http::Uri = "/b/k?X-Amz-Signature=x&response-content-type=a%2Fb&Signature=y"
            .parse()
            .unwrap();
        assert_eq!(
            unsigned_uri(&uri).unwrap().to_string(),
            "/b/k?response-content-type=a%2Fb"
        );
    }
}
