//! ACLs on the wire: `x-amz-acl` / `x-amz-grant-*` headers and `AccessControlPolicy` XML to and
//! from `engine::acl::Acl`, and Get/Put Bucket/Object Acl.

use super::{Gateway, to_s3_error};
use crate::engine::acl::Target;
use crate::engine::acl::{
    self as model, Acl, BucketConfig, Group, Permission as Perm, PublicAccessBlock,
};
use crate::engine::{Caller, Error};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// The `AclHeaders` of an operation input with the `acl` and `grant_*` fields (`no_write`: an
/// object operation, which has no `x-amz-grant-write`).
macro_rules! acl_headers {
    ($i:expr) => {
        acl_headers!($i, $i.grant_write.as_deref())
    };
    ($i:expr, no_write) => {
        acl_headers!($i, None)
    };
    ($i:expr, $write:expr) => {
        $crate::s3::acl::AclHeaders {
            canned: $i.acl.as_ref().map(|a| a.as_str()),
            full_control: $i.grant_full_control.as_deref(),
            read: $i.grant_read.as_deref(),
            read_acp: $i.grant_read_acp.as_deref(),
            write: $write,
            write_acp: $i.grant_write_acp.as_deref(),
        }
    };
}
pub(super) use acl_headers;

/// The ACL headers of a request (`x-amz-acl` and the `x-amz-grant-*` family).
#[derive(Debug, Default, Clone, Copy)]
pub struct AclHeaders<'a> {
    pub canned: Option<&'a str>,
    pub full_control: Option<&'a str>,
    pub read: Option<&'a str>,
    pub read_acp: Option<&'a str>,
    pub write: Option<&'a str>,
    pub write_acp: Option<&'a str>,
}

impl AclHeaders<'_> {
    /// The list the headers ask for, for a resource owned by `owner`; `None` when there are
    /// none (the resource is `private`).
    pub fn acl(&self, owner: &str) -> S3Result<Option<Acl>> {
        let grants = [
            (self.full_control, Perm::FullControl),
            (self.read, Perm::Read),
            (self.read_acp, Perm::ReadAcp),
            (self.write, Perm::Write),
            (self.write_acp, Perm::WriteAcp),
        ];
        let any_grant = grants.iter().any(|(v, _)| v.is_some());
        match (self.canned, any_grant) {
            (Some(_), true) => Err(s3_error!(
                InvalidRequest,
                "Specifying both Canned ACLs and Header Grants is not allowed"
            )),
            (Some(c), false) => Ok(Some(Acl::canned(c, owner).map_err(to_s3_error)?)),
            (None, false) => Ok(None),
            (None, true) => {
                let mut acl = Acl::default();
                for (value, permission) in grants {
                    for grantee in value.map(grantees).transpose()?.into_iter().flatten() {
                        acl.grants.push(model::Grant {
                            grantee,
                            permission,
                        });
                    }
                }
                acl.validate().map_err(to_s3_error)?;
                Ok(Some(acl))
            }
        }
    }
}

/// One `x-amz-grant-*` value: `id="…", uri="…"`, comma separated.
fn grantees(value: &str) -> S3Result<Vec<model::Grantee>> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((kind, v)) = item.split_once('=') else {
            return Err(s3_error!(InvalidArgument, "Invalid grant header {item:?}"));
        };
        let v = v.trim().trim_matches('"');
        out.push(match kind.trim().to_ascii_lowercase().as_str() {
            "id" => tenant_grantee(v)?,
            "uri" => model::Grantee::Group(group(v)?),
            "emailaddress" => return Err(unresolvable_email()),
            _ => return Err(s3_error!(InvalidArgument, "Invalid grant header {item:?}")),
        });
        if out.len() > crate::engine::acl::MAX_GRANTS {
            return Err(to_s3_error(Error::InvalidArgument(
                "too many grantees".into(),
            )));
        }
    }
    Ok(out)
}

fn tenant_grantee(id: &str) -> S3Result<model::Grantee> {
    if id.is_empty() || id.len() > 128 {
        return Err(s3_error!(InvalidArgument, "Invalid id"));
    }
    Ok(model::Grantee::Tenant(id.to_owned()))
}

