//! The S3 wire protocol: the only module that imports `s3s`.
//!
//! s3s routes requests, verifies signatures (via `auth::KeyStore`) and (de)serialises XML. This
//! module turns each operation's DTO into an engine call and the engine's answer (or error)
//! back into a DTO. It never touches files or SQL.

mod access;
mod acl;
mod auth;
mod authcheck;
mod aws_chunked;
mod bucket;
mod bucket_config;
mod chunked;
mod convert;
mod cors;
mod digest;
mod error;
mod form;
mod host;
mod lifecycle;
mod limits;
mod linger;
mod list;
mod multipart;
mod object;
mod policy;
mod post;
mod range;
mod sigv2;
mod sse;
mod versioning;

pub use error::to_s3_error;
pub use limits::head_too_large_body;
pub use policy::Peer;

use crate::engine::{Caller, Engine};
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

/// The response body type of the protocol layer (so `server` needs no s3s import).
pub type Body = s3s::Body;

/// The HTTP layer's read buffer for `server`: above the protocol's request-head limit
/// (`limits::MAX_HEAD`, an S3 error), so only heads far past it get the HTTP layer's bare 431.
pub const READ_BUFFER: usize = limits::MAX_HEAD * 4;

/// The S3 protocol endpoint: routes, authenticates and answers one HTTP request.
#[derive(Clone)]
pub struct Protocol {
    service: s3s::service::S3Service,
    /// For the SigV2 `/bucket/` check (secrets via the engine's cached key lookup).
    engine: Engine,
    /// Virtual-host base domains (the list given to `host::Domains`).
    domains: Vec<String>,
    body_timeout: std::time::Duration,
}

/// Protocol settings from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub region: String,
    /// Refuse requests signed for another region.
    pub enforce_region: bool,
    /// Base domains for virtual-hosted-style addressing (empty: path style only).
    pub domains: Vec<String>,
    /// A request body that sends nothing for this long fails with 400 RequestTimeout.
    pub body_timeout: std::time::Duration,
}

impl Protocol {
    pub fn new(engine: Engine, settings: Settings) -> Result<Protocol, String> {
        if let Some(bad) = settings
            .domains
            .iter()
            .find(|d| d.is_empty() || d.contains('/'))
        {
            return Err(format!("invalid --domain {bad:?}: expected a host name"));
        }
        // Reached only through `range::IgnoreBadRange`, after s3s checked the signature.
        let trusted = service(&engine, &settings).build();
        let mut b = service(&engine, &settings);
        b.set_auth(auth::KeyStore {
            engine: engine.clone(),
        });
        b.set_access(access::Access::new(engine.clone()));
        b.set_route(range::IgnoreBadRange { trusted });
        Ok(Protocol {
            service: b.build(),
            engine,
            domains: settings.domains,
            body_timeout: settings.body_timeout,
        })
    }

