#!/usr/bin/env bash
# Smoke run of the benchmark (bench/main.rs, `cargo run --example bench`): builds the dev
# profile, runs the tiny "smoke" profile against JustStorage on SQLite, and against the
# reference s3s-fs too when it is installed (otherwise it says the reference was skipped).
# Checks that the tool runs end to end and writes its JSON; the numbers mean nothing here.
# Exits non-zero on any failure. The full benchmark is in README.md ("Benchmark").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { echo "[bench-smoke] $*"; }
die() { echo "[bench-smoke] FAIL: $*" >&2; exit 1; }

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
log "cargo build --bin just-storage --example bench (dev profile)"
cargo build --quiet --bin just-storage --example bench

REF=(--reference auto)
if ! command -v s3s-fs >/dev/null 2>&1 && [[ ! -x "$HOME/.cargo/bin/s3s-fs" ]]; then
    log "s3s-fs is not installed: the reference server is skipped" \
        "(cargo install s3s-fs --version =0.14.1 --features binary --locked)"
    REF=(--reference off)
fi

OUT="$(mktemp -d "${TMPDIR:-/tmp}/bench-smoke.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT

log "running the smoke profile"
timeout 100 "$TARGET_DIR/debug/examples/bench" --profile smoke \
    --js-bin "$TARGET_DIR/debug/just-storage" "${REF[@]}" \
    --tmp-dir "$OUT" --json "$OUT/bench.json" ||
    die "benchmark failed (exit $?)"

[[ -s "$OUT/bench.json" ]] || die "no JSON report written"
grep -q '"id": "dedup"' "$OUT/bench.json" || die "JSON report lacks the last scenario"
if command -v python3 >/dev/null 2>&1; then
    python3 - "$OUT/bench.json" <<'PY' || die "JSON report is not what was expected"
import json, sys
doc = json.load(open(sys.argv[1]))
steps = {s["id"]: s for s in doc["steps"]}
assert len(steps) == 22, sorted(steps)
for sid, s in steps.items():
    r = s["results"].get("js-sqlite")
    assert r is not None, f"{sid}: no js-sqlite result"
    if sid != "dedup":
        assert r["value"] and r["value"] > 0, f"{sid}: value {r['value']}"
    assert r["peak_rss_bytes"], f"{sid}: no peak RSS"
assert abs(steps["dedup"]["results"]["js-sqlite"]["value"] - 0.25) < 0.05, "dedup ratio"
PY
fi
log "ok"
