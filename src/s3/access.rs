//! Anonymous requests: which ones a bucket's or object's ACL lets through.
//!
//! s3s verifies signatures; a signed request acts as its key's tenant on that tenant's buckets
//! (the owner needs no list). An unsigned request names a bucket of the root tenant; it is
//! allowed only what that bucket's list (bucket operations, writes) or the object's list (reads
//! of an object) grants `AllUsers`. When allowed, it runs as the bucket's owner: the checked
//! `Caller` (read-only unless the grant is a write) travels to the operation in the request's
//! extensions, and so does the version whose list was checked (`Checked`), so a read never
//! serves a version that replaced it since.

use super::to_s3_error;
use crate::engine::acl::Target;
use crate::engine::acl::{BucketConfig, Permission as Perm, PublicAccessBlock, Requester};
use crate::engine::{Caller, Engine, Error, ROOT_TENANT};
use crate::meta::ObjectRow;
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::*;
use s3s::{S3Request, S3Result, s3_error};
use tokio::sync::OnceCell;

/// The object version an anonymous read was allowed for.
#[derive(Debug, Clone)]
pub struct Checked(pub String);

pub struct Access {
    engine: Engine,
    root: OnceCell<String>,
}

impl Access {
    pub fn new(engine: Engine) -> Access {
        Access {
            engine,
            root: OnceCell::new(),
        }
    }

    async fn root(&self) -> S3Result<&str> {
        let id = self
            .root
            .get_or_try_init(|| async {
                match self.engine.meta().tenant_id(ROOT_TENANT).await {
                    Ok(Some(id)) => Ok(id),
                    Ok(None) => Err(to_s3_error(Error::AccessDenied)),
                    Err(e) => Err(to_s3_error(e.into())),
                }
            })
            .await?;
        Ok(id)
    }

    /// The root tenant's bucket `name`, acting as its owner (read-only unless `want` writes).
    /// A bucket whose public access block ignores public lists lets no anonymous request in.
    async fn owner_of(&self, name: &str, want: Perm) -> S3Result<(Caller, String)> {
        let owner = Caller {
            tenant_id: self.root().await?.to_owned(),
            read_only: !matches!(want, Perm::Write | Perm::WriteAcp | Perm::FullControl),
        };
        let b = self
            .engine
            .bucket(&owner, name)
            .await
            .map_err(to_s3_error)?;
        let block: Option<PublicAccessBlock> = self
            .engine
            .bucket_config(&b.id, BucketConfig::PublicAccessBlock)
            .await
            .map_err(to_s3_error)?;
        if block.is_some_and(|p| p.ignore_public_acls) {
            return Err(denied());
        }
        Ok((owner, b.id))
    }

    async fn bucket_allows(&self, bucket_id: &str, owner: &Caller, want: Perm) -> S3Result<bool> {
        let acl = self
            .engine
            .acl(Target::Bucket(bucket_id), &owner.tenant_id)
            .await
            .map_err(to_s3_error)?;
        Ok(acl.allows(Requester::Anonymous, want))
    }

    /// An anonymous bucket operation (listing, uploads, writes of objects) needs `want` on the
    /// bucket's list.
    async fn bucket<T>(&self, req: &mut S3Request<T>, bucket: &str, want: Perm) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let (owner, bucket_id) = self.owner_of(bucket, want).await?;
        if !self.bucket_allows(&bucket_id, &owner, want).await? {
            return Err(denied());
        }
        req.extensions.insert(owner);
        Ok(())
    }

    /// An anonymous object operation needs `want` on the current version's list. A missing key
    /// is NoSuchKey only to whom the bucket lets list it (S3 hides what a caller cannot list).
    async fn object<T>(
        &self,
        req: &mut S3Request<T>,
        (bucket, key, version): (&str, &str, Option<&str>),
        want: Perm,
    ) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let (owner, bucket_id) = self.owner_of(bucket, want).await?;
        let found = (self.engine)
            .object_version(&owner, bucket, key, version, false)
            .await;
        let row = match found {
            Ok(row) => row,
            Err(Error::NoSuchKey)
                if !self.bucket_allows(&bucket_id, &owner, Perm::Read).await? =>
            {
                return Err(denied());
            }
            Err(e) => return Err(to_s3_error(e)),
        };
        let acl = self
            .engine
            .acl(Target::Object(&row.id), &owner.tenant_id)
            .await
            .map_err(to_s3_error)?;
        if !acl.allows(Requester::Anonymous, want) {
            return Err(denied());
        }
        req.extensions.insert(Checked(row.id));
        req.extensions.insert(owner);
        Ok(())
    }
}

