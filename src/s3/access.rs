//! Who may do what to a bucket before the operation runs: the bucket's policy, and the lists
//! (ACLs) of the bucket and its objects.
//!
//! s3s verifies signatures. A signed request names its tenant's bucket; a name its tenant does
//! not have names the root tenant's bucket, as an unsigned request's name always does (the
//! namespace S3's global bucket names map to). `check` finds that bucket (`Named`) and
//! evaluates its policy for every operation: an explicit Deny refuses anyone, the owner too
//! (except the policy calls themselves, so an owner cannot lock itself out); an Allow lets a
//! caller that does not own the bucket act as its owner. Otherwise a caller that does not own
//! the bucket is allowed only what the bucket's list (bucket operations, writes) or the
//! object's list (reads of an object) grants it — to its tenant, to authenticated users, or to
//! everyone. When allowed, the operation runs as the bucket's owner: the acting `Caller`
//! (read-only unless the grant is a write or the key is read-only) travels in the request's
//! extensions, and so does the version whose list was checked (`CheckedVersion`), so a read
//! never serves a version that replaced it since. Copies check their source the same way
//! (`SourceOwner`). Operations without a hook below run as the caller's own tenant, so on a
//! bucket it does not own they answer NoSuchBucket.

use super::policy as wire;
use super::to_s3_error;
use crate::engine::acl::Target;
use crate::engine::acl::{Acl, BucketConfig, Permission as Perm, PublicAccessBlock, Requester};
use crate::engine::policy::{Decision, Principal, Request};
use crate::engine::{BucketAccess, Caller, Engine, Error, ROOT_TENANT};
use crate::meta::ObjectRow;
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::*;
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The object version a caller that does not own the bucket was allowed to read.
#[derive(Debug, Clone)]
pub struct CheckedVersion(pub String);

/// The tenant whose bucket a copy's source names (checked for the caller).
#[derive(Debug, Clone)]
pub struct SourceOwner(pub String);

/// The bucket a request names, and who asks.
#[derive(Debug, Clone)]
pub struct Named {
    bucket: Arc<BucketAccess>,
    /// The caller's tenant owns it.
    own: bool,
    /// The signed caller (`None`: anonymous).
    requester: Option<Caller>,
}

impl Named {
    /// Object Ownership `BucketOwnerEnforced`: ACLs are disabled.
    pub fn acls_disabled(&self) -> bool {
        self.bucket.acls_disabled
    }

    /// The signed caller whose key `check` looked up.
    pub fn requester(&self) -> Option<&Caller> {
        self.requester.as_ref()
    }

    /// The bucket's lifecycle rules (for `x-amz-expiration`).
    pub fn lifecycle(&self) -> Option<&crate::engine::lifecycle::Lifecycle> {
        self.bucket.lifecycle.as_ref()
    }

    fn principal(&self) -> Principal<'_> {
        match &self.requester {
            Some(c) => Principal::Tenant(&c.tenant_id),
            None => Principal::Anonymous,
        }
    }

    fn who(&self) -> Requester<'_> {
        match &self.requester {
            Some(c) => Requester::Tenant(&c.tenant_id),
            None => Requester::Anonymous,
        }
    }

    /// The owner, acting for a caller allowed `want`.
    fn acting(&self, write: bool) -> Caller {
        Caller {
            tenant_id: self.bucket.tenant_id.clone(),
            read_only: !write || self.requester.as_ref().is_some_and(|c| c.read_only),
        }
    }
}

