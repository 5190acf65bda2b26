#!/usr/bin/env python3
"""Offline checks of everything under deploy/; run by deploy/validate.sh, which renders the
kustomize overlays first and provides kubernetes-validate (and promql-parser) in a venv.

    validate.py REPO_ROOT RENDER_DIR

RENDER_DIR holds base.yaml, single.yaml and production.yaml (`kubectl kustomize` output).
Prints one line per check; exits 1 if any check failed.

What is checked:
  * built-in kinds against the Kubernetes OpenAPI schemas (strict: unknown fields fail), for the
    oldest and newest Kubernetes versions in K8S_VERSIONS;
  * the custom resources (CloudNativePG Cluster, ScheduledBackup, Barman Cloud ObjectStore,
    ServiceMonitor, PrometheusRule) against the hand-written schemas below: kubernetes-validate
    has no schemas for CRDs, so these cover the fields the manifests use, with their types;
  * references inside each overlay: volumes, ConfigMaps, Secrets, ServiceAccount, Service
    selectors and ports, PodDisruptionBudget and ServiceMonitor selectors, StorageClasses;
  * the gateway's settings: every JUST_STORAGE_* name exists in src/config.rs, the listen
    address, the tier directories and the SQLite file are on the mounted volumes, probes;
  * PromQL of every alert and dashboard query parses; every metric it names is a series that
    src/metrics.rs exports (names derived from its prometheus-client registrations: prefix,
    `_total` for counters, `_bucket`/`_sum`/`_count` for histograms); the labels it matches on,
    groups by or shows in a legend are labels of those metrics (or target labels), and a label
    that is a number in src/ (the status code) is not matched against a word (`"5xx"`);
  * the Grafana dashboard, the compose file and the Dockerfile (statically: no engine needed).
"""

import json
import os
import re
import sys

import yaml

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

ROOT = os.path.abspath(sys.argv[1])
RENDER = os.path.abspath(sys.argv[2])
DEPLOY = os.path.join(ROOT, "deploy")
K8S_VERSIONS = ["1.30.0", "1.37.0"]

# Metrics from outside the gateway.
EXTERNAL_METRICS = {
    "up",
    "kubelet_volume_stats_available_bytes",
    "kubelet_volume_stats_capacity_bytes",
}
# Labels Prometheus adds to every scraped series (the Prometheus operator's target labels).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}
# Secrets the overlays reference but do not contain: who creates them.
EXTERNAL_SECRETS = {
    "juststorage-root": "the operator (deploy/README.md), example in root-credentials.example.yaml",
    "juststorage-metrics-token": "the operator (deploy/README.md, Monitoring), when the ServiceMonitor sends a token",
}

failures = []
notes = []


VERBOSE = os.environ.get("JS_DEPLOY_VERBOSE") == "1"
passed = [0]


def ok(msg):
    passed[0] += 1
    if VERBOSE:
        print(f"  ok    {msg}")


def fail(msg):
    failures.append(msg)
    print(f"  FAIL  {msg}")


def note(msg):
    notes.append(msg)
    print(f"  note  {msg}")


def check(cond, msg):
    (ok if cond else fail)(msg)
    return cond