/// A read let through for one version must not serve another (a new version replaced it
/// since the check, and its list may not allow the read).
pub fn same_version(ext: &http::Extensions, row: &ObjectRow) -> S3Result<()> {
    match ext.get::<Checked>() {
        Some(Checked(id)) if *id != row.id => Err(denied()),
        _ => Ok(()),
    }
}

fn denied() -> s3s::S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

/// Operations not listed below keep s3s's default for anonymous requests: `Ok`, then the
/// gateway's `caller` refuses them (there is no checked `Caller` in their extensions).
#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, _cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        Ok(())
    }

    async fn get_object(&self, req: &mut S3Request<GetObjectInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let i = &req.input;
        let (b, k, v) = (i.bucket.clone(), i.key.clone(), i.version_id.clone());
        self.object(req, (&b, &k, v.as_deref()), Perm::Read).await
    }

    async fn head_object(&self, req: &mut S3Request<HeadObjectInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let i = &req.input;
        let (b, k, v) = (i.bucket.clone(), i.key.clone(), i.version_id.clone());
        self.object(req, (&b, &k, v.as_deref()), Perm::Read).await
    }

    async fn get_object_acl(&self, req: &mut S3Request<GetObjectAclInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let i = &req.input;
        let (b, k, v) = (i.bucket.clone(), i.key.clone(), i.version_id.clone());
        self.object(req, (&b, &k, v.as_deref()), Perm::ReadAcp)
            .await
    }

    async fn put_object_acl(&self, req: &mut S3Request<PutObjectAclInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let i = &req.input;
        let (b, k, v) = (i.bucket.clone(), i.key.clone(), i.version_id.clone());
        self.object(req, (&b, &k, v.as_deref()), Perm::WriteAcp)
            .await
    }

    async fn head_bucket(&self, req: &mut S3Request<HeadBucketInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::Read).await
    }

    async fn list_objects(&self, req: &mut S3Request<ListObjectsInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::Read).await
    }

    async fn list_objects_v2(&self, req: &mut S3Request<ListObjectsV2Input>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::Read).await
    }

    async fn list_multipart_uploads(
        &self,
        req: &mut S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::Read).await
    }

    async fn get_bucket_acl(&self, req: &mut S3Request<GetBucketAclInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::ReadAcp).await
    }

    async fn put_bucket_acl(&self, req: &mut S3Request<PutBucketAclInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::WriteAcp).await
    }

    async fn put_object(&self, req: &mut S3Request<PutObjectInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::Write).await
    }

    async fn delete_object(&self, req: &mut S3Request<DeleteObjectInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::Write).await
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::Write).await
    }

    async fn create_multipart_upload(
        &self,
        req: &mut S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::Write).await
    }

    async fn upload_part(&self, req: &mut S3Request<UploadPartInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::Write).await
    }

    async fn complete_multipart_upload(
        &self,
        req: &mut S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::Write).await
    }

    async fn abort_multipart_upload(
        &self,
        req: &mut S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::Write).await
    }

    async fn list_parts(&self, req: &mut S3Request<ListPartsInput>) -> S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let b = req.input.bucket.clone();
        self.bucket(req, &b, Perm::Write).await
    }
}