fn is_write(want: Perm) -> bool {
    matches!(want, Perm::Write | Perm::WriteAcp | Perm::FullControl)
}

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

    /// The bucket `name` means to `requester`: `tenant:bucket` names that tenant's (`:bucket`
    /// the root tenant's), a plain name its own, else the root tenant's; `None` when there is
    /// no such bucket (the operation answers NoSuchBucket).
    async fn named(&self, requester: Option<&Caller>, name: &str) -> S3Result<Option<Named>> {
        let found = |b: Arc<BucketAccess>, own| Named {
            bucket: b,
            own,
            requester: requester.cloned(),
        };
        if let Some((tenant, bare)) = name.split_once(':') {
            let tenant_id = match tenant {
                "" => self.root().await?.to_owned(),
                t => match self.engine.meta().tenant_id(t).await {
                    Ok(Some(id)) => id,
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(to_s3_error(e.into())),
                },
            };
            let own = requester.is_some_and(|c| c.tenant_id == tenant_id);
            let b = (self.engine.bucket_access(&tenant_id, bare).await).map_err(to_s3_error)?;
            return Ok(b.map(|b| found(b, own)));
        }
        if let Some(c) = requester
            && let Some(b) =
                (self.engine.bucket_access(&c.tenant_id, name).await).map_err(to_s3_error)?
        {
            return Ok(Some(found(b, true)));
        }
        let root = self.root().await?;
        if requester.is_some_and(|c| c.tenant_id == root) {
            return Ok(None);
        }
        let b = (self.engine.bucket_access(root, name).await).map_err(to_s3_error)?;
        Ok(b.map(|b| found(b, false)))
    }

    async fn block(&self, n: &Named) -> S3Result<PublicAccessBlock> {
        let block: Option<PublicAccessBlock> = self
            .engine
            .bucket_config(&n.bucket.id, BucketConfig::PublicAccessBlock)
            .await
            .map_err(to_s3_error)?;
        Ok(block.unwrap_or_default())
    }

    /// The policy's word on `action` for `resource`, with `prefix` as `s3:prefix` if given.
    fn decide<T>(
        n: &Named,
        req: &S3Request<T>,
        action: &str,
        resource: &str,
        prefix: Option<&str>,
    ) -> Decision {
        let Some(policy) = &n.bucket.policy else {
            return Decision::Neutral;
        };
        let tenant = n.requester.as_ref().map(|c| c.tenant_id.as_str());
        let peer = req.extensions.get::<wire::Peer>().copied();
        let mut context = wire::context(&req.headers, &req.uri, peer, tenant);
        if let Some(p) = prefix {
            context.set("s3:prefix", p);
        }
        policy.decide(&Request {
            principal: n.principal(),
            action,
            resource,
            context: &context,
        })
    }

    /// Whether an Allow of a public policy counts for a caller that does not own the bucket
    /// (RestrictPublicBuckets limits a public policy to the owner).
    async fn allow_counts(&self, n: &Named) -> S3Result<bool> {
        let public = n.bucket.policy.as_ref().is_some_and(|p| p.is_public());
        Ok(!public || !self.block(n).await?.restrict_public_buckets)
    }

    /// Whether `acl` grants the caller `want`; IgnorePublicAcls leaves only grants to tenants.
    async fn grants(&self, n: &Named, acl: &Acl, want: Perm) -> S3Result<bool> {
        if n.acls_disabled() || !acl.allows(n.who(), want) {
            return Ok(false);
        }
        if !self.block(n).await?.ignore_public_acls {
            return Ok(true);
        }
        Ok(acl.allows_named(n.who(), want))
    }

    /// The `Named` of a request whose caller must be checked here: one that does not own the
    /// bucket and that the policy did not already let act as its owner.
    fn foreign<T>(req: &S3Request<T>) -> Option<Named> {
        let n = req.extensions.get::<Named>()?;
        let acting = req.extensions.get::<Caller>().is_some();
        (!n.own && !acting).then(|| n.clone())
    }

    /// A bucket operation (listing, uploads, writes of objects) needs `want` on the bucket's
    /// list.
    async fn bucket<T>(&self, req: &mut S3Request<T>, want: Perm) -> S3Result<()> {
        let Some(n) = Self::foreign(req) else {
            return Ok(());
        };
        let acl = self
            .engine
            .acl(Target::Bucket(&n.bucket.id), &n.bucket.tenant_id)
            .await
            .map_err(to_s3_error)?;
        if !self.grants(&n, &acl, want).await? {
            return Err(denied());
        }
        req.extensions.insert(n.acting(is_write(want)));
        Ok(())
    }

    /// An object operation needs `want` on the version's list. A missing key is NoSuchKey only
    /// to whom may list the bucket (S3 hides what a caller cannot list).
    async fn object<T>(
        &self,
        req: &mut S3Request<T>,
        (key, version): (&str, Option<&str>),
        want: Perm,
    ) -> S3Result<()> {
        let Some(n) = Self::foreign(req) else {
            return Ok(());
        };
        let row = self.version_of(&n, key, version).await?;
        let Some(row) = row else {
            if !self.may_list(req, &n, key).await? {
                return Err(denied());
            }
            req.extensions.insert(n.acting(false));
            return Ok(());
        };
        let acl = self
            .engine
            .acl(Target::Object(&row.id), &n.bucket.tenant_id)
            .await
            .map_err(to_s3_error)?;
        if !self.grants(&n, &acl, want).await? {
            return Err(denied());
        }
        req.extensions.insert(CheckedVersion(row.id));
        req.extensions.insert(n.acting(is_write(want)));
        Ok(())
    }

    /// The version `key`/`version` of `n`, `None` when there is none to show.
    async fn version_of(
        &self,
        n: &Named,
        key: &str,
        version: Option<&str>,
    ) -> S3Result<Option<ObjectRow>> {
        let owner = n.acting(false);
        match (self.engine)
            .object_version(&owner, &n.bucket.name, key, version, false)
            .await
        {
            Ok(row) => Ok(Some(row)),
            Err(Error::NoSuchKey | Error::NoSuchVersion | Error::DeleteMarker { .. }) => Ok(None),
            Err(e) => Err(to_s3_error(e)),
        }
    }

    /// The bucket's list grants READ, or its policy allows listing `key` as a prefix.
    async fn may_list<T>(&self, req: &S3Request<T>, n: &Named, key: &str) -> S3Result<bool> {
        let resource = wire::resource(&n.bucket.name, None);
        match Self::decide(n, req, "s3:ListBucket", &resource, Some(key)) {
            Decision::Deny => return Ok(false),
            Decision::Allow if self.allow_counts(n).await? => return Ok(true),
            _ => {}
        }
        let acl = self
            .engine
            .acl(Target::Bucket(&n.bucket.id), &n.bucket.tenant_id)
            .await
            .map_err(to_s3_error)?;
        self.grants(n, &acl, Perm::Read).await
    }

    /// A copy's source: the caller must be allowed to read it (its bucket's policy, else the
    /// version's list); the operation then reads it from the tenant that owns it.
    async fn source<T>(&self, req: &mut S3Request<T>, src: &CopySource) -> S3Result<()> {
        let (bucket, key, version) = super::object::copy_source(src)?;
        let requester = match req.extensions.get::<Named>() {
            Some(n) => n.requester.clone(),
            None => return Ok(()),
        };
        let Some(n) = self.named(requester.as_ref(), bucket).await? else {
            return Ok(());
        };
        let action = wire::action("GetObject", version.is_some());
        let resource = wire::resource(&n.bucket.name, Some(key));
        let allowed = match Self::decide(&n, req, &action, &resource, None) {
            Decision::Deny => return Err(denied()),
            _ if n.own => true,
            Decision::Allow => self.allow_counts(&n).await?,
            Decision::Neutral => false,
        };
        if !allowed {
            let Some(row) = self.version_of(&n, key, version).await? else {
                return match self.may_list(req, &n, key).await? {
                    true => Ok(()),
                    false => Err(denied()),
                };
            };
            let acl = self
                .engine
                .acl(Target::Object(&row.id), &n.bucket.tenant_id)
                .await
                .map_err(to_s3_error)?;
            if !self.grants(&n, &acl, Perm::Read).await? {
                return Err(denied());
            }
        }
        req.extensions
            .insert(SourceOwner(n.bucket.tenant_id.clone()));
        Ok(())
    }

    /// DeleteObjects from a caller that does not own the bucket: every key must be allowed
    /// by the policy or the bucket's list grants WRITE; a key the policy denies refuses all.
    async fn delete_keys(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let Some(n) = req.extensions.get::<Named>().cloned() else {
            return Ok(());
        };
        if n.bucket.policy.is_none() {
            return self.bucket(req, Perm::Write).await;
        }
        let bucket = n.bucket.name.clone();
        let mut all_allowed = !req.input.delete.objects.is_empty();
        for o in &req.input.delete.objects {
            let action = wire::action("DeleteObject", o.version_id.is_some());
            let resource = wire::resource(&bucket, Some(&o.key));
            match Self::decide(&n, req, &action, &resource, None) {
                Decision::Deny => return Err(denied()),
                Decision::Allow => {}
                Decision::Neutral => all_allowed = false,
            }
        }
        if !n.own && all_allowed && self.allow_counts(&n).await? {
            req.extensions.insert(n.acting(true));
            return Ok(());
        }
        self.bucket(req, Perm::Write).await
    }
}

