//! `lighthouse-bench` — measures delivery over real HTTP through the real components.
//!
//! For each agent count it runs three modes with the same load, in one invocation:
//! - **push**: every agent holds its SSE stream (`/v1/agents/:agent/events`) on `spin-local`;
//! - **poll**: every agent loops on the legacy `wait_for_messages` route (the seed's 1 s polling);
//! - **floor**: a minimal native SSE fan-out server (this binary's `floor-server`, in memory, no Wasm,
//!   no store), to show what this machine can do at all.
//!
//! Each agent asks its neighbour (round robin) at a steady total rate; the addressee answers each
//! request as soon as it is told of it. Measured on one process clock: *delivery* (create request sent
//! → addressee's event received) and *round trip* (create request sent → requester's answered event
//! received). Servers run as child processes on a fresh state directory; their CPU time and RSS come
//! from `/proc`. Every number in the report is a number this run measured.

mod floor;
mod load;
mod proc_stats;
mod report;

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
    /// The native SSE fan-out server used as the floor (started by the benchmark itself).
    FloorServer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
}

/// What to run.
#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// Agent counts to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    pub agents: Vec<usize>,
    /// Total elicitations per second across all agents.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds over which idle CPU is sampled (all streams open, no traffic).
    #[arg(long, default_value_t = 5.0)]
    pub idle_seconds: f64,
    /// Modes to run (comma-separated: push, poll, floor).
    #[arg(long, value_delimiter = ',', default_value = "push,poll,floor")]
    pub modes: Vec<String>,
    /// `stream_tick_ms` of the app under test.
    #[arg(long, default_value_t = 5)]
    pub tick_ms: u64,
    /// Streams one `events` instance may hold (`spin-local --component-concurrent-reuse events=N`).
    #[arg(long, default_value_t = 128)]
    pub stream_reuse: usize,
    /// Cap on `events` instances (`spin-local --component-max-instances events=N`); 0 = no cap.
    #[arg(long, default_value_t = 0)]
    pub stream_instances: usize,
    /// Small, correctness-only run for CI: 10 agents, 2 s; fails unless every event arrives once.
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
        Some(Command::FloorServer { listen }) => rt.block_on(floor::serve(listen)),
        None => {
            let mut args = cli.run;
            if args.quick {
                args.agents = vec![10];
                args.duration = 2.0;
                args.rate = 20.0;
                args.idle_seconds = 1.0;
            }
            let results = rt.block_on(load::run_all(&args))?;
            let failed = results.iter().filter(|r| !r.clean()).count();
            report::write(&args, &results)?;
            if failed > 0 {
                anyhow::bail!("{failed} run(s) lost, duplicated or failed events; see the report");
            }
            rt.shutdown_timeout(Duration::from_millis(200));
            Ok(())
        }
    }
}
