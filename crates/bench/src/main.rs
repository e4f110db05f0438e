//! `lighthouse-bench` — measures delivery over real HTTP through the real components.
//!
//! Twelve scenarios ([`scenarios`]): single pair, scaling, saturation, burst, timeout cascade, store
//! contention, sustained load, soak (a long steady load with a short `retention_seconds`, the
//! host's RSS and the store's size and keys sampled), failure recovery, scale-out (the app on
//! `--nodes` hosts sharing one Redis, streams spread over them, creates sent to another node than
//! their addressee's), node kill (two nodes behind HAProxy, one killed half-way) and MCP. Each runs, in the same invocation and with the same
//! parameters, up to three modes:
//! - **push**: every agent holds its SSE stream (`/v1/agents/:agent/events`) on `spin-local`;
//! - **poll**: every agent loops on the legacy `wait_for_messages` route (the seed's 1 s polling);
//! - **floor**: a minimal native SSE fan-out server (this binary's `floor-server`, in memory, no Wasm,
//!   no store), wherever the scenario is plain delivery, to show what this machine can do at all.
//!
//! The app runs on each key-value backend asked for (`--backend sqlite,redis`): the scaling and
//! saturation scenarios run push on every backend (poll on the first, the floor once); the other
//! scenarios run on the first backend.
//!
//! The load generator's agents ([`agents`]) answer each request as soon as they are told of it and record
//! on one process clock when each request reached its addressee and when the answer reached the
//! requester; streaming agents reconnect as an `EventSource` does ([`sse`]). Servers run as child
//! processes on fresh state ([`server`], Redis in [`redis`]); their CPU time and RSS come from
//! `/proc`, the host's key-value load from its own counters, Redis's from `INFO commandstats`.
//! Every number in the report ([`report`], with [`plots`]) is a number this run measured.

mod agents;
mod floor;
mod plots;
mod proc_stats;
mod redis;
mod report;
mod scenarios;
mod server;
mod sse;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lighthouse-bench",
    about = "Push vs polling vs native floor, measured end to end"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Writes BENCHMARKS.md and the plots again from a results file of an earlier run.
    Report {
        /// A `bench/results/*.json` file.
        results: PathBuf,
    },
    /// The native SSE fan-out server used as the floor (started by the benchmark itself).
    FloorServer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// A stream ends by itself within the last fifth of this many seconds (the app's
        /// `stream_max_seconds`).
        #[arg(long, default_value_t = 25)]
        max_seconds: u64,
        /// `retry:` at the opening of a stream, milliseconds.
        #[arg(long, default_value_t = 1000)]
        retry_ms: u64,
        /// `retry:` sent with the closing comment of a planned end, milliseconds.
        #[arg(long, default_value_t = 1000)]
        closing_retry_ms: u64,
    },
}

/// Every scenario, in the order they run.
const ALL_SCENARIOS: &str = "single-pair,scaling,saturation,burst,timeout-cascade,contention,sustained,soak,recovery,scale-out,node-kill,mcp";