/// Bucket names as s3s accepts them: S3's, or `tenant:bucket` / `:bucket` (RGW's way to name
/// another tenant's bucket) with an S3 name after the colon.
pub struct QualifiedNames;

impl s3s::validation::NameValidation for QualifiedNames {
    fn validate_bucket_name(&self, name: &str) -> bool {
        let (tenant, bucket) = name.split_once(':').unwrap_or(("", name));
        let tenant_ok = tenant.len() <= 64
            && tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        tenant_ok && s3s::path::check_bucket_name(bucket)
    }
}

/// A bucket name without its `tenant:` qualifier (S3 names never hold a colon): what the
/// operation looks up once `access` found the bucket and the tenant that acts on it.
pub fn bare(name: &str) -> &str {
    name.split_once(':').map_or(name, |(_, b)| b)
}

/// Drops the request's `tenant:` qualifier once `check` resolved the bucket.
fn unqualify<T>(req: &mut S3Request<T>, bucket: fn(&mut T) -> &mut String) {
    if req.extensions.get::<Named>().is_none() {
        return;
    }
    let b = bucket(&mut req.input);
    if let Some((_, bare)) = b.split_once(':') {
        *b = bare.to_owned();
    }
}

/// A read let through for one version must not serve another (a new version replaced it
/// since the check, and its list may not allow the read).
pub fn same_version(ext: &http::Extensions, row: &ObjectRow) -> S3Result<()> {
    match ext.get::<CheckedVersion>() {
        Some(CheckedVersion(id)) if *id != row.id => Err(denied()),
        _ => Ok(()),
    }
}

