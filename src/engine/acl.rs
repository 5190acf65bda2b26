//! Access control lists: S3's grants on buckets and object versions.
//!
//! The owner of a bucket is its tenant, and every object in it belongs to that tenant (S3's
//! "bucket owner enforced" ownership), so the owner's access never depends on a list. A list
//! grants access to everyone else: anonymous requests (the `AllUsers` group) and, by canonical
//! id, other tenants. It is stored as JSON beside its row; `None` is the canned `private`.

use super::{Caller, Engine, Error, Result};
use crate::meta::AclOf;
use serde::{Deserialize, Serialize};

/// At most this many grants in one list (S3: 100).
pub const MAX_GRANTS: usize = 100;

/// What a grant allows (S3's permission names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "FULL_CONTROL")]
    FullControl,
    #[serde(rename = "READ")]
    Read,
    #[serde(rename = "WRITE")]
    Write,
    #[serde(rename = "READ_ACP")]
    ReadAcp,
    #[serde(rename = "WRITE_ACP")]
    WriteAcp,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::FullControl => "FULL_CONTROL",
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Some(match s {
            "FULL_CONTROL" => Permission::FullControl,
            "READ" => Permission::Read,
            "WRITE" => Permission::Write,
            "READ_ACP" => Permission::ReadAcp,
            "WRITE_ACP" => Permission::WriteAcp,
            _ => return None,
        })
    }

    /// Whether holding `self` allows `wanted`.
    fn covers(self, wanted: Permission) -> bool {
        self == Permission::FullControl || self == wanted
    }
}

/// S3's predefined groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Group {
    AllUsers,
    AuthenticatedUsers,
    LogDelivery,
}

const GROUP_URI: &str = "http://acs.amazonaws.com/groups/";

impl Group {
    pub fn uri(self) -> &'static str {
        match self {
            Group::AllUsers => "http://acs.amazonaws.com/groups/global/AllUsers",
            Group::AuthenticatedUsers => {
                "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
            }
            Group::LogDelivery => "http://acs.amazonaws.com/groups/s3/LogDelivery",
        }
    }

    pub fn from_uri(uri: &str) -> Option<Group> {
        match uri.strip_prefix(GROUP_URI)? {
            "global/AllUsers" => Some(Group::AllUsers),
            "global/AuthenticatedUsers" => Some(Group::AuthenticatedUsers),
            "s3/LogDelivery" => Some(Group::LogDelivery),
            _ => None,
        }
    }
}

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    /// A tenant, by its canonical id.
    Tenant(String),
    Group(Group),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

/// An access control list: the grants, in the order they were given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub grants: Vec<Grant>,
}

/// Who is asking, for a list's purposes.
#[derive(Debug, Clone, Copy)]
pub enum Requester<'a> {
    Anonymous,
    Tenant(&'a str),
}