def rel(path):
    return os.path.relpath(path, ROOT)


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def kn(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# ------------------------------------------------------------------------- gateway facts
def gateway_env_names():
    """Every JUST_STORAGE_* variable the gateway reads (clap `env = "…"` in src/config.rs)."""
    text = open(os.path.join(ROOT, "src", "config.rs")).read()
    return set(re.findall(r'env\s*=\s*"(JUST_STORAGE_[A-Z0-9_]+)"', text))


# The exposition is written by the `prometheus-client` crate: a registry made with
# `Registry::with_prefix("juststorage")` gets `r.register("requests", help, metric)` calls, and
# the encoder writes `juststorage_requests_total` for a Counter, `juststorage_<name>` for a Gauge,
# and `juststorage_<name>_bucket` / `_sum` / `_count` for a Histogram. The full names are derived
# here from the Rust source: each registered name, the type of the value registered (through
# `static`, `let`, struct fields, `type` aliases and `Family<Labels, Metric>`), and the fields of
# the label struct. A registration this cannot resolve is a failure, never a silent pass.
SERIES_SUFFIXES = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count")}
METRIC_KINDS = set(SERIES_SUFFIXES)


def strip_rust_comments(text):
    """`text` without // and /* */ comments (string and char literals kept as they are)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif c == "'" and (m := re.match(r"'(\\.|[^\\'])'", text[i:i + 4])):  # a char literal
            out.append(m.group(0))
            i += len(m.group(0))
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def split_top(s, sep=","):
    """`s` split at `sep` outside (), [], {}, <> and string literals."""
    parts, depth, cur, i = [], 0, "", 0
    while i < len(s):
        c = s[i]
        if c == '"':
            j = i + 1
            while j < len(s) and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            cur += s[i:j + 1]
            i = j + 1
            continue
        if c in "([{<":
            depth += 1
        elif c in ")]}>" and not (c == ">" and i > 0 and s[i - 1] == "-"):  # `->` is no bracket
            depth -= 1
        if c == sep and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    if cur.strip():
        parts.append(cur.strip())
    return parts


def balanced(text, start, open_="(", close=")"):
    """The text between text[start] (== open_) and its matching close."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == open_:
            depth += 1
        elif c == close and not (c == ">" and i > 0 and text[i - 1] == "-"):  # `->` is no bracket
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
        i += 1
    raise ValueError(f"unbalanced {open_}{close}")


def rust_metrics(path):
    """({series name: {"family", "kind", "labels": {label: rust type}}}, [problems]) of the
    metrics one prometheus-client file registers."""
    text = strip_rust_comments(open(path).read())
    where = rel(path)
    problems = []
    # type aliases: `type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;`
    aliases = {}
    for m in re.finditer(r"\btype\s+(\w+)\s*(?:<([^>=]*)>)?\s*=\s*([^;]+);", text):
        aliases[m.group(1)] = ([p.strip() for p in (m.group(2) or "").split(",") if p.strip()], m.group(3).strip())
    # structs: their fields, and which of them are label sets
    structs, label_structs = {}, set()
    for m in re.finditer(r"(#\[derive\(([^)]*)\)\]\s*)?(?:pub(?:\([^)]*\))?\s+)?struct\s+(\w+)\s*\{", text):
        body = balanced(text, m.end() - 1, "{", "}")
        fields = {}
        for f in split_top(body):
            fm = re.match(r"(?:pub(?:\([^)]*\))?\s+)?(\w+)\s*:\s*(.+)$", f.strip(), re.S)
            if fm:
                fields[fm.group(1)] = " ".join(fm.group(2).split())
        structs[m.group(3)] = fields
        if m.group(2) and "EncodeLabelSet" in m.group(2):
            label_structs.add(m.group(3))
    # what each name is declared as: statics, lets, struct fields
    decls = {}
    for m in re.finditer(r"\bstatic\s+(\w+)\s*:\s*", text):
        decls.setdefault(m.group(1), []).append(text[m.end():text.index("=", m.end())].strip())
    for m in re.finditer(r"\blet\s+(?:mut\s+)?(\w+)\s*(?::\s*([^=]+?))?\s*=\s*", text):
        decls.setdefault(m.group(1), []).append((m.group(2) or text[m.end():text.index(";", m.end())]).strip())
    for fields in structs.values():
        for f, t in fields.items():
            decls.setdefault(f, []).append(t)

    def generic(t):
        """`Name<args>` or `Name::<args>…` -> (Name, [args]); `Name` -> (Name, [])."""
        t = t.strip().lstrip("&").strip()
        m = re.match(r"([A-Za-z_][\w:]*?)\s*(?:::)?\s*(<|$|::|\(|\s)", t)
        if not m:
            return None, []
        name = m.group(1).split("::")[-1]
        lt = t.find("<", m.start(1))
        if lt >= 0 and re.fullmatch(r"\s*(::)?\s*", t[m.end(1):lt]):
            return name, split_top(balanced(t, lt, "<", ">"))
        return name, []

    def metric_of(t, depth=0):
        """(kind, label struct or None) of a type (or constructor expression) text."""
        if depth > 8:
            return None
        name, args = generic(t)
        if name in ("LazyLock", "Arc", "Box") and args:
            return metric_of(args[0], depth + 1)
        if name in aliases:
            params, body = aliases[name]
            for p, a in zip(params, args):
                body = re.sub(rf"\b{re.escape(p)}\b", a, body)
            return metric_of(body, depth + 1)
        if name == "Family" and len(args) >= 2:
            inner = metric_of(args[1], depth + 1)
            return (inner[0], generic(args[0])[0]) if inner else None
        if name in METRIC_KINDS:
            return name, None
        return None

    def resolve(ident):
        found = {r for t in decls.get(ident, []) if (r := metric_of(t))}
        return found.pop() if len(found) == 1 else None

    prefixes = set(re.findall(r'Registry::with_prefix\(\s*"([^"]*)"\s*\)', text))
    if re.search(r"Registry::(default|new)\s*\(", text):
        prefixes.add("")
    if re.search(r"\bsub_registry", text):
        problems.append(f"{where}: sub-registries are not understood by validate.py")
    if len(prefixes) != 1:
        problems.append(f"{where}: registries with {len(prefixes)} different prefixes ({sorted(prefixes)}): "
                        "validate.py cannot tell which metric gets which")
        return {}, problems
    prefix = prefixes.pop()
    prefix = prefix + "_" if prefix else ""

    registered = []  # (name, kind, label struct)
    for m in re.finditer(r"\.register(_with_unit)?\s*\(", text):
        if m.group(1):
            problems.append(f"{where}: register_with_unit (a unit suffix) is not understood by validate.py")
            continue
        args = split_top(balanced(text, m.end() - 1))
        if len(args) < 3:
            problems.append(f"{where}: register({', '.join(args)}) has fewer than 3 arguments")
            continue
        name_arg, value = args[0], args[2]
        lit = re.fullmatch(r'"([a-zA-Z_:][a-zA-Z0-9_:]*)"', name_arg)
        if lit:
            ident = re.findall(r"[A-Za-z_]\w*", re.sub(r"\.clone\(\)|\bclone\b", "", value))
            r = resolve(ident[-1]) if ident else None
            if r is None:
                problems.append(f"{where}: cannot tell the metric type of `{value}` (registered as {lit.group(1)})")
                continue
            registered.append((lit.group(1), *r))
            continue
        # A name from a loop: `for (name, help, c) in counters { r.register(name, help, …) }` over
        # `let counters: [(&str, &str, &Counter); N] = [("…", "…", &X), …];`
        loop = None
        for lm in re.finditer(r"\bfor\s*\(([^)]*)\)\s*in\s*&?(\w+)", text[:m.start()]):
            if name_arg in [v.strip() for v in lm.group(1).split(",")]:
                loop = lm
        if loop is None:
            problems.append(f"{where}: register({name_arg}, …): not a string literal nor a loop variable")
            continue
        loop_vars = [v.strip() for v in loop.group(1).split(",")]
        pos = loop_vars.index(name_arg)
        am = re.search(rf"\blet\s+{loop.group(2)}\s*:\s*\[\s*\(([^\]]*)\)\s*;\s*\d+\s*\]\s*=\s*\[", text)
        if am is None:
            problems.append(f"{where}: register({name_arg}, …) loops over `{loop.group(2)}`, "
                            "which has no `[(…); N]` type annotation")
            continue
        elem = split_top(am.group(1))
        value_ident = re.findall(r"[A-Za-z_]\w*", value.replace(".clone()", ""))
        vpos = loop_vars.index(value_ident[0]) if value_ident and value_ident[0] in loop_vars else None
        r = metric_of(elem[vpos]) if vpos is not None and vpos < len(elem) else None
        if r is None:
            problems.append(f"{where}: cannot tell the metric type of `{value}` in the loop over {loop.group(2)}")
            continue
        for it in split_top(balanced(text, am.end() - 1, "[", "]")):
            fields = split_top(balanced(it, 0)) if it.startswith("(") else []
            lit = re.fullmatch(r'"([a-zA-Z_:][a-zA-Z0-9_:]*)"', fields[pos]) if len(fields) > pos else None
            if lit is None:
                problems.append(f"{where}: an element of {loop.group(2)} has no literal name: {it[:60]}")
                continue
            registered.append((lit.group(1), *r))

    exported = {}
    for name, kind, labels_of in registered:
        labels = dict(structs.get(labels_of, {})) if labels_of else {}
        if labels_of and labels_of not in label_structs:
            problems.append(f"{where}: {name}: label struct {labels_of} not found (or not EncodeLabelSet)")
        family = prefix + name
        for suffix in SERIES_SUFFIXES[kind]:
            series_labels = dict(labels, le="f64") if suffix == "_bucket" else labels
            series = family + suffix
            if series in exported:
                problems.append(f"{where}: {series} is registered twice")
            exported[series] = {"family": family, "kind": kind, "labels": series_labels}
    return exported, problems


def exported_metrics():
    """Every series name the gateway exports (files of src/ that use prometheus_client)."""
    exported, problems = {}, []
    for d, _, files in os.walk(os.path.join(ROOT, "src")):
        for f in sorted(files):
            path = os.path.join(d, f)
            if f.endswith(".rs") and "prometheus_client" in open(path).read():
                e, p = rust_metrics(path)
                exported.update(e)
                problems += p
    if not exported:
        problems.append("no metric registrations found in src/ (prometheus_client): the extraction in validate.py is broken")
    return exported, problems


ENV_NAMES = gateway_env_names()
EXPORTED, EXPORT_PROBLEMS = exported_metrics()


def metric_known(name):
    """`name` is a series the gateway exports, exactly (`juststorage_requests_total`, a histogram's
    `…_bucket`), or one of the external metrics."""
    return name in EXPORTED or name in EXTERNAL_METRICS

# ------------------------------------------------------------------------- CRD schemas
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|M|G|T|P)?$"
STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                   "namespace": {"type": "string"}, "labels": STR_MAP, "annotations": STR_MAP},
}
SECRET_KEY_SELECTOR = {
    "type": "object", "required": ["name", "key"], "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
}
RESOURCES = {
    "type": "object", "additionalProperties": False,
    "properties": {k: {"type": "object", "additionalProperties": {"type": "string", "pattern": QUANTITY}}
                   for k in ("requests", "limits")},
}