    /// Answers one request. Error responses carry Message, Resource and `request_id`.
    pub async fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
        request_id: &str,
    ) -> http::Response<Body> {
        let resource = req.uri().path().to_owned();
        // Tracked from the start, so that a request refused on its head has its body read or
        // the connection closed like any other (`linger`).
        let (mut req, leftover, stalled) = linger::track(req, self.body_timeout);
        if let Err(e) = limits::check(&req) {
            drop(req);
            return refuse(e, leftover, request_id, &resource).await;
        }
        // Preflights are never signed: answered here from the bucket's CORS rules.
        if req.method() == http::Method::OPTIONS {
            let answer = cors::preflight(&self.engine, &req, &self.domains).await;
            drop(req);
            return match answer {
                Ok(mut resp) => {
                    leftover.drain().await.apply(&mut resp);
                    resp
                }
                Err(e) => refuse(e, leftover, request_id, &resource).await,
            };
        }
        let cors_headers = match req.headers().contains_key(http::header::ORIGIN) {
            true => cors::actual(&self.engine, &req, &self.domains).await,
            false => None,
        };
        let expect = authcheck::check(&req).and_then(|()| digest::expect(&req));
        let expect = match expect {
            Ok(expect) => expect,
            Err(e) => {
                drop(req);
                return refuse(e, leftover, request_id, &resource).await;
            }
        };
        authcheck::add_amz_date(&mut req);
        // botocore's SigV2 `/bucket/` resource for `/bucket` (see sigv2.rs): an unknown key or a
        // failed lookup leaves the request as sent, for s3s to refuse.
        if let Some(c) = sigv2::candidate(&req, &self.domains)
            && let Ok(Some(key)) = self.engine.access_key(&c.access_key).await
            && sigv2::signed_with_slash(&req, &c, &key.secret)
        {
            sigv2::add_slash(&mut req);
        }
        let verdict = digest::Verdict::default();
        let chunked = aws_chunked::is_aws_chunked(&req);
        // A browser POST's form fields, once read (`post`).
        let mut form = None;
        let req = if chunked::needs_length(&req) {
            match chunked::buffer(req).await {
                Ok(req) => req,
                Err(e) => return refuse(e, leftover, request_id, &resource).await,
            }
        } else if chunked {
            req.map(|b| Body::http_body_unsync(aws_chunked::ChunkCap::new(b)))
        } else if req.method() == http::Method::POST
            && let Some(ctype) = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.starts_with("multipart/form-data"))
        {
            // Rechunk outermost: it also cuts the (up to 1 MiB) head FilenameKey passes on.
            let boundary = form::form_boundary(ctype).map(str::to_owned);
            let fields = post::Form::default();
            form = Some(fields.clone());
            let mut req = req;
            req.extensions_mut().insert(fields.clone());
            req.map(|b| {
                let b = form::FilenameKey::new(b, boundary.as_deref(), fields);
                Body::http_body_unsync(form::Rechunk::new(b))
            })
        } else if let Some(expect) = expect {
            req.map(|b| Body::http_body(digest::Check::new(b, expect, verdict.clone())))
        } else {
            req.map(Body::http_body)
        };
        let resp = self.service.call(req).await;
        let reuse = leftover.drain().await;
        // The body went silent, or did not match its digest: whatever the operation made of
        // that (s3s answers a body error 500), S3 says RequestTimeout or BadDigest.
        let resp = match (stalled.get(), verdict.failed()) {
            (true, _) => Ok(error::request_timeout()),
            (false, Some(e)) => Ok(error::response(e)),
            (false, None) => resp,
        };
        let mut resp = match resp {
            Ok(r) if r.status().is_client_error() || r.status().is_server_error() => {
                let r = match &form {
                    Some(form) => post::policy_error(r, form).await,
                    None => r,
                };
                error::complete(r, request_id, &resource).await
            }
            Ok(mut r) if r.extensions().get::<UnquoteXmlEtag>().is_some() => {
                unquote_xml_etag(&mut r);
                r
            }
            Ok(mut r) if r.extensions().get::<PartialContent>().is_some() => {
                *r.status_mut() = http::StatusCode::PARTIAL_CONTENT;
                r
            }
            Ok(r) => r,
            Err(e) => {
                // s3s turns operation errors into responses itself; this is a failure to do so.
                tracing::error!(error = ?e, "s3 protocol error");
                let mut r = http::Response::new(Body::from("internal error\n".to_owned()));
                *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        };
        reuse.apply(&mut resp);
        if let Some(h) = cors_headers {
            cors::set(&mut resp, h);
        }
        resp
    }
}

/// The error response to a request refused in front of s3s, its body read or the connection
/// closed as for any other early answer (`linger`).
async fn refuse(
    e: s3s::S3Error,
    leftover: linger::Leftover,
    request_id: &str,
    resource: &str,
) -> http::Response<Body> {
    let reuse = leftover.drain().await;
    let mut resp = match e.to_http_response() {
        Ok(r) => error::complete(r, request_id, resource).await,
        Err(e) => {
            tracing::error!(error = ?e, "serialising an error");
            let mut r = http::Response::new(Body::empty());
            *r.status_mut() = http::StatusCode::BAD_REQUEST;
            r
        }
    };
    reuse.apply(&mut resp);
    resp
}