fn group(uri: &str) -> S3Result<Group> {
    Group::from_uri(uri).ok_or_else(|| s3_error!(InvalidArgument, "Invalid group uri"))
}

fn unresolvable_email() -> s3s::S3Error {
    s3_error!(
        UnresolvableGrantByEmailAddress,
        "The email address you provided does not match any account on record."
    )
}

/// Gives a new bucket, version or upload the list its request asked for (`None`: it stays
/// `private`). After the commit that made the row: a crash between leaves it private.
pub async fn apply(g: &Gateway, caller: &Caller, of: Target<'_>, acl: Option<Acl>) -> S3Result<()> {
    match acl {
        Some(acl) => g
            .engine
            .set_acl(caller, of, &acl)
            .await
            .map_err(to_s3_error),
        None => Ok(()),
    }
}

/// A bucket's BlockPublicAcls refuses a request that would store a public list in it, before
/// anything is stored.
pub async fn admit(
    g: &Gateway,
    ext: &http::Extensions,
    headers: &AclHeaders<'_>,
    (caller, bucket): (&Caller, &str),
    acl: Option<&Acl>,
) -> S3Result<()> {
    owner_enforced(ext, headers, acl.is_some())?;
    if let Some(acl) = acl {
        known_grantees(g, acl, &caller.tenant_id).await?;
    }
    if !acl.is_some_and(Acl::is_public) {
        return Ok(());
    }
    let b = g.engine.bucket(caller, bucket).await.map_err(to_s3_error)?;
    let block: Option<PublicAccessBlock> = g
        .engine
        .bucket_config(&b.id, BucketConfig::PublicAccessBlock)
        .await
        .map_err(to_s3_error)?;
    match block {
        Some(p) if p.block_public_acls => Err(s3_error!(AccessDenied, "Access Denied")),
        _ => Ok(()),
    }
}

/// Every tenant a list grants to exists (S3 refuses a grant to an unknown id). At most
/// `MAX_GRANTS` lookups, and only for lists that name tenants other than the owner.
pub async fn known_grantees(g: &Gateway, acl: &Acl, owner: &str) -> S3Result<()> {
    for grant in &acl.grants {
        let model::Grantee::Tenant(id) = &grant.grantee else {
            continue;
        };
        if id == owner {
            continue;
        }
        let found = g.engine.meta().tenant_name(id).await;
        match found {
            Ok(Some(_)) => {}
            Ok(None) => return Err(s3_error!(InvalidArgument, "Invalid id")),
            Err(e) => return Err(to_s3_error(e.into())),
        }
    }
    Ok(())
}

/// With ACLs disabled (Object Ownership `BucketOwnerEnforced`) a request may name no list but
/// `bucket-owner-full-control`, which is what every object has anyway.
fn owner_enforced(ext: &http::Extensions, h: &AclHeaders<'_>, any: bool) -> S3Result<()> {
    let disabled = ext
        .get::<super::access::Named>()
        .is_some_and(super::access::Named::acls_disabled);
    let grants = [h.full_control, h.read, h.read_acp, h.write, h.write_acp];
    let owner_only =
        h.canned == Some("bucket-owner-full-control") && grants.iter().all(Option::is_none);
    if !disabled || !any || owner_only {
        return Ok(());
    }
    Err(s3_error!(
        AccessControlListNotSupported,
        "The bucket does not allow ACLs"
    ))
}

/// An `AccessControlPolicy` body as a list. Its Owner, when given, must be the owner.
fn from_policy(p: AccessControlPolicy, owner: &str) -> S3Result<Acl> {
    if let Some(id) = p.owner.as_ref().and_then(|o| o.id.as_deref())
        && id != owner
    {
        return Err(s3_error!(
            AccessDenied,
            "The owner of an ACL cannot be changed"
        ));
    }
    let mut acl = Acl::default();
    for g in p.grants.unwrap_or_default() {
        let (Some(grantee), Some(permission)) = (g.grantee, g.permission) else {
            return Err(s3_error!(MalformedACLError));
        };
        let permission =
            Perm::parse(permission.as_str()).ok_or_else(|| s3_error!(MalformedACLError))?;
        let grantee = match grantee.type_.as_str() {
            Type::CANONICAL_USER => tenant_grantee(grantee.id.as_deref().unwrap_or(""))?,
            Type::GROUP => model::Grantee::Group(group(grantee.uri.as_deref().unwrap_or(""))?),
            Type::AMAZON_CUSTOMER_BY_EMAIL => return Err(unresolvable_email()),
            _ => return Err(s3_error!(MalformedACLError)),
        };
        acl.grants.push(model::Grant {
            grantee,
            permission,
        });
    }
    acl.validate().map_err(to_s3_error)?;
    Ok(acl)
}