def crd(spec_schema, spec_required=True):
    s = {"type": "object", "required": ["apiVersion", "kind", "metadata"] + (["spec"] if spec_required else []),
         "additionalProperties": False,
         "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                        "metadata": META, "spec": spec_schema}}
    return s


CNPG_CLUSTER = crd({
    "type": "object", "required": ["instances", "storage"],
    # Top-level fields of the Cluster spec (postgresql.cnpg.io/v1); unknown ones fail.
    "additionalProperties": False,
    "properties": {
        "instances": {"type": "integer", "minimum": 1},
        "imageName": {"type": "string"},
        "description": {"type": "string"},
        "primaryUpdateStrategy": {"enum": ["supervised", "unsupervised"]},
        "primaryUpdateMethod": {"enum": ["switchover", "restart"]},
        "enableSuperuserAccess": {"type": "boolean"},
        "enablePDB": {"type": "boolean"},
        "minSyncReplicas": {"type": "integer"}, "maxSyncReplicas": {"type": "integer"},
        "logLevel": {"enum": ["error", "warning", "info", "debug", "trace"]},
        "bootstrap": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "initdb": {"type": "object",
                           "properties": {"database": {"type": "string"}, "owner": {"type": "string"},
                                          "secret": {"type": "object", "required": ["name"]},
                                          "encoding": {"type": "string"}, "localeCollate": {"type": "string"},
                                          "localeCType": {"type": "string"}, "dataChecksums": {"type": "boolean"},
                                          "postInitSQL": {"type": "array", "items": {"type": "string"}}},
                           "additionalProperties": False},
                "recovery": {"type": "object"}, "pg_basebackup": {"type": "object"},
            },
        },
        "postgresql": {
            "type": "object", "additionalProperties": False,
            "properties": {
                # map[string]string in the CRD: an unquoted number is refused by the API server.
                "parameters": STR_MAP,
                "pg_hba": {"type": "array", "items": {"type": "string"}},
                "shared_preload_libraries": {"type": "array", "items": {"type": "string"}},
                "synchronous": {"type": "object"}, "ldap": {"type": "object"},
            },
        },
        "storage": {
            "type": "object", "required": ["size"], "additionalProperties": False,
            "properties": {"size": {"type": "string", "pattern": QUANTITY},
                           "storageClass": {"type": "string"},
                           "resizeInUseVolumes": {"type": "boolean"},
                           "pvcTemplate": {"type": "object"}},
        },
        "walStorage": {"type": "object"},
        "affinity": {
            "type": "object", "additionalProperties": False,
            "properties": {"enablePodAntiAffinity": {"type": "boolean"},
                           "topologyKey": {"type": "string"},
                           "podAntiAffinityType": {"enum": ["preferred", "required"]},
                           "nodeSelector": STR_MAP, "tolerations": {"type": "array"},
                           "nodeAffinity": {"type": "object"},
                           "additionalPodAffinity": {"type": "object"},
                           "additionalPodAntiAffinity": {"type": "object"}},
        },
        "resources": RESOURCES,
        "plugins": {"type": "array", "items": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}, "enabled": {"type": "boolean"},
                           "isWALArchiver": {"type": "boolean"}, "parameters": STR_MAP}}},
        "backup": {"type": "object"}, "monitoring": {"type": "object"},
        "superuserSecret": {"type": "object"}, "inheritedMetadata": {"type": "object"},
        "managed": {"type": "object"}, "topologySpreadConstraints": {"type": "array"},
        "priorityClassName": {"type": "string"}, "startDelay": {"type": "integer"},
        "stopDelay": {"type": "integer"}, "switchoverDelay": {"type": "integer"},
        "failoverDelay": {"type": "integer"}, "smartShutdownTimeout": {"type": "integer"},
        "env": {"type": "array"}, "envFrom": {"type": "array"}, "certificates": {"type": "object"},
        "replica": {"type": "object"}, "externalClusters": {"type": "array"},
        "serviceAccountTemplate": {"type": "object"}, "tablespaces": {"type": "array"},
        "probes": {"type": "object"}, "imagePullSecrets": {"type": "array"},
        "imageCatalogRef": {"type": "object"}, "projectedVolumeTemplate": {"type": "object"},
        "ephemeralVolumesSizeLimit": {"type": "object"}, "seccompProfile": {"type": "object"},
        "nodeMaintenanceWindow": {"type": "object"}, "postgresUID": {"type": "integer"},
        "postgresGID": {"type": "integer"},
    },
})

CNPG_SCHEDULED_BACKUP = crd({
    "type": "object", "required": ["schedule", "cluster"], "additionalProperties": False,
    "properties": {
        # Six fields: CloudNativePG's cron has seconds first.
        "schedule": {"type": "string", "pattern": r"^\S+( \S+){5}$"},
        "cluster": {"type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {"name": {"type": "string"}}},
        "method": {"enum": ["barmanObjectStore", "volumeSnapshot", "plugin"]},
        "backupOwnerReference": {"enum": ["none", "self", "cluster"]},
        "immediate": {"type": "boolean"}, "suspend": {"type": "boolean"},
        "online": {"type": "boolean"}, "target": {"enum": ["primary", "prefer-standby"]},
        "pluginConfiguration": {"type": "object", "required": ["name"],
                                "properties": {"name": {"type": "string"}, "parameters": STR_MAP}},
    },
})

BARMAN_OBJECT_STORE = crd({
    "type": "object", "required": ["configuration"], "additionalProperties": False,
    "properties": {
        "retentionPolicy": {"type": "string", "pattern": r"^[1-9][0-9]*[dwm]$"},
        "instanceSidecarConfiguration": {"type": "object"},
        "configuration": {
            "type": "object", "required": ["destinationPath"], "additionalProperties": False,
            "properties": {
                "destinationPath": {"type": "string", "pattern": r"^(s3|gs|https?)://"},
                "endpointURL": {"type": "string"}, "endpointCA": {"type": "object"},
                "serverName": {"type": "string"},
                "s3Credentials": {"type": "object", "additionalProperties": False,
                                  "properties": {"accessKeyId": SECRET_KEY_SELECTOR,
                                                 "secretAccessKey": SECRET_KEY_SELECTOR,
                                                 "region": SECRET_KEY_SELECTOR,
                                                 "sessionToken": SECRET_KEY_SELECTOR,
                                                 "inheritFromIAMRole": {"type": "boolean"}}},
                "azureCredentials": {"type": "object"}, "googleCredentials": {"type": "object"},
                "wal": {"type": "object", "properties": {
                    "compression": {"enum": ["bzip2", "gzip", "lz4", "snappy", "xz", "zstd"]},
                    "maxParallel": {"type": "integer"}}},
                "data": {"type": "object"}, "tags": STR_MAP, "historyTags": STR_MAP,
            },
        },
    },
})

SERVICE_MONITOR = crd({
    "type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
    "properties": {
        "selector": {"type": "object", "additionalProperties": False,
                     "properties": {"matchLabels": STR_MAP, "matchExpressions": {"type": "array"}}},
        "namespaceSelector": {"type": "object"}, "jobLabel": {"type": "string"},
        "targetLabels": {"type": "array"}, "podTargetLabels": {"type": "array"},
        "sampleLimit": {"type": "integer"},
        "endpoints": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "port": {"type": "string"}, "targetPort": {"type": ["string", "integer"]},
                "path": {"type": "string", "pattern": "^/"},
                "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                "interval": {"type": "string", "pattern": DURATION},
                "scrapeTimeout": {"type": "string", "pattern": DURATION},
                "honorLabels": {"type": "boolean"}, "honorTimestamps": {"type": "boolean"},
                "relabelings": {"type": "array"}, "metricRelabelings": {"type": "array"},
                "tlsConfig": {"type": "object"}, "params": {"type": "object"},
                # A bearer token from a Secret: a `metrics` token adds the per-tenant gauges.
                "authorization": {"type": "object", "additionalProperties": False, "properties": {
                    "type": {"type": "string"},
                    "credentials": {"type": "object", "required": ["key"], "additionalProperties": False,
                                    "properties": {"name": {"type": "string"}, "key": {"type": "string"},
                                                   "optional": {"type": "boolean"}}}}},
            }}},
    },
})