/// An s3s service over a `Gateway`, without authentication or routes.
fn service(engine: &Engine, settings: &Settings) -> s3s::service::S3ServiceBuilder {
    let mut b = s3s::service::S3ServiceBuilder::new(Gateway {
        engine: engine.clone(),
        region: settings.region.clone(),
        enforce_region: settings.enforce_region,
    });
    if !settings.domains.is_empty() {
        b.set_host(host::Domains(settings.domains.clone()));
    }
    b.set_validation(access::QualifiedNames);
    let mut config = s3s::config::S3Config::default();
    // DeleteObjects (1,000 keys) and CompleteMultipartUpload (10,000 parts) fit.
    config.xml_max_body_size = limits::MAX_XML_BODY as usize;
    config.post_object_max_file_size = limits::MAX_POST_FILE;
    b.set_config(std::sync::Arc::new(s3s::config::StaticConfigProvider::new(
        std::sync::Arc::new(config),
    )));
    b
}

/// Set by GetObjectAttributes on its response: S3 writes that ETag without quotes, while s3s's
/// XML always quotes an ETag (no DTO value avoids it), so `Protocol::call` strips them.
#[derive(Clone, Copy)]
pub(crate) struct UnquoteXmlEtag;

/// Set by HeadObject when it answers for a range or part: s3s's HEAD response is always 200,
/// and `Protocol::call` makes it S3's 206.
#[derive(Clone, Copy)]
pub(crate) struct PartialContent;

/// Unquotes the `<ETag>` of a small in-memory XML body (GetObjectAttributes has one ETag).
fn unquote_xml_etag(r: &mut http::Response<Body>) {
    let Some(bytes) = r.body().bytes() else {
        return;
    };
    let Ok(xml) = std::str::from_utf8(&bytes) else {
        return;
    };
    let Some((before, rest)) = xml.split_once("<ETag>") else {
        return;
    };
    let Some((etag, after)) = rest.split_once("</ETag>") else {
        return;
    };
    let bare = etag.trim_matches('"');
    if bare.len() == etag.len() {
        return;
    }
    let xml = format!("{before}<ETag>{bare}</ETag>{after}");
    if r.headers().contains_key(http::header::CONTENT_LENGTH) {
        r.headers_mut()
            .insert(http::header::CONTENT_LENGTH, xml.len().into());
    }
    *r.body_mut() = Body::from(xml);
}

pub struct Gateway {
    engine: Engine,
    region: String,
    enforce_region: bool,
}

impl Gateway {
    /// The verified caller of a request, refused when it names another bucket owner than the
    /// one it expects (`x-amz-expected-bucket-owner`).
    async fn caller<T>(&self, req: &S3Request<T>) -> S3Result<Caller> {
        let caller = self.caller_of(req).await?;
        // Every bucket a caller names is its own tenant's (or, anonymous, the one `access`
        // checked), so the owner a request expects is the caller's tenant.
        for h in [
            "x-amz-expected-bucket-owner",
            "x-amz-source-expected-bucket-owner",
        ] {
            if let Some(v) = req.headers.get(h)
                && v.as_bytes() != caller.tenant_id.as_bytes()
            {
                return Err(s3s::s3_error!(AccessDenied, "Access Denied"));
            }
        }
        Ok(caller)
    }