pub fn owner(tenant_id: &str) -> Owner {
    Owner {
        id: Some(tenant_id.to_owned()),
        display_name: Some(tenant_id.to_owned()),
    }
}

fn to_grants(acl: &Acl) -> Grants {
    let grantee = |g: &model::Grantee| match g {
        model::Grantee::Tenant(id) => Grantee {
            display_name: Some(id.clone()),
            email_address: None,
            id: Some(id.clone()),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        },
        model::Grantee::Group(grp) => Grantee {
            display_name: None,
            email_address: None,
            id: None,
            type_: Type::from_static(Type::GROUP),
            uri: Some(grp.uri().to_owned()),
        },
    };
    acl.grants
        .iter()
        .map(|g| Grant {
            grantee: Some(grantee(&g.grantee)),
            permission: Some(Permission::from(g.permission.as_str().to_owned())),
        })
        .collect()
}

/// The list a Put*Acl request asks for: canned, header grants or a body (exactly one).
fn requested(
    headers: AclHeaders<'_>,
    body: Option<AccessControlPolicy>,
    owner: &str,
) -> S3Result<Acl> {
    match (headers.acl(owner)?, body) {
        (Some(_), Some(_)) => Err(s3_error!(
            UnexpectedContent,
            "This request does not support content"
        )),
        (Some(acl), None) => Ok(acl),
        (None, Some(p)) => from_policy(p, owner),
        (None, None) => Err(s3_error!(
            MissingSecurityHeader,
            "Your request was missing a required header"
        )),
    }
}

/// The version an object ACL call is about: the one named, else the current one.
async fn version(
    g: &Gateway,
    caller: &Caller,
    bucket: &str,
    key: &str,
    v: Option<&str>,
) -> S3Result<String> {
    let row = g
        .engine
        .object_version(caller, bucket, key, v, false)
        .await
        .map_err(to_s3_error)?;
    Ok(row.id)
}

pub async fn get_bucket(
    g: &Gateway,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let caller = g.caller(&req).await?;
    let b = g
        .engine
        .bucket(&caller, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    let acl = g
        .engine
        .acl(Target::Bucket(&b.id), &b.tenant_id)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(to_grants(&acl)),
        owner: Some(owner(&b.tenant_id)),
    }))
}

pub async fn put_bucket(
    g: &Gateway,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let caller = g.caller(&req).await?;
    let i = req.input;
    let b = g
        .engine
        .bucket(&caller, &i.bucket)
        .await
        .map_err(to_s3_error)?;
    let headers = acl_headers!(i);
    let acl = requested(headers, i.access_control_policy, &b.tenant_id)?;
    admit(
        g,
        &req.extensions,
        &headers,
        (&caller, &i.bucket),
        Some(&acl),
    )
    .await?;
    g.engine
        .set_acl(&caller, Target::Bucket(&b.id), &acl)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutBucketAclOutput {}))
}

pub async fn get_object(
    g: &Gateway,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let caller = g.caller(&req).await?;
    let i = &req.input;
    let id = version(g, &caller, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    let acl = g
        .engine
        .acl(Target::Object(&id), &caller.tenant_id)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(GetObjectAclOutput {
        grants: Some(to_grants(&acl)),
        owner: Some(owner(&caller.tenant_id)),
        ..Default::default()
    }))
}

pub async fn put_object(
    g: &Gateway,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let caller = g.caller(&req).await?;
    let i = req.input;
    let id = version(g, &caller, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    let headers = acl_headers!(i);
    let acl = requested(headers, i.access_control_policy, &caller.tenant_id)?;
    admit(
        g,
        &req.extensions,
        &headers,
        (&caller, &i.bucket),
        Some(&acl),
    )
    .await?;
    g.engine
        .set_acl(&caller, Target::Object(&id), &acl)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}