PROMETHEUS_RULE = crd({
    "type": "object", "required": ["groups"], "additionalProperties": False,
    "properties": {"groups": {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["name", "rules"], "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "interval": {"type": "string", "pattern": DURATION},
            "query_offset": {"type": "string", "pattern": DURATION},
            "limit": {"type": "integer"}, "labels": STR_MAP,
            "partial_response_strategy": {"type": "string"},
            "rules": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["expr"], "additionalProperties": False,
                "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                "properties": {
                    "alert": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                    "record": {"type": "string"},
                    "expr": {"type": ["string", "integer"]},
                    "for": {"type": "string", "pattern": DURATION},
                    "keep_firing_for": {"type": "string", "pattern": DURATION},
                    "labels": STR_MAP, "annotations": STR_MAP,
                }}},
        }}}},
})

CRD_SCHEMAS = {
    ("postgresql.cnpg.io/v1", "Cluster"): CNPG_CLUSTER,
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): CNPG_SCHEDULED_BACKUP,
    ("barmancloud.cnpg.io/v1", "ObjectStore"): BARMAN_OBJECT_STORE,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
}


# ------------------------------------------------------------------------- schema validation
def validate_schemas(label, docs):
    import jsonschema
    import kubernetes_validate

    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in CRD_SCHEMAS:
            errs = sorted(jsonschema.Draft7Validator(CRD_SCHEMAS[key]).iter_errors(doc),
                          key=lambda e: list(e.absolute_path))
            if errs:
                for e in errs:
                    fail(f"{label}: {kn(doc)}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}")
            else:
                ok(f"{label}: {kn(doc)} matches the structural schema of {key[0]} {key[1]} (CRD: not in kubernetes-validate)")
            continue
        bad = False
        for v in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, v, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                fail(f"{label}: {kn(doc)}: no schema for {key[0]} {key[1]} in Kubernetes {v} and no CRD schema here")
                bad = True
                break
            except kubernetes_validate.ValidationError as e:
                path = ".".join(map(str, e.path)) if getattr(e, "path", None) else ""
                fail(f"{label}: {kn(doc)}: Kubernetes {v}: {path}: {e.message}")
                bad = True
        if not bad:
            ok(f"{label}: {kn(doc)} valid against Kubernetes {' and '.join(K8S_VERSIONS)} (strict)")


