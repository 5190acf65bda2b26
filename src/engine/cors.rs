//! Bucket CORS configurations: the rules as stored, S3's validation of them, and which rule
//! (if any) lets an origin use a method with some headers. No HTTP here: `s3::cors` answers
//! preflights and decorates responses with what this module decides.

use super::acl::BucketConfig;
use super::{Caller, Engine, Error, Result};
use serde::{Deserialize, Serialize};

/// S3's limits: 100 rules, 64 KiB of configuration (bounded here by rule and list sizes).
pub const MAX_RULES: usize = 100;
const MAX_LIST: usize = 100;
const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CorsRule {
    pub id: Option<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cors {
    pub rules: Vec<CorsRule>,
}

fn invalid(msg: String) -> Error {
    Error::InvalidRequest(msg)
}

/// `pattern` with at most one `*` (any run of characters) against `s`.
fn wildcard(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, post)) => {
            s.len() >= pre.len() + post.len() && s.starts_with(pre) && s.ends_with(post)
        }
    }
}

impl CorsRule {
    fn validate(&self) -> Result<()> {
        if self.allowed_methods.is_empty() || self.allowed_origins.is_empty() {
            return Err(Error::MalformedXml(
                "A CORSRule needs AllowedMethod and AllowedOrigin".into(),
            ));
        }
        let lists = [
            &self.allowed_methods,
            &self.allowed_origins,
            &self.allowed_headers,
            &self.expose_headers,
        ];
        if lists.iter().any(|l| l.len() > MAX_LIST) {
            return Err(invalid(format!(
                "A CORSRule takes at most {MAX_LIST} of each list"
            )));
        }
        if let Some(m) = self
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(invalid(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
            )));
        }
        for o in &self.allowed_origins {
            if o.matches('*').count() > 1 {
                return Err(invalid(format!(
                    "AllowedOrigin \"{o}\" can not have more than one wildcard."
                )));
            }
        }
        for h in &self.allowed_headers {
            if h.matches('*').count() > 1 {
                return Err(invalid(format!(
                    "AllowedHeader \"{h}\" can not have more than one wildcard."
                )));
            }
        }
        if self.max_age_seconds.is_some_and(|a| a < 0) {
            return Err(invalid("MaxAgeSeconds must not be negative".into()));
        }
        Ok(())
    }

    /// Whether the rule lets `origin` use `method` sending `headers` (lower case).
    fn allows(&self, origin: &str, method: &str, headers: &[String]) -> bool {
        self.allowed_origins.iter().any(|o| wildcard(o, origin))
            && self.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                (self.allowed_headers.iter()).any(|a| wildcard(&a.to_ascii_lowercase(), h))
            })
    }

    /// What `Access-Control-Allow-Origin` says for `origin`: `*` when the rule allows any.
    pub fn allow_origin<'a>(&self, origin: &'a str) -> &'a str {
        match self.allowed_origins.iter().any(|o| o == "*") {
            true => "*",
            false => origin,
        }
    }
}

impl Cors {
    pub fn validate(&self) -> Result<()> {
        if self.rules.is_empty() || self.rules.len() > MAX_RULES {
            return Err(Error::MalformedXml(format!(
                "A CORS configuration has 1 to {MAX_RULES} rules"
            )));
        }
        self.rules.iter().try_for_each(CorsRule::validate)
    }

    /// The first rule that lets `origin` use `method` with `headers` (lower case).
    pub fn find(&self, origin: &str, method: &str, headers: &[String]) -> Option<&CorsRule> {
        self.rules
            .iter()
            .find(|r| r.allows(origin, method, headers))
    }
}

impl Engine {
    pub async fn cors(&self, bucket_id: &str) -> Result<Option<Cors>> {
        self.bucket_config(bucket_id, BucketConfig::Cors).await
    }

    /// Validates and stores (`None`: removes) bucket `name`'s CORS configuration.
    pub async fn set_cors(&self, caller: &Caller, name: &str, cors: Option<&Cors>) -> Result<()> {
        if let Some(c) = cors {
            c.validate()?;
        }
        let b = self.bucket(caller, name).await?;
        let r = (self.set_bucket_config(caller, &b.id, BucketConfig::Cors, cors)).await;
        self.access.forget(&b.id);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let v = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        CorsRule {
            allowed_origins: v(origins),
            allowed_methods: v(methods),
            allowed_headers: v(headers),
            ..Default::default()
        }
    }

    #[test]
    fn origins_match_with_one_wildcard() {
        let c = Cors {
            rules: vec![
                rule(&["*suffix"], &["GET"], &[]),
                rule(&["start*end"], &["GET"], &[]),
                rule(&["*.put"], &["PUT"], &["x-amz-*", "Content-Type"]),
            ],
        };
        assert!(c.find("foo.suffix", "GET", &[]).is_some());
        assert!(c.find("foo.suffix.get", "GET", &[]).is_none());
        assert!(c.find("startend", "GET", &[]).is_some());
        assert!(c.find("start12end", "GET", &[]).is_some());
        assert!(c.find("0start12end", "GET", &[]).is_none());
        assert!(c.find("foo.put", "GET", &[]).is_none());
        let h = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(
            c.find("a.put", "PUT", &h(&["x-amz-date", "content-type"]))
                .is_some()
        );
        assert!(c.find("a.put", "PUT", &h(&["authorization"])).is_none());
        assert_eq!(rule(&["*"], &["GET"], &[]).allow_origin("o"), "*");
        assert_eq!(rule(&["o*"], &["GET"], &[]).allow_origin("o1"), "o1");
    }

    #[test]
    fn validation_follows_s3() {
        let bad_method = Cors {
            rules: vec![rule(&["*"], &["PATCH"], &[])],
        };
        assert!(matches!(
            bad_method.validate(),
            Err(Error::InvalidRequest(_))
        ));
        let two_stars = Cors {
            rules: vec![rule(&["*.*"], &["GET"], &[])],
        };
        assert!(matches!(
            two_stars.validate(),
            Err(Error::InvalidRequest(_))
        ));
        assert!(Cors::default().validate().is_err());
        Cors {
            rules: vec![rule(&["https://app.example"], &["GET", "PUT"], &["*"])],
        }
        .validate()
        .expect("valid");
    }
}
