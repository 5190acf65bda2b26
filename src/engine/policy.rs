//! Bucket policies: S3's IAM policy documents, parsed and validated once when stored, then
//! evaluated against each request.
//!
//! Pure: no I/O, no HTTP types. The `s3` layer builds a `Request` (who, which action, which ARN,
//! and the condition keys it knows) and combines the `Decision` with ownership and ACLs.
//!
//! Anything S3 accepts but this server cannot evaluate (service principals, tag condition keys,
//! policy variables, ...) is refused when the policy is stored: a policy must never silently fail
//! to restrict.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// S3's limit on the size of a bucket policy.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;
/// Limits on what one policy holds, so evaluation cost stays bounded.
const MAX_STATEMENTS: usize = 100;
const MAX_VALUES: usize = 100;
const MAX_CONDITION_KEYS: usize = 50;

const NOT_JSON: &str = "Policies must be valid JSON and the first byte must be '{'";
const SYNTAX: &str = "Invalid policy syntax.";
const INVALID_ACTION: &str = "Policy has invalid action";
const INVALID_RESOURCE: &str = "Policy has invalid resource";
const INVALID_PRINCIPAL: &str = "Invalid principal in policy";
const S3_ARN: &str = "arn:aws:s3:::";

/// Why a policy was refused: `Malformed` is S3's 400 MalformedPolicy; `NotImplemented` is valid
/// in S3 but beyond this server (501).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    NotImplemented(String),
}

type Parsed<T> = std::result::Result<T, PolicyError>;

fn malformed<T>(msg: impl Into<String>) -> Parsed<T> {
    Err(PolicyError::Malformed(msg.into()))
}

fn not_implemented<T>(msg: impl Into<String>) -> Parsed<T> {
    Err(PolicyError::NotImplemented(msg.into()))
}

/// The outcome of a policy for one request: an explicit Deny wins over any Allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// No statement applies: the decision is left to ownership and ACLs.
    Neutral,
}

/// The caller; `Tenant` holds the tenant's canonical id.
#[derive(Debug, Clone, Copy)]
pub enum Principal<'a> {
    Anonymous,
    Tenant(&'a str),
}

/// One request, as a policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: Principal<'a>,
    /// E.g. `s3:GetObject`.
    pub action: &'a str,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
    pub resource: &'a str,
    pub context: &'a Context,
}

/// Condition key values of one request. Keys are case-insensitive (stored lowercased); values
/// are kept as given.
#[derive(Debug, Default, Clone)]
pub struct Context {
    values: BTreeMap<String, Vec<String>>,
}

impl Context {
    /// Replaces the values of `key` with `value`.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
    }

    /// Adds `value` to the values of `key` (multi-valued keys, for ForAnyValue/ForAllValues).
    pub fn add(&mut self, key: &str, value: impl Into<String>) {
        self.values
            .entry(key.to_ascii_lowercase())
            .or_default()
            .push(value.into());
    }

    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(Vec::as_slice)
    }
}

/// A parsed, validated bucket policy.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

impl Policy {
    /// Parses and validates `json` as the policy of bucket `bucket`.
    pub fn parse(json: &str, bucket: &str) -> Result<Policy, PolicyError> {
        if json.len() > MAX_POLICY_BYTES {
            return malformed("Policies must be less than 20 KB");
        }
        let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(json) else {
            return malformed(NOT_JSON);
        };
        let mut scope = Scope {
            bucket,
            variables: false,
        };
        let mut statements = None;
        for (field, v) in &doc {
            match field.as_str() {
                "Version" => scope.variables = parse_version(v)?,
                "Id" if v.is_string() => {}
                "Id" => return malformed(SYNTAX),
                "Statement" => statements = Some(v),
                _ => return malformed(format!("Unknown field {field}")),
            }
        }
        let Some(statements) = statements else {
            return malformed("Missing required field Statement");
        };
        let statements = statement_list(statements)?
            .into_iter()
            .map(|s| Statement::parse(s, &scope))
            .collect::<Parsed<Vec<_>>>()?;
        Ok(Policy { statements })
    }

    /// Deny if any matching statement denies; else Allow if any matching statement allows; else
    /// Neutral.
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        // Action names are case-insensitive; patterns are stored lowercased.
        let action = req.action.to_ascii_lowercase();
        let mut allowed = false;
        for s in self.statements.iter().filter(|s| s.applies(req, &action)) {
            if !s.allow {
                return Decision::Deny;
            }
            allowed = true;
        }
        match allowed {
            true => Decision::Allow,
            false => Decision::Neutral,
        }
    }

    /// Whether an Allow statement grants anything to everyone without a condition that narrows
    /// it to specific callers (AWS's "IsPublic", which Block Public Access acts on).
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(Statement::is_public)
    }
}

/// What statements need to know about the whole policy while parsing.
struct Scope<'a> {
    bucket: &'a str,
    /// Version 2012-10-17: `${...}` is a policy variable, which this server does not expand.
    variables: bool,
}

impl Scope<'_> {
    /// Refuses policy variables: taken literally they would match nothing, so a Deny using one
    /// would silently not deny.
    fn refuse_variables(&self, s: &str) -> Parsed<()> {
        match self.variables && s.contains("${") {
            true => not_implemented("Policy variables are not supported"),
            false => Ok(()),
        }
    }
}

/// Whether the version enables policy variables (only 2012-10-17 does).
fn parse_version(v: &Value) -> Parsed<bool> {
    match v.as_str() {
        Some("2012-10-17") => Ok(true),
        Some("2008-10-17") => Ok(false),
        _ => malformed(SYNTAX),
    }
}

/// `Statement`: one object or a non-empty array of them.
fn statement_list(v: &Value) -> Parsed<Vec<&Value>> {
    let list: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    if list.is_empty() {
        return malformed(SYNTAX);
    }
    if list.len() > MAX_STATEMENTS {
        return malformed(format!(
            "Policies must have at most {MAX_STATEMENTS} statements"
        ));
    }
    Ok(list)
}

/// A field or its `Not` form: which was given, and what it holds.
#[derive(Debug, Clone)]
struct Negatable<T> {
    not: bool,
    inner: T,
}

#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    principal: Negatable<Principals>,
    /// Lowercased patterns (`*` or `s3:...`).
    actions: Negatable<Vec<String>>,
    /// Patterns (`*` or `arn:aws:s3:::...`).
    resources: Negatable<Vec<String>>,
    /// All must hold.
    conditions: Vec<Condition>,
}

