//! Several nodes serving the application over one Redis, behind HAProxy configured as
//! `deploy/haproxy.cfg` says (the file `scripts/serve --nodes N` uses).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Client, Host, Kept, Redis, eventually, free_port, repo};

/// A running HAProxy in front of some nodes.
pub struct Balancer {
    _process: Kept,
    /// `http://127.0.0.1:<port>`: where clients connect.
    pub base: String,
    socket: PathBuf,
}

/// One server as the balancer sees it (`show stat`).
#[derive(Debug, Clone)]
pub struct Server {
    /// Its name (`n0`, `n1`, …).
    pub name: String,
    /// `UP`, `DOWN`, `MAINT`, …
    pub status: String,
    /// Connections the balancer has sent it so far.
    pub sessions: u64,
}

/// `host:port` of a base URL.
fn address(base: &str) -> &str {
    base.trim_start_matches("http://")
}

impl Balancer {
    /// Starts HAProxy with the repository's configuration, with its files in `dir`, sending to
    /// `nodes` (named `n0`, `n1`, … by position).
    pub fn start(dir: &Path, nodes: &[&Host]) -> Self {
        let bin = "/usr/sbin/haproxy";
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: install Debian's haproxy (.ci/run does)"
        );
        let mut config =
            std::fs::read_to_string(repo().join("deploy/haproxy.cfg")).expect("deploy/haproxy.cfg");
        for (i, node) in nodes.iter().enumerate() {
            config.push_str(&format!("    server n{i} {}\n", address(&node.base)));
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).expect("balancer config");
        let port = free_port();
        let socket = dir.join("haproxy.sock");
        let process = Kept::start(&format!(
            "LH_LISTEN=127.0.0.1:{port} LH_BALANCER_SOCKET='{}' {bin} -db -f '{}' \
             >'{}' 2>&1",
            socket.display(),
            path.display(),
            dir.join("haproxy.log").display()
        ));
        let b = Self {
            _process: process,
            base: format!("http://127.0.0.1:{port}"),
            socket,
        };
        let up = eventually(Duration::from_secs(20), || {
            let servers = b.servers();
            (servers.len() == nodes.len() && servers.iter().all(|s| s.status == "UP")).then_some(())
        });
        assert!(
            up.is_some(),
            "the balancer did not see every node up: {:?}\n{}",
            b.servers(),
            std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default()
        );
        b
    }

    /// Sends one command to the admin socket; returns the answer.
    pub fn command(&self, command: &str) -> String {
        let Ok(mut s) = UnixStream::connect(&self.socket) else {
            return String::new();
        };
        let mut out = String::new();
        if s.write_all(format!("{command}\n").as_bytes()).is_ok() {
            let _ = s.read_to_string(&mut out);
        }
        out
    }

    /// The nodes' servers as the balancer sees them now.
    pub fn servers(&self) -> Vec<Server> {
        let stat = self.command("show stat");
        let header: Vec<&str> = stat
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(px), Some(sv), Some(st), Some(tot)) =
            (col("pxname"), col("svname"), col("status"), col("stot"))
        else {
            return Vec::new();
        };
        stat.lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > tot && f[px] == "nodes" && f[sv] != "BACKEND")
            .map(|f| Server {
                name: f[sv].to_string(),
                status: f[st].to_string(),
                sessions: f[tot].parse().unwrap_or(0),
            })
            .collect()
    }

    /// Adds `node` as server `name` while the balancer runs, with the configuration's health check,
    /// and waits until the balancer sends it traffic.
    pub fn add(&self, name: &str, node: &Host) {
        let added = self.command(&format!(
            "add server nodes/{name} {} check inter 250ms fall 1 rise 2",
            address(&node.base)
        ));
        assert!(added.contains("New server registered"), "{added}");
        self.command(&format!("enable health nodes/{name}"));
        self.command(&format!("enable server nodes/{name}"));
        let up = eventually(Duration::from_secs(10), || {
            self.servers()
                .iter()
                .any(|s| s.name == name && s.status == "UP")
                .then_some(())
        });
        assert!(up.is_some(), "{name} did not come up: {:?}", self.servers());
    }
}

/// Nodes on one Redis behind one balancer, as `scripts/serve --nodes N` runs them.
pub struct Cluster {
    /// The nodes, `n0`, `n1`, … (a killed node stays in the list, not running).
    pub nodes: Vec<Host>,
    /// The balancer in front of them.
    pub balancer: Balancer,
    /// The store they share.
    pub redis: Redis,
    extra: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes with extra `spin-local up` arguments each.
    pub fn start(n: usize, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let redis_dir = dir.path().join("redis");
        std::fs::create_dir_all(&redis_dir).expect("redis dir");
        let redis = Redis::start(&redis_dir);
        let nodes: Vec<Host> = (0..n).map(|_| Host::node(&redis, extra)).collect();
        let balancer = Balancer::start(dir.path(), &nodes.iter().collect::<Vec<_>>());
        Self {
            nodes,
            balancer,
            redis,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _dir: dir,
        }
    }

    /// A client of the balancer.
    pub fn client(&self) -> Client {
        Client::new(&self.balancer.base)
    }

    /// Starts one more node and adds it to the running balancer; returns its index.
    pub fn add_node(&mut self) -> usize {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let node = Host::node(&self.redis, &extra);
        let i = self.nodes.len();
        self.balancer.add(&format!("n{i}"), &node);
        self.nodes.push(node);
        i
    }
}
