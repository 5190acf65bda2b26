//! Browser POST uploads (a `multipart/form-data` form to a bucket): where S3 and s3s 0.14.1
//! differ.
//!
//! s3s parses the form, verifies the signature, checks the policy and calls `put_object` with
//! what it parsed. Around it:
//! - `form::FilenameKey` reads the fields ahead of the file part and records them in the
//!   request's `Form`. It also takes the `x-amz-checksum-*` fields that the policy names in no
//!   condition out of the form: S3 verifies them without asking the policy for one, s3s refuses
//!   every field the policy does not name.
//! - `apply` (in `put_object`): the policy's `expiration` must be ISO 8601 (s3s also takes
//!   RFC 3339's `2030-01-01 00:00:00+00:00`); the `acl` and `tagging` fields (s3s reads only
//!   `x-amz-acl` and `x-amz-tagging`, a URL-encoded header, where S3's form field is XML); the
//!   checksum fields taken out of the form.
//! - `redirect`: S3's `success_action_redirect` carries the ETag quoted (`etag=%22…%22`).
//! - `policy_error`: a form the policy does not allow is S3's 403 AccessDenied "Invalid
//!   according to Policy: …", where s3s answers 400 InvalidPolicyDocument.
//! - `unsigned`: a form with a policy or access key but no signature is S3's 400
//!   InvalidArgument; s3s takes it for an anonymous form (and checks the unsigned policy).

use super::Body;
use base64::Engine as _;
use http_body_util::BodyExt;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Response, S3Result, s3_error};
use std::sync::{Arc, Mutex};

/// The form fields ahead of the file part, once `FilenameKey` has read them (names
/// lower-cased, `${filename}` substituted): those s3s sees, and those taken out for the gateway.
#[derive(Clone, Default)]
pub struct Form(Arc<Mutex<Option<Fields>>>);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub seen: Vec<(String, String)>,
    pub taken: Vec<(String, String)>,
}

