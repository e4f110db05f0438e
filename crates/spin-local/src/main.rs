//! `spin-local` — a local Spin-compatible runtime for HTTP apps whose components target WASIp3.
//!
//! It reads a `spin.toml` (manifest v2) and serves it as `spin up` would, for machines where the
//! `spin` CLI is not available:
//! - [`manifest`] reads the manifest strictly; [`variables`] resolves application variables;
//! - [`routes`] implements Spin's HTTP routing; [`server`] runs the components on wasmtime with
//!   instance reuse and sets Spin's request headers;
//! - [`capabilities`] implements the Spin interfaces in `wit/` over the stores of [`kv`] (SQLite
//!   or Redis, with Spin's behaviour by default; `--kv-semantics interface` for the documented one);
//! - [`stats`] counts store operations, requests and instances for `/.well-known/spin/stats`.
//!
//! `spin-local build` runs each component's `[component.<id>.build]` command; `--up` then serves.

mod admission;
mod capabilities;
mod kv;
mod manifest;
mod routes;
mod server;
mod stats;
mod variables;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::kv::{RuntimeConfig, Semantics, Stores};
use crate::manifest::App;
use crate::server::{Reuse, ServeOptions, Server};
use crate::variables::Variables;

#[derive(Parser)]
#[command(
    name = "spin-local",
    version,
    about = "Serve a Spin app (manifest v2, WASIp3 HTTP components) locally"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the application, like `spin up`.
    Up(UpArgs),
    /// Run every component's build command, like `spin build`; `--up` serves afterwards.
    Build {
        /// Serve the application once the build succeeds.
        #[arg(long)]
        up: bool,
        #[command(flatten)]
        args: UpArgs,
    },
}

#[derive(Args)]
struct UpArgs {
    /// The application manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "SPIN_HTTP_LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Runtime configuration (key-value stores: `[key_value_store.<label>]` with `type = "spin"`
    /// and an optional `path`, or `type = "redis"` and `url = "redis://host:port[/db]"`).
    #[arg(long)]
    runtime_config_file: Option<PathBuf>,
    /// Key-value behaviour where Spin's backends depart from the interfaces' documentation.
    /// `spin` (the default) does what Spin's backends do, defects included: SQLite `get-many`
    /// leaves missing keys out, a compare-and-swap from a missing key is an unconditional upsert,
    /// Redis `get-many` sends `KEYS` (an error for two keys or more) and every Redis swap reports
    /// `cas-failed`, also when it wrote. `interface` follows `wasi:keyvalue` instead: `get-many`
    /// answers every key in order (`none` when missing), a swap from a missing key only creates
    /// it, every swap reports what it did, and `list-keys` accepts a cursor.
    #[arg(long, value_enum, default_value_t = Semantics::Spin)]
    kv_semantics: Semantics,
    /// Directory for logs and default stores (default: `.spin` beside the manifest).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Set an application variable (`name=value`); wins over `SPIN_VARIABLE_<NAME>`.
    #[arg(long = "variable", value_parser = parse_key_value)]
    variables: Vec<(String, String)>,
    /// Requests one WASIp3 instance serves before it is retired.
    #[arg(long, default_value_t = 128)]
    max_instance_reuse_count: usize,
    /// Requests one WASIp3 instance serves at the same time.
    #[arg(long, default_value_t = 16)]
    max_instance_concurrent_reuse_count: usize,
    /// Per-component override of the concurrent reuse count (`component=N`), e.g. for a streaming
    /// gateway; that component's instances may then also serve at least N requests in total.
    #[arg(long = "component-concurrent-reuse", value_parser = parse_key_value)]
    component_concurrent_reuse: Vec<(String, String)>,
    /// Per-component cap on the instances that accept requests (`component=N`; default: an equal
    /// share of half of `--max-instances`). Requests wait for room in an existing instance instead
    /// of starting another, so the pool does not run out under load, and a streaming gateway
    /// capped at 1 keeps its streams together and one loop polls for all of them.
    #[arg(long = "component-max-instances", value_parser = parse_key_value)]
    component_max_instances: Vec<(String, String)>,
    /// Milliseconds an instance may stay idle before it is dropped.
    #[arg(long, default_value_t = 1000)]
    idle_instance_timeout_ms: u64,
    /// Instances (across all components) the pooling allocator makes room for.
    #[arg(long, default_value_t = 2048)]
    max_instances: u32,
    /// Requests per component that may wait, in order, for room in its instances; one more is
    /// answered 503 with `Retry-After`.
    #[arg(long, default_value_t = 4096)]
    max_queued_requests: usize,
    /// Stop when standard input reaches its end: a test harness or script that holds the other end
    /// of a pipe never leaves a host running after it exits, however it exits.
    #[arg(long)]
    exit_on_stdin_eof: bool,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected name=value, got {s:?}"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => up(&args),
        Command::Build { up: serve, args } => {
            let app = App::load(&args.manifest)?;
            build(&app)?;
            if serve { up(&args) } else { Ok(()) }
        }
    }
}

