//! Lifecycle configurations: the rules a bucket keeps (stored as given, so GET answers what was
//! put), S3's validation of them, and what they mean for one version — when it expires, and
//! which rule says so. `workers::lifecycle` applies them; this module never deletes anything.
//!
//! Days count as S3 counts them: an object created at `t` expires `days` days later, at the
//! following midnight UTC. A shorter day (`day_secs`, for testing rules) drops the rounding.

use super::acl::BucketConfig;
use super::{Caller, Engine, Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// S3's limits on a configuration.
pub const MAX_RULES: usize = 1000;
pub const MAX_ID_LEN: usize = 255;
pub const MAX_NEWER_NONCURRENT: i32 = 100;
pub const DAY_SECS: i64 = 86_400;

/// A rule's filter, in the form it was given (`Prefix` of old, or `Filter` with one condition
/// or an `And`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub prefix: Option<String>,
    pub tag: Option<(String, String)>,
    pub size_gt: Option<i64>,
    pub size_lt: Option<i64>,
    pub and: Option<And>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct And {
    pub prefix: Option<String>,
    pub tags: Vec<(String, String)>,
    pub size_gt: Option<i64>,
    pub size_lt: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Expiration {
    pub days: Option<i32>,
    /// Unix seconds of a midnight UTC.
    pub date: Option<i64>,
    pub expired_object_delete_marker: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    pub noncurrent_days: Option<i32>,
    pub newer_noncurrent_versions: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    /// The old top-level `<Prefix>` (then `filter` is `None`).
    pub prefix: Option<String>,
    pub filter: Option<Filter>,
    pub expiration: Option<Expiration>,
    pub noncurrent: Option<NoncurrentExpiration>,
    pub abort_upload_days: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub rules: Vec<Rule>,
}

/// What a rule's filter is tested against.
pub struct Subject<'a> {
    pub key: &'a str,
    pub size: u64,
    pub tags: &'a BTreeMap<String, String>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

fn malformed() -> Error {
    Error::MalformedXml(
        "The XML you provided was not well-formed or did not validate against our published schema"
            .into(),
    )
}

impl Rule {
    /// S3's checks of one rule.
    fn validate(&self) -> Result<()> {
        if self.id.len() > MAX_ID_LEN {
            return Err(invalid("ID length should not exceed allowed limit of 255"));
        }
        if self.prefix.is_some() && self.filter.is_some() {
            return Err(malformed());
        }
        if self.expiration.is_none()
            && self.noncurrent.is_none()
            && self.abort_upload_days.is_none()
        {
            return Err(invalid(
                "At least one action needs to be specified in a rule",
            ));
        }
        if let Some(e) = &self.expiration {
            let set = [
                e.days.is_some(),
                e.date.is_some(),
                e.expired_object_delete_marker.is_some(),
            ];
            if set.iter().filter(|s| **s).count() != 1 {
                return Err(malformed());
            }
            if e.days.is_some_and(|d| d <= 0) {
                return Err(invalid(
                    "'Days' for Expiration action must be a positive integer",
                ));
            }
            if e.date.is_some_and(|d| d.rem_euclid(DAY_SECS) != 0) {
                return Err(invalid("'Date' must be at midnight GMT"));
            }
            if e.expired_object_delete_marker.is_some() && self.has_tags() {
                return Err(invalid(
                    "ExpiredObjectDeleteMarker cannot be specified with Tags in a rule filter",
                ));
            }
        }
        if let Some(n) = &self.noncurrent {
            if n.noncurrent_days.is_none_or(|d| d <= 0) {
                return Err(invalid(
                    "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
                ));
            }
            if n.newer_noncurrent_versions
                .is_some_and(|v| !(1..=MAX_NEWER_NONCURRENT).contains(&v))
            {
                return Err(invalid(
                    "'NewerNoncurrentVersions' for NoncurrentVersionExpiration action must be between 1 and 100",
                ));
            }
        }
        if let Some(d) = self.abort_upload_days {
            if d <= 0 {
                return Err(invalid(
                    "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
                ));
            }
            if self.has_tags() {
                return Err(invalid(
                    "AbortIncompleteMultipartUpload cannot be specified with Tags.",
                ));
            }
        }
        Ok(())
    }

    pub fn has_tags(&self) -> bool {
        self.filter
            .as_ref()
            .is_some_and(|f| f.tag.is_some() || f.and.as_ref().is_some_and(|a| !a.tags.is_empty()))
    }

    /// The key prefix the rule covers ("" for all).
    pub fn key_prefix(&self) -> &str {
        let f = self.filter.as_ref();
        self.prefix
            .as_deref()
            .or_else(|| f.and_then(|f| f.prefix.as_deref()))
            .or_else(|| {
                f.and_then(|f| f.and.as_ref())
                    .and_then(|a| a.prefix.as_deref())
            })
            .unwrap_or("")
    }

    /// Whether the rule covers `s` (an enabled rule whose filter it passes).
    pub fn covers(&self, s: &Subject<'_>) -> bool {
        if !self.enabled || !s.key.starts_with(self.key_prefix()) {
            return false;
        }
        let Some(f) = &self.filter else {
            return true;
        };
        let tag_ok = |(k, v): &(String, String)| s.tags.get(k) == Some(v);
        let size_ok = |gt: Option<i64>, lt: Option<i64>| {
            let size = i64::try_from(s.size).unwrap_or(i64::MAX);
            gt.is_none_or(|g| size > g) && lt.is_none_or(|l| size < l)
        };
        f.tag.as_ref().is_none_or(tag_ok)
            && size_ok(f.size_gt, f.size_lt)
            && f.and
                .as_ref()
                .is_none_or(|a| a.tags.iter().all(tag_ok) && size_ok(a.size_gt, a.size_lt))
    }

    /// When a current version created at `created` (micros) expires by this rule, in micros.
    pub fn current_expiry(&self, created: i64, day_secs: i64) -> Option<i64> {
        let e = self.expiration.as_ref()?;
        if let Some(date) = e.date {
            return Some(date * 1_000_000);
        }
        e.days.map(|d| after_days(created, d, day_secs))
    }

    /// When a version that became noncurrent at `since` (micros) expires by this rule.
    pub fn noncurrent_expiry(&self, since: i64, day_secs: i64) -> Option<i64> {
        let days = self.noncurrent.as_ref()?.noncurrent_days?;
        Some(after_days(since, days, day_secs))
    }

    /// Noncurrent versions this rule keeps whatever their age (the newest ones).
    pub fn keeps_newer(&self) -> usize {
        let n = self
            .noncurrent
            .as_ref()
            .and_then(|n| n.newer_noncurrent_versions);
        n.and_then(|n| usize::try_from(n).ok()).unwrap_or(0)
    }

    pub fn expires_markers(&self) -> bool {
        self.expiration
            .as_ref()
            .and_then(|e| e.expired_object_delete_marker)
            .unwrap_or(false)
    }
}

/// `t` plus `days` days: S3's next midnight UTC after it for real days, exact for test days.
pub fn after_days(t: i64, days: i32, day_secs: i64) -> i64 {
    let span = i64::from(days) * day_secs * 1_000_000;
    if day_secs != DAY_SECS {
        return t.saturating_add(span);
    }
    let day = DAY_SECS * 1_000_000;
    let end = t.saturating_add(span);
    // Round up to the next midnight (an instant already at midnight stays).
    end.div_euclid(day)
        .saturating_add(i64::from(end.rem_euclid(day) != 0))
        * day
}

impl Lifecycle {
    pub fn validate(&self) -> Result<()> {
        if self.rules.is_empty() || self.rules.len() > MAX_RULES {
            return Err(malformed());
        }
        let mut ids = HashSet::with_capacity(self.rules.len());
        for r in &self.rules {
            r.validate()?;
            if !ids.insert(r.id.as_str()) {
                return Err(invalid(
                    "Rule ID must be unique. Found same ID for more than one rule",
                ));
            }
        }
        Ok(())
    }

    /// The earliest expiry of a current version, and the rule that sets it (S3's
    /// `x-amz-expiration`), by real days.
    pub fn expiry_of(&self, s: &Subject<'_>, created: i64) -> Option<(i64, &str)> {
        self.rules
            .iter()
            .filter(|r| r.covers(s))
            .filter_map(|r| Some((r.current_expiry(created, DAY_SECS)?, r.id.as_str())))
            .min_by_key(|(t, _)| *t)
    }
}

impl Engine {
    pub async fn lifecycle(&self, bucket_id: &str) -> Result<Option<Lifecycle>> {
        self.bucket_config(bucket_id, BucketConfig::Lifecycle).await
    }

    /// Validates and stores (`None`: removes) bucket `name`'s lifecycle configuration.
    pub async fn set_lifecycle(
        &self,
        caller: &Caller,
        name: &str,
        config: Option<&Lifecycle>,
    ) -> Result<()> {
        if let Some(c) = config {
            c.validate()?;
        }
        let b = self.bucket(caller, name).await?;
        let r = (self.set_bucket_config(caller, &b.id, BucketConfig::Lifecycle, config)).await;
        self.access.forget(&b.id);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, days: i32) -> Rule {
        Rule {
            id: id.into(),
            enabled: true,
            prefix: Some("logs/".into()),
            filter: None,
            expiration: Some(Expiration {
                days: Some(days),
                ..Default::default()
            }),
            noncurrent: None,
            abort_upload_days: None,
        }
    }

    #[test]
    fn days_end_at_the_next_midnight() {
        let day = DAY_SECS * 1_000_000;
        let noon = 10 * day + day / 2;
        assert_eq!(after_days(noon, 1, DAY_SECS), 12 * day);
        assert_eq!(after_days(10 * day, 1, DAY_SECS), 11 * day);
        assert_eq!(after_days(noon, 2, 10), noon + 20_000_000);
    }

    #[test]
    fn validation_follows_s3() {
        let ok = Lifecycle {
            rules: vec![rule("a", 1), rule("b", 2)],
        };
        ok.validate().expect("valid");
        let dup = Lifecycle {
            rules: vec![rule("a", 1), rule("a", 2)],
        };
        assert!(matches!(dup.validate(), Err(Error::InvalidArgument(_))));
        let zero = Lifecycle {
            rules: vec![rule("a", 0)],
        };
        assert!(matches!(zero.validate(), Err(Error::InvalidArgument(_))));
        let long = Lifecycle {
            rules: vec![rule(&"x".repeat(256), 1)],
        };
        assert!(matches!(long.validate(), Err(Error::InvalidArgument(_))));
        let mut noon = rule("a", 1);
        noon.expiration = Some(Expiration {
            date: Some(DAY_SECS / 2),
            ..Default::default()
        });
        let noon = Lifecycle { rules: vec![noon] };
        assert!(matches!(noon.validate(), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            Lifecycle::default().validate(),
            Err(Error::MalformedXml(_))
        ));
    }

    #[test]
    fn filters_select_by_prefix_tags_and_size() {
        let mut r = rule("a", 1);
        r.prefix = None;
        r.filter = Some(Filter {
            and: Some(And {
                prefix: Some("p/".into()),
                tags: vec![("k".into(), "v".into())],
                size_gt: Some(10),
                size_lt: Some(100),
            }),
            ..Default::default()
        });
        let tags: BTreeMap<String, String> = [("k".to_owned(), "v".to_owned())].into();
        let none = BTreeMap::new();
        let s = |key, size, tags| Subject { key, size, tags };
        assert!(r.covers(&s("p/x", 50, &tags)));
        assert!(!r.covers(&s("q/x", 50, &tags)));
        assert!(!r.covers(&s("p/x", 50, &none)));
        assert!(!r.covers(&s("p/x", 10, &tags)));
        assert!(!r.covers(&s("p/x", 100, &tags)));
        r.enabled = false;
        assert!(!r.covers(&s("p/x", 50, &tags)));
    }

    #[test]
    fn the_earliest_rule_names_the_expiry() {
        let lc = Lifecycle {
            rules: vec![rule("late", 30), rule("soon", 1)],
        };
        let tags = BTreeMap::new();
        let s = Subject {
            key: "logs/a",
            size: 1,
            tags: &tags,
        };
        let (_, id) = lc.expiry_of(&s, 0).expect("expires");
        assert_eq!(id, "soon");
        let other = Subject {
            key: "data/a",
            size: 1,
            tags: &tags,
        };
        assert!(lc.expiry_of(&other, 0).is_none());
    }
}
