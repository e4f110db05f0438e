//! Results as JSON (`bench/results/<unix time>.json`) and, for full runs, `BENCHMARKS.md` with its
//! SVG plots in `bench/plots/`: the method, a table of targets computed from this run's rows
//! (measured value, target, met or not), then per scenario its rows — one table per backend where
//! the app ran on several — their ratios, the store's work per elicitation and the scenario's own
//! extras. Nothing in it is typed in: every figure comes from the rows.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use crate::RunArgs;
use crate::agents::Percentiles;
use crate::plots::{Axis, Series, line_chart};
use crate::scenarios::{RunResult, saturation_seconds};
use crate::server::{self, Backend};

fn machine() -> (usize, String, String) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or_else(String::new, |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    (cores, mem, model)
}

fn times(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.1}×")
    }
}

fn ratio(numerator: f64, denominator: f64) -> String {
    if numerator > 0.0 && denominator > 0.0 {
        times(numerator / denominator)
    } else {
        "–".into()
    }
}

/// A ratio below one, also as 1/n: `0.125 (1/8.0)`.
fn fraction(r: f64) -> String {
    if r > 0.0 {
        format!("{r:.3} (1/{:.1})", 1.0 / r)
    } else {
        format!("{r:.3}")
    }
}

fn errors(r: &RunResult) -> String {
    if r.errors.is_empty() {
        "0".into()
    } else {
        r.errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn backend_title(name: &str) -> &'static str {
    match name {
        "redis" => Backend::Redis.title(),
        _ => Backend::Sqlite.title(),
    }
}

/// The mode as the tables name it: `push (SQLite)`, `poll (SQLite)`, `floor`.
fn variant(r: &RunResult) -> String {
    match &r.backend {
        Some(b) => format!("{} ({})", r.mode, backend_title(b)),
        None => r.mode.clone(),
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

const SCENARIOS: [(&str, &str); 12] = [
    (
        "single-pair",
        "1. Single pair — sequential elicitations between two agents, each sent when the previous answer arrived",
    ),
    (
        "scaling",
        "2. Scaling — every agent connected, then a steady total rate, agent k asking agent k+1",
    ),
    (
        "saturation",
        "2b. Saturation — 1000 agents offered more creates per second than the server delivers (found by an open-loop ramp), for longer than `stream_max_seconds`; elicitations/s here are capacities, and latency is queueing",
    ),
    (
        "burst",
        "3. Burst — agents join and leave in phases; each connected agent asks once per second",
    ),
    (
        "timeout-cascade",
        "4. Timeout cascade — 10 of 50 agents never answer; their requests must expire on time while the others' latency holds",
    ),
    (
        "contention",
        "5. Store contention — W writers ask one addressee, each as fast as its previous request is acknowledged",
    ),
    (
        "sustained",
        "6. Sustained load — a steady rate for a while, server RSS sampled every 5 s",
    ),
    (
        "soak",
        "6b. Soak — 1000 agents at a steady rate for 10 minutes with a short `retention_seconds`, so that elicitations are created, answered, kept and deleted over and over; the host's RSS and the store's size and keys sampled every 10 s",
    ),
    (
        "recovery",
        "7. Failure recovery — `kill -9` of the host half-way while creates keep coming, restart on the same address and store, clients resume on their own",
    ),
    (
        "scale-out",
        "8. Scale-out — the app on 1, 2, 3 hosts (nodes) sharing one Redis, all on this machine's cores; agent k streams from node k mod n and every create to it is sent to another node",
    ),
    (
        "node-kill",
        "9. Node kill — two nodes on one Redis behind HAProxy (`deploy/haproxy.cfg`), every request through it; one node `kill -9`ed half-way and not brought back while creates keep coming; clients reconnect after the stream's `retry:`",
    ),
    (
        "mcp",
        "10. MCP — pairs of agents doing paced sequential round trips, the same load three ways: over the MCP tools (`ask` with `waitSeconds`, the addressee in `inbox` with `waitSeconds`, then `respond`), over the plain HTTP API (the addressee's SSE stream, `POST …/response`, the asker's `?wait=` read), and over the deprecated `wait_for_messages` MCP tool (both agents polling)",
    ),
];

/// Writes the JSON results and (unless `--quick`) BENCHMARKS.md and the plots.
pub fn write(args: &RunArgs, results: &[RunResult], ticks: &str) -> anyhow::Result<()> {
    let (cores, mem, model) = machine();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stream_max = server::stream_max_seconds(args);
    std::fs::create_dir_all(&args.out)?;
    let doc = json!({
        "machine": { "cores": cores, "memory": mem, "cpu": model },
        "command": command,
        "unixTime": stamp,
        "streamTicks": ticks,
        "streamInstances": args.stream_instances,
        "streamReuse": args.stream_reuse,
        "streamMaxSeconds": stream_max,
        "backends": args.backend.iter().map(|b| b.name()).collect::<Vec<_>>(),
        "saturation": {
            "rampStart": args.saturation_rate,
            "rampStepSeconds": args.saturation_step_seconds,
            "holdSeconds": saturation_seconds(args),
            "maxInFlight": args.max_in_flight,
        },
        "floorRetryMs": [server::floor_retry().0, server::floor_retry().1],
        "results": results,
    });
    let path = args.out.join(format!(
        "{stamp}{}.json",
        if args.quick { "-quick" } else { "" }
    ));
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
    eprintln!("wrote {}", path.display());
    if args.quick {
        return Ok(());
    }
    markdown(args, results, ticks, &path, &command, server::floor_retry())
}

/// Writes BENCHMARKS.md and the plots from a results file written earlier (its `command` gives the
/// run's arguments): the report again, for a change in how it is written, without measuring again.
pub fn rewrite(file: &Path) -> anyhow::Result<()> {
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    let command = doc["command"]
        .as_str()
        .unwrap_or("lighthouse-bench")
        .to_string();
    let args = crate::run_args(command.split_whitespace())?;
    let ticks = doc["streamTicks"].as_str().unwrap_or_default().to_string();
    let results: Vec<RunResult> = serde_json::from_value(doc["results"].clone())?;
    // The floor's `retry:` values: as recorded, else (older files) the closing one its planned
    // ends saw and the client's default for the opening.
    let floor_retry = match doc["floorRetryMs"].as_array().map(|a| a.as_slice()) {
        Some([o, c]) => (o.as_u64().unwrap_or(0), c.as_u64().unwrap_or(0)),
        _ => {
            let mut seen: std::collections::BTreeMap<u64, u64> = Default::default();
            for r in results.iter().filter(|r| r.mode == "floor") {
                for (ms, n) in &r.retry_at_planned_end {
                    *seen.entry(*ms).or_default() += n;
                }
            }
            let closing = seen.iter().max_by_key(|(_, n)| **n).map(|(ms, _)| *ms);
            (
                crate::agents::DEFAULT_RETRY_MS,
                closing.unwrap_or(crate::agents::DEFAULT_RETRY_MS),
            )
        }
    };
    markdown(&args, &results, &ticks, file, &command, floor_retry)
}

/// BENCHMARKS.md and the plots for `results`, whose raw data is at `path`.
fn markdown(
    args: &RunArgs,
    results: &[RunResult],
    ticks: &str,
    path: &Path,
    command: &str,
    floor_retry: (u64, u64),
) -> anyhow::Result<()> {
    let (cores, mem, model) = machine();
    let stream_max = server::stream_max_seconds(args);
    let plots = Path::new("bench/plots");
    std::fs::create_dir_all(plots)?;
    let written_plots = write_plots(plots, results)?;

    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Generated by `lighthouse-bench` from its own measurements in one run (raw data: `{}`). Nothing here is estimated or typed in.\n",
        path.display()
    );
    let _ = writeln!(w, "- Machine: {cores} cores ({model}), {mem} memory.");
    let _ = writeln!(w, "- Command: `{command}`");
    method(w, args, results, cores, ticks, stream_max, floor_retry);

    targets(w, args, results);

    let failures: Vec<&RunResult> = results.iter().filter(|r| !r.clean()).collect();
    let _ = writeln!(w, "## Delivery failures\n");
    if failures.is_empty() {
        let _ = writeln!(
            w,
            "None: in every run each accepted create was delivered once, answered or expired as expected, in order, and no request failed (outside the intended outage of the recovery scenario).\n"
        );
    } else {
        for r in failures {
            let _ = writeln!(
                w,
                "- {} / {} / {}: delivered {}/{}, answered {}/{}, expired {}/{}, duplicates {}, order violations {}, errors {}",
                r.scenario,
                r.label,
                variant(r),
                r.delivered,
                r.accepted,
                r.answered,
                r.expected_answers,
                r.expired,
                r.expected_expiries,
                r.duplicates,
                r.order_violations,
                errors(r)
            );
            for u in &r.undelivered {
                let _ = writeln!(w, "  - {u}");
            }
        }
        let _ = writeln!(w);
    }

    for (id, title) in SCENARIOS {
        let rows: Vec<&RunResult> = results.iter().filter(|r| r.scenario == id).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(w, "## {title}\n");
        let backends: Vec<&str> = {
            let mut seen = BTreeSet::new();
            rows.iter()
                .filter_map(|r| r.backend.as_deref())
                .filter(|b| seen.insert(*b))
                .collect()
        };
        if backends.len() > 1 {
            // One table per backend: its app rows, and the floor (which has no store) in each.
            for b in &backends {
                let group: Vec<&RunResult> = rows
                    .iter()
                    .copied()
                    .filter(|r| r.backend.as_deref().is_none_or(|rb| rb == *b))
                    .collect();
                let _ = writeln!(w, "### The app on {}\n", backend_title(b));
                main_table(w, &group);
                if id != "saturation" {
                    ratios(w, &group);
                }
            }
        } else {
            main_table(w, &rows);
            if id != "saturation" {
                ratios(w, &rows);
            }
        }
        store_table(w, &rows);
        match id {
            "scaling" => scaling_extra(w, &rows),
            "saturation" => saturation_extra(w, &rows),
            "timeout-cascade" => timeout_extra(w, &rows),
            "sustained" => sustained_extra(w, &rows),
            "soak" => soak_extra(w, &rows),
            "recovery" | "node-kill" => recovery_extra(w, &rows),
            "scale-out" => scale_out_extra(w, &rows),
            "mcp" => mcp_extra(w, &rows),
            _ => {}
        }
        for (scenario, file, caption) in &written_plots {
            if scenario == id {
                let _ = writeln!(w, "![{caption}](bench/plots/{file})\n");
            }
        }
    }
    std::fs::write("BENCHMARKS.md", md)?;
    eprintln!("wrote BENCHMARKS.md and {} plot(s)", written_plots.len());
    Ok(())
}

/// The method section.
fn method(
    w: &mut String,
    args: &RunArgs,
    results: &[RunResult],
    cores: usize,
    ticks: &str,
    stream_max: u64,
    (floor_open, floor_close): (u64, u64),
) {
    let backends = args
        .backend
        .iter()
        .map(|b| b.title())
        .collect::<Vec<_>>()
        .join(", ");
    let fsync = crate::redis::appendfsync().unwrap_or_default();
    let fsync_meaning = match fsync.as_str() {
        "always" => "every write appended and synced before it is acknowledged",
        "everysec" => {
            "writes synced once a second, so up to a second of acknowledged writes can be lost on a crash"
        }
        _ => "writes synced when the operating system flushes them",
    };
    let _ = writeln!(
        w,
        "- Method: each scenario runs every mode with the same parameters, each mode on a fresh server process (fresh state directory, fresh store) driven over loopback HTTP by this one client process. **Delivery** = create request sent → the addressee's event received (so it includes the create itself); **round trip** = create request sent → the requester's `answered` event received; **create** = create request sent → acknowledgement received; all on one process clock. **Elicitations/s**, the same definition in every mode: created = accepted creates ÷ (first create sent → last acknowledgement received), delivered = first deliveries to addressees ÷ (first create sent → last delivery received), answered = first answers reaching requesters ÷ (first create sent → last answer received) — each count divided by the time it took to arrive, not the time spent sending. A run is clean when every accepted create was delivered exactly once, every answer (or expiry) reached the requester, every agent saw its sequence numbers strictly increasing (a number is skipped only where a crash left a slot that readers sealed; counted as *sealed*), and no request failed.",
    );
    let _ = writeln!(
        w,
        "- Processes: the host (or the floor server), Redis when the app runs on it, and this load generator all share the {cores} cores, so each one's CPU (user + system, % of one core, from `/proc/<pid>/stat`, from the first create sent until everything settled) and RSS (`/proc/<pid>/status`) is stated separately.",
    );
    let _ = writeln!(
        w,
        "- Backends ({backends}): the app's key-value store is SQLite in the host's state directory (Spin's default), or Redis: for each host it starts the benchmark starts its own `redis-server` on a free loopback port in a fresh temporary directory with `--save '' --appendonly yes --appendfsync {fsync}` (no snapshots; {fsync_meaning}), sends it `FLUSHALL`, and starts `spin-local` with `--runtime-config-file` naming it in Spin's syntax (`[key_value_store.default]`, `type = \"redis\"`, `url = \"redis://127.0.0.1:PORT\"`); a `kill -9` of the host leaves Redis running. Scaling and saturation run push on every backend, poll on the first ({}) and the floor once; the other scenarios run on the first backend.",
        args.backend[0].title()
    );
    let _ = writeln!(
        w,
        "- Scale-out and node kill run the app on Redis whatever `--backend` says: N hosts (`spin-local` processes, each with a state directory of its own and the same runtime config, the same Redis), all on this machine's {cores} cores with Redis and the client. Scale-out talks to the nodes directly (agent k streams, polls and answers on node k mod N; a create to agent k is sent to node k+1 mod N, another node than its stream's when N > 1); node kill sends every request through HAProxy (Debian's package) configured by `deploy/haproxy.cfg`, as `scripts/serve --nodes` runs it, and kills one of the two nodes with SIGKILL for good.",
    );
    let _ = writeln!(
        w,
        "- Store operations per elicitation: over the same window, the change of every key-value counter the host reports at `/.well-known/spin/stats` (calls, keys read and written, and whatever else it counts) and, on Redis, the change of the calls of every command in `INFO commandstats` (the benchmark's own `INFO` samples left out; its `PING` and `FLUSHALL` come before the host starts), divided by the elicitations created in the window: all told, the streams' background polling included.",
    );
    let _ = writeln!(
        w,
        "- Abuse limits: every host runs with `create_rate_per_minute` and `max_pending_per_agent` set to {} (the store still counts both on every create, so their cost is in the figures), because store contention floods one addressee by design and the 1 s poll answers slower than it is asked; the limits' own tests are in the end-to-end suite.",
        crate::server::LIFTED_LIMIT
    );
    let retries: BTreeSet<u64> = results
        .iter()
        .filter(|r| r.mode == "push")
        .flat_map(|r| r.retry_at_planned_end.keys().copied())
        .collect();
    let _ = writeln!(
        w,
        "- Clients reconnect as `EventSource` does: each keeps the reconnection time the server last set with `retry:` (any `retry:` field, with or without data; 1000 ms before the first) and, whenever a stream ends, waits that long and reconnects with `Last-Event-ID` (the `ready` frame's cursor counts as an id). A stream end is *planned* when the server sent its closing comment (`: stream ends…`) before the body ended; any other end — the body closed or failed without that comment, or the stream request got an HTTP error — is a *cut*, counted per scenario and mode in the tables. Streams last at most `stream_max_seconds` = {stream_max} s. `retry:` in effect at the app's planned ends in this run: {}.",
        if retries.is_empty() {
            "none seen".to_string()
        } else {
            retries
                .iter()
                .map(|r| format!("{r} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(
        w,
        "- Modes: **push** = SSE streams from the `events` component on `spin-local` ({ticks}; streams held by {} `events` instance(s), as `scripts/serve` runs it); **poll** = the legacy `wait_for_messages` route, checking the store once per second as the seed did; **floor** = a native in-memory SSE fan-out server (tokio + hyper, no Wasm, no store), where the scenario is plain delivery. The floor's streams behave as the app's towards the client: per-agent sequence numbers as ids, the newest 1000 events kept for `Last-Event-ID`, a `ready` frame with the cursor, and a planned end within the last fifth of `stream_max_seconds` (the app's spread) with the app's closing comment; its `retry:` values are those the app was seen to send earlier in the run (last floor: {floor_open} ms at the opening, {floor_close} ms at a planned end).",
        if args.stream_instances == 0 {
            "any number of".to_string()
        } else {
            format!("at most {}", args.stream_instances)
        }
    );
    let _ = writeln!(
        w,
        "- MCP: {} pairs (agent 2p asks agent 2p+1), each doing {} round trips one after the other, one every {} ms per pair (the pairs' first questions spread over one interval; a round trip that takes longer delays the next), each way on a fresh server on the first backend, so every way is offered the same load. **mcp**: both agents in 2025-11-25 sessions on `/mcp`; the addressee loops on `inbox {{waitSeconds: 25, since}}` and answers each question with `respond`; the asker calls `ask {{…, waitSeconds: 25}}`, which returns with the answer (delivery = `ask` sent → the addressee's `inbox` returned it; round trip = `ask` sent → `ask` returned it; no separate create acknowledgement exists, so created/s counts the `ask` responses). **http**: the addressee holds its SSE stream and answers with `POST /v1/elicitations/:id/response`; the asker `POST`s the create and reads it with `?wait=25` (delivery = create sent → the stream's event; round trip = create sent → the wait returned the answer). **mcp-poll**: both agents loop on the deprecated `wait_for_messages {{since, timeout: 25}}` tool, which looks at the store every `legacy_poll_ms` (1000 ms); the asker calls `ask` without waiting, then polls until its answered event.",
        args.mcp_pairs, args.mcp_rounds, args.mcp_interval_ms,
    );
    let _ = writeln!(
        w,
        "- Saturation: an open-loop ramp starts at {:.0} creates/s and raises the offered rate ×1.5 every {:.1} s until a step falls behind — its arrivals (created events reaching addressees during the step) below 80 % of what it offered while more than one second of offered load is outstanding (sent, not yet delivered; a stream reconnecting after its `retry:` only delays a few deliveries), or the sender unable to send 90 % of it; at most {} creates await their acknowledgement at once. After the ramp's load settled, the measured step offers 1.25 × the best arrival rate the ramp saw for {:.0} s (longer than `stream_max_seconds`, so every stream ends and reconnects during it), in every mode alike — the floor included, so push ÷ floor there is a ratio of capacities.\n",
        args.saturation_rate,
        args.saturation_step_seconds,
        args.max_in_flight,
        saturation_seconds(args),
    );
}

/// One line of the targets table.
struct Target {
    what: String,
    measured: Option<(f64, String)>,
    target: String,
    met: fn(f64) -> bool,
}

fn find<'a>(
    results: &'a [RunResult],
    scenario: &str,
    mode: &str,
    backend: Option<&str>,
    agents: Option<usize>,
) -> Option<&'a RunResult> {
    results.iter().find(|r| {
        r.scenario == scenario
            && r.mode == mode
            && r.backend.as_deref() == backend
            && agents.is_none_or(|a| r.agents == a)
    })
}

/// `push`'s delivery percentile `pick` over the floor's, when both were measured.
fn over_floor(
    push: Option<&RunResult>,
    floor: Option<&RunResult>,
    pick: fn(&Percentiles) -> f64,
) -> Option<f64> {
    let (p, f) = (pick(&push?.delivery), pick(&floor?.delivery));
    (f > 0.0).then(|| p / f)
}

/// A measured ratio with how the report shows it.
fn shown_times(v: Option<f64>) -> Option<(f64, String)> {
    v.map(|v| (v, times(v)))
}

/// The targets, each computed from this run's rows.
fn targets(w: &mut String, args: &RunArgs, results: &[RunResult]) {
    let mut rows: Vec<Target> = Vec::new();
    let floor = find(results, "scaling", "floor", None, Some(1000));
    let sat_floor = find(results, "saturation", "floor", None, None);
    for b in &args.backend {
        let name = b.name();
        let push = find(results, "scaling", "push", Some(name), Some(1000));
        let at = push
            .and_then(|p| p.offered_rate)
            .map_or(String::new(), |r| format!(" at {r:.0}/s"));
        let p50 = over_floor(push, floor, |d| d.p50);
        let p99 = over_floor(push, floor, |d| d.p99);
        match b {
            Backend::Sqlite => {
                rows.push(Target {
                    what: format!("SQLite, 1000 streams{at}: push ÷ floor, delivery p50"),
                    measured: shown_times(p50),
                    target: "≤ 8×".into(),
                    met: |v| v <= 8.0,
                });
                rows.push(Target {
                    what: format!("SQLite, 1000 streams{at}: push ÷ floor, delivery p99"),
                    measured: shown_times(p99),
                    target: "≤ 10×".into(),
                    met: |v| v <= 10.0,
                });
                rows.push(Target {
                    what: "SQLite, 1000 streams: host CPU at idle (% of a core)".into(),
                    measured: push
                        .and_then(|p| p.idle_cpu_percent)
                        .filter(|c| *c >= 0.0)
                        .map(|c| (c, format!("{c:.1} %"))),
                    target: "≤ 5 %".into(),
                    met: |v| v <= 5.0,
                });
                rows.push(Target {
                    what: "SQLite, 1000 streams: host RSS per stream".into(),
                    measured: push.map(|p| {
                        let kib = p.rss_per_agent() / 1024.0;
                        (kib, format!("{kib:.1} KiB"))
                    }),
                    target: "≤ 32 KiB".into(),
                    met: |v| v <= 32.0,
                });
            }
            Backend::Redis => {
                rows.push(Target {
                    what: format!("Redis, 1000 streams{at}: push ÷ floor, delivery p50"),
                    measured: shown_times(p50),
                    target: "≤ 12×".into(),
                    met: |v| v <= 12.0,
                });
                rows.push(Target {
                    what: format!(
                        "Redis, 1000 streams{at}: store operations (Redis commands) per elicitation, all told"
                    ),
                    measured: push
                        .and_then(|p| p.host.as_ref())
                        .and_then(|h| h.redis.as_ref())
                        .map(|r| (r.per_elicitation, format!("{:.1}", r.per_elicitation))),
                    target: "≤ 30".into(),
                    met: |v| v <= 30.0,
                });
            }
        }
        let sat = find(results, "saturation", "push", Some(name), None);
        rows.push(Target {
            what: format!(
                "{}, saturation: push ÷ floor, elicitations/s answered (capacities, same run)",
                b.title()
            ),
            measured: sat.zip(sat_floor).and_then(|(p, f)| {
                let f = f.elicitations_per_second.answered;
                (f > 0.0).then(|| {
                    let r = p.elicitations_per_second.answered / f;
                    (
                        r,
                        format!(
                            "{} ({:.0} ÷ {f:.0})",
                            fraction(r),
                            p.elicitations_per_second.answered
                        ),
                    )
                })
            }),
            target: "≥ 1/8 (0.125)".into(),
            met: |v| v >= 0.125,
        });
    }
    let scale_floor = find(results, "scale-out", "floor", None, None);
    if let Some(two) = results
        .iter()
        .find(|r| r.scenario == "scale-out" && r.mode == "push" && r.nodes == 2)
    {
        let agents = two.agents;
        let what = format!(
            "Redis, 2 nodes, {agents} streams, creates on the other node: push ÷ floor, delivery"
        );
        rows.push(Target {
            what: format!("{what} p50"),
            measured: shown_times(over_floor(Some(two), scale_floor, |d| d.p50)),
            target: "≤ 12×".into(),
            met: |v| v <= 12.0,
        });
        rows.push(Target {
            what: format!("{what} p99"),
            measured: shown_times(over_floor(Some(two), scale_floor, |d| d.p99)),
            target: "≤ 15×".into(),
            met: |v| v <= 15.0,
        });
        rows.push(Target {
            what: format!("Redis, 2 nodes, {agents} streams, idle: Redis commands/s per node"),
            measured: two
                .host
                .as_ref()
                .and_then(|h| h.redis_commands_idle)
                .map(|v| (v / 2.0, format!("{:.0}", v / 2.0))),
            target: "≤ 200".into(),
            met: |v| v <= 200.0,
        });
    }
    if let Some(rec) = find(results, "node-kill", "push", Some("redis"), None)
        .and_then(|r| r.recovery.as_ref().map(|rec| (r, rec)))
    {
        let (r, rec) = rec;
        let once = rec.delivered_of_those == rec.acknowledged_before_kill && r.duplicates == 0;
        rows.push(Target {
            what: "Node kill through the balancer: acknowledged before the kill → delivered exactly once".into(),
            measured: Some((
                f64::from(u8::from(once)),
                format!(
                    "{} → {}, {} duplicates",
                    rec.acknowledged_before_kill, rec.delivered_of_those, r.duplicates
                ),
            )),
            target: "all, once".into(),
            met: |v| v > 0.5,
        });
        rows.push(Target {
            what: format!(
                "Node kill: longest time from a cut stream to streaming again ({} cut, {} not back)",
                rec.streams_cut, rec.not_streaming_again
            ),
            measured: Some((
                if rec.not_streaming_again > 0 {
                    f64::INFINITY
                } else {
                    rec.longest_to_stream_again
                },
                format!("{:.2} s", rec.longest_to_stream_again),
            )),
            target: "≤ 2 s".into(),
            met: |v| v <= 2.0,
        });
    }
    let mcp_way = |m: &str| results.iter().find(|r| r.scenario == "mcp" && r.mode == m);
    if let Some(mcp) = mcp_way("mcp") {
        let round_trip = |other: Option<&RunResult>, invert: bool| {
            other.and_then(|o| {
                let (a, b) = if invert {
                    (o.round_trip.p50, mcp.round_trip.p50)
                } else {
                    (mcp.round_trip.p50, o.round_trip.p50)
                };
                (b > 0.0).then(|| a / b)
            })
        };
        rows.push(Target {
            what: format!(
                "MCP, {}: round trip p50, MCP tools ÷ plain HTTP API (same run)",
                mcp.label
            ),
            measured: shown_times(round_trip(mcp_way("http"), false)),
            target: "≤ 2×".into(),
            met: |v| v <= 2.0,
        });
        rows.push(Target {
            what: format!(
                "MCP, {}: round trip p50, `wait_for_messages` polling ÷ MCP tools (same run)",
                mcp.label
            ),
            measured: shown_times(round_trip(mcp_way("mcp-poll"), true)),
            target: "≥ 100×".into(),
            met: |v| v >= 100.0,
        });
    }
    let _ = writeln!(w, "## Targets\n");
    let _ = writeln!(
        w,
        "Each computed from the rows below (the floor rows are the same run's).\n\n| target | measured | target | met |\n|---|---|---|---|"
    );
    for t in rows {
        let (measured, met) = match &t.measured {
            Some((v, shown)) => (
                shown.clone(),
                if (t.met)(*v) { "met" } else { "not met" }.to_string(),
            ),
            None => ("not measured in this run".into(), "–".into()),
        };
        let _ = writeln!(w, "| {} | {measured} | {} | {met} |", t.what, t.target);
    }
    let _ = writeln!(w);
}

fn main_table(w: &mut String, rows: &[&RunResult]) {
    let _ = writeln!(
        w,
        "| step | mode | delivery p50 / p90 / p99 / max (ms) | round trip p50 / p99 (ms) | create p50 / p99 (ms) | delivered | dup | order | errors | stream ends: planned / cut | elicitations/s created / delivered / answered | CPU (% of a core): server / Redis / client | RSS: server / Redis |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ends = if r.mode == "poll" {
            "–".to_string()
        } else {
            let cut: u64 = r.stream_cuts.values().sum();
            let mut cell = format!("{} / {cut}", r.planned_ends);
            if cut > 0 {
                cell.push_str(&format!(
                    " ({})",
                    r.stream_cuts
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            cell
        };
        let e = r.elicitations_per_second;
        let _ = writeln!(
            w,
            "| {} | {} | {:.2} / {:.2} / {:.2} / {:.2} | {:.2} / {:.2} | {} | {}/{} ({:.1} %) | {} | {} | {} | {ends} | {:.0} / {:.0} / {:.0} | {:.1} / {} / {:.1} | {:.1} MiB / {} |",
            r.label,
            variant(r),
            r.delivery.p50,
            r.delivery.p90,
            r.delivery.p99,
            r.delivery.max,
            r.round_trip.p50,
            r.round_trip.p99,
            if r.create.count == 0 {
                "–".to_string()
            } else {
                format!("{:.2} / {:.2}", r.create.p50, r.create.p99)
            },
            r.delivered,
            r.accepted,
            r.delivery_rate,
            r.duplicates,
            {
                let mut cell = r.order_violations.to_string();
                if r.gaps > 0 {
                    cell.push_str(&format!(" ({} sealed)", r.gaps));
                }
                if r.resets > 0 {
                    cell.push_str(&format!(" (re-synced {}×)", r.resets));
                }
                cell
            },
            errors(r),
            e.created,
            e.delivered,
            e.answered,
            r.load_cpu_percent,
            r.store_cpu_percent
                .map_or("–".into(), |c| format!("{c:.1}")),
            r.client_cpu_percent,
            mib(r.rss_after),
            r.store_rss_after
                .map_or("–".into(), |b| format!("{:.1} MiB", mib(b))),
        );
    }
    let _ = writeln!(w);
}

fn ratios(w: &mut String, rows: &[&RunResult]) {
    let labels: Vec<&str> = {
        let mut seen = BTreeSet::new();
        rows.iter()
            .map(|r| r.label.as_str())
            .filter(|l| seen.insert(*l))
            .collect()
    };
    let find = |l: &str, m: &str| rows.iter().find(|r| r.label == l && r.mode == m);
    // A step whose label has no floor row of its own (scale-out's "…, 2 nodes") is compared with
    // the scenario's floor row for as many agents.
    let floor_for = |push: &RunResult| {
        find(&push.label, "floor").or_else(|| {
            rows.iter()
                .find(|r| r.mode == "floor" && r.agents == push.agents)
        })
    };
    if !rows.iter().any(|r| r.mode == "push") || rows.iter().all(|r| r.mode == "push") {
        return;
    }
    let _ = writeln!(
        w,
        "| step | poll ÷ push, delivery p50 / p99 | poll ÷ push, round trip p50 | push ÷ floor, delivery p50 / p99 |"
    );
    let _ = writeln!(w, "|---|---|---|---|");
    for l in labels {
        let Some(push) = find(l, "push") else {
            continue;
        };
        let poll = find(l, "poll");
        let floor = floor_for(push);
        let _ = writeln!(
            w,
            "| {l} | {} / {} | {} | {} / {} |",
            poll.map_or("–".into(), |p| ratio(p.delivery.p50, push.delivery.p50)),
            poll.map_or("–".into(), |p| ratio(p.delivery.p99, push.delivery.p99)),
            poll.map_or("–".into(), |p| ratio(
                p.round_trip.p50,
                push.round_trip.p50
            )),
            floor.map_or("–".into(), |f| ratio(push.delivery.p50, f.delivery.p50)),
            floor.map_or("–".into(), |f| ratio(push.delivery.p99, f.delivery.p99)),
        );
    }
    let _ = writeln!(w);
}

/// The store's work per elicitation, for the app's rows.
fn store_table(w: &mut String, rows: &[&RunResult]) {
    let app: Vec<(&RunResult, &server::HostFigures)> = rows
        .iter()
        .filter_map(|r| r.host.as_ref().map(|h| (*r, h)))
        .collect();
    if app.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "Store operations per elicitation (all told, from the first create sent until everything settled):\n\n| step | mode | elicitations | host KV calls / keys read / keys written | other host KV counters | Redis commands | Redis commands by kind |\n|---|---|---|---|---|---|---|"
    );
    for (r, h) in app {
        let (main, other) = match &h.load {
            Some(l) => {
                let get = |k: &str| l.per_elicitation.get(k).copied().unwrap_or(0.0);
                let other: Vec<String> = l
                    .per_elicitation
                    .iter()
                    .filter(|(k, v)| {
                        !["calls", "keysRead", "keysWritten"].contains(&k.as_str()) && **v > 0.0
                    })
                    .map(|(k, v)| format!("{k} {v:.2}"))
                    .collect();
                (
                    format!(
                        "{:.1} / {:.1} / {:.1}",
                        get("calls"),
                        get("keysRead"),
                        get("keysWritten")
                    ),
                    if other.is_empty() {
                        "–".into()
                    } else {
                        other.join(", ")
                    },
                )
            }
            None => ("– (host restarted)".into(), "–".into()),
        };
        let (total, kinds) = match &h.redis {
            Some(rl) => {
                let mut by: Vec<(&String, &f64)> = rl.by_command.iter().collect();
                by.sort_by(|a, b| b.1.total_cmp(a.1));
                (
                    format!("{:.1}", rl.per_elicitation),
                    if by.is_empty() {
                        "–".into()
                    } else {
                        by.iter()
                            .map(|(k, v)| format!("{k} {v:.2}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                )
            }
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {main} | {other} | {total} | {kinds} |",
            r.label,
            variant(r),
            h.elicitations
        );
    }
    let _ = writeln!(w);
}

fn scaling_extra(w: &mut String, rows: &[&RunResult]) {
    let _ = writeln!(
        w,
        "Idle cost, every agent connected and no traffic, and the store load:\n\n| step | mode | connect (s) | idle CPU (% of a core): server / Redis | RSS idle / per agent | KV keys read/s idle | Redis commands/s idle | KV keys read/s / written/s under load | `events` instances |\n|---|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let host = r.host.as_ref();
        let _ = writeln!(
            w,
            "| {} | {} | {:.2} | {} / {} | {:.1} MiB / {:.1} KiB | {} | {} | {} | {} |",
            r.label,
            variant(r),
            r.connect_seconds,
            r.idle_cpu_percent.map_or("–".into(), |c| format!("{c:.1}")),
            r.idle_store_cpu_percent
                .map_or("–".into(), |c| format!("{c:.1}")),
            mib(r.rss_connected),
            r.rss_per_agent() / 1024.0,
            host.and_then(|h| h.kv_reads_idle)
                .map_or("–".into(), |v| format!("{v:.0}")),
            host.and_then(|h| h.redis_commands_idle)
                .map_or("–".into(), |v| format!("{v:.0}")),
            host.and_then(|h| h.load.as_ref())
                .map_or("–".into(), |l| format!(
                    "{:.0} / {:.0}",
                    l.reads_per_second, l.writes_per_second
                )),
            host.map_or("–".into(), |h| h.stream_instances.to_string()),
        );
    }
    let _ = writeln!(w);
}

/// The MCP scenario's ratios: each way's round trip against the MCP tools'.
fn mcp_extra(w: &mut String, rows: &[&RunResult]) {
    let way = |m: &str| rows.iter().find(|r| r.mode == m);
    let Some(mcp) = way("mcp") else {
        return;
    };
    let _ = writeln!(
        w,
        "| way | round trip p50 / p99 (ms) | ÷ MCP tools, round trip p50 / p99 |\n|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            w,
            "| {} | {:.2} / {:.2} | {} / {} |",
            r.mode,
            r.round_trip.p50,
            r.round_trip.p99,
            ratio(r.round_trip.p50, mcp.round_trip.p50),
            ratio(r.round_trip.p99, mcp.round_trip.p99),
        );
    }
    let _ = writeln!(w);
}

fn scale_out_extra(w: &mut String, rows: &[&RunResult]) {
    let _ = writeln!(
        w,
        "Per node (every process shares the same cores, so CPU is what each used of them):

| step | Redis commands/s idle, per node | Redis commands/s under load | Redis commands per elicitation | CPU under load (% of a core), each node | CPU idle, each node | Redis CPU under load | RSS at the end, each node |
|---|---|---|---|---|---|---|---|"
    );
    let list = |v: &[f64]| {
        v.iter()
            .map(|c| format!("{c:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    for r in rows.iter().filter(|r| r.nodes > 0) {
        let redis = r.host.as_ref().and_then(|h| h.redis.as_ref());
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            r.host
                .as_ref()
                .and_then(|h| h.redis_commands_idle)
                .map_or("–".into(), |v| format!("{:.0}", v / r.nodes as f64)),
            redis.map_or("–".into(), |l| format!("{:.0}", l.per_second)),
            redis.map_or("–".into(), |l| format!("{:.1}", l.per_elicitation)),
            list(&r.node_cpu_percent),
            list(&r.node_idle_cpu_percent),
            r.store_cpu_percent
                .map_or("–".into(), |c| format!("{c:.0}")),
            r.node_rss
                .iter()
                .map(|b| format!("{:.0} MiB", mib(*b)))
                .collect::<Vec<_>>()
                .join(" / "),
        );
    }
    let _ = writeln!(w);
}

fn saturation_extra(w: &mut String, rows: &[&RunResult]) {
    let floor = rows
        .iter()
        .find(|r| r.mode == "floor")
        .map(|r| r.elicitations_per_second.answered);
    let _ = writeln!(
        w,
        "How each mode's offered rate was found, and its capacity (elicitations/s of the measured step):\n\n| mode | ramp: offered → delivered per s (each step) | measured step: offered /s | created / delivered / answered per s | saturated (delivered < 95 % of offered) | ÷ floor, answered per s |\n|---|---|---|---|---|---|"
    );
    for r in rows {
        let e = r.elicitations_per_second;
        let _ = writeln!(
            w,
            "| {} | {} | {} | {:.0} / {:.0} / {:.0} | {} | {} |",
            variant(r),
            r.ramp
                .iter()
                .map(|s| format!(
                    "{:.0} → {:.0}{}",
                    s.offered,
                    s.delivered,
                    if s.kept_up { "" } else { " (fell behind)" }
                ))
                .collect::<Vec<_>>()
                .join(", "),
            r.offered_rate.map_or("–".into(), |o| format!("{o:.0}")),
            e.created,
            e.delivered,
            e.answered,
            match r.saturated() {
                Some(true) => "yes",
                Some(false) => "no",
                None => "–",
            },
            match floor {
                Some(f) if r.mode != "floor" && f > 0.0 => fraction(e.answered / f),
                _ => "–".into(),
            },
        );
    }
    let _ = writeln!(w);
}

fn timeout_extra(w: &mut String, rows: &[&RunResult]) {
    let _ = writeln!(
        w,
        "Expiries (deadline → the requester's `expired` event; in poll mode the requester reads its overdue requests once per second, which is how a polling client notices):\n\n| mode | expired / expected | lateness p50 / p90 / p99 / max (ms) | answered / expected |\n|---|---|---|---|"
    );
    for r in rows {
        let e = r.expiry_lateness.clone().unwrap_or_default();
        let _ = writeln!(
            w,
            "| {} | {}/{} | {:.0} / {:.0} / {:.0} / {:.0} | {}/{} |",
            variant(r),
            r.expired,
            r.expected_expiries,
            e.p50,
            e.p90,
            e.p99,
            e.max,
            r.answered,
            r.expected_answers
        );
    }
    let _ = writeln!(w);
}

fn sustained_extra(w: &mut String, rows: &[&RunResult]) {
    let _ = writeln!(
        w,
        "Server RSS over the run (samples every 5 s):\n\n| mode | first sample | last sample | change | samples (MiB) |\n|---|---|---|---|---|"
    );
    for r in rows {
        let (Some(first), Some(last)) = (r.rss_series.first(), r.rss_series.last()) else {
            continue;
        };
        let _ = writeln!(
            w,
            "| {} | {:.1} MiB | {:.1} MiB | {:+.1} MiB | {} |",
            variant(r),
            mib(first.1),
            mib(last.1),
            mib(last.1) - mib(first.1),
            r.rss_series
                .iter()
                .map(|(_, b)| format!("{:.1}", mib(*b)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(w);
}

/// One soak sample: seconds, host RSS, the store.
type SoakSample = (f64, u64, crate::server::StoreStats);

/// One measure read off a soak sample.
type Reading = dyn Fn(&SoakSample) -> Option<f64>;

/// The samples after a soak's warm-up: two lifetimes of an elicitation (its ttl, then its
/// retention, then a second), and never the first sample.
fn after_warm_up(r: &RunResult) -> Vec<&SoakSample> {
    let (retention, ttl) = r.soak_lifetime.unwrap_or((0, 0));
    let warm_up = 2.0 * (retention + ttl + 1) as f64;
    r.soak_series
        .iter()
        .skip(1)
        .filter(|(t, _, _)| *t >= warm_up)
        .collect()
}

/// The least-squares slope of `points` (units per second), if there are two or more.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    (den > 0.0).then(|| num / den)
}

fn soak_extra(w: &mut String, rows: &[&RunResult]) {
    for r in rows {
        let samples = after_warm_up(r);
        let (retention, ttl) = r.soak_lifetime.unwrap_or((0, 0));
        let line = |f: &Reading| {
            let points: Vec<(f64, f64)> =
                samples.iter().filter_map(|s| Some((s.0, f(s)?))).collect();
            let first = points.first().map(|p| p.1);
            let last = points.last().map(|p| p.1);
            (slope(&points), first, last)
        };
        let _ = writeln!(
            w,
            "{}: `retention_seconds` = {retention}, `ttlSeconds` = {ttl}; warm-up = the first {:.0} s (two lifetimes of an elicitation), {} samples after it. Slopes are least-squares fits over those samples.\n\n| measure | after warm-up: first → last | slope | slope × the run |\n|---|---|---|---|",
            variant(r),
            2.0 * (retention + ttl + 1) as f64,
            samples.len()
        );
        let span = samples
            .last()
            .zip(samples.first())
            .map_or(0.0, |(l, f)| l.0 - f.0);
        type Measure<'a> = (
            &'a str,
            &'a dyn Fn(&(f64, u64, crate::server::StoreStats)) -> Option<f64>,
        );
        let measures: [Measure<'_>; 4] = [
            ("host RSS (MiB)", &|s| Some(mib(s.1))),
            ("store size (MiB)", &|s| Some(mib(s.2.bytes))),
            ("keys outside the logs and the feed ring", &|s| {
                s.2.keys_outside_logs.map(|k| k as f64)
            }),
            ("keys in all", &|s| Some(s.2.keys as f64)),
        ];
        for (name, f) in measures {
            let (sl, first, last) = line(f);
            let (Some(sl), Some(first), Some(last)) = (sl, first, last) else {
                continue;
            };
            let _ = writeln!(
                w,
                "| {name} | {first:.1} → {last:.1} | {sl:+.4}/s | {:+.1} |",
                sl * span
            );
        }
        let _ = writeln!(
            w,
            "\nRetention takes an elicitation's events out of the logs too, leaving at each of its slots only the void marker (one key, no content) that a reader passes; the logs keep their newest 1000 slots each (and 8000 claim counters, of numbers not forgotten), so the keys inside them grow until every log is that long — {} agents × (2 × 1000 + 8000) keys at most — which a 10-minute soak does not reach, and the change feed's ring fills its 4096 slots in the first minutes; the keys outside both are everything retention governs (records, index entries, deadlines, idempotency claims, rate counts).\n",
            r.agents
        );
        let _ = writeln!(
            w,
            "| seconds | host RSS (MiB) | store size (MiB) | keys in all | keys outside the logs and the feed ring |\n|---|---|---|---|---|"
        );
        for (t, rss, store) in &r.soak_series {
            let _ = writeln!(
                w,
                "| {t:.0} | {:.1} | {:.1} | {} | {} |",
                mib(*rss),
                mib(store.bytes),
                store.keys,
                store
                    .keys_outside_logs
                    .map_or_else(|| "—".to_string(), |k| k.to_string())
            );
        }
        let _ = writeln!(w);
    }
}

fn recovery_extra(w: &mut String, rows: &[&RunResult]) {
    let _ = writeln!(
        w,
        "| mode | kill → serving again (s) | kill → first new request delivered (s) | acknowledged before the kill → delivered | streams cut → not streaming again at the end | longest cut → streaming again (s) | failed while down (expected) |\n|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let Some(rec) = &r.recovery else { continue };
        let _ = writeln!(
            w,
            "| {} | {:.2} | {:.2} | {} → {} | {} → {} | {:.2} | {} |",
            variant(r),
            rec.serving_after,
            rec.first_delivery_after,
            rec.acknowledged_before_kill,
            rec.delivered_of_those,
            rec.streams_cut,
            rec.not_streaming_again,
            rec.longest_to_stream_again,
            if r.outage_errors.is_empty() {
                "none".into()
            } else {
                r.outage_errors
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    let _ = writeln!(w);
}

/// Writes the plots; returns (scenario, file, caption) of each.
fn write_plots(dir: &Path, results: &[RunResult]) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    let mut save = |scenario: &str, file: &str, caption: &str, svg: String| -> anyhow::Result<()> {
        std::fs::write(dir.join(file), svg)?;
        out.push((scenario.to_string(), file.to_string(), caption.to_string()));
        Ok(())
    };
    // Latency CDF, every mode and backend, at the largest scaling step.
    let scaling: Vec<&RunResult> = results.iter().filter(|r| r.scenario == "scaling").collect();
    if let Some(max) = scaling.iter().map(|r| r.agents).max() {
        let series: Vec<Series> = scaling
            .iter()
            .filter(|r| r.agents == max)
            .map(|r| Series {
                name: variant(r),
                points: r.delivery_cdf.clone(),
            })
            .collect();
        let caption = format!("Delivery latency CDF at {max} agents");
        save(
            "scaling",
            "latency-cdf.svg",
            &caption,
            line_chart(
                &caption,
                &Axis {
                    label: "delivery latency (ms, log)".into(),
                    log: true,
                },
                &Axis {
                    label: "fraction of events delivered".into(),
                    log: false,
                },
                &series,
            ),
        )?;
        // p99 vs agent count.
        let variants: BTreeSet<String> = scaling.iter().map(|r| variant(r)).collect();
        let series: Vec<Series> = variants
            .into_iter()
            .map(|m| Series {
                points: scaling
                    .iter()
                    .filter(|r| variant(r) == m)
                    .map(|r| (r.agents as f64, r.delivery.p99))
                    .collect(),
                name: m,
            })
            .collect();
        save(
            "scaling",
            "p99-vs-agents.svg",
            "Delivery p99 vs agent count",
            line_chart(
                "Delivery p99 vs agent count",
                &Axis {
                    label: "agents (log)".into(),
                    log: true,
                },
                &Axis {
                    label: "delivery p99 (ms, log)".into(),
                    log: true,
                },
                &series,
            ),
        )?;
    }
    // Arrivals vs offered load: the saturation ramps, and each measured step as its last point.
    let saturation: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.scenario == "saturation")
        .collect();
    if !saturation.is_empty() {
        let mut series: Vec<Series> = saturation
            .iter()
            .map(|r| Series {
                name: variant(r),
                points: r
                    .ramp
                    .iter()
                    .map(|s| (s.offered, s.delivered))
                    .chain(
                        r.offered_rate
                            .map(|o| (o, r.elicitations_per_second.delivered)),
                    )
                    .collect(),
            })
            .collect();
        for s in &mut series {
            s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let offered: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        let lo = offered.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = offered.iter().copied().fold(0.0, f64::max);
        if lo.is_finite() && hi > 0.0 {
            series.push(Series {
                name: "delivered = offered".into(),
                points: vec![(lo, lo), (hi, hi)],
            });
        }
        save(
            "saturation",
            "capacity.svg",
            "Delivered vs offered creates per second (saturation ramp, then the measured step)",
            line_chart(
                "Delivered vs offered creates per second",
                &Axis {
                    label: "offered creates/s (log)".into(),
                    log: true,
                },
                &Axis {
                    label: "created events delivered/s (log)".into(),
                    log: true,
                },
                &series,
            ),
        )?;
    }
    let sustained: Vec<Series> = results
        .iter()
        .filter(|r| r.scenario == "sustained")
        .map(|r| Series {
            name: variant(r),
            points: r.rss_series.iter().map(|(t, b)| (*t, mib(*b))).collect(),
        })
        .collect();
    if !sustained.is_empty() {
        save(
            "sustained",
            "rss-over-time.svg",
            "Server RSS over the sustained run",
            line_chart(
                "Server RSS over the sustained run",
                &Axis {
                    label: "seconds".into(),
                    log: false,
                },
                &Axis {
                    label: "RSS (MiB)".into(),
                    log: false,
                },
                &sustained,
            ),
        )?;
    }
    for r in results.iter().filter(|r| r.scenario == "soak") {
        let series = |name: &str, f: &Reading| Series {
            name: name.to_string(),
            points: r
                .soak_series
                .iter()
                .filter_map(|s| Some((s.0, f(s)?)))
                .collect(),
        };
        let seconds = Axis {
            label: "seconds".into(),
            log: false,
        };
        save(
            "soak",
            "soak-memory.svg",
            "Host RSS and store size over the soak",
            line_chart(
                "Host RSS and store size over the soak",
                &seconds,
                &Axis {
                    label: "MiB".into(),
                    log: false,
                },
                &[
                    series("host RSS", &|s| Some(mib(s.1))),
                    series("store size", &|s| Some(mib(s.2.bytes))),
                ],
            ),
        )?;
        save(
            "soak",
            "soak-keys.svg",
            "Store keys over the soak",
            line_chart(
                "Store keys over the soak",
                &seconds,
                &Axis {
                    label: "keys".into(),
                    log: false,
                },
                &[
                    series("keys in all", &|s| Some(s.2.keys as f64)),
                    series("keys outside the logs and the feed ring", &|s| {
                        s.2.keys_outside_logs.map(|k| k as f64)
                    }),
                ],
            ),
        )?;
    }
    Ok(out)
}