const STATEMENT_FIELDS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

impl Statement {
    fn parse(v: &Value, scope: &Scope) -> Parsed<Statement> {
        let Value::Object(m) = v else {
            return malformed(SYNTAX);
        };
        if let Some(field) = m.keys().find(|k| !STATEMENT_FIELDS.contains(&k.as_str())) {
            return malformed(format!("Unknown field {field}"));
        }
        if m.get("Sid").is_some_and(|s| !s.is_string()) {
            return malformed(SYNTAX);
        }
        let allow = match m.get("Effect") {
            Some(Value::String(e)) if e == "Allow" => true,
            Some(Value::String(e)) if e == "Deny" => false,
            Some(e) => return malformed(format!("Invalid effect: {e}")),
            None => return malformed("Missing required field Effect"),
        };
        let principal = one_of(m, "Principal", parse_principals)?;
        // S3 refuses an Allow to everyone but some: it would grant anonymous callers by
        // omission.
        if allow && principal.not {
            return malformed("Allow with NotPrincipal is not supported");
        }
        let actions = one_of(m, "Action", parse_actions)?;
        let resources = one_of(m, "Resource", |v| parse_resources(v, scope))?;
        let conditions = match m.get("Condition") {
            Some(c) => parse_conditions(c, scope)?,
            None => Vec::new(),
        };
        Ok(Statement {
            allow,
            principal,
            actions,
            resources,
            conditions,
        })
    }

    fn applies(&self, req: &Request, action: &str) -> bool {
        let p = &self.principal;
        let a = &self.actions;
        let r = &self.resources;
        p.not != p.inner.names(req.principal)
            && a.not != a.inner.iter().any(|pat| wildcard(pat, action))
            && r.not != r.inner.iter().any(|pat| wildcard(pat, req.resource))
            && self.conditions.iter().all(|c| c.holds(req.context))
    }

    fn is_public(&self) -> bool {
        // (An Allow never has NotPrincipal: `parse` refuses it.)
        let everyone = self.principal.not != self.principal.inner.everyone;
        self.allow && everyone && !self.conditions.iter().any(Condition::narrows)
    }
}

/// Exactly one of `field` and `Not<field>`, parsed by `parse`.
fn one_of<T>(
    m: &Map<String, Value>,
    field: &str,
    parse: impl FnOnce(&Value) -> Parsed<T>,
) -> Parsed<Negatable<T>> {
    let (not, v) = match (m.get(field), m.get(&format!("Not{field}"))) {
        (Some(v), None) => (false, v),
        (None, Some(v)) => (true, v),
        (None, None) => return malformed(format!("Missing required field {field}")),
        (Some(_), Some(_)) => return malformed(SYNTAX),
    };
    Ok(Negatable {
        not,
        inner: parse(v)?,
    })
}

/// A string or a non-empty array of at most `MAX_VALUES` strings; `err` is the message when not.
fn strings<'v>(v: &'v Value, err: &str) -> Parsed<Vec<&'v str>> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    if items.is_empty() || items.len() > MAX_VALUES {
        return malformed(err);
    }
    items
        .into_iter()
        .map(|i| i.as_str().ok_or_else(|| PolicyError::Malformed(err.into())))
        .collect()
}

// ---------------------------------------------------------------- principals

/// Who a `Principal` names: everyone (`*`, anonymous callers included) and/or tenants by id.
#[derive(Debug, Clone, Default)]
struct Principals {
    everyone: bool,
    tenants: Vec<String>,
}

impl Principals {
    fn names(&self, p: Principal) -> bool {
        match p {
            Principal::Anonymous => self.everyone,
            Principal::Tenant(id) => self.everyone || self.tenants.iter().any(|t| t == id),
        }
    }
}

fn parse_principals(v: &Value) -> Parsed<Principals> {
    let mut out = Principals::default();
    let m = match v {
        Value::String(s) if s == "*" => {
            out.everyone = true;
            return Ok(out);
        }
        Value::Object(m) if !m.is_empty() => m,
        _ => return malformed(INVALID_PRINCIPAL),
    };
    for (kind, ids) in m {
        match kind.as_str() {
            "AWS" => {
                for id in strings(ids, INVALID_PRINCIPAL)? {
                    match id {
                        "*" => out.everyone = true,
                        _ => out.tenants.push(tenant_of(id)?),
                    }
                }
            }
            "CanonicalUser" => {
                for id in strings(ids, INVALID_PRINCIPAL)? {
                    out.tenants.push(plain_id(id)?);
                }
            }
            "Service" | "Federated" => {
                return not_implemented("Service and federated principals are not supported");
            }
            _ => return malformed(INVALID_PRINCIPAL),
        }
    }
    Ok(out)
}

/// The tenant an `AWS` principal names: `X` or any `arn:aws:iam::X:...`.
fn tenant_of(id: &str) -> Parsed<String> {
    match id.strip_prefix("arn:aws:iam::") {
        Some(rest) => match rest.split_once(':') {
            Some((account, _)) => plain_id(account),
            None => malformed(INVALID_PRINCIPAL),
        },
        // Other ARNs (sts, roles of other partitions) name nothing here.
        None if id.starts_with("arn:") => malformed(INVALID_PRINCIPAL),
        None => plain_id(id),
    }
}

/// A tenant id: no wildcards (only a whole `*` means everyone, and only under `AWS`).
fn plain_id(id: &str) -> Parsed<String> {
    match id.is_empty() || id.contains(['*', '?']) {
        true => malformed(INVALID_PRINCIPAL),
        false => Ok(id.to_owned()),
    }
}

// ---------------------------------------------------------------- actions and resources

fn parse_actions(v: &Value) -> Parsed<Vec<String>> {
    strings(v, INVALID_ACTION)?
        .into_iter()
        .map(|a| {
            let lower = a.to_ascii_lowercase();
            let valid = lower == "*"
                || lower.strip_prefix("s3:").is_some_and(|name| {
                    !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
                });
            match valid {
                true => Ok(lower),
                false => malformed(INVALID_ACTION),
            }
        })
        .collect()
}

fn parse_resources(v: &Value, scope: &Scope) -> Parsed<Vec<String>> {
    strings(v, INVALID_RESOURCE)?
        .into_iter()
        .map(|r| parse_resource(r, scope))
        .collect()
}

