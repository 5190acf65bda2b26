//! Virtual-hosted-style addressing: `bucket.<domain>[:port]` names the bucket in the host.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// The configured base domains. A host that is not `<bucket>.<base>` (an IP, `localhost`, the
/// base itself, anything else) is path style, so path-style clients keep working next to
/// virtual-hosted ones whatever port they connect to.
pub struct Domains(pub Vec<String>);

/// The bucket a `Host` names under one of `domains` (as sent, not lowercased), if any.
pub fn bucket_of<'a>(domains: &[String], host: &'a str) -> Option<&'a str> {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    domains.iter().find_map(|base| {
        name.strip_suffix(base.as_str())
            .and_then(|rest| rest.strip_suffix('.'))
            .filter(|b| !b.is_empty())
    })
}

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        Ok(match bucket_of(&self.0, host) {
            Some(bucket) => VirtualHost::new(name).with_bucket(bucket.to_ascii_lowercase()),
            None => VirtualHost::new(name),
        })
    }
}