/// What to run.
#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// Scenarios to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = ALL_SCENARIOS)]
    pub scenarios: Vec<String>,
    /// Scaling: agent counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    pub agents: Vec<usize>,
    /// Scaling: total elicitations per second across all agents.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Scaling: seconds of load per agent count.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Key-value backends of the app (comma-separated: sqlite, redis). Scaling and saturation run
    /// push on each; everything else runs on the first.
    #[arg(long, value_delimiter = ',', default_value = "sqlite")]
    pub backend: Vec<server::Backend>,
    /// Saturation: the offered rate (creates/s to 1000 agents) the ramp starts from; it is raised
    /// ×1.5 every `--saturation-step-seconds` until arrivals stop keeping up.
    #[arg(long, default_value_t = 250.0)]
    pub saturation_rate: f64,
    /// Saturation: seconds of each ramp step.
    #[arg(long, default_value_t = 2.0)]
    pub saturation_step_seconds: f64,
    /// Saturation: seconds of the measured step at the saturating rate (default: 1.4 ×
    /// `stream_max_seconds`, so every stream ends and reconnects during it).
    #[arg(long)]
    pub saturation_seconds: Option<f64>,
    /// Saturation: at most this many creates awaiting their acknowledgement at once (the open
    /// loop waits for room beyond it, so a saturated server is not sent unbounded connections).
    #[arg(long, default_value_t = 1024)]
    pub max_in_flight: usize,
    /// Single pair: sequential elicitations.
    #[arg(long, default_value_t = 100)]
    pub pair_count: u64,
    /// Burst, timeout cascade, contention, recovery: seconds of load per phase.
    #[arg(long, default_value_t = 5.0)]
    pub phase_seconds: f64,
    /// Sustained: seconds of load.
    #[arg(long, default_value_t = 30.0)]
    pub sustained_seconds: f64,
    /// Sustained: agents.
    #[arg(long, default_value_t = 100)]
    pub sustained_agents: usize,
    /// Sustained: elicitations per second.
    #[arg(long, default_value_t = 100.0)]
    pub sustained_rate: f64,
    /// Soak: seconds of steady load.
    #[arg(long, default_value_t = 600.0)]
    pub soak_seconds: f64,
    /// Soak: agents.
    #[arg(long, default_value_t = 1000)]
    pub soak_agents: usize,
    /// Soak: elicitations per second.
    #[arg(long, default_value_t = 100.0)]
    pub soak_rate: f64,
    /// Soak: the app's `retention_seconds`, short so that elicitations are deleted during the run.
    #[arg(long, default_value_t = 20)]
    pub soak_retention_seconds: u64,
    /// Soak: each elicitation's `ttlSeconds` (its retention runs from its deadline's second).
    #[arg(long, default_value_t = 20)]
    pub soak_ttl_seconds: u64,
    /// Soak: seconds between samples of the host's RSS and the store's size and keys.
    #[arg(long, default_value_t = 10.0)]
    pub soak_sample_seconds: f64,
    /// `retention_seconds` of the app under test (default: the app's own; the soak sets its own).
    #[arg(long)]
    pub retention_seconds: Option<u64>,
    /// Seconds over which idle CPU is sampled (all streams open, no traffic).
    #[arg(long, default_value_t = 5.0)]
    pub idle_seconds: f64,
    /// Scale-out: the numbers of app nodes (hosts on one Redis) to run the largest `--agents`
    /// count over (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub nodes: Vec<usize>,
    /// MCP: pairs of agents doing round trips at once (each way: MCP tools, plain HTTP, the
    /// legacy polling tool).
    #[arg(long, default_value_t = 100)]
    pub mcp_pairs: usize,
    /// MCP: sequential round trips per pair.
    #[arg(long, default_value_t = 10)]
    pub mcp_rounds: u64,
    /// MCP: milliseconds between the questions of one pair (the polling tool needs about a
    /// second per round trip, so every way can keep this pace).
    #[arg(long, default_value_t = 2000)]
    pub mcp_interval_ms: u64,
    /// Modes to run (comma-separated: push, poll, floor).
    #[arg(long, value_delimiter = ',', default_value = "push,poll,floor")]
    pub modes: Vec<String>,
    /// `stream_tick_ms` of the app under test (default: the app's own default in spin.toml).
    #[arg(long)]
    pub tick_ms: Option<u64>,
    /// `stream_max_seconds` of the app under test, which the floor's streams follow too (default:
    /// the app's own default in spin.toml; 3 with --quick, so that streams end and reconnect in it).
    #[arg(long)]
    pub stream_max_seconds: Option<u64>,
    /// Requests one `events` (streams) or `subscribe` (polls, waits) instance may hold
    /// (`spin-local --component-concurrent-reuse`); the default is what `scripts/serve` uses.
    #[arg(long, default_value_t = 4096)]
    pub stream_reuse: usize,
    /// Cap on `events` and on `subscribe` instances (`spin-local --component-max-instances`;
    /// 0 = no cap); the default is what `scripts/serve` uses.
    #[arg(long, default_value_t = 1)]
    pub stream_instances: usize,
    /// Small, correctness-only run of every scenario for CI (on `--backend` too); fails unless
    /// every run is clean.
    #[arg(long)]
    pub quick: bool,
    /// Where JSON results go; BENCHMARKS.md is written beside the repository root unless --quick.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.command {
        Some(Command::Report { results }) => report::rewrite(&results),
        Some(Command::FloorServer {
            listen,
            max_seconds,
            retry_ms,
            closing_retry_ms,
        }) => rt.block_on(floor::serve(
            listen,
            floor::Options {
                max_seconds: max_seconds.max(1),
                retry_ms,
                closing_retry_ms,
            },
        )),
        None => {
            let mut args = cli.run;
            let mut seen = std::collections::HashSet::new();
            args.backend.retain(|b| seen.insert(*b));
            anyhow::ensure!(!args.backend.is_empty(), "--backend names no backend");
            if args.backend.contains(&server::Backend::Redis) {
                redis::check_installed()?;
            }
            if args.quick {
                args.agents = vec![10];
                args.duration = 2.0;
                args.rate = 20.0;
                args.idle_seconds = 1.0;
                args.pair_count = 5;
                args.phase_seconds = 2.0;
                args.sustained_seconds = 6.0;
                args.sustained_agents = 10;
                args.sustained_rate = 10.0;
                args.soak_seconds = 30.0;
                args.soak_agents = 20;
                args.soak_rate = 10.0;
                args.soak_retention_seconds = 3;
                args.soak_ttl_seconds = 3;
                args.soak_sample_seconds = 5.0;
                args.stream_max_seconds.get_or_insert(3);
                args.saturation_rate = 50.0;
                args.saturation_step_seconds = 1.0;
                args.mcp_pairs = 3;
                args.mcp_rounds = 3;
            }
            let ticks = format!(
                "`stream_tick_ms` = {}, `stream_idle_tick_ms` = {}",
                args.tick_ms
                    .map(|t| t.to_string())
                    .or_else(|| server::app_default("stream_tick_ms"))
                    .unwrap_or_default(),
                server::app_default("stream_idle_tick_ms").unwrap_or_default()
            );
            let results = rt.block_on(run(&args))?;
            let failed = results.iter().filter(|r| !r.clean()).count();
            report::write(&args, &results, &ticks)?;
            if failed > 0 {
                anyhow::bail!(
                    "{failed} run(s) lost, duplicated, reordered or failed events; see the report"
                );
            }
            rt.shutdown_timeout(Duration::from_millis(200));
            Ok(())
        }
    }
}