    /// s3s has already checked the signature. An anonymous request has a caller only when
    /// `access` let it through (the bucket's owner, checked against its ACL).
    async fn caller_of<T>(&self, req: &S3Request<T>) -> S3Result<Caller> {
        if let Some(checked) = req.extensions.get::<Caller>() {
            return Ok(checked.clone());
        }
        // s3s's credentials, or those it verified before `range` passed the request on.
        let verified = req.extensions.get::<range::Verified>();
        let (access_key, region) = match (&req.credentials, verified) {
            (Some(c), _) => (&c.access_key, req.region.as_ref().map(|r| r.as_str())),
            (None, Some(v)) => (&v.access_key, v.region.as_deref()),
            (None, None) => {
                return Err(s3s::s3_error!(
                    AccessDenied,
                    "Anonymous access is not allowed"
                ));
            }
        };
        if self.enforce_region
            && let Some(r) = region
            && r != self.region
        {
            return Err(s3s::s3_error!(
                AuthorizationHeaderMalformed,
                "The authorization header is malformed; the region '{r}' is wrong; expecting '{}'",
                self.region
            ));
        }
        // `access` already looked the key up for this request.
        if let Some(c) = req
            .extensions
            .get::<access::Named>()
            .and_then(|n| n.requester())
        {
            return Ok(c.clone());
        }
        self.engine.caller(access_key).await.map_err(to_s3_error)
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        bucket::create(self, req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket::head(self, req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        bucket::delete(self, req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        bucket::list(self, req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        bucket::location(self, req).await
    }

    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        // A browser POST (s3s's PostObject calls this): what s3s did not take from the form.
        let Some(form) = req
            .extensions
            .get::<post::Form>()
            .and_then(post::Form::fields)
        else {
            return object::put(self, req).await;
        };
        post::apply(&mut req.input, &form)?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let mut resp = object::put(self, req).await?;
        if let Some(etag) = resp.output.e_tag.as_ref().map(|e| e.value().to_owned()) {
            post::redirect(&mut resp, &form, &bucket, &key, &etag);
        }
        Ok(resp)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        object::get(self, req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        object::head(self, req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        object::delete(self, req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        object::delete_many(self, req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        object::copy(self, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        list::v1(self, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        list::v2(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(self, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(self, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(self, req).await
    }

    async fn get_object_torrent(
        &self,
        req: S3Request<GetObjectTorrentInput>,
    ) -> S3Result<S3Response<GetObjectTorrentOutput>> {
        object::torrent(self, req).await
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        object::get_tagging(self, req).await
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        object::put_tagging(self, req).await
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        object::delete_tagging(self, req).await
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        object::attributes(self, req).await
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        versioning::get_versioning(self, req).await
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        versioning::put_versioning(self, req).await
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        versioning::get_object_lock(self, req).await
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        versioning::put_object_lock(self, req).await
    }

    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        versioning::get_retention(self, req).await
    }

    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        versioning::put_retention(self, req).await
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        versioning::get_legal_hold(self, req).await
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        versioning::put_legal_hold(self, req).await
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        lifecycle::put(self, req).await
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        lifecycle::get(self, req).await
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        lifecycle::delete(self, req).await
    }

    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        bucket_config::put_ownership_controls(self, req).await
    }

    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        bucket_config::get_ownership_controls(self, req).await
    }

    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        bucket_config::delete_ownership_controls(self, req).await
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        cors::put(self, req).await
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        cors::get(self, req).await
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        cors::delete(self, req).await
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        policy::put(self, req).await
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        policy::get(self, req).await
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        policy::delete(self, req).await
    }

    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        policy::status(self, req).await
    }

    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        acl::get_bucket(self, req).await
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        acl::put_bucket(self, req).await
    }

    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        acl::get_object(self, req).await
    }

    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        acl::put_object(self, req).await
    }

    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        bucket_config::put_public_access_block(self, req).await
    }

    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        bucket_config::get_public_access_block(self, req).await
    }

    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        bucket_config::delete_public_access_block(self, req).await
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        bucket_config::put_tagging(self, req).await
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        bucket_config::get_tagging(self, req).await
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        bucket_config::delete_tagging(self, req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        list::versions(self, req).await
    }
}