/// `*` or an S3 ARN whose bucket part (a pattern) matches this bucket: a bucket's policy cannot
/// speak about other buckets.
fn parse_resource(r: &str, scope: &Scope) -> Parsed<String> {
    if r == "*" {
        return Ok(r.to_owned());
    }
    scope.refuse_variables(r)?;
    let Some(path) = r.strip_prefix(S3_ARN) else {
        return malformed(INVALID_RESOURCE);
    };
    let bucket = path.split_once('/').map_or(path, |(b, _)| b);
    match !bucket.is_empty() && wildcard(bucket, scope.bucket) {
        true => Ok(r.to_owned()),
        false => malformed(INVALID_RESOURCE),
    }
}

// ---------------------------------------------------------------- conditions

/// How several request values of one key combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    /// No prefix: like `ForAnyValue`, but negated operators hold on an absent key.
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextMode {
    Exact,
    IgnoreCase,
    /// `*` and `?` wildcards.
    Like,
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// `request <op> policy`, e.g. NumericLessThan: the request's value is below the policy's.
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

/// An operator's base, before its values are parsed.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text(TextMode),
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Ip,
    Null,
}

/// A parsed operator name such as `ForAllValues:StringNotLikeIfExists`.
#[derive(Debug, Clone, Copy)]
struct Operator {
    set: SetOp,
    kind: Kind,
    negated: bool,
    if_exists: bool,
}

impl Operator {
    fn parse(name: &str) -> Option<Operator> {
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (SetOp::ForAnyValue, r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (SetOp::ForAllValues, r)
        } else {
            (SetOp::Single, name)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        let (kind, negated) = base_operator(base)?;
        // Null tests presence itself: set prefixes and IfExists make no sense on it.
        if matches!(kind, Kind::Null) && (set != SetOp::Single || if_exists) {
            return None;
        }
        Some(Operator {
            set,
            kind,
            negated,
            if_exists,
        })
    }
}

/// A base operator name → its kind and whether it is the negated form.
fn base_operator(base: &str) -> Option<(Kind, bool)> {
    use {Cmp::*, Kind::*, TextMode::*};
    Some(match base {
        "StringEquals" => (Text(Exact), false),
        "StringNotEquals" => (Text(Exact), true),
        "StringEqualsIgnoreCase" => (Text(IgnoreCase), false),
        "StringNotEqualsIgnoreCase" => (Text(IgnoreCase), true),
        "StringLike" => (Text(Like), false),
        "StringNotLike" => (Text(Like), true),
        "NumericEquals" => (Numeric(Eq), false),
        "NumericNotEquals" => (Numeric(Eq), true),
        "NumericLessThan" => (Numeric(Lt), false),
        "NumericLessThanEquals" => (Numeric(Le), false),
        "NumericGreaterThan" => (Numeric(Gt), false),
        "NumericGreaterThanEquals" => (Numeric(Ge), false),
        "DateEquals" => (Date(Eq), false),
        "DateNotEquals" => (Date(Eq), true),
        "DateLessThan" => (Date(Lt), false),
        "DateLessThanEquals" => (Date(Le), false),
        "DateGreaterThan" => (Date(Gt), false),
        "DateGreaterThanEquals" => (Date(Ge), false),
        "Bool" => (Bool, false),
        "IpAddress" => (Ip, false),
        "NotIpAddress" => (Ip, true),
        // AWS matches ARNs with wildcards under both ArnEquals and ArnLike.
        "ArnEquals" | "ArnLike" => (Text(Like), false),
        "ArnNotEquals" | "ArnNotLike" => (Text(Like), true),
        "Null" => (Null, false),
        _ => return None,
    })
}

/// An operator's policy values, parsed for its kind; any one matching is enough.
#[derive(Debug, Clone)]
enum Test {
    /// Lowercased under `TextMode::IgnoreCase`.
    Text(TextMode, Vec<String>),
    Numeric(Cmp, Vec<f64>),
    /// Unix nanoseconds.
    Date(Cmp, Vec<i128>),
    Bool(Vec<bool>),
    Ip(Vec<Cidr>),
}

impl Test {
    fn parse(kind: Kind, values: Vec<String>) -> Parsed<Test> {
        Ok(match kind {
            Kind::Text(TextMode::IgnoreCase) => Test::Text(
                TextMode::IgnoreCase,
                values.iter().map(|v| v.to_lowercase()).collect(),
            ),
            Kind::Text(mode) => Test::Text(mode, values),
            Kind::Numeric(cmp) => Test::Numeric(cmp, parse_all(&values, parse_number)?),
            Kind::Date(cmp) => Test::Date(cmp, parse_all(&values, parse_date)?),
            Kind::Bool | Kind::Null => Test::Bool(parse_all(&values, parse_bool)?),
            Kind::Ip => Test::Ip(parse_all(&values, Cidr::parse)?),
        })
    }