/// The run arguments of a command line (`lighthouse-bench …`), as a results file records it.
pub fn run_args<'a>(words: impl IntoIterator<Item = &'a str>) -> anyhow::Result<RunArgs> {
    Ok(Cli::try_parse_from(words)?.run)
}

/// Runs the chosen scenarios in order.
async fn run(args: &RunArgs) -> anyhow::Result<Vec<scenarios::RunResult>> {
    let mut results = Vec::new();
    for name in &args.scenarios {
        eprintln!("{name}:");
        let rows = match name.as_str() {
            "single-pair" => scenarios::single_pair(args).await,
            "scaling" => scenarios::scaling(args).await,
            "saturation" => scenarios::saturation(args).await,
            "burst" => scenarios::burst(args).await,
            "timeout-cascade" => scenarios::timeout_cascade(args).await,
            "contention" => scenarios::contention(args).await,
            "sustained" => scenarios::sustained(args).await,
            "soak" => scenarios::soak(args).await,
            "recovery" => scenarios::recovery(args).await,
            "scale-out" => scenarios::scale_out(args).await,
            "node-kill" => scenarios::node_kill(args).await,
            "mcp" => scenarios::mcp(args).await,
            other => anyhow::bail!("unknown scenario {other:?} (one of {ALL_SCENARIOS})"),
        };
        results.extend(rows.map_err(|e| anyhow::anyhow!("{name}: {e:#}"))?);
    }
    Ok(results)
}