# ------------------------------------------------------------------------- references
def selector_matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_references(label, docs):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    cms = by_kind.get("ConfigMap", {})
    secrets = set(by_kind.get("Secret", {}))
    clusters = by_kind.get("Cluster", {})
    generated_secrets = {f"{n}-app": "CloudNativePG (Cluster/" + n + ")" for n in clusters}
    storage_classes = set(by_kind.get("StorageClass", {}))
    pvcs = by_kind.get("PersistentVolumeClaim", {})
    services = by_kind.get("Service", {})
    workloads = list(by_kind.get("StatefulSet", {}).values()) + list(by_kind.get("Deployment", {}).values())
    check(len(workloads) == 1, f"{label}: exactly one gateway workload ({len(workloads)})")

    def secret_known(name, what):
        if name in secrets:
            ok(f"{label}: {what} Secret {name} is in the overlay")
        elif name in generated_secrets:
            ok(f"{label}: {what} Secret {name} is generated by {generated_secrets[name]}")
        elif name in EXTERNAL_SECRETS:
            ok(f"{label}: {what} Secret {name} is created by {EXTERNAL_SECRETS[name]}")
        else:
            fail(f"{label}: {what} Secret {name} exists nowhere")

    for sc in storage_classes:
        check(by_kind["StorageClass"][sc].get("provisioner") == "driver.longhorn.io",
              f"{label}: StorageClass/{sc} is provisioned by Longhorn")
    for name, pvc in pvcs.items():
        scn = pvc["spec"].get("storageClassName")
        check(scn in storage_classes, f"{label}: PersistentVolumeClaim/{name} uses a StorageClass of the overlay ({scn})")
    for name, c in clusters.items():
        scn = c["spec"].get("storage", {}).get("storageClass")
        check(scn in storage_classes, f"{label}: Cluster/{name} storage uses a StorageClass of the overlay ({scn})")
        params = c["spec"].get("postgresql", {}).get("parameters", {})
        replicas = workloads[0]["spec"].get("replicas", 1) if workloads else 1
        need = 24 * (replicas + 1) + 10
        mc = int(params.get("max_connections", "100"))
        check(mc >= need, f"{label}: Cluster/{name} max_connections {mc} >= 24 per gateway x ({replicas} + 1) + 10 = {need}")

    for w in workloads:
        wn = kn(w)
        spec = w["spec"]
        tpl = spec["template"]
        pod = tpl["spec"]
        pod_labels = tpl["metadata"].get("labels", {})
        check(selector_matches(spec["selector"].get("matchLabels"), pod_labels),
              f"{label}: {wn} selector matches its pod labels")
        sa = pod.get("serviceAccountName")
        check(sa in by_kind.get("ServiceAccount", {}), f"{label}: {wn} ServiceAccount {sa} is in the overlay")
        if w["kind"] == "StatefulSet":
            svc = services.get(spec.get("serviceName"))
            check(svc is not None and svc["spec"].get("clusterIP") == "None",
                  f"{label}: {wn} serviceName {spec.get('serviceName')} is a headless Service of the overlay")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        templates = {t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates", [])}
        for t in templates.values():
            scn = t["spec"].get("storageClassName")
            check(scn in storage_classes, f"{label}: {wn} volumeClaimTemplate {t['metadata']['name']} uses a StorageClass of the overlay ({scn})")
        for vname, v in volumes.items():
            if "persistentVolumeClaim" in v:
                cn = v["persistentVolumeClaim"]["claimName"]
                check(cn in pvcs, f"{label}: {wn} volume {vname} claims PersistentVolumeClaim/{cn} of the overlay")
                if cn in pvcs and spec.get("replicas", 1) > 1:
                    check("ReadWriteMany" in pvcs[cn]["spec"].get("accessModes", []),
                          f"{label}: {wn} shares PersistentVolumeClaim/{cn} over {spec['replicas']} replicas: ReadWriteMany")
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True and
              pod.get("securityContext", {}).get("runAsUser") == 10001,
              f"{label}: {wn} pod runs as non-root uid 10001")
        check(pod.get("automountServiceAccountToken") is False, f"{label}: {wn} mounts no API token")

        for c in pod["containers"]:
            cn = f"{wn} container {c['name']}"
            sc = c.get("securityContext", {})
            check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
                  and sc.get("capabilities", {}).get("drop") == ["ALL"],
                  f"{label}: {cn}: read-only root filesystem, no privilege escalation, all capabilities dropped")
            res = c.get("resources", {})
            check("memory" in res.get("requests", {}) and "cpu" in res.get("requests", {})
                  and "memory" in res.get("limits", {}),
                  f"{label}: {cn}: cpu/memory requests and a memory limit")
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            check(ports.get("s3") == 9000, f"{label}: {cn}: port s3 is 9000")
            probes = {k: c.get(k, {}).get("httpGet", {}) for k in ("livenessProbe", "readinessProbe", "startupProbe")}
            check(probes["livenessProbe"].get("path") == "/health", f"{label}: {cn}: liveness probe on /health")
            check(probes["readinessProbe"].get("path") == "/ready", f"{label}: {cn}: readiness probe on /ready")
            for k, p in probes.items():
                if p:
                    check(p.get("port") in ports or p.get("port") in ports.values(),
                          f"{label}: {cn}: {k} port {p.get('port')} is a container port")
            mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
            for m in mounts:
                check(m in volumes or m in templates, f"{label}: {cn}: volumeMount {m} has a volume or claim template")

            # The effective environment: ConfigMaps, then Secrets we can see, then `env`.
            env = {}
            for ef in c.get("envFrom", []):
                if "configMapRef" in ef:
                    name = ef["configMapRef"]["name"]
                    if check(name in cms, f"{label}: {cn}: envFrom ConfigMap {name} is in the overlay"):
                        env.update(cms[name].get("data", {}))
                if "secretRef" in ef:
                    name = ef["secretRef"]["name"]
                    if ef["secretRef"].get("optional"):
                        ok(f"{label}: {cn}: envFrom Secret {name} is optional")
                    else:
                        secret_known(name, f"{cn}: envFrom")
            for e in c.get("env", []):
                if "value" in e:
                    env[e["name"]] = e["value"]
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret_known(ref["name"], f"{cn}: env {e['name']} from")
                    if ref["name"] in generated_secrets:
                        check(ref["key"] == "uri", f"{label}: {cn}: env {e['name']} takes key `uri` of the CloudNativePG app Secret")
                    env[e["name"]] = f"<secret {ref['name']}/{ref['key']}>"
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    check(ref["name"] in cms and ref["key"] in cms[ref["name"]].get("data", {}),
                          f"{label}: {cn}: env {e['name']} from ConfigMap {ref['name']} key {ref['key']}")
            unknown = sorted(k for k in env if k.startswith("JUST_STORAGE_") and k not in ENV_NAMES)
            check(not unknown, f"{label}: {cn}: every JUST_STORAGE_* variable is a setting of src/config.rs"
                  + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
            listen = env.get("JUST_STORAGE_LISTEN", "")
            check(listen == "0.0.0.0:9000", f"{label}: {cn}: JUST_STORAGE_LISTEN={listen} (all interfaces, port 9000)")

            def on_volume(path):
                return any(path == mp or path.startswith(mp.rstrip("/") + "/") for mp in mounts.values())

            for var, vol in (("JUST_STORAGE_HOT_DIR", "hot"), ("JUST_STORAGE_COLD_DIR", "cold")):
                check(env.get(var) == mounts.get(vol),
                      f"{label}: {cn}: {var}={env.get(var)} is the mount point of volume {vol} ({mounts.get(vol)})")
            url = env.get("JUST_STORAGE_DATABASE_URL")
            if url is None:
                fail(f"{label}: {cn}: no JUST_STORAGE_DATABASE_URL (the default SQLite path is on the read-only root)")
            elif url.startswith("sqlite:"):
                path = url.removeprefix("sqlite://").removeprefix("sqlite:").split("?")[0]
                check(on_volume(path), f"{label}: {cn}: SQLite file {path} is on a mounted volume")
                check(spec.get("replicas", 1) == 1, f"{label}: {cn}: SQLite with a single replica")
            else:
                ok(f"{label}: {cn}: database URL {url}")

        # Services and the PodDisruptionBudget select these pods.
        for sname, s in services.items():
            check(selector_matches(s["spec"].get("selector"), pod_labels),
                  f"{label}: Service/{sname} selects the gateway pods")
            cports = {p.get("name") for c in pod["containers"] for p in c.get("ports", [])}
            for p in s["spec"].get("ports", []):
                tp = p.get("targetPort", p["port"])
                check(tp in cports or tp == 9000, f"{label}: Service/{sname} port {p.get('name')} targets container port {tp}")
        for pname, pdb in by_kind.get("PodDisruptionBudget", {}).items():
            check(selector_matches(pdb["spec"]["selector"].get("matchLabels"), pod_labels),
                  f"{label}: PodDisruptionBudget/{pname} selects the gateway pods")
        for t in pod.get("topologySpreadConstraints", []):
            check(selector_matches(t["labelSelector"].get("matchLabels"), pod_labels),
                  f"{label}: topology spread on {t['topologyKey']} counts the gateway pods")

    for mname, sm in by_kind.get("ServiceMonitor", {}).items():
        sel = sm["spec"]["selector"].get("matchLabels", {})
        matched = [s for s in services.values() if selector_matches(sel, s["metadata"].get("labels", {}))]
        check(len(matched) == 1, f"{label}: ServiceMonitor/{mname} selects exactly one Service "
              f"({', '.join(s['metadata']['name'] for s in matched) or 'none'})")
        for ep in sm["spec"]["endpoints"]:
            check(any(ep.get("port") == p.get("name") for s in matched for p in s["spec"].get("ports", [])),
                  f"{label}: ServiceMonitor/{mname} endpoint port {ep.get('port')} is a port of that Service")
            check(ep.get("path") == "/metrics", f"{label}: ServiceMonitor/{mname} scrapes /metrics")
            creds = ep.get("authorization", {}).get("credentials")
            if creds:
                secret_known(creds.get("name"), f"ServiceMonitor/{mname} authorization")


# ------------------------------------------------------------------------- PromQL
try:
    import promql_parser
except ImportError:  # validate.sh says why it is missing
    promql_parser = None

GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def promql_metrics(expr, where):
    """Parses `expr`: (its AST, the metric names it selects); None if it does not parse. Without
    promql-parser the AST is None and the names are found by pattern."""
    if promql_parser is None:
        return None, set(re.findall(r"\b((?:juststorage|kubelet)_[a-z0-9_]+|up(?=\{))", expr))
    try:
        ast = promql_parser.parse(expr)
    except Exception as e:  # noqa: BLE001 (the parser raises ValueError and friends)
        fail(f"{where}: PromQL does not parse: {e}: {expr!r}")
        return None
    return ast, {s.name for s in selectors(ast)}


def selectors(node):
    """The vector selectors (with a metric name) under `node`."""
    out = []

    def pre(n):
        if isinstance(n, promql_parser.VectorSelector) and n.name:
            out.append(n)

    promql_parser.walk(node, pre)
    return out


def available_labels(node):
    """Labels the series under `node` may carry: those of its metrics (from src/), the target
    labels, and those label_replace creates. None when a metric from outside the gateway is
    among them (its labels are not known here)."""
    labels = set(TARGET_LABELS)
    for sel in selectors(node):
        if sel.name not in EXPORTED:
            return None
        labels |= set(EXPORTED[sel.name]["labels"])

    def pre(n):
        if (isinstance(n, promql_parser.Call) and n.func.name == "label_replace" and len(n.args) > 1
                and isinstance(n.args[1], promql_parser.StringLiteral)):
            labels.add(n.args[1].val)

    promql_parser.walk(node, pre)
    return labels


INTEGER_TYPE = re.compile(r"[ui](8|16|32|64|128|size)")


def check_metric_names(where, names):
    """Every name is a series src/metrics.rs exports (exactly: `…_total`, `…_bucket`), or an
    external metric."""
    bad = []
    for n in sorted(names):
        if metric_known(n):
            continue
        near = sorted(e for e in EXPORTED if e.startswith(n + "_") or n.startswith(EXPORTED[e]["family"] + "_")
                      or e == n + "_total")
        bad.append(n + (f" (exported: {', '.join(near)})" if near else ""))
    check(not bad, f"{where}: every metric is exported by src/metrics.rs" + (f" (unknown: {', '.join(bad)})" if bad else ""))


def check_labels(ast, where, shown=()):
    """The labels `ast` matches on, groups by or matches vectors on, and the labels `shown`
    (legend, annotations) uses, are labels its metrics carry; a numeric label (the status code)
    is not matched against a word."""
    if ast is None:
        return
    bad = []
    for sel in selectors(ast):
        info = EXPORTED.get(sel.name)
        if info is None:
            continue
        for m in sel.matchers.matchers:
            if m.name == "__name__" or m.name in TARGET_LABELS:
                continue
            if m.name not in info["labels"]:
                bad.append(f"{sel.name} has no label `{m.name}` (it has: {', '.join(sorted(info['labels'])) or 'none'})")
            elif INTEGER_TYPE.fullmatch(info["labels"][m.name]) and re.search(r"[A-Za-z]", m.value):
                bad.append(f"{sel.name}: `{m.name}` is a number ({info['labels'][m.name]} in src/), "
                           f"matched against {m.value!r}")

    def pre(n):
        names, scope = [], n
        if (isinstance(n, promql_parser.AggregateExpr) and n.modifier is not None
                and n.modifier.type == promql_parser.AggModifierType.By):
            names, scope = list(n.modifier.labels), n.expr
        elif isinstance(n, promql_parser.BinaryExpr) and n.modifier is not None:
            if n.modifier.matching is not None:
                names += list(n.modifier.matching.labels)
            names += list(n.modifier.group_labels or [])
        if names:
            avail = available_labels(scope)
            if avail is not None:
                bad.extend(f"`{x}` (in by/on/ignoring/group_left) is no label of {', '.join(sorted({s.name for s in selectors(scope)}))}"
                           for x in names if x not in avail)

    promql_parser.walk(ast, pre)
    if shown:
        avail = available_labels(ast)
        if avail is not None:
            bad.extend(f"`{x}` (shown) is no label of {', '.join(sorted({s.name for s in selectors(ast)}))}"
                       for x in shown if x not in avail)
    check(not bad, f"{where}: labels used are labels of its metrics" + (f" ({'; '.join(bad)})" if bad else ""))


def check_prometheus_rules(label, docs):
    for d in docs:
        if d.get("kind") != "PrometheusRule":
            continue
        alerts = 0
        for g in d["spec"]["groups"]:
            for r in g["rules"]:
                where = f"{label}: PrometheusRule {g['name']}/{r.get('alert') or r.get('record')}"
                parsed = promql_metrics(str(r["expr"]), where)
                if parsed is None:
                    continue
                ast, names = parsed
                ok(f"{where}: expression parses")
                check_metric_names(where, names)
                shown = {x for v in r.get("annotations", {}).values()
                         for x in re.findall(r"\$labels\.(\w+)", v)}
                check_labels(ast, where, shown)
                if "alert" in r:
                    alerts += 1
                    check(r.get("labels", {}).get("severity") in ("warning", "critical"),
                          f"{where}: severity label")
                    check(bool(r.get("annotations", {}).get("summary")), f"{where}: summary annotation")
                    for k, v in r.get("annotations", {}).items():
                        check(v.count("{{") == v.count("}}"), f"{where}: annotation {k} template braces balance")
        covered = {m for g in d["spec"]["groups"] for r in g["rules"]
                   for m in re.findall(r"juststorage_[a-z0-9_]+|kubelet_volume_stats_[a-z_]+", str(r["expr"]))}
        for needed, what in (("juststorage_requests_total", "5xx rate"),
                             ("juststorage_scrub_corrupted_total", "corrupted blobs found"),
                             ("juststorage_gc_backlog_blobs", "collector backlog"),
                             ("kubelet_volume_stats_available_bytes", "free space")):
            check(needed in covered, f"{label}: PrometheusRule/{d['metadata']['name']} alerts on {what} ({needed})")
        ok(f"{label}: PrometheusRule/{d['metadata']['name']}: {alerts} alerts")


# ------------------------------------------------------------------------- Grafana
def check_grafana():
    path = os.path.join(DEPLOY, "grafana", "juststorage.json")
    where = rel(path)
    try:
        dash = json.load(open(path))
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{where}: not valid JSON: {e}")
        return
    ok(f"{where}: valid JSON")
    check(dash.get("uid") and dash.get("title") and isinstance(dash.get("schemaVersion"), int),
          f"{where}: uid, title, schemaVersion")
    var_names = {v["name"] for v in dash.get("templating", {}).get("list", [])}
    check("datasource" in var_names, f"{where}: a datasource variable")
    panels = []

    def collect(ps):
        for p in ps:
            panels.append(p)
            collect(p.get("panels", []))

    collect(dash.get("panels", []))
    ids = [p.get("id") for p in panels]
    check(len(ids) == len(set(ids)) and None not in ids, f"{where}: {len(ids)} panels with unique ids")
    used = set()
    for p in panels:
        gp = p.get("gridPos", {})
        if not check(0 <= gp.get("x", -1) and gp.get("x", 0) + gp.get("w", 99) <= 24,
                     f"{where}: panel {p.get('id')} fits the 24-column grid"):
            continue
        if p.get("type") == "row":
            continue
        pw = f"{where}: panel {p['id']} \"{p.get('title')}\""
        targets = p.get("targets", [])
        check(bool(targets), f"{pw}: has queries")
        check(p.get("datasource", {}).get("uid") == "${datasource}", f"{pw}: uses the datasource variable")
        check("PLANNED" not in p.get("title", "") + p.get("description", ""),
              f"{pw}: says nothing of PLANNED metrics (every metric it uses must be exported)")
        for t in targets:
            expr = t.get("expr", "")
            for k, v in GRAFANA_VARS.items():
                expr = expr.replace(k, v)
            parsed = promql_metrics(expr, f"{pw} {t.get('refId')}")
            if parsed is None:
                continue
            ast, names = parsed
            used |= names
            check_metric_names(f"{pw} {t.get('refId')}", names)
            shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")))
            check_labels(ast, f"{pw} {t.get('refId')}", shown)
    for m in ("juststorage_requests_total", "juststorage_request_duration_seconds_bucket",
              "juststorage_bytes_received_total", "juststorage_bytes_sent_total",
              "juststorage_requests_in_flight", "juststorage_commit_batch_size_bucket",
              "juststorage_worker_runs_total",
              "juststorage_gc_blobs_removed_total", "juststorage_orphans_removed_total",
              "juststorage_scrub_corrupted_total", "juststorage_lifecycle_expired_total",
              "juststorage_corrupted_reads_total",
              "juststorage_blobs", "juststorage_blob_bytes", "juststorage_gc_backlog_blobs",
              "juststorage_dedup_ratio", "juststorage_db_pool_connections",
              "juststorage_bucket_bytes", "juststorage_bucket_objects", "juststorage_tenant_physical_bytes"):
        check(m in used, f"{where}: a panel shows {m}")
    families_unused = sorted({i["family"] for i in EXPORTED.values()} - {EXPORTED[u]["family"] for u in used if u in EXPORTED})
    if families_unused:
        note(f"{where}: metrics exported by src/ that no panel shows: {', '.join(families_unused)}")


# ------------------------------------------------------------------------- compose
def check_compose():
    path = os.path.join(DEPLOY, "compose", "docker-compose.yml")
    where = rel(path)
    try:
        doc = yaml.safe_load(open(path))
    except yaml.YAMLError as e:
        fail(f"{where}: not valid YAML: {e}")
        return
    ok(f"{where}: valid YAML")
    services = doc.get("services", {})
    pg = services.get("postgres", {})
    check(str(pg.get("image", "")).startswith("postgres:15"), f"{where}: postgres service on PostgreSQL 15")
    check("healthcheck" in pg, f"{where}: postgres has a healthcheck")
    gateways = {n: s for n, s in services.items() if n.startswith("gateway")}
    check(bool(gateways), f"{where}: a gateway service")
    declared_volumes = set((doc.get("volumes") or {}).keys())
    for name, s in list(gateways.items()) + [("postgres", pg)]:
        for v in s.get("volumes", []):
            src = str(v).split(":")[0]
            if not src.startswith((".", "/")):
                check(src in declared_volumes, f"{where}: {name}: volume {src} is declared")
    for name, s in gateways.items():
        sw = f"{where}: {name}"
        b = s.get("build", {})
        ctx = os.path.normpath(os.path.join(os.path.dirname(path), b.get("context", ".")))
        check(ctx == ROOT and os.path.isfile(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))),
              f"{sw}: builds deploy/Dockerfile with the repository root as context")
        check("healthcheck" in s, f"{sw}: has a healthcheck")
        env = s.get("environment", {})
        unknown = sorted(k for k in env if k.startswith("JUST_STORAGE_") and k not in ENV_NAMES)
        check(not unknown, f"{sw}: every JUST_STORAGE_* variable is a setting of src/config.rs"
              + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        check(str(env.get("JUST_STORAGE_DATABASE_URL", "")).startswith("postgres://"), f"{sw}: uses PostgreSQL")
        check(all(f"${{{k}" in str(env.get(k, "")) for k in ("JUST_STORAGE_ROOT_ACCESS_KEY", "JUST_STORAGE_ROOT_SECRET_KEY")),
              f"{sw}: root credentials come from the caller's environment")
        deps = s.get("depends_on", {})
        check(isinstance(deps, dict) and all(d.get("condition") == "service_healthy" for d in deps.values()) and deps,
              f"{sw}: waits for healthy dependencies")
        check(s.get("read_only") is True and "ALL" in s.get("cap_drop", []), f"{sw}: read-only, no capabilities")


# ------------------------------------------------------------------------- Dockerfile
def dockerfile_instructions(text):
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        cur += " " + s.rstrip("\\").strip() if cur else s.rstrip("\\").strip()
        if not s.endswith("\\"):
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return [(i.split(None, 1)[0].upper(), i.split(None, 1)[1] if " " in i else "") for i in out]


def dockerignored(path, patterns):
    """Whether .dockerignore `patterns` exclude `path` (patterns are anchored at the context's
    root; `**/` matches at any depth; `!` exceptions are not used here)."""
    import fnmatch

    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for p in patterns:
        p = p.strip()
        if not p or p.startswith(("#", "!")):
            continue
        p = p.strip("/")
        if p.startswith("**/"):
            q = p[3:]
            if any(fnmatch.fnmatch(x, q) for x in parts + prefixes):
                return True
        elif any(fnmatch.fnmatch(x, p) for x in prefixes):
            return True
    return False


def read_cargo_toml():
    path = os.path.join(ROOT, "Cargo.toml")
    if tomllib is not None:
        with open(path, "rb") as f:
            return tomllib.load(f)
    # Without tomllib: the few keys used below, by pattern.
    text = open(path).read()
    cargo = {"package": {}}
    m = re.search(r'^rust-version\s*=\s*"([^"]+)"', text, re.M)
    if m:
        cargo["package"]["rust-version"] = m.group(1)
    for section, body in re.findall(r"^\[\[?(\w+)\]\]?\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S):
        m = re.search(r'^path\s*=\s*"([^"]+)"', body, re.M)
        if section == "lib":
            cargo["lib"] = {"path": m.group(1)} if m else {}
        elif section in ("bin", "example", "test", "bench") and m:
            cargo.setdefault(section, []).append({"path": m.group(1)})
    return cargo


def compile_time_inputs():
    """Top-level folders of the files src/ embeds with include_str!/include_bytes!."""
    tops = set()
    for d, _, files in os.walk(os.path.join(ROOT, "src")):
        for f in files:
            if not f.endswith(".rs"):
                continue
            text = open(os.path.join(d, f)).read()
            for m in re.finditer(r"include_(?:str|bytes)!\s*\(", text):
                args = text[m.end():m.end() + 400]
                manifest = re.match(r'\s*concat!\s*\(\s*env!\s*\(\s*"CARGO_MANIFEST_DIR"\s*\)\s*,\s*"/?([^"/]+)', args)
                if manifest:
                    tops.add(manifest.group(1))
                    continue
                literal = re.match(r'\s*"([^"]+)"', args)
                if literal:
                    path = os.path.relpath(os.path.normpath(os.path.join(d, literal.group(1))), ROOT)
                    tops.add(path.split(os.sep)[0])
    return tops


def check_dockerfile():
    path = os.path.join(DEPLOY, "Dockerfile")
    where = rel(path)
    text = open(path).read()
    ins = dockerfile_instructions(text)
    ignore = open(os.path.join(ROOT, ".dockerignore")).read().splitlines()
    for must in ("target", ".git", "data"):
        check(any(p.strip().strip("/") == must for p in ignore), f".dockerignore excludes {must}/")
    args = {}
    for k, v in ins:
        if k == "ARG" and "=" in v:
            a, b = v.split("=", 1)
            args[a.strip()] = b.strip()
    stages = []
    for k, v in ins:
        if k == "FROM":
            img = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), v.split()[0])
            stages.append({"image": img, "name": v.split()[2] if " AS " in v.upper() else None, "ins": []})
        elif stages:
            stages[-1]["ins"].append((k, v))
    check(len(stages) == 2, f"{where}: two stages (builder, runtime)")
    if len(stages) != 2:
        return
    builder, runtime = stages
    m = re.match(r"rust:(\d+)\.(\d+)-slim-bookworm$", builder["image"])
    check(m is not None, f"{where}: builder is rust:<version>-slim-bookworm ({builder['image']})")
    check(runtime["image"] in ("debian:bookworm-slim", "gcr.io/distroless/cc-debian12", "gcr.io/distroless/cc-debian12:nonroot"),
          f"{where}: runtime is {runtime['image']} (glibc of Debian 12, as the builder)")
    cargo = read_cargo_toml()
    rv = cargo.get("package", {}).get("rust-version")
    if m and rv:
        need = tuple(int(x) for x in rv.split(".")[:2])
        check((int(m.group(1)), int(m.group(2))) >= need, f"{where}: builder Rust {m.group(1)}.{m.group(2)} >= rust-version {rv}")
    runs = " ".join(v for k, v in builder["ins"] if k == "RUN")
    check(runs.count("cargo build --release --locked --bin just-storage") == 2,
          f"{where}: dependencies layer and crate layer both run cargo build --release --locked --bin just-storage")
    copies = [v.split() for k, v in builder["ins"] if k == "COPY"]
    sources = {s.rstrip("/") for c in copies for s in c[:-1] if not s.startswith("--")}
    for s in sorted(sources):
        check(os.path.exists(os.path.join(ROOT, s)), f"{where}: COPY source {s} exists")
        check(not dockerignored(s, ignore), f"{where}: COPY source {s} is not excluded by .dockerignore")
    # Every target of Cargo.toml must exist in the build (cargo loads them all), and be stubbed in
    # the dependency layer.
    targets = []
    if "lib" in cargo:
        targets.append(cargo["lib"].get("path", "src/lib.rs"))
    for kind in ("bin", "example", "test", "bench"):
        for t in cargo.get(kind, []):
            if "path" in t:
                targets.append(t["path"])
    build = cargo.get("package", {}).get("build")
    if build or os.path.exists(os.path.join(ROOT, "build.rs")):
        targets.append(build if isinstance(build, str) else "build.rs")
    first_build = runs.split("cargo build")[0]
    for t in targets:
        top = t.split("/")[0]
        check(top in sources or t in sources, f"{where}: Cargo.toml target {t} is copied into the builder")
        check(t in first_build, f"{where}: Cargo.toml target {t} has a stand-in in the dependency layer")
    for top in sorted(compile_time_inputs()):
        check(top in sources, f"{where}: {top} (read by include_str!/include_bytes! in src/) is copied into the builder")
    rt = dict()
    for k, v in runtime["ins"]:
        rt.setdefault(k, []).append(v)
    check(any(u.split(":")[0] == "10001" for u in rt.get("USER", [])), f"{where}: runs as uid 10001")
    check(any("9000" in e.split() for e in rt.get("EXPOSE", [])), f"{where}: EXPOSE 9000")
    check(any("/data" in v for v in rt.get("VOLUME", [])), f"{where}: VOLUME /data")
    hc = " ".join(rt.get("HEALTHCHECK", []))
    check("/health" in hc and "curl" in hc, f"{where}: HEALTHCHECK requests /health with curl")
    check("curl" in " ".join(rt.get("RUN", [])), f"{where}: the runtime image installs curl for the HEALTHCHECK")
    env = " ".join(rt.get("ENV", []))
    check("JUST_STORAGE_LISTEN=0.0.0.0:9000" in env, f"{where}: listens on 0.0.0.0:9000")
    unknown = sorted(set(re.findall(r"JUST_STORAGE_[A-Z0-9_]+", env)) - ENV_NAMES)
    check(not unknown, f"{where}: ENV names are settings of src/config.rs" + (f" (unknown: {unknown})" if unknown else ""))