    /// Whether one request value matches any policy value; `None` when the request value is not
    /// of the operator's type (the condition then fails, negated or not).
    fn check(&self, request: &str) -> Option<bool> {
        Some(match self {
            Test::Text(TextMode::Exact, vs) => vs.iter().any(|v| v == request),
            Test::Text(TextMode::IgnoreCase, vs) => {
                let r = request.to_lowercase();
                vs.contains(&r)
            }
            Test::Text(TextMode::Like, vs) => vs.iter().any(|v| wildcard(v, request)),
            Test::Numeric(cmp, vs) => {
                let r = parse_number(request)?;
                vs.iter().any(|&v| cmp.holds(r, v))
            }
            Test::Date(cmp, vs) => {
                let r = parse_date(request)?;
                vs.iter().any(|&v| cmp.holds(r, v))
            }
            Test::Bool(vs) => vs.contains(&parse_bool(request)?),
            Test::Ip(vs) => {
                let r = request.trim().parse::<IpAddr>().ok()?;
                vs.iter().any(|c| c.contains(r))
            }
        })
    }
}

fn parse_all<T>(values: &[String], parse: fn(&str) -> Option<T>) -> Parsed<Vec<T>> {
    values
        .iter()
        .map(|v| {
            parse(v).ok_or_else(|| PolicyError::Malformed(format!("Invalid condition value {v}")))
        })
        .collect()
}

/// What a condition asks of its key.
#[derive(Debug, Clone)]
enum Rule {
    /// `Null`: whether the key is absent (`true`) or present (`false`); any value may match.
    Null(Vec<bool>),
    Compare {
        set: SetOp,
        negated: bool,
        if_exists: bool,
        test: Test,
    },
}

/// One key under one operator.
#[derive(Debug, Clone)]
struct Condition {
    /// Lowercased.
    key: String,
    rule: Rule,
}

/// Keys S3 knows whose values this server cannot supply.
const REFUSED_KEYS: [&str; 5] = [
    "s3:existingobjecttag",
    "s3:object-lock-remaining-retention-days",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:principalorgid",
];
const REFUSED_KEY_PREFIXES: [&str; 4] = [
    "s3:existingobjecttag/",
    "aws:principaltag/",
    "aws:requesttag/",
    "aws:resourcetag/",
];

/// Keys that, compared against fixed values, confine a grant to specific callers.
const NARROWING_KEYS: [&str; 7] = [
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:principalaccount",
    "aws:principalorgid",
    "aws:userid",
];

fn parse_conditions(v: &Value, scope: &Scope) -> Parsed<Vec<Condition>> {
    let Value::Object(ops) = v else {
        return malformed(SYNTAX);
    };
    let mut out = Vec::new();
    for (name, keys) in ops {
        let Some(op) = Operator::parse(name) else {
            return malformed(format!("Invalid Condition type : {name}"));
        };
        let Value::Object(keys) = keys else {
            return malformed(SYNTAX);
        };
        if keys.is_empty() {
            return malformed(SYNTAX);
        }
        for (key, values) in keys {
            if out.len() == MAX_CONDITION_KEYS {
                return malformed(format!(
                    "Statements must have at most {MAX_CONDITION_KEYS} condition keys"
                ));
            }
            out.push(Condition::parse(op, key, values, scope)?);
        }
    }
    Ok(out)
}

impl Condition {
    fn parse(op: Operator, key: &str, values: &Value, scope: &Scope) -> Parsed<Condition> {
        let lower = condition_key(key)?;
        let values = condition_values(values)?;
        for v in &values {
            scope.refuse_variables(v)?;
        }
        let test = Test::parse(op.kind, values)?;
        let rule = match (op.kind, test) {
            (Kind::Null, Test::Bool(absent)) => Rule::Null(absent),
            (_, test) => Rule::Compare {
                set: op.set,
                negated: op.negated,
                if_exists: op.if_exists,
                test,
            },
        };
        Ok(Condition { key: lower, rule })
    }

    fn holds(&self, ctx: &Context) -> bool {
        let values = ctx.get(&self.key).filter(|v| !v.is_empty());
        let (set, negated, if_exists, test) = match &self.rule {
            Rule::Null(absent) => return absent.contains(&values.is_none()),
            Rule::Compare {
                set,
                negated,
                if_exists,
                test,
            } => (*set, *negated, *if_exists, test),
        };
        let Some(values) = values else {
            return match set {
                _ if if_exists => true,
                SetOp::ForAllValues => true,
                SetOp::ForAnyValue => false,
                SetOp::Single => negated,
            };
        };
        // A negated operator holds for a request value that matches none of the policy values.
        let mut each = values
            .iter()
            .map(|r| test.check(r).is_some_and(|hit| hit != negated));
        match set {
            SetOp::ForAllValues => each.all(|ok| ok),
            SetOp::Single | SetOp::ForAnyValue => each.any(|ok| ok),
        }
    }

    /// Whether this condition confines a grant to specific callers (see `Policy::is_public`).
    fn narrows(&self) -> bool {
        let Rule::Compare {
            set,
            negated,
            if_exists,
            test,
        } = &self.rule
        else {
            return false;
        };
        // These hold for callers outside the values (or without the key) too.
        if *negated || *if_exists || *set == SetOp::ForAllValues {
            return false;
        }
        match (self.key.as_str(), test) {
            ("aws:sourceip", Test::Ip(nets)) => nets.iter().all(|n| n.bits > 0),
            (key, Test::Text(mode, values)) if NARROWING_KEYS.contains(&key) => {
                *mode != TextMode::Like || values.iter().all(|v| !v.contains(['*', '?']))
            }
            _ => false,
        }
    }
}

/// The lowercased key, unless it is one this server cannot evaluate.
fn condition_key(key: &str) -> Parsed<String> {
    let lower = key.to_ascii_lowercase();
    if lower.is_empty() {
        return malformed(SYNTAX);
    }
    let refused = REFUSED_KEYS.contains(&lower.as_str())
        || REFUSED_KEY_PREFIXES.iter().any(|p| lower.starts_with(p));
    match refused {
        true => not_implemented(format!("Condition key {key} is not supported")),
        false => Ok(lower),
    }
}

/// A value or a non-empty array of them; numbers and booleans are taken as their text.
fn condition_values(v: &Value) -> Parsed<Vec<String>> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    if items.is_empty() || items.len() > MAX_VALUES {
        return malformed(SYNTAX);
    }
    items
        .into_iter()
        .map(|i| match i {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => malformed(SYNTAX),
        })
        .collect()
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// RFC 3339 (ISO 8601 with a time and offset), a bare date (midnight UTC), or epoch seconds;
/// as Unix nanoseconds.
fn parse_date(s: &str) -> Option<i128> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, day) {
        return Some(d.midnight().assume_utc().unix_timestamp_nanos());
    }
    s.parse::<i64>()
        .ok()
        .map(|secs| i128::from(secs) * 1_000_000_000)
}

/// An IPv4 or IPv6 network; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy)]
struct Cidr {
    net: IpAddr,
    bits: u32,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net = addr.parse::<IpAddr>().ok()?;
        let width = ip_bits(net).1;
        let bits = match bits {
            None => width,
            Some(b) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => {
                b.parse::<u32>().ok().filter(|&n| n <= width)?
            }
            Some(_) => return None,
        };
        Some(Cidr { net, bits })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen through an IPv6 socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (net, width) = ip_bits(self.net);
        let (addr, addr_width) = ip_bits(ip);
        if width != addr_width {
            return false;
        }
        let shift = width - self.bits;
        net.checked_shr(shift).unwrap_or(0) == addr.checked_shr(shift).unwrap_or(0)
    }
}

/// An address as an integer, and its width in bits.
fn ip_bits(ip: IpAddr) -> (u128, u32) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

// ---------------------------------------------------------------- wildcards