impl Acl {
    /// S3's canned ACLs, for a resource owned by `owner`.
    pub fn canned(name: &str, owner: &str) -> Result<Acl> {
        let full = Grant {
            grantee: Grantee::Tenant(owner.to_owned()),
            permission: Permission::FullControl,
        };
        let group = |g, permission| Grant {
            grantee: Grantee::Group(g),
            permission,
        };
        // The groups' grants first, then the owner's, in the order RGW lists them.
        let mut grants = match name {
            "private" | "bucket-owner-read" | "bucket-owner-full-control" | "aws-exec-read" => {
                vec![]
            }
            "public-read" => vec![group(Group::AllUsers, Permission::Read)],
            "public-read-write" => vec![
                group(Group::AllUsers, Permission::Read),
                group(Group::AllUsers, Permission::Write),
            ],
            "authenticated-read" => vec![group(Group::AuthenticatedUsers, Permission::Read)],
            "log-delivery-write" => vec![
                group(Group::LogDelivery, Permission::Write),
                group(Group::LogDelivery, Permission::ReadAcp),
            ],
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "invalid canned ACL {name:?}"
                )));
            }
        };
        grants.push(full);
        Ok(Acl { grants })
    }

    /// S3's limits on a list given by a client.
    pub fn validate(&self) -> Result<()> {
        if self.grants.len() > MAX_GRANTS {
            return Err(Error::InvalidArgument(format!(
                "an ACL has at most {MAX_GRANTS} grants"
            )));
        }
        Ok(())
    }

    /// Whether the list gives `who` the permission `wanted`.
    pub fn allows(&self, who: Requester<'_>, wanted: Permission) -> bool {
        self.grants.iter().any(|g| {
            g.permission.covers(wanted)
                && match (&g.grantee, who) {
                    (Grantee::Group(Group::AllUsers), _) => true,
                    (Grantee::Group(Group::AuthenticatedUsers), Requester::Tenant(_)) => true,
                    (Grantee::Tenant(id), Requester::Tenant(t)) => id == t,
                    _ => false,
                }
        })
    }

    /// Whether only `owner` is granted anything (the canned `private`).
    pub fn owner_only(&self, owner: &str) -> bool {
        (self.grants.iter()).all(|g| matches!(&g.grantee, Grantee::Tenant(id) if id == owner))
    }

    /// Like `allows`, counting only grants that name the requester's tenant (a public access
    /// block's IgnorePublicAcls).
    pub fn allows_named(&self, who: Requester<'_>, wanted: Permission) -> bool {
        let Requester::Tenant(t) = who else {
            return false;
        };
        self.grants.iter().any(|g| {
            g.permission.covers(wanted) && matches!(&g.grantee, Grantee::Tenant(id) if id == t)
        })
    }
}

/// A bucket's public access block (S3's four switches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Refuse requests that would store a public list.
    pub block_public_acls: bool,
    /// Public grants give nobody anything.
    pub ignore_public_acls: bool,
    /// Refuse a bucket policy that grants everyone something.
    pub block_public_policy: bool,
    /// A public policy grants nothing to callers that do not own the bucket.
    pub restrict_public_buckets: bool,
}

impl Acl {
    /// Whether any grant is to everyone or to every signed-in caller.
    pub fn is_public(&self) -> bool {
        self.grants.iter().any(|g| {
            matches!(
                g.grantee,
                Grantee::Group(Group::AllUsers | Group::AuthenticatedUsers)
            )
        })
    }
}