/// The owner of a copy's source as the caller may read it (`caller` itself when unchecked).
pub fn source_owner(ext: &http::Extensions, caller: &Caller) -> Caller {
    match ext.get::<SourceOwner>() {
        Some(SourceOwner(t)) => Caller {
            tenant_id: t.clone(),
            read_only: true,
        },
        None => caller.clone(),
    }
}

fn denied() -> s3s::S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

/// The policy operations, which a bucket's owner may always call.
fn is_policy_op(op: &str) -> bool {
    matches!(
        op,
        "GetBucketPolicy" | "PutBucketPolicy" | "DeleteBucketPolicy"
    )
}

/// The per-operation hooks run after `check`, on the parsed input. Operations without one run
/// as the caller's own tenant (an anonymous one is refused by the gateway's `caller`), unless
/// the policy let the caller act as the bucket's owner.
#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let op = crate::metering::operation_name(cx.s3_op().name());
        if let Some(slot) = cx.extensions_mut().get::<Arc<crate::metering::Slot>>() {
            slot.identify(op);
        }
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => {
                // ListBuckets: billed to the tenant listing.
                if let Some(c) = cx.credentials() {
                    let caller = self.engine.caller(&c.access_key).await;
                    if let Ok(caller) = caller {
                        bill(cx, &caller.tenant_id, "", op);
                    }
                }
                return Ok(());
            }
            S3Path::Bucket { bucket } => (bucket.to_string(), None),
            S3Path::Object { bucket, key } => (bucket.to_string(), Some(key.to_string())),
        };
        let requester = match cx.credentials() {
            Some(c) => Some(
                self.engine
                    .caller(&c.access_key)
                    .await
                    .map_err(to_s3_error)?,
            ),
            None => None,
        };
        if op == "CreateBucket" {
            // Billed to its creator, the bucket's owner to be.
            if let Some(c) = &requester {
                bill(cx, &c.tenant_id, &bucket, op);
            }
            return Ok(());
        }
        let Some(n) = self.named(requester.as_ref(), &bucket).await? else {
            // A signed caller's operation answers for its own tenant; S3 tells anyone that a
            // bucket does not exist.
            return match requester {
                Some(_) => Ok(()),
                None => Err(to_s3_error(Error::NoSuchBucket)),
            };
        };
        if let Some(policy) = &n.bucket.policy {
            let versioned = cx.uri().query().is_some_and(|q| {
                q.split('&')
                    .any(|p| p == "versionId" || p.starts_with("versionId="))
            });
            let action = wire::action(op, versioned);
            let resource = wire::resource(&n.bucket.name, key.as_deref());
            let tenant = requester.as_ref().map(|c| c.tenant_id.as_str());
            let peer = cx.extensions_mut().get::<wire::Peer>().copied();
            let context = wire::context(cx.headers(), cx.uri(), peer, tenant);
            let decision = policy.decide(&Request {
                principal: n.principal(),
                action: &action,
                resource: &resource,
                context: &context,
            });
            match decision {
                Decision::Deny if !(n.own && is_policy_op(op)) => return Err(denied()),
                Decision::Allow if !n.own && self.allow_counts(&n).await? => {
                    cx.extensions_mut().insert(n.acting(true));
                }
                _ => {}
            }
        }
        bill(cx, &n.bucket.tenant_id, &n.bucket.name, op);
        cx.extensions_mut().insert(n);
        Ok(())
    }

    async fn get_object(&self, req: &mut S3Request<GetObjectInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        let i = &req.input;
        let (k, v) = (i.key.clone(), i.version_id.clone());
        self.object(req, (&k, v.as_deref()), Perm::Read).await
    }

    async fn get_object_torrent(&self, req: &mut S3Request<GetObjectTorrentInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        let k = req.input.key.clone();
        self.object(req, (&k, None), Perm::Read).await
    }

    async fn head_object(&self, req: &mut S3Request<HeadObjectInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        let i = &req.input;
        let (k, v) = (i.key.clone(), i.version_id.clone());
        self.object(req, (&k, v.as_deref()), Perm::Read).await
    }

    async fn get_object_acl(&self, req: &mut S3Request<GetObjectAclInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        let i = &req.input;
        let (k, v) = (i.key.clone(), i.version_id.clone());
        self.object(req, (&k, v.as_deref()), Perm::ReadAcp).await
    }

    async fn put_object_acl(&self, req: &mut S3Request<PutObjectAclInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        let i = &req.input;
        let (k, v) = (i.key.clone(), i.version_id.clone());
        self.object(req, (&k, v.as_deref()), Perm::WriteAcp).await
    }

    async fn head_bucket(&self, req: &mut S3Request<HeadBucketInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Read).await
    }

    async fn list_objects(&self, req: &mut S3Request<ListObjectsInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Read).await
    }

    async fn list_objects_v2(&self, req: &mut S3Request<ListObjectsV2Input>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Read).await
    }

    async fn list_object_versions(
        &self,
        req: &mut S3Request<ListObjectVersionsInput>,
    ) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Read).await
    }

    async fn list_multipart_uploads(
        &self,
        req: &mut S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Read).await
    }

    async fn get_bucket_acl(&self, req: &mut S3Request<GetBucketAclInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::ReadAcp).await
    }

    async fn put_bucket_acl(&self, req: &mut S3Request<PutBucketAclInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::WriteAcp).await
    }

    async fn put_object(&self, req: &mut S3Request<PutObjectInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Write).await
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Write).await?;
        let src = req.input.copy_source.clone();
        self.source(req, &src).await
    }

    async fn delete_object(&self, req: &mut S3Request<DeleteObjectInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Write).await
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.delete_keys(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: &mut S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Write).await
    }

    async fn upload_part(&self, req: &mut S3Request<UploadPartInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Write).await
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Write).await?;
        let src = req.input.copy_source.clone();
        self.source(req, &src).await
    }

    async fn complete_multipart_upload(
        &self,
        req: &mut S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Write).await
    }

    async fn abort_multipart_upload(
        &self,
        req: &mut S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Write).await
    }

    async fn list_parts(&self, req: &mut S3Request<ListPartsInput>) -> S3Result<()> {
        unqualify(req, |i| &mut i.bucket);
        self.bucket(req, Perm::Write).await
    }
}

/// Bills the request to `tenant_id`'s bucket `bucket` (metering, the request log), when the
/// server meters it.
fn bill(cx: &mut S3AccessContext<'_>, tenant_id: &str, bucket: &str, op: &'static str) {
    if let Some(slot) = cx.extensions_mut().get::<Arc<crate::metering::Slot>>() {
        slot.bill(tenant_id, bucket, op);
    }
}