/// Whether `text` matches `pattern`, where `*` matches any run of characters (`/` included) and
/// `?` exactly one. Iterative backtracking to the last `*`: O(pattern × text) at worst, so a
/// hostile pattern cannot blow up.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen, and where in the text its match currently ends.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            // `?` is ASCII, so `pi` and `ti` are both at character starts here.
            Some(b'?') => {
                pi += 1;
                ti += utf8_len(t[ti]);
            }
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            // Literal bytes: equal UTF-8 sequences match byte by byte.
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    let next = st + utf8_len(t[st]);
                    star = Some((sp, next));
                    pi = sp + 1;
                    ti = next;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The length of the UTF-8 character starting with byte `b`.
fn utf8_len(b: u8) -> usize {
    match b {
        0..0xE0 => 1 + usize::from(b >= 0xC0),
        0xE0..0xF0 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "b";

    fn policy(json: &str) -> Policy {
        Policy::parse(json, B).expect("valid policy")
    }

    fn malformed_msg(json: &str) -> String {
        match Policy::parse(json, B) {
            Err(PolicyError::Malformed(m)) => m,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    /// A one-statement policy from its parts (JSON fragments).
    fn stmt(effect: &str, principal: &str, action: &str, resource: &str, cond: &str) -> String {
        let cond = match cond {
            "" => String::new(),
            c => format!(r#","Condition":{c}"#),
        };
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Principal":{principal},"Action":{action},"Resource":{resource}{cond}}}]}}"#
        )
    }

    /// Public GetObject on everything in `b`, under `cond`.
    fn get_with(cond: &str) -> Policy {
        policy(&stmt(
            "Allow",
            r#""*""#,
            r#""s3:GetObject""#,
            r#""arn:aws:s3:::b/*""#,
            cond,
        ))
    }

    fn decide_as(
        p: &Policy,
        who: Principal,
        action: &str,
        resource: &str,
        ctx: &Context,
    ) -> Decision {
        p.decide(&Request {
            principal: who,
            action,
            resource,
            context: ctx,
        })
    }

    fn anon_get(p: &Policy, ctx: &Context) -> Decision {
        decide_as(
            p,
            Principal::Anonymous,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            ctx,
        )
    }

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        let mut c = Context::default();
        for (k, v) in pairs {
            c.add(k, *v);
        }
        c
    }

    #[test]
    fn refuses_malformed_documents() {
        assert_eq!(malformed_msg("not json"), NOT_JSON);
        assert_eq!(malformed_msg("[1]"), NOT_JSON);
        let bad_version = r#"{"Version":"2020-01-01","Statement":[]}"#;
        assert_eq!(malformed_msg(bad_version), SYNTAX);
        let extra = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"},"Foo":1}"#;
        assert_eq!(malformed_msg(extra), "Unknown field Foo");
        assert_eq!(
            malformed_msg(r#"{"Version":"2012-10-17"}"#),
            "Missing required field Statement"
        );
        assert_eq!(malformed_msg(r#"{"Statement":[]}"#), SYNTAX);
        let big = format!(r#"{{"Id":"{}"}}"#, "x".repeat(MAX_POLICY_BYTES));
        assert_eq!(malformed_msg(&big), "Policies must be less than 20 KB");
    }

    #[test]
    fn refuses_malformed_statements() {
        let no_effect = r#"{"Statement":{"Principal":"*","Action":"s3:*","Resource":"*"}}"#;
        assert_eq!(malformed_msg(no_effect), "Missing required field Effect");
        let no_principal = r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#;
        assert_eq!(
            malformed_msg(no_principal),
            "Missing required field Principal"
        );
        let no_action = r#"{"Statement":{"Effect":"Allow","Principal":"*","Resource":"*"}}"#;
        assert_eq!(malformed_msg(no_action), "Missing required field Action");
        let no_resource = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*"}}"#;
        assert_eq!(
            malformed_msg(no_resource),
            "Missing required field Resource"
        );
        let both = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","NotAction":"s3:*","Resource":"*"}}"#;
        assert_eq!(malformed_msg(both), SYNTAX);
        let unknown = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Foo":1}}"#;
        assert_eq!(malformed_msg(unknown), "Unknown field Foo");
        let effect = stmt("Maybe", r#""*""#, r#""s3:*""#, r#""*""#, "");
        assert!(malformed_msg(&effect).starts_with("Invalid effect"));
    }

    #[test]
    fn refuses_foreign_actions_and_resources() {
        let ec2 = stmt(
            "Allow",
            r#""*""#,
            r#"["s3:GetObject","ec2:*"]"#,
            r#""*""#,
            "",
        );
        assert_eq!(malformed_msg(&ec2), INVALID_ACTION);
        assert_eq!(
            malformed_msg(&stmt("Allow", r#""*""#, r#""s3:""#, r#""*""#, "")),
            INVALID_ACTION
        );
        assert_eq!(
            malformed_msg(&stmt("Allow", r#""*""#, "[]", r#""*""#, "")),
            INVALID_ACTION
        );
        for r in [
            r#""arn:aws:s3:::other/*""#,
            r#""arn:aws:s3:::bb""#,
            r#""arn:aws:iam::1:root""#,
            r#""b/*""#,
        ] {
            let p = stmt("Allow", r#""*""#, r#""s3:*""#, r, "");
            assert_eq!(malformed_msg(&p), INVALID_RESOURCE, "{r}");
        }
        for r in [
            r#""arn:aws:s3:::b""#,
            r#""arn:aws:s3:::b/*""#,
            r#""arn:aws:s3:::*""#,
            r#""arn:aws:s3:::?/x""#,
        ] {
            Policy::parse(&stmt("Allow", r#""*""#, r#""s3:*""#, r, ""), B).expect(r);
        }
        let mine = Policy::parse(
            &stmt("Allow", r#""*""#, r#""s3:*""#, r#""arn:aws:s3:::my*""#, ""),
            "mybucket",
        );
        mine.expect("a pattern matching the bucket");
    }

    #[test]
    fn refuses_unknown_operators_and_bad_values() {
        let unknown = stmt(
            "Allow",
            r#""*""#,
            r#""s3:*""#,
            r#""*""#,
            r#"{"Foo":{"s3:prefix":"a"}}"#,
        );
        assert_eq!(malformed_msg(&unknown), "Invalid Condition type : Foo");
        let null_if = stmt(
            "Allow",
            r#""*""#,
            r#""s3:*""#,
            r#""*""#,
            r#"{"NullIfExists":{"k":"true"}}"#,
        );
        assert_eq!(
            malformed_msg(&null_if),
            "Invalid Condition type : NullIfExists"
        );
        for c in [
            r#"{"NumericLessThan":{"s3:max-keys":"ten"}}"#,
            r#"{"DateLessThan":{"aws:CurrentTime":"yesterday"}}"#,
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}"#,
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0"}}"#,
            r#"{"Bool":{"aws:SecureTransport":"yes"}}"#,
            r#"{"StringEquals":{"s3:prefix":[]}}"#,
            r#"{"StringEquals":{"s3:prefix":{"a":1}}}"#,
        ] {
            let p = stmt("Allow", r#""*""#, r#""s3:*""#, r#""*""#, c);
            assert!(
                matches!(Policy::parse(&p, B), Err(PolicyError::Malformed(_))),
                "{c}"
            );
        }
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        for c in [
            r#"{"StringEquals":{"s3:ExistingObjectTag/team":"x"}}"#,
            r#"{"StringEquals":{"aws:SourceVpce":"vpce-1"}}"#,
            r#"{"StringEquals":{"aws:PrincipalOrgID":"o-1"}}"#,
            r#"{"StringEquals":{"aws:RequestTag/a":"x"}}"#,
            r#"{"StringEquals":{"s3:prefix":"${aws:username}/"}}"#,
        ] {
            let p = stmt("Deny", r#""*""#, r#""s3:*""#, r#""*""#, c);
            assert!(
                matches!(Policy::parse(&p, B), Err(PolicyError::NotImplemented(_))),
                "{c}"
            );
        }
        let service = stmt(
            "Allow",
            r#"{"Service":"logging.s3.amazonaws.com"}"#,
            r#""s3:*""#,
            r#""*""#,
            "",
        );
        assert!(matches!(
            Policy::parse(&service, B),
            Err(PolicyError::NotImplemented(_))
        ));
        let var = stmt(
            "Deny",
            r#""*""#,
            r#""s3:*""#,
            r#""arn:aws:s3:::b/${aws:userid}/*""#,
            "",
        );
        assert!(matches!(
            Policy::parse(&var, B),
            Err(PolicyError::NotImplemented(_))
        ));
        // Without a Version, `${` is literal text.
        let old = r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/${x}"}}"#;
        policy(old);
    }

    #[test]
    fn enforces_limits() {
        let one = r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}"#;
        let many = vec![one; MAX_STATEMENTS + 1].join(",");
        assert!(malformed_msg(&format!(r#"{{"Statement":[{many}]}}"#)).contains("statements"));
        let actions = format!("[{}]", vec![r#""s3:GetObject""#; MAX_VALUES + 1].join(","));
        assert_eq!(
            malformed_msg(&stmt("Allow", r#""*""#, &actions, r#""*""#, "")),
            INVALID_ACTION
        );
        let keys: Vec<String> = (0..=MAX_CONDITION_KEYS)
            .map(|i| format!(r#""k{i}":"v""#))
            .collect();
        let cond = format!(r#"{{"StringEquals":{{{}}}}}"#, keys.join(","));
        let p = stmt("Allow", r#""*""#, r#""s3:*""#, r#""*""#, &cond);
        assert!(malformed_msg(&p).contains("condition keys"));
    }

    #[test]
    fn everyone_includes_anonymous() {
        let p = get_with("");
        let none = Context::default();
        assert_eq!(anon_get(&p, &none), Decision::Allow);
        assert_eq!(
            decide_as(
                &p,
                Principal::Tenant("t"),
                "s3:GetObject",
                "arn:aws:s3:::b/k",
                &none
            ),
            Decision::Allow
        );
        assert_eq!(
            decide_as(
                &p,
                Principal::Anonymous,
                "s3:PutObject",
                "arn:aws:s3:::b/k",
                &none
            ),
            Decision::Neutral
        );
        assert_eq!(
            decide_as(
                &p,
                Principal::Anonymous,
                "s3:GetObject",
                "arn:aws:s3:::b",
                &none
            ),
            Decision::Neutral
        );
        let aws_star = stmt(
            "Allow",
            r#"{"AWS":["*"]}"#,
            r#""s3:GetObject""#,
            r#""*""#,
            "",
        );
        assert_eq!(anon_get(&policy(&aws_star), &none), Decision::Allow);
    }

    #[test]
    fn deny_beats_allow() {
        let json = r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Deny","Principal":{"AWS":"t2"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/secret/*"}]}"#;
        let p = policy(json);
        let none = Context::default();
        let get = |who, key| decide_as(&p, who, "s3:GetObject", key, &none);
        assert_eq!(
            get(Principal::Tenant("t2"), "arn:aws:s3:::b/secret/x"),
            Decision::Deny
        );
        assert_eq!(
            get(Principal::Tenant("t1"), "arn:aws:s3:::b/secret/x"),
            Decision::Allow
        );
        assert_eq!(
            get(Principal::Tenant("t2"), "arn:aws:s3:::b/open"),
            Decision::Allow
        );
    }

    #[test]
    fn principals_by_id_arn_and_negation() {
        let none = Context::default();
        let arn = stmt(
            "Allow",
            r#"{"AWS":"arn:aws:iam::tenantid:root"}"#,
            r#""s3:*""#,
            r#""*""#,
            "",
        );
        let p = policy(&arn);
        let get = |who| decide_as(&p, who, "s3:GetObject", "arn:aws:s3:::b/k", &none);
        assert_eq!(get(Principal::Tenant("tenantid")), Decision::Allow);
        assert_eq!(get(Principal::Tenant("other")), Decision::Neutral);
        assert_eq!(get(Principal::Anonymous), Decision::Neutral);
        let canonical = stmt(
            "Allow",
            r#"{"CanonicalUser":["x","y"]}"#,
            r#""s3:*""#,
            r#""*""#,
            "",
        );
        let p = policy(&canonical);
        assert_eq!(
            decide_as(
                &p,
                Principal::Tenant("y"),
                "s3:GetObject",
                "arn:aws:s3:::b",
                &none
            ),
            Decision::Allow
        );
        let user = stmt(
            "Allow",
            r#"{"AWS":"arn:aws:iam::t1:user/alice"}"#,
            r#""s3:*""#,
            r#""*""#,
            "",
        );
        assert_eq!(
            decide_as(
                &policy(&user),
                Principal::Tenant("t1"),
                "s3:GetObject",
                "arn:aws:s3:::b",
                &none
            ),
            Decision::Allow
        );
        let sts = stmt(
            "Allow",
            r#"{"AWS":"arn:aws:sts::t1:assumed-role/r"}"#,
            r#""s3:*""#,
            r#""*""#,
            "",
        );
        assert_eq!(malformed_msg(&sts), INVALID_PRINCIPAL);
        let not = r#"{"Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"admin"},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/*"}}"#;
        let p = policy(not);
        let del = |who| decide_as(&p, who, "s3:DeleteObject", "arn:aws:s3:::b/k", &none);
        assert_eq!(del(Principal::Tenant("admin")), Decision::Neutral);
        assert_eq!(del(Principal::Tenant("t1")), Decision::Deny);
        assert_eq!(del(Principal::Anonymous), Decision::Deny);
    }

    #[test]
    fn not_action_and_not_resource() {
        let json = r#"{"Statement":{"Effect":"Deny","Principal":"*","NotAction":["s3:Get*","s3:List*"],"NotResource":"arn:aws:s3:::b/tmp/*"}}"#;
        let p = policy(json);
        let none = Context::default();
        let run = |action, key| decide_as(&p, Principal::Tenant("t"), action, key, &none);
        assert_eq!(run("s3:PutObject", "arn:aws:s3:::b/k"), Decision::Deny);
        assert_eq!(run("s3:GetObject", "arn:aws:s3:::b/k"), Decision::Neutral);
        assert_eq!(
            run("s3:PutObject", "arn:aws:s3:::b/tmp/k"),
            Decision::Neutral
        );
    }

    #[test]
    fn wildcard_actions_and_resources() {
        let p = policy(&stmt(
            "Allow",
            r#""*""#,
            r#""S3:get*""#,
            r#""arn:aws:s3:::b/public/*""#,
            "",
        ));
        let none = Context::default();
        let run = |action, res| decide_as(&p, Principal::Anonymous, action, res, &none);
        assert_eq!(
            run("s3:GetObject", "arn:aws:s3:::b/public/a/b.txt"),
            Decision::Allow
        );
        assert_eq!(
            run("s3:GETOBJECTACL", "arn:aws:s3:::b/public/x"),
            Decision::Allow
        );
        assert_eq!(
            run("s3:PutObject", "arn:aws:s3:::b/public/x"),
            Decision::Neutral
        );
        assert_eq!(
            run("s3:GetObject", "arn:aws:s3:::b/Public/x"),
            Decision::Neutral
        );
        assert_eq!(
            run("s3:GetObject", "arn:aws:s3:::b/private/x"),
            Decision::Neutral
        );
    }

    #[test]
    fn wildcard_matcher() {
        assert!(wildcard("*", ""));
        assert!(wildcard("a*c", "abbbc"));
        assert!(wildcard("a?c", "abc"));
        assert!(wildcard("a?c", "aéc"));
        assert!(wildcard("é*", "éa/b"));
        assert!(!wildcard("a?c", "ac"));
        assert!(!wildcard("a*d", "abc"));
        assert!(wildcard("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!wildcard("abc", "abcd"));
        // The exponential case for naive recursion stays fast.
        let text = "a".repeat(5000);
        assert!(!wildcard(&format!("{}b", "*a".repeat(200)), &text));
    }

    #[test]
    fn string_like_on_prefix() {
        let p = policy(&stmt(
            "Allow",
            r#""*""#,
            r#""s3:ListBucket""#,
            r#""arn:aws:s3:::b""#,
            r#"{"StringLike":{"s3:prefix":["home/*","shared/?"]}}"#,
        ));
        let list = |ctx: &Context| {
            decide_as(
                &p,
                Principal::Anonymous,
                "s3:ListBucket",
                "arn:aws:s3:::b",
                ctx,
            )
        };
        assert_eq!(list(&ctx(&[("s3:prefix", "home/alice/")])), Decision::Allow);
        assert_eq!(list(&ctx(&[("S3:Prefix", "shared/x")])), Decision::Allow);
        assert_eq!(list(&ctx(&[("s3:prefix", "shared/xy")])), Decision::Neutral);
        assert_eq!(list(&ctx(&[("s3:prefix", "Home/a")])), Decision::Neutral);
        assert_eq!(list(&Context::default()), Decision::Neutral);
    }

    #[test]
    fn absent_keys() {
        let none = Context::default();
        let eq = get_with(r#"{"StringEquals":{"s3:x-amz-acl":"private"}}"#);
        assert_eq!(anon_get(&eq, &none), Decision::Neutral);
        let ne = get_with(r#"{"StringNotEquals":{"s3:x-amz-acl":"private"}}"#);
        assert_eq!(anon_get(&ne, &none), Decision::Allow);
        assert_eq!(
            anon_get(&ne, &ctx(&[("s3:x-amz-acl", "private")])),
            Decision::Neutral
        );
        assert_eq!(
            anon_get(&ne, &ctx(&[("s3:x-amz-acl", "public-read")])),
            Decision::Allow
        );
        let if_exists = get_with(r#"{"StringEqualsIfExists":{"s3:x-amz-acl":"private"}}"#);
        assert_eq!(anon_get(&if_exists, &none), Decision::Allow);
        assert_eq!(
            anon_get(&if_exists, &ctx(&[("s3:x-amz-acl", "public-read")])),
            Decision::Neutral
        );
        let ignore_case = get_with(r#"{"StringEqualsIgnoreCase":{"s3:x-amz-acl":"PRIVATE"}}"#);
        assert_eq!(
            anon_get(&ignore_case, &ctx(&[("s3:x-amz-acl", "Private")])),
            Decision::Allow
        );
    }

    #[test]
    fn null_operator() {
        let absent = get_with(r#"{"Null":{"s3:x-amz-server-side-encryption":"true"}}"#);
        let present = get_with(r#"{"Null":{"s3:x-amz-server-side-encryption":false}}"#);
        let none = Context::default();
        let sse = ctx(&[("s3:x-amz-server-side-encryption", "AES256")]);
        assert_eq!(anon_get(&absent, &none), Decision::Allow);
        assert_eq!(anon_get(&absent, &sse), Decision::Neutral);
        assert_eq!(anon_get(&present, &none), Decision::Neutral);
        assert_eq!(anon_get(&present, &sse), Decision::Allow);
    }

    #[test]
    fn numeric_and_date() {
        let p = policy(&stmt(
            "Allow",
            r#""*""#,
            r#""s3:ListBucket""#,
            r#""arn:aws:s3:::b""#,
            r#"{"NumericLessThan":{"s3:max-keys":100}}"#,
        ));
        let list = |ctx: &Context| {
            decide_as(
                &p,
                Principal::Anonymous,
                "s3:ListBucket",
                "arn:aws:s3:::b",
                ctx,
            )
        };
        assert_eq!(list(&ctx(&[("s3:max-keys", "10")])), Decision::Allow);
        assert_eq!(list(&ctx(&[("s3:max-keys", "100")])), Decision::Neutral);
        assert_eq!(list(&ctx(&[("s3:max-keys", "lots")])), Decision::Neutral);
        assert_eq!(list(&Context::default()), Decision::Neutral);
        let date = get_with(r#"{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"#);
        assert_eq!(
            anon_get(&date, &ctx(&[("aws:CurrentTime", "2029-12-31T23:59:59Z")])),
            Decision::Allow
        );
        assert_eq!(
            anon_get(&date, &ctx(&[("aws:CurrentTime", "1800000000")])),
            Decision::Allow
        );
        assert_eq!(
            anon_get(
                &date,
                &ctx(&[("aws:CurrentTime", "2030-01-01T01:00:00+02:00")])
            ),
            Decision::Allow
        );
        assert_eq!(
            anon_get(&date, &ctx(&[("aws:CurrentTime", "2030-01-01T00:00:00Z")])),
            Decision::Neutral
        );
        let epoch = get_with(r#"{"DateGreaterThan":{"aws:EpochTime":1000}}"#);
        assert_eq!(
            anon_get(&epoch, &ctx(&[("aws:EpochTime", "1001")])),
            Decision::Allow
        );
    }

    #[test]
    fn ip_addresses() {
        let v4 = get_with(r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.1.1"]}}"#);
        let ip = |p: &Policy, a: &str| anon_get(p, &ctx(&[("aws:SourceIp", a)]));
        assert_eq!(ip(&v4, "10.1.2.3"), Decision::Allow);
        assert_eq!(ip(&v4, "::ffff:10.1.2.3"), Decision::Allow);
        assert_eq!(ip(&v4, "192.168.1.1"), Decision::Allow);
        assert_eq!(ip(&v4, "192.168.1.2"), Decision::Neutral);
        assert_eq!(ip(&v4, "11.0.0.1"), Decision::Neutral);
        assert_eq!(ip(&v4, "2001:db8::1"), Decision::Neutral);
        let v6 = get_with(r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#);
        assert_eq!(ip(&v6, "2001:db8:1::5"), Decision::Allow);
        assert_eq!(ip(&v6, "2001:db9::1"), Decision::Neutral);
        assert_eq!(ip(&v6, "10.0.0.1"), Decision::Neutral);
        let all = get_with(r#"{"IpAddress":{"aws:SourceIp":"::/0"}}"#);
        assert_eq!(ip(&all, "2001:db8::1"), Decision::Allow);
        let not = get_with(r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#);
        assert_eq!(ip(&not, "10.0.0.1"), Decision::Neutral);
        assert_eq!(ip(&not, "8.8.8.8"), Decision::Allow);
        assert_eq!(ip(&not, "garbage"), Decision::Neutral);
    }

    #[test]
    fn bool_secure_transport() {
        let deny = r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
        let p = policy(deny);
        assert_eq!(
            anon_get(&p, &ctx(&[("aws:SecureTransport", "false")])),
            Decision::Deny
        );
        assert_eq!(
            anon_get(&p, &ctx(&[("aws:SecureTransport", "TRUE")])),
            Decision::Allow
        );
        let only_tls = get_with(r#"{"Bool":{"aws:SecureTransport":true}}"#);
        assert_eq!(
            anon_get(&only_tls, &ctx(&[("aws:SecureTransport", "true")])),
            Decision::Allow
        );
        assert_eq!(anon_get(&only_tls, &Context::default()), Decision::Neutral);
    }

    #[test]
    fn set_operators() {
        let all = get_with(r#"{"ForAllValues:StringEquals":{"k":["a","b"]}}"#);
        let any = get_with(r#"{"ForAnyValue:StringEquals":{"k":["a","b"]}}"#);
        let plain = get_with(r#"{"StringEquals":{"k":["a","b"]}}"#);
        let none = Context::default();
        let ab = ctx(&[("k", "a"), ("k", "b")]);
        let ac = ctx(&[("k", "a"), ("k", "c")]);
        let c = ctx(&[("k", "c")]);
        assert_eq!(anon_get(&all, &ab), Decision::Allow);
        assert_eq!(anon_get(&all, &ac), Decision::Neutral);
        assert_eq!(anon_get(&all, &none), Decision::Allow);
        assert_eq!(anon_get(&any, &ac), Decision::Allow);
        assert_eq!(anon_get(&any, &c), Decision::Neutral);
        assert_eq!(anon_get(&any, &none), Decision::Neutral);
        assert_eq!(anon_get(&plain, &ac), Decision::Allow);
        let mut reset = ac.clone();
        reset.set("K", "c");
        assert_eq!(reset.get("k"), Some(&["c".to_owned()][..]));
        assert_eq!(anon_get(&plain, &reset), Decision::Neutral);
        // Several operators and keys must all hold.
        let both = get_with(r#"{"StringEquals":{"k":"a","j":"x"},"StringLike":{"p":"q*"}}"#);
        assert_eq!(
            anon_get(&both, &ctx(&[("k", "a"), ("j", "x"), ("p", "qq")])),
            Decision::Allow
        );
        assert_eq!(
            anon_get(&both, &ctx(&[("k", "a"), ("j", "x"), ("p", "z")])),
            Decision::Neutral
        );
    }

    #[test]
    fn public_policies() {
        assert!(get_with("").is_public());
        assert!(!get_with(r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#).is_public());
        assert!(get_with(r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#).is_public());
        assert!(!get_with(r#"{"StringEquals":{"aws:SourceAccount":"123"}}"#).is_public());
        assert!(get_with(r#"{"StringLike":{"aws:SourceArn":"*"}}"#).is_public());
        assert!(get_with(r#"{"StringEquals":{"s3:prefix":"a"}}"#).is_public());
        let deny = stmt("Deny", r#""*""#, r#""s3:*""#, r#""*""#, "");
        assert!(!policy(&deny).is_public());
        let tenant = stmt("Allow", r#"{"AWS":"t1"}"#, r#""s3:*""#, r#""*""#, "");
        assert!(!policy(&tenant).is_public());
    }
}
