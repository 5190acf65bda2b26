//! The table on stdout and the JSON document.

use crate::scenarios::{Goal, Measured, Profile, Step};
use crate::servers::{Kind, Target};
use serde_json::{Value, json};

const MIB: f64 = 1048576.0;
/// Issue 7: the server's peak RSS stays under 100 MiB in every scenario.
const RSS_GOAL_MIB: f64 = 100.0;
/// "Postgres mode within 70% of SQLite mode for small objects": PostgreSQL's result over
/// SQLite's, on every small-object step, in the same run.
const PG_VS_SQLITE_GOAL: f64 = 0.70;

#[derive(Debug, Clone)]
pub struct Sample {
    pub measured: Measured,
    pub wall_s: f64,
    pub server_cpu_s: Option<f64>,
    pub db_cpu_s: Option<f64>,
    pub peak_rss: Option<u64>,
    pub rss_reset: bool,
    pub client_cpu_s: f64,
    pub other_cpu_s: Option<f64>,
    pub load: String,
    pub build_procs: usize,
}

/// A step's samples per target (in target order); `chosen[t]` is the median run.
pub struct StepResult {
    pub step: Step,
    pub samples: Vec<Vec<Sample>>,
    chosen: Vec<Option<usize>>,
}

impl StepResult {
    pub fn new(step: Step, samples: Vec<Vec<Sample>>) -> StepResult {
        let chosen = samples
            .iter()
            .map(|runs| {
                if runs.is_empty() {
                    return None;
                }
                let mut idx: Vec<usize> = (0..runs.len()).collect();
                idx.sort_by(|&a, &b| {
                    let va = runs[a].measured.value.unwrap_or(f64::NAN);
                    let vb = runs[b].measured.value.unwrap_or(f64::NAN);
                    va.total_cmp(&vb)
                });
                Some(idx[idx.len() / 2])
            })
            .collect();
        StepResult {
            step,
            samples,
            chosen,
        }
    }

    pub fn get(&self, t: usize) -> Option<&Sample> {
        self.chosen[t].map(|i| &self.samples[t][i])
    }
}

pub struct Meta {
    pub profile: Profile,
    pub started: std::time::SystemTime,
    pub load_start: String,
    pub load_end: String,
    pub repeat: usize,
    pub sdk_checksums: bool,
    pub reference_note: Option<String>,
}

pub fn progress_line(step: Step, s: &Sample) -> String {
    let mut out = format!("{} {}", fmt(s.measured.value), step.unit());
    if let (Some(a), Some(b)) = (s.measured.p50_ms, s.measured.p99_ms) {
        out += &format!("  p50 {} ms p99 {} ms", fmt(Some(a)), fmt(Some(b)));
    }
    if let Some(c) = s.server_cpu_s {
        out += &format!("  server CPU {c:.2} s");
    }
    if let Some(c) = s.db_cpu_s {
        out += &format!("  db CPU {c:.2} s");
    }
    if let Some(r) = s.peak_rss {
        out += &format!("  peak RSS {:.1} MiB", r as f64 / MIB);
    }
    out += &format!("  ({:.2} s)", s.wall_s);
    out
}