# ------------------------------------------------------------------------- main
def section(title):
    """Prints the previous section's count of passed checks, then the new title."""
    if section.title is not None:
        print(f"   {passed[0] - section.start} checks passed")
    section.title, section.start = title, passed[0]
    if title:
        print(f"== {title}")


section.title = None
section.start = 0


def main():
    families = {i["family"] for i in EXPORTED.values()}
    print(f"gateway settings from src/config.rs: {len(ENV_NAMES)}; metrics registered in src/: "
          f"{len(families)} ({len(EXPORTED)} series names)")
    for p in EXPORT_PROBLEMS:
        fail(p)
    if promql_parser is None:
        note("promql-parser is not installed: PromQL is not parsed; metric names are checked by pattern only")
    rendered = {}
    for name in ("base", "single", "production"):
        path = os.path.join(RENDER, f"{name}.yaml")
        rendered[name] = load_docs(path)
        section(f"{name}: {len(rendered[name])} objects")
        validate_schemas(name, rendered[name])
        if name != "base":
            check_references(name, rendered[name])
            check_prometheus_rules(name, rendered[name])
    # Files of the production overlay that kustomization.yaml does not apply.
    prod = os.path.join(DEPLOY, "kubernetes", "overlays", "production")
    for f in ("postgres-backup.yaml", "root-credentials.example.yaml"):
        docs = load_docs(os.path.join(prod, f))
        section(f"production/{f} (not in kustomization.yaml): {len(docs)} objects")
        validate_schemas(f"production/{f}", docs)
    example = load_docs(os.path.join(prod, "root-credentials.example.yaml"))[0]
    check(set(example.get("stringData", {})) == {"JUST_STORAGE_ROOT_ACCESS_KEY", "JUST_STORAGE_ROOT_SECRET_KEY"}
          and all("REPLACE-ME" in v for v in example["stringData"].values()),
          "root-credentials.example.yaml: both root variables, placeholder values only")
    check("root-credentials.example.yaml" not in
          [r for r in yaml.safe_load(open(os.path.join(prod, "kustomization.yaml")))["resources"]],
          "production/kustomization.yaml does not apply the example credentials")
    section("Grafana dashboard")
    check_grafana()
    section("docker compose")
    check_compose()
    section("Dockerfile (static; .dockerignore)")
    check_dockerfile()
    section(None)

    print()
    if failures:
        print(f"\n{len(failures)} check(s) failed:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print(f"all {passed[0]} deploy checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