/// What a list belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A bucket, by id.
    Bucket(&'a str),
    /// One object version (`ObjectRow::id`).
    Object(&'a str),
    /// A pending multipart upload: the list its object gets.
    Upload(&'a str),
}

impl Engine {
    /// The list of a bucket, version or upload whose owner is `owner`; `NoSuchBucket`,
    /// `NoSuchKey` or `NoSuchUpload` when the row is gone.
    pub async fn acl(&self, of: Target<'_>, owner: &str) -> Result<Acl> {
        let stored = match of {
            Target::Bucket(id) => self.bucket_config::<Acl>(id, BucketConfig::Acl).await?,
            Target::Object(id) => self.stored_acl(AclOf::Object(id)).await?,
            Target::Upload(id) => self.stored_acl(AclOf::Upload(id)).await?,
        };
        match stored {
            Some(acl) => Ok(acl),
            None => Acl::canned("private", owner),
        }
    }

    async fn stored_acl(&self, of: AclOf<'_>) -> Result<Option<Acl>> {
        match self.meta.acl(of).await? {
            Some(stored) => parse(stored.as_deref()),
            None => Err(missing(of)),
        }
    }

    /// Replaces the list of a bucket, version or upload.
    pub async fn set_acl(&self, caller: &Caller, of: Target<'_>, acl: &Acl) -> Result<()> {
        Engine::writable(caller)?;
        acl.validate()?;
        let json = serde_json::to_string(acl)
            .map_err(|e| Error::Internal(format!("ACL does not serialise: {e}")))?;
        let found = match of {
            Target::Bucket(id) => {
                return self
                    .set_bucket_config(caller, id, BucketConfig::Acl, Some(acl))
                    .await;
            }
            Target::Object(id) => self.meta.set_acl(AclOf::Object(id), Some(&json)).await?,
            Target::Upload(id) => self.meta.set_acl(AclOf::Upload(id), Some(&json)).await?,
        };
        match (found, of) {
            (true, _) => Ok(()),
            (false, Target::Object(_)) => Err(Error::NoSuchKey),
            (false, _) => Err(Error::NoSuchUpload),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(stored: Option<&str>) -> Result<Option<T>> {
    stored
        .map(|json| {
            serde_json::from_str(json)
                .map_err(|e| Error::Internal(format!("stored value does not parse: {e}")))
        })
        .transpose()
}

fn missing(of: AclOf<'_>) -> Error {
    match of {
        AclOf::Object(_) => Error::NoSuchKey,
        AclOf::Upload(_) => Error::NoSuchUpload,
    }
}

/// A bucket's sub-resources kept by `meta` (one stored value each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketConfig {
    Acl,
    /// The LocationConstraint given at creation.
    Location,
    PublicAccessBlock,
    Tagging,
    /// The Object Lock default retention (`engine::versions::DefaultRetention`).
    ObjectLock,
    /// The bucket policy's JSON text, as it was put.
    Policy,
    /// The lifecycle configuration (`engine::lifecycle::Lifecycle`).
    Lifecycle,
    /// Object Ownership: `BucketOwnerEnforced` (ACLs disabled) when set.
    Ownership,
    /// The CORS configuration (`engine::cors::Cors`).
    Cors,
}

impl BucketConfig {
    fn kind(self) -> &'static str {
        match self {
            BucketConfig::Acl => "acl",
            BucketConfig::Location => "location",
            BucketConfig::PublicAccessBlock => "public-access-block",
            BucketConfig::Tagging => "tagging",
            BucketConfig::ObjectLock => "object-lock",
            BucketConfig::Policy => "policy",
            BucketConfig::Lifecycle => "lifecycle",
            BucketConfig::Ownership => "ownership",
            BucketConfig::Cors => "cors",
        }
    }
}

impl Engine {
    /// A bucket's sub-resource, `None` when it is not set.
    pub async fn bucket_config<T: serde::de::DeserializeOwned>(
        &self,
        bucket_id: &str,
        which: BucketConfig,
    ) -> Result<Option<T>> {
        let stored = self.meta.bucket_config(bucket_id, which.kind()).await?;
        parse(stored.as_deref())
    }

    /// Sets (`None`: removes) a bucket's sub-resource.
    pub async fn set_bucket_config<T: Serialize>(
        &self,
        caller: &Caller,
        bucket_id: &str,
        which: BucketConfig,
        value: Option<&T>,
    ) -> Result<()> {
        Engine::writable(caller)?;
        let json = value
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::Internal(format!("does not serialise: {e}")))?;
        match self
            .meta
            .set_bucket_config(bucket_id, which.kind(), json.as_deref())
            .await?
        {
            true => Ok(()),
            false => Err(Error::NoSuchBucket),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_lists_grant_what_s3_says() {
        let owner = "t1";
        let anon = Requester::Anonymous;
        let other = Requester::Tenant("t2");
        let me = Requester::Tenant(owner);
        let private = Acl::canned("private", owner).expect("private");
        assert!(private.allows(me, Permission::WriteAcp));
        assert!(!private.allows(anon, Permission::Read));
        assert!(!private.allows(other, Permission::Read));
        let pr = Acl::canned("public-read", owner).expect("public-read");
        assert!(pr.allows(anon, Permission::Read));
        assert!(!pr.allows(anon, Permission::Write));
        assert!(!pr.allows(anon, Permission::ReadAcp));
        let prw = Acl::canned("public-read-write", owner).expect("prw");
        assert!(prw.allows(anon, Permission::Write));
        let ar = Acl::canned("authenticated-read", owner).expect("ar");
        assert!(!ar.allows(anon, Permission::Read));
        assert!(ar.allows(other, Permission::Read));
        assert!(Acl::canned("public", owner).is_err());
    }

    #[test]
    fn stored_form_round_trips() {
        let acl = Acl::canned("public-read-write", "t1").expect("canned");
        let json = serde_json::to_string(&acl).expect("store");
        assert_eq!(parse::<Acl>(Some(&json)).expect("load"), Some(acl));
        assert_eq!(parse::<Acl>(None).expect("load"), None);
    }
}