fn build(app: &App) -> anyhow::Result<()> {
    for (id, decl) in &app.manifest.component {
        let Some(b) = &decl.build else { continue };
        let dir = match &b.workdir {
            Some(w) => app.base_dir.join(w),
            None => app.base_dir.clone(),
        };
        eprintln!("Building component {id} with `{}`", b.command);
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&b.command)
            .current_dir(&dir)
            .status()
            .with_context(|| format!("cannot run the build command of {id:?}"))?;
        if !status.success() {
            bail!("build command for component {id:?} failed: {status}");
        }
    }
    eprintln!("Finished building all Spin components");
    Ok(())
}

fn up(args: &UpArgs) -> anyhow::Result<()> {
    let app = App::load(&args.manifest)?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| app.base_dir.join(".spin"));
    let runtime_config = match &args.runtime_config_file {
        Some(p) => RuntimeConfig::load(p)?,
        None => RuntimeConfig::default(),
    };
    let config_dir = args
        .runtime_config_file
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let overrides: BTreeMap<String, String> = args.variables.iter().cloned().collect();
    let variables = Variables::resolve(&app.manifest.variables, &overrides, |k| {
        std::env::var(k).ok()
    })?;
    let per_component = |option: &str, pairs: &[(String, String)]| {
        let mut map = BTreeMap::new();
        for (id, n) in pairs {
            if !app.manifest.component.contains_key(id) {
                bail!("--{option} names unknown component {id:?}");
            }
            let n: usize = n.parse().with_context(|| format!("--{option} {id}={n}"))?;
            map.insert(id.clone(), n.max(1));
        }
        Ok(map)
    };
    let concurrent_reuse_overrides = per_component(
        "component-concurrent-reuse",
        &args.component_concurrent_reuse,
    )?;
    let max_instances_per_component =
        per_component("component-max-instances", &args.component_max_instances)?;
    let opts = ServeOptions {
        listen: args.listen,
        state_dir: state_dir.clone(),
        reuse: Reuse {
            max_instance_reuse_count: args.max_instance_reuse_count.max(1),
            max_instance_concurrent_reuse_count: args.max_instance_concurrent_reuse_count.max(1),
            idle_instance_timeout: Duration::from_millis(args.idle_instance_timeout_ms),
        },
        concurrent_reuse_overrides,
        max_instances_per_component,
        max_instances: args.max_instances.max(16),
        max_queued_requests: args.max_queued_requests.max(1),
    };

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (stores, notes) =
            Stores::open(&runtime_config, &config_dir, &state_dir, args.kv_semantics)?;
        let server = Server::prepare(&app, &stores, &variables, &opts)?;
        for n in notes {
            eprintln!("{n}");
        }
        let stdin_closed = stdin_eof(args.exit_on_stdin_eof);
        let stop = async {
            tokio::select! {
                () = shutdown_signal() => {}
                () = stdin_closed => {}
            }
        };
        server.run(opts.listen, stop).await
    })?;
    // In-flight streams are abandoned; the stores are consistent at every committed write.
    runtime.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

/// Resolves when standard input reaches its end, if `watch`; never otherwise.
async fn stdin_eof(watch: bool) {
    if !watch {
        return std::future::pending().await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    let _ = rx.await;
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