impl Fields {
    /// The value s3s takes for `name` (of repeated fields, the last).
    fn get(&self, name: &str) -> Option<&str> {
        self.seen
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn taken(&self, name: &str) -> Option<String> {
        self.taken
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

impl Form {
    pub fn set(&self, fields: Fields) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(fields);
    }

    pub fn fields(&self) -> Option<Fields> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Whether `FilenameKey` takes field `name` (lower-case) out of the form: a checksum field of a
/// form with a policy that names it in no condition.
pub fn takes_over(name: &str, policy: Option<&str>) -> bool {
    if !name.starts_with("x-amz-checksum-") {
        return false;
    }
    let Some(conditions) = policy.and_then(decode).and_then(|p| conditions(&p)) else {
        return false;
    };
    !conditions.iter().any(|c| c.field == name)
}

fn decode(b64: &str) -> Option<serde_json::Value> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One `eq` / `starts-with` condition (field lower-case, without `$`).
struct Condition {
    op: &'static str,
    /// The field as the policy spells it.
    written: String,
    field: String,
    value: String,
}

impl Condition {
    fn new(op: &'static str, written: &str, value: &str) -> Condition {
        let bare = written.strip_prefix('$').unwrap_or(written);
        Condition {
            op,
            written: format!("${bare}"),
            field: bare.to_ascii_lowercase(),
            value: value.to_owned(),
        }
    }

    fn allows(&self, actual: Option<&str>) -> bool {
        match self.op {
            "eq" => actual == Some(self.value.as_str()),
            _ => actual.unwrap_or("").starts_with(self.value.as_str()),
        }
    }

    /// As S3 quotes it: `["eq", "$key", "value"]`.
    fn describe(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        format!("[{}, {}, {}]", q(self.op), q(&self.written), q(&self.value))
    }
}

/// The policy's `eq` and `starts-with` conditions (`None`: not a policy s3s could parse).
fn conditions(policy: &serde_json::Value) -> Option<Vec<Condition>> {
    let mut out = Vec::new();
    for c in policy.get("conditions")?.as_array()? {
        match c {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    out.push(Condition::new("eq", k, v.as_str()?));
                }
            }
            serde_json::Value::Array(a) => {
                let op = a.first()?.as_str()?.to_ascii_lowercase();
                let op = match op.as_str() {
                    "eq" => "eq",
                    "starts-with" => "starts-with",
                    _ => continue,
                };
                out.push(Condition::new(op, a.get(1)?.as_str()?, a.get(2)?.as_str()?));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Fields that need no condition (s3s's list, and the checksum fields taken out).
fn exempt(name: &str) -> bool {
    matches!(
        name,
        "x-amz-signature" | "signature" | "awsaccesskeyid" | "file" | "submit" | "policy"
    ) || name.starts_with("x-amz-server-side-encryption")
        || name.starts_with("x-ignore-")
}

/// Whether `s` is an ISO 8601 date and time as S3 takes it in a policy
/// (`2030-01-01T00:00:00.000Z`).
fn iso8601(s: &str) -> bool {
    s.as_bytes().get(10) == Some(&b'T')
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

/// A form with a policy or an access key but no signature: s3s takes it for an anonymous one
/// (and still checks the unsigned policy); S3 refuses it.
fn unsigned(form: &Fields) -> Option<S3Error> {
    let signed = ["signature", "x-amz-signature"]
        .iter()
        .any(|f| form.get(f).is_some());
    let (field, wanted) = if form.get("x-amz-credential").is_some() {
        ("x-amz-credential", "X-Amz-Signature")
    } else {
        ("awsaccesskeyid", "Signature")
    };
    let claims = form.get("policy").is_some() || form.get(field).is_some();
    (claims && !signed).then(|| {
        s3_error!(
            InvalidArgument,
            "Bucket POST must contain a field named '{wanted}'.  If it is specified, please check the order of the fields."
        )
    })
}

/// Applies a POST form's fields to the `PutObjectInput` s3s made of it (see the module doc).
pub fn apply(input: &mut PutObjectInput, form: &Fields) -> S3Result<()> {
    if let Some(e) = unsigned(form) {
        return Err(e);
    }
    if let Some(policy) = form.get("policy").and_then(decode)
        && let Some(exp) = policy.get("expiration").and_then(|e| e.as_str())
        && !iso8601(exp)
    {
        return Err(s3_error!(
            InvalidPolicyDocument,
            "Invalid Policy: Invalid 'expiration' value: '{exp}'"
        ));
    }
    if input.acl.is_none()
        && let Some(acl) = form.get("acl")
    {
        input.acl = Some(ObjectCannedACL::from(acl.to_owned()));
    }
    if input.tagging.is_none()
        && let Some(xml) = form.get("tagging")
    {
        input.tagging = Some(tagging(xml)?);
    }
    let set = |slot: &mut Option<String>, name: &str| {
        if slot.is_none() {
            *slot = form.taken(name);
        }
    };
    set(&mut input.checksum_crc32, "x-amz-checksum-crc32");
    set(&mut input.checksum_crc32c, "x-amz-checksum-crc32c");
    set(&mut input.checksum_crc64nvme, "x-amz-checksum-crc64nvme");
    set(&mut input.checksum_sha1, "x-amz-checksum-sha1");
    set(&mut input.checksum_sha256, "x-amz-checksum-sha256");
    if input.checksum_algorithm.is_none()
        && let Some(a) = form.taken("x-amz-checksum-algorithm")
    {
        input.checksum_algorithm = Some(ChecksumAlgorithm::from(a));
    }
    Ok(())
}

/// The `tagging` field's `<Tagging>` document as an `x-amz-tagging` value.
fn tagging(xml: &str) -> S3Result<String> {
    use s3s::xml::Deserialize as _;
    let mut d = s3s::xml::Deserializer::new(xml.as_bytes());
    let t = Tagging::deserialize(&mut d).map_err(|_| {
        s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema."
        )
    })?;
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    Ok(t.tag_set
        .iter()
        .map(|tag| {
            format!(
                "{}={}",
                enc(tag.key.as_deref().unwrap_or("")),
                enc(tag.value.as_deref().unwrap_or(""))
            )
        })
        .collect::<Vec<_>>()
        .join("&"))
}

/// Puts S3's `success_action_redirect` Location on the answer to a POST (it replaces the one
/// s3s makes, whose ETag is bare). Nothing when there is none or the URL does not parse (s3s
/// refuses it).
pub fn redirect<T>(resp: &mut S3Response<T>, form: &Fields, bucket: &str, key: &str, etag: &str) {
    let Some(to) = form
        .get("success_action_redirect")
        .or_else(|| form.get("redirect"))
    else {
        return;
    };
    let Ok(mut url) = url::Url::parse(to) else {
        return;
    };
    url.query_pairs_mut()
        .append_pair("bucket", bucket)
        .append_pair("key", key)
        .append_pair("etag", &format!("\"{etag}\""));
    if let Ok(v) = http::HeaderValue::from_str(url.as_str()) {
        resp.headers.insert(http::header::LOCATION, v);
    }
}

/// s3s's refusal of a form its policy does not allow, as S3's: 403 AccessDenied, "Invalid
/// according to Policy: Policy Condition failed: [...]" or "...: Extra input fields: name".
/// Any other response passes unchanged.
pub async fn policy_error(resp: http::Response<Body>, form: &Form) -> http::Response<Body> {
    let Some(fields) = form.fields() else {
        return resp;
    };
    if !matches!(resp.status().as_u16(), 400 | 403)
        || http_body::Body::size_hint(resp.body())
            .upper()
            .is_none_or(|n| n > 64 * 1024)
    {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(collected) = body.collect().await else {
        return http::Response::from_parts(parts, Body::empty());
    };
    let bytes = collected.to_bytes();
    let xml = String::from_utf8_lossy(&bytes);
    let element = |name: &str| {
        xml.split_once(&format!("<{name}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
            .map_or("", |(v, _)| v)
    };
    let (code, message) = (element("Code"), element("Message"));
    if let Some(e) = unsigned(&fields) {
        return super::error::response(e);
    }
    let refused = match code {
        "InvalidPolicyDocument"
            if message.starts_with("Policy condition ")
                || message.starts_with("Bucket in form field ") =>
        {
            Some(failed_condition(&fields))
        }
        "AccessDenied" if message.contains("not specified in the policy") => {
            Some(extra_fields(&fields))
        }
        _ => None,
    };
    match refused {
        Some(msg) => super::error::response(S3Error::with_message(S3ErrorCode::AccessDenied, msg)),
        None => http::Response::from_parts(parts, Body::from(bytes)),
    }
}

/// The first condition the form fails. The bucket is the request's, which is not in the form:
/// when every other condition holds, the bucket's is the one that failed.
fn failed_condition(form: &Fields) -> String {
    const LEAD: &str = "Invalid according to Policy: Policy Condition failed";
    let Some(conds) = form
        .get("policy")
        .and_then(decode)
        .and_then(|p| conditions(&p))
    else {
        return LEAD.to_owned();
    };
    let failed = conds
        .iter()
        .find(|c| c.field != "bucket" && !c.allows(form.get(&c.field)))
        .or_else(|| conds.iter().find(|c| c.field == "bucket"));
    match failed {
        Some(c) => format!("{LEAD}: {}", c.describe()),
        None => LEAD.to_owned(),
    }
}

/// The form's fields that no condition names.
fn extra_fields(form: &Fields) -> String {
    const LEAD: &str = "Invalid according to Policy: Extra input fields";
    let conds = form
        .get("policy")
        .and_then(decode)
        .and_then(|p| conditions(&p))
        .unwrap_or_default();
    let extra: Vec<&str> = form
        .seen
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !exempt(n) && !conds.iter().any(|c| c.field == *n))
        .collect();
    if extra.is_empty() {
        LEAD.to_owned()
    } else {
        format!("{LEAD}: {}", extra.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    #[test]
    fn checksum_fields_need_no_condition() {
        let p = policy(
            r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["starts-with","$X-Amz-Checksum-Sha1",""]]}"#,
        );
        assert!(takes_over("x-amz-checksum-sha256", Some(&p)));
        assert!(!takes_over("x-amz-checksum-sha1", Some(&p)));
        assert!(!takes_over("x-amz-checksum-sha256", None));
        assert!(!takes_over("x-amz-meta-a", Some(&p)));
        assert!(!takes_over("x-amz-checksum-sha256", Some("not base64!")));
    }

    #[test]
    fn expiration_is_iso8601() {
        assert!(iso8601("2030-01-01T00:00:00Z"));
        assert!(iso8601("2030-01-01T00:00:00.000Z"));
        assert!(!iso8601("2030-01-01 00:00:00.123456+00:00"));
        assert!(!iso8601("tomorrow"));
    }

    #[test]
    fn describes_the_failed_condition() {
        let p = policy(
            r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[{"bucket":"b"},["starts-with","$key","foo"],["eq","$x-amz-meta-foo",""]]}"#,
        );
        let form = |pairs: &[(&str, &str)]| Fields {
            seen: pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .chain([("policy".to_owned(), p.clone())])
                .collect(),
            taken: vec![],
        };
        assert_eq!(
            failed_condition(&form(&[("key", "bar")])),
            r#"Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "foo"]"#
        );
        assert_eq!(
            failed_condition(&form(&[("key", "foo"), ("x-amz-meta-foo", "x")])),
            r#"Invalid according to Policy: Policy Condition failed: ["eq", "$x-amz-meta-foo", ""]"#
        );
        assert_eq!(
            failed_condition(&form(&[("key", "foo"), ("x-amz-meta-foo", "")])),
            r#"Invalid according to Policy: Policy Condition failed: ["eq", "$bucket", "b"]"#
        );
        assert_eq!(
            extra_fields(&form(&[
                ("key", "foo"),
                ("signature", "s"),
                ("x-amz-meta-bar", "")
            ])),
            "Invalid according to Policy: Extra input fields: x-amz-meta-bar"
        );
    }

    #[test]
    fn tagging_document_becomes_the_header() {
        let xml = "<Tagging><TagSet><Tag><Key>a b</Key><Value>1&amp;2</Value></Tag>\
                   <Tag><Key>k</Key><Value></Value></Tag></TagSet></Tagging>";
        assert_eq!(tagging(xml).unwrap(), "a%20b=1%262&k=");
        assert!(tagging("<Tagging>").is_err());
    }
}