/// A number with 3 significant digits or so, "-" for none.
pub fn fmt(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if !v.is_finite() => "-".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn reference_index(targets: &[Target]) -> Option<usize> {
    targets.iter().position(|t| t.kind == Kind::Reference)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// PostgreSQL's result over SQLite's for a small-object step, when both ran it.
fn pg_vs_sqlite(targets: &[Target], r: &StepResult) -> Option<f64> {
    if r.step.group() != "small" {
        return None;
    }
    let value = |kind: Kind| {
        let t = targets.iter().position(|t| t.kind == kind)?;
        r.get(t)?.measured.value
    };
    ratio(
        value(Kind::JustStoragePostgres),
        value(Kind::JustStorageSqlite),
    )
}

/// ", client-bound: …" when the benchmark itself used more CPU than the server (and its
/// database backends) during a measurement: on a machine whose cores the client shares, such a
/// number measures the client as much as the server.
fn client_bound(s: &Sample) -> String {
    let Some(server) = s.server_cpu_s else {
        return String::new();
    };
    let server = server + s.db_cpu_s.unwrap_or(0.0);
    if s.client_cpu_s <= server {
        return String::new();
    }
    format!(
        "; client-bound: the bench client used {:.2} CPU-s, the server {:.2}",
        s.client_cpu_s, server
    )
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::JustStorageSqlite => "juststorage-sqlite",
        Kind::JustStoragePostgres => "juststorage-postgres",
        Kind::Reference => "reference",
        Kind::External => "external",
    }
}

/// The JustStorage targets whose results are judged against the goals.
fn judged(t: &Target) -> bool {
    t.kind.is_juststorage() || t.kind == Kind::External
}

struct Row {
    label: String,
    unit: String,
    values: Vec<Option<f64>>,
    /// Printed instead of `values` when set.
    text: Option<Vec<String>>,
    ratios: bool,
    goal: String,
}

fn multipart_vs_single(results: &[StepResult], t: usize) -> Option<f64> {
    let single = results.iter().find(|r| r.step == Step::Put1)?;
    let mp = results.iter().find(|r| r.step == Step::Multipart)?;
    ratio(mp.get(t)?.measured.value, single.get(t)?.measured.value)
}

fn verdict(goal: Goal, v: Option<f64>) -> Option<bool> {
    match (goal, v) {
        (Goal::AtLeast(g), Some(v)) => Some(v >= g),
        _ => None,
    }
}

/// "sqlite:ok pg:MISS" for the judged targets (nothing on the smoke profile).
fn marks(targets: &[Target], full: bool, ok: impl Fn(usize) -> Option<bool>) -> String {
    if !full {
        return String::new();
    }
    (0..targets.len())
        .filter(|&t| judged(&targets[t]))
        .map(|t| {
            let name = targets[t].name.trim_start_matches("js-");
            match ok(t) {
                Some(true) => format!("{name}:ok"),
                Some(false) => format!("{name}:MISS"),
                None => format!("{name}:-"),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn table(meta: &Meta, targets: &[Target], results: &[StepResult]) -> String {
    let refi = reference_index(targets);
    let full = meta.profile.name == "full";
    let mut out = String::new();
    let started = meta
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    out += &format!(
        "JustStorage benchmark: profile {}, {} CPUs, load average {} at start, {} at end \
         (unix time {started})\n",
        meta.profile.name,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        meta.load_start,
        meta.load_end
    );
    for t in targets {
        out += &format!(
            "  {:<9} {} {}{}\n",
            t.name,
            t.endpoint,
            t.version,
            t.pg.as_ref()
                .map(|d| format!(
                    " (PostgreSQL database {}{})",
                    d.name,
                    if d.vacuums {
                        "; autovacuum is off: the bench vacuums before each step where autovacuum would have"
                    } else {
                        ""
                    }
                ))
                .unwrap_or_default()
        );
    }
    if let Some(n) = &meta.reference_note {
        out += &format!("  {n}\n");
    }
    out += &format!(
        "  client: aws-sdk-s3 in this process, {}; {} run(s) per step per server{}\n",
        if meta.sdk_checksums {
            "SDK default checksums (CRC32 on uploads, validated downloads)"
        } else {
            "checksums only where required"
        },
        meta.repeat,
        if meta.repeat > 1 {
            " (median shown)"
        } else {
            ""
        }
    );
    out += "  MB = 10^6 bytes; ratio = server / reference (for CPU and RSS lower is better)\n\n";

    let mut rows: Vec<Row> = Vec::new();
    let plain = |label: String, unit: &str, values: Vec<Option<f64>>, goal: String| Row {
        label,
        unit: unit.into(),
        values,
        text: None,
        ratios: true,
        goal,
    };
    for r in results {
        let step = r.step;
        let per = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<Option<f64>> {
            (0..targets.len()).map(|t| r.get(t).and_then(f)).collect()
        };
        let values = per(&|s| s.measured.value);
        let goal = match step.goal() {
            Goal::AtLeast(g) => {
                let marks = marks(targets, full, |t| verdict(step.goal(), values[t]));
                format!(">= {} {marks}", fmt(Some(g)))
            }
            Goal::None => String::new(),
        };
        rows.push(plain(step.title(&meta.profile), step.unit(), values, goal));
        if let Some(v) = pg_vs_sqlite(targets, r) {
            let pg = targets
                .iter()
                .position(|t| t.kind == Kind::JustStoragePostgres);
            let mark = match (full, v >= PG_VS_SQLITE_GOAL) {
                (false, _) => "",
                (true, true) => " ok",
                (true, false) => " MISS",
            };
            rows.push(Row {
                ratios: false,
                ..plain(
                    "  PostgreSQL / SQLite".into(),
                    "x",
                    (0..targets.len())
                        .map(|t| (Some(t) == pg).then_some(v))
                        .collect(),
                    format!(">= {PG_VS_SQLITE_GOAL:.2}{mark}"),
                )
            });
        }
        if r.samples
            .iter()
            .flatten()
            .any(|s| s.measured.p50_ms.is_some())
        {
            rows.push(plain(
                "  latency p50".into(),
                "ms",
                per(&|s| s.measured.p50_ms),
                String::new(),
            ));
            rows.push(plain(
                "  latency p99".into(),
                "ms",
                per(&|s| s.measured.p99_ms),
                String::new(),
            ));
        }
        if step == Step::Multipart {
            rows.push(plain(
                "  multipart / single PUT".into(),
                "x",
                (0..targets.len())
                    .map(|t| multipart_vs_single(results, t))
                    .collect(),
                String::new(),
            ));
        }
        if step == Step::Get1
            && let Some((disk, ratio)) = get_vs_disk(r, targets.len())
        {
            rows.push(plain(
                "  disk read right after (direct)".into(),
                "MB/s",
                disk,
                String::new(),
            ));
            rows.push(plain("  GET / disk read".into(), "x", ratio, String::new()));
        }
        if step == Step::Dedup {
            rows.push(plain(
                "  data dir growth".into(),
                "MiB",
                per(&|s| {
                    s.measured
                        .extra
                        .get("data_dir_growth_bytes")
                        .and_then(Value::as_f64)
                        .map(|b| b / MIB)
                }),
                String::new(),
            ));
        }
        rows.push(plain(
            "  server CPU".into(),
            "s",
            per(&|s| s.server_cpu_s),
            String::new(),
        ));
        if targets.iter().any(|t| t.pg.is_some()) {
            rows.push(Row {
                ratios: false,
                ..plain(
                    "  PostgreSQL backends CPU".into(),
                    "s",
                    per(&|s| s.db_cpu_s),
                    String::new(),
                )
            });
        }
        let rss = per(&|s| s.peak_rss.map(|b| b as f64 / MIB));
        let rss_marks = marks(targets, full, |t| rss[t].map(|v| v < RSS_GOAL_MIB));
        rows.push(plain(
            "  peak RSS".into(),
            "MiB",
            rss,
            format!("< {RSS_GOAL_MIB:.0} {rss_marks}"),
        ));
        rows.push(Row {
            label: "  bench client / other CPU".into(),
            unit: "s".into(),
            values: vec![None; targets.len()],
            text: Some(
                (0..targets.len())
                    .map(|t| match r.get(t) {
                        Some(s) => format!("{}/{}", fmt(Some(s.client_cpu_s)), fmt(s.other_cpu_s)),
                        None => "-".into(),
                    })
                    .collect(),
            ),
            ratios: false,
            goal: String::new(),
        });
    }

    // Columns: label, unit, one per target, one ratio per non-reference target, goal.
    let mut header: Vec<String> = vec!["scenario".into(), "unit".into()];
    header.extend(targets.iter().map(|t| t.name.clone()));
    let ratio_cols: Vec<usize> = match refi {
        Some(ri) => (0..targets.len()).filter(|&t| t != ri).collect(),
        None => Vec::new(),
    };
    header.extend(
        ratio_cols
            .iter()
            .map(|&t| format!("{}/ref", targets[t].name)),
    );
    header.push("goal (JustStorage)".into());
    let mut cells: Vec<Vec<String>> = vec![header];
    for row in &rows {
        let mut c = vec![row.label.clone(), row.unit.clone()];
        match &row.text {
            Some(t) => c.extend(t.iter().cloned()),
            None => c.extend(row.values.iter().map(|v| fmt(*v))),
        }
        for &t in &ratio_cols {
            let v = if row.ratios {
                ratio(row.values[t], refi.and_then(|ri| row.values[ri]))
            } else {
                None
            };
            c.push(if row.ratios { fmt(v) } else { String::new() });
        }
        c.push(row.goal.clone());
        cells.push(c);
    }
    let ncol = cells[0].len();
    let widths: Vec<usize> = (0..ncol)
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (ri, row) in cells.iter().enumerate() {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let w = widths[i];
            let pad = w - cell.chars().count();
            if i == 0 || i == ncol - 1 || i == 1 {
                line += cell;
                line += &" ".repeat(pad);
            } else {
                line += &" ".repeat(pad);
                line += cell;
            }
            line += "  ";
        }
        out += line.trim_end();
        out += "\n";
        if ri == 0 {
            out += &"-".repeat(widths.iter().sum::<usize>() + 2 * (ncol - 1));
            out += "\n";
        }
    }

    // Caveats and the goals that were missed.
    let mut notes = Vec::new();
    let busy: usize = results
        .iter()
        .flat_map(|r| r.samples.iter().flatten())
        .filter(|s| s.build_procs > 0)
        .count();
    if busy > 0 {
        notes.push(format!(
            "a compiler/linker was running at the start or end of {busy} measurement(s): those \
             numbers are depressed by a concurrent build (see the other CPU rows)"
        ));
    }
    let other: f64 = results
        .iter()
        .flat_map(|r| r.samples.iter().flatten())
        .filter_map(|s| s.other_cpu_s)
        .sum();
    let wall: f64 = results
        .iter()
        .flat_map(|r| r.samples.iter().flatten())
        .map(|s| s.wall_s)
        .sum();
    if wall > 0.0 {
        notes.push(format!(
            "other processes used {other:.1} CPU-s during {wall:.1} s of measurement \
             ({:.0}% of one core on average)",
            100.0 * other / wall
        ));
    }
    if results
        .iter()
        .flat_map(|r| r.samples.iter().flatten())
        .any(|s| s.peak_rss.is_some() && !s.rss_reset)
    {
        notes.push("peak RSS could not be reset between steps: it is the peak since start".into());
    }
    for r in results {
        for s in r.samples.iter().flatten() {
            if let Some(Value::String(m)) = s.measured.extra.get("stopped_early") {
                notes.push(format!("{}: stopped early, {m}", r.step.id()));
            }
        }
    }
    if full {
        for (t, target) in targets.iter().enumerate().filter(|(_, t)| judged(t)) {
            for r in results {
                let v = r.get(t).and_then(|s| s.measured.value);
                if let (Goal::AtLeast(g), Some(false)) = (r.step.goal(), verdict(r.step.goal(), v))
                {
                    notes.push(format!(
                        "MISS {}: {} = {} {} < {} ({:.0}% of the goal){}",
                        target.name,
                        r.step.title(&meta.profile),
                        fmt(v),
                        r.step.unit(),
                        fmt(Some(g)),
                        100.0 * v.unwrap_or(0.0) / g,
                        r.get(t).map(client_bound).unwrap_or_default()
                    ));
                }
                if target.kind == Kind::JustStoragePostgres
                    && let Some(v) = pg_vs_sqlite(targets, r)
                    && v < PG_VS_SQLITE_GOAL
                {
                    notes.push(format!(
                        "MISS {}: {} = {:.0}% of SQLite's < {:.0}%",
                        target.name,
                        r.step.title(&meta.profile),
                        100.0 * v,
                        100.0 * PG_VS_SQLITE_GOAL
                    ));
                }
                if let Some(rss) = r.get(t).and_then(|s| s.peak_rss)
                    && rss as f64 / MIB >= RSS_GOAL_MIB
                {
                    notes.push(format!(
                        "MISS {}: peak RSS {:.0} MiB during {}",
                        target.name,
                        rss as f64 / MIB,
                        r.step.title(&meta.profile)
                    ));
                }
            }
        }
    } else {
        notes.push("smoke profile: sizes are tiny, goals are not judged".into());
    }
    if !notes.is_empty() {
        out += "\n";
        for n in notes {
            out += &format!("note: {n}\n");
        }
    }
    out
}

pub fn json(meta: &Meta, targets: &[Target], results: &[StepResult]) -> Value {
    let refi = reference_index(targets);
    let started = meta
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let sample_json = |s: &Sample| {
        let m = &s.measured;
        json!({
            "value": m.value,
            "seconds": m.seconds,
            "ops": m.ops,
            "bytes": m.bytes,
            "p50_ms": m.p50_ms,
            "p99_ms": m.p99_ms,
            "extra": m.extra,
            "wall_s": s.wall_s,
            "server_cpu_s": s.server_cpu_s,
            "db_cpu_s": s.db_cpu_s,
            "peak_rss_bytes": s.peak_rss,
            "peak_rss_reset": s.rss_reset,
            "client_cpu_s": s.client_cpu_s,
            "other_cpu_s": s.other_cpu_s,
            "loadavg": s.load,
            "build_processes": s.build_procs,
        })
    };
    let steps: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut res = serde_json::Map::new();
            let mut ratios = serde_json::Map::new();
            let mut runs = serde_json::Map::new();
            for (t, target) in targets.iter().enumerate() {
                let Some(s) = r.get(t) else { continue };
                res.insert(target.name.clone(), sample_json(s));
                if r.samples[t].len() > 1 {
                    runs.insert(
                        target.name.clone(),
                        r.samples[t].iter().map(sample_json).collect(),
                    );
                }
                if let Some(ri) = refi
                    && ri != t
                {
                    let rs = r.get(ri);
                    ratios.insert(
                        target.name.clone(),
                        json!({
                            "value": ratio(s.measured.value, rs.and_then(|x| x.measured.value)),
                            "server_cpu_s": ratio(s.server_cpu_s, rs.and_then(|x| x.server_cpu_s)),
                            "peak_rss": ratio(
                                s.peak_rss.map(|b| b as f64),
                                rs.and_then(|x| x.peak_rss).map(|b| b as f64)
                            ),
                        }),
                    );
                }
                if r.step == Step::Multipart
                    && let Some(v) = multipart_vs_single(results, t)
                    && let Some(Value::Object(o)) = res.get_mut(&target.name)
                {
                    o.insert("vs_single_put".into(), v.into());
                }
            }
            let goal = match r.step.goal() {
                Goal::AtLeast(g) => json!({ "at_least": g }),
                Goal::None => Value::Null,
            };
            json!({
                "id": r.step.id(),
                "group": r.step.group(),
                "title": r.step.title(&meta.profile),
                "unit": r.step.unit(),
                "higher_is_better": r.step.higher_is_better(),
                "goal": goal,
                "pg_vs_sqlite": pg_vs_sqlite(targets, r),
                "results": res,
                "ratio_to_reference": ratios,
                "runs": runs,
            })
        })
        .collect();
    json!({
        "benchmark": "just-storage",
        "format": 1,
        "profile": meta.profile.name,
        "started_unix": started,
        "machine": {
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "loadavg_start": meta.load_start,
            "loadavg_end": meta.load_end,
        },
        "client": {
            "sdk": "aws-sdk-s3",
            "sdk_checksums": meta.sdk_checksums,
            "repeat": meta.repeat,
        },
        "goals": {
            "peak_rss_mib_below": RSS_GOAL_MIB,
            "pg_vs_sqlite_small_at_least": PG_VS_SQLITE_GOAL,
        },
        "reference": refi.map(|i| targets[i].name.clone()),
        "reference_note": meta.reference_note,
        "targets": targets.iter().map(|t| json!({
            "name": t.name,
            "kind": kind_name(t.kind),
            "endpoint": t.endpoint,
            "version": t.version,
            "pid": t.pid,
            "postgres_database": t.pg.as_ref().map(|d| d.name.clone()),
            "postgres_vacuum_before_steps": t.pg.as_ref().map(|d| d.vacuums),
        })).collect::<Vec<_>>(),
        "steps": steps,
    })
}

/// One value per target.
type Column = Vec<Option<f64>>;

/// Per target: the disk's direct-read speed probed right after the chosen GET sample, and the
/// GET's speed over it. `None` when no sample has a probe.
fn get_vs_disk(r: &StepResult, n: usize) -> Option<(Column, Column)> {
    let disk: Column = (0..n)
        .map(|t| {
            r.get(t)?
                .measured
                .extra
                .get("disk_read_mbps")
                .and_then(Value::as_f64)
        })
        .collect();
    if disk.iter().all(Option::is_none) {
        return None;
    }
    let ratio = (0..n)
        .map(|t| Some(r.get(t)?.measured.value? / disk[t]?))
        .collect();
    Some((disk, ratio))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: Kind) -> Target {
        Target {
            proc: None,
            pg: None,
            _dir: None,
            name: format!("{kind:?}"),
            kind,
            endpoint: String::new(),
            pid: None,
            data_dir: None,
            access_key: String::new(),
            secret_key: String::new(),
            version: String::new(),
        }
    }

    fn sample(value: f64, client: f64, server: f64, db: Option<f64>) -> Sample {
        Sample {
            measured: Measured {
                value: Some(value),
                ..Default::default()
            },
            wall_s: 1.0,
            server_cpu_s: Some(server),
            db_cpu_s: db,
            peak_rss: None,
            rss_reset: true,
            client_cpu_s: client,
            other_cpu_s: None,
            load: String::new(),
            build_procs: 0,
        }
    }

    /// The GET row's disk probe: shown per target, and the GET divided by it.
    #[test]
    fn get_is_divided_by_the_disk_probe() {
        let probed = |value, disk: f64| {
            let mut s = sample(value, 1.0, 1.0, None);
            s.measured
                .extra
                .insert("disk_read_mbps".into(), disk.into());
            s
        };
        let r = StepResult::new(
            Step::Get1,
            vec![
                vec![probed(800.0, 1000.0)],
                vec![sample(900.0, 1.0, 1.0, None)],
            ],
        );
        let (disk, ratio) = get_vs_disk(&r, 2).expect("a probe");
        assert_eq!(disk, vec![Some(1000.0), None]);
        assert_eq!(ratio, vec![Some(0.8), None]);
        let unprobed = StepResult::new(Step::Get1, vec![vec![sample(900.0, 1.0, 1.0, None)]]);
        assert!(get_vs_disk(&unprobed, 1).is_none());
    }

    /// PostgreSQL over SQLite, on small-object steps only, whatever the targets' order.
    #[test]
    fn pg_vs_sqlite_is_judged_on_small_steps() {
        let targets = [
            target(Kind::Reference),
            target(Kind::JustStoragePostgres),
            target(Kind::JustStorageSqlite),
        ];
        let runs = |step| {
            StepResult::new(
                step,
                vec![
                    vec![sample(900.0, 1.0, 1.0, None)],
                    vec![sample(600.0, 1.0, 1.0, Some(1.0))],
                    vec![sample(1000.0, 1.0, 1.0, None)],
                ],
            )
        };
        assert_eq!(pg_vs_sqlite(&targets, &runs(Step::SmallGet)), Some(0.6));
        assert_eq!(pg_vs_sqlite(&targets, &runs(Step::LeanHead)), Some(0.6));
        assert_eq!(pg_vs_sqlite(&targets, &runs(Step::ListFlat)), None);
        assert_eq!(pg_vs_sqlite(&targets[..2], &runs(Step::SmallGet)), None);
    }

    /// Client-bound when the client used more CPU than the server and its database together.
    #[test]
    fn client_bound_counts_the_database() {
        assert_eq!(client_bound(&sample(1.0, 0.5, 1.0, None)), "");
        assert_eq!(client_bound(&sample(1.0, 1.5, 1.0, Some(1.0))), "");
        assert!(client_bound(&sample(1.0, 2.5, 1.0, Some(1.0))).contains("client-bound"));
        let mut no_server = sample(1.0, 2.5, 1.0, None);
        no_server.server_cpu_s = None;
        assert_eq!(client_bound(&no_server), "");
    }
}
